//! Issue 6: a host going down mid-job. The refresh shows the cluster's host `unreachable` and
//! the job `lost`; the next plan moves that node of the cluster to a free host in place (same
//! `cluster_id`, the healthy node stays, a warning names both hosts) and replaces the job; the
//! apply claims the new host, releases what it can of the old one, and the new job runs on
//! the remaining hosts with the right ranks and IPs. When the lost host comes back, still
//! running its node of the old job and holding the cluster's claims, the refresh shows it in
//! `stale_hosts` and the next apply stops that node and releases the claims. Also: a cluster
//! with no free host to move to keeps its allocation and says why.

use kiln_hostinfo::procs::ProcTable;
use kiln_provider::{Provider, UpdateRequest};
use kiln_value::Value;
use serde_json::json;

use crate::common::*;
use crate::harness::harness;

fn hosts(state: &Value) -> Vec<String> {
    list_of(state, "allocation").iter().map(|a| str_of(a, "host").to_string()).collect()
}

fn job_cfg(p: &kiln_provider_onprem::OnpremProvider, cluster: &Value) -> Value {
    config(
        p,
        "job",
        json!({
            "cluster": cluster.to_json(),
            "run": "echo \"host $KILN_HARNESS_HOST rank $KILN_NODE_RANK ips $KILN_NODE_IPS\"; echo ready; sleep 300",
            "stop_grace": 1,
        }),
    )
}

