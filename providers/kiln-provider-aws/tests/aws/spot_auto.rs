//! `spot = "auto"` within one job (issue 15): a spot node reclaimed while spot capacity is short
//! is replaced on-demand (the healthy spot node kept, `market = "mixed"`) and the job resumes
//! there; a running mixed cluster plans no change once spot capacity is back (nothing stops the
//! job to move it); the next replacement of lost capacity, the job's next restart, puts the
//! on-demand nodes back on spot, and keeps them where spot is still short.
//!
//! Spot capacity is made short with the harness's `InsufficientInstanceCapacity` fault on spot
//! RunInstances calls; nodes are taken with its spot-interrupt endpoint (notice, then terminate).

use kiln_provider::{CreateRequest, Provider};
use kiln_value::Value;
use serde_json::json as j;

use crate::common::moto::{exclusive, server};
use crate::common::*;
use crate::job::{body, log, wait_log, wait_status, Agents};

/// Matches every spot RunInstances call (and no on-demand one).
const SPOT_LAUNCH: &str = "MarketType=spot";

/// Spot capacity runs short: every spot launch fails until [`spot_back`].
fn spot_short() {
    server().fault("RunInstances", SPOT_LAUNCH, "InsufficientInstanceCapacity", 400, 1000);
}

fn spot_back() {
    server().clear_faults();
}

/// The harness's spot interruption: the two-minute notice, then the instance reclaimed.
fn interrupt(instance_id: &str) {
    for action in ["notice", "terminate"] {
        server().request("POST", "/_testbed/spot-interrupt", &j!({ "instance_id": instance_id, "action": action }).to_string());
    }
}

/// What EC2 says of each instance, in order: ("spot" | "on-demand", state).
async fn ec2_markets(ids: &[String]) -> Vec<(String, String)> {
    let out = aws().await.ec2.describe_instances().set_instance_ids(Some(ids.to_vec())).send().await.unwrap();
    let all: Vec<_> = out.reservations().iter().flat_map(|r| r.instances()).cloned().collect();
    ids.iter()
        .map(|id| {
            let i = all.iter().find(|i| i.instance_id() == Some(id)).unwrap_or_else(|| panic!("{id} not in EC2"));
            let market = if i.instance_lifecycle().is_some_and(|l| l.as_str() == "spot") { "spot" } else { "on-demand" };
            (market.to_string(), i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default())
        })
        .collect()
}

fn running(market: &str) -> (String, String) {
    (market.to_string(), "running".to_string())
}

/// The `kiln:node` tag of each instance, in order.
async fn ranks(ids: &[String]) -> Vec<String> {
    let out = aws().await.ec2.describe_instances().set_instance_ids(Some(ids.to_vec())).send().await.unwrap();
    let all: Vec<_> = out.reservations().iter().flat_map(|r| r.instances()).cloned().collect();
    ids.iter()
        .map(|id| {
            let i = all.iter().find(|i| i.instance_id() == Some(id)).expect("instance");
            i.tags().iter().find(|t| t.key() == Some("kiln:node")).and_then(|t| t.value()).unwrap_or_default().to_string()
        })
        .collect()
}

/// Refreshes the cluster after `lost` was interrupted, plans (an in-place update launching
/// replacements, the market unknown until apply) and applies it, as `kiln watch` does.
async fn heal(p: &kiln_provider_aws::AwsProvider, cfg: &Value, state: &Value, lost: &str) -> Value {
    let now = read(p, "cluster.train", state).await.expect("a degraded cluster still exists");
    assert_eq!(str_of(&now, "state"), "degraded", "{now}");
    assert!(!strs(&now, "instance_ids").contains(&lost.to_string()), "{now}");
    let r = plan(p, "cluster.train", cfg, Some(&now)).await;
    assert!(!r.diagnostics.has_errors() && r.requires_replace.is_empty(), "healed in place: {:?} {:?}", r.diagnostics, r.requires_replace);
    assert!(r.planned.get("market").is_some_and(Value::is_unknown), "known at apply: {}", r.planned);
    let healed = update(p, "cluster.train", &now, cfg).await;
    assert_eq!((str_of(&healed, "state"), list_of(&healed, "lost").len()), ("running", 0), "{healed}");
    healed
}

