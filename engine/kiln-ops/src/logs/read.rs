//! Reading a node's log: through its provider (a live job) or from an archive; where printing
//! starts for `--tail` and `--since` (see the [module's documentation](super)).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::logs::parse_duration;
use kiln_provider::{LogSeek, LogsRequest, Provider};
use kiln_value::Value;

use super::archive::Store;

/// The most nodes a job's attributes are believed to have (a bound on what is allocated per node).
pub const MAX_NODES: usize = 1 << 16;

/// A job's node count from its attributes (1 when it does not say; at most [`MAX_NODES`]).
pub fn node_count(v: &Value) -> usize {
    v.get("nodes").and_then(Value::as_number).and_then(|n| n.to_string().parse::<usize>().ok()).map_or(1, |n| n.clamp(1, MAX_NODES))
}

/// The longest partial line [`Lines`] keeps before it passes it on as a line of its own.
pub const MAX_PARTIAL: usize = 64 << 10;

/// A node's output cut into lines, each given a prefix: a line ends at `\n` or `\r` (kept;
/// progress bars such as tqdm's redraw with `\r` alone), and what follows the last line end is
/// kept until its end comes, or passed on, ended by a newline, once it is longer than
/// [`MAX_PARTIAL`] (or at [`Lines::finish`]).
#[derive(Default)]
pub struct Lines {
    partial: Vec<u8>,
}

fn line_end(b: &u8) -> bool {
    *b == b'\n' || *b == b'\r'
}

impl Lines {
    /// The whole lines of what was kept and `data`, each after `prefix`.
    pub fn push(&mut self, prefix: &str, data: &[u8]) -> Vec<u8> {
        self.partial.extend_from_slice(data);
        let mut out = Vec::new();
        if let Some(last) = self.partial.iter().rposition(line_end) {
            let rest = self.partial.split_off(last + 1);
            let complete = std::mem::replace(&mut self.partial, rest);
            out.reserve(complete.len() + 16);
            for line in complete.split_inclusive(line_end) {
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(line);
            }
        }
        if self.partial.len() > MAX_PARTIAL {
            out.extend(self.finish(prefix));
        }
        out
    }

    /// What is kept, as a line after `prefix` (nothing when nothing is kept).
    pub fn finish(&mut self, prefix: &str) -> Vec<u8> {
        if self.partial.is_empty() {
            return Vec::new();
        }
        let mut out = prefix.as_bytes().to_vec();
        out.append(&mut self.partial);
        out.push(b'\n');
        out
    }

    pub fn is_empty(&self) -> bool {
        self.partial.is_empty()
    }
}

