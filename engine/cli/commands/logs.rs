//! `kiln logs`: a job's output, read through its provider, or from its archive once the job
//! has been destroyed.
//!
//! Reading. Every node by default, each line prefixed `[node N] ` (a partial last line is kept
//! until its newline comes, or ended at the end) when the job has several nodes and several
//! logs; `--node N` prints that node as it is. A provider answers a read from an offset or a
//! seek ([`LogSeek`]): `--tail N` seeks the end, then reads back in growing windows until it
//! has N lines, so a long log is never read whole; `--since` seeks by time, from the time index
//! each node's wrapper keeps beside its log while it runs (`EPOCH SIZE` samples every 2 s when
//! the log grew: [`kiln_provider::logs`]), starting at the next line start; a provider without
//! one answers `E-LOGS-SINCE`, never the whole log. `--follow` starts at the tail (the last 10
//! lines unless `--tail` or `--since` say otherwise) and polls every node until each finished.
//!
//! Retention. Before an apply deletes or replaces a job ([`archive_before_delete`], called by
//! `execute`), kiln reads every node's log through the provider and writes an archive
//! `JOB_ID/` (`job.json`: workspace, address, job_id, nodes, destroyed_at, expires_at;
//! `node-N.log`, at most the last 256 MiB of each; the logs first, `job.json` last) into a
//! [`Store`]: `kiln-logs/` of the job's checkpoint bucket when that bucket is in state and
//! outlives the apply, and either is a `local` bucket (its directory) or its provider keeps
//! kiln's files ([`Provider::store`]: aws's S3 buckets, onprem's directories on a host), so
//! whoever shares the state reads them; otherwise (no bucket, one this apply deletes, a provider that cannot keep files, or a bucket
//! write that failed, with a warning) `.kiln/logs/` of the configuration directory, private to
//! its owner. How long: `KILN_LOG_RETENTION` when set (an override), else the job's
//! `log_retention`, else 7 days (`0` keeps nothing); expired archives are pruned whenever one is
//! written (in that store) or looked for (in every store). `kiln logs ADDRESS` for an address
//! no longer in state looks in `.kiln/logs/` and in `kiln-logs/` of every bucket in state (its
//! provider configured as for any command), reads the newest archive of that address in the
//! current workspace and says it shows a destroyed job's logs and where they are kept
//! (`--since` is refused there: archives keep no time index).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kiln_addrs::InstanceAddr;
use kiln_core::Providers;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_plan::{Action, Plan};
use kiln_provider::{LogSeek, LogsRequest, Provider, StoreOp, StoreRequest, StoreResponse};
use kiln_value::Value;

use super::jobs::{configure, providers};
use super::{load, open, read_state, Ctx, ExitStatus, Failure, Loaded, Printer, R};
use crate::cli::VarArgs;

/// `kiln logs ADDRESS`'s options.
pub struct LogsOpts {
    pub node: Option<usize>,
    pub tail: Option<usize>,
    pub since: Option<String>,
    pub follow: bool,
}

/// Lines `--follow` starts with when neither `--tail` nor `--since` says (as `tail -f`).
const FOLLOW_TAIL: usize = 10;

/// How long an archive is kept without `KILN_LOG_RETENTION`.
const DEFAULT_RETENTION: &str = "7d";

/// The most of each node's log an archive keeps (its end): a destroy never downloads
/// unbounded logs.
const ARCHIVE_MAX_BYTES: u64 = 256 << 20;

/// [`ARCHIVE_MAX_BYTES`]; debug builds take `KILN_TEST_LOG_ARCHIVE_MAX` (bytes) so tests can
/// reach the limit.
fn archive_max() -> u64 {
    std::env::var("KILN_TEST_LOG_ARCHIVE_MAX")
        .ok()
        .filter(|_| cfg!(debug_assertions))
        .and_then(|v| v.parse().ok())
        .unwrap_or(ARCHIVE_MAX_BYTES)
}

