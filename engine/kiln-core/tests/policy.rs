//! Policies checked at the end of planning (issue 14): each kind of check against the mock
//! provider, unknown values (never a silent pass, never a $0 price), and errors in a policy's
//! own expressions at their spans.

// Not every helper of the mock is used here.
#[allow(dead_code)]
mod mock;

use std::collections::BTreeMap;

use kiln_core::{evaluate_policies, policy_diagnostics, PolicyInputs, Providers};
use kiln_diag::Diagnostics;
use kiln_plan::{ChangeCost, Cost, Mode, PlacedOffering, Placement, Plan, PolicyResult, Total};
use kiln_state::State;
use kiln_value::Decimal;
use mock::Fixture;

/// Two things on the mock, and whatever else `extra` declares.
fn things(extra: &str) -> String {
    format!(
        "provider \"mock\" {{}}\nresource \"thing\" \"a\" {{\n  provider = mock\n  name = \"a\"\n  size = 1\n}}\nresource \"thing\" \"b\" {{\n  provider = mock\n  name = \"b\"\n  size = 20\n}}\n{extra}"
    )
}

fn usd(n: i64) -> Decimal {
    Decimal::from(n)
}

/// Sets each change's hourly cost after apply by address (`None`: unknown), as the cost pass
/// would, and drops the plan's own total so the policy sums the changes.
fn priced(mut plan: Plan, costs: &[(&str, Option<i64>)]) -> Plan {
    plan.cost = None;
    for c in &mut plan.changes {
        let after = match costs.iter().find(|(a, _)| *a == c.address.to_string()) {
            Some((_, Some(n))) => Cost::Hourly { usd: usd(*n) },
            Some((_, None)) => Cost::Unknown { reason: "no catalog row".into() },
            None => Cost::None,
        };
        c.cost = Some(ChangeCost { before: None, after: Some(after) });
    }
    plan
}

fn result<'a>(results: &'a [PolicyResult], name: &str) -> &'a PolicyResult {
    results.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no policy {name}: {results:?}"))
}

fn messages(r: &PolicyResult) -> Vec<(Option<String>, String)> {
    r.violations.iter().map(|v| (v.address.clone(), v.message.clone())).collect()
}

fn codes(d: &Diagnostics) -> Vec<&str> {
    d.iter().map(|d| d.code).collect()
}

/// `file:line:col` of a diagnostic's primary label, file name only.
fn at(f: &Fixture, d: &kiln_diag::Diagnostic) -> String {
    let config = f.config();
    let l = d.primary.as_ref().unwrap_or_else(|| panic!("{d:?} has a location"));
    let loc = config.sources.location(l.span.file, l.span.range.start);
    loc.rsplit('/').next().unwrap().to_string()
}

#[tokio::test]
async fn a_plan_within_every_policy_records_each_as_passed() {
    let f = Fixture::new(&things("policy \"providers\" {\n  allowed_providers = [\"mock\"]\n}\npolicy \"sizes\" {\n  rule {\n    condition = change.kind != \"thing\" || change.after.size <= 20\n    message = \"too big\"\n  }\n}\n"));
    let (plan, d) = f.plan_mode(&State::default(), Mode::Normal).await;
    assert!(!d.has_errors(), "{d:?}");
    let plan = plan.unwrap();
    assert_eq!(plan.policies.iter().map(|r| (r.name.as_str(), r.passed())).collect::<Vec<_>>(), [("providers", true), ("sizes", true)]);
    assert!(plan.policies[0].location.ends_with("main.kiln.hcl:12:1"), "{}", plan.policies[0].location);
    let f = Fixture::new(&things(""));
    assert!(f.plan(&State::default()).await.policies.is_empty(), "no policy, no results");
}

#[tokio::test]
async fn max_hourly_cost_fails_when_the_total_after_apply_exceeds_it_naming_the_dearest() {
    let f = Fixture::new(&things("policy \"budget\" {\n  max_hourly_cost = 40\n}\n"));
    let config = f.config();
    let plan = priced(f.plan(&State::default()).await, &[("thing.a", Some(30)), ("thing.b", Some(15))]);
    let (results, d) = evaluate_policies(&config, &plan, &PolicyInputs::default());
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(
        messages(result(&results, "budget")),
        [(
            None,
            "the plan's hourly cost after apply is $45.00/h, over max_hourly_cost $40.00/h (dearest: thing.a $30.00/h, thing.b $15.00/h)"
                .to_string()
        )]
    );
    let plan = priced(plan, &[("thing.a", Some(30)), ("thing.b", Some(10))]);
    let (results, d) = evaluate_policies(&config, &plan, &PolicyInputs::default());
    assert!(result(&results, "budget").passed() && d.is_empty(), "{results:?} {d:?}");
}

