//! Waiting for jobs (`apply --wait`, `kiln run`): polling every job until it ends, holding no
//! lock (a training run lasts days; others plan meanwhile), with each job's status changes, a
//! periodic "Still running..." line with its elapsed time and last log line (read from the last
//! few KiB of its log), and, when asked, every node's output as it comes, prefixed by job and
//! node (from its start for a job the apply created or replaced, else from where its log ends
//! when the wait starts; a few of the provider's chunks per node per poll); a job that did not
//! succeed is an error naming it, its failed nodes, their exit codes and the last lines of their
//! logs. Nothing here prints: the lines go to the caller's [`WatchOutput`]. Jobs are resources of the portable
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

use crate::logs::{last_line, node_count, Lines};

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
                j.read_logs(p, out).await;
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
                    j.read_last_lines(p).await;
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
    /// This run created or replaced it: its output is streamed from the start (else from the
    /// end of its log as it is when the wait starts: a job running for days has GBs of it).
    from_start: bool,
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
    /// Where the next read starts (`None`: not known yet).
    offset: Option<u64>,
    /// The line still being written.
    lines: Lines,
    /// The last non-empty line read.
    last: Option<String>,
}

impl Watched {
    /// `from_start`: this run created or replaced the job (its output streams from its start;
    /// else from where its log ends now).
    pub fn new(addr: InstanceAddr, provider: &str, kind: &str, value: Value, from_start: bool) -> Self {
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
            from_start,
            gone: false,
        }
    }

    /// Whether the wait for it is over: a terminal status, or gone.
    fn ended(&self) -> bool {
        self.gone || terminal(&self.latest)
    }

    /// How many nodes the job has ([`node_count`]).
    fn nodes(&self) -> usize {
        node_count(&self.value)
    }

    /// The job's provider (`None` when the configuration no longer has it).
    fn provider(&self, p: &Providers) -> Option<Arc<dyn Provider>> {
        p.get(&self.provider)
    }

    /// Reads every node's new output (at most [`READ_CHUNKS`] of the provider's chunks of each
    /// at a time); gives it to `out`, each line prefixed by job and node; remembers each node's
    /// last line.
    async fn read_logs(&mut self, p: &Providers, out: &dyn WatchOutput) {
        if let Some(provider) = self.provider(p) {
            self.read_logs_of(provider.as_ref(), out).await;
        }
    }

    async fn read_logs_of(&mut self, provider: &dyn Provider, out: &dyn WatchOutput) {
        let n = if self.all_nodes { 1 } else { self.nodes() };
        self.logs.resize_with(n.max(self.logs.len()), NodeLog::default);
        for node in 0..n {
            let offset = match self.logs[node].offset {
                Some(o) => o,
                None if self.from_start => 0,
                None => match end_of(provider, &self.name, &self.kind, &self.value, node).await {
                    Some(o) => o,
                    None => continue,
                },
            };
            let read = read_from(provider, &self.name, &self.kind, &self.value, node, offset).await;
            self.logs[node].offset = Some(read.offset);
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
            let lines = log.lines.push(&prefix, &read.data);
            if let Some(line) = last_line(&read.data) {
                log.last = Some(line);
            }
            if !lines.is_empty() {
                out.output(&String::from_utf8_lossy(&lines));
            }
        }
    }

    /// Each node's last line, read from near the end of its log (without streaming).
    async fn read_last_lines(&mut self, p: &Providers) {
        let Some(provider) = self.provider(p) else { return };
        let n = if self.all_nodes { 1 } else { self.nodes() };
        self.logs.resize_with(n.max(self.logs.len()), NodeLog::default);
        for node in 0..n {
            let (data, all_nodes) = end_window(provider.as_ref(), &self.name, &self.kind, &self.value, node, LAST_LINE_WINDOW).await;
            if let Some(line) = last_line(&data) {
                self.logs[node].last = Some(line);
            }
            if all_nodes {
                self.all_nodes = true;
                self.logs.truncate(1);
                break;
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
            let rest = log.lines.finish(&prefix(&self.name, self.all_nodes, node));
            if !rest.is_empty() {
                out.output(&String::from_utf8_lossy(&rest));
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

/// How many of the provider's chunks one [`read_from`] reads at most: a log written faster
/// than it is read is read on at the next poll, never without end.
const READ_CHUNKS: usize = 4;

/// The output of `node` from `offset` on, at most [`READ_CHUNKS`] of the provider's chunks, and
/// the offset after it. A log that cannot be read reads as empty (the wait goes on; `kiln logs`
/// says why).
async fn read_from(provider: &dyn Provider, name: &str, kind: &str, state: &Value, node: usize, mut offset: u64) -> Log {
    let mut data = Vec::new();
    let mut all_nodes = false;
    for _ in 0..READ_CHUNKS {
        let resp = provider.logs(LogsRequest { address: name, kind, state, node, offset, seek: None }).await;
        all_nodes |= resp.all_nodes;
        if resp.diagnostics.has_errors() || resp.data.is_empty() {
            break;
        }
        data.extend_from_slice(&resp.data);
        offset = resp.next_offset;
    }
    Log { data, offset, all_nodes }
}

/// Where `node`'s log ends now (`None` when the provider cannot say).
async fn end_of(provider: &dyn Provider, name: &str, kind: &str, state: &Value, node: usize) -> Option<u64> {
    let end = provider.logs(LogsRequest { address: name, kind, state, node, offset: 0, seek: Some(LogSeek::End) }).await;
    (!end.diagnostics.has_errors()).then_some(end.next_offset)
}

/// At most the last `window` bytes of `node`'s log as it ends now, from a line start (of a
/// provider that cannot say where its log ends: the end of its first [`READ_CHUNKS`] chunks),
/// and whether it holds every node's output.
async fn end_window(provider: &dyn Provider, name: &str, kind: &str, state: &Value, node: usize, window: u64) -> (Vec<u8>, bool) {
    let start = end_of(provider, name, kind, state, node).await.map_or(0, |e| e.saturating_sub(window));
    let log = read_from(provider, name, kind, state, node, start).await;
    let mut data = log.data;
    let over = data.len().saturating_sub(window as usize);
    data.drain(..over);
    if start > 0 || over > 0 {
        // Started within a line: leave out its end.
        let cut = data.iter().position(|b| *b == b'\n').map_or(data.len(), |i| i + 1);
        data.drain(..cut);
    }
    (data, log.all_nodes)
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

/// How far before its end a running job's log is read for its last line.
const LAST_LINE_WINDOW: u64 = 4 * 1024;

/// The last [`TAIL_LINES`] lines of `node`'s log (read from near its end where the provider can
/// tell where that is).
async fn tail(provider: &dyn Provider, name: &str, kind: &str, state: &Value, node: usize) -> Vec<String> {
    let (data, _) = end_window(provider, name, kind, state, node, TAIL_BYTES).await;
    let text = String::from_utf8_lossy(&data);
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
pub fn elapsed_text(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// A log written without end, faster than it is read: each read answers a chunk of lines
    /// and the log has grown by more meanwhile; it began long ago (`HISTORY` bytes).
    pub(crate) struct Endless {
        reads: std::sync::atomic::AtomicU64,
        history: u64,
    }

    const HISTORY: u64 = 1 << 30;
    const CHUNK: u64 = 1000;

    impl Endless {
        fn new() -> Self {
            Endless::with_history(HISTORY)
        }

        pub(crate) fn with_history(history: u64) -> Self {
            Endless { reads: 0.into(), history }
        }

        pub(crate) fn reads(&self) -> u64 {
            self.reads.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[kiln_provider::async_trait]
    impl Provider for Endless {
        fn schema(&self) -> kiln_schema::ProviderSchema {
            kiln_schema::ProviderSchema { config: Default::default(), kinds: Default::default(), data_kinds: Default::default() }
        }
        async fn create(&self, _: kiln_provider::CreateRequest<'_>) -> kiln_provider::ApplyResponse {
            unreachable!("only logs are read")
        }
        async fn update(&self, _: kiln_provider::UpdateRequest<'_>) -> kiln_provider::ApplyResponse {
            unreachable!("only logs are read")
        }
        async fn delete(&self, _: kiln_provider::DeleteRequest<'_>) -> kiln_diag::Diagnostics {
            unreachable!("only logs are read")
        }
        async fn read(&self, _: kiln_provider::ReadRequest<'_>) -> kiln_provider::ReadResponse {
            unreachable!("only logs are read")
        }
        async fn recover(&self, _: kiln_provider::RecoverRequest<'_>) -> kiln_provider::ReadResult {
            unreachable!("only logs are read")
        }
        async fn import(&self, _: kiln_provider::ImportRequest<'_>) -> kiln_provider::ReadResult {
            unreachable!("only logs are read")
        }
        async fn logs(&self, req: LogsRequest<'_>) -> kiln_provider::LogsResponse {
            let n = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            // The log's size now: it grows by two chunks between reads.
            let size = self.history + 2 * CHUNK * n;
            let (data, next_offset) = match req.seek {
                Some(_) => (Vec::new(), size),
                None => {
                    // Lines `history NNNNNNN\n` (16 bytes) before the wait, `new NNNNNNNNNNNN\n` after.
                    let word: &[u8] = if req.offset < self.history { b"history 0000000\n" } else { b"new 00000000000\n" };
                    let data: Vec<u8> = word.iter().copied().cycle().skip((req.offset % 16) as usize).take(CHUNK as usize).collect();
                    (data, req.offset + CHUNK)
                }
            };
            kiln_provider::LogsResponse { data, next_offset, finished: false, all_nodes: false, diagnostics: Default::default() }
        }
    }

    #[derive(Default)]
    struct Collect(std::sync::Mutex<String>);

    impl WatchOutput for Collect {
        fn status(&self, _: &str) {}
        fn output(&self, text: &str) {
            self.0.lock().unwrap().push_str(text);
        }
        fn progress(&self, _: &str) {}
    }

    fn running_job() -> Watched {
        let value = Value::Map([("status".to_string(), Value::from("running"))].into());
        Watched::new("job.train".parse().unwrap(), "fake", "job", value, false)
    }

    /// Against a log written faster than it is read, one read ends after a few chunks.
    #[tokio::test]
    async fn a_read_ends_against_a_fast_writer() {
        let p = Endless::new();
        let log = read_from(&p, "job.train", "job", &Value::Null, 0, HISTORY).await;
        assert_eq!(p.reads(), READ_CHUNKS as u64);
        assert_eq!(log.data.len() as u64, READ_CHUNKS as u64 * CHUNK);
        assert_eq!(log.offset, HISTORY + READ_CHUNKS as u64 * CHUNK);
    }

    /// A job the apply did not start streams from where its log ends, not its whole history.
    #[tokio::test]
    async fn a_job_running_before_streams_from_the_end_of_its_log() {
        let p = Endless::new();
        let out = Collect::default();
        let mut j = running_job();
        j.read_logs_of(&p, &out).await;
        let text = out.0.lock().unwrap().clone();
        assert!(!text.is_empty() && !text.contains("history"), "{text}");
        assert!(text.lines().all(|l| l == "job.train[node 0] | new 00000000000"), "{text}");
        assert!(text.lines().count() as u64 <= READ_CHUNKS as u64 * CHUNK / 16, "read a few chunks only");
    }

    /// A job the apply started streams from its start.
    #[tokio::test]
    async fn a_job_started_by_the_apply_streams_from_its_start() {
        let p = Endless::new();
        let out = Collect::default();
        let mut j = running_job();
        j.from_start = true;
        j.read_logs_of(&p, &out).await;
        assert!(out.0.lock().unwrap().starts_with("job.train[node 0] | history 0000000\n"));
    }

    /// The last line a "Still running..." line quotes is read from the end of the log.
    #[tokio::test]
    async fn the_last_line_is_read_from_the_end() {
        let p = Endless::new();
        let (data, _) = end_window(&p, "job.train", "job", &Value::Null, 0, LAST_LINE_WINDOW).await;
        assert!(data.len() as u64 <= LAST_LINE_WINDOW);
        assert_eq!(last_line(&data).as_deref(), Some("new 00000000000"));
    }
}
