//! Small helpers shared by the kinds: reading attributes out of values, building values, names
//! derived from addresses, timestamps and diagnostics.

use std::time::SystemTime;

use kiln_diag::Diagnostic;
use kiln_provider::ReadResult;
use kiln_value::{Decimal, Map, Value};

/// A value's attributes (empty for anything but a map).
pub(crate) fn attrs(v: &Value) -> Map {
    v.as_map().cloned().unwrap_or_default()
}

/// An attribute that is set: present, not null.
pub(crate) fn set<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get(name).filter(|x| !x.is_null())
}

pub(crate) fn str_attr<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    set(v, name).and_then(Value::as_str)
}

pub(crate) fn bool_attr(v: &Value, name: &str) -> Option<bool> {
    set(v, name).and_then(Value::as_bool)
}

/// A whole, non-negative number.
pub(crate) fn to_u64(v: &Value) -> Option<u64> {
    v.as_number().filter(|n| n.fract().is_zero()).and_then(|n| u64::try_from(n).ok())
}

pub(crate) fn u64_attr(v: &Value, name: &str) -> Option<u64> {
    set(v, name).and_then(to_u64)
}

pub(crate) fn f64_attr(v: &Value, name: &str) -> Option<f64> {
    set(v, name).and_then(Value::as_number).and_then(|n| f64::try_from(n).ok())
}

/// Any attribute among `names` is unknown (or holds an unknown).
pub(crate) fn any_unknown(v: &Value, names: &[&str]) -> bool {
    names.iter().any(|k| v.get(k).is_some_and(Value::contains_unknown))
}

pub(crate) fn num(n: u64) -> Value {
    Value::Number(Decimal::from(n))
}

/// A number with one decimal, from a float.
pub(crate) fn tenths(x: f64) -> Value {
    Value::Number(Decimal::new((x * 10.0).round() as i64, 1).normalize())
}

pub(crate) fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::List(items.into_iter().map(|s| Value::from(s.as_ref())).collect())
}

/// A map value from pairs.
pub(crate) fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// A string list attribute (non-strings skipped).
pub(crate) fn str_list(v: &Value, name: &str) -> Vec<String> {
    set(v, name).and_then(Value::as_list).unwrap_or_default().iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
}

/// A map-of-strings attribute, sorted by key.
pub(crate) fn str_map(v: &Value, name: &str) -> Vec<(String, String)> {
    set(v, name)
        .and_then(Value::as_map)
        .into_iter()
        .flatten()
        .map(|(k, x)| (k.clone(), x.to_template_string().unwrap_or_default()))
        .collect()
}

/// A file-system-safe name for an address: `job.train` → `train`, `job.t["a b"]` → `t-a-b`.
pub(crate) fn slug(address: &str, kind: &str) -> String {
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

/// `SLUG-TOKEN8`: the address made file-safe, and the start of the create's token.
pub(crate) fn object_id(address: &str, kind: &str, token: &str) -> String {
    let t: String = token.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    format!("{}-{t}", slug(address, kind))
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) fn now() -> String {
    rfc3339(SystemTime::now())
}

/// Seconds since the epoch as RFC 3339.
pub(crate) fn from_epoch(secs: u64) -> String {
    rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// An error about one resource.
pub(crate) fn error(code: &'static str, address: &str, summary: impl Into<String>) -> Diagnostic {
    Diagnostic::error(code, summary).address(address)
}

/// A read (or recover, or import) that failed.
pub(crate) fn read_error(d: Diagnostic) -> ReadResult {
    ReadResult { state: None, diagnostics: d.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_ids() {
        assert_eq!(slug("job.train[0]", "job"), "train-0");
        assert_eq!(slug("module.m.cluster.c[\"a b\"]", "cluster"), "m-c-a-b");
        assert_eq!(object_id("cluster.gpu", "cluster", "3f2a9c1d-aaaa"), "gpu-3f2a9c1d");
    }

    #[test]
    fn numbers() {
        assert_eq!(to_u64(&Value::from(3i64)), Some(3));
        assert_eq!(to_u64(&Value::from(-3i64)), None);
        assert_eq!(tenths(23.46).to_string(), "23.5");
        assert_eq!(from_epoch(0), "1970-01-01T00:00:00Z");
    }
}
