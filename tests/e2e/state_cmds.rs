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

const REFRESHED: &str = "resource \"bucket\" \"gone\" {\n  path = \"gone\"\n}\n\nresource \"bucket\" \"kept\" {\n  path = \"kept\"\n}\n\nresource \"record\" \"r\" {\n  input = \"x\"\n}\n\noutput \"kept\" {\n  value = bucket.kept.path\n}\n";

/// `--refresh-only` (issue 13, as Terraform's `-refresh-only`): the plan lists what changed
/// outside kiln and changes no object; applying it (with confirmation, or a saved plan) records
/// what exists in state: a bucket deleted behind kiln's back leaves state, and nothing is
/// created or updated although the configuration asks for more.
#[test]
fn refresh_only_records_what_exists_without_changing_any_object() {
    let p = Project::new(REFRESHED);
    p.kiln(&["apply", "--auto-approve"]).ok();
    std::fs::remove_dir_all(p.path().join("gone")).expect("delete the bucket's directory");
    // The configuration now asks for more: refresh-only must do none of it.
    p.write("main.kiln.hcl", &format!("{}\nresource \"record\" \"new\" {{\n  input = \"n\"\n}}\n", REFRESHED.replace("\"x\"", "\"y\"")));
    let r = p.kiln(&["plan", "--refresh-only", "--detailed-exitcode"]).code_is(2);
    let out = r.stdout();
    assert!(out.contains("objects have changed outside of kiln") && out.contains("# bucket.gone has been deleted"), "{out}");
    assert!(out.contains("This is a refresh-only plan"), "{out}");
    for absent in ["record.new", "record.r", "bucket.kept", "Plan:", "will be created"] {
        assert!(!out.contains(absent), "`{absent}` in a refresh-only plan:\n{out}");
    }
    let md = p.kiln(&["plan", "--refresh-only", "--format", "markdown"]).ok().stdout();
    assert!(md.starts_with("### kiln plan (refresh-only): 1 object changed outside of kiln"), "{md}");
    let json = p.kiln(&["plan", "--refresh-only", "--json"]).ok().stdout();
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!((v["mode"].as_str(), v["has_changes"].as_bool()), (Some("refresh-only"), Some(true)), "{v}");
    assert_eq!(v["resource_changes"].as_array().map(Vec::len), Some(0), "{v}");
    // Confirmation is asked for as for any apply.
    let r = p.kiln(&["apply", "--refresh-only"]).code_is(1);
    assert!(r.stderr().contains("E-APPLY-CONFIRM"), "{}", r.stderr());
    assert_eq!(p.state_list(), ["bucket.gone", "bucket.kept", "record.r"]);
    // A saved refresh-only plan applies as one.
    p.kiln(&["plan", "--refresh-only", "--out", "refresh.plan"]).ok();
    p.kiln(&["apply", "refresh.plan"]).ok();
    assert_eq!(p.state_list(), ["bucket.kept", "record.r"]);
    assert!(!p.path().join("gone").exists(), "nothing was created");
    assert!(p.path().join("kept").is_dir());
    let state = p.state_json().to_string();
    assert!(state.contains("\"x\"") && !state.contains("\"y\""), "record.r was not updated: {state}");
    assert_eq!(p.output_json("kept"), "kept");
    let r = p.kiln(&["plan", "--refresh-only", "--detailed-exitcode"]).code_is(0);
    assert!(r.stdout().contains("No changes. Your infrastructure still matches the configuration."), "{}", r.stdout());
    // A normal plan now makes what the configuration asks for.
    let r = p.kiln(&["plan", "--detailed-exitcode"]).code_is(2);
    assert!(r.stdout().contains("Plan: 2 to add, 1 to change, 0 to destroy."), "{}", r.stdout());
    // With --auto-approve: nothing to record, nothing done.
    p.kiln(&["apply", "--refresh-only", "--auto-approve"]).ok();
    assert_eq!(p.state_list(), ["bucket.kept", "record.r"]);
}

