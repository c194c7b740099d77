//! What a job's configuration asks to launch: how many nodes, which GPUs each node gets (from
//! the cluster object the user passed as `cluster`), where checkpoints go (from the `checkpoint`
//! block's bucket object), the working directory, environment and scripts. Also the environment
//! each node sees.

use std::path::PathBuf;
use std::time::Duration;

use kiln_diag::Diagnostic;
use kiln_provider::portable::job::{file_uri, user_env, BucketStore, Checkpoint, NodeEnv};
use kiln_value::Value;

use crate::util::{error, f64_attr, resolve, set, str_attr, to_u64, u64_attr};
use crate::Ctx;

/// Attributes the user sets; an unknown one means the job cannot be described yet.
const CONFIG: [&str; 7] = ["cluster", "setup", "run", "workdir", "env", "stop_grace", "checkpoint"];

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobSpec {
    pub nodes: u64,
    /// GPU indices of each node.
    pub node_gpus: Vec<Vec<u64>>,
    pub gpus_per_node: u64,
    /// The CPUs of each node ("0-3") when its cluster gives nodes exactly `cpus` (its
    /// `cpu_sets`); empty when the nodes share the machine.
    pub node_cpus: Vec<String>,
    /// Bucket path + checkpoint path; `None` without a `checkpoint` block.
    pub checkpoint_dir: Option<PathBuf>,
    /// KILN_CHECKPOINT_URI: the bucket's `uri` + checkpoint path; `None` without a block.
    pub checkpoint_uri: Option<String>,
    pub workdir: PathBuf,
    pub env: Vec<(String, String)>,
    pub setup: String,
    pub run: String,
    pub stop_grace: Duration,
}

impl JobSpec {
    /// `None` while a configured attribute is unknown.
    pub fn parse(ctx: &Ctx, address: &str, v: &Value) -> Result<Option<JobSpec>, Diagnostic> {
        if let Some(d) = unreachable_checkpoint(v) {
            return Err(d.address(address));
        }
        if CONFIG.iter().any(|k| v.get(k).is_some_and(Value::contains_unknown)) {
            return Ok(None);
        }
        let cluster = set(v, "cluster").filter(|c| c.as_map().is_some_and(|m| m.contains_key("nodes"))).ok_or_else(|| {
            error("E-LOCAL-JOB-CLUSTER", address, format!("{address}: `cluster` must be a cluster object"))
                .hint("write `cluster = cluster.NAME`")
        })?;
        let cluster_nodes = u64_attr(cluster, "nodes").unwrap_or(1);
        let nodes = match set(v, "nodes").filter(|n| !n.is_unknown()) {
            Some(n) => to_u64(n)
                .filter(|n| *n >= 1)
                .ok_or_else(|| error("E-LOCAL-JOB-NODES", address, format!("{address}: `nodes` must be a whole number of at least 1")))?,
            None => cluster_nodes,
        };
        if nodes > cluster_nodes {
            return Err(error("E-LOCAL-JOB-NODES", address, format!("{address} asks for {nodes} nodes, its cluster has {cluster_nodes}"))
                .hint("lower the job's `nodes`, or raise the cluster's"));
        }
        let run = str_attr(v, "run").filter(|r| !r.trim().is_empty()).ok_or_else(|| {
            error("E-LOCAL-JOB-RUN", address, format!("{address}: `run` is empty"))
                .hint("give the command to run, such as run = \"python3 train.py\"")
        })?;
        let gpus_per_node = u64_attr(cluster, "gpus_per_node").unwrap_or(0);
        let checkpoint_dir = checkpoint_dir(ctx, address, v)?;
        let checkpoint_uri = checkpoint_dir.as_ref().map(|dir| {
            let c = Checkpoint::of(v).and_then(|c| c.uri());
            c.unwrap_or_else(|| file_uri(dir.to_string_lossy().trim_end_matches('/')))
        });
        Ok(Some(JobSpec {
            nodes,
            node_gpus: split_gpus(cluster, nodes, gpus_per_node),
            gpus_per_node,
            node_cpus: set(cluster, "cpu_sets")
                .and_then(Value::as_list)
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_str)
                .take(nodes as usize)
                .map(str::to_string)
                .collect(),
            checkpoint_dir,
            checkpoint_uri,
            workdir: str_attr(v, "workdir").map_or_else(|| ctx.working_dir.clone(), |w| resolve(&ctx.working_dir, w)),
            env: user_env(v),
            setup: str_attr(v, "setup").unwrap_or_default().to_string(),
            run: run.to_string(),
            stop_grace: Duration::from_secs_f64(f64_attr(v, "stop_grace").unwrap_or(10.0).max(0.0)),
        }))
    }

    /// Attributes whose change needs new processes although the schema cannot tell: the
    /// nodes and GPUs taken from `cluster`, the directory taken from `checkpoint`.
    pub fn replaced_by(&self, new: &JobSpec) -> Vec<String> {
        let mut out = Vec::new();
        if (self.nodes, &self.node_gpus, self.gpus_per_node, &self.node_cpus)
            != (new.nodes, &new.node_gpus, new.gpus_per_node, &new.node_cpus)
        {
            out.push("cluster".to_string());
        }
        if self.checkpoint_dir != new.checkpoint_dir {
            out.push("checkpoint".to_string());
        }
        out
    }

    /// The environment of node `rank`: the portable job environment (every node on
    /// 127.0.0.1, one task per node), CUDA_VISIBLE_DEVICES when the node has GPUs, unbuffered
    /// Python output, then the user's `env` (which wins).
    pub fn node_env(&self, job_id: &str, rank: u64, port: u16, checkpoint_dir: &std::path::Path) -> Vec<(String, String)> {
        let ips = vec!["127.0.0.1".to_string(); self.nodes as usize];
        let dir = checkpoint_dir.display().to_string();
        let mut env = NodeEnv {
            job_id,
            node_rank: rank,
            node_ips: &ips,
            master_addr: "127.0.0.1",
            master_port: port,
            gpus_per_node: self.gpus_per_node,
            checkpoint_dir: &dir,
            checkpoint_uri: self.checkpoint_uri.as_deref().unwrap_or_default(),
        }
        .vars();
        env.push(("PYTHONUNBUFFERED".to_string(), "1".to_string()));
        if let Some(gpus) = self.node_gpus.get(rank as usize).filter(|g| !g.is_empty()) {
            let ids: Vec<String> = gpus.iter().map(u64::to_string).collect();
            env.push(("CUDA_VISIBLE_DEVICES".to_string(), ids.join(",")));
        }
        env.extend(self.env.iter().cloned());
        env
    }
}

