//! What a host has, discovered over SSH by one script that prints `@@SECTION` headers followed
//! by the raw output of standard tools: CPU count (`nproc`) and model (`/proc/cpuinfo`, else
//! `lscpu`), memory (`/proc/meminfo`), OS (`/etc/os-release`, `uname`), disks (`df -PTk`) and
//! GPUs (`nvidia-smi`, `rocm-smi`). Each tool's output is parsed by `kiln_hostinfo` (shared with
//! the `local` provider); this module splits the script's output into sections, tested on
//! recorded outputs.

use kiln_hostinfo::gpu::{parse_nvidia, parse_rocm, HostGpu, NVIDIA_SMI, ROCM_SMI};
use kiln_hostinfo::mem::{gib, parse_meminfo};
pub use kiln_hostinfo::system::Disk;
use kiln_hostinfo::system::{cpu_model, os_pretty_name, parse_df};
use kiln_value::Value;

use crate::util::{num, tenths};

/// Prints the sections [`parse`] reads. Missing tools leave their section empty.
pub fn script() -> String {
    format!(
        r#"s() {{ printf '\n@@%s\n' "$1"; }}
s hostname; hostname 2>/dev/null || cat /proc/sys/kernel/hostname
s cpus; nproc 2>/dev/null || getconf _NPROCESSORS_ONLN
s cpu_model; grep -m1 -E '^(model name|Model name|cpu model|Hardware)[[:space:]]*:' /proc/cpuinfo 2>/dev/null || LC_ALL=C lscpu 2>/dev/null | grep -m1 '^Model name:'
s meminfo; grep -E '^MemTotal:' /proc/meminfo
s os_release; cat /etc/os-release 2>/dev/null
s kernel; uname -srm
s disks; df -PTk 2>/dev/null
s nvidia; command -v nvidia-smi >/dev/null 2>&1 && {NVIDIA_SMI} 2>/dev/null
s rocm; command -v rocm-smi >/dev/null 2>&1 && {ROCM_SMI} 2>/dev/null
s end
"#
    )
}

/// A host's hardware and OS.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inventory {
    pub hostname: String,
    pub cpus: u64,
    pub cpu_model: String,
    /// Total memory in GiB, one decimal.
    pub memory_gb: f64,
    pub os: String,
    pub kernel: String,
    pub disks: Vec<Disk>,
    pub gpus: Vec<HostGpu>,
}

/// The text of each `@@NAME` section.
fn sections(text: &str) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix("@@") {
            Some(name) => out.push((name.trim(), String::new())),
            None => {
                if let Some((_, body)) = out.last_mut() {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    out
}

fn section<'a>(all: &'a [(&str, String)], name: &str) -> &'a str {
    all.iter().find(|(n, _)| *n == name).map_or("", |(_, b)| b.as_str())
}

/// Whether [`script`] ran to its end (a cut-off output must not read as "no GPUs").
pub fn complete(text: &str) -> bool {
    sections(text).iter().any(|(n, _)| *n == "end")
}

/// Parses the output of [`script`].
pub fn parse(text: &str) -> Inventory {
    let all = sections(text);
    let memory = parse_meminfo(section(&all, "meminfo")).unwrap_or(0);
    let mut gpus = parse_nvidia(section(&all, "nvidia"));
    gpus.extend(parse_rocm(section(&all, "rocm")));
    Inventory {
        hostname: section(&all, "hostname").trim().to_string(),
        cpus: section(&all, "cpus").trim().parse().unwrap_or(0),
        cpu_model: cpu_model(section(&all, "cpu_model")),
        memory_gb: gib(memory),
        os: os_pretty_name(section(&all, "os_release")),
        kernel: section(&all, "kernel").trim().to_string(),
        disks: parse_df(section(&all, "disks")),
        gpus,
    }
}

impl Inventory {
    /// "8 x NVIDIA A100-SXM4-80GB", "2 x AMD Instinct MI210, 1 x ...", "no GPUs".
    pub fn describe_gpus(&self) -> String {
        describe(self.gpus.iter())
    }

    /// The inventory's attributes (merged into a host's object).
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("hostname", Value::from(self.hostname.as_str())),
            ("cpus", num(self.cpus)),
            ("cpu_model", Value::from(self.cpu_model.as_str())),
            ("memory_gb", tenths(self.memory_gb)),
            ("os", Value::from(self.os.as_str())),
            ("kernel", Value::from(self.kernel.as_str())),
            ("disks", Value::List(self.disks.iter().map(Disk::to_value).collect())),
            ("gpus", Value::List(self.gpus.iter().map(HostGpu::to_value).collect())),
            ("gpu_count", num(self.gpus.len() as u64)),
        ]
    }
}

/// "N x NAME" groups of GPUs, or "no GPUs".
pub fn describe<'a>(gpus: impl Iterator<Item = &'a HostGpu>) -> String {
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for g in gpus {
        match kinds.iter_mut().find(|(n, _)| *n == g.name) {
            Some((_, c)) => *c += 1,
            None => kinds.push((&g.name, 1)),
        }
    }
    if kinds.is_empty() {
        return "no GPUs".to_string();
    }
    kinds.iter().map(|(n, c)| format!("{c} x {n}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = format!("{}/testdata/inventory/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn a_cpu_only_debian_vm() {
        let text = fixture("debian12-vm-no-gpu.txt");
        assert!(complete(&text));
        let inv = parse(&text);
        assert_eq!(inv.cpus, 2);
        assert_eq!(inv.cpu_model, "AMD EPYC");
        assert_eq!(inv.memory_gb, 23.5);
        assert_eq!(inv.os, "Debian GNU/Linux 12 (bookworm)");
        assert!(inv.kernel.starts_with("Linux "));
        assert_eq!(inv.disks, vec![Disk { mount: "/".into(), fs_type: "ext4".into(), size_gb: 252.0, free_gb: 66.1 }]);
        assert!(inv.gpus.is_empty());
        assert_eq!(inv.describe_gpus(), "no GPUs");
    }

    #[test]
    fn a_dgx_a100() {
        let inv = parse(&fixture("dgx-a100.txt"));
        assert_eq!(inv.cpus, 256);
        assert_eq!(inv.cpu_model, "AMD EPYC 7742 64-Core Processor");
        assert_eq!(inv.memory_gb, 1007.7);
        assert_eq!(inv.gpus.len(), 8);
        assert_eq!(inv.gpus[0].name, "NVIDIA A100-SXM4-80GB");
        assert_eq!(inv.describe_gpus(), "8 x NVIDIA A100-SXM4-80GB");
        assert_eq!(inv.disks.iter().map(|d| d.mount.as_str()).collect::<Vec<_>>(), vec!["/", "/raid", "/mnt/shared"]);
    }

    #[test]
    fn an_mi300x_node() {
        let inv = parse(&fixture("mi300x-node.txt"));
        assert_eq!(inv.gpus.len(), 8);
        assert!(inv.gpus.iter().all(|g| g.vendor == "amd"));
        assert_eq!(inv.describe_gpus(), "8 x AMD Instinct MI300X");
    }

    #[test]
    fn cut_off_output_is_incomplete() {
        assert!(!complete("\n@@hostname\nx\n@@cpus\n"));
    }
}
