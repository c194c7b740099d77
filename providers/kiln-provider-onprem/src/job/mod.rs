//! `job` on an onprem cluster: one node per allocated host, rank by allocation order. Create
//! finds a free master port on rank 0's host, then starts every node over SSH, detached (see
//! [`remote`]), with the KILN_* environment; it fails (stopping what started) unless every node
//! starts. Read (batched per host connection) derives the status from each node's pid, process
//! and exit files; a host that does not answer makes its node, and so the job, `lost`, and a
//! lost job plans a replacement. Logs are read over SSH from an offset. Delete stops every node
//! (SIGTERM to its process group, SIGKILL after `stop_grace`) and removes its directory.

mod remote;
mod spec;

use futures_util::future::join_all;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::portable::job::{self, FailWhen, JobStatus, NodeState};
use kiln_provider::portable::{secret_env, workdir};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, LogSeek, LogsRequest, LogsResponse, PlanRequest, PlanResponse,
    ReadItem, ReadResult, RecoverRequest, UpdateRequest,
};
use kiln_value::{Map, Value};

pub(crate) use self::remote::orphans_script;
use self::remote::{NodeFiles, NodeReport};
use self::spec::JobSpec;
use crate::ssh::SshError;
use crate::util::{attrs, error, from_epoch, now, num, obj, object_id, set, str_attr, strings, to_u64, u64_attr};
use crate::{Batch, Ctx, Kind, KindSchema, Outcome};

pub(crate) struct Job;

/// Most bytes one `logs` call returns.
const LOG_CHUNK: u64 = 1 << 20;

/// What one node is doing; exited at an epoch second; lost when its process is gone without an
/// exit code, or its host does not answer.
type Node = NodeState<u64>;

/// Any failure fails the job, all successes succeed it, then a lost node makes it lost.
fn status(nodes: &[Node]) -> JobStatus {
    JobStatus::of_nodes(nodes, FailWhen::AtOnce)
}

fn node_of(r: &Result<NodeReport, SshError>) -> Node {
    match r {
        Err(_) => Node::Lost,
        Ok(r) => match (r.exit, r.pid, r.alive) {
            (Some((c, at)), _, _) => Node::Exited(c, at),
            (None, None, _) => Node::Pending,
            (None, Some(_), true) => Node::Running,
            (None, Some(_), false) => Node::Lost,
        },
    }
}

/// Where one node runs, as recorded in the job's `placement`.
#[derive(Debug, Clone, PartialEq)]
struct Slot {
    rank: usize,
    host: String,
    address: String,
    dir: String,
}

impl Slot {
    fn to_value(&self, pid: Option<u32>) -> Value {
        obj([
            ("rank", num(self.rank as u64)),
            ("host", Value::from(self.host.as_str())),
            ("address", Value::from(self.address.as_str())),
            ("dir", Value::from(self.dir.as_str())),
            ("pid", pid.map_or(Value::Null, |p| num(p.into()))),
        ])
    }
}

fn slots(state: &Value) -> Vec<Slot> {
    let list = set(state, "placement").and_then(Value::as_list).unwrap_or_default();
    list.iter()
        .enumerate()
        .filter_map(|(i, v)| {
            Some(Slot {
                rank: u64_attr(v, "rank").map_or(i, |r| r as usize),
                host: str_attr(v, "host")?.to_string(),
                address: str_attr(v, "address").unwrap_or_default().to_string(),
                dir: str_attr(v, "dir")?.to_string(),
            })
        })
        .collect()
}

fn known_spec(address: &str, v: &Value) -> Result<JobSpec, Diagnostic> {
    JobSpec::parse(address, v)?
        .ok_or_else(|| error("E-ONPREM-UNKNOWN", address, format!("{address}: the job's configuration is still unknown")))
}

fn host_missing(address: &str, host: &str) -> Diagnostic {
    error("E-ONPREM-JOB-HOST", address, format!("{address}: host `{host}` is not in the provider block"))
        .hint("add the host back, or replace the cluster")
}

