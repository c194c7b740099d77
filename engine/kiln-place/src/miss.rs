//! Near misses: offerings that fail a need by one thing a user can change (a price limit, the
//! market, a count, a region), ranked by how close they come. They name the closest offerings
//! in an infeasible request's error and fill a decision's alternatives.

use std::collections::HashSet;

use kiln_catalog::matching::{admits_as, Mismatch};
use kiln_provider::offerings::Offering;

use crate::evaluate::{available, market, scope, Market, PriceMiss, ScopeMiss};
use crate::money::usd;
use crate::need::{Candidate, Need};

/// How a near miss fails, closest first ([`rank`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Level {
    /// Everything fits but its price is above `max_price`.
    OverMax,
    /// `spot = true` and it has only an on-demand price.
    NoSpot,
    /// Everything fits but its price is unknown.
    PriceUnknown,
    /// Owned hardware with fewer free machines than `nodes` (how many are free).
    Unavailable(u64),
    /// It satisfies the request but placement's constraints leave it out.
    Scope(ScopeMiss),
    /// The right accelerators, another count per machine (the row's count), and the CPUs and
    /// memory asked for.
    Count(u64),
    /// The right accelerators, too few or too many CPUs or too little or too much memory.
    Size(Mismatch),
}

/// One near miss.
#[derive(Debug, Clone)]
pub(crate) struct Miss<'c, 'o> {
    pub index: usize,
    pub candidate: &'c Candidate<'o>,
    pub level: Level,
    /// Whether placement's constraints allow it (a count or size miss can be outside them).
    pub in_scope: bool,
    /// The price to show: the need's market where known, else on-demand, else spot.
    pub price: Option<Market>,
}

impl Miss<'_, '_> {
    pub fn offering(&self) -> &Offering {
        self.candidate.offering
    }

    /// `p4d.24xlarge (aws, us-east-1, $21.96/h)`, with `spot` after a spot price.
    pub fn describe(&self) -> String {
        let o = self.offering();
        let mut parts = vec![self.candidate.provider.to_string()];
        parts.extend(o.region.clone());
        parts.push(match self.price {
            Some(m) => format!("{}/h{}", usd(m.price), if m.spot { " spot" } else { "" }),
            None => "price unknown".into(),
        });
        format!("{} ({})", o.instance_type, parts.join(", "))
    }
}

/// The near miss a candidate is, or `None` when it is feasible or far (other accelerators, or
/// GPUs for a CPU-only request).
fn assess<'c, 'o>(need: &Need, index: usize, c: &'c Candidate<'o>) -> Option<Miss<'c, 'o>> {
    let o = c.offering;
    let in_scope = scope(need, c);
    let level = match admits_as(&need.request, o, || c.model) {
        // Only the count differs: the row has the CPUs and memory asked for.
        Err(Mismatch::Count(n)) if fits_size(need, o) => Level::Count(n),
        Err(m @ (Mismatch::Cpus | Mismatch::Memory)) => Level::Size(m),
        Err(_) => return None,
        Ok(_) => match (&in_scope, available(need, o), market(need.spot, o)) {
            (Err(s), _, _) => Level::Scope(s.clone()),
            (Ok(_), Err(free), _) => Level::Unavailable(free),
            (Ok(_), Ok(()), Err(PriceMiss::Unknown)) => Level::PriceUnknown,
            (Ok(_), Ok(()), Err(PriceMiss::NoSpot)) => Level::NoSpot,
            (Ok(_), Ok(()), Ok(m)) if need.max_price.is_some_and(|max| m.price > max) => Level::OverMax,
            (Ok(_), Ok(()), Ok(_)) => return None,
        },
    };
    Some(Miss { index, candidate: c, level, in_scope: in_scope.is_ok(), price: shown_price(need, o) })
}

/// The price a near miss shows: the need's market where known, else on-demand, else spot.
pub(crate) fn shown_price(need: &Need, o: &Offering) -> Option<Market> {
    market(need.spot, o).ok().or_else(|| {
        let on_demand = o.price_hourly.map(|price| Market { spot: false, price, no_spot: false });
        on_demand.or(o.spot_price_hourly.map(|price| Market { spot: true, price, no_spot: false }))
    })
}

