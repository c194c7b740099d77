//! Processes: whether a process group still lives (through `kiln_hostinfo`'s snapshot of the
//! process table; zombies count as dead), the process groups whose processes carry an
//! environment entry (a job's identity, which survives a lost pid file), and signals sent to
//! whole process groups with the `kill` command.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use kiln_hostinfo::procs::{environ_has, parse_ps, parse_stat, Proc, ProcTable};

/// Whether any live process remains in process group `pgid`.
pub fn group_alive(pgid: u32) -> bool {
    ProcTable::snapshot().group_alive(pgid)
}

/// The process groups (other than this process's own) of the live processes whose initial
/// environment holds exactly `entry` (`NAME=VALUE`), read from `/proc/PID/environ`. Empty where
/// there is no `/proc`; processes of other users cannot be read and are not listed.
pub fn groups_with_env(entry: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let own = ProcTable::snapshot().procs().iter().find(|p| p.pid == std::process::id()).map(|p| p.pgrp);
    let mut groups: Vec<u32> = dir
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter(|e| std::fs::read(e.path().join("environ")).is_ok_and(|env| environ_has(&env, entry)))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|s| parse_stat(&s))
        .filter(|p| !p.zombie && Some(p.pgrp) != own && p.pid != std::process::id())
        .map(|p| p.pgrp)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// Sends `signal` (`TERM`, `KILL`) to every process of group `pgid`.
pub fn signal_group(pgid: u32, signal: &str) {
    // The group may already be gone; that is what we want, so the result does not matter.
    let _ = Command::new("kill").arg(format!("-{signal}")).arg("--").arg(format!("-{pgid}")).stderr(Stdio::null()).status();
}

/// Stops process groups: SIGTERM, up to `grace` for them to exit, then SIGKILL. Returns the
/// groups still alive after that (normally none).
pub async fn stop_groups(groups: &[u32], grace: Duration) -> Vec<u32> {
    let term = live_groups(groups);
    term.iter().for_each(|g| signal_group(*g, "TERM"));
    let left = wait_gone(term, grace).await;
    left.iter().for_each(|g| signal_group(*g, "KILL"));
    wait_gone(left, Duration::from_secs(5)).await
}

fn live_groups(groups: &[u32]) -> Vec<u32> {
    let t = ProcTable::snapshot();
    groups.iter().copied().filter(|g| t.group_alive(*g)).collect()
}

async fn wait_gone(mut groups: Vec<u32>, limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    while !groups.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        groups = live_groups(&groups);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn groups_are_found_by_their_environment() {
        let entry = format!("KILN_PROCS_TEST={}", std::process::id());
        let mut child =
            Command::new("sleep").arg("30").env("KILN_PROCS_TEST", std::process::id().to_string()).process_group(0).spawn().unwrap();
        // The new environment shows in /proc a moment after spawn returns.
        let start = Instant::now();
        let mut found = groups_with_env(&entry);
        while found.is_empty() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(10));
            found = groups_with_env(&entry);
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, vec![child.id()]);
        assert!(groups_with_env(&entry).is_empty(), "a reaped process is gone");
    }
}
