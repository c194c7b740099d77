//! `apply --wait` and `kiln run`: waiting for jobs after an apply, without the state lock (a
//! training run lasts days; others plan meanwhile), then refreshing state and outputs in a short
//! operation of its own. While waiting: each job's status changes, a periodic "Still
//! running..." line with its elapsed time and last log line (every
//! `KILN_WAIT_PROGRESS_INTERVAL`, 30 s by default), and with `--logs` every node's output as it
//! comes, prefixed by job and node. A job that did not succeed ends the command with an error
//! naming it, its failed nodes, their exit codes and the last lines of their logs.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_addrs::InstanceAddr;
use kiln_core::Providers;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::portable::job::JobStatus;
use kiln_provider::{LogSeek, LogsRequest, Provider};
use kiln_state::{State, StateBackend};
use kiln_value::Value;

use super::apply::apply_plan;
use super::jobs::{configure, read_jobs, status, succeeded, terminal};
use super::{make_plan, plan_request, registry, Ctx, ExitStatus, Failure, Loaded, Printer, R};
use crate::cli::PlanArgs;
use kiln_ops::operation::Session;
use kiln_plan::{Action, Mode};

/// How often "Still running..." is printed when `KILN_WAIT_PROGRESS_INTERVAL` does not say.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(30);
/// How often jobs are read while waiting.
const POLL: Duration = Duration::from_secs(1);
/// How many of a failed node's last log lines its error shows.
const TAIL_LINES: usize = 20;
/// How many failed nodes of one job get their log lines shown.
const TAIL_NODES: usize = 4;
/// The longest last log line a "Still running..." line quotes.
const LAST_LINE_CHARS: usize = 200;

/// Waits (holding no lock) until every job in state has a terminal status, then refreshes state
/// and outputs under the lock again. `stream`: print every node's output as it comes.
pub async fn wait_then_refresh(cx: &Ctx, backend: &Arc<dyn StateBackend>, l: &Loaded, p: &Providers, args: &PlanArgs, stream: bool) -> R {
    let dir = cx.dir();
    let state = kiln_ops::operation::read_state(backend.as_ref()).await?;
    // With --target, only the jobs targeted (`kiln run`'s one job).
    let targets: Vec<kiln_addrs::Target> = args.target.iter().filter_map(|t| t.parse().ok()).collect();
    let mut jobs: Vec<Watched> = state
        .resources
        .iter()
        .filter(|(a, r)| r.kind == "job" && (targets.is_empty() || targets.iter().any(|t| a.matches(t))))
        .map(|(a, r)| Watched::new(a.clone(), &r.provider, &r.kind, r.attributes.clone()))
        .collect();
    if jobs.is_empty() {
        return Ok(ExitStatus::Success);
    }
    configure(dir, l, &state, p).await?;
    l.printer.note("\nWaiting for jobs to finish (the state lock is released)...");
    let interval = progress_interval(&l.settings.env);
    let mut signals = (cx.ops.signals)();
    let waited = kiln_ops::interrupt::unless_interrupted(
        signals.as_mut(),
        watch(l.printer, backend.as_ref(), p, &state, &mut jobs, stream, interval),
    )
    .await;
    drop(signals);
    if waited.is_none() {
        return Err(Diagnostic::error("E-INTERRUPTED", "Interrupted: stopped waiting; the jobs keep running")
            .hint("`kiln jobs` shows them; `kiln logs ADDRESS --follow` follows one; `kiln apply --wait` waits again")
            .into());
    }
    let mut failures = Diagnostics::new();
    for j in &jobs {
        if let Some(d) = j.failure(p).await {
            failures.push(d);
        }
    }
    let refreshed = refresh(cx, backend, dir, l, p, args, failures.is_empty()).await;
    if failures.is_empty() {
        return refreshed;
    }
    match refreshed {
        Err(f) => l.printer.failure(&f),
        Ok(ExitStatus::Success) => {}
        Ok(_) => l.printer.note("State and outputs could not be refreshed with the jobs' results (see above)."),
    }
    Err(Failure::new(failures))
}