/// Whether the row has the CPUs and memory the request asks for.
fn fits_size(need: &Need, o: &Offering) -> bool {
    need.request.cpus.is_none_or(|c| c.admits(o.vcpus as f64)) && need.request.memory.is_none_or(|m| m.admits(gib(o)))
}

fn gib(o: &Offering) -> f64 {
    o.memory_gib.to_string().parse::<f64>().unwrap_or(0.0)
}

/// Every near miss among the candidates, closest first: by level, then inside placement's
/// constraints first, then the count, CPUs or memory nearest those asked for, then the price
/// (unknown last), and last provider, region and instance type. One per provider and instance
/// type (its closest).
pub(crate) fn misses<'c, 'o: 'c>(need: &Need, candidates: impl Iterator<Item = (usize, &'c Candidate<'o>)>) -> Vec<Miss<'c, 'o>> {
    let asked = need.request.first_accelerator().map_or(0, |a| a.count);
    let mut all: Vec<Miss<'c, 'o>> = candidates.filter_map(|(i, c)| assess(need, i, c)).collect();
    let cpus = need.request.cpus.map_or(0.0, |c| c.value);
    let memory = need.request.memory.map_or(0.0, |m| m.value);
    let distance = |m: &Miss<'_, '_>| match m.level {
        Level::Count(n) => n.abs_diff(asked) as f64,
        Level::Size(Mismatch::Cpus) => (m.offering().vcpus as f64 - cpus).abs(),
        Level::Size(_) => (gib(m.offering()) - memory).abs(),
        _ => 0.0,
    };
    let price = |m: &Miss<'_, '_>| m.price.map(|p| p.price);
    all.sort_by(|a, b| {
        rank(&a.level)
            .cmp(&rank(&b.level))
            .then(b.in_scope.cmp(&a.in_scope))
            .then(distance(a).total_cmp(&distance(b)))
            .then(price(a).is_none().cmp(&price(b).is_none()))
            .then(price(a).cmp(&price(b)))
            .then_with(|| a.candidate.provider.cmp(b.candidate.provider))
            .then_with(|| a.offering().region.cmp(&b.offering().region))
            .then_with(|| a.offering().instance_type.cmp(&b.offering().instance_type))
            .then(a.index.cmp(&b.index))
    });
    let mut seen = HashSet::new();
    all.retain(|m| seen.insert((m.candidate.provider, m.candidate.offering.instance_type.as_str())));
    all
}

/// The closeness of a level, ignoring what it carries (every `Count` is as close as another).
pub(crate) fn rank(l: &Level) -> u8 {
    match l {
        Level::OverMax => 0,
        Level::NoSpot => 1,
        Level::PriceUnknown => 2,
        Level::Unavailable(_) => 3,
        Level::Scope(_) => 4,
        Level::Count(_) => 5,
        Level::Size(_) => 6,
    }
}

/// Why a near miss does not fit, as a decision's alternative says it.
pub(crate) fn reason(need: &Need, m: &Miss<'_, '_>) -> String {
    let o = m.offering();
    let asked = need.request.accelerators.as_deref().map(|alts| alts.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or "));
    match &m.level {
        Level::OverMax => format!("above max_price ({}/h)", need.max_price.map(usd).unwrap_or_default()),
        Level::NoSpot => "no spot price (spot = true)".into(),
        Level::PriceUnknown => "price unknown".into(),
        Level::Unavailable(free) => format!("{free} free, {} nodes asked", need.nodes),
        Level::Scope(ScopeMiss::Provider) => "provider not in placement.providers".into(),
        Level::Scope(ScopeMiss::Region) => "region not in placement.regions".into(),
        Level::Scope(ScopeMiss::Excluded(e)) => format!("excluded (\"{e}\")"),
        Level::Scope(ScopeMiss::Avoided) => "left by the restart (recovery.strategy)".into(),
        Level::Count(_) => format!("{} offered, {} asked", crate::evaluate::accelerators(o).unwrap_or_default(), asked.unwrap_or_default()),
        Level::Size(Mismatch::Cpus) => {
            format!("{} vCPUs, cpus = \"{}\" asked", o.vcpus, need.request.cpus.map(|c| c.to_string()).unwrap_or_default())
        }
        Level::Size(_) => format!(
            "{} GiB of memory, memory = \"{}\" asked",
            o.memory_gib.normalize(),
            need.request.memory.map(|c| c.to_string()).unwrap_or_default()
        ),
    }
}