fn auto_cluster(p: &kiln_provider_aws::AwsProvider) -> Value {
    config(p, "cluster", j!({ "instance_type": "t3.micro", "nodes": 2, "spot": "auto" }))
}

#[tokio::test]
async fn a_node_lost_while_spot_is_short_is_replaced_on_demand_and_goes_back_to_spot_at_the_next_restart() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = auto_cluster(&p);
    let cluster = create(&p, "cluster.train", &cfg).await;
    assert_eq!(str_of(&cluster, "market"), "spot");
    let first = strs(&cluster, "instance_ids");

    // Spot is short when node 1 is reclaimed: its replacement runs on-demand, node 0 stays.
    spot_short();
    interrupt(&first[1]);
    let mixed = heal(&p, &cfg, &cluster, &first[1]).await;
    let ids = strs(&mixed, "instance_ids");
    assert_eq!(ids[0], first[0], "the healthy spot node is kept");
    assert_ne!(ids[1], first[1]);
    assert_eq!(ec2_markets(&ids).await, [running("spot"), running("on-demand")]);
    assert_eq!(ranks(&ids).await, ["0", "1"]);
    assert_eq!(str_of(&mixed, "market"), "mixed", "{mixed}");

    // Spot is back: the running cluster plans no change, whatever its market (its job runs on).
    spot_back();
    let refreshed = read(&p, "cluster.train", &mixed).await.expect("exists");
    assert_eq!(refreshed, mixed, "a refresh reads the same cluster");
    let again = planned(&p, "cluster.train", &cfg, Some(&refreshed)).await;
    assert!(changed(&refreshed, &again).is_empty(), "no change: {:?}", changed(&refreshed, &again));
    assert_eq!(ec2_markets(&ids).await, [running("spot"), running("on-demand")], "nothing was moved");

    // The next restart (node 0 reclaimed in its turn): both nodes go to spot, the on-demand one
    // is terminated once its spot replacement runs.
    interrupt(&ids[0]);
    let spot = heal(&p, &cfg, &mixed, &ids[0]).await;
    let back = strs(&spot, "instance_ids");
    assert_eq!(back.len(), 2);
    assert!(!back.contains(&ids[0]) && !back.contains(&ids[1]), "{back:?} {ids:?}");
    assert_eq!(ec2_markets(&back).await, [running("spot"), running("spot")]);
    assert_eq!(ranks(&back).await, ["0", "1"]);
    assert_eq!(ec2_markets(&ids[1..]).await[0].1, "terminated", "the on-demand node is gone");
    assert_eq!(str_of(&spot, "market"), "spot", "{spot}");
    let after = planned(&p, "cluster.train", &cfg, Some(&spot)).await;
    assert!(changed(&spot, &after).is_empty(), "{:?}", changed(&spot, &after));
    assert!(!delete(&p, "cluster.train", &spot).await.has_errors());
}

#[tokio::test]
async fn at_a_restart_while_spot_is_still_short_the_on_demand_nodes_are_kept() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "cluster", j!({ "instance_type": "t3.micro", "nodes": 3, "spot": "auto" }));
    let cluster = create(&p, "cluster.train", &cfg).await;
    let first = strs(&cluster, "instance_ids");
    spot_short();
    interrupt(&first[2]);
    let mixed = heal(&p, &cfg, &cluster, &first[2]).await;
    let ids = strs(&mixed, "instance_ids");
    assert_eq!(ec2_markets(&ids).await, [running("spot"), running("spot"), running("on-demand")]);

    // Node 1 reclaimed, spot still short: its replacement runs on-demand, node 2 is kept.
    interrupt(&ids[1]);
    let healed = heal(&p, &cfg, &mixed, &ids[1]).await;
    let now = strs(&healed, "instance_ids");
    assert_eq!((now[0].as_str(), now[2].as_str()), (ids[0].as_str(), ids[2].as_str()), "{now:?} {ids:?}");
    assert_eq!(ec2_markets(&now).await, [running("spot"), running("on-demand"), running("on-demand")]);
    assert_eq!(ranks(&now).await, ["0", "1", "2"]);
    assert_eq!(str_of(&healed, "market"), "mixed");
    assert!(!delete(&p, "cluster.train", &healed).await.has_errors());
}

