//! What this machine has: CPU count (`available_parallelism`), memory (`/proc/meminfo`, or
//! `sysctl hw.memsize` where there is no `/proc`) and NVIDIA GPUs, discovered by running
//! `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits` when the
//! command exists. Parsing is pure, in `kiln_hostinfo`, shared with the `onprem` provider.

use std::process::Command;

pub use kiln_hostinfo::gpu::{parse_nvidia_smi, Gpu};
use kiln_hostinfo::mem::gib;
pub use kiln_hostinfo::mem::parse_meminfo;
use kiln_value::{Map, Value};

/// The resources of this machine that clusters share.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub cpus: u64,
    /// Total memory in GiB, one decimal.
    pub memory_gb: f64,
    pub gpus: Vec<Gpu>,
}

impl Machine {
    /// Looks at the real machine.
    pub fn discover() -> Machine {
        Machine {
            cpus: std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1),
            memory_gb: memory_bytes().map(gib).unwrap_or(0.0),
            gpus: discover_gpus(),
        }
    }

    /// "8 GPUs (8 x NVIDIA H100 80GB HBM3)", "0 GPUs".
    pub fn describe_gpus(&self) -> String {
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for g in &self.gpus {
            match kinds.iter_mut().find(|(n, _)| *n == g.name) {
                Some((_, c)) => *c += 1,
                None => kinds.push((g.name.clone(), 1)),
            }
        }
        let n = self.gpus.len();
        let plural = if n == 1 { "" } else { "s" };
        if kinds.is_empty() {
            return format!("{n} GPU{plural}");
        }
        let list: Vec<String> = kinds.iter().map(|(name, c)| format!("{c} x {name}")).collect();
        format!("{n} GPU{plural} ({})", list.join(", "))
    }
}

impl Machine {
    /// The `machine` data source's attributes.
    pub fn to_value(&self) -> Value {
        let m: Map = [
            ("cpus".to_string(), Value::from(self.cpus as i64)),
            ("memory_gb".to_string(), kiln_value::parse_number(&format!("{:.1}", self.memory_gb)).map_or(Value::Null, Value::Number)),
            ("gpus".to_string(), Value::List(self.gpus.iter().map(Gpu::to_value).collect())),
            ("gpu_count".to_string(), Value::from(self.gpus.len())),
        ]
        .into();
        Value::Map(m)
    }
}

fn discover_gpus() -> Vec<Gpu> {
    let out = Command::new("nvidia-smi").args(["--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"]).output();
    match out {
        Ok(o) => parse_nvidia_smi(&String::from_utf8_lossy(&o.stdout)),
        Err(_) => Vec::new(),
    }
}

fn memory_bytes() -> Option<u64> {
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        return parse_meminfo(&text);
    }
    let out = Command::new("sysctl").args(["-n", "hw.memsize"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/../kiln-hostinfo/testdata/nvidia-smi/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn machine(name: &str) -> Machine {
        Machine { cpus: 8, memory_gb: 64.0, gpus: parse_nvidia_smi(&fixture(name)) }
    }

    #[test]
    fn eight_h100() {
        let m = machine("8x-h100-80gb-hbm3.csv");
        assert_eq!(m.gpus.iter().map(|g| g.index).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
        assert!(m.gpus.iter().all(|g| g.name == "NVIDIA H100 80GB HBM3" && g.memory_mib == 81559));
        assert_eq!(m.describe_gpus(), "8 GPUs (8 x NVIDIA H100 80GB HBM3)");
    }

    #[test]
    fn one_rtx_4090() {
        let m = machine("1x-rtx-4090.csv");
        assert_eq!(m.gpus, vec![Gpu { index: 0, name: "NVIDIA GeForce RTX 4090".into(), memory_mib: 24564 }]);
        assert_eq!(m.describe_gpus(), "1 GPU (1 x NVIDIA GeForce RTX 4090)");
    }

    #[test]
    fn no_gpus() {
        assert_eq!(machine("no-devices.csv").describe_gpus(), "0 GPUs");
    }
}
