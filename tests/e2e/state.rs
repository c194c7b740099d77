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

#[test]
fn state_of_a_newer_format_is_rejected_and_left_untouched() {
    let p = Project::new(ONE);
    std::fs::create_dir_all(p.path().join(".kiln")).unwrap();
    let newer = "{\n  \"format_version\": 99,\n  \"kiln_version\": \"9.0.0\",\n  \"lineage\": \"0b7e\",\n  \"serial\": 7,\n  \"resources\": [],\n  \"from_the_future\": {}\n}\n";
    std::fs::write(p.state_path(), newer).unwrap();
    for args in [&["apply", "--auto-approve"][..], &["plan"][..], &["state", "list"][..], &["import", "record.a", "x"][..]] {
        let r = p.kiln(args).code_is(1);
        let err = r.stderr();
        assert!(err.contains(".kiln/state.json"), "{args:?}: names the file: {err}");
        assert!(err.contains("`99`"), "{args:?}: names the format found: {err}");
        assert!(err.contains("upgrade kiln"), "{args:?}: says what to do: {err}");
    }
    assert_eq!(std::fs::read(p.state_path()).unwrap(), newer.as_bytes(), "byte for byte untouched");
    assert!(!p.path().join(".kiln/state.json.backup").exists());
}

#[test]
fn corrupt_state_error_names_file_line_and_column() {
    let p = Project::new(ONE);
    std::fs::create_dir_all(p.path().join(".kiln")).unwrap();
    let corrupt = "{\n  \"format_version\": 1,\n  \"lineage\": \n}\n";
    std::fs::write(p.state_path(), corrupt).unwrap();
    for args in [&["apply", "--auto-approve"][..], &["plan"][..], &["state", "rm", "record.a"][..]] {
        let r = p.kiln(args).code_is(1);
        let err = r.stderr();
        assert!(err.contains(".kiln/state.json"), "{args:?}: {err}");
        assert!(err.contains("line 4, column 1"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(p.state_path()).unwrap(), corrupt.as_bytes());
}

#[test]
fn second_apply_fails_fast_naming_the_running_holder() {
    let p =
        Project::new("resource \"record\" \"slow\" {\n  count        = 30\n  input        = count.index\n  create_delay = \"300ms\"\n}\n");
    let mut first = p.spawn(&["apply", "--auto-approve", "--parallelism", "1"]);
    crate::support::wait_until("the first apply journals a create", std::time::Duration::from_secs(120), || {
        p.journal_path().exists() || !first.running()
    });
    assert!(first.running(), "the first apply ended too soon:\n{}", first.stderr_so_far());
    let holder: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.lock_path()).unwrap()).unwrap();

    let r = p.kiln(&["apply", "--auto-approve"]);
    // Fails without waiting for the holder: the first apply is still running afterwards.
    assert!(first.running(), "the second apply waited for the first one to finish");
    let err = r.code_is(1).stderr();
    assert!(err.contains(holder["who"].as_str().unwrap()), "names who holds the lock: {err}");
    assert!(err.contains(&first.pid().to_string()), "names the holder's pid: {err}");
    assert!(err.contains("`apply`"), "names the holder's operation: {err}");
    assert!(!err.contains("stale"), "a live holder is not stale: {err}");
    assert_eq!(crate::support::force_unlock_id(&err).as_deref(), holder["id"].as_str());
    // The loser did not touch the holder's lock.
    let after: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.lock_path()).unwrap()).unwrap();
    assert_eq!(after, holder);
}

#[test]
fn lock_timeout_suggested_by_the_lock_message_exists() {
    let p = Project::new(ONE);
    p.kiln(&["apply", "--auto-approve", "--lock-timeout", "1s"]).ok();
    p.kiln(&["plan", "--lock-timeout", "1s"]).ok();
}

#[test]
fn import_then_state_show() {
    let p = Project::new("resource \"record\" \"imported\" {\n  input = \"x\"\n}\n");
    let r = p.kiln(&["import", "record.imported", "rec-42"]).ok();
    assert!(r.stdout().contains("Import successful"), "{}", r.stdout());
    assert_eq!(p.state_list(), ["record.imported"]);
    let shown = p.kiln(&["state", "show", "record.imported"]).ok().stdout();
    assert!(shown.contains("# record.imported:"), "{shown}");
    assert!(shown.contains("id = \"rec-42\""), "{shown}");
    // The imported object is now managed: the plan updates it instead of creating it.
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("record.imported will be updated in place"), "{plan}");
    // Importing the same address twice is refused.
    let r = p.kiln(&["import", "record.imported", "rec-43"]).code_is(1);
    assert!(r.stderr().contains("already managed"), "{}", r.stderr());
}

#[test]
fn state_show_of_a_missing_address_fails() {
    let p = Project::new(ONE);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let r = p.kiln(&["state", "show", "record.nope"]).code_is(1);
    assert!(r.stderr().contains("record.nope"), "{}", r.stderr());
}
