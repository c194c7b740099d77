//! Placement offerings: each host's free capacity, read from the real hosts (fake `nvidia-smi`
//! and `rocm-smi`, GPU claims as files), shrinking as clusters claim GPUs, priced by the
//! provider's and the hosts' `hourly_price` and `gpu_hour_price`; GPUs a plan of the same
//! provider instance reserved are not offered again.

use kiln_provider::offerings::{Offering, Offerings};
use kiln_provider::Provider;
use kiln_provider_onprem::OnpremProvider;
use kiln_value::Decimal;
use serde_json::json;

use crate::common::*;

async fn owned(p: &OnpremProvider) -> (Vec<Offering>, Vec<String>) {
    let r = Provider::offerings(p).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    let warnings = r.diagnostics.iter().map(|d| format!("{}: {}", d.code, d.summary)).collect();
    match r.offerings {
        Offerings::Owned(rows) => (rows, warnings),
        other => panic!("onprem offers owned hardware, got {other:?}"),
    }
}

/// (host, GPU name, GPU count, price per hour) of each row.
fn summary(rows: &[Offering]) -> Vec<(String, Option<String>, u64, Option<Decimal>)> {
    rows.iter()
        .map(|r| {
            let (name, count) = r.accelerator.as_ref().map_or((None, 0), |a| (Some(a.name.clone()), a.count));
            (r.instance_type.clone(), name, count, r.price_hourly)
        })
        .collect()
}

fn usd(s: &str) -> Option<Decimal> {
    Some(s.parse().unwrap())
}

#[tokio::test]
async fn hosts_offer_their_free_gpus_at_their_price_and_offers_shrink_as_clusters_claim() {
    let mut host4 = host_block("host4");
    host4["hourly_price"] = json!(0.25);
    // A host that does not answer (nothing listens on port 1) is left out, with a warning.
    let mut down = host_block("host4");
    down["name"] = json!("down");
    down["port"] = json!(1);
    let mut cfg = provider_config(vec![host_block("host1"), host_block("host3"), host4, down]);
    cfg["hourly_price"] = json!(0.5);
    cfg["gpu_hour_price"] = json!(2);
    let p = configure(cfg);

    let (rows, warnings) = owned(&p).await;
    assert_eq!(
        summary(&rows),
        [
            ("host1".to_string(), Some("A100-80GB".to_string()), 8, usd("16.5")),
            ("host3".to_string(), Some("MI210".to_string()), 2, usd("4.5")),
            ("host4".to_string(), None, 0, usd("0.25")),
        ],
        "the provider's prices, host4's own hourly_price"
    );
    assert!(warnings.len() == 1 && warnings[0].starts_with("W-ONPREM-UNREACHABLE") && warnings[0].contains("down"), "{warnings:?}");
    let host1 = &rows[0];
    assert_eq!(host1.cloud, "onprem");
    assert_eq!(host1.accelerator.as_ref().unwrap().memory_gib, Some(Decimal::from(80)), "81920 MiB per GPU");
    assert!(host1.vcpus > 0 && host1.memory_gib > Decimal::ZERO, "{host1:?}");
    assert_eq!((host1.region.as_deref(), host1.zone.as_deref(), host1.spot_price_hourly, host1.available), (None, None, None, Some(1)));

    // A cluster claims 6 of host1's GPUs: host1 offers the other 2, at 0.5 + 2 × 2.
    let a = create(&p, "cluster.a", &config(&p, "cluster", json!({ "accelerators": "A100-80GB:6" }))).await;
    let (rows, _) = owned(&p).await;
    assert_eq!(summary(&rows)[0], ("host1".to_string(), Some("A100-80GB".to_string()), 2, usd("4.5")));
    // Another provider instance over the same hosts (another state) sees the claims too.
    let other = sharing_root(&p, &["host1"]);
    let (rows, _) = owned(&other).await;
    assert_eq!(summary(&rows), [("host1".to_string(), Some("A100-80GB".to_string()), 2, usd("0"))], "no price configured: 0");

    // The last two claimed: host1 is busy and offers nothing.
    let b = create(&p, "cluster.b", &config(&p, "cluster", json!({ "accelerators": "A100-80GB:2" }))).await;
    let (rows, _) = owned(&p).await;
    assert_eq!(rows.iter().map(|r| r.instance_type.as_str()).collect::<Vec<_>>(), ["host3", "host4"]);

    // Released, they are offered again.
    for (address, state) in [("cluster.a", &a), ("cluster.b", &b)] {
        let d = delete(&p, address, state).await;
        assert!(!d.has_errors(), "{d:?}");
    }
    let (rows, _) = owned(&p).await;
    assert_eq!(summary(&rows)[0].2, 8);

    // GPUs a cluster's plan reserved in this provider instance are not offered again.
    let planner = sharing_root(&p, &["host1"]);
    let planned = plan(&planner, "cluster.p", &config(&planner, "cluster", json!({ "accelerators": "A100-80GB:2" })), None).await;
    assert!(!planned.diagnostics.has_errors(), "{:?}", planned.diagnostics);
    assert_eq!(summary(&owned(&planner).await.0)[0].2, 6);
    assert_eq!(summary(&owned(&p).await.0)[0].2, 8, "another instance's plan claims nothing");
}
