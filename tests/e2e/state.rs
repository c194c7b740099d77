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

/// `state mv` moves an object with its recovery events (issue 15); `state rm` forgets both, so
/// `kiln watch` never finishes a restart of an object kiln no longer manages.
#[test]
fn state_mv_and_rm() {
    let p = Project::new(ONE);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let mut doc: serde_json::Value = serde_json::from_str(&p.kiln(&["state", "pull"]).ok().stdout()).unwrap();
    doc["serial"] = (doc["serial"].as_u64().unwrap() + 1).into();
    doc["events"] = serde_json::json!([{ "address": "record.a", "events": [
        { "at": "2026-01-01T00:00:00Z", "kind": "detected", "category": "host_failure", "attempt": 0 }
    ] }]);
    p.write("with-events.json", &doc.to_string());
    p.kiln(&["state", "push", "with-events.json"]).ok();
    let recorded_for =
        |address: &str| p.state_json()["events"].as_array().into_iter().flatten().filter(|e| e["address"] == address).count();
    assert_eq!(recorded_for("record.a"), 1);

    p.kiln(&["state", "mv", "record.a", "record.b"]).ok();
    assert_eq!(p.kiln(&["state", "list"]).ok().stdout().trim(), "record.b");
    assert_eq!((recorded_for("record.a"), recorded_for("record.b")), (0, 1), "the events moved with it");
    p.kiln(&["state", "rm", "record.b"]).ok();
    assert_eq!(p.kiln(&["state", "list"]).ok().stdout().trim(), "");
    assert_eq!(recorded_for("record.b"), 0, "forgotten with it");
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

/// `kiln import` configures the provider from its `provider` block: the `local` provider's
/// `root` says where a bucket imported by name lives (an empty configuration would look under
/// `.kiln/buckets`, and find nothing).
#[test]
fn import_configures_the_provider_from_its_block() {
    let p = Project::new("provider \"local\" {\n  root = \"store\"\n}\n\nresource \"bucket\" \"data\" {\n  name = \"data\"\n}\n");
    std::fs::create_dir_all(p.path().join("store/buckets/data")).unwrap();
    let r = p.kiln(&["import", "bucket.data", "data"]).ok();
    assert!(r.stdout().contains("Import successful"), "{}", r.stdout());
    let shown = p.kiln(&["state", "show", "bucket.data"]).ok().stdout();
    assert!(shown.contains("store/buckets/data"), "imported from the provider's root: {shown}");
}

#[test]
fn state_show_of_a_missing_address_fails() {
    let p = Project::new(ONE);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let r = p.kiln(&["state", "show", "record.nope"]).code_is(1);
    assert!(r.stderr().contains("record.nope"), "{}", r.stderr());
}

/// `l0 = []`, `l1 = [local.l0]`, ... `l{n-1}`, and a record holding `local.l{n-1}` (a value
/// nested `n` lists deep).
fn deep_chain(n: usize) -> String {
    let mut s = String::from("locals {\n  l0 = []\n");
    for i in 1..n {
        s.push_str(&format!("  l{i} = [local.l{}]\n", i - 1));
    }
    s.push_str(&format!("}}\n\nresource \"record\" \"x\" {{\n  input = local.l{}\n}}\n", n - 1));
    s
}

/// Issue 10, defect 3: a valid configuration whose state nests deeper than serde_json reads by
/// default (128) is written, read back by every command, and destroyed.
#[test]
fn a_deeply_nested_value_is_read_back_from_state() {
    let p = Project::new(&deep_chain(124));
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.state_list(), ["record.x"]);
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
    p.kiln(&["state", "show", "record.x"]).ok();
    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert!(p.state_list().is_empty());
}

/// ... and one deeper than kiln stores is refused before anything is created.
#[test]
fn a_value_too_deep_to_store_is_refused_before_anything_is_created() {
    let p = Project::new(&deep_chain(kiln_value::MAX_DEPTH));
    let r = p.kiln(&["apply", "--auto-approve"]).code_is(1);
    assert!(r.stderr().contains("256"), "names the limit: {}", r.stderr());
    assert!(!p.state_path().exists() || p.state_list().is_empty(), "nothing was created");
    assert!(!p.lock_path().exists());
}

/// Issue 10, defect 4: a deleted state file next to its backup is refused, with how to restore
/// it, instead of starting from nothing and overwriting the backup.
#[test]
fn a_deleted_state_beside_its_backup_is_refused() {
    let p = Project::new(ONE);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.write("main.kiln.hcl", "resource \"record\" \"a\" {\n  input = 2\n}\n");
    p.kiln(&["apply", "--auto-approve"]).ok();
    let backup = p.path().join(".kiln/state.json.backup");
    let saved = std::fs::read(&backup).unwrap();
    std::fs::remove_file(p.state_path()).unwrap();
    for args in [&["apply", "--auto-approve"][..], &["plan"][..], &["state", "list"][..], &["destroy", "--auto-approve"][..]] {
        let err = p.kiln(args).code_is(1).stderr();
        assert!(err.contains(".kiln/state.json.backup") && err.contains("cp -p"), "{args:?}: says how to restore: {err}");
    }
    assert_eq!(std::fs::read(&backup).unwrap(), saved, "the backup is untouched");
    assert!(!p.state_path().exists());
    assert!(!p.lock_path().exists());
    std::fs::copy(&backup, p.state_path()).unwrap();
    assert_eq!(p.state_list(), ["record.a"]);
}