/// Where archives go when the job has no bucket that outlives it (under the configuration's
/// directory).
const ARCHIVE_DIR: &str = ".kiln/logs";

/// Where archives go in a directory bucket.
const BUCKET_ARCHIVE_DIR: &str = "kiln-logs";

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
    let Some(r) = state.resources.get(&addr) else {
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
        let Some(archive) = find_archive(&cx.printer, &stores, &workspace, &addr.to_string()).await else {
            return Err(Diagnostic::error("E-STATE-ADDRESS", format!("`{addr}` is not in state"))
                .address(&addr)
                .hint(format!(
                    "`kiln jobs` lists the jobs kiln manages; a destroyed job's logs are kept for {} (log_retention, KILN_LOG_RETENTION), and none are kept for `{addr}`",
                    retention_text()
                ))
                .into());
        };
        cx.printer.note(format_args!(
            "{addr} was destroyed: these are the logs of its job {} (destroyed at {}, kept until {} in {}).",
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
    let provider = p.get(&r.provider).ok_or_else(|| {
        Diagnostic::error("E-PROVIDER-UNAVAILABLE", format!("provider `{}` is not available", r.provider))
            .address(&addr)
            .hint("the configuration no longer declares it, or this kiln was built without it")
    })?;
    let name = addr.to_string();
    let src = Source::Live { provider, address: &name, kind: &r.kind, state: &r.attributes };
    print_logs(&cx.printer, &src, node_count(&r.attributes), &opts, since).await.map_err(fail)?;
    Ok(ExitStatus::Success)
}

/// A job's node count from its attributes (1 when it does not say).
fn node_count(v: &Value) -> usize {
    v.get("nodes").and_then(Value::as_number).and_then(|n| n.to_string().parse::<usize>().ok()).map_or(1, |n| n.max(1))
}

/// Where a node's log is read from.
enum Source<'a> {
    Live {
        provider: Arc<dyn Provider>,
        address: &'a str,
        kind: &'a str,
        state: &'a Value,
    },
    /// An archived job (`JOB_ID/node-N.log` in its store).
    Archive {
        store: &'a Store,
        job: &'a str,
    },
}

/// What one read answered.
struct Chunk {
    data: Vec<u8>,
    next_offset: u64,
    finished: bool,
    all_nodes: bool,
}

/// Most bytes one read of an archive returns.
const ARCHIVE_CHUNK: u64 = 1 << 20;

impl Source<'_> {
    async fn read(&self, node: usize, offset: u64, seek: Option<LogSeek>) -> Result<Chunk, Diagnostics> {
        match self {
            Source::Live { provider, address, kind, state } => {
                let r = provider.logs(LogsRequest { address, kind, state, node, offset, seek }).await;
                if r.diagnostics.has_errors() {
                    return Err(r.diagnostics);
                }
                Ok(Chunk { data: r.data, next_offset: r.next_offset, finished: r.finished, all_nodes: r.all_nodes })
            }
            Source::Archive { store, job } => read_archive(store, job, node, offset, seek).await,
        }
    }
}

async fn read_archive(store: &Store, job: &str, node: usize, offset: u64, seek: Option<LogSeek>) -> Result<Chunk, Diagnostics> {
    let done = |data: Vec<u8>, next_offset: u64| Chunk { data, next_offset, finished: true, all_nodes: false };
    let rel = format!("{job}/node-{node}.log");
    match seek {
        Some(LogSeek::End) => {
            let (_, size) = store.get(&rel, 0, 0).await?;
            return Ok(done(Vec::new(), size));
        }
        Some(LogSeek::Since(_)) => {
            return Err(Diagnostic::error(
                "E-LOGS-SINCE",
                format!(
                    "the archive {job} in {} keeps the log's output without times, so --since cannot tell when it was written",
                    store.describe()
                ),
            )
            .hint("use --tail N instead")
            .into())
        }
        None => {}
    }
    let (data, size) = store.get(&rel, offset, ARCHIVE_CHUNK).await?;
    let next = offset.min(size) + data.len() as u64;
    Ok(done(data, next))
}

