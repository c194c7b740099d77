//! `job`: the job's files and the `kiln:job` tag as S3 and EC2 hold them, and the whole loop
//! with the real agent: each instance's user data (read back through DescribeInstanceAttribute)
//! runs as a local process whose instance metadata service is the harness's emulation for that
//! instance, so the agent reads its tag, downloads the job from S3 (moto), runs it, and uploads
//! status and logs that the provider's refresh and `logs` read.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_provider::{LogSeek, LogsRequest, Provider};
use kiln_value::Value;
use serde_json::json as j;

use crate::common::moto::{exclusive, server};
use crate::common::*;

/// The agents started from instances' user data; stopped (with their jobs) when dropped.
pub(crate) struct Agents {
    dir: tempfile::TempDir,
    ids: Vec<String>,
}

impl Agents {
    /// Runs the user data of each instance as that instance would at boot; the agents report
    /// every second and upload logs in parts of 1,000 bytes.
    pub(crate) async fn boot(ids: &[String]) -> Agents {
        Self::boot_with(ids, 0, 1).await
    }

    /// Like [`Agents::boot`], on instances whose `nvidia-smi -L` lists `gpus` GPUs (none: no
    /// `nvidia-smi`), the agents' rounds `interval` seconds apart.
    async fn boot_with(ids: &[String], gpus: usize, interval: u32) -> Agents {
        let ec2 = aws().await.ec2;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        if gpus > 0 {
            let lines: String = (0..gpus).map(|i| format!("GPU {i}: NVIDIA A10G (UUID: GPU-{i})\n")).collect();
            std::fs::write(bin.join("nvidia-smi"), format!("#!/bin/sh\nprintf '{lines}'\n")).unwrap();
            std::process::Command::new("chmod").arg("0755").arg(bin.join("nvidia-smi")).status().unwrap();
        }
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        for id in ids {
            let out = ec2.describe_instance_attribute().instance_id(id).attribute("userData".into()).send().await.unwrap();
            let b64 = out.user_data().and_then(|u| u.value()).expect("the instance has user data");
            let script = String::from_utf8(unpack_user_data(b64)).unwrap();
            assert!(script.contains("kiln agent"), "{script}");
            let status = std::process::Command::new("sh")
                .args(["-c", &script])
                .env("KILN_IMDS", format!("{}/_testbed/imds/us-east-1/{id}", server().endpoint()))
                .env("KILN_AGENT_DIR", dir.path().join(id))
                .env("KILN_AGENT_INTERVAL", interval.to_string())
                .env("KILN_LOG_PART_BYTES", "1000")
                // Checkpoint listings in pages of 2 keys; files synced once a second old;
                // multipart uploads above 5 MiB (the smallest part S3 takes).
                .env("KILN_LIST_MAX_KEYS", "2")
                .env("KILN_CHECKPOINT_QUIET", "1")
                .env("KILN_CHECKPOINT_PART_BYTES", (5 << 20).to_string())
                .env("PATH", &path)
                .status()
                .unwrap();
            assert!(status.success());
        }
        Agents { dir, ids: ids.to_vec() }
    }

    pub(crate) fn path(&self, id: &str) -> PathBuf {
        self.dir.path().join(id)
    }

