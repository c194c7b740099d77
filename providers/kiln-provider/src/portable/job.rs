//! The portable `job`: its schema and `checkpoint` block (written once, each provider adding only
//! its extras), the environment every node of every provider sees, where its checkpoints go, and
//! the status vocabulary the CLI reads.
//!
//! # The job environment
//!
//! | Variable | Value |
//! |---|---|
//! | `KILN_JOB_ID` | the job's `job_id` |
//! | `KILN_NODE_RANK` | this node's rank, 0 to `KILN_NUM_NODES - 1` |
//! | `KILN_NUM_NODES` | nodes of the job |
//! | `KILN_NODE_IPS` | every node's address, by rank, comma-separated |
//! | `KILN_MASTER_ADDR` | rank 0's address |
//! | `KILN_MASTER_PORT` | a TCP port free on rank 0 when the job started |
//! | `KILN_NUM_GPUS_PER_NODE` | GPUs each node gets |
//! | `KILN_CHECKPOINT_DIR` | a **local directory** on the node, restored from and kept in the checkpoint bucket |
//! | `KILN_CHECKPOINT_URI` | where that directory lives in the bucket (the bucket's `uri` plus `path`); empty without a `checkpoint` block |
//! | `KILN_LOCAL_RANK` | the task's rank on its node (0 with one task per node) |
//! | `KILN_TASK_RANK` | the task's rank in the job (`KILN_NODE_RANK` with one task per node) |
//! | `KILN_NUM_TASKS` | tasks of the job (`KILN_NUM_NODES` with one task per node) |
//!
//! Every provider sets all twelve. Slurm runs `tasks` tasks through `srun` and takes the task
//! variables from `SLURM_*`; every other provider runs one task per node ([`NodeEnv::vars`]).
//! The user's `env` comes after them, so it wins.
//!
//! # Checkpoint credentials
//!
//! kiln hands a node no credentials for its checkpoints: a node reaches its checkpoint bucket
//! with what it already has where it runs. A `local` job's processes run as the user running
//! kiln; an `onprem` job's as each host's login user; a Slurm job's tasks as the submitting user,
//! on the cluster's shared file system; an `aws` job's agent restores and syncs the directory with
//! the instance profile's role. A bucket the nodes cannot reach that way ([`BucketStore`]), such
//! as an S3 bucket for a local, onprem or Slurm job, or an onprem host's directory for a local
//! job, is refused at validate and plan, at the job's address with a hint
//! (`E-LOCAL-JOB-CHECKPOINT`, `E-ONPREM-JOB-CHECKPOINT`, `E-SLURM-JOB-CHECKPOINT`), even while
//! the bucket is still to be created; one they reach only through a mount they share (a `local`
//! bucket for an onprem job, or for Slurm over SSH; an onprem host's own directory for Slurm)
//! gets a warning. No job starts with a checkpoint directory that silently goes nowhere.
//!
//! # The workdir and secrets
//!
//! `workdir` is a directory on the machine running kiln, relative to the configuration
//! directory, on every provider: `local` runs the scripts in it; a remote provider uploads it
//! (less what its `.kilnignore` excludes, at most 100 MiB) to a place of its own on every node
//! and runs the scripts there; its content digest is the computed `workdir_digest`, so a changed
//! file replaces the job. A `workdir` that is not a directory here keeps the meaning remote
//! providers gave it before (a directory on the nodes), and so does a job planned before the
//! digest existed, until it is replaced: see [`crate::portable::workdir`].
//!
//! `secret_env` holds variables with secrets; state keeps only a salted digest of each and the
//! values reach the processes through a mode-0600 file or the provider's secret store: see
//! [`crate::portable::secret_env`].

use std::fmt;

use kiln_diag::Diagnostic;
use kiln_schema::{Attribute, Block, Body, Nesting};
use kiln_value::{Map, Type, Value};

// ---------------------------------------------------------------------------------------------
// Schema

/// The `checkpoint` block's flags on a provider. Where providers differ today, the difference is
/// kept (a changed flag could plan a replacement for an existing state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointBlock {
    /// The block must be written (`min_items = 1`).
    pub required: bool,
    /// Changing the block replaces the job (the block's own `force_new`).
    pub force_new: bool,
    pub description: &'static str,
    /// Description of `checkpoint.bucket`.
    pub bucket: &'static str,
    /// Description of `checkpoint.path`.
    pub path: &'static str,
}

impl Default for CheckpointBlock {
    /// Optional and updatable: what local, onprem and Slurm publish.
    fn default() -> Self {
        CheckpointBlock {
            required: false,
            force_new: false,
            description: "Where the job keeps checkpoints (KILN_CHECKPOINT_DIR)",
            bucket: "The bucket, such as `bucket.checkpoints`",
            path: "Directory inside the bucket, such as \"run-1/\"",
        }
    }
}

impl CheckpointBlock {
    pub fn block(&self) -> Block {
        let body = Body::new()
            .attr("bucket", Attribute::required(Type::Any, self.bucket))
            .attr("path", Attribute::optional(Type::String, self.path).default(""));
        Block {
            nesting: Nesting::Single,
            body,
            min_items: usize::from(self.required),
            max_items: Some(1),
            force_new: self.force_new,
            description: self.description,
        }
    }
}