/// One node being printed.
struct NodeReader {
    node: usize,
    offset: u64,
    /// The start of the line being received (with a prefix only).
    partial: Vec<u8>,
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
        readers.push(NodeReader { node, offset, partial: Vec::new(), skip_line, done: false });
    }
    if !opts.follow {
        // One node after the other, each whole.
        for r in &mut readers {
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

/// Where node `node`'s printing starts, and whether it starts inside a line.
async fn start(src: &Source<'_>, node: usize, tail: Option<usize>, since: Option<i64>) -> Result<(u64, bool), Diagnostics> {
    let mut at = (0, false);
    if let Some(t) = since {
        let o = src.read(node, 0, Some(LogSeek::Since(t))).await?.next_offset;
        // Read from the byte before, to see whether `o` starts a line.
        at = if o > 0 { (o - 1, true) } else { (0, false) };
    }
    if let Some(n) = tail {
        let t = tail_start(src, node, n).await?;
        // A tail start is a line start; one at the byte before a `--since` start is older.
        if t > at.0 || !at.1 {
            at = (t, false);
        }
    }
    Ok(at)
}

/// The offset of the first of the last `n` lines of node `node`'s log as it is now: reads back
/// from the end in growing windows.
async fn tail_start(src: &Source<'_>, node: usize, n: usize) -> Result<u64, Diagnostics> {
    let size = src.read(node, 0, Some(LogSeek::End)).await?.next_offset;
    if n == 0 {
        return Ok(size);
    }
    let mut window: u64 = 64 << 10;
    loop {
        let from = size.saturating_sub(window);
        let buf = read_range(src, node, from, size).await?;
        if let Some(i) = nth_line_start_from_end(&buf, n) {
            return Ok(from + i as u64);
        }
        if from == 0 || (buf.len() as u64) < size - from {
            return Ok(from);
        }
        window = window.saturating_mul(4);
    }
}

/// Bytes `from..to` of a node's log (fewer if it has fewer).
async fn read_range(src: &Source<'_>, node: usize, from: u64, to: u64) -> Result<Vec<u8>, Diagnostics> {
    let mut buf = Vec::new();
    let mut at = from;
    while at < to {
        let c = src.read(node, at, None).await?;
        if c.data.is_empty() {
            break;
        }
        buf.extend_from_slice(&c.data);
        at = c.next_offset;
    }
    buf.truncate((to - from) as usize);
    Ok(buf)
}

/// Where the last `n` lines of `buf` start, if `buf` holds that many whole (a last line without
/// its newline counts as a line).
fn nth_line_start_from_end(buf: &[u8], n: usize) -> Option<usize> {
    let end = if buf.last() == Some(&b'\n') { buf.len() - 1 } else { buf.len() };
    let mut seen = 0;
    for i in (0..end).rev() {
        if buf[i] == b'\n' {
            seen += 1;
            if seen == n {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Reads and prints one chunk of a node; returns whether it printed anything.
async fn step(printer: &Printer, src: &Source<'_>, r: &mut NodeReader, prefix: bool, follow: bool) -> Result<bool, Diagnostics> {
    let c = src.read(r.node, r.offset, None).await?;
    r.offset = c.next_offset;
    if c.data.is_empty() {
        if !follow || c.finished {
            r.done = true;
            if !r.partial.is_empty() {
                let mut out = node_prefix(r.node).into_bytes();
                out.append(&mut r.partial);
                out.push(b'\n');
                printer.data_bytes(&out);
            }
        }
        return Ok(false);
    }
    let mut data: &[u8] = &c.data;
    if r.skip_line {
        match data.iter().position(|b| *b == b'\n') {
            Some(i) => {
                data = &data[i + 1..];
                r.skip_line = false;
            }
            None => return Ok(false),
        }
    }
    if !prefix {
        printer.data_bytes(data);
        return Ok(!data.is_empty());
    }
    let out = prefixed(&node_prefix(r.node), &mut r.partial, data);
    printer.data_bytes(&out);
    Ok(true)
}

fn node_prefix(node: usize) -> String {
    format!("[node {node}] ")
}

/// The whole lines of `partial` + `data`, each with `prefix`; what follows the last newline
/// stays in `partial`.
fn prefixed(prefix: &str, partial: &mut Vec<u8>, data: &[u8]) -> Vec<u8> {
    partial.extend_from_slice(data);
    let Some(last) = partial.iter().rposition(|b| *b == b'\n') else { return Vec::new() };
    let rest = partial.split_off(last + 1);
    let mut out = Vec::with_capacity(partial.len() + 16);
    for line in partial.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(line);
    }
    *partial = rest;
    out
}

/// `--since`: a duration ago (`90s`, `10m`, `2h`, `1d12h`) or an RFC 3339 time, as seconds
/// since the Unix epoch.
fn parse_since(s: &str, now: DateTime<Utc>) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.timestamp());
    }
    let d = parse_duration(s)?;
    Ok(now.timestamp() - d.as_secs() as i64)
}

use kiln_provider::logs::parse_duration;

// ---- Retention ----

/// An archived job's `job.json`.
struct ArchiveMeta {
    /// The workspace whose state held the job (`kiln logs` in another workspace does not show it).
    workspace: String,
    address: String,
    job_id: String,
    nodes: usize,
    destroyed_at: String,
    expires_at: String,
}

impl ArchiveMeta {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "workspace": self.workspace,
            "address": self.address,
            "job_id": self.job_id,
            "nodes": self.nodes,
            "destroyed_at": self.destroyed_at,
            "expires_at": self.expires_at,
        })
    }

    fn from_json(v: &serde_json::Value) -> Option<ArchiveMeta> {
        let s = |k: &str| v.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
        Some(ArchiveMeta {
            workspace: s("workspace").unwrap_or_else(|| kiln_state::DEFAULT_WORKSPACE.to_string()),
            address: s("address")?,
            job_id: s("job_id")?,
            nodes: v.get("nodes").and_then(serde_json::Value::as_u64)? as usize,
            destroyed_at: s("destroyed_at")?,
            expires_at: s("expires_at")?,
        })
    }

    fn expired(&self, now: DateTime<Utc>) -> bool {
        DateTime::parse_from_rfc3339(&self.expires_at).is_ok_and(|t| t.with_timezone(&Utc) <= now)
    }
}

