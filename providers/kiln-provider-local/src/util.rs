//! Small helpers shared by the kinds: reading attributes out of values, names derived from
//! addresses, paths and `file://` URIs, timestamps, diagnostics.

use std::path::{Path, PathBuf};
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

/// A number with one decimal, from a float.
pub(crate) fn tenths(x: f64) -> Value {
    Value::Number(Decimal::new((x * 10.0).round() as i64, 1).normalize())
}

pub(crate) fn num(n: u64) -> Value {
    Value::Number(Decimal::from(n))
}

/// A file-system-safe name for an address: `bucket.ckpt` → `ckpt`, `job.train[0]` → `train-0`,
/// `module.m.bucket.b["eu"]` → `m-b-eu`.
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

/// `p` made absolute against `base` (no symlink resolution).
pub(crate) fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// `file:///abs/path`, percent-encoding what URIs do not allow.
pub(crate) fn file_uri(path: &Path) -> String {
    let mut out = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) fn now() -> String {
    rfc3339(SystemTime::now())
}

/// An error about one resource.
pub(crate) fn error(code: &'static str, address: &str, summary: impl Into<String>) -> Diagnostic {
    Diagnostic::error(code, summary).address(address)
}

/// A file-system operation on `path` failed.
pub(crate) fn io_error(code: &'static str, address: &str, what: &str, path: &Path, e: impl std::fmt::Display) -> Diagnostic {
    error(code, address, format!("{address}: cannot {what} {}: {e}", path.display()))
}

/// A read (or recover, or import) that failed.
pub(crate) fn read_error(d: Diagnostic) -> ReadResult {
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
    fn uris() {
        assert_eq!(file_uri(Path::new("/tmp/a b/c")), "file:///tmp/a%20b/c");
    }

    #[test]
    fn numbers() {
        assert_eq!(to_u64(&Value::from(3i64)), Some(3));
        assert_eq!(to_u64(&Value::from(-3i64)), None);
        assert_eq!(tenths(23.5).to_string(), "23.5");
        assert_eq!(tenths(16.0).to_string(), "16");
    }
}
