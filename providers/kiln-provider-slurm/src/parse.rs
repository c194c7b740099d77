//! Parsers for what Slurm's commands print, in the machine-readable forms kiln asks for:
//! `scontrol show ... -o` (one `Key=Value` record per line), `sinfo -o` and `squeue -O` with `|`
//! between fields, `sacct --parsable2`, and `sbatch --parsable`. Pure functions, tested on
//! outputs recorded from a real Slurm (`testdata/`).

use std::collections::BTreeMap;

use kiln_provider::portable::job::JobStatus;

/// One `scontrol show ... -o` record: `Key=Value` pairs separated by spaces. A value may hold
/// spaces (`OS=Linux 6.1.0 #1 SMP`): a word that does not start with `Key=` continues the
/// previous value.
pub fn scontrol_record(line: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for word in line.split_whitespace() {
        match word.split_once('=').filter(|(k, _)| is_key(k)) {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
                last = Some(k.to_string());
            }
            None => {
                if let Some(v) = last.as_ref().and_then(|k| out.get_mut(k)) {
                    v.push(' ');
                    v.push_str(word);
                }
            }
        }
    }
    out
}

/// Keys are words such as `JobId`, `CPUs/Task`, `AllocNode:Sid`.
fn is_key(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_alphabetic()) && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '/'))
}

/// Every record of a `scontrol show ... -o` output (blank lines skipped).
pub fn scontrol_records(text: &str) -> Vec<BTreeMap<String, String>> {
    text.lines().filter(|l| !l.trim().is_empty()).map(scontrol_record).filter(|r| !r.is_empty()).collect()
}

/// A value Slurm prints for "nothing": `(null)`, `N/A`, `None`, `NONE`, `Unknown` or empty.
pub fn nothing(v: &str) -> bool {
    let v = v.trim();
    v.is_empty() || ["(null)", "n/a", "none", "unknown"].iter().any(|n| v.eq_ignore_ascii_case(n))
}

/// One generic resource: `gpu:a100:8(S:0-1)` is `gpu`, type `a100`, count 8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gres {
    pub name: String,
    pub kind: Option<String>,
    pub count: u64,
}

/// A node's `Gres` (from `sinfo %G` or `scontrol show node`): comma-separated
/// `NAME[:TYPE][:COUNT][(S:...)]`; `(null)` means none.
pub fn gres(text: &str) -> Vec<Gres> {
    if nothing(text) {
        return Vec::new();
    }
    split_top_level(text)
        .into_iter()
        .filter_map(|item| {
            let item = item.split('(').next().unwrap_or_default().trim();
            let mut parts: Vec<&str> = item.split(':').collect();
            let name = parts.first().filter(|n| !n.is_empty())?.to_string();
            parts.remove(0);
            let count = match parts.last().map(|c| parse_count(c)) {
                Some(Some(n)) => {
                    parts.pop();
                    n
                }
                _ => 1,
            };
            let kind = parts.first().filter(|t| !t.is_empty()).map(|t| t.to_string());
            Some(Gres { name, kind, count })
        })
        .collect()
}

/// Commas outside parentheses: `gpu:a100:2(S:0,1),mps:100`.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// `8`, `2K` (thousands, as Slurm abbreviates large counts).
fn parse_count(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.strip_suffix(['K', 'k']) {
        Some(d) => (d, 1024),
        None => (s, 1),
    };
    digits.parse::<u64>().ok().map(|n| n * mult)
}

/// GPUs among a node's GRES: the count of `gpu` entries of type `kind` (any type when `None`).
pub fn gpu_count(gres: &[Gres], kind: Option<&str>) -> u64 {
    gres.iter()
        .filter(|g| g.name == "gpu")
        .filter(|g| kind.is_none_or(|k| g.kind.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(k))))
        .map(|g| g.count)
        .sum()
}

/// One line of `sinfo -h -N -o '%R|%N|%T|%c|%m|%G|%a'`: a node as one partition sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SinfoNode {
    pub partition: String,
    pub node: String,
    /// Long state, lower case (`idle`, `mixed`, `allocated`, `drained`, `down*`, ...).
    pub state: String,
    pub cpus: u64,
    pub memory_mb: u64,
    pub gres: Vec<Gres>,
    /// The partition's availability (`up`, `down`, `drain`, `inact`).
    pub available: String,
}

/// The `sinfo -o` format [`sinfo_nodes`] reads.
pub const SINFO_FORMAT: &str = "%R|%N|%T|%c|%m|%G|%a";

