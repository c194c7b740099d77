//! What a job's configuration asks to launch: its nodes (the first `nodes` hosts of the
//! cluster's allocation, with their GPUs), where checkpoints go (the `checkpoint` block's
//! bucket), the working directory, environment and scripts; and the environment each node sees.

use kiln_diag::Diagnostic;
use kiln_provider::portable::job::{file_uri, join_dir, BucketStore, Checkpoint as Block, NodeEnv};
use kiln_provider::portable::request::exact_cpus_per_node;
use kiln_value::Value;

use crate::alloc::{placements, Placement};
use crate::util::{any_unknown, bool_attr, error, f64_attr, set, str_attr, str_map, to_u64};

/// Attributes the user sets; an unknown one means the job cannot be described yet.
const CONFIG: [&str; 7] = ["cluster", "setup", "run", "workdir", "env", "stop_grace", "checkpoint"];

/// Where checkpoints go.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Checkpoint {
    /// Bucket path joined with the checkpoint path.
    pub dir: String,
    /// The host the bucket lives on, unless it is shared.
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobSpec {
    /// One per node, by rank.
    pub nodes: Vec<Placement>,
    pub gpus_per_node: u64,
    pub checkpoint: Option<Checkpoint>,
    /// KILN_CHECKPOINT_URI: the bucket's `uri` + checkpoint path; `None` without a block.
    pub checkpoint_uri: Option<String>,
    /// Remote working directory; `None` runs in the job's directory.
    pub workdir: Option<String>,
    pub env: Vec<(String, String)>,
    pub setup: String,
    pub run: String,
    pub stop_grace: u64,
    /// The cluster's `cluster_id`, recorded with each node so that a host the cluster left while
    /// it did not answer can find the nodes to stop when it comes back.
    pub cluster_id: String,
    /// The CPUs each node runs on exactly: the cluster's `cpus_per_node` when its `cpus` is
    /// exact (`"4"`); `None`: the node uses its whole host (`"4+"`, no `cpus`, or a cluster
    /// written before issue 11).
    pub cpus: Option<u64>,
}

fn nodes(address: &str, v: &Value, cluster: &Value) -> Result<Vec<Placement>, Diagnostic> {
    let all = placements(cluster);
    let want = match set(v, "nodes").filter(|n| !n.is_unknown()) {
        Some(n) => to_u64(n)
            .filter(|n| *n >= 1)
            .ok_or_else(|| error("E-ONPREM-JOB-NODES", address, format!("{address}: `nodes` must be a whole number of at least 1")))?,
        None => all.len() as u64,
    };
    if want > all.len() as u64 {
        return Err(error("E-ONPREM-JOB-NODES", address, format!("{address} asks for {want} nodes, its cluster has {}", all.len()))
            .hint("lower the job's `nodes`, or raise the cluster's"));
    }
    Ok(all.into_iter().take(want as usize).collect())
}

/// An object store the hosts have no credentials for is refused, even while its values are
/// unknown.
pub(crate) fn unreachable_checkpoint(v: &Value) -> Option<Diagnostic> {
    let c = Block::of(v).filter(|c| matches!(c.store(), BucketStore::Object(_)))?;
    Some(c.unreachable(
        "E-ONPREM-JOB-CHECKPOINT",
        "onprem",
        "use an `onprem` bucket (`shared = true` when its path is a mount every host sees); to keep checkpoints in another \
         provider's bucket, run the job on that provider",
    ))
}

/// A `local` bucket is a directory on the machine running kiln: the hosts write to the same path
/// on their own disks unless it is a mount they share.
pub(crate) fn checkpoint_warning(address: &str, v: &Value) -> Option<Diagnostic> {
    Block::of(v).filter(|c| c.store() == BucketStore::Local)?;
    Some(
        Diagnostic::warning(
            "W-ONPREM-CHECKPOINT",
            format!(
                "{address}: checkpoint.bucket is a directory on the machine running kiln; each host writes to that path on its own disk"
            ),
        )
        .address(address)
        .attribute("checkpoint")
        .hint("use an `onprem` bucket, with `shared = true` if its path is a mount every host sees"),
    )
}