/// The portable `job` schema. Providers change descriptions where theirs say more (struct update
/// syntax over [`JobSchema::default`]), then add their extras to [`JobSchema::body`]'s result:
///
/// ```
/// use kiln_provider::portable::job::{self, JobSchema};
/// let body = JobSchema { workdir: "Directory on the hosts; default: the job's directory", ..JobSchema::default() }
///     .body()
///     .attr("stop_grace", job::stop_grace())
///     .attr("exit_codes", job::exit_codes());
/// assert!(body.attributes["run"].force_new);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSchema {
    pub cluster: &'static str,
    pub setup: &'static str,
    pub run: &'static str,
    pub workdir: &'static str,
    pub nodes: &'static str,
    pub job_id: &'static str,
    pub started_at: &'static str,
    pub checkpoint: CheckpointBlock,
}

impl Default for JobSchema {
    fn default() -> Self {
        JobSchema {
            cluster: "The cluster to run on, such as `cluster.train`",
            setup: "Script run on every node before `run`",
            run: "Script run on every node",
            workdir: "Directory on the machine running kiln (relative to the configuration directory) the scripts run in; \
                      remote providers upload it to each node, less what its .kilnignore excludes",
            nodes: "Nodes to run on; default: all of the cluster's",
            job_id: "Identifier of the job (KILN_JOB_ID)",
            started_at: "RFC 3339 time the job started",
            checkpoint: CheckpointBlock::default(),
        }
    }
}

/// The attributes every provider's `job` has, with the same type and flags everywhere, and the
/// `checkpoint` block.
pub const COMMON: [&str; 14] = [
    "cluster",
    "setup",
    "run",
    "workdir",
    "workdir_digest",
    "env",
    "secret_env",
    "nodes",
    "job_id",
    "status",
    "started_at",
    "finished_at",
    LOG_RETENTION,
    ON_FINISH,
];

/// What happens to the job's cluster when the job succeeds: `"keep"` (the default) or
/// `"destroy_capacity"`, which releases it (the plan deletes it and state keeps it as released,
/// so nothing bills after the work is done; a later plan creates it again for a job that needs
/// it). Updated in place; absent from an old state, it plans no change.
pub const ON_FINISH: &str = "on_finish";

/// The `on_finish` value that releases the cluster.
pub const DESTROY_CAPACITY: &str = "destroy_capacity";

const ON_FINISH_DESCRIPTION: &str = "What happens to the cluster when the job succeeds: \"keep\" (default) or \"destroy_capacity\", \
     which destroys the cluster and keeps it in state as released until a job that needs it is created or replaced, or its \
     configuration changes";

/// Whether the job (its value) succeeded and asks for its cluster's capacity to be released.
pub fn releases_capacity(job: &Value) -> bool {
    job.get(ON_FINISH).and_then(Value::as_str) == Some(DESTROY_CAPACITY) && JobStatus::of(job) == Some(JobStatus::Succeeded)
}

/// An `on_finish` that is neither `keep` nor `destroy_capacity`, at the attribute.
pub fn validate_on_finish(config: &Value) -> Option<Diagnostic> {
    let v = config.get(ON_FINISH).and_then(Value::as_str)?;
    if v == "keep" || v == DESTROY_CAPACITY {
        return None;
    }
    Some(
        Diagnostic::error("E-JOB-ON-FINISH", format!("on_finish: `{v}` is not something kiln does when a job finishes"))
            .attribute(ON_FINISH)
            .hint("write \"keep\" (the cluster stays up) or \"destroy_capacity\" (the cluster is released when the job succeeds)"),
    )
}

/// How long kiln keeps a job's logs after an apply destroys or replaces it (`kiln logs`).
/// Optional without a default, so a state written before it plans no change; changing it never
/// replaces the job.
pub const LOG_RETENTION: &str = "log_retention";

const LOG_RETENTION_DESCRIPTION: &str = "How long kiln keeps the job's logs after an apply destroys or replaces it, in the job's \
     checkpoint bucket when it has one that kiln can write (else under .kiln/logs), such as \"14d\" or \"12h\" (units s, m, h, d; \
     \"0\" keeps none); default 7d; the KILN_LOG_RETENTION environment variable overrides it";

/// The longest `log_retention` (and `KILN_LOG_RETENTION`): 100 years.
pub const MAX_LOG_RETENTION: std::time::Duration = std::time::Duration::from_secs(36_500 * 86_400);

/// A `log_retention` read as a duration of at most [`MAX_LOG_RETENTION`].
pub fn parse_log_retention(v: &str) -> Result<std::time::Duration, String> {
    let d = crate::logs::parse_duration(v)?;
    if d > MAX_LOG_RETENTION {
        return Err(format!("`{}` is longer than kiln keeps logs (at most 36500d, 100 years)", v.trim()));
    }
    Ok(d)
}

/// The portable checks of a job's configuration ([`validate_log_retention`], [`validate_on_finish`],
/// [`recovery::validate`](crate::portable::recovery::validate)), each at its attribute.
pub fn validate(config: &Value) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = validate_log_retention(config).into_iter().chain(validate_on_finish(config)).collect();
    out.extend(crate::portable::recovery::validate(config));
    out
}

/// A `log_retention` that is not a duration (or a longer one than [`MAX_LOG_RETENTION`]), as a
/// diagnostic at the attribute.
pub fn validate_log_retention(config: &Value) -> Option<Diagnostic> {
    let v = config.get(LOG_RETENTION).and_then(Value::as_str)?;
    let e = parse_log_retention(v).err()?;
    Some(
        Diagnostic::error("E-JOB-LOG-RETENTION", format!("log_retention: {e}"))
            .attribute(LOG_RETENTION)
            .hint("write a duration such as \"14d\", \"12h\" or \"1d12h\" (units s, m, h, d), or \"0\" to keep no logs"),
    )
}

