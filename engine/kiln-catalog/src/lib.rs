//! The catalog of offerings kiln ships: clouds' machine shapes and prices, one CSV per cloud
//! under `data/` (compiled in; `data/README.md` gives each file's source and date), layered with
//! what users add ([`layers`]: refreshed files, the user's files, [`discount`]s), and
//! [`matching`]: whether a row satisfies a request.

pub mod csv;
pub mod discount;
pub mod egress;
pub mod layers;
pub mod matching;

pub use discount::Discount;
pub use layers::{Layers, Origin, Source, Text};

use std::sync::OnceLock;

use kiln_provider::offerings::Offering;

/// The version of the catalog's format (the columns of [`csv::COLUMNS`]).
pub const FORMAT_VERSION: u32 = 1;

/// The shipped files: (file name, text).
const SHIPPED: [(&str, &str); 3] = [
    ("aws.csv", include_str!("../data/aws.csv")),
    ("lambda.csv", include_str!("../data/lambda.csv")),
    ("runpod.csv", include_str!("../data/runpod.csv")),
];

/// Where the shipped extract comes from (its README's first lines).
pub const SHIPPED_SOURCE: &str = "skypilot-org/skypilot-catalog catalogs/v8 (aws, lambda, runpod vms.csv), a partial extract";
/// The date of the shipped extract.
pub const SHIPPED_DATE: &str = "2026-11-25";

/// Rows of offerings, by cloud, with where each cloud's rows came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub rows: Vec<Offering>,
    /// One per cloud of each file read; its `Display` is the line output shows:
    /// "aws: shipped (skypilot-org/skypilot-catalog catalogs/v8 ..., 2026-11-25), 244 rows".
    pub sources: Vec<Source>,
    /// The discounts applied to the rows' prices.
    pub discounts: Vec<Discount>,
}

impl Catalog {
    /// The catalog compiled into kiln, parsed once.
    pub fn shipped() -> &'static Catalog {
        static SHIPPED_CATALOG: OnceLock<Catalog> = OnceLock::new();
        SHIPPED_CATALOG.get_or_init(|| {
            let mut c = Catalog::default();
            for (name, text) in SHIPPED {
                let name = format!("shipped:{name}");
                let mut file = csv::parse(&name, text).expect("the shipped catalog parses (tested)");
                file.source.get_or_insert_with(|| SHIPPED_SOURCE.to_string());
                file.date.get_or_insert_with(|| SHIPPED_DATE.to_string());
                c.sources.extend(layers::sources_of(&file, &name, Origin::Shipped));
                c.rows.extend(file.rows);
            }
            c
        })
    }

    /// The shipped catalog with `layers` over it ([`layers::layer`]).
    pub fn layered(layers: &Layers<'_>) -> Result<Catalog, kiln_diag::Diagnostics> {
        layers::layer(Catalog::shipped(), layers)
    }

    /// The clouds the catalog has rows of, sorted.
    pub fn clouds(&self) -> Vec<&str> {
        let mut clouds: Vec<&str> = self.rows.iter().map(|r| r.cloud.as_str()).collect();
        clouds.sort_unstable();
        clouds.dedup();
        clouds
    }

    /// The rows of one cloud.
    pub fn cloud<'a>(&'a self, cloud: &'a str) -> impl Iterator<Item = &'a Offering> + 'a {
        self.rows.iter().filter(move |r| r.cloud == cloud)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_parses_and_keeps_unknown_prices_unknown() {
        let c = Catalog::shipped();
        assert!(c.cloud("aws").count() > 200);
        assert!(c.cloud("lambda").count() > 400);
        assert_eq!(c.cloud("runpod").count(), 7);
        // p5.4xlarge in the US regions has no spot price in the source: unknown, not free.
        let p5 = c.cloud("aws").find(|r| r.instance_type == "p5.4xlarge" && r.region.as_deref() == Some("us-east-1")).unwrap();
        assert_eq!(p5.spot_price_hourly, None);
        assert!(c.rows.iter().all(|r| r.price_hourly.is_none_or(|p| !p.is_zero())), "no shipped row is free");
    }
}
