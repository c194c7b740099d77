//! Helpers: a provider in a temporary directory with a chosen machine, configuration values
//! filled the way the engine fills them, and the engine's plan → create sequence.

pub use kiln_provider::testing::*;
use kiln_provider::{LogsRequest, Provider};
use kiln_provider_local::{parse_nvidia_smi, LocalProvider, Machine};
use kiln_value::Value;
use tempfile::TempDir;

/// A machine with `cpus` CPUs, 64 GiB and the GPUs of a recorded `nvidia-smi` output.
pub fn machine(cpus: u64, nvidia_smi: &str) -> Machine {
    let path = format!("{}/../kiln-hostinfo/testdata/nvidia-smi/{nvidia_smi}", env!("CARGO_MANIFEST_DIR"));
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

/// Reads until the job leaves `pending` and `running`.
pub async fn finished(p: &LocalProvider, address: &str, state: &Value) -> Value {
    read_until(p, address, state, |s| !matches!(status(s), "running" | "pending")).await
}

/// Node `rank`'s whole log, through `logs`.
pub async fn log(p: &LocalProvider, address: &str, state: &Value, rank: usize) -> String {
    let r = p.logs(LogsRequest { address, kind: "job", state, node: rank, offset: 0, seek: None }).await;
    assert!(!r.diagnostics.has_errors(), "{address}: logs failed: {:?}", r.diagnostics);
    String::from_utf8_lossy(&r.data).into_owned()
}
