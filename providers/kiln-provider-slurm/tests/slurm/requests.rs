//! The request grammar on `cluster` (a site's GRES type such as "kilngpu" is a name outside the
//! accelerator table, matched as written; `cpus` and `memory` checked against the partition's
//! nodes), and states written before it, which plan no change.

use serde_json::json;

use crate::common::{config, plan, provider};

/// A state as kiln wrote it before the grammar was shared (captured from that code against the
/// harness's single-node Slurm).
fn state_written_before() -> serde_json::Value {
    json!({"accelerators":"kilngpu:1","account":null,"gpu_type":"kilngpu","gpus_per_node":1,"gres":["gpu:kilngpu:2"],
        "max_time":"UNLIMITED","node_names":["vm"],"node_states":{"vm":"idle"},"nodes":1,"partition":"debug","qos":null,
        "reservation":null,"state":"up","total_cpus":8,"total_gpus":2,"total_nodes":1})
}

#[tokio::test]
async fn a_state_written_before_plans_no_change() {
    let (p, _dir) = provider();
    let prior = kiln_provider::testing::json(state_written_before());
    let cfg = config(&p, "cluster", json!({ "partition": "debug", "accelerators": "kilngpu:1" }));
    let r = plan(&p, "cluster.debug", &cfg, Some(&prior)).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    assert_eq!(kiln_provider::testing::changed(&prior, &r.planned), Vec::<String>::new(), "planned {}", r.planned);
    assert!(r.requires_replace.is_empty());
}
