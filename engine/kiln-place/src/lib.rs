//! The placement optimizer (issue 14): of the offerings the configured providers can launch,
//! the cheapest that satisfies a request, the fallbacks apply may launch when it has no
//! capacity, the next best alternatives and why each lost; or, when none satisfies it, an
//! error naming the closest offerings and what to change. Values in, values out: no IO.
//!
//! The rules, in the order they are checked for each [`Candidate`] (after a quick test of the
//! request's counts and sizes, which rules out most rows at once):
//!
//! - **Placement's constraints**: its provider is in `providers` (a provider key, or a cloud's
//!   name for every instance of that cloud), its region in `regions` (an offering without a
//!   region, RunPod's or owned hardware's, is in every region), and `exclude` names neither its
//!   instance type, region, cloud nor provider.
//! - **The request**: [`kiln_catalog::matching::admits`] (accelerator alternatives, counts per
//!   machine, `cpus`, `memory`; a CPU-only request never gets a GPU machine).
//! - **Free machines**: owned hardware counts them (`available >= nodes`); clouds have no
//!   bound kiln can know.
//! - **A price** in the market [`SpotMode`] asks for: `Never` on-demand, `Always` spot, `Auto`
//!   the cheaper of the two per offering (spot on a tie; on-demand where no spot price is
//!   known). An unknown price is never taken as free: the offering is skipped and the
//!   decision's notes count it ("3 offerings skipped: price unknown").
//! - **`max_price`**: the price of one node-hour at most this.
//!
//! **The objective**: the lowest `hourly price of all nodes × 24 + egress`, one day's run,
//! so a one-off transfer of the jobs' data (each [`Data`] moved once from its [`Origin`],
//! priced by [`kiln_catalog::egress`], and summed) weighs what it would over a day of the
//! machines' price; without data it is the hourly price. An offering whose egress is unknown
//! (any of its data's move is) ranks after every one whose egress is known. With
//! `prefer_order`, an earlier provider in `providers` wins before price. The request's
//! accelerator alternatives do not outrank price: an earlier alternative wins only on a tie
//! (the cheapest satisfying offering is chosen, whichever alternative it satisfies). Other ties
//! go to spot, then provider, region, instance type and zone, so a decision is deterministic.

mod evaluate;
mod explain;
mod infeasible;
mod miss;
pub mod money;
mod need;

pub use infeasible::{Closest, Infeasible};
pub use need::{Avoid, Candidate, Data, Need, Origin, SpotMode};

use kiln_catalog::egress::Egress;
use kiln_plan::cost::{Alternative, PlacedOffering};

use crate::evaluate::{evaluate, order, PriceMiss, Reject};
use crate::explain::Skipped;

/// The optimizer's answer for one need.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub chosen: PlacedOffering,
    /// What apply may launch instead, in order, when the chosen offering has no capacity: other
    /// offerings of the same provider instance, region and market, cheapest first (and with
    /// `spot = "auto"`, the chosen type on-demand last).
    pub fallbacks: Vec<PlacedOffering>,
    /// The next best offerings elsewhere, each with why it lost.
    pub alternatives: Vec<Alternative>,
    /// What was left out on the way ("3 offerings skipped: price unknown").
    pub notes: Vec<String>,
}

/// The decision for `need` among `candidates`, moving data at the shipped egress prices.
pub fn decide(need: &Need, candidates: &[Candidate<'_>]) -> Result<Decision, Infeasible> {
    decide_with(need, candidates, Egress::shipped())
}

/// The decision for `need` among `candidates`, moving data at `egress`'s prices.
pub fn decide_with(need: &Need, candidates: &[Candidate<'_>], egress: &Egress) -> Result<Decision, Infeasible> {
    debug_assert!(candidates.iter().all(|c| c.provider != "local"), "the local provider is never a placement candidate");
    let mut ranked = Vec::new();
    let mut skipped = Skipped::default();
    // Candidates a limit of the need's own left out: near misses, when cheaper than the choice.
    let mut left_out = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        match evaluate(need, egress, i, c) {
            Ok(e) => ranked.push(e),
            Err(r) => {
                if matches!(r, Reject::Scope(_) | Reject::Unavailable(_) | Reject::Price(PriceMiss::NoSpot)) {
                    left_out.push(i);
                }
                skipped.count(&r);
            }
        }
    }
    let notes = skipped.notes(need, egress, &ranked);
    if ranked.is_empty() {
        return Err(infeasible::infeasible(need, candidates, notes));
    }
    ranked.sort_by(order);
    let chosen = ranked[0].placed(need.nodes);
    let fallbacks = explain::fallbacks(need, &ranked);
    let alternatives = explain::alternatives(need, egress, candidates, &left_out, &ranked, &chosen, &fallbacks);
    Ok(Decision { chosen, fallbacks: fallbacks.into_iter().map(|(_, p)| p).collect(), alternatives, notes })
}
