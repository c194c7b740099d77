//! Waiting for jobs (`apply --wait`, `kiln run`): polling every job until it ends, holding no
//! lock (a training run lasts days; others plan meanwhile), with each job's status changes, a
//! periodic "Still running..." line with its elapsed time and last log line, and, when asked,
//! every node's output as it comes, prefixed by job and node; a job that did not succeed is an
//! error naming it, its failed nodes, their exit codes and the last lines of their logs. Nothing
//! here prints: the lines go to the caller's [`WatchOutput`]. Jobs are resources of the portable
//! kind `job`; their provider reports `status` (one of [`JobStatus`]), `started_at`,
//! `finished_at`, `nodes` and `exit_codes` as attributes, and serves their logs.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_addrs::InstanceAddr;
use kiln_core::Providers;
use kiln_diag::Diagnostic;
use kiln_provider::portable::job::JobStatus;
use kiln_provider::{LogSeek, LogsRequest, Provider};
use kiln_state::StateBackend;
use kiln_value::Value;

/// Where [`watch`]'s lines go (the CLI's printer).
pub trait WatchOutput: Sync {
    /// A job's status, when it changed (`job.train: running`).
    fn status(&self, line: &str);
    /// Jobs' output as it streams: whole lines, each prefixed by job and node.
    fn output(&self, text: &str);
    /// A "Still running..." line.
    fn progress(&self, line: &str);
}

/// How often jobs are read while waiting.
const POLL: Duration = Duration::from_secs(1);
/// How many of a failed node's last log lines its error shows.
const TAIL_LINES: usize = 20;
/// How many failed nodes of one job get their log lines shown.
const TAIL_NODES: usize = 4;
/// The longest last log line a "Still running..." line quotes.
const LAST_LINE_CHARS: usize = 200;

/// A job's status as `kiln jobs` shows it: "gone" when the provider no longer finds the job.
pub fn status(v: &Option<Value>) -> &str {
    v.as_ref().and_then(|v| v.get("status")).and_then(Value::as_str).unwrap_or("gone")
}

/// Whether a job's status will not change by itself ([`JobStatus::is_terminal`]).
pub fn terminal(v: &Option<Value>) -> bool {
    v.as_ref().and_then(JobStatus::of).is_some_and(JobStatus::is_terminal)
}

pub fn succeeded(v: &Option<Value>) -> bool {
    v.as_ref().and_then(JobStatus::of) == Some(JobStatus::Succeeded)
}