#[tokio::test]
async fn the_plans_own_total_is_what_a_budget_counts_when_the_cost_pass_made_one() {
    let f = Fixture::new(&things("policy \"budget\" {\n  max_hourly_cost = 40\n}\n"));
    let mut plan = priced(f.plan(&State::default()).await, &[("thing.a", Some(1))]);
    plan.cost = Some(kiln_plan::PlanCost { before: Total::default(), after: Total { usd: usd(41), unknown: Vec::new() } });
    let (results, _) = evaluate_policies(&f.config(), &plan, &PolicyInputs::default());
    assert!(messages(result(&results, "budget"))[0].1.starts_with("the plan's hourly cost after apply is $41.00/h"), "{results:?}");
}

#[tokio::test]
async fn an_unknown_cost_is_never_zero_a_warning_within_budget_a_violation_when_the_known_part_exceeds_it() {
    let f = Fixture::new(&things("policy \"budget\" {\n  max_hourly_cost = 40\n}\n"));
    let config = f.config();
    let plan = priced(f.plan(&State::default()).await, &[("thing.a", Some(30)), ("thing.b", None)]);
    let (results, d) = evaluate_policies(&config, &plan, &PolicyInputs::default());
    assert!(result(&results, "budget").passed(), "{results:?}");
    assert_eq!(codes(&d), ["W-POLICY-COST-UNKNOWN"]);
    assert!(
        d.iter().next().unwrap().summary.contains("$30.00/h, is within max_hourly_cost $40.00/h, but the cost of `thing.b` is unknown"),
        "{d:?}"
    );
    assert_eq!(at(&f, d.iter().next().unwrap()), "main.kiln.hcl:13:21", "at the budget's value");
    let plan = priced(plan, &[("thing.a", Some(50)), ("thing.b", None)]);
    let (results, _) = evaluate_policies(&config, &plan, &PolicyInputs::default());
    let m = messages(result(&results, "budget"));
    assert!(m[0].1.contains("is at least $50.00/h, over max_hourly_cost $40.00/h"), "{m:?}");
    assert!(m[0].1.ends_with("the cost of `thing.b` is unknown"), "{m:?}");
    // A change the cost pass did not price at all is unknown too.
    let mut plan = plan;
    plan.changes.iter_mut().for_each(|c| c.cost = None);
    let (_, d) = evaluate_policies(&config, &plan, &PolicyInputs::default());
    assert!(d.iter().next().unwrap().summary.contains("the cost of `thing.a` and `thing.b` is unknown"), "{d:?}");
}

#[tokio::test]
async fn a_budget_from_a_variable_and_a_setting_of_the_wrong_type_at_its_span() {
    let f = Fixture::new(&things("variable \"budget\" {\n  default = 10\n}\npolicy \"budget\" {\n  max_hourly_cost = var.budget\n}\n"));
    let plan = priced(f.plan(&State::default()).await, &[("thing.a", Some(11))]);
    let (results, _) = evaluate_policies(&f.config(), &plan, &PolicyInputs::default());
    assert!(messages(result(&results, "budget"))[0].1.contains("over max_hourly_cost $10.00/h"), "{results:?}");
    f.rewrite(&things("variable \"budget\" {\n  default = \"lots\"\n}\npolicy \"budget\" {\n  max_hourly_cost = var.budget\n}\n"));
    let (plan, d) = f.plan_mode(&State::default(), Mode::Normal).await;
    assert!(plan.is_none(), "an error in a policy makes no plan");
    let e = d.iter().find(|e| e.code == "E-POLICY-TYPE").unwrap_or_else(|| panic!("{d:?}"));
    assert_eq!(e.summary, "policy `budget`: `max_hourly_cost` must be a number of at least 0, got a string");
    assert_eq!(at(&f, e), "main.kiln.hcl:16:21");
}