/// `--refresh-only` changes no object, so it refuses what would (`--replace`, `--destroy`) and
/// what would leave it nothing to do (`--refresh=false`).
#[test]
fn refresh_only_refuses_flags_that_change_objects() {
    let p = Project::new(REFRESHED);
    p.kiln(&["apply", "--auto-approve"]).ok();
    for extra in [&["--replace", "record.r"][..], &["--destroy"], &["--refresh=false"]] {
        let mut args = vec!["plan", "--refresh-only"];
        args.extend(extra);
        let r = p.kiln(&args).code_is(1);
        let err = r.stderr();
        // --replace is refused by the command line's own rule (E-CLI-USAGE), the others after.
        assert!(err.contains("E-CLI-") && err.contains("--refresh-only") && err.contains(extra[0]), "{args:?}: {err}");
    }
}

/// The everyday use of `--refresh-only` on a training job: the job finished after the apply
/// that launched it; a refresh-only apply records its status, exit codes and the outputs that
/// read them, and the next plan has nothing to do.
#[test]
fn refresh_only_records_a_finished_job_and_its_outputs() {
    let p = Project::new(
        "resource \"cluster\" \"c\" {\n  nodes = 1\n}\n\nresource \"job\" \"j\" {\n  cluster = cluster.c\n  run     = \"true\"\n}\n\noutput \"status\" {\n  value = job.j.status\n}\n",
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    let mut plan = String::new();
    crate::support::wait_until("the job's end to show in a refresh-only plan", std::time::Duration::from_secs(120), || {
        plan = p.kiln(&["plan", "--refresh-only"]).ok().stdout();
        plan.contains("\"succeeded\"")
    });
    assert!(plan.contains("# job.j has changed") && plan.contains("This is a refresh-only plan"), "{plan}");
    assert!(plan.contains("-> \"succeeded\""), "{plan}");
    p.kiln(&["apply", "--refresh-only", "--auto-approve"]).ok();
    assert_eq!(p.output_json("status"), "succeeded");
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
    p.kiln(&["destroy", "--auto-approve"]).ok();
}

const SECRET: &str = "resource \"record\" \"a\" {\n  input = \"x\"\n}\n\nvariable \"token\" {\n  default   = \"hunter2-pull-secret\"\n  sensitive = true\n}\n\noutput \"token\" {\n  value     = var.token\n  sensitive = true\n}\n";

/// `kiln state pull` redirected by a shell with a umask that makes files world-readable writes
/// a file readable by its owner only (mode 0600), and `kiln state push` takes it back.
#[test]
fn pull_into_a_file_makes_it_private_and_push_takes_it() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new(SECRET);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let mut c = Command::new("sh");
    c.arg("-c").arg("umask 022; exec \"$0\" state pull > pulled.json").arg(bin());
    c.current_dir(p.path()).env("NO_COLOR", "1").env("KILN_QUIET", "1");
    run(c).ok();
    let path = p.path().join("pulled.json");
    let mode = std::fs::metadata(&path).expect("pulled.json").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "pulled.json is mode {mode:o}");
    let mut doc = json(&p.read("pulled.json"));
    assert_eq!(doc, p.state_json(), "the whole document, sensitive values included");
    // The next serial, as an edit would: written in place (the mode stays).
    doc["serial"] = (doc["serial"].as_u64().expect("serial") + 1).into();
    std::fs::write(&path, doc.to_string()).expect("write");
    p.kiln(&["state", "push", "pulled.json"]).ok();
    assert_eq!(p.state_json()["serial"], doc["serial"]);
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

/// `kiln state pull` through a terminal (script's) with a sensitive value in state is refused
/// with how to redirect it, and the secret is not shown; a state without one prints.
#[test]
fn pull_to_a_terminal_refuses_a_state_with_sensitive_values() {
    let on_terminal = |p: &Project| {
        let mut c = Command::new("script");
        c.args(["-qec", &format!("{} state pull", bin().display()), "/dev/null"]);
        c.current_dir(p.path()).env("NO_COLOR", "1").env("KILN_QUIET", "1").stdin(std::process::Stdio::null());
        run(c)
    };
    let p = Project::new(SECRET);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let r = on_terminal(&p).code_is(1);
    let out = r.stdout();
    assert!(out.contains("E-STATE-PULL-TERMINAL") && out.contains("kiln state pull > state.json"), "{out}");
    assert!(!out.contains("hunter2-pull-secret") && !out.contains("\"lineage\""), "nothing of the state is shown:\n{out}");
    let plain = Project::new(TWO);
    plain.kiln(&["apply", "--auto-approve"]).ok();
    let out = on_terminal(&plain).ok().stdout();
    assert!(out.contains("\"lineage\"") && out.contains("record.b"), "{out}");
}
