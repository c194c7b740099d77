//! Jobs as `kiln jobs` and `kiln status` show them: each job's status, ID, nodes, times,
//! duration, restarts and exit codes, read from the attributes its provider reported (the
//! portable `job`'s `status`, `job_id`, `nodes`, `started_at`, `finished_at`, and the extras
//! `restarts` and `exit_codes`, or Slurm's single `exit_code`). A job its provider no longer
//! finds is `gone`.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use kiln_value::Value;
use serde::Serialize;

use crate::markdown::{cell, code};
use crate::FORMAT_VERSION;

/// `kiln jobs --json` (schema: `schemas/json/jobs-view.schema.json`).
#[derive(Debug, Clone, Serialize)]
pub struct JobsView {
    pub format_version: &'static str,
    pub jobs: Vec<JobView>,
}

/// One job. Fields the provider does not report (or reports as sensitive) are `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    pub address: String,
    /// The provider configuration serving it, such as `local` or `aws.west`.
    pub provider: String,
    /// One of pending, queued, running, succeeded, failed, lost, stopped; `gone` when the
    /// provider no longer finds the job.
    pub status: String,
    pub job_id: Option<String>,
    pub nodes: Option<u64>,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// RFC 3339; `null` while it runs.
    pub finished_at: Option<String>,
    /// Seconds from `started_at` to `finished_at`, or to now while it runs.
    pub duration_seconds: Option<u64>,
    pub restarts: Option<u64>,
    /// Seconds the job was down between a failure and its restart by `kiln watch`, summed over
    /// its restarts (from its recovery events); `null` when it never restarted so.
    pub time_lost_seconds: Option<u64>,
    /// Each node's exit code by rank (`null` for a node still running).
    pub exit_codes: Option<Vec<Option<i64>>>,
}

/// An attribute that is set, known and not sensitive.
pub(crate) fn attr<'a>(v: Option<&'a Value>, name: &str) -> Option<&'a Value> {
    v?.get(name).filter(|x| !x.is_sensitive() && !x.is_unknown() && !x.is_null())
}

pub(crate) fn text(v: Option<&Value>, name: &str) -> Option<String> {
    attr(v, name).and_then(Value::as_str).map(str::to_string)
}

pub(crate) fn whole(v: &Value) -> Option<u64> {
    v.as_number().filter(|n| n.fract().is_zero()).and_then(|n| u64::try_from(n).ok())
}

fn int(v: &Value) -> Option<i64> {
    v.as_number().filter(|n| n.fract().is_zero()).and_then(|n| i64::try_from(n).ok())
}

pub(crate) fn number(v: Option<&Value>, name: &str) -> Option<u64> {
    attr(v, name).and_then(whole)
}

/// An RFC 3339 time.
pub(crate) fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&Utc))
}

/// Whole seconds from `start` to `end` (or `now`), never negative.
pub(crate) fn seconds(start: Option<&str>, end: Option<&str>, now: DateTime<Utc>) -> Option<u64> {
    let start = time(start?)?;
    let end = end.and_then(time).unwrap_or(now);
    Some((end - start).num_seconds().max(0) as u64)
}

/// `12m05s`, as `kiln jobs` has always shown durations.
pub fn minutes(secs: u64) -> String {
    format!("{}m{:02}s", secs / 60, secs % 60)
}

impl JobView {
    /// A job at `address` served by `provider`, from what its provider read now (`None`: gone).
    pub fn new(address: &str, provider: &str, current: Option<&Value>, now: DateTime<Utc>) -> JobView {
        let status = match current {
            None => "gone".to_string(),
            Some(_) => text(current, "status").unwrap_or_else(|| "unknown".to_string()),
        };
        let started_at = text(current, "started_at");
        let finished_at = text(current, "finished_at");
        let exit_codes = match (attr(current, "exit_codes").and_then(Value::as_list), attr(current, "exit_code").and_then(int)) {
            (Some(codes), _) => Some(codes.iter().map(|c| if c.is_sensitive() { None } else { int(c) }).collect()),
            (None, Some(code)) => Some(vec![Some(code)]),
            (None, None) => None,
        };
        JobView {
            address: address.to_string(),
            provider: provider.to_string(),
            status,
            job_id: text(current, "job_id"),
            nodes: number(current, "nodes"),
            duration_seconds: seconds(started_at.as_deref(), finished_at.as_deref(), now),
            started_at,
            finished_at,
            restarts: number(current, "restarts"),
            time_lost_seconds: None,
            exit_codes,
        }
    }