impl JobSchema {
    /// The common attributes ([`COMMON`]) and the `checkpoint` block.
    pub fn body(&self) -> Body {
        Body::new()
            .attr("cluster", Attribute::required(Type::Any, self.cluster))
            .attr("setup", Attribute::optional(Type::String, self.setup).force_new())
            .attr("run", Attribute::required(Type::String, self.run).force_new())
            .attr("workdir", Attribute::optional(Type::String, self.workdir).force_new())
            .attr(crate::portable::workdir::DIGEST_ATTR, Attribute::computed(Type::String, crate::portable::workdir::DIGEST_DESCRIPTION))
            .attr("env", Attribute::optional(Type::Map(Box::new(Type::String)), "Extra environment variables").force_new())
            .attr(
                crate::portable::secret_env::ATTR,
                Attribute::optional(Type::Map(Box::new(Type::String)), crate::portable::secret_env::DESCRIPTION).sensitive().force_new(),
            )
            .attr("nodes", Attribute::optional_computed(Type::Number, self.nodes).force_new())
            .attr("job_id", Attribute::computed(Type::String, self.job_id))
            .attr("status", Attribute::computed(Type::String, JobStatus::DESCRIPTION))
            .attr("started_at", Attribute::computed(Type::String, self.started_at))
            .attr("finished_at", Attribute::computed(Type::String, "RFC 3339 time the job finished (null until then)"))
            .attr(LOG_RETENTION, Attribute::optional(Type::String, LOG_RETENTION_DESCRIPTION))
            .attr(ON_FINISH, Attribute::optional(Type::String, ON_FINISH_DESCRIPTION))
            .block("checkpoint", self.checkpoint.block())
            .block(crate::portable::recovery::BLOCK, crate::portable::recovery::block())
    }
}

/// Extra: seconds between SIGTERM and SIGKILL when the job is stopped (default 10).
pub fn stop_grace() -> Attribute {
    Attribute::optional(Type::Number, "Seconds between SIGTERM and SIGKILL when the job is stopped").default(10i64)
}

/// Extra: each node's exit code.
pub fn exit_codes() -> Attribute {
    Attribute::computed(
        Type::List(Box::new(Type::Any)),
        "Exit code of each node (null while it runs, or where its agent stopped it because another node failed or was lost)",
    )
}

/// Extra: how often the job was started again.
pub fn restarts() -> Attribute {
    Attribute::computed(Type::Number, "Times the job was started again after it was lost or failed")
}

/// Extra: the nodes' addresses (KILN_NODE_IPS).
pub fn node_ips() -> Attribute {
    Attribute::computed(Type::List(Box::new(Type::String)), "KILN_NODE_IPS: each node's address, by rank")
}

/// One line per attribute (`name: TYPE required|optional|computed|optional+computed [force_new]
/// [sensitive] [default=V]`) and per block (with its flags and then its own lines, indented), in
/// name order, without descriptions: what decides how an existing state plans. Tests compare it
/// to pin a schema's shape.
pub fn shape(body: &Body) -> Vec<String> {
    let mut out = Vec::new();
    shape_into(body, "", &mut out);
    out
}

fn shape_into(body: &Body, indent: &str, out: &mut Vec<String>) {
    for (name, a) in &body.attributes {
        let mode = match (a.required, a.optional, a.computed) {
            (true, _, _) => "required",
            (false, true, true) => "optional+computed",
            (false, true, false) => "optional",
            _ => "computed",
        };
        let mut line = format!("{indent}{name}: {:?} {mode}", a.ty);
        if a.force_new {
            line += " force_new";
        }
        if a.sensitive {
            line += " sensitive";
        }
        if let Some(d) = &a.default {
            line += &format!(" default={d}");
        }
        out.push(line);
    }
    for (name, b) in &body.blocks {
        let max = b.max_items.map_or("*".to_string(), |m| m.to_string());
        let force = if b.force_new { " force_new" } else { "" };
        out.push(format!("{indent}{name} {{}} {:?} {}..{max}{force}", b.nesting, b.min_items));
        shape_into(&b.body, &format!("{indent}  "), out);
    }
}

/// [`shape`] of what a provider's `job` body adds to the portable one (its attributes outside
/// [`COMMON`]), then the `checkpoint` block's own line (its flags differ between providers).
/// With [`schema_problems`] empty, it pins the whole body.
pub fn extras_shape(body: &Body) -> Vec<String> {
    let mut extras = body.clone();
    extras.attributes.retain(|name, _| !COMMON.contains(&name.as_str()));
    extras.blocks.retain(|name, _| name == "checkpoint");
    for b in extras.blocks.values_mut() {
        b.body = Body::new();
    }
    shape(&extras)
}

/// For providers' tests: panics unless `body` is the portable job body ([`schema_problems`] finds
/// nothing) plus exactly `extras`: [`extras_shape`]'s lines joined by `"; "`. With the shape the
/// states were written with, it pins the body: a changed type or flag could plan a replacement.
pub fn assert_schema(body: &Body, extras: &str) {
    assert_eq!(schema_problems(body), Vec::<String>::new(), "the job schema differs from the portable one");
    assert_eq!(extras_shape(body).join("; "), extras, "the job schema's extras changed");
}

