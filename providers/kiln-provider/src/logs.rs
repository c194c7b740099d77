//! A node's log time index, so `kiln logs --since` starts reading at the right byte.
//!
//! Logs are raw output, without times. While a node runs, its wrapper runs
//! [`log_indexer!`] in the background: every [`INDEX_INTERVAL_S`] seconds it looks at the log's
//! size and, when it grew, appends a line `EPOCH_SECONDS SIZE` to `node-RANK.idx` beside the
//! log (one more line when the node finishes). A quiet job writes nothing, so the index stays
//! small however long the job runs. [`TimeIndex::offset_since`] maps a time to the size the log
//! had at the last sample taken at or before it: everything after that offset was written after
//! that sample, so the answer is early by at most one interval, never late.

/// Seconds between two looks at a log's size.
pub const INDEX_INTERVAL_S: u64 = 2;

/// Bash: `kiln_log_index LOG INDEX` appends `EPOCH SIZE` to INDEX whenever LOG grew, every
/// [`INDEX_INTERVAL_S`] seconds, until it gets SIGTERM (its `sleep` ends with it, so nothing
/// of it outlives the node). `kiln_log_sample LOG INDEX` appends one sample now. A macro, so
/// wrappers written as string constants can `concat!` it.
#[macro_export]
macro_rules! log_indexer {
    () => {
        r#"kiln_log_sample() { s=$(stat -c %s "$1" 2>/dev/null || wc -c < "$1" 2>/dev/null) || s=0; printf '%(%s)T %s\n' -1 "${s:-0}" >> "$2"; }
kiln_log_index() {
  trap 'kill $kiln_sp 2>/dev/null; exit 0' TERM
  last=-1
  while :; do
    s=$(stat -c %s "$1" 2>/dev/null || wc -c < "$1" 2>/dev/null) || s=0
    if [ "${s:-0}" != "$last" ]; then printf '%(%s)T %s\n' -1 "${s:-0}" >> "$2"; last=${s:-0}; fi
    sleep 2 & kiln_sp=$!
    wait $kiln_sp
  done
}
"#
    };
}

/// The samples of a node's time index, `(epoch seconds, log size)`, in the order written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimeIndex(Vec<(i64, u64)>);

impl TimeIndex {
    /// Parses an index file; a line that is not two numbers (a line cut short by a node killed
    /// mid-write) is skipped.
    pub fn parse(text: &str) -> TimeIndex {
        TimeIndex(
            text.lines()
                .filter_map(|l| {
                    let (t, o) = l.trim().split_once(' ')?;
                    Some((t.parse().ok()?, o.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    /// An index from samples taken elsewhere (aws: each log part's end and upload time).
    pub fn from_samples(samples: Vec<(i64, u64)>) -> TimeIndex {
        TimeIndex(samples)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The offset from which the log holds only output written at or after `since`: the
    /// largest size sampled at or before `since` (0 when no sample is that old).
    pub fn offset_since(&self, since: i64) -> u64 {
        self.0.iter().filter(|(t, _)| *t <= since).map(|(_, o)| *o).max().unwrap_or(0)
    }
}

/// Awk over an index file on a remote host: `awk -v t=SINCE "$AWK_OFFSET_SINCE" FILE` prints
/// [`TimeIndex::offset_since`]'s answer.
pub const AWK_OFFSET_SINCE: &str =
    r#"NF == 2 && $1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ && $1 + 0 <= t + 0 && $2 + 0 > o { o = $2 + 0 } END { printf "%d\n", o }"#;

/// A duration written as numbers with units `s`, `m`, `h`, `d` (`90s`, `1h30m`, `7d`; `0`):
/// `kiln logs --since` and a job's `log_retention`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let s = s.trim();
    if s.is_empty() {
        return Err("an empty duration".to_string());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(format!("`{s}` is not a duration (unit `{c}`: use s, m, h or d)")),
        };
        let n: u64 = num.parse().map_err(|_| format!("`{s}`: a number must come before `{c}`"))?;
        total = n.checked_mul(unit).and_then(|x| total.checked_add(x)).ok_or_else(|| format!("`{s}` is too long"))?;
        num.clear();
    }
    if !num.is_empty() {
        if s == "0" {
            return Ok(Duration::ZERO);
        }
        return Err(format!("`{s}` needs a unit after {num} (s, m, h or d)"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(129_600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("10y").unwrap_err().contains("unit `y`"));
        assert!(parse_duration("m").unwrap_err().contains("a number must come before"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn offsets_since() {
        let idx = TimeIndex::parse("100 0\n102 10\n104 25\ngarbage\n110 40\n111");
        assert_eq!(idx.offset_since(99), 0, "before the first sample: the whole log");
        assert_eq!(idx.offset_since(100), 0);
        assert_eq!(idx.offset_since(103), 10, "the size at the last sample at or before the time");
        assert_eq!(idx.offset_since(104), 25);
        assert_eq!(idx.offset_since(1000), 40, "after the last sample: only what came after it");
        assert!(TimeIndex::parse("").is_empty());
        assert_eq!(TimeIndex::parse("").offset_since(5), 0);
    }

    #[test]
    fn awk_agrees() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("node-0.idx");
        std::fs::write(&f, "100 0\n102 10\n104 25\nbad line\n110 40\n11").unwrap();
        for t in [99, 100, 103, 104, 1000] {
            let out = Command::new("awk").args(["-v", &format!("t={t}"), AWK_OFFSET_SINCE]).arg(&f).output().unwrap();
            let got: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            assert_eq!(got, TimeIndex::parse(&std::fs::read_to_string(&f).unwrap()).offset_since(t), "since {t}");
        }
    }

    /// The indexer samples a growing log, records nothing while it does not grow, and ends on
    /// SIGTERM with its sleep.
    #[test]
    fn the_indexer_samples_growth() {
        let tmp = tempfile::tempdir().unwrap();
        let (log, idx) = (tmp.path().join("node-0.log"), tmp.path().join("node-0.idx"));
        std::fs::write(&log, "one\n").unwrap();
        let script = format!(
            "{}kiln_log_index \"$1\" \"$2\" & p=$!\nwhile [ ! -s \"$2\" ]; do sleep 0.05; done\nprintf 'two\\n' >> \"$1\"\nkiln_log_sample \"$1\" \"$2\"\nkill $p; wait $p\n",
            log_indexer!()
        );
        let st = Command::new("bash").args(["-c", &script, "t"]).arg(&log).arg(&idx).status().unwrap();
        assert!(st.success());
        let i = TimeIndex::parse(&std::fs::read_to_string(&idx).unwrap());
        let sizes: Vec<u64> = i.0.iter().map(|s| s.1).collect();
        assert_eq!(sizes.first(), Some(&4), "the first sample is the size at start: {sizes:?}");
        assert_eq!(sizes.last(), Some(&8), "the last sample is the final size: {sizes:?}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!(i.0.iter().all(|(t, _)| (now - 60..=now + 1).contains(t)), "times are epoch seconds: {i:?}");
    }
}
