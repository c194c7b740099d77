//! Processes: a snapshot of this machine's process table (from `/proc`, or `ps` where there is
//! none) to tell whether a process or a process group still lives (zombies count as dead), and
//! the parsers of `/proc/PID/stat`, `/proc/PID/environ` and `ps` output.

use std::process::Command;

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

    /// Every process of the snapshot.
    pub fn procs(&self) -> &[Proc] {
        &self.0
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn this_process_is_alive() {
        let t = ProcTable::snapshot();
        assert!(t.alive(std::process::id()));
        assert!(t.procs().iter().any(|p| p.pid == std::process::id()));
    }
}