fn checkpoint(address: &str, v: &Value) -> Result<Option<Checkpoint>, Diagnostic> {
    let Some(c) = set(v, "checkpoint") else { return Ok(None) };
    let bucket = c.get("bucket").filter(|b| str_attr(b, "path").is_some()).ok_or_else(|| {
        error(
            "E-ONPREM-JOB-CHECKPOINT",
            address,
            format!("{address}: checkpoint.bucket must be an onprem bucket (an object with a `path`)"),
        )
        .hint("write `bucket = bucket.NAME` for a bucket of the `onprem` provider")
    })?;
    let base = str_attr(bucket, "path").unwrap_or_default().trim_end_matches('/');
    let sub = str_attr(c, "path").unwrap_or_default().trim_matches('/');
    let dir = join_dir(base, sub);
    let host = if bool_attr(bucket, "shared") == Some(true) { None } else { str_attr(bucket, "host").map(str::to_string) };
    Ok(Some(Checkpoint { dir, host }))
}

impl JobSpec {
    /// `None` while a configured attribute is unknown.
    pub fn parse(address: &str, v: &Value) -> Result<Option<JobSpec>, Diagnostic> {
        if let Some(d) = unreachable_checkpoint(v) {
            return Err(d.address(address));
        }
        if any_unknown(v, &CONFIG) {
            return Ok(None);
        }
        let cluster = set(v, "cluster").filter(|c| c.get("allocation").is_some()).ok_or_else(|| {
            error("E-ONPREM-JOB-CLUSTER", address, format!("{address}: `cluster` must be an onprem cluster"))
                .hint("write `cluster = cluster.NAME`")
        })?;
        if cluster.get("allocation").is_some_and(Value::contains_unknown) {
            return Ok(None);
        }
        let run = str_attr(v, "run").filter(|r| !r.trim().is_empty()).ok_or_else(|| {
            error("E-ONPREM-JOB-RUN", address, format!("{address}: `run` is empty"))
                .hint("give the command to run, such as run = \"python3 train.py\"")
        })?;
        let nodes = nodes(address, v, cluster)?;
        let checkpoint = checkpoint(address, v)?;
        let checkpoint_uri = checkpoint.as_ref().map(|c| Block::of(v).and_then(|b| b.uri()).unwrap_or_else(|| file_uri(&c.dir)));
        Ok(Some(JobSpec {
            gpus_per_node: nodes.first().map_or(0, |p| p.gpus.len() as u64),
            nodes,
            checkpoint,
            checkpoint_uri,
            workdir: str_attr(v, "workdir").map(str::to_string),
            env: str_map(v, "env"),
            setup: str_attr(v, "setup").unwrap_or_default().to_string(),
            run: run.to_string(),
            stop_grace: f64_attr(v, "stop_grace").unwrap_or(10.0).max(0.0).ceil() as u64,
            cluster_id: str_attr(cluster, "cluster_id").unwrap_or_default().to_string(),
            cpus: exact_cpus_per_node(cluster),
        }))
    }

    pub fn node_ips(&self) -> Vec<&str> {
        self.nodes.iter().map(|p| p.address.as_str()).collect()
    }

    /// Changes needing new processes that the schema cannot see: the hosts, GPUs and CPUs the
    /// cluster gives, and the checkpoint directory the bucket gives.
    pub fn replaced_by(&self, new: &JobSpec) -> Vec<String> {
        let mut out = Vec::new();
        if self.nodes != new.nodes || self.cpus != new.cpus {
            out.push("cluster".to_string());
        }
        if self.checkpoint != new.checkpoint {
            out.push("checkpoint".to_string());
        }
        out
    }

    /// Hosts that would write checkpoints to their own disk, not the bucket's host.
    pub fn checkpoint_elsewhere(&self) -> Vec<&str> {
        let Some(Checkpoint { host: Some(b), .. }) = &self.checkpoint else { return Vec::new() };
        self.nodes.iter().filter(|p| &p.host != b).map(|p| p.host.as_str()).collect()
    }

    /// The environment of node `rank`: the portable job environment (one task per node), the
    /// visible GPUs, unbuffered Python output, then the user's `env` (which wins).
    pub fn node_env(&self, job_id: &str, rank: usize, port: u16, checkpoint_dir: &str) -> Vec<(String, String)> {
        let ips: Vec<String> = self.node_ips().into_iter().map(str::to_string).collect();
        let mut env = NodeEnv {
            job_id,
            node_rank: rank as u64,
            node_ips: &ips,
            master_addr: ips.first().map(String::as_str).unwrap_or_default(),
            master_port: port,
            gpus_per_node: self.gpus_per_node,
            checkpoint_dir,
            checkpoint_uri: self.checkpoint_uri.as_deref().unwrap_or_default(),
        }
        .vars();
        env.push(("PYTHONUNBUFFERED".to_string(), "1".to_string()));
        env.extend(visible_devices(self.nodes.get(rank)));
        env.extend(self.env.iter().cloned());
        env
    }
}

