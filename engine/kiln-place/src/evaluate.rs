//! One candidate against one need: whether placement allows it, whether it satisfies the
//! request, which market prices it and at what, and the order feasible offerings rank in.

use std::cmp::Ordering;

use kiln_catalog::egress::Egress;
use kiln_catalog::matching::admits_as;
use kiln_plan::cost::PlacedOffering;
use kiln_provider::offerings::Offering;
use kiln_provider::portable::request::Request;
use kiln_value::Decimal;

use crate::need::{Candidate, Data, Need, Origin, SpotMode};

/// Why placement's constraints leave a candidate out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScopeMiss {
    /// Its provider is not in `providers`.
    Provider,
    /// Its region is not in `regions`.
    Region,
    /// `exclude` names it (the entry that does).
    Excluded(String),
    /// A restart leaves it (`recovery.strategy`; [`crate::Avoid`]).
    Avoided,
}

/// Why a candidate has no usable price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PriceMiss {
    /// No price is known for the market asked for.
    Unknown,
    /// `spot = true` and the offering has no spot price (an on-demand one is known).
    NoSpot,
}

/// The market an offering is priced in, and its price per machine-hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Market {
    pub spot: bool,
    pub price: Decimal,
    /// `spot = "auto"` priced it on-demand because it has no spot price.
    pub no_spot: bool,
}

/// The cost of moving the need's data to an offering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Move {
    /// The need has no data.
    None,
    Known(Decimal),
    /// The egress table has no price for the data's cloud.
    Unknown,
}

impl Move {
    pub fn usd(self) -> Option<Decimal> {
        match self {
            Move::Known(d) => Some(d),
            _ => None,
        }
    }

    pub fn unknown(self) -> bool {
        self == Move::Unknown
    }
}

/// The rank of the candidate's provider in `providers` (0 when there is no preference order),
/// or why placement leaves it out.
pub(crate) fn scope(need: &Need, c: &Candidate<'_>) -> Result<usize, ScopeMiss> {
    if need.providers.is_none() && need.regions.is_none() && need.exclude.is_empty() && need.avoid.is_empty() {
        return Ok(0);
    }
    if need.avoid.iter().any(|a| a.matches(c)) {
        return Err(ScopeMiss::Avoided);
    }
    let o = c.offering;
    let rank = match &need.providers {
        None => 0,
        Some(list) => match list.iter().position(|p| p == c.provider || *p == o.cloud) {
            None => return Err(ScopeMiss::Provider),
            Some(i) if need.prefer_order => i,
            Some(_) => 0,
        },
    };
    if let (Some(allowed), Some(region)) = (&need.regions, &o.region) {
        if !allowed.iter().any(|r| r == region) {
            return Err(ScopeMiss::Region);
        }
    }
    let named = |e: &String| *e == o.instance_type || *e == o.cloud || e == c.provider || o.region.as_ref() == Some(e);
    if let Some(e) = need.exclude.iter().find(|e| named(e)) {
        return Err(ScopeMiss::Excluded(e.clone()));
    }
    Ok(rank)
}

/// The market and price `mode` gives an offering.
pub(crate) fn market(mode: SpotMode, o: &Offering) -> Result<Market, PriceMiss> {
    let spot = |price| Market { spot: true, price, no_spot: false };
    let on_demand = |price, no_spot| Market { spot: false, price, no_spot };
    match (mode, o.spot_price_hourly, o.price_hourly) {
        (SpotMode::Never, _, Some(d)) => Ok(on_demand(d, false)),
        (SpotMode::Always, Some(s), _) => Ok(spot(s)),
        (SpotMode::Always, None, Some(_)) => Err(PriceMiss::NoSpot),
        (SpotMode::Auto, Some(s), Some(d)) if d < s => Ok(on_demand(d, false)),
        (SpotMode::Auto, Some(s), _) => Ok(spot(s)),
        (SpotMode::Auto, None, Some(d)) => Ok(on_demand(d, true)),
        _ => Err(PriceMiss::Unknown),
    }
}

