//! Small helpers shared by the kinds: reading attributes out of values, building values, names
//! derived from addresses and tokens, kiln's ownership tags, and diagnostics.

pub(crate) use kiln_provider::util::{attrs, bool_attr, error, num, read_error, set, str_attr, str_list, strings, u64_attr};
use kiln_value::{Map, Value};

/// Tag naming the kiln address an AWS object belongs to.
pub const TAG_ADDRESS: &str = "kiln:address";
/// Tag holding the idempotency token of the create that made an object.
pub const TAG_TOKEN: &str = "kiln:token";
/// Tag holding an instance's node rank within its cluster.
pub const TAG_NODE: &str = "kiln:node";

pub(crate) fn is_unknown(v: &Value, name: &str) -> bool {
    v.get(name).is_some_and(Value::is_unknown)
}

/// A `map(string)` attribute as pairs, sorted by key.
pub(crate) fn str_map(v: &Value, name: &str) -> Vec<(String, String)> {
    set(v, name)
        .and_then(Value::as_map)
        .map(|m| m.iter().filter_map(|(k, x)| x.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

/// Builds a map value from pairs.
pub(crate) fn map<const N: usize>(pairs: [(&str, Value); N]) -> Map {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A name part for an address, lower case letters, digits and `-` only:
/// `bucket.ckpt` → `ckpt`, `cluster.train[0]` → `train-0`, `module.m.bucket.my_data` → `m-my-data`.
pub(crate) fn slug(address: &str, kind: &str) -> String {
    let rest = address.replace("module.", "");
    let rest = rest.replacen(&format!("{kind}."), "", 1);
    let mapped: String = rest.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let parts: Vec<&str> = mapped.split('-').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        kind.to_string()
    } else {
        parts.join("-")
    }
}

/// The first 8 alphanumeric characters of a create token, lower case: the suffix of names kiln
/// makes up, so that two creates (two projects, or a replacement) never collide.
pub(crate) fn token_suffix(token: &str) -> String {
    let s: String = token.chars().filter(char::is_ascii_alphanumeric).take(8).collect::<String>().to_ascii_lowercase();
    if s.is_empty() {
        "0".to_string()
    } else {
        s
    }
}

/// `kiln-SLUG-SUFFIX`, with the slug cut so that the whole fits in `max` characters.
pub(crate) fn made_up_name(address: &str, kind: &str, token: &str, max: usize) -> String {
    let suffix = token_suffix(token);
    let room = max.saturating_sub("kiln--".len() + suffix.len());
    let slug: String = slug(address, kind).chars().take(room).collect();
    format!("kiln-{}-{suffix}", slug.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("bucket.ckpt", "bucket"), "ckpt");
        assert_eq!(slug("cluster.train[0]", "cluster"), "train-0");
        assert_eq!(slug("module.m.bucket.My_Data[\"eu west\"]", "bucket"), "m-my-data-eu-west");
    }

    #[test]
    fn made_up_names_fit() {
        assert_eq!(made_up_name("bucket.ckpt", "bucket", "3F2a-91bc-0000", 63), "kiln-ckpt-3f2a91bc");
        let long = made_up_name(&format!("bucket.{}", "x".repeat(100)), "bucket", "abcdef12-3456", 63);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-abcdef12"));
    }
}
