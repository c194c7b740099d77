//! Helpers: an `onprem` provider over chosen harness hosts with a fresh remote directory,
//! configuration values filled the way the engine fills them, and the engine's plan → create
//! sequence.

use std::time::{Duration, Instant};

use kiln_provider::{CreateRequest, DeleteRequest, LogsRequest, PlanRequest, PlanResponse, Provider, ReadItem, ReadRequest};
use kiln_provider_onprem::OnpremProvider;
use kiln_schema::Body;
use kiln_value::{Map, Value};
use serde_json::json;

use crate::harness::harness;

pub fn json(j: serde_json::Value) -> Value {
    Value::from_json(&j)
}

/// A `host` block for harness host `name`.
pub fn host_block(name: &str) -> serde_json::Value {
    let h = harness().host(name);
    json!({
        "name": h.name, "address": h.address, "port": h.port, "user": h.user,
        "identity_file": harness().identity_file().display().to_string(), "host_key": h.key,
    })
}

/// The provider block for `blocks`, with a fresh root.
pub fn provider_config(blocks: Vec<serde_json::Value>) -> serde_json::Value {
    json!({ "root": harness().scratch("root"), "connect_timeout": 5, "host": blocks })
}

pub fn configure(config: serde_json::Value) -> OnpremProvider {
    let p = OnpremProvider::configure(&json(config), std::path::Path::new("/"));
    p.unwrap_or_else(|d| panic!("configure failed: {d:?}"))
}

/// A provider over harness hosts `names`.
pub fn provider(names: &[&str]) -> OnpremProvider {
    configure(provider_config(names.iter().map(|n| host_block(n)).collect()))
}

/// Another provider instance (another run, another state) over the same hosts and directory.
pub fn sharing_root(p: &OnpremProvider, names: &[&str]) -> OnpremProvider {
    let mut c = provider_config(names.iter().map(|n| host_block(n)).collect());
    c["root"] = json!(p.fleet().root);
    configure(c)
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

pub fn config(p: &OnpremProvider, kind: &str, j: serde_json::Value) -> Value {
    fill(&p.schema().kinds[kind].body, &json(j))
}

fn kind_of(address: &str) -> &str {
    address.split('.').next().expect("kind.name")
}

/// The engine's `propose`: config with computed attributes from the prior, else unknown.
fn propose(p: &OnpremProvider, kind: &str, config: &Value, prior: Option<&Value>) -> Value {
    let mut m = config.as_map().cloned().unwrap_or_default();
    for (name, a) in &p.schema().kinds[kind].body.attributes {
        if a.computed && m.get(name).is_none_or(Value::is_null) {
            m.insert(name.clone(), prior.and_then(|x| x.get(name)).cloned().unwrap_or(Value::Unknown));
        }
    }
    Value::Map(m)
}

pub async fn plan(p: &OnpremProvider, address: &str, config: &Value, prior: Option<&Value>) -> PlanResponse {
    let kind = kind_of(address);
    let proposed = propose(p, kind, config, prior);
    p.plan(PlanRequest { address, kind, prior, replacing: None, config, proposed: &proposed }).await
}

pub fn token() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{:08x}-test", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + u64::from(std::process::id()) * 1000)
}

/// Plans and creates; panics on errors.
pub async fn create(p: &OnpremProvider, address: &str, config: &Value) -> Value {
    let planned = plan(p, address, config, None).await;
    assert!(!planned.diagnostics.has_errors(), "{address}: plan failed: {:?}", planned.diagnostics);
    let created = p.create(CreateRequest { address, kind: kind_of(address), planned: &planned.planned, token: &token() }).await;
    assert!(!created.diagnostics.has_errors(), "{address}: create failed: {:?}", created.diagnostics);
    let state = created.state.expect("created state");
    assert!(!state.contains_unknown(), "{address}: created state has unknowns: {state}");
    state
}

pub async fn read(p: &OnpremProvider, address: &str, state: &Value) -> Option<Value> {
    let r = p.read(ReadRequest { items: vec![ReadItem { address, kind: kind_of(address), state }] }).await;
    let r = r.results.into_iter().next().expect("one result");
    assert!(!r.diagnostics.has_errors(), "{address}: read failed: {:?}", r.diagnostics);
    r.state
}

pub async fn delete(p: &OnpremProvider, address: &str, prior: &Value) -> kiln_diag::Diagnostics {
    p.delete(DeleteRequest { address, kind: kind_of(address), prior }).await
}

pub fn status(state: &Value) -> &str {
    state.get("status").and_then(Value::as_str).unwrap_or_default()
}

/// Reads until `pred` holds (120 s at most: a safety bound, not a speed check).
pub async fn read_until(p: &OnpremProvider, address: &str, state: &Value, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = read(p, address, state).await.expect("still exists");
        if pred(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{address}: condition not reached; last state {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Node `rank`'s whole log, through `logs`.
pub async fn log(p: &OnpremProvider, address: &str, state: &Value, rank: usize) -> String {
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

pub fn num_of(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_number).and_then(|n| u64::try_from(n).ok()).unwrap_or_else(|| panic!("`{k}` is not a number in {v}"))
}
