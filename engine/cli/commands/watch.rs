//! `kiln watch`: keeps the jobs that have a `recovery` block going, unattended, in the foreground
//! (a terminal, a CI runner, a small VM or a pod: no controller VM). Every `--interval` it reads
//! state and the jobs (holding no lock: people plan and apply meanwhile), sorts each job that
//! ended without succeeding into a failure category
//! ([`kiln_provider::portable::recovery::failure`]) and asks its block whether that restarts it.
//!
//! A restart is a normal apply under the state lock, taken only for it: a plan targeted at the
//! jobs to restart (and so at what they depend on: a cluster whose host is gone moves its node),
//! refreshed, that replaces them (a lost job's plan replaces it anyway; a failed one is
//! `--replace`d) and passes the same policies a plan would. Watch applies nothing nobody
//! reviewed: when the configuration, planned against state as recorded (no refresh), would change
//! anything but those jobs (it differs from what was applied), their recovery is paused, with an
//! event saying what differs, until someone applies. Every event (`detected`, `relaunched`,
//! `relaunch_failed`, `paused`, `not_restarted`, `gave_up`; `destroyed` when people destroy a job
//! that has events) is recorded in state with its time and attempt (`kiln jobs events ADDR`).
//!
//! Watch keeps nothing of its own: killed and started again, it reads the same state and takes
//! up where it was (an event already recorded for an attempt is not recorded twice; a restart
//! that destroyed the old job and did not create the new one is finished from its events).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kiln_addrs::InstanceAddr;
use kiln_core::Providers;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_plan::{Action, Mode};
use kiln_provider::portable::job::restarts_of;
use kiln_provider::portable::recovery::{self, Category, Failure, Recovery, Verdict};
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
    let w = Watcher { cx, backend: open(&l)?, providers: Providers::new(), notifier: Notifier::new(&l.printer), vars, l };
    let code = w.run(&opts).await;
    w.notifier.finish().await;
    code
}

/// What one `kiln watch` works with.
struct Watcher<'a> {
    cx: &'a Ctx,
    vars: &'a VarArgs,
    l: Loaded,
    backend: Arc<dyn StateBackend>,
    providers: Providers,
    notifier: Notifier,
}