#[tokio::test]
async fn allowed_providers_names_each_object_on_another_provider_by_name_or_key() {
    let src = "provider \"mock\" {}\nprovider \"mock\" {\n  alias = \"west\"\n}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n}\nresource \"thing\" \"w\" {\n  provider = mock.west\n  name = \"w\"\n}\n";
    let f = Fixture::new(&format!(
        "{src}policy \"p\" {{\n  allowed_providers = [\"mock.west\"]\n}}\npolicy \"q\" {{\n  allowed_providers = [\"mock\"]\n}}\n"
    ));
    let plan = f.plan(&State::default()).await;
    assert_eq!(
        messages(result(&plan.policies, "p")),
        [(Some("thing.a".into()), "`thing.a` uses provider `mock`, which is not allowed (allowed: mock.west)".into())]
    );
    assert!(result(&plan.policies, "q").passed(), "the provider's name allows its aliases");
    // Objects the plan deletes are leaving: they break no provider rule.
    let state = f.converge(&State::default()).await;
    f.rewrite(
        "provider \"mock\" {}\nprovider \"mock\" {\n  alias = \"west\"\n}\npolicy \"p\" {\n  allowed_providers = [\"mock.west\"]\n}\n",
    );
    let plan = f.plan(&state).await;
    assert!(plan.policies[0].passed(), "{:?}", plan.policies);
}

#[tokio::test]
async fn allowed_regions_reads_the_objects_region_then_its_providers_and_warns_when_unknown() {
    let src = "provider \"mock\" {\n  region = \"eu-west-1\"\n}\nprovider \"mock\" {\n  alias = \"other\"\n}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n}\nresource \"cluster\" \"c\" {\n  provider = mock\n  name = \"c\"\n  region = \"us-east-1\"\n}\nresource \"thing\" \"o\" {\n  provider = mock.other\n  name = \"o\"\n}\npolicy \"regions\" {\n  allowed_regions = [\"us-east-1\"]\n}\n";
    let f = Fixture::new(src);
    let (plan, d) = f.plan_mode(&State::default(), Mode::Normal).await;
    let plan = plan.unwrap();
    assert_eq!(
        messages(result(&plan.policies, "regions")),
        [(Some("thing.a".into()), "`thing.a` is in region `eu-west-1`, which is not allowed (allowed: us-east-1)".into())],
        "the cluster's own region is allowed"
    );
    let w = d.iter().find(|e| e.code == "W-POLICY-REGION-UNKNOWN").unwrap_or_else(|| panic!("{d:?}"));
    assert!(w.summary.contains("`thing.o (provider `mock.other` sets no region; it comes from the environment)`"), "{}", w.summary);
    assert!(!d.has_errors(), "{d:?}");
}

#[tokio::test]
async fn a_placements_region_counts_for_an_object_without_its_own() {
    let f = Fixture::new(&things("policy \"regions\" {\n  allowed_regions = [\"us-east-1\"]\n}\n"));
    let mut plan = f.plan(&State::default()).await;
    let offering = |region: &str| PlacedOffering {
        provider: "mock".into(),
        cloud: "aws".into(),
        instance_type: "p5.48xlarge".into(),
        region: Some(region.into()),
        zone: None,
        spot: false,
        accelerators: Some("H100:8".into()),
        vcpus: 192,
        memory_gib: usd(2048),
        price_hourly: usd(98),
        nodes: 1,
        egress_usd: None,
    };
    plan.placements = vec![Placement {
        address: "thing.b".parse().unwrap(),
        request: "accelerators = \"H100:8\"".into(),
        chosen: offering("ap-south-1"),
        fallbacks: Vec::new(),
        alternatives: Vec::new(),
        notes: Vec::new(),
        kept: false,
        moved_from: None,
        request_digest: String::new(),
    }];
    let (results, _) = evaluate_policies(&f.config(), &plan, &PolicyInputs::default());
    assert_eq!(
        messages(result(&results, "regions")),
        [(Some("thing.b".into()), "`thing.b` is in region `ap-south-1`, which is not allowed (allowed: us-east-1)".into())]
    );
}

fn cluster(name: &str, body: &str) -> String {
    format!("resource \"cluster\" \"{name}\" {{\n  provider = mock\n  name = \"{name}\"\n{body}}}\n")
}

