//! What a decision says besides its choice: the fallbacks apply may launch, the alternatives
//! and why each lost, and notes on what was left out.

use kiln_catalog::egress::Egress;
use kiln_plan::cost::{Alternative, PlacedOffering};
use kiln_value::Decimal;

use crate::evaluate::{data_move, may_admit, move_cost, placed, Entry, Market, Move, Reject};
use crate::miss::{misses, reason as miss_reason, shown_price, Level};
use crate::money::{delta, usd};
use crate::need::{Candidate, Data, Need, Origin, SpotMode};

/// How many fallbacks of the chosen market a decision lists.
pub(crate) const FALLBACKS: usize = 4;
/// How many alternatives a decision lists.
pub(crate) const ALTERNATIVES: usize = 5;

/// The fallbacks of `ranked[0]`: up to [`FALLBACKS`] other feasible offerings of the same
/// provider instance, region and market, cheapest first (apply launches within the region the
/// provider works in); with `spot = "auto"` and a spot choice, then the chosen type on-demand
/// (when its on-demand price is known and within `max_price`). Each is (its entry's index, or
/// `None` for the on-demand version; the offering).
pub(crate) fn fallbacks(need: &Need, ranked: &[Entry<'_, '_>]) -> Vec<(Option<usize>, PlacedOffering)> {
    let chosen = &ranked[0];
    let same = |e: &&Entry<'_, '_>| {
        e.candidate.provider == chosen.candidate.provider
            && e.offering().region == chosen.offering().region
            && e.market.spot == chosen.market.spot
    };
    let mut out: Vec<(Option<usize>, PlacedOffering)> =
        ranked[1..].iter().filter(same).take(FALLBACKS).map(|e| (Some(e.index), e.placed(need.nodes))).collect();
    if need.spot == SpotMode::Auto && chosen.market.spot {
        if let Some(price) = chosen.offering().price_hourly.filter(|p| need.max_price.is_none_or(|max| *p <= max)) {
            let market = Market { spot: false, price, no_spot: false };
            out.push((None, placed(chosen.candidate, market, need.nodes, chosen.egress.usd())));
        }
    }
    out
}

/// A key that makes two listed offerings the same for a reader: the same type of the same
/// provider in the same market at the same price and egress (Lambda lists one type in 17
/// regions at one price; one of them says it).
type Key<'a> = (&'a str, &'a str, bool, Decimal, Option<Decimal>);

fn key(p: &PlacedOffering) -> Key<'_> {
    (&p.provider, &p.instance_type, p.spot, p.price_hourly.normalize(), p.egress_usd.map(|e| e.normalize()))
}

/// [`key`] of what `c` would be listed as, before it is (most rows a decision reads are not).
fn key_of<'a>(c: &Candidate<'a>, market: Market, egress: Option<Decimal>) -> Key<'a> {
    (c.provider, &c.offering.instance_type, market.spot, market.price.normalize(), egress.map(|e| e.normalize()))
}

/// How many alternatives may be near misses.
const NEAR: usize = 2;

/// Up to [`ALTERNATIVES`] next best offerings that are not the choice or a fallback, each with
/// why it lost, cheapest first; and before the last of them, up to [`NEAR`] of the offerings
/// `left_out` (by placement's constraints, free machines or the market: candidates' indices)
/// that are cheaper than the choice, with what leaves them out ("region not in
/// placement.regions", "above max_price", "1 free, 2 nodes asked"): what the need's own limits
/// cost. (A request no offering satisfies names its closest offerings in its error instead.)
#[allow(clippy::too_many_arguments)]
pub(crate) fn alternatives<'o>(
    need: &Need,
    egress: &Egress,
    candidates: &[Candidate<'o>],
    left_out: &[usize],
    ranked: &[Entry<'_, 'o>],
    chosen: &PlacedOffering,
    fallbacks: &[(Option<usize>, PlacedOffering)],
) -> Vec<Alternative> {
    // A dozen keys at most: a list is quicker than a hash set.
    let mut seen: Vec<Key<'_>> = std::iter::once(chosen).chain(fallbacks.iter().map(|(_, p)| p)).map(key).collect();
    let mut insert = |k: Key<'o>| {
        !seen.contains(&k) && {
            seen.push(k);
            true
        }
    };
    // Only an offering that satisfies the request is a useful near miss (`may_admit` is the
    // quick test every such offering passes).
    let cheaper = left_out
        .iter()
        .map(|i| (*i, &candidates[*i]))
        .filter(|(_, c)| may_admit(&need.request, c.offering))
        .filter(|(_, c)| shown_price(need, c.offering).is_some_and(|p| p.price < chosen.price_hourly));
    let mut near = Vec::new();
    for m in misses(need, cheaper) {
        if near.len() == NEAR {
            break;
        }
        let useful = !matches!(m.level, Level::Count(_) | Level::Size(_));
        let Some(market) = m.price.filter(|p| useful && p.price < chosen.price_hourly) else { continue };
        let egress = move_cost(need, egress, m.candidate).usd();
        if insert(key_of(m.candidate, market, egress)) {
            let offering = placed(m.candidate, market, need.nodes, egress);
            near.push(Alternative { reason: miss_reason(need, &m), offering });
        }
    }
    let used: Vec<usize> = fallbacks.iter().filter_map(|(i, _)| *i).chain([ranked[0].index]).collect();
    let mut out = Vec::with_capacity(ALTERNATIVES);
    for e in &ranked[1..] {
        if out.len() + near.len() == ALTERNATIVES {
            break;
        }
        if used.contains(&e.index) {
            continue;
        }
        if insert(key_of(e.candidate, e.market, e.egress.usd())) {
            out.push(Alternative { reason: lost(need, &ranked[0], e), offering: e.placed(need.nodes) });
        }
    }
    out.extend(near);
    out
}

