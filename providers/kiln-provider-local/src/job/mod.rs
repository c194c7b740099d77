//! `job`: a training job on a local cluster. Create starts one detached process group per node
//! and returns once they run; read (batched) derives the status from the processes and their
//! exit files; a `lost` job plans a replacement, which restarts it; delete stops the processes
//! (SIGTERM, then SIGKILL after `stop_grace` seconds) and removes the job's directory; logs
//! reads a node's output from an offset; recover adopts what an interrupted create started.

mod dir;
mod launch;
mod spec;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::logs::TimeIndex;
use kiln_provider::portable::{job, secret_env, workdir};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, LogSeek, LogsRequest, LogsResponse, PlanRequest, PlanResponse,
    ReadItem, ReadResult, RecoverRequest, UpdateRequest,
};
use kiln_value::Value;

use self::dir::{job_id, JobDir, Meta, Node};
use self::spec::JobSpec;
use crate::procs::{signal_group, stop_groups, ProcTable};
use crate::util::{attrs, error, now, num, read_error, u64_attr};
use crate::{Ctx, Kind, KindSchema, LazyProcs, Outcome};

pub(crate) struct Job;

/// Most bytes one `logs` call returns.
const LOG_CHUNK: u64 = 1 << 20;

/// The job's launch description; an error while something is still unknown.
fn known_spec(ctx: &Ctx, address: &str, v: &Value) -> Result<JobSpec, Diagnostic> {
    JobSpec::parse(ctx, address, v)?
        .ok_or_else(|| error("E-LOCAL-UNKNOWN", address, format!("{address}: the job's configuration is still unknown")))
}

fn io_error(address: &str, what: &str, dir: &JobDir, e: impl std::fmt::Display) -> Diagnostic {
    crate::util::io_error("E-LOCAL-JOB-IO", address, what, dir.path(), e)
}

fn gone(address: &str) -> Diagnostic {
    error("E-LOCAL-JOB-GONE", address, format!("{address}: the job's directory is gone"))
        .hint("run `kiln plan`: a refresh notices the job is gone and plans to create it again")
}

/// The job directory a state names, with its metadata; `None` when it is gone.
fn open(address: &str, state: &Value) -> Result<Option<(JobDir, Meta)>, Diagnostic> {
    let Some(dir) = JobDir::of_state(state).filter(JobDir::exists) else { return Ok(None) };
    let meta = dir.read_meta().map_err(|e| io_error(address, "read", &dir, e))?;
    Ok(Some((dir, meta)))
}

/// The directory a state names when it is there without its `job.json`: what a destroy killed
/// while removing it leaves (the processes were stopped first). It reads as lost and the next
/// destroy finishes removing it.
fn remnant(state: &Value) -> Option<JobDir> {
    JobDir::of_state(state).filter(|d| d.exists() && d.read_meta().is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound))
}

/// `state` with its status set to lost.
fn as_lost(state: &Value) -> Value {
    let mut m = state.as_map().cloned().unwrap_or_default();
    m.insert("status".into(), Value::from(kiln_provider::portable::job::JobStatus::Lost.as_str()));
    Value::Map(m)
}

/// Kills whatever an unfinished create started (by pid file and by the job's identity in the
/// environment, for a node whose pid file was never written) and removes its directory.
fn discard(dir: &JobDir, nodes: u64) {
    job_groups(dir, nodes).iter().for_each(|p| signal_group(*p, "KILL"));
    let _ = std::fs::remove_dir_all(dir.path());
}

/// The job's process groups: those its pid files name, and those of live processes that carry
/// its identity.
fn job_groups(dir: &JobDir, nodes: u64) -> Vec<u32> {
    let mut groups = dir.pids(nodes);
    groups.extend(launch::marked_groups(dir));
    groups.sort_unstable();
    groups.dedup();
    groups
}