    fn pid(&self, id: &str) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = std::fs::read_to_string(self.path(id).join("agent.pid")).ok().and_then(|s| s.trim().parse().ok()) {
                return Some(p);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills an agent (and the job it runs), as a vanished instance would.
    pub(crate) fn kill(&self, id: &str) {
        if let Some(pid) = self.pid(id) {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        // The job's process groups: every `sh` whose command line names this agent's directory.
        let _ = std::process::Command::new("pkill").args(["-KILL", "-f", &self.path(id).display().to_string()]).status();
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for id in self.ids.clone() {
            self.kill(&id);
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    piped("base64 -d", s.as_bytes())
}

/// User data as the instance's cloud-init reads it: base64, then gzip.
fn unpack_user_data(s: &str) -> Vec<u8> {
    piped("gzip -dc", &base64_decode(s))
}

/// What the shell command `cmd` writes for `input`.
fn piped(cmd: &str, input: &[u8]) -> Vec<u8> {
    let out =
        std::process::Command::new("sh").args(["-c", cmd]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn();
    let mut child = out.unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap().stdout
}

/// Refreshes the job until its status is one of `want` (30 s at most).
pub(crate) async fn wait_status(p: &kiln_provider_aws::AwsProvider, address: &str, state: &Value, want: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = read(p, address, state).await.expect("the job exists");
        if want.contains(&str_of(&now, "status")) {
            return now;
        }
        assert!(Instant::now() < deadline, "{address} stayed `{}`, wanted {want:?}: {now}", str_of(&now, "status"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub(crate) async fn log(p: &kiln_provider_aws::AwsProvider, state: &Value, node: usize) -> String {
    let r = p.logs(LogsRequest { address: "job.train", kind: "job", state, node, offset: 0, seek: None }).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    String::from_utf8(r.data).unwrap()
}

/// Refreshes the job until node `rank`'s log holds `text` (30 s at most: a safety bound).
pub(crate) async fn wait_log(p: &kiln_provider_aws::AwsProvider, state: &Value, rank: usize, text: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = log(p, state, rank).await;
        if out.contains(text) {
            return out;
        }
        assert!(std::time::Instant::now() < deadline, "node {rank}'s log never showed {text:?}: {out}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

async fn keys(bucket: &str, prefix: &str) -> Vec<String> {
    let out = aws().await.s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
    out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
}

async fn job_tags(ids: &[String]) -> Vec<Option<String>> {
    let out = aws().await.ec2.describe_instances().set_instance_ids(Some(ids.to_vec())).send().await.unwrap();
    let instances: Vec<_> = out.reservations().iter().flat_map(|r| r.instances()).cloned().collect();
    ids.iter()
        .map(|id| {
            let i = instances.iter().find(|i| i.instance_id() == Some(id)).expect("instance");
            i.tags().iter().find(|t| t.key() == Some("kiln:job")).and_then(|t| t.value()).map(str::to_string)
        })
        .collect()
}

async fn setup(p: &kiln_provider_aws::AwsProvider, run: &str) -> (Value, Value, Value) {
    let bucket = create(p, "bucket.ckpt", &config(p, "bucket", j!({ "force_destroy": true }))).await;
    let cluster = create(p, "cluster.train", &config(p, "cluster", j!({ "instance_type": "t3.micro", "nodes": 2 }))).await;
    let cfg = config(
        p,
        "job",
        j!({
            "cluster": cluster.to_json(),
            "run": run,
            "setup": "echo setting up",
            "env": { "GREETING": "it's here" },
            "checkpoint": { "bucket": bucket.to_json(), "path": "run-1/" },
        }),
    );
    (bucket, cluster, cfg)
}

#[tokio::test]
async fn the_agent_in_user_data_runs_the_job_and_reports_through_s3() {
    let _g = exclusive().await;
    let p = provider().await;
    let run = "echo \"rank=$KILN_NODE_RANK of $KILN_NUM_NODES master=$KILN_MASTER_ADDR:$KILN_MASTER_PORT ips=$KILN_NODE_IPS\"\n\
               echo \"job=$KILN_JOB_ID ckpt=$KILN_CHECKPOINT_URI greeting=$GREETING gpus=$KILN_NUM_GPUS_PER_NODE\"\n\
               echo \"dir=$KILN_CHECKPOINT_DIR\"; [ -d \"$KILN_CHECKPOINT_DIR\" ] && echo dir-exists\n\
               echo \"task=$KILN_TASK_RANK/$KILN_NUM_TASKS local=$KILN_LOCAL_RANK\"\n";
    let (bucket, cluster, cfg) = setup(&p, run).await;
    assert_eq!(cluster.get("gpus_per_node"), Some(&Value::from(0i64)), "a t3.micro has no GPU");
    let job = create(&p, "job.train", &cfg).await;
    let ids = strs(&cluster, "instance_ids");
    assert_eq!(strs(&job, "instance_ids"), ids);
    assert_eq!(strs(&job, "node_ips"), strs(&cluster, "private_ips"));
    assert_eq!(str_of(&job, "status"), "pending");

    // What the agents will find: the files in the bucket and the tag on every instance.
    let name = str_of(&bucket, "name");
    let prefix = format!("kiln/jobs/{}", str_of(&job, "job_id"));
    assert_eq!(str_of(&job, "uri"), format!("s3://{name}/{prefix}"));
    let mut files = keys(name, &prefix).await;
    files.sort();
    assert_eq!(files, ["env.sh", "run.sh", "setup.sh", "spec.env"].map(|f| format!("{prefix}/{f}")));
    assert_eq!(job_tags(&ids).await, vec![Some(str_of(&job, "uri").to_string()); 2]);

    let spec = aws().await.s3.get_object().bucket(name).key(format!("{prefix}/spec.env")).send().await.unwrap();
    let spec = String::from_utf8(spec.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    assert!(spec.contains("KILN_NUM_GPUS_PER_NODE='0'"), "the instance type's GPUs: {spec}");

    // These instances' nvidia-smi lists 4 GPUs: the agent counts them.
    let agents = Agents::boot_with(&ids, 4, 1).await;
    let done = wait_status(&p, "job.train", &job, &["succeeded", "failed"]).await;
    assert_eq!(str_of(&done, "status"), "succeeded", "{done}");
    assert_eq!(done.get("exit_codes").unwrap().to_json(), j!([0, 0]));
    assert!(done.get("finished_at").and_then(Value::as_str).is_some());
    let ips = strs(&cluster, "private_ips");
    for (rank, id) in ids.iter().enumerate() {
        let out = log(&p, &done, rank).await;
        assert!(out.contains("setting up"), "{out}");
        assert!(out.contains(&format!("rank={rank} of 2 master={}:29500 ips={}", ips[0], ips.join(","))), "{out}");
        assert!(out.contains(&format!("job={} ckpt=s3://{name}/run-1 greeting=it's here gpus=4", str_of(&job, "job_id"))), "{out}");
        // KILN_CHECKPOINT_DIR: a local directory, under the agent's directory for the job.
        let dir = format!("dir={}/jobs/", agents.path(id).display());
        assert!(out.lines().any(|l| l.starts_with(&dir) && l.ends_with("/checkpoint")), "{out}");
        assert!(out.contains("dir-exists"), "{out}");
        assert!(out.contains(&format!("task={rank}/2 local=0")), "{out}");
    }

    // Destroy: the tag goes (only this job's), and so do the job's objects.
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    assert_eq!(job_tags(&ids).await, vec![None, None]);
    assert_eq!(keys(name, &prefix).await, Vec::<String>::new());
    drop(agents);
    assert!(!delete(&p, "cluster.train", &cluster).await.has_errors());
    assert!(!delete(&p, "bucket.ckpt", &bucket).await.has_errors());
}

/// The agent reports a job's end when it ends, not at its next round: its rounds are 600 s apart
/// here, far past the bound `wait_status` waits.
#[tokio::test]
async fn the_agent_reports_a_jobs_end_without_waiting_for_its_next_round() {
    let _g = exclusive().await;
    let p = provider().await;
    let (bucket, cluster, cfg) = setup(&p, "sleep 2; echo finished").await;
    let job = create(&p, "job.train", &cfg).await;
    let agents = Agents::boot_with(&strs(&cluster, "instance_ids"), 0, 600).await;
    let done = wait_status(&p, "job.train", &job, &["succeeded", "failed"]).await;
    assert_eq!(str_of(&done, "status"), "succeeded", "{done}");
    assert!(log(&p, &done, 1).await.contains("finished"));
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    drop(agents);
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

#[tokio::test]
async fn a_long_log_is_uploaded_in_parts_and_read_whole_from_any_offset() {
    let _g = exclusive().await;
    let p = provider().await;
    let (bucket, cluster, cfg) = setup(&p, "i=0; while [ $i -lt 400 ]; do echo \"line $i of the log\"; i=$((i+1)); done").await;
    let job = create(&p, "job.train", &cfg).await;
    let _agents = Agents::boot(&strs(&cluster, "instance_ids")).await;
    let done = wait_status(&p, "job.train", &job, &["succeeded"]).await;
    let want: String = std::iter::once("setting up\n".to_string()).chain((0..400).map(|i| format!("line {i} of the log\n"))).collect();

    // Parts of at most 1,000 bytes, named by their first byte.
    let name = str_of(&bucket, "name");
    let dir = format!("kiln/jobs/{}/logs/node-0/", str_of(&job, "job_id"));
    let parts = keys(name, &dir).await;
    assert!(parts.len() >= want.len() / 1000, "{parts:?}");
    assert!(parts.iter().all(|k| k.len() == dir.len() + 16), "{parts:?}");
    assert_eq!(parts.first().map(String::as_str), Some(format!("{dir}{:016}", 0).as_str()));

    assert_eq!(log(&p, &done, 0).await, want);
    let from = p.logs(LogsRequest { address: "job.train", kind: "job", state: &done, node: 0, offset: 2500, seek: None }).await;
    assert_eq!(String::from_utf8(from.data).unwrap(), want[2500..]);
    assert_eq!(from.next_offset, want.len() as u64);
    assert!(from.finished);

    // Instances launched before log parts run an agent that uploads the whole log as one object.
    let old = format!("kiln/jobs/{}/logs/node-5.log", str_of(&job, "job_id"));
    aws().await.s3.put_object().bucket(name).key(&old).body(b"from an older agent\n".to_vec().into()).send().await.unwrap();
    assert_eq!(log(&p, &done, 5).await, "from an older agent\n");

    // `kiln logs --tail` and `--since` seek: the end, and times from the parts' upload times.
    let seek =
        |node: usize, s: LogSeek| p.logs(LogsRequest { address: "job.train", kind: "job", state: &done, node, offset: 0, seek: Some(s) });
    assert_eq!(seek(0, LogSeek::End).await.next_offset, want.len() as u64);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let late = seek(0, LogSeek::Since(now + 60)).await;
    assert!(!late.diagnostics.has_errors(), "{:?}", late.diagnostics);
    assert_eq!(late.next_offset, want.len() as u64, "nothing uploaded after the last part");
    assert_eq!(seek(0, LogSeek::Since(now - 3600)).await.next_offset, 0, "everything written within the hour");
    let whole = seek(5, LogSeek::Since(now - 3600)).await;
    assert!(whole.diagnostics.errors().any(|e| e.code == "E-LOGS-SINCE"), "a log uploaded whole has no times");
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    assert_eq!(keys(name, &format!("kiln/jobs/{}/", str_of(&job, "job_id"))).await, Vec::<String>::new(), "every part is deleted");
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

#[tokio::test]
async fn a_failing_node_fails_the_job_with_its_exit_code() {
    let _g = exclusive().await;
    let p = provider().await;
    let (bucket, cluster, cfg) = setup(&p, "if [ \"$KILN_NODE_RANK\" = 1 ]; then echo boom >&2; exit 3; fi").await;
    let job = create(&p, "job.train", &cfg).await;
    let _agents = Agents::boot(&strs(&cluster, "instance_ids")).await;
    let mut done = wait_status(&p, "job.train", &job, &["failed"]).await;
    // Failed as soon as one node fails; refreshed until every node has exited.
    let deadline = Instant::now() + Duration::from_secs(20);
    while done.get("exit_codes").unwrap().to_json()[0].is_null() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        done = read(&p, "job.train", &done).await.unwrap();
    }
    assert_eq!(done.get("exit_codes").unwrap().to_json(), j!([0, 3]), "{done}");
    assert!(log(&p, &done, 1).await.contains("boom"));
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

/// Issue 15: a multi-node job fails fast without `kiln watch`. Node 1 fails; node 0, which would
/// wait for it forever (as a rank blocked in a collective whose peer died would), is stopped by
/// its agent, and its exit is not taken for the failure's cause: `recovery` reads node 1's code.
#[tokio::test]
async fn when_one_node_fails_the_agents_stop_the_others_and_the_failure_is_the_first_nodes() {
    let _g = exclusive().await;
    let p = provider().await;
    let run = "if [ \"$KILN_NODE_RANK\" = 1 ]; then sleep 2; echo boom >&2; exit 75; fi\n\
               trap 'echo told to stop; exit 143' TERM\necho waiting; while :; do sleep 1; done\n";
    let (bucket, cluster, cfg) = setup(&p, run).await;
    let job = create(&p, "job.train", &cfg).await;
    let ids = strs(&cluster, "instance_ids");
    let agents = Agents::boot(&ids).await;
    let failed = wait_status(&p, "job.train", &job, &["failed"]).await;
    // Node 0's final report comes once its agent has stopped it (30 s at most: a safety bound).
    let key = format!("kiln/jobs/{}/status/0.json", str_of(&job, "job_id"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let r: serde_json::Value = serde_json::from_str(&body(str_of(&bucket, "name"), &key).await.unwrap_or_default()).unwrap_or_default();
        if r["state"] != "running" && !r.is_null() {
            break r;
        }
        assert!(Instant::now() < deadline, "node 0 still runs: {r}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!((report["state"].clone(), report["stopped_for"].clone()), (j!("failed"), j!(1)), "{report}");
    assert!(!pgrep(&agents.path(&ids[0])), "node 0's job is gone");
    let done = read(&p, "job.train", &failed).await.unwrap();
    assert_eq!(str_of(&done, "status"), "failed");
    assert_eq!(done.get("exit_codes").unwrap().to_json(), j!([null, 75]), "node 0 was stopped, it did not fail: {done}");
    let failure = kiln_provider::portable::recovery::failure(&done).expect("a failure");
    assert_eq!((failure.exit_code, failure.detail.as_str()), (Some(75), "node 1 exited 75"));
    let out = log(&p, &done, 0).await;
    assert!(out.contains("told to stop") && out.contains("node 1 failed"), "{out}");
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    drop(agents);
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

#[tokio::test]
async fn a_lost_instance_makes_the_job_lost_and_destroy_stops_the_rest() {
    let _g = exclusive().await;
    let p = provider().await;
    let (bucket, cluster, cfg) = setup(&p, "echo started; sleep 300").await;
    let job = create(&p, "job.train", &cfg).await;
    let ids = strs(&cluster, "instance_ids");
    let agents = Agents::boot(&ids).await;
    let running = wait_status(&p, "job.train", &job, &["running"]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log(&p, &running, 0).await.contains("started") {
        assert!(Instant::now() < deadline, "node 0's log never showed the job starting");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Spot takes instance 1 back: its agent and its process go with it.
    agents.kill(&ids[1]);
    server().spot_interrupt(&ids[1]);
    let lost = wait_status(&p, "job.train", &running, &["lost"]).await;
    assert_eq!(lost.get("lost_reason"), Some(&Value::from("preemption")), "reclaimed by spot: {lost}");
    let r = plan(&p, "job.train", &cfg, Some(&lost)).await;
    assert!(r.requires_replace.contains(&"status".to_string()), "a lost job is replaced: {:?}", r.requires_replace);

    // Destroy takes the tag away; the surviving agent stops the job's processes.
    let agent0 = agents.path(&ids[0]);
    assert!(pgrep(&agent0), "the job runs on node 0");
    assert!(!delete(&p, "job.train", &lost).await.has_errors());
    let deadline = Instant::now() + Duration::from_secs(20);
    while pgrep(&agent0) {
        assert!(Instant::now() < deadline, "node 0's job still runs after destroy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(agents);
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

/// The SHA-256 of `s`, in hex, by `sha256sum` (as the job computes it).
fn sha256(s: &str) -> String {
    sha256_bytes(s.as_bytes())
}

fn sha256_bytes(b: &[u8]) -> String {
    let mut child =
        std::process::Command::new("sha256sum").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()[..64].to_string()
}

/// `cfg` with `env.TOKEN` set to the sensitive `secret`.
fn with_secret(cfg: &Value, secret: &str) -> Value {
    let mut m = cfg.as_map().cloned().unwrap();
    let mut env = m.get("env").and_then(Value::as_map).cloned().unwrap_or_default();
    env.insert("TOKEN".into(), Value::from(secret).sensitive());
    m.insert("env".into(), Value::Map(env));
    Value::Map(m)
}

/// Every object under `prefix`, with its body.
async fn bodies(bucket: &str, prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for k in keys(bucket, prefix).await {
        let o = aws().await.s3.get_object().bucket(bucket).key(&k).send().await.unwrap();
        out.push((k, String::from_utf8_lossy(&o.body.collect().await.unwrap().into_bytes()).into_owned()));
    }
    out
}

/// Files under `dir`, recursively, with their bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(b) = std::fs::read(&path) {
            out.push((path, b));
        }
    }
    out
}

#[tokio::test]
async fn a_sensitive_env_value_reaches_the_job_through_ssm_never_the_bucket() {
    let _g = exclusive().await;
    let p = provider().await;
    let secret = "hunter2-s3cr3t-'quoted' and spaced";
    // The job proves it sees the value without writing it: it compares hashes.
    let run = format!(
        "if [ \"$(printf %s \"$TOKEN\" | sha256sum | cut -c1-64)\" = {} ] && [ \"$GREETING\" = \"it's here\" ]; then echo token-matches; else echo token-differs; exit 9; fi",
        sha256(secret)
    );
    let (bucket, cluster, cfg) = setup(&p, &run).await;
    let cfg = with_secret(&cfg, secret);
    let job = create(&p, "job.train", &cfg).await;
    let name = str_of(&bucket, "name");
    let job_id = str_of(&job, "job_id").to_string();
    let prefix = format!("kiln/jobs/{job_id}");

    // The parameter holds the secret, as a SecureString; the bucket does not.
    let parameter = format!("/kiln/jobs/{job_id}/env");
    let got = aws().await.ssm.get_parameter().name(&parameter).with_decryption(true).send().await.unwrap();
    let got = got.parameter().unwrap();
    assert_eq!(got.r#type(), Some(&aws_sdk_ssm::types::ParameterType::SecureString));
    let decoded = String::from_utf8(base64_decode(got.value().unwrap())).unwrap();
    assert!(decoded.contains("export TOKEN="), "{decoded}");
    let stored = bodies(name, &prefix).await;
    assert!(stored.iter().any(|(k, b)| k.ends_with("/env.sh") && b.contains("GREETING")), "{stored:?}");
    for (k, b) in &stored {
        assert!(!b.contains("hunter2"), "{k} holds the secret: {b}");
    }

    let agents = Agents::boot(&strs(&cluster, "instance_ids")).await;
    let done = wait_status(&p, "job.train", &job, &["succeeded", "failed"]).await;
    for rank in 0..2 {
        let out = log(&p, &done, rank).await;
        assert!(out.contains("token-matches"), "node {rank}: {out}");
    }
    assert_eq!(str_of(&done, "status"), "succeeded", "{done}");
    // Nothing the job left in the bucket, nor the agents on the instances, holds the secret.
    for (k, b) in bodies(name, &prefix).await {
        assert!(!b.contains("hunter2"), "{k} holds the secret: {b}");
    }
    for (path, b) in files_under(agents.dir.path()) {
        assert!(!String::from_utf8_lossy(&b).contains("hunter2"), "{} holds the secret", path.display());
    }

    // Destroy deletes the parameter with the objects.
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    let gone = aws().await.ssm.get_parameter().name(&parameter).send().await;
    assert!(gone.is_err_and(|e| e.into_service_error().is_parameter_not_found()), "the parameter outlived the job");
    assert_eq!(keys(name, &prefix).await, Vec::<String>::new());
    drop(agents);
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

#[tokio::test]
async fn a_failed_create_deletes_the_env_parameter() {
    let _g = exclusive().await;
    let p = provider().await;
    let (bucket, cluster, cfg) = setup(&p, "true").await;
    // A checkpoint bucket that does not exist: writing the job's files fails after the parameter.
    let mut m = with_secret(&cfg, "hunter2-s3cr3t").as_map().cloned().unwrap();
    m.insert("checkpoint".into(), Value::from_json(&j!({ "bucket": "kiln-no-such-bucket", "path": "" })));
    let cfg = Value::Map(m);
    let planned = planned(&p, "job.train", &cfg, None).await;
    let r = p.create(kiln_provider::CreateRequest { address: "job.train", kind: "job", planned: &planned, token: &token() }).await;
    assert!(r.diagnostics.has_errors(), "the bucket is missing");
    assert!(!format!("{:?}", r.diagnostics).contains("hunter2"), "{:?}", r.diagnostics);
    let left = aws().await.ssm.get_parameters_by_path().path("/kiln/jobs").recursive(true).send().await.unwrap();
    assert_eq!(left.parameters().len(), 0, "{:?}", left.parameters());
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

/// Whether a job process (`sleep 300` under the job's shell) runs from this agent directory.
pub(crate) fn pgrep(agent_dir: &Path) -> bool {
    let out = std::process::Command::new("pgrep").args(["-f", &format!("{}/jobs/.*/run.sh", agent_dir.display())]).output().unwrap();
    out.status.success()
}

/// Puts `body` at `key` with the metadata `origin: test`, which an upload by the agent drops.
async fn put_marked(bucket: &str, key: &str, body: &str) {
    let put = aws().await.s3.put_object().bucket(bucket).key(key).metadata("origin", "test").body(body.as_bytes().to_vec().into());
    put.send().await.unwrap();
}

pub(crate) async fn body(bucket: &str, key: &str) -> Option<String> {
    let o = aws().await.s3.get_object().bucket(bucket).key(key).send().await.ok()?;
    Some(String::from_utf8_lossy(&o.body.collect().await.unwrap().into_bytes()).into_owned())
}

/// Lists `prefix` until every one of `want` is there (60 s at most: a safety bound).
async fn wait_keys(bucket: &str, prefix: &str, want: &[String]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = keys(bucket, prefix).await;
        if want.iter().all(|w| have.contains(w)) {
            return have;
        }
        assert!(Instant::now() < deadline, "{want:?} never reached s3://{bucket}/{prefix}: {have:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A job on `cluster` with these `checkpoint.path`, `run`, `setup`, `workdir` and `env`.
#[allow(clippy::too_many_arguments)]
fn job_config(
    p: &kiln_provider_aws::AwsProvider,
    cluster: &Value,
    bucket: &Value,
    path: &str,
    run: &str,
    setup: &str,
    workdir: &Path,
    env: serde_json::Value,
) -> Value {
    config(
        p,
        "job",
        j!({
            "cluster": cluster.to_json(),
            "run": run,
            "setup": setup,
            "workdir": workdir.display().to_string(),
            "env": env,
            "checkpoint": { "bucket": bucket.to_json(), "path": path },
        }),
    )
}

#[tokio::test]
async fn the_checkpoint_dir_is_a_local_directory_restored_before_the_job_and_uploaded_while_and_after_it_runs() {
    let _g = exclusive().await;
    let p = provider().await;
    let bucket = create(&p, "bucket.ckpt", &config(&p, "bucket", j!({ "force_destroy": true }))).await;
    let cluster = create(&p, "cluster.train", &config(&p, "cluster", j!({ "instance_type": "t3.micro", "nodes": 2 }))).await;
    let name = str_of(&bucket, "name").to_string();
    // What earlier runs left: more keys than one listing page, names that need escaping in
    // XML and in URLs, a folder marker, and a neighbour prefix that is not the job's.
    put_marked(&name, "run 1/restored.txt", "from an earlier run").await;
    put_marked(&name, "run 1/sub dir/a&b <x> 'q\" 100%+1.txt", "escaped").await;
    put_marked(&name, "run 1/nested/deep/w.bin", "weights").await;
    put_marked(&name, "run 1/empty/", "").await;
    put_marked(&name, "run 10/other.txt", "not this job's").await;
    // Keys a file system cannot hold both of: the first listed is restored, the job starts.
    put_marked(&name, "run 1/clash", "a file").await;
    put_marked(&name, "run 1/clash/inner.txt", "under a file's name").await;

    let work = tempfile::tempdir().unwrap();
    let setup = "echo \"setup sees $(cd \"$KILN_CHECKPOINT_DIR\" && find . -type f | LC_ALL=C sort | tr '\\n' '|')\"";
    let run = r#"case "$KILN_CHECKPOINT_DIR" in /*) ;; *) echo "not a local directory: $KILN_CHECKPOINT_DIR"; exit 7 ;; esac
echo "uri=$KILN_CHECKPOINT_URI"
echo "restored=$(cat "$KILN_CHECKPOINT_DIR/restored.txt") escaped=$(cat "$KILN_CHECKPOINT_DIR/sub dir/a&b <x> 'q\" 100%+1.txt")"
[ -d "$KILN_CHECKPOINT_DIR/empty" ] && echo empty-folder
echo "early $KILN_NODE_RANK" >"$KILN_CHECKPOINT_DIR/early-$KILN_NODE_RANK.txt"
i=0; while [ ! -f release ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p "$KILN_CHECKPOINT_DIR/out dir"
echo "late $KILN_NODE_RANK" >"$KILN_CHECKPOINT_DIR/out dir/late $KILN_NODE_RANK.txt"
if [ "$KILN_NODE_RANK" = 0 ]; then
  head -c 11534336 /dev/urandom >"$KILN_CHECKPOINT_DIR/out dir/big.bin"
  echo "big=$(sha256sum <"$KILN_CHECKPOINT_DIR/out dir/big.bin" | cut -c1-64)"
fi
"#;
    // A directory on the instances (these, on this machine), which the agent makes: a `workdir`
    // that is not a directory here keeps that meaning (one that is would be uploaded).
    let dir = work.path().join("on-instances");
    let cfg = job_config(&p, &cluster, &bucket, "run 1/", run, setup, &dir, j!({}));
    let job = create(&p, "job.train", &cfg).await;
    let agents = Agents::boot(&strs(&cluster, "instance_ids")).await;

    // While the job runs, what it writes reaches the bucket.
    let early = ["run 1/early-0.txt".to_string(), "run 1/early-1.txt".to_string()];
    wait_keys(&name, "run 1/", &early).await;
    let running = read(&p, "job.train", &job).await.unwrap();
    assert_eq!(str_of(&running, "status"), "running", "{running}");
    assert_eq!(body(&name, "run 1/early-1.txt").await.as_deref(), Some("early 1\n"));

    // When it ends, the rest is there before the status says so.
    std::fs::write(dir.join("release"), "").unwrap();
    let done = wait_status(&p, "job.train", &job, &["succeeded", "failed"]).await;
    assert_eq!(str_of(&done, "status"), "succeeded", "{done}");
    assert_eq!(body(&name, "run 1/out dir/late 0.txt").await.as_deref(), Some("late 0\n"));
    assert_eq!(body(&name, "run 1/out dir/late 1.txt").await.as_deref(), Some("late 1\n"));
    // A file larger than a part went in parts (moto's ETag: the MD5 of the parts' MD5s, "-3").
    let big = aws().await.s3.get_object().bucket(&name).key("run 1/out dir/big.bin").send().await.unwrap();
    assert!(big.e_tag().is_some_and(|e| e.ends_with("-3\"")), "{:?}", big.e_tag());
    let big = big.body.collect().await.unwrap().into_bytes();
    assert_eq!(big.len(), 11534336);
    let big_sha = sha256_bytes(&big);
    assert!(log(&p, &done, 0).await.contains(&format!("big={big_sha}")), "the bucket holds the job's file");
    for rank in 0..2 {
        let out = log(&p, &done, rank).await;
        // Restored before setup: the job's prefix only (not run 10/), folders and escapes.
        assert!(out.contains("setup sees ./clash|./nested/deep/w.bin|./restored.txt|./sub dir/a&b <x> 'q\" 100%+1.txt|\n"), "{out}");
        assert!(out.contains(&format!("uri=s3://{name}/run 1")), "{out}");
        assert!(out.contains("restored=from an earlier run escaped=escaped"), "{out}");
        assert!(out.contains("empty-folder"), "{out}");
    }
    // Restored files were not uploaded again (an upload would drop their metadata).
    for key in ["run 1/restored.txt", "run 1/nested/deep/w.bin"] {
        let head = aws().await.s3.head_object().bucket(&name).key(key).send().await.unwrap();
        assert_eq!(head.metadata().and_then(|m| m.get("origin")).map(String::as_str), Some("test"), "{key} was uploaded again");
    }

    // A second job with the same checkpoint block starts from the first one's files, and
    // what a failing job wrote is uploaded too.
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    let run2 = r#"echo "found $(cat "$KILN_CHECKPOINT_DIR/out dir/late 1.txt") and $(cat "$KILN_CHECKPOINT_DIR/early-0.txt")"
echo "big=$(sha256sum <"$KILN_CHECKPOINT_DIR/out dir/big.bin" | cut -c1-64)"
echo "failed on $KILN_NODE_RANK" >"$KILN_CHECKPOINT_DIR/failed-$KILN_NODE_RANK.txt"
exit 4"#;
    let cfg2 = job_config(&p, &cluster, &bucket, "run 1/", run2, "", work.path(), j!({}));
    let job2 = create(&p, "job.train", &cfg2).await;
    let mut failed = wait_status(&p, "job.train", &job2, &["failed", "succeeded"]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while failed.get("exit_codes").unwrap().to_json().as_array().unwrap().iter().any(serde_json::Value::is_null) {
        assert!(Instant::now() < deadline, "a node never reported its exit: {failed}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        failed = read(&p, "job.train", &failed).await.unwrap();
    }
    assert_eq!(failed.get("exit_codes").unwrap().to_json(), j!([4, 4]), "{failed}");
    for rank in 0..2 {
        let out = log(&p, &failed, rank).await;
        assert!(out.contains("found late 1 and early 0"), "node {rank} sees the first job's files: {out}");
        assert!(out.contains(&format!("big={big_sha}")), "node {rank} restored the big file: {out}");
        assert_eq!(body(&name, &format!("run 1/failed-{rank}.txt")).await, Some(format!("failed on {rank}\n")));
    }
    assert!(!delete(&p, "job.train", &failed).await.has_errors());
    drop(agents);
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

/// The quickstart's train.py, unchanged, on aws: a run that fails at step 13 leaves its
/// checkpoints in the bucket, and the next run resumes from them on every node.
#[tokio::test]
async fn the_quickstart_train_py_resumes_on_aws_from_the_checkpoints_of_a_failed_run() {
    let _g = exclusive().await;
    let p = provider().await;
    let bucket = create(&p, "bucket.ckpt", &config(&p, "bucket", j!({ "force_destroy": true }))).await;
    let cluster = create(&p, "cluster.train", &config(&p, "cluster", j!({ "instance_type": "t3.micro", "nodes": 2 }))).await;
    let name = str_of(&bucket, "name").to_string();
    // The instances' copy of the quickstart's train.py (its workdir stays clean).
    let quickstart = tempfile::tempdir().unwrap();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/train.py"), quickstart.path().join("train.py"))
        .unwrap();
    let quickstart = quickstart.path();
    let env = |fail: &str| j!({ "TRAIN_STEPS": "20", "CHECKPOINT_EVERY": "5", "TRAIN_STEP_SLEEP": "0", "TRAIN_FAIL_AT_STEP": fail });
    let cfg = job_config(&p, &cluster, &bucket, "run-1/", "python3 train.py", "python3 --version", quickstart, env("13"));
    let job = create(&p, "job.train", &cfg).await;
    let agents = Agents::boot(&strs(&cluster, "instance_ids")).await;
    let failed = wait_status(&p, "job.train", &job, &["failed", "succeeded"]).await;
    assert_eq!(str_of(&failed, "status"), "failed", "{failed}");
    let have = keys(&name, "run-1/").await;
    assert!(have.contains(&"run-1/ckpt-000010.json".to_string()), "{have:?}");
    assert!(!have.contains(&"run-1/result.json".to_string()), "{have:?}");
    assert!(!delete(&p, "job.train", &failed).await.has_errors());

    let cfg = job_config(&p, &cluster, &bucket, "run-1/", "python3 train.py", "python3 --version", quickstart, env("0"));
    let job = create(&p, "job.train", &cfg).await;
    let done = wait_status(&p, "job.train", &job, &["failed", "succeeded"]).await;
    for rank in 0..2 {
        let out = log(&p, &done, rank).await;
        assert!(out.contains(&format!("rank {rank}: resuming from checkpoint at step 10")), "{out}");
    }
    assert_eq!(str_of(&done, "status"), "succeeded", "{done}");
    let result: serde_json::Value = serde_json::from_str(&body(&name, "run-1/result.json").await.expect("result.json")).unwrap();
    assert_eq!((result["steps"].as_u64(), result["nodes"].as_u64()), (Some(20), Some(2)), "{result}");
    assert!(result["final_loss"].as_f64().is_some_and(f64::is_finite), "{result}");
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    drop(agents);
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

/// A job whose spec.env an earlier kiln wrote (KILN_CHECKPOINT_DIR the s3:// URI, no
/// KILN_CHECKPOINT_URI) run by this agent: the directory is local and restored all the same.
#[tokio::test]
async fn a_job_written_by_an_earlier_kiln_gets_a_local_checkpoint_directory_from_this_agent() {
    let _g = exclusive().await;
    let p = provider().await;
    let run = "echo \"dir=$KILN_CHECKPOINT_DIR uri=$KILN_CHECKPOINT_URI found=$(cat \"$KILN_CHECKPOINT_DIR/earlier.txt\")\"\n\
               echo again >\"$KILN_CHECKPOINT_DIR/again.txt\"";
    let (bucket, cluster, cfg) = setup(&p, run).await;
    let name = str_of(&bucket, "name").to_string();
    put_marked(&name, "run-1/earlier.txt", "left by an earlier run").await;
    let job = create(&p, "job.train", &cfg).await;
    let key = format!("kiln/jobs/{}/spec.env", str_of(&job, "job_id"));
    let spec = body(&name, &key).await.unwrap();
    let earlier: String = spec.lines().filter(|l| !l.contains("KILN_CHECKPOINT_URI")).map(|l| format!("{l}\n")).collect();
    assert!(earlier.contains(&format!("export KILN_CHECKPOINT_DIR='s3://{name}/run-1/'\n")), "{earlier}");
    aws().await.s3.put_object().bucket(&name).key(&key).body(earlier.into_bytes().into()).send().await.unwrap();

    let _agents = Agents::boot(&strs(&cluster, "instance_ids")).await;
    let done = wait_status(&p, "job.train", &job, &["succeeded", "failed"]).await;
    assert_eq!(str_of(&done, "status"), "succeeded", "{done}");
    let out = log(&p, &done, 0).await;
    assert!(out.contains(&format!("/checkpoint uri=s3://{name}/run-1/ found=left by an earlier run")), "{out}");
    assert!(out.starts_with("setting up\ndir=/"), "{out}");
    assert_eq!(body(&name, "run-1/again.txt").await.as_deref(), Some("again\n"));
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

/// Issue 13: `secret_env` reaches the job through the SSM SecureString parameter (never the
/// bucket, and state keeps only a salted digest); a `workdir` on the machine running kiln is
/// uploaded through the bucket (less what its `.kilnignore` excludes) and every instance runs
/// the scripts in its unpacked copy.
#[tokio::test]
async fn secret_env_and_the_workdir_reach_the_job_through_ssm_and_the_bucket() {
    let _g = exclusive().await;
    let p = provider().await;
    let secret = "hf_moto-S3cr3t-'quoted'";
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("data.txt"), "uploaded\n").unwrap();
    std::fs::write(src.path().join(".kilnignore"), "*.bin\n").unwrap();
    std::fs::write(src.path().join("big.bin"), "excluded").unwrap();
    let run = format!(
        "if [ \"$(cat data.txt)\" = uploaded ] && [ ! -e big.bin ] && [ \"$(printf %s \"$HF_TOKEN\" | sha256sum | cut -c1-64)\" = {} ]; then echo delivered; else echo not-delivered; ls -a; exit 9; fi",
        sha256(secret)
    );
    let (bucket, cluster, cfg) = setup(&p, &run).await;
    let mut m = cfg.as_map().cloned().unwrap();
    m.insert("workdir".into(), Value::from(src.path().display().to_string()));
    let secrets: kiln_value::Map = [("HF_TOKEN".to_string(), Value::from(secret))].into_iter().collect();
    m.insert("secret_env".into(), Value::Map(secrets).sensitive());
    let job = create(&p, "job.train", &Value::Map(m)).await;
    assert!(str_of(&job, "workdir_digest").starts_with("sha256:"), "{job}");
    assert!(!job.to_json().to_string().contains("S3cr3t"), "state holds a digest only: {job}");
    let name = str_of(&bucket, "name");
    let prefix = format!("kiln/jobs/{}", str_of(&job, "job_id"));
    let stored = keys(name, &prefix).await;
    assert!(stored.iter().any(|k| k.ends_with("/workdir.tar")), "{stored:?}");
    for (k, b) in bodies(name, &prefix).await {
        assert!(!b.contains("S3cr3t"), "{k} holds the secret");
    }

    let agents = Agents::boot(&strs(&cluster, "instance_ids")).await;
    let done = wait_status(&p, "job.train", &job, &["succeeded", "failed"]).await;
    for rank in 0..2 {
        let out = log(&p, &done, rank).await;
        assert!(out.contains("delivered") && !out.contains("not-delivered"), "node {rank}: {out}");
    }
    assert_eq!(str_of(&done, "status"), "succeeded", "{done}");
    for (path, b) in files_under(agents.dir.path()) {
        assert!(!String::from_utf8_lossy(&b).contains("S3cr3t"), "{} holds the secret", path.display());
    }
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    drop(agents);
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

/// Issue 13: a create's pending entry keeps `secret_env` sealed, so recovering it never writes
/// the digests as the job's secrets: a job its token tagged the instances with is adopted as it
/// is (its parameter keeps the values), one never made is gone, and one interrupted before the
/// tags is cleaned up (parameter and files) and gone, for the next plan to create again.
#[tokio::test]
async fn recovering_a_pending_job_with_sealed_secrets_never_writes_the_digests() {
    use kiln_provider::portable::secret_env;
    use kiln_provider::RecoverRequest;
    let _g = exclusive().await;
    let p = provider().await;
    let (bucket, cluster, cfg) = setup(&p, "true").await;
    let mut m = cfg.as_map().cloned().unwrap();
    let secrets: kiln_value::Map = [("HF_TOKEN".to_string(), Value::from("hf_recover_S3cr3t"))].into_iter().collect();
    m.insert("secret_env".into(), Value::Map(secrets).sensitive());
    let cfg = Value::Map(m);
    let sealed = secret_env::seal(planned(&p, "job.train", &cfg, None).await.unmark_deep().0);
    assert!(!sealed.to_json().to_string().contains("S3cr3t"));
    let recover = |token: &'static str| {
        let (p, sealed) = (&p, &sealed);
        async move { p.recover(RecoverRequest { address: "job.train", kind: "job", token, planned: sealed }).await }
    };
    let parameter = |job: &Value| format!("/kiln/jobs/{}/env", str_of(job, "job_id"));
    let secret_of = |name: String| async move {
        let got = aws().await.ssm.get_parameter().name(&name).with_decryption(true).send().await.ok()?;
        Some(String::from_utf8(base64_decode(got.parameter()?.value()?)).unwrap())
    };

    // Never made: gone, and nothing is written.
    let none = recover("tok-never").await;
    assert!(!none.diagnostics.has_errors() && none.state.is_none(), "{:?} {:?}", none.diagnostics, none.state);

    // Made in full: adopted, its parameter untouched.
    let job = create_with_token(&p, "job.train", &cfg, "tok-done").await;
    let found = recover("tok-done").await;
    assert!(!found.diagnostics.has_errors(), "{:?}", found.diagnostics);
    let found = found.state.expect("the job its token made is adopted");
    assert_eq!(str_of(&found, "job_id"), str_of(&job, "job_id"));
    assert!(!found.to_json().to_string().contains("S3cr3t"), "{found}");
    let held = secret_of(parameter(&job)).await.expect("the parameter stays");
    assert!(held.contains("hf_recover_S3cr3t"), "the parameter holds the values, not digests: {held}");

    // Interrupted before the instances were tagged: cleaned up, gone.
    let ec2 = aws().await.ec2;
    let tag = aws_sdk_ec2::types::Tag::builder().key("kiln:job").value(str_of(&job, "uri")).build();
    ec2.delete_tags().set_resources(Some(strs(&cluster, "instance_ids"))).tags(tag).send().await.unwrap();
    let gone = recover("tok-done").await;
    assert!(!gone.diagnostics.has_errors() && gone.state.is_none(), "{:?} {:?}", gone.diagnostics, gone.state);
    assert_eq!(secret_of(parameter(&job)).await, None, "the interrupted create's parameter is deleted");
    let prefix = format!("kiln/jobs/{}", str_of(&job, "job_id"));
    assert_eq!(keys(str_of(&bucket, "name"), &prefix).await, Vec::<String>::new());
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}
