//! Pure parsers of what a host's own tools report, shared by the providers that look at
//! machines: `local` (this machine) and `onprem` (hosts over SSH, whose tools' raw output comes
//! back as text). Parsing is pure and tested on outputs recorded on real machines
//! (`testdata/`); running the tools is the providers' business, except for this machine's
//! process table ([`procs::ProcTable::snapshot`]).
//!
//! - [`gpu`] reads `nvidia-smi --query-gpu=...` CSV and `rocm-smi --json`;
//! - [`mem`] reads `/proc/meminfo`;
//! - [`procs`] reads `/proc/PID/stat`, `/proc/PID/environ` and `ps`;
//! - [`system`] reads `df -PTk`, `/etc/os-release` and the CPU model line of `/proc/cpuinfo`
//!   or `lscpu`.

pub mod gpu;
pub mod mem;
pub mod procs;
pub mod system;

pub use gpu::{parse_nvidia_smi, parse_rocm, Gpu, HostGpu, NVIDIA_SMI, ROCM_SMI};
pub use mem::parse_meminfo;
pub use procs::{Proc, ProcTable};
