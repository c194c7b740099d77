//! Helpers for provider implementations: reading attributes out of values (a set attribute is
//! present and not null), building values, names derived from addresses, timestamps, and the
//! diagnostics providers return. Shared so every provider reads values the same way.

use std::time::SystemTime;

use kiln_diag::Diagnostic;
use kiln_value::{Decimal, Map, Value};

use crate::ReadResult;

/// A value's attributes (empty for anything but a map).
pub fn attrs(v: &Value) -> Map {
    v.as_map().cloned().unwrap_or_default()
}

/// An attribute that is set: present and not null, without its sensitive mark.
pub fn set<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get(name).map(Value::unmarked).filter(|x| !x.is_null())
}

pub fn str_attr<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    set(v, name).and_then(Value::as_str)
}

pub fn bool_attr(v: &Value, name: &str) -> Option<bool> {
    set(v, name).and_then(Value::as_bool)
}

/// A whole, non-negative number.
pub fn to_u64(v: &Value) -> Option<u64> {
    v.as_number().filter(|n| n.fract().is_zero()).and_then(|n| u64::try_from(n).ok())
}

pub fn u64_attr(v: &Value, name: &str) -> Option<u64> {
    set(v, name).and_then(to_u64)
}

pub fn f64_attr(v: &Value, name: &str) -> Option<f64> {
    set(v, name).and_then(Value::as_number).and_then(|n| f64::try_from(n).ok())
}

/// The strings of a list attribute (other elements skipped).
pub fn str_list(v: &Value, name: &str) -> Vec<String> {
    set(v, name).and_then(Value::as_list).unwrap_or_default().iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
}

pub fn num(n: u64) -> Value {
    Value::Number(Decimal::from(n))
}

/// A number with one decimal, from a float.
pub fn tenths(x: f64) -> Value {
    Value::Number(Decimal::new((x * 10.0).round() as i64, 1).normalize())
}

pub fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::List(items.into_iter().map(|s| Value::from(s.as_ref())).collect())
}

/// A file-system friendly name from an address: `module.m.job.train["a"]` of kind `job` gives
/// `m-train-a`; the kind when nothing is left.
pub fn slug(address: &str, kind: &str) -> String {
    let rest = address.replace("module.", "");
    let rest = rest.replacen(&format!("{kind}."), "", 1);
    let mapped: String = rest.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    let parts: Vec<&str> = mapped.split('-').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        kind.to_string()
    } else {
        parts.join("-")
    }
}

pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// An error about the object at `address`.
pub fn error(code: &'static str, address: &str, summary: impl Into<String>) -> Diagnostic {
    Diagnostic::error(code, summary).address(address)
}

/// A read that failed with `d`.
pub fn read_error(d: Diagnostic) -> ReadResult {
    ReadResult { state: None, diagnostics: d.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("bucket.ckpt", "bucket"), "ckpt");
        assert_eq!(slug("job.train[0]", "job"), "train-0");
        assert_eq!(slug("module.m.bucket.b[\"eu west\"]", "bucket"), "m-b-eu-west");
        assert_eq!(slug("bucket.my_data", "bucket"), "my_data");
    }

    #[test]
    fn numbers() {
        assert_eq!(to_u64(&Value::from(3i64)), Some(3));
        assert_eq!(to_u64(&Value::from(-3i64)), None);
        assert_eq!(tenths(23.5).to_string(), "23.5");
        assert_eq!(tenths(16.0).to_string(), "16");
    }
}