/// Until `key` of `bucket` holds `want` (30 s at most: a safety bound).
async fn wait_body(bucket: &str, key: &str, want: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while body(bucket, key).await.as_deref() != Some(want) {
        assert!(std::time::Instant::now() < deadline, "{key} never held {want:?}: {:?}", body(bucket, key).await);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// What `kiln watch` does for a preempted job, through the provider: the lost node replaced
/// on-demand while spot is short, the job replaced on the mixed cluster, resuming from its
/// checkpoint on the kept spot node and the new on-demand one.
#[tokio::test]
async fn a_preempted_job_resumes_on_the_mixed_cluster() {
    let _g = exclusive().await;
    let p = provider().await;
    let bucket = create(&p, "bucket.ckpt", &config(&p, "bucket", j!({ "force_destroy": true }))).await;
    let cfg = auto_cluster(&p);
    let cluster = create(&p, "cluster.train", &cfg).await;
    // Rank 0 writes how many times the job started; every node says where it resumed.
    let run = "trap 'exit 0' TERM\n\
               n=$(cat \"$KILN_CHECKPOINT_DIR/starts\" 2>/dev/null || echo 0)\n\
               echo \"resumed at $n\"\n\
               [ \"$KILN_NODE_RANK\" = 0 ] && echo $((n + 1)) >\"$KILN_CHECKPOINT_DIR/starts\"\n\
               while :; do sleep 1; done\n";
    let job_cfg = |cluster: &Value| {
        config(&p, "job", j!({ "cluster": cluster.to_json(), "run": run, "checkpoint": { "bucket": bucket.to_json(), "path": "run-1/" } }))
    };
    let job = create(&p, "job.train", &job_cfg(&cluster)).await;
    let first = strs(&cluster, "instance_ids");
    let agents = Agents::boot(&first).await;
    let started = wait_status(&p, "job.train", &job, &["running"]).await;
    wait_log(&p, &started, 0, "resumed at 0").await;
    let name = str_of(&bucket, "name").to_string();
    wait_body(&name, "run-1/starts", "1\n").await;

    spot_short();
    interrupt(&first[1]);
    agents.kill(&first[1]);
    let lost = wait_status(&p, "job.train", &started, &["lost"]).await;
    assert_eq!(lost.get("lost_reason"), Some(&Value::from("preemption")), "{lost}");

    let mixed = heal(&p, &cfg, &cluster, &first[1]).await;
    assert_eq!(str_of(&mixed, "market"), "mixed");
    let ids = strs(&mixed, "instance_ids");
    assert_eq!(ids[0], first[0]);
    let new_cfg = job_cfg(&mixed);
    let r = plan(&p, "job.train", &new_cfg, Some(&lost)).await;
    assert!(!r.requires_replace.is_empty(), "a lost job is replaced: {:?}", r.diagnostics);
    assert!(!delete(&p, "job.train", &lost).await.has_errors());
    let replacing = plan_replacing(&p, "job.train", &new_cfg, &lost).await;
    assert!(!replacing.diagnostics.has_errors(), "{:?}", replacing.diagnostics);
    let created = p.create(CreateRequest { address: "job.train", kind: "job", planned: &replacing.planned, token: &token() }).await;
    assert!(!created.diagnostics.has_errors(), "{:?}", created.diagnostics);
    let relaunched = created.state.expect("state");
    assert_eq!(strs(&relaunched, "instance_ids"), ids);
    // Node 0's agent runs on; node 1 is a new instance whose agent boots with it.
    let _new = Agents::boot(&ids[1..]).await;
    let resumed = wait_status(&p, "job.train", &relaunched, &["running"]).await;
    wait_log(&p, &resumed, 0, "resumed at 1").await;
    wait_log(&p, &resumed, 1, "resumed at 1").await;
    assert!(!log(&p, &resumed, 0).await.contains("resumed at 0"), "a new attempt, its own log");

    assert!(!delete(&p, "job.train", &resumed).await.has_errors());
    drop(agents);
    let _ = delete(&p, "cluster.train", &mixed).await;
    let _ = delete(&p, "bucket.ckpt", &bucket).await;
}
