//! `cluster`: conformance, resolution of resource requests, tags and network objects as EC2
//! holds them, batched refresh (one DescribeInstances call), in-place node changes, recovery of
//! an interrupted create without duplicates, capacity fallback, and spot interruptions.

use aws_sdk_ec2::types::Filter;
use kiln_provider::conformance::{self, Case};
use kiln_provider::{CreateRequest, Provider, ReadItem, ReadRequest, RecoverRequest};
use kiln_value::Value;
use serde_json::json as j;

use crate::common::moto::{exclusive, server};
use crate::common::*;

/// Live instances EC2 has for a tag, with their tags as pairs.
async fn instances_tagged(key: &str, value: &str) -> Vec<(String, Vec<(String, String)>, aws_sdk_ec2::types::Instance)> {
    let ec2 = aws().await.ec2;
    let f = |n: &str, v: &[&str]| Filter::builder().name(n).set_values(Some(v.iter().map(|s| s.to_string()).collect())).build();
    let out = ec2
        .describe_instances()
        .filters(f(&format!("tag:{key}"), &[value]))
        .filters(f("instance-state-name", &["pending", "running"]))
        .send()
        .await
        .unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            let tags = i.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())).collect();
            (i.instance_id().unwrap().to_string(), tags, i.clone())
        })
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], k: &str) -> Option<&'a str> {
    tags.iter().find(|(t, _)| t == k).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn conformance_suite() {
    let _g = exclusive().await;
    let p = provider().await;
    let case = Case {
        kind: "cluster",
        config: json(j!({ "instance_type": "t3.micro" })),
        update: Some(json(j!({ "instance_type": "t3.micro", "nodes": 2 }))),
        import_id: None,
    };
    conformance::run(&p, &[case]).await;
}

#[tokio::test]
async fn requests_resolve_to_an_instance_type_and_every_node_is_tagged() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(
        &p,
        "cluster",
        j!({ "accelerators": ["A100:8", "A100-80GB:8"], "nodes": 2, "spot": true, "disk_gb": 500, "tags": { "team": "ml" } }),
    );
    let plan = planned(&p, "cluster.train", &cfg, None).await;
    // Apply takes the first candidate with capacity: the plan lists them, smallest first (by
    // name on a tie), and cannot name the type yet.
    assert_eq!(strs(&plan, "instance_type_candidates"), ["p4d.24xlarge", "p4de.24xlarge"]);
    assert!(plan.get("instance_type").is_some_and(Value::is_unknown), "{plan}");
    assert_eq!(plan.get("gpus_per_node"), Some(&Value::from(8i64)), "{plan}");
    assert!(str_of(&plan, "image").starts_with("ami-"));
    assert!(plan.get("instance_ids").is_some_and(Value::is_unknown));
    let state = create_with_token(&p, "cluster.train", &cfg, "tok-train").await;
    assert_eq!(str_of(&state, "state"), "running");
    let ids = strs(&state, "instance_ids");
    assert_eq!(ids.len(), 2);
    assert_eq!(strs(&state, "private_ips").len(), 2);
    assert!(!str_of(&state, "ssh_private_key").is_empty());

    let found = instances_tagged("kiln:token", "tok-train").await;
    assert_eq!(found.len(), 2);
    for (rank, id) in ids.iter().enumerate() {
        let (_, tags, inst) = found.iter().find(|(i, _, _)| i == id).expect("instance in EC2");
        assert_eq!(tag(tags, "kiln:address"), Some("cluster.train"));
        assert_eq!(tag(tags, "kiln:node"), Some(rank.to_string().as_str()));
        assert_eq!(tag(tags, "team"), Some("ml"));
        assert_eq!(inst.instance_type().map(|t| t.as_str()), Some("p4d.24xlarge"));
        assert_eq!(inst.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
        assert_eq!(inst.key_name(), Some(str_of(&state, "key_name")));
    }
    let ec2 = aws().await.ec2;
    let sg = &strs(&state, "security_group_ids")[0];
    let groups = ec2.describe_security_groups().group_ids(sg).send().await.unwrap();
    let g = &groups.security_groups()[0];
    assert!(g.tags().iter().any(|t| t.key() == Some("kiln:address") && t.value() == Some("cluster.train")));
    // Issue 10: no SSH ingress unless asked; the nodes still reach each other.
    assert!(!g.ip_permissions().iter().any(|p| p.from_port() == Some(22)), "no SSH unless asked: {g:?}");
    assert!(g.ip_permissions().iter().any(|p| p.ip_protocol() == Some("-1")), "nodes reach each other: {g:?}");
    assert_eq!(str_of(&state, "ssh_cidr"), "");

    let replan = planned(&p, "cluster.train", &cfg, Some(&state)).await;
    assert!(changed(&state, &replan).is_empty(), "no change planned: {:?}", changed(&state, &replan));

    assert!(!delete(&p, "cluster.train", &state).await.has_errors());
    assert!(instances_tagged("kiln:token", "tok-train").await.is_empty(), "instances terminated");
    let groups = ec2.describe_security_groups().filters(Filter::builder().name("group-id").values(sg).build()).send().await.unwrap();
    assert!(groups.security_groups().is_empty(), "kiln's security group deleted");
    let keys = ec2.describe_key_pairs().send().await.unwrap();
    assert!(keys.key_pairs().iter().all(|k| k.key_name() != Some(str_of(&state, "key_name"))), "kiln's key pair deleted");
}

