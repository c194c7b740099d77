//! The plan as a pull-request comment (issue 14): a snapshot of a plan with costs (one price
//! unknown), placement decisions, a failed policy, drift and the commit it was made from; the
//! commit in the JSON view; and a 20,000-change plan whose comment stays within GitHub's
//! 65,536-character limit, its summary, cost and policies whole.
//!
//! After an intended change of the comment, regenerate the snapshot with
//! `INSTA_UPDATE=always cargo test -p kiln-views --test plan_markdown` and review the diff.

use std::str::FromStr;

use kiln_plan::{
    Action, Alternative, ChangeCost, Cost, Drift, PlacedOffering, Placement, Plan, PlanCost, PlannedChange, PolicyResult, Reason, Total,
    Violation,
};
use kiln_value::{Decimal, Value};
use kiln_views::{render, Format, View};
use serde_json::json;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("a decimal")
}

fn hourly(s: &str) -> Option<Cost> {
    Some(Cost::Hourly { usd: d(s) })
}

/// A plan with nothing in it, read as a saved plan is (fields added later take their defaults).
fn empty() -> Plan {
    serde_json::from_value(json!({
        "format_version": 1, "kiln_version": "0.1.0", "mode": "normal", "lineage": "l", "serial": 4,
        "changes": [], "drift": [], "outputs": {}, "variables": {}, "config_digest": "d",
        "targets": [], "excludes": [], "refresh": true, "pending": []
    }))
    .expect("a minimal plan")
}

fn change(address: &str, provider: &str, action: Action, cost: Option<ChangeCost>) -> PlannedChange {
    let address: kiln_addrs::InstanceAddr = address.parse().expect("address");
    PlannedChange {
        kind: address.resource.kind.clone(),
        address,
        provider: provider.into(),
        action,
        before: (action != Action::Create).then(|| Value::Map(Default::default())),
        after: (action != Action::Delete).then(|| Value::Map(Default::default())),
        reason: None,
        create_before_destroy: false,
        sensitive: vec![],
        dependencies: vec![],
        deposed: None,
        references: Default::default(),
        cost,
    }
}

fn offering(provider: &str, instance_type: &str, region: Option<&str>, spot: bool, gpus: Option<&str>, price: &str) -> PlacedOffering {
    PlacedOffering {
        provider: provider.into(),
        cloud: provider.into(),
        instance_type: instance_type.into(),
        region: region.map(Into::into),
        zone: None,
        spot,
        accelerators: gpus.map(Into::into),
        vcpus: 192,
        memory_gib: d("2048"),
        price_hourly: d(price),
        nodes: 2,
        egress_usd: None,
    }
}

/// `Cost: $31.92/h → $57.10/h (+$25.18/h)`: a cluster moved by placement, a new priced cluster,
/// a job with no price of its own, a local bucket at $0 and an owned box whose price is unknown;
/// a budget policy that fails and one that passes; drift; the commit.
fn reviewed() -> Plan {
    let mut train = change("cluster.train", "aws", Action::Replace, Some(ChangeCost { before: hourly("31.92"), after: hourly("49.10") }));
    train.reason = Some(Reason::PlacementMoved { from: "lambda".into() });
    let gpu_box = change(
        "cluster.gpu_box",
        "onprem",
        Action::Create,
        Some(ChangeCost { before: None, after: Some(Cost::Unknown { reason: "provider `onprem` sets no hourly_price".into() }) }),
    );
    let mut plan = empty();
    plan.changes = vec![
        train,
        change("cluster.eval", "aws", Action::Create, Some(ChangeCost { before: None, after: hourly("8.00") })),
        change("job.train", "aws", Action::Create, Some(ChangeCost { before: None, after: Some(Cost::None) })),
        change("bucket.ckpt", "local", Action::Create, Some(ChangeCost { before: None, after: hourly("0") })),
        gpu_box,
        change("record.note", "kiln", Action::NoOp, None),
    ];
    plan.cost = Some(PlanCost {
        before: Total { usd: d("31.92"), unknown: vec![] },
        after: Total { usd: d("57.10"), unknown: vec!["cluster.gpu_box".into()] },
    });
    let chosen = offering("aws", "p5.48xlarge", Some("us-east-1"), true, Some("H100:8"), "24.55");
    plan.placements = vec![Placement {
        address: "cluster.train".parse().unwrap(),
        request: "accelerators = \"H100:8\", spot = \"auto\"".into(),
        chosen: chosen.clone(),
        fallbacks: vec![offering("aws", "p5e.48xlarge", Some("us-east-1"), true, Some("H200:8"), "23.80")],
        alternatives: vec![
            Alternative { offering: offering("runpod", "H100-SXM:8", None, false, Some("H100:8"), "26.32"), reason: "$3.54/h more".into() },
            Alternative {
                offering: offering("aws", "p5.48xlarge", Some("eu-west-1"), true, Some("H100:8"), "22.10"),
                reason: "region not allowed (placement.regions)".into(),
            },
        ],
        notes: vec!["2 rows skipped: price unknown".into()],
        kept: false,
        moved_from: Some(offering("lambda", "gpu_8x_h100_sxm5", Some("us-east-3"), false, Some("H100:8"), "15.96")),
        request_digest: String::new(),
    }];
    plan.policies = vec![
        PolicyResult {
            name: "budget".into(),
            location: "policies.kiln.hcl:1:1".into(),
            violations: vec![Violation {
                address: None,
                message: "the plan's hourly cost after apply is at least $57.10/h, over max_hourly_cost $40.00/h".into(),
            }],
        },
        PolicyResult { name: "regions".into(), location: "policies.kiln.hcl:5:1".into(), violations: vec![] },
    ];
    plan.drift =
        vec![Drift { address: "bucket.old".parse().unwrap(), before: Value::Map(Default::default()), after: None, sensitive: vec![] }];
    plan.git_commit = Some("0123456789abcdef0123456789abcdef01234567-dirty".into());
    plan
}