/// Issue 10, defect 7: a state without its `resources` is refused, not read as empty (apply
/// would create everything again and forget the old objects); so is an empty lineage.
#[test]
fn a_state_missing_resources_or_lineage_is_refused() {
    let p = Project::new(ONE);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let good = p.state_json();
    for (field, edit) in [("resources", None), ("lineage", Some(serde_json::json!("")))] {
        let mut doc = good.clone();
        match edit {
            None => drop(doc.as_object_mut().unwrap().remove(field)),
            Some(v) => doc[field] = v,
        }
        let text = serde_json::to_string_pretty(&doc).unwrap();
        std::fs::write(p.state_path(), &text).unwrap();
        for args in [&["plan"][..], &["apply", "--auto-approve"][..]] {
            let err = p.kiln(args).code_is(1).stderr();
            assert!(err.contains(".kiln/state.json") && err.contains(&format!("`{field}`")), "{field} {args:?}: {err}");
        }
        assert_eq!(std::fs::read_to_string(p.state_path()).unwrap(), text, "left untouched");
    }
}

/// Issue 10, defect 7: a serial at the largest value is never wrapped (it used to become 2).
#[test]
fn a_serial_at_its_largest_value_never_wraps() {
    let p = Project::new(ONE);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let text = std::fs::read_to_string(p.state_path()).unwrap();
    let serial = p.state_json()["serial"].as_u64().unwrap();
    let text = text.replace(&format!("\"serial\": {serial},"), &format!("\"serial\": {},", u64::MAX));
    std::fs::write(p.state_path(), &text).unwrap();
    p.write("main.kiln.hcl", "resource \"record\" \"a\" {\n  input = 2\n}\n");
    let err = p.kiln(&["apply", "--auto-approve"]).code_is(1).stderr();
    assert!(err.contains(&u64::MAX.to_string()), "{err}");
    assert_eq!(std::fs::read_to_string(p.state_path()).unwrap(), text, "nothing was changed");
    assert!(!p.journal_path().exists());
    assert!(!p.lock_path().exists());
}

/// Issue 10, defect 6: a FIFO where the state file belongs is an error, not a hang.
#[cfg(unix)]
#[test]
fn a_fifo_as_the_state_file_is_an_error() {
    let p = Project::new(ONE);
    std::fs::create_dir_all(p.path().join(".kiln")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(p.state_path()).status().unwrap().success());
    for args in [&["plan"][..], &["apply", "--auto-approve"][..], &["state", "list"][..]] {
        let err = p.kiln(args).code_is(1).stderr();
        assert!(err.contains("not a regular file"), "{args:?}: {err}");
    }
    assert!(!p.lock_path().exists());
}

/// Issue 10, defect 6: a crash (panic) in a command that holds the state lock releases it.
#[test]
fn a_panic_while_locked_releases_the_lock() {
    let p = Project::new(ONE);
    let mut c = p.command(&["plan"]);
    c.env("KILN_TEST_PANIC", "plan");
    let r = crate::support::run(c);
    assert_eq!(r.code(), 101, "{}", r.stderr());
    assert!(r.stderr().contains("lock it held was released"), "{}", r.stderr());
    assert!(!p.lock_path().exists(), "the lock is released");
    p.kiln(&["plan"]).ok();
}

/// Issue 10, defect 11: saved plans are readable by their owner only, as state, its backup and
/// its journal are.
#[cfg(unix)]
#[test]
fn saved_plans_and_state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new(ONE);
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    p.kiln(&["plan", "--out", "p.plan"]).ok();
    assert_eq!(mode(&p.path().join("p.plan")), 0o600);
    // An existing file is made private too.
    std::fs::set_permissions(p.path().join("p.plan"), std::fs::Permissions::from_mode(0o644)).unwrap();
    p.kiln(&["plan", "--out", "p.plan"]).ok();
    assert_eq!(mode(&p.path().join("p.plan")), 0o600);
    p.kiln(&["apply", "p.plan"]).ok();
    p.write("main.kiln.hcl", "resource \"record\" \"a\" {\n  input = 2\n}\n");
    p.kiln(&["apply", "--auto-approve"]).ok();
    for f in ["state.json", "state.json.backup"] {
        assert_eq!(mode(&p.path().join(".kiln").join(f)), 0o600, "{f}");
    }
}
