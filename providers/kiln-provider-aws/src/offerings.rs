//! What the `aws` provider offers the placement optimizer (issue 14).
//!
//! - [`offerings`]: the catalog's `aws` rows in the region this provider instance launches in
//!   (no API call: the rows are the catalog's).
//! - [`refresh`]: `kiln catalog refresh aws`, the rows read from the EC2 API of that region:
//!   hardware from DescribeInstanceTypes (read once per provider instance, the same [`Catalog`]
//!   the cluster kind resolves requests with), spot prices from DescribeSpotPriceHistory (Linux,
//!   the latest price of each instance type in each zone). The API gives no on-demand price: it
//!   stays `None`, for the caller to fill from the shipped catalog; a type without a spot price
//!   has `None` there too, never 0.
//!
//! Rows are the types a cluster can launch ([`TypeInfo::requestable`]: virtualised x86_64, with
//! GPUs or with no accelerator at all). Zones are EC2's zone names (`us-east-1a`), which differ
//! per account; the shipped catalog has zone IDs (`use1-az1`), and the source note says which.

use std::collections::BTreeMap;
use std::str::FromStr;

use aws_sdk_ec2::primitives::DateTime;
use kiln_diag::Diagnostic;
use kiln_provider::offerings::{CatalogRefresh, OfferedAccelerator, Offering, Offerings, OfferingsResponse};
use kiln_provider::portable::accelerators;
use kiln_value::Decimal;

use crate::cluster::catalog::TypeInfo;
use crate::error::AwsError;
use crate::Ctx;

/// The catalog's name for AWS.
pub const CLOUD: &str = "aws";

/// How far back spot prices are read. AWS answers the price in effect at the start time and
/// every change since, so a day holds the latest price of every type and zone with a market.
const SPOT_WINDOW_SECS: i64 = 24 * 3600;

/// Product descriptions of Linux spot prices: what is asked for, and the older VPC name some
/// accounts (and moto) answer with.
const LINUX: &str = "Linux/UNIX";
const LINUX_VPC: &str = "Linux/UNIX (Amazon VPC)";

/// The catalog's rows for the configured region.
pub fn offerings(ctx: &Ctx) -> OfferingsResponse {
    OfferingsResponse {
        offerings: Offerings::Catalog { cloud: CLOUD.into(), regions: Some(vec![ctx.clients.region.clone()]) },
        diagnostics: Default::default(),
    }
}