pub fn sinfo_nodes(text: &str) -> Vec<SinfoNode> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('|').collect();
            if f.len() < 7 {
                return None;
            }
            Some(SinfoNode {
                partition: f[0].trim_end_matches('*').to_string(),
                node: f[1].to_string(),
                state: f[2].to_lowercase(),
                cpus: f[3].trim().trim_end_matches('+').parse().unwrap_or(0),
                memory_mb: f[4].trim().trim_end_matches('+').parse().unwrap_or(0),
                gres: gres(f[5]),
                available: f[6].to_lowercase(),
            })
        })
        .collect()
}

/// The `squeue -O` format [`squeue_rows`] reads (`:|` ends each field with `|`, unpadded).
pub const SQUEUE_FORMAT: &str = "JobID:|,State:|,Reason:|,RestartCnt:|,StartTime:|,EndTime:|,NodeList:|,NumNodes:|,Name:|";

/// A job as `squeue` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SqueueRow {
    pub job_id: String,
    pub state: String,
    pub reason: Option<String>,
    pub restarts: u64,
    pub start: Option<String>,
    pub end: Option<String>,
    pub node_list: Option<String>,
    pub nodes: u64,
    pub name: String,
}

pub fn squeue_rows(text: &str) -> Vec<SqueueRow> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().splitn(9, '|').collect();
            if f.len() < 9 || f[0].is_empty() {
                return None;
            }
            let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !nothing(s));
            Some(SqueueRow {
                job_id: f[0].trim().to_string(),
                state: state_word(f[1]),
                reason: opt(f[2]),
                restarts: f[3].trim().parse().unwrap_or(0),
                start: opt(f[4]),
                end: opt(f[5]),
                node_list: opt(f[6]),
                nodes: f[7].trim().parse().unwrap_or(0),
                name: f[8].trim().trim_end_matches('|').to_string(),
            })
        })
        .collect()
}

/// The `sacct -o` fields [`sacct_rows`] reads.
pub const SACCT_FIELDS: &str = "JobID,JobName,State,ExitCode,Start,End,NodeList";

/// A finished (or running) job as accounting, or the job completion log, records it.
#[derive(Debug, Clone, PartialEq)]
pub struct SacctRow {
    pub job_id: String,
    pub name: String,
    pub state: String,
    /// The batch script's exit code; 128 + N when signal N ended it.
    pub exit_code: Option<i64>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub node_list: Option<String>,
}

/// `sacct --parsable2 -n -o SACCT_FIELDS` (or `sacct -c ...`): job steps (`123.batch`) skipped;
/// for a job listed more than once (requeued), the last line wins.
pub fn sacct_rows(text: &str) -> Vec<SacctRow> {
    let mut out: Vec<SacctRow> = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.trim().split('|').collect();
        if f.len() < 7 || f[0].is_empty() || f[0].contains('.') {
            continue;
        }
        let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !nothing(s));
        let row = SacctRow {
            job_id: f[0].to_string(),
            name: f[1].to_string(),
            state: state_word(f[2]),
            exit_code: exit_code(f[3]),
            start: opt(f[4]),
            end: opt(f[5]),
            node_list: opt(f[6]).filter(|n| n != "None assigned"),
        };
        out.retain(|r| r.job_id != row.job_id);
        out.push(row);
    }
    out
}

/// `CANCELLED by 0` → `CANCELLED`; `COMPLETING,REQUEUED` keeps its first word too.
fn state_word(s: &str) -> String {
    s.split([' ', ',', '+']).next().unwrap_or_default().trim().to_uppercase()
}

/// Slurm's `CODE:SIGNAL` → the code, or 128 + SIGNAL when a signal ended the script.
pub fn exit_code(s: &str) -> Option<i64> {
    let (code, signal) = s.trim().split_once(':')?;
    let (code, signal): (i64, i64) = (code.parse().ok()?, signal.parse().ok()?);
    Some(if signal != 0 && code == 0 { 128 + signal } else { code })
}

/// The job ID `sbatch --parsable` printed (`123` or `123;cluster`).
pub fn sbatch_job_id(stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == '_')).then(|| id.to_string())
}

