//! Job commands: `kiln logs`, `kiln jobs`, and `apply --wait`. Jobs are resources of the
//! portable kind `job`; their provider reports `status` (one of [`JobStatus`]), `started_at`,
//! `finished_at` and `restarts` as attributes, and serves their logs.

use std::path::Path;
use std::time::Duration;

use kiln_addrs::InstanceAddr;
use kiln_core::Providers;
use kiln_diag::Diagnostic;
use kiln_ops::operation::Session;
use kiln_plan::{Action, Mode};
use kiln_provider::portable::job::JobStatus;
use kiln_provider::{LogsRequest, ReadItem, ReadRequest};
use kiln_state::State;
use kiln_value::Value;

use super::{execute, load, make_plan, open, read_state, registry, Ctx, ExitStatus, Failure, Loaded, R};
use crate::cli::{PlanArgs, VarArgs};

/// This command's providers, each configured once (`logs`, `jobs`, `inventory`).
pub(crate) async fn providers(dir: &Path, l: &Loaded, state: &State) -> Result<Providers, Failure> {
    let p = Providers::new();
    configure(dir, l, state, &p).await?;
    Ok(p)
}

/// Configures in `p` every provider the configuration and `state` use that it does not hold yet.
pub(crate) async fn configure(dir: &Path, l: &Loaded, state: &State, p: &Providers) -> Result<(), Failure> {
    let reg = registry();
    let d = kiln_core::configure_providers(super::planning::providers_request(l, state, &reg, p, dir)).await;
    if d.has_errors() {
        return Err(Failure::in_sources(&l.config.sources, d));
    }
    Ok(())
}

/// Current attributes of every job in state, read from providers in one batch each.
async fn read_jobs(providers: &Providers, state: &State) -> Vec<(InstanceAddr, Option<Value>)> {
    read_kind(providers, state, "job").await
}

/// Current attributes of every resource of `kind` in state, read from providers in one batch each.
pub(crate) async fn read_kind(providers: &Providers, state: &State, kind: &str) -> Vec<(InstanceAddr, Option<Value>)> {
    let mut out = Vec::new();
    let mut by_provider: std::collections::BTreeMap<&str, Vec<(&InstanceAddr, &kiln_state::ResourceState)>> = Default::default();
    for (a, r) in state.resources.iter().filter(|(_, r)| r.kind == kind) {
        by_provider.entry(r.provider.as_str()).or_default().push((a, r));
    }
    for (key, items) in by_provider {
        let Some(p) = providers.get(key) else { continue };
        let names: Vec<String> = items.iter().map(|(a, _)| a.to_string()).collect();
        let req = ReadRequest {
            items: items.iter().zip(&names).map(|((_, r), n)| ReadItem { address: n, kind: &r.kind, state: &r.attributes }).collect(),
        };
        let resp = p.read(req).await;
        for ((a, _), res) in items.into_iter().zip(resp.results) {
            out.push((a.clone(), res.state));
        }
    }
    out
}

/// A job's status as `kiln jobs` shows it: "gone" when the provider no longer finds the job.
fn status(v: &Option<Value>) -> &str {
    v.as_ref().and_then(|v| v.get("status")).and_then(Value::as_str).unwrap_or("gone")
}

/// Whether a job's status will not change by itself ([`JobStatus::is_terminal`]).
fn terminal(v: &Option<Value>) -> bool {
    v.as_ref().and_then(JobStatus::of).is_some_and(JobStatus::is_terminal)
}

fn succeeded(v: &Option<Value>) -> bool {
    v.as_ref().and_then(JobStatus::of) == Some(JobStatus::Succeeded)
}

pub async fn list(cx: &Ctx, vars: &VarArgs) -> R {
    let dir = cx.dir();
    let l = load(cx, vars)?;
    let backend = open(&l)?;
    let state = read_state(backend.as_ref()).await?;
    let p = providers(dir, &l, &state).await?;
    let jobs = read_jobs(&p, &state).await;
    if jobs.is_empty() {
        cx.printer.data("No jobs.");
        return Ok(ExitStatus::Success);
    }
    cx.printer.data(format_args!("{:<32} {:<10} {:<26} {:>10} {:>8}", "ADDRESS", "STATUS", "STARTED", "DURATION", "RESTARTS"));
    for (a, v) in &jobs {
        let get = |k: &str| v.as_ref().and_then(|v| v.get(k)).map(|x| x.to_template_string().unwrap_or_default()).unwrap_or_default();
        let started = get("started_at");
        let duration = duration(&started, &get("finished_at"));
        cx.printer.data(format_args!("{:<32} {:<10} {:<26} {:>10} {:>8}", a.to_string(), status(v), started, duration, get("restarts")));
    }
    Ok(ExitStatus::Success)
}

