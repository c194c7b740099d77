//! How a plan's money reads for people: the placement decisions as tables (the chosen
//! offering, the fallbacks apply may launch, the next best and why each lost) and the hourly
//! cost of each changed object with the totals before and after. Unknown prices read as
//! unknown, with the reason, never as $0.

use std::fmt::Write;

use kiln_plan::cost::{delta, usd};
use kiln_plan::{Action, Cost, PlacedOffering, Plan};

/// The `Placement:` section, one table per placed instance; empty without placements.
pub fn placements(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.placements.is_empty() {
        return out;
    }
    let _ = writeln!(out, "\nPlacement:");
    for p in &plan.placements {
        let how = if p.kept { " (kept: request unchanged)" } else { "" };
        let _ = writeln!(out, "  {} ({}){how}", p.address, p.request);
        let mut rows: Vec<[String; 9]> =
            vec![["provider", "region", "instance type", "vCPUs", "memory", "GPUs", "$/h", "egress", ""].map(String::from)];
        // Data gravity: the one-off cost of moving the jobs' data to each offering, where a
        // job says where its data is ("unknown" where the egress table has no price).
        let data = has_egress(p);
        let row = |o: &PlacedOffering, note: String| {
            [
                o.provider.clone(),
                o.region.clone().unwrap_or_else(|| "-".into()),
                format!("{}{}", o.instance_type, if o.spot { " (spot)" } else { "" }),
                o.vcpus.to_string(),
                format!("{} GiB", o.memory_gib.normalize()),
                o.accelerators.clone().unwrap_or_else(|| "-".into()),
                usd(o.hourly()),
                o.egress_usd.map(usd).unwrap_or_else(|| "unknown".into()),
                note,
            ]
        };
        rows.push(row(&p.chosen, "chosen".into()));
        for f in &p.fallbacks {
            rows.push(row(f, "fallback (no capacity for the chosen)".into()));
        }
        for a in &p.alternatives {
            rows.push(row(&a.offering, a.reason.clone()));
        }
        if data {
            table(&mut out, &rows, "    ");
        } else {
            let rows: Vec<[String; 8]> = rows.into_iter().map(|[a, b, c, d, e, f, g, _, i]| [a, b, c, d, e, f, g, i]).collect();
            table(&mut out, &rows, "    ");
        }
        if let Some(from) = &p.moved_from {
            let saving = from.hourly() - p.chosen.hourly();
            let _ = writeln!(
                out,
                "    moves from {} {} ({}/h): {} per hour",
                from.provider,
                from.instance_type,
                usd(from.hourly()),
                if saving.is_sign_negative() { format!("costs {} more", usd(-saving)) } else { format!("saves {}", usd(saving)) }
            );
        }
        for n in &p.notes {
            let _ = writeln!(out, "    note: {n}");
        }
    }
    out
}

/// Whether a decision moved data (an `egress` column): any offering it lists has a known
/// egress, or its notes say the egress is unknown.
pub(crate) fn has_egress(p: &kiln_plan::Placement) -> bool {
    let listed = std::iter::once(&p.chosen).chain(&p.fallbacks).chain(p.alternatives.iter().map(|a| &a.offering));
    listed.into_iter().any(|o| o.egress_usd.is_some()) || p.notes.iter().any(|n| n.starts_with("egress unknown"))
}

/// The `Cost:` section: each changed object that costs by the hour, then the totals; empty when
/// nothing in the plan does.
pub fn costs(plan: &Plan) -> String {
    let mut out = String::new();
    let Some(total) = &plan.cost else { return out };
    let priced = |c: &Option<Cost>| matches!(c, Some(Cost::Hourly { .. } | Cost::Unknown { .. }));
    let lines: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .filter_map(|c| {
            let cost = c.cost.as_ref()?;
            if !priced(&cost.before) && !priced(&cost.after) {
                return None;
            }
            let side = |x: &Option<Cost>| match x {
                Some(Cost::Hourly { usd: u }) => usd(*u),
                Some(Cost::Unknown { .. }) => "unknown".into(),
                Some(Cost::None) | None => "-".into(),
            };
            let why = [&cost.before, &cost.after]
                .into_iter()
                .find_map(|x| match x {
                    Some(Cost::Unknown { reason }) => Some(format!(" (unknown: {reason})")),
                    _ => None,
                })
                .unwrap_or_default();
            let text = match c.action {
                Action::Create => format!("+ {}  {}/h{why}", c.address, side(&cost.after)),
                Action::Delete => format!("- {}  {}/h{why}", c.address, side(&cost.before)),
                _ => format!("~ {}  {}/h → {}/h{why}", c.address, side(&cost.before), side(&cost.after)),
            };
            Some(text)
        })
        .collect();
    let any_priced = plan.changes.iter().any(|c| c.cost.as_ref().is_some_and(|k| priced(&k.before) || priced(&k.after)));
    if !any_priced {
        return out;
    }
    let _ = writeln!(out);
    for l in &lines {
        let _ = writeln!(out, "  {l}");
    }
    let bound = |t: &kiln_plan::Total| if t.unknown.is_empty() { String::new() } else { format!(" + {} unknown", t.unknown.len()) };
    let _ = writeln!(
        out,
        "Cost: {}/h{} → {}/h{} ({}/h)",
        usd(total.before.usd),
        bound(&total.before),
        usd(total.after.usd),
        bound(&total.after),
        delta(total.after.usd - total.before.usd)
    );
    out
}