    /// With the time lost to its restarts, from its recovery events (oldest first): each
    /// `relaunched` counts from the failure its `detected` event names (the detection time less
    /// its latency) to the relaunch.
    pub fn with_events(mut self, events: &[kiln_state::JobEvent]) -> JobView {
        let mut down_since = None;
        let mut lost = None;
        for e in events {
            let Some(at) = time(&e.at) else { continue };
            match e.kind.as_str() {
                "detected" => down_since = Some(at - chrono::Duration::milliseconds(e.latency_ms.unwrap_or(0) as i64)),
                "relaunched" => {
                    if let Some(since) = down_since.take() {
                        *lost.get_or_insert(0) += (at - since).num_seconds().max(0) as u64;
                    }
                }
                _ => {}
            }
        }
        self.time_lost_seconds = lost;
        self
    }

    /// The exit codes as people read them: `0,1,-` (`-` for a node still running).
    pub fn exit_text(&self) -> String {
        match &self.exit_codes {
            Some(codes) => codes.iter().map(|c| c.map_or("-".to_string(), |c| c.to_string())).collect::<Vec<_>>().join(","),
            None => String::new(),
        }
    }
}

/// Every job of a state, as read now.
pub struct Jobs(pub Vec<JobView>);

/// The human table's header and rows (the columns `kiln jobs` has always printed, and LOST, the
/// time lost to restarts, where a job has it; RESTARTS stays last).
pub fn table(jobs: &[JobView]) -> String {
    let lost = jobs.iter().any(|j| j.time_lost_seconds.is_some());
    let lost_cell = |s: &str| if lost { format!(" {s:>8}") } else { String::new() };
    let mut out =
        format!("{:<32} {:<10} {:<26} {:>10}{} {:>8}\n", "ADDRESS", "STATUS", "STARTED", "DURATION", lost_cell("LOST"), "RESTARTS");
    for j in jobs {
        let _ = writeln!(
            out,
            "{:<32} {:<10} {:<26} {:>10}{} {:>8}",
            j.address,
            j.status,
            j.started_at.as_deref().unwrap_or(""),
            j.duration_seconds.map(minutes).unwrap_or_default(),
            lost_cell(&j.time_lost_seconds.map(minutes).unwrap_or_default()),
            j.restarts.map(|r| r.to_string()).unwrap_or_default()
        );
    }
    out
}

/// The jobs as a markdown table.
pub fn markdown_table(jobs: &[JobView]) -> String {
    let mut out = String::from("| Job | Status | Job ID | Nodes | Started | Duration | Restarts | Exit codes |\n");
    out += "| --- | --- | --- | ---: | --- | ---: | ---: | --- |\n";
    for j in jobs {
        let opt = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            code(&j.address),
            cell(&j.status),
            j.job_id.as_deref().map(code).unwrap_or_default(),
            opt(j.nodes),
            cell(j.started_at.as_deref().unwrap_or("")),
            j.duration_seconds.map(minutes).unwrap_or_default(),
            opt(j.restarts),
            cell(&j.exit_text()),
        );
    }
    out
}

