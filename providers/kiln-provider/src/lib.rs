//! The provider contract. A provider publishes a schema per kind and implements validate, plan,
//! create (with an idempotency token), update, delete, batched read, recover (find what an
//! interrupted create made) and import. Every method takes one request struct and returns one
//! response struct carrying diagnostics, so the contract grows by fields, not by signatures.
//!
//! Values passed in and out are maps of attribute name to [`Value`]. `config` is what the user
//! wrote (evaluated, may contain unknowns); `prior` is what state holds; `planned` is what the
//! provider promises the object will look like (unknown where it cannot tell yet); `new state`
//! is what it looks like after the operation (no unknowns).
//!
//! Providers are constructed by a [`ProviderFactory`] from their configuration block.

pub mod conformance;
pub mod kinds;
pub mod logs;
pub mod offerings;
pub mod portable;
pub mod testing;
pub mod throttle;
pub mod util;

use std::sync::Arc;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_schema::ProviderSchema;
use kiln_value::Value;

pub use async_trait::async_trait;

/// The portable kinds: the same meaning on every provider that serves them. A block of one of
/// these kinds without `provider =` goes to `local`, the embedded default.
pub const PORTABLE_KINDS: [&str; 4] = ["bucket", "cluster", "job", "spot_pool"];

/// Builds configured provider instances. One factory per provider name (`kiln`, `local`, `aws`).
#[async_trait]
pub trait ProviderFactory: Send + Sync {
    fn name(&self) -> &'static str;
    fn schema(&self) -> ProviderSchema;
    /// Configures one instance (one `provider` block, or the default when there is none).
    async fn configure(&self, req: ConfigureRequest) -> Result<Arc<dyn Provider>, Diagnostics>;
}

pub struct ConfigureRequest {
    /// Evaluated provider block (a map; empty when the provider has no block).
    pub config: Value,
    /// Directory kiln runs in; providers resolve relative paths against it.
    pub working_dir: std::path::PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Operations in flight at once for one configured instance; `None` means unbounded.
    pub concurrency: Option<usize>,
}

#[async_trait]
pub trait Provider: Send + Sync {
    fn schema(&self) -> ProviderSchema;

    fn limits(&self) -> Limits {
        Limits { concurrency: Some(64) }
    }

    /// Checks a resource's configuration beyond what its schema says. No IO.
    fn validate(&self, _req: ValidateRequest<'_>) -> Diagnostics {
        Diagnostics::new()
    }

    /// Decides the planned state. The engine has already merged config with prior computed
    /// attributes into `proposed`; the default keeps it.
    async fn plan(&self, req: PlanRequest<'_>) -> PlanResponse {
        PlanResponse { planned: req.proposed.clone(), requires_replace: Vec::new(), diagnostics: Diagnostics::new() }
    }