#[tokio::test]
async fn spot_above_gpus_counts_nodes_times_gpus_and_requires_spot_above_it() {
    let src = [
        "provider \"mock\" {}\npolicy \"spot\" {\n  spot_above_gpus = 8\n}\n".to_string(),
        cluster("big", "  nodes = 2\n  accelerators = \"H100:8\"\n  spot = false\n"),
        cluster("auto", "  nodes = 2\n  accelerators = [\"A100:4\", \"H100:8\"]\n  spot = \"auto\"\n"),
        cluster("spot", "  nodes = 4\n  accelerators = \"H100:8\"\n  spot = true\n"),
        cluster("small", "  accelerators = \"H100:8\"\n"),
        cluster("cpu", "  nodes = 64\n"),
        "resource \"spot_pool\" \"pool\" {\n  provider = mock\n  name = \"pool\"\n  capacity = 4\n  accelerators = \"A10:4\"\n  on_demand_base = 1\n}\n".to_string(),
        "resource \"spot_pool\" \"pure\" {\n  provider = mock\n  name = \"pure\"\n  capacity = 4\n  accelerators = \"A10:4\"\n}\n".to_string(),
    ]
    .concat();
    let f = Fixture::new(&src);
    let plan = f.plan(&State::default()).await;
    assert_eq!(
        messages(result(&plan.policies, "spot")),
        [
            (Some("cluster.auto".into()), "`cluster.auto` has 16 GPUs in total, more than spot_above_gpus 8, and spot = \"auto\" falls back to on-demand: it must use spot".into()),
            (Some("cluster.big".into()), "`cluster.big` has 16 GPUs in total, more than spot_above_gpus 8, and it does not set spot = true: it must use spot".into()),
            (Some("spot_pool.pool".into()), "`spot_pool.pool` has 16 GPUs in total, more than spot_above_gpus 8, and on_demand_base is 1: it must use spot".into()),
        ]
    );
}

#[tokio::test]
async fn spot_above_gpus_warns_when_the_count_is_unknown_and_follows_the_placement() {
    let src = format!(
        "provider \"mock\" {{}}\nresource \"thing\" \"n\" {{\n  provider = mock\n  name = \"n\"\n}}\n{}policy \"spot\" {{\n  spot_above_gpus = 0\n}}\n",
        cluster("c", "  nodes = length(thing.n.id)\n  accelerators = \"H100:1\"\n  spot = true\n")
    );
    let f = Fixture::new(&src);
    let (plan, d) = f.plan_mode(&State::default(), Mode::Normal).await;
    assert!(plan.unwrap().policies[0].passed());
    let w = d.iter().find(|e| e.code == "W-POLICY-SPOT-UNKNOWN").unwrap_or_else(|| panic!("{d:?}"));
    assert!(w.summary.contains("`cluster.c (its GPU count)` known only after apply"), "{}", w.summary);
}

#[tokio::test]
async fn protect_nonempty_buckets_refuses_deleting_or_replacing_a_bucket_that_holds_objects_or_may() {
    let bucket =
        |name: &str, objects: &str| format!("resource \"bucket\" \"{name}\" {{\n  provider = mock\n  name = \"{name}\"\n{objects}}}\n");
    let all = [
        "provider \"mock\" {}\n".to_string(),
        bucket("full", "  objects = [\"a.txt\", \"b.txt\"]\n"),
        bucket("empty", "  objects = []\n"),
        bucket("blind", ""),
        bucket("renamed", "  objects = [\"c.txt\"]\n"),
    ]
    .concat();
    let f = Fixture::new(&all);
    let state = f.converge(&State::default()).await;
    // Everything but `renamed` goes; `renamed` gets a new name, which replaces it.
    f.rewrite(&format!(
        "provider \"mock\" {{}}\n{}policy \"keep\" {{\n  protect_nonempty_buckets = true\n}}\n",
        "resource \"bucket\" \"renamed\" {\n  provider = mock\n  name = \"renamed-2\"\n  objects = [\"c.txt\"]\n}\n"
    ));
    f.reset();
    let plan = f.plan(&state).await;
    assert_eq!(
        messages(result(&plan.policies, "keep")),
        [
            (Some("bucket.blind".into()), "`bucket.blind` would be deleted, but kiln cannot tell whether it holds objects (the mock cannot tell), so it is treated as holding some".into()),
            (Some("bucket.full".into()), "`bucket.full` would be deleted, but it holds objects (a.txt, b.txt)".into()),
            (Some("bucket.renamed".into()), "`bucket.renamed` would be replaced, but it holds objects (c.txt)".into()),
        ]
    );
    let looked: Vec<String> = f.mock.calls().into_iter().filter(|c| c.starts_with("contents")).collect();
    assert_eq!(looked.len(), 4, "one read per bucket the plan destroys: {looked:?}");
    // Without the policy, nothing is read.
    f.rewrite("provider \"mock\" {}\n");
    f.reset();
    f.plan(&state).await;
    assert!(!f.mock.calls().iter().any(|c| c.starts_with("contents")), "{:?}", f.mock.calls());
}