/// Why `alt` ranked after `chosen`: "+$3.20/h", "+$120.00 egress", "on-demand (no spot
/// offered)", or on a tie what broke it.
pub(crate) fn lost(need: &Need, chosen: &Entry<'_, '_>, alt: &Entry<'_, '_>) -> String {
    let mut parts = Vec::new();
    if alt.rank > chosen.rank {
        parts.push(format!("{} is later in placement.providers", alt.candidate.provider));
    }
    let dh = alt.hourly(need.nodes) - chosen.hourly(need.nodes);
    if !dh.is_zero() {
        parts.push(format!("{}/h", delta(dh)));
    }
    match (chosen.egress, alt.egress) {
        (Move::Known(a), Move::Known(b)) if a != b => parts.push(format!("{} egress", delta(b - a))),
        (Move::Known(_), Move::Unknown) => parts.push("egress unknown".into()),
        _ => {}
    }
    if alt.market.no_spot {
        parts.push("on-demand (no spot offered)".into());
    }
    let tie = alt.rank == chosen.rank && alt.score == chosen.score && alt.egress.unknown() == chosen.egress.unknown();
    if tie {
        let why = if alt.alternative > chosen.alternative {
            let later =
                need.request.accelerators.as_deref().and_then(|a| a.get(alt.alternative)).map(ToString::to_string).unwrap_or_default();
            format!("same price; a later accelerator alternative ({later})")
        } else if chosen.market.spot && !alt.market.spot {
            "same price; spot preferred".into()
        } else {
            "same price; ordered by provider, region and instance type".into()
        };
        parts.push(why);
    }
    parts.join(", ")
}

/// Counts of the candidates left out for a reason a user may want to know.
#[derive(Debug, Default)]
pub(crate) struct Skipped {
    price_unknown: usize,
    no_spot: usize,
    unavailable: usize,
    over_max: usize,
}

impl Skipped {
    pub fn count(&mut self, r: &Reject) {
        match r {
            Reject::Price(crate::evaluate::PriceMiss::Unknown) => self.price_unknown += 1,
            Reject::Price(crate::evaluate::PriceMiss::NoSpot) => self.no_spot += 1,
            Reject::Unavailable(_) => self.unavailable += 1,
            Reject::OverMax(_) => self.over_max += 1,
            Reject::Scope(_) | Reject::Unsuitable => {}
        }
    }

    /// "3 offerings skipped: price unknown", one line per reason that left any out, and the
    /// offerings whose egress is unknown.
    pub fn notes(&self, need: &Need, egress: &Egress, ranked: &[Entry<'_, '_>]) -> Vec<String> {
        let n = |k: usize| if k == 1 { "1 offering".to_string() } else { format!("{k} offerings") };
        let mut notes = Vec::new();
        if self.price_unknown > 0 {
            notes.push(format!("{} skipped: price unknown", n(self.price_unknown)));
        }
        if self.no_spot > 0 {
            notes.push(format!("{} skipped: no spot price (spot = true)", n(self.no_spot)));
        }
        if self.unavailable > 0 {
            notes.push(format!("{} skipped: fewer than {} free machines", n(self.unavailable), need.nodes));
        }
        if self.over_max > 0 {
            notes.push(format!("{} skipped: above max_price {}/h", n(self.over_max), usd(need.max_price.unwrap_or_default())));
        }
        let unknown = ranked.iter().filter(|e| e.egress.unknown()).count();
        if unknown > 0 {
            let why: Vec<String> = unpriced(need, egress, ranked).iter().map(|d| unknown_move(d)).collect();
            notes.push(format!("egress unknown for {}: {} (ranked after those with a known one)", n(unknown), why.join("; ")));
        }
        for d in need.data.iter().filter(|d| d.origin == Origin::ThisMachine) {
            notes.push(format!(
                "{} is on this machine: moving its {} GB counts as free (clouds charge nothing to receive data; kiln knows no price for this machine's network)",
                d.name,
                d.size_gb.normalize()
            ));
        }
        notes
    }
}

/// The need's data whose move to some ranked offering is unknown, each once.
fn unpriced<'n>(need: &'n Need, egress: &Egress, ranked: &[Entry<'_, '_>]) -> Vec<&'n Data> {
    let mut out: Vec<&Data> = Vec::new();
    for d in &need.data {
        let unknown = ranked.iter().any(|e| e.egress.unknown() && data_move(d, egress, e.candidate).is_none());
        if unknown && !out.iter().any(|x| x.origin == d.origin) {
            out.push(d);
        }
    }
    out
}

/// Why moving `d` has no known price.
fn unknown_move(d: &Data) -> String {
    match &d.origin {
        Origin::Cloud { cloud, .. } => format!("the egress table has no price for \"{cloud}\" ({})", d.name),
        Origin::Owned { provider } => {
            format!("{} is on `{provider}`, and kiln knows no price for moving data off it but to its own machines", d.name)
        }
        Origin::ThisMachine => format!("{} is on this machine", d.name),
    }
}