    async fn create(&self, req: CreateRequest<'_>) -> ApplyResponse;
    async fn update(&self, req: UpdateRequest<'_>) -> ApplyResponse;
    async fn delete(&self, req: DeleteRequest<'_>) -> Diagnostics;

    /// Reads many objects in one call (refresh). `None` in a result means the object is gone.
    async fn read(&self, req: ReadRequest<'_>) -> ReadResponse;

    /// Finds what a create started with `token` made, if anything, after an interrupted apply.
    async fn recover(&self, req: RecoverRequest<'_>) -> ReadResult;

    /// Reads an existing object by its provider ID so kiln can manage it.
    async fn import(&self, req: ImportRequest<'_>) -> ReadResult;

    /// Remote API calls made so far, by operation (for `kiln plan --verbose`); empty for
    /// providers that make none.
    fn api_calls(&self) -> std::collections::BTreeMap<String, u64> {
        Default::default()
    }

    /// Reads part of a job's log: bytes from `offset` of node `node`'s output. Callers poll
    /// with the returned offset to follow a log. With a `seek`, reads nothing and answers the
    /// position sought as `next_offset`.
    async fn logs(&self, req: LogsRequest<'_>) -> LogsResponse {
        LogsResponse {
            data: Vec::new(),
            next_offset: req.offset,
            finished: true,
            all_nodes: false,
            diagnostics: Diagnostic::error("E-PROVIDER-LOGS", format!("kind `{}` has no logs", req.kind)).into(),
        }
    }

    /// How to reach node `node` of a cluster or job with the system `ssh` (`kiln ssh`). By
    /// default: refused, naming the provider as one without a shell on its nodes.
    async fn shell(&self, req: ShellRequest<'_>) -> ShellResponse {
        ShellResponse::refused(no_shell(&req))
    }

    /// Files kiln keeps in a bucket this provider manages (destroyed jobs' logs, read by `kiln
    /// logs` wherever the state is shared): one operation on the objects of the bucket `state`.
    /// By default: refused, the provider cannot keep files (kiln keeps them under `.kiln/`).
    async fn store(&self, req: StoreRequest<'_>) -> StoreResponse {
        StoreResponse::refused(no_store(&req))
    }

    /// Whether a bucket holds objects (the `protect_nonempty_buckets` policy, checked at plan
    /// time before a bucket is deleted or replaced): one cheap read that stops at the first
    /// object, never a listing of the whole bucket. By default: unknown, which the policy
    /// treats as holding objects.
    async fn contents(&self, req: ContentsRequest<'_>) -> Contents {
        Contents::unknown(&req)
    }

    /// What this provider instance offers the placement optimizer: catalog rows for a cloud,
    /// free capacity for owned hardware. By default: nothing, not a placement candidate.
    async fn offerings(&self) -> offerings::OfferingsResponse {
        offerings::OfferingsResponse::default()
    }

    /// `kiln catalog refresh`: this provider's catalog rows read from its API. By default:
    /// refused, the provider has no catalog to refresh.
    async fn refresh_catalog(&self) -> offerings::CatalogRefresh {
        offerings::CatalogRefresh::refused()
    }

    /// The price per hour of one object of kind `kind` (its planned value, or the state's),
    /// where this provider prices its objects itself: owned hardware, what the hosts or nodes
    /// the object holds cost at the configured `hourly_price` and `gpu_hour_price`. `None`: it
    /// does not (a cloud's objects are priced from the catalog); `Some(Err(reason))`: unknown,
    /// and why (never 0 for what is not known). By default `None`.
    fn hourly_price(&self, kind: &str, object: &Value) -> Option<Result<kiln_value::Decimal, String>> {
        let _ = (kind, object);
        None
    }

    /// Reads a data source.
    async fn read_data(&self, req: ReadDataRequest<'_>) -> ReadResult {
        ReadResult {
            state: None,
            diagnostics: Diagnostic::error("E-PROVIDER-DATA", format!("data source kind `{}` is not supported", req.kind)).into(),
        }
    }
}

pub struct ValidateRequest<'a> {
    pub kind: &'a str,
    pub config: &'a Value,
}

pub struct PlanRequest<'a> {
    pub address: &'a str,
    pub kind: &'a str,
    pub prior: Option<&'a Value>,
    /// For the create half of a replacement (`prior` is then `None`): the object it replaces,
    /// so a provider can carry values across (a restarted job's restart count).
    pub replacing: Option<&'a Value>,
    pub config: &'a Value,
    pub proposed: &'a Value,
}

pub struct PlanResponse {
    pub planned: Value,
    /// Attribute names whose change requires replacement, beyond the schema's `force_new`.
    pub requires_replace: Vec<String>,
    pub diagnostics: Diagnostics,
}

pub struct CreateRequest<'a> {
    pub address: &'a str,
    pub kind: &'a str,
    pub planned: &'a Value,
    /// Idempotency token saved in state before this call.
    pub token: &'a str,
}

pub struct UpdateRequest<'a> {
    pub address: &'a str,
    pub kind: &'a str,
    pub prior: &'a Value,
    pub planned: &'a Value,
}

pub struct DeleteRequest<'a> {
    pub address: &'a str,
    pub kind: &'a str,
    pub prior: &'a Value,
}

pub struct ApplyResponse {
    /// New state; `None` when the operation failed before anything existed.
    pub state: Option<Value>,
    pub diagnostics: Diagnostics,
}

pub struct ReadItem<'a> {
    pub address: &'a str,
    pub kind: &'a str,
    pub state: &'a Value,
}