async fn wait_log(p: &kiln_provider_onprem::OnpremProvider, address: &str, state: &Value, rank: usize, text: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let l = log(p, address, state, rank).await;
        if l.contains(text) {
            return l;
        }
        assert!(std::time::Instant::now() < deadline, "node {rank} never logged `{text}`: {l}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn groups_of(job: &Value) -> Vec<u32> {
    list_of(job, "pids").iter().map(|v| v.to_string().parse().expect("pid")).collect()
}

#[tokio::test]
async fn a_lost_host_moves_its_node_in_place_and_the_job_is_replaced_on_the_remaining_hosts() {
    // host6 is used by this test only: it is taken down. Configuration order makes the cluster
    // take host6 (rank 0) and host4, leaving host3 free.
    let p = provider(&["host6", "host4", "host3"]);
    let cluster_cfg = config(&p, "cluster", json!({ "nodes": 2 }));
    let c = create(&p, "cluster.c", &cluster_cfg).await;
    assert_eq!(hosts(&c), ["host6", "host4"]);
    let cfg = job_cfg(&p, &c);
    let created = create(&p, "job.j", &cfg).await;
    wait_log(&p, "job.j", &created, 0, "ready").await;
    wait_log(&p, "job.j", &created, 1, "ready").await;
    let running = read(&p, "job.j", &created).await.expect("running");
    let groups = groups_of(&running);

    // host6 stops answering; its node of the job goes on running (a network partition).
    harness().stop_host("host6");

    // The refresh shows it.
    let lost = read(&p, "job.j", &running).await.expect("a job on a vanished host is lost, not gone");
    assert_eq!(status(&lost), "lost", "{lost}");
    let refreshed = read(&p, "cluster.c", &c).await.expect("the cluster stays");
    assert_eq!(list_of(&refreshed, "unreachable"), &[Value::from("host6")]);

    // The plan moves node 0 to host3 in place; node 1 stays on host4.
    let planned = plan(&p, "cluster.c", &cluster_cfg, Some(&refreshed)).await;
    assert!(!planned.diagnostics.has_errors(), "{:?}", planned.diagnostics);
    assert!(planned.requires_replace.is_empty(), "an in-place update: {:?}", planned.requires_replace);
    let after = planned.planned;
    assert_eq!(hosts(&after), ["host3", "host4"]);
    assert_eq!(list_of(&after, "node_ips"), &[Value::from("127.0.1.3"), Value::from("127.0.1.4")]);
    assert!(list_of(&after, "unreachable").is_empty());
    assert_eq!(str_of(&after, "cluster_id"), str_of(&c, "cluster_id"), "the cluster keeps its identity");
    let w = planned.diagnostics.iter().find(|d| d.code == "W-ONPREM-REALLOCATE").expect("a warning says what moves");
    assert_eq!(w.summary, "cluster.c: host `host6` does not answer; its node moves to host `host3`");

    // The lost job is replaced: it is lost, and its cluster's hosts changed.
    let new_cfg = job_cfg(&p, &after);
    let jp = plan(&p, "job.j", &new_cfg, Some(&lost)).await;
    assert!(
        jp.requires_replace.contains(&"status".to_string()) && jp.requires_replace.contains(&"cluster".to_string()),
        "{:?}",
        jp.requires_replace
    );

    // Apply, in the engine's order: the old job goes (host6 cannot be reached: a warning), the
    // cluster moves, the new job starts on host3 and host4.
    let d = delete(&p, "job.j", &lost).await;
    assert!(!d.has_errors() && d.iter().any(|w| w.code == "W-ONPREM-JOB-UNREACHABLE"), "{d:?}");
    assert!(!ProcTable::snapshot().group_alive(groups[1]), "the node on host4 was stopped");
    let moved = p.update(UpdateRequest { address: "cluster.c", kind: "cluster", prior: &refreshed, planned: &after }).await;
    assert!(!moved.diagnostics.has_errors(), "{:?}", moved.diagnostics);
    assert!(moved.diagnostics.iter().any(|w| w.code == "W-ONPREM-RELEASE" && w.summary.contains("host6")), "{:?}", moved.diagnostics);
    let healed = moved.state.expect("state");
    assert_eq!(healed, after, "the update gives exactly the planned allocation");
    let healed = read(&p, "cluster.c", &healed).await.expect("the cluster holds its new hosts");
    assert!(list_of(&healed, "unreachable").is_empty(), "{healed}");

    let again = create(&p, "job.j", &job_cfg(&p, &healed)).await;
    for (rank, host) in ["host3", "host4"].iter().enumerate() {
        let l = wait_log(&p, "job.j", &again, rank, "ready").await;
        assert!(l.contains(&format!("host {host} rank {rank} ips 127.0.1.3,127.0.1.4")), "{l}");
    }
    assert_eq!(status(&read(&p, "job.j", &again).await.expect("running")), "running");

    // Nothing more to move: the healed cluster plans no change.
    let quiet = plan(&p, "cluster.c", &cluster_cfg, Some(&healed)).await;
    assert_eq!(quiet.planned, healed);

    // host6 comes back, still running its node of the old job and holding the cluster's claim.
    // A later kiln run (a new provider instance: this one still remembers host6 as down).
    harness().start_host("host6");
    let p = sharing_root(&p, &["host6", "host4", "host3"]);
    assert!(ProcTable::snapshot().group_alive(groups[0]), "the partitioned node ran on");
    let back = read(&p, "cluster.c", &healed).await.expect("the cluster stays");
    assert_eq!(list_of(&back, "stale_hosts"), &[Value::from("host6")], "{back}");
    assert_eq!(hosts(&back), ["host3", "host4"]);
    let planned = plan(&p, "cluster.c", &cluster_cfg, Some(&back)).await;
    assert!(planned.requires_replace.is_empty(), "{:?}", planned.requires_replace);
    assert!(list_of(&planned.planned, "stale_hosts").is_empty(), "{}", planned.planned);
    let w = planned.diagnostics.iter().find(|d| d.code == "W-ONPREM-STALE").expect("the plan says what apply does on host6");
    assert!(w.summary.contains("host `host6` answers again"), "{}", w.summary);
    let cleaned = p.update(UpdateRequest { address: "cluster.c", kind: "cluster", prior: &back, planned: &planned.planned }).await;
    assert!(cleaned.diagnostics.is_empty(), "{:?}", cleaned.diagnostics);
    assert!(!ProcTable::snapshot().group_alive(groups[0]), "the old node on host6 was stopped");
    let new_groups = groups_of(&read(&p, "job.j", &again).await.expect("running"));
    assert!(new_groups.iter().all(|g| ProcTable::snapshot().group_alive(*g)), "the new job's nodes are not touched");
    let cleaned = read(&p, "cluster.c", &cleaned.state.expect("state")).await.expect("the cluster stays");
    assert!(list_of(&cleaned, "stale_hosts").is_empty(), "host6's claims are released: {cleaned}");
    assert_eq!(plan(&p, "cluster.c", &cluster_cfg, Some(&cleaned)).await.planned, cleaned, "and nothing is left to do");

    assert!(!delete(&p, "job.j", &again).await.has_errors());
    assert!(!delete(&p, "cluster.c", &healed).await.has_errors());
}
