//! Driving a provider the way the engine does, for providers' own tests against their real
//! services: configurations filled from the schema, proposals with prior computed values, and
//! plan → create / update / read / delete sequences that panic with the address and the
//! diagnostics when a step fails. The [`crate::conformance`] suite checks the contract; these
//! helpers let each provider's tests check its behaviour.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kiln_diag::Diagnostics;
use kiln_schema::Body;
use kiln_value::{Map, Value};

use crate::{CreateRequest, DeleteRequest, PlanRequest, PlanResponse, Provider, ReadItem, ReadRequest, UpdateRequest};

/// A value from JSON.
pub fn json(j: serde_json::Value) -> Value {
    Value::from_json(&j)
}

/// A fresh idempotency token, unique across the tests of this process and concurrent processes.
pub fn token() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{:08x}-test-token", N.fetch_add(1, Ordering::SeqCst) + u64::from(std::process::id()) * 1000)
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

/// The configuration of a `kind` block written as JSON, as the engine evaluates it.
pub fn config(p: &dyn Provider, kind: &str, j: serde_json::Value) -> Value {
    fill(&p.schema().kinds[kind].body, &json(j))
}

/// `cluster` of `cluster.train`.
pub fn kind_of(address: &str) -> &str {
    address.split('.').next().expect("kind.name")
}

/// The engine's proposal: config with computed attributes from the prior, else unknown.
fn propose(p: &dyn Provider, kind: &str, config: &Value, prior: Option<&Value>) -> Value {
    let mut m = config.as_map().cloned().unwrap_or_default();
    for (name, a) in &p.schema().kinds[kind].body.attributes {
        if a.computed && m.get(name).is_none_or(Value::is_null) {
            m.insert(name.clone(), prior.and_then(|x| x.get(name)).cloned().unwrap_or(Value::Unknown));
        }
    }
    Value::Map(m)
}

pub async fn plan(p: &dyn Provider, address: &str, config: &Value, prior: Option<&Value>) -> PlanResponse {
    let kind = kind_of(address);
    let proposed = propose(p, kind, config, prior);
    p.plan(PlanRequest { address, kind, prior, replacing: None, config, proposed: &proposed }).await
}

/// The plan of the create half of a replacement of `replacing`.
pub async fn plan_replacing(p: &dyn Provider, address: &str, config: &Value, replacing: &Value) -> PlanResponse {
    let kind = kind_of(address);
    let proposed = propose(p, kind, config, None);
    p.plan(PlanRequest { address, kind, prior: None, replacing: Some(replacing), config, proposed: &proposed }).await
}

/// Plans, asserting success: the planned value.
pub async fn planned(p: &dyn Provider, address: &str, config: &Value, prior: Option<&Value>) -> Value {
    let r = plan(p, address, config, prior).await;
    assert!(!r.diagnostics.has_errors(), "{address}: plan failed: {:?}", r.diagnostics);
    r.planned
}

/// Plans and creates; panics on errors, and on a created state that still holds unknowns.
pub async fn create(p: &dyn Provider, address: &str, config: &Value) -> Value {
    create_with_token(p, address, config, &token()).await
}

pub async fn create_with_token(p: &dyn Provider, address: &str, config: &Value, token: &str) -> Value {
    let planned = planned(p, address, config, None).await;
    let created = p.create(CreateRequest { address, kind: kind_of(address), planned: &planned, token }).await;
    assert!(!created.diagnostics.has_errors(), "{address}: create failed: {:?}", created.diagnostics);
    let state = created.state.expect("created state");
    assert!(!state.contains_unknown(), "{address}: created state has unknowns: {state}");
    state
}

/// Plans against `prior` and updates in place; panics on errors.
pub async fn update(p: &dyn Provider, address: &str, prior: &Value, config: &Value) -> Value {
    let planned = planned(p, address, config, Some(prior)).await;
    let r = p.update(UpdateRequest { address, kind: kind_of(address), prior, planned: &planned }).await;
    assert!(!r.diagnostics.has_errors(), "{address}: update failed: {:?}", r.diagnostics);
    r.state.expect("updated state")
}

/// Refreshes one object; `None` when it is gone. Panics on errors.
pub async fn read(p: &dyn Provider, address: &str, state: &Value) -> Option<Value> {
    let r = p.read(ReadRequest { items: vec![ReadItem { address, kind: kind_of(address), state }] }).await;
    let r = r.results.into_iter().next().expect("one result");
    assert!(!r.diagnostics.has_errors(), "{address}: read failed: {:?}", r.diagnostics);
    r.state
}

pub async fn delete(p: &dyn Provider, address: &str, prior: &Value) -> Diagnostics {
    p.delete(DeleteRequest { address, kind: kind_of(address), prior }).await
}

/// Refreshes until `pred` holds (120 s at most: a safety bound, not a speed check).
pub async fn read_until(p: &dyn Provider, address: &str, state: &Value, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = read(p, address, state).await.unwrap_or_else(|| panic!("{address} is gone"));
        if pred(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{address}: condition not reached; last state {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A job's `status` attribute ("" when there is none).
pub fn status(state: &Value) -> &str {
    state.get("status").and_then(Value::as_str).unwrap_or_default()
}

pub fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).map(Value::unmarked).and_then(Value::as_str).unwrap_or_else(|| panic!("`{k}` is not a string in {v}"))
}

pub fn list_of<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_list).unwrap_or_else(|| panic!("`{k}` is not a list in {v}"))
}

/// A list of strings attribute.
pub fn strs(v: &Value, k: &str) -> Vec<String> {
    list_of(v, k).iter().map(|x| x.as_str().expect("string").to_string()).collect()
}

/// Keys whose planned value differs from the prior (unknown counts as a change), like the engine.
pub fn changed(prior: &Value, planned: &Value) -> Vec<String> {
    let (p, n) = (prior.as_map().expect("map"), planned.as_map().expect("map"));
    let mut keys: Vec<&String> = p.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| p.get(*k).unwrap_or(&Value::Null).known_eq(n.get(*k).unwrap_or(&Value::Null)) != Some(true))
        .cloned()
        .collect()
}
