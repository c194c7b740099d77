//! Policy verdicts in the plan's views (issue 14): the JSON view's `policies` conform to
//! `plan-view.schema.json`, and the human plan ends with a `Policies:` section.

use kiln_plan::{Plan, PolicyResult, Violation};
use kiln_views::View;
use serde_json::json;

/// A plan with no change, read as a saved plan is (fields added later take their defaults).
fn plan(policies: Vec<PolicyResult>) -> Plan {
    let mut p: Plan = serde_json::from_value(json!({
        "format_version": 1, "kiln_version": "0.1.0", "mode": "normal", "lineage": null, "serial": null,
        "changes": [], "drift": [], "outputs": {}, "variables": {}, "config_digest": "d",
        "targets": [], "excludes": [], "refresh": true, "pending": []
    }))
    .expect("a minimal plan");
    p.policies = policies;
    p
}

fn verdicts() -> Vec<PolicyResult> {
    vec![
        PolicyResult {
            name: "budget".into(),
            location: "policies.kiln.hcl:1:1".into(),
            violations: vec![Violation {
                address: None,
                message: "the plan's hourly cost after apply is $45.00/h, over max_hourly_cost $40.00/h".into(),
            }],
        },
        PolicyResult {
            name: "clouds".into(),
            location: "policies.kiln.hcl:5:1".into(),
            violations: vec![Violation {
                address: Some("cluster.train".into()),
                message: "`cluster.train` uses provider `local`, which is not allowed (allowed: aws)".into(),
            }],
        },
        PolicyResult { name: "regions".into(), location: "policies.kiln.hcl:9:1".into(), violations: Vec::new() },
    ]
}

fn conforms(instance: &serde_json::Value) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/json/plan-view.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{instance:#}");
}

#[test]
fn the_json_view_lists_each_policy_with_its_violations_and_conforms() {
    let v = plan(verdicts()).json();
    conforms(&v);
    assert_eq!(
        v["policies"],
        json!([
            {"name": "budget", "location": "policies.kiln.hcl:1:1", "passed": false,
             "violations": [{"message": "the plan's hourly cost after apply is $45.00/h, over max_hourly_cost $40.00/h"}]},
            {"name": "clouds", "location": "policies.kiln.hcl:5:1", "passed": false,
             "violations": [{"address": "cluster.train", "message": "`cluster.train` uses provider `local`, which is not allowed (allowed: aws)"}]},
            {"name": "regions", "location": "policies.kiln.hcl:9:1", "passed": true, "violations": []}
        ])
    );
    let none = plan(Vec::new()).json();
    conforms(&none);
    assert!(none.get("policies").is_none(), "absent without policies");
}

#[test]
fn the_human_plan_ends_with_each_policy_passed_or_failed() {
    let text = plan(verdicts()).human();
    let section = &text[text.find("Policies:").expect("a Policies: section")..];
    assert_eq!(
        section,
        "Policies:\n  FAILED  budget (policies.kiln.hcl:1:1): 1 violation\n          * the plan's hourly cost after apply is $45.00/h, over max_hourly_cost $40.00/h\n  FAILED  clouds (policies.kiln.hcl:5:1): 1 violation\n          * `cluster.train` uses provider `local`, which is not allowed (allowed: aws)\n  passed  regions (policies.kiln.hcl:9:1)\n"
    );
    assert!(!plan(Vec::new()).human().contains("Policies:"));
}
