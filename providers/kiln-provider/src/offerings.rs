//! What a provider can offer the placement optimizer (issue 14): one interface for clouds and
//! owned hardware.
//!
//! An [`Offering`] is one row of the catalog: a machine shape (instance type, accelerators,
//! vCPUs, memory) somewhere (cloud, region, zone) at a price per hour, on-demand and spot. A
//! cloud's offerings are the catalog's rows for it (`kiln-catalog`: shipped, refreshed, or the
//! user's), limited to where the configured provider instance can launch; owned hardware (an
//! on-prem fleet, a Slurm partition, a Kubernetes context) answers rows of its own: its free
//! capacity now, at the hourly price its configuration gives (0 by default).
//!
//! A price is `None` when it is not known. Nothing treats an unknown price as free: the
//! optimizer skips such a row and says so, and cost lines show it as unknown.

use kiln_diag::Diagnostics;
use kiln_value::Decimal;

/// One machine shape offered somewhere at a price.
#[derive(Debug, Clone, PartialEq)]
pub struct Offering {
    /// Whose offering: a cloud's catalog name (`aws`, `lambda`, `runpod`), or the provider
    /// name for owned hardware (`onprem`, `slurm`).
    pub cloud: String,
    /// The provider's name for the shape (`p5.48xlarge`, `gpu_8x_h100_sxm5`); for owned
    /// hardware, what identifies it (a host, a partition).
    pub instance_type: String,
    /// GPUs per machine; `None` for a CPU-only machine.
    pub accelerator: Option<OfferedAccelerator>,
    pub vcpus: u64,
    pub memory_gib: Decimal,
    /// `None` where the cloud has no regions to choose (RunPod's rows) or for owned hardware.
    pub region: Option<String>,
    pub zone: Option<String>,
    /// On-demand price per machine-hour in USD; `None`: unknown.
    pub price_hourly: Option<Decimal>,
    /// Spot price per machine-hour in USD; `None`: no spot market, or unknown.
    pub spot_price_hourly: Option<Decimal>,
    /// Owned hardware: how many such machines are free now. `None` for clouds (bounded by
    /// quotas and capacity that only a launch finds out).
    pub available: Option<u64>,
}

/// The accelerators of an offering.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferedAccelerator {
    /// The catalog's name (`H100`, `A100-80GB`, `A10G`), matched by the one name table
    /// (`portable::accelerators`), with the instance type's words telling variants apart.
    pub name: String,
    pub count: u64,
    /// Memory of one accelerator in GiB, where the source says.
    pub memory_gib: Option<Decimal>,
}

impl Offering {
    /// The price per machine-hour for `spot` (spot) or on-demand.
    pub fn price(&self, spot: bool) -> Option<Decimal> {
        if spot {
            self.spot_price_hourly
        } else {
            self.price_hourly
        }
    }
}

/// What a configured provider instance offers placement.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Offerings {
    /// Not a placement candidate (the `local` provider, the `kiln` provider).
    #[default]
    None,
    /// A cloud: the catalog's rows for `cloud`, in `regions` only when given (the region the
    /// provider instance is configured for).
    Catalog { cloud: String, regions: Option<Vec<String>> },
    /// Owned hardware: its free capacity now, priced from its configuration.
    Owned(Vec<Offering>),
}

/// The answer to [`crate::Provider::offerings`].
#[derive(Debug, Default)]
pub struct OfferingsResponse {
    pub offerings: Offerings,
    /// Warnings (capacity that could not be read) or errors.
    pub diagnostics: Diagnostics,
}

/// The answer to [`crate::Provider::refresh_catalog`]: the provider's catalog rows as its API
/// gives them (`kiln catalog refresh CLOUD`). A price the API does not give stays `None`; the
/// caller fills it from the shipped catalog where that has one.
#[derive(Debug, Default)]
pub struct CatalogRefresh {
    /// The catalog name the rows are for (`aws`).
    pub cloud: String,
    pub rows: Vec<Offering>,
    /// Where the rows came from, for the catalog file's source note ("EC2 API
    /// DescribeInstanceTypes and DescribeSpotPriceHistory, us-east-1").
    pub source: String,
    pub diagnostics: Diagnostics,
}

