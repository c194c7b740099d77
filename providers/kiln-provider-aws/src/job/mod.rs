//! `job` on aws: a training job on the instances of a `cluster` or `spot_pool`.
//!
//! kiln never logs in to the instances. Every instance it launches starts the kiln agent from
//! its user data (`agent.sh`, see [`user_data`]). Create writes the job's files under
//! `s3://BUCKET/kiln/jobs/JOB_ID/` in the bucket of the `checkpoint` block (spec.env with the
//! KILN_* environment, env.sh, setup.sh, run.sh), then tags the job's instances
//! `kiln:job = s3://BUCKET/kiln/jobs/JOB_ID` in one CreateTags call. The agents, which read the
//! tag through the instance metadata service, run the job and upload `status/RANK.json`
//! (state, exit code, heartbeat) and the log in parts, `logs/node-RANK/OFFSET`. Refresh lists each job's prefix and
//! reads the status objects; a node whose instance is gone, or whose heartbeat is older than
//! `heartbeat_timeout`, makes the job `lost`, and a lost job plans a replacement. Delete removes
//! the tag (the agents stop the processes) and the job's objects.
//!
//! Why a job is lost is its `lost_reason` ([`LostReason`]), which `kiln watch` reads as the
//! failure's category (`kiln_provider::portable::recovery::failure`): `preemption` when spot took
//! a node's capacity back (its agent saw the interruption notice at
//! `meta-data/spot/instance-action`, signalled the job and reported `"preempted": true`, or its
//! instance was terminated or stopped with the state reason `Server.SpotInstanceTermination`),
//! `host_failure` for a node gone otherwise (an instance terminated by hand, a heartbeat that
//! stopped).
//!
//! A lost job's `finished_at` is when its loss became observable, so that `kiln jobs events`
//! measures detection from it (see [`lost_at`]): when the agent saw the interruption notice
//! (`noticed_at` in its report; the job runs on meanwhile, writing its last checkpoint, and
//! `notice_at` shows the notice in state), else when EC2 says the instance changed state, else
//! when its heartbeat went stale, else the refresh that first saw the instance gone. The signal a
//! notice gives the job is `preempt_signal` (SIGTERM by default): spec.env carries it to the agent
//! as KILN_PREEMPT_SIGNAL, and an in-place update rewrites that line, which the agent reads again
//! when a notice comes, so that a change reaches running jobs too.
//!
//! The sensitive values of `env` never go to the bucket: env.sh holds only the others, and the
//! sensitive ones go, as a shell file (base64-encoded), to the SSM SecureString parameter
//! [`env_parameter`] (`/kiln/jobs/JOB_ID/env`), written before the instances are tagged and
//! deleted with the job (or when its create fails). spec.env names it (KILN_ENV_PARAMETER); the
//! agent reads it with a signed GetParameter, so the instance role needs `ssm:GetParameter` on
//! it (and `kms:Decrypt` on its key, `aws/ssm` by default).

use aws_sdk_ec2::types::Tag;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_ssm::types::ParameterType;
use base64::Engine as _;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::portable::job::{self as portable, BucketStore, Checkpoint, JobStatus, NodeEnv};
use kiln_provider::portable::{secret_env, workdir};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, LogSeek, LogsRequest, LogsResponse, PlanRequest, PlanResponse,
    ReadItem, ReadResult, RecoverRequest, UpdateRequest,
};
use kiln_value::Value;

use crate::cluster::instances::{self, AllInstances};
use crate::error::AwsError;
use crate::util::{attrs, error, made_up_name, num, set, str_attr, str_list, strings, u64_attr};
use crate::{Ctx, Kind, KindSchema, Outcome};

/// Tag whose value names the job an instance runs.
pub const TAG_JOB: &str = "kiln:job";
const AGENT: &str = include_str!("agent.sh");
/// KILN_MASTER_PORT on every node.
const MASTER_PORT: u16 = 29500;
/// The signal a spot interruption notice gives the job (optional, updated in place).
pub(crate) const PREEMPT_SIGNAL: &str = "preempt_signal";
/// When an agent first saw a spot interruption notice (computed).
pub(crate) const NOTICE_AT: &str = "notice_at";
/// What `preempt_signal` takes: the signals a program can catch to write a last checkpoint (not
/// SIGKILL or SIGSTOP). The agent starts jobs with SIGINT, SIGQUIT and SIGHUP at their defaults
/// where `env --default-signal` is there (coreutils 8.31+): otherwise a shell started in the
/// background would ignore them, and could not trap them.
const PREEMPT_SIGNALS: [&str; 6] = ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2"];
/// The signal the agent sends when spec.env names none, as `kill` takes it.
const DEFAULT_SIGNAL: &str = "TERM";
const SIGNAL_ERROR: &str = "E-AWS-JOB-SIGNAL";

/// User data of the instances kiln launches: writes the agent and starts it in the background.
pub fn user_data(region: &str, endpoint: Option<&str>) -> String {
    format!(
        "#!/bin/sh\n# Written by kiln: starts the kiln agent, which runs the jobs kiln assigns to this instance.\n\
         d=\"${{KILN_AGENT_DIR:-/var/lib/kiln}}\"\nmkdir -p \"$d\"\ncat >\"$d/agent.sh\" <<'KILN_AGENT_EOF'\n{AGENT}KILN_AGENT_EOF\n\
         KILN_REGION={} KILN_S3_ENDPOINT={} nohup setsid sh \"$d/agent.sh\" >>\"$d/agent.log\" 2>&1 </dev/null &\n",
        quote(region),
        quote(endpoint.unwrap_or(""))
    )
}

/// User data as RunInstances and launch templates take it: gzip-compressed (EC2 takes at most
/// 16 KiB, and the agent is larger; cloud-init unpacks it before running it), then base64.
pub fn encode_user_data(script: &str) -> String {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(script.as_bytes()).expect("gzip into memory");
    base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip into memory"))
}

/// `s` as one single-quoted shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub(crate) struct Job;

/// What the configuration asks for, once everything is known.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    /// The cluster's (or pool's) instances the job runs on, by rank.
    instance_ids: Vec<String>,
    gpus_per_node: u64,
    bucket: String,
    checkpoint_path: String,
    /// KILN_CHECKPOINT_URI: `s3://BUCKET/PATH` ([`Checkpoint::uri`]).
    checkpoint_uri: String,
    setup: String,
    run: String,
    workdir: Option<String>,
    /// (name, value, sensitive)
    env: Vec<(String, String, bool)>,
    stop_grace: u64,
    /// The signal a spot interruption notice gives the job, as `kill` takes it (`USR1`); `None`:
    /// the agent's default, SIGTERM.
    preempt_signal: Option<&'static str>,
    /// The workdir uploaded from this machine as `workdir.tar` beside the job's scripts, which
    /// the agent unpacks into the job's own directory (KILN_WORKDIR's default).
    workdir_tar: Option<Vec<u8>>,
}

const CONFIG: [&str; 7] = ["cluster", "setup", "run", "workdir", "env", "nodes", "checkpoint"];

impl Spec {
    fn parse(address: &str, v: &Value) -> Result<Option<Spec>, Diagnostic> {
        if let Some(d) = unreachable_checkpoint(address, v) {
            return Err(d);
        }
        let preempt_signal = preempt_signal(address, v)?;
        if CONFIG.iter().any(|k| v.get(k).is_some_and(Value::contains_unknown)) {
            return Ok(None);
        }
        let cluster = set(v, "cluster").filter(|c| c.get("instance_ids").is_some()).ok_or_else(|| {
            error("E-AWS-JOB-CLUSTER", address, format!("{address}: `cluster` must be an aws cluster or spot pool"))
                .hint("write `cluster = cluster.NAME` or `cluster = spot_pool.NAME`")
        })?;
        let all = str_list(cluster, "instance_ids");
        let nodes = match set(v, "nodes").and_then(kiln_provider::util::to_u64) {
            Some(0) => return Err(error("E-AWS-JOB-NODES", address, format!("{address}: `nodes` must be at least 1"))),
            Some(n) => n as usize,
            None => all.len(),
        };
        if nodes > all.len() || all.is_empty() {
            return Err(error(
                "E-AWS-JOB-NODES",
                address,
                format!("{address} asks for {nodes} nodes, its cluster has {} instances", all.len()),
            )
            .hint("lower the job's `nodes`, or raise the cluster's `nodes` (or the pool's `capacity`)"));
        }
        let checkpoint = set(v, "checkpoint");
        let bucket =
            checkpoint.and_then(|c| c.get("bucket")).and_then(|b| str_attr(b, "name").or_else(|| b.as_str())).ok_or_else(|| {
                error("E-AWS-JOB-BUCKET", address, format!("{address}: an aws job needs a `checkpoint` block naming an S3 bucket"))
                    .hint("add `checkpoint { bucket = bucket.NAME }`: the job's scripts, status and logs are kept there under kiln/jobs/")
            })?;
        let run = str_attr(v, "run").filter(|r| !r.trim().is_empty()).ok_or_else(|| {
            error("E-AWS-JOB-RUN", address, format!("{address}: `run` is empty"))
                .hint("give the command to run, such as run = \"python3 train.py\"")
        })?;
        // The instance type's GPUs; a cluster planned before kiln recorded them: its request.
        let gpus_per_node =
            u64_attr(cluster, "gpus_per_node").unwrap_or_else(|| gpu_count(str_attr(cluster, "accelerators").unwrap_or_default()));
        let s3 = Value::Map([("uri".to_string(), Value::from(format!("s3://{bucket}")))].into());
        let path = checkpoint.and_then(|c| str_attr(c, "path")).unwrap_or_default();
        let checkpoint_uri = Checkpoint { bucket: &s3, path }.uri().unwrap_or_default();
        Ok(Some(Spec {
            checkpoint_uri,
            instance_ids: all[..nodes].to_vec(),
            gpus_per_node,
            bucket: bucket.to_string(),
            checkpoint_path: checkpoint.and_then(|c| str_attr(c, "path")).unwrap_or_default().trim_start_matches('/').to_string(),
            setup: str_attr(v, "setup").unwrap_or_default().to_string(),
            run: run.to_string(),
            workdir: str_attr(v, "workdir").map(str::to_string),
            env: set(v, "env")
                .and_then(Value::as_map)
                .into_iter()
                .flatten()
                .map(|(k, x)| (k.clone(), x.to_template_string().unwrap_or_default(), x.contains_sensitive()))
                .collect(),
            stop_grace: u64_attr(v, "stop_grace").unwrap_or(10),
            preempt_signal,
            workdir_tar: None,
        }))
    }