/// The last line of `text` that holds more than blanks (lines ending at `\n` or `\r`).
pub fn last_line(text: &[u8]) -> Option<String> {
    text.split(line_end).rev().find(|l| !l.iter().all(u8::is_ascii_whitespace)).map(|l| String::from_utf8_lossy(l).into_owned())
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

/// How much of a log [`tail_start`] reads at once.
const TAIL_BLOCK: u64 = 64 << 10;

/// The offset of the first of the last `n` lines of node `node`'s log as it is now: reads back
/// from the end a block at a time, counting newlines, so whatever `n`, only one block is held.
async fn tail_start(src: &Source<'_>, node: usize, n: usize) -> Result<u64, Diagnostics> {
    let size = src.read(node, 0, Some(LogSeek::End)).await?.next_offset;
    if n == 0 {
        return Ok(size);
    }
    let (mut to, mut seen) = (size, 0);
    while to > 0 {
        let from = to.saturating_sub(TAIL_BLOCK);
        let buf = read_range(src, node, from, to).await?;
        if (buf.len() as u64) < to - from {
            // The log shrank meanwhile.
            return Ok(from);
        }
        if let Some(i) = line_start_back(&buf, to == size, n, &mut seen) {
            return Ok(from + i as u64);
        }
        to = from;
    }
    Ok(0)
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

/// Counts the newlines of `buf` back from its end into `seen` (`last`: `buf` ends the log, where
/// a final newline ends the last line and starts none); where the `n`th line from the end starts,
/// once `seen` reaches `n` (a last line without its newline counts as a line).
fn line_start_back(buf: &[u8], last: bool, n: usize, seen: &mut usize) -> Option<usize> {
    let end = if last && buf.last() == Some(&b'\n') { buf.len() - 1 } else { buf.len() };
    for i in (0..end).rev() {
        if buf[i] == b'\n' {
            *seen += 1;
            if *seen == n {
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
    fn lines_are_prefixed_whole() {
        let mut l = Lines::default();
        assert_eq!(l.push("[node 1] ", b"one\ntw"), b"[node 1] one\n");
        assert_eq!(l.push("[node 1] ", b"o"), b"");
        assert_eq!(l.push("[node 1] ", b"\nthree\nfour\n"), b"[node 1] two\n[node 1] three\n[node 1] four\n");
        assert!(l.is_empty());
        assert_eq!(l.push("p ", b"end"), b"");
        assert_eq!(l.finish("p "), b"p end\n");
        assert_eq!(l.finish("p "), b"", "finished once");
    }

    /// tqdm redraws its bar with `\r` and no newline: each redraw is a line, its `\r` kept.
    #[test]
    fn a_carriage_return_ends_a_line() {
        let mut l = Lines::default();
        assert_eq!(l.push("p ", b" 10%\r 20%\r 3"), b"p  10%\rp  20%\r");
        assert_eq!(l.push("p ", b"0%\r\n"), b"p  30%\rp \n");
        assert_eq!(last_line(b" 10%\r 20%\r\n\n"), Some(" 20%".to_string()));
        assert_eq!(last_line(b"  \n"), None);
    }

    /// Output without any line end is not kept whole: past [`MAX_PARTIAL`] it is passed on.
    #[test]
    fn a_long_partial_line_is_passed_on() {
        let mut l = Lines::default();
        let chunk = vec![b'x'; 1000];
        let mut printed = 0;
        for _ in 0..1000 {
            printed += l.push("p ", &chunk).len();
            assert!(l.partial.len() <= MAX_PARTIAL, "kept {}", l.partial.len());
        }
        assert!(printed > 900_000, "{printed}");
    }

    #[test]
    fn a_huge_node_count_is_bounded() {
        let v = |n: &str| Value::from_json(&serde_json::from_str(&format!("{{\"nodes\": {n}}}")).unwrap());
        assert_eq!(node_count(&v("3")), 3);
        assert_eq!(node_count(&v("0")), 1);
        assert_eq!(node_count(&v("1000000000000")), MAX_NODES);
    }

    fn nth_line_start_from_end(buf: &[u8], n: usize) -> Option<usize> {
        line_start_back(buf, true, n, &mut 0)
    }

    #[test]
    fn tails() {
        assert_eq!(nth_line_start_from_end(b"a\nb\nc\n", 2), Some(2));
        assert_eq!(nth_line_start_from_end(b"a\nb\nc", 2), Some(2), "a last line without its newline counts");
        assert_eq!(nth_line_start_from_end(b"a\nb\nc\n", 3), None, "the first line may be cut: read further back");
        assert_eq!(nth_line_start_from_end(b"a\nb\nc\n", 1), Some(4));
        let mut seen = 1;
        assert_eq!(line_start_back(b"x\ny\n", false, 3, &mut seen), Some(2), "counted on from an earlier block");
    }

    /// `--tail N` for an N larger than one block reads back block by block.
    #[tokio::test]
    async fn a_long_tail_is_counted_back_block_by_block() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Dir(dir.path().to_path_buf());
        std::fs::create_dir(dir.path().join("j")).unwrap();
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        assert!(text.len() as u64 > 8 * TAIL_BLOCK);
        std::fs::write(dir.path().join("j/node-0.log"), &text).unwrap();
        let src = Source::Archive { store: &store, job: "j" };
        let at = tail_start(&src, 0, 90_000).await.unwrap() as usize;
        assert!(text[at..].starts_with("line 10000\n"), "{}", &text[at..at + 20]);
        assert_eq!(tail_start(&src, 0, 200_000).await.unwrap(), 0, "fewer lines than asked: all of them");
        assert_eq!(tail_start(&src, 0, 1).await.unwrap() as usize, text.len() - "line 99999\n".len());
    }
}
