//! Properties of the optimizer over random requests against the whole shipped catalog: the
//! choice satisfies the request and its limits, no feasible offering is cheaper, and a request
//! is refused only when no offering is feasible. Feasibility is computed here again, from the
//! rules as documented, not by the optimizer's code.

mod common;

use std::collections::BTreeSet;

use common::{request, shipped};
use kiln_catalog::egress::Egress;
use kiln_catalog::matching::admits;
use kiln_catalog::Catalog;
use kiln_place::{decide, Data, Need, Origin, SpotMode};
use kiln_provider::offerings::Offering;
use kiln_value::Decimal;
use proptest::prelude::*;

/// The accelerator names the shipped catalog has, and "" for a CPU-only request.
fn names() -> Vec<String> {
    let set: BTreeSet<String> = Catalog::shipped().rows.iter().filter_map(|o| o.accelerator.as_ref().map(|a| a.name.clone())).collect();
    std::iter::once(String::new()).chain(set).collect()
}

/// "N+" (mostly) or "N", or none (more often than not, so that most requests are feasible and
/// the property says something about choices, not only refusals).
fn amount(values: &'static [u32]) -> impl Strategy<Value = Option<String>> {
    let written =
        (prop::sample::select(values), prop::bool::weighted(0.75)).prop_map(|(n, plus)| format!("{n}{}", if plus { "+" } else { "" }));
    prop::option::weighted(0.4, written)
}

fn spot() -> impl Strategy<Value = SpotMode> {
    prop::sample::select(vec![SpotMode::Never, SpotMode::Always, SpotMode::Auto])
}

fn max_price() -> impl Strategy<Value = Option<Decimal>> {
    prop::option::of(prop::sample::select(vec![1u32, 3, 10, 25, 40, 100]).prop_map(Decimal::from))
}

/// The price of `o` in `mode`'s market as the documented rule gives it, `None` when unknown.
fn price(mode: SpotMode, o: &Offering) -> Option<(Decimal, bool)> {
    match mode {
        SpotMode::Never => o.price_hourly.map(|p| (p, false)),
        SpotMode::Always => o.spot_price_hourly.map(|p| (p, true)),
        SpotMode::Auto => match (o.spot_price_hourly, o.price_hourly) {
            (Some(s), Some(d)) => Some(if s <= d { (s, true) } else { (d, false) }),
            (Some(s), None) => Some((s, true)),
            (None, Some(d)) => Some((d, false)),
            (None, None) => None,
        },
    }
}

/// The cheapest feasible price per node-hour, by the documented rules.
fn cheapest(n: &Need, rows: &[Offering]) -> Option<Decimal> {
    rows.iter()
        .filter(|o| admits(&n.request, o).is_ok())
        .filter_map(|o| price(n.spot, o))
        .map(|(p, _)| p)
        .filter(|p| n.max_price.is_none_or(|m| *p <= m))
        .min()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_choice_satisfies_the_request_and_nothing_feasible_is_cheaper(
        name in prop::sample::select(names()),
        count in prop::sample::select(vec![1u64, 2, 4, 8]),
        cpus in amount(&[1, 2, 4, 8, 16, 32, 48, 96, 192]),
        memory in amount(&[4, 8, 16, 32, 64, 128, 256, 1024, 2048]),
        spot in spot(),
        max_price in max_price(),
        nodes in 1u64..4,
    ) {
        let acc = if name.is_empty() { String::new() } else { format!("{name}:{count}") };
        let mut n = Need::new(request(&acc, cpus.as_deref(), memory.as_deref()));
        n.spot = spot;
        n.max_price = max_price;
        n.nodes = nodes;
        let rows = &Catalog::shipped().rows;
        let candidates = shipped();
        let best = cheapest(&n, rows);
        match decide(&n, &candidates) {
            Ok(d) => {
                let c = &d.chosen;
                let row = rows.iter().find(|o| o.cloud == c.cloud && o.instance_type == c.instance_type && o.region == c.region).expect("the chosen row exists");
                prop_assert!(admits(&n.request, row).is_ok(), "{} does not satisfy {}", c.instance_type, n.request.describe());
                prop_assert_eq!(price(spot, row), Some((c.price_hourly, c.spot)), "priced in the market the mode gives");
                prop_assert!(max_price.is_none_or(|m| c.price_hourly <= m));
                prop_assert_eq!(Some(c.price_hourly), best, "a feasible offering is cheaper");
                prop_assert_eq!(c.nodes, nodes);
                prop_assert_eq!(c.accelerators.is_none(), name.is_empty(), "CPU-only exactly when asked");
                for f in &d.fallbacks {
                    let r = rows.iter().find(|o| o.cloud == f.cloud && o.instance_type == f.instance_type && o.region == f.region).unwrap();
                    prop_assert!(admits(&n.request, r).is_ok());
                    prop_assert!(max_price.is_none_or(|m| f.price_hourly <= m));
                    prop_assert_eq!((&f.provider, &f.region), (&c.provider, &c.region));
                }
                // The same decision whatever order the candidates come in.
                let reversed: Vec<_> = candidates.iter().rev().cloned().collect();
                prop_assert_eq!(decide(&n, &reversed).ok(), Some(d));
            }
            Err(e) => {
                prop_assert_eq!(best, None, "refused ({}) while an offering is feasible", e.summary);
                prop_assert!(!e.summary.is_empty() && !e.hints.is_empty(), "an error says what to change");
            }
        }
    }
}

