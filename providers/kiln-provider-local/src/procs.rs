//! Processes: a snapshot of the process table (from `/proc`, or `ps` where there is none) to
//! tell whether a process or a process group still lives (zombies count as dead), the process
//! groups whose processes carry an environment entry (a job's identity, which survives a lost
//! pid file), and signals sent to whole process groups with the `kill` command.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One process: its ID, its process group, and whether it is a zombie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub pgrp: u32,
    pub zombie: bool,
}

/// The processes running at one moment.
#[derive(Debug, Clone, Default)]
pub struct ProcTable(Vec<Proc>);

impl ProcTable {
    pub fn snapshot() -> ProcTable {
        match std::fs::read_dir("/proc") {
            Ok(dir) => ProcTable(
                dir.flatten().filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok()).filter_map(|s| parse_stat(&s)).collect(),
            ),
            Err(_) => ProcTable(ps().map(|s| parse_ps(&s)).unwrap_or_default()),
        }
    }

    /// The process exists and is not a zombie.
    pub fn alive(&self, pid: u32) -> bool {
        self.0.iter().any(|p| p.pid == pid && !p.zombie)
    }

    /// The process exists, is not a zombie and leads its own process group, as every job
    /// node does (a PID reused by an unrelated process rarely does).
    pub fn leader_alive(&self, pid: u32) -> bool {
        self.0.iter().any(|p| p.pid == pid && p.pgrp == pid && !p.zombie)
    }

    /// Some process of the group exists and is not a zombie.
    pub fn group_alive(&self, pgid: u32) -> bool {
        self.0.iter().any(|p| p.pgrp == pgid && !p.zombie)
    }
}

/// Whether any live process remains in process group `pgid`.
pub fn group_alive(pgid: u32) -> bool {
    ProcTable::snapshot().group_alive(pgid)
}

/// The process groups (other than this process's own) of the live processes whose initial
/// environment holds exactly `entry` (`NAME=VALUE`), read from `/proc/PID/environ`. Empty where
/// there is no `/proc`; processes of other users cannot be read and are not listed.
pub fn groups_with_env(entry: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let own = ProcTable::snapshot().0.iter().find(|p| p.pid == std::process::id()).map(|p| p.pgrp);
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

/// Whether a `/proc/PID/environ` (NUL-separated entries) holds exactly `entry`.
pub fn environ_has(environ: &[u8], entry: &str) -> bool {
    environ.split(|b| *b == 0).any(|e| e == entry.as_bytes())
}

/// Parses `/proc/PID/stat`: `pid (comm) state ppid pgrp ...`; `comm` may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Proc> {
    let (head, tail) = text.rsplit_once(')')?;
    let pid = head.split_once('(')?.0.trim().parse().ok()?;
    let mut f = tail.split_whitespace();
    let state = f.next()?;
    let _ppid = f.next()?;
    let pgrp = f.next()?.parse().ok()?;
    Some(Proc { pid, pgrp, zombie: state == "Z" || state == "X" })
}

fn ps() -> Option<String> {
    let out = Command::new("ps").args(["-A", "-o", "pid=,pgid=,stat="]).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Parses `ps -A -o pid=,pgid=,stat=`.
pub fn parse_ps(text: &str) -> Vec<Proc> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let pid = f.next()?.parse().ok()?;
            let pgrp = f.next()?.parse().ok()?;
            let zombie = f.next()?.starts_with('Z');
            Some(Proc { pid, pgrp, zombie })
        })
        .collect()
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
    fn stat_lines() {
        let s = "4242 (python3 (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0";
        assert_eq!(parse_stat(s), Some(Proc { pid: 4242, pgrp: 4242, zombie: false }));
        assert_eq!(parse_stat("17 (bash) Z 3 9 9 0").map(|p| p.zombie), Some(true));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn ps_lines() {
        let procs = parse_ps("    1     1 Ss\n  501   500 Z+\nbad line\n");
        assert_eq!(procs, vec![Proc { pid: 1, pgrp: 1, zombie: false }, Proc { pid: 501, pgrp: 500, zombie: true }]);
    }

    #[test]
    fn environ_entries_match_whole() {
        let env = b"A=1\0KILN_LOCAL_JOB_DIR=/x/jobs/t-1\0B=2\0";
        assert!(environ_has(env, "KILN_LOCAL_JOB_DIR=/x/jobs/t-1"));
        assert!(!environ_has(env, "KILN_LOCAL_JOB_DIR=/x/jobs/t"));
        assert!(!environ_has(env, "KILN_LOCAL_JOB_DIR=/x/jobs/t-12"));
    }

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

    #[test]
    fn this_process_is_alive() {
        let t = ProcTable::snapshot();
        assert!(t.alive(std::process::id()));
    }
}