/// The node directories of a new job: `HOST_DIR/jobs/JOB_ID` on each allocated host.
async fn new_slots(ctx: &Ctx, address: &str, spec: &JobSpec, job_id: &str) -> Result<Vec<Slot>, Diagnostic> {
    let mut out = Vec::new();
    for (rank, p) in spec.nodes.iter().enumerate() {
        let h = ctx.host(&p.host).ok_or_else(|| host_missing(address, &p.host))?;
        let base = ctx.host_dir(h).await.map_err(|e| error("E-ONPREM-JOB-HOST", address, format!("{address}: {}", e.message())))?;
        out.push(Slot { rank, host: p.host.clone(), address: p.address.clone(), dir: format!("{base}/jobs/{job_id}") });
    }
    Ok(out)
}

async fn report(ctx: &Ctx, s: &Slot) -> Result<NodeReport, SshError> {
    let h = ctx.host(&s.host).ok_or_else(|| SshError::Login(format!("host `{}` is not in the provider block", s.host)))?;
    let out = ctx.ssh.run(h, "job.status", remote::STATUS, &[&s.dir, &s.rank.to_string()]).await?;
    Ok(remote::parse_status(&out.text()))
}

async fn reports(ctx: &Ctx, slots: &[Slot]) -> Vec<Result<NodeReport, SshError>> {
    join_all(slots.iter().map(|s| report(ctx, s))).await
}

/// `base` with the computed attributes the nodes' reports give (prior values where a host
/// did not answer).
fn state_of(base: &Value, slots: &[Slot], reports: &[Result<NodeReport, SshError>]) -> Value {
    let nodes: Vec<Node> = reports.iter().map(node_of).collect();
    let status = status(&nodes);
    let finished = nodes.iter().filter_map(|n| if let Node::Exited(_, at) = n { Some(*at) } else { None }).max();
    let finished_at = finished.filter(|_| status.has_finished()).map_or(Value::Null, |t| Value::from(from_epoch(t)));
    let old = set(base, "pids").and_then(Value::as_list).unwrap_or_default();
    let old_pid = |i: usize| old.get(i).and_then(to_u64).and_then(|p| u32::try_from(p).ok());
    let pids: Vec<Option<u32>> =
        reports.iter().enumerate().map(|(i, r)| r.as_ref().ok().and_then(|r| r.pid).or_else(|| old_pid(i))).collect();
    let started = reports.iter().filter_map(|r| r.as_ref().ok()).map(|r| r.started_at.clone()).find(|s| !s.is_empty());
    let mut m: Map = attrs(base);
    m.extend([
        ("status".to_string(), Value::from(status)),
        (
            "exit_codes".to_string(),
            Value::List(nodes.iter().map(|n| if let Node::Exited(c, _) = n { Value::from(*c as i64) } else { Value::Null }).collect()),
        ),
        ("finished_at".to_string(), finished_at),
        ("placement".to_string(), Value::List(slots.iter().zip(&pids).map(|(s, p)| s.to_value(*p)).collect())),
        ("pids".to_string(), Value::List(pids.iter().map(|p| p.map_or(Value::Null, |p| num(p.into()))).collect())),
    ]);
    if let Some(s) = started {
        m.insert("started_at".into(), Value::from(s));
    }
    Value::Map(m)
}

async fn master_port(ctx: &Ctx, address: &str, s: &Slot, job_id: &str) -> Result<u16, Diagnostic> {
    let h = ctx.host(&s.host).ok_or_else(|| host_missing(address, &s.host))?;
    let out = ctx
        .ssh
        .run(h, "job.ports", remote::PORTS, &[])
        .await
        .map_err(|e| error("E-ONPREM-JOB-HOST", address, format!("{address}: {}", e.message())))?;
    Ok(remote::choose_port(job_id, &remote::parse_listening(&out.text())))
}

struct Launch<'a> {
    spec: &'a JobSpec,
    secrets: &'a [(String, String)],
    /// The uploaded workdir, as a tar archive.
    workdir_tar: Option<&'a [u8]>,
    job_id: &'a str,
    token: &'a str,
    port: u16,
    started_at: &'a str,
}