#[tokio::test]
async fn refresh_reads_every_cluster_with_one_describe_instances_call() {
    let _g = exclusive().await;
    let p = provider().await;
    let mut states = Vec::new();
    for (i, nodes) in [3, 1, 2, 1].into_iter().enumerate() {
        let addr = format!("cluster.c{i}");
        states.push((addr.clone(), create(&p, &addr, &config(&p, "cluster", j!({ "instance_type": "t3.micro", "nodes": nodes }))).await));
    }
    p.api_calls().reset();
    let items = states.iter().map(|(a, s)| ReadItem { address: a, kind: "cluster", state: s }).collect();
    let r = p.read(ReadRequest { items }).await;
    assert_eq!(r.results.len(), 4);
    for ((_, s), res) in states.iter().zip(&r.results) {
        assert!(res.state.as_ref().is_some_and(|n| n.unmarked_eq(s)), "read matches create");
    }
    assert_eq!(p.api_calls().of("DescribeInstances"), 1, "{:?}", p.api_calls().by_operation());
    assert_eq!(p.api_calls().total(), 1, "{:?}", p.api_calls().by_operation());
}

#[tokio::test]
async fn changing_nodes_launches_or_terminates_the_difference_in_place() {
    let _g = exclusive().await;
    let p = provider().await;
    let one = config(&p, "cluster", j!({ "instance_type": "t3.micro" }));
    let state = create(&p, "cluster.n", &one).await;
    let first = strs(&state, "instance_ids")[0].clone();
    let three = config(&p, "cluster", j!({ "instance_type": "t3.micro", "nodes": 3 }));
    let plan = planned(&p, "cluster.n", &three, Some(&state)).await;
    let mut c = changed(&state, &plan);
    c.sort();
    assert_eq!(c, ["instance_ids", "lost", "nodes", "private_ips", "public_ips", "state"], "no force-new attribute changes");
    let grown = update(&p, "cluster.n", &state, &three).await;
    let ids = strs(&grown, "instance_ids");
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], first, "node 0 kept");
    assert_eq!(instances_tagged("kiln:address", "cluster.n").await.len(), 3);
    let shrunk = update(&p, "cluster.n", &grown, &one).await;
    assert_eq!(strs(&shrunk, "instance_ids"), vec![first]);
    let left = instances_tagged("kiln:address", "cluster.n").await;
    assert_eq!(left.len(), 1);
    assert_eq!(tag(&left[0].1, "kiln:node"), Some("0"));

    let bigger = config(&p, "cluster", j!({ "instance_type": "t3.small" }));
    let plan = planned(&p, "cluster.n", &bigger, Some(&shrunk)).await;
    assert!(changed(&shrunk, &plan).contains(&"instance_type".to_string()), "a new type is a change (force-new in the schema)");
    assert!(p.schema().kinds["cluster"].body.attributes["instance_type"].force_new);
}

