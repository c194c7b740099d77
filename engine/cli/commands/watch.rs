//! `kiln watch`: keeps the jobs that have a `recovery` block going, unattended, in the foreground
//! (a terminal, a CI runner, a small VM or a pod: no controller VM). Every `--interval` it reads
//! state and the jobs (holding no lock: people plan and apply meanwhile), sorts each job that
//! ended without succeeding into a failure category
//! ([`kiln_provider::portable::recovery::failure`]) and asks its block whether that restarts it.
//!
//! A restart is a normal apply of the configuration under the state lock, taken only for it:
//! the plan replaces the jobs to restart (a lost job's plan replaces it anyway; a failed one is
//! `--replace`d) and passes the same policies a plan would. Watch applies nothing nobody
//! reviewed: when that plan would change anything else (the directory's configuration differs
//! from what was applied), the jobs' recovery is paused, with an event saying what differs,
//! until someone applies. Every event (`detected`, `relaunched`, `paused`, `gave_up`,
//! `not_restarted`) is recorded in state with its time and attempt (`kiln jobs events ADDR`).
//!
//! Watch keeps nothing of its own: killed and started again, it reads the same state and takes
//! up where it was (an event already recorded for an attempt is not recorded twice).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kiln_addrs::InstanceAddr;
use kiln_core::Providers;
use kiln_diag::Diagnostic;
use kiln_plan::{Action, Mode};
use kiln_provider::portable::recovery::{self, Failure, Recovery, Verdict};
use kiln_state::{JobEvent, Mutation, State, StateBackend};
use kiln_value::Value;

use super::apply::apply_plan;
use super::jobs::{configure, read_jobs};
use super::{load, make_plan_inner, open, refuse_policies, Ctx, ExitStatus, Failure as CmdFailure, Loaded, Printer, R};
use crate::cli::{PlanArgs, VarArgs};

pub struct WatchOpts {
    /// Between two reads of the jobs.
    pub interval: Duration,
    /// One round, then exit (for scripts and tests).
    pub once: bool,
}

/// `--interval`: a duration (`5s`, `1m`), at least one second.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = kiln_provider::logs::parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("`{s}` is shorter than one second"));
    }
    Ok(d)
}

pub async fn watch(cx: &Ctx, vars: &VarArgs, opts: WatchOpts) -> R {
    let l = load(cx, vars)?;
    let backend = open(&l)?;
    let providers = Providers::new();
    let mut said_idle = false;
    loop {
        let state = kiln_ops::operation::read_state(backend.as_ref()).await?;
        let watched = watched(&state);
        if watched.is_empty() && !said_idle {
            l.printer.note("No job in state has a `recovery` block: nothing to watch yet (state is read again every interval).");
        }
        said_idle = watched.is_empty();
        if !watched.is_empty() {
            configure(cx.dir(), &l, &state, &providers).await?;
            round(cx, &backend, &l, &providers, vars, &state, &watched).await?;
        }
        if opts.once {
            return Ok(ExitStatus::Success);
        }
        let mut signals = (cx.ops.signals)();
        if kiln_ops::interrupt::unless_interrupted(signals.as_mut(), tokio::time::sleep(opts.interval)).await.is_none() {
            l.printer.note("Interrupted: kiln watch stopped; the jobs keep running (`kiln watch` takes up where it was).");
            return Ok(ExitStatus::Success);
        }
    }
}