impl Watcher<'_> {
    async fn run(&self, opts: &WatchOpts) -> R {
        // One listener for the whole run: Ctrl-C during a round (an apply's own listener stops
        // it starting more) ends watch once the round is done.
        let mut signals = (self.cx.ops.signals)();
        let mut said_idle = false;
        loop {
            let state = kiln_ops::operation::read_state(self.backend.as_ref()).await?;
            let (watched, undone) = (watched(&state), interrupted(&state));
            let idle = watched.is_empty() && undone.is_empty() && !super::release::awaiting(&state);
            if idle && !said_idle {
                self.l.printer.note(
                    "No job in state has a `recovery` block or `on_finish = \"destroy_capacity\"`: nothing to watch yet (state is read again every interval).",
                );
            }
            said_idle = idle;
            if !idle {
                configure(self.cx.dir(), &self.l, &state, &self.providers).await?;
                self.round(&state, &watched, undone).await?;
            }
            if opts.once {
                return Ok(ExitStatus::Success);
            }
            if kiln_ops::interrupt::unless_interrupted(signals.as_mut(), tokio::time::sleep(opts.interval)).await.is_none() {
                self.l.printer.note("Interrupted: kiln watch stopped; the jobs keep running (`kiln watch` takes up where it was).");
                // Still listening until the process ends, so the interrupt just heeded is not
                // also taken for one nothing listened for (which exits 1).
                std::mem::forget(signals);
                return Ok(ExitStatus::Success);
            }
        }
    }

    /// One read of the jobs, and what it calls for.
    /// `watched`: the jobs with a `recovery` block; `restart`: the restarts left undone.
    async fn round(&self, state: &State, watched: &BTreeMap<InstanceAddr, Recovery>, mut restart: Vec<Restart>) -> Result<(), CmdFailure> {
        let mut events = Vec::new();
        let jobs = read_jobs(&self.providers, state).await;
        let release = super::release::releasable(state, jobs.iter().filter_map(|(a, v)| Some((a, v.as_ref()?))));
        for (addr, now) in jobs {
            let Some(rec) = watched.get(&addr) else { continue };
            // A job its provider no longer finds is lost with its capacity.
            let now = now.unwrap_or_else(|| with_status(&state.resources[&addr].attributes, "lost"));
            let attempt = restarts_of(&now);
            let Some(failure) = recovery::failure(&now) else {
                events.extend(notice_unrecorded(state, &addr, attempt, &now).map(|e| (addr.clone(), e, rec.notify.clone())));
                events.extend(relaunch_unrecorded(state, &addr, attempt, &now).map(|e| (addr, e, rec.notify.clone())));
                continue;
            };
            let gave_up = state.events.get(&addr).is_some_and(|v| v.iter().any(|e| e.kind == "gave_up" && e.attempt == attempt));
            if gave_up {
                continue;
            }
            let why = match rec.verdict(&failure, attempt) {
                Verdict::Restart => {
                    restart.push(Restart { addr, attempt, latency_ms: latency_ms(&now), recovery: Some(rec.clone()), failure });
                    continue;
                }
                Verdict::NotCovered => ("not_restarted", format!("`recovery.on` does not list {}", failure.category)),
                Verdict::ExitCodeNotRetried(code) => ("not_restarted", format!("`recovery.retry_exit_codes` does not list {code}")),
                Verdict::OutOfRestarts(max) => ("gave_up", format!("it restarted {max} times (`recovery.max_restarts`)")),
            };
            let e = event(why.0, &failure, attempt, format!("{}; {}", failure.detail, why.1));
            events.push((addr, e, rec.notify.clone()));
        }
        let events: Vec<_> = events.into_iter().filter(|(a, e, _)| !recorded(state, a, e)).collect();
        for (a, e, _) in &events {
            self.l.printer.note(format_args!("{a}: {} ({})", e.kind.replace('_', " "), e.detail));
        }
        if !restart.is_empty() {
            self.restart_jobs(restart, events).await?;
        } else if !events.is_empty() {
            self.record(events).await?;
        }
        if release {
            self.release().await?;
        }
        Ok(())
    }

    /// Releases the clusters of the jobs that succeeded with `on_finish = "destroy_capacity"`,
    /// in an operation of its own (a refreshed plan's releases only).
    async fn release(&self) -> Result<(), CmdFailure> {
        take_back_a_dead_watchs_lock(self.backend.as_ref(), &self.l.printer).await;
        let (dir, l, p) = (self.cx.dir(), &self.l, &self.providers);
        let r = kiln_ops::operation::run(&self.cx.ops, &self.backend, "watch", |s| async move {
            let state = s.read_state().await?;
            if let Err(f) = super::release::release_finished(&s, dir, l, state, p, self.vars, true).await {
                // Said, and tried again at the next interval: watch keeps going.
                l.printer.failure(&f);
            }
            Ok(())
        })
        .await;
        lock_busy_is_no_failure(&l.printer, r)
    }

    /// Restarts `jobs` in one apply under the lock (with `events` recorded), or records why not. The
    /// `detected` events are written before the apply, so a watch stopped part-way is taken up by
    /// the next ([`interrupted`]). A restart that fails is recorded (`relaunch_failed`, or
    /// `gave_up` when there is no capacity for longer than `give_up_after`, or at all without
    /// `no_capacity` in `recovery.on`) and tried again at the next interval: watch keeps going.
    async fn restart_jobs(&self, jobs: Vec<Restart>, mut events: Vec<Notified>) -> Result<(), CmdFailure> {
        let (dir, l, p, n) = (self.cx.dir(), &self.l, &self.providers, &self.notifier);
        take_back_a_dead_watchs_lock(self.backend.as_ref(), &l.printer).await;
        let r = kiln_ops::operation::run(&self.cx.ops, &self.backend, "watch", |s| {
            let jobs = &jobs;
            async move {
                let mut state = s.read_state().await?;
                if let Some(why) = self.configuration_differs(&state, jobs).await? {
                    for j in jobs {
                        let e = event("paused", &j.failure, j.attempt, format!("{}; {why}", j.failure.detail));
                        if !recorded(&state, &j.addr, &e) {
                            l.printer.warning(format_args!("{}: recovery paused: {why}", j.addr));
                            events.push((j.addr.clone(), e, j.notify()));
                        }
                    }
                    return commit_events(&s, &mut state, n, events).await.map(drop);
                }
                for j in jobs {
                    let (f, a) = (&j.failure, &j.addr);
                    l.printer.note(format_args!(
                        "{a}: {} ({}): starting it again, restart {} of its `recovery`",
                        f.category,
                        f.detail,
                        j.attempt + 1
                    ));
                    let e = JobEvent { latency_ms: j.latency_ms, ..event("detected", f, j.attempt, f.detail.clone()) };
                    events.push((a.clone(), e, j.notify()));
                }
                let mut state = commit_events(&s, &mut state, n, events).await?;
                // The restart: the jobs and what they depend on, refreshed. A lost job's plan
                // replaces it anyway; a failed one is replaced on request. Placed clusters whose
                // jobs' `recovery.strategy` moves them are placed again.
                let restart = PlanArgs {
                    vars: self.vars.clone(),
                    target: jobs.iter().map(|j| j.addr.to_string()).collect(),
                    replace: jobs.iter().filter(|j| state.resources.contains_key(&j.addr)).map(|j| j.addr.to_string()).collect(),
                    refresh: true,
                    avoid: strategy_moves(&state, jobs, &l.printer),
                    ..PlanArgs::default()
                };
                let plan = match make_plan_inner(dir, l, &state, p, &restart, Mode::Normal).await {
                    Ok(plan) => plan,
                    Err(f) => {
                        l.printer.failure(&f);
                        let events = jobs.iter().map(|j| j.failed(&state, f.diagnostics())).collect();
                        return commit_events(&s, &mut state, n, events).await.map(drop);
                    }
                };
                if refuse_policies(l, &plan, "the jobs were not restarted").is_some() {
                    let why = "the restart's plan breaks a policy (see kiln watch's output)";
                    let events = jobs
                        .iter()
                        .map(|j| (j.addr.clone(), event("paused", &j.failure, j.attempt, why.to_string()), j.notify()))
                        .collect();
                    return commit_events(&s, &mut state, n, events).await.map(drop);
                }
                let (code, errors) = match apply_plan(&s, dir, l, p, state, &plan, None, false).await {
                    Ok(done) => done,
                    Err(f) => {
                        l.printer.failure(&f);
                        (ExitStatus::Error, f.diagnostics().clone())
                    }
                };
                let mut state = s.read_state().await?;
                let events = jobs
                    .iter()
                    .map(|j| match state.resources.get(&j.addr).map(|r| restarts_of(&r.attributes)) {
                        Some(now) if code == ExitStatus::Success && now > j.attempt => {
                            let detail = checkpoint_note(&state.resources[&j.addr].attributes);
                            (j.addr.clone(), JobEvent { attempt: now, ..event("relaunched", &j.failure, j.attempt, detail) }, j.notify())
                        }
                        _ => j.failed(&state, &errors),
                    })
                    .collect();
                commit_events(&s, &mut state, n, events).await.map(drop)
            }
        })
        .await;
        lock_busy_is_no_failure(&l.printer, r)
    }

    /// Why the jobs' recovery waits, when the configuration is not what was applied: planned
    /// against state as recorded (no refresh), it changes something besides the jobs. What the
    /// failure itself calls for (a host gone: its node moves) shows only with refresh.
    async fn configuration_differs(&self, state: &State, jobs: &[Restart]) -> Result<Option<String>, CmdFailure> {
        let as_applied = PlanArgs { vars: self.vars.clone(), refresh: false, ..PlanArgs::default() };
        let edits = make_plan_inner(self.cx.dir(), &self.l, state, &self.providers, &as_applied, Mode::Normal).await?;
        let other: Vec<String> = edits
            .changes
            .iter()
            .filter(|c| c.action != Action::NoOp && !jobs.iter().any(|j| j.addr == c.address))
            .map(|c| format!("{} ({})", c.address, verb(c.action)))
            .collect();
        Ok((!other.is_empty())
            .then(|| format!("the configuration differs from what was applied ({}): recovery waits until it is applied", other.join(", "))))
    }

    /// Records `events` in state in a short operation of their own.
    async fn record(&self, events: Vec<Notified>) -> Result<(), CmdFailure> {
        take_back_a_dead_watchs_lock(self.backend.as_ref(), &self.l.printer).await;
        let r = kiln_ops::operation::run(&self.cx.ops, &self.backend, "watch", |s| async move {
            let mut state = s.read_state().await?;
            commit_events(&s, &mut state, &self.notifier, events).await.map(drop)
        })
        .await;
        lock_busy_is_no_failure(&self.l.printer, r)
    }
}

