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
