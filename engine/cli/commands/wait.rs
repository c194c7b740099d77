//! `apply --wait` and `kiln run`: waiting for jobs after an apply, without the state lock (a
//! training run lasts days; others plan meanwhile), then refreshing state and outputs in a short
//! operation of its own. The waiting is kiln-ops' ([`kiln_ops::jobs::watch`], whose
//! documentation says what it reports); this module prints its lines (a "Still running..." line
//! every `KILN_WAIT_PROGRESS_INTERVAL`, 30 s by default; with `--logs` every node's output) and
//! ends with the error of each job that did not succeed. A job that succeeded with `on_finish =
//! "destroy_capacity"` has its cluster released in the same operation (`release.rs`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kiln_core::Providers;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_ops::jobs::{watch, WatchOutput, Watched};
use kiln_state::{State, StateBackend};

use super::apply::apply_plan;
use super::jobs::{configure, read_jobs};
use super::{make_plan, plan_request, registry, Ctx, ExitStatus, Failure, Loaded, Printer, R};
use crate::cli::PlanArgs;
use kiln_ops::operation::Session;
use kiln_plan::{Action, Mode};

/// How often "Still running..." is printed when `KILN_WAIT_PROGRESS_INTERVAL` does not say.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(30);

/// Waits (holding no lock) until every job in state has a terminal status, then refreshes state
/// and outputs under the lock again. `stream`: print every node's output as it comes: from its
/// start for the jobs the apply created or replaced (not in `before`, the state before it, with
/// that job ID), from where their logs end now for the others.
pub async fn wait_then_refresh(
    cx: &Ctx,
    backend: &Arc<dyn StateBackend>,
    l: &Loaded,
    p: &Providers,
    args: &PlanArgs,
    stream: bool,
    before: Option<&State>,
) -> R {
    let dir = cx.dir();
    let state = kiln_ops::operation::read_state(backend.as_ref()).await?;
    // With --target, only the jobs targeted (`kiln run`'s one job).
    let targets: Vec<kiln_addrs::Target> = args.target.iter().filter_map(|t| t.parse().ok()).collect();
    let mut jobs: Vec<Watched> = state
        .resources
        .iter()
        .filter(|(a, r)| r.kind == "job" && (targets.is_empty() || targets.iter().any(|t| a.matches(t))))
        .map(|(a, r)| {
            let job_id = |v: &kiln_value::Value| v.get("job_id").and_then(kiln_value::Value::as_str).map(str::to_string);
            let started = before.is_none_or(|b| b.resources.get(a).map(|old| job_id(&old.attributes)) != Some(job_id(&r.attributes)));
            Watched::new(a.clone(), &r.provider, &r.kind, r.attributes.clone(), started)
        })
        .collect();
    if jobs.is_empty() {
        return Ok(ExitStatus::Success);
    }
    configure(dir, l, &state, p).await?;
    l.printer.note("\nWaiting for jobs to finish (the state lock is released)...");
    let interval = progress_interval(&l.settings.env).unwrap_or_else(|e| {
        l.printer.warning(format_args!("{e}; \"Still running...\" is printed every {}s", DEFAULT_PROGRESS_INTERVAL.as_secs()));
        DEFAULT_PROGRESS_INTERVAL
    });
    let mut signals = (cx.ops.signals)();
    let waited = kiln_ops::interrupt::unless_interrupted(
        signals.as_mut(),
        watch(&l.printer, || read_jobs(p, &state), backend.as_ref(), p, &mut jobs, stream, interval),
    )
    .await;
    drop(signals);
    if waited.is_none() {
        return Err(Diagnostic::error("E-INTERRUPTED", "Interrupted: stopped waiting; the jobs keep running")
            .hint("`kiln jobs` shows them; `kiln logs ADDRESS --follow` follows one; `kiln apply --wait` waits again")
            .into());
    }
    let mut failures = Diagnostics::new();
    for j in &jobs {
        if let Some(d) = j.failure(p).await {
            failures.push(d);
        }
    }
    let refreshed = refresh(cx, backend, dir, l, p, args, failures.is_empty()).await;
    if failures.is_empty() {
        return refreshed;
    }
    match refreshed {
        Err(f) => l.printer.failure(&f),
        Ok(ExitStatus::Success) => {}
        Ok(_) => l.printer.note("State and outputs could not be refreshed with the jobs' results (see above)."),
    }
    Err(Failure::new(failures))
}

/// `KILN_WAIT_PROGRESS_INTERVAL` (a duration as `--since` and `log_retention` write it: 30s,
/// 5m, 1d; unset or 0: the default); a value that is not a duration is an error the caller
/// warns of.
fn progress_interval(env: &[(String, String)]) -> Result<Duration, String> {
    let Some((_, v)) = env.iter().find(|(k, _)| k == "KILN_WAIT_PROGRESS_INTERVAL") else { return Ok(DEFAULT_PROGRESS_INTERVAL) };
    let d = kiln_provider::logs::parse_duration(v).map_err(|e| format!("KILN_WAIT_PROGRESS_INTERVAL: {e}"))?;
    Ok(if d.is_zero() { DEFAULT_PROGRESS_INTERVAL } else { d })
}