    /// The job environment of every node ([`NodeEnv`]), less what the agent sets per node:
    /// KILN_NODE_RANK (where its IP is in KILN_NODE_IPS), KILN_TASK_RANK (the same) and
    /// KILN_CHECKPOINT_DIR (its local directory); then the agent's own settings.
    fn env_file(&self, job_id: &str, ips: &[String]) -> String {
        let workdir = match &self.workdir {
            Some(w) => quote(w),
            None => format!("\"${{KILN_AGENT_DIR:-/var/lib/kiln}}/work/\"{}", quote(job_id)),
        };
        // What an agent of an instance launched by an earlier kiln passes on as is: the URI, as
        // that kiln gave it (it neither restores nor syncs a directory).
        let earlier_dir = format!("s3://{}/{}", self.bucket, self.checkpoint_path);
        let env = NodeEnv {
            job_id,
            node_rank: 0,
            node_ips: ips,
            master_addr: &ips[0],
            master_port: MASTER_PORT,
            gpus_per_node: self.gpus_per_node,
            checkpoint_dir: &earlier_dir,
            checkpoint_uri: &self.checkpoint_uri,
        };
        let mut file = String::new();
        for (k, v) in env.vars() {
            match k.as_str() {
                portable::NODE_RANK => {}
                // Read when the job's shell sources this file, after the agent set the rank.
                portable::TASK_RANK => file.push_str("export KILN_TASK_RANK=\"${KILN_NODE_RANK:-}\"\n"),
                _ => file.push_str(&format!("export {k}={}\n", quote(&v))),
            }
        }
        for (k, v) in
            [("KILN_STOP_GRACE", quote(&self.stop_grace.to_string())), ("KILN_WORKDIR", workdir), ("PYTHONUNBUFFERED", quote("1"))]
        {
            file.push_str(&format!("export {k}={v}\n"));
        }
        // For the agent, which sends it on a spot interruption notice (and reads the line again
        // then: an in-place update rewrites it, see [`with_preempt_signal`]).
        file.push_str(&preempt_signal_line(self.preempt_signal.unwrap_or(DEFAULT_SIGNAL)));
        if self.workdir_tar.is_some() {
            // For the agent, which downloads and unpacks it into KILN_WORKDIR.
            file.push_str(&format!("KILN_WORKDIR_ARCHIVE={}\n", quote(WORKDIR_ARCHIVE)));
        }
        if self.has_secrets() {
            // For the agent, which reads the sensitive part of the env from there.
            file.push_str(&format!("KILN_ENV_PARAMETER={}\n", quote(&env_parameter(job_id))));
        }
        file
    }

    /// The user's env as a shell file: its sensitive values (`sensitive`) or the others.
    fn user_env_file(&self, sensitive: bool) -> String {
        self.env.iter().filter(|(k, _, s)| valid_name(k) && *s == sensitive).map(|(k, v, _)| format!("export {k}={}\n", quote(v))).collect()
    }

    fn has_secrets(&self) -> bool {
        self.env.iter().any(|(k, _, s)| *s && valid_name(k))
    }
}

/// A checkpoint bucket the agents cannot reach with the instance's role: anything but S3 (a
/// bucket still being created is checked once its values are known).
fn unreachable_checkpoint(address: &str, v: &Value) -> Option<Diagnostic> {
    let c = Checkpoint::of(v)?;
    match c.store() {
        BucketStore::Object(scheme) if scheme == "s3" => None,
        BucketStore::Unknown => None,
        _ => Some(
            c.unreachable(
                "E-AWS-JOB-CHECKPOINT",
                "aws",
                "use an aws `bucket` (S3), such as `bucket = bucket.NAME` with `provider = aws`: the agent on each instance restores \
                 and uploads KILN_CHECKPOINT_DIR with the instance profile's role",
            )
            .address(address),
        ),
    }
}

/// The signal `preempt_signal` names, as the agent's `kill` takes it (`USR1`); `None` when it is
/// not set (the agent's SIGTERM) or not known yet; an error at the attribute for any other.
fn preempt_signal(address: &str, v: &Value) -> Result<Option<&'static str>, Diagnostic> {
    let Some(x) = set(v, PREEMPT_SIGNAL).filter(|x| !x.is_unknown()) else { return Ok(None) };
    let given = x.as_str().map_or_else(|| x.to_string(), str::to_string);
    match PREEMPT_SIGNALS.iter().find(|s| **s == given) {
        Some(s) => Ok(Some(&s[3..])),
        None => Err(error(
            SIGNAL_ERROR,
            address,
            format!("{address}: `{PREEMPT_SIGNAL}` = \"{given}\" is not a signal kiln sends a job on a spot interruption notice"),
        )
        .attribute(PREEMPT_SIGNAL)
        .hint(format!(
            "use one of {} (SIGTERM when unset): the job catches it to write a last checkpoint before the capacity goes",
            PREEMPT_SIGNALS.join(", ")
        ))),
    }
}

/// spec.env's line naming the signal for the agent (`kill`'s name for it).
fn preempt_signal_line(signal: &str) -> String {
    format!("KILN_PREEMPT_SIGNAL={}\n", quote(signal))
}

/// `spec_env` with its KILN_PREEMPT_SIGNAL line saying `signal` (added, for a spec.env written
/// before there was one).
fn with_preempt_signal(spec_env: &str, signal: &str) -> String {
    let mut out: String = spec_env.lines().filter(|l| !l.starts_with("KILN_PREEMPT_SIGNAL=")).flat_map(|l| [l, "\n"]).collect();
    out.push_str(&preempt_signal_line(signal));
    out
}

/// Rewrites KILN_PREEMPT_SIGNAL in the spec.env of the job `prior` to `signal`: the agents read
/// it again when a notice comes. A job whose files are gone has nothing to rewrite.
async fn set_preempt_signal(ctx: &Ctx, address: &str, prior: &Value, signal: &str) -> Result<(), Diagnostic> {
    let Some((bucket, p)) = str_attr(prior, "uri").and_then(bucket_of) else { return Ok(()) };
    let key = format!("{p}/spec.env");
    let failed = |e: AwsError| e.diagnostic(address, &format!("rewrite s3://{bucket}/{key} with the new `{PREEMPT_SIGNAL}`"));
    let out = match ctx.clients.s3.get_object().bucket(bucket).key(&key).send().await.map_err(AwsError::from_sdk) {
        Ok(out) => out,
        Err(e) if e.is("NoSuchKey") || e.is("NoSuchBucket") => return Ok(()),
        Err(e) => return Err(failed(e)),
    };
    let bytes = out.body.collect().await.map_err(|e| failed(AwsError { code: None, message: e.to_string() }))?.into_bytes();
    let body = with_preempt_signal(&String::from_utf8_lossy(&bytes), signal);
    put(ctx, bucket, key.clone(), body).await.map_err(failed)
}

fn valid_name(k: &str) -> bool {
    !k.is_empty() && !k.starts_with(|c: char| c.is_ascii_digit()) && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// GPUs per node from `NAME[:COUNT]`: 0 without accelerators.
fn gpu_count(accelerators: &str) -> u64 {
    match accelerators.split_once(':') {
        Some((_, n)) => n.trim().parse().unwrap_or(1),
        None if accelerators.trim().is_empty() => 0,
        None => 1,
    }
}

fn known(address: &str, v: &Value) -> Result<Spec, Diagnostic> {
    Spec::parse(address, v)?.ok_or_else(|| error("E-AWS-UNKNOWN", address, format!("{address}: the job's configuration is still unknown")))
}

/// The SSM parameter holding the sensitive part of the job's env (a SecureString).
pub fn env_parameter(job_id: &str) -> String {
    format!("/kiln/jobs/{job_id}/env")
}

/// Deletes the job's env parameter; one already gone is fine.
async fn delete_env_parameter(ctx: &Ctx, job_id: &str) -> Result<(), AwsError> {
    match ctx.clients.ssm.delete_parameter().name(env_parameter(job_id)).send().await.map_err(AwsError::from_sdk) {
        Err(e) if !e.is("ParameterNotFound") => Err(e),
        _ => Ok(()),
    }
}

/// `kiln/jobs/JOB_ID`, the job's prefix in its bucket.
fn prefix(job_id: &str) -> String {
    format!("kiln/jobs/{job_id}")
}

/// The object beside a job's scripts holding its uploaded workdir.
const WORKDIR_ARCHIVE: &str = "workdir.tar";

async fn put(ctx: &Ctx, bucket: &str, key: String, body: impl Into<Vec<u8>>) -> Result<(), AwsError> {
    ctx.clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.into()))
        .send()
        .await
        .map(|_| ())
        .map_err(AwsError::from_sdk)
}

