//! The error of a need no candidate satisfies: what is closest, and what to change.

use kiln_diag::Diagnostic;
use kiln_provider::portable::request::Request;
use kiln_value::Decimal;

use crate::evaluate::{accelerators, ScopeMiss};
use crate::miss::{misses, rank, reason, Level, Miss};
use crate::money::usd;
use crate::need::{Candidate, Need, SpotMode};

/// No candidate satisfies the need.
#[derive(Debug, Clone, PartialEq)]
pub struct Infeasible {
    /// One line: what is missing and the closest offerings
    /// ("A100:1 is not offered by any configured provider; A100:8 is: p4d.24xlarge (aws,
    /// us-east-1, $21.96/h)").
    pub summary: String,
    /// The closest offerings, closest first, each with why it does not fit.
    pub closest: Vec<Closest>,
    /// What to change: a count, `cpus`, `memory`, `regions`, `max_price`, `spot`.
    pub hints: Vec<String>,
    /// What the optimizer left out on the way ("3 offerings skipped: price unknown").
    pub notes: Vec<String>,
}

/// One of the closest offerings of an infeasible need.
#[derive(Debug, Clone, PartialEq)]
pub struct Closest {
    pub provider: String,
    pub instance_type: String,
    pub region: Option<String>,
    /// Its price per machine-hour in the market shown; `None`: unknown.
    pub price_hourly: Option<Decimal>,
    pub spot: bool,
    /// `p4d.24xlarge (aws, us-east-1, $21.96/h)`.
    pub text: String,
    /// Why it does not fit ("A100:8 offered, A100:1 asked").
    pub reason: String,
}

impl std::fmt::Display for Infeasible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary)?;
        if !self.hints.is_empty() {
            write!(f, "\nhint: {}", self.hints.join("; "))?;
        }
        Ok(())
    }
}

impl std::error::Error for Infeasible {}

impl Infeasible {
    /// The diagnostic (`E-PLACEMENT`): the summary, the closest offerings and the notes as its
    /// detail, the hints as its hint. The caller adds the block's address and span.
    pub fn diagnostic(&self) -> Diagnostic {
        let mut detail: Vec<String> = self.closest.iter().map(|c| format!("{}: {}", c.text, c.reason)).collect();
        detail.extend(self.notes.iter().cloned());
        let mut d = Diagnostic::error("E-PLACEMENT", self.summary.clone());
        if !detail.is_empty() {
            d = d.detail(detail.join("\n"));
        }
        if !self.hints.is_empty() {
            d = d.hint(self.hints.join("; "));
        }
        d
    }
}

/// How many closest offerings an error names.
const SHOWN: usize = 3;

/// The request as messages name it: `A100:1`, `H100:8 or A100-80GB:8`, `a CPU-only machine
/// with cpus = "4+"`.
pub(crate) fn what(r: &Request) -> String {
    let acc = match r.accelerators.as_deref() {
        None | Some([]) => "a CPU-only machine".to_string(),
        Some(alts) => alts.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or "),
    };
    let mut extra = Vec::new();
    if let Some(c) = r.cpus {
        extra.push(format!("cpus = \"{c}\""));
    }
    if let Some(m) = r.memory {
        extra.push(format!("memory = \"{m}\""));
    }
    if extra.is_empty() {
        acc
    } else {
        format!("{acc} with {}", extra.join(", "))
    }
}

fn list(ms: &[&Miss<'_, '_>]) -> String {
    ms.iter().map(|m| m.describe()).collect::<Vec<_>>().join(", ")
}

