//! Policies as a CI gate (issue 14), end to end on the `kiln` and `local` providers: a plan
//! that breaks one exits 3 (over `--detailed-exitcode`'s 2) listing each violation with its
//! address and the policy's file:line:col; `kiln apply` refuses it, with or without a saved
//! plan, applying nothing; a plan within its policies exits as before.

use crate::support::Project;

const RECORD: &str = "resource \"record\" \"a\" {\n  input = \"x\"\n}\n";

fn with_policy(policy: &str) -> String {
    format!("{RECORD}\n{policy}")
}

/// Allows only aws: the record (provider `kiln`) breaks it.
const AWS_ONLY: &str = "policy \"clouds\" {\n  allowed_providers = [\"aws\"]\n}\n";

#[test]
fn a_plan_that_breaks_a_policy_exits_3_naming_the_change_and_the_policy_block() {
    let p = Project::new(&with_policy(AWS_ONLY));
    let r = p.kiln(&["plan"]).code_is(3);
    let err = r.stderr();
    assert!(err.contains("E-POLICY"), "{err}");
    assert!(err.contains("policy `clouds`: `record.a` uses provider `kiln`, which is not allowed (allowed: aws)"), "{err}");
    assert!(err.contains("main.kiln.hcl:5:1"), "the policy block's location: {err}");
    assert!(
        err.contains("Policy check failed: the plan breaks 1 of 1 policy (clouds) with 1 violation; kiln apply refuses this plan."),
        "{err}"
    );
    let out = r.stdout();
    assert!(out.contains("Plan: 1 to add, 0 to change, 0 to destroy."), "the plan is still shown: {out}");
    assert!(
        out.contains("Policies:\n  FAILED  clouds (main.kiln.hcl:5:1): 1 violation\n          * `record.a` uses provider `kiln`"),
        "{out}"
    );
}

#[test]
fn a_broken_policy_wins_over_detailed_exitcode() {
    let p = Project::new(&with_policy(AWS_ONLY));
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(3);
    // With nothing to change, the existing objects still break it.
    p.write("main.kiln.hcl", RECORD);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.write("main.kiln.hcl", &with_policy(AWS_ONLY));
    let r = p.kiln(&["plan", "--detailed-exitcode"]).code_is(3);
    assert!(r.stdout().contains("No changes."), "{}", r.stdout());
}

#[test]
fn passing_policies_keep_the_usual_exit_codes_and_are_listed() {
    let p = Project::new(&with_policy("policy \"clouds\" {\n  allowed_providers = [\"kiln\", \"local\"]\n}\n"));
    let r = p.kiln(&["plan"]).code_is(0);
    assert!(r.stdout().contains("Policies:\n  passed  clouds (main.kiln.hcl:5:1)"), "{}", r.stdout());
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(2);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

#[test]
fn apply_without_a_saved_plan_refuses_and_applies_nothing() {
    let p = Project::new(&with_policy(AWS_ONLY));
    let r = p.kiln(&["apply", "--auto-approve"]).code_is(3);
    assert!(r.stderr().contains("E-POLICY") && r.stderr().contains("nothing was applied"), "{}", r.stderr());
    assert!(!r.stdout().contains("Apply complete"), "{}", r.stdout());
    assert!(p.state_list().is_empty(), "nothing was created");
}

#[test]
fn a_saved_plan_that_breaks_a_policy_is_kept_for_review_and_apply_refuses_it() {
    let p = Project::new(&with_policy(AWS_ONLY));
    let r = p.kiln(&["plan", "--out", "ci.plan"]).code_is(3);
    assert!(r.stderr().contains("Saved the plan to ci.plan for review: it breaks a policy, so kiln apply refuses it."), "{}", r.stderr());
    let r = p.kiln(&["apply", "ci.plan"]).code_is(3);
    assert!(r.stderr().contains("policy `clouds`: `record.a` uses provider `kiln`"), "{}", r.stderr());
    assert!(p.state_list().is_empty(), "nothing was created");
    let shown = p.kiln(&["show", "--json", "ci.plan"]).ok();
    let v: serde_json::Value = serde_json::from_str(shown.stdout().trim()).expect("show --json is JSON");
    assert_eq!(v["policies"][0]["name"], "clouds");
    assert_eq!(v["policies"][0]["passed"], false);
    assert_eq!(v["policies"][0]["violations"][0]["address"], "record.a");
}

#[test]
fn plan_json_lists_every_policys_verdict() {
    let p = Project::new(&with_policy(&format!("{AWS_ONLY}\npolicy \"small\" {{\n  spot_above_gpus = 8\n}}\n")));
    let r = p.kiln(&["plan", "--json"]).code_is(3);
    let v: serde_json::Value = serde_json::from_str(r.stdout().trim()).expect("plan --json is JSON");
    let policies: Vec<(String, bool)> = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["passed"].as_bool().unwrap()))
        .collect();
    assert_eq!(policies, [("clouds".to_string(), false), ("small".to_string(), true)]);
    assert!(v["policies"][0]["location"].as_str().unwrap().ends_with("main.kiln.hcl:5:1"), "{v}");
    let p = Project::new(RECORD);
    let v: serde_json::Value = serde_json::from_str(p.kiln(&["plan", "--json"]).ok().stdout().trim()).unwrap();
    assert!(v.get("policies").is_none(), "absent without policies: {v}");
}

#[test]
fn a_rule_over_each_change_fails_the_plan_with_its_message() {
    let p = Project::new(RECORD);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.write(
        "main.kiln.hcl",
        "policy \"keep\" {\n  rule {\n    condition = change.action != \"delete\"\n    message   = \"${change.address} would be destroyed\"\n  }\n}\n",
    );
    let r = p.kiln(&["plan"]).code_is(3);
    assert!(r.stderr().contains("policy `keep`: record.a would be destroyed"), "{}", r.stderr());
    p.kiln(&["destroy", "--auto-approve"]).code_is(3);
    assert_eq!(p.state_list(), ["record.a"], "destroy refused");
}

#[test]
fn an_error_in_a_policy_is_an_error_at_its_span_not_a_violation() {
    let p = Project::new(&with_policy("policy \"bad\" {\n  rule {\n    condition = change.after.nope\n    message   = \"m\"\n  }\n}\n"));
    let r = p.kiln(&["plan", "--detailed-exitcode"]).code_is(1);
    assert!(r.stderr().contains("main.kiln.hcl:7:"), "{}", r.stderr());
}

#[test]
fn protect_nonempty_buckets_refuses_destroying_a_local_bucket_that_holds_a_file() {
    let p = Project::new("resource \"bucket\" \"data\" {\n  force_destroy = true\n}\n");
    p.kiln(&["apply", "--auto-approve"]).ok();
    let dir = p.path().join(".kiln/buckets/data");
    assert!(dir.is_dir(), "{}", dir.display());
    std::fs::write(dir.join("weights.pt"), b"checkpoint").unwrap();
    p.write("main.kiln.hcl", "policy \"data\" {\n  protect_nonempty_buckets = true\n}\n");
    let r = p.kiln(&["plan"]).code_is(3);
    assert!(r.stderr().contains("policy `data`: `bucket.data` would be deleted, but it holds objects (weights.pt)"), "{}", r.stderr());
    p.kiln(&["destroy", "--auto-approve"]).code_is(3);
    assert!(dir.join("weights.pt").exists(), "force_destroy would have deleted it: the policy stopped it");
    // Empty, it may go.
    std::fs::remove_file(dir.join("weights.pt")).unwrap();
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(2);
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert!(!dir.exists());
}