/// Starts one node; its PID. `upload`: the launch carries the workdir (see [`launch_all`]).
async fn launch(ctx: &Ctx, l: &Launch<'_>, s: &Slot, upload: bool) -> Result<u32, String> {
    let h = ctx.host(&s.host).ok_or_else(|| format!("host `{}` is not in the provider block", s.host))?;
    let ckpt = l.spec.checkpoint.as_ref().map_or_else(|| format!("{}/checkpoints", s.dir), |c| c.dir.clone());
    let env = l.spec.node_env(l.job_id, s.rank, l.port, &ckpt);
    let tar = l.workdir_tar.filter(|_| upload);
    let files = NodeFiles {
        token: l.token,
        started_at: l.started_at,
        cluster_id: &l.spec.cluster_id,
        stop_grace: l.spec.stop_grace,
        setup: &l.spec.setup,
        run: &l.spec.run,
        env: &env,
        cpus: l.spec.cpus,
        secrets: l.secrets,
        workdir: tar.is_some(),
    };
    // An uploaded workdir is `workdir` in the node's directory; else `workdir` names a directory
    // on the host (its meaning before issue 13), or the node's directory.
    let workdir = if l.workdir_tar.is_some() { format!("{}/workdir", s.dir) } else { l.spec.workdir.clone().unwrap_or_default() };
    let script = remote::launch_script(&files);
    let args = [s.dir.as_str(), &s.rank.to_string(), &workdir, &ckpt];
    let out = match tar {
        // The archive streamed from the one copy the job holds, never encoded into a script.
        Some(tar) => ctx.ssh.run_with_input(h, "job.launch", &script, &args, tar).await,
        None => ctx.ssh.run(h, "job.launch", &script, &args).await,
    }
    .map_err(|e| e.message().to_string())?;
    let pid = out.text().lines().last().and_then(|l| l.trim().parse().ok());
    match (out.code, pid) {
        (Some(0), Some(pid)) => Ok(pid),
        _ => Err(format!("node {} on `{}` did not start: {}", s.rank, s.host, out.stderr.trim())),
    }
}

/// Workdir uploads in flight at once, across hosts.
const UPLOADS: usize = 4;

/// Starts every node; per slot, its PID. Without a workdir to upload, all at once. With one, the
/// archive goes once to each host (its nodes share the job's directory there): the host's first
/// node carries it (at most [`UPLOADS`] hosts at once, all from the job's one copy), and the
/// host's other nodes start once it is unpacked.
async fn launch_all(ctx: &Ctx, l: &Launch<'_>, slots: &[Slot]) -> Vec<Result<u32, String>> {
    if l.workdir_tar.is_none() {
        return join_all(slots.iter().map(|s| launch(ctx, l, s, false))).await;
    }
    let mut hosts: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, s) in slots.iter().enumerate() {
        match hosts.iter_mut().find(|(h, _)| *h == s.host) {
            Some((_, idx)) => idx.push(i),
            None => hosts.push((&s.host, vec![i])),
        }
    }
    let uploads = tokio::sync::Semaphore::new(UPLOADS);
    let per_host = join_all(hosts.iter().map(|(_, idx)| {
        let uploads = &uploads;
        async move {
            let first = &slots[idx[0]];
            let carried = match uploads.acquire().await {
                Ok(_permit) => launch(ctx, l, first, true).await,
                Err(e) => Err(e.to_string()),
            };
            let rest = if carried.is_ok() {
                join_all(idx[1..].iter().map(|i| launch(ctx, l, &slots[*i], false))).await
            } else {
                idx[1..]
                    .iter()
                    .map(|i| {
                        Err(format!("node {} on `{}` was not started: node {} there did not start", slots[*i].rank, first.host, first.rank))
                    })
                    .collect()
            };
            std::iter::once(carried).chain(rest).zip(idx.iter().copied()).collect::<Vec<_>>()
        }
    }))
    .await;
    let mut out: Vec<Option<Result<u32, String>>> = slots.iter().map(|_| None).collect();
    for (r, i) in per_host.into_iter().flatten() {
        out[i] = Some(r);
    }
    out.into_iter().map(|r| r.unwrap_or_else(|| Err("a node was not started".to_string()))).collect()
}