fn create(ctx: &Ctx, req: &CreateRequest<'_>) -> Result<Value, Diagnostic> {
    let spec = known_spec(ctx, req.address, req.planned)?;
    let id = job_id(req.address, req.token);
    let dir = JobDir::new(ctx, &id);
    // The plan decides the count: one more than a lost job this one replaces, else 0.
    let restarts = u64_attr(req.planned, "restarts").unwrap_or(0);
    let meta = Meta {
        address: req.address.to_string(),
        token: req.token.to_string(),
        job_id: id.clone(),
        nodes: spec.nodes,
        started_at: now(),
        restarts,
        config: dir::record_config(req.planned),
    };
    dir.create().and_then(|()| dir.write_meta(&meta)).map_err(|e| io_error(req.address, "create", &dir, e))?;
    // The secrets: a mode-0600 file in the job's (0700) directory the node's wrapper sources.
    let secrets = secret_env::values(req.planned).map_err(|e| error("E-LOCAL-JOB-SECRET", req.address, format!("{}: {e}", req.address)));
    let written = secrets.and_then(|values| {
        if values.is_empty() {
            return Ok(());
        }
        secret_env::write_file(&dir.path().join(secret_env::FILE), &values)
            .map_err(|e| io_error(req.address, "write the secrets in", &dir, e))
    });
    if let Err(d) = written {
        discard(&dir, 0);
        return Err(d);
    }
    let checkpoint_dir = spec.checkpoint_dir.clone().unwrap_or_else(|| dir.path().join("checkpoints"));
    if let Err(e) = launch::start(&dir, &spec, &id, &checkpoint_dir) {
        discard(&dir, spec.nodes);
        return Err(
            error("E-LOCAL-JOB-START", req.address, format!("{}: {e}", req.address)).hint("check `workdir`, and that bash is installed")
        );
    }
    Ok(secret_env::seal(dir.state(req.planned, &meta, &ProcTable::snapshot())))
}

fn update(ctx: &Ctx, req: &UpdateRequest<'_>) -> Result<Value, Diagnostic> {
    let (dir, mut meta) = open(req.address, req.prior)?.ok_or_else(|| gone(req.address))?;
    known_spec(ctx, req.address, req.planned)?;
    meta.config = dir::record_config(req.planned);
    dir.write_meta(&meta).map_err(|e| io_error(req.address, "write", &dir, e))?;
    Ok(secret_env::seal(dir.state(req.planned, &meta, &ProcTable::snapshot())))
}

async fn delete(ctx: &Ctx, req: &DeleteRequest<'_>) -> Result<(), Diagnostic> {
    let (dir, nodes) = match open(req.address, req.prior) {
        Ok(Some((dir, meta))) => (dir, meta.nodes),
        Ok(None) => return Ok(()),
        Err(d) => {
            let Some(dir) = remnant(req.prior) else { return Err(d) };
            (dir, u64_attr(req.prior, "nodes").unwrap_or(0))
        }
    };
    let grace = known_spec(ctx, req.address, req.prior).map(|s| s.stop_grace).unwrap_or(std::time::Duration::from_secs(10));
    let left = stop_groups(&job_groups(&dir, nodes), grace).await;
    if !left.is_empty() {
        return Err(error("E-LOCAL-JOB-STOP", req.address, format!("{}: process groups {left:?} still run after SIGKILL", req.address)));
    }
    std::fs::remove_dir_all(dir.path()).map_err(|e| io_error(req.address, "delete", &dir, e))
}

/// A lost job asks to be replaced (`status` forces it), one restart more; changes to the
/// nodes, GPUs or checkpoint directory its objects give force it too.
fn plan(ctx: &Ctx, req: &PlanRequest<'_>) -> Result<PlanResponse, Diagnostic> {
    let spec = JobSpec::parse(ctx, req.address, req.config)?;
    let mut planned = attrs(req.proposed);
    // A local job runs in its workdir itself: nothing is uploaded, so nothing is digested.
    if req.prior.is_none() || planned.get(workdir::DIGEST_ATTR).is_some_and(Value::is_unknown) {
        planned.insert(workdir::DIGEST_ATTR.into(), Value::Null);
    }
    secret_env::plan(req.prior, &mut planned);
    planned.insert("nodes".into(), spec.as_ref().map_or(Value::Unknown, |s| num(s.nodes)));
    let mut requires_replace = Vec::new();
    if req.prior.is_none() {
        planned.insert("restarts".into(), job::restarts_after(req.replacing));
    }
    if let Some(prior) = req.prior {
        requires_replace.extend(job::replace_if_lost(prior, &mut planned));
        match (JobSpec::parse(ctx, req.address, prior).ok().flatten(), &spec) {
            (Some(old), Some(new)) => requires_replace.extend(old.replaced_by(new)),
            _ => requires_replace.extend(["cluster".to_string(), "checkpoint".to_string()]),
        }
    }
    Ok(PlanResponse { planned: Value::Map(planned), requires_replace, diagnostics: Diagnostics::new() })
}

