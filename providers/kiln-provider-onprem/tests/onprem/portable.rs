//! The portable conformance cases (`kiln_provider::portable::conformance`) on the harness's
//! sshd hosts: a two-node job runs on host3 (127.0.1.3) and host4 (127.0.1.4), so its ranks
//! meet across two hosts' addresses.

use std::time::Duration;

use kiln_provider::portable::conformance::{self as portable, Setup};
use kiln_provider::{async_trait, Provider};
use kiln_value::Value;
use serde_json::json;

use crate::common::*;
use crate::harness::harness;

struct Onprem;

/// The hosts the cases use (not host5 or host6, which other tests take down).
const HOSTS: [&str; 2] = ["host3", "host4"];

#[async_trait]
impl Setup for Onprem {
    fn cluster_config(&self, nodes: usize) -> serde_json::Value {
        json!({ "nodes": nodes })
    }

    /// A directory both hosts see (they share this machine's disk), declared `shared`.
    async fn bucket(&self, p: &dyn Provider) -> Value {
        let cfg = json!({ "host": HOSTS[0], "path": harness().scratch("conformance"), "shared": true, "force_destroy": true });
        create(p, "bucket.conformance", &config(p, "bucket", cfg)).await
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(90)
    }
}

#[test]
fn portable_schema_shape() {
    portable::schema_shape(&provider(&HOSTS));
}

#[test]
fn portable_request_grammar() {
    portable::request_grammar(&provider(&HOSTS), &Onprem);
}

#[tokio::test]
async fn portable_environment() {
    portable::environment(&provider(&HOSTS), &Onprem).await;
}

#[tokio::test]
async fn portable_checkpoint_round_trip() {
    portable::checkpoint_round_trip(&provider(&HOSTS), &Onprem).await;
}

#[tokio::test]
async fn portable_status_vocabulary() {
    portable::status_vocabulary(&provider(&HOSTS), &Onprem).await;
}