#[tokio::test]
async fn a_rule_sees_each_change_and_the_plan_and_a_false_condition_names_the_change() {
    let rules = "policy \"rules\" {\n  rule {\n    condition = change.action == \"delete\" ? true : change.after.size < 10\n    message = \"${change.address} is too big (${change.action} on ${change.provider})\"\n  }\n  rule {\n    condition = change.action != \"delete\"\n    message = \"nothing may be destroyed\"\n  }\n}\n";
    let f = Fixture::new(&things(rules));
    let plan = f.plan(&State::default()).await;
    assert_eq!(messages(&plan.policies[0]), [(Some("thing.b".into()), "thing.b is too big (create on mock)".into())]);
    let state = f.converge(&State::default()).await;
    f.rewrite(&format!("provider \"mock\" {{}}\n{rules}"));
    let plan = f.plan(&state).await;
    let m = messages(&plan.policies[0]);
    assert!(
        m.contains(&(Some("thing.a".into()), "nothing may be destroyed".into()))
            && m.contains(&(Some("thing.b".into()), "nothing may be destroyed".into())),
        "{m:?}"
    );
    assert!(!m.iter().any(|(_, t)| t.contains("too big")), "a delete has no after, which the first rule allows for: {m:?}");
}

#[tokio::test]
async fn a_rule_over_costs_sees_null_for_an_unknown_change_cost_and_the_plans_total() {
    let src = things("policy \"costs\" {\n  rule {\n    condition = change.cost_hourly == null ? false : change.cost_hourly < 20\n    message = \"${change.address}: cost unknown or too high\"\n  }\n  rule {\n    condition = plan.cost_hourly <= 40\n    message = \"the plan costs more than $40/h\"\n  }\n}\n");
    let f = Fixture::new(&src);
    let config = f.config();
    let plan = priced(f.plan(&State::default()).await, &[("thing.a", Some(25)), ("thing.b", None)]);
    let (results, d) = evaluate_policies(&config, &plan, &PolicyInputs::default());
    assert_eq!(
        messages(result(&results, "costs")),
        [
            (Some("thing.a".into()), "thing.a: cost unknown or too high".into()),
            (Some("thing.b".into()), "thing.b: cost unknown or too high".into())
        ]
    );
    // plan.cost_hourly is unknown while part of the total is: a warning for each change, no violation.
    let w = d.iter().find(|e| e.code == "W-POLICY-UNKNOWN").unwrap_or_else(|| panic!("{d:?}"));
    assert!(w.summary.contains("known only after apply for `thing.a` and `thing.b`"), "{}", w.summary);
    assert_eq!(at(&f, w), "main.kiln.hcl:18:17", "at the condition");
    let plan = priced(plan, &[("thing.a", Some(25)), ("thing.b", Some(16))]);
    let (results, d) = evaluate_policies(&config, &plan, &PolicyInputs::default());
    let m = messages(result(&results, "costs"));
    assert_eq!(m.iter().filter(|(_, t)| t == "the plan costs more than $40/h").count(), 2, "{m:?}");
    assert!(d.is_empty(), "{d:?}");
}

#[tokio::test]
async fn a_rule_over_values_known_only_after_apply_warns_instead_of_passing_silently() {
    let f = Fixture::new(&things(
        "policy \"ids\" {\n  rule {\n    condition = change.after.id != \"forbidden\"\n    message = \"no\"\n  }\n}\n",
    ));
    let (plan, d) = f.plan_mode(&State::default(), Mode::Normal).await;
    assert!(plan.unwrap().policies[0].passed());
    assert_eq!(codes(&d), ["W-POLICY-UNKNOWN"]);
}

/// A created object whose attributes are partly known after apply is still not null: a rule
/// that tells deletes by `change.after == null` is known at plan time (as in Terraform).
#[tokio::test]
async fn an_object_with_unknown_parts_is_known_not_to_be_null() {
    let f = Fixture::new(&things(
        "policy \"no_deletes\" {\n  rule {\n    condition = change.after != null\n    message = \"${change.address} would be destroyed\"\n  }\n}\n",
    ));
    let (plan, d) = f.plan_mode(&State::default(), Mode::Normal).await;
    assert!(plan.unwrap().policies[0].passed());
    assert!(d.is_empty(), "no warning: the condition is known: {d:?}");
}

