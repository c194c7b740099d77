//! Why a job is lost (issue 15): spot interruptions through the harness's spot-interrupt
//! endpoint, seen by the real agent (the interruption notice in the instance metadata, which the
//! harness serves after a `notice`) or by EC2 (an instance reclaimed), against an instance
//! terminated by hand. `kiln watch` reads `lost_reason` as the failure's category.

use kiln_value::Value;
use serde_json::json as j;

use crate::common::moto::{exclusive, server};
use crate::common::*;
use crate::job::{body, log, pgrep, wait_log, wait_status, Agents};

/// A bucket, a two-node spot cluster and a job config running `run` with checkpoints under
/// `run-1/`.
async fn spot_job(p: &kiln_provider_aws::AwsProvider, run: &str) -> (Value, Value, Value) {
    let bucket = create(p, "bucket.ckpt", &config(p, "bucket", j!({ "force_destroy": true }))).await;
    let cluster = create(p, "cluster.train", &config(p, "cluster", spot_cluster())).await;
    let cfg =
        config(p, "job", j!({ "cluster": cluster.to_json(), "run": run, "checkpoint": { "bucket": bucket.to_json(), "path": "run-1/" } }));
    (bucket, cluster, cfg)
}

/// The cluster of [`spot_job`]: two t3.micro spot nodes.
fn spot_cluster() -> serde_json::Value {
    j!({ "instance_type": "t3.micro", "nodes": 2, "spot": true })
}

/// The harness's spot-interrupt endpoint: `notice` (the two-minute warning), `terminate`, `stop`.
fn spot_interrupt(instance_id: &str, action: &str) -> serde_json::Value {
    let reply = server().request("POST", "/_testbed/spot-interrupt", &j!({ "instance_id": instance_id, "action": action }).to_string());
    serde_json::from_str(&reply).expect("json")
}

/// Whether `t` is a UTC time as EC2 writes it: `2026-12-01T10:02:00Z`.
fn rfc3339(t: &str) -> bool {
    let shape = t.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect::<String>();
    shape == "9999-99-99T99:99:99Z"
}