async fn create(ctx: &Ctx, req: &CreateRequest<'_>) -> Result<Value, Diagnostic> {
    let mut spec = known(req.address, req.planned)?;
    // `secret_env` goes with the env's sensitive values: to the SSM SecureString parameter.
    let secrets = secret_env::values(req.planned).map_err(|e| error("E-AWS-JOB-SECRET", req.address, format!("{}: {e}", req.address)))?;
    spec.env.extend(secrets.into_iter().map(|(k, v)| (k, v, true)));
    // A workdir planned with a digest is uploaded beside the scripts; the agent unpacks it into
    // the job's own directory on each instance, where the scripts run.
    if let Some(tar) = workdir::upload(&ctx.working_dir, req.planned, "E-AWS-JOB-WORKDIR", req.address)? {
        spec.workdir_tar = Some(tar);
        spec.workdir = None;
    }
    let job_id = made_up_name(req.address, "job", req.token, 63);
    let ips = node_ips(ctx, req.address, &spec).await?;
    let uri = format!("s3://{}/{}", spec.bucket, prefix(&job_id));
    if spec.has_secrets() {
        let name = env_parameter(&job_id);
        let value = base64::engine::general_purpose::STANDARD.encode(spec.user_env_file(true));
        let request = ctx.clients.ssm.put_parameter().name(&name).value(value).r#type(ParameterType::SecureString).overwrite(true);
        request.send().await.map_err(|e| {
            AwsError::from_sdk(e).diagnostic(req.address, &format!("write the env's sensitive values to the SSM parameter {name}")).hint(
                "kiln keeps a job's sensitive env values in an SSM SecureString parameter: the credentials need ssm:PutParameter and ssm:DeleteParameter on /kiln/jobs/* (the parameter holds at most 4 KB, base64-encoded)",
            )
        })?;
        if let Err(d) = write_and_tag(ctx, req.address, &spec, &job_id, &ips, &uri).await {
            // Nothing runs the job: its secrets go (best effort; destroy deletes them otherwise).
            let _ = delete_env_parameter(ctx, &job_id).await;
            return Err(d);
        }
    } else {
        write_and_tag(ctx, req.address, &spec, &job_id, &ips, &uri).await?;
    }
    Ok(created(req.planned, &spec, job_id, &ips, uri))
}

/// The private addresses of the job's instances, each running.
async fn node_ips(ctx: &Ctx, address: &str, spec: &Spec) -> Result<Vec<String>, Diagnostic> {
    let live = instances::describe_ids(&ctx.clients.ec2, &spec.instance_ids)
        .await
        .map_err(|e| e.diagnostic(address, "describe the job's instances"))?;
    let mut ips = Vec::new();
    for id in &spec.instance_ids {
        match live.iter().find(|n| &n.id == id && n.live() && !n.private_ip.is_empty()) {
            Some(n) => ips.push(n.private_ip.clone()),
            None => {
                return Err(error("E-AWS-JOB-INSTANCE", address, format!("{address}: instance `{id}` of its cluster is not running"))
                    .hint("run `kiln apply` again: the cluster heals lost instances first, then the job starts on them"))
            }
        }
    }
    Ok(ips)
}

/// The state of a job just created (its `secret_env` sealed).
fn created(planned: &Value, spec: &Spec, job_id: String, ips: &[String], uri: String) -> Value {
    let mut v = attrs(planned);
    v.insert("job_id".into(), Value::from(job_id));
    v.insert("uri".into(), Value::from(uri));
    v.insert("instance_ids".into(), strings(&spec.instance_ids));
    v.insert("node_ips".into(), strings(ips));
    v.insert("nodes".into(), num(ips.len() as u64));
    v.insert("status".into(), Value::from(JobStatus::Pending));
    v.insert("lost_reason".into(), Value::Null);
    v.insert(NOTICE_AT.into(), Value::Null);
    v.insert("exit_codes".into(), Value::List(vec![Value::Null; ips.len()]));
    v.insert("started_at".into(), Value::Null);
    v.insert("finished_at".into(), Value::Null);
    secret_env::seal(Value::Map(v))
}

/// Finishes an interrupted create again (its files and tags are written idempotently). A
/// pending entry keeps `secret_env` sealed (kiln never stores the values in clear), so such a
/// create cannot be finished: a job whose instances all carry its tag was made in full and is
/// adopted as it is; otherwise what it wrote (the SSM parameter, files, tags) is deleted and
/// the job is gone, for the next plan to create from the configuration's values.
async fn recover(ctx: &Ctx, req: &RecoverRequest<'_>) -> Result<Option<Value>, Diagnostic> {
    if secret_env::values(req.planned).is_ok() {
        let create_req = CreateRequest { address: req.address, kind: req.kind, planned: req.planned, token: req.token };
        return create(ctx, &create_req).await.map(Some);
    }
    let spec = known(req.address, req.planned)?;
    let job_id = made_up_name(req.address, "job", req.token, 63);
    let uri = format!("s3://{}/{}", spec.bucket, prefix(&job_id));
    let filter = |name: &str, values: Vec<String>| aws_sdk_ec2::types::Filter::builder().name(name).set_values(Some(values)).build();
    let tagged = ctx
        .clients
        .ec2
        .describe_tags()
        .filters(filter("resource-id", spec.instance_ids.clone()))
        .filters(filter("key", vec![TAG_JOB.to_string()]))
        .filters(filter("value", vec![uri.clone()]))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(e).diagnostic(req.address, "look for the instances of an interrupted create"))?;
    let tagged: std::collections::BTreeSet<&str> = tagged.tags().iter().filter_map(|t| t.resource_id()).collect();
    if !spec.instance_ids.is_empty() && spec.instance_ids.iter().all(|id| tagged.contains(id.as_str())) {
        let ips = node_ips(ctx, req.address, &spec).await?;
        return Ok(Some(created(req.planned, &spec, job_id, &ips, uri)));
    }
    let mut prior = attrs(req.planned);
    prior.insert("job_id".into(), Value::from(job_id));
    prior.insert("uri".into(), Value::from(uri));
    prior.insert("instance_ids".into(), strings(&spec.instance_ids));
    delete(ctx, &DeleteRequest { address: req.address, kind: req.kind, prior: &Value::Map(prior) }).await?;
    Ok(None)
}

/// Writes the job's files to its bucket, then tags its instances with `uri`.
async fn write_and_tag(ctx: &Ctx, address: &str, spec: &Spec, job_id: &str, ips: &[String], uri: &str) -> Result<(), Diagnostic> {
    let p = prefix(job_id);
    let files = [
        ("spec.env", spec.env_file(job_id, ips)),
        ("env.sh", spec.user_env_file(false)),
        ("setup.sh", spec.setup.clone()),
        ("run.sh", spec.run.clone()),
    ];
    for (name, body) in files {
        put(ctx, &spec.bucket, format!("{p}/{name}"), body)
            .await
            .map_err(|e| e.diagnostic(address, &format!("write {name} to the bucket")))?;
    }
    if let Some(tar) = &spec.workdir_tar {
        put(ctx, &spec.bucket, format!("{p}/{WORKDIR_ARCHIVE}"), tar.clone())
            .await
            .map_err(|e| e.diagnostic(address, "write the job's workdir to the bucket"))?;
    }
    let tag = Tag::builder().key(TAG_JOB).value(uri).build();
    ctx.clients
        .ec2
        .create_tags()
        .set_resources(Some(spec.instance_ids.clone()))
        .tags(tag)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk(e).diagnostic(address, "tag the instances with the job"))
}

/// One node's report, as the agent uploads it.
#[derive(Debug, Clone, serde::Deserialize)]
struct NodeStatus {
    rank: usize,
    state: String,
    exit_code: Option<i64>,
    started_at: Option<String>,
    finished_at: Option<String>,
    heartbeat: u64,
    /// When the spot interruption notice the agent saw says the capacity goes (agents before
    /// issue 15: never).
    #[serde(default)]
    notice: Option<String>,
    /// When the agent saw that notice (RFC 3339, the instance's clock).
    #[serde(default)]
    noticed_at: Option<String>,
    /// The agent stopped the job for that notice (in its final report, state `lost`).
    #[serde(default)]
    preempted: bool,
    /// The agent stopped this node's part because node N failed or was lost (a multi-node job
    /// fails fast): its exit is not the job's failure.
    #[serde(default)]
    stopped_for: Option<usize>,
}

/// The state reason of an instance EC2 took back from the spot market.
const SPOT_TERMINATION: &str = "Server.SpotInstanceTermination";

/// Why a node, and so its job, is lost: the job's `lost_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum LostReason {
    /// Gone otherwise: its instance terminated by hand or failed, its heartbeat stopped.
    HostFailure,
    /// Spot took the capacity back: an interruption notice, or `Server.SpotInstanceTermination`.
    Preemption,
}

impl LostReason {
    /// The recovery category `kiln watch` reads it as.
    fn as_str(self) -> &'static str {
        use kiln_provider::portable::recovery::Category;
        match self {
            LostReason::HostFailure => Category::HostFailure.as_str(),
            LostReason::Preemption => Category::Preemption.as_str(),
        }
    }
}

/// Why the node of `report` on `instance` is lost, or `None` while it is not: the agent's own
/// word first (preempted, or a heartbeat stopped after a notice), then what EC2 says of the
/// instance (gone, or stopped by spot: a stopped instance runs nothing).
fn node_lost(report: Option<&NodeStatus>, instance: Option<&instances::Node>, heartbeat_stale: bool) -> Option<LostReason> {
    let noticed = report.is_some_and(|r| r.notice.is_some());
    let reclaimed = instance.is_some_and(|n| n.reason == SPOT_TERMINATION && !matches!(n.state.as_str(), "pending" | "running"));
    let gone = instance.is_none_or(|n| !n.live()) || reclaimed;
    let ended = report.is_some_and(|r| JobStatus::parse(&r.state).is_some_and(JobStatus::has_finished));
    if report.is_some_and(|r| r.preempted && r.state != JobStatus::Running.as_str()) {
        Some(LostReason::Preemption)
    } else if ended {
        None // it ran to its end before its instance went
    } else if gone || heartbeat_stale {
        Some(if noticed || reclaimed { LostReason::Preemption } else { LostReason::HostFailure })
    } else {
        None
    }
}

fn bucket_of(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix("s3://")?.split_once('/')
}

/// The keys and sizes of the objects under `prefix`.
async fn list(ctx: &Ctx, bucket: &str, prefix: &str) -> Result<Vec<(String, i64)>, AwsError> {
    let mut listed = Vec::new();
    let mut next = None;
    loop {
        let out = ctx
            .clients
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(next)
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        listed.extend(out.contents().iter().filter_map(|o| Some((o.key()?.to_string(), o.size().unwrap_or_default()))));
        next = out.next_continuation_token().map(str::to_string);
        if next.is_none() {
            return Ok(listed);
        }
    }
}