#[tokio::test]
async fn recover_adopts_an_interrupted_create_and_nothing_is_launched_twice() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "cluster", j!({ "instance_type": "t3.micro", "nodes": 2 }));
    let plan = planned(&p, "cluster.r", &cfg, None).await;
    // The create ran, but its answer never reached state (kill -9): only the pending entry is left.
    let lost = p.create(CreateRequest { address: "cluster.r", kind: "cluster", planned: &plan, token: "tok-lost" }).await;
    let made = lost.state.expect("created");
    let adopted = p.recover(RecoverRequest { address: "cluster.r", kind: "cluster", token: "tok-lost", planned: &plan }).await;
    assert!(!adopted.diagnostics.has_errors(), "{:?}", adopted.diagnostics);
    let adopted = adopted.state.expect("found by its token");
    assert_eq!(strs(&adopted, "instance_ids"), strs(&made, "instance_ids"), "exactly those instances, same ranks");
    assert_eq!(strs(&adopted, "security_group_ids"), strs(&made, "security_group_ids"));

    // The next apply plans against the adopted object: nothing to launch.
    let next = planned(&p, "cluster.r", &cfg, Some(&adopted)).await;
    let c = changed(&adopted, &next);
    assert!(c.is_empty(), "no change after adoption: {c:?}");
    assert_eq!(instances_tagged("kiln:address", "cluster.r").await.len(), 2, "no duplicate instances");
    assert!(p.recover(RecoverRequest { address: "cluster.r", kind: "cluster", token: "tok-never", planned: &plan }).await.state.is_none());
}

#[tokio::test]
async fn recover_cleans_up_a_create_interrupted_before_launch() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "cluster", j!({ "instance_type": "t3.micro" }));
    let plan = planned(&p, "cluster.e", &cfg, None).await;
    server().fault("RunInstances", "", "InternalError", 500, 10);
    let failed = p.create(CreateRequest { address: "cluster.e", kind: "cluster", planned: &plan, token: "tok-e" }).await;
    assert!(failed.diagnostics.has_errors());
    let groups = aws()
        .await
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name("tag:kiln:token").values("tok-e").build())
        .send()
        .await
        .unwrap();
    assert!(groups.security_groups().is_empty(), "a failed create leaves no security group");
}

#[tokio::test]
async fn a_given_instance_type_is_the_only_one_tried() {
    let _g = exclusive().await;
    let p = provider().await;
    // t3.medium is also a candidate of the default request, whose other candidates apply must
    // not fall back to: the user asked for this type.
    let cfg = config(&p, "cluster", j!({ "instance_type": "t3.medium" }));
    let plan = planned(&p, "cluster.pin", &cfg, None).await;
    assert_eq!((str_of(&plan, "instance_type"), strs(&plan, "instance_type_candidates")), ("t3.medium", vec!["t3.medium".to_string()]));
    server().fault("RunInstances", "t3.medium", "InsufficientInstanceCapacity", 400, 1);
    let r = p.create(kiln_provider::CreateRequest { address: "cluster.pin", kind: "cluster", planned: &plan, token: "tok-pin" }).await;
    let err = r.diagnostics.errors().next().expect("no capacity for the given type").summary.clone();
    assert!(err.contains("tried t3.medium (InsufficientInstanceCapacity") && !err.contains(", "), "{err}");
    assert!(instances_tagged("kiln:address", "cluster.pin").await.is_empty());
}

#[tokio::test]
async fn insufficient_capacity_moves_on_to_the_next_candidate() {
    let _g = exclusive().await;
    let p = provider().await;
    server().fault("RunInstances", "p4d.24xlarge", "InsufficientInstanceCapacity", 400, 1);
    let cfg = config(&p, "cluster", j!({ "accelerators": ["A100:8", "A100-80GB:8"] }));
    let state = create(&p, "cluster.ice", &cfg).await;
    assert_eq!(str_of(&state, "instance_type"), "p4de.24xlarge");
    assert_eq!(server().faults_left(), 0);
    let (_, _, inst) = &instances_tagged("kiln:address", "cluster.ice").await[0];
    assert_eq!(inst.instance_type().map(|t| t.as_str()), Some("p4de.24xlarge"));
    let replan = planned(&p, "cluster.ice", &cfg, Some(&state)).await;
    assert!(changed(&state, &replan).is_empty(), "the fallback type is kept: {:?}", changed(&state, &replan));
}

