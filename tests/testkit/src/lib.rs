//! Test-only helpers shared by kiln's test suites (a dev-dependency, never published).
//!
//! [`moto`] starts the project's AWS API emulator (`tests/harness/moto/kiln_moto.py`) once per
//! test process and drives its test-control endpoints; the aws provider's tests, the S3 state
//! backend's tests and the binary's end-to-end tests all use it. [`when_this_process_exits`]
//! cleans up what a harness script started (sshd hosts, a Slurm cluster), however tests end.
//! [`fuzz`] holds what the fuzz suites share.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub mod fuzz;
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

/// Runs the bash `command` once this process has gone, whatever way it ends (a panic, a
/// failed assertion, SIGKILL): a detached watcher in its own process group polls this PID.
/// `what` says what it cleans up, for the panic when the watcher cannot start.
// The watcher must outlive this process, so it is never waited for.
#[allow(clippy::zombie_processes)]
pub fn when_this_process_exits(command: &str, what: &str) {
    let watch = format!("while kill -0 {} 2>/dev/null; do sleep 0.5; done; {command}", std::process::id());
    Command::new("bash")
        .arg("-c")
        .arg(watch)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the process that {what} at exit: {e}"));
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