#[tokio::test]
async fn errors_in_a_rule_are_errors_at_the_condition_and_make_no_plan() {
    let f = Fixture::new(&things("policy \"bad\" {\n  rule {\n    condition = change.after.nope == 1\n    message = \"m\"\n  }\n}\n"));
    let (plan, d) = f.plan_mode(&State::default(), Mode::Normal).await;
    assert!(plan.is_none() && d.has_errors(), "{d:?}");
    let e = d.errors().next().unwrap();
    assert!(at(&f, e).starts_with("main.kiln.hcl:14:"), "{e:?}");
    assert_eq!(e.address.as_deref(), Some("thing.a"), "the change it was evaluated for");
    assert_eq!(d.errors().count(), 1, "one error per rule, not one per change: {d:?}");

    f.rewrite(&things("policy \"bad\" {\n  rule {\n    condition = change.address\n    message = \"m\"\n  }\n}\n"));
    let (plan, d) = f.plan_mode(&State::default(), Mode::Normal).await;
    assert!(plan.is_none());
    let e = d.iter().find(|e| e.code == "E-POLICY-RULE").unwrap_or_else(|| panic!("{d:?}"));
    assert_eq!(e.summary, "policy `bad`: a rule's condition must be true or false, got a string for `thing.a`");
    assert_eq!(at(&f, e), "main.kiln.hcl:14:17");

    f.rewrite(&things("policy \"bad\" {\n  max_hourly_cost = change.cost_hourly\n}\n"));
    let (plan, d) = f.plan_mode(&State::default(), Mode::Normal).await;
    assert!(plan.is_none());
    let e = d.iter().find(|e| e.code == "E-POLICY-REF").unwrap_or_else(|| panic!("{d:?}"));
    assert!(e.summary.contains("`change` is only available in a rule"), "{}", e.summary);
    assert_eq!(at(&f, e), "main.kiln.hcl:13:21");
}

#[tokio::test]
async fn a_rules_message_never_quotes_a_secret() {
    let f = Fixture::new(&things(
        "resource \"thing\" \"s\" {\n  provider = mock\n  name = \"s\"\n  secret = \"hunter2-very-secret\"\n}\npolicy \"p\" {\n  rule {\n    condition = change.kind != \"thing\" || change.after.secret == null\n    message = \"${change.address} holds ${change.after.secret}\"\n  }\n}\n",
    ));
    let plan = f.plan(&State::default()).await;
    let m = messages(&plan.policies[0]);
    assert_eq!(m, [(Some("thing.s".into()), "(sensitive value)".into())]);
}

#[tokio::test]
async fn violations_become_e_policy_errors_at_the_policy_block() {
    let f = Fixture::new(&things("policy \"providers\" {\n  description = \"only AWS\"\n  allowed_providers = [\"aws\"]\n}\n"));
    let config = f.config();
    let plan = f.plan(&State::default()).await;
    let d = policy_diagnostics(&config, &plan.policies);
    assert_eq!(codes(&d), ["E-POLICY", "E-POLICY"]);
    let e = d.iter().next().unwrap();
    assert_eq!(e.summary, "policy `providers`: `thing.a` uses provider `mock`, which is not allowed (allowed: aws)");
    assert_eq!(e.address.as_deref(), Some("thing.a"));
    assert_eq!(at(&f, e), "main.kiln.hcl:12:1");
    assert!(e.hint.as_deref().unwrap().starts_with("only AWS: "), "{e:?}");
}

#[tokio::test]
async fn the_commands_providers_read_bucket_contents_once_configured() {
    // The read goes through the providers the plan configured: no second configure.
    let f = Fixture::new("provider \"mock\" {}\nresource \"bucket\" \"b\" {\n  provider = mock\n  name = \"b\"\n  objects = [\"x\"]\n}\n");
    let state = f.converge(&State::default()).await;
    f.rewrite("provider \"mock\" {}\npolicy \"keep\" {\n  protect_nonempty_buckets = true\n}\n");
    f.reset();
    let providers = Providers::new();
    let (plan, _) = f.try_plan(&state, Mode::Normal, BTreeMap::new(), &providers).await;
    assert!(!plan.unwrap().policies[0].passed());
    assert_eq!(f.configures(), 1);
}
