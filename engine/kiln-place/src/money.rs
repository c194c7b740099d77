//! How the optimizer writes amounts of money in its reasons and errors.

use kiln_value::Decimal;

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