/// The error for a need none of `candidates` satisfies.
pub(crate) fn infeasible(need: &Need, candidates: &[Candidate<'_>], notes: Vec<String>) -> Infeasible {
    let what = what(&need.request);
    if candidates.is_empty() {
        return Infeasible {
            summary: format!("no configured provider can place {what}: none offers machines to place on"),
            closest: Vec::new(),
            hints: vec![
                "configure a cloud provider (`provider \"aws\" {}`) or owned hardware with free machines; the local provider is never a placement candidate"
                    .into(),
            ],
            notes,
        };
    }
    let all = misses(need, candidates.iter().enumerate());
    let Some(first) = all.first() else {
        return far(need, candidates, what, notes);
    };
    let level = rank(&first.level);
    let top: Vec<&Miss<'_, '_>> = all.iter().filter(|m| rank(&m.level) == level).take(SHOWN).collect();
    let closest = top
        .iter()
        .map(|m| Closest {
            provider: m.candidate.provider.to_string(),
            instance_type: m.offering().instance_type.clone(),
            region: m.offering().region.clone(),
            price_hourly: m.price.map(|p| p.price),
            spot: m.price.is_some_and(|p| p.spot),
            text: m.describe(),
            reason: reason(need, m),
        })
        .collect();
    let (summary, hints) = match &first.level {
        Level::OverMax => over_max(need, &what, &top, &all),
        Level::NoSpot => (
            format!("no offering of {what} has a spot price; on-demand: {}", list(&top)),
            vec!["set spot = \"auto\" (spot where offered, on-demand otherwise) or spot = false".into()],
        ),
        Level::PriceUnknown => (
            format!("every offering of {what} has an unknown price: {}", list(&top)),
            vec!["give its price in a catalog file (`catalog { path = \"...\" }`) or an `hourly_price` for owned hardware: kiln never takes an unknown price as free".into()],
        ),
        Level::Unavailable(_) => {
            let most = top.iter().filter_map(|m| m.offering().available).max().unwrap_or_default();
            (
                format!("no owned hardware has {} free machines for {what}: {}", need.nodes, free_list(&top)),
                vec![if most > 0 { format!("lower nodes to {most}, or free machines") } else { "free machines, or allow a cloud provider".into() }],
            )
        }
        Level::Scope(_) => (format!("{what} is offered, but not where placement allows: {}", list(&top)), scope_hints(&top)),
        Level::Count(_) => counts(need, &what, &top),
        Level::Size(m) => sizes(&what, &top, m),
    };
    Infeasible { summary, closest, hints, notes }
}

fn free_list(ms: &[&Miss<'_, '_>]) -> String {
    ms.iter().map(|m| format!("{} has {} free", m.describe(), m.offering().available.unwrap_or_default())).collect::<Vec<_>>().join(", ")
}

fn over_max(need: &Need, what: &str, top: &[&Miss<'_, '_>], all: &[Miss<'_, '_>]) -> (String, Vec<String>) {
    let max = need.max_price.unwrap_or_default();
    let cheapest = top.first().and_then(|m| m.price).map(|p| p.price).unwrap_or_default();
    let mut hints = vec![format!("raise max_price to at least {} (per node-hour)", usd(cheapest))];
    if need.spot == SpotMode::Never {
        let spot = all
            .iter()
            .filter(|m| m.level == Level::OverMax)
            .filter_map(|m| m.offering().spot_price_hourly.filter(|s| *s <= max).map(|s| (s, m)))
            .min_by(|a, b| a.0.cmp(&b.0));
        if let Some((s, m)) = spot {
            hints.push(format!(
                "or allow spot (spot = \"auto\"): {} ({}) is {}/h on spot",
                m.offering().instance_type,
                m.candidate.provider,
                usd(s)
            ));
        }
    }
    (format!("no offering of {what} costs at most max_price {}/h per node; the cheapest: {}", usd(max), list(top)), hints)
}

fn scope_hints(top: &[&Miss<'_, '_>]) -> Vec<String> {
    let mut hints: Vec<String> = Vec::new();
    for m in top {
        let h = match &m.level {
            Level::Scope(ScopeMiss::Region) => format!("add \"{}\" to placement.regions", m.offering().region.clone().unwrap_or_default()),
            Level::Scope(ScopeMiss::Provider) => format!("add \"{}\" to placement.providers", m.candidate.provider),
            Level::Scope(ScopeMiss::Excluded(e)) => format!("remove \"{e}\" from placement.exclude"),
            Level::Scope(ScopeMiss::Avoided) => "or set recovery.strategy = \"same_pool\" to start it again where it was".into(),
            _ => continue,
        };
        if !hints.contains(&h) {
            hints.push(h);
        }
    }
    hints
}

fn counts(need: &Need, what: &str, top: &[&Miss<'_, '_>]) -> (String, Vec<String>) {
    // Grouped by what each offers: "A100:8 is: p4d.24xlarge (...); A100:2 is: ...".
    let mut groups: Vec<(String, Vec<&Miss<'_, '_>>)> = Vec::new();
    for m in top {
        let acc = accelerators(m.offering()).unwrap_or_default();
        match groups.iter_mut().find(|(a, _)| *a == acc) {
            Some((_, ms)) => ms.push(m),
            None => groups.push((acc, vec![m])),
        }
    }
    let offered = groups.iter().map(|(acc, ms)| format!("{acc} is: {}", list(ms))).collect::<Vec<_>>().join("; ");
    let asks: Vec<String> = groups.iter().map(|(acc, _)| format!("\"{acc}\"")).collect();
    let asks = match asks.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    let mut hints = vec![format!("ask for accelerators = {asks} per node")];
    if need.nodes > 1 || groups.iter().any(|(acc, _)| acc.ends_with(":1")) {
        hints.push("or change nodes so the GPUs add up".into());
    }
    (format!("{what} is not offered by any configured provider; {offered}"), hints)
}

fn sizes(what: &str, top: &[&Miss<'_, '_>], m: &kiln_catalog::matching::Mismatch) -> (String, Vec<String>) {
    let first = top[0].offering();
    let (attr, have) = match m {
        kiln_catalog::matching::Mismatch::Cpus => ("cpus", first.vcpus.to_string()),
        _ => ("memory", first.memory_gib.normalize().to_string()),
    };
    let shown = top
        .iter()
        .map(|m| format!("{} with {} vCPUs and {} GiB", m.describe(), m.offering().vcpus, m.offering().memory_gib.normalize()))
        .collect::<Vec<_>>()
        .join(", ");
    (
        format!("{what} is offered, but not with that {attr}: {shown}"),
        vec![format!("ask for {attr} = \"{have}\" ({} has {have}), or \"N+\" for at least N", first.instance_type)],
    )
}

/// Nothing comes close: the request's accelerators (or a CPU-only machine) are not offered.
fn far(need: &Need, candidates: &[Candidate<'_>], what: String, notes: Vec<String>) -> Infeasible {
    let mut names: Vec<&str> = candidates.iter().filter_map(|c| c.offering.accelerator.as_ref().map(|a| a.name.as_str())).collect();
    names.sort_unstable();
    names.dedup();
    let hint = if need.request.accelerators.is_none() {
        "the configured providers offer only GPU machines here; a CPU-only request never lands on one: configure a provider with CPU machines, or ask for accelerators".to_string()
    } else if names.is_empty() {
        "the configured providers offer only CPU machines".to_string()
    } else {
        let more = if names.len() > 12 { format!(" and {} more", names.len() - 12) } else { String::new() };
        format!(
            "the configured providers offer {}{more} (`kiln offers NAME` lists them)",
            names.iter().take(12).copied().collect::<Vec<_>>().join(", ")
        )
    };
    Infeasible { summary: format!("no configured provider offers {what}"), closest: Vec::new(), hints: vec![hint], notes }
}
