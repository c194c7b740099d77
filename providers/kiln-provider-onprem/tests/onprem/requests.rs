//! The request grammar on `cluster` (`cpus = "4"`: the node gets exactly 4 of its host's CPUs;
//! accelerator names from the one table), and states written before it, which keep their
//! meaning and plan no change.

use serde_json::json;

use crate::common::*;

/// A state as kiln wrote it before the grammar was shared (captured from that code against the
/// harness hosts): `cpus` and `memory` were minimums, and "A100" matched the 80 GB part.
fn state_written_before() -> serde_json::Value {
    json!({"accelerators":"A100:2","allocation":[{"address":"127.0.1.1","gpus":[
        {"index":0,"memory_mib":81920,"name":"NVIDIA A100-SXM4-80GB","vendor":"nvidia"},
        {"index":1,"memory_mib":81920,"name":"NVIDIA A100-SXM4-80GB","vendor":"nvidia"}],"host":"host1"}],
        "cluster_id":"legacy-01193830","cpus":"1","gpus_per_node":2,"hosts":["host1"],"labels":null,"memory":"1",
        "node_ips":["127.0.1.1"],"nodes":1,"stale_hosts":[],"unreachable":[]})
}

#[tokio::test]
async fn a_state_written_before_plans_no_change() {
    let p = provider(&["host1", "host4"]);
    let prior = json(state_written_before());
    let cfg = config(&p, "cluster", json!({ "nodes": 1, "accelerators": "A100:2", "cpus": "1", "memory": "1", "hosts": ["host1"] }));
    let r = plan(&p, "cluster.legacy", &cfg, Some(&prior)).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    assert_eq!(changed(&prior, &r.planned), Vec::<String>::new(), "planned {}", r.planned);
    assert!(r.requires_replace.is_empty());
}

#[tokio::test]
async fn cpus_exactly_give_the_node_that_many_and_names_come_from_the_table() {
    let p = provider(&["host1", "host4"]);
    let exact = plan(&p, "cluster.exact", &config(&p, "cluster", json!({ "cpus": "1", "hosts": ["host4"] })), None).await;
    assert!(!exact.diagnostics.has_errors(), "{:?}", exact.diagnostics);
    assert_eq!(exact.planned.get("cpus_per_node"), Some(&json(json!(1))));
    let whole = plan(&p, "cluster.whole", &config(&p, "cluster", json!({ "cpus": "1+", "hosts": ["host4"] })), None).await;
    let host_cpus = num_of(&whole.planned, "cpus_per_node");
    assert!(host_cpus >= 1, "the whole host: {}", whole.planned);

    // "A100" is the 40 GB part; the harness hosts have the 80 GB one.
    let r = plan(&p, "cluster.a100", &config(&p, "cluster", json!({ "accelerators": "A100:1" })), None).await;
    let e = r.diagnostics.errors().next().unwrap_or_else(|| panic!("A100 is not an A100-80GB: {}", r.planned));
    assert!(e.summary.contains("host1: no A100 (8 x NVIDIA A100-SXM4-80GB)"), "{}", e.summary);
    let alt = plan(&p, "cluster.alt", &config(&p, "cluster", json!({ "accelerators": ["H100:1", "A100-80GB:1"] })), None).await;
    assert!(!alt.diagnostics.has_errors(), "{:?}", alt.diagnostics);
    assert_eq!(num_of(&alt.planned, "gpus_per_node"), 1);

    let d = kiln_provider::Provider::validate(
        &p,
        kiln_provider::ValidateRequest { kind: "cluster", config: &config(&p, "cluster", json!({ "accelerators": "8xA100-80GB" })) },
    );
    let e = d.errors().next().expect("malformed");
    assert_eq!((e.attribute.as_deref(), e.hint.as_deref()), (Some("accelerators"), Some("did you mean \"A100-80GB:8\"?")));
}

/// The CPUs a node's log lists (`Cpus_allowed_list:` of its process), expanded.
fn cpus_in(log: &str) -> Vec<u64> {
    let list =
        log.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(str::trim).unwrap_or_else(|| panic!("no CPU list in {log}"));
    list.split(',')
        .flat_map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            a.trim().parse::<u64>().unwrap()..=b.trim().parse::<u64>().unwrap()
        })
        .collect()
}

/// Issue 11: `cpus = "1"` runs each node on exactly one CPU of its host (taskset), and a node of
/// another cluster on the same host, started while the first runs, gets a CPU of its own when
/// the host has one.
#[tokio::test]
async fn a_node_given_exact_cpus_runs_on_them() {
    let p = provider(&["host1", "host2"]);
    let show = "grep Cpus_allowed_list /proc/self/status; echo nproc=$(nproc)";
    let first = create(&p, "cluster.first", &config(&p, "cluster", json!({ "nodes": 2, "cpus": "1", "hosts": ["host1", "host2"] }))).await;
    let cfg = |c: &kiln_value::Value, run: &str| config(&p, "job", json!({ "cluster": c.to_json(), "run": run }));
    let held = create(&p, "job.held", &cfg(&first, &format!("{show}; echo ready; exec sleep 600"))).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut logs = Vec::new();
    for rank in 0..2 {
        let mut text = log(&p, "job.held", &held, rank).await;
        while !text.contains("ready") {
            assert!(std::time::Instant::now() < deadline, "node {rank} never became ready: {text}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            text = log(&p, "job.held", &held, rank).await;
        }
        assert_eq!(cpus_in(&text).len(), 1, "node {rank} runs on exactly one CPU: {text}");
        assert!(text.contains("nproc=1"), "{text}");
        logs.push(text);
    }

    let second = create(&p, "cluster.second", &config(&p, "cluster", json!({ "cpus": "1", "hosts": ["host1"] }))).await;
    let job = create(&p, "job.second", &cfg(&second, show)).await;
    let done = read_until(&p, "job.second", &job, |s| !matches!(status(s), "running" | "pending")).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    let text = log(&p, "job.second", &done, 0).await;
    let mine = cpus_in(&text);
    let status_text = std::fs::read_to_string("/proc/self/status").unwrap();
    let allowed = cpus_in(&status_text);
    if allowed.len() >= 2 {
        assert_ne!(mine, cpus_in(&logs[0]), "another cluster's node on host1 gets another CPU: {text}");
    }

    for (address, state) in [("job.second", &done), ("job.held", &held), ("cluster.second", &second), ("cluster.first", &first)] {
        let d = delete(&p, address, state).await;
        assert!(!d.has_errors(), "{address}: {d:?}");
    }
}

/// Issue 11: without an exact `cpus` (`"1+"`) a node runs on every CPU of its host.
#[tokio::test]
async fn a_node_without_exact_cpus_uses_its_whole_host() {
    let p = provider(&["host2"]);
    let c = create(&p, "cluster.whole", &config(&p, "cluster", json!({ "cpus": "1+", "hosts": ["host2"] }))).await;
    let job =
        create(&p, "job.whole", &config(&p, "job", json!({ "cluster": c.to_json(), "run": "grep Cpus_allowed_list /proc/self/status" })))
            .await;
    let done = read_until(&p, "job.whole", &job, |s| !matches!(status(s), "running" | "pending")).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    let allowed = cpus_in(&std::fs::read_to_string("/proc/self/status").unwrap());
    assert_eq!(cpus_in(&log(&p, "job.whole", &done, 0).await), allowed);
    assert!(!delete(&p, "job.whole", &done).await.has_errors());
    assert!(!delete(&p, "cluster.whole", &c).await.has_errors());
}
