//! Helpers: a `slurm` provider with a fresh job root, configuration values filled the way the
//! engine fills them, and the engine's plan → create sequence. Every job a test creates is
//! cancelled when its [`Jobs`] guard drops, pass or fail.

use kiln_provider::{CreateRequest, LogsRequest, Provider};
use kiln_provider_slurm::SlurmProvider;
use kiln_value::Value;
use serde_json::json;

use crate::harness::{harness, slurm};
pub use kiln_provider::testing::*;

/// A provider running Slurm's commands on this machine, with its own job root.
pub fn provider() -> (SlurmProvider, tempfile::TempDir) {
    harness();
    let dir = tempfile::Builder::new().prefix("kiln-slurm-test-").tempdir().expect("tempdir");
    let config = json(json!({ "root": dir.path().join("root").display().to_string() }));
    let p = SlurmProvider::configure(&config, dir.path()).unwrap_or_else(|d| panic!("configure failed: {d:?}"));
    (p, dir)
}

/// Plans and creates with `token`; panics on errors.
pub async fn create_with_token(p: &SlurmProvider, address: &str, config: &Value, token: &str) -> Value {
    let planned = plan(p, address, config, None).await;
    assert!(!planned.diagnostics.has_errors(), "{address}: plan failed: {:?}", planned.diagnostics);
    let created = p.create(CreateRequest { address, kind: kind_of(address), planned: &planned.planned, token }).await;
    assert!(!created.diagnostics.has_errors(), "{address}: create failed: {:?}", created.diagnostics);
    let state = created.state.expect("created state");
    assert!(!state.contains_unknown(), "{address}: created state has unknowns: {state}");
    state
}

/// The cluster on partition `debug`, created.
pub async fn debug_cluster(p: &SlurmProvider, extra: serde_json::Value) -> Value {
    let mut c = json!({ "partition": "debug" });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        c[k] = v;
    }
    create(p, "cluster.debug", &config(p, "cluster", c)).await
}

pub fn num_of(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_number).and_then(|n| i64::try_from(n).ok()).unwrap_or_else(|| panic!("`{k}` is not a number in {v}"))
}

/// The job's whole output file, through `logs`.
pub async fn log(p: &SlurmProvider, address: &str, state: &Value) -> String {
    let r = p.logs(LogsRequest { address, kind: "job", state, node: 0, offset: 0, seek: None }).await;
    assert!(!r.diagnostics.has_errors(), "{address}: logs failed: {:?}", r.diagnostics);
    String::from_utf8_lossy(&r.data).into_owned()
}

/// Cancels the Slurm jobs it was given when dropped (tests that fail leave nothing running).
#[derive(Default)]
pub struct Jobs(pub Vec<String>);

impl Jobs {
    pub fn add(&mut self, state: &Value) {
        self.0.push(str_of(state, "job_id").to_string());
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let mut args = vec!["scancel"];
            args.extend(self.0.iter().map(String::as_str));
            slurm(&args);
        }
    }
}