impl CatalogRefresh {
    /// The answer of a provider without a catalog to refresh.
    pub fn refused() -> Self {
        CatalogRefresh {
            diagnostics: kiln_diag::Diagnostic::error("E-CATALOG-REFRESH", "this provider has no catalog to refresh")
                .hint("`kiln catalog refresh` takes a cloud provider, such as `aws`")
                .into(),
            ..Default::default()
        }
    }
}

/// The price of owned hardware (an on-prem host, a Slurm node): `hourly_price` per machine-hour
/// plus `gpu_hour_price` per GPU-hour, in USD, as a provider block (or a part of it, such as a
/// host) sets them. Unset is 0: owned hardware costs nothing extra unless said.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OwnedPrice {
    pub hourly: Option<Decimal>,
    pub gpu_hour: Option<Decimal>,
}

impl OwnedPrice {
    pub const HOURLY: &'static str = "hourly_price";
    pub const GPU_HOUR: &'static str = "gpu_hour_price";

    /// Reads both attributes of an evaluated block; an error (code `code`) names the attribute
    /// that is not a number of at least 0.
    pub fn parse(v: &kiln_value::Value, code: &'static str) -> Result<OwnedPrice, kiln_diag::Diagnostic> {
        let read = |name: &'static str| match v.get(name).filter(|x| !x.is_null()) {
            None => Ok(None),
            Some(x) => match x.as_number() {
                Some(n) if n >= Decimal::ZERO => Ok(Some(n)),
                _ => Err(kiln_diag::Diagnostic::error(code, format!("`{name}` must be a number of US dollars, 0 or more, got {x}"))
                    .attribute(name)
                    .hint(format!("for example {name} = 2.5; leave it out for 0"))),
            },
        };
        Ok(OwnedPrice { hourly: read(Self::HOURLY)?, gpu_hour: read(Self::GPU_HOUR)? })
    }

    /// Each price where this one sets it, else `outer`'s (a host's over its provider's).
    pub fn or(self, outer: OwnedPrice) -> OwnedPrice {
        OwnedPrice { hourly: self.hourly.or(outer.hourly), gpu_hour: self.gpu_hour.or(outer.gpu_hour) }
    }

    /// The price per hour of one machine with `gpus` GPUs: `hourly_price + gpu_hour_price × gpus`.
    pub fn machine(&self, gpus: u64) -> Decimal {
        (self.hourly.unwrap_or_default() + self.gpu_hour.unwrap_or_default() * Decimal::from(gpus)).normalize()
    }

    /// Whether `gpu_hour_price` is above 0, so that a machine's price depends on its GPUs.
    pub fn charges_gpus(&self) -> bool {
        self.gpu_hour.is_some_and(|p| p > Decimal::ZERO)
    }

    /// The price per hour of one machine with `gpus` GPUs, where `None` is a count chosen at
    /// apply: unknown (with the reason) only when `gpu_hour_price` makes the count matter.
    pub fn machine_of(&self, gpus: Option<u64>) -> Result<Decimal, String> {
        match gpus {
            Some(n) => Ok(self.machine(n)),
            None if self.charges_gpus() => Err("its GPUs are chosen at apply, and `gpu_hour_price` prices each".into()),
            None => Ok(self.machine(0)),
        }
    }

    /// The price per hour of `nodes` machines of `gpus` GPUs each, either maybe chosen at apply
    /// (`None`): the machines' price × `nodes`, unknown with the reason where a count that is
    /// not known yet decides it (0 stays 0 whatever the count).
    pub fn machines(&self, nodes: Option<u64>, gpus: Option<u64>) -> Result<Decimal, String> {
        let each = self.machine_of(gpus)?;
        match nodes {
            Some(n) => Ok((each * Decimal::from(n)).normalize()),
            None if each.is_zero() => Ok(Decimal::ZERO),
            None => Err("its number of nodes is chosen at apply".into()),
        }
    }

    /// `body` with the two attributes and their descriptions.
    pub fn attributes(body: kiln_schema::Body, hourly: &'static str, gpu_hour: &'static str) -> kiln_schema::Body {
        use kiln_schema::Attribute;
        use kiln_value::Type;
        body.attr(Self::HOURLY, Attribute::optional(Type::Number, hourly)).attr(Self::GPU_HOUR, Attribute::optional(Type::Number, gpu_hour))
    }
}

