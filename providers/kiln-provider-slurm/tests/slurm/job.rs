//! `job` on the real cluster: a 2-task job runs and completes with the KILN_* environment,
//! a failing job reports its exit code, a cancelled job is gone from Slurm's running jobs,
//! refresh reads every job with one squeue call, and an interrupted submission is recovered.

use std::collections::BTreeSet;

use kiln_provider::{LogSeek, LogsRequest, Provider, ReadItem, ReadRequest, RecoverRequest};
use kiln_value::Value;
use serde_json::json;

use crate::common::{
    config, create, create_with_token, debug_cluster, delete, log, num_of, plan, provider, read, read_until, status, str_of, token, Jobs,
};
use crate::harness::{slurm, squeue_state};

const ENV: &str = r#"echo "task=$KILN_TASK_RANK/$KILN_NUM_TASKS node=$KILN_NODE_RANK/$KILN_NUM_NODES ips=$KILN_NODE_IPS master=$KILN_MASTER_ADDR:$KILN_MASTER_PORT gpus=$KILN_NUM_GPUS_PER_NODE job=$KILN_JOB_ID ckpt=$KILN_CHECKPOINT_DIR uri=$KILN_CHECKPOINT_URI local=$KILN_LOCAL_RANK extra=$EXTRA"
sleep 2
"#;

/// `key=value` words of a line.
fn fields(line: &str) -> std::collections::BTreeMap<&str, &str> {
    line.split_whitespace().filter_map(|w| w.split_once('=')).collect()
}