/// Rows as aligned columns (the first is the header), each line starting with `indent`.
fn table<const N: usize>(out: &mut String, rows: &[[String; N]], indent: &str) {
    let widths: Vec<usize> = (0..N).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{indent}{}", line.join("  ").trim_end());
    }
}

/// `kiln cost`: the spend rate of what is applied and the spend so far, from the prices state
/// recorded at apply (never re-priced from today's catalog).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Spend {
    pub format_version: &'static str,
    /// Every object state prices, by address.
    pub resources: Vec<SpendLine>,
    /// Totals per provider configuration.
    pub providers: Vec<SpendTotal>,
    pub total: SpendTotal,
}

/// One object's price and what it has cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpendLine {
    pub address: String,
    pub provider: String,
    pub kind: String,
    /// What the price is for, as recorded ("aws p5.48xlarge spot, us-east-1, 2 nodes").
    pub offering: String,
    /// USD per hour; `null`: unknown.
    pub hourly: Option<f64>,
    /// RFC 3339 time the price started to count.
    pub since: String,
    /// USD so far, at this and earlier prices; `null` when the price is unknown.
    pub spent: Option<f64>,
}

/// The sum of some lines; `unknown` counts those whose price is unknown (left out of the sums).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SpendTotal {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub provider: String,
    pub hourly: f64,
    pub spent: f64,
    pub unknown: usize,
}

fn number(d: kiln_value::Decimal) -> f64 {
    d.round_dp(6).to_string().parse().unwrap_or(0.0)
}

impl SpendLine {
    /// An object with the price state recorded at apply (`b`), and its spend so far (`spent`).
    pub fn recorded(address: String, provider: &str, kind: &str, b: &kiln_state::Billing, spent: Option<kiln_value::Decimal>) -> Self {
        SpendLine {
            address,
            provider: provider.to_string(),
            kind: kind.to_string(),
            offering: b.offering.clone(),
            hourly: b.hourly.map(number),
            since: b.since.clone(),
            spent: spent.map(number),
        }
    }

    /// An object applied before kiln recorded prices: unknown (never priced from today's
    /// catalog), or nothing where `free` (this machine's capacity).
    pub fn unrecorded(address: String, provider: &str, kind: &str, free: bool) -> Self {
        let (offering, amount) = match free {
            true => ("this machine".to_string(), Some(0.0)),
            false => {
                (format!("{provider}: no price recorded (applied before kiln kept prices; its next create or update records one)"), None)
            }
        };
        SpendLine {
            address,
            provider: provider.to_string(),
            kind: kind.to_string(),
            offering,
            hourly: amount,
            since: String::new(),
            spent: amount,
        }
    }
}

impl Spend {
    /// From every priced object's line.
    pub fn new(lines: impl IntoIterator<Item = SpendLine>) -> Spend {
        let mut resources = Vec::new();
        let mut providers: std::collections::BTreeMap<String, SpendTotal> = Default::default();
        let mut total = SpendTotal::default();
        for line in lines {
            let provider = line.provider.clone();
            let p = providers
                .entry(provider.to_string())
                .or_insert_with(|| SpendTotal { provider: provider.to_string(), ..Default::default() });
            for t in [p, &mut total] {
                match (line.hourly, line.spent) {
                    (Some(h), Some(s)) => {
                        t.hourly += h;
                        t.spent += s;
                    }
                    _ => t.unknown += 1,
                }
            }
            resources.push(line);
        }
        resources.sort_by(|a, b| a.address.cmp(&b.address));
        Spend { format_version: crate::FORMAT_VERSION, resources, providers: providers.into_values().collect(), total }
    }

    fn rows(&self) -> Vec<[String; 5]> {
        let money =
            |x: Option<f64>| x.map(|v| usd(kiln_value::Decimal::try_from(v).unwrap_or_default())).unwrap_or_else(|| "unknown".into());
        let mut rows = vec![["address", "offering", "$/h", "since", "spent"].map(String::from)];
        for r in &self.resources {
            let offering = if r.offering.is_empty() { r.provider.clone() } else { r.offering.clone() };
            rows.push([r.address.clone(), offering, money(r.hourly), r.since.clone(), money(r.spent)]);
        }
        rows
    }