/// Stops and removes every node of `slots` (grace in seconds); per node, `Err` when its host
/// did not answer or its processes survived.
async fn stop(ctx: &Ctx, slots: &[Slot], grace: u64) -> Vec<Result<(), SshError>> {
    let script = remote::stop_script();
    join_all(slots.iter().map(|s| async {
        let h = ctx.host(&s.host).ok_or_else(|| SshError::Login(format!("host `{}` is not in the provider block", s.host)))?;
        let out = ctx.ssh.run(h, "job.stop", &script, &[&s.dir, &s.rank.to_string(), &grace.to_string()]).await?;
        if out.ok() {
            Ok(())
        } else {
            Err(SshError::Login(format!("host `{}`: {}", s.host, out.stderr.trim())))
        }
    }))
    .await
}

async fn create(ctx: &Ctx, req: &CreateRequest<'_>) -> Result<Value, Diagnostic> {
    let spec = known_spec(req.address, req.planned)?;
    let secrets =
        secret_env::values(req.planned).map_err(|e| error("E-ONPREM-JOB-SECRET", req.address, format!("{}: {e}", req.address)))?;
    let tar = workdir::upload(&ctx.working_dir, req.planned, "E-ONPREM-JOB-WORKDIR", req.address)?;
    let job_id = object_id(req.address, "job", req.token);
    let slots = new_slots(ctx, req.address, &spec, &job_id).await?;
    let port = master_port(ctx, req.address, &slots[0], &job_id).await?;
    let started_at = now();
    let l = Launch {
        spec: &spec,
        secrets: &secrets,
        workdir_tar: tar.as_deref(),
        job_id: &job_id,
        token: req.token,
        port,
        started_at: &started_at,
    };
    let started = launch_all(ctx, &l, &slots).await;
    let failed: Vec<String> = started.iter().filter_map(|r| r.as_ref().err().cloned()).collect();
    if !failed.is_empty() {
        stop(ctx, &slots, 0).await;
        return Err(error("E-ONPREM-JOB-START", req.address, format!("{}: {}", req.address, failed.join("; ")))
            .hint("check `workdir` exists on every host, and that bash and setsid are installed there"));
    }
    let mut base = attrs(req.planned);
    base.extend([
        ("job_id".to_string(), Value::from(job_id.as_str())),
        ("started_at".to_string(), Value::from(started_at.as_str())),
        ("node_ips".to_string(), strings(spec.node_ips())),
        ("master_addr".to_string(), Value::from(spec.node_ips()[0])),
        ("master_port".to_string(), num(port.into())),
        ("nodes".to_string(), num(slots.len() as u64)),
        ("pids".to_string(), Value::List(started.iter().map(|r| r.as_ref().map_or(Value::Null, |p| num((*p).into()))).collect())),
    ]);
    let base = Value::Map(base);
    Ok(secret_env::seal(state_of(&base, &slots, &reports(ctx, &slots).await)))
}

async fn read(ctx: &Ctx, item: &ReadItem<'_>) -> ReadResult {
    let slots = slots(item.state);
    if slots.is_empty() {
        return ReadResult::gone();
    }
    let reports = reports(ctx, &slots).await;
    let answered: Vec<&NodeReport> = reports.iter().filter_map(|r| r.as_ref().ok()).collect();
    if !answered.is_empty() && answered.iter().all(|r| !r.present) {
        return ReadResult::gone();
    }
    ReadResult::found(state_of(item.state, &slots, &reports))
}