pub struct ReadRequest<'a> {
    pub items: Vec<ReadItem<'a>>,
}

pub struct ReadResponse {
    /// One result per item, in order.
    pub results: Vec<ReadResult>,
}

pub struct ReadResult {
    pub state: Option<Value>,
    pub diagnostics: Diagnostics,
}

pub struct RecoverRequest<'a> {
    pub address: &'a str,
    pub kind: &'a str,
    pub token: &'a str,
    pub planned: &'a Value,
}

pub struct ImportRequest<'a> {
    pub address: &'a str,
    pub kind: &'a str,
    pub id: &'a str,
}

pub struct LogsRequest<'a> {
    pub address: &'a str,
    pub kind: &'a str,
    pub state: &'a Value,
    /// Node rank.
    pub node: usize,
    pub offset: u64,
    /// `None`: read from `offset`. `Some`: read nothing and answer the position sought as
    /// `next_offset` (`offset` is ignored).
    pub seek: Option<LogSeek>,
}

/// A position in a node's log that `kiln logs` starts from ([`LogsRequest::seek`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogSeek {
    /// The log's current size (`--tail`, `--follow`).
    End,
    /// Where the output written at or after this time (seconds since the Unix epoch) starts,
    /// from the time index the node keeps beside its log ([`logs::TimeIndex`]; aws: its log
    /// parts' upload times): early by at most one sampling interval, never late. A provider that keeps no time index, or a job
    /// started before it kept one, answers `E-LOGS-SINCE`: never the whole log instead.
    Since(i64),
}

pub struct LogsResponse {
    pub data: Vec<u8>,
    pub next_offset: u64,
    /// No more output will come (the job has finished).
    pub finished: bool,
    /// This log holds every node's output (Slurm's one output file for a job): there is no
    /// separate log per node.
    pub all_nodes: bool,
    pub diagnostics: Diagnostics,
}

/// One operation on the files kiln keeps in a bucket ([`Provider::store`]).
pub struct StoreRequest<'a> {
    pub address: &'a str,
    pub kind: &'a str,
    /// The bucket's state.
    pub state: &'a Value,
    pub op: StoreOp<'a>,
}

/// What [`Provider::store`] does; keys are relative to the bucket's root, `/`-separated.
#[derive(Debug, Clone, Copy)]
pub enum StoreOp<'a> {
    /// Writes the object (replacing it), readable only with the bucket's access.
    Put { key: &'a str, data: &'a [u8] },
    /// Up to `len` bytes of the object from `offset`, and the object's size.
    Get { key: &'a str, offset: u64, len: u64 },
    /// The keys under `prefix`.
    List { prefix: &'a str },
    /// Deletes the objects (a missing one is no error).
    Delete { keys: &'a [String] },
}

#[derive(Debug, Default)]
pub struct StoreResponse {
    /// [`StoreOp::Get`]'s bytes.
    pub data: Vec<u8>,
    /// [`StoreOp::Get`]: the object's size.
    pub size: u64,
    /// [`StoreOp::List`]'s keys.
    pub keys: Vec<String>,
    pub diagnostics: Diagnostics,
}

impl StoreResponse {
    pub fn refused(d: impl Into<Diagnostics>) -> Self {
        StoreResponse { diagnostics: d.into(), ..Default::default() }
    }
}

/// Which bucket [`Provider::contents`] looks into.
pub struct ContentsRequest<'a> {
    pub address: &'a str,
    pub kind: &'a str,
    /// The bucket's state (as refreshed by the plan).
    pub state: &'a Value,
}

/// What [`Provider::contents`] found in a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// It holds no object (kiln's own marker aside).
    Empty,
    /// It holds objects: the first few names found (a handful at most), for the message.
    Holds { examples: Vec<String> },
    /// It could not tell, and why (a provider that cannot look, a read that failed).
    Unknown { reason: String },
}

