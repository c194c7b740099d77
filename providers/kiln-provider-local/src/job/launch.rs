//! Starting a job's nodes: one detached process group per node (`process_group(0)`, stdin from
//! /dev/null, output appended to `node-RANK.log`), each running a bash wrapper that runs
//! `setup.sh` then `run.sh` in the working directory and records the exit code in
//! `node-RANK.exit` (written atomically, before the process ends).

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::job::dir::JobDir;
use crate::job::spec::JobSpec;
use crate::procs::signal_group;

/// `$1` is the job directory, `$2` the node rank.
const WRAPPER: &str = r#"dir="$1"; rank="$2"
finish() { printf '%s\n' "$1" > "$dir/node-$rank.exit.tmp" && mv -f "$dir/node-$rank.exit.tmp" "$dir/node-$rank.exit"; exit "$1"; }
bash "$dir/setup.sh" || finish "$?"
bash "$dir/run.sh"
finish "$?"
"#;

/// Writes the scripts, makes the checkpoint directory and starts every node. On failure the
/// nodes already started are killed. Returns their process group IDs.
pub(crate) fn start(dir: &JobDir, spec: &JobSpec, job_id: &str, checkpoint_dir: &Path) -> Result<Vec<u32>, String> {
    if !spec.workdir.is_dir() {
        return Err(format!("the working directory {} does not exist", spec.workdir.display()));
    }
    let prepared = std::fs::write(dir.path().join("setup.sh"), &spec.setup)
        .and_then(|()| std::fs::write(dir.path().join("run.sh"), &spec.run))
        .and_then(|()| std::fs::create_dir_all(checkpoint_dir));
    prepared.map_err(|e| format!("cannot prepare {}: {e}", dir.path().display()))?;
    let port = free_port().map_err(|e| format!("cannot find a free port: {e}"))?;
    let mut pids = Vec::new();
    for rank in 0..spec.nodes {
        match spawn_node(dir, spec, rank, &spec.node_env(job_id, rank, port, checkpoint_dir)) {
            Ok(pid) => pids.push(pid),
            Err(e) => {
                pids.iter().for_each(|p| signal_group(*p, "KILL"));
                return Err(format!("cannot start node {rank}: {e}"));
            }
        }
    }
    Ok(pids)
}

fn spawn_node(dir: &JobDir, spec: &JobSpec, rank: u64, env: &[(String, String)]) -> std::io::Result<u32> {
    let log = OpenOptions::new().create(true).append(true).open(dir.file(rank, "log"))?;
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(WRAPPER)
        .arg("kiln-node")
        .arg(dir.path())
        .arg(rank.to_string())
        .current_dir(&spec.workdir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()?;
    let pid = child.id();
    std::fs::write(dir.file(rank, "pid"), format!("{pid}\n"))?;
    // Reap the process if it ends while this kiln still runs; after kiln exits, init does.
    std::thread::spawn(move || child.wait());
    Ok(pid)
}

/// A TCP port free on 127.0.0.1 right now, for KILN_MASTER_PORT.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
