//! Starting a job's nodes: one detached process group per node (`process_group(0)`, output
//! appended to `node-RANK.log`), each running a bash wrapper that runs `setup.sh` then `run.sh`
//! in the working directory and records the exit code in `node-RANK.exit` (written atomically,
//! before the process ends).
//!
//! A launch survives kiln being killed at any point: every node starts *held*, reading its
//! stdin (a pipe only this kiln writes to), and runs nothing of the user's until kiln has
//! written its `node-RANK.pid` and sends `go`. Should kiln die before that, the pipe closes, the
//! wrapper reads end-of-file and exits, so no node ever runs unrecorded. Every node also
//! carries [`IDENTITY`] (the job's directory) in its environment, by which recovery and destroy
//! find a job's processes even where a pid file is missing.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};

use crate::job::dir::JobDir;
use crate::job::spec::JobSpec;
use crate::procs::{groups_with_env, signal_group};

/// The environment variable naming a node's job directory; set after the user's `env`, so it
/// cannot be overridden.
pub(crate) const IDENTITY: &str = "KILN_LOCAL_JOB_DIR";

/// Test hook: milliseconds to wait between starting a node and writing its pid file, to aim a
/// kill at that moment (the crash tests set it; nothing else should). Debug builds only.
const PAUSE_HOOK: &str = "KILN_TEST_LAUNCH_PAUSE_MS";

/// `$1` is the job directory, `$2` the node rank. Held until `go` arrives on stdin. Keeps the
/// log's time index `node-RANK.idx` while the node runs ([`kiln_provider::logs`]).
const WRAPPER: &str = concat!(
    kiln_provider::log_indexer!(),
    r#"dir="$1"; rank="$2"; cpus="$3"
IFS= read -r go || exit 111
[ "$go" = go ] || exit 111
exec </dev/null
if [ -f "$dir/secret_env.sh" ]; then . "$dir/secret_env.sh" || exit 113; fi
kiln_log_index "$dir/node-$rank.log" "$dir/node-$rank.idx" & kiln_ix=$!
finish() {
  kill $kiln_ix 2>/dev/null; wait $kiln_ix 2>/dev/null; kiln_log_sample "$dir/node-$rank.log" "$dir/node-$rank.idx"
  printf '%s\n' "$1" > "$dir/node-$rank.exit.tmp" && mv -f "$dir/node-$rank.exit.tmp" "$dir/node-$rank.exit"; exit "$1"
}
if [ -n "$cpus" ]; then
  taskset -pc "$cpus" $$ >/dev/null || { echo "kiln: cannot give this node CPUs $cpus (taskset)" >&2; finish 112; }
fi
bash "$dir/setup.sh" || finish "$?"
bash "$dir/run.sh"
finish "$?"
"#
);

/// `KILN_LOCAL_JOB_DIR=DIR`, as it appears in the environment of the job's processes.
pub(crate) fn identity(dir: &JobDir) -> String {
    format!("{IDENTITY}={}", dir.path().display())
}

/// The process groups of live processes carrying the job's identity.
pub(crate) fn marked_groups(dir: &JobDir) -> Vec<u32> {
    groups_with_env(&identity(dir))
}

/// Writes the scripts, makes the checkpoint directory and starts every node: all held until
/// each has its pid file, then released together. On failure the nodes already started are
/// killed (held ones would end by themselves). Returns their process group IDs.
pub(crate) fn start(dir: &JobDir, spec: &JobSpec, job_id: &str, checkpoint_dir: &Path) -> Result<Vec<u32>, String> {
    if !spec.workdir.is_dir() {
        return Err(format!("the working directory {} does not exist", spec.workdir.display()));
    }
    let prepared = std::fs::write(dir.path().join("setup.sh"), &spec.setup)
        .and_then(|()| std::fs::write(dir.path().join("run.sh"), &spec.run))
        .and_then(|()| std::fs::create_dir_all(checkpoint_dir));
    prepared.map_err(|e| format!("cannot prepare {}: {e}", dir.path().display()))?;
    let port = free_port().map_err(|e| format!("cannot find a free port: {e}"))?;
    let mut held: Vec<(u32, ChildStdin)> = Vec::new();
    let fail = |held: &[(u32, ChildStdin)], e: String| {
        held.iter().for_each(|(p, _)| signal_group(*p, "KILL"));
        Err(e)
    };
    for rank in 0..spec.nodes {
        match spawn_node(dir, spec, rank, &spec.node_env(job_id, rank, port, checkpoint_dir)) {
            Ok(node) => held.push(node),
            Err(e) => return fail(&held, format!("cannot start node {rank}: {e}")),
        }
    }
    let pids: Vec<u32> = held.iter().map(|(p, _)| *p).collect();
    for (rank, (_, stdin)) in held.iter_mut().enumerate() {
        if let Err(e) = stdin.write_all(b"go\n").and_then(|()| stdin.flush()) {
            return fail(&held, format!("cannot release node {rank}: {e}"));
        }
    }
    Ok(pids)
}