/// The cluster's GPUs dealt out: node R gets the R-th run of `per_node`.
fn split_gpus(cluster: &Value, nodes: u64, per_node: u64) -> Vec<Vec<u64>> {
    let all: Vec<u64> =
        set(cluster, "gpus").and_then(Value::as_list).unwrap_or_default().iter().filter_map(|g| u64_attr(g, "index")).collect();
    (0..nodes).map(|r| all.iter().skip((r * per_node) as usize).take(per_node as usize).copied().collect()).collect()
}

/// A checkpoint bucket this machine's nodes cannot reach (an onprem host's directory, an object
/// store) is refused, even while its values are unknown.
fn unreachable_checkpoint(v: &Value) -> Option<Diagnostic> {
    let c = Checkpoint::of(v).filter(|c| matches!(c.store(), BucketStore::Host { .. } | BucketStore::Object(_)))?;
    Some(c.unreachable(
        "E-LOCAL-JOB-CHECKPOINT",
        "local",
        "use a `local` bucket (`bucket = bucket.NAME` with `provider = local`); to keep checkpoints in another provider's \
         bucket, run the job on that provider",
    ))
}

fn checkpoint_dir(ctx: &Ctx, address: &str, v: &Value) -> Result<Option<PathBuf>, Diagnostic> {
    let Some(c) = set(v, "checkpoint") else { return Ok(None) };
    let bucket = c.get("bucket").and_then(|b| str_attr(b, "path")).ok_or_else(|| {
        error("E-LOCAL-JOB-CHECKPOINT", address, format!("{address}: checkpoint.bucket must be a local bucket (an object with a `path`)"))
            .hint("write `bucket = bucket.NAME` for a bucket of the `local` provider")
    })?;
    let sub = str_attr(c, "path").unwrap_or_default().trim_start_matches('/');
    Ok(Some(resolve(&ctx.working_dir, bucket).join(sub)))
}