/// Where archives are kept: each archive is `JOB_ID/` under the store's root.
enum Store {
    /// A directory of this machine: `.kiln/logs/`, or a `local` bucket's `kiln-logs/`.
    Dir(PathBuf),
    /// `kiln-logs/` in a bucket whose provider keeps kiln's files ([`Provider::store`]): an S3
    /// bucket, an onprem host's directory; everyone sharing the state reads them.
    Bucket { provider: Arc<dyn Provider>, address: String, state: Value },
}

/// One archive: its store and its job directory there (`JOB_ID`).
struct Archive<'s> {
    store: &'s Store,
    job: String,
    meta: ArchiveMeta,
}

impl Store {
    /// How people see where an archive is.
    fn describe(&self) -> String {
        match self {
            Store::Dir(d) => d.display().to_string(),
            Store::Bucket { address, state, .. } => match state.get("uri").and_then(Value::as_str) {
                Some(uri) => format!("{}/{BUCKET_ARCHIVE_DIR} ({address})", uri.trim_end_matches('/')),
                None => format!("{BUCKET_ARCHIVE_DIR}/ of {address}"),
            },
        }
    }

    async fn op(&self, op: StoreOp<'_>) -> Result<StoreResponse, Diagnostics> {
        let Store::Bucket { provider, address, state } = self else { unreachable!("directories are read directly") };
        let r = provider.store(StoreRequest { address, kind: "bucket", state, op }).await;
        if r.diagnostics.has_errors() {
            return Err(r.diagnostics);
        }
        Ok(r)
    }

