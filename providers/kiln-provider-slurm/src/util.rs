//! Small helpers shared by the kinds.

pub(crate) use kiln_provider::util::{attrs, bool_attr, error, num, read_error, set, slug, str_attr, str_list, to_u64, u64_attr};
use kiln_value::Value;

/// An error about `what` of the object at `address`; without an address (validation, where
/// the engine adds the address and the block's position) the summary is `what` alone.
pub(crate) fn problem(code: &'static str, address: &str, what: String) -> kiln_diag::Diagnostic {
    if address.is_empty() {
        kiln_diag::Diagnostic::error(code, what)
    } else {
        error(code, address, format!("{address}: {what}"))
    }
}

/// A string value, or null.
pub(crate) fn opt_str(s: Option<&str>) -> Value {
    s.map_or(Value::Null, Value::from)
}

/// `SLUG-TOKEN8`: the address made file-safe, and the start of the create's token.
pub(crate) fn object_id(address: &str, kind: &str, token: &str) -> String {
    let t: String = token.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    format!("{}-{t}", slug(address, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(object_id("job.train[0]", "job", "3f2a9c1d-aaaa"), "train-0-3f2a9c1d");
    }
}