#[tokio::test]
async fn when_no_candidate_has_capacity_the_error_names_what_was_tried() {
    let _g = exclusive().await;
    let p = provider().await;
    server().fault("RunInstances", "p4d", "InsufficientInstanceCapacity", 400, 2);
    let cfg = config(&p, "cluster", j!({ "accelerators": ["A100:8", "A100-80GB:8"] }));
    let plan = planned(&p, "cluster.none", &cfg, None).await;
    let r = p.create(CreateRequest { address: "cluster.none", kind: "cluster", planned: &plan, token: "tok-none" }).await;
    let e = r.diagnostics.errors().next().expect("no capacity");
    assert_eq!(e.code, "E-AWS-CAPACITY");
    assert_eq!(e.address.as_deref(), Some("cluster.none"));
    assert!(e.summary.contains("p4d.24xlarge (InsufficientInstanceCapacity") && e.summary.contains("p4de.24xlarge"), "{}", e.summary);
    assert!(instances_tagged("kiln:token", "tok-none").await.is_empty());
}

#[tokio::test]
async fn a_spot_interruption_degrades_the_cluster_and_the_next_apply_restores_it() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "cluster", j!({ "instance_type": "g5.xlarge", "nodes": 2, "spot": true }));
    let state = create(&p, "cluster.s", &cfg).await;
    let ids = strs(&state, "instance_ids");
    server().spot_interrupt(&ids[1]);

    let now = read(&p, "cluster.s", &state).await.expect("a degraded cluster still exists");
    assert_eq!(str_of(&now, "state"), "degraded");
    assert_eq!(strs(&now, "instance_ids"), [ids[0].clone()]);
    let lost = now.get("lost").and_then(Value::as_list).expect("lost list");
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].get("reason"), Some(&Value::from("Server.SpotInstanceTermination")));
    assert_eq!(lost[0].get("node"), Some(&Value::from(1i64)));

    let plan = planned(&p, "cluster.s", &cfg, Some(&now)).await;
    assert!(plan.get("instance_ids").is_some_and(Value::is_unknown), "plan asks to restore: {plan}");
    let healed = update(&p, "cluster.s", &now, &cfg).await;
    assert_eq!(str_of(&healed, "state"), "running");
    let healed_ids = strs(&healed, "instance_ids");
    assert_eq!(healed_ids.len(), 2);
    assert_eq!(healed_ids[0], ids[0]);
    assert_ne!(healed_ids[1], ids[1]);
    let live = instances_tagged("kiln:address", "cluster.s").await;
    let (_, tags, _) = live.iter().find(|(i, _, _)| *i == healed_ids[1]).expect("replacement in EC2");
    assert_eq!(tag(tags, "kiln:node"), Some("1"));
    let after = planned(&p, "cluster.s", &cfg, Some(&healed)).await;
    assert!(changed(&healed, &after).is_empty(), "healed: {:?}", changed(&healed, &after));
}

/// Issue 15: a node with a spot interruption notice is lost from the notice on (its spot request
/// is marked for termination) and the next apply replaces it, before EC2 takes it back. A job
/// restarted after the notice used to start on the noticed instance, whose agent stopped it at
/// once for the same notice: one notice used up `max_restarts` in seconds.
#[tokio::test]
async fn a_node_with_an_interruption_notice_is_lost_and_replaced_before_ec2_takes_it_back() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "cluster", j!({ "instance_type": "g5.xlarge", "nodes": 2, "spot": true }));
    let state = create(&p, "cluster.s", &cfg).await;
    let ids = strs(&state, "instance_ids");
    server().spot_notice(&ids[1]);

    let now = read(&p, "cluster.s", &state).await.expect("a degraded cluster still exists");
    assert_eq!(str_of(&now, "state"), "degraded");
    assert_eq!(strs(&now, "instance_ids"), [ids[0].clone()]);
    let lost = now.get("lost").and_then(Value::as_list).expect("lost list");
    assert_eq!(lost.len(), 1, "{now}");
    assert_eq!(lost[0].get("reason"), Some(&Value::from("marked-for-termination")));
    assert_eq!((lost[0].get("node"), lost[0].get("instance_id")), (Some(&Value::from(1i64)), Some(&Value::from(ids[1].as_str()))));

    let healed = update(&p, "cluster.s", &now, &cfg).await;
    let healed_ids = strs(&healed, "instance_ids");
    assert_eq!((str_of(&healed, "state"), healed_ids.len()), ("running", 2));
    assert_eq!(healed_ids[0], ids[0]);
    assert_ne!(healed_ids[1], ids[1], "the replacement is another instance");
    // kiln leaves the noticed instance to EC2 (a job on it may still be writing its last
    // checkpoint); once EC2 takes it, the healed cluster does not see it again.
    let live: Vec<String> = instances_tagged("kiln:address", "cluster.s").await.into_iter().map(|(id, _, _)| id).collect();
    assert!(live.contains(&ids[1]), "{live:?}");
    server().spot_interrupt(&ids[1]);
    let after = read(&p, "cluster.s", &healed).await.expect("exists");
    assert_eq!((str_of(&after, "state"), strs(&after, "instance_ids")), ("running", healed_ids));
    assert!(changed(&healed, &planned(&p, "cluster.s", &cfg, Some(&after)).await).is_empty());
    let _ = delete(&p, "cluster.s", &after).await;
}