/// The placed clusters that `jobs`' `recovery.strategy` places again (after a preemption or no
/// capacity), each with what to leave: the offering it runs on (`next_offering`) or its region
/// (`next_region`). A job whose cluster does not opt into placement starts again on it, and the
/// watch says so.
fn strategy_moves(state: &State, jobs: &[Restart], printer: &Printer) -> Vec<(InstanceAddr, Vec<kiln_core::Avoid>)> {
    use kiln_provider::portable::recovery::Strategy;
    let mut out: Vec<(InstanceAddr, Vec<kiln_core::Avoid>)> = Vec::new();
    for j in jobs {
        let Some(strategy) = j.recovery.as_ref().map(|r| r.strategy).filter(|s| s.moves_after(j.failure.category)) else { continue };
        let said = format!("recovery.strategy = \"{}\"", strategy.as_str());
        let deps = state.resources.get(&j.addr).map(|r| r.dependencies.as_slice()).unwrap_or_default();
        let placed = deps.iter().find_map(|d| Some((d, state.resources.get(d)?.billing.as_ref()?.placement.as_ref()?)));
        let Some((cluster, chosen)) = placed else {
            printer.warning(format_args!("{}: {said}: its cluster has no `placement` block, so it starts again where it was", j.addr));
            continue;
        };
        let text = |k: &str| chosen.get(k).and_then(Value::as_str).map(str::to_string);
        let avoid = match strategy {
            Strategy::NextRegion => kiln_core::Avoid { provider: None, instance_type: None, region: text("region") },
            _ => kiln_core::Avoid { provider: text("provider"), instance_type: text("instance_type"), region: text("region") },
        };
        if avoid.region.is_none() && avoid.instance_type.is_none() {
            printer.warning(format_args!("{}: {said}: {cluster} runs where no region is known, so it starts again there", j.addr));
            continue;
        }
        printer.note(format_args!("{}: {said}: {cluster} is placed again, leaving {avoid}", j.addr));
        match out.iter_mut().find(|(a, _)| a == cluster) {
            Some((_, v)) => v.push(avoid),
            None => out.push((cluster.clone(), vec![avoid])),
        }
    }
    out
}

