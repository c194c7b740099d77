//! `kiln apply` and `kiln destroy`: plan (or load a saved plan), confirm, apply with group-committed
//! state, Ctrl-C handling and progress, then save the final state.

use crate::cli::PlanArgs;
use kiln_core::{Hook, Providers, Subject};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_ops::operation::Session;
use kiln_plan::{Action, Mode, Plan};
use kiln_state::State;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::*;

pub struct ApplyOpts {
    pub auto_approve: bool,
    /// Wait for jobs to finish, then refresh state and outputs.
    pub wait: bool,
    /// While waiting, stream the jobs' output prefixed by node.
    pub logs: bool,
    pub plan_file: Option<PathBuf>,
    pub mode: Mode,
}

pub(crate) async fn apply_cmd(cx: &Ctx, args: &PlanArgs, opts: ApplyOpts) -> R {
    if let Some(path) = opts.plan_file.as_ref().filter(|_| !args.vars.ordered.is_empty()) {
        // A saved plan holds the variable values it was made with (as in Terraform).
        return Err(Diagnostic::error("E-APPLY-PLAN-VARS", "--var and --var-file cannot be used when applying a saved plan")
            .hint(format!("the plan `{}` applies the values it was made with: pass them to `kiln plan --out` instead", path.display()))
            .into());
    }
    let dir = cx.dir();
    let ops = &cx.ops;
    let l = load(cx, &args.vars)?;
    let backend = open(&l)?;
    let name = if opts.mode == Mode::Destroy { "destroy" } else { "apply" };
    // One set of configured providers for the whole command: the plan's refresh, the apply,
    // and `--wait`'s polling and refresh.
    let providers = Providers::new();
    let (l, opts, p) = (&l, &opts, &providers);
    // With --wait: the jobs before, to tell those this apply starts (streamed from their start).
    let before = if opts.wait { kiln_ops::operation::read_state(backend.as_ref()).await.ok() } else { None };
    let code = kiln_ops::operation::run(ops, &backend, name, |s| async move { apply_locked(&s, dir, l, p, args, opts).await }).await?;
    if opts.wait && code == ExitStatus::Success {
        // The lock is released: a training run lasts days, and others must plan meanwhile.
        return super::wait::wait_then_refresh(cx, &backend, l, p, args, opts.logs, before.as_ref()).await;
    }
    Ok(code)
}

pub(crate) async fn apply_locked(s: &Session, dir: &Path, l: &Loaded, providers: &Providers, args: &PlanArgs, opts: &ApplyOpts) -> R {
    let (auto_approve, mode) = (opts.auto_approve, opts.mode);
    let state = s.read_state().await?;
    let plan = match &opts.plan_file {
        Some(path) => {
            let saved = read_plan(l, path)?;
            let known = !state.lineage.is_empty();
            let lineage = known.then_some(state.lineage.as_str());
            let serial = known.then_some(state.serial);
            saved.check_current(lineage, serial, &kiln_core::config_digest(&l.config)).map_err(|e| {
                Diagnostic::error("E-PLAN-STALE", format!("saved plan is stale: {e}"))
                    .hint(format!("run `kiln plan --out {}` again and review the new plan", path.display()))
            })?;
            saved
        }
        None => {
            let p = make_plan(s, dir, l, &state, providers, args, mode).await?;
            l.printer.data_raw(kiln_views::render(&p, kiln_views::Format::Human, l.settings.colour.stdout));
            p
        }
    };
    // A plan that breaks a policy is never applied, saved or made here.
    if let Some(code) = refuse_policies(l, &plan, "nothing was applied") {
        return Ok(code);
    }
    if !plan.has_changes() {
        return Ok(ExitStatus::Success);
    }
    let stopping = running_jobs_stopped(&plan);
    if !stopping.is_empty() && (auto_approve || opts.plan_file.is_some()) {
        for line in &stopping {
            l.printer.warning(line);
        }
    }
    if opts.plan_file.is_none() && !auto_approve {
        if !std::io::stdin().is_terminal() {
            return Err(Diagnostic::error("E-APPLY-CONFIRM", "no terminal to ask for confirmation")
                .hint("pass --auto-approve to apply without confirmation, or save a plan with `kiln plan --out FILE` and apply it")
                .into());
        }
        let what = match mode {
            Mode::Destroy => "destroy all resources",
            Mode::RefreshOnly => "update the kiln state to reflect these detected changes",
            Mode::Normal => "perform these actions",
        };
        let warnings: String = stopping.iter().map(|w| format!("\n  Warning: {w}")).collect();
        l.printer
            .note_raw(format_args!("\nDo you want to {what}?{warnings}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "));
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if answer.trim() != "yes" {
            l.printer.note("\nApply cancelled.");
            return Ok(ExitStatus::Error);
        }
    }
    execute(s, dir, l, providers, state, &plan, args.parallelism).await
}

/// What people are told before a plan stops jobs that are still going (destroyed, or replaced):
/// `job.train is running (started 2h3m0s ago): destroying it stops it`. Statuses as refreshed by the
/// plan.
fn running_jobs_stopped(plan: &Plan) -> Vec<String> {
    use kiln_provider::portable::job::JobStatus;
    plan.changes
        .iter()
        .filter(|c| matches!(c.action, Action::Delete | Action::Replace) && c.kind == "job")
        .filter_map(|c| {
            let before = c.before.as_ref()?;
            let status = JobStatus::of(before).filter(|s| !s.is_terminal())?;
            let started = before
                .get("started_at")
                .and_then(kiln_value::Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).to_std().unwrap_or_default())
                .map(|d| format!(" (started {} ago)", kiln_ops::jobs::elapsed_text(d)))
                .unwrap_or_default();
            let what = if c.action == Action::Delete { "destroying it stops it" } else { "replacing it stops it and starts it again" };
            let deposed = if c.deposed.is_some() { " (deposed)" } else { "" };
            Some(format!("{}{deposed} is {}{started}: {what}", c.address, status.as_str()))
        })
        .collect()
}