    fn key(rel: &str) -> String {
        format!("{BUCKET_ARCHIVE_DIR}/{rel}")
    }

    async fn put(&self, rel: &str, data: &[u8]) -> Result<(), Diagnostics> {
        match self {
            Store::Dir(root) => {
                let path = root.join(rel);
                let io = |e: std::io::Error| {
                    Diagnostics::from(Diagnostic::error("E-LOGS-ARCHIVE", format!("cannot write {}: {e}", path.display())))
                };
                if let Some(parent) = path.parent() {
                    create_private_dir(parent).map_err(io)?;
                }
                let mut f = private_file(&path).map_err(io)?;
                std::io::Write::write_all(&mut f, data).map_err(io)
            }
            Store::Bucket { .. } => self.op(StoreOp::Put { key: &Self::key(rel), data }).await.map(|_| ()),
        }
    }

    /// Up to `len` bytes of `rel` from `offset`, and its size.
    async fn get(&self, rel: &str, offset: u64, len: u64) -> Result<(Vec<u8>, u64), Diagnostics> {
        match self {
            Store::Dir(root) => {
                use std::io::{Read, Seek, SeekFrom};
                let path = root.join(rel);
                let io = |e: std::io::Error| {
                    Diagnostics::from(
                        Diagnostic::error("E-LOGS-ARCHIVE", format!("cannot read the archived log {}: {e}", path.display()))
                            .hint("the archive may have been pruned meanwhile (its retention ended)"),
                    )
                };
                let mut f = std::fs::File::open(&path).map_err(io)?;
                let size = f.metadata().map_err(io)?.len();
                f.seek(SeekFrom::Start(offset.min(size))).map_err(io)?;
                let mut data = Vec::new();
                f.take(len).read_to_end(&mut data).map_err(io)?;
                Ok((data, size))
            }
            Store::Bucket { .. } => {
                let r = self.op(StoreOp::Get { key: &Self::key(rel), offset, len }).await?;
                Ok((r.data, r.size))
            }
        }
    }

    /// The archives kept here (unreadable ones left out).
    async fn archives(&self) -> Result<Vec<Archive<'_>>, Diagnostics> {
        let mut jobs = Vec::new();
        match self {
            Store::Dir(root) => {
                let Ok(entries) = std::fs::read_dir(root) else { return Ok(Vec::new()) };
                jobs.extend(entries.flatten().filter(|e| e.path().is_dir()).filter_map(|e| e.file_name().to_str().map(str::to_string)));
            }
            Store::Bucket { .. } => {
                let keys = self.op(StoreOp::List { prefix: &format!("{BUCKET_ARCHIVE_DIR}/") }).await?.keys;
                let under = format!("{BUCKET_ARCHIVE_DIR}/");
                jobs.extend(
                    keys.iter()
                        .filter_map(|k| k.strip_prefix(&under)?.strip_suffix("/job.json"))
                        .filter(|j| !j.contains('/'))
                        .map(str::to_string),
                );
            }
        }
        let mut out = Vec::new();
        for job in jobs.into_iter().filter(|j| !j.starts_with('.')) {
            let Ok((bytes, _)) = self.get(&format!("{job}/job.json"), 0, 1 << 20).await else { continue };
            let meta = serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|v| ArchiveMeta::from_json(&v));
            if let Some(meta) = meta {
                out.push(Archive { store: self, job, meta });
            }
        }
        Ok(out)
    }

    /// Removes the archive `job` (its `job.json` first, so it is never half there).
    async fn remove(&self, job: &str) -> Result<(), Diagnostics> {
        match self {
            Store::Dir(root) => {
                let _ = std::fs::remove_file(root.join(job).join("job.json"));
                let _ = std::fs::remove_dir_all(root.join(job));
                Ok(())
            }
            Store::Bucket { .. } => {
                self.op(StoreOp::Delete { keys: &[Self::key(&format!("{job}/job.json"))] }).await?;
                let keys = self.op(StoreOp::List { prefix: &Self::key(&format!("{job}/")) }).await?.keys;
                if !keys.is_empty() {
                    self.op(StoreOp::Delete { keys: &keys }).await?;
                }
                Ok(())
            }
        }
    }

    /// Removes the archives whose retention has ended; answers the others.
    async fn prune(&self) -> Result<Vec<Archive<'_>>, Diagnostics> {
        let now = Utc::now();
        let (expired, kept): (Vec<_>, Vec<_>) = self.archives().await?.into_iter().partition(|a| a.meta.expired(now));
        for a in expired {
            self.remove(&a.job).await?;
        }
        Ok(kept)
    }
}

