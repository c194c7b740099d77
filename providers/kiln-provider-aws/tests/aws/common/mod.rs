//! Helpers: a provider pointed at the shared moto server, configuration values filled the way
//! the engine fills them, the engine's plan → create/update sequence, and SDK clients for
//! checking results through the AWS API itself.

pub mod moto;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kiln_provider::{CreateRequest, DeleteRequest, PlanRequest, PlanResponse, Provider, ReadItem, ReadRequest, UpdateRequest};
use kiln_provider_aws::{AwsProvider, Clients, Settings};
use kiln_schema::Body;
use kiln_value::{Map, Value};

pub fn settings() -> Settings {
    Settings {
        region: Some("us-east-1".into()),
        endpoint: Some(moto::server().endpoint()),
        static_credentials: Some(("test".into(), "test".into())),
        initial_backoff: Duration::from_millis(20),
        ..Settings::default()
    }
}

pub async fn provider() -> AwsProvider {
    AwsProvider::connect(settings()).await.expect("provider connects")
}

/// SDK clients for checking what exists, independent of the provider under test.
pub async fn aws() -> Clients {
    Clients::connect(&settings()).await.expect("clients")
}

pub fn json(j: serde_json::Value) -> Value {
    Value::from_json(&j)
}

pub fn token() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{:08x}-test-token", N.fetch_add(1, Ordering::SeqCst) + u64::from(std::process::id()) * 1000)
}

/// Like the engine's evaluation of a block: every schema attribute present (default or null).
fn fill(body: &Body, v: &Value) -> Value {
    let mut m: Map = v.as_map().cloned().unwrap_or_default();
    for (name, a) in &body.attributes {
        m.entry(name.clone()).or_insert_with(|| a.default.clone().unwrap_or(Value::Null));
    }
    Value::Map(m)
}

pub fn config(p: &AwsProvider, kind: &str, j: serde_json::Value) -> Value {
    fill(&p.schema().kinds[kind].body, &json(j))
}

fn kind_of(address: &str) -> &str {
    address.split('.').next().expect("kind.name")
}

/// The engine's `propose`: config with computed attributes from the prior, else unknown.
fn propose(p: &AwsProvider, kind: &str, config: &Value, prior: Option<&Value>) -> Value {
    let mut m = config.as_map().cloned().unwrap_or_default();
    for (name, a) in &p.schema().kinds[kind].body.attributes {
        if a.computed && m.get(name).is_none_or(Value::is_null) {
            m.insert(name.clone(), prior.and_then(|x| x.get(name)).cloned().unwrap_or(Value::Unknown));
        }
    }
    Value::Map(m)
}

pub async fn plan(p: &AwsProvider, address: &str, config: &Value, prior: Option<&Value>) -> PlanResponse {
    let kind = kind_of(address);
    let proposed = propose(p, kind, config, prior);
    p.plan(PlanRequest { address, kind, prior, replacing: None, config, proposed: &proposed }).await
}

/// Plans, asserting success.
pub async fn planned(p: &AwsProvider, address: &str, config: &Value, prior: Option<&Value>) -> Value {
    let r = plan(p, address, config, prior).await;
    assert!(!r.diagnostics.has_errors(), "{address}: plan failed: {:?}", r.diagnostics);
    r.planned
}

pub async fn create(p: &AwsProvider, address: &str, config: &Value) -> Value {
    create_with_token(p, address, config, &token()).await
}

pub async fn create_with_token(p: &AwsProvider, address: &str, config: &Value, token: &str) -> Value {
    let planned = planned(p, address, config, None).await;
    let created = p.create(CreateRequest { address, kind: kind_of(address), planned: &planned, token }).await;
    assert!(!created.diagnostics.has_errors(), "{address}: create failed: {:?}", created.diagnostics);
    created.state.expect("created state")
}

pub async fn update(p: &AwsProvider, address: &str, prior: &Value, config: &Value) -> Value {
    let planned = planned(p, address, config, Some(prior)).await;
    let r = p.update(UpdateRequest { address, kind: kind_of(address), prior, planned: &planned }).await;
    assert!(!r.diagnostics.has_errors(), "{address}: update failed: {:?}", r.diagnostics);
    r.state.expect("updated state")
}

pub async fn read(p: &AwsProvider, address: &str, state: &Value) -> Option<Value> {
    let r = p.read(ReadRequest { items: vec![ReadItem { address, kind: kind_of(address), state }] }).await;
    let r = r.results.into_iter().next().expect("one result");
    assert!(!r.diagnostics.has_errors(), "{address}: read failed: {:?}", r.diagnostics);
    r.state
}

pub async fn delete(p: &AwsProvider, address: &str, prior: &Value) -> kiln_diag::Diagnostics {
    p.delete(DeleteRequest { address, kind: kind_of(address), prior }).await
}

pub fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).map(Value::unmarked).and_then(Value::as_str).unwrap_or_else(|| panic!("`{k}` is not a string in {v}"))
}

pub fn strs(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_list)
        .unwrap_or_else(|| panic!("`{k}` is not a list in {v}"))
        .iter()
        .map(|x| x.as_str().expect("string").to_string())
        .collect()
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
