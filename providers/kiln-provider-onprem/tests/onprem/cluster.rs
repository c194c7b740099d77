//! `cluster`: conformance, allocation of hosts and GPUs recorded in state and on the hosts, two
//! clusters never sharing a GPU (in one plan, across plans, and when two applies race), and a
//! request the fleet cannot satisfy failing at plan time with what was asked and what is free.

use kiln_provider::conformance::{self, Case};
use kiln_provider::{CreateRequest, Provider, ReadDataRequest};
use kiln_provider_onprem::OnpremProvider;
use kiln_value::Value;
use serde_json::json;

use crate::common::*;

async fn plan_error(p: &OnpremProvider, address: &str, cfg: serde_json::Value) -> String {
    let r = plan(p, address, &config(p, "cluster", cfg), None).await;
    let e = r.diagnostics.errors().next().unwrap_or_else(|| panic!("{address}: plan should fail: {}", r.planned));
    assert_eq!(e.code, "E-ONPREM-CAPACITY", "{}", e.summary);
    e.summary.clone()
}

fn hosts_and_gpus(state: &Value) -> Vec<(String, Vec<u64>)> {
    list_of(state, "allocation")
        .iter()
        .map(|a| (str_of(a, "host").to_string(), list_of(a, "gpus").iter().map(|g| num_of(g, "index")).collect()))
        .collect()
}

async fn gpus_free(p: &OnpremProvider) -> u64 {
    let r = p.read_data(ReadDataRequest { kind: "inventory", config: &json(json!({})) }).await;
    num_of(&r.state.expect("inventory"), "gpus_free")
}

#[tokio::test]
async fn conformance_suite() {
    let p = provider(&["host1", "host2"]);
    let case = Case { kind: "cluster", config: json(json!({ "nodes": 2, "accelerators": "A100-80GB:2" })), update: None, import_id: None };
    conformance::run(&p, &[case]).await;
    assert_eq!(gpus_free(&p).await, 16, "delete released every claim");
}

#[tokio::test]
async fn allocations_are_recorded_and_never_share_gpus() {
    let p = provider(&["host1", "host2"]);
    let a = create(&p, "cluster.a", &config(&p, "cluster", json!({ "accelerators": "A100-80GB:6" }))).await;
    assert_eq!(hosts_and_gpus(&a), vec![("host1".to_string(), (0..6).collect())]);
    assert_eq!(list_of(&a, "node_ips"), &[Value::from("127.0.1.1")]);
    assert_eq!(num_of(&a, "gpus_per_node"), 6);
    assert!(str_of(&a, "cluster_id").starts_with("a-"));

    let b = create(&p, "cluster.b", &config(&p, "cluster", json!({ "accelerators": "A100-80GB:4" }))).await;
    assert_eq!(hosts_and_gpus(&b), vec![("host2".to_string(), (0..4).collect())], "host1 has only 2 free");
    let c = create(&p, "cluster.c", &config(&p, "cluster", json!({ "accelerators": "A100-80GB:2" }))).await;
    assert_eq!(hosts_and_gpus(&c), vec![("host1".to_string(), vec![6, 7])]);
    assert_eq!(gpus_free(&p).await, 4);

    // Another provider instance over the same hosts (another run, another state) sees the claims.
    let other = sharing_root(&p, &["host1", "host2"]);
    let msg = plan_error(&other, "cluster.d", json!({ "accelerators": "A100-80GB:8" })).await;
    assert!(msg.contains("host1: 0 of 8 A100-80GB free (held by cluster.a, cluster.c)"), "{msg}");
    assert!(msg.contains("host2: 4 of 8 A100-80GB free (held by cluster.b)"), "{msg}");

    for (addr, s) in [("cluster.a", &a), ("cluster.b", &b), ("cluster.c", &c)] {
        assert!(!delete(&p, addr, s).await.has_errors());
        assert!(read(&p, addr, s).await.is_none(), "{addr} is gone once deleted");
    }
    assert_eq!(gpus_free(&p).await, 16);
}

#[tokio::test]
async fn clusters_planned_in_one_run_do_not_share_gpus() {
    let p = provider(&["host1"]);
    let first = plan(&p, "cluster.first", &config(&p, "cluster", json!({ "accelerators": "A100-80GB:6" })), None).await;
    assert!(!first.diagnostics.has_errors(), "{:?}", first.diagnostics);
    let msg = plan_error(&p, "cluster.second", json!({ "accelerators": "A100-80GB:6" })).await;
    assert!(msg.contains("2 of 8 A100-80GB free (held by cluster.first)"), "{msg}");
}