/// Whether the candidate has `nodes` free machines (owned hardware counts them; a cloud has
/// no bound kiln can know); `Err` holds how many are free.
pub(crate) fn available(need: &Need, o: &Offering) -> Result<(), u64> {
    match o.available {
        Some(free) if free < need.nodes => Err(free),
        _ => Ok(()),
    }
}

/// A feasible candidate, priced.
#[derive(Debug, Clone)]
pub(crate) struct Entry<'c, 'o> {
    /// Its position among the candidates (the last tie-break).
    pub index: usize,
    pub candidate: &'c Candidate<'o>,
    /// Its provider's rank in a preference order.
    pub rank: usize,
    /// Which of the request's accelerator alternatives it satisfies (0: the first).
    pub alternative: usize,
    pub market: Market,
    pub egress: Move,
    /// What it is ranked by: every node's hourly price for one day, plus moving the data.
    pub score: Decimal,
}

/// What moving the need's data to candidate `c` costs once: the sum over its data, unknown
/// when the move of any of them is.
pub(crate) fn move_cost(need: &Need, egress: &Egress, c: &Candidate<'_>) -> Move {
    if need.data.is_empty() {
        return Move::None;
    }
    let mut total = Decimal::ZERO;
    for d in &need.data {
        match data_move(d, egress, c) {
            Some(usd) => total += usd,
            None => return Move::Unknown,
        }
    }
    Move::Known(total)
}

/// What moving one of the need's data to `c` costs once; `None` when unknown (see [`Origin`]).
pub(crate) fn data_move(d: &Data, egress: &Egress, c: &Candidate<'_>) -> Option<Decimal> {
    let o = c.offering;
    match &d.origin {
        Origin::Cloud { cloud, region } => egress.cost((cloud, region.as_deref()), (&o.cloud, o.region.as_deref()), d.size_gb),
        Origin::Owned { provider } => (provider == c.provider).then_some(Decimal::ZERO),
        Origin::ThisMachine => Some(Decimal::ZERO),
    }
}

/// Hours in the objective: one day's run, so a one-off data transfer counts as much as it
/// would over a day of the machines' price.
pub(crate) const HOURS: u32 = 24;

impl<'c, 'o> Entry<'c, 'o> {
    pub fn new(
        need: &Need,
        egress: &Egress,
        index: usize,
        candidate: &'c Candidate<'o>,
        rank: usize,
        alternative: usize,
        market: Market,
    ) -> Self {
        let egress = move_cost(need, egress, candidate);
        let score = market.price * Decimal::from(need.nodes) * Decimal::from(HOURS) + egress.usd().unwrap_or_default();
        Entry { index, candidate, rank, alternative, market, egress, score }
    }

    /// Every node's price per hour.
    pub fn hourly(&self, nodes: u64) -> Decimal {
        self.market.price * Decimal::from(nodes)
    }

    pub fn offering(&self) -> &'o Offering {
        self.candidate.offering
    }

    /// The entry as a decision names it.
    pub fn placed(&self, nodes: u64) -> PlacedOffering {
        placed(self.candidate, self.market, nodes, self.egress.usd())
    }
}

/// An offering as a decision names it; the zone only where it is the spot price's zone.
pub(crate) fn placed(c: &Candidate<'_>, market: Market, nodes: u64, egress_usd: Option<Decimal>) -> PlacedOffering {
    let o = c.offering;
    PlacedOffering {
        provider: c.provider.to_string(),
        cloud: o.cloud.clone(),
        instance_type: o.instance_type.clone(),
        region: o.region.clone(),
        zone: if market.spot { o.zone.clone() } else { None },
        spot: market.spot,
        accelerators: accelerators(o),
        vcpus: o.vcpus,
        memory_gib: o.memory_gib,
        price_hourly: market.price,
        nodes,
        egress_usd,
    }
}