#[test]
fn the_comment_shows_costs_placements_policies_drift_and_the_commit() {
    let md = render(&reviewed(), Format::Markdown, false);
    // The parts a reviewer reads first, as the issue words them.
    assert!(md.starts_with("### kiln plan: 5 to add, 0 to change, 1 to destroy\n"), "{md}");
    assert!(md.contains("**Cost:** $31.92/h → $57.10/h + 1 unknown (+$25.18/h)"), "{md}");
    assert!(md.contains("- `cluster.gpu_box`: provider `onprem` sets no hourly_price"), "unknowns are named: {md}");
    assert!(md.contains("| create | `cluster.gpu_box` | cluster | onprem | - → unknown |"), "never $0: {md}");
    insta::assert_snapshot!("reviewed_plan", md);
}

#[test]
fn a_decision_that_moves_data_shows_the_egress_column_never_zero_for_unknown() {
    let mut plan = reviewed();
    let p = &mut plan.placements[0];
    p.chosen.egress_usd = Some(d("0"));
    p.alternatives[0].offering.egress_usd = Some(d("16"));
    let md = render(&plan, Format::Markdown, false);
    assert!(md.contains("| $/h | Egress | |"), "{md}");
    assert!(md.contains(" | $0.00 | **chosen** |"), "{md}");
    assert!(md.contains(" | $16.00 | "), "{md}");
    assert!(md.contains(" | unknown | fallback"), "a fallback without a known egress: {md}");
    let plain = render(&reviewed(), Format::Markdown, false);
    assert!(!plain.contains("Egress"), "no column when no data moves: {plain}");
}

#[test]
fn the_json_view_carries_the_commit_and_conforms() {
    let plan = reviewed();
    let v = plan.json();
    assert_eq!(v["git_commit"], json!("0123456789abcdef0123456789abcdef01234567-dirty"));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/json/plan-view.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let errors: Vec<String> = jsonschema::validator_for(&schema).unwrap().iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(empty().json().get("git_commit").is_none(), "absent outside git");
}

#[test]
fn a_20000_change_plan_fits_a_comment_keeping_summary_cost_and_policies_whole() {
    let n = 20_000;
    let mut plan = reviewed();
    plan.changes = (0..n)
        .map(|i| {
            change(
                &format!("module.fleet.cluster.worker[{i}]"),
                "aws",
                Action::Create,
                Some(ChangeCost { before: None, after: hourly("2.50") }),
            )
        })
        .collect();
    plan.cost = Some(PlanCost { before: Total::default(), after: Total { usd: d("50000"), unknown: vec![] } });
    let placement = plan.placements[0].clone();
    plan.placements = (0..n)
        .step_by(4)
        .map(|i| Placement { address: format!("module.fleet.cluster.worker[{i}]").parse().unwrap(), ..placement.clone() })
        .collect();
    plan.drift = (0..n).map(|i| Drift { address: format!("bucket.b[{i}]").parse().unwrap(), ..plan.drift[0].clone() }).collect();
    let violations: Vec<Violation> = (0..40)
        .map(|i| Violation {
            address: Some(format!("module.fleet.cluster.worker[{i}]")),
            message: format!("`module.fleet.cluster.worker[{i}]` uses region `eu-west-1`, which is not allowed"),
        })
        .collect();
    plan.policies[1].violations = violations;

    let md = plan.markdown();
    assert!(md.chars().count() < 65_536, "{} characters", md.chars().count());
    assert!(md.encode_utf16().count() < 65_536);
    assert!(md.starts_with(&format!("### kiln plan: {n} to add, 0 to change, 0 to destroy\n")), "{}", &md[..200]);
    assert!(md.contains("Plan made from commit `0123456789abcdef0123456789abcdef01234567-dirty`."));
    assert!(md.contains("**Cost:** $0.00/h → $50000.00/h (+$50000.00/h)"));
    // The policies whole: every violation listed.
    assert!(md.contains("**Policies:** ❌ 2 of 2 failed"));
    for i in 0..40 {
        assert!(md.contains(&format!("  - `module.fleet.cluster.worker[{i}]` uses region")), "violation {i} missing");
    }
    // The long sections shortened by whole rows, saying how many were left out.
    let rows = md.lines().filter(|l| l.starts_with("| create | `module.fleet.cluster.worker[")).count();
    assert!(rows > 100 && rows < n, "{rows} change rows");
    assert!(md.contains(&format!("\n… and {} more changes\n", n - rows)), "the count of rows left out");
    assert!(md.contains("more placement decisions\n") && md.contains("more objects changed outside of kiln\n"));
    assert!(md.contains("The full plan is in the saved plan (the CI job's artifact): `kiln show PLANFILE`."));
    // A table is never cut inside a row.
    assert!(md.lines().filter(|l| l.starts_with('|')).all(|l| l.ends_with('|')));

    // The same plan, small, is shown whole.
    let mut small = plan.clone();
    small.changes.truncate(10);
    small.placements.truncate(2);
    small.drift.truncate(3);
    let md = small.markdown();
    assert!(!md.contains("more changes") && !md.contains("too long"), "{md}");
}