async fn delete(ctx: &Ctx, req: &DeleteRequest<'_>) -> Diagnostics {
    let slots = slots(req.prior);
    let grace = u64_attr(req.prior, "stop_grace").unwrap_or(10);
    let results = stop(ctx, &slots, grace).await;
    let mut out = Diagnostics::new();
    for (s, r) in slots.iter().zip(results) {
        match r {
            Ok(()) => {}
            Err(e @ SshError::Unreachable(_)) => out.push(
                Diagnostic::warning(
                    "W-ONPREM-JOB-UNREACHABLE",
                    format!("{}: node {} on `{}` could not be stopped: {}", req.address, s.rank, s.host, e.message()),
                )
                .address(req.address)
                .hint(format!("when the host is back, stop the process group in {}/node-{}.pid and remove {}", s.dir, s.rank, s.dir)),
            ),
            Err(e) => out.push(error(
                "E-ONPREM-JOB-STOP",
                req.address,
                format!("{}: node {} on `{}`: {}", req.address, s.rank, s.host, e.message()),
            )),
        }
    }
    out
}

async fn logs(ctx: &Ctx, req: &LogsRequest<'_>) -> Result<LogsResponse, Diagnostic> {
    let slots = slots(req.state);
    let s = slots.iter().find(|s| s.rank == req.node).ok_or_else(|| {
        error("E-ONPREM-JOB-NODE", req.address, format!("{} has {} nodes; there is no node {}", req.address, slots.len(), req.node))
            .hint("nodes are numbered from 0")
    })?;
    let h = ctx.host(&s.host).ok_or_else(|| host_missing(req.address, &s.host))?;
    let seek = match req.seek {
        None => String::new(),
        Some(LogSeek::End) => "end".to_string(),
        Some(LogSeek::Since(t)) => format!("since:{t}"),
    };
    let args = [
        s.dir.as_str(),
        &s.rank.to_string(),
        &req.offset.to_string(),
        &LOG_CHUNK.to_string(),
        &seek,
        kiln_provider::logs::AWK_OFFSET_SINCE,
    ];
    let out = ctx
        .ssh
        .run(h, "job.logs", &remote::logs_script(), &args)
        .await
        .map_err(|e| error("E-ONPREM-JOB-HOST", req.address, format!("{}: {}", req.address, e.message())))?;
    let (size, done, data) = remote::parse_logs(&out.stdout).ok_or_else(|| {
        error("E-ONPREM-JOB-GONE", req.address, format!("{}: the job's directory is gone from `{}`", req.address, s.host))
    })?;
    if req.seek.is_some() {
        let at = remote::parse_seek(&out.stdout).flatten().ok_or_else(|| {
            error(
                "E-LOGS-SINCE",
                req.address,
                format!(
                    "{}: node {}'s log on `{}` has no time index (a kiln without time indexes started the job), so --since cannot tell when its output was written",
                    req.address, s.rank, s.host
                ),
            )
            .hint("use --tail N instead, or replace the job (`kiln apply --replace ADDRESS`) to index its new output")
        })?;
        return Ok(LogsResponse {
            data: Vec::new(),
            next_offset: at.min(size),
            finished: done,
            all_nodes: false,
            diagnostics: Diagnostics::new(),
        });
    }
    let next_offset = req.offset.min(size) + data.len() as u64;
    Ok(LogsResponse {
        data: data.to_vec(),
        next_offset,
        finished: done && next_offset >= size,
        all_nodes: false,
        diagnostics: Diagnostics::new(),
    })
}

