//! A job's directory, `ROOT/jobs/JOB_ID/`: `job.json` (address, create token, nodes, start
//! time, restarts, configuration), the `setup.sh` and `run.sh` scripts, and per node
//! `node-RANK.pid`, `node-RANK.log` and, once it has finished, `node-RANK.exit`. The job's
//! status is derived from these files and the process table, never stored.
//!
//! No secret is kept here in clear: the directory is private to its owner (0700, `job.json`
//! 0600), and `job.json` records the configuration without its sensitive values (a node gets
//! its sensitive `env` in its environment only; a replacement gets it again from the plan).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use kiln_provider::portable::job::{FailWhen, JobStatus, NodeState};
use kiln_value::{Map, Value};
use serde::{Deserialize, Serialize};

use crate::procs::ProcTable;
use crate::util::{attrs, num, rfc3339, slug, str_attr};
use crate::Ctx;

/// `job.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub address: String,
    pub token: String,
    pub job_id: String,
    pub nodes: u64,
    pub started_at: String,
    pub restarts: u64,
    /// The configuration the job was created with, for import, without its sensitive values
    /// ([`record_config`]).
    pub config: serde_json::Value,
}

/// What one node is doing: not started (no pid file), running, exited (with the exit file's
/// time), or lost (its process is gone without writing an exit code).
pub(crate) type Node = NodeState<SystemTime>;

/// A job's configuration as `job.json` records it: plain JSON with every sensitive value left
/// out (an object's sensitive entries are dropped, a list's become `null`).
pub(crate) fn record_config(v: &Value) -> serde_json::Value {
    match v {
        Value::Sensitive(_) | Value::Unknown | Value::Null => serde_json::Value::Null,
        Value::Map(m) => {
            serde_json::Value::Object(m.iter().filter(|(_, v)| !v.is_sensitive()).map(|(k, v)| (k.clone(), record_config(v))).collect())
        }
        Value::List(l) => serde_json::Value::Array(l.iter().map(record_config).collect()),
        v => v.to_json(),
    }
}

/// `SLUG-TOKEN8`: the address made file-safe, and the start of the create's token.
pub(crate) fn job_id(address: &str, token: &str) -> String {
    let t: String = token.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    format!("{}-{t}", slug(address, "job"))
}

/// The job's status from its nodes: it has failed once a node exited non-zero and no node
/// still runs (a job is not over while any of its processes is); it has succeeded when every
/// node exited 0; a lost node makes it lost.
pub(crate) fn status(nodes: &[Node]) -> JobStatus {
    JobStatus::of_nodes(nodes, FailWhen::NoneActive)
}

pub(crate) struct JobDir(PathBuf);

impl JobDir {
    pub fn jobs_root(ctx: &Ctx) -> PathBuf {
        ctx.root.join("jobs")
    }

    pub fn new(ctx: &Ctx, job_id: &str) -> JobDir {
        JobDir(Self::jobs_root(ctx).join(job_id))
    }