#[tokio::test]
async fn a_cluster_terminated_by_hand_is_gone() {
    let _g = exclusive().await;
    let p = provider().await;
    let state = create(&p, "cluster.h", &config(&p, "cluster", j!({ "instance_type": "t3.micro" }))).await;
    aws().await.ec2.terminate_instances().set_instance_ids(Some(strs(&state, "instance_ids"))).send().await.unwrap();
    assert!(read(&p, "cluster.h", &state).await.is_none());
}

#[tokio::test]
async fn impossible_or_contradictory_requests_fail_at_plan_time() {
    let _g = exclusive().await;
    let p = provider().await;
    let r = plan(&p, "cluster.x", &config(&p, "cluster", j!({ "accelerators": "A100:16" })), None).await;
    let e = r.diagnostics.errors().next().expect("no such type");
    assert_eq!(e.summary, "cluster.x: no instance type in this region has accelerators = \"A100:16\"");
    assert!(e.hint.as_deref().unwrap_or_default().contains("H100"), "{:?}", e.hint);
    let r = plan(&p, "cluster.x", &config(&p, "cluster", j!({ "instance_type": "z9.huge" })), None).await;
    assert!(r.diagnostics.errors().next().expect("unknown type").summary.contains("`z9.huge` does not exist"));
    let d =
        p.validate(kiln_provider::ValidateRequest { kind: "cluster", config: &json(j!({ "instance_type": "t3.micro", "cpus": "4+" })) });
    assert!(d.has_errors());
    let cpus = planned(&p, "cluster.x", &config(&p, "cluster", j!({ "cpus": "8+", "memory": "32+" })), None).await;
    assert_eq!(strs(&cpus, "instance_type_candidates")[0], "m5a.2xlarge", "m5 is previous generation in EC2's data");
}

/// Issue 10 (defect 10): SSH is opened only from the block asked for (IPv4 or IPv6); a
/// world-open block gets a plan warning; a malformed one is refused; and an object made with
/// the old default (`ssh_cidr = "0.0.0.0/0"` stored, not in the configuration) plans no change.
#[tokio::test]
async fn ssh_is_opened_only_when_asked_and_a_world_open_block_warns() {
    let _g = exclusive().await;
    server().reset();
    let p = provider().await;
    let ec2 = aws().await.ec2;
    let ssh_ranges = |state: &Value| {
        let sg = strs(state, "security_group_ids")[0].clone();
        let ec2 = ec2.clone();
        async move {
            let groups = ec2.describe_security_groups().group_ids(sg).send().await.unwrap();
            let g = groups.security_groups()[0].clone();
            let ssh: Vec<_> = g.ip_permissions().iter().filter(|p| p.from_port() == Some(22)).cloned().collect();
            let v4: Vec<String> = ssh.iter().flat_map(|p| p.ip_ranges()).filter_map(|r| r.cidr_ip().map(str::to_string)).collect();
            let v6: Vec<String> = ssh.iter().flat_map(|p| p.ipv6_ranges()).filter_map(|r| r.cidr_ipv6().map(str::to_string)).collect();
            (v4, v6)
        }
    };

    let mine = config(&p, "cluster", j!({ "instance_type": "t3.micro", "ssh_cidr": "203.0.113.7/32" }));
    let r = plan(&p, "cluster.mine", &mine, None).await;
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let state = create(&p, "cluster.mine", &mine).await;
    assert_eq!(ssh_ranges(&state).await, (vec!["203.0.113.7/32".to_string()], vec![]));

    let v6 = config(&p, "cluster", j!({ "instance_type": "t3.micro", "ssh_cidr": "2001:db8::/64" }));
    let state6 = create(&p, "cluster.v6", &v6).await;
    assert_eq!(ssh_ranges(&state6).await, (vec![], vec!["2001:db8::/64".to_string()]));

    for open in ["0.0.0.0/0", "::/0"] {
        let cfg = config(&p, "cluster", j!({ "instance_type": "t3.micro", "ssh_cidr": open }));
        let r = plan(&p, "cluster.open", &cfg, None).await;
        assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
        let w: Vec<_> = r.diagnostics.iter().filter(|d| d.code == "W-AWS-SSH-OPEN").collect();
        assert_eq!(w.len(), 1, "a world-open block warns: {:?}", r.diagnostics);
        assert!(w[0].summary.contains(open) && w[0].hint.is_some(), "{:?}", w[0]);
    }
    let bad = config(&p, "cluster", j!({ "instance_type": "t3.micro", "ssh_cidr": "everywhere" }));
    assert!(plan(&p, "cluster.bad", &bad, None).await.diagnostics.has_errors());

    // Made by the previous release: SSH open to the world by default, stored in state; the
    // configuration never named ssh_cidr. The upgrade keeps it (and warns): no replacement.
    let old_cfg = config(&p, "cluster", j!({ "instance_type": "t3.micro", "ssh_cidr": "0.0.0.0/0" }));
    let old = create(&p, "cluster.old", &old_cfg).await;
    assert_eq!(ssh_ranges(&old).await.0, ["0.0.0.0/0"]);
    let unchanged = config(&p, "cluster", j!({ "instance_type": "t3.micro" }));
    let r = plan(&p, "cluster.old", &unchanged, Some(&old)).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    assert!(changed(&old, &r.planned).is_empty(), "an upgrade plans no change: {:?}", changed(&old, &r.planned));
    assert!(r.diagnostics.iter().any(|d| d.code == "W-AWS-SSH-OPEN"), "{:?}", r.diagnostics);
    for (a, s) in [("cluster.mine", &state), ("cluster.v6", &state6), ("cluster.old", &old)] {
        assert!(!delete(&p, a, s).await.has_errors());
    }
}

