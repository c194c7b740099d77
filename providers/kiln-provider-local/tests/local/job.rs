//! `job`: processes started per node with the KILN_* environment, status from the processes
//! and exit files (succeeded, failed, lost), replacement of a lost job, stopping (SIGTERM,
//! then SIGKILL), logs from offsets, recover and import.

use std::process::Command;

use kiln_provider::conformance::{self, Case};
use kiln_provider::{CreateRequest, ImportRequest, LogsRequest, Provider, RecoverRequest};
use kiln_provider_local::procs::group_alive;
use kiln_provider_local::LocalProvider;
use kiln_value::Value;
use serde_json::json;

use crate::common::*;

async fn cluster(p: &LocalProvider, nodes: u64) -> Value {
    create(p, "cluster.c", &config(p, "cluster", json!({ "nodes": nodes }))).await
}

/// A job configuration on `cluster` with the given attributes.
fn job(p: &LocalProvider, cluster: &Value, mut attrs: serde_json::Value) -> Value {
    attrs["cluster"] = cluster.to_json();
    config(p, "job", attrs)
}

fn pids(state: &Value) -> Vec<u32> {
    list_of(state, "pids").iter().map(|v| v.to_string().parse().expect("pid")).collect()
}

fn exit_codes(state: &Value) -> Vec<Value> {
    list_of(state, "exit_codes").to_vec()
}