#[tokio::test]
async fn an_unsatisfiable_request_fails_at_plan_time() {
    let p = provider(&["host1", "host2", "host3", "host4"]);
    let msg = plan_error(&p, "cluster.big", json!({ "nodes": 3, "accelerators": "A100-80GB:8" })).await;
    assert!(
        msg.starts_with(
            "cluster.big asks for 3 nodes, each with 8 x A100-80GB; only 2 hosts can take one. The fleet has: host1: 8 of 8 A100-80GB free"
        ),
        "{msg}"
    );
    assert!(msg.contains("host3: no A100-80GB (2 x AMD Instinct MI210)"), "{msg}");
    assert!(msg.contains("host4: no A100-80GB (no GPUs)"), "{msg}");

    let msg = plan_error(&p, "cluster.cpus", json!({ "cpus": "100000+" })).await;
    assert!(msg.contains("fewer than 100000"), "{msg}");
    let msg = plan_error(&p, "cluster.rack", json!({ "labels": { "rack": "z" } })).await;
    assert!(msg.contains("label rack is unset, not z"), "{msg}");
}

#[tokio::test]
async fn racing_applies_cannot_both_claim_a_gpu() {
    let one = provider(&["host1"]);
    let two = sharing_root(&one, &["host1"]);
    // Both plans see host1 free: they are separate runs that know nothing of each other.
    let cfg = config(&one, "cluster", json!({ "accelerators": "A100-80GB:8" }));
    let pa = plan(&one, "cluster.a", &cfg, None).await.planned;
    let pb = plan(&two, "cluster.b", &cfg, None).await.planned;
    let a = one.create(CreateRequest { address: "cluster.a", kind: "cluster", planned: &pa, token: &token() }).await;
    assert!(!a.diagnostics.has_errors(), "{:?}", a.diagnostics);
    let b = two.create(CreateRequest { address: "cluster.b", kind: "cluster", planned: &pb, token: &token() }).await;
    let e = b.diagnostics.errors().next().expect("the second claim must fail");
    assert_eq!(e.code, "E-ONPREM-CLAIM");
    assert!(e.summary.contains("GPU 0 by cluster.a"), "{}", e.summary);
    assert!(b.state.is_none());
    assert_eq!(gpus_free(&one).await, 0, "the loser claimed nothing, the winner holds all 8");
    assert!(!delete(&one, "cluster.a", &a.state.expect("state")).await.has_errors());
}

#[tokio::test]
async fn cpu_clusters_take_no_gpus() {
    let p = provider(&["host3", "host4"]);
    let c = create(&p, "cluster.cpu", &config(&p, "cluster", json!({ "nodes": 2 }))).await;
    assert_eq!(hosts_and_gpus(&c), vec![("host3".to_string(), vec![]), ("host4".to_string(), vec![])]);
    assert_eq!(num_of(&c, "gpus_per_node"), 0);
    assert!(!delete(&p, "cluster.cpu", &c).await.has_errors());
}

/// A cluster records when it claimed its hosts (RFC 3339); refresh keeps it. A state written
/// before kiln recorded it takes its member file's time on refresh (written by the create, so
/// not after `created_at`), and plans no change with or without refresh.
#[tokio::test]
async fn created_at_is_recorded_and_read_from_the_claims_for_older_states() {
    let p = provider(&["host1"]);
    let cfg = config(&p, "cluster", json!({ "accelerators": "A100-80GB:1" }));
    assert!(planned(&p, "cluster.up", &cfg, None).await.get("created_at").is_some_and(Value::is_unknown));
    let state = create(&p, "cluster.up", &cfg).await;
    let at = str_of(&state, "created_at").to_string();
    assert!(at.len() == 20 && at.as_bytes()[10] == b'T' && at.ends_with('Z'), "RFC 3339 in UTC: {at}");
    let again = read(&p, "cluster.up", &state).await.expect("found");
    assert_eq!(changed(&state, &again), Vec::<String>::new());

    let mut before = state.clone();
    let Value::Map(m) = &mut before else { panic!("a map") };
    m.remove("created_at");
    assert_eq!(changed(&before, &planned(&p, "cluster.up", &cfg, Some(&before)).await), Vec::<String>::new(), "no refresh: no change");
    let refreshed = read(&p, "cluster.up", &before).await.expect("found");
    let read_at = str_of(&refreshed, "created_at");
    assert!(read_at.len() == 20 && *read_at <= *at, "the member file was written before the create answered: {read_at} {at}");
    assert_eq!(changed(&refreshed, &planned(&p, "cluster.up", &cfg, Some(&refreshed)).await), Vec::<String>::new());
    assert!(!delete(&p, "cluster.up", &state).await.has_errors());
}
