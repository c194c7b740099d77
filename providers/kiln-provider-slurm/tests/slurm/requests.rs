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

#[tokio::test]
async fn cpus_exactly_and_a_site_gres_type() {
    let (p, _dir) = provider();
    let c =
        crate::common::create(&p, "cluster.one", &config(&p, "cluster", json!({ "accelerators": ["H100:1", "kilngpu:1"], "cpus": "1" })))
            .await;
    assert_eq!(crate::common::str_of(&c, "gpu_type"), "kilngpu", "the first alternative the partition has");
    assert_eq!(crate::common::num_of(&c, "cpus_per_node"), 1);
    let r = plan(&p, "cluster.big", &config(&p, "cluster", json!({ "cpus": "100000" })), None).await;
    let e = r.diagnostics.errors().next().expect("no node has 100000 CPUs");
    assert!(e.summary.contains("has 0 such nodes"), "{}", e.summary);
}

/// Issue 11: a job on a cluster with `cpus = "2"` gets exactly two CPUs on its node (sbatch
/// --cpus-per-task=2 with one task per node; Slurm's default is one); Slurm's own count says so. (Binding the task to
/// that CPU is the site's TaskPlugin's: the harness runs task/none over more CPU slots than cores.)
#[tokio::test]
async fn a_node_given_exact_cpus_gets_exactly_them() {
    let (p, _dir) = provider();
    let c = crate::common::debug_cluster(&p, json!({ "cpus": "2" })).await;
    let run = "echo cpus_on_node=$SLURM_CPUS_ON_NODE; scontrol show job $SLURM_JOB_ID | grep -o 'NumCPUs=[0-9]*'";
    let job = crate::common::create(&p, "job.pinned", &config(&p, "job", json!({ "cluster": c.to_json(), "run": run }))).await;
    let mut guard = crate::common::Jobs::default();
    guard.add(&job);
    let done = crate::common::read_until(&p, "job.pinned", &job, |s| !matches!(crate::common::status(s), "pending" | "running")).await;
    let out = crate::common::log(&p, "job.pinned", &done).await;
    assert_eq!(crate::common::status(&done), "succeeded", "{done}\n{out}");
    assert!(out.contains("cpus_on_node=2\n") && out.contains("NumCPUs=2"), "the node has exactly two CPUs: {out}");
    assert!(!crate::common::delete(&p, "job.pinned", &done).await.has_errors());
}
