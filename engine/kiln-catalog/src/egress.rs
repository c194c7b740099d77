//! What moving data costs (data gravity): per cloud, USD per GB out to the internet and between
//! two of its regions, from `data/egress.csv` (compiled in; its `#` lines give the source and
//! date).
//!
//! ```text
//! # source: ...
//! # date: 2026-12-07
//! cloud,internet_usd_per_gb,inter_region_usd_per_gb
//! aws,0.09,0.02
//! ```
//!
//! The price of a move depends on where the data leaves: inside one region it is free; to
//! another region of the same cloud it is the cloud's inter-region price; to anything else
//! (another cloud, owned hardware) it is the cloud's internet price (clouds charge nothing to
//! receive data). A cloud missing from the table prices as unknown (`None`), never as free.
//! The prices are the first tier of each price list (AWS: the first 10 TB a month); a move of
//! many terabytes may cost less.

use std::str::FromStr;
use std::sync::OnceLock;

use kiln_diag::Diagnostic;
use kiln_value::Decimal;

use crate::csv::error;

/// The header of the egress file, in this order.
pub const COLUMNS: [&str; 3] = ["cloud", "internet_usd_per_gb", "inter_region_usd_per_gb"];

/// One cloud's data-transfer prices, USD per GB.
#[derive(Debug, Clone, PartialEq)]
pub struct EgressPrice {
    pub cloud: String,
    /// Out of the cloud to the internet (and so to other clouds and owned hardware).
    pub internet: Decimal,
    /// From one region of the cloud to another.
    pub inter_region: Decimal,
}

/// The egress table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Egress {
    pub prices: Vec<EgressPrice>,
    /// `# source: ...`
    pub source: Option<String>,
    /// `# date: ...`
    pub date: Option<String>,
}

/// Where data is or goes: a cloud (or an owned provider's name) and its region, `None` where
/// it has none (RunPod, owned hardware).
pub type Place<'a> = (&'a str, Option<&'a str>);