/// The region's rows from the EC2 API (see the module's rule). An API error is the answer's one
/// error, with no rows.
pub async fn refresh(ctx: &Ctx) -> CatalogRefresh {
    let region = ctx.clients.region.clone();
    let source = format!("EC2 API DescribeInstanceTypes and DescribeSpotPriceHistory, {region} (zones by name, not zone ID)");
    let answer = |rows, diagnostics| CatalogRefresh { cloud: CLOUD.into(), rows, source: source.clone(), diagnostics };
    let types = match ctx.catalog().await {
        Ok(c) => &c.types,
        Err(e) => return answer(Vec::new(), e.provider_diagnostic(&format!("list the instance types of {region}")).into()),
    };
    let since = DateTime::from_secs(now_secs() - SPOT_WINDOW_SECS);
    let spot = match spot_prices(&ctx.clients.ec2, since).await {
        Ok(s) => s,
        Err(e) => return answer(Vec::new(), e.provider_diagnostic(&format!("read the spot prices of {region}")).into()),
    };
    let mut diagnostics = kiln_diag::Diagnostics::new();
    if spot.unreadable > 0 {
        diagnostics.push(Diagnostic::warning(
            "W-CATALOG-REFRESH",
            format!("aws: {} spot prices of {region} were not decimal numbers and were left out", spot.unreadable),
        ));
    }
    answer(rows(&region, types, &spot.latest), diagnostics)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The latest spot price of each (instance type, zone): the price and when it was set.
pub(crate) type SpotPrices = BTreeMap<(String, String), ((i64, u32), Decimal)>;

/// What DescribeSpotPriceHistory answered.
#[derive(Debug, Default)]
pub(crate) struct SpotHistory {
    pub latest: SpotPrices,
    /// Prices that were not decimal numbers.
    pub unreadable: usize,
}

impl SpotHistory {
    /// Notes one price; a later one for the same type and zone replaces it.
    pub(crate) fn note(&mut self, instance_type: &str, zone: &str, at: (i64, u32), price: &str) {
        let Ok(price) = Decimal::from_str(price.trim()) else {
            self.unreadable += 1;
            return;
        };
        let key = (instance_type.to_string(), zone.to_string());
        match self.latest.get(&key) {
            Some((seen, _)) if *seen >= at => {}
            _ => {
                self.latest.insert(key, (at, price));
            }
        }
    }
}

/// Reads every page of DescribeSpotPriceHistory for Linux since `since`.
async fn spot_prices(ec2: &aws_sdk_ec2::Client, since: DateTime) -> Result<SpotHistory, AwsError> {
    let mut history = SpotHistory::default();
    let mut next: Option<String> = None;
    loop {
        let out = ec2
            .describe_spot_price_history()
            .product_descriptions(LINUX)
            .start_time(since)
            .max_results(1000)
            .set_next_token(next)
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        for p in out.spot_price_history() {
            let linux = p.product_description().is_some_and(|d| matches!(d.as_str(), LINUX | LINUX_VPC));
            let (Some(t), Some(zone), Some(price)) = (p.instance_type(), p.availability_zone(), p.spot_price()) else { continue };
            if linux {
                let at = p.timestamp().map_or((i64::MIN, 0), |d| (d.secs(), d.subsec_nanos()));
                history.note(t.as_str(), zone, at, price);
            }
        }
        next = out.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        if next.is_none() {
            return Ok(history);
        }
    }
}

/// The rows: per requestable type, one per zone with a spot price, or one without a zone when
/// none has; on-demand prices unknown. Sorted by type, then zone.
pub(crate) fn rows(region: &str, types: &[TypeInfo], spot: &SpotPrices) -> Vec<Offering> {
    let mut by_type: BTreeMap<&str, Vec<(&str, Decimal)>> = BTreeMap::new();
    for ((t, zone), (_, price)) in spot {
        by_type.entry(t.as_str()).or_default().push((zone.as_str(), *price));
    }
    let mut sorted: Vec<&TypeInfo> = types.iter().filter(|t| t.requestable()).collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    for t in sorted {
        let row = |zone: Option<&str>, spot: Option<Decimal>| Offering {
            cloud: CLOUD.into(),
            instance_type: t.name.clone(),
            accelerator: accelerator(t),
            vcpus: t.vcpus,
            memory_gib: gib(t.memory_mib),
            region: Some(region.to_string()),
            zone: zone.map(str::to_string),
            price_hourly: None,
            spot_price_hourly: spot,
            available: None,
        };
        match by_type.get(t.name.as_str()) {
            Some(zones) => out.extend(zones.iter().map(|(z, p)| row(Some(z), Some(*p)))),
            None => out.push(row(None, None)),
        }
    }
    out
}

/// The type's GPUs under the catalog's name (EC2's "A100" with 80 GB is `A100-80GB`; a name the
/// table lacks stays EC2's): the first model's, counting every entry of that model.
fn accelerator(t: &TypeInfo) -> Option<OfferedAccelerator> {
    let (first, _, mib) = t.gpus.first()?;
    let name = accelerators::classify(first, Some(*mib).filter(|m| *m > 0)).map_or(first.clone(), |m| m.name.to_string());
    Some(OfferedAccelerator {
        name,
        count: t.gpus.iter().filter(|(n, _, _)| n == first).map(|(_, c, _)| c).sum(),
        memory_gib: Some(*mib).filter(|m| *m > 0).map(gib),
    })
}

/// MiB as GiB, exactly (no trailing zeros).
fn gib(mib: u64) -> Decimal {
    (Decimal::from(mib) / Decimal::from(1024u64)).normalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, vcpus: u64, mib: u64, gpus: &[(&str, u64, u64)]) -> TypeInfo {
        TypeInfo {
            name: name.into(),
            vcpus,
            memory_mib: mib,
            gpus: gpus.iter().map(|(n, c, m)| (n.to_string(), *c, *m)).collect(),
            accelerated: !gpus.is_empty(),
            current: true,
            bare_metal: false,
            x86_64: true,
            spot: true,
            instance_storage: false,
        }
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn latest_price_per_type_and_zone_wins() {
        let mut h = SpotHistory::default();
        h.note("p5.48xlarge", "us-east-1a", (200, 0), "24.5");
        h.note("p5.48xlarge", "us-east-1a", (100, 0), "30");
        h.note("p5.48xlarge", "us-east-1b", (100, 0), "31");
        h.note("p5.48xlarge", "us-east-1b", (150, 0), "not a price");
        assert_eq!(h.latest[&("p5.48xlarge".into(), "us-east-1a".into())].1, dec("24.5"));
        assert_eq!(h.latest[&("p5.48xlarge".into(), "us-east-1b".into())].1, dec("31"));
        assert_eq!(h.unreadable, 1);
    }

    #[test]
    fn rows_per_zone_with_a_spot_price_else_one_without_zone() {
        let types = vec![
            t("p4de.24xlarge", 96, 1179648, &[("A100", 8, 81920)]),
            t("g5.xlarge", 4, 16384, &[("A10G", 1, 22888)]),
            t("m5.large", 2, 8192, &[]),
            TypeInfo { bare_metal: true, ..t("m5.metal", 96, 393216, &[]) },
            TypeInfo { x86_64: false, ..t("m6g.large", 2, 8192, &[]) },
            TypeInfo { accelerated: true, ..t("inf2.xlarge", 4, 16384, &[]) },
        ];
        let mut h = SpotHistory::default();
        h.note("g5.xlarge", "us-east-1b", (1, 0), "0.45");
        h.note("g5.xlarge", "us-east-1a", (1, 0), "0.5");
        h.note("m5.metal", "us-east-1a", (1, 0), "1.1");
        let rows = rows("us-east-1", &types, &h.latest);
        let names: Vec<(&str, Option<&str>)> = rows.iter().map(|r| (r.instance_type.as_str(), r.zone.as_deref())).collect();
        assert_eq!(
            names,
            [("g5.xlarge", Some("us-east-1a")), ("g5.xlarge", Some("us-east-1b")), ("m5.large", None), ("p4de.24xlarge", None)]
        );
        let g5 = &rows[1];
        assert_eq!(g5.spot_price_hourly, Some(dec("0.45")));
        assert_eq!(g5.price_hourly, None, "the EC2 API gives no on-demand price");
        assert_eq!(g5.accelerator, Some(OfferedAccelerator { name: "A10G".into(), count: 1, memory_gib: Some(dec("22.3515625")) }));
        assert_eq!(g5.memory_gib, dec("16"));
        assert_eq!(g5.region.as_deref(), Some("us-east-1"));
        let p4de = &rows[3];
        assert_eq!(p4de.accelerator.as_ref().unwrap().name, "A100-80GB", "EC2's A100 with 80 GB is the catalog's A100-80GB");
        assert_eq!((p4de.spot_price_hourly, p4de.price_hourly), (None, None), "no price is unknown, never 0");
        assert_eq!(rows[2].accelerator, None);
    }
}
