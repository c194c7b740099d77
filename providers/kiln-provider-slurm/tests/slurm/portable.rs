//! The portable conformance cases (`kiln_provider::portable::conformance`) on the single-node
//! Slurm cluster. With one node, the environment case's two ranks are two tasks of a one-node
//! job (`tasks = 2`): task 1 connects to KILN_MASTER_ADDR:KILN_MASTER_PORT (this node's
//! address) and task 0 accepts; across two nodes it would take a second slurmd host. Slurm has
//! no `bucket` kind: the checkpoint bucket is an object with a `path` on the shared file system.

use std::time::Duration;

use kiln_provider::portable::conformance::{self as portable, Setup};
use kiln_provider::{async_trait, Provider};
use kiln_value::Value;
use serde_json::json;

use crate::common::{json, provider};

struct Slurm {
    buckets: tempfile::TempDir,
}

impl Slurm {
    fn new() -> Self {
        Slurm { buckets: tempfile::Builder::new().prefix("kiln-slurm-conformance-").tempdir().expect("tempdir") }
    }
}

#[async_trait]
impl Setup for Slurm {
    fn cluster_config(&self, nodes: usize) -> serde_json::Value {
        json!({ "partition": "debug", "nodes": nodes })
    }

    async fn bucket(&self, _p: &dyn Provider) -> Value {
        json(json!({ "path": self.buckets.path().display().to_string() }))
    }

    fn two_ranks(&self) -> (usize, serde_json::Value) {
        (1, json!({ "tasks": 2 }))
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(120)
    }
}

#[test]
fn portable_schema_shape() {
    portable::schema_shape(&provider().0);
}

#[test]
fn portable_request_grammar() {
    portable::request_grammar(&provider().0, &Slurm::new());
}

#[tokio::test]
async fn portable_environment() {
    let (p, _dir) = provider();
    portable::environment(&p, &Slurm::new()).await;
}

#[tokio::test]
async fn portable_checkpoint_round_trip() {
    let (p, _dir) = provider();
    portable::checkpoint_round_trip(&p, &Slurm::new()).await;
}

#[tokio::test]
async fn portable_status_vocabulary() {
    let (p, _dir) = provider();
    portable::status_vocabulary(&p, &Slurm::new()).await;
}