/// What a provider's `job` body lacks of the portable contract: each common attribute and the
/// `checkpoint` block's attributes must be there with the portable type and flags. Empty when it
/// conforms.
pub fn schema_problems(body: &Body) -> Vec<String> {
    let portable = JobSchema::default().body();
    let flags = |a: &Attribute| (a.ty.clone(), a.required, a.optional, a.computed, a.force_new, a.sensitive, a.default.clone());
    let mut out = Vec::new();
    for name in COMMON {
        match body.attributes.get(name) {
            None => out.push(format!("`{name}` is missing")),
            Some(a) if flags(a) != flags(&portable.attributes[name]) => {
                out.push(format!("`{name}` differs from the portable `{name}`: {a:?}"));
            }
            Some(_) => {}
        }
    }
    match body.blocks.get("checkpoint") {
        None => out.push("the `checkpoint` block is missing".to_string()),
        Some(b) => {
            let want = &portable.blocks["checkpoint"];
            if b.nesting != Nesting::Single || b.max_items != Some(1) || b.body.attributes.len() != 2 {
                out.push("the `checkpoint` block must be a single block of `bucket` and `path`".to_string());
            }
            for (name, a) in &want.body.attributes {
                if b.body.attributes.get(name).map(flags) != Some(flags(a)) {
                    out.push(format!("`checkpoint.{name}` differs from the portable one"));
                }
            }
        }
    }
    let recovery = crate::portable::recovery::BLOCK;
    if body.blocks.get(recovery).map(shape_of) != Some(shape_of(&portable.blocks[recovery])) {
        out.push(format!("the `{recovery}` block differs from the portable one"));
    }
    out
}

/// A block's flags and [`shape`], to compare blocks.
fn shape_of(b: &Block) -> (Nesting, usize, Option<usize>, bool, Vec<String>) {
    (b.nesting, b.min_items, b.max_items, b.force_new, shape(&b.body))
}

// ---------------------------------------------------------------------------------------------
// Planning

/// The portable rule for a `lost` job: it asks to be replaced. For a prior that is lost, sets
/// the planned `status` unknown and returns `"status"` for `requires_replace`.
pub fn replace_if_lost(prior: &Value, planned: &mut Map) -> Option<String> {
    (JobStatus::of(prior) == Some(JobStatus::Lost)).then(|| {
        planned.insert("status".into(), Value::Unknown);
        "status".to_string()
    })
}

/// `restarts` of a new job: one more than the job it replaces when that one ended without
/// succeeding (lost, or failed: `kiln watch` starts it again), else 0.
pub fn restarts_after(replacing: Option<&Value>) -> Value {
    let again = replacing.filter(|r| matches!(JobStatus::of(r), Some(JobStatus::Lost | JobStatus::Failed)));
    crate::util::num(again.map_or(0, |r| restarts_of(r) + 1))
}

/// A job's `restarts` (0 when it has none): which attempt of its address it is.
pub fn restarts_of(job: &Value) -> u64 {
    crate::util::u64_attr(job, "restarts").unwrap_or(0)
}

/// The user's `env`, as the nodes get it (values as template strings), in name order.
pub fn user_env(job: &Value) -> Vec<(String, String)> {
    let env = job.get("env").and_then(Value::as_map).into_iter().flatten();
    env.map(|(k, x)| (k.clone(), x.to_template_string().unwrap_or_default())).collect()
}

// ---------------------------------------------------------------------------------------------
// Environment

pub const JOB_ID: &str = "KILN_JOB_ID";
pub const NODE_RANK: &str = "KILN_NODE_RANK";
pub const NUM_NODES: &str = "KILN_NUM_NODES";
pub const NODE_IPS: &str = "KILN_NODE_IPS";
pub const MASTER_ADDR: &str = "KILN_MASTER_ADDR";
pub const MASTER_PORT: &str = "KILN_MASTER_PORT";
pub const NUM_GPUS_PER_NODE: &str = "KILN_NUM_GPUS_PER_NODE";
pub const CHECKPOINT_DIR: &str = "KILN_CHECKPOINT_DIR";
pub const CHECKPOINT_URI: &str = "KILN_CHECKPOINT_URI";
pub const LOCAL_RANK: &str = "KILN_LOCAL_RANK";
pub const TASK_RANK: &str = "KILN_TASK_RANK";
pub const NUM_TASKS: &str = "KILN_NUM_TASKS";

/// Every variable of the job environment, in the order [`NodeEnv::vars`] gives them.
pub const ENV: [&str; 12] = [
    JOB_ID,
    NODE_RANK,
    NUM_NODES,
    NODE_IPS,
    MASTER_ADDR,
    MASTER_PORT,
    NUM_GPUS_PER_NODE,
    CHECKPOINT_DIR,
    CHECKPOINT_URI,
    LOCAL_RANK,
    TASK_RANK,
    NUM_TASKS,
];

/// What one node's job environment is made of. The job has as many nodes as `node_ips` has
/// addresses, one task per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEnv<'a> {
    pub job_id: &'a str,
    pub node_rank: u64,
    /// Every node's address, by rank.
    pub node_ips: &'a [String],
    /// Rank 0's address (as the other nodes reach it).
    pub master_addr: &'a str,
    pub master_port: u16,
    pub gpus_per_node: u64,
    /// The local directory.
    pub checkpoint_dir: &'a str,
    /// Its place in the bucket ([`Checkpoint::uri`]); empty without a bucket.
    pub checkpoint_uri: &'a str,
}

