//! Snapshots of `kiln plan` in every format for the fixtures in `fixtures/plan-*`: human,
//! JSON (also checked against `schemas/json/plan-view.schema.json`) and markdown.
//!
//! A fixture with a `before/main.kiln.hcl` is applied from that configuration first, then its
//! `main.kiln.hcl` is planned against the resulting state. Snapshots live in `snapshots/`;
//! after an intended change of the plan view, regenerate them with
//! `INSTA_UPDATE=always cargo test --test e2e plan_view` and review the diff.

use crate::support::{insta_settings, Project};

/// Checks `instance` against `schemas/json/NAME`, failing with every error.
pub(crate) fn conforms(name: &str, instance: &serde_json::Value) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/json/");
    let text = std::fs::read_to_string(format!("{path}{name}")).expect("schema file");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    let v = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name} is not a valid schema: {e}"));
    let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}\n{instance:#}");
}

/// The JSON a command printed, parsed: one document.
pub(crate) fn parsed(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not one JSON document ({e}): {out}"))
}

/// Snapshots the human, JSON and markdown plan of fixture `name`.
fn check(name: &str) {
    let p = Project::fixture_applied(name);
    let human = p.kiln(&["plan"]).ok().stdout();
    assert_eq!(p.kiln(&["plan", "--format", "human"]).ok().stdout(), human);
    let json = parsed(&p.kiln(&["plan", "--json"]).ok().stdout());
    conforms("plan-view.schema.json", &json);
    assert_eq!(parsed(&p.kiln(&["plan", "--format", "json"]).ok().stdout()), json, "--json is --format json");
    let json = serde_json::to_string_pretty(&json).expect("pretty");
    let markdown = p.kiln(&["plan", "--format", "markdown"]).ok().stdout();
    insta_settings(&p).bind(|| {
        insta::assert_snapshot!(format!("{name}"), human);
        insta::assert_snapshot!(format!("{name}.json"), json);
        insta::assert_snapshot!(format!("{name}.md"), markdown);
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
    for args in [&["plan"][..], &["plan", "--json"][..], &["plan", "--format", "markdown"][..]] {
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

/// An attribute set to a whole resource (or one of its instances) shows the reference, not the
/// object inlined (issue 13: the AWS example's job printed its cluster on one line of 1,442
/// characters); the JSON view keeps the values.
#[test]
fn reference_to_a_whole_resource_in_a_create() {
    check("plan-reference-create");
    let p = Project::fixture_applied("plan-reference-create");
    let human = p.kiln(&["plan"]).ok().stdout();
    assert!(human.contains("      + input            = record.cluster\n"), "{human}");
    assert!(human.lines().all(|l| l.len() < 120), "no object inlined on one line:\n{human}");
    let json = parsed(&p.kiln(&["plan", "--json"]).ok().stdout());
    let job = json["resource_changes"].as_array().unwrap().iter().find(|c| c["address"] == "record.job").unwrap();
    assert_eq!(job["change"]["after"]["input"]["input"]["nodes"], 2, "the JSON view has the value: {job}");
}

/// Whether `plan` has a line reading `row`, however its `=` is aligned.
fn has_row(plan: &str, row: &str) -> bool {
    plan.lines().any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == row)
}

/// The examples' jobs show their cluster and checkpoint bucket as references: the AWS
/// example's job printed its spot pool inlined on one line of 1,442 characters before.
#[test]
fn examples_show_whole_resources_as_references() {
    let quick = Project::empty();
    crate::support::copy_dir(&crate::support::repo_root().join("examples/quickstart"), quick.path(), &[]);
    let plan = quick.kiln(&["plan"]).ok().stdout();
    assert!(has_row(&plan, "+ cluster = cluster.train"), "{plan}");
    assert!(has_row(&plan, "+ \"bucket\" = bucket.checkpoints"), "{plan}");

    let _moto = crate::moto::exclusive();
    let aws = Project::empty();
    crate::support::copy_dir(&crate::support::repo_root().join("examples/aws-spot-training"), aws.path(), &[]);
    let endpoint = format!("endpoint={}", crate::moto::server().endpoint());
    let mut c = aws.command(&["plan", "--var", &endpoint]);
    crate::aws::aws_env(&mut c);
    let plan = crate::support::run(c).ok().stdout();
    assert!(has_row(&plan, "+ cluster = spot_pool.workers"), "{plan}");
    let longest = plan.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 200, "a line of {longest} characters:\n{plan}");
}

/// The referenced resource changes: the referencing ones say so, with the reference and what
/// changed in it, and the one it forces to be replaced is marked.
#[test]
fn reference_to_a_whole_resource_in_an_update() {
    check("plan-reference-update");
}

/// Maps and objects key by key, nested; lists element by element; the forcing attribute marked.
#[test]
fn maps_are_diffed_key_by_key() {
    check("plan-map-diff");
}

/// A secret inside a map keeps the map `(sensitive value)`, also through a whole-object
/// reference to the resource holding it; neither secret appears anywhere.
#[test]
fn sensitive_values_inside_a_map() {
    check("plan-sensitive-in-map");
    let p = Project::fixture_applied("plan-sensitive-in-map");
    for args in [&["plan"][..], &["plan", "--json"][..], &["plan", "--format", "markdown"][..]] {
        let r = p.kiln(args).ok();
        for secret in ["hf_old_secret_value", "hf_new_secret_value"] {
            assert!(!r.stdout().contains(secret) && !r.stderr().contains(secret), "{args:?} leaks {secret}:\n{}", r.stdout());
        }
    }
}

/// A user's own value shaped like the old in-band markers (`{unknown = true}`,
/// `{sensitive = true}`) is data: the JSON plan marks unknown and sensitive values beside the
/// values (`after_unknown`, `after_sensitive`), so it never calls such a value unknown.
#[test]
fn user_values_shaped_like_markers_are_data() {
    let p = Project::new(
        r#"
resource "record" "a" {
  input = { unknown = true }
}

output "marker" {
  value = { unknown = true }
}

output "pending" {
  value = record.a.id
}
"#,
    );
    let v = parsed(&p.kiln(&["plan", "--json"]).ok().stdout());
    conforms("plan-view.schema.json", &v);
    let outputs = &v["output_changes"];
    assert_ne!(outputs["marker"]["after"], outputs["pending"]["after"], "a known map and an unknown look the same: {outputs}");
    assert_eq!(outputs["marker"]["after"], serde_json::json!({"unknown": true}), "{outputs}");
    assert_ne!(outputs["marker"]["after_unknown"], true, "{outputs}");
    assert_eq!(outputs["pending"]["after_unknown"], true, "{outputs}");
    let a = &v["resource_changes"][0]["change"];
    assert_eq!(a["after"]["input"], serde_json::json!({"unknown": true}), "{a}");
    assert_eq!(a["after_unknown"]["id"], true, "{a}");
    assert!(a["after_unknown"].get("input").is_none(), "{a}");
}

/// The pull-request comment of a plan with costs and a failed policy (exit 3, the comment still
/// written): the cost line, the policies, the changes with kind, provider and cost.
#[test]
fn ci_review_with_costs_and_a_failed_policy() {
    let p = Project::fixture_applied("plan-ci-review");
    let markdown = p.kiln(&["plan", "--format", "markdown"]).code_is(3).stdout();
    assert!(markdown.contains("**Policies:** ❌ 1 of 2 failed"), "{markdown}");
    insta_settings(&p).bind(|| insta::assert_snapshot!("plan-ci-review.md", markdown));
}

/// A saved plan shows in every format as `kiln plan` printed it.
#[test]
fn show_of_a_saved_plan_in_every_format() {
    let p = Project::fixture_applied("plan-replace-on-change");
    let json = parsed(&p.kiln(&["plan", "--json"]).ok().stdout());
    let markdown = p.kiln(&["plan", "--format", "markdown"]).ok().stdout();
    p.kiln(&["plan", "--out", "tfplan"]).ok();
    let shown = parsed(&p.kiln(&["show", "--json", "tfplan"]).ok().stdout());
    conforms("plan-view.schema.json", &shown);
    assert_eq!(shown, json);
    assert_eq!(p.kiln(&["show", "--format", "markdown", "tfplan"]).ok().stdout(), markdown);
    assert!(markdown.contains("| replace | `record.volume` | record | kiln | `triggers_replace` forces replacement |"), "{markdown}");
}

/// `--format` names one of the formats, and `--json` cannot contradict it.
#[test]
fn format_flag_is_checked() {
    let p = Project::new("resource \"record\" \"a\" {\n  input = \"x\"\n}\n");
    let r = p.kiln(&["plan", "--format", "yaml"]).code_is(1);
    assert!(r.stderr().contains("human") && r.stderr().contains("markdown"), "{}", r.stderr());
    p.kiln(&["plan", "--json", "--format", "markdown"]).code_is(1);
}
