//! Small helpers shared by the kinds: reading attributes out of values, names derived from
//! addresses, paths and `file://` URIs, timestamps, diagnostics.

use std::path::{Path, PathBuf};

use kiln_diag::Diagnostic;
pub(crate) use kiln_provider::util::{
    attrs, bool_attr, error, f64_attr, now, num, read_error, rfc3339, set, slug, str_attr, tenths, to_u64, u64_attr,
};

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

/// A file-system operation on `path` failed.
pub(crate) fn io_error(code: &'static str, address: &str, what: &str, path: &Path, e: impl std::fmt::Display) -> Diagnostic {
    error(code, address, format!("{address}: cannot {what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(file_uri(Path::new("/tmp/a b/c")), "file:///tmp/a%20b/c");
    }
}