fn recover(ctx: &Ctx, req: &RecoverRequest<'_>) -> ReadResult {
    let dir = JobDir::new(ctx, &job_id(req.address, req.token));
    let Ok(meta) = dir.read_meta() else {
        if dir.exists() {
            discard(&dir, 0);
        }
        return ReadResult::gone();
    };
    if meta.token != req.token {
        return ReadResult::gone();
    }
    let procs = ProcTable::snapshot();
    if dir.nodes(&meta, &procs).contains(&Node::Pending) {
        discard(&dir, meta.nodes);
        return ReadResult::gone();
    }
    ReadResult::found(secret_env::seal(dir.state(req.planned, &meta, &procs)))
}

fn logs(req: &LogsRequest<'_>) -> Result<LogsResponse, Diagnostic> {
    let (dir, meta) = open(req.address, req.state)?.ok_or_else(|| gone(req.address))?;
    if req.node as u64 >= meta.nodes {
        return Err(error(
            "E-LOCAL-JOB-NODE",
            req.address,
            format!("{} has {} nodes; there is no node {}", req.address, meta.nodes, req.node),
        )
        .hint("nodes are numbered from 0"));
    }
    let rank = req.node as u64;
    let done = !matches!(dir.node(rank, &ProcTable::snapshot()), Node::Running | Node::Pending);
    if let Some(seek) = req.seek {
        let len = std::fs::metadata(dir.file(rank, "log")).map_or(0, |m| m.len());
        let at = match seek {
            LogSeek::End => len,
            LogSeek::Since(t) => seek_since(req.address, &dir, rank, len, t)?,
        };
        return Ok(LogsResponse { data: Vec::new(), next_offset: at, finished: done, all_nodes: false, diagnostics: Diagnostics::new() });
    }
    let (data, len) = dir.read_log(rank, req.offset, LOG_CHUNK).map_err(|e| io_error(req.address, "read the log in", &dir, e))?;
    let next_offset = req.offset.min(len) + data.len() as u64;
    Ok(LogsResponse { data, next_offset, finished: done && next_offset >= len, all_nodes: false, diagnostics: Diagnostics::new() })
}

/// Where node `rank`'s output written since `t` starts, from its time index.
fn seek_since(address: &str, dir: &JobDir, rank: u64, len: u64, t: i64) -> Result<u64, Diagnostic> {
    match std::fs::read_to_string(dir.file(rank, "idx")) {
        Ok(text) => Ok(TimeIndex::parse(&text).offset_since(t).min(len)),
        // Not started yet: nothing written at all.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && len == 0 => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(error(
            "E-LOGS-SINCE",
            address,
            format!("{address}: node {rank}'s log has no time index (a kiln without time indexes started the job), so --since cannot tell when its output was written"),
        )
        .hint("use --tail N instead, or replace the job (`kiln apply --replace ADDRESS`) to index its new output")),
        Err(e) => Err(io_error(address, "read the log's time index in", dir, e)),
    }
}

#[async_trait]
impl Kind<Ctx, LazyProcs> for Job {
    fn name(&self) -> &'static str {
        "job"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("A training job: one detached process group per node", crate::schema::job())
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        spec::validate(config)
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        Ok(plan(ctx, req)?)
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(create(ctx, req)?))
    }

    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(update(ctx, req)?))
    }

    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        delete(ctx, req).await?;
        Ok(Diagnostics::new())
    }

    async fn read(&self, _ctx: &Ctx, items: &[&ReadItem<'_>], procs: &LazyProcs) -> Outcome<Vec<ReadResult>> {
        Ok(items
            .iter()
            .map(|item| match open(item.address, item.state) {
                Ok(Some((dir, meta))) => ReadResult::found(dir.state(item.state, &meta, procs.get())),
                Ok(None) => ReadResult::gone(),
                Err(_) if remnant(item.state).is_some() => ReadResult::found(as_lost(item.state)),
                Err(d) => read_error(d),
            })
            .collect())
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(recover(ctx, req))
    }

    async fn import(&self, ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        let dir = JobDir::new(ctx, req.id);
        let meta = dir.read_meta().map_err(|e| {
            error("E-LOCAL-IMPORT", req.address, format!("no job `{}` under {}: {e}", req.id, JobDir::jobs_root(ctx).display()))
                .hint("import a job by its job_id")
        })?;
        Ok(ReadResult::found(dir.state(&Value::from_json(&meta.config), &meta, &ProcTable::snapshot())))
    }

    async fn logs(&self, _ctx: &Ctx, req: &LogsRequest<'_>) -> Outcome<LogsResponse> {
        Ok(logs(req)?)
    }
}