impl Contents {
    /// The default answer: this provider cannot look into a bucket.
    pub fn unknown(req: &ContentsRequest<'_>) -> Contents {
        Contents::Unknown { reason: format!("the provider of `{}` cannot tell whether a `{}` holds objects", req.address, req.kind) }
    }
}

/// [`Provider::store`]'s default answer: `E-PROVIDER-STORE`.
pub fn no_store(req: &StoreRequest<'_>) -> Diagnostic {
    Diagnostic::error("E-PROVIDER-STORE", format!("{}: a `{}` of this provider cannot keep kiln's files", req.address, req.kind))
        .address(req.address)
        .hint("kiln keeps them under .kiln/ of the configuration's directory instead")
}

pub struct ShellRequest<'a> {
    pub address: &'a str,
    pub kind: &'a str,
    pub state: &'a Value,
    /// Node rank.
    pub node: usize,
}

/// One host `ssh` connects to: the node, or a host on the way to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellHost {
    /// Unique among the hosts of one [`ShellAccess`] (ssh knows the host as `kiln-NAME`).
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: Option<String>,
    pub identity_file: Option<std::path::PathBuf>,
    /// A private key to log in with, for `kiln ssh` to write to a private file (the key pair
    /// kiln created for an aws cluster); sensitive, never shown.
    pub private_key: Option<String>,
    /// The `name` of the host (of the same access) to connect through.
    pub proxy_jump: Option<String>,
    pub host_key: ShellHostKey,
}

/// Which host key `ssh` accepts for a [`ShellHost`]; it never accepts a changed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellHostKey {
    /// This key (`ALGORITHM BASE64`) and no other.
    Pinned(String),
    /// The user's own known_hosts files decide, strictly.
    UserKnownHosts,
    /// The key the host presents the first time is kept (in `.kiln/ssh/known_hosts`), and any
    /// other refused afterwards: for hosts that publish their key nowhere kiln can read it
    /// first (a new EC2 instance).
    FirstUse,
}

/// How to reach a node: the hosts in connection order, the node last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellAccess {
    pub hosts: Vec<ShellHost>,
    /// Words run on the last host before the user's command (or shell), such as Slurm's
    /// `srun --jobid 42 --relative 1 --pty`; empty: none.
    pub wrapper: Vec<String>,
    /// What the user should know about where the shell opens (a login node rather than the
    /// node itself, say).
    pub note: Option<String>,
}

pub struct ShellResponse {
    pub access: Option<ShellAccess>,
    pub diagnostics: Diagnostics,
}

impl ShellResponse {
    pub fn refused(d: Diagnostic) -> Self {
        ShellResponse { access: None, diagnostics: d.into() }
    }
}

/// "this provider has no shell on its nodes", for `req`.
pub fn no_shell(req: &ShellRequest<'_>) -> Diagnostic {
    Diagnostic::error("E-SSH-UNSUPPORTED", format!("{}: this provider has no shell on the nodes of a `{}`", req.address, req.kind))
        .address(req.address)
        .hint("kiln ssh reaches the nodes of onprem and Slurm clusters and jobs, and of aws clusters that allow SSH")
}

pub struct ReadDataRequest<'a> {
    pub kind: &'a str,
    pub config: &'a Value,
}

impl ApplyResponse {
    pub fn ok(state: Value) -> Self {
        ApplyResponse { state: Some(state), diagnostics: Diagnostics::new() }
    }
    pub fn error(d: Diagnostic) -> Self {
        ApplyResponse { state: None, diagnostics: d.into() }
    }
}

impl ReadResult {
    pub fn found(state: Value) -> Self {
        ReadResult { state: Some(state), diagnostics: Diagnostics::new() }
    }
    pub fn gone() -> Self {
        ReadResult { state: None, diagnostics: Diagnostics::new() }
    }
}
