//! What a job's configuration asks Slurm for: the partition (and reservation, account, QoS)
//! from its `cluster` object, nodes, tasks, GPUs, CPUs, memory, time limit and requeueing as
//! sbatch options, and the batch script that sets the KILN_* environment from the SLURM_* one
//! and runs `setup` once per node, then `run` in every task, with srun.

use kiln_diag::Diagnostic;
use kiln_provider::portable::job::{file_uri, join_dir, user_env, BucketStore, Checkpoint};
use kiln_provider::portable::request::exact_cpus_per_node;
use kiln_value::Value;

use crate::shell::{exports, quote};
use crate::util::{bool_attr, set, str_attr, str_list, to_u64, u64_attr};

/// Attributes the user sets; an unknown one means the job cannot be described yet.
const CONFIG: [&str; 14] = [
    "cluster",
    "setup",
    "run",
    "workdir",
    "env",
    "nodes",
    "tasks",
    "gpus_per_node",
    "cpus_per_task",
    "memory",
    "time_limit",
    "requeue",
    "sbatch_args",
    "checkpoint",
];

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobSpec {
    pub partition: String,
    pub reservation: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub nodes: u64,
    pub tasks: u64,
    pub gpus_per_node: u64,
    /// GRES type of the GPUs (from the cluster's `accelerators`), if any.
    pub gpu_type: Option<String>,
    pub cpus_per_task: Option<u64>,
    /// The CPUs each node gets exactly: the cluster's `cpus_per_node` when its `cpus` is exact
    /// (`"8"`); `None` with `"8+"`, without `cpus`, or for a cluster written before issue 11.
    pub node_cpus: Option<u64>,
    pub memory: Option<String>,
    pub time_limit: Option<String>,
    pub requeue: bool,
    pub sbatch_args: Vec<String>,
    pub setup: String,
    pub run: String,
    /// As written; relative to the working directory (or login home).
    pub workdir: Option<String>,
    pub env: Vec<(String, String)>,
    /// Bucket path + checkpoint path; `None` without a `checkpoint` block.
    pub checkpoint_dir: Option<String>,
    /// KILN_CHECKPOINT_URI: the bucket's `uri` + checkpoint path; `None` without a block, or
    /// for a bucket without a `uri` (then its directory's `file://` URI).
    pub checkpoint_uri: Option<String>,
}

fn bad(address: &str, what: String, hint: &str) -> Diagnostic {
    crate::util::problem("E-SLURM-JOB", address, what).hint(hint.to_string())
}

/// A whole number of at least 1, or `None` when not set.
fn count(address: &str, v: &Value, name: &str) -> Result<Option<u64>, Diagnostic> {
    match set(v, name) {
        None => Ok(None),
        Some(n) => to_u64(n)
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| bad(address, format!("`{name}` must be a whole number of at least 1, got {n}"), "write a number such as 2")),
    }
}

/// `16G`, `512M`, `1T`, `4096` (MB): what sbatch --mem takes.
fn valid_memory(s: &str) -> bool {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) && s.len() - digits.len() <= 1
}

/// `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`, `UNLIMITED`: what sbatch --time takes.
fn valid_time(s: &str) -> bool {
    if s.eq_ignore_ascii_case("unlimited") || s.eq_ignore_ascii_case("infinite") {
        return true;
    }
    let (days, rest) = s.split_once('-').map_or((None, s), |(d, r)| (Some(d), r));
    let num = |x: &str| !x.is_empty() && x.len() <= 4 && x.chars().all(|c| c.is_ascii_digit());
    let parts: Vec<&str> = rest.split(':').collect();
    days.is_none_or(num) && parts.len() <= 3 && parts.iter().all(|p| num(p))
}