impl NodeEnv<'_> {
    /// The node's variables, every one of [`ENV`], in that order.
    pub fn vars(&self) -> Vec<(String, String)> {
        let nodes = self.node_ips.len().to_string();
        let rank = self.node_rank.to_string();
        [
            (JOB_ID, self.job_id.to_string()),
            (NODE_RANK, rank.clone()),
            (NUM_NODES, nodes.clone()),
            (NODE_IPS, self.node_ips.join(",")),
            (MASTER_ADDR, self.master_addr.to_string()),
            (MASTER_PORT, self.master_port.to_string()),
            (NUM_GPUS_PER_NODE, self.gpus_per_node.to_string()),
            (CHECKPOINT_DIR, self.checkpoint_dir.to_string()),
            (CHECKPOINT_URI, self.checkpoint_uri.to_string()),
            (LOCAL_RANK, "0".to_string()),
            (TASK_RANK, rank),
            (NUM_TASKS, nodes),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

/// Where a checkpoint bucket keeps its files, as its `uri`'s scheme says (or, while the `uri` is
/// not known yet, the attributes only one provider's bucket has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketStore {
    /// `file://`: a directory on the machine running kiln (a `local` bucket).
    Local,
    /// `sftp://HOST/PATH`: a directory on a host of a fleet (an `onprem` bucket); `shared` when
    /// its path is a mount every host of the fleet sees.
    Host { host: Option<String>, shared: bool },
    /// An object store reached over an API with credentials, such as `s3` (an `aws` bucket).
    Object(String),
    /// Cannot tell: no `uri` and no telling attribute (such as an object with only a `path`),
    /// or values not known yet.
    Unknown,
}

impl BucketStore {
    pub fn of(bucket: &Value) -> BucketStore {
        let s = |k: &str| bucket.get(k).and_then(Value::as_str);
        let shared = bucket.get("shared").and_then(Value::as_bool) == Some(true);
        match s("uri").and_then(|u| u.split_once("://")).map(|(scheme, _)| scheme.to_ascii_lowercase()) {
            Some(scheme) if scheme == "file" => BucketStore::Local,
            Some(scheme) if scheme == "sftp" => BucketStore::Host { host: s("host").map(str::to_string), shared },
            Some(scheme) => BucketStore::Object(scheme),
            None if bucket.get("arn").is_some() => BucketStore::Object("s3".to_string()),
            None if bucket.get("shared").is_some() && bucket.get("host").is_some() => {
                BucketStore::Host { host: s("host").map(str::to_string), shared }
            }
            None => BucketStore::Unknown,
        }
    }

    /// How a diagnostic names it: "an `s3` bucket", "a directory on host `h1`".
    pub fn describe(&self) -> String {
        match self {
            BucketStore::Local => "a directory on the machine running kiln (a `local` bucket)".to_string(),
            BucketStore::Host { host: Some(h), shared: false } => format!("a directory on host `{h}` (an `onprem` bucket)"),
            BucketStore::Host { .. } => "a directory on the hosts of a fleet (an `onprem` bucket)".to_string(),
            BucketStore::Object(scheme) => format!("an object store (`{scheme}://`) reached with credentials"),
            BucketStore::Unknown => "a bucket of unknown kind".to_string(),
        }
    }
}

/// A job's `checkpoint` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint<'a> {
    pub bucket: &'a Value,
    /// `path` as written.
    pub path: &'a str,
}

impl<'a> Checkpoint<'a> {
    /// The block of a job's value; `None` without one (or while it is unknown).
    pub fn of(job: &'a Value) -> Option<Checkpoint<'a>> {
        let c = job.get("checkpoint").filter(|c| !c.is_null() && !c.is_unknown())?;
        let bucket = c.get("bucket").filter(|b| !b.is_null())?;
        Some(Checkpoint { bucket, path: c.get("path").and_then(Value::as_str).unwrap_or_default() })
    }

    pub fn store(&self) -> BucketStore {
        BucketStore::of(self.bucket)
    }

    /// The bucket's `uri` joined with `path`, such as `s3://b/run 1` (object-store URIs name keys
    /// as written, as the aws CLI reads them) or `file:///data/ckpt/run%201` (percent-encoded); `None` while the bucket has no known `uri` (then the provider
    /// names its directory with [`file_uri`]).
    pub fn uri(&self) -> Option<String> {
        let base = self.bucket.get("uri").and_then(Value::as_str)?;
        let sub = self.path.trim_matches('/');
        let sub = if base.starts_with("file://") { encode(sub) } else { sub.to_string() };
        Some(if sub.is_empty() { base.to_string() } else { format!("{}/{sub}", base.trim_end_matches('/')) })
    }

    /// The error for a bucket the job's nodes cannot reach (see [`BucketStore`]): at
    /// `checkpoint`, saying what the bucket is; `hint` says what to use instead. Callers add
    /// the job's address.
    pub fn unreachable(&self, code: &'static str, provider: &str, hint: &str) -> Diagnostic {
        let store = self.store();
        Diagnostic::error(code, format!("checkpoint.bucket is {}, which the nodes of a `{provider}` job cannot reach", store.describe()))
            .attribute("checkpoint")
            .detail(
                "KILN_CHECKPOINT_DIR is a directory on each node; kiln hands nodes no credentials for another provider's bucket, \
             and refuses a checkpoint directory that would silently go nowhere",
            )
            .hint(hint.to_string())
    }
}

/// `file://PATH`, percent-encoded.
pub fn file_uri(path: &str) -> String {
    format!("file://{}", encode(path))
}

/// `base` and `sub` joined by one `/`, trailing and leading slashes of the parts dropped
/// (`sub` empty: `base` as written).
pub fn join_dir(base: &str, sub: &str) -> String {
    let sub = sub.trim_matches('/');
    if sub.is_empty() {
        base.to_string()
    } else {
        format!("{}/{sub}", base.trim_end_matches('/'))
    }
}

/// A path percent-encoded for a URI (letters, digits and `/-._~` kept).
fn encode(path: &str) -> String {
    path.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Status

/// A job's `status`, the same words on every provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobStatus {
    /// Created, not started yet (instances booting, processes held, waiting to be scheduled).
    Pending,
    /// Accepted by a scheduler and waiting in its queue for resources.
    Queued,
    /// At least one node runs the job.
    Running,
    /// Every node exited 0.
    Succeeded,
    /// A node exited non-zero (or the scheduler ended the job: time limit, cancelled).
    Failed,
    /// A node is gone without an exit code (its host, instance or process vanished); the next
    /// plan replaces the job.
    Lost,
    /// Stopped on purpose before it finished.
    Stopped,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Pending,
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Lost,
        JobStatus::Stopped,
    ];

