//! `spot_pool`: conformance, the EC2 Fleet and launch template as EC2 holds them, in-place
//! capacity changes, on-demand fallback after a spot interruption, recovery and deletion.

use kiln_provider::conformance::{self, Case};
use kiln_provider::{CreateRequest, Provider, RecoverRequest};
use kiln_value::Value;
use serde_json::json as j;

use crate::common::moto::{exclusive, server};
use crate::common::*;

fn num(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_number).and_then(|n| i64::try_from(n).ok()).unwrap_or_else(|| panic!("`{k}` is not a number in {v}"))
}

#[tokio::test]
async fn conformance_suite() {
    let _g = exclusive().await;
    let p = provider().await;
    let case = Case {
        kind: "spot_pool",
        config: json(j!({ "instance_types": ["g5.xlarge", "g6.xlarge"], "capacity": 2 })),
        update: Some(json(j!({ "instance_types": ["g5.xlarge", "g6.xlarge"], "capacity": 3 }))),
        import_id: None,
    };
    conformance::run(&p, &[case]).await;
}

#[tokio::test]
async fn a_pool_is_a_maintain_fleet_over_types_and_subnets() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "spot_pool", j!({ "accelerators": "A10G:1", "capacity": 3, "on_demand_base": 1, "max_price": 2.5 }));
    let plan = planned(&p, "spot_pool.gpu", &cfg, None).await;
    let types = strs(&plan, "instance_types");
    assert_eq!(types[0], "g5.xlarge", "smallest A10G:1 type first: {types:?}");
    assert_eq!(num(&plan, "gpus_per_node"), 1, "every A10G:1 type has one GPU");
    let subnets = strs(&plan, "subnet_ids");
    assert!(!subnets.is_empty());
    let state = create_with_token(&p, "spot_pool.gpu", &cfg, "tok-pool").await;
    assert_eq!(strs(&state, "instance_ids").len(), 3);
    assert_eq!((num(&state, "spot_instances"), num(&state, "on_demand_instances")), (2, 1));
    assert_eq!(str_of(&state, "state"), "active");

    let ec2 = aws().await.ec2;
    let fleets = ec2.describe_fleets().fleet_ids(str_of(&state, "fleet_id")).send().await.unwrap();
    let f = &fleets.fleets()[0];
    assert_eq!(f.r#type().map(|t| t.as_str()), Some("maintain"));
    let t = f.target_capacity_specification().unwrap();
    assert_eq!((t.total_target_capacity(), t.on_demand_target_capacity()), (Some(3), Some(1)));
    assert_eq!(t.default_target_capacity_type().map(|d| d.as_str()), Some("spot"));
    assert_eq!(f.spot_options().and_then(|s| s.allocation_strategy()).map(|a| a.as_str()), Some("price-capacity-optimized"));
    let overrides: Vec<_> = f.launch_template_configs().iter().flat_map(|c| c.overrides()).collect();
    assert_eq!(overrides.len(), types.len() * subnets.len(), "every type in every subnet");
    assert!(overrides.iter().all(|o| o.max_price() == Some("2.5")));
    assert!(f.tags().iter().any(|t| t.key() == Some("kiln:token") && t.value() == Some("tok-pool")));
    let lts = ec2.describe_launch_templates().launch_template_ids(str_of(&state, "launch_template_id")).send().await.unwrap();
    assert_eq!(lts.launch_templates().len(), 1);

    let replan = planned(&p, "spot_pool.gpu", &cfg, Some(&state)).await;
    assert!(changed(&state, &replan).is_empty(), "{:?}", changed(&state, &replan));
    let again = read(&p, "spot_pool.gpu", &state).await.expect("exists");
    assert!(again.unmarked_eq(&state), "read matches create:\n{again}\n{state}");

    assert!(!delete(&p, "spot_pool.gpu", &state).await.has_errors());
    assert!(read(&p, "spot_pool.gpu", &state).await.is_none());
    let lts = ec2.describe_launch_templates().send().await.unwrap();
    assert!(lts.launch_templates().is_empty(), "launch template deleted");
    let sgs = ec2.describe_security_groups().group_ids(&strs(&state, "security_group_ids")[0]).send().await;
    assert!(sgs.map(|o| o.security_groups().is_empty()).unwrap_or(true), "security group deleted");
}

#[tokio::test]
async fn capacity_changes_in_place() {
    let _g = exclusive().await;
    let p = provider().await;
    let two = config(&p, "spot_pool", j!({ "instance_types": ["t3.micro"], "capacity": 2 }));
    let state = create(&p, "spot_pool.p", &two).await;
    let five = config(&p, "spot_pool", j!({ "instance_types": ["t3.micro"], "capacity": 5 }));
    let plan = planned(&p, "spot_pool.p", &five, Some(&state)).await;
    let schema = p.schema();
    let attrs = &schema.kinds["spot_pool"].body.attributes;
    let c = changed(&state, &plan);
    assert!(c.contains(&"capacity".to_string()));
    assert!(c.iter().all(|k| !attrs[k].force_new), "no replacement: {c:?}");
    let grown = update(&p, "spot_pool.p", &state, &five).await;
    assert_eq!(strs(&grown, "instance_ids").len(), 5);
    assert_eq!(str_of(&grown, "fleet_id"), str_of(&state, "fleet_id"), "same fleet");
    let shrunk = update(&p, "spot_pool.p", &grown, &two).await;
    assert_eq!(strs(&shrunk, "instance_ids").len(), 2);
}

