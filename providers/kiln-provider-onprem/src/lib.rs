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
pub mod gpus;
pub mod hostkey;
pub mod inventory;
mod job;
mod scan;
mod schema;
mod shell;
pub mod ssh;
mod util;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use futures_util::future::join_all;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, ConfigureRequest, CreateRequest, DeleteRequest, ImportRequest, Limits, LogsRequest, LogsResponse,
    PlanRequest, PlanResponse, Provider, ProviderFactory, ReadDataRequest, ReadItem, ReadRequest, ReadResponse, ReadResult, RecoverRequest,
    UpdateRequest, ValidateRequest,
};
use kiln_schema::ProviderSchema;
use kiln_value::Value;

use crate::alloc::Placement;
use crate::config::{FleetConfig, HostConfig};
use crate::scan::HostScan;
use crate::ssh::{Ssh, SshError};

pub const NAME: &str = "onprem";

/// Builds `onprem` provider instances from `provider "onprem" { host "..." { ... } }`.
pub struct OnpremFactory;

#[async_trait]
impl ProviderFactory for OnpremFactory {
    fn name(&self) -> &'static str {
        NAME
    }
    fn schema(&self) -> ProviderSchema {
        schema::schema()
    }
    async fn configure(&self, req: ConfigureRequest) -> Result<Arc<dyn Provider>, Diagnostics> {
        Ok(Arc::new(OnpremProvider::configure(&req.config, &req.working_dir)?))
    }
}

/// What every kind's operations see: the fleet, its connections, and the allocations planned
/// by this instance that are not claimed on the hosts yet.
pub(crate) struct Ctx {
    pub fleet: FleetConfig,
    pub ssh: Ssh,
    /// Address → placements planned (by this provider instance) for a cluster being created.
    pub reservations: tokio::sync::Mutex<BTreeMap<String, Vec<Placement>>>,
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
        Ok(OnpremProvider { ctx: Ctx { fleet, ssh, reservations: tokio::sync::Mutex::new(BTreeMap::new()) } })
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
pub(crate) struct Batch {
    scans: tokio::sync::OnceCell<Vec<HostScan>>,
}

impl Batch {
    pub async fn scans(&self, ctx: &Ctx) -> &[HostScan] {
        self.scans.get_or_init(|| scan::scan_all(ctx)).await
    }
}

/// One kind's operations.
#[async_trait]
pub(crate) trait Kind: Send + Sync {
    fn validate(&self, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }
    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> PlanResponse;
    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> ApplyResponse;
    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> ApplyResponse;
    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Diagnostics;
    async fn read(&self, ctx: &Ctx, item: &ReadItem<'_>, batch: &Batch) -> ReadResult;
    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> ReadResult;
    async fn import(&self, ctx: &Ctx, req: &ImportRequest<'_>) -> ReadResult;
    async fn logs(&self, _ctx: &Ctx, req: &LogsRequest<'_>) -> LogsResponse {
        LogsResponse {
            data: Vec::new(),
            next_offset: req.offset,
            finished: true,
            diagnostics: Diagnostic::error("E-PROVIDER-LOGS", format!("kind `{}` has no logs", req.kind)).into(),
        }
    }
}

fn kind(name: &str) -> Option<&'static dyn Kind> {
    match name {
        "bucket" => Some(&bucket::Bucket),
        "cluster" => Some(&cluster::Cluster),
        "fleet" => Some(&fleet::Fleet),
        "job" => Some(&job::Job),
        _ => None,
    }
}

fn unknown_kind(name: &str) -> Diagnostic {
    Diagnostic::error("E-KIND-UNKNOWN", format!("provider `onprem` has no kind `{name}`"))
        .hint("kinds of `onprem`: bucket, cluster, fleet, job")
}

#[async_trait]
impl Provider for OnpremProvider {
    fn schema(&self) -> ProviderSchema {
        schema::schema()
    }

    fn limits(&self) -> Limits {
        Limits { concurrency: Some(32) }
    }

    fn validate(&self, req: ValidateRequest<'_>) -> Diagnostics {
        kind(req.kind).map_or_else(|| unknown_kind(req.kind).into(), |k| k.validate(req.config))
    }

    async fn plan(&self, req: PlanRequest<'_>) -> PlanResponse {
        match kind(req.kind) {
            Some(k) => k.plan(&self.ctx, &req).await,
            None => {
                PlanResponse { planned: req.proposed.clone(), requires_replace: Vec::new(), diagnostics: unknown_kind(req.kind).into() }
            }
        }
    }

    async fn create(&self, req: CreateRequest<'_>) -> ApplyResponse {
        match kind(req.kind) {
            Some(k) => k.create(&self.ctx, &req).await,
            None => ApplyResponse::error(unknown_kind(req.kind)),
        }
    }

    async fn update(&self, req: UpdateRequest<'_>) -> ApplyResponse {
        match kind(req.kind) {
            Some(k) => k.update(&self.ctx, &req).await,
            None => ApplyResponse::error(unknown_kind(req.kind)),
        }
    }

    async fn delete(&self, req: DeleteRequest<'_>) -> Diagnostics {
        match kind(req.kind) {
            Some(k) => k.delete(&self.ctx, &req).await,
            None => unknown_kind(req.kind).into(),
        }
    }

    async fn read(&self, req: ReadRequest<'_>) -> ReadResponse {
        let batch = Batch::default();
        let reads = req.items.iter().map(|item| async {
            match kind(item.kind) {
                Some(k) => k.read(&self.ctx, item, &batch).await,
                None => util::read_error(unknown_kind(item.kind)),
            }
        });
        ReadResponse { results: join_all(reads).await }
    }

    async fn recover(&self, req: RecoverRequest<'_>) -> ReadResult {
        match kind(req.kind) {
            Some(k) => k.recover(&self.ctx, &req).await,
            None => util::read_error(unknown_kind(req.kind)),
        }
    }

    async fn import(&self, req: ImportRequest<'_>) -> ReadResult {
        match kind(req.kind) {
            Some(k) => k.import(&self.ctx, &req).await,
            None => util::read_error(unknown_kind(req.kind)),
        }
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.ctx.ssh.calls()
    }

    async fn read_data(&self, req: ReadDataRequest<'_>) -> ReadResult {
        match req.kind {
            "inventory" => fleet::read_inventory(&self.ctx, req.config).await,
            other => util::read_error(
                Diagnostic::error("E-KIND-UNKNOWN", format!("provider `onprem` has no data source `{other}`"))
                    .hint("data sources of `onprem`: inventory"),
            ),
        }
    }

    async fn logs(&self, req: LogsRequest<'_>) -> LogsResponse {
        match kind(req.kind) {
            Some(k) => k.logs(&self.ctx, &req).await,
            None => LogsResponse { data: Vec::new(), next_offset: req.offset, finished: true, diagnostics: unknown_kind(req.kind).into() },
        }
    }
}
