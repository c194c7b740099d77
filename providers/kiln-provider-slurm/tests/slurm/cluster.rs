//! `cluster`: the partition as `sinfo` and `scontrol` describe it, and requests it cannot hold
//! failing at plan time.

use kiln_value::Value;
use serde_json::json;

use crate::common::{config, create, num_of, plan, provider, read, str_of};
use crate::harness::harness;

#[tokio::test]
async fn cluster_describes_the_partition_its_nodes_and_gpus() {
    let (p, _dir) = provider();
    let c = create(&p, "cluster.debug", &config(&p, "cluster", json!({ "partition": "debug", "accelerators": "kilngpu:1" }))).await;
    assert_eq!(str_of(&c, "state"), "up");
    assert_eq!(c.get("node_names"), Some(&Value::List(vec![Value::from(harness().node.as_str())])));
    assert_eq!(num_of(&c, "total_nodes"), 1);
    assert_eq!(num_of(&c, "total_gpus"), 2, "the node's two GRES gpus: {c}");
    assert_eq!(num_of(&c, "gpus_per_node"), 1);
    assert_eq!(str_of(&c, "gpu_type"), "kilngpu");
    assert!(num_of(&c, "total_cpus") >= 2, "{c}");
    assert_eq!(c.get("gres"), Some(&Value::List(vec![Value::from("gpu:kilngpu:2")])));
    let node_state = c.get("node_states").and_then(|s| s.get(&harness().node)).and_then(Value::as_str).unwrap_or_default().to_string();
    assert!(["idle", "mixed", "allocated"].contains(&node_state.as_str()), "{c}");

    // Refresh describes it again, keeping when kiln took the partition (for `kiln status`).
    let again = read(&p, "cluster.debug", &c).await.expect("the partition is still there");
    assert_eq!(str_of(&again, "partition"), "debug");
    let at = str_of(&c, "created_at");
    assert!(at.len() == 20 && at.as_bytes()[10] == b'T' && at.ends_with('Z'), "RFC 3339 in UTC: {c}");
    assert_eq!(str_of(&again, "created_at"), at);
    let cfg = config(&p, "cluster", json!({ "partition": "debug", "accelerators": "kilngpu:1" }));
    let replanned = plan(&p, "cluster.debug", &cfg, Some(&again)).await.planned;
    assert_eq!(replanned.get("created_at"), again.get("created_at"), "a plan keeps it");

    // No partition given: the default one.
    let d = create(&p, "cluster.default", &config(&p, "cluster", json!({}))).await;
    assert_eq!(str_of(&d, "partition"), "debug");
}

#[tokio::test]
async fn requests_the_partition_cannot_hold_fail_at_plan_time() {
    let (p, _dir) = provider();
    let cases = [
        (json!({ "partition": "nope" }), "Slurm has no partition `nope`"),
        (json!({ "partition": "debug", "nodes": 2 }), "asks for 2 nodes; partition `debug` has 1"),
        (
            json!({ "partition": "debug", "accelerators": "H100:8" }),
            "asks for 1 nodes with 8 x H100 GPUs; partition `debug` has 0 such nodes (its GRES: gpu:kilngpu:2)",
        ),
        (json!({ "partition": "debug", "accelerators": "kilngpu:4" }), "has 0 such nodes"),
    ];
    for (c, msg) in cases {
        let r = plan(&p, "cluster.c", &config(&p, "cluster", c.clone()), None).await;
        let errs: Vec<String> = r.diagnostics.errors().map(|d| format!("{} ({})", d.summary, d.hint.clone().unwrap_or_default())).collect();
        assert!(errs.iter().any(|e| e.contains(msg)), "{c}: expected `{msg}` in {errs:?}");
    }
}