#[tokio::test]
async fn on_demand_fallback_fills_what_spot_lost() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "spot_pool", j!({ "instance_types": ["g5.xlarge"], "capacity": 2, "on_demand_fallback": true }));
    let state = create(&p, "spot_pool.f", &cfg).await;
    assert_eq!(num(&state, "spot_instances"), 2);
    server().spot_interrupt(&strs(&state, "instance_ids")[0]);
    let now = read(&p, "spot_pool.f", &state).await.expect("pool exists");
    assert_eq!(str_of(&now, "state"), "filling");
    assert_eq!(strs(&now, "instance_ids").len(), 1);
    let plan = planned(&p, "spot_pool.f", &cfg, Some(&now)).await;
    assert_eq!(num(&plan, "on_demand_target"), 1, "the shortfall goes on-demand");
    let healed = update(&p, "spot_pool.f", &now, &cfg).await;
    assert_eq!(strs(&healed, "instance_ids").len(), 2);
    assert_eq!((num(&healed, "spot_instances"), num(&healed, "on_demand_instances")), (1, 1));
}

/// One vocabulary with clusters and placement: `spot = false` is every instance on-demand
/// (`on_demand_base` = `capacity`), `spot = "auto"` spot with the on-demand fallback, `true` (or
/// nothing, as every existing state) the pool as it was.
#[tokio::test]
async fn spot_false_or_auto_say_what_on_demand_base_and_fallback_say() {
    let _g = exclusive().await;
    let p = provider().await;
    let on_demand = config(&p, "spot_pool", j!({ "instance_types": ["t3.micro"], "capacity": 2, "spot": false }));
    let od_plan = planned(&p, "spot_pool.od", &on_demand, None).await;
    assert_eq!((num(&od_plan, "on_demand_base"), num(&od_plan, "on_demand_target")), (2, 2), "{od_plan}");
    let state = create(&p, "spot_pool.od", &on_demand).await;
    assert_eq!((num(&state, "spot_instances"), num(&state, "on_demand_instances")), (0, 2));
    let replan = planned(&p, "spot_pool.od", &on_demand, Some(&state)).await;
    assert!(changed(&state, &replan).is_empty(), "{:?}", changed(&state, &replan));
    assert!(!delete(&p, "spot_pool.od", &state).await.has_errors());

    let auto = config(&p, "spot_pool", j!({ "instance_types": ["t3.micro"], "capacity": 2, "spot": "auto" }));
    let auto_plan = planned(&p, "spot_pool.auto", &auto, None).await;
    assert_eq!(auto_plan.get("on_demand_fallback"), Some(&Value::Bool(true)), "{auto_plan}");
    assert_eq!(num(&auto_plan, "on_demand_base"), 0);

    let wrong = config(&p, "spot_pool", j!({ "instance_types": ["t3.micro"], "capacity": 2, "spot": "sometimes" }));
    let r = plan(&p, "spot_pool.w", &wrong, None).await;
    let e = r.diagnostics.errors().next().unwrap_or_else(|| panic!("{:?}", r.diagnostics));
    assert!(e.summary.contains("`spot` must be true, false or \"auto\""), "{}", e.summary);
}

#[tokio::test]
async fn recover_adopts_the_fleet_of_its_token() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "spot_pool", j!({ "instance_types": ["t3.micro"], "capacity": 2 }));
    let plan = planned(&p, "spot_pool.r", &cfg, None).await;
    let made = p
        .create(CreateRequest { address: "spot_pool.r", kind: "spot_pool", planned: &plan, token: "tok-fleet" })
        .await
        .state
        .expect("made");
    let found = p.recover(RecoverRequest { address: "spot_pool.r", kind: "spot_pool", token: "tok-fleet", planned: &plan }).await;
    let found = found.state.expect("adopted");
    assert_eq!(str_of(&found, "fleet_id"), str_of(&made, "fleet_id"));
    assert_eq!(strs(&found, "instance_ids"), strs(&made, "instance_ids"));
    let next = planned(&p, "spot_pool.r", &cfg, Some(&found)).await;
    assert!(changed(&found, &next).is_empty(), "{:?}", changed(&found, &next));
    let none = p.recover(RecoverRequest { address: "spot_pool.r", kind: "spot_pool", token: "tok-other", planned: &plan }).await;
    assert!(none.state.is_none());
}

/// A pool records when it was created; a state written before kiln recorded it takes the
/// fleet's creation time on refresh (moto has none: its first instance's launch time), and
/// plans no change with or without that refresh.
#[tokio::test]
async fn created_at_is_recorded_and_refresh_reads_it_for_older_states() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "spot_pool", j!({ "instance_types": ["t3.micro"], "capacity": 1 }));
    assert!(planned(&p, "spot_pool.up", &cfg, None).await.get("created_at").is_some_and(Value::is_unknown));
    let state = create(&p, "spot_pool.up", &cfg).await;
    let at = str_of(&state, "created_at").to_string();
    assert!(at.len() == 20 && at.as_bytes()[10] == b'T' && at.ends_with('Z'), "RFC 3339 in UTC: {at}");
    let again = read(&p, "spot_pool.up", &state).await.expect("exists");
    assert_eq!(str_of(&again, "created_at"), at, "refresh keeps what create recorded");

    let mut before = state.clone();
    let Value::Map(m) = &mut before else { panic!("a map") };
    m.remove("created_at");
    assert_eq!(changed(&before, &planned(&p, "spot_pool.up", &cfg, Some(&before)).await), Vec::<String>::new(), "no refresh: no change");
    let refreshed = read(&p, "spot_pool.up", &before).await.expect("exists");
    let read_at = str_of(&refreshed, "created_at");
    assert!(read_at.len() == 20 && read_at.ends_with('Z') && *read_at <= *kiln_provider::util::now(), "{read_at}");
    assert_eq!(changed(&refreshed, &planned(&p, "spot_pool.up", &cfg, Some(&refreshed)).await), Vec::<String>::new());
    assert!(!delete(&p, "spot_pool.up", &state).await.has_errors());
}
