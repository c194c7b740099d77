//! Offerings as `kiln offers` shows them: every matching machine shape, cheapest first, a row
//! whose price is unknown last and shown as `unknown` (never $0).
//!
//! People get one line per provider and instance type (its cheapest region, and how many other
//! regions offer it), so the 400 rows of an `A100:8` answer stay a screen; `--all` lists every
//! row. Machines (`--json`, schema `schemas/json/offers-view.schema.json`) get every row, as an
//! array, cheapest first.

use std::fmt::Write;

use kiln_value::Decimal;
use serde::{Serialize, Serializer};

use crate::markdown::{cell, code};

/// One offering (one row of `kiln offers --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfferView {
    /// The provider that offers it: the provider configuration (`aws`, `aws.west`, `onprem`)
    /// in a directory with configuration, else the cloud's catalog name.
    pub provider: String,
    /// The catalog's cloud name (`aws`, `lambda`, `runpod`), or the provider's name for
    /// owned hardware.
    pub cloud: String,
    pub instance_type: String,
    /// `null` where the cloud has no regions to choose (RunPod's rows) and for owned hardware.
    pub region: Option<String>,
    pub zone: Option<String>,
    /// `null` for a CPU-only machine.
    pub accelerator_name: Option<String>,
    pub accelerator_count: Option<u64>,
    #[serde(serialize_with = "opt_number")]
    pub accelerator_memory_gib: Option<Decimal>,
    pub vcpus: u64,
    #[serde(serialize_with = "number")]
    pub memory_gib: Decimal,
    /// Whether `price_hourly` is the spot price (`--spot`) or the on-demand one.
    pub spot: bool,
    /// USD per machine-hour; `null` when unknown (never 0 for unknown).
    #[serde(serialize_with = "opt_number")]
    pub price_hourly: Option<Decimal>,
    /// Owned hardware: how many such machines are free now; `null` for clouds.
    pub available: Option<u64>,
}

fn json_number(d: &Decimal) -> serde_json::Number {
    d.normalize().to_string().parse().expect("a decimal is a JSON number")
}

fn number<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    json_number(d).serialize(s)
}

fn opt_number<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    d.as_ref().map(json_number).serialize(s)
}

impl OfferView {
    /// `H100:8`, or `-` for a CPU-only machine.
    pub fn gpus(&self) -> String {
        match (&self.accelerator_name, self.accelerator_count) {
            (Some(n), Some(c)) => format!("{n}:{c}"),
            _ => "-".to_string(),
        }
    }

    /// Where: the region, `(no region)` for a row that has none.
    fn place(&self) -> String {
        match (&self.region, self.available) {
            (Some(r), _) => r.clone(),
            (None, Some(n)) => format!("({n} free)"),
            (None, None) => "(no region)".to_string(),
        }
    }
}

/// The matching offerings, in any order; [`Offers::new`] sorts them.
#[derive(Debug, Clone)]
pub struct Offers {
    pub rows: Vec<OfferView>,
    /// People see every row (`--all`), not one line per instance type.
    pub all: bool,
    /// Lines saying where the prices come from (the catalog's sources), after the table.
    pub sources: Vec<String>,
}

/// Cheapest first, unknown prices last; then by provider, instance type, region and zone.
fn order(a: &OfferView, b: &OfferView) -> std::cmp::Ordering {
    let price = |o: &OfferView| (o.price_hourly.is_none(), o.price_hourly);
    price(a)
        .cmp(&price(b))
        .then_with(|| a.provider.cmp(&b.provider))
        .then_with(|| a.instance_type.cmp(&b.instance_type))
        .then_with(|| a.region.cmp(&b.region))
        .then_with(|| a.zone.cmp(&b.zone))
}

/// One line of the grouped table: an instance type of a provider, at its cheapest row.
struct Group<'a> {
    cheapest: &'a OfferView,
    /// Other regions (or zones) offering it.
    others: usize,
    /// The dearest known price among them, when it differs from the cheapest.
    dearest: Option<Decimal>,
}

impl Offers {
    /// `rows` sorted cheapest first.
    pub fn new(mut rows: Vec<OfferView>, all: bool, sources: Vec<String>) -> Offers {
        rows.sort_by(order);
        Offers { rows, all, sources }
    }

    /// One group per provider and instance type, in the order of their cheapest rows.
    fn groups(&self) -> Vec<Group<'_>> {
        let mut out: Vec<Group<'_>> = Vec::new();
        for r in &self.rows {
            match out.iter_mut().find(|g| g.cheapest.provider == r.provider && g.cheapest.instance_type == r.instance_type) {
                Some(g) => {
                    g.others += 1;
                    if r.price_hourly != g.cheapest.price_hourly {
                        g.dearest = g.dearest.max(r.price_hourly);
                    }
                }
                None => out.push(Group { cheapest: r, others: 0, dearest: None }),
            }
        }
        out
    }

    fn price(p: Option<Decimal>) -> String {
        p.map_or_else(|| "unknown".to_string(), |p| format!("{:.2}", p.round_dp(2)))
    }

    fn footer(&self, lines: usize) -> String {
        let mut out = String::new();
        let unknown = self.rows.iter().filter(|r| r.price_hourly.is_none()).count();
        let what = if self.rows.first().is_some_and(|r| r.spot) { "spot" } else { "on-demand" };
        let _ = write!(out, "\n{} offering{}", self.rows.len(), if self.rows.len() == 1 { "" } else { "s" });
        if !self.all && lines < self.rows.len() {
            let _ = write!(out, " in {lines} line{} (--all lists every row)", if lines == 1 { "" } else { "s" });
        }
        let _ = writeln!(out, "; {what} USD per machine-hour.");
        if unknown > 0 {
            let _ = writeln!(out, "{unknown} without a known {what} price: listed last as unknown, never as free.");
        }
        if !self.sources.is_empty() {
            out += "Prices from:\n";
            for s in &self.sources {
                let _ = writeln!(out, "  {s}");
            }
        }
        out
    }
}