/// How long a job's archive is kept: `KILN_LOG_RETENTION` when set, else the job's
/// `log_retention`, else 7 days. An unreadable setting keeps the default (and says so).
fn retention(job: Option<&Value>) -> Result<Duration, String> {
    if let Ok(v) = std::env::var("KILN_LOG_RETENTION") {
        return parse_duration(&v).map_err(|e| format!("KILN_LOG_RETENTION: {e}"));
    }
    match job.and_then(|j| j.get("log_retention")).and_then(Value::as_str) {
        Some(v) => parse_duration(v).map_err(|e| format!("log_retention: {e}")),
        None => parse_duration(DEFAULT_RETENTION),
    }
}

fn retention_text() -> String {
    std::env::var("KILN_LOG_RETENTION").unwrap_or_else(|_| DEFAULT_RETENTION.to_string())
}

fn is_local(provider: &str) -> bool {
    provider == "local" || provider.starts_with("local.")
}

fn bucket_dir(bucket: &Value) -> Option<PathBuf> {
    bucket.get("uri").and_then(Value::as_str).and_then(|u| u.strip_prefix("file://")).map(PathBuf::from)
}

/// Every place archives may be: `.kiln/logs/`, `kiln-logs/` in each `local` bucket's directory
/// (another provider's directory bucket, such as an onprem host's, is not this machine's), and
/// `kiln-logs/` in each other bucket in state whose provider is configured in `providers`.
fn stores(dir: &Path, state: &kiln_state::State, providers: Option<&Providers>) -> Vec<Store> {
    let mut out = vec![Store::Dir(dir.join(ARCHIVE_DIR))];
    for (addr, r) in state.resources.iter().filter(|(_, r)| r.kind == "bucket") {
        if is_local(&r.provider) {
            out.extend(bucket_dir(&r.attributes).map(|b| Store::Dir(b.join(BUCKET_ARCHIVE_DIR))));
        } else if let Some(p) = providers.and_then(|p| p.get(&r.provider)) {
            out.push(Store::Bucket { provider: p, address: addr.to_string(), state: r.attributes.clone() });
        }
    }
    out
}

/// Whether a store's failure only says its provider keeps no files.
fn cannot_store(d: &Diagnostics) -> bool {
    d.errors().all(|e| e.code == "E-PROVIDER-STORE")
}

fn summary(d: &Diagnostics) -> String {
    d.errors().map(|e| e.summary.clone()).collect::<Vec<_>>().join("; ")
}

/// The newest unexpired archive of `address` in `workspace` among `stores`, pruning expired ones
/// on the way; a bucket that cannot be read is a warning.
async fn find_archive<'s>(printer: &Printer, stores: &'s [Store], workspace: &str, address: &str) -> Option<Archive<'s>> {
    let mut found: Vec<Archive<'s>> = Vec::new();
    for s in stores {
        match s.prune().await {
            Ok(kept) => found.extend(kept.into_iter().filter(|a| a.meta.address == address && a.meta.workspace == workspace)),
            Err(d) if cannot_store(&d) => {}
            Err(d) => printer.warning(format_args!("cannot look for destroyed jobs' logs in {}: {}", s.describe(), summary(&d))),
        }
    }
    found.into_iter().max_by(|a, b| a.meta.destroyed_at.cmp(&b.meta.destroyed_at))
}

