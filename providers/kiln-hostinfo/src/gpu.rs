//! GPUs as a host's tools report them: NVIDIA through `nvidia-smi` ([`NVIDIA_SMI`]) and AMD
//! through `rocm-smi --showproductname --showmeminfo vram --json` ([`ROCM_SMI`]). A host without
//! either tool, or whose tool finds no device, has zero GPUs.

use kiln_value::{Decimal, Map, Value};

/// The command line whose output [`parse_nvidia_smi`] and [`parse_nvidia`] read.
pub const NVIDIA_SMI: &str = "nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits";
/// The command line whose output [`parse_rocm`] reads.
pub const ROCM_SMI: &str = "rocm-smi --showproductname --showmeminfo vram --json";

/// One GPU as `nvidia-smi` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    pub index: u32,
    pub name: String,
    pub memory_mib: u64,
}

impl Gpu {
    /// `{index, name, memory_mib}` as a kiln value.
    pub fn to_value(&self) -> Value {
        let m: Map = [
            ("index".to_string(), Value::from(self.index as i64)),
            ("name".to_string(), Value::from(self.name.as_str())),
            ("memory_mib".to_string(), Value::from(self.memory_mib as i64)),
        ]
        .into();
        Value::Map(m)
    }
}

/// Parses `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits`.
/// Lines that are not GPU rows ("No devices were found", blank lines) are skipped; a memory
/// reported as `[N/A]` counts as 0.
pub fn parse_nvidia_smi(out: &str) -> Vec<Gpu> {
    out.lines().filter_map(parse_gpu_line).collect()
}

fn parse_gpu_line(line: &str) -> Option<Gpu> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [index, name, memory] = fields.as_slice() else { return None };
    let index = index.parse().ok()?;
    if name.is_empty() {
        return None;
    }
    Some(Gpu { index, name: name.to_string(), memory_mib: memory.parse().unwrap_or(0) })
}

/// One GPU of a host, of either vendor.
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
    /// `{index, name, memory_mib, vendor}` as a kiln value.
    pub fn to_value(&self) -> Value {
        let m: Map = [
            ("index".to_string(), Value::Number(Decimal::from(self.index))),
            ("name".to_string(), Value::from(self.name.as_str())),
            ("memory_mib".to_string(), Value::Number(Decimal::from(self.memory_mib))),
            ("vendor".to_string(), Value::from(self.vendor)),
        ]
        .into();
        Value::Map(m)
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

    #[test]
    fn eight_a100() {
        let gpus = parse_nvidia_smi(&fixture("nvidia-smi/8x-a100-sxm4-80gb.csv"));
        assert_eq!(gpus.len(), 8);
        assert_eq!(gpus[7], Gpu { index: 7, name: "NVIDIA A100-SXM4-80GB".into(), memory_mib: 81920 });
    }

    #[test]
    fn eight_h100() {
        let gpus = parse_nvidia_smi(&fixture("nvidia-smi/8x-h100-80gb-hbm3.csv"));
        assert_eq!(gpus.iter().map(|g| g.index).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
        assert!(gpus.iter().all(|g| g.name == "NVIDIA H100 80GB HBM3" && g.memory_mib == 81559));
    }

    #[test]
    fn one_rtx_4090_and_two_t4() {
        let gpus = parse_nvidia_smi(&fixture("nvidia-smi/1x-rtx-4090.csv"));
        assert_eq!(gpus, vec![Gpu { index: 0, name: "NVIDIA GeForce RTX 4090".into(), memory_mib: 24564 }]);
        let t4 = parse_nvidia_smi(&fixture("nvidia-smi/2x-tesla-t4.csv"));
        assert_eq!(t4.len(), 2);
        assert_eq!((t4[1].name.as_str(), t4[1].memory_mib), ("Tesla T4", 15360));
    }

    #[test]
    fn no_nvidia_gpus() {
        assert!(parse_nvidia_smi(&fixture("nvidia-smi/empty.csv")).is_empty());
        assert!(parse_nvidia_smi(&fixture("nvidia-smi/no-devices.csv")).is_empty());
    }

    #[test]
    fn unavailable_memory_counts_as_zero() {
        assert_eq!(parse_nvidia_smi("0, NVIDIA A10G, [N/A]\n")[0].memory_mib, 0);
    }

    #[test]
    fn nvidia_as_host_gpus() {
        let gpus = parse_nvidia(&fixture("nvidia-smi/8x-h100-80gb-hbm3.csv"));
        assert_eq!(gpus.len(), 8);
        assert_eq!(gpus[7], HostGpu { vendor: "nvidia", index: 7, name: "NVIDIA H100 80GB HBM3".into(), memory_mib: 81559 });
        assert!(parse_nvidia(&fixture("nvidia-smi/no-devices.csv")).is_empty());
    }

    #[test]
    fn values() {
        let g = Gpu { index: 1, name: "Tesla T4".into(), memory_mib: 15360 };
        assert_eq!(
            g.to_value().to_string(),
            Value::from_json(&serde_json::json!({ "index": 1, "name": "Tesla T4", "memory_mib": 15360 })).to_string()
        );
        let h = HostGpu { vendor: "amd", index: 0, name: "MI210".into(), memory_mib: 65520 };
        assert_eq!(
            h.to_value(),
            Value::from_json(&serde_json::json!({ "index": 0, "name": "MI210", "memory_mib": 65520, "vendor": "amd" }))
        );
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
