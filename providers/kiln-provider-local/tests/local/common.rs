//! Helpers: a provider in a temporary directory with a chosen machine, configuration values
//! filled the way the engine fills them, and the engine's plan → create sequence.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kiln_provider::{CreateRequest, DeleteRequest, LogsRequest, PlanRequest, PlanResponse, Provider, ReadItem, ReadRequest, UpdateRequest};
use kiln_provider_local::{parse_nvidia_smi, LocalProvider, Machine};
use kiln_schema::Body;
use kiln_value::{Map, Value};
use tempfile::TempDir;

/// A machine with `cpus` CPUs, 64 GiB and the GPUs of a recorded `nvidia-smi` output.
pub fn machine(cpus: u64, nvidia_smi: &str) -> Machine {
    let path = format!("{}/testdata/nvidia-smi/{nvidia_smi}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Machine { cpus, memory_gb: 64.0, gpus: parse_nvidia_smi(&text) }
}

/// A provider working in a fresh temporary directory.
pub fn provider(m: Machine) -> (TempDir, LocalProvider) {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = LocalProvider::new(dir.path(), None).with_machine(m);
    (dir, p)
}

pub fn cpu_provider() -> (TempDir, LocalProvider) {
    provider(machine(4, "empty.csv"))
}

pub fn json(j: serde_json::Value) -> Value {
    Value::from_json(&j)
}

pub fn token() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{:08x}-test", N.fetch_add(1, Ordering::SeqCst) + u64::from(std::process::id()) * 1000)
}

/// Like the engine's evaluation of a block: every schema attribute present (default or null),
/// nested blocks filled the same way.
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

pub fn config(p: &LocalProvider, kind: &str, j: serde_json::Value) -> Value {
    fill(&p.schema().kinds[kind].body, &json(j))
}

/// The engine's `propose`: config with computed attributes from the prior, else unknown.
fn propose(p: &LocalProvider, kind: &str, config: &Value, prior: Option<&Value>) -> Value {
    let mut m = config.as_map().cloned().unwrap_or_default();
    for (name, a) in &p.schema().kinds[kind].body.attributes {
        if a.computed && m.get(name).is_none_or(Value::is_null) {
            m.insert(name.clone(), prior.and_then(|x| x.get(name)).cloned().unwrap_or(Value::Unknown));
        }
    }
    Value::Map(m)
}

pub async fn plan(p: &LocalProvider, address: &str, config: &Value, prior: Option<&Value>) -> PlanResponse {
    let kind = kind_of(address);
    let proposed = propose(p, kind, config, prior);
    p.plan(PlanRequest { address, kind, prior, replacing: None, config, proposed: &proposed }).await
}

/// The plan of the create half of a replacement of `replacing`.
pub async fn plan_replacing(p: &LocalProvider, address: &str, config: &Value, replacing: &Value) -> PlanResponse {
    let kind = kind_of(address);
    let proposed = propose(p, kind, config, None);
    p.plan(PlanRequest { address, kind, prior: None, replacing: Some(replacing), config, proposed: &proposed }).await
}

fn kind_of(address: &str) -> &str {
    address.split('.').next().expect("kind.name")
}

/// Plans and creates; panics on errors.
pub async fn create(p: &LocalProvider, address: &str, config: &Value) -> Value {
    create_with_token(p, address, config, &token()).await
}

pub async fn create_with_token(p: &LocalProvider, address: &str, config: &Value, token: &str) -> Value {
    let planned = plan(p, address, config, None).await;
    assert!(!planned.diagnostics.has_errors(), "{address}: plan failed: {:?}", planned.diagnostics);
    let created = p.create(CreateRequest { address, kind: kind_of(address), planned: &planned.planned, token }).await;
    assert!(!created.diagnostics.has_errors(), "{address}: create failed: {:?}", created.diagnostics);
    created.state.expect("created state")
}

pub async fn update(p: &LocalProvider, address: &str, prior: &Value, config: &Value) -> Value {
    let planned = plan(p, address, config, Some(prior)).await;
    assert!(!planned.diagnostics.has_errors(), "{address}: plan failed: {:?}", planned.diagnostics);
    let r = p.update(UpdateRequest { address, kind: kind_of(address), prior, planned: &planned.planned }).await;
    assert!(!r.diagnostics.has_errors(), "{address}: update failed: {:?}", r.diagnostics);
    r.state.expect("updated state")
}

pub async fn read(p: &LocalProvider, address: &str, state: &Value) -> Option<Value> {
    let r = p.read(ReadRequest { items: vec![ReadItem { address, kind: kind_of(address), state }] }).await;
    let r = r.results.into_iter().next().expect("one result");
    assert!(!r.diagnostics.has_errors(), "{address}: read failed: {:?}", r.diagnostics);
    r.state
}

pub async fn delete(p: &LocalProvider, address: &str, prior: &Value) -> kiln_diag::Diagnostics {
    p.delete(DeleteRequest { address, kind: kind_of(address), prior }).await
}

pub fn status(state: &Value) -> &str {
    state.get("status").and_then(Value::as_str).unwrap_or_default()
}

/// Reads until `pred` holds (60 s at most: a safety bound, not a speed check).
pub async fn read_until(p: &LocalProvider, address: &str, state: &Value, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = read(p, address, state).await.expect("job still exists");
        if pred(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{address}: condition not reached; last state {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads until the job leaves `pending` and `running`.
pub async fn finished(p: &LocalProvider, address: &str, state: &Value) -> Value {
    read_until(p, address, state, |s| !matches!(status(s), "running" | "pending")).await
}

/// Node `rank`'s whole log, through `logs`.
pub async fn log(p: &LocalProvider, address: &str, state: &Value, rank: usize) -> String {
    let r = p.logs(LogsRequest { address, kind: "job", state, node: rank, offset: 0 }).await;
    assert!(!r.diagnostics.has_errors(), "{address}: logs failed: {:?}", r.diagnostics);
    String::from_utf8_lossy(&r.data).into_owned()
}

pub fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_else(|| panic!("`{k}` is not a string in {v}"))
}

pub fn list_of<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_list).unwrap_or_else(|| panic!("`{k}` is not a list in {v}"))
}