/// Applies `plan` to `state` within the operation `s` (journal, final snapshot, interrupts) with
/// the command's `providers`; prints the summary and outputs.
pub(crate) async fn execute(
    s: &Session,
    dir: &Path,
    l: &Loaded,
    providers: &Providers,
    state: State,
    plan: &Plan,
    parallelism: Option<usize>,
) -> R {
    let (code, _) = apply_plan(s, dir, l, providers, state, plan, parallelism, true).await?;
    // A job people destroyed is not one `kiln watch` should start again.
    super::watch::note_destroyed(s, plan).await?;
    Ok(code)
}

/// [`execute`], with the errors it printed (`kiln watch` records what they were); without
/// `complete`, no "Apply complete!" line and no outputs on success (the refresh after `--wait`
/// when a job failed: the job's error is the last word).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_plan(
    s: &Session,
    dir: &Path,
    l: &Loaded,
    providers: &Providers,
    state: State,
    plan: &Plan,
    parallelism: Option<usize>,
    complete: bool,
) -> Result<(ExitStatus, Diagnostics), Failure> {
    // Jobs this apply deletes or replaces keep their logs for a while (`kiln logs` reads them).
    super::logs::archive_before_delete(dir, l, providers, &state, plan).await;
    let mode = plan.mode;
    let summary = plan.summary();
    let hook = Arc::new(Progress::new(summary.add + summary.change + summary.destroy, l.printer));
    let reg = registry();
    let applied = s
        .apply(state, |run| {
            kiln_core::apply(kiln_core::ApplyRequest {
                config: &l.config,
                state: run.state,
                registry: &reg,
                providers,
                plan,
                hook: hook.clone(),
                sink: run.sink,
                cancel: run.cancel,
                cwd: dir.to_path_buf(),
                parallelism,
                workspace: l.workspace().unwrap_or_else(|_| kiln_state::DEFAULT_WORKSPACE.to_string()),
            })
        })
        .await;
    hook.finish();
    let applied = applied?;
    let outcome = applied.outcome;
    let counts = hook.counts();
    if outcome.diagnostics.has_errors() || outcome.interrupted || applied.lost.is_some() {
        let mut diags = Diagnostics::new();
        if let Some(why) = &applied.lost {
            diags.push(Diagnostic::error("E-STATE-LOCK-LOST", why.clone()).hint(
                "state was saved with every completed operation; another kiln run may have changed it too: run `kiln plan` to see where things stand",
            ));
        }
        diags.extend(outcome.diagnostics.into_vec());
        l.printer.diagnostics(&l.config.sources, &diags);
        if outcome.interrupted {
            l.printer.note("Apply interrupted: state was saved with every completed operation.");
        }
        return Ok((ExitStatus::Error, diags));
    }
    if !complete {
        return Ok((ExitStatus::Success, Diagnostics::new()));
    }
    let verb = if mode == Mode::Destroy { "Destroy" } else { "Apply" };
    l.printer.data(format_args!("\n{verb} complete! Resources: {} added, {} changed, {} destroyed.", counts.0, counts.1, counts.2));
    print_outputs(l, &applied.state);
    Ok((ExitStatus::Success, Diagnostics::new()))
}

/// Apply progress on stderr: a progress bar on a terminal (indicatif), one line per operation
/// otherwise, nothing with KILN_QUIET. Also counts completed operations for the summary line.
pub(crate) struct Progress {
    counts: std::sync::Mutex<(usize, usize, usize)>,
    printer: Printer,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total: usize, printer: Printer) -> Self {
        let bar = printer.progress_bar().then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress { counts: std::sync::Mutex::new((0, 0, 0)), printer, bar }
    }

    fn counts(&self) -> (usize, usize, usize) {
        *self.counts.lock().expect("counts")
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(b) => b.println(text),
            None => self.printer.progress(text),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Hook for Progress {
    fn apply_start(&self, addr: Subject<'_>, action: Action) {
        let verb = match action {
            Action::Create => "Creating...",
            Action::Update => "Modifying...",
            Action::Delete => "Destroying...",
            _ => return,
        };
        match &self.bar {
            Some(b) => b.set_message(format!("{addr}: {verb}")),
            None => self.line(format!("{addr}: {verb}")),
        }
    }

    fn apply_done(&self, addr: Subject<'_>, action: Action, error: Option<&str>, elapsed: Duration) {
        if error.is_none() {
            let mut c = self.counts.lock().expect("counts");
            match action {
                Action::Create => c.0 += 1,
                Action::Update => c.1 += 1,
                Action::Delete => c.2 += 1,
                _ => {}
            }
        }
        if let Some(b) = &self.bar {
            b.inc(1);
        }
        let secs = elapsed.as_secs_f64();
        let what = match (action, error) {
            (_, Some(e)) => return self.line(format!("{addr}: failed after {secs:.1}s: {e}")),
            (Action::Create, None) => "Creation complete",
            (Action::Update, None) => "Modifications complete",
            (Action::Delete, None) => "Destruction complete",
            _ => return,
        };
        self.line(format!("{addr}: {what} after {secs:.1}s"));
    }

    fn launched(&self, addr: Subject<'_>, offering: &str, hourly: Option<kiln_value::Decimal>) {
        let price = hourly.map_or_else(|| "price unknown".to_string(), |h| format!("{}/h", kiln_plan::cost::usd(h)));
        self.line(format!("{addr}: Launched {offering} at {price}"));
    }
}
