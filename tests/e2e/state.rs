//! State: corrupt files, locks, `state` subcommands.

use crate::support::Project;

const ONE: &str = "resource \"record\" \"a\" {\n  input = 1\n}\n";

#[test]
fn corrupt_state_is_rejected_and_left_untouched() {
    let p = Project::new(ONE);
    std::fs::create_dir_all(p.path().join(".kiln")).unwrap();
    std::fs::write(p.state_path(), "{ not json").unwrap();
    let r = p.kiln(&["apply", "--auto-approve"]);
    assert_eq!(r.code(), 1);
    assert_eq!(std::fs::read_to_string(p.state_path()).unwrap(), "{ not json");
}

#[test]
fn held_lock_fails_fast_naming_the_holder() {
    let p = Project::new(ONE);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let info = serde_json::json!({"id": "abc", "operation": "apply", "who": "someone@elsewhere", "host": "elsewhere", "pid": 1, "created": "2026-01-01T00:00:00Z", "version": "0.1.0"});
    std::fs::write(p.path().join(".kiln/state.json.lock"), info.to_string()).unwrap();
    let r = p.kiln(&["apply", "--auto-approve"]);
    assert_eq!(r.code(), 1);
    assert!(r.stderr().contains("someone@elsewhere"), "{}", r.stderr());
    p.kiln(&["force-unlock", "abc"]).ok();
    p.kiln(&["plan"]).ok();
}

#[test]
fn state_mv_and_rm() {
    let p = Project::new(ONE);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.kiln(&["state", "mv", "record.a", "record.b"]).ok();
    assert_eq!(p.kiln(&["state", "list"]).ok().stdout().trim(), "record.b");
    p.kiln(&["state", "rm", "record.b"]).ok();
    assert_eq!(p.kiln(&["state", "list"]).ok().stdout().trim(), "");
}
