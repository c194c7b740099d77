//! Discounts on a cloud's list prices: `discount { cloud = "aws", percent = 30 }` (an
//! enterprise agreement, credits), optionally for one negotiated instance type
//! (`instance_type = "p5.48xlarge"`). A discount multiplies both the on-demand and the spot
//! price by `(100 - percent) / 100`; an unknown price stays unknown.
//!
//! Per row, the discount for its exact instance type wins over the cloud's; two discounts for
//! the same cloud and type are refused rather than one silently winning. Errors name the
//! setting through [`Diagnostic::attribute`] (`percent` for one discount, `discount[I].cloud`
//! for one among several), so the caller that knows the blocks points at it.

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::offerings::Offering;
use kiln_value::Decimal;

/// One `discount` block's values.
#[derive(Debug, Clone, PartialEq)]
pub struct Discount {
    /// The catalog's cloud name (`aws`, `lambda`, `runpod`).
    pub cloud: String,
    /// Off the list price, in `[0, 100)`.
    pub percent: Decimal,
    /// Only this instance type (a negotiated price); `None`: every row of the cloud.
    pub instance_type: Option<String>,
}

impl Discount {
    /// A discount, its percent checked: at least 0 and under 100 (a 100% discount would make
    /// machines free, which kiln never assumes).
    pub fn new(cloud: impl Into<String>, percent: Decimal, instance_type: Option<String>) -> Result<Discount, Diagnostic> {
        if percent.is_sign_negative() || percent >= Decimal::from(100) {
            return Err(Diagnostic::error("E-CATALOG-DISCOUNT", format!("a discount of {percent}% is not between 0 and 100"))
                .attribute("percent")
                .hint("give the percent off the list price, at least 0 and below 100, such as `percent = 30`"));
        }
        Ok(Discount { cloud: cloud.into(), percent, instance_type })
    }

    /// What remains of a price: `(100 - percent) / 100`.
    pub fn factor(&self) -> Decimal {
        (Decimal::from(100) - self.percent) / Decimal::from(100)
    }

    /// Whether this discount is for `row` (its cloud, and its type when it names one).
    fn covers(&self, row: &Offering) -> bool {
        self.cloud == row.cloud && self.instance_type.as_ref().is_none_or(|t| *t == row.instance_type)
    }

    /// "aws: 30% off" or "aws p5.48xlarge: 30% off", for `kiln catalog sources`.
    pub fn describe(&self) -> String {
        match &self.instance_type {
            Some(t) => format!("{} {t}: {}% off", self.cloud, self.percent.normalize()),
            None => format!("{}: {}% off", self.cloud, self.percent.normalize()),
        }
    }
}

/// Refuses two discounts for the same cloud and instance type (or two for a whole cloud). Each
/// error names the later one's setting as `discount[I].cloud` (`I`: its index in `discounts`),
/// for the caller to point at its block.
pub fn check(discounts: &[Discount]) -> Diagnostics {
    let mut d = Diagnostics::new();
    for (i, a) in discounts.iter().enumerate() {
        if discounts[..i].iter().any(|b| b.cloud == a.cloud && b.instance_type == a.instance_type) {
            let what = match &a.instance_type {
                Some(t) => format!("`{}` instance type `{t}`", a.cloud),
                None => format!("cloud `{}`", a.cloud),
            };
            d.push(
                Diagnostic::error("E-CATALOG-DISCOUNT", format!("two discounts for {what}"))
                    .attribute(format!("discount[{i}].{}", if a.instance_type.is_some() { "instance_type" } else { "cloud" }))
                    .hint("keep one `discount` block per cloud, and one per negotiated instance type"),
            );
        }
    }
    d
}

/// Applies `discounts` to `rows`: for each row, the discount naming its instance type, else
/// its cloud's, else none.
pub fn apply(rows: &mut [Offering], discounts: &[Discount]) {
    if discounts.is_empty() {
        return;
    }
    for row in rows {
        let exact = discounts.iter().find(|d| d.instance_type.is_some() && d.covers(row));
        let Some(d) = exact.or_else(|| discounts.iter().find(|d| d.instance_type.is_none() && d.covers(row))) else {
            continue;
        };
        let f = d.factor();
        row.price_hourly = row.price_hourly.map(|p| (p * f).normalize());
        row.spot_price_hourly = row.spot_price_hourly.map(|p| (p * f).normalize());
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn row(cloud: &str, ty: &str, price: Option<&str>, spot: Option<&str>) -> Offering {
        Offering {
            cloud: cloud.into(),
            instance_type: ty.into(),
            accelerator: None,
            vcpus: 2,
            memory_gib: 8.into(),
            region: None,
            zone: None,
            price_hourly: price.map(dec),
            spot_price_hourly: spot.map(dec),
            available: None,
        }
    }

    #[test]
    fn a_discount_multiplies_both_prices_and_leaves_unknown_ones_unknown() {
        let mut rows = vec![row("aws", "p5.48xlarge", Some("100"), Some("40")), row("aws", "m7i.large", Some("0.1"), None)];
        apply(&mut rows, &[Discount::new("aws", dec("30"), None).unwrap()]);
        assert_eq!((rows[0].price_hourly, rows[0].spot_price_hourly), (Some(dec("70")), Some(dec("28"))));
        assert_eq!((rows[1].price_hourly, rows[1].spot_price_hourly), (Some(dec("0.07")), None));
    }

    #[test]
    fn a_negotiated_type_wins_over_the_clouds_discount_and_other_clouds_are_untouched() {
        let mut rows = vec![
            row("aws", "p5.48xlarge", Some("100"), None),
            row("aws", "g5.xlarge", Some("1"), None),
            row("lambda", "x", Some("2"), None),
        ];
        let discounts =
            [Discount::new("aws", dec("10"), None).unwrap(), Discount::new("aws", dec("50"), Some("p5.48xlarge".into())).unwrap()];
        assert!(check(&discounts).is_empty());
        apply(&mut rows, &discounts);
        let prices: Vec<_> = rows.iter().map(|r| r.price_hourly.unwrap()).collect();
        assert_eq!(prices, [dec("50"), dec("0.9"), dec("2")]);
    }

    #[test]
    fn percents_outside_0_to_100_and_duplicates_are_refused() {
        for bad in ["100", "120", "-5"] {
            let e = Discount::new("aws", dec(bad), None).unwrap_err();
            assert_eq!(e.code, "E-CATALOG-DISCOUNT");
            assert_eq!(e.attribute.as_deref(), Some("percent"));
            assert!(e.summary.contains(bad), "{}", e.summary);
        }
        assert!(Discount::new("aws", dec("0"), None).is_ok());
        assert!(Discount::new("aws", dec("99.5"), None).is_ok());
        let twice = [Discount::new("aws", dec("10"), None).unwrap(), Discount::new("aws", dec("20"), None).unwrap()];
        let d = check(&twice);
        assert_eq!(d.len(), 1);
        let e = d.iter().next().unwrap();
        assert!(e.summary.contains("cloud `aws`"), "{}", e.summary);
        assert_eq!(e.attribute.as_deref(), Some("discount[1].cloud"));
    }
}
