//! Helpers: a `slurm` provider with a fresh job root, configuration values filled the way the
//! engine fills them, and the engine's plan → create sequence. Every job a test creates is
//! cancelled when its [`Jobs`] guard drops, pass or fail.

use std::time::{Duration, Instant};

use kiln_provider::{CreateRequest, DeleteRequest, LogsRequest, PlanRequest, PlanResponse, Provider, ReadItem, ReadRequest};
use kiln_provider_slurm::SlurmProvider;
use kiln_schema::Body;
use kiln_value::{Map, Value};
use serde_json::json;

use crate::harness::{harness, slurm};

pub fn json(j: serde_json::Value) -> Value {
    Value::from_json(&j)
}

/// A provider running Slurm's commands on this machine, with its own job root.
pub fn provider() -> (SlurmProvider, tempfile::TempDir) {
    harness();
    let dir = tempfile::Builder::new().prefix("kiln-slurm-test-").tempdir().expect("tempdir");
    let config = json(json!({ "root": dir.path().join("root").display().to_string() }));
    let p = SlurmProvider::configure(&config, dir.path()).unwrap_or_else(|d| panic!("configure failed: {d:?}"));
    (p, dir)
}

/// Like the engine's evaluation of a block: every schema attribute present (default or null).
fn fill(body: &Body, v: &Value) -> Value {
    let mut m: Map = v.as_map().cloned().unwrap_or_default();
    for (name, a) in &body.attributes {
        m.entry(name.clone()).or_insert_with(|| a.default.clone().unwrap_or(Value::Null));
    }
    for (name, b) in &body.blocks {
        let filled = m.get(name).filter(|x| !x.is_null()).map_or(Value::Null, |x| fill(&b.body, x));
        m.insert(name.clone(), filled);
    }
    Value::Map(m)
}

pub fn config(p: &SlurmProvider, kind: &str, j: serde_json::Value) -> Value {
    fill(&p.schema().kinds[kind].body, &json(j))
}

fn kind_of(address: &str) -> &str {
    address.split('.').next().expect("kind.name")
}

/// The engine's `propose`: config with computed attributes from the prior, else unknown.
fn propose(p: &SlurmProvider, kind: &str, config: &Value, prior: Option<&Value>) -> Value {
    let mut m = config.as_map().cloned().unwrap_or_default();
    for (name, a) in &p.schema().kinds[kind].body.attributes {
        if a.computed && m.get(name).is_none_or(Value::is_null) {
            m.insert(name.clone(), prior.and_then(|x| x.get(name)).cloned().unwrap_or(Value::Unknown));
        }
    }
    Value::Map(m)
}

pub async fn plan(p: &SlurmProvider, address: &str, config: &Value, prior: Option<&Value>) -> PlanResponse {
    let kind = kind_of(address);
    let proposed = propose(p, kind, config, prior);
    p.plan(PlanRequest { address, kind, prior, replacing: None, config, proposed: &proposed }).await
}

pub fn token() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{:08x}-test", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + u64::from(std::process::id()) * 1000)
}

/// Plans and creates with `token`; panics on errors.
pub async fn create_with(p: &SlurmProvider, address: &str, config: &Value, token: &str) -> Value {
    let planned = plan(p, address, config, None).await;
    assert!(!planned.diagnostics.has_errors(), "{address}: plan failed: {:?}", planned.diagnostics);
    let created = p.create(CreateRequest { address, kind: kind_of(address), planned: &planned.planned, token }).await;
    assert!(!created.diagnostics.has_errors(), "{address}: create failed: {:?}", created.diagnostics);
    let state = created.state.expect("created state");
    assert!(!state.contains_unknown(), "{address}: created state has unknowns: {state}");
    state
}

pub async fn create(p: &SlurmProvider, address: &str, config: &Value) -> Value {
    create_with(p, address, config, &token()).await
}

/// The cluster on partition `debug`, created.
pub async fn debug_cluster(p: &SlurmProvider, extra: serde_json::Value) -> Value {
    let mut c = json!({ "partition": "debug" });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        c[k] = v;
    }
    create(p, "cluster.debug", &config(p, "cluster", c)).await
}

pub async fn read(p: &SlurmProvider, address: &str, state: &Value) -> Option<Value> {
    let r = p.read(ReadRequest { items: vec![ReadItem { address, kind: kind_of(address), state }] }).await;
    let r = r.results.into_iter().next().expect("one result");
    assert!(!r.diagnostics.has_errors(), "{address}: read failed: {:?}", r.diagnostics);
    r.state
}

pub async fn delete(p: &SlurmProvider, address: &str, prior: &Value) -> kiln_diag::Diagnostics {
    p.delete(DeleteRequest { address, kind: kind_of(address), prior }).await
}

pub fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_else(|| panic!("`{k}` is not a string in {v}"))
}

pub fn num_of(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_number).and_then(|n| i64::try_from(n).ok()).unwrap_or_else(|| panic!("`{k}` is not a number in {v}"))
}

pub fn status(state: &Value) -> &str {
    state.get("status").and_then(Value::as_str).unwrap_or_default()
}

/// Reads until `pred` holds (120 s at most: a safety bound, not a speed check).
pub async fn read_until(p: &SlurmProvider, address: &str, state: &Value, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = read(p, address, state).await.expect("still exists");
        if pred(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{address}: condition not reached; last state {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The job's whole output file, through `logs`.
pub async fn log(p: &SlurmProvider, address: &str, state: &Value) -> String {
    let r = p.logs(LogsRequest { address, kind: "job", state, node: 0, offset: 0 }).await;
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