/// What an object asks of owned hardware, read from its planned value for pricing it: the
/// number of machines (`nodes`, 1 when unset) and the most GPUs one machine takes (the largest
/// count among its `accelerators` alternatives, 0 without); `None` for what is not known yet.
pub fn requested(object: &kiln_value::Value) -> (Option<u64>, Option<u64>) {
    use kiln_value::Value;
    let nodes = match object.get("nodes").map(Value::unmarked) {
        None | Some(Value::Null) => Some(1),
        Some(n) => crate::util::to_u64(n),
    };
    let gpus = match object.get("accelerators") {
        Some(a) if a.contains_unknown() => None,
        a => crate::portable::request::parse_accelerators(a)
            .ok()
            .map(|alts| alts.unwrap_or_default().iter().map(|a| a.count).max().unwrap_or(0)),
    };
    (nodes, gpus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_value::Value;

    fn block(j: serde_json::Value) -> Value {
        Value::from_json(&j)
    }

    #[test]
    fn owned_prices_default_to_zero_and_inner_blocks_override() {
        let provider = OwnedPrice::parse(&block(serde_json::json!({ "hourly_price": 1.5, "gpu_hour_price": 0.25 })), "E-X").unwrap();
        assert_eq!(provider.machine(4), Decimal::new(25, 1));
        assert_eq!(OwnedPrice::parse(&block(serde_json::json!({})), "E-X").unwrap().machine(8), Decimal::ZERO);
        let host = OwnedPrice::parse(&block(serde_json::json!({ "gpu_hour_price": 1 })), "E-X").unwrap().or(provider);
        assert_eq!(host.machine(2), Decimal::new(35, 1), "the host's GPU price, the provider's host price");
        let e = OwnedPrice::parse(&block(serde_json::json!({ "hourly_price": -1 })), "E-X").unwrap_err();
        assert_eq!(e.attribute.as_deref(), Some("hourly_price"));
    }

    #[test]
    fn counts_chosen_at_apply_are_unknown_only_where_they_change_the_price() {
        let price = |h: i64, g: i64| OwnedPrice { hourly: Some(h.into()), gpu_hour: Some(g.into()) };
        assert_eq!(price(1, 2).machines(Some(3), Some(4)), Ok(Decimal::from(27)));
        assert_eq!(price(1, 0).machines(Some(3), None), Ok(Decimal::from(3)), "GPUs free of charge: their count does not matter");
        assert!(price(1, 2).machines(Some(3), None).unwrap_err().contains("GPUs are chosen at apply"));
        assert!(price(1, 0).machines(None, Some(8)).unwrap_err().contains("number of nodes"));
        assert_eq!(OwnedPrice::default().machines(None, None), Ok(Decimal::ZERO), "0 by default, however many");
    }

    #[test]
    fn what_an_object_asks_for() {
        let unknown = Value::Map([("nodes".to_string(), Value::Unknown), ("accelerators".to_string(), Value::Unknown)].into());
        assert_eq!(requested(&unknown), (None, None));
        assert_eq!(requested(&block(serde_json::json!({}))), (Some(1), Some(0)), "one node, no GPUs");
        let alts = block(serde_json::json!({ "nodes": 2, "accelerators": ["H100:8", "A100:4"] }));
        assert_eq!(requested(&alts), (Some(2), Some(8)), "the most GPUs any alternative takes");
    }
}