/// `kiln jobs events ADDRESS`: the job's events from state, oldest first (a table, or `--json`).
/// Events outlive the job: a destroyed job's history is still read.
pub async fn events(cx: &Ctx, vars: &VarArgs, address: &str, json: bool) -> R {
    let addr: InstanceAddr = address.parse().map_err(|e: kiln_addrs::AddrError| {
        Diagnostic::error("E-ADDR-INVALID", e.to_string()).hint("a job's address looks like job.train or job.train[0]")
    })?;
    let l = load(cx, vars)?;
    let backend = open(&l)?;
    let state = kiln_ops::operation::read_state(backend.as_ref()).await?;
    let events = state.events.get(&addr).map(Vec::as_slice).unwrap_or_default();
    if events.is_empty() && !state.resources.contains_key(&addr) {
        return Err(Diagnostic::error("E-JOBS-EVENTS", format!("state holds no job `{address}` and no events of one"))
            .address(address)
            .hint("`kiln jobs` lists the jobs in state")
            .into());
    }
    if json {
        cx.printer.data(serde_json::to_string_pretty(events).unwrap_or_else(|_| "[]".to_string()));
        return Ok(ExitStatus::Success);
    }
    if events.is_empty() {
        cx.printer.note(format_args!("{address} has no events: kiln watch records them when the job fails and when it restarts it."));
        return Ok(ExitStatus::Success);
    }
    let mut rows = vec![["TIME", "ATTEMPT", "EVENT", "CATEGORY", "LATENCY", "DETAIL"].map(String::from)];
    for e in events {
        let latency = e.latency_ms.map_or("-".to_string(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
        rows.push([
            e.at.clone(),
            e.attempt.to_string(),
            e.kind.clone(),
            e.category.clone().unwrap_or("-".into()),
            latency,
            e.detail.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..5).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let cells: Vec<String> = (0..5).map(|i| format!("{:w$}", r[i], w = widths[i])).collect();
        cx.printer.data(format_args!("{}  {}", cells.join("  "), r[5]));
    }
    Ok(ExitStatus::Success)
}

/// The jobs in state with a `recovery` block.
fn watched(state: &State) -> BTreeMap<InstanceAddr, Recovery> {
    state.resources.iter().filter(|(_, r)| r.kind == "job").filter_map(|(a, r)| Some((a.clone(), Recovery::of(&r.attributes)?))).collect()
}

/// One read of the jobs, and what it calls for.
async fn round(
    cx: &Ctx,
    backend: &Arc<dyn StateBackend>,
    l: &Loaded,
    p: &Providers,
    vars: &VarArgs,
    state: &State,
    watched: &BTreeMap<InstanceAddr, Recovery>,
) -> Result<(), CmdFailure> {
    let mut restart = Vec::new();
    let mut events = Vec::new();
    for (addr, now) in read_jobs(p, state).await {
        let Some(rec) = watched.get(&addr) else { continue };
        let prior = &state.resources[&addr].attributes;
        // A job its provider no longer finds is lost with its capacity.
        let now = now.unwrap_or_else(|| with_status(prior, "lost"));
        let Some(failure) = recovery::failure(&now) else { continue };
        let attempt = restarts(&now);
        match rec.verdict(&failure, attempt) {
            Verdict::Restart => restart.push((addr, failure, attempt, latency_ms(&now))),
            Verdict::NotCovered => events.push((
                addr,
                event("not_restarted", &failure, attempt, format!("{}; `recovery.on` does not list {}", failure.detail, failure.category)),
            )),
            Verdict::ExitCodeNotRetried(code) => events.push((
                addr,
                event("not_restarted", &failure, attempt, format!("{}; `recovery.retry_exit_codes` does not list {code}", failure.detail)),
            )),
            Verdict::OutOfRestarts(max) => events.push((
                addr,
                event("gave_up", &failure, attempt, format!("{}; it restarted {max} times (`recovery.max_restarts`)", failure.detail)),
            )),
        }
    }
    let events: Vec<_> = events.into_iter().filter(|(a, e)| !recorded(state, a, e)).collect();
    for (a, e) in &events {
        l.printer.note(format_args!("{a}: {} ({})", e.kind.replace('_', " "), e.detail));
    }
    if !restart.is_empty() {
        restart_jobs(cx, backend, l, p, vars, restart, events).await
    } else if !events.is_empty() {
        record(cx, backend, events).await
    } else {
        Ok(())
    }
}

/// Restarts `jobs` in one apply under the lock (with `events` recorded), or records why not.
async fn restart_jobs(
    cx: &Ctx,
    backend: &Arc<dyn StateBackend>,
    l: &Loaded,
    p: &Providers,
    vars: &VarArgs,
    jobs: Vec<(InstanceAddr, Failure, u64, Option<u64>)>,
    mut events: Vec<(InstanceAddr, JobEvent)>,
) -> Result<(), CmdFailure> {
    let dir = cx.dir();
    let args =
        PlanArgs { vars: vars.clone(), replace: jobs.iter().map(|(a, ..)| a.to_string()).collect(), refresh: true, ..PlanArgs::default() };
    let r = kiln_ops::operation::run(&cx.ops, backend, "watch", |s| {
        let (args, jobs) = (&args, &jobs);
        async move {
            let state = s.read_state().await?;
            let plan = make_plan_inner(dir, l, &state, p, args, Mode::Normal).await?;
            let ours = |a: &InstanceAddr| jobs.iter().any(|(j, ..)| j == a);
            let other: Vec<String> = plan
                .changes
                .iter()
                .filter(|c| c.action != Action::NoOp && !ours(&c.address))
                .map(|c| format!("{} ({})", c.address, verb(c.action)))
                .collect();
            let paused = if !other.is_empty() {
                Some(format!("the configuration differs from what was applied ({}): recovery waits until it is applied", other.join(", ")))
            } else if refuse_policies(l, &plan, "the jobs were not restarted").is_some() {
                Some("the restart's plan breaks a policy (see kiln watch's output)".to_string())
            } else {
                None
            };
            let mut state = state;
            if let Some(why) = paused {
                for (a, f, attempt, _) in jobs {
                    let e = event("paused", f, *attempt, format!("{}; {why}", f.detail));
                    if !recorded(&state, a, &e) {
                        l.printer.warning(format_args!("{a}: recovery paused: {why}"));
                        events.push((a.clone(), e));
                    }
                }
                return commit_events(&s, &mut state, std::mem::take(&mut events)).await;
            }
            for (a, f, attempt, latency) in jobs {
                l.printer.note(format_args!(
                    "{a}: {} ({}): starting it again, restart {} of its `recovery`",
                    f.category,
                    f.detail,
                    attempt + 1
                ));
                events.push((a.clone(), JobEvent { latency_ms: *latency, ..event("detected", f, *attempt, f.detail.clone()) }));
            }
            let code = apply_plan(&s, dir, l, p, state, &plan, args.parallelism, false).await?;
            let mut state = s.read_state().await?;
            for (a, f, attempt, _) in jobs {
                let now = state.resources.get(a).map(|r| restarts(&r.attributes));
                let (kind, detail) = match now {
                    Some(n) if code == ExitStatus::Success && n > *attempt => {
                        ("relaunched", checkpoint_note(&state.resources[a].attributes))
                    }
                    _ => (
                        "relaunch_failed",
                        "the apply that starts it again did not complete (see kiln watch's output); tried again next interval".to_string(),
                    ),
                };
                events.push((a.clone(), JobEvent { attempt: now.unwrap_or(*attempt), ..event(kind, f, *attempt, detail) }));
            }
            commit_events(&s, &mut state, events).await
        }
    })
    .await;
    lock_busy_is_no_failure(&l.printer, r)
}

/// Records `events` in state in a short operation of their own.
async fn record(cx: &Ctx, backend: &Arc<dyn StateBackend>, events: Vec<(InstanceAddr, JobEvent)>) -> Result<(), CmdFailure> {
    let r = kiln_ops::operation::run(&cx.ops, backend, "watch", |s| async move {
        let mut state = s.read_state().await?;
        commit_events(&s, &mut state, events).await
    })
    .await;
    lock_busy_is_no_failure(&cx.printer, r)
}

/// Adds the `events` not recorded yet to `state` and writes it.
async fn commit_events(
    s: &kiln_ops::operation::Session,
    state: &mut State,
    events: Vec<(InstanceAddr, JobEvent)>,
) -> Result<(), CmdFailure> {
    let events: Vec<_> = events.into_iter().filter(|(a, e)| !recorded(state, a, e)).collect();
    if events.is_empty() {
        return Ok(());
    }
    for (address, event) in events {
        state.apply_mutation(&Mutation::AddEvent { address, event });
    }
    s.commit(std::mem::take(state)).await?;
    Ok(())
}

/// A lock someone else holds (a person applying) is no failure of watch: it tries again at the
/// next interval.
fn lock_busy_is_no_failure(printer: &Printer, r: Result<(), CmdFailure>) -> Result<(), CmdFailure> {
    match r {
        Err(f) if f.diagnostics().iter().any(|d| d.code == "E-STATE-LOCK") => {
            let why = f.diagnostics().iter().next().map(|d| d.summary.clone()).unwrap_or_default();
            printer.warning(format_args!("{why}; kiln watch tries again at the next interval"));
            Ok(())
        }
        other => other,
    }
}

/// What a plan does to an object, in the words of its summary line.
fn verb(a: Action) -> &'static str {
    match a {
        Action::NoOp => "no change",
        Action::Create => "create",
        Action::Read => "read",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "destroy",
    }
}

fn event(kind: &str, f: &Failure, attempt: u64, detail: String) -> JobEvent {
    JobEvent {
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        kind: kind.to_string(),
        category: Some(f.category.as_str().to_string()),
        detail,
        attempt,
        latency_ms: None,
    }
}

/// Whether `e` is recorded for `addr` already: its last event has the same kind, attempt and
/// detail (a watch started again, or the next interval, finds the same failure).
fn recorded(state: &State, addr: &InstanceAddr, e: &JobEvent) -> bool {
    state
        .events
        .get(addr)
        .and_then(|v| v.last())
        .is_some_and(|last| last.kind == e.kind && last.attempt == e.attempt && last.detail == e.detail)
}

fn restarts(job: &Value) -> u64 {
    job.get("restarts").and_then(Value::as_number).and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn with_status(job: &Value, status: &str) -> Value {
    let mut m = job.as_map().cloned().unwrap_or_default();
    m.insert("status".into(), Value::from(status));
    Value::Map(m)
}

/// Milliseconds from when the job ended (`finished_at`, where its provider knows it) to now.
fn latency_ms(job: &Value) -> Option<u64> {
    let at = chrono::DateTime::parse_from_rfc3339(job.get("finished_at")?.as_str()?).ok()?;
    u64::try_from((chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_milliseconds()).ok()
}

fn checkpoint_note(job: &Value) -> String {
    match job.get("checkpoint").filter(|c| c.as_map().is_some()) {
        Some(_) => "started again; it resumes from its last checkpoint (KILN_CHECKPOINT_DIR is restored)".to_string(),
        None => "started again from the beginning (it has no `checkpoint` block)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_a_duration_of_a_second_or_more() {
        assert_eq!(parse_interval("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_interval("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_interval("0s").unwrap_err().contains("shorter than one second"));
        assert!(parse_interval("soon").is_err());
    }
}
