//! What a plan says about money and rules (issue 14): the hourly cost of each change and of the
//! whole plan, the placement optimizer's decisions, and the policies' results.
//!
//! A price is never invented: what kiln cannot price is [`Cost::Unknown`] with the reason, shown
//! as unknown and never summed as $0.

use kiln_addrs::InstanceAddr;
use kiln_value::Decimal;
use serde::{Deserialize, Serialize};

/// The hourly cost of one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cost {
    /// USD per hour for the whole object (every node).
    Hourly { usd: Decimal },
    /// Kiln cannot price it; `reason` says why ("no catalog row for p9.2xlarge in us-east-1").
    Unknown { reason: String },
    /// It has no hourly charge of its own (a job runs on its cluster's machines; a record).
    None,
}

impl Cost {
    pub fn hourly(&self) -> Option<Decimal> {
        match self {
            Cost::Hourly { usd } => Some(*usd),
            _ => None,
        }
    }
}

/// The hourly cost of a change's object before and after (`None` on the side that does not
/// exist: a create's before, a delete's after).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeCost {
    pub before: Option<Cost>,
    pub after: Option<Cost>,
}

/// A total of hourly costs; `unknown` lists the addresses whose cost is unknown (left out of
/// `usd`, so a total with unknowns is a lower bound and says so).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Total {
    pub usd: Decimal,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

/// The plan's hourly cost before and after it is applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanCost {
    pub before: Total,
    pub after: Total,
}

/// One offering as a placement decision names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacedOffering {
    /// The provider instance that launches it (`aws`, `aws.west`, `onprem`).
    pub provider: String,
    /// The catalog's cloud name (`aws`, `lambda`, `runpod`; the provider for owned hardware).
    pub cloud: String,
    pub instance_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub spot: bool,
    /// `H100:8`; `None` for a CPU-only machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerators: Option<String>,
    pub vcpus: u64,
    pub memory_gib: Decimal,
    /// USD per machine-hour.
    pub price_hourly: Decimal,
    pub nodes: u64,
    /// USD to move the job's data to it once (data gravity), where a job says where its data is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_usd: Option<Decimal>,
}

impl PlacedOffering {
    /// USD per hour for every node.
    pub fn hourly(&self) -> Decimal {
        self.price_hourly * Decimal::from(self.nodes)
    }
}

/// An offering that lost, and why ("$4.10/h more", "spot not offered", "region not allowed").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub offering: PlacedOffering,
    pub reason: String,
}

/// The optimizer's decision for one placed instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub address: InstanceAddr,
    /// The request as written (`accelerators = "H100:8", spot = "auto"`).
    pub request: String,
    pub chosen: PlacedOffering,
    /// Offerings of the same provider apply may launch instead, in order, when the chosen one
    /// has no capacity; cost lines and budgets count the dearest of `chosen` and these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<PlacedOffering>,
    /// The next best offerings and why each lost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
    /// Notes on rows left out ("3 rows skipped: price unknown").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The decision state recorded, kept because the request did not change (prices moving
    /// never moves a running cluster; `--replan-placement` asks for a new decision).
    #[serde(default)]
    pub kept: bool,
    /// With `--replan-placement`: the offering the object runs on now, when the new decision
    /// moves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<PlacedOffering>,
    /// Digest of the request the decision was made for, recorded in state at apply.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_digest: String,
}

impl Placement {
    /// The dearest hourly price apply may launch at: what cost lines and budgets count.
    pub fn dearest_hourly(&self) -> Decimal {
        std::iter::once(&self.chosen).chain(&self.fallbacks).map(PlacedOffering::hourly).max().unwrap_or_default()
    }
}

/// One policy's verdict on the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyResult {
    /// The policy block's name (`budget`).
    pub name: String,
    /// Where the policy block is (`policies.kiln.hcl:3:1`).
    pub location: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

impl PolicyResult {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// One way a plan breaks a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// The change it is about; `None` for the plan as a whole (a budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub message: String,
}

/// `$21.96`, `$0.0496`: cents from $1 up, four places below (small CPU machines cost fractions
/// of a cent per hour), never rounded to $0.00 unless it is 0.
pub fn usd(d: Decimal) -> String {
    let a = d.abs();
    let sign = if d.is_sign_negative() && !d.is_zero() { "-" } else { "" };
    if a >= Decimal::ONE || a.is_zero() {
        format!("{sign}${:.2}", a.round_dp(2))
    } else {
        let r = a.round_dp(4).normalize();
        if r.scale() < 2 {
            format!("{sign}${r:.2}")
        } else {
            format!("{sign}${r}")
        }
    }
}

/// A difference with its sign: `+$3.20`, `-$0.50`.
pub fn delta(d: Decimal) -> String {
    if d.is_sign_negative() && !d.is_zero() {
        usd(d)
    } else {
        format!("+{}", usd(d))
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn amounts_read_as_prices() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(usd(d("21.957642")), "$21.96");
        assert_eq!(usd(d("0.0496")), "$0.0496");
        assert_eq!(usd(d("0.2")), "$0.20");
        assert_eq!(usd(Decimal::ZERO), "$0.00");
        assert_eq!(usd(d("72")), "$72.00");
        assert_eq!(delta(d("3.2")), "+$3.20");
        assert_eq!(delta(d("-0.5")), "-$0.50");
    }
}