    fn totals(&self) -> Vec<String> {
        let money = |v: f64| usd(kiln_value::Decimal::try_from(v).unwrap_or_default());
        let unknown = |n: usize| if n == 0 { String::new() } else { format!(" ({n} unknown, not counted)") };
        let mut out: Vec<String> = self
            .providers
            .iter()
            .map(|p| format!("{}: {}/h, {} so far{}", p.provider, money(p.hourly), money(p.spent), unknown(p.unknown)))
            .collect();
        out.push(format!("Total: {}/h, {} so far{}", money(self.total.hourly), money(self.total.spent), unknown(self.total.unknown)));
        out
    }
}

impl crate::View for Spend {
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a spend view serializes")
    }

    fn human(&self) -> String {
        let mut out = String::new();
        if self.resources.is_empty() {
            return "Nothing applied costs anything by the hour.\n".into();
        }
        table(&mut out, &self.rows(), "");
        out.push('\n');
        for t in self.totals() {
            let _ = writeln!(out, "{t}");
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        let rows = self.rows();
        for (i, r) in rows.iter().enumerate() {
            let _ = writeln!(out, "| {} |", r.join(" | "));
            if i == 0 {
                let _ = writeln!(out, "|{}", " --- |".repeat(r.len()));
            }
        }
        out.push('\n');
        for t in self.totals() {
            let _ = writeln!(out, "- {t}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use kiln_plan::{Alternative, Placement};
    use kiln_value::Decimal;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn offering(provider: &str, region: &str, price: &str, egress: Option<&str>) -> PlacedOffering {
        PlacedOffering {
            provider: provider.into(),
            cloud: "aws".into(),
            instance_type: "g4dn.xlarge".into(),
            region: Some(region.into()),
            zone: None,
            spot: true,
            accelerators: Some("T4:1".into()),
            vcpus: 4,
            memory_gib: d("16"),
            price_hourly: d(price),
            nodes: 1,
            egress_usd: egress.map(d),
        }
    }

    fn plan(placement: Placement) -> Plan {
        let mut plan: Plan = serde_json::from_value(serde_json::json!({
            "format_version": 1, "kiln_version": "0.1.0", "mode": "normal", "lineage": "l", "serial": 1,
            "changes": [], "drift": [], "outputs": {}, "variables": {}, "config_digest": "d",
            "targets": [], "excludes": [], "refresh": true, "pending": []
        }))
        .unwrap();
        plan.placements = vec![placement];
        plan
    }

    fn placement(chosen: PlacedOffering, alternatives: Vec<Alternative>, notes: Vec<String>) -> Placement {
        Placement {
            address: "cluster.train".parse().unwrap(),
            request: "T4:1, nodes = 1, spot = true".into(),
            chosen,
            fallbacks: vec![],
            alternatives,
            notes,
            kept: false,
            moved_from: None,
            request_digest: String::new(),
        }
    }

    #[test]
    fn the_placement_table_shows_egress_only_where_data_moves() {
        let alt = |egress: Option<&str>, reason: &str| Alternative {
            offering: offering("aws.ohio", "us-east-2", "0.2022", egress),
            reason: reason.into(),
        };
        let with = placements(&plan(placement(
            offering("aws", "us-east-1", "0.2069", Some("0")),
            vec![alt(Some("16"), "-$0.0047/h, +$16.00 egress")],
            vec![],
        )));
        assert_eq!(
            with,
            "\nPlacement:\n  cluster.train (T4:1, nodes = 1, spot = true)\n    \
             provider  region     instance type       vCPUs  memory  GPUs  $/h      egress  \n    \
             aws       us-east-1  g4dn.xlarge (spot)  4      16 GiB  T4:1  $0.2069  $0.00   chosen\n    \
             aws.ohio  us-east-2  g4dn.xlarge (spot)  4      16 GiB  T4:1  $0.2022  $16.00  -$0.0047/h, +$16.00 egress\n"
                .replace("  \n", "\n")
        );
        // Unknown where the egress table has no price: never $0.
        let unknown = placements(&plan(placement(
            offering("aws", "us-east-1", "0.2069", None),
            vec![alt(None, "+$0.0047/h")],
            vec!["egress unknown for 2 offerings: the egress table has no price for \"gcp\" (bucket.x)".into()],
        )));
        assert!(unknown.contains("$0.2069  unknown  chosen"), "{unknown}");
        // Without data, no column.
        let without = placements(&plan(placement(offering("aws", "us-east-1", "0.2069", None), vec![alt(None, "+$0.0047/h")], vec![])));
        assert!(!without.contains("egress") && without.contains("$/h\n"), "{without}");
    }
}
