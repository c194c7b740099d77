//! Placement offerings: the idle nodes of the test cluster's partition, with their GRES GPUs,
//! priced by the provider block's `hourly_price` and `gpu_hour_price`; a node running a job
//! offers nothing.
//!
//! The cluster has one node, which the other tests' jobs keep busy at times: the first part
//! waits until the node is idle between them, the second holds it with a job of its own.

use std::time::{Duration, Instant};

use kiln_provider::offerings::{Offering, Offerings};
use kiln_provider::Provider;
use kiln_provider_slurm::SlurmProvider;
use kiln_value::Decimal;
use serde_json::json;

use crate::common::{json, Jobs};
use crate::harness::{harness, slurm, squeue_state};

/// A provider on this machine pricing nodes at 0.5 per hour and 2 per GPU-hour.
fn priced() -> (SlurmProvider, tempfile::TempDir) {
    harness();
    let dir = tempfile::Builder::new().prefix("kiln-slurm-offers-").tempdir().expect("tempdir");
    let config = json(json!({ "root": dir.path().join("root").display().to_string(), "hourly_price": 0.5, "gpu_hour_price": 2 }));
    let p = SlurmProvider::configure(&config, dir.path()).unwrap_or_else(|d| panic!("configure failed: {d:?}"));
    (p, dir)
}

async fn owned(p: &SlurmProvider) -> Vec<Offering> {
    let r = Provider::offerings(p).await;
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    match r.offerings {
        Offerings::Owned(rows) => rows,
        other => panic!("slurm offers owned hardware, got {other:?}"),
    }
}

/// Waits for `what` to hold (it depends on Slurm's scheduler and the other tests' jobs).
async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < deadline, "{what} did not happen in 10 minutes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn idle_nodes_are_offered_at_their_price_and_busy_ones_are_not() {
    let (p, _dir) = priced();
    let row = eventually("the node idle between other tests' jobs", async || owned(&p).await.into_iter().next()).await;
    assert_eq!(row.cloud, "slurm");
    assert_eq!(row.instance_type, "debug", "the partition");
    let gpu = row.accelerator.as_ref().expect("the node's GRES GPUs");
    assert_eq!((gpu.name.as_str(), gpu.count), ("kilngpu", 2), "a site's GRES type stays as Slurm spells it");
    assert!(row.vcpus >= 8, "{row:?}");
    assert!(row.memory_gib >= Decimal::from(1), "{row:?}");
    assert_eq!(row.price_hourly, Some(Decimal::new(45, 1)), "0.5 + 2 GPUs x 2");
    assert_eq!((row.available, row.spot_price_hourly, row.region.as_deref()), (Some(1), None, None));

    // A job of our own holds the node: it is not idle, and nothing is offered while it runs.
    let id = slurm(&["sbatch", "--parsable", "-p", "debug", "--chdir", "/tmp", "-o", "/dev/null", "--wrap", "sleep 600"]);
    let id = id.trim().split(';').next().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "sbatch gave no job ID");
    let _jobs = Jobs(vec![id.clone()]);
    eventually("our job running", async || (squeue_state(&id) == "RUNNING").then_some(())).await;
    assert_eq!(owned(&p).await, [], "a node running a job offers nothing");
}
