//! `cluster`: conformance, the computed description of the machine, GPU assignment, and
//! requests the machine cannot satisfy failing at plan time with what was asked and what
//! exists. Also `spot_pool`, which this provider refuses.

use kiln_provider::conformance::{self, Case};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn conformance_suite() {
    let (_dir, p) = provider(machine(8, "2x-tesla-t4.csv"));
    let case = Case {
        kind: "cluster",
        config: json(json!({ "nodes": 2 })),
        update: Some(json(json!({ "nodes": 1, "accelerators": "T4" }))),
        import_id: None,
    };
    conformance::run(&p, &[case]).await;
}

async fn plan_error(fixture: &str, cfg: serde_json::Value) -> String {
    let (_dir, p) = provider(machine(8, fixture));
    let r = plan(&p, "cluster.big", &config(&p, "cluster", cfg), None).await;
    let e = r.diagnostics.errors().next().unwrap_or_else(|| panic!("plan should fail: {}", r.planned));
    assert_eq!(e.code, "E-LOCAL-CAPACITY");
    e.summary.clone()
}

#[tokio::test]
async fn missing_gpus_fail_at_plan_time() {
    assert_eq!(
        plan_error("empty.csv", json!({ "accelerators": "H100:8" })).await,
        "cluster.big asks for 8 x H100 per node, this machine has 0 GPUs"
    );
    assert_eq!(
        plan_error("2x-tesla-t4.csv", json!({ "accelerators": "H100" })).await,
        "cluster.big asks for 1 x H100 per node, this machine has 2 GPUs (2 x Tesla T4), none of them H100"
    );
    assert_eq!(
        plan_error("8x-h100-80gb-hbm3.csv", json!({ "accelerators": "H100:8", "nodes": 2 })).await,
        "cluster.big asks for 8 x H100 per node on 2 nodes (16 in all), this machine has 8 GPUs (8 x NVIDIA H100 80GB HBM3)"
    );
}

#[tokio::test]
async fn missing_cpus_and_memory_fail_at_plan_time() {
    assert_eq!(plan_error("empty.csv", json!({ "cpus": "16+" })).await, "cluster.big asks for 16 CPUs per node, this machine has 8 CPUs");
    assert_eq!(
        plan_error("empty.csv", json!({ "memory": "48+", "nodes": 2 })).await,
        "cluster.big asks for 48 GiB of memory per node on 2 nodes (96 GiB in all), this machine has 64 GiB"
    );
}

#[tokio::test]
async fn gpus_are_given_to_the_cluster() {
    let (_dir, p) = provider(machine(64, "8x-a100-sxm4-80gb.csv"));
    let state =
        create(&p, "cluster.train", &config(&p, "cluster", json!({ "nodes": 2, "accelerators": "A100-80GB:2", "cpus": "8+" }))).await;
    assert_eq!(state.get("gpus_per_node"), Some(&json(json!(2))));
    assert_eq!(state.get("cpus_total"), Some(&json(json!(64))));
    let gpus = list_of(&state, "gpus");
    assert_eq!(gpus.len(), 4);
    assert_eq!(gpus[3], json(json!({ "index": 3, "name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920 })));
}

#[tokio::test]
async fn without_accelerators_the_gpus_are_shared_out() {
    let (_dir, p) = provider(machine(8, "1x-rtx-4090.csv"));
    let one = create(&p, "cluster.one", &config(&p, "cluster", json!({}))).await;
    assert_eq!(one.get("gpus_per_node"), Some(&json(json!(1))));
    let two = create(&p, "cluster.two", &config(&p, "cluster", json!({ "nodes": 2 }))).await;
    assert_eq!(two.get("gpus_per_node"), Some(&json(json!(0))));
    assert!(list_of(&two, "gpus").is_empty());
}

#[tokio::test]
async fn the_real_machine_is_described() {
    let dir = tempfile::tempdir().unwrap();
    let p = kiln_provider_local::LocalProvider::new(dir.path(), None);
    let state = create(&p, "cluster.here", &config(&p, "cluster", json!({}))).await;
    let cpus = state.get("cpus_total").and_then(|v| v.as_number()).expect("cpus_total");
    assert!(cpus >= 1.into());
    let again = read(&p, "cluster.here", &state).await.expect("a cluster is never gone");
    assert!(again.unmarked_eq(&state), "reading twice describes the same machine");
}

#[tokio::test]
async fn malformed_requests_are_invalid() {
    let (_dir, p) = cpu_provider();
    let r = plan(&p, "cluster.x", &config(&p, "cluster", json!({ "accelerators": "H100:lots", "cpus": "many" })), None).await;
    assert_eq!(r.diagnostics.errors().count(), 2);
}

#[tokio::test]
async fn spot_pools_are_refused() {
    let (_dir, p) = cpu_provider();
    let r = plan(&p, "spot_pool.h100", &config(&p, "spot_pool", json!({ "accelerators": "H100:8" })), None).await;
    let e = r.diagnostics.errors().next().expect("refused");
    assert!(e.summary.contains("local machines have no spot market; use provider = aws"), "{}", e.summary);
}

#[tokio::test]
async fn machine_data_source_describes_this_machine() {
    let (_dir, p) = provider(machine(8, "8x-a100-sxm4-80gb.csv"));
    let r = kiln_provider::Provider::read_data(&p, kiln_provider::ReadDataRequest { kind: "machine", config: &json(json!({})) }).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    let v = r.state.expect("machine described");
    assert_eq!(v.get("cpus"), Some(&kiln_value::Value::from(8i64)));
    assert_eq!(v.get("gpu_count"), Some(&kiln_value::Value::from(8i64)));
    assert_eq!(v.get("gpus").and_then(|g| g.as_list()).map(|l| l.len()), Some(8));
    let bad = kiln_provider::Provider::read_data(&p, kiln_provider::ReadDataRequest { kind: "nope", config: &json(json!({})) }).await;
    assert!(bad.diagnostics.has_errors());
}

/// A cluster records when it was created (RFC 3339, for `kiln status`'s uptime): a create plans
/// it as unknown, refresh and a plan of the unchanged cluster keep it, and an update keeps it.
#[tokio::test]
async fn a_cluster_records_when_it_was_created() {
    let (_dir, p) = cpu_provider();
    let cfg = config(&p, "cluster", json!({ "nodes": 2 }));
    assert!(planned(&p, "cluster.c", &cfg, None).await.get("created_at").is_some_and(kiln_value::Value::is_unknown));
    let state = create(&p, "cluster.c", &cfg).await;
    let at = str_of(&state, "created_at").to_string();
    assert!(at.len() == 20 && at.as_bytes()[10] == b'T' && at.ends_with('Z'), "RFC 3339 in UTC: {at}");
    assert!(at <= kiln_provider::util::now(), "{at}");
    let again = read(&p, "cluster.c", &state).await.expect("found");
    assert_eq!(changed(&state, &again), Vec::<String>::new());
    assert_eq!(changed(&state, &planned(&p, "cluster.c", &cfg, Some(&state)).await), Vec::<String>::new());
    let smaller = config(&p, "cluster", json!({ "nodes": 1 }));
    let updated = update(&p, "cluster.c", &state, &smaller).await;
    assert_eq!(str_of(&updated, "created_at"), at);
}