/// Before `plan`'s deletes and replacements of jobs run: each such job's logs, every node's,
/// read through its provider and archived (see the module's documentation). Never stops the
/// apply: a log that cannot be archived is a warning.
pub(crate) async fn archive_before_delete(dir: &Path, l: &Loaded, providers: &Providers, state: &kiln_state::State, plan: &Plan) {
    let jobs: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.kind == "job" && matches!(c.action, Action::Delete | Action::Replace) && c.before.is_some())
        .collect();
    if jobs.is_empty() {
        return;
    }
    let local = Store::Dir(dir.join(ARCHIVE_DIR));
    let _ = local.prune().await;
    if configure(dir, l, state, providers).await.is_err() {
        l.printer.warning("cannot configure the providers to archive the logs of the jobs this apply destroys");
        return;
    }
    // Buckets this plan deletes do not outlive it.
    let deleted: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.kind == "bucket" && matches!(c.action, Action::Delete | Action::Replace))
        .map(|c| c.address.to_string())
        .collect();
    let workspace = l.workspace().unwrap_or_else(|_| kiln_state::DEFAULT_WORKSPACE.to_string());
    for c in jobs {
        let before = c.before.as_ref().expect("filtered");
        let name = c.address.to_string();
        let keep = match retention(Some(before)) {
            Ok(d) => d,
            Err(e) => {
                l.printer.warning(format_args!("{name}: {e}; keeping its logs for {DEFAULT_RETENTION}"));
                parse_duration(DEFAULT_RETENTION).unwrap_or_default()
            }
        };
        if keep.is_zero() {
            continue;
        }
        let Some(p) = providers.get(&c.provider) else { continue };
        let job_id = before.get("job_id").and_then(Value::as_str).map_or_else(|| slug(&name), str::to_string);
        let src = Source::Live { provider: p, address: &name, kind: &c.kind, state: before };
        let mut done = false;
        if let Some(store) = job_bucket(state, providers, before, &deleted) {
            let _ = store.prune().await;
            match archive_job(&src, &store, &workspace, &name, &job_id, node_count(before), keep).await {
                Ok(()) => done = true,
                Err(d) if cannot_store(&d) => {}
                Err(d) => l.printer.warning(format_args!(
                    "{name}: its logs could not be kept in {}: {}; keeping them under {ARCHIVE_DIR}/ instead",
                    store.describe(),
                    summary(&d)
                )),
            }
        }
        if !done {
            if let Err(d) = archive_job(&src, &local, &workspace, &name, &job_id, node_count(before), keep).await {
                l.printer.warning(format_args!("{name}: its logs could not be kept after destroy: {}", summary(&d)));
            }
        }
    }
}

/// The store in the job's checkpoint bucket, when that bucket is in state and outlives the
/// apply (not among `deleted`).
fn job_bucket(state: &kiln_state::State, providers: &Providers, job: &Value, deleted: &[String]) -> Option<Store> {
    let bucket = job.get("checkpoint").and_then(|ck| ck.get("bucket"))?;
    let uri = bucket.get("uri").and_then(Value::as_str)?;
    let (addr, r) = state.resources.iter().find(|(a, r)| {
        r.kind == "bucket" && r.attributes.get("uri").and_then(Value::as_str) == Some(uri) && !deleted.contains(&a.to_string())
    })?;
    if is_local(&r.provider) {
        return bucket_dir(&r.attributes).filter(|b| b.is_dir()).map(|b| Store::Dir(b.join(BUCKET_ARCHIVE_DIR)));
    }
    Some(Store::Bucket { provider: providers.get(&r.provider)?, address: addr.to_string(), state: r.attributes.clone() })
}

fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

/// Reads every node's log (at most the last [`archive_max`] bytes of each) and writes the
/// archive `JOB_ID/` into `store`: the logs first, `job.json` last, so a reader never sees half
/// an archive.
async fn archive_job(
    src: &Source<'_>,
    store: &Store,
    workspace: &str,
    address: &str,
    job_id: &str,
    nodes: usize,
    keep: Duration,
) -> Result<(), Diagnostics> {
    let job = slug(job_id);
    store.remove(&job).await?;
    let mut written = 0;
    for node in 0..nodes {
        let mut log = Vec::new();
        let end = src.read(node, 0, Some(LogSeek::End)).await?;
        let mut all_nodes = end.all_nodes;
        // A log longer than the archive keeps: its end, from a line start.
        let mut at = end.next_offset.saturating_sub(archive_max());
        let mut skip_line = at > 0;
        if at > 0 {
            log.extend_from_slice(format!("[kiln: the first {at} bytes of this log were not kept after destroy]\n").as_bytes());
            at -= 1;
        }
        loop {
            let c = src.read(node, at, None).await?;
            all_nodes |= c.all_nodes;
            if c.data.is_empty() {
                break;
            }
            let mut data: &[u8] = &c.data;
            if skip_line {
                let Some(i) = data.iter().position(|b| *b == b'\n') else {
                    at = c.next_offset;
                    continue;
                };
                data = &data[i + 1..];
                skip_line = false;
            }
            log.extend_from_slice(data);
            at = c.next_offset;
        }
        store.put(&format!("{job}/node-{node}.log"), &log).await?;
        written += 1;
        if all_nodes {
            // One log holds every node's output.
            break;
        }
    }
    let now = Utc::now();
    let expires = now + chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(7));
    let meta = ArchiveMeta {
        workspace: workspace.to_string(),
        address: address.to_string(),
        job_id: job_id.to_string(),
        nodes: written,
        destroyed_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    let text = serde_json::to_vec_pretty(&meta.to_json()).map_err(|e| Diagnostic::error("E-LOGS-ARCHIVE", e.to_string()))?;
    store.put(&format!("{job}/job.json"), &text).await
}

/// Logs may hold what a job printed of its secrets: archives are private to their owner.
fn create_private_dir(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(p)
}

fn private_file(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_duration_ago_or_a_time() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_since("10m", now), Ok(now.timestamp() - 600));
        assert_eq!(parse_since("2026-01-02T02:04:05Z", now), Ok(now.timestamp() - 3600));
        assert_eq!(parse_since("2026-01-02T04:04:05+01:00", now), Ok(now.timestamp()));
        assert!(parse_since("yesterday", now).is_err());
    }

    #[test]
    fn tails() {
        assert_eq!(nth_line_start_from_end(b"a\nb\nc\n", 2), Some(2));
        assert_eq!(nth_line_start_from_end(b"a\nb\nc", 2), Some(2), "a last line without its newline counts");
        assert_eq!(nth_line_start_from_end(b"a\nb\nc\n", 3), None, "the first line may be cut: read further back");
        assert_eq!(nth_line_start_from_end(b"a\nb\nc\n", 1), Some(4));
    }

    #[test]
    fn prefixes_whole_lines_and_keeps_the_rest() {
        let mut partial = Vec::new();
        assert_eq!(prefixed("[node 1] ", &mut partial, b"one\ntw"), b"[node 1] one\n");
        assert_eq!(partial, b"tw");
        assert_eq!(prefixed("[node 1] ", &mut partial, b"o"), b"");
        assert_eq!(prefixed("[node 1] ", &mut partial, b"\nthree\nfour\n"), b"[node 1] two\n[node 1] three\n[node 1] four\n");
        assert!(partial.is_empty());
    }
}