/// A cluster records when it came up: its first instance's launch time (RFC 3339), which an
/// update launching more nodes does not move. A state written before kiln recorded it takes
/// the launch time on refresh, and plans no change with or without that refresh.
#[tokio::test]
async fn created_at_is_the_first_launch_time_and_refresh_reads_it_for_older_states() {
    let _g = exclusive().await;
    let p = provider().await;
    let one = config(&p, "cluster", j!({ "instance_type": "t3.micro" }));
    assert!(planned(&p, "cluster.up", &one, None).await.get("created_at").is_some_and(Value::is_unknown));
    let state = create(&p, "cluster.up", &one).await;
    let at = str_of(&state, "created_at").to_string();
    let live = instances_tagged("kiln:address", "cluster.up").await;
    let launched = live[0].2.launch_time().expect("a launch time").fmt(aws_sdk_ec2::primitives::DateTimeFormat::DateTime).unwrap();
    assert_eq!(at[..19], launched[..19], "{at} is the launch time {launched}");
    assert!(at.ends_with('Z'), "{at}");
    assert_eq!(changed(&state, &planned(&p, "cluster.up", &one, Some(&state)).await), Vec::<String>::new());

    let mut before = state.clone();
    let Value::Map(m) = &mut before else { panic!("a map") };
    m.remove("created_at");
    assert_eq!(changed(&before, &planned(&p, "cluster.up", &one, Some(&before)).await), Vec::<String>::new(), "no refresh: no change");
    let refreshed = read(&p, "cluster.up", &before).await.expect("found");
    assert_eq!(str_of(&refreshed, "created_at"), at, "refresh reads it");
    assert_eq!(changed(&refreshed, &planned(&p, "cluster.up", &one, Some(&refreshed)).await), Vec::<String>::new());

    let two = config(&p, "cluster", j!({ "instance_type": "t3.micro", "nodes": 2 }));
    let grown = update(&p, "cluster.up", &refreshed, &two).await;
    assert_eq!(str_of(&grown, "created_at"), at, "a node launched later does not move it");
    assert!(!delete(&p, "cluster.up", &grown).await.has_errors());
}

