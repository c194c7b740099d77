//! GPUs as a host's tools report them: NVIDIA through `nvidia-smi` (parsed by the `local`
//! provider's parser, shared rather than copied) and AMD through
//! `rocm-smi --showproductname --showmeminfo vram --json`. A host without either tool, or whose
//! tool finds no device, has zero GPUs.

use kiln_provider_local::parse_nvidia_smi;
use kiln_value::Value;

use crate::util::{num, obj};

/// The command line whose output [`parse_nvidia`] reads.
pub const NVIDIA_SMI: &str = "nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits";
/// The command line whose output [`parse_rocm`] reads.
pub const ROCM_SMI: &str = "rocm-smi --showproductname --showmeminfo vram --json";

/// One GPU of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGpu {
    /// `nvidia` or `amd`.
    pub vendor: &'static str,
    /// The device index (CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES numbering).
    pub index: u32,
    pub name: String,
    pub memory_mib: u64,
}

impl HostGpu {
    pub fn to_value(&self) -> Value {
        obj([
            ("index", num(self.index.into())),
            ("name", Value::from(self.name.as_str())),
            ("memory_mib", num(self.memory_mib)),
            ("vendor", Value::from(self.vendor)),
        ])
    }
}

/// GPUs in `nvidia-smi` output (see [`NVIDIA_SMI`]).
pub fn parse_nvidia(out: &str) -> Vec<HostGpu> {
    parse_nvidia_smi(out)
        .into_iter()
        .map(|g| HostGpu { vendor: "nvidia", index: g.index, name: g.name, memory_mib: g.memory_mib })
        .collect()
}

/// GPUs in `rocm-smi --json` output: an object with one `cardN` entry per device (other
/// entries, such as `system`, are skipped). Text before the JSON (warnings some versions print)
/// is ignored; a name comes from `Card series`/`Card Series`, else `Card model`; memory from
/// `VRAM Total Memory (B)` (0 when absent).
pub fn parse_rocm(out: &str) -> Vec<HostGpu> {
    let Some(start) = out.find('{') else { return Vec::new() };
    let Ok(serde_json::Value::Object(cards)) = serde_json::from_str::<serde_json::Value>(&out[start..]) else { return Vec::new() };
    let mut gpus: Vec<HostGpu> = cards.iter().filter_map(|(k, v)| rocm_card(k, v)).collect();
    gpus.sort_by_key(|g| g.index);
    gpus
}

fn rocm_card(key: &str, v: &serde_json::Value) -> Option<HostGpu> {
    let index = key.strip_prefix("card")?.parse().ok()?;
    let field = |names: &[&str]| names.iter().find_map(|n| v.get(*n).and_then(|x| x.as_str()).map(str::trim).filter(|s| !s.is_empty()));
    let name = field(&["Card series", "Card Series", "Card model", "Card Model"]).unwrap_or("AMD GPU").to_string();
    let bytes: u64 = field(&["VRAM Total Memory (B)"]).and_then(|b| b.parse().ok()).unwrap_or(0);
    Some(HostGpu { vendor: "amd", index, name, memory_mib: bytes >> 20 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> String {
        let p = format!("{}/testdata/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// The local provider's recorded outputs, read from its crate.
    fn nvidia_fixture(name: &str) -> String {
        let p = format!("{}/../kiln-provider-local/testdata/nvidia-smi/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn nvidia_through_the_shared_parser() {
        let gpus = parse_nvidia(&nvidia_fixture("8x-h100-80gb-hbm3.csv"));
        assert_eq!(gpus.len(), 8);
        assert_eq!(gpus[7], HostGpu { vendor: "nvidia", index: 7, name: "NVIDIA H100 80GB HBM3".into(), memory_mib: 81559 });
        assert!(parse_nvidia(&nvidia_fixture("no-devices.csv")).is_empty());
    }

    #[test]
    fn rocm_eight_mi300x() {
        let gpus = parse_rocm(&fixture("rocm-smi/8x-mi300x.json"));
        assert_eq!(gpus.len(), 8);
        assert_eq!(gpus.iter().map(|g| g.index).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
        assert!(gpus.iter().all(|g| g.name == "AMD Instinct MI300X" && g.memory_mib == 196592 && g.vendor == "amd"));
    }

    #[test]
    fn rocm_all_fields_capture_without_memory() {
        let gpus = parse_rocm(&fixture("rocm-smi/1x-mi250-all.json"));
        assert_eq!(gpus, vec![HostGpu { vendor: "amd", index: 0, name: "AMD INSTINCT MI250 (MCM) OAM AC MBA".into(), memory_mib: 0 }]);
    }

    #[test]
    fn rocm_warning_before_json_and_card_series_spelling() {
        let gpus = parse_rocm(&fixture("rocm-smi/2x-mi210-warning.txt"));
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[1].name, "AMD Instinct MI210");
        assert_eq!(gpus[1].memory_mib, 65520);
    }

    #[test]
    fn rocm_nothing() {
        assert!(parse_rocm("").is_empty());
        assert!(parse_rocm("ERROR: GPU[0] : Driver not initialized (amdgpu not found in modules)\n").is_empty());
        assert!(parse_rocm("{}").is_empty());
    }
}
