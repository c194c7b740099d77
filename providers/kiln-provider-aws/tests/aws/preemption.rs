//! Why a job is lost (issue 15): spot interruptions through the harness's spot-interrupt
//! endpoint, seen by the real agent (the interruption notice in the instance metadata, which the
//! harness serves after a `notice`) or by EC2 (an instance reclaimed), against an instance
//! terminated by hand. `kiln watch` reads `lost_reason` as the failure's category.

use kiln_value::Value;
use serde_json::json as j;

use crate::common::moto::{exclusive, server};
use crate::common::*;
use crate::job::{body, log, pgrep, wait_status, Agents};

/// A bucket, a two-node spot cluster and a job config running `run` with checkpoints under
/// `run-1/`.
async fn spot_job(p: &kiln_provider_aws::AwsProvider, run: &str) -> (Value, Value, Value) {
    let bucket = create(p, "bucket.ckpt", &config(p, "bucket", j!({ "force_destroy": true }))).await;
    let cluster = create(p, "cluster.train", &config(p, "cluster", j!({ "instance_type": "t3.micro", "nodes": 2, "spot": true }))).await;
    let cfg =
        config(p, "job", j!({ "cluster": cluster.to_json(), "run": run, "checkpoint": { "bucket": bucket.to_json(), "path": "run-1/" } }));
    (bucket, cluster, cfg)
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
    // The instance still runs until it is taken back; the first notice stays.
    assert_eq!(str_of(&read(&p, "cluster.s", &cluster).await.unwrap(), "state"), "running");
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
async fn a_spot_notice_gives_the_job_sigterm_its_last_checkpoint_reaches_the_bucket_and_it_is_lost_to_preemption() {
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
    drop(agents);
    let _ = delete(&p, "cluster.train", &cluster).await;
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
    assert!(!delete(&p, "job.train", &lost).await.has_errors());

    // Instance 0 terminated by hand (TerminateInstances): a host failure.
    let mut one = cfg.as_map().cloned().unwrap();
    one.insert("nodes".into(), Value::from(1i64));
    let job = create(&p, "job.other", &Value::Map(one)).await;
    let running = wait_status(&p, "job.other", &job, &["running"]).await;
    agents.kill(&ids[0]);
    aws().await.ec2.terminate_instances().instance_ids(&ids[0]).send().await.unwrap();
    let lost = wait_status(&p, "job.other", &running, &["lost"]).await;
    assert_eq!(lost.get("lost_reason"), Some(&Value::from("host_failure")), "{lost}");
    assert!(!delete(&p, "job.other", &lost).await.has_errors());
    drop(agents);
    let _ = delete(&p, "cluster.train", &cluster).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}