impl crate::View for Jobs {
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(JobsView { format_version: FORMAT_VERSION, jobs: self.0.clone() }).expect("a jobs view serializes")
    }

    fn human(&self) -> String {
        if self.0.is_empty() {
            return "No jobs.\n".to_string();
        }
        table(&self.0)
    }

    fn markdown(&self) -> String {
        if self.0.is_empty() {
            return "No jobs.\n".to_string();
        }
        markdown_table(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::View;

    fn now() -> DateTime<Utc> {
        time("2026-01-01T01:00:00Z").unwrap()
    }

    fn job(pairs: &[(&str, Value)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn time_lost_counts_each_restart_from_the_failure_to_the_relaunch() {
        let e = |kind: &str, at: &str, latency_ms: Option<u64>| kiln_state::JobEvent {
            at: at.to_string(),
            kind: kind.to_string(),
            category: Some("host_failure".to_string()),
            detail: String::new(),
            attempt: 0,
            latency_ms,
        };
        let events = [
            e("detected", "2026-01-01T00:00:10Z", Some(3_000)),
            e("relaunched", "2026-01-01T00:00:20Z", None),
            e("paused", "2026-01-01T00:10:00Z", None),
            e("detected", "2026-01-01T00:20:00Z", None),
            e("relaunched", "2026-01-01T00:20:05Z", None),
        ];
        let j = JobView::new("job.t", "local", Some(&job(&[("status", Value::from("running"))])), now());
        assert_eq!(j.clone().with_events(&events).time_lost_seconds, Some(13 + 5));
        assert_eq!(j.clone().with_events(&[]).time_lost_seconds, None, "never restarted: no figure, not 0");
        assert!(!table(std::slice::from_ref(&j)).contains("LOST"), "no column without a figure");
        assert!(table(&[j.with_events(&events)]).lines().next().unwrap().ends_with("LOST RESTARTS"));
    }

    #[test]
    fn a_job_reads_its_providers_attributes() {
        let v = job(&[
            ("status", Value::from("failed")),
            ("job_id", Value::from("j-1")),
            ("nodes", Value::from(2i64)),
            ("started_at", Value::from("2026-01-01T00:00:00Z")),
            ("finished_at", Value::from("2026-01-01T00:12:05Z")),
            ("restarts", Value::from(1i64)),
            ("exit_codes", Value::List(vec![Value::from(0i64), Value::from(3i64)])),
        ]);
        let j = JobView::new("job.train", "local", Some(&v), now());
        assert_eq!(j.status, "failed");
        assert_eq!(j.duration_seconds, Some(725));
        assert_eq!(j.exit_codes, Some(vec![Some(0), Some(3)]));
        assert_eq!(j.exit_text(), "0,3");
        let human = Jobs(vec![j.clone()]).human();
        let row = human.lines().nth(1).unwrap();
        assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["job.train", "failed", "2026-01-01T00:00:00Z", "12m05s", "1"]);
        let md = Jobs(vec![j]).markdown();
        assert!(md.contains("| `job.train` | failed | `j-1` | 2 | 2026-01-01T00:00:00Z | 12m05s | 1 | 0,3 |"), "{md}");
    }

    #[test]
    fn a_running_job_lasts_until_now_and_a_gone_one_has_no_fields() {
        let running = job(&[
            ("status", Value::from("running")),
            ("started_at", Value::from("2026-01-01T00:30:00Z")),
            ("finished_at", Value::Null),
            ("exit_codes", Value::List(vec![Value::Null])),
        ]);
        let j = JobView::new("job.a", "local", Some(&running), now());
        assert_eq!((j.duration_seconds, j.finished_at.as_deref()), (Some(1800), None));
        assert_eq!(j.exit_text(), "-");
        let gone = JobView::new("job.b", "aws", None, now());
        assert_eq!(gone.status, "gone");
        assert_eq!((gone.job_id, gone.duration_seconds, gone.exit_codes), (None, None, None));
        let slurm =
            JobView::new("job.c", "slurm", Some(&job(&[("status", Value::from("succeeded")), ("exit_code", Value::from(0i64))])), now());
        assert_eq!(slurm.exit_codes, Some(vec![Some(0)]), "Slurm's one exit code");
        assert_eq!(Jobs(vec![]).human(), "No jobs.\n");
        assert_eq!(Jobs(vec![]).json(), serde_json::json!({"format_version": "1.0", "jobs": []}));
    }

    #[test]
    fn sensitive_attributes_are_left_out() {
        let v = job(&[("status", Value::from("running")), ("job_id", Value::from("secret-id").sensitive())]);
        let j = JobView::new("job.a", "local", Some(&v), now());
        assert_eq!(j.job_id, None);
        assert!(!Jobs(vec![j]).json().to_string().contains("secret-id"));
    }
}
