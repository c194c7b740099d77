//! Upgrades: a state written by an earlier kiln plans no change with this one (issue 7's rule:
//! no upgrade plans a replacement, or any change, by itself).
//!
//! `fixtures/upgrade-before-11/` was applied by the kiln built just before issue 11 (the portable
//! contract), whose state format and provider attributes are those of commit 74722dc:
//! `main.kiln.hcl`, the bucket's files in `data/`, and what that kiln wrote under `.kiln/` in
//! `written/`. The machine- and directory-specific values in `written/` are placeholders
//! (`@DIR@`, `@CPUS@`, `@MEMORY_GB@`), filled in with this directory and this machine, as if the
//! project had been applied here.

use crate::support::{copy_dir, fixture_dir, Project};

/// The fixture, moved to a fresh directory on this machine; `None` on a machine with GPUs (the
/// fixture's cluster recorded a machine without any).
// The skip is said on the test's captured stdout.
#[allow(clippy::print_stdout)]
fn moved_here(name: &str) -> Option<Project> {
    let probe = Project::new("data \"machine\" \"this\" {}\noutput \"m\" {\n  value = data.machine.this\n}\n");
    probe.kiln(&["apply", "--auto-approve"]).ok();
    let machine = probe.output_json("m");
    if machine["gpu_count"].as_u64() != Some(0) {
        println!("skipped: this machine has GPUs; the fixture was written on one without ({machine})");
        return None;
    }
    let p = Project::empty();
    let from = fixture_dir(name);
    copy_dir(&from, p.path(), &["written"]);
    let kiln_dir = p.path().join(".kiln");
    copy_dir(&from.join("written"), &kiln_dir, &[]);
    let dir = p.path().to_str().expect("utf-8 temp dir").to_string();
    for file in walk(&kiln_dir) {
        let text = std::fs::read_to_string(&file).expect("read fixture file");
        let filled = text
            .replace("@DIR@", &dir)
            .replace("@CPUS@", &machine["cpus"].to_string())
            .replace("@MEMORY_GB@", &machine["memory_gb"].to_string());
        std::fs::write(&file, filled).expect("write fixture file");
    }
    // The local provider reads a finished node's time from its exit file: keep the recorded one.
    let state = p.state_json();
    let finished = state["resources"].as_array().unwrap().iter().filter_map(|r| r["attributes"]["finished_at"].as_str()).next();
    let finished: std::time::SystemTime = chrono::DateTime::parse_from_rfc3339(finished.expect("a finished job")).unwrap().into();
    for file in walk(&kiln_dir).into_iter().filter(|f| f.extension().is_some_and(|e| e == "exit")) {
        std::fs::File::options().append(true).open(&file).unwrap().set_modified(finished).unwrap();
    }
    Some(p)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        if e.file_type().expect("file type").is_dir() {
            files.extend(walk(&e.path()));
        } else {
            files.push(e.path());
        }
    }
    files
}

#[test]
fn a_local_state_written_before_the_portable_contract_plans_no_change() {
    let Some(p) = moved_here("upgrade-before-11") else { return };
    let before = p.state_json();
    let plan = p.kiln(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), 0, "the old state must plan no change:\n{}\n{}", plan.stdout(), plan.stderr());
    assert!(plan.stdout().contains("No changes"), "{}", plan.stdout());
    assert!(!plan.stdout().contains("changed outside of kiln"), "no drift either: {}", plan.stdout());
    let apply = p.kiln(&["apply", "--auto-approve"]).ok();
    assert!(apply.stdout().contains("No changes"), "{}", apply.stdout());
    let after = p.state_json();
    for (b, a) in before["resources"].as_array().unwrap().iter().zip(after["resources"].as_array().unwrap()) {
        assert_eq!(b["address"], a["address"]);
        assert_eq!(b["attributes"]["job_id"], a["attributes"]["job_id"], "the job was not restarted");
        assert_eq!(b["attributes"]["id"], a["attributes"]["id"], "the record was not replaced");
    }
    assert!(p.path().join("data/ckpt/run-1/rank-1").exists(), "the bucket's files are where they were");
}

#[test]
fn kiln_cost_lists_objects_applied_before_prices_were_kept() {
    let Some(p) = moved_here("upgrade-before-11") else { return };
    let json = p.kiln(&["cost", "--json"]).ok().stdout();
    let v: serde_json::Value = serde_json::from_str(&json).expect("kiln cost --json prints JSON");
    let lines = v["resources"].as_array().expect("resources");
    let cluster = lines.iter().find(|l| l["kind"] == "cluster").unwrap_or_else(|| panic!("the old cluster is listed: {v}"));
    assert_eq!(cluster["offering"], "this machine", "{v}");
    assert_eq!(cluster["hourly"], 0.0, "the local provider's capacity costs nothing by the hour: {v}");
    assert!(lines.iter().all(|l| l["kind"] != "bucket" && l["kind"] != "record"), "only kinds priced by the hour: {v}");
}