    /// The `status` attribute's description.
    pub const DESCRIPTION: &'static str = "pending, queued, running, succeeded, failed, lost or stopped";

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Lost => "lost",
            JobStatus::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The `status` attribute of a job's value.
    pub fn of(job: &Value) -> Option<JobStatus> {
        job.get("status").and_then(Value::as_str).and_then(JobStatus::parse)
    }

    /// It will not change by itself: succeeded, failed, lost or stopped (a lost job changes
    /// only when an apply replaces it).
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Lost | JobStatus::Stopped)
    }

    /// It ran to its end: succeeded or failed (its exit codes and `finished_at` are known).
    pub fn has_finished(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }
}

/// What one node of a job is doing, as its provider sees it; `T` is when it exited, in the
/// provider's terms (a providers' own node type can be `NodeState<ITS_TIME>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState<T = ()> {
    /// Not started yet.
    Pending,
    Running,
    /// Exited with this code, at this time.
    Exited(i32, T),
    /// Gone without an exit code (its process, host or instance vanished).
    Lost,
}

/// When a node that exited non-zero fails the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailWhen {
    /// At once, while other nodes still run.
    AtOnce,
    /// Once no node runs or waits to (a job is not over while any of its processes is).
    NoneActive,
}

impl JobStatus {
    /// A job's status from its nodes: failed once a node exited non-zero (see [`FailWhen`]);
    /// succeeded when every node exited 0; lost when a node is lost; running while a node runs;
    /// else pending.
    pub fn of_nodes<T>(nodes: &[NodeState<T>], fail: FailWhen) -> JobStatus {
        let any = |f: fn(&NodeState<T>) -> bool| nodes.iter().any(f);
        let failed = any(|n| matches!(n, NodeState::Exited(c, _) if *c != 0));
        if failed && (fail == FailWhen::AtOnce || !any(|n| matches!(n, NodeState::Running | NodeState::Pending))) {
            JobStatus::Failed
        } else if !nodes.is_empty() && nodes.iter().all(|n| matches!(n, NodeState::Exited(0, _))) {
            JobStatus::Succeeded
        } else if any(|n| matches!(n, NodeState::Lost)) {
            JobStatus::Lost
        } else if any(|n| matches!(n, NodeState::Running)) {
            JobStatus::Running
        } else {
            JobStatus::Pending
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        JobStatus::parse(s).ok_or_else(|| format!("`{s}` is not a job status ({})", JobStatus::DESCRIPTION))
    }
}

impl From<JobStatus> for Value {
    fn from(s: JobStatus) -> Value {
        Value::from(s.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(j: serde_json::Value) -> Value {
        Value::from_json(&j)
    }

    #[test]
    fn statuses_round_trip_and_classify() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string().parse::<JobStatus>(), Ok(s));
            assert!(JobStatus::DESCRIPTION.contains(s.as_str()));
        }
        let terminal: Vec<&str> = JobStatus::ALL.into_iter().filter(|s| s.is_terminal()).map(JobStatus::as_str).collect();
        assert_eq!(terminal, ["succeeded", "failed", "lost", "stopped"]);
        let finished: Vec<&str> = JobStatus::ALL.into_iter().filter(|s| s.has_finished()).map(JobStatus::as_str).collect();
        assert_eq!(finished, ["succeeded", "failed"]);
        assert_eq!(JobStatus::parse("gone"), None);
        assert_eq!(JobStatus::parse("Running"), None, "statuses are lower case");
        assert!("done".parse::<JobStatus>().unwrap_err().contains("not a job status"));
        assert_eq!(JobStatus::of(&v(serde_json::json!({ "status": "lost" }))), Some(JobStatus::Lost));
        assert_eq!(JobStatus::of(&v(serde_json::json!({}))), None);
        assert_eq!(Value::from(JobStatus::Queued), Value::from("queued"));
    }

    #[test]
    fn a_jobs_status_from_its_nodes() {
        use NodeState::{Lost, Pending, Running};
        #[allow(non_snake_case)]
        let Exited = |c: i32| NodeState::Exited(c, ());
        let both = |nodes: &[NodeState]| (JobStatus::of_nodes(nodes, FailWhen::NoneActive), JobStatus::of_nodes(nodes, FailWhen::AtOnce));
        assert_eq!(both(&[Exited(0), Exited(0)]), (JobStatus::Succeeded, JobStatus::Succeeded));
        assert_eq!(both(&[Exited(0), Running]), (JobStatus::Running, JobStatus::Running));
        assert_eq!(both(&[Exited(2), Running]), (JobStatus::Running, JobStatus::Failed), "not over while a node runs, or at once");
        assert_eq!(both(&[Exited(2), Exited(0)]), (JobStatus::Failed, JobStatus::Failed));
        assert_eq!(both(&[Exited(2), Lost]), (JobStatus::Failed, JobStatus::Failed));
        assert_eq!(both(&[Lost, Running]), (JobStatus::Lost, JobStatus::Lost));
        assert_eq!(both(&[Pending, Pending]), (JobStatus::Pending, JobStatus::Pending));
        assert_eq!(both(&[]), (JobStatus::Pending, JobStatus::Pending));
    }