/// `KILN_WAIT_PROGRESS_INTERVAL` (a duration such as 30s or 5m; 0 or invalid: the default).
fn progress_interval(env: &[(String, String)]) -> Duration {
    env.iter()
        .find(|(k, _)| k == "KILN_WAIT_PROGRESS_INTERVAL")
        .and_then(|(_, v)| kiln_provider_builtin::parse_duration(v))
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_PROGRESS_INTERVAL)
}

/// The refresh after the wait, in its own short operation: a refresh-only plan (as `kiln apply
/// --refresh-only`), applied when it records anything, so the jobs' end state and the outputs
/// are recorded even when the configuration changed meanwhile (nothing of that is applied: the
/// user did not review it); then a plan of the configuration against the refreshed state says
/// whether it has changes to apply. A lock someone else holds now does not fail the jobs'
/// result: it is said, with what to run later.
/// `summary`: end with "Apply complete!" and the outputs (not after a job failed: its error
/// comes last).
async fn refresh(cx: &Ctx, backend: &Arc<dyn StateBackend>, dir: &Path, l: &Loaded, p: &Providers, args: &PlanArgs, summary: bool) -> R {
    enum Stop {
        /// The lock could not be taken ([`kiln_ops::operation::run`]'s only diagnostic).
        Lock(Diagnostic),
        Failed(Failure),
    }
    impl From<Diagnostic> for Stop {
        fn from(d: Diagnostic) -> Stop {
            Stop::Lock(d)
        }
    }
    // The jobs' results only: a replacement asked for (`kiln run`) was made already.
    let refresh = PlanArgs { refresh: true, refresh_only: true, replace: Vec::new(), ..args.clone() };
    // What the configuration would still change, against the state just refreshed (quiet: no
    // `--verbose` report of its own, the refresh-only plan reported the providers' calls).
    let pending = PlanArgs { refresh: false, refresh_only: false, verbose: false, replace: Vec::new(), ..args.clone() };
    let r = kiln_ops::operation::run(&cx.ops, backend, "refresh", |s| {
        let (refresh, pending) = (&refresh, &pending);
        async move {
            let state = s.read_state().await.map_err(|d| Stop::Failed(d.into()))?;
            let plan = make_plan(&s, dir, l, &state, p, refresh, Mode::RefreshOnly).await.map_err(Stop::Failed)?;
            let code = if plan.has_changes() {
                apply_plan(&s, dir, l, p, state, &plan, args.parallelism, summary).await.map_err(Stop::Failed)?
            } else {
                ExitStatus::Success
            };
            if code != ExitStatus::Success {
                return Ok(code);
            }
            let state = s.read_state().await.map_err(|d| Stop::Failed(d.into()))?;
            match changes_to_apply(&s, dir, l, &state, p, pending).await {
                Some(true) => l.printer.note("Jobs finished; the configuration now has changes to apply (run `kiln plan`)."),
                Some(false) => {}
                None => l.printer.note("Jobs finished; the configuration can no longer be planned (run `kiln plan` to see why)."),
            }
            Ok(ExitStatus::Success)
        }
    })
    .await;
    match r {
        Ok(code) => Ok(code),
        Err(Stop::Failed(f)) => Err(f),
        Err(Stop::Lock(d)) => {
            l.printer.warning(format_args!(
                "state and outputs were not refreshed with the jobs' results: {}\n  Run `kiln apply --refresh-only` (or `kiln plan`) once the other run is done.",
                d.summary
            ));
            Ok(ExitStatus::Success)
        }
    }
}

/// Whether the configuration has changes to apply to `state` (`args` without refresh: the state
/// was just refreshed); `None` when it cannot be planned or planning was interrupted. Prints
/// nothing: the refresh-only plan before it said the configuration's warnings already.
async fn changes_to_apply(s: &Session, dir: &Path, l: &Loaded, state: &State, p: &Providers, args: &PlanArgs) -> Option<bool> {
    let reg = registry();
    let (plan, diags) = s.unless_interrupted(kiln_core::plan(plan_request(l, state, &reg, p, args, Mode::Normal, dir))).await?;
    if diags.has_errors() {
        return None;
    }
    Some(plan?.changes.iter().any(|c| c.action != Action::NoOp))
}

