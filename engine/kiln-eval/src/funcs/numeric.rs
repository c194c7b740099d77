//! Numeric functions: abs, ceil, floor, log, max, min, parseint, pow and signum.
//!
//! Arithmetic is exact decimal; only `log` and `pow` with a negative or fractional exponent go
//! through f64, as Terraform computes them.

use kiln_value::{Decimal, Value};
use rust_decimal::prelude::{Signed, ToPrimitive};
use rust_decimal::MathematicalOps;

use super::{arg_err, arg_int, arg_number, err, from_f64, number, Result, Spec};

pub(super) const FUNCS: &[Spec] = &[
    Spec::new("abs", &["num"], |a| Ok(number(arg_number(a, 0)?.abs()))),
    Spec::new("ceil", &["num"], |a| Ok(number(arg_number(a, 0)?.ceil()))),
    Spec::new("floor", &["num"], |a| Ok(number(arg_number(a, 0)?.floor()))),
    Spec::new("log", &["num", "base"], |a| from_f64(f64_arg(a, 0)?.ln() / f64_arg(a, 1)?.ln())),
    Spec::new("max", &[], |a| extreme(a, |x, y| x > y)).variadic("numbers"),
    Spec::new("min", &[], |a| extreme(a, |x, y| x < y)).variadic("numbers"),
    Spec::new("parseint", &["number", "base"], parseint),
    Spec::new("pow", &["num", "power"], pow),
    Spec::new("signum", &["num"], |a| Ok(number(arg_number(a, 0)?.signum()))),
];

fn f64_arg(a: &[Value], i: usize) -> Result<f64> {
    let n = arg_number(a, i)?;
    n.to_f64().ok_or_else(|| arg_err(i, "number out of range"))
}

fn extreme(a: &[Value], better: fn(&Decimal, &Decimal) -> bool) -> Result<Value> {
    if a.is_empty() {
        return Err(err("must pass at least one number"));
    }
    let mut best = arg_number(a, 0)?;
    for i in 1..a.len() {
        let n = arg_number(a, i)?;
        if better(&n, &best) {
            best = n;
        }
    }
    Ok(number(best))
}

fn pow(a: &[Value]) -> Result<Value> {
    let base = arg_number(a, 0)?;
    let power = arg_number(a, 1)?;
    if let Some(p) = power.to_u64().filter(|_| power.fract().is_zero()) {
        if let Some(exact) = base.checked_powu(p) {
            return Ok(number(exact));
        }
    }
    from_f64(f64_arg(a, 0)?.powf(f64_arg(a, 1)?))
}

fn parseint(a: &[Value]) -> Result<Value> {
    let Value::String(s) = &a[0] else {
        return Err(arg_err(0, format!("first argument must be a string, not {}", a[0].type_name())));
    };
    let base = arg_int(a, 1)?;
    if !(2..=62).contains(&base) {
        return Err(arg_err(1, "base must be a whole number between 2 and 62 inclusive"));
    }
    let cannot = || arg_err(0, format!("cannot parse {} as a base {base} integer", super::quote(s)));
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s.as_str()),
    };
    if digits.is_empty() {
        return Err(cannot());
    }
    let mut acc: i128 = 0;
    for c in digits.chars() {
        let d = match c {
            '0'..='9' => c as i128 - '0' as i128,
            'a'..='z' => c as i128 - 'a' as i128 + 10,
            'A'..='Z' if base <= 36 => c as i128 - 'A' as i128 + 10,
            'A'..='Z' => c as i128 - 'A' as i128 + 36,
            _ => return Err(cannot()),
        };
        if d >= i128::from(base) {
            return Err(cannot());
        }
        acc = acc
            .checked_mul(i128::from(base))
            .and_then(|x| x.checked_add(d))
            .ok_or_else(|| arg_err(0, format!("{} is too large a number", super::quote(s))))?;
    }
    let n = Decimal::try_from_i128_with_scale(if neg { -acc } else { acc }, 0)
        .map_err(|_| arg_err(0, format!("{} is too large a number", super::quote(s))))?;
    Ok(number(n))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

    #[test]
    fn rounding_and_sign() {
        assert_eq!(ok("abs", vec![n("23")]), n("23"));
        assert_eq!(ok("abs", vec![n("-12.4")]), n("12.4"));
        assert_eq!(ok("ceil", vec![n("5")]), n("5"));
        assert_eq!(ok("ceil", vec![n("5.1")]), n("6"));
        assert_eq!(ok("ceil", vec![n("-5.1")]), n("-5"));
        assert_eq!(ok("floor", vec![n("4.9")]), n("4"));
        assert_eq!(ok("floor", vec![n("-4.1")]), n("-5"));
        assert_eq!(ok("signum", vec![n("-13")]), n("-1"));
        assert_eq!(ok("signum", vec![n("0")]), n("0"));
        assert_eq!(ok("signum", vec![n("344")]), n("1"));
    }

    #[test]
    fn extremes() {
        assert_eq!(ok("max", vec![n("12"), n("54"), n("3")]), n("54"));
        assert_eq!(ok("min", vec![n("12"), n("54"), n("3")]), n("3"));
        assert_eq!(ok("max", vec![s("0.1"), n("-1")]), n("0.1"));
        assert_eq!(fails("max", vec![]), "must pass at least one number");
    }

    #[test]
    fn logs_and_powers() {
        assert_eq!(ok("log", vec![n("50"), n("10")]), n("1.6989700043360185"));
        assert_eq!(ok("log", vec![n("16"), n("2")]), n("4"));
        assert_eq!(ok("log", vec![n("1"), n("10")]), n("0"));
        assert!(fails("log", vec![n("0"), n("10")]).contains("cannot be represented"));
        assert_eq!(ok("pow", vec![n("3"), n("2")]), n("9"));
        assert_eq!(ok("pow", vec![n("4"), n("0")]), n("1"));
        assert_eq!(ok("pow", vec![n("1.1"), n("2")]), n("1.21"));
        assert_eq!(ok("pow", vec![n("2"), n("-1")]), n("0.5"));
        assert_eq!(ok("pow", vec![n("4"), n("0.5")]), n("2"));
        assert_eq!(ok("pow", vec![n("-1"), n("1000001")]), n("-1"));
        assert_eq!(ok("pow", vec![n("10"), n("20")]), n("100000000000000000000"));
    }

    #[test]
    fn parseint_bases() {
        assert_eq!(ok("parseint", vec![s("100"), n("10")]), n("100"));
        assert_eq!(ok("parseint", vec![s("FF"), n("16")]), n("255"));
        assert_eq!(ok("parseint", vec![s("-10"), n("16")]), n("-16"));
        assert_eq!(ok("parseint", vec![s("1011111011101111"), n("2")]), n("48879"));
        assert_eq!(ok("parseint", vec![s("aA"), n("62")]), n("656"));
        assert!(fails("parseint", vec![s("12"), n("2")]).ends_with(r#"cannot parse "12" as a base 2 integer"#));
        assert!(fails("parseint", vec![s("1"), n("63")]).ends_with("base must be a whole number between 2 and 62 inclusive"));
        assert!(fails("parseint", vec![n("1"), n("10")]).ends_with("first argument must be a string, not number"));
    }
}