async fn recover(ctx: &Ctx, req: &RecoverRequest<'_>) -> Result<Option<Value>, Diagnostic> {
    let spec = known_spec(req.address, req.planned)?;
    let job_id = object_id(req.address, "job", req.token);
    let slots = new_slots(ctx, req.address, &spec, &job_id).await?;
    let reports = reports(ctx, &slots).await;
    let ours = |r: &Result<NodeReport, SshError>| r.as_ref().is_ok_and(|r| r.present && r.token == req.token && r.pid.is_some());
    if !reports.iter().all(ours) {
        if reports.iter().any(|r| r.as_ref().is_ok_and(|r| r.present && r.token == req.token)) {
            stop(ctx, &slots, 0).await;
        }
        return Ok(None);
    }
    let first = reports[0].as_ref().ok();
    let mut base = attrs(req.planned);
    base.extend([
        ("job_id".to_string(), Value::from(job_id.as_str())),
        ("node_ips".to_string(), strings(spec.node_ips())),
        ("master_addr".to_string(), Value::from(spec.node_ips()[0])),
        ("master_port".to_string(), first.and_then(|r| r.port).map_or(Value::Null, |p| num(p.into()))),
        ("nodes".to_string(), num(slots.len() as u64)),
    ]);
    Ok(Some(secret_env::seal(state_of(&Value::Map(base), &slots, &reports))))
}

/// A lost job asks to be replaced; so do changes of the hosts, GPUs or checkpoint directory
/// its objects give.
fn plan(ctx: &Ctx, req: &PlanRequest<'_>) -> Result<PlanResponse, Diagnostic> {
    let spec = JobSpec::parse(req.address, req.config)?;
    let mut planned = attrs(req.proposed);
    planned.insert("nodes".into(), spec.as_ref().map_or(Value::Unknown, |s| num(s.nodes.len() as u64)));
    let mut requires_replace = Vec::new();
    let (replace, withheld) = workdir::plan_job_digest(&ctx.working_dir, req.config, req.prior, &mut planned)
        .map_err(|e| workdir::error("E-ONPREM-JOB-WORKDIR", req.address, &e))?;
    requires_replace.extend(replace);
    secret_env::plan(req.prior, &mut planned);
    let mut diagnostics = Diagnostics::new();
    diagnostics.extend(withheld);
    diagnostics.extend(workdir::not_here_warning(&ctx.working_dir, req.config, "W-ONPREM-JOB-WORKDIR", "hosts"));
    match req.prior {
        Some(prior) => {
            // A job written before `restarts` existed keeps none (absent is null: no change).
            planned.insert("restarts".into(), prior.get("restarts").cloned().unwrap_or(Value::Null));
            requires_replace.extend(job::replace_if_lost(prior, &mut planned));
            match (JobSpec::parse(req.address, prior).ok().flatten(), &spec) {
                (Some(old), Some(new)) => requires_replace.extend(old.replaced_by(new)),
                _ => requires_replace.extend(["cluster".to_string(), "checkpoint".to_string()]),
            }
        }
        None => {
            planned.insert("restarts".into(), job::restarts_after(req.replacing));
            if let Some(s) = &spec {
                planned.insert("node_ips".into(), strings(s.node_ips()));
                planned.insert("master_addr".into(), Value::from(s.node_ips()[0]));
            }
        }
    }
    if let Some(elsewhere) = spec.as_ref().map(JobSpec::checkpoint_elsewhere).filter(|e| !e.is_empty()) {
        diagnostics.push(
            Diagnostic::warning(
                "W-ONPREM-CHECKPOINT",
                format!("{}: nodes on {} write checkpoints to their own disk, not the bucket's host", req.address, elsewhere.join(", ")),
            )
            .address(req.address)
            .hint("set `shared = true` on the bucket if its path is a mount every host sees"),
        );
    }
    diagnostics.extend(spec::checkpoint_warning(req.address, req.config));
    Ok(PlanResponse { planned: Value::Map(planned), requires_replace, diagnostics })
}

/// `env` names must be shell variable names: they are exported on the hosts. And `cluster`, once
/// known, must be an onprem cluster (as plan checks; `kiln validate` checks it too).
fn validate(config: &Value) -> Diagnostics {
    let mut d: Diagnostics = crate::util::str_map(config, "env")
        .into_iter()
        .filter(|(k, _)| !crate::shell::valid_name(k))
        .map(|(k, _)| {
            Diagnostic::error("E-ONPREM-JOB-ENV", format!("`{k}` in `env` is not an environment variable name"))
                .hint("use letters, digits and `_`, not starting with a digit")
        })
        .collect();
    d.extend(secret_env::validate(config));
    d.extend(kiln_provider::portable::job::validate(config));
    if set(config, "cluster").is_some_and(|c| !c.contains_unknown() && c.get("allocation").is_none()) {
        d.push(
            Diagnostic::error("E-ONPREM-JOB-CLUSTER", "`cluster` must be an onprem cluster")
                .attribute("cluster")
                .hint("write `cluster = cluster.NAME`"),
        );
    }
    d.extend(spec::unreachable_checkpoint(config));
    d
}

