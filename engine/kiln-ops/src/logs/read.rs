//! Reading a node's log: through its provider (a live job) or from an archive; where printing
//! starts for `--tail` and `--since` (see the [module's documentation](super)).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::logs::parse_duration;
use kiln_provider::{LogSeek, LogsRequest, Provider};
use kiln_value::Value;

use super::archive::Store;

/// A job's node count from its attributes (1 when it does not say).
pub fn node_count(v: &Value) -> usize {
    v.get("nodes").and_then(Value::as_number).and_then(|n| n.to_string().parse::<usize>().ok()).map_or(1, |n| n.max(1))
}

/// Where a node's log is read from.
pub enum Source<'a> {
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
pub struct Chunk {
    pub data: Vec<u8>,
    pub next_offset: u64,
    pub finished: bool,
    pub all_nodes: bool,
}

/// Most bytes one read of an archive returns.
const ARCHIVE_CHUNK: u64 = 1 << 20;

impl Source<'_> {
    pub async fn read(&self, node: usize, offset: u64, seek: Option<LogSeek>) -> Result<Chunk, Diagnostics> {
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

/// Where node `node`'s printing starts, and whether it starts inside a line.
pub async fn start(src: &Source<'_>, node: usize, tail: Option<usize>, since: Option<i64>) -> Result<(u64, bool), Diagnostics> {
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

/// `--since`: a duration ago (`90s`, `10m`, `2h`, `1d12h`) or an RFC 3339 time, as seconds
/// since the Unix epoch.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.timestamp());
    }
    let d = parse_duration(s)?;
    Ok(now.timestamp() - d.as_secs() as i64)
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
}