/// The job's objects' keys.
async fn keys(ctx: &Ctx, bucket: &str, p: &str) -> Result<Vec<String>, AwsError> {
    Ok(list(ctx, bucket, &format!("{p}/")).await?.into_iter().map(|(k, _)| k).collect())
}

/// The job's objects' keys, and the node reports among them.
async fn reports(ctx: &Ctx, bucket: &str, p: &str) -> Result<(Vec<String>, Vec<NodeStatus>), AwsError> {
    let s3 = &ctx.clients.s3;
    let keys = keys(ctx, bucket, p).await?;
    let mut nodes = Vec::new();
    for key in keys.iter().filter(|k| k.starts_with(&format!("{p}/status/")) && k.ends_with(".json")) {
        let out = s3.get_object().bucket(bucket).key(key).send().await.map_err(AwsError::from_sdk)?;
        let bytes = out.body.collect().await.map_err(|e| AwsError { code: None, message: e.to_string() })?.into_bytes();
        // A report that does not parse is treated as missing; the agent rewrites it soon.
        if let Ok(s) = serde_json::from_slice::<NodeStatus>(&bytes) {
            nodes.push(s);
        }
    }
    Ok((keys, nodes))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The job's state from its reports and its instances: `None` when its objects are gone.
fn derive(state: &Value, keys: &[String], reports: &[NodeStatus], all: &[instances::Node]) -> Option<Value> {
    if keys.is_empty() {
        return None;
    }
    let ids = str_list(state, "instance_ids");
    let timeout = u64_attr(state, "heartbeat_timeout").unwrap_or(120);
    let mut by_rank: Vec<Option<&NodeStatus>> = vec![None; ids.len()];
    for r in reports {
        if let Some(slot) = by_rank.get_mut(r.rank) {
            *slot = Some(r);
        }
    }
    let now = now_secs();
    let stale = |r: &NodeStatus| JobStatus::parse(&r.state) == Some(JobStatus::Running) && now.saturating_sub(r.heartbeat) > timeout;
    // Why each node is lost, if it is.
    let lost: Vec<Option<LostReason>> = ids
        .iter()
        .enumerate()
        .map(|(rank, id)| {
            let report = by_rank.get(rank).copied().flatten();
            node_lost(report, all.iter().find(|n| &n.id == id), report.is_some_and(stale))
        })
        .collect();
    let states: Vec<JobStatus> = by_rank
        .iter()
        .zip(&lost)
        .map(|(r, lost)| match r.map(|r| JobStatus::parse(&r.state)) {
            _ if lost.is_some() => JobStatus::Lost,
            Some(Some(s)) => s,
            // Not reported yet, or a word this kiln does not know.
            Some(None) | None => JobStatus::Pending,
        })
        .collect();
    let reason = lost.iter().flatten().max().copied();
    let status = if states.iter().all(|s| *s == JobStatus::Succeeded) {
        JobStatus::Succeeded
    } else if reason == Some(LostReason::Preemption) {
        // A node taken back by spot: the other nodes' failures are most likely its consequence.
        JobStatus::Lost
    } else if states.contains(&JobStatus::Failed) {
        JobStatus::Failed
    } else if reason.is_some() {
        JobStatus::Lost
    } else if states.iter().any(|s| matches!(s, JobStatus::Running | JobStatus::Succeeded)) {
        JobStatus::Running
    } else {
        JobStatus::Pending
    };
    let mut v = attrs(state);
    v.insert("status".into(), Value::from(status));
    let lost_reason = reason.filter(|_| status == JobStatus::Lost).map(LostReason::as_str);
    v.insert("lost_reason".into(), lost_reason.map_or(Value::Null, Value::from));
    v.insert(
        "exit_codes".into(),
        Value::List(
            by_rank
                .iter()
                .map(|r| r.filter(|r| r.stopped_for.is_none()).and_then(|r| r.exit_code).map_or(Value::Null, Value::from))
                .collect(),
        ),
    );
    let started = by_rank.iter().flatten().filter_map(|r| r.started_at.clone()).min();
    v.insert("started_at".into(), started.map_or(Value::Null, Value::from));
    let notice_at = by_rank.iter().flatten().filter_map(|r| r.noticed_at.clone()).min();
    let finished = if status == JobStatus::Lost {
        let lost_nodes = ids.iter().zip(&by_rank).zip(&lost).filter(|(_, l)| l.is_some());
        lost_at(state, lost_nodes.map(|((id, r), _)| (*r, all.iter().find(|n| &n.id == id))), timeout, notice_at.clone())
    } else {
        by_rank.iter().flatten().filter_map(|r| r.finished_at.clone()).max().filter(|_| status.has_finished())
    };
    v.insert("finished_at".into(), finished.map_or(Value::Null, Value::from));
    v.insert(NOTICE_AT.into(), notice_at.map_or(Value::Null, Value::from));
    Some(Value::Map(v))
}

/// A lost job's `finished_at`: when its loss became observable, so that `kiln jobs events`
/// measures detection from it. That is the first interruption notice an agent saw (`notice_at`,
/// on any node: a node told to go is lost with its job), or the earliest of its lost nodes'
/// times, whichever came first. A node's time is when its agent saw the notice (`noticed_at`, not
/// when the job then stopped after writing its last checkpoint; an agent before `noticed_at`: its
/// final report's time); else, its instance gone, when EC2 says it changed state (a termination
/// by hand: "User initiated (TIME)"); else, its heartbeat stale, when the heartbeat became
/// `heartbeat_timeout` old; else (EC2 gives no time, as for a spot reclaim) the refresh that
/// first saw it gone. Once state holds a lost job's time, it is kept.
fn lost_at<'a>(
    state: &Value,
    lost: impl Iterator<Item = (Option<&'a NodeStatus>, Option<&'a instances::Node>)>,
    timeout: u64,
    notice_at: Option<String>,
) -> Option<String> {
    if JobStatus::of(state) == Some(JobStatus::Lost) {
        if let Some(t) = str_attr(state, "finished_at") {
            return Some(t.to_string());
        }
    }
    let at_secs = |secs: u64| kiln_provider::util::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    lost.map(|(report, instance)| {
        let gone = instance.is_none_or(|n| !n.live() || n.reason == SPOT_TERMINATION);
        report
            .and_then(|r| r.noticed_at.clone())
            // An agent before `noticed_at`: its final report's time.
            .or_else(|| report.filter(|r| r.preempted).and_then(|r| r.finished_at.clone()))
            .or_else(|| instance.filter(|_| gone).and_then(|n| n.transitioned_at.clone()))
            .or_else(|| report.filter(|_| !gone).map(|r| at_secs(r.heartbeat.saturating_add(timeout))))
            .unwrap_or_else(kiln_provider::util::now)
    })
    .chain(notice_at)
    .min()
}

async fn read_one(ctx: &Ctx, item: &ReadItem<'_>, all: &AllInstances) -> ReadResult {
    let state = item.state;
    let all_exited = state.get("exit_codes").and_then(Value::as_list).is_some_and(|c| c.iter().all(|x| !x.is_null()));
    if all_exited && JobStatus::of(state).is_some_and(JobStatus::has_finished) {
        return ReadResult::found(state.clone()); // every node finished: nothing changes any more
    }
    let Some((bucket, p)) = str_attr(state, "uri").and_then(bucket_of) else { return ReadResult::gone() };
    let found = async { Ok::<_, AwsError>((reports(ctx, bucket, p).await?, all.get(&ctx.clients.ec2).await?)) };
    match found.await {
        Ok(((keys, nodes), all)) => derive(state, &keys, &nodes, all).map_or_else(ReadResult::gone, ReadResult::found),
        Err(e) if e.is("NoSuchBucket") => ReadResult::gone(),
        Err(e) => ReadResult { state: Some(state.clone()), diagnostics: e.diagnostic(item.address, "read the job's status").into() },
    }
}

async fn delete(ctx: &Ctx, req: &DeleteRequest<'_>) -> Result<(), Diagnostic> {
    let Some((bucket, p)) = str_attr(req.prior, "uri").and_then(bucket_of) else { return Ok(()) };
    let uri = str_attr(req.prior, "uri").unwrap_or_default();
    let ids = str_list(req.prior, "instance_ids");
    // Only the tag with this job's value: an instance already given another job keeps it.
    let tag = Tag::builder().key(TAG_JOB).value(uri).build();
    if !ids.is_empty() {
        match ctx.clients.ec2.delete_tags().set_resources(Some(ids)).tags(tag).send().await.map_err(AwsError::from_sdk) {
            Ok(_) => {}
            Err(e) if e.is("InvalidInstanceID.NotFound") => {}
            Err(e) => return Err(e.diagnostic(req.address, "untag the job's instances")),
        }
    }
    // The env's sensitive values (the job no longer runs anywhere). Tried for every job, in case
    // a state lost the mark, but an error counts only for a job whose env has sensitive values.
    if let Some(job_id) = str_attr(req.prior, "job_id") {
        match delete_env_parameter(ctx, job_id).await {
            Err(e)
                if req.prior.get("env").is_some_and(Value::contains_sensitive)
                    || req.prior.get(secret_env::ATTR).and_then(Value::as_map).is_some_and(|m| !m.is_empty()) =>
            {
                return Err(e
                    .diagnostic(req.address, &format!("delete the SSM parameter {}", env_parameter(job_id)))
                    .hint("the credentials need ssm:DeleteParameter on /kiln/jobs/*"))
            }
            _ => {}
        }
    }
    let keys = match keys(ctx, bucket, p).await {
        Ok(keys) => keys,
        Err(e) if e.is("NoSuchBucket") => return Ok(()),
        Err(e) => return Err(e.diagnostic(req.address, "list the job's objects")),
    };
    crate::bucket::s3::delete_keys(&ctx.clients.s3, bucket, &keys).await.map_err(|e| e.diagnostic(req.address, "delete the job's objects"))
}