/// Polls until every job is terminal: says status changes, "Still running..." lines and,
/// with `stream`, every node's output.
///
/// No lock is held meanwhile, so another run may destroy or replace a job: one the provider no
/// longer finds is checked against the state as stored, and ends the wait for it when the state
/// no longer has it (a job just created that a provider does not list yet is waited for).
///
/// `read_jobs` reads the current attributes of every job in state from their providers.
#[allow(clippy::too_many_arguments)]
pub async fn watch<R: Future<Output = Vec<(InstanceAddr, Option<Value>)>>>(
    out: &dyn WatchOutput,
    read_jobs: impl Fn() -> R,
    backend: &dyn StateBackend,
    p: &Providers,
    jobs: &mut [Watched],
    stream: bool,
    interval: Duration,
) {
    let start = Instant::now();
    let mut next_progress = start + interval;
    let mut last: Vec<String> = Vec::new();
    loop {
        for (a, v) in read_jobs().await {
            if let Some(j) = jobs.iter_mut().find(|j| j.addr == a) {
                if let Some(v) = &v {
                    j.value = v.clone();
                }
                j.latest = v;
            }
        }
        if jobs.iter().any(|j| j.latest.is_none() && !j.gone) {
            if let Ok(now) = crate::operation::read_state(backend).await {
                for j in jobs.iter_mut().filter(|j| j.latest.is_none()) {
                    let job_id = |v: &Value| v.get("job_id").and_then(Value::as_str).map(str::to_string);
                    let stored = now.resources.get(&j.addr).map(|r| job_id(&r.attributes));
                    j.gone = stored.is_none_or(|id| id != job_id(&j.value));
                }
            }
        }
        let now: Vec<String> = jobs.iter().map(|j| format!("{}: {}", j.name, status(&j.latest))).collect();
        for line in now.iter().filter(|l| !last.contains(l)) {
            out.status(line);
        }
        last = now;
        // Read after the statuses: a job read as ended has written all its output.
        if stream {
            for j in jobs.iter_mut() {
                j.read_logs(p, Some(out)).await;
            }
        }
        if jobs.iter().all(Watched::ended) {
            if stream {
                for j in jobs.iter_mut() {
                    j.flush(out);
                }
            }
            return;
        }
        if Instant::now() >= next_progress {
            for j in jobs.iter_mut().filter(|j| !j.ended()) {
                if !stream {
                    j.read_logs(p, None).await;
                }
                out.progress(&j.still(start.elapsed()));
            }
            next_progress = Instant::now() + interval;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One job being waited on.
pub struct Watched {
    addr: InstanceAddr,
    name: String,
    provider: String,
    kind: String,
    /// Its attributes: the last read, else the state's.
    value: Value,
    /// The last read (`None`: the provider no longer finds it).
    latest: Option<Value>,
    /// Per node: how far its log was read, and what of it is not printed yet.
    logs: Vec<NodeLog>,
    /// The provider keeps one log for every node (read as node 0).
    all_nodes: bool,
    /// Another run destroyed or replaced it while this one waited.
    gone: bool,
}

/// `job.train[node 1] | `, or `job.train | ` for a log of every node.
fn prefix(name: &str, all_nodes: bool, node: usize) -> String {
    if all_nodes {
        format!("{name} | ")
    } else {
        format!("{name}[node {node}] | ")
    }
}

#[derive(Default)]
struct NodeLog {
    offset: u64,
    /// The end of the log after its last newline (a line still being written).
    partial: Vec<u8>,
    /// The last non-empty line read.
    last: Option<String>,
}

impl Watched {
    pub fn new(addr: InstanceAddr, provider: &str, kind: &str, value: Value) -> Self {
        let name = addr.to_string();
        Watched {
            addr,
            name,
            provider: provider.to_string(),
            kind: kind.to_string(),
            latest: Some(value.clone()),
            value,
            logs: Vec::new(),
            all_nodes: false,
            gone: false,
        }
    }

    /// Whether the wait for it is over: a terminal status, or gone.
    fn ended(&self) -> bool {
        self.gone || terminal(&self.latest)
    }

    /// How many nodes the job has (`nodes`; 1 when the provider does not say).
    fn nodes(&self) -> usize {
        self.value.get("nodes").and_then(Value::as_number).and_then(|n| n.to_string().parse().ok()).filter(|n| *n > 0).unwrap_or(1)
    }

    /// The job's provider (`None` when the configuration no longer has it).
    fn provider(&self, p: &Providers) -> Option<Arc<dyn Provider>> {
        p.get(&self.provider)
    }

    /// Reads every node's new output; gives it to `out`, each line prefixed by job and node, when
    /// given one; remembers each node's last line.
    async fn read_logs(&mut self, p: &Providers, out: Option<&dyn WatchOutput>) {
        let Some(provider) = self.provider(p) else { return };
        let n = if self.all_nodes { 1 } else { self.nodes() };
        self.logs.resize_with(n.max(self.logs.len()), NodeLog::default);
        for node in 0..n {
            let read = read_from(provider.as_ref(), &self.name, &self.kind, &self.value, node, self.logs[node].offset).await;
            self.logs[node].offset = read.offset;
            if read.all_nodes && !self.all_nodes {
                // One log for every node (Slurm's): read once, prefixed by the job only.
                self.all_nodes = true;
                self.logs.truncate(1);
            }
            if read.data.is_empty() {
                if self.all_nodes {
                    break;
                }
                continue;
            }
            let prefix = self.prefix(node);
            let log = &mut self.logs[node];
            log.partial.extend_from_slice(&read.data);
            let Some(end) = log.partial.iter().rposition(|b| *b == b'\n') else { continue };
            let rest = log.partial.split_off(end + 1);
            let complete = std::mem::replace(&mut log.partial, rest);
            let text = String::from_utf8_lossy(&complete);
            if let Some(out) = out {
                let mut lines = String::with_capacity(text.len() + 32);
                for line in text.lines() {
                    lines.push_str(&format!("{prefix}{line}\n"));
                }
                out.output(&lines);
            }
            if let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) {
                log.last = Some(line.to_string());
            }
        }
    }

    /// What each streamed line of `node` starts with.
    fn prefix(&self, node: usize) -> String {
        prefix(&self.name, self.all_nodes, node)
    }

    /// Gives `out` what is left of each node's output after its last newline (as a line).
    fn flush(&mut self, out: &dyn WatchOutput) {
        for (node, log) in self.logs.iter_mut().enumerate() {
            if !log.partial.is_empty() {
                out.output(&format!("{}{}\n", prefix(&self.name, self.all_nodes, node), String::from_utf8_lossy(&log.partial)));
                log.partial.clear();
            }
        }
    }

    /// `job.train: Still running... [10m0s elapsed]`, with its last log line.
    fn still(&self, waited: Duration) -> String {
        let started = self.value.get("started_at").and_then(Value::as_str).and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        let elapsed = match started {
            Some(t) => (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).to_std().unwrap_or(waited),
            None => waited,
        };
        let word = status(&self.latest);
        let mut line = format!("{}: Still {word}... [{} elapsed]", self.name, elapsed_text(elapsed));
        if let Some(last) = self.logs.iter().find_map(|l| l.last.as_deref()) {
            let last: String = last.chars().take(LAST_LINE_CHARS).collect();
            line.push_str(&format!("; last output: {last}"));
        }
        line
    }

    /// The error of a job that ended without succeeding: its failed nodes with their exit codes
    /// and last log lines.
    pub async fn failure(&self, p: &Providers) -> Option<Diagnostic> {
        if succeeded(&self.latest) {
            return None;
        }
        if self.gone {
            return Some(
                Diagnostic::error(
                    "E-JOB-GONE",
                    format!("job `{}` is gone: another kiln run destroyed or replaced it while this one waited", self.name),
                )
                .address(&self.name)
                .hint("`kiln jobs` lists the jobs in state now"),
            );
        }
        let status = self.latest.as_ref().and_then(JobStatus::of)?;
        let (code, summary) = match status {
            JobStatus::Failed => ("E-JOB-FAILED", format!("job `{}` failed", self.name)),
            JobStatus::Lost => ("E-JOB-LOST", format!("job `{}` was lost: its nodes stopped before it finished", self.name)),
            JobStatus::Stopped => ("E-JOB-STOPPED", format!("job `{}` was stopped before it finished", self.name)),
            _ => return None,
        };
        let codes: Vec<Option<i64>> = self
            .value
            .get("exit_codes")
            .and_then(Value::as_list)
            .map(|l| l.iter().map(|c| c.as_number().and_then(|n| n.to_string().parse().ok())).collect())
            .unwrap_or_default();
        // The nodes that exited non-zero; without exit codes (or none non-zero), every node.
        let mut failed: Vec<usize> = codes.iter().enumerate().filter(|(_, c)| matches!(c, Some(c) if *c != 0)).map(|(i, _)| i).collect();
        if failed.is_empty() {
            failed = (0..self.nodes()).collect();
        }
        let described: Vec<String> = failed
            .iter()
            .map(|n| match codes.get(*n).copied().flatten() {
                Some(c) => format!("node {n} exited with code {c}"),
                None => format!("node {n}"),
            })
            .collect();
        // Rendered after the summary and a colon: each failed node, its exit code and the last
        // lines of its log.
        let mut detail = String::new();
        match self.provider(p) {
            Some(provider) => {
                for (n, what) in failed.iter().zip(&described).take(TAIL_NODES) {
                    let lines = tail(provider.as_ref(), &self.name, &self.kind, &self.value, *n).await;
                    if lines.is_empty() {
                        detail.push_str(&format!("{what}; its log is empty\n"));
                        continue;
                    }
                    detail.push_str(&format!("{what}; the last lines of its log:\n"));
                    for l in lines {
                        detail.push_str(&format!("  | {l}\n"));
                    }
                }
                if failed.len() > TAIL_NODES {
                    detail.push_str(&format!("and {} more: {}\n", failed.len() - TAIL_NODES, described[TAIL_NODES..].join(", ")));
                }
            }
            None => detail = described.join(", "),
        }
        let mut d = Diagnostic::error(code, summary).address(&self.name).hint(format!(
            "`kiln logs {0}` prints its whole log; fix the job and apply, or run it again as it is with `kiln run {0}`",
            self.name
        ));
        if !detail.is_empty() {
            d = d.detail(detail.trim_end().to_string());
        }
        Some(d)
    }
}

/// The output of `node` from `offset` on, read in the provider's chunks, and the offset after it.
/// A log that cannot be read reads as empty (the wait goes on; `kiln logs` says why).
async fn read_from(provider: &dyn Provider, name: &str, kind: &str, state: &Value, node: usize, mut offset: u64) -> Log {
    let mut data = Vec::new();
    let mut all_nodes = false;
    loop {
        let resp = provider.logs(LogsRequest { address: name, kind, state, node, offset, seek: None }).await;
        all_nodes |= resp.all_nodes;
        if resp.diagnostics.has_errors() || resp.data.is_empty() {
            return Log { data, offset, all_nodes };
        }
        data.extend_from_slice(&resp.data);
        offset = resp.next_offset;
    }
}

/// What [`read_from`] read.
struct Log {
    data: Vec<u8>,
    /// Where the next read starts.
    offset: u64,
    /// The log holds every node's output (there is no log per node).
    all_nodes: bool,
}

/// How far before its end a failed node's log is read for its last lines.
const TAIL_BYTES: u64 = 64 * 1024;

/// The last [`TAIL_LINES`] lines of `node`'s log (read from near its end where the provider can
/// tell where that is).
async fn tail(provider: &dyn Provider, name: &str, kind: &str, state: &Value, node: usize) -> Vec<String> {
    let end = provider.logs(LogsRequest { address: name, kind, state, node, offset: 0, seek: Some(LogSeek::End) }).await;
    let start = if end.diagnostics.has_errors() { 0 } else { end.next_offset.saturating_sub(TAIL_BYTES) };
    let log = read_from(provider, name, kind, state, node, start).await;
    let mut text = String::from_utf8_lossy(&log.data).into_owned();
    if start > 0 {
        // Started within a line: leave out its end.
        text = text.split_once('\n').map(|(_, rest)| rest.to_string()).unwrap_or_default();
    }
    let mut lines: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES + 1);
    for l in text.lines() {
        lines.push_back(l.to_string());
        if lines.len() > TAIL_LINES {
            lines.pop_front();
        }
    }
    lines.into()
}

/// A duration as Terraform's progress lines write it: `45s`, `10m0s`, `2h3m0s`.
fn elapsed_text(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_reads_as_terraforms() {
        assert_eq!(elapsed_text(Duration::from_secs(45)), "45s");
        assert_eq!(elapsed_text(Duration::from_secs(600)), "10m0s");
        assert_eq!(elapsed_text(Duration::from_secs(2 * 3600 + 180 + 7)), "2h3m7s");
    }

    fn job(status: &str) -> Option<Value> {
        Some(Value::Map([("status".to_string(), Value::from(status))].into()))
    }

    /// `apply --wait` stops waiting on the statuses that do not change by themselves.
    #[test]
    fn waiting_ends_on_terminal_statuses() {
        let ends: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).filter(|s| terminal(&job(s))).collect();
        assert_eq!(ends, ["succeeded", "failed", "lost", "stopped"]);
        assert!(!terminal(&None), "a job read as gone keeps the wait going, as before");
        assert!(!terminal(&job("done")), "a word outside the vocabulary is not terminal");
        assert!(succeeded(&job("succeeded")) && !succeeded(&job("lost")) && !succeeded(&None));
        assert_eq!(status(&None), "gone");
    }
}