    #[test]
    fn one_task_per_node_environment() {
        let ips = vec!["10.0.0.1".to_string(), "10.0.0.2".to_string(), "10.0.0.3".to_string()];
        let env = NodeEnv {
            job_id: "train-1",
            node_rank: 2,
            node_ips: &ips,
            master_addr: "10.0.0.1",
            master_port: 29500,
            gpus_per_node: 8,
            checkpoint_dir: "/data/ckpt/run-1",
            checkpoint_uri: "s3://b/run-1",
        }
        .vars();
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ENV);
        let got: std::collections::BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got[JOB_ID], "train-1");
        assert_eq!(got[NODE_RANK], "2");
        assert_eq!(got[NUM_NODES], "3");
        assert_eq!(got[NODE_IPS], "10.0.0.1,10.0.0.2,10.0.0.3");
        assert_eq!(got[MASTER_ADDR], "10.0.0.1");
        assert_eq!(got[MASTER_PORT], "29500");
        assert_eq!(got[NUM_GPUS_PER_NODE], "8");
        assert_eq!(got[CHECKPOINT_DIR], "/data/ckpt/run-1");
        assert_eq!(got[CHECKPOINT_URI], "s3://b/run-1");
        assert_eq!((got[LOCAL_RANK], got[TASK_RANK], got[NUM_TASKS]), ("0", "2", "3"));
        assert!(ENV.iter().all(|n| n.starts_with("KILN_")));
    }

    #[test]
    fn the_schema_is_the_portable_one_and_extras_keep_it() {
        let body = JobSchema::default().body().attr("stop_grace", stop_grace()).attr("exit_codes", exit_codes());
        assert_eq!(schema_problems(&body), Vec::<String>::new());
        // The portable body's shape: the types and flags every provider's states were written with.
        let portable = [
            "cluster: Any required",
            "env: Map(String) optional force_new",
            "finished_at: String computed",
            "job_id: String computed",
            "log_retention: String optional",
            "nodes: Number optional+computed force_new",
            // Optional, updated in place: a state written before it plans no change.
            "on_finish: String optional",
            "run: String required force_new",
            "secret_env: Map(String) optional force_new sensitive",
            "setup: String optional force_new",
            "started_at: String computed",
            "status: String computed",
            "workdir: String optional force_new",
            "workdir_digest: String computed",
            "checkpoint {} Single 0..1",
            "  bucket: Any required",
            "  path: String optional default=\"\"",
            // Optional, updated in place: a state written before it plans no change.
            "recovery {} Single 0..1",
            "  give_up_after: String optional",
            "  max_restarts: Number optional",
            "  on: List(String) optional",
            "  retry_exit_codes: List(Number) optional",
            "  strategy: String optional",
            "  notify {} Single 0..1",
            "    command: String required",
        ];
        assert_eq!(shape(&JobSchema::default().body()), portable);
        assert!(shape(&body).contains(&"stop_grace: Number optional default=10".to_string()));
        // A required, force-new block (as aws has) is still the portable block.
        let aws = JobSchema {
            checkpoint: CheckpointBlock { required: true, force_new: true, ..CheckpointBlock::default() },
            ..JobSchema::default()
        };
        assert_eq!(schema_problems(&aws.body()), Vec::<String>::new());
        assert!(shape(&aws.body()).contains(&"checkpoint {} Single 1..1 force_new".to_string()));
        // A changed flag is named.
        let mut changed = JobSchema::default().body();
        changed.attributes.get_mut("env").unwrap().force_new = false;
        changed.attributes.remove("finished_at");
        let problems = schema_problems(&changed);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("`env` differs") && problems[1] == "`finished_at` is missing", "{problems:?}");
    }

    #[test]
    fn log_retention_is_a_duration() {
        let cfg = |r: &str| v(serde_json::json!({ "run": "x", "log_retention": r }));
        assert!(validate_log_retention(&cfg("14d")).is_none());
        assert!(validate_log_retention(&cfg("0")).is_none());
        assert!(validate_log_retention(&v(serde_json::json!({ "run": "x" }))).is_none(), "optional");
        let d = validate_log_retention(&cfg("two weeks")).expect("refused");
        assert_eq!(d.code, "E-JOB-LOG-RETENTION");
        assert!(d.summary.contains("log_retention") && d.summary.contains("not a duration"), "{}", d.summary);
        assert!(validate_log_retention(&cfg("14")).expect("no unit").summary.contains("needs a unit"));
        assert!(validate_log_retention(&cfg("36500d")).is_none());
        let d = validate_log_retention(&cfg("999999999999d")).expect("too long: refused, not 7 days");
        assert!(d.summary.contains("longer than") && d.summary.contains("36500d"), "{}", d.summary);
    }

    #[test]
    fn on_finish_releases_capacity_only_once_the_job_succeeded() {
        let job = |on_finish: &str, status: &str| v(serde_json::json!({ "on_finish": on_finish, "status": status }));
        assert!(releases_capacity(&job(DESTROY_CAPACITY, "succeeded")));
        for (o, s) in [(DESTROY_CAPACITY, "running"), (DESTROY_CAPACITY, "failed"), (DESTROY_CAPACITY, "lost"), ("keep", "succeeded")] {
            assert!(!releases_capacity(&job(o, s)), "{o} {s}");
        }
        assert!(validate_on_finish(&job("keep", "")).is_none() && validate_on_finish(&job(DESTROY_CAPACITY, "")).is_none());
        let d = validate_on_finish(&job("destroy", "")).expect("refused");
        assert_eq!((d.code, d.attribute.as_deref()), ("E-JOB-ON-FINISH", Some(ON_FINISH)));
    }

    #[test]
    fn extras_are_what_a_provider_adds() {
        let body = JobSchema::default().body().attr("stop_grace", stop_grace()).attr("log_dir", Attribute::computed(Type::String, "x"));
        assert_eq!(
            extras_shape(&body),
            ["log_dir: String computed", "stop_grace: Number optional default=10", "checkpoint {} Single 0..1"]
        );
        assert_schema(&body, "log_dir: String computed; stop_grace: Number optional default=10; checkpoint {} Single 0..1");
        let changed = std::panic::catch_unwind(|| assert_schema(&body, "log_dir: String computed; checkpoint {} Single 0..1"));
        assert!(changed.is_err(), "a changed extra is caught");
    }

    #[test]
    fn a_lost_job_is_replaced_with_one_restart_more() {
        let lost = v(serde_json::json!({ "status": "lost", "restarts": 2 }));
        let mut planned = Map::new();
        assert_eq!(replace_if_lost(&lost, &mut planned).as_deref(), Some("status"));
        assert_eq!(planned.get("status"), Some(&Value::Unknown));
        let mut planned = Map::new();
        assert_eq!(replace_if_lost(&v(serde_json::json!({ "status": "failed" })), &mut planned), None);
        assert!(planned.is_empty());
        assert_eq!(restarts_after(Some(&lost)), Value::from(3i64));
        assert_eq!(restarts_after(Some(&v(serde_json::json!({ "status": "failed", "restarts": 2 })))), Value::from(3i64));
        assert_eq!(restarts_after(Some(&v(serde_json::json!({ "status": "succeeded", "restarts": 2 })))), Value::from(0i64));
        assert_eq!(restarts_after(None), Value::from(0i64));
    }

    #[test]
    fn the_users_env_as_strings() {
        let job = v(serde_json::json!({ "env": { "B": "2", "A": 1 } }));
        assert_eq!(user_env(&job), [("A".to_string(), "1".to_string()), ("B".to_string(), "2".to_string())]);
        assert!(user_env(&v(serde_json::json!({ "env": null }))).is_empty());
    }

    #[test]
    fn buckets_are_told_apart() {
        let of = |j: serde_json::Value| BucketStore::of(&v(j));
        assert_eq!(of(serde_json::json!({ "uri": "file:///data/b", "path": "/data/b" })), BucketStore::Local);
        assert_eq!(
            of(serde_json::json!({ "uri": "sftp://kiln@10.0.0.1/srv/b", "host": "h1", "path": "/srv/b", "shared": false })),
            BucketStore::Host { host: Some("h1".into()), shared: false }
        );
        assert_eq!(of(serde_json::json!({ "uri": "s3://kiln-b-1", "arn": "arn:aws:s3:::kiln-b-1" })), BucketStore::Object("s3".into()));
        // Not known yet: the attributes only one provider's bucket has.
        let mut aws = v(serde_json::json!({ "arn": null, "versioning": false }));
        if let Value::Map(m) = &mut aws {
            m.insert("uri".into(), Value::Unknown);
            m.insert("arn".into(), Value::Unknown);
        }
        assert_eq!(BucketStore::of(&aws), BucketStore::Object("s3".into()));
        let mut onprem = v(serde_json::json!({ "host": "h1", "shared": true }));
        if let Value::Map(m) = &mut onprem {
            m.insert("uri".into(), Value::Unknown);
        }
        assert_eq!(BucketStore::of(&onprem), BucketStore::Host { host: Some("h1".into()), shared: true });
        assert_eq!(of(serde_json::json!({ "path": "/x" })), BucketStore::Unknown);
        assert!(BucketStore::Object("s3".into()).describe().contains("s3://"));
    }

    #[test]
    fn checkpoint_uris_and_dirs() {
        let job = |bucket: serde_json::Value, path: &str| v(serde_json::json!({ "checkpoint": { "bucket": bucket, "path": path } }));
        let s3 = job(serde_json::json!({ "uri": "s3://b" }), "/run 1/");
        assert_eq!(Checkpoint::of(&s3).unwrap().uri().as_deref(), Some("s3://b/run 1"));
        let local = job(serde_json::json!({ "uri": "file:///data/b", "path": "/data/b" }), "");
        assert_eq!(Checkpoint::of(&local).unwrap().uri().as_deref(), Some("file:///data/b"));
        let bare = job(serde_json::json!({ "path": "/data/b/" }), "run-1");
        assert_eq!(Checkpoint::of(&bare).unwrap().uri(), None);
        assert_eq!(file_uri("/data/b/run 1"), "file:///data/b/run%201");
        let d = Checkpoint::of(&s3).unwrap().unreachable("E-X-JOB-CHECKPOINT", "local", "use a `local` bucket");
        assert_eq!(d.code, "E-X-JOB-CHECKPOINT");
        assert!(d.summary.contains("s3://") && d.summary.contains("`local` job"), "{}", d.summary);
        assert_eq!(Checkpoint::of(&v(serde_json::json!({ "checkpoint": null }))), None);
        assert_eq!(join_dir("/data/b/", "/run-1/"), "/data/b/run-1");
        assert_eq!(join_dir("/data/b/", ""), "/data/b/");
    }
}