/// Polls until every job is terminal: prints status changes, "Still running..." lines and,
/// with `stream`, every node's output.
///
/// No lock is held meanwhile, so another run may destroy or replace a job: one the provider no
/// longer finds is checked against the state as stored, and ends the wait for it when the state
/// no longer has it (a job just created that a provider does not list yet is waited for).
async fn watch(
    printer: Printer,
    backend: &dyn StateBackend,
    p: &Providers,
    state: &State,
    jobs: &mut [Watched],
    stream: bool,
    interval: Duration,
) {
    let start = Instant::now();
    let mut next_progress = start + interval;
    let mut last: Vec<String> = Vec::new();
    loop {
        for (a, v) in read_jobs(p, state).await {
            if let Some(j) = jobs.iter_mut().find(|j| j.addr == a) {
                if let Some(v) = &v {
                    j.value = v.clone();
                }
                j.latest = v;
            }
        }
        if jobs.iter().any(|j| j.latest.is_none() && !j.gone) {
            if let Ok(now) = kiln_ops::operation::read_state(backend).await {
                for j in jobs.iter_mut().filter(|j| j.latest.is_none()) {
                    let job_id = |v: &Value| v.get("job_id").and_then(Value::as_str).map(str::to_string);
                    let stored = now.resources.get(&j.addr).map(|r| job_id(&r.attributes));
                    j.gone = stored.is_none_or(|id| id != job_id(&j.value));
                }
            }
        }
        let now: Vec<String> = jobs.iter().map(|j| format!("{}: {}", j.name, status(&j.latest))).collect();
        for line in now.iter().filter(|l| !last.contains(l)) {
            printer.note(format_args!("  {line}"));
        }
        last = now;
        // Read after the statuses: a job read as ended has written all its output.
        if stream {
            for j in jobs.iter_mut() {
                j.read_logs(p, Some(printer)).await;
            }
        }
        if jobs.iter().all(Watched::ended) {
            if stream {
                for j in jobs.iter_mut() {
                    j.flush(printer);
                }
            }
            return;
        }
        if Instant::now() >= next_progress {
            for j in jobs.iter_mut().filter(|j| !j.ended()) {
                if !stream {
                    j.read_logs(p, None).await;
                }
                printer.progress(j.still(start.elapsed()));
            }
            next_progress = Instant::now() + interval;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One job being waited on.
struct Watched {
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
    fn new(addr: InstanceAddr, provider: &str, kind: &str, value: Value) -> Self {
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

    /// Reads every node's new output; prints it, each line prefixed by job and node, when given a
    /// printer; remembers each node's last line.
    async fn read_logs(&mut self, p: &Providers, printer: Option<Printer>) {
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
            if let Some(printer) = printer {
                let mut out = String::with_capacity(text.len() + 32);
                for line in text.lines() {
                    out.push_str(&format!("{prefix}{line}\n"));
                }
                printer.data_raw(out);
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

    /// Prints what is left of each node's output after its last newline.
    fn flush(&mut self, printer: Printer) {
        for (node, log) in self.logs.iter_mut().enumerate() {
            if !log.partial.is_empty() {
                printer.data(format_args!("{}{}", prefix(&self.name, self.all_nodes, node), String::from_utf8_lossy(&log.partial)));
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
    async fn failure(&self, p: &Providers) -> Option<Diagnostic> {
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

    #[test]
    fn the_progress_interval_comes_from_the_environment() {
        let env = |v: &str| vec![("KILN_WAIT_PROGRESS_INTERVAL".to_string(), v.to_string())];
        assert_eq!(progress_interval(&[]), DEFAULT_PROGRESS_INTERVAL);
        assert_eq!(progress_interval(&env("2s")), Duration::from_secs(2));
        assert_eq!(progress_interval(&env("0s")), DEFAULT_PROGRESS_INTERVAL);
        assert_eq!(progress_interval(&env("soon")), DEFAULT_PROGRESS_INTERVAL);
    }
}
