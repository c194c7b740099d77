//! The real Slurm cluster the tests run against: `tests/harness/slurm/start.sh` starts munged,
//! slurmctld and slurmd once per test binary (or finds them running) in `KILN_SLURM_DIR`
//! (default /tmp/kiln-slurm), recording this process as a user; a watcher process releases it
//! when this test binary exits, however it exits, and the daemons stop once no user is left.
//! If Slurm cannot be started the tests fail with the script's output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Harness {
    /// This machine's node name in Slurm (`hostname -s`).
    pub node: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Releases this process's hold on the cluster once it has exited.
fn release_when_done(dir: &Path) {
    let stop = repo_root().join("tests/harness/slurm/stop.sh");
    let command = format!("SLURM_DIR='{}' bash '{}' --release {}", dir.display(), stop.display(), std::process::id());
    kiln_testkit::when_this_process_exits(&command, "releases the Slurm cluster");
}

fn start() -> Harness {
    let dir = PathBuf::from(std::env::var("KILN_SLURM_DIR").unwrap_or_else(|_| "/tmp/kiln-slurm".to_string()));
    let out = Command::new("bash")
        .arg(repo_root().join("tests/harness/slurm/start.sh"))
        .env("SLURM_DIR", &dir)
        .env("KILN_SLURM_HOLDER", std::process::id().to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/harness/slurm/start.sh: {e}"));
    release_when_done(&dir);
    assert!(
        out.status.success(),
        "the Slurm test cluster could not be started (tests/harness/slurm/start.sh needs root, and slurm-wlm and munge or apt-get):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let node = Command::new("hostname").arg("-s").output().expect("hostname");
    Harness { node: String::from_utf8_lossy(&node.stdout).trim().to_string() }
}

/// The cluster, started on first use.
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(start)
}

/// Runs a Slurm command on this machine (to check what the provider did, independently of it).
pub fn slurm(args: &[&str]) -> String {
    harness();
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The job's state as `squeue` shows it (empty once Slurm forgot it).
pub fn squeue_state(job_id: &str) -> String {
    slurm(&["squeue", "-h", "--states=all", "-j", job_id, "-o", "%T"]).trim().to_string()
}
