//! `inventory` and `fleet`: hardware read over SSH from real hosts, strict host keys (a changed
//! or unknown key is refused with the fingerprint the host presents), unreachable hosts, jump
//! hosts, one pooled connection per host, and hosts added to or removed from a fleet in place.

use kiln_provider::{Provider, ReadDataRequest, ReadItem, ReadRequest, UpdateRequest};
use kiln_provider_onprem::hostkey::fingerprint;
use kiln_value::Value;
use serde_json::json;

use crate::common::*;
use crate::harness::harness;

async fn inventory(p: &kiln_provider_onprem::OnpremProvider) -> kiln_provider::ReadResult {
    p.read_data(ReadDataRequest { kind: "inventory", config: &json(json!({})) }).await
}

fn host<'a>(inv: &'a Value, name: &str) -> &'a Value {
    list_of(inv, "hosts")
        .iter()
        .find(|h| h.get("name").and_then(Value::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no host {name} in {inv}"))
}

fn fp(key: &str) -> String {
    fingerprint(key.split_whitespace().nth(1).expect("key blob")).expect("fingerprint")
}

#[tokio::test]
async fn inventory_of_two_hosts() {
    let p = provider(&["host1", "host2"]);
    let r = inventory(&p).await;
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let inv = r.state.expect("inventory");
    assert_eq!(list_of(&inv, "hosts").len(), 2);
    assert_eq!(num_of(&inv, "gpu_count"), 16);
    assert_eq!(num_of(&inv, "gpus_free"), 16);
    assert!(list_of(&inv, "unreachable").is_empty());
    for name in ["host1", "host2"] {
        let h = host(&inv, name);
        assert_eq!(h.get("reachable"), Some(&Value::from(true)), "{h}");
        assert_eq!(str_of(h, "address"), harness().host(name).address);
        assert!(num_of(h, "cpus") >= 1, "{h}");
        assert!(h.get("memory_gb").and_then(Value::as_number).is_some_and(|m| m > 0.into()), "{h}");
        assert!(!str_of(h, "os").is_empty() && str_of(h, "kernel").starts_with("Linux"), "{h}");
        assert!(list_of(h, "disks").iter().any(|d| d.get("mount").and_then(Value::as_str) == Some("/")), "{h}");
        let gpus = list_of(h, "gpus");
        assert_eq!(gpus.len(), 8);
        assert_eq!(gpus[7], json(json!({ "index": 7, "name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "vendor": "nvidia" })));
    }
}

#[tokio::test]
async fn amd_gpus_and_hosts_without_gpus() {
    let p = provider(&["host3", "host4"]);
    let inv = inventory(&p).await.state.expect("inventory");
    let amd = list_of(host(&inv, "host3"), "gpus");
    assert_eq!(amd.len(), 2);
    assert_eq!(amd[1], json(json!({ "index": 1, "name": "AMD Instinct MI210", "memory_mib": 65520, "vendor": "amd" })));
    assert_eq!(num_of(host(&inv, "host4"), "gpu_count"), 0);
}

#[tokio::test]
async fn a_changed_host_key_is_rejected_with_the_fingerprint() {
    let mut block = host_block("host1");
    block["host_key"] = json!(harness().host("host2").key);
    let p = configure(provider_config(vec![block]));
    let r = inventory(&p).await;
    let e = r.diagnostics.errors().next().unwrap_or_else(|| panic!("a changed key must be an error: {:?}", r.state));
    assert_eq!(e.code, "E-ONPREM-HOST-KEY");
    let presented = fp(&harness().host("host1").key);
    let configured = fp(&harness().host("host2").key);
    assert!(e.summary.contains(&presented) && e.summary.contains(&configured), "{}", e.summary);
    assert!(e.summary.contains("does not match"), "{}", e.summary);
    let inv = r.state.expect("hosts are still described");
    assert_eq!(host(&inv, "host1").get("reachable"), Some(&Value::from(false)));
}

#[tokio::test]
async fn an_unknown_host_key_is_rejected_with_the_fingerprint() {
    let mut block = host_block("host2");
    block.as_object_mut().unwrap().remove("host_key");
    let p = configure(provider_config(vec![block]));
    let r = inventory(&p).await;
    let e = r.diagnostics.errors().next().expect("an unknown key must be an error");
    assert_eq!(e.code, "E-ONPREM-HOST-KEY");
    assert!(e.summary.contains(&fp(&harness().host("host2").key)), "{}", e.summary);
    assert!(e.summary.contains("no host_key configured"), "{}", e.summary);
    assert_eq!(p.connections_opened(), 0, "nothing was accepted");
}

#[tokio::test]
async fn a_fingerprint_host_key_is_checked_against_the_host() {
    let mut good = host_block("host1");
    good["host_key"] = json!(fp(&harness().host("host1").key));
    let mut bad = host_block("host2");
    bad["host_key"] = json!(fp(&harness().host("host1").key));
    let p = configure(provider_config(vec![good, bad]));
    let r = inventory(&p).await;
    let inv = r.state.expect("inventory");
    assert_eq!(host(&inv, "host1").get("reachable"), Some(&Value::from(true)));
    let e = r.diagnostics.errors().next().expect("host2's key is not the fingerprint given");
    assert!(e.summary.contains(&fp(&harness().host("host2").key)), "{}", e.summary);
}

#[tokio::test]
async fn a_host_reached_through_a_jump_host() {
    let mut jump = host_block("host1");
    jump["allocate"] = json!(false);
    let mut target = host_block("host2");
    target["proxy_jump"] = json!("host1");
    let p = configure(provider_config(vec![jump, target]));
    let r = inventory(&p).await;
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    assert_eq!(host(&r.state.expect("inventory"), "host2").get("reachable"), Some(&Value::from(true)));
}

#[tokio::test]
async fn a_host_that_does_not_answer_is_unreachable_not_an_error() {
    let mut dead = host_block("host4");
    dead["name"] = json!("ghost");
    dead["address"] = json!("127.0.1.99");
    let p = configure(provider_config(vec![host_block("host4"), dead]));
    let r = inventory(&p).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    let w = r.diagnostics.iter().next().expect("a warning");
    assert!(w.summary.contains("ghost") && w.summary.contains("unreachable"), "{}", w.summary);
    let inv = r.state.expect("inventory");
    assert_eq!(list_of(&inv, "unreachable"), &[Value::from("ghost")]);
    assert_eq!(host(&inv, "ghost").get("reachable"), Some(&Value::from(false)));
    assert_eq!(host(&inv, "host4").get("reachable"), Some(&Value::from(true)));
}

#[tokio::test]
async fn fleet_resource_filters_by_label_and_refreshes() {
    let mut h1 = host_block("host1");
    h1["labels"] = json!({ "rack": "a" });
    let mut h3 = host_block("host3");
    h3["labels"] = json!({ "rack": "b" });
    let p = configure(provider_config(vec![h1, h3]));
    let state = create(&p, "fleet.rack_a", &config(&p, "fleet", json!({ "labels": { "rack": "a" } }))).await;
    let hosts = list_of(&state, "hosts");
    assert_eq!(hosts.len(), 1);
    assert_eq!(str_of(&hosts[0], "name"), "host1");
    let again = read(&p, "fleet.rack_a", &state).await.expect("a fleet is never gone");
    assert_eq!(num_of(&again, "gpu_count"), 8);
}

fn names(fleet: &Value) -> Vec<String> {
    list_of(fleet, "hosts").iter().map(|h| str_of(h, "name").to_string()).collect()
}

/// Issue 6: hosts added to or removed from the provider block, or from the fleet's `names`,
/// change the fleet in place: the refresh describes the hosts the provider has now, and a
/// change of `names` is an update, never a replacement.
#[tokio::test]
async fn hosts_are_added_and_removed_in_place() {
    let p = provider(&["host1"]);
    let all = config(&p, "fleet", json!({}));
    let state = create(&p, "fleet.all", &all).await;
    assert_eq!(names(&state), ["host1"]);

    // A host is added to the provider block (a later run): the refresh has it.
    let grown = sharing_root(&p, &["host1", "host3"]);
    let refreshed = read(&grown, "fleet.all", &state).await.expect("a fleet is never gone");
    assert_eq!(names(&refreshed), ["host1", "host3"]);
    assert_eq!(num_of(&refreshed, "gpu_count"), 10, "8 A100 on host1, 2 MI210 on host3");
    let same = plan(&grown, "fleet.all", &all, Some(&refreshed)).await;
    assert!(same.requires_replace.is_empty() && same.diagnostics.is_empty(), "{:?}", same.diagnostics);

    // The fleet narrows to chosen hosts: planned in place, applied by update.
    let only3 = config(&grown, "fleet", json!({ "names": ["host3"] }));
    let planned = plan(&grown, "fleet.all", &only3, Some(&refreshed)).await;
    assert!(planned.requires_replace.is_empty(), "an update, not a replacement: {:?}", planned.requires_replace);
    let updated = grown.update(UpdateRequest { address: "fleet.all", kind: "fleet", prior: &refreshed, planned: &planned.planned }).await;
    assert!(!updated.diagnostics.has_errors(), "{:?}", updated.diagnostics);
    let updated = updated.state.expect("state");
    assert_eq!(names(&updated), ["host3"]);
    assert_eq!(num_of(&updated, "gpu_count"), 2);

    // A host is removed from the provider block: gone from the refresh, the fleet stays.
    let shrunk = sharing_root(&p, &["host1"]);
    let after = read(&shrunk, "fleet.all", &refreshed).await.expect("a fleet is never gone");
    assert_eq!(names(&after), ["host1"]);
}

#[tokio::test]
async fn a_refresh_uses_one_connection_per_host() {
    let p = provider(&["host1", "host2"]);
    let fleet = create(&p, "fleet.all", &config(&p, "fleet", json!({}))).await;
    let cluster = create(&p, "cluster.c", &config(&p, "cluster", json!({ "nodes": 2, "accelerators": "A100-80GB:1" }))).await;
    let bucket = create(&p, "bucket.b", &config(&p, "bucket", json!({}))).await;
    for _ in 0..3 {
        let items = vec![
            ReadItem { address: "fleet.all", kind: "fleet", state: &fleet },
            ReadItem { address: "cluster.c", kind: "cluster", state: &cluster },
            ReadItem { address: "bucket.b", kind: "bucket", state: &bucket },
            ReadItem { address: "fleet.again", kind: "fleet", state: &fleet },
        ];
        let r = p.read(ReadRequest { items }).await;
        assert!(r.results.iter().all(|r| r.state.is_some() && !r.diagnostics.has_errors()));
    }
    assert_eq!(p.connections_opened(), 2, "one SSH connection per host, reused by every operation");
    let calls = p.api_calls();
    assert_eq!(calls["ssh.connect"], 2);
    // 2 for the fleet's create, 2 for the cluster's plan, then 2 per refresh however many
    // fleets and clusters it reads.
    assert_eq!(calls["host.scan"], 10, "{calls:?}");
    assert!(!delete(&p, "cluster.c", &cluster).await.has_errors());
    assert!(!delete(&p, "bucket.b", &bucket).await.has_errors());
}