const HEADER: [&str; 7] = ["PROVIDER", "INSTANCE TYPE", "GPUS", "VCPUS", "MEM GiB", "$/HOUR", "REGION"];

fn line(cols: [&str; 7]) -> String {
    format!("{:<10} {:<28} {:<14} {:>5} {:>8} {:>9}  {}", cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6])
        .trim_end()
        .to_string()
        + "\n"
}

impl crate::View for Offers {
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(&self.rows).expect("an offers view serializes")
    }

    fn human(&self) -> String {
        if self.rows.is_empty() {
            return "No offering matches.\n".to_string();
        }
        let mut out = line(HEADER);
        let mem = |r: &OfferView| r.memory_gib.normalize().to_string();
        if self.all {
            for r in &self.rows {
                let place = match &r.zone {
                    Some(z) => format!("{} ({z})", r.place()),
                    None => r.place(),
                };
                out +=
                    &line([&r.provider, &r.instance_type, &r.gpus(), &r.vcpus.to_string(), &mem(r), &Self::price(r.price_hourly), &place]);
            }
            return out + &self.footer(self.rows.len());
        }
        let groups = self.groups();
        for g in &groups {
            let r = g.cheapest;
            let mut place = r.place();
            if g.others > 0 {
                let _ = write!(place, " +{} more", g.others);
                if let Some(d) = g.dearest {
                    let _ = write!(place, " (up to {})", Self::price(Some(d)));
                }
            }
            out += &line([&r.provider, &r.instance_type, &r.gpus(), &r.vcpus.to_string(), &mem(r), &Self::price(r.price_hourly), &place]);
        }
        out + &self.footer(groups.len())
    }

    fn markdown(&self) -> String {
        if self.rows.is_empty() {
            return "No offering matches.\n".to_string();
        }
        let mut out = String::from("| Provider | Instance type | GPUs | vCPUs | Memory (GiB) | $/hour | Region | Zone |\n");
        out += "| --- | --- | --- | ---: | ---: | ---: | --- | --- |\n";
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&r.provider),
                code(&r.instance_type),
                cell(&r.gpus()),
                r.vcpus,
                r.memory_gib.normalize(),
                Self::price(r.price_hourly),
                cell(&r.place()),
                cell(r.zone.as_deref().unwrap_or("")),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::View;

    fn offer(provider: &str, ty: &str, region: Option<&str>, price: Option<&str>) -> OfferView {
        OfferView {
            provider: provider.into(),
            cloud: provider.into(),
            instance_type: ty.into(),
            region: region.map(Into::into),
            zone: None,
            accelerator_name: Some("H100".into()),
            accelerator_count: Some(8),
            accelerator_memory_gib: None,
            vcpus: 192,
            memory_gib: Decimal::from(2048),
            spot: false,
            price_hourly: price.map(|p| Decimal::from_str(p).unwrap()),
            available: None,
        }
    }

    fn offers(all: bool) -> Offers {
        Offers::new(
            vec![
                offer("aws", "p5.48xlarge", Some("us-west-2"), Some("99.5")),
                offer("aws", "p5.48xlarge", Some("us-east-1"), Some("98.32")),
                offer("x", "unpriced", Some("us-east-1"), None),
                offer("runpod", "8x_H100-SXM_SECURE", None, Some("26.32")),
                offer("aws", "p5.48xlarge", Some("us-east-2"), Some("98.32")),
            ],
            all,
            vec!["aws: shipped".into()],
        )
    }

    #[test]
    fn cheapest_first_unknown_last_and_one_line_per_instance_type() {
        let o = offers(false);
        let order: Vec<&str> = o.rows.iter().map(|r| r.instance_type.as_str()).collect();
        assert_eq!(order, ["8x_H100-SXM_SECURE", "p5.48xlarge", "p5.48xlarge", "p5.48xlarge", "unpriced"]);
        let text = o.human();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("runpod") && lines[1].ends_with("26.32  (no region)"), "{text}");
        assert!(lines[2].contains("98.32  us-east-1 +2 more (up to 99.50)"), "{text}");
        assert!(lines[3].contains("unknown"), "{text}");
        assert!(!text.contains("0.00"), "an unknown price is never $0: {text}");
        assert!(text.contains("5 offerings in 3 lines (--all lists every row)"), "{text}");
        assert!(text.contains("1 without a known on-demand price"), "{text}");
    }

    #[test]
    fn all_lists_every_row_and_json_is_an_array_with_null_for_unknown() {
        let o = offers(true);
        assert_eq!(o.human().lines().filter(|l| l.contains("p5.48xlarge")).count(), 3);
        let j = o.json();
        let rows = j.as_array().unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0]["price_hourly"].to_string(), "26.32");
        assert_eq!(rows[0]["region"], serde_json::Value::Null);
        assert_eq!(rows[4]["price_hourly"], serde_json::Value::Null);
        assert_eq!(rows[1]["memory_gib"].to_string(), "2048");
    }
}
