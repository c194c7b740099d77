//! What a job's configuration asks to launch: its nodes (the first `nodes` hosts of the
//! cluster's allocation, with their GPUs), where checkpoints go (the `checkpoint` block's
//! bucket), the working directory, environment and scripts; and the environment each node sees.

use kiln_diag::Diagnostic;
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
    /// Remote working directory; `None` runs in the job's directory.
    pub workdir: Option<String>,
    pub env: Vec<(String, String)>,
    pub setup: String,
    pub run: String,
    pub stop_grace: u64,
    /// The cluster's `cluster_id`, recorded with each node so that a host the cluster left while
    /// it did not answer can find the nodes to stop when it comes back.
    pub cluster_id: String,
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
    let dir = if sub.is_empty() { base.to_string() } else { format!("{base}/{sub}") };
    let host = if bool_attr(bucket, "shared") == Some(true) { None } else { str_attr(bucket, "host").map(str::to_string) };
    Ok(Some(Checkpoint { dir, host }))
}

impl JobSpec {
    /// `None` while a configured attribute is unknown.
    pub fn parse(address: &str, v: &Value) -> Result<Option<JobSpec>, Diagnostic> {
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
        Ok(Some(JobSpec {
            gpus_per_node: nodes.first().map_or(0, |p| p.gpus.len() as u64),
            nodes,
            checkpoint: checkpoint(address, v)?,
            workdir: str_attr(v, "workdir").map(str::to_string),
            env: str_map(v, "env"),
            setup: str_attr(v, "setup").unwrap_or_default().to_string(),
            run: run.to_string(),
            stop_grace: f64_attr(v, "stop_grace").unwrap_or(10.0).max(0.0).ceil() as u64,
            cluster_id: str_attr(cluster, "cluster_id").unwrap_or_default().to_string(),
        }))
    }

    pub fn node_ips(&self) -> Vec<&str> {
        self.nodes.iter().map(|p| p.address.as_str()).collect()
    }

    /// Changes needing new processes that the schema cannot see: the hosts and GPUs the
    /// cluster gives, and the checkpoint directory the bucket gives.
    pub fn replaced_by(&self, new: &JobSpec) -> Vec<String> {
        let mut out = Vec::new();
        if self.nodes != new.nodes {
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

    /// The environment of node `rank`: KILN_*, the visible GPUs, unbuffered Python output,
    /// then the user's `env` (which wins).
    pub fn node_env(&self, job_id: &str, rank: usize, port: u16, checkpoint_dir: &str) -> Vec<(String, String)> {
        let ips = self.node_ips();
        let mut env: Vec<(String, String)> = [
            ("KILN_NODE_RANK", rank.to_string()),
            ("KILN_NUM_NODES", self.nodes.len().to_string()),
            ("KILN_NODE_IPS", ips.join(",")),
            ("KILN_MASTER_ADDR", ips.first().copied().unwrap_or_default().to_string()),
            ("KILN_MASTER_PORT", port.to_string()),
            ("KILN_NUM_GPUS_PER_NODE", self.gpus_per_node.to_string()),
            ("KILN_JOB_ID", job_id.to_string()),
            ("KILN_CHECKPOINT_DIR", checkpoint_dir.to_string()),
            ("PYTHONUNBUFFERED", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
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

    #[test]
    fn unknown_cluster_is_not_described_yet() {
        let v = Value::from_json(&serde_json::json!({ "run": "x" }));
        let mut m = v.as_map().unwrap().clone();
        m.insert("cluster".into(), Value::Unknown);
        assert_eq!(JobSpec::parse("job.t", &Value::Map(m)).unwrap(), None);
    }
}
