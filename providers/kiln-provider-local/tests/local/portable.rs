//! The portable conformance cases (`kiln_provider::portable::conformance`) on this machine: a
//! two-node job's ranks meet over loopback.

use std::time::Duration;

use kiln_provider::portable::conformance::{self as portable, Setup};
use kiln_provider::{async_trait, Provider};
use kiln_value::Value;
use serde_json::json;

use crate::common::*;

struct Local;

#[async_trait]
impl Setup for Local {
    fn cluster_config(&self, nodes: usize) -> serde_json::Value {
        json!({ "nodes": nodes })
    }

    async fn bucket(&self, p: &dyn Provider) -> Value {
        create(p, "bucket.conformance", &config(p, "bucket", json!({ "force_destroy": true }))).await
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(60)
    }
}

#[test]
fn portable_schema_shape() {
    portable::schema_shape(&cpu_provider().1);
}

#[test]
fn portable_request_grammar() {
    portable::request_grammar(&cpu_provider().1, &Local);
}

#[tokio::test]
async fn portable_environment() {
    let (_dir, p) = cpu_provider();
    portable::environment(&p, &Local).await;
}

#[tokio::test]
async fn portable_checkpoint_round_trip() {
    let (_dir, p) = cpu_provider();
    portable::checkpoint_round_trip(&p, &Local).await;
}

#[tokio::test]
async fn portable_status_vocabulary() {
    let (_dir, p) = cpu_provider();
    portable::status_vocabulary(&p, &Local).await;
}
