//! `kiln logs`: a job's output, read through its provider, or from its archive once the job
//! has been destroyed. The reading and the archives (where they are kept, for how long, written
//! before an apply deletes a job) are kiln-ops' ([`kiln_ops::logs`], whose documentation is the
//! design); this module parses the options, finds the job or its archive and prints: every node
//! by default, each line prefixed `[node N] ` (a partial last line is kept until its newline
//! comes, or ended at the end) when the job has several nodes and several logs; `--follow` polls
//! every node until each finished.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use kiln_addrs::InstanceAddr;
use kiln_core::Providers;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_ops::logs::{find_archive, is_local, node_count, parse_since, retention_text, start, stores, Lines, Source};
use kiln_plan::Plan;
use kiln_provider::LogSeek;

use super::jobs::{configure, providers};
use super::{load, open, read_state, Ctx, ExitStatus, Failure, Loaded, Printer, R};
use crate::cli::VarArgs;

/// `kiln logs ADDRESS`'s options.
pub struct LogsOpts {
    pub node: Option<usize>,
    pub tail: Option<usize>,
    pub since: Option<String>,
    pub follow: bool,
    /// An attempt of the job (its `restarts`): the live job's when it is that one, else its
    /// archive's.
    pub attempt: Option<u64>,
}

/// Lines `--follow` starts with when neither `--tail` nor `--since` says (as `tail -f`).
const FOLLOW_TAIL: usize = 10;

pub async fn logs(cx: &Ctx, vars: &VarArgs, address: &str, opts: LogsOpts) -> R {
    let dir = cx.dir();
    let addr: InstanceAddr = address.parse().map_err(|e: kiln_addrs::AddrError| {
        Diagnostic::error("E-ADDR-INVALID", e.to_string()).hint("a job's address looks like job.train or job.train[0]")
    })?;
    let since = match &opts.since {
        Some(s) => Some(parse_since(s, Utc::now()).map_err(|e| {
            Diagnostic::error("E-LOGS-SINCE-INVALID", format!("--since {s}: {e}"))
                .hint("give a duration such as 30s, 10m, 2h or 1d12h, or an RFC 3339 time such as 2026-01-02T15:04:05Z")
        })?),
        None => None,
    };
    let l = load(cx, vars)?;
    let backend = open(&l)?;
    let state = read_state(backend.as_ref()).await?;
    let fail = |d: Diagnostics| Failure::in_sources(&l.config.sources, d);
    let live =
        state.resources.get(&addr).filter(|r| opts.attempt.is_none_or(|n| kiln_provider::portable::job::restarts_of(&r.attributes) == n));
    let Some(r) = live else {
        // Archives in buckets need their providers; without them, the ones on this machine.
        let remote_buckets = state.resources.values().any(|r| r.kind == "bucket" && !is_local(&r.provider));
        let configured = if remote_buckets { Some(providers(dir, &l, &state).await) } else { None };
        let p = match configured {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => {
                cx.printer.warning("cannot configure the providers to look for destroyed jobs' logs in their buckets");
                None
            }
        };
        let stores = stores(dir, &state, p.as_ref());
        let workspace = l.workspace()?;
        let Some(archive) = find_archive(&|w| cx.printer.warning(w), &stores, &workspace, &addr.to_string(), opts.attempt).await else {
            if let (Some(n), Some(r)) = (opts.attempt, state.resources.get(&addr)) {
                let now = kiln_provider::portable::job::restarts_of(&r.attributes);
                return Err(Diagnostic::error("E-LOGS-ATTEMPT", format!("no logs of attempt {n} of {addr} are kept (it is at attempt {now} now)"))
                    .address(&addr)
                    .hint(format!(
                        "attempts are numbered from 0 (`restarts` in `kiln jobs`); the logs of a replaced attempt are kept for {} (log_retention)",
                        retention_text()
                    ))
                    .into());
            }
            return Err(Diagnostic::error("E-STATE-ADDRESS", format!("`{addr}` is not in state"))
                .address(&addr)
                .hint(format!(
                    "`kiln jobs` lists the jobs kiln manages; a destroyed job's logs are kept for {} (log_retention, KILN_LOG_RETENTION), and none are kept for `{addr}`",
                    retention_text()
                ))
                .into());
        };
        let what = match (opts.attempt, state.resources.contains_key(&addr)) {
            (Some(n), true) => format!("{addr} was started again: these are the logs of its attempt {n}, job"),
            _ => format!("{addr} was destroyed: these are the logs of its job"),
        };
        cx.printer.note(format_args!(
            "{what} {} (destroyed at {}, kept until {} in {}).",
            archive.meta.job_id,
            archive.meta.destroyed_at,
            archive.meta.expires_at,
            archive.store.describe()
        ));
        let nodes = archive.meta.nodes;
        if let Some(n) = opts.node.filter(|n| *n >= nodes) {
            return Err(Diagnostic::error("E-LOGS-NODE", format!("{addr} had {nodes} node(s) with logs; there is no node {n}"))
                .address(&addr)
                .hint("nodes are numbered from 0")
                .into());
        }
        let src = Source::Archive { store: archive.store, job: &archive.job };
        return print_logs(&cx.printer, &src, nodes, &opts, since).await.map(|()| ExitStatus::Success).map_err(fail);
    };
    let p = providers(dir, &l, &state).await?;
    let provider = super::jobs::provider_of(&p, &addr, r)?;
    let name = addr.to_string();
    let src = Source::Live { provider, address: &name, kind: &r.kind, state: &r.attributes };
    print_logs(&cx.printer, &src, node_count(&r.attributes), &opts, since).await.map_err(fail)?;
    Ok(ExitStatus::Success)
}