    /// The directory a job's state names (`log_dir`).
    pub fn of_state(state: &Value) -> Option<JobDir> {
        str_attr(state, "log_dir").map(|p| JobDir(PathBuf::from(p)))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn exists(&self) -> bool {
        self.0.is_dir()
    }

    pub fn file(&self, rank: u64, ext: &str) -> PathBuf {
        self.0.join(format!("node-{rank}.{ext}"))
    }

    pub fn read_meta(&self) -> std::io::Result<Meta> {
        let text = std::fs::read_to_string(self.0.join("job.json"))?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }

    /// Makes the job's directory, private to its owner (0700).
    pub fn create(&self) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if let Some(parent) = self.0.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.0)?;
        // An existing directory (a re-run create) is made private too.
        std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o700))
    }

    /// `job.json`, written atomically with mode 0600.
    pub fn write_meta(&self, meta: &Meta) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = serde_json::to_string_pretty(meta).map_err(std::io::Error::other)?;
        let tmp = self.0.join("job.json.tmp");
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(tmp, self.0.join("job.json"))
    }

    pub fn pid(&self, rank: u64) -> Option<u32> {
        std::fs::read_to_string(self.file(rank, "pid")).ok()?.trim().parse().ok()
    }

    pub fn pids(&self, nodes: u64) -> Vec<u32> {
        (0..nodes).filter_map(|r| self.pid(r)).collect()
    }

    fn exit(&self, rank: u64) -> Option<(i32, SystemTime)> {
        let path = self.file(rank, "exit");
        let code = std::fs::read_to_string(&path).ok()?.trim().parse().ok()?;
        let at = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|_| SystemTime::now());
        Some((code, at))
    }

    /// Liveness is looked at before the exit file: the exit file is written before the
    /// process ends, so a dead process without one really died without finishing.
    pub fn node(&self, rank: u64, procs: &ProcTable) -> Node {
        let Some(pid) = self.pid(rank) else { return Node::Pending };
        let alive = procs.leader_alive(pid);
        match self.exit(rank) {
            Some((code, at)) => Node::Exited(code, at),
            None if alive => Node::Running,
            None => Node::Lost,
        }
    }

    pub fn nodes(&self, meta: &Meta, procs: &ProcTable) -> Vec<Node> {
        (0..meta.nodes).map(|r| self.node(r, procs)).collect()
    }

    /// `base`'s configured attributes with the computed ones as the files say now.
    pub fn state(&self, base: &Value, meta: &Meta, procs: &ProcTable) -> Value {
        let nodes = self.nodes(meta, procs);
        let status = status(&nodes);
        let finished = nodes.iter().filter_map(|n| if let Node::Exited(_, at) = n { Some(*at) } else { None }).max();
        let finished_at = finished.filter(|_| status.has_finished()).map_or(Value::Null, |t| Value::from(rfc3339(t)));
        let exit_codes = nodes.iter().map(|n| if let Node::Exited(c, _) = n { Value::from(*c as i64) } else { Value::Null }).collect();
        let pids = (0..meta.nodes).map(|r| self.pid(r).map_or(Value::Null, |p| num(p.into()))).collect();
        let mut m: Map = attrs(base);
        m.extend([
            ("nodes".to_string(), num(meta.nodes)),
            ("job_id".to_string(), Value::from(meta.job_id.as_str())),
            ("status".to_string(), Value::from(status)),
            ("exit_codes".to_string(), Value::List(exit_codes)),
            ("started_at".to_string(), Value::from(meta.started_at.as_str())),
            ("finished_at".to_string(), finished_at),
            ("restarts".to_string(), num(meta.restarts)),
            ("log_dir".to_string(), Value::from(self.0.display().to_string())),
            ("pids".to_string(), Value::List(pids)),
        ]);
        Value::Map(m)
    }

    /// Up to `max` bytes of node `rank`'s log from `offset`.
    pub fn read_log(&self, rank: u64, offset: u64, max: u64) -> std::io::Result<(Vec<u8>, u64)> {
        let mut f = std::fs::File::open(self.file(rank, "log"))?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(offset.min(len)))?;
        let mut data = Vec::new();
        f.take(max).read_to_end(&mut data)?;
        Ok((data, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let t = SystemTime::now();
        assert_eq!(status(&[Node::Exited(0, t), Node::Exited(0, t)]), JobStatus::Succeeded);
        assert_eq!(status(&[Node::Exited(0, t), Node::Running]), JobStatus::Running);
        assert_eq!(status(&[Node::Exited(2, t), Node::Running]), JobStatus::Running, "not over while a node runs");
        assert_eq!(status(&[Node::Exited(2, t), Node::Exited(0, t)]), JobStatus::Failed);
        assert_eq!(status(&[Node::Lost, Node::Running]), JobStatus::Lost);
        assert_eq!(status(&[Node::Pending, Node::Pending]), JobStatus::Pending);
    }

    /// Issue 10 (defect 11): `job.json` keeps no sensitive value, and is private.
    #[test]
    fn the_record_keeps_no_secret_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let env =
            Value::Map([("TOKEN".to_string(), Value::from("hunter2-s3cr3t").sensitive()), ("LR".to_string(), Value::from("0.1"))].into());
        let config = Value::Map(
            [
                ("env".to_string(), env),
                ("run".to_string(), Value::from("python train.py")),
                ("setup".to_string(), Value::from("secret setup").sensitive()),
                ("args".to_string(), Value::List(vec![Value::from("a"), Value::from("hunter2-s3cr3t").sensitive()])),
            ]
            .into(),
        );
        let json = record_config(&config);
        assert_eq!(json, serde_json::json!({"env": {"LR": "0.1"}, "run": "python train.py", "args": ["a", null]}));

        let tmp = tempfile::tempdir().unwrap();
        let dir = JobDir(tmp.path().join("jobs").join("j-1"));
        dir.create().unwrap();
        let meta = Meta {
            address: "job.j".into(),
            token: "t".into(),
            job_id: "j-1".into(),
            nodes: 1,
            started_at: "now".into(),
            restarts: 0,
            config: json,
        };
        dir.write_meta(&meta).unwrap();
        let text = std::fs::read_to_string(dir.path().join("job.json")).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("secret setup"), "{text}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.path().join("job.json")), 0o600);
    }

    #[test]
    fn ids() {
        assert_eq!(job_id("job.train", "3f2a9c1d-aaaa-bbbb"), "train-3f2a9c1d");
        assert_eq!(job_id("job.t[\"a\"]", "ab-cd"), "t-a-abcd");
    }
}
