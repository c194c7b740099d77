//! The portable conformance cases (`kiln_provider::portable::conformance`) against moto, with
//! the real agent from each instance's user data running the jobs on this machine. The clusters
//! are launched into a subnet of 127.0.0.0/16, so the instances' private IPs (KILN_NODE_IPS,
//! KILN_MASTER_ADDR) are loopback addresses of this machine and rank 1 reaches rank 0 there as
//! it would over a VPC.

use std::sync::Mutex;
use std::time::Duration;

use kiln_provider::portable::conformance::{self as portable, Setup};
use kiln_provider::{async_trait, Provider};
use kiln_value::Value;
use serde_json::json;

use crate::common::moto::exclusive;
use crate::common::*;
use crate::job::Agents;

/// The agents booted for the clusters it made; stopped (with their jobs) when it is dropped.
#[derive(Default)]
struct Aws {
    agents: Mutex<Vec<Agents>>,
}

#[async_trait]
impl Setup for Aws {
    fn cluster_config(&self, nodes: usize) -> serde_json::Value {
        json!({ "nodes": nodes })
    }

    fn spot_pool_config(&self) -> Option<serde_json::Value> {
        Some(json!({ "capacity": 1 }))
    }

    async fn cluster(&self, p: &dyn Provider, address: &str, nodes: usize) -> Value {
        let vpc = create(p, &format!("aws_vpc.{address}"), &config(p, "aws_vpc", json!({ "cidr_block": "127.0.0.0/16" }))).await;
        let subnet = create(
            p,
            &format!("aws_subnet.{address}"),
            &config(p, "aws_subnet", json!({ "vpc_id": str_of(&vpc, "id"), "cidr_block": "127.0.42.0/24" })),
        )
        .await;
        let cfg = json!({ "instance_type": "t3.micro", "nodes": nodes, "subnet_id": str_of(&subnet, "id") });
        let cluster = create(p, &format!("cluster.{address}"), &config(p, "cluster", cfg)).await;
        let agents = Agents::boot(&strs(&cluster, "instance_ids")).await;
        self.agents.lock().unwrap().push(agents);
        cluster
    }

    async fn bucket(&self, p: &dyn Provider) -> Value {
        create(p, "bucket.conformance", &config(p, "bucket", json!({ "force_destroy": true }))).await
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(60)
    }
}

#[tokio::test]
async fn portable_schema_shape() {
    portable::schema_shape(&provider().await);
}

#[tokio::test]
async fn portable_request_grammar() {
    portable::request_grammar(&provider().await, &Aws::default());
}

#[tokio::test]
async fn portable_environment() {
    let _g = exclusive().await;
    portable::environment(&provider().await, &Aws::default()).await;
}

#[tokio::test]
async fn portable_checkpoint_round_trip() {
    let _g = exclusive().await;
    portable::checkpoint_round_trip(&provider().await, &Aws::default()).await;
}

#[tokio::test]
async fn portable_status_vocabulary() {
    let _g = exclusive().await;
    portable::status_vocabulary(&provider().await, &Aws::default()).await;
}
