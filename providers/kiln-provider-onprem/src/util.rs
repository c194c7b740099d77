//! Small helpers shared by the kinds: reading attributes out of values, building values, names
//! derived from addresses, timestamps and diagnostics.

use std::time::SystemTime;

pub(crate) use kiln_provider::util::{
    attrs, bool_attr, error, f64_attr, now, num, read_error, rfc3339, set, slug, str_attr, str_list, strings, tenths, to_u64, u64_attr,
};
use kiln_value::Value;

/// Any attribute among `names` is unknown (or holds an unknown).
pub(crate) fn any_unknown(v: &Value, names: &[&str]) -> bool {
    names.iter().any(|k| v.get(k).is_some_and(Value::contains_unknown))
}

/// A map value from pairs.
pub(crate) fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
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

/// `SLUG-TOKEN8`: the address made file-safe, and the start of the create's token.
pub(crate) fn object_id(address: &str, kind: &str, token: &str) -> String {
    let t: String = token.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    format!("{}-{t}", slug(address, kind))
}

/// Seconds since the epoch as RFC 3339.
pub(crate) fn from_epoch(secs: u64) -> String {
    rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
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