/// A lost job, or one whose cluster now has other instances, asks to be replaced.
fn plan(working_dir: &std::path::Path, req: &PlanRequest<'_>) -> Result<PlanResponse, Diagnostic> {
    let spec = Spec::parse(req.address, req.config)?;
    let mut planned = attrs(req.proposed);
    let mut diagnostics = Diagnostics::new();
    let mut requires_replace = Vec::new();
    // A `workdir` that is a directory on this machine is uploaded through the job's bucket; one
    // that is not keeps its meaning before issue 13 (a directory on the instances).
    let (replace, withheld) = workdir::plan_job_digest(working_dir, req.config, req.prior, &mut planned)
        .map_err(|e| workdir::error("E-AWS-JOB-WORKDIR", req.address, &e))?;
    requires_replace.extend(replace);
    diagnostics.extend(withheld);
    diagnostics.extend(workdir::not_here_warning(working_dir, req.config, "W-AWS-JOB-WORKDIR", "instances"));
    secret_env::plan(req.prior, &mut planned);
    if let Some(cluster) = set(req.config, "cluster").filter(|c| !c.contains_unknown()) {
        if str_attr(cluster, "instance_profile").unwrap_or_default().is_empty() && cluster.get("instance_profile").is_some() {
            diagnostics.push(
                Diagnostic::warning("W-AWS-JOB-PROFILE", format!("{}: its instances have no `instance_profile`", req.address))
                    .address(req.address)
                    .hint("the kiln agent on the instances reads the job from S3 with the instance's role: set `instance_profile` on the cluster to a profile allowed to use the bucket"),
            );
        }
    }
    match &spec {
        Some(s) => planned.insert("nodes".into(), num(s.instance_ids.len() as u64)),
        None => planned.insert("nodes".into(), Value::Unknown),
    };
    if req.prior.is_none() {
        planned.insert("restarts".into(), portable::restarts_after(req.replacing));
    }
    if let Some(prior) = req.prior {
        if JobStatus::of(prior) == Some(JobStatus::Lost) {
            planned.insert("status".into(), Value::Unknown);
            planned.insert("lost_reason".into(), Value::Unknown);
            requires_replace.push("status".to_string());
        }
        match &spec {
            Some(s) if str_list(prior, "instance_ids") != s.instance_ids => requires_replace.push("cluster".to_string()),
            Some(s)
                if Spec::parse(req.address, prior)
                    .ok()
                    .flatten()
                    .is_some_and(|old| old.bucket != s.bucket || old.checkpoint_path != s.checkpoint_path) =>
            {
                requires_replace.push("checkpoint".to_string())
            }
            None => requires_replace.push("cluster".to_string()),
            _ => {}
        }
    }
    Ok(PlanResponse { planned: Value::Map(planned), requires_replace, diagnostics })
}

/// Most bytes one `logs` call returns.
const LOG_CHUNK: u64 = 8 << 20;

/// A node's log parts from their listing: (first byte, size), in order.
fn log_parts<'a>(listed: impl IntoIterator<Item = (&'a str, i64)>, dir: &str) -> Vec<(u64, u64)> {
    let mut parts: Vec<(u64, u64)> =
        listed.into_iter().filter_map(|(k, size)| Some((k.strip_prefix(dir)?.parse().ok()?, u64::try_from(size).ok()?))).collect();
    parts.sort_unstable();
    parts
}

/// The byte ranges to read for the log from `offset`: (part's first byte, range in the part).
/// Parts may overlap (an open part uploaded again as it grows is one object, but a reader may
/// list it between two uploads); a gap ends the reading until the missing part arrives.
fn log_reads(parts: &[(u64, u64)], offset: u64, most: u64) -> Vec<(u64, std::ops::Range<u64>)> {
    let mut at = offset;
    let mut out = Vec::new();
    for &(start, size) in parts {
        if start > at || at >= offset + most {
            break;
        }
        let end = (start + size).min(offset + most);
        if end > at {
            out.push((start, at - start..end - start));
            at = end;
        }
    }
    out
}

async fn logs(ctx: &Ctx, req: &LogsRequest<'_>) -> LogsResponse {
    let finished = JobStatus::of(req.state).is_some_and(|s| s.has_finished() || s == JobStatus::Lost);
    let empty =
        |diagnostics: Diagnostics| LogsResponse { data: Vec::new(), next_offset: req.offset, finished, all_nodes: false, diagnostics };
    let Some((bucket, p)) = str_attr(req.state, "uri").and_then(bucket_of) else { return empty(Diagnostics::new()) };
    let s3 = &ctx.clients.s3;
    let failed = |what: String, e: AwsError| empty(e.diagnostic(req.address, &what).into());
    let dir = format!("{p}/logs/node-{}/", req.node);
    if let Some(LogSeek::Since(t)) = req.seek {
        return match since(ctx, req.address, bucket, p, &dir, req.node, t).await {
            Ok(at) => LogsResponse { data: Vec::new(), next_offset: at, finished, all_nodes: false, diagnostics: Diagnostics::new() },
            Err(d) => empty(d.into()),
        };
    }
    let listed = match list(ctx, bucket, &dir).await {
        Ok(l) => l,
        Err(e) => return failed(format!("list s3://{bucket}/{dir}"), e),
    };
    if listed.is_empty() {
        return whole_log(ctx, req, bucket, p, finished).await;
    }
    let parts = log_parts(listed.iter().map(|(k, n)| (k.as_str(), *n)), &dir);
    if req.seek == Some(LogSeek::End) {
        let end = parts.iter().map(|(s, n)| s + n).max().unwrap_or(0);
        return LogsResponse { data: Vec::new(), next_offset: end, finished, all_nodes: false, diagnostics: Diagnostics::new() };
    }
    let mut data = Vec::new();
    for (start, range) in log_reads(&parts, req.offset, LOG_CHUNK) {
        let key = format!("{dir}{start:016}");
        let out = s3.get_object().bucket(bucket).key(&key).range(format!("bytes={}-{}", range.start, range.end - 1)).send().await;
        let body = match out.map_err(AwsError::from_sdk) {
            Ok(o) => o.body.collect().await.map(|b| b.into_bytes()),
            // Replaced between the listing and now: read what is there next time.
            Err(e) if e.is("NoSuchKey") || e.is("InvalidRange") => break,
            Err(e) => return failed(format!("read s3://{bucket}/{key}"), e),
        };
        match body {
            Ok(b) => {
                let short = (b.len() as u64) < range.end - range.start;
                data.extend_from_slice(&b);
                if short {
                    break;
                }
            }
            Err(e) => return failed(format!("read s3://{bucket}/{key}"), AwsError { code: None, message: e.to_string() }),
        }
    }
    // Finished only once everything uploaded has been read.
    let next_offset = req.offset + data.len() as u64;
    let end = parts.iter().map(|(s, n)| s + n).max().unwrap_or(0);
    LogsResponse { next_offset, finished: finished && next_offset >= end, data, all_nodes: false, diagnostics: Diagnostics::new() }
}