/// Now, as [`rfc3339`] writes it (by `date`, as the harness and the agent do).
fn now() -> String {
    let out = std::process::Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output().expect("date runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// What the instance metadata service says at `path` for `instance_id`: (HTTP status, body).
fn imds(instance_id: &str, path: &str) -> (u16, String) {
    let url = format!("{}/_testbed/imds/us-east-1/{instance_id}/latest/{path}", server().endpoint());
    let out = std::process::Command::new("curl").args(["-s", "-w", "\n%{http_code}", &url]).output().expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

#[tokio::test]
async fn the_metadata_service_serves_the_interruption_notice_once_sent() {
    let _g = exclusive().await;
    let p = provider().await;
    let cluster = create(&p, "cluster.s", &config(&p, "cluster", j!({ "instance_type": "t3.micro", "nodes": 2, "spot": true }))).await;
    let ids = strs(&cluster, "instance_ids");
    assert_eq!(imds(&ids[0], "meta-data/spot/instance-action").0, 404, "no notice yet, as on EC2");
    spot_interrupt(&ids[0], "notice");
    let (code, notice) = imds(&ids[0], "meta-data/spot/instance-action");
    assert_eq!(code, 200, "{notice}");
    let notice: serde_json::Value = serde_json::from_str(&notice).unwrap();
    assert_eq!(notice["action"], "terminate");
    let at = notice["time"].as_str().unwrap();
    assert!(rfc3339(at), "{at}");
    assert!(at > now().as_str(), "the interruption is ahead of the notice: {at}");
    // The first notice stays when the instance is taken back.
    spot_interrupt(&ids[0], "terminate");
    let again: serde_json::Value = serde_json::from_str(&imds(&ids[0], "meta-data/spot/instance-action").1).unwrap();
    assert_eq!(again, notice);
    // A stop without a notice: the notice says so.
    spot_interrupt(&ids[1], "stop");
    let (code, stop) = imds(&ids[1], "meta-data/spot/instance-action");
    assert_eq!((code, serde_json::from_str::<serde_json::Value>(&stop).unwrap()["action"].clone()), (200, j!("stop")));
    let _ = delete(&p, "cluster.s", &cluster).await;
}

#[tokio::test]
async fn a_spot_notice_gives_the_job_sigterm_its_last_checkpoint_reaches_the_bucket_it_is_lost_and_restarts_on_another_instance() {
    let _g = exclusive().await;
    let p = provider().await;
    // The job writes its last checkpoint when told to go, and not before.
    let run = "trap 'echo saving; echo step-7 >\"$KILN_CHECKPOINT_DIR/last.ckpt\"; exit 0' TERM\n\
               echo started; while :; do sleep 1; done\n";
    let (bucket, cluster, cfg) = spot_job(&p, run).await;
    let job = create(&p, "job.train", &cfg).await;
    let ids = strs(&cluster, "instance_ids");
    let agents = Agents::boot(&ids).await;
    let running = wait_status(&p, "job.train", &job, &["running"]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !log(&p, &running, 1).await.contains("started") {
        assert!(std::time::Instant::now() < deadline, "node 1's log never showed the job starting");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_eq!(running.get("lost_reason"), Some(&Value::Null));

    spot_interrupt(&ids[1], "notice");
    let lost = wait_status(&p, "job.train", &running, &["lost"]).await;
    assert_eq!(lost.get("lost_reason"), Some(&Value::from("preemption")), "{lost}");
    let name = str_of(&bucket, "name");
    assert_eq!(body(name, "run-1/last.ckpt").await.as_deref(), Some("step-7\n"), "the last checkpoint reached the bucket");
    let out = log(&p, &lost, 1).await;
    assert!(out.contains("spot interruption notice") && out.contains("saving"), "{out}");
    // Node 1's report names the notice; node 0 got none and runs on.
    let report = body(name, &format!("kiln/jobs/{}/status/1.json", str_of(&job, "job_id"))).await.expect("node 1's status");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!((report["state"].clone(), report["preempted"].clone()), (j!("lost"), j!(true)), "{report}");
    assert!(report["notice"].as_str().is_some_and(rfc3339), "{report}");
    assert!(pgrep(&agents.path(&ids[0])), "node 0 had no notice: its job runs");
    assert!(!log(&p, &lost, 0).await.contains("saving"));

    let r = plan(&p, "job.train", &cfg, Some(&lost)).await;
    assert!(r.requires_replace.contains(&"status".to_string()), "a lost job is replaced: {:?}", r.requires_replace);
    assert!(!delete(&p, "job.train", &lost).await.has_errors());

    // The restart `kiln watch` applies: the noticed node is lost to the cluster too, which heals
    // on another instance before EC2 takes the noticed one back, and the job starts again there.
    // (It used to start on the noticed instance, whose agent stopped it at once.)
    let degraded = read(&p, "cluster.train", &cluster).await.expect("the cluster exists");
    assert_eq!(str_of(&degraded, "state"), "degraded", "{degraded}");
    let healed = update(&p, "cluster.train", &degraded, &config(&p, "cluster", spot_cluster())).await;
    let now = strs(&healed, "instance_ids");
    assert_eq!((now[0].as_str(), now.len()), (ids[0].as_str(), 2));
    assert_ne!(now[1], ids[1]);
    let cfg = config(
        &p,
        "job",
        j!({ "cluster": healed.to_json(), "run": "echo again; sleep 600", "checkpoint": { "bucket": bucket.to_json(), "path": "run-1/" } }),
    );
    let again = create(&p, "job.train", &cfg).await;
    let _more = Agents::boot(&now[1..]).await;
    wait_log(&p, &again, 1, "again").await;
    // Past the agents' notice checks, it still runs.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let still = read(&p, "job.train", &again).await.expect("the job exists");
    assert_eq!(str_of(&still, "status"), "running", "{still}");
    assert!(!log(&p, &still, 1).await.contains("spot interruption notice"));
    assert!(!delete(&p, "job.train", &still).await.has_errors());
    drop(agents);
    let _ = delete(&p, "cluster.train", &healed).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

#[tokio::test]
async fn an_instance_reclaimed_without_its_agent_is_a_preemption_one_terminated_by_hand_a_host_failure() {
    let _g = exclusive().await;
    let p = provider().await;
    let (bucket, cluster, cfg) = spot_job(&p, "echo started; sleep 300").await;
    let ids = strs(&cluster, "instance_ids");

    // Spot stops instance 1 (its agent gone with it): EC2's state reason says why.
    let job = create(&p, "job.train", &cfg).await;
    let agents = Agents::boot(&ids).await;
    let running = wait_status(&p, "job.train", &job, &["running"]).await;
    agents.kill(&ids[1]);
    spot_interrupt(&ids[1], "stop");
    let lost = wait_status(&p, "job.train", &running, &["lost"]).await;
    assert_eq!(lost.get("lost_reason"), Some(&Value::from("preemption")), "{lost}");
    // EC2 gives no time for the reclaim: lost since the refresh that saw it, kept from then.
    let at = str_of(&lost, "finished_at").to_string();
    assert!(rfc3339(&at) && at.as_str() <= now().as_str(), "{lost}");
    let again = read(&p, "job.train", &lost).await.expect("the job exists");
    assert_eq!(str_of(&again, "finished_at"), at);
    assert!(!delete(&p, "job.train", &lost).await.has_errors());

    // Instance 0 terminated by hand (TerminateInstances): a host failure.
    let mut one = cfg.as_map().cloned().unwrap();
    one.insert("nodes".into(), Value::from(1i64));
    let job = create(&p, "job.other", &Value::Map(one)).await;
    let running = wait_status(&p, "job.other", &job, &["running"]).await;
    agents.kill(&ids[0]);
    let before = now();
    aws().await.ec2.terminate_instances().instance_ids(&ids[0]).send().await.unwrap();
    let lost = wait_status(&p, "job.other", &running, &["lost"]).await;
    assert_eq!(lost.get("lost_reason"), Some(&Value::from("host_failure")), "{lost}");
    // When EC2 says the instance was terminated ("User initiated (TIME)").
    let at = str_of(&lost, "finished_at");
    assert!(rfc3339(at) && at >= before.as_str() && at <= now().as_str(), "{lost}");
    assert!(!delete(&p, "job.other", &lost).await.has_errors());
    drop(agents);
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}

/// `preempt_signal` names the signal a notice gives the job: set at create it reaches the agent
/// through spec.env; changed in place on a running job it reaches the agents too (SIGINT, which a
/// job the agent starts in the background would otherwise ignore). The notice shows in state
/// (`notice_at`) while the job still writes its last checkpoint, and the lost job's `finished_at`
/// is when its loss became observable: when the agent saw the notice.
#[tokio::test]
async fn a_job_configured_with_sigusr1_gets_sigusr1_on_a_notice_and_its_loss_has_a_time() {
    let _g = exclusive().await;
    let p = provider().await;
    // Each trap holds the job until the test releases it, so the notice is seen while it runs.
    let release = tempfile::tempdir().unwrap();
    let go = release.path().join("go");
    let hold = format!("while [ ! -f '{}' ]; do sleep 0.2; done", go.display());
    let run = format!(
        "trap 'echo got-USR1; {hold}; exit 0' USR1\ntrap 'echo got-INT; {hold}; exit 0' INT\ntrap 'echo got-TERM; exit 0' TERM\n\
         echo started; while :; do sleep 1; done\n"
    );
    let (bucket, cluster, cfg) = spot_job(&p, &run).await;
    let with = |signal: &str| {
        let mut m = cfg.as_map().cloned().unwrap();
        m.insert("preempt_signal".into(), Value::from(signal));
        m.insert("stop_grace".into(), Value::from(120i64));
        Value::Map(m)
    };
    let job = create(&p, "job.train", &with("SIGUSR1")).await;
    assert_eq!(job.get("notice_at"), Some(&Value::Null));
    let ids = strs(&cluster, "instance_ids");
    let agents = Agents::boot(&ids).await;
    let running = wait_status(&p, "job.train", &job, &["running"]).await;
    wait_log(&p, &running, 0, "started").await;
    wait_log(&p, &running, 1, "started").await;

    // Node 1's notice: SIGUSR1, and the notice in state while the job runs on.
    spot_interrupt(&ids[1], "notice");
    let noticed = read_until(&p, "job.train", &running, |v| v.get("notice_at").is_some_and(|t| !t.is_null())).await;
    assert_eq!(str_of(&noticed, "status"), "running", "{noticed}");
    let notice_at = str_of(&noticed, "notice_at").to_string();
    assert!(rfc3339(&notice_at), "{noticed}");
    assert!(notice_at.as_str() >= str_of(&noticed, "started_at"), "{noticed}");
    assert_eq!((noticed.get("finished_at"), noticed.get("lost_reason")), (Some(&Value::Null), Some(&Value::Null)), "{noticed}");
    wait_log(&p, &noticed, 1, "got-USR1").await;

    // Changed in place to SIGINT: no replacement, and node 0's notice sends it.
    let r = plan(&p, "job.train", &with("SIGINT"), Some(&noticed)).await;
    assert!(!r.diagnostics.has_errors() && r.requires_replace.is_empty(), "{:?} {:?}", r.diagnostics, r.requires_replace);
    assert_eq!(changed(&noticed, &r.planned), ["preempt_signal"]);
    let updated = update(&p, "job.train", &noticed, &with("SIGINT")).await;
    assert_eq!(str_of(&updated, "preempt_signal"), "SIGINT");
    spot_interrupt(&ids[0], "notice");
    wait_log(&p, &updated, 0, "got-INT").await;

    std::fs::write(&go, "").unwrap();
    let lost = wait_status(&p, "job.train", &updated, &["lost"]).await;
    assert_eq!(lost.get("lost_reason"), Some(&Value::from("preemption")), "{lost}");
    // Lost when the first notice was seen: what `kiln jobs events` measures detection from.
    assert_eq!(str_of(&lost, "finished_at"), notice_at, "{lost}");
    assert_eq!(str_of(&lost, "notice_at"), notice_at, "{lost}");
    for rank in [0, 1] {
        assert!(!log(&p, &lost, rank).await.contains("got-TERM"), "node {rank} got SIGTERM");
    }
    let again = read(&p, "job.train", &lost).await.expect("the job exists");
    assert_eq!(again.get("finished_at"), lost.get("finished_at"), "a lost job's time does not move");

    assert!(!delete(&p, "job.train", &lost).await.has_errors());
    drop(agents);
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}
