//! Test-only helpers shared by kiln's test suites (a dev-dependency, never published).
//!
//! [`moto`] starts the project's AWS API emulator (`tests/harness/moto/kiln_moto.py`) once per
//! test process and drives its test-control endpoints; the aws provider's tests, the S3 state
//! backend's tests and the binary's end-to-end tests all use it.

use std::path::{Path, PathBuf};

pub mod moto;

/// The workspace root: the nearest directory at or above this crate's manifest whose
/// `Cargo.toml` declares `[workspace]`. Panics (a test harness failure) when there is none.
pub fn workspace_root() -> PathBuf {
    let start = Path::new(env!("CARGO_MANIFEST_DIR"));
    start
        .ancestors()
        .find(|dir| std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]")))
        .unwrap_or_else(|| panic!("no Cargo.toml with [workspace] at or above {}", start.display()))
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    #[test]
    fn workspace_root_holds_the_moto_harness() {
        let root = super::workspace_root();
        assert!(root.join("tests/harness/moto/kiln_moto.py").is_file(), "{}", root.display());
        assert!(!root.ends_with("tests/testkit"), "{}", root.display());
    }
}
