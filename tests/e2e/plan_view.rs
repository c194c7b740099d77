//! Snapshots of `kiln plan` and `kiln plan --json` for the fixtures in `fixtures/plan-*`.
//!
//! A fixture with a `before/main.kiln.hcl` is applied from that configuration first, then its
//! `main.kiln.hcl` is planned against the resulting state. Snapshots live in `snapshots/`;
//! after an intended change of the plan view, regenerate them with
//! `INSTA_UPDATE=always cargo test --test e2e plan_view` and review the diff.

use crate::support::{insta_settings, Project};

/// Snapshots the human and the JSON plan of fixture `name`.
fn check(name: &str) {
    let p = Project::fixture_applied(name);
    let human = p.kiln(&["plan"]).ok().stdout();
    let json = p.kiln(&["plan", "--json"]).ok().stdout();
    let json: serde_json::Value = serde_json::from_str(json.trim()).expect("plan --json prints one JSON document");
    let json = serde_json::to_string_pretty(&json).expect("pretty");
    insta_settings(&p).bind(|| {
        insta::assert_snapshot!(format!("{name}"), human);
        insta::assert_snapshot!(format!("{name}.json"), json);
    });
}

#[test]
fn create_only() {
    check("plan-create-only");
}

#[test]
fn update_in_place() {
    check("plan-update-in-place");
}

#[test]
fn replace_on_change() {
    check("plan-replace-on-change");
}

#[test]
fn count_decrease_destroys_orphans() {
    check("plan-count-decrease");
}

#[test]
fn for_each_map() {
    check("plan-for-each-map");
}

#[test]
fn module_inputs_and_outputs() {
    check("plan-module-inputs-outputs");
}

#[test]
fn multiline_string_change_is_diffed_by_line() {
    check("plan-multiline-string-change");
}

#[test]
fn sensitive_variable() {
    check("plan-sensitive-variable");
    // Beyond the snapshot: neither the old nor the new secret appears anywhere.
    let p = Project::fixture_applied("plan-sensitive-variable");
    for args in [&["plan"][..], &["plan", "--json"][..]] {
        let r = p.kiln(args).ok();
        for secret in ["hunter2", "correct-horse-battery-staple"] {
            assert!(!r.stdout().contains(secret) && !r.stderr().contains(secret), "{args:?} leaks {secret}:\n{}", r.stdout());
        }
    }
}

#[test]
fn outputs_change() {
    check("plan-outputs-change");
}