/// The refresh after the wait, in its own short operation: a refresh-only plan (as `kiln apply
/// --refresh-only`), applied when it records anything, so the jobs' end state and the outputs
/// are recorded even when the configuration changed meanwhile (nothing of that is applied: the
/// user did not review it); then a plan of the configuration against the refreshed state says
/// whether it has changes to apply. A lock someone else holds now does not fail the jobs'
/// result: it is said, with what to run later.
/// `summary`: end with "Apply complete!" and the outputs (not after a job failed: its error
/// comes last).
async fn refresh(cx: &Ctx, backend: &Arc<dyn StateBackend>, dir: &Path, l: &Loaded, p: &Providers, args: &PlanArgs, summary: bool) -> R {
    enum Stop {
        /// The lock could not be taken ([`kiln_ops::operation::run`]'s only diagnostic).
        Lock(Diagnostic),
        Failed(Failure),
    }
    impl From<Diagnostic> for Stop {
        fn from(d: Diagnostic) -> Stop {
            Stop::Lock(d)
        }
    }
    // The jobs' results only: a replacement asked for (`kiln run`) was made already.
    let refresh = PlanArgs { refresh: true, refresh_only: true, replace: Vec::new(), ..args.clone() };
    // What the configuration would still change, against the state just refreshed (quiet: no
    // `--verbose` report of its own, the refresh-only plan reported the providers' calls).
    let pending = PlanArgs { refresh: false, refresh_only: false, verbose: false, replace: Vec::new(), ..args.clone() };
    let r = kiln_ops::operation::run(&cx.ops, backend, "refresh", |s| {
        let (refresh, pending) = (&refresh, &pending);
        async move {
            let state = s.read_state().await.map_err(|d| Stop::Failed(d.into()))?;
            let plan = make_plan(&s, dir, l, &state, p, refresh, Mode::RefreshOnly).await.map_err(Stop::Failed)?;
            let code = if plan.has_changes() {
                apply_plan(&s, dir, l, p, state, &plan, args.parallelism, summary).await.map_err(Stop::Failed)?.0
            } else {
                ExitStatus::Success
            };
            if code != ExitStatus::Success {
                return Ok(code);
            }
            let mut state = s.read_state().await.map_err(|d| Stop::Failed(d.into()))?;
            let jobs = state.resources.iter().filter(|(_, r)| r.kind == "job").map(|(a, r)| (a, &r.attributes));
            if super::release::releasable(&state, jobs) {
                super::release::release_finished(&s, dir, l, state, p, &args.vars, false).await.map_err(Stop::Failed)?;
                state = s.read_state().await.map_err(|d| Stop::Failed(d.into()))?;
            }
            match changes_to_apply(&s, dir, l, &state, p, pending).await {
                Some(true) => l.printer.note("Jobs finished; the configuration now has changes to apply (run `kiln plan`)."),
                Some(false) => {}
                None => l.printer.note("Jobs finished; the configuration can no longer be planned (run `kiln plan` to see why)."),
            }
            Ok(ExitStatus::Success)
        }
    })
    .await;
    match r {
        Ok(code) => Ok(code),
        Err(Stop::Failed(f)) => Err(f),
        Err(Stop::Lock(d)) => {
            l.printer.warning(format_args!(
                "state and outputs were not refreshed with the jobs' results: {}\n  Run `kiln apply --refresh-only` (or `kiln plan`) once the other run is done.",
                d.summary
            ));
            Ok(ExitStatus::Success)
        }
    }
}

/// Whether the configuration has changes to apply to `state` (`args` without refresh: the state
/// was just refreshed); `None` when it cannot be planned or planning was interrupted. Prints
/// nothing: the refresh-only plan before it said the configuration's warnings already.
async fn changes_to_apply(s: &Session, dir: &Path, l: &Loaded, state: &State, p: &Providers, args: &PlanArgs) -> Option<bool> {
    let reg = registry();
    let (plan, diags) = s.unless_interrupted(kiln_core::plan(plan_request(l, state, &reg, p, args, Mode::Normal, dir))).await?;
    if diags.has_errors() {
        return None;
    }
    Some(plan?.changes.iter().any(|c| c.action != Action::NoOp))
}

/// [`watch`]'s lines, printed: status changes and "Still running..." lines on stderr (the
/// latter left out with `KILN_QUIET`), jobs' output on stdout.
impl WatchOutput for Printer {
    fn status(&self, line: &str) {
        self.note(format_args!("  {line}"));
    }

    fn output(&self, text: &str) {
        self.data_raw(text);
    }

    fn progress(&self, line: &str) {
        Printer::progress(self, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_interval_comes_from_the_environment() {
        let env = |v: &str| vec![("KILN_WAIT_PROGRESS_INTERVAL".to_string(), v.to_string())];
        assert_eq!(progress_interval(&[]), Ok(DEFAULT_PROGRESS_INTERVAL));
        assert_eq!(progress_interval(&env("2s")), Ok(Duration::from_secs(2)));
        assert_eq!(progress_interval(&env("0s")), Ok(DEFAULT_PROGRESS_INTERVAL));
        assert_eq!(progress_interval(&env("1d")), Ok(Duration::from_secs(86400)), "the durations of --since and log_retention");
        assert_eq!(progress_interval(&env("2d12h")), Ok(Duration::from_secs(216_000)), "more than a day");
        let e = progress_interval(&env("soon")).expect_err("not a duration: said, not silently the default");
        assert!(e.contains("KILN_WAIT_PROGRESS_INTERVAL") && e.contains("soon"), "{e}");
    }
}
