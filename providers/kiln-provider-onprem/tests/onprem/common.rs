//! Helpers: an `onprem` provider over chosen harness hosts with a fresh remote directory,
//! configuration values filled the way the engine fills them, and the engine's plan → create
//! sequence.

use kiln_provider::{LogsRequest, Provider};
use kiln_provider_onprem::OnpremProvider;
use kiln_value::Value;
use serde_json::json;

use crate::harness::harness;
pub use kiln_provider::testing::*;

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

/// Node `rank`'s whole log, through `logs`.
pub async fn log(p: &OnpremProvider, address: &str, state: &Value, rank: usize) -> String {
    let r = p.logs(LogsRequest { address, kind: "job", state, node: rank, offset: 0, seek: None }).await;
    assert!(!r.diagnostics.has_errors(), "{address}: logs failed: {:?}", r.diagnostics);
    String::from_utf8_lossy(&r.data).into_owned()
}

pub fn num_of(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_number).and_then(|n| u64::try_from(n).ok()).unwrap_or_else(|| panic!("`{k}` is not a number in {v}"))
}
