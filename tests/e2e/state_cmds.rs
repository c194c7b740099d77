//! `kiln state pull` and `kiln state push` (issue 13), with Terraform's rules: a pushed state
//! must continue the stored one (same lineage, newer serial) unless `--force`; every push
//! leaves the replaced state in the backup.

use std::process::Command;

use crate::support::{bin, run, Project, Run};

const TWO: &str = "resource \"record\" \"a\" {\n  input = \"x\"\n}\n\nresource \"record\" \"b\" {\n  input = \"y\"\n}\n";

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `kiln state push [EXTRA] -` with `doc` on stdin (through a shell's redirection, so the run
/// stays bounded as every other).
fn push_stdin(p: &Project, doc: &str, extra: &[&str]) -> Run {
    p.write("stdin.json", doc);
    let mut c = Command::new("sh");
    c.arg("-c").arg("exec \"$0\" state push \"$@\" - < stdin.json").arg(bin()).args(extra);
    c.current_dir(p.path()).env("NO_COLOR", "1").env("KILN_QUIET", "1");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KILN_") && k != "KILN_QUIET" {
            c.env_remove(k);
        }
    }
    run(c)
}

#[test]
fn pull_prints_the_stored_state_and_nothing_without_one() {
    let p = Project::new(TWO);
    let r = p.kiln(&["state", "pull"]).ok();
    assert!(r.stdout().is_empty(), "no state, nothing printed: {}", r.stdout());
    p.kiln(&["apply", "--auto-approve"]).ok();
    let pulled = json(&p.kiln(&["state", "pull"]).ok().stdout());
    assert_eq!(pulled, p.state_json(), "pull prints the stored document");
    assert!(pulled["resources"].to_string().contains("record.b"), "{pulled}");
}

#[test]
fn pull_edit_push_round_trip_replaces_the_state_with_a_backup() {
    let p = Project::new(TWO);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let before = p.kiln(&["state", "pull"]).ok().stdout();
    let mut doc = json(&before);
    let serial = doc["serial"].as_u64().expect("serial");
    // Forget record.b in the pulled copy, as a hand edit would, with the next serial.
    let resources = doc["resources"].as_array().expect("resources").clone();
    doc["resources"] = serde_json::Value::Array(resources.into_iter().filter(|r| r["address"] != "record.b").collect());
    doc["serial"] = (serial + 1).into();
    p.write("edited.json", &doc.to_string());
    p.kiln(&["state", "push", "edited.json"]).ok();
    assert_eq!(p.state_list(), ["record.a"]);
    assert_eq!(p.state_json()["serial"], serial + 1);
    let backup = json(&p.read(".kiln/state.json.backup"));
    assert_eq!(backup, json(&before), "the replaced state is the backup");
    // Pushing the same document again is refused: its serial is not newer.
    let r = p.kiln(&["state", "push", "edited.json"]).code_is(1);
    assert!(r.stderr().contains("E-STATE-PUSH-SERIAL") && r.stderr().contains("help:"), "{}", r.stderr());
    // And the round trip through stdin: pull | push of the next serial.
    let mut doc = json(&p.kiln(&["state", "pull"]).ok().stdout());
    doc["serial"] = (serial + 2).into();
    push_stdin(&p, &doc.to_string(), &[]).ok();
    assert_eq!(p.state_json()["serial"], serial + 2);
    assert_eq!(p.state_list(), ["record.a"]);
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(2);
}

#[test]
fn another_lineage_or_an_older_serial_is_refused_unless_forced() {
    let other = Project::new("resource \"record\" \"z\" {\n  input = \"z\"\n}\n");
    other.kiln(&["apply", "--auto-approve"]).ok();
    let foreign = other.kiln(&["state", "pull"]).ok().stdout();
    let p = Project::new(TWO);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let stored = p.state_json();
    let r = push_stdin(&p, &foreign, &[]).code_is(1);
    assert!(r.stderr().contains("E-STATE-PUSH-LINEAGE") && r.stderr().contains("--force"), "{}", r.stderr());
    assert_eq!(p.state_json(), stored, "a refused push changes nothing");
    assert!(!p.lock_path().exists(), "the lock is released");
    // An older serial of the same lineage.
    let mut old = stored.clone();
    old["serial"] = 0.into();
    p.write("old.json", &old.to_string());
    let r = p.kiln(&["state", "push", "old.json"]).code_is(1);
    assert!(r.stderr().contains("E-STATE-PUSH-SERIAL"), "{}", r.stderr());
    // --force replaces it, as the next serial of the stored lineage, the old one in the backup.
    push_stdin(&p, &foreign, &["--force"]).ok();
    assert_eq!(p.state_list(), ["record.z"]);
    let now = p.state_json();
    assert_eq!(now["lineage"], stored["lineage"]);
    assert_eq!(now["serial"], stored["serial"].as_u64().unwrap() + 1);
    assert_eq!(json(&p.read(".kiln/state.json.backup")), stored);
}

#[test]
fn a_file_that_is_not_a_state_is_refused() {
    let p = Project::new(TWO);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.write("junk.json", "{\"hello\": 1}");
    let r = p.kiln(&["state", "push", "junk.json"]).code_is(1);
    assert!(r.stderr().contains("E-STATE-PUSH-READ") && r.stderr().contains("junk.json"), "{}", r.stderr());
    let r = p.kiln(&["state", "push", "missing.json"]).code_is(1);
    assert!(r.stderr().contains("E-STATE-PUSH-READ"), "{}", r.stderr());
    assert_eq!(p.state_list(), ["record.a", "record.b"]);
}
