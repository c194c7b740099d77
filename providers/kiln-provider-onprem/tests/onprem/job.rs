//! `job`: a 2-host job with the KILN_* environment (ranks, node IPs, master address and port,
//! GPUs, checkpoint directory) checked through `logs`; exit codes; destroy stopping a running
//! job; a host going down mid-job making it `lost` (and its cluster, with no other host, staying
//! as it is); and the conformance suite.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kiln_hostinfo::procs::ProcTable;
use kiln_provider::conformance::{self, Case};
use kiln_provider::{CreateRequest, LogSeek, LogsRequest, Provider, RecoverRequest};
use kiln_provider_onprem::OnpremProvider;
use kiln_value::Value;
use serde_json::json;

use crate::common::*;
use crate::harness::harness;

async fn cluster(p: &OnpremProvider, address: &str, cfg: serde_json::Value) -> Value {
    create(p, address, &config(p, "cluster", cfg)).await
}

fn job(p: &OnpremProvider, cluster: &Value, mut attrs: serde_json::Value) -> Value {
    attrs["cluster"] = cluster.to_json();
    config(p, "job", attrs)
}

/// `KEY=VALUE` lines of a log.
fn vars(log: &str) -> BTreeMap<String, String> {
    log.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn pids(state: &Value) -> Vec<u32> {
    list_of(state, "pids").iter().map(|v| v.to_string().parse().expect("pid")).collect()
}

async fn finished(p: &OnpremProvider, address: &str, state: &Value) -> Value {
    read_until(p, address, state, |s| !matches!(status(s), "running" | "pending")).await
}

/// Waits until every node's log says `ready` (its script is running).
async fn wait_ready(p: &OnpremProvider, address: &str, state: &Value, nodes: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    for rank in 0..nodes {
        while !log(p, address, state, rank).await.contains("ready") {
            assert!(Instant::now() < deadline, "node {rank} never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_two_host_job_sees_its_ranks_and_node_ips() {
    let p = provider(&["host1", "host2"]);
    let c = cluster(&p, "cluster.train", json!({ "nodes": 2, "accelerators": "A100-80GB:2" })).await;
    let ckpt = harness().scratch("shared");
    let bucket = create(&p, "bucket.ckpt", &config(&p, "bucket", json!({ "host": "host1", "path": ckpt, "shared": true }))).await;
    let cfg = job(
        &p,
        &c,
        json!({
            "run": "env | grep -E '^(KILN_|CUDA_VISIBLE_DEVICES=|GREETING=)' | sort",
            "env": { "GREETING": "hello there" },
            "checkpoint": { "bucket": bucket.to_json(), "path": "run-1/" },
        }),
    );
    let created = create(&p, "job.train", &cfg).await;
    let job_id = str_of(&created, "job_id").to_string();
    assert!(job_id.starts_with("train-"), "{job_id}");
    assert_eq!(list_of(&created, "node_ips"), &[Value::from("127.0.1.1"), Value::from("127.0.1.2")]);

    let done = finished(&p, "job.train", &created).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    assert_eq!(list_of(&done, "exit_codes"), &[json(json!(0)), json(json!(0))]);
    assert!(done.get("finished_at").and_then(Value::as_str).is_some());

    let port = num_of(&done, "master_port").to_string();
    for (rank, host) in ["host1", "host2"].iter().enumerate() {
        let env = vars(&log(&p, "job.train", &done, rank).await);
        let get = |k: &str| env.get(k).map(String::as_str).unwrap_or_else(|| panic!("node {rank} lacks {k}: {env:?}"));
        assert_eq!(get("KILN_HARNESS_HOST"), *host, "rank {rank} runs on {host}");
        assert_eq!(get("KILN_NODE_RANK"), rank.to_string());
        assert_eq!(get("KILN_NUM_NODES"), "2");
        assert_eq!(get("KILN_NODE_IPS"), "127.0.1.1,127.0.1.2");
        assert_eq!(get("KILN_MASTER_ADDR"), "127.0.1.1");
        assert_eq!(get("KILN_MASTER_PORT"), port);
        assert_eq!(get("KILN_NUM_GPUS_PER_NODE"), "2");
        assert_eq!(get("CUDA_VISIBLE_DEVICES"), "0,1");
        assert_eq!(get("KILN_JOB_ID"), job_id);
        assert_eq!(get("KILN_CHECKPOINT_DIR"), format!("{ckpt}/run-1"));
        assert_eq!(get("GREETING"), "hello there");
        assert_eq!(get("KILN_CHECKPOINT_URI"), format!("{}/run-1", str_of(&bucket, "uri")));
        assert_eq!((get("KILN_LOCAL_RANK"), get("KILN_TASK_RANK"), get("KILN_NUM_TASKS")), ("0", rank.to_string().as_str(), "2"));
    }
    assert!(std::path::Path::new(&format!("{ckpt}/run-1")).is_dir());

    let dirs: Vec<String> = list_of(&done, "placement").iter().map(|n| str_of(n, "dir").to_string()).collect();
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    assert!(dirs.iter().all(|d| !std::path::Path::new(d).exists()), "delete removed every node's directory");
    assert!(read(&p, "job.train", &done).await.is_none());
}

#[tokio::test]
async fn a_failing_node_fails_the_job_with_its_exit_code() {
    let p = provider(&["host3", "host4"]);
    let c = cluster(&p, "cluster.c", json!({ "nodes": 2 })).await;
    let cfg = job(&p, &c, json!({ "run": "echo rank $KILN_NODE_RANK; if [ \"$KILN_NODE_RANK\" = 1 ]; then exit 3; fi" }));
    let created = create(&p, "job.fail", &cfg).await;
    let done = read_until(&p, "job.fail", &created, |s| list_of(s, "exit_codes").iter().all(|c| !c.is_null())).await;
    assert_eq!(status(&done), "failed");
    assert_eq!(list_of(&done, "exit_codes"), &[json(json!(0)), json(json!(3))]);
    assert_eq!(log(&p, "job.fail", &done, 1).await, "rank 1\n");
    let tail = p.logs(LogsRequest { address: "job.fail", kind: "job", state: &done, node: 1, offset: 2, seek: None }).await;
    assert_eq!((tail.data.as_slice(), tail.next_offset, tail.finished), (&b"nk 1\n"[..], 7, true));
    assert!(!delete(&p, "job.fail", &done).await.has_errors());
}

/// `kiln logs --tail` and `--since` seek: the end, and times through the node's time index.
#[tokio::test]
async fn logs_seek_the_end_and_times() {
    let p = provider(&["host3"]);
    let c = cluster(&p, "cluster.c", json!({ "nodes": 1 })).await;
    let created = create(&p, "job.seek", &job(&p, &c, json!({ "run": "echo one; echo two" }))).await;
    let done = finished(&p, "job.seek", &created).await;
    assert_eq!(log(&p, "job.seek", &done, 0).await, "one\ntwo\n");
    let seek = |s: LogSeek| p.logs(LogsRequest { address: "job.seek", kind: "job", state: &done, node: 0, offset: 0, seek: Some(s) });
    let end = seek(LogSeek::End).await;
    assert!(!end.diagnostics.has_errors(), "{:?}", end.diagnostics);
    assert_eq!((end.data.len(), end.next_offset, end.finished), (0, 8, true));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(seek(LogSeek::Since(now + 60)).await.next_offset, 8, "nothing written after the last sample");
    assert_eq!(seek(LogSeek::Since(now - 3600)).await.next_offset, 0, "everything written within the hour");
    assert!(!delete(&p, "job.seek", &done).await.has_errors());
}

/// Issue 15 (`on_finish = "destroy_capacity"`): a cluster deleted under a job that finished
/// releases its hosts but leaves the job's record (status, exit codes, logs), which state still
/// holds: the job reads as it ended until its own delete removes it.
#[tokio::test]
async fn deleting_the_cluster_of_a_finished_job_keeps_the_jobs_result() {
    let p = provider(&["host3"]);
    let c = cluster(&p, "cluster.c", json!({ "nodes": 1 })).await;
    let created = create(&p, "job.done", &job(&p, &c, json!({ "run": "echo trained" }))).await;
    let done = finished(&p, "job.done", &created).await;
    assert_eq!(status(&done), "succeeded", "{done}");

    assert!(!delete(&p, "cluster.c", &c).await.has_errors());
    assert!(read(&p, "cluster.c", &c).await.is_none(), "the cluster's claims are released");
    let after = read(&p, "job.done", &done).await.expect("the finished job is still there");
    assert_eq!((status(&after), list_of(&after, "exit_codes")), ("succeeded", &[json(json!(0))][..]), "{after}");
    assert_eq!(log(&p, "job.done", &after, 0).await, "trained\n");

    assert!(!delete(&p, "job.done", &after).await.has_errors());
    assert!(read(&p, "job.done", &after).await.is_none());
}

#[tokio::test]
async fn destroy_stops_a_running_job() {
    let p = provider(&["host3", "host4"]);
    let c = cluster(&p, "cluster.c", json!({ "nodes": 2 })).await;
    let cfg = job(&p, &c, json!({ "run": "echo ready; sleep 300", "stop_grace": 2 }));
    let created = create(&p, "job.long", &cfg).await;
    wait_ready(&p, "job.long", &created, 2).await;
    let running = read(&p, "job.long", &created).await.expect("running");
    assert_eq!(status(&running), "running");
    let groups = pids(&running);
    assert!(groups.iter().all(|g| ProcTable::snapshot().group_alive(*g)), "{groups:?}");

    assert!(!delete(&p, "job.long", &running).await.has_errors());
    let table = ProcTable::snapshot();
    assert!(groups.iter().all(|g| !table.group_alive(*g)), "every node's processes were stopped");
    assert!(read(&p, "job.long", &running).await.is_none());
}

#[tokio::test]
async fn a_host_that_goes_down_makes_the_job_lost() {
    // host5 is used by this test only: it is taken down.
    let p = provider(&["host4", "host5"]);
    let c = cluster(&p, "cluster.c", json!({ "nodes": 2 })).await;
    let cfg = job(&p, &c, json!({ "run": "echo ready; sleep 300", "stop_grace": 1 }));
    let created = create(&p, "job.fragile", &cfg).await;
    wait_ready(&p, "job.fragile", &created, 2).await;
    let running = read(&p, "job.fragile", &created).await.expect("running");
    let groups = pids(&running);

    // The machine goes away: its sshd and connections end, and so do its processes (the
    // loopback hosts share this machine's process table, so they are killed by hand).
    harness().stop_host("host5");
    std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", groups[1])]).status().expect("kill");

    let lost = read(&p, "job.fragile", &running).await.expect("a job on a vanished host is lost, not gone");
    assert_eq!(status(&lost), "lost", "{lost}");
    let again = plan(&p, "job.fragile", &cfg, Some(&lost)).await;
    assert!(again.requires_replace.contains(&"status".to_string()), "a lost job is replaced: {:?}", again.requires_replace);

    let cluster_now = read(&p, "cluster.c", &c).await.expect("the cluster stays");
    assert_eq!(list_of(&cluster_now, "unreachable"), &[Value::from("host5")]);
    // No other host to move the node to: the cluster keeps its allocation and the plan says why.
    let stuck = plan(&p, "cluster.c", &config(&p, "cluster", json!({ "nodes": 2 })), Some(&cluster_now)).await;
    assert_eq!(stuck.planned, cluster_now, "nothing changes");
    let w = stuck.diagnostics.iter().find(|d| d.code == "W-ONPREM-DEGRADED").expect("a warning says why nothing moves");
    assert!(w.summary.starts_with("cluster.c: host `host5` does not answer, and no free host can take its node: "), "{}", w.summary);

    let d = delete(&p, "job.fragile", &lost).await;
    assert!(!d.has_errors(), "{d:?}");
    assert!(d.iter().any(|w| w.code == "W-ONPREM-JOB-UNREACHABLE" && w.summary.contains("host5")), "{d:?}");
    assert!(!ProcTable::snapshot().group_alive(groups[0]), "the node on host4 was stopped");
}

#[tokio::test]
async fn conformance_suite() {
    let p = provider(&["host4"]);
    let c = cluster(&p, "cluster.c", json!({})).await;
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

/// Creates with a known token as an apply would, then forgets the result (the apply died
/// before saving it) and asks `recover`, as the next plan does.
async fn create_then_recover(p: &OnpremProvider, address: &str, cfg: &Value) -> (Value, Value) {
    let kind = address.split('.').next().unwrap();
    let planned = plan(p, address, cfg, None).await.planned;
    let tok = token();
    let made = p.create(CreateRequest { address, kind, planned: &planned, token: &tok }).await.state.expect("created");
    let found = p.recover(RecoverRequest { address, kind, token: &tok, planned: &planned }).await;
    assert!(!found.diagnostics.has_errors(), "{:?}", found.diagnostics);
    (made, found.state.unwrap_or_else(|| panic!("{address}: what the create made is found by its token")))
}

#[tokio::test]
async fn an_interrupted_create_is_recovered_by_its_token() {
    let p = provider(&["host3", "host4"]);
    let (made, cluster) = create_then_recover(&p, "cluster.r", &config(&p, "cluster", json!({ "nodes": 2 }))).await;
    assert_eq!(str_of(&cluster, "cluster_id"), str_of(&made, "cluster_id"));
    let cfg = job(&p, &cluster, json!({ "run": "echo ready; sleep 300", "stop_grace": 0 }));
    let (made, found) = create_then_recover(&p, "job.r", &cfg).await;
    assert_eq!(str_of(&found, "job_id"), str_of(&made, "job_id"));
    assert_eq!(num_of(&found, "master_port"), num_of(&made, "master_port"));
    assert_eq!(pids(&found), pids(&made));
    assert!(!delete(&p, "job.r", &found).await.has_errors());
    assert!(!delete(&p, "cluster.r", &cluster).await.has_errors());
}

/// A 2-host job as the kiln before issue 11 wrote it to state, on a cluster (and bucket) as that
/// kiln wrote them; `bucket` is the checkpoint bucket's state (or null).
fn written_before(bucket: serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    let gpu = |i: u32| json!({ "index": i, "name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "vendor": "nvidia" });
    let cluster = json!({
        "nodes": 2, "accelerators": "A100:1", "cpus": null, "memory": null, "labels": null, "hosts": null,
        "cluster_id": "train-5e6f7a8b",
        "allocation": [{ "host": "h1", "address": "10.0.0.1", "gpus": [gpu(0)] }, { "host": "h2", "address": "10.0.0.2", "gpus": [gpu(3)] }],
        "node_ips": ["10.0.0.1", "10.0.0.2"], "gpus_per_node": 1, "unreachable": [], "stale_hosts": [],
    });
    let checkpoint = if bucket.is_null() { json!(null) } else { json!({ "bucket": bucket, "path": "run-1/" }) };
    let slot = |rank: u32, host: &str, address: &str, pid: u32| json!({ "rank": rank, "host": host, "address": address, "dir": "/home/kiln/.kiln/jobs/train-1a2b3c4d", "pid": pid });
    let state = json!({
        "cluster": cluster, "setup": "pip install -r requirements.txt", "run": "python3 train.py", "workdir": null,
        "env": { "LR": "0.1" }, "nodes": 2, "stop_grace": 10, "checkpoint": checkpoint,
        "job_id": "train-1a2b3c4d", "status": "running", "exit_codes": [null, null], "started_at": "2026-12-06T22:00:00Z",
        "finished_at": null, "node_ips": ["10.0.0.1", "10.0.0.2"], "master_addr": "10.0.0.1", "master_port": 29533,
        "placement": [slot(0, "h1", "10.0.0.1", 4242), slot(1, "h2", "10.0.0.2", 5151)], "pids": [4242, 5151],
    });
    let config = json!({ "cluster": cluster, "setup": state["setup"], "run": state["run"], "env": state["env"], "checkpoint": checkpoint });
    (state, config)
}

/// Issue 11: a job the previous kiln wrote, with its configuration unchanged, plans no change
/// (without a checkpoint block, with an onprem bucket on one host or shared, and with a local
/// bucket, which that kiln took for a directory on the hosts).
#[tokio::test]
async fn a_job_written_before_plans_no_change() {
    let p = configure(json!({ "root": "/tmp/kiln-onprem-upgrade", "host": [
        { "name": "h1", "address": "10.0.0.1", "user": "kiln" }, { "name": "h2", "address": "10.0.0.2", "user": "kiln" },
    ] }));
    let onprem = |shared: bool| {
        json!({ "host": "h1", "name": "ckpt", "path": "/srv/ckpt", "shared": shared, "uri": "sftp://kiln@10.0.0.1/srv/ckpt",
            "force_destroy": false })
    };
    let local = json!({ "force_destroy": false, "name": "ckpt", "path": "/srv/ckpt", "uri": "file:///srv/ckpt" });
    for bucket in [json!(null), onprem(false), onprem(true), local] {
        let (state, cfg) = written_before(bucket.clone());
        let prior = json(state);
        let r = plan(&p, "job.train", &config(&p, "job", cfg), Some(&prior)).await;
        assert!(!r.diagnostics.has_errors(), "{bucket}: {:?}", r.diagnostics);
        assert!(r.requires_replace.is_empty(), "{bucket}: {:?}", r.requires_replace);
        // Issue 13's attributes (`secret_env`, `workdir_digest`), absent from the old state, plan
        // as null: the engine compares an absent attribute as null, so that is no change.
        assert_eq!(changed(&prior, &r.planned), Vec::<String>::new(), "{bucket}");
    }
}

/// Issue 13 (upload memory): a workdir of a few MiB of binary data arrives whole on every node,
/// two nodes on one host (sharing the job's directory there, where it is uploaded once) and one
/// on another, streamed after the launch script rather than encoded into it.
#[tokio::test]
async fn a_binary_workdir_arrives_whole_on_every_node_two_sharing_a_host() {
    let p = provider(&["host1", "host2"]);
    let two = cluster(&p, "cluster.w", json!({ "nodes": 2 })).await;
    // Allocation puts every node on its own host; a cluster whose allocation names host1 twice
    // gives the job two nodes sharing that host's job directory.
    let Value::Map(mut c) = two.clone() else { panic!("{two}") };
    let Some(Value::List(alloc)) = c.get("allocation").cloned() else { panic!("{two}") };
    let on1 = alloc.iter().find(|n| str_of(n, "host") == "host1").cloned().expect("a node on host1");
    c.insert(
        "allocation".into(),
        Value::List(vec![on1.clone(), on1, alloc.iter().find(|n| str_of(n, "host") == "host2").cloned().unwrap()]),
    );
    let three = Value::Map(c);

    let src = std::path::PathBuf::from(harness().scratch("workdir"));
    let blob: Vec<u8> = (0..3u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::create_dir_all(src.as_path().join("data")).unwrap();
    std::fs::write(src.as_path().join("data/blob.bin"), &blob).unwrap();
    std::fs::write(src.as_path().join("train.sh"), "echo ready\n").unwrap();
    let sum = |path: &std::path::Path| {
        let out = std::process::Command::new("sha256sum").arg(path).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
    };
    let want = sum(&src.as_path().join("data/blob.bin"));
    assert_eq!(want.len(), 64);

    let cfg = job(
        &p,
        &three,
        json!({ "run": "echo \"sum=$(sha256sum data/blob.bin | cut -c1-64) $(bash train.sh) left=$(ls .. | grep -c '^workdir\\.')\"", "workdir": src.as_path().display().to_string() }),
    );
    let created = create(&p, "job.w", &cfg).await;
    let done = finished(&p, "job.w", &created).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    let hosts: Vec<String> = list_of(&done, "placement").iter().map(|n| str_of(n, "host").to_string()).collect();
    assert_eq!(hosts, ["host1", "host1", "host2"]);
    for rank in 0..3 {
        let out = log(&p, "job.w", &done, rank).await;
        assert_eq!(out.trim(), format!("sum={want} ready left=0"), "node {rank}");
    }
    assert!(!delete(&p, "job.w", &done).await.has_errors());
    assert!(!delete(&p, "cluster.w", &two).await.has_errors());
}
