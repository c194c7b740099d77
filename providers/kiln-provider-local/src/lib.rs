//! The `local` provider: kiln's embedded default, which runs the portable kinds on this machine
//! so that a newcomer needs no cloud account.
//!
//! - `bucket`: a directory (`ROOT/buckets/NAME` unless `path` is given), exposed as a `file://`
//!   URI; destroy refuses to delete one that holds files unless `force_destroy = true`.
//! - `cluster`: `nodes` slots on this machine with its real CPUs, memory and GPUs (found with
//!   `nvidia-smi`); a request the machine cannot satisfy fails at plan time.
//! - `job`: one detached process group per node running `setup` then `run`, with the KILN_*
//!   environment, logs in `ROOT/jobs/JOB_ID/node-RANK.log`, status read from the processes and
//!   their exit files; a lost job is replaced (restarted) by the next apply.
//! - `spot_pool`: refused with a message pointing to a cloud provider.
//!
//! `ROOT` is `.kiln` in the working directory unless the provider block sets `root`.

// Operations fail with one diagnostic that goes straight into the response; boxing it would
// only add noise.
#![allow(clippy::result_large_err)]

mod bucket;
mod cluster;
mod job;
pub mod machine;
pub mod procs;
mod schema;
mod spot_pool;
mod util;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln_diag::Diagnostics;
use kiln_provider::kinds::{DataSource, KindFactory, KindProvider, Kinds};
use kiln_provider::{async_trait, ConfigureRequest, Limits, ReadDataRequest, ReadResult};

pub use machine::{parse_nvidia_smi, Gpu, Machine};

use crate::procs::ProcTable;

pub const NAME: &str = "local";

/// Builds `local` provider instances from `provider "local" { root = "..." }` (all optional).
pub struct LocalFactory;

impl KindFactory for LocalFactory {
    type Provider = LocalProvider;
}

/// What every kind's operations see: where things live and what this machine has.
pub struct Ctx {
    pub working_dir: PathBuf,
    pub root: PathBuf,
    machine: OnceLock<Machine>,
}

impl Ctx {
    /// Makes both directories absolute (job scripts run elsewhere).
    pub fn new(working_dir: PathBuf, root: PathBuf) -> Ctx {
        let abs = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
        Ctx { working_dir: abs(working_dir), root: abs(root), machine: OnceLock::new() }
    }

    /// This machine, discovered once per provider instance.
    pub fn machine(&self) -> &Machine {
        self.machine.get_or_init(Machine::discover)
    }
}

/// A configured `local` provider.
pub struct LocalProvider {
    ctx: Ctx,
}

impl LocalProvider {
    /// `root` defaults to `WORKING_DIR/.kiln`.
    pub fn new(working_dir: impl Into<PathBuf>, root: Option<PathBuf>) -> Self {
        let working_dir = working_dir.into();
        let root = root.unwrap_or_else(|| working_dir.join(".kiln"));
        LocalProvider { ctx: Ctx::new(working_dir, root) }
    }

    /// Uses `machine` instead of discovering this one (tests, and plans for another machine).
    pub fn with_machine(self, machine: Machine) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(machine);
        LocalProvider { ctx: Ctx { machine: cell, ..self.ctx } }
    }

    /// The directory holding `buckets/` and `jobs/`.
    pub fn root(&self) -> &Path {
        &self.ctx.root
    }
}

pub(crate) use kiln_provider::kinds::{Kind, Outcome};
pub(crate) use kiln_schema::KindSchema;

/// The process table, read at most once per batch and only when a kind needs it.
#[derive(Default)]
pub struct LazyProcs(OnceLock<ProcTable>);

impl LazyProcs {
    pub fn get(&self) -> &ProcTable {
        self.0.get_or_init(ProcTable::snapshot)
    }
}

/// The `machine` data source: this machine's CPUs, memory and GPUs.
struct MachineData;

#[async_trait]
impl DataSource<Ctx> for MachineData {
    fn name(&self) -> &'static str {
        "machine"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("This machine's CPUs, memory and GPUs", schema::machine()).state_only()
    }

    async fn read(&self, ctx: &Ctx, _req: &ReadDataRequest<'_>) -> Outcome<ReadResult> {
        Ok(ReadResult::found(ctx.machine().to_value()))
    }
}

/// The kinds; the items of one read share one snapshot of the process table.
static KINDS: Kinds<Ctx, LazyProcs> = Kinds {
    provider: NAME,
    config: schema::config,
    kinds: &[&bucket::Bucket, &cluster::Cluster, &job::Job, &spot_pool::SpotPool],
    data: &[&MachineData],
};

#[async_trait]
impl KindProvider for LocalProvider {
    type Ctx = Ctx;
    type Batch = LazyProcs;
    const KINDS: &'static Kinds<Ctx, LazyProcs> = &KINDS;

    /// From `provider "local" { root = "..." }` (all optional).
    async fn configure(req: ConfigureRequest) -> Result<Self, Diagnostics> {
        let root = util::str_attr(&req.config, "root").map(|r| util::resolve(&req.working_dir, r));
        Ok(LocalProvider::new(req.working_dir, root))
    }

    fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    fn limits(&self) -> Limits {
        Limits { concurrency: None }
    }
}
