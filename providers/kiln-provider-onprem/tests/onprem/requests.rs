//! The request grammar on `cluster` (`cpus = "4"`: the node gets exactly 4 of its host's CPUs;
//! accelerator names from the one table), and states written before it, which keep their
//! meaning and plan no change.

use serde_json::json;

use crate::common::*;

/// A state as kiln wrote it before the grammar was shared (captured from that code against the
/// harness hosts): `cpus` and `memory` were minimums, and "A100" matched the 80 GB part.
fn state_written_before() -> serde_json::Value {
    json!({"accelerators":"A100:2","allocation":[{"address":"127.0.1.1","gpus":[
        {"index":0,"memory_mib":81920,"name":"NVIDIA A100-SXM4-80GB","vendor":"nvidia"},
        {"index":1,"memory_mib":81920,"name":"NVIDIA A100-SXM4-80GB","vendor":"nvidia"}],"host":"host1"}],
        "cluster_id":"legacy-01193830","cpus":"1","gpus_per_node":2,"hosts":["host1"],"labels":null,"memory":"1",
        "node_ips":["127.0.1.1"],"nodes":1,"stale_hosts":[],"unreachable":[]})
}

#[tokio::test]
async fn a_state_written_before_plans_no_change() {
    let p = provider(&["host1", "host4"]);
    let prior = json(state_written_before());
    let cfg = config(&p, "cluster", json!({ "nodes": 1, "accelerators": "A100:2", "cpus": "1", "memory": "1", "hosts": ["host1"] }));
    let r = plan(&p, "cluster.legacy", &cfg, Some(&prior)).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    assert_eq!(changed(&prior, &r.planned), Vec::<String>::new(), "planned {}", r.planned);
    assert!(r.requires_replace.is_empty());
}

#[tokio::test]
async fn cpus_exactly_give_the_node_that_many_and_names_come_from_the_table() {
    let p = provider(&["host1", "host4"]);
    let exact = plan(&p, "cluster.exact", &config(&p, "cluster", json!({ "cpus": "1", "hosts": ["host4"] })), None).await;
    assert!(!exact.diagnostics.has_errors(), "{:?}", exact.diagnostics);
    assert_eq!(exact.planned.get("cpus_per_node"), Some(&json(json!(1))));
    let whole = plan(&p, "cluster.whole", &config(&p, "cluster", json!({ "cpus": "1+", "hosts": ["host4"] })), None).await;
    let host_cpus = num_of(&whole.planned, "cpus_per_node");
    assert!(host_cpus >= 1, "the whole host: {}", whole.planned);

    // "A100" is the 40 GB part; the harness hosts have the 80 GB one.
    let r = plan(&p, "cluster.a100", &config(&p, "cluster", json!({ "accelerators": "A100:1" })), None).await;
    let e = r.diagnostics.errors().next().unwrap_or_else(|| panic!("A100 is not an A100-80GB: {}", r.planned));
    assert!(e.summary.contains("host1: no A100 (8 x NVIDIA A100-SXM4-80GB)"), "{}", e.summary);
    let alt = plan(&p, "cluster.alt", &config(&p, "cluster", json!({ "accelerators": ["H100:1", "A100-80GB:1"] })), None).await;
    assert!(!alt.diagnostics.has_errors(), "{:?}", alt.diagnostics);
    assert_eq!(num_of(&alt.planned, "gpus_per_node"), 1);

    let d = kiln_provider::Provider::validate(
        &p,
        kiln_provider::ValidateRequest { kind: "cluster", config: &config(&p, "cluster", json!({ "accelerators": "8xA100-80GB" })) },
    );
    let e = d.errors().next().expect("malformed");
    assert_eq!((e.attribute.as_deref(), e.hint.as_deref()), (Some("accelerators"), Some("did you mean \"A100-80GB:8\"?")));
}