/// `KEY=VALUE` lines of a log.
fn vars(log: &str) -> std::collections::BTreeMap<String, String> {
    log.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Waits until node 0 has printed `ready` (its signal handler is in place).
async fn wait_ready(p: &LocalProvider, address: &str, state: &Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !log(p, address, state, 0).await.contains("ready") {
        assert!(std::time::Instant::now() < deadline, "the job never became ready");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn conformance_suite() {
    let (_dir, p) = cpu_provider();
    let c = cluster(&p, 1).await;
    // As the suite expects: only what the user wrote, without the engine's filled-in nulls.
    let raw = |mut attrs: serde_json::Value| {
        attrs["cluster"] = c.to_json();
        json(attrs)
    };
    let case = Case {
        kind: "job",
        config: raw(json!({ "run": "sleep 30" })),
        update: Some(raw(json!({ "run": "sleep 30", "stop_grace": 1 }))),
        import_id: None,
    };
    conformance::run(&p, &[case]).await;
}

#[tokio::test]
async fn runs_and_succeeds_with_the_kiln_environment_on_every_node() {
    let (_dir, p) = provider(machine(8, "2x-tesla-t4.csv"));
    let c = cluster(&p, 2).await;
    let bucket = create(&p, "bucket.ckpt", &config(&p, "bucket", json!({}))).await;
    let cfg = job(
        &p,
        &c,
        json!({
            "run": "env | grep -E '^(KILN_|CUDA_VISIBLE_DEVICES=|GREETING=)' | sort",
            "env": { "GREETING": "hello" },
            "checkpoint": { "bucket": bucket.to_json(), "path": "run-1/" },
        }),
    );
    let created = create(&p, "job.train", &cfg).await;
    assert!(matches!(status(&created), "running" | "succeeded"), "{created}");
    let job_id = str_of(&created, "job_id").to_string();
    assert!(job_id.starts_with("train-"), "{job_id}");
    assert_eq!(pids(&created).len(), 2);

    let done = finished(&p, "job.train", &created).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    assert_eq!(exit_codes(&done), vec![json(json!(0)), json(json!(0))]);
    assert!(done.get("finished_at").is_some_and(|f| f.as_str().is_some()));

    let ckpt = format!("{}/run-1", str_of(&bucket, "path"));
    assert!(std::path::Path::new(&ckpt).is_dir());
    let nodes: Vec<_> = [log(&p, "job.train", &done, 0).await, log(&p, "job.train", &done, 1).await].iter().map(|l| vars(l)).collect();
    for (rank, env) in nodes.iter().enumerate() {
        let get = |k: &str| env.get(k).map(String::as_str).unwrap_or_else(|| panic!("node {rank} lacks {k}: {env:?}"));
        assert_eq!(get("KILN_NODE_RANK"), rank.to_string());
        assert_eq!(get("KILN_NUM_NODES"), "2");
        assert_eq!(get("KILN_NODE_IPS"), "127.0.0.1,127.0.0.1");
        assert_eq!(get("KILN_MASTER_ADDR"), "127.0.0.1");
        assert!(get("KILN_MASTER_PORT").parse::<u16>().is_ok_and(|p| p > 0));
        assert_eq!(get("KILN_NUM_GPUS_PER_NODE"), "1");
        assert_eq!(get("CUDA_VISIBLE_DEVICES"), rank.to_string());
        assert_eq!(get("KILN_JOB_ID"), job_id);
        assert_eq!(std::path::Path::new(get("KILN_CHECKPOINT_DIR")), std::path::Path::new(&ckpt));
        assert_eq!(get("GREETING"), "hello");
        assert_eq!(get("KILN_CHECKPOINT_URI"), format!("{}/run-1", str_of(&bucket, "uri")));
        assert_eq!((get("KILN_LOCAL_RANK"), get("KILN_TASK_RANK"), get("KILN_NUM_TASKS")), ("0", rank.to_string().as_str(), "2"));
    }
    assert_eq!(nodes[0]["KILN_MASTER_PORT"], nodes[1]["KILN_MASTER_PORT"]);

    let again = plan(&p, "job.train", &cfg, Some(&done)).await;
    assert!(!again.diagnostics.has_errors() && again.requires_replace.is_empty(), "{:?}", again.requires_replace);
    assert!(again.planned.unmarked_eq(&done), "a finished job with the same configuration is left alone: {}", again.planned);
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    assert!(!std::path::Path::new(str_of(&done, "log_dir")).exists());
}

#[tokio::test]
async fn a_failing_node_fails_the_job_with_its_exit_code() {
    let (_dir, p) = cpu_provider();
    let c = cluster(&p, 2).await;
    let cfg = job(&p, &c, json!({ "run": "if [ \"$KILN_NODE_RANK\" = 1 ]; then exit 3; fi" }));
    let done = finished(&p, "job.fail", &create(&p, "job.fail", &cfg).await).await;
    let both = read_until(&p, "job.fail", &done, |s| exit_codes(s).iter().all(|c| !c.is_null())).await;
    assert_eq!(status(&both), "failed");
    assert_eq!(exit_codes(&both), vec![json(json!(0)), json(json!(3))]);
}

#[tokio::test]
async fn a_failing_setup_skips_run() {
    let (_dir, p) = cpu_provider();
    let c = cluster(&p, 1).await;
    let cfg = job(&p, &c, json!({ "setup": "echo preparing; exit 5", "run": "echo never" }));
    let done = finished(&p, "job.setup", &create(&p, "job.setup", &cfg).await).await;
    assert_eq!(status(&done), "failed");
    assert_eq!(exit_codes(&done), vec![json(json!(5))]);
    assert_eq!(log(&p, "job.setup", &done, 0).await, "preparing\n");
}

#[tokio::test]
async fn killed_processes_read_as_lost_and_the_replacement_counts_a_restart() {
    let (_dir, p) = cpu_provider();
    let c = cluster(&p, 2).await;
    let cfg = job(&p, &c, json!({ "run": "sleep 300" }));
    let created = create(&p, "job.train", &cfg).await;
    assert_eq!(created.get("restarts"), Some(&json(json!(0))));
    for pid in pids(&created) {
        Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status().expect("kill");
    }
    let lost = read_until(&p, "job.train", &created, |s| status(s) == "lost").await;

    let replan = plan(&p, "job.train", &cfg, Some(&lost)).await;
    assert!(replan.requires_replace.contains(&"status".to_string()), "{:?}", replan.requires_replace);
    assert!(replan.planned.get("status").is_some_and(Value::is_unknown));

    // The engine replaces: a fresh plan that knows what it replaces, delete, then create.
    let fresh = plan_replacing(&p, "job.train", &cfg, &lost).await;
    assert_eq!(fresh.planned.get("restarts"), Some(&json(json!(1))));
    assert!(!delete(&p, "job.train", &lost).await.has_errors());
    let token = token();
    let restarted = p
        .create(CreateRequest { address: "job.train", kind: "job", planned: &fresh.planned, token: &token })
        .await
        .state
        .expect("restarted");
    assert_eq!(restarted.get("restarts"), Some(&json(json!(1))));
    assert_eq!(status(&restarted), "running");
    assert!(!delete(&p, "job.train", &restarted).await.has_errors());
    assert!(pids(&restarted).iter().all(|g| !group_alive(*g)));
}

#[tokio::test]
async fn destroy_stops_a_running_job_with_sigterm() {
    let (dir, p) = cpu_provider();
    let c = cluster(&p, 1).await;
    let mark = dir.path().join("stopped");
    let run = "trap 'echo stopped > \"$MARK\"; exit 0' TERM; echo ready; while :; do sleep 0.1; done";
    let cfg = job(&p, &c, json!({ "run": run, "env": { "MARK": mark.display().to_string() } }));
    let created = create(&p, "job.serve", &cfg).await;
    wait_ready(&p, "job.serve", &created).await;
    let tail = p.logs(LogsRequest { address: "job.serve", kind: "job", state: &created, node: 0, offset: 0, seek: None }).await;
    assert!(!tail.finished, "a running job's log is not finished");

    assert!(!delete(&p, "job.serve", &created).await.has_errors());
    assert!(mark.is_file(), "the job got SIGTERM and handled it");
    assert!(pids(&created).iter().all(|g| !group_alive(*g)));
    assert!(read(&p, "job.serve", &created).await.is_none());
}

#[tokio::test]
async fn destroy_kills_a_job_that_ignores_sigterm() {
    let (dir, p) = cpu_provider();
    let c = cluster(&p, 1).await;
    let mark = dir.path().join("term");
    let run = "trap 'echo got-term > \"$MARK\"' TERM; echo ready; while :; do sleep 0.1; done";
    let cfg = job(&p, &c, json!({ "run": run, "stop_grace": 1, "env": { "MARK": mark.display().to_string() } }));
    let created = create(&p, "job.stubborn", &cfg).await;
    wait_ready(&p, "job.stubborn", &created).await;

    assert!(!delete(&p, "job.stubborn", &created).await.has_errors());
    assert!(mark.is_file(), "SIGTERM came first");
    assert!(pids(&created).iter().all(|g| !group_alive(*g)), "SIGKILL ended it");
}

#[tokio::test]
async fn logs_read_from_offsets() {
    let (_dir, p) = cpu_provider();
    let c = cluster(&p, 1).await;
    let cfg = job(&p, &c, json!({ "run": "printf 'line-1\\nline-2\\nline-3\\n'" }));
    let done = finished(&p, "job.log", &create(&p, "job.log", &cfg).await).await;
    let at = |offset: u64| p.logs(LogsRequest { address: "job.log", kind: "job", state: &done, node: 0, offset, seek: None });
    let all = at(0).await;
    assert_eq!(String::from_utf8_lossy(&all.data), "line-1\nline-2\nline-3\n");
    assert_eq!(all.next_offset, 21);
    assert!(all.finished);
    let rest = at(7).await;
    assert_eq!(String::from_utf8_lossy(&rest.data), "line-2\nline-3\n");
    assert_eq!(rest.next_offset, 21);
    let end = at(21).await;
    assert!(end.data.is_empty() && end.finished && end.next_offset == 21);
    let no_node = p.logs(LogsRequest { address: "job.log", kind: "job", state: &done, node: 1, offset: 0, seek: None }).await;
    assert!(no_node.diagnostics.has_errors());
}

#[tokio::test]
async fn recover_adopts_what_an_interrupted_create_started() {
    let (dir, p) = cpu_provider();
    let c = cluster(&p, 1).await;
    let cfg = job(&p, &c, json!({ "run": "sleep 300" }));
    let planned = plan(&p, "job.train", &cfg, None).await.planned;
    let made = create_with_token(&p, "job.train", &cfg, "abcdef12-token").await;
    let recover = |token: &'static str| p.recover(RecoverRequest { address: "job.train", kind: "job", token, planned: &planned });
    let found = recover("abcdef12-token").await.state.expect("adopted");
    assert_eq!(found.get("job_id"), made.get("job_id"));
    assert_eq!(status(&found), "running");
    assert!(recover("99999999-other").await.state.is_none());

    // A create interrupted before its processes started is cleared, so it is created again.
    let half = dir.path().join(".kiln/jobs/train-deadbeef");
    std::fs::create_dir_all(&half).unwrap();
    let meta = json!({ "address": "job.train", "token": "deadbeef-t", "job_id": "train-deadbeef", "nodes": 1, "started_at": "", "restarts": 0, "config": {} });
    std::fs::write(half.join("job.json"), meta.to_string()).unwrap();
    assert!(recover("deadbeef-t").await.state.is_none());
    assert!(!half.exists());
    assert!(!delete(&p, "job.train", &made).await.has_errors());
}

/// Issue 13: a pending entry keeps `secret_env` sealed. Recovering it adopts the job its token
/// made with those digests (which the configuration's values still match: no change planned),
/// never writes them as the job's secrets, and a job never made is gone, not created.
#[tokio::test]
async fn recover_with_sealed_secret_env_adopts_by_token_and_creates_nothing() {
    use kiln_provider::portable::secret_env;
    let (dir, p) = cpu_provider();
    let c = cluster(&p, 1).await;
    let cfg = job(&p, &c, json!({ "run": "sleep 300", "secret_env": { "HF_TOKEN": "hf_local_S3cr3t" } }));
    let planned = plan(&p, "job.train", &cfg, None).await.planned;
    let sealed = secret_env::seal(planned.clone().unmark_deep().0);
    let made = create_with_token(&p, "job.train", &cfg, "abcdef12-sealed").await;
    let recover = |token: &'static str| p.recover(RecoverRequest { address: "job.train", kind: "job", token, planned: &sealed });
    let found = recover("abcdef12-sealed").await;
    assert!(!found.diagnostics.has_errors(), "{:?}", found.diagnostics);
    let found = found.state.expect("adopted");
    assert_eq!(found.get("job_id"), made.get("job_id"));
    assert_eq!(found.get("secret_env"), sealed.get("secret_env"), "the pending entry's digests");
    assert!(!found.to_json().to_string().contains("S3cr3t"), "{found}");
    let again = plan(&p, "job.train", &cfg, Some(&found)).await.planned;
    assert_eq!(again.get("secret_env").map(Value::unmarked), found.get("secret_env"), "the configuration's values match the digests");
    let file = std::fs::read_to_string(std::path::Path::new(str_of(&made, "log_dir")).join(secret_env::FILE)).unwrap();
    assert!(file.contains("hf_local_S3cr3t") && !file.contains("sha256:"), "the job keeps its values");
    let jobs = || std::fs::read_dir(dir.path().join(".kiln/jobs")).unwrap().count();
    let before = jobs();
    let none = recover("99999999-never").await;
    assert!(!none.diagnostics.has_errors() && none.state.is_none());
    assert_eq!(jobs(), before, "nothing is created");
    assert!(!delete(&p, "job.train", &made).await.has_errors());
}

#[tokio::test]
async fn import_by_job_id() {
    let (_dir, p) = cpu_provider();
    let c = cluster(&p, 1).await;
    let made = create(&p, "job.train", &job(&p, &c, json!({ "run": "true" }))).await;
    let id = str_of(&made, "job_id");
    let imported = p.import(ImportRequest { address: "job.train", kind: "job", id }).await.state.expect("imported");
    assert_eq!(str_of(&imported, "run"), "true");
    assert_eq!(imported.get("log_dir"), made.get("log_dir"));
    let none = p.import(ImportRequest { address: "job.x", kind: "job", id: "nope" }).await;
    assert!(none.diagnostics.has_errors());
    finished(&p, "job.train", &made).await;
}

#[tokio::test]
async fn impossible_jobs_fail_at_plan_time() {
    let (_dir, p) = cpu_provider();
    let c = cluster(&p, 2).await;
    let too_many = plan(&p, "job.big", &job(&p, &c, json!({ "run": "true", "nodes": 3 })), None).await;
    let e = too_many.diagnostics.errors().next().expect("refused");
    assert_eq!(e.summary, "job.big asks for 3 nodes, its cluster has 2");
    let no_bucket = plan(&p, "job.b", &job(&p, &c, json!({ "run": "true", "checkpoint": { "bucket": "s3://x" } })), None).await;
    assert!(no_bucket.diagnostics.has_errors());
    let no_cluster = plan(&p, "job.c", &config(&p, "job", json!({ "run": "true", "cluster": "train" })), None).await;
    assert!(no_cluster.diagnostics.has_errors());
}

/// The process groups carrying the job's identity (`KILN_LOCAL_JOB_DIR`) in their environment.
fn marked(state: &Value) -> Vec<u32> {
    kiln_provider_local::procs::groups_with_env(&format!("KILN_LOCAL_JOB_DIR={}", str_of(state, "log_dir")))
}

/// Issue 10, defect 2: a kill between starting a node and writing its pid file left a node that
/// recovery did not know. Recovery finds it by the job's identity and kills it.
#[tokio::test]
async fn recover_kills_a_node_whose_pid_file_was_never_written() {
    let (_dir, p) = cpu_provider();
    let c = cluster(&p, 2).await;
    let cfg = job(&p, &c, json!({ "run": "sleep 300" }));
    let planned = plan(&p, "job.train", &cfg, None).await.planned;
    let made = create_with_token(&p, "job.train", &cfg, "cafe0001-token").await;
    let start = std::time::Instant::now();
    while marked(&made).len() < 2 && start.elapsed() < std::time::Duration::from_secs(30) {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(marked(&made).len(), 2, "both nodes carry the identity");
    std::fs::remove_file(std::path::Path::new(str_of(&made, "log_dir")).join("node-1.pid")).unwrap();

    let r = p.recover(RecoverRequest { address: "job.train", kind: "job", token: "cafe0001-token", planned: &planned }).await;
    assert!(r.state.is_none(), "a half-started job is cleared, to be created again");
    assert!(marked(&made).is_empty(), "no process of the job survives");
    assert!(pids(&made).iter().all(|g| !group_alive(*g)));
}

/// The same for destroy: a node without its pid file is stopped with the others.
#[tokio::test]
async fn destroy_stops_a_node_whose_pid_file_is_missing() {
    let (_dir, p) = cpu_provider();
    let c = cluster(&p, 2).await;
    let made = create(&p, "job.train", &job(&p, &c, json!({ "run": "sleep 300", "stop_grace": 1 }))).await;
    std::fs::remove_file(std::path::Path::new(str_of(&made, "log_dir")).join("node-0.pid")).unwrap();
    assert!(!delete(&p, "job.train", &made).await.has_errors());
    assert!(marked(&made).is_empty(), "no process of the job survives destroy");
    assert!(pids(&made).iter().all(|g| !group_alive(*g)));
}

/// A job as the kiln before issue 11 wrote it to state (the shape of
/// `tests/e2e/fixtures/upgrade-before-11`), on a cluster and bucket as that kiln wrote them.
fn written_before(dir: &str, checkpoint: bool) -> (serde_json::Value, serde_json::Value) {
    let bucket = json!({ "force_destroy": true, "name": "ckpt", "path": "data/ckpt", "uri": format!("file://{dir}/data/ckpt") });
    let cluster = json!({ "accelerators": null, "cpus": "1", "cpus_total": 4, "gpus": [], "gpus_per_node": 0, "memory": "1+",
        "memory_gb": 64, "nodes": 2 });
    let mut state = json!({
        "checkpoint": null, "cluster": cluster, "env": { "STEPS": "3" }, "exit_codes": [0, 0],
        "finished_at": "2026-12-06T23:02:37Z", "job_id": "train-42cdca48", "log_dir": format!("{dir}/.kiln/jobs/train-42cdca48"),
        "nodes": 2, "pids": [31111, 31113], "restarts": 0, "run": "echo rank $KILN_NODE_RANK > $KILN_CHECKPOINT_DIR/rank-$KILN_NODE_RANK",
        "setup": null, "started_at": "2026-12-06T23:02:37Z", "status": "succeeded", "stop_grace": 10, "workdir": null,
    });
    let mut config = json!({ "cluster": cluster, "run": state["run"], "env": { "STEPS": "3" } });
    if checkpoint {
        state["checkpoint"] = json!({ "bucket": bucket, "path": "run-1/" });
        config["checkpoint"] = state["checkpoint"].clone();
    }
    (state, config)
}

/// Issue 11: a job the previous kiln wrote, with its configuration unchanged, plans no change.
#[tokio::test]
async fn a_job_written_before_plans_no_change() {
    let (dir, p) = cpu_provider();
    for checkpoint in [true, false] {
        let (state, cfg) = written_before(dir.path().to_str().unwrap(), checkpoint);
        let prior = json(state);
        let r = plan(&p, "job.train", &config(&p, "job", cfg), Some(&prior)).await;
        assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
        assert!(r.requires_replace.is_empty(), "checkpoint {checkpoint}: {:?}", r.requires_replace);
        // Issue 13's attributes (`secret_env`, `workdir_digest`), absent from the old state, plan
        // as null: the engine compares an absent attribute as null, so that is no change.
        assert_eq!(changed(&prior, &r.planned), Vec::<String>::new(), "checkpoint {checkpoint}");
    }
}

/// A destroy killed while it removed the job's directory (after stopping the processes) can
/// leave the directory without `job.json`. The job must stay readable — as lost, so a plan
/// replaces it — and the next destroy must finish removing it, never fail on the remnant.
#[tokio::test]
async fn a_directory_a_killed_destroy_left_half_removed_reads_as_lost_and_destroys() {
    let (_dir, p) = cpu_provider();
    let c = cluster(&p, 2).await;
    let made = create(&p, "job.train", &job(&p, &c, json!({ "run": "sleep 300", "stop_grace": 1 }))).await;
    let dir = std::path::PathBuf::from(str_of(&made, "log_dir"));
    std::fs::remove_file(dir.join("job.json")).unwrap();

    let seen = read(&p, "job.train", &made).await.expect("a half-removed job is still there");
    assert_eq!(status(&seen), "lost");
    assert!(!delete(&p, "job.train", &made).await.has_errors());
    assert!(!dir.exists(), "the remnant is removed");
    assert!(marked(&made).is_empty(), "no process of the job survives destroy");
    assert!(pids(&made).iter().all(|g| !group_alive(*g)));
}