impl JobSpec {
    /// `None` while a configured attribute is unknown.
    pub fn parse(address: &str, v: &Value) -> Result<Option<JobSpec>, Diagnostic> {
        if let Some(c) = Checkpoint::of(v).filter(|c| matches!(c.store(), BucketStore::Object(_))) {
            let hint = "use a bucket on a file system the compute nodes share (a `local` or shared `onprem` bucket); to keep \
                        checkpoints in another provider's bucket, run the job on that provider";
            let d = c.unreachable("E-SLURM-JOB-CHECKPOINT", "slurm", hint);
            return Err(if address.is_empty() { d } else { d.address(address) });
        }
        if CONFIG.iter().any(|k| v.get(k).is_some_and(Value::contains_unknown)) {
            return Ok(None);
        }
        let cluster = set(v, "cluster").filter(|c| c.get("partition").is_some()).ok_or_else(|| {
            bad(
                address,
                "`cluster` must be a cluster of provider `slurm`".into(),
                "write `cluster = cluster.NAME` for a cluster with `provider = slurm`",
            )
        })?;
        let Some(partition) = str_attr(cluster, "partition") else { return Ok(None) };
        let nodes = count(address, v, "nodes")?.unwrap_or_else(|| u64_attr(cluster, "nodes").unwrap_or(1).max(1));
        let tasks = count(address, v, "tasks")?.unwrap_or(nodes);
        if tasks < nodes {
            return Err(bad(
                address,
                format!("{tasks} tasks cannot fill {nodes} nodes"),
                "give at least one task per node: raise `tasks` or lower `nodes`",
            ));
        }
        let gpus_per_node = match set(v, "gpus_per_node") {
            None => u64_attr(cluster, "gpus_per_node").unwrap_or(0),
            Some(n) => to_u64(n)
                .ok_or_else(|| bad(address, format!("`gpus_per_node` must be a whole number, got {n}"), "write a number such as 8"))?,
        };
        let memory = str_attr(v, "memory").map(str::trim).map(str::to_string);
        if let Some(m) = memory.as_deref().filter(|m| !valid_memory(m)) {
            return Err(bad(
                address,
                format!("`memory` `{m}` is not a size sbatch takes"),
                "write a size per node such as \"16G\" or \"512M\"",
            ));
        }
        let time_limit = str_attr(v, "time_limit").map(str::trim).map(str::to_string);
        if let Some(t) = time_limit.as_deref().filter(|t| !valid_time(t)) {
            return Err(bad(
                address,
                format!("`time_limit` `{t}` is not a time sbatch takes"),
                "write \"30\" (minutes), \"2:00:00\" or \"1-00:00:00\"",
            ));
        }
        let node_cpus = exact_cpus_per_node(cluster);
        let cpus_per_task = count(address, v, "cpus_per_task")?;
        if let Some(n) = node_cpus.filter(|n| cpus_per_task.is_none() && split_cpus(*n, nodes, tasks).is_none()) {
            return Err(bad(
                address,
                format!("its cluster gives each node exactly {n} CPUs, which {tasks} tasks on {nodes} nodes cannot share evenly"),
                "give every node the same number of tasks, a divisor of the node's CPUs, or set `cpus_per_task`",
            ));
        }
        let run = str_attr(v, "run")
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| bad(address, "`run` is empty".into(), "give the command every task runs, such as run = \"python3 train.py\""))?;
        Ok(Some(JobSpec {
            partition: partition.to_string(),
            reservation: str_attr(cluster, "reservation").map(str::to_string),
            account: str_attr(cluster, "account").map(str::to_string),
            qos: str_attr(cluster, "qos").map(str::to_string),
            nodes,
            tasks,
            gpus_per_node,
            gpu_type: str_attr(cluster, "gpu_type").map(str::to_string),
            cpus_per_task,
            node_cpus,
            memory,
            time_limit,
            requeue: bool_attr(v, "requeue").unwrap_or(false),
            sbatch_args: str_list(v, "sbatch_args"),
            setup: str_attr(v, "setup").unwrap_or_default().to_string(),
            run: run.to_string(),
            workdir: str_attr(v, "workdir").map(str::to_string),
            env: user_env(v),
            checkpoint_dir: checkpoint_dir(address, v)?,
            checkpoint_uri: Checkpoint::of(v).and_then(|c| c.uri()),
        }))
    }

    /// Attributes whose change needs a new job although the schema cannot tell: what the job
    /// takes from its `cluster` and `checkpoint` objects.
    pub fn replaced_by(&self, new: &JobSpec) -> Vec<String> {
        let mut out = Vec::new();
        let from_cluster = |s: &JobSpec| {
            let c = (s.partition.clone(), s.reservation.clone(), s.account.clone(), s.qos.clone());
            (c, s.nodes, s.gpus_per_node, s.gpu_type.clone(), s.node_cpus)
        };
        if from_cluster(self) != from_cluster(new) {
            out.push("cluster".to_string());
        }
        if self.checkpoint_dir != new.checkpoint_dir {
            out.push("checkpoint".to_string());
        }
        out
    }

    /// sbatch's options, before the script path.
    pub fn sbatch_args(&self, name: &str, output: &str, workdir: &str) -> Vec<String> {
        let mut a = vec![
            "--parsable".to_string(),
            format!("--job-name={name}"),
            format!("--output={output}"),
            "--open-mode=append".to_string(),
            format!("--chdir={workdir}"),
            format!("--partition={}", self.partition),
        ];
        let opt = |flag: &str, v: &Option<String>| v.as_ref().map(|v| format!("--{flag}={v}"));
        a.extend(opt("reservation", &self.reservation));
        a.extend(opt("account", &self.account));
        a.extend(opt("qos", &self.qos));
        a.push(format!("--nodes={}", self.nodes));
        a.push(format!("--ntasks={}", self.tasks));
        if self.gpus_per_node > 0 {
            match &self.gpu_type {
                Some(t) => a.push(format!("--gpus-per-node={t}:{}", self.gpus_per_node)),
                None => a.push(format!("--gpus-per-node={}", self.gpus_per_node)),
            }
        }
        match (self.cpus_per_task, self.node_cpus.and_then(|n| split_cpus(n, self.nodes, self.tasks))) {
            (Some(c), _) => a.push(format!("--cpus-per-task={c}")),
            // Exactly the cluster's CPUs on every node: its tasks share them evenly.
            (None, Some((per_node, per_task))) => {
                if self.tasks > self.nodes {
                    a.push(format!("--ntasks-per-node={per_node}"));
                }
                a.push(format!("--cpus-per-task={per_task}"));
            }
            (None, None) => {}
        }
        a.extend(opt("mem", &self.memory));
        a.extend(opt("time", &self.time_limit));
        a.push(if self.requeue { "--requeue" } else { "--no-requeue" }.to_string());
        a.extend(self.sbatch_args.iter().cloned());
        a
    }

    /// The batch script: runs on the job's first node, sets the KILN_* environment, runs
    /// `setup` once per node, then `run` in every task (each with its node and task rank).
    pub fn batch_script(&self, address: &str, job_dir: &str, checkpoint_dir: &str) -> String {
        let mut s = format!(
            r#"#!/bin/bash
# Written by kiln for {address}: runs on the job's first node.
{indexer}# The output file's time index (`kiln logs --since`), kept while the job runs.
__kiln_out={out}
kiln_log_index "$__kiln_out" "$__kiln_out.idx" & __kiln_ix=$!
trap 'kill $__kiln_ix 2>/dev/null; wait $__kiln_ix 2>/dev/null; kiln_log_sample "$__kiln_out" "$__kiln_out.idx"' EXIT
export KILN_JOB_ID="$SLURM_JOB_ID"
export KILN_NUM_NODES="${{SLURM_JOB_NUM_NODES:-${{SLURM_NNODES:-1}}}}"
export KILN_NUM_TASKS="${{SLURM_NTASKS:-1}}"
__kiln_ips=""
for __kiln_h in $(scontrol show hostnames "$SLURM_JOB_NODELIST"); do
  __kiln_a=$(scontrol show node -o "$__kiln_h" 2>/dev/null | tr ' ' '\n' | sed -n 's/^NodeAddr=//p' | head -n1)
  [ -n "$__kiln_a" ] || __kiln_a=$(getent hosts "$__kiln_h" | awk '{{print $1; exit}}')
  __kiln_ips="${{__kiln_ips:+$__kiln_ips,}}${{__kiln_a:-$__kiln_h}}"
done
export KILN_NODE_IPS="$__kiln_ips"
export KILN_MASTER_ADDR="${{__kiln_ips%%,*}}"
# A port free on this (the first) node, the same for every task.
__kiln_port=$((20000 + SLURM_JOB_ID % 20000))
while (exec 3<>"/dev/tcp/127.0.0.1/$__kiln_port") 2>/dev/null; do __kiln_port=$((__kiln_port + 1)); done
export KILN_MASTER_PORT="$__kiln_port"
export KILN_NUM_GPUS_PER_NODE="${{SLURM_GPUS_ON_NODE:-{gpus}}}"
export KILN_CHECKPOINT_DIR={ckpt}
export KILN_CHECKPOINT_URI={uri}
export PYTHONUNBUFFERED=1
mkdir -p "$KILN_CHECKPOINT_DIR"
unset __kiln_ips __kiln_h __kiln_a __kiln_port
"#,
            indexer = kiln_provider::log_indexer!(),
            out = quote(&format!("{job_dir}/output.log")),
            gpus = self.gpus_per_node,
            ckpt = quote(checkpoint_dir),
            uri = quote(&match (&self.checkpoint_uri, &self.checkpoint_dir) {
                (Some(u), _) => u.clone(),
                (None, Some(_)) => file_uri(checkpoint_dir),
                (None, None) => String::new(),
            }),
        );
        s += &exports(&self.env);
        // The job's `secret_env`: a 0600 file beside this script, written at submission.
        let secrets = quote(&format!("{job_dir}/{}", kiln_provider::portable::secret_env::FILE));
        s += &format!("if [ -f {secrets} ]; then . {secrets} || exit 113; fi\n");
        let task =
            r#"export KILN_NODE_RANK="$SLURM_NODEID" KILN_TASK_RANK="$SLURM_PROCID" KILN_LOCAL_RANK="$SLURM_LOCALID"; exec bash "$0""#;
        s += &format!("__kiln_task={}\n", quote(task));
        s += "__kiln_cpus=${SLURM_CPUS_PER_TASK:+--cpus-per-task=$SLURM_CPUS_PER_TASK}\n";
        if !self.setup.trim().is_empty() {
            s += &format!(
                "srun $__kiln_cpus --nodes=\"$KILN_NUM_NODES\" --ntasks=\"$KILN_NUM_NODES\" --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c \"$__kiln_task\" {} || exit $?\n",
                quote(&format!("{job_dir}/setup.sh"))
            );
        }
        s += &format!("srun $__kiln_cpus --kill-on-bad-exit=1 bash -c \"$__kiln_task\" {}\n", quote(&format!("{job_dir}/run.sh")));
        s
    }
}

