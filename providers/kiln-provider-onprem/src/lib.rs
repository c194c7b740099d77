//! The `onprem` provider: machines a team owns, reached over SSH.
//!
//! - The fleet is the `host` blocks of the provider block (see [`config`]): address, port,
//!   user, identity file, `proxy_jump`, labels and the host's key, verified strictly (an unknown
//!   or changed key is an error showing the fingerprint; see [`ssh`]).
//! - `fleet` (resource) and `inventory` (data source): every host's CPUs, memory, disks, OS and
//!   GPUs (`nvidia-smi`, `rocm-smi`), whether it answers, and who holds its GPUs.
//! - `cluster`: hosts allocated for a request (`nodes`, `accelerators = "A100:8"`, `cpus`,
//!   `memory`, `labels`, `hosts`), recorded in state and as claim files on the hosts so that two
//!   clusters never share a GPU; a request the fleet cannot satisfy fails at plan time.
//! - `job`: started over SSH on every host of its cluster, detached (setsid, pid file, a job
//!   directory per host) with the KILN_* environment; status, exit codes and logs are read over
//!   SSH; a host that stops answering makes the job `lost`; destroy stops it (TERM, then KILL).
//! - `bucket`: a directory on one host, or on a mount every host shares (`shared = true`).
//! - Placement: the hosts' free capacity now, priced by `hourly_price` and `gpu_hour_price`
//!   (see [`offerings`]); a cluster's cost line: its hosts at those prices (see [`price`]).
//!
//! Connections are pooled: one SSH connection per host per configured provider instance,
//! whatever the number of resources.

// Operations fail with one diagnostic that goes straight into the response.
#![allow(clippy::result_large_err)]

pub mod alloc;
mod bucket;
pub mod claims;
mod cluster;
pub mod config;
mod fleet;
pub use kiln_hostinfo::gpu as gpus;
pub use kiln_remote::hostkey;
pub mod inventory;
mod job;
pub mod offerings;
pub mod price;
mod scan;
mod schema;
use kiln_remote::shell;
pub mod ssh;
mod util;

use std::collections::BTreeMap;
use std::path::Path;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::kinds::{KindFactory, KindProvider, Kinds};
use kiln_provider::offerings::OfferingsResponse;
use kiln_provider::{async_trait, ConfigureRequest, Limits};
use kiln_value::Value;

use crate::alloc::Placement;
use crate::config::{FleetConfig, HostConfig};
use crate::scan::HostScan;
use crate::ssh::{Ssh, SshError};

pub const NAME: &str = "onprem";

/// Builds `onprem` provider instances from `provider "onprem" { host "..." { ... } }`.
pub struct OnpremFactory;

impl KindFactory for OnpremFactory {
    type Provider = OnpremProvider;
}

/// What every kind's operations see: the fleet, its connections, and the allocations planned
/// by this instance that are not claimed on the hosts yet.
pub struct Ctx {
    pub fleet: FleetConfig,
    pub ssh: Ssh,
    /// Address → placements planned (by this provider instance) for a cluster being created.
    pub reservations: tokio::sync::Mutex<BTreeMap<String, Vec<Placement>>>,
    /// The configuration's directory: a job's `workdir` is relative to it.
    pub working_dir: std::path::PathBuf,
}

impl Ctx {
    pub fn host(&self, name: &str) -> Option<&HostConfig> {
        self.fleet.host(name)
    }

    /// The host's directory for kiln's files, made absolute against the login user's home.
    pub async fn host_dir(&self, h: &HostConfig) -> Result<String, SshError> {
        let d = self.fleet.host_dir(h);
        if d.starts_with('/') {
            return Ok(d);
        }
        let home = self.ssh.home(h).await?;
        Ok(format!("{}/{d}", home.trim_end_matches('/')))
    }
}

/// A configured `onprem` provider.
pub struct OnpremProvider {
    ctx: Ctx,
}

impl OnpremProvider {
    /// From an evaluated provider block; `working_dir` resolves relative identity files.
    pub fn configure(config: &Value, working_dir: &Path) -> Result<OnpremProvider, Diagnostics> {
        let fleet = config::parse(config, working_dir)?;
        let ssh = Ssh::new(&fleet).map_err(|e| {
            Diagnostics::from(Diagnostic::error("E-ONPREM-CONFIG", format!("cannot write the SSH configuration of provider `onprem`: {e}")))
        })?;
        Ok(OnpremProvider {
            ctx: Ctx { fleet, ssh, reservations: tokio::sync::Mutex::new(BTreeMap::new()), working_dir: working_dir.to_path_buf() },
        })
    }

    /// SSH connections opened so far (at most one per host unless a host dropped and came back).
    pub fn connections_opened(&self) -> usize {
        self.ctx.ssh.connections_opened()
    }

    /// The configured hosts.
    pub fn fleet(&self) -> &FleetConfig {
        &self.ctx.fleet
    }
}

/// Host scans shared by the items of one read batch: at most one round trip per host.
#[derive(Default)]
pub struct Batch {
    scans: tokio::sync::OnceCell<Vec<HostScan>>,
}

impl Batch {
    pub async fn scans(&self, ctx: &Ctx) -> &[HostScan] {
        self.scans.get_or_init(|| scan::scan_all(ctx)).await
    }
}

pub(crate) use kiln_provider::kinds::{Kind, Outcome};
pub(crate) use kiln_schema::KindSchema;

/// The kinds; the items of one read share one scan of the hosts ([`Batch`]).
static KINDS: Kinds<Ctx, Batch> = Kinds {
    provider: NAME,
    config: schema::config,
    kinds: &[&bucket::Bucket, &cluster::Cluster, &fleet::Fleet, &job::Job],
    data: &[&fleet::Inventory],
};

#[async_trait]
impl KindProvider for OnpremProvider {
    type Ctx = Ctx;
    type Batch = Batch;
    const KINDS: &'static Kinds<Ctx, Batch> = &KINDS;

    async fn configure(req: ConfigureRequest) -> Result<Self, Diagnostics> {
        OnpremProvider::configure(&req.config, &req.working_dir)
    }

    fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    fn limits(&self) -> Limits {
        Limits { concurrency: Some(32) }
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.ctx.ssh.calls()
    }

    /// Each host's free capacity now, priced from the configuration (see [`offerings`]).
    async fn offerings(&self) -> OfferingsResponse {
        offerings::offerings(&self.ctx).await
    }

    /// A cluster's hosts at their configured prices (see [`price`]).
    fn hourly_price(&self, kind: &str, object: &Value) -> Option<Result<kiln_value::Decimal, String>> {
        price::hourly_price(&self.ctx.fleet, kind, object)
    }
}