/// Issue 14: `instance_type_candidates` given with `instance_type` lists the types a create
/// tries after it. The plan cannot name the type; the create launches the first with capacity
/// and state records it; the same configuration then plans no change.
#[tokio::test]
async fn given_candidates_are_tried_in_order_after_the_instance_type() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "cluster", j!({ "instance_type": "t3.medium", "instance_type_candidates": ["t3.large", "m5.large"] }));
    let plan = planned(&p, "cluster.fb", &cfg, None).await;
    assert_eq!(strs(&plan, "instance_type_candidates"), ["t3.medium", "t3.large", "m5.large"]);
    assert!(plan.get("instance_type").is_some_and(Value::is_unknown), "chosen at apply: {plan}");
    assert_eq!(plan.get("gpus_per_node"), Some(&Value::from(0i64)), "every candidate has none: {plan}");
    server().fault("RunInstances", "InstanceType=t3.medium", "InsufficientInstanceCapacity", 400, 1);
    let state = create(&p, "cluster.fb", &cfg).await;
    assert_eq!(server().faults_left(), 0, "the first choice was tried");
    assert_eq!(str_of(&state, "instance_type"), "t3.large");
    assert_eq!(str_of(&state, "market"), "on-demand");
    let live = instances_tagged("kiln:address", "cluster.fb").await;
    assert_eq!(live[0].2.instance_type().map(|t| t.as_str()), Some("t3.large"));
    let replan = planned(&p, "cluster.fb", &cfg, Some(&state)).await;
    assert!(changed(&state, &replan).is_empty(), "the fallback it runs is kept: {:?}", changed(&state, &replan));
    // Placement's form (the first choice listed first) means the same.
    let listed =
        config(&p, "cluster", j!({ "instance_type": "t3.medium", "instance_type_candidates": ["t3.medium", "t3.large", "m5.large"] }));
    assert!(changed(&state, &planned(&p, "cluster.fb", &listed, Some(&state)).await).is_empty());
    // Another list: the create tries again from the first choice (a replacement).
    let other = config(&p, "cluster", j!({ "instance_type": "t3.medium", "instance_type_candidates": ["m5.large"] }));
    let moved = planned(&p, "cluster.fb", &other, Some(&state)).await;
    assert!(changed(&state, &moved).contains(&"instance_type".to_string()), "{moved}");
    assert!(!delete(&p, "cluster.fb", &state).await.has_errors());

    // The first choice with capacity: launched, and kept whatever the list says later.
    let first = create(&p, "cluster.fa", &cfg).await;
    assert_eq!(str_of(&first, "instance_type"), "t3.medium");
    assert!(changed(&first, &planned(&p, "cluster.fa", &other, Some(&first)).await).is_empty());
    assert!(!delete(&p, "cluster.fa", &first).await.has_errors());
}

#[tokio::test]
async fn given_candidates_are_checked_and_errors_name_the_attribute() {
    let _g = exclusive().await;
    let p = provider().await;
    let validate = |j: serde_json::Value| {
        let c = config(&p, "cluster", j);
        p.validate(kiln_provider::ValidateRequest { kind: "cluster", config: &c }).into_vec()
    };
    let alone = validate(j!({ "accelerators": "A10:1", "instance_type_candidates": ["g5.xlarge", "g5.2xlarge"] }));
    let e = alone.iter().find(|d| d.summary.contains("`instance_type`, which is not set")).unwrap_or_else(|| panic!("{alone:?}"));
    assert_eq!(e.attribute.as_deref(), Some("instance_type_candidates"));
    assert!(e.hint.as_deref().unwrap_or_default().contains("set `instance_type` to the first choice"), "{:?}", e.hint);
    let many = validate(
        j!({ "instance_type": "t3.micro", "instance_type_candidates": ["t3.small", "t3.medium", "t3.large", "t3.xlarge", "t3.2xlarge"] }),
    );
    assert!(many.iter().any(|d| d.summary.contains("6 types") && d.summary.contains("at most 5")), "{many:?}");
    let twice = validate(j!({ "instance_type": "t3.micro", "instance_type_candidates": ["t3.small", "t3.small"] }));
    assert!(twice.iter().any(|d| d.summary.contains("lists `t3.small` twice")), "{twice:?}");
    assert!(validate(j!({ "instance_type": "t3.micro", "instance_type_candidates": ["t3.micro", "t3.small"] })).is_empty());

    let r =
        plan(&p, "cluster.x", &config(&p, "cluster", j!({ "instance_type": "t3.micro", "instance_type_candidates": ["z9.huge"] })), None)
            .await;
    let e = r.diagnostics.errors().next().expect("a type the region lacks");
    assert_eq!(e.code, "E-AWS-CLUSTER-TYPE");
    assert_eq!(e.attribute.as_deref(), Some("instance_type_candidates"));
    assert!(e.summary.contains("`z9.huge`"), "{}", e.summary);
}