/// After people's apply or destroy: a `destroyed` event for each job the plan deleted that has
/// events, so that `kiln watch` does not take it for a restart left undone ([`interrupted`]).
pub(crate) async fn note_destroyed(s: &kiln_ops::operation::Session, plan: &kiln_plan::Plan) -> Result<(), Diagnostic> {
    let deleted: Vec<&InstanceAddr> =
        plan.changes.iter().filter(|c| c.kind == "job" && c.action == Action::Delete).map(|c| &c.address).collect();
    if deleted.is_empty() {
        return Ok(());
    }
    let mut state = s.read_state().await?;
    let mut changed = false;
    for a in deleted {
        let Some(last) = state.events.get(a).and_then(|v| v.last()).filter(|e| e.kind != "destroyed") else { continue };
        let event = JobEvent {
            at: now_rfc3339(),
            kind: "destroyed".into(),
            category: None,
            detail: "destroyed by an apply or destroy: kiln watch does not start it again".into(),
            attempt: last.attempt,
            latency_ms: None,
        };
        state.apply_mutation(&Mutation::AddEvent { address: a.clone(), event });
        changed = true;
    }
    if changed {
        s.commit(state).await?;
    }
    Ok(())
}

/// An event for a job, and the job's `notify.command`.
type Notified = (InstanceAddr, JobEvent, Option<String>);

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