impl Egress {
    /// The table compiled into kiln, parsed once.
    pub fn shipped() -> &'static Egress {
        static SHIPPED: OnceLock<Egress> = OnceLock::new();
        SHIPPED.get_or_init(|| {
            Egress::parse("shipped:egress.csv", include_str!("../data/egress.csv")).expect("the shipped egress table parses (tested)")
        })
    }

    /// Parses an egress file; errors name `name:line:column` as the catalog's do.
    pub fn parse(name: &str, text: &str) -> Result<Egress, Diagnostic> {
        let mut prices: Vec<EgressPrice> = Vec::new();
        let (source, date) = crate::csv::table(name, text, &COLUMNS, "the egress table's", |lineno, line, fields| {
            if fields.len() != COLUMNS.len() {
                return Err(error(name, lineno, 1, format!("{} fields where the header has {}", fields.len(), COLUMNS.len()))
                    .hint("write `cloud,internet_usd_per_gb,inter_region_usd_per_gb`, such as `aws,0.09,0.02`"));
            }
            let col = |i: usize| line.split(',').take(i).map(|f| f.len() + 1).sum::<usize>() + 1;
            let price = |i: usize| match Decimal::from_str(fields[i]) {
                Ok(d) if !d.is_sign_negative() => Ok(d),
                _ => Err(error(name, lineno, col(i), format!("`{}` is not a number of at least 0 ({})", fields[i], COLUMNS[i]))
                    .hint("write a plain decimal such as 0.09; leave a cloud out of the table when its price is unknown")),
            };
            if fields[0].is_empty() {
                return Err(error(name, lineno, 1, "`cloud` is empty").hint("every row names its cloud (`aws`)"));
            }
            if prices.iter().any(|p| p.cloud == fields[0]) {
                return Err(error(name, lineno, 1, format!("`{}` is listed twice", fields[0])).hint("give each cloud one row"));
            }
            prices.push(EgressPrice { cloud: fields[0].to_string(), internet: price(1)?, inter_region: price(2)? });
            Ok(())
        })?;
        Ok(Egress { prices, source, date })
    }

    /// One cloud's prices.
    pub fn price(&self, cloud: &str) -> Option<&EgressPrice> {
        self.prices.iter().find(|p| p.cloud == cloud)
    }

    /// USD to move `size_gb` from `from` to `to` once; `None` when the cloud the data leaves
    /// is not in the table. The same region of the same cloud is free; another region of the
    /// same cloud (or a region either side does not name) costs the inter-region price; any
    /// other destination (another cloud, owned hardware) costs the source cloud's internet
    /// price.
    pub fn cost(&self, from: Place<'_>, to: Place<'_>, size_gb: Decimal) -> Option<Decimal> {
        if from.0 == to.0 && from.1.is_some() && from.1 == to.1 {
            return Some(Decimal::ZERO);
        }
        let p = self.price(from.0)?;
        let per_gb = if from.0 == to.0 { p.inter_region } else { p.internet };
        Some(per_gb * size_gb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn the_shipped_table_has_its_source_and_the_published_prices() {
        let e = Egress::shipped();
        assert!(e.source.as_deref().is_some_and(|s| s.contains("pricing pages") && s.contains("not re-read")));
        assert_eq!(e.date.as_deref(), Some("2026-12-07"));
        let aws = e.price("aws").unwrap();
        assert_eq!((aws.internet, aws.inter_region), (d("0.09"), d("0.02")));
        for free in ["lambda", "runpod"] {
            let p = e.price(free).unwrap();
            assert!(p.internet.is_zero() && p.inter_region.is_zero(), "{free} publishes no egress fees");
        }
    }

    #[test]
    fn moves_cost_by_where_the_data_leaves() {
        let e = Egress::shipped();
        let gb = d("800");
        assert_eq!(e.cost(("aws", Some("us-east-1")), ("aws", Some("us-east-1")), gb), Some(Decimal::ZERO));
        assert_eq!(e.cost(("aws", Some("us-east-1")), ("aws", Some("us-west-2")), gb), Some(d("16")));
        assert_eq!(e.cost(("aws", Some("us-east-1")), ("lambda", Some("us-east-1")), gb), Some(d("72")));
        assert_eq!(e.cost(("aws", Some("us-east-1")), ("runpod", None), gb), Some(d("72")));
        // Owned hardware: the bucket's cloud's internet price.
        assert_eq!(e.cost(("aws", Some("us-east-1")), ("onprem", None), gb), Some(d("72")));
        assert_eq!(e.cost(("lambda", Some("us-west-1")), ("aws", Some("us-east-1")), gb), Some(Decimal::ZERO));
        assert_eq!(e.cost(("runpod", None), ("runpod", None), gb), Some(Decimal::ZERO));
        // A cloud missing from the table is unknown, never free.
        assert_eq!(e.cost(("gcp", Some("us-central1")), ("aws", Some("us-east-1")), gb), None);
        assert_eq!(e.cost(("gcp", Some("us-central1")), ("gcp", Some("us-central1")), gb), Some(Decimal::ZERO));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let head = "cloud,internet_usd_per_gb,inter_region_usd_per_gb\n";
        let err = Egress::parse("e.csv", &format!("{head}aws,0.09,abc\n")).unwrap_err();
        assert!(err.summary.starts_with("e.csv:2:10:"), "{}", err.summary);
        assert!(err.summary.contains("inter_region_usd_per_gb"), "{}", err.summary);
        let err = Egress::parse("e.csv", &format!("{head}aws,0.09,0.02\naws,0.1,0.01\n")).unwrap_err();
        assert!(err.summary.contains("listed twice"), "{}", err.summary);
        let err = Egress::parse("e.csv", "cloud,price\n").unwrap_err();
        assert!(err.summary.contains("header"), "{}", err.summary);
        let err = Egress::parse("e.csv", &format!("{head}aws,0.09\n")).unwrap_err();
        assert!(err.summary.contains("2 fields"), "{}", err.summary);
    }
}