/// `H100:8` for the row's accelerators.
pub(crate) fn accelerators(o: &Offering) -> Option<String> {
    o.accelerator.as_ref().map(|a| format!("{}:{}", a.name, a.count))
}

/// The ranking: a preferred provider first (with `prefer_order`), a known egress before an
/// unknown one, then the lowest score (hourly price × 24 + egress), then the earlier accelerator
/// alternative, spot before on-demand, and last provider, region, instance type, zone and the
/// candidate's position, so the same input always gives the same decision.
pub(crate) fn order(a: &Entry<'_, '_>, b: &Entry<'_, '_>) -> Ordering {
    let (x, y) = (a.offering(), b.offering());
    a.rank
        .cmp(&b.rank)
        .then(a.egress.unknown().cmp(&b.egress.unknown()))
        .then(a.score.cmp(&b.score))
        .then(a.alternative.cmp(&b.alternative))
        .then(b.market.spot.cmp(&a.market.spot))
        .then_with(|| a.candidate.provider.cmp(b.candidate.provider))
        .then_with(|| x.region.cmp(&y.region))
        .then_with(|| x.instance_type.cmp(&y.instance_type))
        .then_with(|| x.zone.cmp(&y.zone))
        .then(a.index.cmp(&b.index))
}

/// Why one candidate is not feasible, for counting (the first check it fails, in the order
/// the optimizer checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reject {
    Scope(ScopeMiss),
    /// It does not satisfy the request.
    Unsuitable,
    Unavailable(u64),
    Price(PriceMiss),
    OverMax(Market),
}

/// A cheap test that rules out most rows before the accelerator table reads a row's names:
/// [`kiln_catalog::matching::admits`] accepts a row only when it has accelerators exactly when
/// the request asks for some, one alternative's count is the row's (at most the row's, and CPUs
/// and memory up to its own, on owned hardware: free capacity a node takes part of), and its
/// CPUs and memory fit.
pub(crate) fn may_admit(r: &Request, o: &Offering) -> bool {
    // Owned hardware's rows are free capacity a node may take part of (as `admits` reads them).
    let owned = o.available.is_some();
    let counts = match (&r.accelerators, &o.accelerator) {
        (None, None) => true,
        (Some(alts), Some(have)) => alts.iter().any(|a| a.count == have.count || (owned && a.count <= have.count)),
        _ => false,
    };
    let fits = |a: &kiln_provider::portable::request::Amount, have: f64| if owned { a.fits_in(have) } else { a.admits(have) };
    let gib = || o.memory_gib.mantissa() as f64 / 10f64.powi(o.memory_gib.scale() as i32);
    counts && r.cpus.is_none_or(|c| fits(&c, o.vcpus as f64)) && r.memory.is_none_or(|m| fits(&m, gib()))
}

/// A feasible entry, or the first check the candidate fails: the request's quick test
/// ([`may_admit`]), scope, the request, free machines, a price, `max_price`.
pub(crate) fn evaluate<'c, 'o>(need: &Need, egress: &Egress, index: usize, c: &'c Candidate<'o>) -> Result<Entry<'c, 'o>, Reject> {
    // The quick test first: most rows fail it, and a row it rules out is not a near miss
    // whatever placement's constraints say of it.
    if !may_admit(&need.request, c.offering) {
        return Err(Reject::Unsuitable);
    }
    let rank = scope(need, c).map_err(Reject::Scope)?;
    let alternative = admits_as(&need.request, c.offering, || c.model).map_err(|_| Reject::Unsuitable)?;
    available(need, c.offering).map_err(Reject::Unavailable)?;
    let market = market(need.spot, c.offering).map_err(Reject::Price)?;
    if need.max_price.is_some_and(|max| market.price > max) {
        return Err(Reject::OverMax(market));
    }
    Ok(Entry::new(need, egress, index, c, rank, alternative, market))
}