/// For a plan's reviewer: each job of the plan that `kiln watch` restarted or tried to, with its
/// attempt and last event (`job.train: attempt 2, restarted 2 times by kiln watch; last event:
/// relaunched (host_failure) at T; kiln jobs events job.train lists them`).
pub fn history(state: &State, plan: &kiln_plan::Plan) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| c.kind == "job")
        .filter_map(|c| {
            let events = state.events.get(&c.address).filter(|v| !v.is_empty())?;
            let last = events.last()?;
            let relaunched = events.iter().filter(|e| e.kind == "relaunched").count();
            let attempt = state.resources.get(&c.address).map_or(last.attempt, |r| restarts_of(&r.attributes));
            let category = last.category.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
            Some(format!(
                "{}: attempt {attempt}, restarted {relaunched} time{} by kiln watch; last event: {}{category} at {}; `kiln jobs events {}` lists them",
                c.address,
                if relaunched == 1 { "" } else { "s" },
                last.kind.replace('_', " "),
                last.at,
                c.address
            ))
        })
        .collect()
}

/// The jobs in state with a `recovery` block.
fn watched(state: &State) -> BTreeMap<InstanceAddr, Recovery> {
    state.resources.iter().filter(|(_, r)| r.kind == "job").filter_map(|(a, r)| Some((a.clone(), Recovery::of(&r.attributes)?))).collect()
}

/// A job to start again.
struct Restart {
    addr: InstanceAddr,
    failure: Failure,
    /// Its `restarts` when it failed.
    attempt: u64,
    latency_ms: Option<u64>,
    /// Its `recovery` block (`None` for a restart taken up from its event: the job is not in
    /// state to read it from).
    recovery: Option<Recovery>,
}

impl Restart {
    fn notify(&self) -> Option<String> {
        self.recovery.as_ref().and_then(|r| r.notify.clone())
    }

    /// The event of a restart that failed with `errors`: `relaunch_failed` (tried again next
    /// interval), or `gave_up` when it failed for capacity and `recovery` says to stop.
    fn failed(&self, state: &State, errors: &Diagnostics) -> Notified {
        let first =
            errors.iter().find(|d| d.is_error()).map_or_else(|| "the restart's apply did not complete".to_string(), |d| d.summary.clone());
        let capacity = errors.iter().any(|d| d.is_error() && d.code.ends_with("-CAPACITY"));
        let category = if capacity { Category::NoCapacity } else { self.failure.category };
        let f = Failure { category, ..self.failure.clone() };
        let give_up = |why: String| event("gave_up", &f, self.attempt, format!("{first}; {why}"));
        let e = match (&self.recovery, capacity) {
            (Some(r), true) if !r.on.contains(&Category::NoCapacity) => give_up("`recovery.on` does not list no_capacity".to_string()),
            (Some(Recovery { give_up_after: Some(limit), .. }), true) => {
                let since = no_capacity_since(state, &self.addr, self.attempt);
                let waited = since.map(|t| (chrono::Utc::now() - t).to_std().unwrap_or_default()).unwrap_or_default();
                if waited >= *limit {
                    give_up(format!("no capacity for {}s (`recovery.give_up_after`)", waited.as_secs()))
                } else {
                    event("relaunch_failed", &f, self.attempt, format!("{first}; tried again at the next interval"))
                }
            }
            _ => event("relaunch_failed", &f, self.attempt, format!("{first}; tried again at the next interval")),
        };
        (self.addr.clone(), e, self.notify())
    }
}

