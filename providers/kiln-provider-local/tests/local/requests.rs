//! The request grammar on `cluster` (`cpus = "8"` exactly, `"8+"` at least; accelerator names
//! from the one table), and states written before it, which keep their meaning.

use serde_json::json;

use crate::common::*;

/// A state as kiln wrote it before the grammar was shared (captured from that code): `cpus`
/// meant "at least", and "A100" matched the 80 GB part.
fn state_written_before() -> serde_json::Value {
    json!({"accelerators":"A100:2","cpus":"8","cpus_total":64,"gpus":[
        {"index":0,"memory_mib":81920,"name":"NVIDIA A100-SXM4-80GB"},{"index":1,"memory_mib":81920,"name":"NVIDIA A100-SXM4-80GB"},
        {"index":2,"memory_mib":81920,"name":"NVIDIA A100-SXM4-80GB"},{"index":3,"memory_mib":81920,"name":"NVIDIA A100-SXM4-80GB"}],
        "gpus_per_node":2,"memory":"16","memory_gb":64,"nodes":2})
}

#[tokio::test]
async fn a_state_written_before_plans_no_change() {
    let (_dir, p) = provider(machine(64, "8x-a100-sxm4-80gb.csv"));
    let prior = json(state_written_before());
    let cfg = config(&p, "cluster", json!({ "nodes": 2, "accelerators": "A100:2", "cpus": "8", "memory": "16" }));
    let r = plan(&p, "cluster.train", &cfg, Some(&prior)).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    assert_eq!(changed(&prior, &r.planned), Vec::<String>::new(), "planned {}", r.planned);
    assert!(r.requires_replace.is_empty());
    let refreshed = read(&p, "cluster.train", &prior).await.expect("found");
    assert_eq!(changed(&prior, &refreshed), Vec::<String>::new(), "refreshed {refreshed}");
}

#[tokio::test]
async fn a_state_written_before_takes_the_new_meaning_when_its_request_changes() {
    let (_dir, p) = provider(machine(64, "8x-a100-sxm4-80gb.csv"));
    let prior = json(state_written_before());
    let cfg = config(&p, "cluster", json!({ "nodes": 2, "accelerators": "A100-80GB:2", "cpus": "8", "memory": "16" }));
    let planned = planned(&p, "cluster.train", &cfg, Some(&prior)).await;
    assert_eq!(changed(&prior, &planned), ["accelerators", "cpu_sets", "cpus_per_node"]);
    assert_eq!(planned.get("cpus_per_node"), Some(&json(json!(8))));
    // The old request itself, "A100" on 80 GB parts, means the 40 GB part in a new state.
    let old = config(&p, "cluster", json!({ "nodes": 2, "accelerators": "A100:2", "cpus": "8", "memory": "16" }));
    let r = plan(&p, "cluster.fresh", &old, None).await;
    let e = r.diagnostics.errors().next().unwrap_or_else(|| panic!("A100 is the 40 GB part: {}", r.planned));
    assert!(e.summary.contains("none of them A100"), "{}", e.summary);
}

#[tokio::test]
async fn cpus_exactly_give_each_node_its_own_cpus() {
    let (_dir, p) = provider(machine(16, "empty.csv"));
    let exact = create(&p, "cluster.exact", &config(&p, "cluster", json!({ "nodes": 2, "cpus": "4" }))).await;
    assert_eq!(exact.get("cpus_per_node"), Some(&json(json!(4))));
    assert_eq!(strs(&exact, "cpu_sets"), ["0-3", "4-7"]);
    let at_least = create(&p, "cluster.shared", &config(&p, "cluster", json!({ "nodes": 2, "cpus": "4+" }))).await;
    assert_eq!(at_least.get("cpus_per_node"), Some(&json(json!(8))), "the nodes' share of 16 CPUs");
    assert!(list_of(&at_least, "cpu_sets").is_empty());
    let again = read(&p, "cluster.exact", &exact).await.expect("found");
    assert_eq!(changed(&exact, &again), Vec::<String>::new());
    let r = plan(&p, "cluster.big", &config(&p, "cluster", json!({ "nodes": 2, "cpus": "9" })), None).await;
    assert_eq!(r.diagnostics.errors().next().map(|e| e.code), Some("E-LOCAL-CAPACITY"));
}

#[tokio::test]
async fn accelerators_alternatives_and_families() {
    let (_dir, p) = provider(machine(64, "8x-h100-80gb-hbm3.csv"));
    let c = create(&p, "cluster.c", &config(&p, "cluster", json!({ "accelerators": ["A100-80GB:8", "H100:4"] }))).await;
    assert_eq!(c.get("gpus_per_node"), Some(&json(json!(4))), "the first alternative the machine has");
    let sxm = create(&p, "cluster.sxm", &config(&p, "cluster", json!({ "accelerators": "h100-sxm:2" }))).await;
    assert_eq!(list_of(&sxm, "gpus").len(), 2);
    let r = plan(&p, "cluster.pcie", &config(&p, "cluster", json!({ "accelerators": "H100-PCIe:1" })), None).await;
    assert!(r.diagnostics.has_errors(), "an SXM H100 is not the PCIe variant");
}

#[tokio::test]
async fn malformed_requests_name_their_attribute_and_suggest() {
    let (_dir, p) = cpu_provider();
    for (bad, hint) in [("H100x8", "did you mean \"H100:8\"?"), ("8xH100", "did you mean \"H100:8\"?"), ("H1000", "did you mean \"H100\"?")]
    {
        let d = kiln_provider::Provider::validate(
            &p,
            kiln_provider::ValidateRequest { kind: "cluster", config: &config(&p, "cluster", json!({ "accelerators": bad })) },
        );
        let e = d.errors().next().unwrap_or_else(|| panic!("{bad} accepted"));
        assert_eq!((e.attribute.as_deref(), e.hint.as_deref()), (Some("accelerators"), Some(hint)), "{bad}: {}", e.summary);
    }
    let d = kiln_provider::Provider::validate(
        &p,
        kiln_provider::ValidateRequest { kind: "cluster", config: &config(&p, "cluster", json!({ "cpus": "lots" })) },
    );
    assert_eq!(d.errors().next().and_then(|e| e.attribute.as_deref()), Some("cpus"));
}

#[tokio::test]
async fn a_node_given_exact_cpus_runs_on_them() {
    let (_dir, p) = provider(machine(2, "empty.csv"));
    let cluster = create(&p, "cluster.pinned", &config(&p, "cluster", json!({ "nodes": 2, "cpus": "1" }))).await;
    let run = "grep Cpus_allowed_list /proc/self/status";
    let job = create(&p, "job.pinned", &config(&p, "job", json!({ "cluster": cluster.to_json(), "run": run }))).await;
    let done = finished(&p, "job.pinned", &job).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    // Node i gets the i-th CPU this process may use (slots are positions among them).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let allowed = allowed_cpus(status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim());
    for (rank, cpu) in allowed.iter().take(2).enumerate() {
        let text = log(&p, "job.pinned", &done, rank).await;
        let cpus = text.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(str::trim);
        assert_eq!(cpus, Some(cpu.to_string().as_str()), "node {rank} runs on one CPU of its own: {text}");
    }
    assert!(!delete(&p, "job.pinned", &done).await.has_errors());
}

/// "0-3,8" → [0, 1, 2, 3, 8].
fn allowed_cpus(s: &str) -> Vec<u64> {
    s.split(',')
        .flat_map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            a.trim().parse::<u64>().unwrap()..=b.trim().parse::<u64>().unwrap()
        })
        .collect()
}