/// Starts node `rank` held and records its pid; returns the pid and the pipe that releases it.
fn spawn_node(dir: &JobDir, spec: &JobSpec, rank: u64, env: &[(String, String)]) -> std::io::Result<(u32, ChildStdin)> {
    let log = OpenOptions::new().create(true).append(true).open(dir.file(rank, "log"))?;
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(WRAPPER)
        .arg("kiln-node")
        .arg(dir.path())
        .arg(rank.to_string())
        .arg(spec.node_cpus.get(rank as usize).map_or_else(String::new, |slots| node_cpus(slots)))
        .current_dir(&spec.workdir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(IDENTITY, dir.path())
        .stdin(Stdio::piped())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()?;
    let pid = child.id();
    let stdin = child.stdin.take().expect("stdin is piped");
    // Reap the process if it ends while this kiln still runs; after kiln exits, init does.
    std::thread::spawn(move || child.wait());
    if let Some(ms) = std::env::var(PAUSE_HOOK).ok().filter(|_| cfg!(debug_assertions)).and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let recorded = write_pid(dir, rank, pid);
    if recorded.is_err() {
        signal_group(pid, "KILL");
    }
    recorded.map(|()| (pid, stdin))
}

/// The CPUs a node's slots name on this machine, as taskset takes them ("4,5"): `slots`
/// ("0-1", from the cluster's `cpu_sets`) are positions among the CPUs this process may use.
fn node_cpus(slots: &str) -> String {
    let allowed = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(|l| cpu_list(l.trim())));
    let positions = cpu_list(slots);
    match allowed {
        Some(a) if !positions.is_empty() && positions.iter().all(|p| (*p as usize) < a.len()) => {
            positions.iter().map(|p| a[*p as usize].to_string()).collect::<Vec<_>>().join(",")
        }
        _ => slots.to_string(),
    }
}

/// "0-3,8" → [0, 1, 2, 3, 8].
fn cpu_list(s: &str) -> Vec<u64> {
    s.split(',')
        .filter_map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            Some(a.trim().parse::<u64>().ok()?..=b.trim().parse::<u64>().ok()?)
        })
        .flatten()
        .collect()
}

/// `node-RANK.pid`, written atomically and synced before the node may run.
fn write_pid(dir: &JobDir, rank: u64, pid: u32) -> std::io::Result<()> {
    let path = dir.file(rank, "pid");
    let tmp = dir.file(rank, "pid.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(format!("{pid}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

/// A TCP port free on 127.0.0.1 right now, for KILN_MASTER_PORT.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procs::ProcTable;
    use crate::Ctx;
    use std::time::{Duration, Instant};

    fn spec(workdir: &Path, run: &str) -> JobSpec {
        JobSpec {
            nodes: 1,
            node_gpus: vec![vec![]],
            gpus_per_node: 0,
            node_cpus: Vec::new(),
            checkpoint_dir: None,
            checkpoint_uri: None,
            workdir: workdir.to_path_buf(),
            env: Vec::new(),
            setup: String::new(),
            run: run.to_string(),
            stop_grace: Duration::from_secs(1),
        }
    }

    fn wait_dead(pid: u32) {
        let start = Instant::now();
        while ProcTable::snapshot().group_alive(pid) {
            assert!(start.elapsed() < Duration::from_secs(60), "node {pid} never ended");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Issue 10, defect 2: a kiln killed after starting a node but before releasing it (its
    /// pipe closes, as here) leaves no node running the user's command.
    #[test]
    fn a_node_never_released_runs_nothing_and_ends() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = Ctx::new(tmp.path().to_path_buf(), tmp.path().join(".kiln"));
        let dir = JobDir::new(&ctx, "held-1");
        std::fs::create_dir_all(dir.path()).unwrap();
        let ran = tmp.path().join("ran");
        let s = spec(tmp.path(), &format!("touch {}; sleep 300", ran.display()));
        std::fs::write(dir.path().join("run.sh"), &s.run).unwrap();
        std::fs::write(dir.path().join("setup.sh"), "").unwrap();
        let (pid, stdin) = spawn_node(&dir, &s, 0, &[]).unwrap();
        assert_eq!(dir.pid(0), Some(pid), "the pid file is written before the node may run");
        let start = Instant::now();
        while marked_groups(&dir).is_empty() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(marked_groups(&dir), vec![pid], "the held node carries the job's identity");
        drop(stdin);
        wait_dead(pid);
        assert!(!ran.exists(), "the user's command never ran");
    }

    #[test]
    fn released_nodes_run() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = Ctx::new(tmp.path().to_path_buf(), tmp.path().join(".kiln"));
        let dir = JobDir::new(&ctx, "go-1");
        std::fs::create_dir_all(dir.path()).unwrap();
        let ran = tmp.path().join("ran");
        let s = spec(tmp.path(), &format!("touch {}", ran.display()));
        let pids = start(&dir, &s, "go-1", &tmp.path().join("ckpt")).unwrap();
        wait_dead(pids[0]);
        assert!(ran.exists(), "a released node runs its command");
        assert_eq!(std::fs::read_to_string(dir.file(0, "exit")).unwrap().trim(), "0");
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list("0-3,8"), vec![0, 1, 2, 3, 8]);
        assert_eq!(cpu_list("5"), vec![5]);
        assert!(cpu_list("").is_empty());
    }
}