/// The checks of [`JobSpec::parse`] that need neither this machine nor values known only after
/// apply, so `kiln validate` makes them too: `cluster` is a cluster object and `run` a command.
pub(crate) fn validate(v: &Value) -> kiln_diag::Diagnostics {
    let mut d = kiln_diag::Diagnostics::new();
    if set(v, "cluster").is_some_and(|c| !c.is_unknown() && !c.as_map().is_some_and(|m| m.contains_key("nodes"))) {
        d.push(
            Diagnostic::error("E-LOCAL-JOB-CLUSTER", "`cluster` must be a cluster object")
                .attribute("cluster")
                .hint("write `cluster = cluster.NAME`"),
        );
    }
    d.extend(unreachable_checkpoint(v));
    d.extend(kiln_provider::portable::secret_env::validate(v));
    d.extend(kiln_provider::portable::job::validate(v));
    if str_attr(v, "run").is_some_and(|r| r.trim().is_empty()) {
        d.push(
            Diagnostic::error("E-LOCAL-JOB-RUN", "`run` is empty")
                .attribute("run")
                .hint("give the command to run, such as run = \"python3 train.py\""),
        );
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_value::Map;

    #[test]
    fn validate_checks_the_cluster_and_run_without_the_machine() {
        assert!(validate(&job(None)).is_empty());
        let mut bad = job(None);
        if let Value::Map(m) = &mut bad {
            m.insert("cluster".into(), Value::from(1i64));
            m.insert("run".into(), Value::from(" "));
        }
        let codes: Vec<&str> = validate(&bad).iter().map(|d| d.code).collect();
        assert_eq!(codes, ["E-LOCAL-JOB-CLUSTER", "E-LOCAL-JOB-RUN"]);
        let mut later = job(None);
        if let Value::Map(m) = &mut later {
            m.insert("cluster".into(), Value::Unknown);
        }
        assert!(validate(&later).is_empty());
    }

    fn ctx() -> Ctx {
        Ctx::new(PathBuf::from("/work"), PathBuf::from("/work/.kiln"))
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Map>())
    }

    fn gpu(i: i64) -> Value {
        obj(&[("index", Value::from(i)), ("name", Value::from("NVIDIA H100 80GB HBM3"))])
    }

    fn job(nodes: Option<i64>) -> Value {
        let cluster =
            obj(&[("nodes", Value::from(2i64)), ("gpus_per_node", Value::from(2i64)), ("gpus", Value::List((0..4).map(gpu).collect()))]);
        let bucket = obj(&[("path", Value::from("/data/ckpt"))]);
        obj(&[
            ("cluster", cluster),
            ("run", Value::from("python3 train.py")),
            ("nodes", nodes.map(Value::from).unwrap_or(Value::Null)),
            ("env", obj(&[("LR", Value::from("0.1"))])),
            ("checkpoint", obj(&[("bucket", bucket), ("path", Value::from("/run-1/"))])),
        ])
    }

    #[test]
    fn gpus_are_dealt_per_node() {
        let s = JobSpec::parse(&ctx(), "job.t", &job(None)).unwrap().unwrap();
        assert_eq!(s.nodes, 2);
        assert_eq!(s.node_gpus, vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(s.checkpoint_dir, Some(PathBuf::from("/data/ckpt/run-1/")));
        assert_eq!(s.workdir, PathBuf::from("/work"));
    }

    #[test]
    fn node_environment() {
        let s = JobSpec::parse(&ctx(), "job.t", &job(None)).unwrap().unwrap();
        let env: Map = s.node_env("t-1234", 1, 29500, std::path::Path::new("/c")).into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        let get = |k: &str| env.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        assert_eq!(get("KILN_NODE_RANK"), "1");
        assert_eq!(get("KILN_NODE_IPS"), "127.0.0.1,127.0.0.1");
        assert_eq!(get("KILN_MASTER_PORT"), "29500");
        assert_eq!(get("CUDA_VISIBLE_DEVICES"), "2,3");
        assert_eq!(get("KILN_NUM_GPUS_PER_NODE"), "2");
        assert_eq!(get("LR"), "0.1");
        // Issue 11: the whole portable environment, one task per node.
        for name in kiln_provider::portable::job::ENV {
            assert!(env.contains_key(name), "no {name} in {env:?}");
        }
        assert_eq!((get("KILN_LOCAL_RANK"), get("KILN_TASK_RANK"), get("KILN_NUM_TASKS")), ("0".into(), "1".into(), "2".into()));
        assert_eq!(get("KILN_CHECKPOINT_DIR"), "/c");
        assert_eq!(get("KILN_CHECKPOINT_URI"), "file:///data/ckpt/run-1", "a bucket without a uri: its directory");
    }

    /// Issue 11: KILN_CHECKPOINT_URI is the bucket's `uri` and the block's `path`; empty without a
    /// checkpoint block.
    #[test]
    fn checkpoint_uri_is_the_buckets_uri_and_path() {
        let mut v = job(None);
        let bucket = obj(&[("path", Value::from("data/ckpt")), ("uri", Value::from("file:///work/data/ckpt"))]);
        if let Value::Map(m) = &mut v {
            m.insert("checkpoint".into(), obj(&[("bucket", bucket), ("path", Value::from("run-1/"))]));
        }
        let s = JobSpec::parse(&ctx(), "job.t", &v).unwrap().unwrap();
        assert_eq!(s.checkpoint_dir, Some(PathBuf::from("/work/data/ckpt/run-1/")));
        let uri = |s: &JobSpec| s.node_env("t-1", 0, 1, std::path::Path::new("/c")).into_iter().find(|(k, _)| k == "KILN_CHECKPOINT_URI");
        assert_eq!(uri(&s).unwrap().1, "file:///work/data/ckpt/run-1");
        if let Value::Map(m) = &mut v {
            m.insert("checkpoint".into(), Value::Null);
        }
        let none = JobSpec::parse(&ctx(), "job.t", &v).unwrap().unwrap();
        assert_eq!(uri(&none).unwrap().1, "");
    }

    /// Issue 11: a checkpoint bucket this machine's nodes cannot reach is refused when the job is
    /// planned, at the job's address, even while the bucket's values are unknown: an onprem
    /// host's directory (the path would have been taken on this machine) or an S3 bucket.
    #[test]
    fn checkpoint_buckets_the_nodes_cannot_reach_are_refused() {
        let with = |bucket: Value| {
            let mut v = job(None);
            if let Value::Map(m) = &mut v {
                m.insert("checkpoint".into(), obj(&[("bucket", bucket), ("path", Value::from(""))]));
            }
            JobSpec::parse(&ctx(), "job.t", &v)
        };
        let onprem = obj(&[
            ("host", Value::from("h1")),
            ("path", Value::from("/srv/ckpt")),
            ("shared", Value::from(false)),
            ("uri", Value::from("sftp://10.0.0.1/srv/ckpt")),
        ]);
        let s3 = obj(&[("name", Value::from("b")), ("uri", Value::from("s3://b")), ("arn", Value::from("arn:aws:s3:::b"))]);
        let s3_planned = obj(&[("name", Value::Unknown), ("uri", Value::Unknown), ("arn", Value::Unknown)]);
        for (what, bucket) in [("onprem", onprem), ("s3", s3), ("s3 being created", s3_planned)] {
            let mut v = job(None);
            if let Value::Map(m) = &mut v {
                m.insert("checkpoint".into(), obj(&[("bucket", bucket.clone()), ("path", Value::from(""))]));
            }
            let codes: Vec<&str> = validate(&v).iter().map(|d| d.code).collect();
            assert_eq!(codes, ["E-LOCAL-JOB-CHECKPOINT"], "kiln validate says so too: {what}");
            let d = with(bucket).expect_err(what);
            assert_eq!((d.code, d.address.as_deref()), ("E-LOCAL-JOB-CHECKPOINT", Some("job.t")), "{what}");
            assert!(d.hint.as_deref().is_some_and(|h| h.contains("`local` bucket")), "{what}: {d:?}");
        }
        assert!(with(obj(&[("path", Value::from("/d")), ("uri", Value::from("file:///d"))])).unwrap().is_some());
        assert_eq!(with(obj(&[("path", Value::Unknown), ("uri", Value::Unknown)])).unwrap(), None, "a local bucket being created");
    }

    #[test]
    fn more_nodes_than_the_cluster_fails() {
        let d = JobSpec::parse(&ctx(), "job.t", &job(Some(3))).unwrap_err();
        assert_eq!(d.summary, "job.t asks for 3 nodes, its cluster has 2");
    }

    #[test]
    fn fewer_nodes_change_the_launch() {
        let two = JobSpec::parse(&ctx(), "job.t", &job(None)).unwrap().unwrap();
        let one = JobSpec::parse(&ctx(), "job.t", &job(Some(1))).unwrap().unwrap();
        assert_eq!(two.replaced_by(&one), vec!["cluster".to_string()]);
        assert!(two.replaced_by(&two).is_empty());
    }

    #[test]
    fn unknown_cluster_is_not_described_yet() {
        let v = obj(&[("cluster", Value::Unknown), ("run", Value::from("x"))]);
        assert_eq!(JobSpec::parse(&ctx(), "job.t", &v).unwrap(), None);
    }
}