/// `--since`: the log parts are the time index. A part last uploaded at time T held the log up
/// to its end, measured before that upload: everything after it was written after T. So the
/// answer is the largest end of a part last modified at or before `t` (early by at most one
/// part: KILN_LOG_PART_SECONDS or KILN_LOG_PART_BYTES). A log uploaded whole (agents before log
/// parts) has no times: E-LOGS-SINCE.
async fn since(ctx: &Ctx, address: &str, bucket: &str, p: &str, dir: &str, node: usize, t: i64) -> Result<u64, Diagnostic> {
    let failed = |what: String, e: AwsError| e.diagnostic(address, &what);
    let mut samples = Vec::new();
    let mut next = None;
    loop {
        let out = ctx.clients.s3.list_objects_v2().bucket(bucket).prefix(dir).set_continuation_token(next).send().await;
        let out = out.map_err(AwsError::from_sdk).map_err(|e| failed(format!("list s3://{bucket}/{dir}"), e))?;
        for o in out.contents() {
            let start = o.key().and_then(|k| k.strip_prefix(dir)).and_then(|k| k.parse::<u64>().ok());
            let size = o.size().and_then(|n| u64::try_from(n).ok());
            if let (Some(start), Some(size), Some(at)) = (start, size, o.last_modified()) {
                samples.push((at.secs(), start + size));
            }
        }
        next = out.next_continuation_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    if samples.is_empty() {
        let key = format!("{p}/logs/node-{node}.log");
        let whole = ctx.clients.s3.head_object().bucket(bucket).key(&key).send().await.map_err(AwsError::from_sdk);
        if whole.is_ok() {
            return Err(error(
                "E-LOGS-SINCE",
                address,
                format!("{address}: s3://{bucket}/{key} was uploaded whole by an older kiln agent, without times, so --since cannot tell when its output was written"),
            )
            .hint("use --tail N instead"));
        }
    }
    Ok(kiln_provider::logs::TimeIndex::from_samples(samples).offset_since(t))
}

/// The log as agents before log parts uploaded it: one object, `logs/node-RANK.log`.
async fn whole_log(ctx: &Ctx, req: &LogsRequest<'_>, bucket: &str, p: &str, finished: bool) -> LogsResponse {
    let empty =
        |diagnostics: Diagnostics| LogsResponse { data: Vec::new(), next_offset: req.offset, finished, all_nodes: false, diagnostics };
    let key = format!("{p}/logs/node-{}.log", req.node);
    if req.seek == Some(LogSeek::End) {
        let head = ctx.clients.s3.head_object().bucket(bucket).key(&key).send().await.map_err(AwsError::from_sdk);
        let size = match head {
            Ok(h) => h.content_length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            Err(e) if e.is("NoSuchKey") || e.is("NotFound") => 0,
            Err(e) => return empty(e.diagnostic(req.address, &format!("read s3://{bucket}/{key}")).into()),
        };
        return LogsResponse { data: Vec::new(), next_offset: size, finished, all_nodes: false, diagnostics: Diagnostics::new() };
    }
    let out = ctx.clients.s3.get_object().bucket(bucket).key(&key).range(format!("bytes={}-", req.offset)).send().await;
    match out.map_err(AwsError::from_sdk) {
        Ok(o) => match o.body.collect().await {
            Ok(b) => {
                let data = b.into_bytes().to_vec();
                LogsResponse {
                    next_offset: req.offset + data.len() as u64,
                    data,
                    finished,
                    all_nodes: false,
                    diagnostics: Diagnostics::new(),
                }
            }
            Err(e) => empty(AwsError { code: None, message: e.to_string() }.diagnostic(req.address, "read the log").into()),
        },
        // Nothing uploaded yet, or nothing past the offset.
        Err(e) if e.is("NoSuchKey") || e.is("InvalidRange") => empty(Diagnostics::new()),
        Err(e) => empty(e.diagnostic(req.address, &format!("read s3://{bucket}/{key}")).into()),
    }
}

#[async_trait]
impl Kind<Ctx, AllInstances> for Job {
    fn name(&self) -> &'static str {
        "job"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("A training job run by the kiln agent on a cluster's or pool's instances", crate::schema::job())
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        if let Some(d) = secret_env::validate(config) {
            return d.into();
        }
        let portable = kiln_provider::portable::job::validate(config);
        if !portable.is_empty() {
            return portable.into_iter().collect();
        }
        match Spec::parse("job", config) {
            Err(d) if ["E-AWS-JOB-RUN", "E-AWS-JOB-BUCKET", "E-AWS-JOB-CHECKPOINT", SIGNAL_ERROR].contains(&d.code) => d.into(),
            // As plan would, so `kiln validate` reports it too (a cluster still unknown is not checked).
            Err(d) if d.code == "E-AWS-JOB-CLUSTER" && set(config, "cluster").is_some() => d.into(),
            _ => Diagnostics::new(),
        }
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        Ok(plan(&ctx.working_dir, req)?)
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(create(ctx, req).await?))
    }

    /// `stop_grace`, `heartbeat_timeout`, `log_retention`, `recovery` and `preempt_signal` change
    /// in place: they live in state, and `preempt_signal` in spec.env too, which the agents read
    /// again when a notice comes.
    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        let signal = |v: &Value| preempt_signal(req.address, v).map(|s| s.unwrap_or(DEFAULT_SIGNAL));
        let wanted = signal(req.planned)?;
        if signal(req.prior).ok() != Some(wanted) {
            set_preempt_signal(ctx, req.address, req.prior, wanted).await?;
        }
        let mut v = attrs(req.prior);
        for (k, x) in attrs(req.planned) {
            if !x.is_unknown() {
                v.insert(k, x);
            }
        }
        Ok(ApplyResponse::ok(Value::Map(v)))
    }

    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        delete(ctx, req).await?;
        Ok(Diagnostics::new())
    }

    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], all: &AllInstances) -> Outcome<Vec<ReadResult>> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(read_one(ctx, item, all).await);
        }
        Ok(out)
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(recover(ctx, req).await?.map_or_else(ReadResult::gone, ReadResult::found))
    }

    async fn shell(&self, ctx: &Ctx, req: &kiln_provider::ShellRequest<'_>) -> Outcome<kiln_provider::ShellAccess> {
        Ok(crate::ssh::shell(ctx, req).await?)
    }

    async fn import(&self, _ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        Err(error("E-AWS-IMPORT", req.address, "importing an aws job is not supported").hint("declare the job and run `kiln apply`").into())
    }

    async fn logs(&self, ctx: &Ctx, req: &LogsRequest<'_>) -> Outcome<LogsResponse> {
        Ok(logs(ctx, req).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_parts_are_read_in_order_from_the_offset() {
        let dir = "kiln/jobs/j/logs/node-0/";
        let listed = [("kiln/jobs/j/logs/node-0/0000000000000010", 5), ("kiln/jobs/j/logs/node-0/0000000000000000", 10), ("x", 1)];
        let parts = log_parts(listed, dir);
        assert_eq!(parts, [(0, 10), (10, 5)]);
        assert_eq!(log_reads(&parts, 0, 100), [(0, 0..10), (10, 0..5)]);
        assert_eq!(log_reads(&parts, 7, 100), [(0, 7..10), (10, 0..5)]);
        assert_eq!(log_reads(&parts, 12, 100), [(10, 2..5)]);
        assert_eq!(log_reads(&parts, 15, 100), []);
        assert_eq!(log_reads(&parts, 0, 12), [(0, 0..10), (10, 0..2)], "at most `most` bytes");
        // A gap (a part not listed yet) stops the reading; an overlap is read once.
        assert_eq!(log_reads(&[(0, 10), (20, 5)], 0, 100), [(0, 0..10)]);
        assert_eq!(log_reads(&[(0, 10), (5, 10)], 0, 100), [(0, 0..10), (5, 5..10)]);
    }

    #[test]
    fn validate_refuses_a_cluster_that_is_not_one() {
        let v = Value::from_json(&serde_json::json!({"cluster": 1, "run": "python3 train.py"}));
        assert_eq!(Job.validate(&v).iter().map(|d| d.code).collect::<Vec<_>>(), ["E-AWS-JOB-CLUSTER"]);
        let later = Value::Map([("cluster".to_string(), Value::Unknown), ("run".to_string(), Value::from("x"))].into());
        assert!(Job.validate(&later).is_empty());
    }

    #[test]
    fn a_checkpoint_bucket_the_instances_cannot_reach_is_refused() {
        let job = |bucket: serde_json::Value| {
            Value::from_json(&serde_json::json!({ "run": "x", "checkpoint": { "bucket": bucket, "path": "run-1/" } }))
        };
        let local = job(serde_json::json!({ "name": "ckpt", "uri": "file:///data/ckpt", "path": "/data/ckpt" }));
        let onprem =
            job(serde_json::json!({ "name": "ckpt", "uri": "sftp://h1/srv/ckpt", "host": "h1", "path": "/srv/ckpt", "shared": false }));
        for v in [local, onprem] {
            let d = Job.validate(&v);
            assert_eq!(
                d.iter().map(|d| (d.code, d.attribute.as_deref())).collect::<Vec<_>>(),
                [("E-AWS-JOB-CHECKPOINT", Some("checkpoint"))]
            );
            let d = Spec::parse("job.train", &v).unwrap_err();
            assert_eq!((d.code, d.address.as_deref()), ("E-AWS-JOB-CHECKPOINT", Some("job.train")));
        }
        // An S3 bucket, or one named by a string, is the agent's to reach.
        for bucket in [serde_json::json!({ "name": "b", "uri": "s3://b", "arn": "arn:aws:s3:::b" }), serde_json::json!("b")] {
            assert!(Job.validate(&job(bucket)).is_empty());
        }
    }

    fn instance(id: &str, state: &str, reason: &str) -> instances::Node {
        instances::Node {
            id: id.into(),
            rank: None,
            address: None,
            token: None,
            state: state.into(),
            reason: reason.into(),
            instance_type: "t3.micro".into(),
            image: String::new(),
            subnet_id: String::new(),
            zone: String::new(),
            security_group_ids: Vec::new(),
            key_name: String::new(),
            private_ip: String::new(),
            public_ip: String::new(),
            launch_index: 0,
            spot: true,
            launched: None,
            transitioned_at: None,
            notice: None,
        }
    }

    fn report(rank: usize, state: &str, notice: bool, preempted: bool) -> NodeStatus {
        NodeStatus {
            rank,
            state: state.into(),
            exit_code: None,
            started_at: Some("2026-12-01T10:00:00Z".into()),
            finished_at: None,
            heartbeat: now_secs(),
            notice: notice.then(|| "2026-12-01T10:02:00Z".into()),
            noticed_at: None,
            preempted,
            stopped_for: None,
        }
    }

    /// A node its agent stopped because another failed has no exit code of its own in state: the
    /// failure is the other node's.
    #[test]
    fn a_node_stopped_for_another_has_no_exit_code_of_its_own() {
        let running = [instance("i-0", "running", ""), instance("i-1", "running", "")];
        let mut stopped = report(0, "failed", false, false);
        (stopped.exit_code, stopped.stopped_for) = (Some(143), Some(1));
        let mut failed = report(1, "failed", false, false);
        failed.exit_code = Some(75);
        let state = Value::from_json(&serde_json::json!({ "instance_ids": ["i-0", "i-1"], "status": "running" }));
        let v = derive(&state, &["kiln/jobs/j/spec.env".into()], &[stopped, failed], &running).expect("the job exists");
        assert_eq!((str_attr(&v, "status"), v.get("exit_codes").unwrap().to_json()), (Some("failed"), serde_json::json!([null, 75])));
    }

    /// (status, lost_reason) of a two-node job from its reports and instances.
    fn derived(reports: &[NodeStatus], all: &[instances::Node]) -> (String, Option<String>) {
        let state = Value::from_json(&serde_json::json!({ "instance_ids": ["i-0", "i-1"], "status": "running" }));
        let v = derive(&state, &["kiln/jobs/j/spec.env".into()], reports, all).expect("the job exists");
        (str_attr(&v, "status").unwrap().to_string(), str_attr(&v, "lost_reason").map(str::to_string))
    }

    #[test]
    fn why_a_job_is_lost() {
        let running = [instance("i-0", "running", ""), instance("i-1", "running", "")];
        let both = |a: NodeStatus, b: NodeStatus| [a, b];
        let r = || both(report(0, "running", false, false), report(1, "running", false, false));
        assert_eq!(derived(&r(), &running), ("running".into(), None));
        // A notice alone: the job still runs (it writes its last checkpoint).
        let noticed = both(report(0, "running", false, false), report(1, "running", true, false));
        assert_eq!(derived(&noticed, &running), ("running".into(), None));
        // The agent's final report after the notice; the other node failing meanwhile is its consequence.
        let mut failed = report(0, "failed", false, false);
        failed.exit_code = Some(1);
        let preempted = both(failed, report(1, "lost", true, true));
        assert_eq!(derived(&preempted, &running), ("lost".into(), Some("preemption".into())));
        // Spot took the instance back (terminated or stopped), with or without the agent's word.
        for state in ["terminated", "stopped", "shutting-down"] {
            let all = [instance("i-0", "running", ""), instance("i-1", state, SPOT_TERMINATION)];
            assert_eq!(derived(&r(), &all), ("lost".into(), Some("preemption".into())), "{state}");
        }
        // Gone after a notice the agent could not finish acting on.
        let all = [instance("i-0", "running", ""), instance("i-1", "terminated", "Client.UserInitiatedShutdown")];
        assert_eq!(derived(&noticed, &all), ("lost".into(), Some("preemption".into())));
        // Terminated by hand, or missing: a host failure.
        assert_eq!(derived(&r(), &all), ("lost".into(), Some("host_failure".into())));
        assert_eq!(derived(&r(), &running[..1]), ("lost".into(), Some("host_failure".into())));
        // A heartbeat that stopped.
        let mut stale = report(1, "running", false, false);
        stale.heartbeat = 1;
        assert_eq!(derived(&both(report(0, "running", false, false), stale), &running), ("lost".into(), Some("host_failure".into())));
        // A stopped instance spot did not stop keeps running by EC2's word until its heartbeat stops.
        let stopped = [instance("i-0", "running", ""), instance("i-1", "stopped", "Client.UserInitiatedShutdown")];
        assert_eq!(derived(&r(), &stopped), ("running".into(), None));
        // A failure without a preemption stays one.
        let mut failed = report(0, "failed", false, false);
        failed.exit_code = Some(3);
        assert_eq!(derived(&both(failed, report(1, "running", false, false)), &running), ("failed".into(), None));
    }

    #[test]
    fn a_bad_preempt_signal_is_refused_at_the_attribute_naming_the_accepted_ones() {
        let job = |signal: Value| {
            let mut m = written_before_11().as_map().cloned().unwrap();
            m.insert("preempt_signal".into(), signal);
            Value::Map(m)
        };
        for bad in ["SIGKILL", "USR1", "sigterm", ""] {
            let d = Job.validate(&job(Value::from(bad)));
            assert_eq!(
                d.iter().map(|d| (d.code, d.attribute.as_deref())).collect::<Vec<_>>(),
                [(SIGNAL_ERROR, Some(PREEMPT_SIGNAL))],
                "{bad}"
            );
            let d = d.iter().next().unwrap();
            assert!(d.summary.contains(&format!("\"{bad}\"")), "{}", d.summary);
            let hint = d.hint.as_deref().unwrap_or_default();
            assert!(PREEMPT_SIGNALS.iter().all(|s| hint.contains(s)), "{hint}");
            let d = Spec::parse("job.train", &job(Value::from(bad))).unwrap_err();
            assert_eq!((d.code, d.address.as_deref(), d.attribute.as_deref()), (SIGNAL_ERROR, Some("job.train"), Some(PREEMPT_SIGNAL)));
        }
        for good in ["SIGTERM", "SIGUSR1", "SIGINT"] {
            assert!(Job.validate(&job(Value::from(good))).is_empty(), "{good}");
        }
        assert!(Job.validate(&job(Value::Unknown)).is_empty(), "checked once known");
    }

    #[test]
    fn spec_env_names_the_preempt_signal_for_the_agent() {
        let ips = ["10.0.1.10".to_string(), "10.0.1.11".to_string()];
        let spec = Spec::parse("job.train", &written_before_11()).unwrap().unwrap();
        assert!(spec.env_file("j-1", &ips).contains("\nKILN_PREEMPT_SIGNAL='TERM'\n"), "the agent's default, written out");
        let mut m = written_before_11().as_map().cloned().unwrap();
        m.insert(PREEMPT_SIGNAL.into(), Value::from("SIGUSR1"));
        let spec = Spec::parse("job.train", &Value::Map(m)).unwrap().unwrap();
        let env = spec.env_file("j-1", &ips);
        assert!(env.contains("\nKILN_PREEMPT_SIGNAL='USR1'\n"), "{env}");
        // An in-place update rewrites that one line, which the agents read again on a notice.
        let patched = with_preempt_signal(&env, "INT");
        assert_eq!(patched.lines().filter(|l| l.starts_with("KILN_PREEMPT_SIGNAL=")).collect::<Vec<_>>(), ["KILN_PREEMPT_SIGNAL='INT'"]);
        assert_eq!(patched.replace("KILN_PREEMPT_SIGNAL='INT'\n", ""), env.replace("KILN_PREEMPT_SIGNAL='USR1'\n", ""));
        assert!(with_preempt_signal("export A='1'\n", "TERM").ends_with("export A='1'\nKILN_PREEMPT_SIGNAL='TERM'\n"), "an older spec.env");
    }

    #[test]
    fn changing_the_preempt_signal_is_an_update_in_place() {
        let prior = written_before_11();
        let mut config = prior.as_map().cloned().unwrap();
        config.insert(PREEMPT_SIGNAL.into(), Value::from("SIGUSR1"));
        let config = Value::Map(config);
        let req =
            PlanRequest { address: "job.train", kind: "job", prior: Some(&prior), replacing: None, config: &config, proposed: &config };
        let r = plan(std::path::Path::new("/nonexistent"), &req).unwrap();
        assert!(r.requires_replace.is_empty(), "{:?}", r.requires_replace);
        assert_eq!(r.planned.get(PREEMPT_SIGNAL), Some(&Value::from("SIGUSR1")));
        let attr = &crate::schema::schema().kinds["job"].body.attributes[PREEMPT_SIGNAL];
        assert!(!attr.force_new && attr.default.is_none(), "an old state, without it, plans no change");
    }

    /// A lost job's `finished_at`: when its loss became observable, node by node, the earliest.
    #[test]
    fn a_lost_job_finished_when_its_loss_became_observable() {
        let state = |status: &str, finished: Option<&str>| {
            Value::from_json(&serde_json::json!({
                "instance_ids": ["i-0", "i-1"], "status": status, "heartbeat_timeout": 120, "finished_at": finished,
            }))
        };
        let running = [instance("i-0", "running", ""), instance("i-1", "running", "")];
        let at = |reports: &[NodeStatus], all: &[instances::Node]| {
            let v = derive(&state("running", None), &["kiln/jobs/j/spec.env".into()], reports, all).expect("the job exists");
            (
                str_attr(&v, "status").unwrap().to_string(),
                str_attr(&v, "finished_at").map(str::to_string),
                str_attr(&v, "notice_at").map(str::to_string),
            )
        };
        // The notice, seen while the job writes its last checkpoint: shown, the job not lost yet.
        let mut noticed = report(1, "running", true, false);
        noticed.noticed_at = Some("2026-12-01T10:00:05Z".into());
        let quiet = report(0, "running", false, false);
        assert_eq!(at(&[quiet.clone(), noticed.clone()], &running), ("running".into(), None, Some("2026-12-01T10:00:05Z".into())));
        // Its final report: lost since the agent saw the notice (not when the job stopped).
        let mut preempted = report(1, "lost", true, true);
        preempted.noticed_at = noticed.noticed_at.clone();
        preempted.finished_at = Some("2026-12-01T10:00:40Z".into());
        let t = Some("2026-12-01T10:00:05Z".to_string());
        assert_eq!(at(&[quiet.clone(), preempted.clone()], &running), ("lost".into(), t.clone(), t.clone()));
        // Another node saw its notice first and still writes its last checkpoint: lost from then.
        let mut first = report(0, "running", true, false);
        first.noticed_at = Some("2026-12-01T10:00:01Z".into());
        let first_at = Some("2026-12-01T10:00:01Z".to_string());
        assert_eq!(at(&[first, preempted], &running), ("lost".into(), first_at.clone(), first_at));
        // Gone after the notice, its agent with it: still the notice.
        let gone = [instance("i-0", "running", ""), instance("i-1", "terminated", SPOT_TERMINATION)];
        assert_eq!(at(&[quiet.clone(), noticed.clone()], &gone).1, t);
        // Terminated without a notice: when EC2 says the instance changed state.
        let mut by_hand = instance("i-1", "terminated", "Client.UserInitiatedShutdown");
        by_hand.transitioned_at = Some("2026-12-01T10:01:00Z".into());
        let r = [quiet.clone(), report(1, "running", false, false)];
        assert_eq!(at(&r, &[running[0].clone(), by_hand]).1.as_deref(), Some("2026-12-01T10:01:00Z"));
        // A heartbeat that stopped: lost once it was `heartbeat_timeout` old.
        let mut stale = report(1, "running", false, false);
        stale.heartbeat = 1_796_119_200; // 2026-12-01T10:00:00Z
        assert_eq!(at(&[quiet.clone(), stale], &running).1.as_deref(), Some("2026-12-01T10:02:00Z"));
        // EC2 gives no time (a spot reclaim, the agent gone with it): the refresh that saw it
        // gone, which state keeps once written.
        let before = kiln_provider::util::now();
        let (status, seen, _) = at(&r, &gone);
        assert_eq!(status, "lost");
        let seen = seen.expect("a time");
        assert!(seen >= before && seen <= kiln_provider::util::now(), "{seen}");
        let kept = derive(&state("lost", Some("2026-12-01T10:03:00Z")), &["kiln/jobs/j/spec.env".into()], &r, &gone).unwrap();
        assert_eq!(str_attr(&kept, "finished_at"), Some("2026-12-01T10:03:00Z"));
    }

    #[test]
    fn a_replaced_lost_job_plans_its_reason_unknown() {
        let mut prior = written_before_11();
        if let Value::Map(m) = &mut prior {
            m.insert("status".into(), Value::from("lost"));
            m.insert("lost_reason".into(), Value::from("preemption"));
        }
        let req = PlanRequest { address: "job.train", kind: "job", prior: Some(&prior), replacing: None, config: &prior, proposed: &prior };
        let r = plan(std::path::Path::new("/nonexistent"), &req).unwrap();
        assert!(r.requires_replace.contains(&"status".to_string()));
        assert!(r.planned.get("lost_reason").is_some_and(Value::is_unknown), "{}", r.planned);
    }

    #[test]
    fn gpus_from_accelerators() {
        assert_eq!(gpu_count("A100:8"), 8);
        assert_eq!(gpu_count("A10G"), 1);
        assert_eq!(gpu_count(""), 0);
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn a_sensitive_env_goes_to_the_parameter_not_to_env_sh() {
        let env = Value::Map(
            [("TOKEN".to_string(), Value::from("hunter2-s3cr3t").sensitive()), ("PLAIN".to_string(), Value::from("it's"))].into(),
        );
        let config = Value::Map([("env".to_string(), env)].into());
        assert!(Job.validate(&config).is_empty(), "no warning: the bucket never holds the secret");
        let spec = Spec {
            instance_ids: vec!["i-1".into()],
            gpus_per_node: 0,
            bucket: "b".into(),
            checkpoint_path: String::new(),
            checkpoint_uri: "s3://b".into(),
            setup: String::new(),
            run: "true".into(),
            workdir: None,
            env: vec![("TOKEN".into(), "hunter2-s3cr3t".into(), true), ("PLAIN".into(), "it's".into(), false)],
            stop_grace: 10,
            preempt_signal: None,
            workdir_tar: None,
        };
        assert_eq!(spec.user_env_file(false), "export PLAIN='it'\\''s'\n");
        assert_eq!(spec.user_env_file(true), "export TOKEN='hunter2-s3cr3t'\n");
        let specenv = spec.env_file("j-1", &["10.0.0.1".into()]);
        assert!(specenv.contains("KILN_ENV_PARAMETER='/kiln/jobs/j-1/env'\n"), "{specenv}");
        assert!(!specenv.contains("hunter2"));
        let plain = Spec { env: vec![("PLAIN".into(), "x".into(), false)], ..spec };
        assert!(!plain.env_file("j-1", &["10.0.0.1".into()]).contains("KILN_ENV_PARAMETER"));
    }

    /// A job's state as kiln wrote it before issue 11 (commit 74722dc), after a refresh.
    fn written_before_11() -> Value {
        Value::from_json(&serde_json::json!({
            "cluster": {
                "name": "kiln-train-0a1b2c3d", "nodes": 2, "instance_type": "g5.xlarge", "accelerators": "A10G:1",
                "cpus": null, "memory": null, "spot": false, "disk_gb": 100, "key_name": null,
                "instance_profile": "kiln-agent", "instance_types": ["g5.xlarge"], "gpus_per_node": 1,
                "instance_ids": ["i-0123456789abcdef0", "i-0123456789abcdef1"], "private_ips": ["10.0.1.10", "10.0.1.11"],
            },
            "setup": "pip install -r requirements.txt",
            "run": "python3 train.py",
            "workdir": null,
            "env": { "TRAIN_STEPS": "100" },
            "nodes": 2,
            "stop_grace": 10,
            "heartbeat_timeout": 120,
            "checkpoint": { "bucket": { "name": "kiln-ckpt-4e5f", "uri": "s3://kiln-ckpt-4e5f", "force_destroy": true }, "path": "run-1/" },
            "job_id": "kiln-train-5a6b7c8d",
            "uri": "s3://kiln-ckpt-4e5f/kiln/jobs/kiln-train-5a6b7c8d",
            "instance_ids": ["i-0123456789abcdef0", "i-0123456789abcdef1"],
            "node_ips": ["10.0.1.10", "10.0.1.11"],
            "status": "running",
            "exit_codes": [null, null],
            "started_at": "2026-12-01T10:00:00Z",
            "finished_at": null,
            "restarts": 0,
        }))
    }

    #[test]
    fn a_job_written_before_issue_11_plans_no_change() {
        let prior = written_before_11();
        let body = &crate::schema::schema().kinds["job"].body;
        // The configuration: what the user wrote (computed attributes null), as the engine
        // evaluates it; the proposal: the configuration with the prior's computed values.
        let mut config = prior.as_map().cloned().unwrap();
        for (name, a) in &body.attributes {
            if a.computed {
                config.insert(name.clone(), Value::Null);
            }
        }
        let mut proposed = config.clone();
        for (name, a) in &body.attributes {
            if a.computed && proposed.get(name).is_none_or(Value::is_null) {
                proposed.insert(name.clone(), prior.get(name).cloned().unwrap_or(Value::Null));
            }
        }
        let (config, proposed) = (Value::Map(config), Value::Map(proposed));
        let req =
            PlanRequest { address: "job.train", kind: "job", prior: Some(&prior), replacing: None, config: &config, proposed: &proposed };
        let r = plan(std::path::Path::new("/nonexistent"), &req).unwrap();
        assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
        assert!(r.requires_replace.is_empty(), "{:?}", r.requires_replace);
        // Issue 13's attributes, absent from the old state, plan as null: the engine compares an
        // absent attribute as null, so that is no change.
        let mut planned = r.planned.as_map().cloned().unwrap();
        planned.retain(|k, v| prior.get(k).is_some() || !v.is_null());
        assert_eq!(Value::Map(planned).to_json(), prior.to_json());
    }

    /// The job schema as kiln published it before issue 11 (plus issue 13's `secret_env` and
    /// `workdir_digest`): what decides how a state plans.
    #[test]
    fn the_job_schema_keeps_its_shape_and_is_the_portable_one() {
        let body = &crate::schema::schema().kinds["job"].body;
        let before = [
            "cluster: Any required",
            "env: Map(String) optional force_new",
            "exit_codes: List(Any) computed",
            "finished_at: String computed",
            "heartbeat_timeout: Number optional default=120",
            "instance_ids: List(String) computed",
            "job_id: String computed",
            // Issue 13: optional, no default, updated in place: an old state plans no change.
            "log_retention: String optional",
            // Issue 15: computed, absent from an old state: planned as null, no change.
            "lost_reason: String computed",
            "node_ips: List(String) computed",
            "nodes: Number optional+computed force_new",
            // Issue 15: computed, absent from an old state: planned as null, no change.
            "notice_at: String computed",
            // Issue 15: the portable `on_finish`, optional, updated in place.
            "on_finish: String optional",
            // Issue 15: optional, no default (the agent's SIGTERM), updated in place: an old
            // state plans no change.
            "preempt_signal: String optional",
            "restarts: Number computed",
            "run: String required force_new",
            // Issue 13: added; absent from an old state, they plan no change (see the test above).
            "secret_env: Map(String) optional force_new sensitive",
            "setup: String optional force_new",
            "started_at: String computed",
            "status: String computed",
            "stop_grace: Number optional default=10",
            "uri: String computed",
            "workdir: String optional force_new",
            "workdir_digest: String computed",
            "checkpoint {} Single 1..1 force_new",
            "  bucket: Any required",
            "  path: String optional default=\"\"",
            // Issue 15: the portable `recovery` block, optional, updated in place.
            "recovery {} Single 0..1",
            "  give_up_after: String optional",
            "  max_restarts: Number optional",
            "  on: List(String) optional",
            "  retry_exit_codes: List(Number) optional",
            "  strategy: String optional",
            "  notify {} Single 0..1",
            "    command: String required",
        ];
        assert_eq!(kiln_provider::portable::job::shape(body), before);
        assert_eq!(kiln_provider::portable::job::schema_problems(body), Vec::<String>::new());
    }

    #[test]
    fn spec_env_names_the_checkpoint_uri_for_the_agent() {
        let spec = Spec::parse("job.train", &written_before_11()).unwrap().unwrap();
        let env = spec.env_file("j-1", &["10.0.1.10".into(), "10.0.1.11".into()]);
        assert!(env.contains("export KILN_CHECKPOINT_URI='s3://kiln-ckpt-4e5f/run-1'\n"), "{env}");
        for line in ["export KILN_LOCAL_RANK='0'\n", "export KILN_NUM_TASKS='2'\n", "export KILN_TASK_RANK=\"${KILN_NODE_RANK:-}\"\n"] {
            assert!(env.contains(line), "{line} in {env}");
        }
        // Every variable of the portable environment is there, or set by the agent.
        for name in kiln_provider::portable::job::ENV {
            assert!(env.contains(&format!("export {name}=")) || name == "KILN_NODE_RANK", "{name} in {env}");
        }
        // Agents of instances launched by an earlier kiln pass KILN_CHECKPOINT_DIR on as is:
        // the URI, as before; the agent now replaces it with its local directory.
        assert!(env.contains("export KILN_CHECKPOINT_DIR='s3://kiln-ckpt-4e5f/run-1/'\n"), "{env}");
        let agent = user_data("us-east-1", None);
        assert!(agent.contains("KILN_CHECKPOINT_DIR=\"$0/checkpoint\""), "the job's shell sets the local directory");
    }

    /// EC2 refuses user data over 16 KiB before its base64 (the agent alone is larger, which
    /// moto does not check): it goes gzip-compressed, which cloud-init unpacks before running it.
    #[test]
    fn user_data_fits_ec2s_16_kib_compressed_and_unpacks_to_the_script() {
        use base64::Engine as _;
        use std::io::Read as _;
        let script = user_data("us-east-1", Some("http://127.0.0.1:5000"));
        assert!(script.len() > 16 * 1024, "the test means something while the script is larger: {}", script.len());
        let raw = base64::engine::general_purpose::STANDARD.decode(encode_user_data(&script)).expect("base64");
        assert!(raw.len() <= 16 * 1024, "{} bytes", raw.len());
        let mut unpacked = String::new();
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_string(&mut unpacked).expect("gzip");
        assert_eq!(unpacked, script);
    }

    #[test]
    fn user_data_is_a_shell_script_holding_the_agent() {
        let u = user_data("us-east-1", Some("http://127.0.0.1:5000"));
        assert!(u.starts_with("#!/bin/sh\n"));
        assert!(u.contains("KILN_REGION='us-east-1' KILN_S3_ENDPOINT='http://127.0.0.1:5000' nohup setsid sh"));
        assert!(u.contains("imds meta-data/tags/instance/kiln:job"));
        let status = std::process::Command::new("sh").args(["-n", "-c", &u]).status().expect("sh runs");
        assert!(status.success(), "user data must parse as a shell script");
    }
}
