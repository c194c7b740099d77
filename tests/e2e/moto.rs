//! The AWS API server the `aws` end-to-end tests run the binary against: moto, started once per
//! test binary by `kiln_testkit::moto` (the same venv and launcher as the aws provider's and the
//! S3 backend's tests, with the spot-interruption and fault-injection controls).
//!
//! [`exclusive`] serialises the tests that use the server and resets it (`POST /moto-api/reset`,
//! which also drops injected faults). [`Inspect::inspect`] reads what the endpoint holds through the
//! AWS API itself (boto3, from the venv: moto depends on it), via `tests/e2e/aws_inspect.py`.

// Without the aws provider, only the S3 backend's tests use the server.
#![cfg_attr(not(feature = "aws"), allow(dead_code))]

use std::process::Command;
use std::sync::{Mutex, MutexGuard};

pub use kiln_testkit::moto::{server, Moto};

use crate::support::repo_root;

const INSPECT: &str = "tests/e2e/aws_inspect.py";

/// Serialises the tests that use the server; the server is reset when the guard is taken. A
/// test that failed while holding the guard does not stop the others.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    server().reset();
    guard
}

/// Reading the server's contents through the AWS API.
pub trait Inspect {
    /// What the endpoint holds in us-east-1, read through the AWS API with boto3 (see
    /// `aws_inspect.py`).
    fn inspect(&self) -> Inventory {
        self.inspect_region("us-east-1")
    }

    /// What the endpoint holds in `region`.
    fn inspect_region(&self, region: &str) -> Inventory;
}

impl Inspect for Moto {
    fn inspect_region(&self, region: &str) -> Inventory {
        let out = Command::new(self.python())
            .arg(repo_root().join(INSPECT))
            .arg(self.endpoint())
            .arg(region)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("run aws_inspect.py");
        assert!(out.status.success(), "aws_inspect.py failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("aws_inspect.py prints JSON");
        Inventory(v)
    }
}

/// What [`Inspect::inspect`] found.
#[derive(Debug, Clone)]
pub struct Inventory(pub serde_json::Value);

fn list<'a>(v: &'a serde_json::Value, key: &str) -> Vec<&'a serde_json::Value> {
    v[key].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

pub fn tag<'a>(item: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    item["tags"][key].as_str()
}

impl Inventory {
    /// Every instance, terminated ones too.
    pub fn instances(&self) -> Vec<&serde_json::Value> {
        list(&self.0, "instances")
    }

    /// Instances pending or running.
    pub fn live_instances(&self) -> Vec<&serde_json::Value> {
        self.instances().into_iter().filter(|i| matches!(i["state"].as_str(), Some("pending" | "running"))).collect()
    }

    /// Live instances whose `kiln:address` tag is `address`.
    pub fn live_of(&self, address: &str) -> Vec<&serde_json::Value> {
        self.live_instances().into_iter().filter(|i| tag(i, "kiln:address") == Some(address)).collect()
    }

    pub fn instance(&self, id: &str) -> &serde_json::Value {
        self.instances().into_iter().find(|i| i["id"] == id).unwrap_or_else(|| panic!("no instance {id} in {:#}", self.0["instances"]))
    }

    pub fn fleets(&self) -> Vec<&serde_json::Value> {
        list(&self.0, "fleets")
    }

    /// Fleets that are not deleted.
    pub fn active_fleets(&self) -> Vec<&serde_json::Value> {
        self.fleets().into_iter().filter(|f| !f["state"].as_str().unwrap_or_default().starts_with("deleted")).collect()
    }

    pub fn buckets(&self) -> Vec<&serde_json::Value> {
        list(&self.0, "buckets")
    }

    pub fn launch_templates(&self) -> Vec<&serde_json::Value> {
        list(&self.0, "launch_templates")
    }

    /// Security groups other than the VPCs' default ones.
    pub fn security_groups(&self) -> Vec<&serde_json::Value> {
        list(&self.0, "security_groups")
    }

    pub fn key_pairs(&self) -> Vec<&serde_json::Value> {
        list(&self.0, "key_pairs")
    }
}