/// When the restarts of attempt `attempt` of the job at `addr` started failing for capacity
/// (its first `relaunch_failed` event for no capacity).
fn no_capacity_since(state: &State, addr: &InstanceAddr, attempt: u64) -> Option<chrono::DateTime<chrono::Utc>> {
    let first =
        state.events.get(addr)?.iter().find(|e| {
            e.kind == "relaunch_failed" && e.attempt == attempt && e.category.as_deref() == Some(Category::NoCapacity.as_str())
        })?;
    chrono::DateTime::parse_from_rfc3339(&first.at).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// The `relaunched` event a watch stopped after its restart's apply did not record: the job's
/// last event is `detected` for an earlier attempt, and it runs (or ran) again since.
fn relaunch_unrecorded(state: &State, addr: &InstanceAddr, attempt: u64, now: &Value) -> Option<JobEvent> {
    let last = state.events.get(addr)?.last().filter(|e| e.kind == "detected" && e.attempt < attempt)?;
    Some(JobEvent {
        at: now_rfc3339(),
        kind: "relaunched".into(),
        category: last.category.clone(),
        detail: checkpoint_note(now),
        attempt,
        latency_ms: None,
    })
}

/// A `notice` event for a job still running after its provider relayed an interruption notice
/// (`notice_at`, aws's spot `instance-action`): the job was given its preempt signal to write a
/// last checkpoint before its capacity goes. Once per attempt; the latency is from the notice.
fn notice_unrecorded(state: &State, addr: &InstanceAddr, attempt: u64, now: &Value) -> Option<JobEvent> {
    let at = now.get("notice_at")?.as_str()?;
    let seen = state.events.get(addr).is_some_and(|v| v.iter().any(|e| e.kind == "notice" && e.attempt == attempt));
    (!seen).then(|| JobEvent {
        at: now_rfc3339(),
        kind: "notice".into(),
        category: Some(Category::Preemption.as_str().into()),
        detail: format!("interruption notice at {at}: the job was signalled to write a last checkpoint"),
        attempt,
        latency_ms: ms_since(at),
    })
}

/// The restarts left undone: each job that state no longer holds whose last event is `detected`
/// or `relaunch_failed` (a watch stopped, or a restart's apply failed, after the old job was
/// destroyed and before the new one was created). Its restart goes on from the event (the
/// configuration still declares the job; one that people destroyed has a `destroyed` event).
fn interrupted(state: &State) -> Vec<Restart> {
    state
        .events
        .iter()
        .filter(|(a, _)| !state.resources.contains_key(*a))
        .filter_map(|(a, events)| {
            let last = events.last().filter(|e| e.kind == "detected" || e.kind == "relaunch_failed")?;
            let category = last.category.as_deref().and_then(recovery::Category::parse)?;
            let failure = Failure { category, exit_code: None, detail: last.detail.clone() };
            Some(Restart { addr: a.clone(), failure, attempt: last.attempt, latency_ms: None, recovery: None })
        })
        .collect()
}

/// Adds the `events` not recorded yet to `state`, writes it (the new state is returned), then
/// runs each one's `notify.command`.
async fn commit_events(
    s: &kiln_ops::operation::Session,
    state: &mut State,
    n: &Notifier,
    events: Vec<Notified>,
) -> Result<State, CmdFailure> {
    let events: Vec<_> = events.into_iter().filter(|(a, e, _)| !recorded(state, a, e)).collect();
    if events.is_empty() {
        return Ok(std::mem::take(state));
    }
    for (address, event, _) in &events {
        state.apply_mutation(&Mutation::AddEvent { address: address.clone(), event: event.clone() });
    }
    let stored = s.commit(std::mem::take(state)).await?;
    for (address, event, command) in &events {
        if let Some(command) = command {
            n.run(command, address, event);
        }
    }
    Ok(stored)
}

/// How long a `notify.command` may run before it is killed.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs jobs' `notify.command`s in the background, and waits for them before watch exits.
struct Notifier {
    printer: Printer,
    running: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Notifier {
    fn new(printer: &Printer) -> Self {
        Notifier { printer: *printer, running: Default::default() }
    }

    /// Runs `command` (`sh -c`) with the event in its environment (KILN_EVENT, KILN_EVENT_JOB,
    /// KILN_EVENT_CATEGORY, KILN_EVENT_ATTEMPT, KILN_EVENT_DETAIL, KILN_EVENT_AT); its output
    /// goes to kiln watch's; a failure or a timeout is a warning (recovery goes on).
    fn run(&self, command: &str, address: &InstanceAddr, e: &JobEvent) {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(command).stdin(std::process::Stdio::null()).kill_on_drop(true);
        c.env("KILN_EVENT", &e.kind)
            .env("KILN_EVENT_JOB", address.to_string())
            .env("KILN_EVENT_CATEGORY", e.category.as_deref().unwrap_or(""))
            .env("KILN_EVENT_ATTEMPT", e.attempt.to_string())
            .env("KILN_EVENT_DETAIL", &e.detail)
            .env("KILN_EVENT_AT", &e.at);
        let (printer, what) = (self.printer, format!("{address}: notify.command for `{}`", e.kind));
        let mut child = match c.spawn() {
            Ok(child) => child,
            Err(err) => return self.printer.warning(format_args!("{what} could not start: {err}")),
        };
        let task = tokio::spawn(async move {
            match tokio::time::timeout(NOTIFY_TIMEOUT, child.wait()).await {
                Ok(Ok(st)) if st.success() => {}
                Ok(Ok(st)) => printer.warning(format_args!("{what} exited with {st}")),
                Ok(Err(err)) => printer.warning(format_args!("{what}: {err}")),
                Err(_) => printer.warning(format_args!("{what} ran past {}s and was stopped", NOTIFY_TIMEOUT.as_secs())),
            }
        });
        let mut running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        running.retain(|t| !t.is_finished());
        running.push(task);
    }

    /// Waits for the commands still running (each stops at its timeout).
    async fn finish(&self) {
        let tasks = std::mem::take(&mut *self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// A lock left by a `kiln watch` that is gone (killed on this host, or its lease ran out) is
/// taken back: watch is the only one waiting on it, and the state it left is readable (an
/// interrupted apply's pending creates are resolved by the next plan). Locks of other
/// operations are never broken.
async fn take_back_a_dead_watchs_lock(backend: &dyn StateBackend, printer: &Printer) {
    let Ok(Some(held)) = backend.lock_info().await else { return };
    if held.operation == "watch" && held.is_stale() && backend.force_unlock(&held.id).await.is_ok() {
        printer
            .note(format_args!("Took back the state lock `{}` of a kiln watch that is gone (pid {} on {}).", held.id, held.pid, held.host));
    }
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

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn event(kind: &str, f: &Failure, attempt: u64, detail: String) -> JobEvent {
    JobEvent {
        at: now_rfc3339(),
        kind: kind.to_string(),
        category: Some(f.category.as_str().to_string()),
        detail,
        attempt,
        latency_ms: None,
    }
}

/// Whether `e` is recorded for `addr` already: an event of the same attempt has its kind and
/// detail (a watch started again, or the next interval, finds the same failure; a restart tried
/// again fails the same way).
fn recorded(state: &State, addr: &InstanceAddr, e: &JobEvent) -> bool {
    let same = |x: &JobEvent| x.kind == e.kind && x.attempt == e.attempt && x.detail == e.detail;
    state.events.get(addr).is_some_and(|v| v.iter().any(same))
}

fn with_status(job: &Value, status: &str) -> Value {
    let mut m = job.as_map().cloned().unwrap_or_default();
    m.insert("status".into(), Value::from(status));
    Value::Map(m)
}

/// Milliseconds from when the job ended (`finished_at`, where its provider knows it) to now.
fn latency_ms(job: &Value) -> Option<u64> {
    ms_since(job.get("finished_at")?.as_str()?)
}

/// Milliseconds from the RFC 3339 time `at` to now.
fn ms_since(at: &str) -> Option<u64> {
    let at = chrono::DateTime::parse_from_rfc3339(at).ok()?;
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

    fn restart(recovery: &str) -> Restart {
        let job = Value::from_json(&serde_json::from_str(&format!("{{\"recovery\": {recovery}}}")).unwrap());
        let failure = Failure { category: Category::HostFailure, exit_code: None, detail: "a node is gone".into() };
        Restart { addr: "job.t".parse().unwrap(), failure, attempt: 2, latency_ms: None, recovery: Recovery::of(&job) }
    }

    fn capacity() -> Diagnostics {
        Diagnostic::error("E-AWS-CAPACITY", "cluster.c: AWS has no capacity for any candidate instance type").into()
    }

    #[test]
    fn a_restart_that_fails_for_capacity_gives_up_as_its_recovery_says() {
        let state = State::default();
        // Without no_capacity in `on`: at once.
        let (_, e, _) = restart(r#"{"on": ["host_failure"]}"#).failed(&state, &capacity());
        assert_eq!((e.kind.as_str(), e.category.as_deref()), ("gave_up", Some("no_capacity")), "{e:?}");
        // With it and give_up_after: tried again until that long after the first such failure.
        let r = restart(r#"{"give_up_after": "1h"}"#);
        let (_, first, _) = r.failed(&state, &capacity());
        assert_eq!((first.kind.as_str(), first.category.as_deref(), first.attempt), ("relaunch_failed", Some("no_capacity"), 2));
        let mut state = State::default();
        let two_hours_ago = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
        state.apply_mutation(&Mutation::AddEvent { address: r.addr.clone(), event: JobEvent { at: two_hours_ago, ..first } });
        let (_, later, _) = r.failed(&state, &capacity());
        assert_eq!(later.kind, "gave_up", "{later:?}");
        assert!(later.detail.contains("`recovery.give_up_after`"), "{}", later.detail);
        // Without give_up_after: never.
        assert_eq!(restart("{}").failed(&state, &capacity()).1.kind, "relaunch_failed");
    }

    #[test]
    fn a_restart_that_fails_otherwise_is_tried_again_in_its_category() {
        let errors: Diagnostics = Diagnostic::error("E-LOCAL-JOB", "job.t: cannot start").into();
        let (_, e, _) = restart("{}").failed(&State::default(), &errors);
        assert_eq!((e.kind.as_str(), e.category.as_deref()), ("relaunch_failed", Some("host_failure")));
        assert!(e.detail.starts_with("job.t: cannot start"), "{}", e.detail);
    }

    /// A job absent from state is restarted from its events only when a restart was left undone.
    #[test]
    fn a_restart_left_undone_is_taken_up_unless_people_destroyed_the_job() {
        let at = |kinds: &[&str]| {
            let mut state = State::default();
            for k in kinds {
                let f = Failure { category: Category::HostFailure, exit_code: None, detail: "gone".into() };
                state.apply_mutation(&Mutation::AddEvent { address: "job.t".parse().unwrap(), event: event(k, &f, 0, String::new()) });
            }
            interrupted(&state).len()
        };
        assert_eq!(at(&["detected"]), 1, "a watch stopped mid-restart");
        assert_eq!(at(&["detected", "relaunch_failed"]), 1, "a restart's apply that failed after the destroy");
        assert_eq!(at(&["detected", "relaunch_failed", "destroyed"]), 0, "people destroyed it");
        assert_eq!(at(&["detected", "relaunched"]), 0);
    }

    #[test]
    fn a_notice_is_recorded_once_per_attempt_with_its_latency() {
        let at = (chrono::Utc::now() - chrono::Duration::seconds(3)).to_rfc3339();
        let job = Value::from_json(&serde_json::json!({ "status": "running", "notice_at": at }));
        let addr: InstanceAddr = "job.t".parse().unwrap();
        let mut state = State::default();
        let e = notice_unrecorded(&state, &addr, 1, &job).expect("a notice");
        assert_eq!((e.kind.as_str(), e.category.as_deref(), e.attempt), ("notice", Some("preemption"), 1));
        assert!(e.latency_ms.is_some_and(|ms| ms >= 3000), "{e:?}");
        state.apply_mutation(&kiln_state::Mutation::AddEvent { address: addr.clone(), event: e });
        assert!(notice_unrecorded(&state, &addr, 1, &job).is_none(), "once");
        assert!(notice_unrecorded(&state, &addr, 2, &job).is_some(), "the next attempt's notice");
        let quiet = Value::from_json(&serde_json::json!({ "status": "running", "notice_at": null }));
        assert!(notice_unrecorded(&state, &addr, 2, &quiet).is_none());
    }

    #[test]
    fn the_interval_is_a_duration_of_a_second_or_more() {
        assert_eq!(parse_interval("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_interval("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_interval("0s").unwrap_err().contains("shorter than one second"));
        assert!(parse_interval("soon").is_err());
    }
}