fn duration(started: &str, finished: &str) -> String {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&chrono::Utc));
    let Some(start) = parse(started) else { return String::new() };
    let end = parse(finished).unwrap_or_else(chrono::Utc::now);
    let secs = (end - start).num_seconds().max(0);
    format!("{}m{:02}s", secs / 60, secs % 60)
}

pub async fn logs(cx: &Ctx, vars: &VarArgs, address: &str, node: usize, follow: bool) -> R {
    let dir = cx.dir();
    let addr: InstanceAddr = address.parse().map_err(|e: kiln_addrs::AddrError| {
        Diagnostic::error("E-ADDR-INVALID", e.to_string()).hint("a job's address looks like job.train or job.train[0]")
    })?;
    let l = load(cx, vars)?;
    let backend = open(&l)?;
    let state = read_state(backend.as_ref()).await?;
    let r = state.resources.get(&addr).ok_or_else(|| {
        Diagnostic::error("E-STATE-ADDRESS", format!("`{addr}` is not in state"))
            .address(&addr)
            .hint("`kiln jobs` lists the jobs kiln manages")
    })?;
    let p = providers(dir, &l, &state).await?;
    let provider = p.get(&r.provider).ok_or_else(|| {
        Diagnostic::error("E-PROVIDER-UNAVAILABLE", format!("provider `{}` is not available", r.provider))
            .address(&addr)
            .hint("the configuration no longer declares it, or this kiln was built without it")
    })?;
    let name = addr.to_string();
    let mut offset = 0;
    loop {
        let resp = provider.logs(LogsRequest { address: &name, kind: &r.kind, state: &r.attributes, node, offset }).await;
        if resp.diagnostics.has_errors() {
            return Err(Failure::in_sources(&l.config.sources, resp.diagnostics));
        }
        cx.printer.data_bytes(&resp.data);
        offset = resp.next_offset;
        // Providers return a log in chunks: read on while they give more.
        if !resp.data.is_empty() {
            continue;
        }
        if !follow || resp.finished {
            return Ok(ExitStatus::Success);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until every job has a terminal status, then refreshes state and outputs (when the
/// refresh plan has no resource changes of its own).
/// Within the apply's operation `s`, with the providers the apply used.
pub async fn wait_then_refresh(s: &Session, dir: &Path, l: &Loaded, p: &Providers, args: &PlanArgs) -> R {
    let state = s.read_state().await?;
    if !state.resources.values().any(|r| r.kind == "job") {
        return Ok(ExitStatus::Success);
    }
    configure(dir, l, &state, p).await?;
    l.printer.note("\nWaiting for jobs to finish...");
    let mut last: Vec<String> = Vec::new();
    let failed = loop {
        let jobs = read_jobs(p, &state).await;
        let now: Vec<String> = jobs.iter().map(|(a, v)| format!("{a}: {}", status(v))).collect();
        if now != last {
            for line in now.iter().filter(|l| !last.contains(l)) {
                l.printer.note(format_args!("  {line}"));
            }
            last = now;
        }
        if jobs.iter().all(|(_, v)| terminal(v)) {
            break jobs.iter().any(|(_, v)| !succeeded(v));
        }
        if s.unless_interrupted(tokio::time::sleep(Duration::from_secs(1))).await.is_none() {
            return Err(Diagnostic::error("E-INTERRUPTED", "Interrupted: stopped waiting; the jobs keep running")
                .hint("`kiln jobs` shows them; `kiln apply --wait` waits again")
                .into());
        }
    };
    let refresh = PlanArgs { refresh: true, ..args.clone() };
    let plan = make_plan(s, dir, l, &state, p, &refresh, Mode::Normal).await?;
    if plan.changes.iter().any(|c| c.action != Action::NoOp) {
        l.printer.note("Jobs finished; the configuration now has changes to apply (run `kiln plan`).");
    } else if plan.has_changes() || !plan.drift.is_empty() {
        let code = execute(s, dir, l, p, state, &plan, args.parallelism).await?;
        if code != ExitStatus::Success {
            return Ok(code);
        }
    }
    Ok(if failed { ExitStatus::Error } else { ExitStatus::Success })
}

#[cfg(test)]
mod tests {
    use super::*;

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
