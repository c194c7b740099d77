//! Placement: the provider offers the catalog's rows of its region, and `kiln catalog refresh
//! aws` reads them from DescribeInstanceTypes and DescribeSpotPriceHistory (moto 5.2.5 answers
//! every instance type it knows, and for spot prices one entry per type offered in each zone of
//! the region, all at 0.00001 "Linux/UNIX (Amazon VPC)").

use kiln_provider::offerings::{CatalogRefresh, Offering, Offerings};
use kiln_provider::Provider;
use kiln_provider_aws::{AwsProvider, Settings};
use kiln_value::Decimal;

use crate::common::moto::{exclusive, server};
use crate::common::*;

fn of<'a>(r: &'a CatalogRefresh, instance_type: &str) -> Vec<&'a Offering> {
    r.rows.iter().filter(|o| o.instance_type == instance_type).collect()
}

#[tokio::test]
async fn offerings_are_the_catalog_rows_of_the_configured_region() {
    let p = provider().await;
    let r = Provider::offerings(&p).await;
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    assert_eq!(r.offerings, Offerings::Catalog { cloud: "aws".into(), regions: Some(vec!["us-east-1".into()]) });
    assert_eq!(p.api_calls().total(), 0, "no API call: the rows are the catalog's");
}

#[tokio::test]
async fn refresh_reads_hardware_and_spot_prices_per_zone() {
    let _g = exclusive().await;
    let p = provider().await;
    let r = Provider::refresh_catalog(&p).await;
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    assert_eq!(r.cloud, "aws");
    assert!(r.source.starts_with("EC2 API DescribeInstanceTypes and DescribeSpotPriceHistory, us-east-1"), "{}", r.source);
    assert!(r.source.contains("zones by name"), "the shipped catalog has zone IDs: {}", r.source);
    assert!(r.rows.len() > 100, "{} rows", r.rows.len());
    assert!(r.rows.iter().all(|o| o.cloud == "aws" && o.region.as_deref() == Some("us-east-1")), "every row in the configured region");
    assert!(r.rows.iter().all(|o| o.price_hourly.is_none()), "the EC2 API gives no on-demand price: unknown, never 0");
    assert!(r.rows.iter().all(|o| o.available.is_none()));

    // p5.48xlarge: 8 H100 of 80 GiB, 192 vCPUs, 2 TiB; a spot price in each of the six zones
    // moto offers it in.
    let p5 = of(&r, "p5.48xlarge");
    let zones: Vec<&str> = p5.iter().map(|o| o.zone.as_deref().unwrap()).collect();
    assert_eq!(zones, ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"]);
    for o in &p5 {
        let a = o.accelerator.as_ref().expect("GPUs");
        assert_eq!((a.name.as_str(), a.count, a.memory_gib), ("H100", 8, Some(Decimal::from(80))));
        assert_eq!((o.vcpus, o.memory_gib), (192, Decimal::from(2048)));
        assert_eq!(o.spot_price_hourly, Some("0.00001".parse().unwrap()), "moto's spot price");
    }
    // EC2 calls both A100 parts "A100": the memory makes p4de's the catalog's A100-80GB.
    let p4de = of(&r, "p4de.24xlarge");
    assert!(!p4de.is_empty() && p4de.iter().all(|o| o.accelerator.as_ref().unwrap().name == "A100-80GB"), "{p4de:?}");
    assert!(of(&r, "p4d.24xlarge").iter().all(|o| o.accelerator.as_ref().unwrap().name == "A100"));
    // A type moto offers in no zone of the region has no spot price: one row without a zone.
    let p5e = of(&r, "p5e.48xlarge");
    assert_eq!(p5e.len(), 1, "{p5e:?}");
    assert_eq!((p5e[0].zone.as_deref(), p5e[0].spot_price_hourly), (None, None));
    assert_eq!(p5e[0].accelerator.as_ref().map(|a| (a.name.as_str(), a.count)), Some(("H200", 8)));
    // CPU-only types have no accelerator; what a cluster cannot launch is left out: bare metal,
    // Arm, and accelerators that are not GPUs (Inferentia).
    assert!(of(&r, "m5.large").iter().all(|o| o.accelerator.is_none() && o.vcpus == 2));
    for absent in ["m5.metal", "m6g.large", "inf2.xlarge"] {
        assert!(of(&r, absent).is_empty(), "{absent} is not launchable");
    }
    assert_eq!(p.api_calls().of("DescribeSpotPriceHistory"), 1);
    assert_eq!(p.api_calls().of("DescribeInstanceTypes"), 1, "moto answers every type in one page");
}

#[tokio::test]
async fn refresh_errors_are_one_readable_line_with_a_hint() {
    let _g = exclusive().await;
    let p = provider().await;
    server().fault("DescribeSpotPriceHistory", "", "UnauthorizedOperation", 403, 1);
    let r = Provider::refresh_catalog(&p).await;
    assert!(r.rows.is_empty(), "no partial catalog");
    let e = r.diagnostics.errors().next().expect("an error");
    assert!(e.summary.starts_with("aws: cannot read the spot prices of us-east-1: UnauthorizedOperation"), "{}", e.summary);
    assert!(e.hint.as_deref().unwrap_or_default().contains("permission"), "{e:?}");

    // Nothing listens on port 1: said in one line, with where to look.
    let settings = Settings { endpoint: Some("http://127.0.0.1:1".into()), max_attempts: 1, ..settings() };
    let p = AwsProvider::connect(settings).await.unwrap();
    let r = Provider::refresh_catalog(&p).await;
    let e = r.diagnostics.errors().next().expect("an error");
    assert!(e.summary.starts_with("aws: cannot list the instance types of us-east-1: cannot reach the AWS endpoint"), "{}", e.summary);
    assert!(!e.summary.contains('\n') && !e.summary.contains('{') && !e.summary.contains("Some("), "{}", e.summary);
    assert!(e.hint.as_deref().unwrap_or_default().contains("endpoint"), "{e:?}");
}