#[async_trait]
impl Kind<Ctx, Batch> for Job {
    fn name(&self) -> &'static str {
        "job"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("A training job: one detached process group per allocated host", crate::schema::job())
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        validate(config)
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        Ok(plan(ctx, req)?)
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(create(ctx, req).await?))
    }

    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        // Only `stop_grace` changes in place; it lives in state.
        let slots = slots(req.prior);
        let mut base = attrs(req.prior);
        base.extend(attrs(req.planned).into_iter().filter(|(_, v)| !v.is_unknown()));
        Ok(ApplyResponse::ok(secret_env::seal(state_of(&Value::Map(base), &slots, &reports(ctx, &slots).await))))
    }

    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        Ok(delete(ctx, req).await)
    }

    /// Every item at once, each in its own task over the shared host connections.
    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], _batch: &Batch) -> Outcome<Vec<ReadResult>> {
        Ok(futures_util::future::join_all(items.iter().map(|item| async move { read(ctx, item).await })).await)
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(recover(ctx, req).await?.map_or_else(ReadResult::gone, ReadResult::found))
    }

    async fn import(&self, _ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        Err(error("E-ONPREM-IMPORT", req.address, "onprem jobs cannot be imported yet").hint("declare the job and run `kiln apply`").into())
    }

    async fn shell(&self, ctx: &Ctx, req: &kiln_provider::ShellRequest<'_>) -> Outcome<kiln_provider::ShellAccess> {
        Ok(crate::ssh::shell(ctx, req).await?)
    }

    async fn logs(&self, ctx: &Ctx, req: &LogsRequest<'_>) -> Outcome<LogsResponse> {
        Ok(logs(ctx, req).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(status(&[Node::Exited(0, 1), Node::Exited(0, 2)]), JobStatus::Succeeded);
        assert_eq!(status(&[Node::Exited(0, 1), Node::Running]), JobStatus::Running);
        assert_eq!(status(&[Node::Exited(2, 1), Node::Lost]), JobStatus::Failed);
        assert_eq!(status(&[Node::Lost, Node::Running]), JobStatus::Lost);
        assert_eq!(status(&[Node::Pending]), JobStatus::Pending);
    }

    #[test]
    fn env_names_are_checked() {
        let v = Value::from_json(&serde_json::json!({ "env": { "GOOD_1": "x", "1BAD": "y", "A-B": "z" } }));
        assert_eq!(validate(&v).errors().count(), 2);
        let v = Value::from_json(&serde_json::json!({ "cluster": 1, "run": "x" }));
        assert_eq!(validate(&v).iter().map(|d| d.code).collect::<Vec<_>>(), ["E-ONPREM-JOB-CLUSTER"]);
        let s3 = serde_json::json!({ "checkpoint": { "bucket": { "uri": "s3://b", "arn": "arn:aws:s3:::b" }, "path": "" } });
        let d = validate(&Value::from_json(&s3));
        assert_eq!(
            d.iter().map(|d| (d.code, d.attribute.as_deref())).collect::<Vec<_>>(),
            [("E-ONPREM-JOB-CHECKPOINT", Some("checkpoint"))]
        );
    }

    #[test]
    fn unreachable_host_is_a_lost_node() {
        assert_eq!(node_of(&Err(SshError::Unreachable("down".into()))), Node::Lost);
        let dead = NodeReport { present: true, pid: Some(5), alive: false, ..NodeReport::default() };
        assert_eq!(node_of(&Ok(dead)), Node::Lost);
    }
}