/// What kiln reports for a Slurm job state. A job waiting in Slurm's queue is `pending`, as
/// states written before say (not `queued`: a changed word would read as a change).
pub fn status_of(state: &str) -> JobStatus {
    match state {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" | "SUSPENDED" | "STOPPED"
        | "SPECIAL_EXIT" | "RESIZING" | "SIGNALING" | "STAGE_OUT" => JobStatus::Pending,
        "RUNNING" | "COMPLETING" => JobStatus::Running,
        "COMPLETED" => JobStatus::Succeeded,
        "NODE_FAIL" | "BOOT_FAIL" | "PREEMPTED" | "REVOKED" => JobStatus::Lost,
        // FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, DEADLINE, and anything new.
        _ => JobStatus::Failed,
    }
}

/// A state after which the job never runs again (unless kiln submits a new one).
pub fn is_terminal(state: &str) -> bool {
    status_of(state).is_terminal()
}

/// Slurm's local `YYYY-MM-DDTHH:MM:SS` as RFC 3339 in UTC; `None` for `Unknown`, `N/A`, ...
pub fn time(s: &str) -> Option<String> {
    use chrono::TimeZone;
    let naive = chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S").ok()?;
    let local = chrono::Local.from_local_datetime(&naive).earliest()?;
    Some(local.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn scontrol_job_record() {
        let recs = scontrol_records(&testdata("scontrol-show-job.txt"));
        assert_eq!(recs.len(), 2);
        let r = &recs[0];
        assert_eq!(r["JobId"], "4");
        assert_eq!(r["JobState"], "COMPLETED");
        assert_eq!(r["ExitCode"], "0:0");
        assert_eq!(r["CPUs/Task"], "1");
        assert_eq!(r["NodeList"], "vm");
        assert!(r["TRES"].starts_with("cpu=2,mem=512M"), "{}", r["TRES"]);
        assert_eq!(r["Power"], "");
        assert_eq!(recs[1]["JobName"], "kiln-train-1a2b3c4d");
        assert_eq!(recs[1]["JobState"], "PENDING");
        assert_eq!(recs[1]["Reason"], "BeginTime");
        assert_eq!(recs[1]["Restarts"], "1");
        assert_eq!(recs[1]["NumTasks"], "2");
    }

    #[test]
    fn scontrol_values_with_spaces() {
        let r = scontrol_record(&testdata("scontrol-show-node.txt"));
        assert_eq!(r["OS"], "Linux 6.18.44-fc-v669 #1 SMP PREEMPT_DYNAMIC @0");
        assert_eq!(r["NodeAddr"], "127.0.0.1");
        assert_eq!(r["RealMemory"], "23081");
        assert_eq!(r["Gres"], "gpu:kilngpu:2");
    }

    #[test]
    fn partition_records() {
        let recs = scontrol_records(&testdata("scontrol-show-partition.txt"));
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0]["PartitionName"], "debug");
        assert_eq!(recs[0]["Default"], "YES");
        assert_eq!(recs[0]["MaxTime"], "UNLIMITED");
        assert_eq!(recs[0]["TotalNodes"], "1");
        let gpu = scontrol_records(&testdata("scontrol-show-partition-gpu.txt"));
        assert_eq!(gpu[0]["State"], "UP");
        assert_eq!(gpu[0]["Nodes"], "gpu[01-04]");
        assert_eq!(gpu[0]["MaxTime"], "2-00:00:00");
    }

    #[test]
    fn gres_forms() {
        assert_eq!(gres("(null)"), vec![]);
        assert_eq!(gres("gpu:kilngpu:2"), vec![Gres { name: "gpu".into(), kind: Some("kilngpu".into()), count: 2 }]);
        assert_eq!(
            gres("gpu:a100:8(S:0-1),mps:400"),
            vec![Gres { name: "gpu".into(), kind: Some("a100".into()), count: 8 }, Gres { name: "mps".into(), kind: None, count: 400 }]
        );
        assert_eq!(gres("gpu:4"), vec![Gres { name: "gpu".into(), kind: None, count: 4 }]);
        let g = gres("gpu:h100:4(S:0,1),gpu:a100:2(S:1)");
        assert_eq!(g.len(), 2);
        assert_eq!(gpu_count(&g, None), 6);
        assert_eq!(gpu_count(&g, Some("A100")), 2);
        assert_eq!(gpu_count(&g, Some("v100")), 0);
    }

    #[test]
    fn sinfo_lines() {
        let nodes = sinfo_nodes(&testdata("sinfo-nodes.txt"));
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].partition, "debug");
        assert_eq!(nodes[0].node, "vm");
        assert_eq!(nodes[0].state, "idle");
        assert_eq!(nodes[0].cpus, 8);
        assert_eq!(nodes[0].memory_mb, 23081);
        assert_eq!(nodes[0].available, "up");
        assert_eq!(gpu_count(&nodes[0].gres, Some("kilngpu")), 2);
        let nodes = sinfo_nodes(&testdata("sinfo-nodes-gpu.txt"));
        let gpu: Vec<&SinfoNode> = nodes.iter().filter(|n| n.partition == "gpu").collect();
        assert_eq!(gpu.len(), 4);
        assert_eq!(gpu[3].state, "down*");
        assert_eq!(gpu_count(&gpu[0].gres, Some("a100")), 8);
        assert_eq!(gpu_count(&nodes[4].gres, None), 0);
    }

    #[test]
    fn squeue_lines() {
        let rows = squeue_rows(&testdata("squeue.txt"));
        let ids: Vec<&str> = rows.iter().map(|r| r.job_id.as_str()).collect();
        assert_eq!(ids, ["8", "4", "5"]);
        assert_eq!(rows[0].state, "CANCELLED");
        assert_eq!(rows[0].node_list, None);
        assert_eq!(rows[0].name, "kiln-waiting-9f8e7d6c");
        assert_eq!(rows[1].state, "COMPLETED");
        assert_eq!(rows[1].reason, None);
        assert_eq!(rows[1].start.as_deref(), Some("2026-11-25T05:38:04"));
        assert_eq!(rows[1].node_list.as_deref(), Some("vm"));
        assert_eq!(rows[2].state, "PENDING");
        assert_eq!(rows[2].reason.as_deref(), Some("BeginTime"));
        assert_eq!(rows[2].restarts, 1);
        assert_eq!(rows[2].end, None);
        assert_eq!(rows[2].name, "kiln-train-1a2b3c4d");
    }

    #[test]
    fn sacct_lines() {
        let rows = sacct_rows(&testdata("sacct.txt"));
        let ids: Vec<&str> = rows.iter().map(|r| r.job_id.as_str()).collect();
        assert_eq!(ids, ["2", "3", "4", "5", "8"]);
        assert_eq!(rows[0].state, "FAILED");
        assert_eq!(rows[0].exit_code, Some(3));
        assert_eq!(rows[1].state, "CANCELLED");
        assert_eq!(rows[2].exit_code, Some(0));
        assert_eq!(rows[4].node_list, None);
        let rows = sacct_rows(&testdata("sacct-accounting.txt"));
        let ids: Vec<&str> = rows.iter().map(|r| r.job_id.as_str()).collect();
        assert_eq!(ids, ["41", "42", "43"], "steps are skipped");
        assert_eq!(rows[0].node_list.as_deref(), Some("gpu[01-02]"));
        assert_eq!(rows[1].state, "OUT_OF_MEMORY");
        assert_eq!(rows[1].exit_code, Some(253));
        assert_eq!(rows[2].state, "CANCELLED");
        assert_eq!(rows[2].start, None);
        assert_eq!(rows[2].node_list, None);
    }

    #[test]
    fn sbatch_output() {
        assert_eq!(sbatch_job_id("123\n").as_deref(), Some("123"));
        assert_eq!(sbatch_job_id("4567;cluster2\n").as_deref(), Some("4567"));
        assert_eq!(sbatch_job_id("sbatch: error: Batch job submission failed"), None);
    }

    #[test]
    fn states() {
        assert_eq!(status_of("PENDING"), JobStatus::Pending);
        assert_eq!(status_of("COMPLETING"), JobStatus::Running);
        assert_eq!(status_of("COMPLETED"), JobStatus::Succeeded);
        assert_eq!(status_of("TIMEOUT"), JobStatus::Failed);
        assert_eq!(status_of("CANCELLED"), JobStatus::Failed);
        assert_eq!(status_of("NODE_FAIL"), JobStatus::Lost);
        assert!(is_terminal("OUT_OF_MEMORY"));
        assert!(!is_terminal("REQUEUED"));
        assert_eq!(exit_code("0:9"), Some(137));
        assert_eq!(exit_code("2:0"), Some(2));
        assert_eq!(exit_code(""), None);
    }

    #[test]
    fn times() {
        assert_eq!(time("Unknown"), None);
        assert_eq!(time("N/A"), None);
        let t = time("2026-11-25T05:34:41").unwrap();
        assert!(t.ends_with('Z') && t.len() == 20, "{t}");
    }
}