/// CUDA_VISIBLE_DEVICES (NVIDIA) or ROCR_VISIBLE_DEVICES (AMD) for a node's GPUs.
fn visible_devices(node: Option<&Placement>) -> Vec<(String, String)> {
    let Some(p) = node.filter(|p| !p.gpus.is_empty()) else { return Vec::new() };
    let ids: Vec<String> = p.gpus.iter().map(|g| g.index.to_string()).collect();
    let var = if p.gpus[0].vendor == "amd" { "ROCR_VISIBLE_DEVICES" } else { "CUDA_VISIBLE_DEVICES" };
    vec![(var.to_string(), ids.join(","))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpus::HostGpu;

    fn cluster() -> serde_json::Value {
        let gpu =
            |i: u32| HostGpu { vendor: "nvidia", index: i, name: "NVIDIA A100-SXM4-80GB".into(), memory_mib: 81920 }.to_value().to_json();
        serde_json::json!({
            "allocation": [
                { "host": "h1", "address": "10.0.0.1", "gpus": [gpu(0), gpu(1)] },
                { "host": "h2", "address": "10.0.0.2", "gpus": [gpu(4), gpu(5)] },
            ],
        })
    }

    fn spec(extra: serde_json::Value) -> Result<Option<JobSpec>, Diagnostic> {
        let mut j = serde_json::json!({ "cluster": cluster(), "run": "python3 train.py", "env": { "LR": "0.1" } });
        j.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        JobSpec::parse("job.t", &Value::from_json(&j))
    }

    #[test]
    fn environment_of_each_node() {
        let s = spec(serde_json::json!({})).unwrap().unwrap();
        let env: std::collections::BTreeMap<String, String> = s.node_env("t-1", 1, 29501, "/ck").into_iter().collect();
        assert_eq!(env["KILN_NODE_RANK"], "1");
        assert_eq!(env["KILN_NUM_NODES"], "2");
        assert_eq!(env["KILN_NODE_IPS"], "10.0.0.1,10.0.0.2");
        assert_eq!(env["KILN_MASTER_ADDR"], "10.0.0.1");
        assert_eq!(env["KILN_MASTER_PORT"], "29501");
        assert_eq!(env["KILN_NUM_GPUS_PER_NODE"], "2");
        assert_eq!(env["CUDA_VISIBLE_DEVICES"], "4,5");
        assert_eq!(env["KILN_CHECKPOINT_DIR"], "/ck");
        assert_eq!(env["LR"], "0.1");
        // Issue 11: the whole portable environment, one task per node.
        for name in kiln_provider::portable::job::ENV {
            assert!(env.contains_key(name), "no {name} in {env:?}");
        }
        assert_eq!((env["KILN_LOCAL_RANK"].as_str(), env["KILN_TASK_RANK"].as_str(), env["KILN_NUM_TASKS"].as_str()), ("0", "1", "2"));
        assert_eq!(env["KILN_CHECKPOINT_URI"], "", "no checkpoint block");
        let bucket = serde_json::json!({ "host": "h1", "path": "/data/b", "shared": true, "uri": "sftp://kiln@10.0.0.1/data/b" });
        let s = spec(serde_json::json!({ "checkpoint": { "bucket": bucket, "path": "run-1/" } })).unwrap().unwrap();
        let env: std::collections::BTreeMap<String, String> = s.node_env("t-1", 0, 29501, "/data/b/run-1").into_iter().collect();
        assert_eq!(env["KILN_CHECKPOINT_URI"], "sftp://kiln@10.0.0.1/data/b/run-1");
    }

    /// Issue 11: an object store the hosts have no credentials for is refused, even while the
    /// bucket is being created; a `local` bucket (a directory on the machine running kiln) gets
    /// a warning: the hosts write to it only through a mount they share.
    #[test]
    fn checkpoint_buckets_the_hosts_cannot_reach() {
        let s3 = serde_json::json!({ "name": "b", "uri": "s3://b", "arn": "arn:aws:s3:::b" });
        let d = spec(serde_json::json!({ "checkpoint": { "bucket": s3, "path": "" } })).unwrap_err();
        assert_eq!((d.code, d.address.as_deref()), ("E-ONPREM-JOB-CHECKPOINT", Some("job.t")));
        assert!(d.summary.contains("s3://") && d.hint.as_deref().is_some_and(|h| h.contains("`onprem` bucket")), "{d:?}");
        let creating = Value::Map([("arn".to_string(), Value::Unknown), ("uri".to_string(), Value::Unknown)].into());
        let checkpoint = Value::Map([("bucket".to_string(), creating), ("path".to_string(), Value::from(""))].into());
        let mut m = Value::from_json(&serde_json::json!({ "cluster": cluster(), "run": "x" })).as_map().unwrap().clone();
        m.insert("checkpoint".into(), checkpoint);
        let v = Value::Map(m);
        assert_eq!(JobSpec::parse("job.t", &v).unwrap_err().code, "E-ONPREM-JOB-CHECKPOINT", "an S3 bucket being created");

        let local = serde_json::json!({ "name": "b", "path": "/srv/b", "uri": "file:///srv/b" });
        let v = Value::from_json(&serde_json::json!({ "cluster": cluster(), "run": "x", "checkpoint": { "bucket": local, "path": "" } }));
        assert!(JobSpec::parse("job.t", &v).unwrap().is_some());
        let w = checkpoint_warning("job.t", &v).expect("a warning");
        assert_eq!((w.code, w.is_error()), ("W-ONPREM-CHECKPOINT", false));
        let onprem = serde_json::json!({ "host": "h1", "path": "/srv/b", "shared": true, "uri": "sftp://h1/srv/b" });
        let v = Value::from_json(&serde_json::json!({ "cluster": cluster(), "run": "x", "checkpoint": { "bucket": onprem, "path": "" } }));
        assert!(checkpoint_warning("job.t", &v).is_none());
    }

    #[test]
    fn checkpoints_and_node_counts() {
        let bucket = serde_json::json!({ "host": "h1", "path": "/data/b/", "shared": false });
        let s = spec(serde_json::json!({ "checkpoint": { "bucket": bucket, "path": "/run-1/" } })).unwrap().unwrap();
        assert_eq!(s.checkpoint, Some(Checkpoint { dir: "/data/b/run-1".into(), host: Some("h1".into()) }));
        assert_eq!(s.checkpoint_elsewhere(), vec!["h2"]);
        let one = spec(serde_json::json!({ "nodes": 1 })).unwrap().unwrap();
        assert_eq!(one.nodes.len(), 1);
        assert_eq!(s.replaced_by(&one), vec!["cluster".to_string(), "checkpoint".to_string()]);
        assert_eq!(spec(serde_json::json!({ "nodes": 3 })).unwrap_err().summary, "job.t asks for 3 nodes, its cluster has 2");
    }

    /// Issue 11: a cluster with an exact `cpus` runs each node on that many CPUs; a changed
    /// count replaces the job; a cluster written before records none and pins nothing.
    #[test]
    fn exact_cpus_come_from_the_cluster() {
        let with = |c: serde_json::Value| {
            let mut cl = cluster();
            cl.as_object_mut().unwrap().extend(c.as_object().unwrap().clone());
            JobSpec::parse("job.t", &Value::from_json(&serde_json::json!({ "cluster": cl, "run": "x" }))).unwrap().unwrap()
        };
        let (two, four) =
            (with(serde_json::json!({ "cpus": "2", "cpus_per_node": 2 })), with(serde_json::json!({ "cpus": "4", "cpus_per_node": 4 })));
        assert_eq!((two.cpus, four.cpus), (Some(2), Some(4)));
        assert_eq!(two.replaced_by(&four), vec!["cluster".to_string()]);
        assert_eq!(with(serde_json::json!({ "cpus": "2+", "cpus_per_node": 64 })).cpus, None);
        assert_eq!(with(serde_json::json!({ "cpus": "2" })).cpus, None, "written before issue 11");
    }

    #[test]
    fn unknown_cluster_is_not_described_yet() {
        let v = Value::from_json(&serde_json::json!({ "run": "x" }));
        let mut m = v.as_map().unwrap().clone();
        m.insert("cluster".into(), Value::Unknown);
        assert_eq!(JobSpec::parse("job.t", &Value::Map(m)).unwrap(), None);
    }
}