/// One node being printed.
struct NodeReader {
    node: usize,
    offset: u64,
    /// Where printing stops without `--follow`: the log's end when it started.
    end: Option<u64>,
    /// The line being received (with a prefix only).
    lines: Lines,
    /// Drop bytes up to and including the next newline (a `--since` start inside a line).
    skip_line: bool,
    done: bool,
}

async fn print_logs(printer: &Printer, src: &Source<'_>, nodes: usize, opts: &LogsOpts, since: Option<i64>) -> Result<(), Diagnostics> {
    let mut ranks: Vec<usize> = match opts.node {
        Some(n) => vec![n],
        None => (0..nodes).collect(),
    };
    if ranks.len() > 1 && src.read(0, 0, Some(LogSeek::End)).await?.all_nodes {
        // One log holds every node's output (Slurm's output file).
        ranks = vec![0];
    }
    let prefix = ranks.len() > 1;
    let tail = opts.tail.or((opts.follow && since.is_none()).then_some(FOLLOW_TAIL));
    let mut readers = Vec::with_capacity(ranks.len());
    for node in ranks {
        let (offset, skip_line) = start(src, node, tail, since).await?;
        readers.push(NodeReader { node, offset, end: None, lines: Lines::default(), skip_line, done: false });
    }
    if !opts.follow {
        // One node after the other, each up to where it ends now (a running job's log grows).
        for r in &mut readers {
            r.end = Some(src.read(r.node, 0, Some(LogSeek::End)).await?.next_offset);
            while !r.done {
                step(printer, src, r, prefix, false).await?;
            }
        }
        return Ok(());
    }
    while readers.iter().any(|r| !r.done) {
        let mut got = false;
        for r in readers.iter_mut().filter(|r| !r.done) {
            got |= step(printer, src, r, prefix, true).await?;
        }
        if !got && readers.iter().any(|r| !r.done) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// Reads and prints one chunk of a node; returns whether it printed anything.
async fn step(printer: &Printer, src: &Source<'_>, r: &mut NodeReader, prefix: bool, follow: bool) -> Result<bool, Diagnostics> {
    let mut c = src.read(r.node, r.offset, None).await?;
    if let Some(end) = r.end {
        // What was written after the end measured is left out.
        c.data.truncate(end.saturating_sub(r.offset).try_into().unwrap_or(usize::MAX));
    }
    r.offset = c.next_offset;
    let printed = print(printer, r, prefix, &c.data);
    let at_end = c.data.is_empty() || r.end.is_some_and(|e| r.offset >= e);
    if at_end && (!follow || c.finished) {
        r.done = true;
        printer.data_bytes(&r.lines.finish(&node_prefix(r.node)));
    }
    Ok(printed)
}

/// Prints what was read of a node; returns whether it printed anything.
fn print(printer: &Printer, r: &mut NodeReader, prefix: bool, data: &[u8]) -> bool {
    let mut data = data;
    if r.skip_line {
        match data.iter().position(|b| *b == b'\n') {
            Some(i) => {
                data = &data[i + 1..];
                r.skip_line = false;
            }
            None => return false,
        }
    }
    if !prefix {
        printer.data_bytes(data);
        return !data.is_empty();
    }
    printer.data_bytes(&r.lines.push(&node_prefix(r.node), data));
    !data.is_empty()
}

fn node_prefix(node: usize) -> String {
    format!("[node {node}] ")
}

/// Before `plan`'s deletes and replacements of jobs run: each such job's logs archived
/// ([`kiln_ops::logs::archive_before_delete`]); what cannot be archived is a warning.
pub(crate) async fn archive_before_delete(dir: &Path, l: &Loaded, providers: &Providers, state: &kiln_state::State, plan: &Plan) {
    let workspace = l.workspace().unwrap_or_else(|_| kiln_state::DEFAULT_WORKSPACE.to_string());
    let warn = |w: String| l.printer.warning(w);
    let configured = async { configure(dir, l, state, providers).await.is_ok() };
    kiln_ops::logs::archive_before_delete(dir, &workspace, providers, state, plan, configured, &warn).await;
}