/// How `tasks` on `nodes` nodes share exactly `cpus` CPUs per node: (tasks per node, CPUs per
/// task); `None` when they cannot evenly.
fn split_cpus(cpus: u64, nodes: u64, tasks: u64) -> Option<(u64, u64)> {
    let per_node = (nodes > 0 && tasks.is_multiple_of(nodes)).then(|| tasks / nodes)?;
    (per_node > 0 && cpus.is_multiple_of(per_node)).then(|| (per_node, cpus / per_node))
}

fn checkpoint_dir(address: &str, v: &Value) -> Result<Option<String>, Diagnostic> {
    let Some(c) = set(v, "checkpoint") else { return Ok(None) };
    let bucket = c.get("bucket").and_then(|b| str_attr(b, "path")).ok_or_else(|| {
        bad(
            address,
            "checkpoint.bucket must be a bucket with a `path` the compute nodes can reach".into(),
            "write `bucket = bucket.NAME` for a bucket on a shared file system (a `local` or `onprem` bucket)",
        )
    })?;
    Ok(Some(join_dir(bucket, str_attr(c, "path").unwrap_or_default())))
}

/// A bucket the compute nodes see only through a shared file system: an onprem host's own
/// directory, or, when Slurm is reached over SSH, a directory on the machine running kiln.
pub(crate) fn checkpoint_warning(address: &str, v: &Value, remote: bool) -> Option<Diagnostic> {
    let where_ = match Checkpoint::of(v)?.store() {
        BucketStore::Local if remote => "a directory on the machine running kiln, not on the login node".to_string(),
        BucketStore::Host { host: Some(h), shared: false } => format!("a directory on host `{h}`"),
        _ => return None,
    };
    Some(
        kiln_diag::Diagnostic::warning(
            "W-SLURM-CHECKPOINT",
            format!("{address}: checkpoint.bucket is {where_}; the compute nodes write to that path on the cluster's file system"),
        )
        .address(address)
        .attribute("checkpoint")
        .hint("use a bucket whose `path` is on a file system the compute nodes share"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(j: serde_json::Value) -> Value {
        Value::from_json(&j)
    }

    fn cluster() -> serde_json::Value {
        serde_json::json!({ "partition": "gpu", "account": "ml", "nodes": 2, "gpus_per_node": 8, "gpu_type": "a100", "reservation": null })
    }

    #[test]
    fn options_from_job_and_cluster() {
        let s = JobSpec::parse(
            "job.t",
            &v(serde_json::json!({ "cluster": cluster(), "run": "python3 train.py", "tasks": 16, "cpus_per_task": 4,
                "memory": "64G", "time_limit": "1-00:00:00", "requeue": true, "sbatch_args": ["--constraint=ib"] })),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.nodes, 2);
        assert_eq!(
            s.sbatch_args("kiln-t-1", "/r/jobs/t-1/output.log", "/w"),
            [
                "--parsable",
                "--job-name=kiln-t-1",
                "--output=/r/jobs/t-1/output.log",
                "--open-mode=append",
                "--chdir=/w",
                "--partition=gpu",
                "--account=ml",
                "--nodes=2",
                "--ntasks=16",
                "--gpus-per-node=a100:8",
                "--cpus-per-task=4",
                "--mem=64G",
                "--time=1-00:00:00",
                "--requeue",
                "--constraint=ib"
            ]
        );
    }

    /// Issue 11: a cluster with an exact `cpus` gives each node exactly `cpus_per_node` CPUs:
    /// one task per node takes them all, more tasks share them evenly; the job's own
    /// `cpus_per_task` wins; a cluster written before (no `cpus_per_node`) asks for nothing.
    #[test]
    fn exact_cpus_per_node_from_the_cluster() {
        let exact = |job: serde_json::Value, cpus: serde_json::Value| {
            let mut c = cluster();
            c.as_object_mut().unwrap().extend(cpus.as_object().unwrap().clone());
            let mut j = serde_json::json!({ "cluster": c, "run": "x" });
            j.as_object_mut().unwrap().extend(job.as_object().unwrap().clone());
            JobSpec::parse("job.t", &v(j)).map(|s| {
                let s = s.unwrap();
                s.sbatch_args("n", "o", "w").into_iter().filter(|a| a.contains("cpus") || a.contains("per-node=")).collect::<Vec<_>>()
            })
        };
        let eight = serde_json::json!({ "cpus": "8", "cpus_per_node": 8 });
        assert_eq!(exact(serde_json::json!({}), eight.clone()).unwrap(), ["--gpus-per-node=a100:8", "--cpus-per-task=8"]);
        assert_eq!(
            exact(serde_json::json!({ "tasks": 8 }), eight.clone()).unwrap(),
            ["--gpus-per-node=a100:8", "--ntasks-per-node=4", "--cpus-per-task=2"]
        );
        assert_eq!(
            exact(serde_json::json!({ "cpus_per_task": 3 }), eight.clone()).unwrap(),
            ["--gpus-per-node=a100:8", "--cpus-per-task=3"]
        );
        let e = exact(serde_json::json!({ "tasks": 3 }), eight.clone()).unwrap_err();
        assert!(e.summary.contains("exactly 8 CPUs"), "{}", e.summary);
        assert_eq!(
            exact(serde_json::json!({}), serde_json::json!({ "cpus": "8+", "cpus_per_node": 64 })).unwrap(),
            ["--gpus-per-node=a100:8"]
        );
        assert_eq!(exact(serde_json::json!({}), serde_json::json!({ "cpus": "8" })).unwrap(), ["--gpus-per-node=a100:8"]);
        let spec = |c: serde_json::Value| {
            let mut cl = cluster();
            cl.as_object_mut().unwrap().extend(c.as_object().unwrap().clone());
            JobSpec::parse("job.t", &v(serde_json::json!({ "cluster": cl, "run": "x" }))).unwrap().unwrap()
        };
        let four = spec(serde_json::json!({ "cpus": "4", "cpus_per_node": 4 }));
        assert_eq!(spec(eight).replaced_by(&four), ["cluster"], "a changed count replaces the job");
    }

    #[test]
    fn batch_script_sets_the_environment() {
        let s = JobSpec::parse(
            "job.t",
            &v(serde_json::json!({ "cluster": { "partition": "debug" }, "run": "x", "setup": "pip install -r req.txt", "env": { "LR": "0.1" } })),
        )
        .unwrap()
        .unwrap();
        let b = s.batch_script("job.t", "/r/jobs/t-1", "/ck");
        assert!(b.contains("export KILN_CHECKPOINT_DIR='/ck'\n"), "{b}");
        assert!(b.contains("export KILN_NUM_GPUS_PER_NODE=\"${SLURM_GPUS_ON_NODE:-0}\"\n"), "{b}");
        assert!(b.contains("export LR='0.1'\n"), "{b}");
        assert!(b.contains("--ntasks-per-node=1 --kill-on-bad-exit=1 bash -c \"$__kiln_task\" '/r/jobs/t-1/setup.sh' || exit $?\n"), "{b}");
        assert!(b.ends_with("srun $__kiln_cpus --kill-on-bad-exit=1 bash -c \"$__kiln_task\" '/r/jobs/t-1/run.sh'\n"), "{b}");
        let out = std::process::Command::new("bash").arg("-n").arg("-c").arg(&b).output().unwrap();
        assert!(out.status.success(), "not valid bash: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Issue 11: the batch script sets the whole portable environment (the task variables from
    /// SLURM_*), and KILN_CHECKPOINT_URI is the bucket's `uri` and the block's `path`.
    #[test]
    fn batch_script_sets_every_portable_variable() {
        let bucket = serde_json::json!({ "name": "ckpt", "path": "/srv/ckpt", "uri": "file:///srv/ckpt" });
        let s = JobSpec::parse(
            "job.t",
            &v(serde_json::json!({ "cluster": cluster(), "run": "x", "checkpoint": { "bucket": bucket, "path": "run-1/" } })),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.checkpoint_dir.as_deref(), Some("/srv/ckpt/run-1"));
        let b = s.batch_script("job.t", "/r/jobs/t-1", "/srv/ckpt/run-1");
        for name in kiln_provider::portable::job::ENV {
            assert!(b.contains(&format!("export {name}=")) || b.contains(&format!(" {name}=")), "{name} is not set: {b}");
        }
        assert!(b.contains("export KILN_CHECKPOINT_URI='file:///srv/ckpt/run-1'\n"), "{b}");
        let none = JobSpec::parse("job.t", &v(serde_json::json!({ "cluster": cluster(), "run": "x" }))).unwrap().unwrap();
        assert!(none.batch_script("job.t", "/r/jobs/t-1", "/r/jobs/t-1/checkpoints").contains("export KILN_CHECKPOINT_URI=''\n"));
        let bare = serde_json::json!({ "path": "ckpt" });
        let s = JobSpec::parse("job.t", &v(serde_json::json!({ "cluster": cluster(), "run": "x", "checkpoint": { "bucket": bare } })))
            .unwrap()
            .unwrap();
        let b = s.batch_script("job.t", "/r/jobs/t-1", "/home/u/ckpt");
        assert!(b.contains("export KILN_CHECKPOINT_URI='file:///home/u/ckpt'\n"), "a bucket without a uri: its directory: {b}");
    }

    /// Issue 11: an object store the compute nodes have no credentials for is refused (at
    /// validate too, where the engine adds the address), even while being created; a bucket the
    /// nodes see only through a shared file system gets a warning.
    #[test]
    fn checkpoint_buckets_the_nodes_cannot_reach() {
        let with = |bucket: Value| {
            let mut m = v(serde_json::json!({ "cluster": cluster(), "run": "x" })).as_map().unwrap().clone();
            m.insert("checkpoint".into(), Value::Map([("bucket".to_string(), bucket), ("path".to_string(), Value::from(""))].into()));
            Value::Map(m)
        };
        let s3 = v(serde_json::json!({ "uri": "s3://b", "arn": "arn:aws:s3:::b" }));
        let creating = Value::Map([("arn".to_string(), Value::Unknown), ("uri".to_string(), Value::Unknown)].into());
        for bucket in [s3, creating] {
            let d = JobSpec::parse("job.t", &with(bucket.clone())).unwrap_err();
            assert_eq!((d.code, d.address.as_deref()), ("E-SLURM-JOB-CHECKPOINT", Some("job.t")), "{bucket}");
            assert!(d.hint.as_deref().is_some_and(|h| h.contains("file system the compute nodes share")), "{d:?}");
            assert_eq!(JobSpec::parse("", &with(bucket)).unwrap_err().address, None);
        }
        let local = v(serde_json::json!({ "name": "b", "path": "/srv/b", "uri": "file:///srv/b" }));
        assert!(checkpoint_warning("job.t", &with(local.clone()), false).is_none(), "Slurm on this machine");
        let w = checkpoint_warning("job.t", &with(local), true).expect("over SSH, a directory on the machine running kiln");
        assert_eq!((w.code, w.is_error(), w.address.as_deref()), ("W-SLURM-CHECKPOINT", false, Some("job.t")));
        let on_host = v(serde_json::json!({ "host": "h1", "path": "/srv/b", "shared": false, "uri": "sftp://h1/srv/b" }));
        assert!(checkpoint_warning("job.t", &with(on_host), false).is_some_and(|w| w.summary.contains("`h1`")));
        let shared = v(serde_json::json!({ "host": "h1", "path": "/srv/b", "shared": true, "uri": "sftp://h1/srv/b" }));
        assert!(checkpoint_warning("job.t", &with(shared), true).is_none());
    }

    #[test]
    fn bad_values_are_named() {
        let parse = |j: serde_json::Value| JobSpec::parse("job.t", &v(j)).unwrap_err().summary;
        assert_eq!(
            parse(serde_json::json!({ "cluster": { "nodes": 1 }, "run": "x" })),
            "job.t: `cluster` must be a cluster of provider `slurm`"
        );
        assert_eq!(parse(serde_json::json!({ "cluster": cluster(), "run": "x", "tasks": 1 })), "job.t: 1 tasks cannot fill 2 nodes");
        assert_eq!(
            parse(serde_json::json!({ "cluster": cluster(), "run": "x", "memory": "lots" })),
            "job.t: `memory` `lots` is not a size sbatch takes"
        );
        assert_eq!(
            parse(serde_json::json!({ "cluster": cluster(), "run": "x", "time_limit": "1h" })),
            "job.t: `time_limit` `1h` is not a time sbatch takes"
        );
        assert_eq!(parse(serde_json::json!({ "cluster": cluster(), "run": " " })), "job.t: `run` is empty");
    }

    #[test]
    fn validation_leaves_the_address_to_the_engine() {
        let e = JobSpec::parse("", &v(serde_json::json!({ "cluster": cluster(), "run": "x", "tasks": 1 }))).unwrap_err();
        assert_eq!((e.summary.as_str(), e.address.as_deref()), ("1 tasks cannot fill 2 nodes", None));
    }

    #[test]
    fn times_and_sizes() {
        for t in ["30", "30:00", "2:00:00", "1-00", "1-00:00:00", "UNLIMITED"] {
            assert!(valid_time(t), "{t}");
        }
        for t in ["", "1h", "1-", "a:b", "1:2:3:4"] {
            assert!(!valid_time(t), "{t}");
        }
        assert!(valid_memory("16G") && valid_memory("4096") && !valid_memory("G") && !valid_memory("16GB"));
    }

    #[test]
    fn cluster_changes_replace() {
        let a = JobSpec::parse("job.t", &v(serde_json::json!({ "cluster": cluster(), "run": "x" }))).unwrap().unwrap();
        let mut c = cluster();
        c["partition"] = "other".into();
        let b = JobSpec::parse("job.t", &v(serde_json::json!({ "cluster": c, "run": "x" }))).unwrap().unwrap();
        assert_eq!(a.replaced_by(&b), ["cluster"]);
        assert!(a.replaced_by(&a).is_empty());
    }
}