/// Where a random piece of data lives: an AWS region (some with no offering at all), Lambda's
/// or RunPod's cloud, a cloud the egress table lacks, or this machine.
fn origin() -> impl Strategy<Value = Origin> {
    let cloud = |c: &str, r: Option<&str>| Origin::Cloud { cloud: c.into(), region: r.map(str::to_string) };
    prop::sample::select(vec![
        cloud("aws", Some("us-east-1")),
        cloud("aws", Some("us-west-2")),
        cloud("aws", Some("eu-central-1")),
        cloud("aws", Some("af-south-1")),
        cloud("lambda", Some("us-east-1")),
        cloud("runpod", None),
        cloud("gcp", Some("us-central1")),
        Origin::ThisMachine,
    ])
}

/// One offering's move of every piece of `data`, by the egress table as documented: `None`
/// when any is unknown.
fn egress_of(data: &[Data], o: &Offering) -> Option<Decimal> {
    data.iter()
        .map(|d| match &d.origin {
            Origin::Cloud { cloud, region } => {
                Egress::shipped().cost((cloud, region.as_deref()), (&o.cloud, o.region.as_deref()), d.size_gb)
            }
            Origin::ThisMachine => Some(Decimal::ZERO),
            Origin::Owned { .. } => None,
        })
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn with_data_the_choice_has_the_lowest_day_of_price_plus_egress(
        name in prop::sample::select(names()),
        count in prop::sample::select(vec![1u64, 2, 4, 8]),
        spot in spot(),
        nodes in 1u64..4,
        data in prop::collection::vec((origin(), 1u32..20_000), 1..4),
    ) {
        let acc = if name.is_empty() { String::new() } else { format!("{name}:{count}") };
        let mut n = Need::new(request(&acc, None, None));
        n.spot = spot;
        n.nodes = nodes;
        n.data = data
            .iter()
            .enumerate()
            .map(|(i, (origin, gb))| Data { name: format!("bucket.b{i}"), origin: origin.clone(), size_gb: Decimal::from(*gb) })
            .collect();
        let rows = &Catalog::shipped().rows;
        // The best (known egress first, then price × nodes × 24 + egress), by the documented rules.
        let day = |p: Decimal| p * Decimal::from(nodes) * Decimal::from(24u32);
        let best = rows
            .iter()
            .filter(|o| admits(&n.request, o).is_ok())
            .filter_map(|o| price(spot, o).map(|(p, _)| (o, p)))
            .map(|(o, p)| {
                let e = egress_of(&n.data, o);
                (e.is_none(), day(p) + e.unwrap_or_default())
            })
            .min();
        match decide(&n, &shipped()) {
            Ok(d) => {
                let c = &d.chosen;
                let row = rows.iter().find(|o| o.cloud == c.cloud && o.instance_type == c.instance_type && o.region == c.region).expect("the chosen row exists");
                prop_assert_eq!(c.egress_usd, egress_of(&n.data, row), "the chosen offering's egress is the sum of its moves");
                prop_assert_eq!(Some((c.egress_usd.is_none(), day(c.price_hourly) + c.egress_usd.unwrap_or_default())), best, "a feasible offering is cheaper with its egress");
                for a in &d.alternatives {
                    let r = rows.iter().find(|o| o.cloud == a.offering.cloud && o.instance_type == a.offering.instance_type && o.region == a.offering.region).unwrap();
                    prop_assert_eq!(a.offering.egress_usd, egress_of(&n.data, r));
                }
            }
            Err(e) => prop_assert_eq!(best, None, "refused ({}) while an offering is feasible", e.summary),
        }
    }
}