/// Issue 14: `spot = "auto"` launches spot, and on-demand when EC2 has no spot capacity for
/// any candidate type. State keeps `spot` as written and records the market in `market`.
#[tokio::test]
async fn spot_auto_falls_back_to_on_demand_when_spot_has_no_capacity() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "cluster", j!({ "instance_type": "t3.micro", "instance_type_candidates": ["t3.small"], "spot": "auto" }));
    let plan = planned(&p, "cluster.auto", &cfg, None).await;
    assert!(plan.get("market").is_some_and(Value::is_unknown), "known at apply: {plan}");
    assert_eq!(plan.get("spot"), Some(&Value::from("auto")));
    // No spot capacity for either type: the first type on-demand.
    server().fault("RunInstances", "MarketType=spot", "InsufficientInstanceCapacity", 400, 2);
    let state = create(&p, "cluster.auto", &cfg).await;
    assert_eq!(server().faults_left(), 0, "spot was tried for every candidate");
    assert_eq!((str_of(&state, "market"), str_of(&state, "instance_type")), ("on-demand", "t3.micro"));
    assert_eq!(state.get("spot"), Some(&Value::from("auto")), "as written");
    let live = instances_tagged("kiln:address", "cluster.auto").await;
    assert_eq!(live[0].2.instance_lifecycle(), None, "on-demand in EC2");
    assert!(changed(&state, &planned(&p, "cluster.auto", &cfg, Some(&state)).await).is_empty());
    assert!(!delete(&p, "cluster.auto", &state).await.has_errors());

    // With spot capacity: spot.
    let spot = create(&p, "cluster.auto2", &cfg).await;
    assert_eq!((str_of(&spot, "market"), str_of(&spot, "instance_type")), ("spot", "t3.micro"));
    let live = instances_tagged("kiln:address", "cluster.auto2").await;
    assert_eq!(live[0].2.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
    assert!(!delete(&p, "cluster.auto2", &spot).await.has_errors());

    // Neither market has capacity: the error names every try.
    server().fault("RunInstances", "t3.", "InsufficientInstanceCapacity", 400, 4);
    let plan = planned(&p, "cluster.none", &cfg, None).await;
    let r = p.create(CreateRequest { address: "cluster.none", kind: "cluster", planned: &plan, token: "tok-auto-none" }).await;
    let e = r.diagnostics.errors().next().expect("no capacity");
    assert!(e.summary.contains("t3.micro spot (") && e.summary.contains("t3.small on-demand ("), "{}", e.summary);

    let bad = config(&p, "cluster", j!({ "instance_type": "t3.micro", "spot": "sometimes" }));
    let d = p.validate(kiln_provider::ValidateRequest { kind: "cluster", config: &bad }).into_vec();
    assert!(d.iter().any(|e| e.attribute.as_deref() == Some("spot") && e.summary.contains("true, false or \"auto\"")), "{d:?}");
}

/// States written before `market` and a settable `instance_type_candidates` (computed lists,
/// `spot` a bool) plan no change, before and after a refresh that reads the market.
#[tokio::test]
async fn states_from_before_market_and_given_candidates_plan_no_change() {
    let _g = exclusive().await;
    let p = provider().await;
    for (name, cfg) in
        [("cluster.old1", j!({ "instance_type": "t3.micro", "spot": true })), ("cluster.old2", j!({ "cpus": "2+", "memory": "4+" }))]
    {
        let cfg = config(&p, "cluster", cfg);
        let state = create(&p, name, &cfg).await;
        let mut before = state.clone();
        let Value::Map(m) = &mut before else { panic!("a map") };
        assert!(m.remove("market").is_some(), "recorded: {state}");
        assert!(changed(&before, &planned(&p, name, &cfg, Some(&before)).await).is_empty(), "{name}: no refresh, no change");
        let refreshed = read(&p, name, &before).await.expect("found");
        assert_eq!(refreshed.get("market"), state.get("market"), "{name}: refresh reads it");
        assert!(changed(&refreshed, &planned(&p, name, &cfg, Some(&refreshed)).await).is_empty(), "{name}");
        assert!(!delete(&p, name, &state).await.has_errors());
    }
}
