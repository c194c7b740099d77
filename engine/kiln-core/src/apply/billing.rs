//! What apply records of an object's price (`kiln_state::Billing`): the price of what it
//! launched, from the reviewed plan (never re-priced later), and the placement decision it
//! launched with, so a later plan keeps it while the request is unchanged.

use kiln_plan::{Cost, PlacedOffering, Placement};
use kiln_state::Billing;
use kiln_value::{Decimal, Value};

/// The price side of one create or update.
pub(crate) struct Pricing {
    /// The plan's cost of the object after the change.
    pub after: Option<Cost>,
    /// The decision it was placed with.
    pub placement: Option<Placement>,
    /// What state recorded before (an update's).
    pub prior: Option<Billing>,
}

impl Pricing {
    /// The billing record of the object `new` (as the provider returned it) from `now` on.
    /// A placed cluster records the offering it launched: the chosen one, or the fallback whose
    /// instance type the provider reports.
    pub fn record(&self, new: &Value, now: chrono::DateTime<chrono::Utc>) -> Option<Billing> {
        let (hourly, offering, placement, fallbacks) = match &self.placement {
            Some(p) => {
                let launched = new.get("instance_type").and_then(|t| t.unmarked().as_str());
                let o = std::iter::once(&p.chosen)
                    .chain(&p.fallbacks)
                    .find(|o| launched.is_none_or(|t| t == o.instance_type))
                    .unwrap_or(&p.chosen);
                let fallbacks = p.fallbacks.iter().map(crate::placement::to_value).collect();
                (Some(o.hourly()), describe(o), Some(crate::placement::to_value(o)), fallbacks)
            }
            None => match &self.after {
                Some(Cost::Hourly { usd }) => (Some(*usd), String::new(), None, Vec::new()),
                Some(Cost::Unknown { .. }) => (None, String::new(), None, Vec::new()),
                Some(Cost::None) | None => return None,
            },
        };
        let digest = self.placement.as_ref().map(|p| p.request_digest.clone()).unwrap_or_default();
        let record = |since: String, spent_before: Decimal| Billing {
            hourly,
            since,
            spent_before,
            offering: offering.clone(),
            placement: placement.clone(),
            fallbacks: fallbacks.clone(),
            request_digest: digest.clone(),
        };
        Some(match &self.prior {
            // The same price goes on counting from when it started.
            Some(b) if b.hourly == hourly => record(b.since.clone(), b.spent_before),
            Some(b) => record(now.to_rfc3339(), b.spent_before + b.spent_since(now).unwrap_or_default()),
            None => record(now.to_rfc3339(), Decimal::ZERO),
        })
    }
}

/// "aws p5.48xlarge spot, us-east-1, 2 nodes".
pub fn describe(o: &PlacedOffering) -> String {
    let market = if o.spot { " spot" } else { "" };
    let region = o.region.as_deref().map(|r| format!(", {r}")).unwrap_or_default();
    let nodes = if o.nodes == 1 { "1 node".to_string() } else { format!("{} nodes", o.nodes) };
    format!("{} {}{market}{region}, {nodes}", o.provider, o.instance_type)
}