#[tokio::test]
async fn two_task_job_runs_completes_and_logs_with_the_kiln_environment() {
    let (p, dir) = provider();
    let cluster = debug_cluster(&p, json!({})).await;
    let ckpt = dir.path().join("bucket");
    let cfg = config(
        &p,
        "job",
        json!({
            "cluster": cluster.to_json(), "tasks": 2, "run": ENV, "setup": "echo setup on $(hostname -s) rank $KILN_NODE_RANK",
            "env": { "EXTRA": "x y" }, "requeue": true, "time_limit": "10:00",
            "checkpoint": { "bucket": { "path": ckpt.display().to_string() }, "path": "run-1/" },
        }),
    );
    let planned = plan(&p, "job.train", &cfg, None).await;
    assert_eq!(planned.planned.get("nodes"), Some(&Value::from(1i64)));
    assert_eq!(planned.planned.get("tasks"), Some(&Value::from(2i64)));
    let job = create(&p, "job.train", &cfg).await;
    let mut jobs = Jobs::default();
    jobs.add(&job);
    let id = str_of(&job, "job_id").to_string();
    assert_eq!(str_of(&job, "job_name"), format!("kiln-{}", str_of(&job, "job_dir").rsplit('/').next().unwrap()));

    // Slurm has it, with what kiln asked for.
    let rec = slurm(&["scontrol", "show", "job", "-o", &id]);
    for want in ["NumTasks=2", "Requeue=1", "TimeLimit=00:10:00", "Partition=debug", &format!("StdOut={}", str_of(&job, "output"))] {
        assert!(rec.contains(want), "`{want}` in {rec}");
    }

    let running = read_until(&p, "job.train", &job, |s| status(s) != "pending").await;
    assert!(matches!(status(&running), "running" | "succeeded"), "{running}");
    let done = read_until(&p, "job.train", &job, |s| !matches!(status(s), "pending" | "running")).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    assert_eq!(str_of(&done, "slurm_state"), "COMPLETED");
    assert_eq!(num_of(&done, "exit_code"), 0);
    assert!(done.get("finished_at").and_then(Value::as_str).is_some(), "{done}");
    assert!(done.get("started_at").and_then(Value::as_str).is_some(), "{done}");

    let out = log(&p, "job.train", &done).await;
    let tasks: Vec<_> = out.lines().filter(|l| l.starts_with("task=")).map(fields).collect();
    assert_eq!(tasks.len(), 2, "{out}");
    assert!(out.lines().filter(|l| l.starts_with("task=")).all(|l| l.ends_with(" extra=x y")), "the user's env, quoted: {out}");
    let ranks: BTreeSet<&str> = tasks.iter().map(|t| t["task"]).collect();
    assert_eq!(ranks, BTreeSet::from(["0/2", "1/2"]), "{out}");
    let ckpt_dir = ckpt.join("run-1").display().to_string();
    for t in &tasks {
        assert_eq!(t["node"], "0/1", "{out}");
        assert_eq!(t["ips"], "127.0.0.1", "{out}");
        assert!(t["master"].starts_with("127.0.0.1:"), "{out}");
        assert_eq!(t["gpus"], "0", "{out}");
        assert_eq!(t["job"], id, "{out}");
        assert_eq!(t["ckpt"], ckpt_dir, "{out}");
        assert_eq!(t["uri"], format!("file://{ckpt_dir}"), "a bucket without a uri: its directory: {out}");
        assert_eq!(Some(t["local"]), t["task"].split('/').next(), "one node: the local rank is the task rank: {out}");
    }
    assert_eq!(tasks[0]["master"], tasks[1]["master"], "one master port for all tasks: {out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("setup on")).count(), 1, "setup runs once per node: {out}");
    assert!(std::path::Path::new(&ckpt_dir).is_dir(), "the checkpoint directory is made");

    // The job completion log agrees.
    let acct = slurm(&["sacct", "-c", "-n", "--parsable2", "-j", &id, "-o", "JobID,State,ExitCode"]);
    assert!(acct.lines().any(|l| l == format!("{id}|COMPLETED|0:0")), "{acct}");

    // A log read from the end is empty and finished; other nodes have no separate log.
    let end = p.logs(LogsRequest { address: "job.train", kind: "job", state: &done, node: 0, offset: out.len() as u64, seek: None }).await;
    assert!(end.data.is_empty() && end.finished, "finished at the end");
    let r = p.logs(LogsRequest { address: "job.train", kind: "job", state: &done, node: 1, offset: 0, seek: None }).await;
    let e = r.diagnostics.errors().next().expect("node 1 is an error").clone();
    assert!(e.summary.contains("one output file"), "{}", e.summary);
    // `kiln logs --tail` and `--since` seek: the end, and times through the file's time index.
    let seek = |s: LogSeek| p.logs(LogsRequest { address: "job.train", kind: "job", state: &done, node: 0, offset: 0, seek: Some(s) });
    let end = seek(LogSeek::End).await;
    assert!(end.all_nodes && end.data.is_empty(), "one log for every node");
    assert_eq!(end.next_offset, out.len() as u64);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let late = seek(LogSeek::Since(now + 60)).await;
    assert!(!late.diagnostics.has_errors(), "{:?}", late.diagnostics);
    assert_eq!(late.next_offset, out.len() as u64, "nothing written after the last sample");
    assert_eq!(seek(LogSeek::Since(now - 3600)).await.next_offset, 0, "everything written within the hour");

    // Destroying a finished job removes its files.
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    assert!(!std::path::Path::new(str_of(&done, "job_dir")).exists());
    assert_eq!(read(&p, "job.train", &done).await, None);
}

#[tokio::test]
async fn failing_job_reports_its_exit_code() {
    let (p, _dir) = provider();
    let cluster = debug_cluster(&p, json!({})).await;
    let job = create(&p, "job.bad", &config(&p, "job", json!({ "cluster": cluster.to_json(), "run": "echo trying; exit 3" }))).await;
    let mut jobs = Jobs::default();
    jobs.add(&job);
    let done = read_until(&p, "job.bad", &job, |s| !matches!(status(s), "pending" | "running")).await;
    assert_eq!(status(&done), "failed", "{done}");
    assert_eq!(str_of(&done, "slurm_state"), "FAILED");
    assert_eq!(num_of(&done, "exit_code"), 3);
    let out = log(&p, "job.bad", &done).await;
    // The task's output and srun's report, in whatever order they reached the file.
    assert!(out.lines().any(|l| l == "trying"), "{out:?}");
    assert!(out.contains("task 0: Exited with exit code 3"), "{out:?}");
}

#[tokio::test]
async fn cancelling_a_running_job_ends_it_in_slurm() {
    let (p, _dir) = provider();
    let cluster = debug_cluster(&p, json!({})).await;
    let job =
        create(&p, "job.long", &config(&p, "job", json!({ "cluster": cluster.to_json(), "tasks": 2, "run": "echo started; sleep 300" })))
            .await;
    let mut jobs = Jobs::default();
    jobs.add(&job);
    let id = str_of(&job, "job_id").to_string();
    read_until(&p, "job.long", &job, |s| status(s) == "running").await;
    let d = delete(&p, "job.long", &job).await;
    assert!(!d.has_errors(), "{d:?}");
    assert_eq!(squeue_state(&id), "CANCELLED");
    assert!(!std::path::Path::new(str_of(&job, "job_dir")).exists(), "the job's files are removed");
    assert_eq!(read(&p, "job.long", &job).await, None, "gone after destroy");
    // Deleting again is fine.
    assert!(!delete(&p, "job.long", &job).await.has_errors());
}

#[tokio::test]
async fn refresh_reads_all_jobs_with_one_squeue_call() {
    let (p, _dir) = provider();
    let cluster = debug_cluster(&p, json!({})).await;
    let mut jobs = Jobs::default();
    let mut states = Vec::new();
    for (i, run) in ["exit 0", "exit 4", "sleep 120"].iter().enumerate() {
        let s = create(&p, &format!("job.j{i}"), &config(&p, "job", json!({ "cluster": cluster.to_json(), "run": run }))).await;
        jobs.add(&s);
        states.push(s);
    }
    read_until(&p, "job.j1", &states[1], |s| status(s) == "failed").await;
    read_until(&p, "job.j0", &states[0], |s| status(s) == "succeeded").await;
    let before = p.api_calls();
    let addrs: Vec<String> = (0..3).map(|i| format!("job.j{i}")).collect();
    let items = states.iter().zip(&addrs).map(|(s, a)| ReadItem { address: a, kind: "job", state: s }).collect();
    let r = p.read(ReadRequest { items }).await;
    let after = p.api_calls();
    let delta = |op: &str| after.get(op).copied().unwrap_or(0) - before.get(op).copied().unwrap_or(0);
    assert_eq!(delta("squeue"), 1, "one squeue for three jobs: {before:?} → {after:?}");
    assert!(delta("sacct") <= 1, "at most one sacct: {before:?} → {after:?}");
    let got: Vec<String> = r.results.iter().map(|x| status(x.state.as_ref().expect("found")).to_string()).collect();
    assert_eq!(got[..2], ["succeeded", "failed"]);
    assert!(matches!(got[2].as_str(), "pending" | "running"), "{got:?}");
    let codes: Vec<i64> = r.results[..2].iter().map(|x| num_of(x.state.as_ref().unwrap(), "exit_code")).collect();
    assert_eq!(codes, [0, 4]);
}

#[tokio::test]
async fn gpus_per_node_come_from_gres() {
    let (p, _dir) = provider();
    let cluster = debug_cluster(&p, json!({ "accelerators": "kilngpu:1" })).await;
    let job = create(
        &p,
        "job.gpu",
        &config(
            &p,
            "job",
            json!({ "cluster": cluster.to_json(), "run": "echo gpus=$KILN_NUM_GPUS_PER_NODE visible=$CUDA_VISIBLE_DEVICES" }),
        ),
    )
    .await;
    let mut jobs = Jobs::default();
    jobs.add(&job);
    assert_eq!(num_of(&job, "gpus_per_node"), 1);
    let done = read_until(&p, "job.gpu", &job, |s| !matches!(status(s), "pending" | "running")).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    let rec = slurm(&["scontrol", "show", "job", "-o", str_of(&job, "job_id")]);
    assert!(rec.contains("gres/gpu:kilngpu=1") || rec.contains("gpu:kilngpu:1"), "{rec}");
    assert_eq!(log(&p, "job.gpu", &done).await.trim(), "gpus=1 visible=0");
}

#[tokio::test]
async fn an_interrupted_submission_is_recovered_by_its_token() {
    let (p, _dir) = provider();
    let cluster = debug_cluster(&p, json!({})).await;
    let cfg = config(&p, "job", json!({ "cluster": cluster.to_json(), "run": "sleep 60" }));
    let t = token();
    let job = create_with_token(&p, "job.r", &cfg, &t).await;
    let mut jobs = Jobs::default();
    jobs.add(&job);
    let planned = plan(&p, "job.r", &cfg, None).await.planned;
    let found = p.recover(RecoverRequest { address: "job.r", kind: "job", token: &t, planned: &planned }).await;
    let found = found.state.expect("the submitted job is found");
    assert_eq!(str_of(&found, "job_id"), str_of(&job, "job_id"));
    assert!(!found.contains_unknown(), "{found}");
    let none = p.recover(RecoverRequest { address: "job.r", kind: "job", token: "never-used", planned: &planned }).await;
    assert!(none.state.is_none() && !none.diagnostics.has_errors());
}

/// Issue 10, defect 2 (Slurm): a create killed after sbatch answered but before the job's ID file
/// was written is found by the job's name.
#[tokio::test]
async fn a_submission_whose_id_was_not_recorded_is_recovered_by_its_name() {
    let (p, _dir) = provider();
    let cluster = debug_cluster(&p, json!({})).await;
    let cfg = config(&p, "job", json!({ "cluster": cluster.to_json(), "run": "sleep 60" }));
    let t = token();
    let job = create_with_token(&p, "job.n", &cfg, &t).await;
    let mut jobs = Jobs::default();
    jobs.add(&job);
    std::fs::remove_file(std::path::Path::new(str_of(&job, "job_dir")).join("slurm_job_id")).expect("the ID file");
    let planned = plan(&p, "job.n", &cfg, None).await.planned;
    let found = p.recover(RecoverRequest { address: "job.n", kind: "job", token: &t, planned: &planned }).await;
    assert!(!found.diagnostics.has_errors(), "{:?}", found.diagnostics);
    let found = found.state.expect("the submitted job is found by its name");
    assert_eq!(str_of(&found, "job_id"), str_of(&job, "job_id"));
}

#[tokio::test]
async fn bad_submissions_fail_with_slurms_words() {
    let (p, dir) = provider();
    let cluster = debug_cluster(&p, json!({})).await;
    let mut c = cluster.to_json();
    c["account"] = json!("no-such-account");
    c["reservation"] = json!("no-such-reservation");
    let cfg = config(&p, "job", json!({ "cluster": c, "run": "true" }));
    let planned = plan(&p, "job.x", &cfg, None).await;
    let r = p.create(kiln_provider::CreateRequest { address: "job.x", kind: "job", planned: &planned.planned, token: &token() }).await;
    let e = r.diagnostics.errors().next().expect("sbatch refuses").clone();
    assert!(e.summary.starts_with("job.x: submitting the job (sbatch) failed on this machine: "), "{}", e.summary);
    assert!(e.summary.to_lowercase().contains("reservation"), "{}", e.summary);
    assert!(r.state.is_none());
    let jobs = dir.path().join("root/jobs").read_dir().map(|d| d.count()).unwrap_or(0);
    assert_eq!(jobs, 0, "a refused submission leaves no job directory");
}

/// A 2-node job as the kiln before issue 11 wrote it to state, on a partition (and bucket) as
/// that kiln wrote them; `bucket` is the checkpoint bucket's state (or null).
fn written_before(bucket: serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    let cluster = json!({
        "partition": "debug", "reservation": null, "account": null, "qos": null, "nodes": 2, "accelerators": null,
        "state": "up", "node_names": ["n1", "n2"], "node_states": { "n1": "allocated", "n2": "allocated" }, "total_nodes": 2,
        "total_cpus": 8, "total_gpus": 0, "gres": [], "max_time": "UNLIMITED", "gpus_per_node": 0, "gpu_type": null,
    });
    let checkpoint = if bucket.is_null() { json!(null) } else { json!({ "bucket": bucket, "path": "run-1/" }) };
    let state = json!({
        "cluster": cluster, "setup": null, "run": "python3 train.py", "workdir": null, "env": { "LR": "0.1" },
        "nodes": 2, "tasks": 2, "gpus_per_node": 0, "cpus_per_task": null, "memory": null, "time_limit": null, "requeue": false,
        "sbatch_args": null, "checkpoint": checkpoint,
        "job_id": "1234", "job_name": "kiln-train-1a2b3c4d", "job_dir": "/home/kiln/.kiln/slurm/jobs/train-1a2b3c4d",
        "output": "/home/kiln/.kiln/slurm/jobs/train-1a2b3c4d/output.log", "status": "running", "slurm_state": "RUNNING",
        "reason": null, "exit_code": null, "node_list": "n[1-2]", "started_at": "2026-12-06T22:00:00Z", "finished_at": null,
        "restarts": 0,
    });
    let mut fresh = cluster.clone();
    fresh["node_states"] = json!({ "n1": "idle", "n2": "mixed" });
    let config = json!({ "cluster": fresh, "run": state["run"], "env": state["env"], "checkpoint": checkpoint });
    (state, config)
}

/// Issue 11: a job the previous kiln wrote, with its configuration unchanged, plans no change
/// (without a checkpoint block, with a local bucket, with a shared onprem bucket). Plans only:
/// no Slurm needed.
#[tokio::test]
async fn a_job_written_before_plans_no_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = json!({ "root": dir.path().join("root").display().to_string() });
    let p = kiln_provider_slurm::SlurmProvider::configure(&kiln_provider::testing::json(cfg), dir.path()).expect("configure");
    let local = json!({ "force_destroy": false, "name": "ckpt", "path": "/srv/ckpt", "uri": "file:///srv/ckpt" });
    let onprem = json!({ "host": "h1", "name": "ckpt", "path": "/srv/ckpt", "shared": true, "uri": "sftp://10.0.0.1/srv/ckpt",
        "force_destroy": false });
    for bucket in [json!(null), local, onprem] {
        let (state, cfg) = written_before(bucket.clone());
        let prior = kiln_provider::testing::json(state);
        let r = plan(&p, "job.train", &config(&p, "job", cfg), Some(&prior)).await;
        assert!(!r.diagnostics.has_errors(), "{bucket}: {:?}", r.diagnostics);
        assert!(r.requires_replace.is_empty(), "{bucket}: {:?}", r.requires_replace);
        // Issue 13's attributes (`secret_env`, `workdir_digest`), absent from the old state, plan
        // as null: the engine compares an absent attribute as null, so that is no change.
        assert_eq!(kiln_provider::testing::changed(&prior, &r.planned), Vec::<String>::new(), "{bucket}");
    }
}
