//! `kiln apply` and `kiln destroy`: plan (or load a saved plan), confirm, apply with group-committed
//! state, Ctrl-C handling and progress, then save the final state.

use crate::cli::PlanArgs;
use crate::{render, view_plan};
use kiln_core::{Cancel, Hook, Subject};
use kiln_diag::Diagnostics;
use kiln_plan::{Action, Mode, Plan};
use kiln_state::{State, StateBackend};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::*;

pub struct ApplyOpts {
    pub auto_approve: bool,
    /// Wait for jobs to finish, then refresh state and outputs.
    pub wait: bool,
    pub plan_file: Option<PathBuf>,
    pub mode: Mode,
}

pub(crate) async fn apply_cmd(dir: &Path, args: &PlanArgs, opts: ApplyOpts) -> R {
    let l = load(dir, &args.vars)?;
    let backend = open(&l.config, dir)?;
    let lock = lock(&backend, if opts.mode == Mode::Destroy { "destroy" } else { "apply" }).await?;
    let mut r = apply_locked(dir, &l, backend.clone(), args, &opts).await;
    if opts.wait && matches!(r, Ok(ExitStatus::Success)) {
        r = super::jobs::wait_then_refresh(dir, &l, backend.clone(), args).await;
    }
    unlock(backend.as_ref(), lock).await;
    r
}

pub(crate) async fn apply_locked(dir: &Path, l: &Loaded, backend: Arc<dyn StateBackend>, args: &PlanArgs, opts: &ApplyOpts) -> R {
    let (auto_approve, mode) = (opts.auto_approve, opts.mode);
    let state = read_state(backend.as_ref()).await?;
    let plan = match &opts.plan_file {
        Some(path) => {
            let saved = read_plan(&l.config, dir, path)?;
            let current_lineage = (!state.lineage.is_empty()).then(|| state.lineage.clone());
            let current_serial = (!state.lineage.is_empty()).then_some(state.serial);
            if saved.lineage != current_lineage || saved.serial != current_serial {
                return Err(format!(
                    "Error: saved plan is stale: the state changed since the plan was made (plan made against serial {}, state is at serial {})\n  = help: run `kiln plan --out {}` again and review the new plan",
                    saved.serial.map_or("none".into(), |s| s.to_string()),
                    current_serial.map_or("none".into(), |s| s.to_string()),
                    path.display()
                ).into());
            }
            if saved.config_digest != kiln_core::config_digest(&l.config) {
                return Err(format!("Error: saved plan is stale: the configuration changed since the plan was made\n  = help: run `kiln plan --out {}` again and review the new plan", path.display()).into());
            }
            saved
        }
        None => {
            let p = make_plan(dir, l, &state, args, mode).await?;
            print!("{}", view_plan::for_stdout(&p));
            p
        }
    };
    if !plan.has_changes() {
        return Ok(ExitStatus::Success);
    }
    if opts.plan_file.is_none() && !auto_approve {
        if !std::io::stdin().is_terminal() {
            return Err("Error: no terminal to ask for confirmation\n  = help: pass --auto-approve to apply without confirmation, or save a plan with `kiln plan --out FILE` and apply it".into());
        }
        let what = if mode == Mode::Destroy { "destroy all resources" } else { "perform these actions" };
        eprint!("\nDo you want to {what}?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if answer.trim() != "yes" {
            eprintln!("\nApply cancelled.");
            return Ok(ExitStatus::Error);
        }
    }
    execute(dir, l, backend, state, &plan, args.parallelism).await
}

/// Applies `plan` to `state` and saves the result; prints the summary and outputs.
pub async fn execute(
    dir: &Path,
    l: &Loaded,
    backend: Arc<dyn StateBackend>,
    mut state: State,
    plan: &Plan,
    parallelism: Option<usize>,
) -> R {
    let mode = plan.mode;
    if state.lineage.is_empty() {
        state = State::new();
        backend.write(&state).await.map_err(|e| format!("Error: cannot create the state: {e}"))?;
    }
    // Every journal append advances the serial: refuse, before anything is created, a state so
    // near the largest serial that this apply could not record its work.
    next_serial(state.serial, 1 << 32)?;
    let (sink, writer) = kiln_ops::JournalSink::start(backend.clone(), state.clone());
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(0u8);
    let mut lost = lock_lost();
    let signals = tokio::spawn(async move {
        let mut interrupts = Interrupts::new(); // Ctrl-C and SIGTERM
        let mut level = 0u8;
        let mut lost_seen = false;
        while level < 2 {
            tokio::select! {
                ok = interrupts.recv() => {
                    if !ok {
                        return;
                    }
                    level += 1;
                    if level == 1 {
                        eprintln!("\nInterrupt received: no new operations will start; waiting for those in flight. Press Ctrl-C again to abandon them.");
                    } else {
                        eprintln!("\nSecond interrupt: abandoning operations in flight. Every completed operation is saved; a create that was still running stays pending in state, and the next plan resolves it.");
                    }
                    let _ = cancel_tx.send(level);
                }
                why = lost.wait_for(Option::is_some), if !lost_seen => {
                    lost_seen = true;
                    let why = why.ok().and_then(|w| w.clone()).unwrap_or_default();
                    eprintln!("\nError: {why}: another run may be changing the state, so no new operations will start; waiting for those in flight.");
                    if level == 0 {
                        level = 1;
                        let _ = cancel_tx.send(level);
                    }
                }
            }
        }
    });
    let summary = plan.summary();
    let hook = Arc::new(Progress::new(summary.add + summary.change + summary.destroy));
    let reg = registry();
    let providers = kiln_core::Providers::new();
    let outcome = kiln_core::apply(kiln_core::ApplyRequest {
        config: &l.config,
        state: state.clone(),
        registry: &reg,
        providers: &providers,
        plan,
        hook: hook.clone(),
        sink: sink.clone(),
        cancel: Cancel(cancel_rx),
        cwd: dir.to_path_buf(),
        parallelism,
        workspace: workspace::current(dir).unwrap_or_else(|_| kiln_state::DEFAULT_WORKSPACE.to_string()),
    })
    .await;
    signals.abort();
    hook.finish();
    // The final snapshot is what the journal holds (see kiln_ops::JournalSink): it includes any
    // operation that completed after it was abandoned.
    sink.close();
    drop(sink);
    let closed = writer.await.unwrap_or_else(|_| kiln_ops::Closed { state: outcome.state.clone(), commits: 0 });
    let commits = closed.commits;
    let mut new_state = closed.state;
    // The journal advanced the stored serial once per group commit; the snapshot goes past it.
    new_state.serial = next_serial(state.serial, commits.saturating_add(1))?;
    new_state.lineage = state.lineage.clone();
    if let Err(e) = backend.write(&new_state).await {
        return Err(format!("Error: cannot save the final state: {e}\n  = help: every completed operation is in {}.journal; the next kiln command folds it in", backend.describe()).into());
    }
    let counts = hook.counts();
    let lost = lock_lost().borrow().clone();
    if let Some(why) = &lost {
        eprintln!("Error: {why}\n  = help: state was saved with every completed operation; another kiln run may have changed it too: run `kiln plan` to see where things stand");
    }
    if outcome.diagnostics.has_errors() || outcome.interrupted || lost.is_some() {
        let diags: Diagnostics = outcome.diagnostics;
        eprint!("{}", render::diagnostics(&l.config.sources, &diags));
        if outcome.interrupted {
            eprintln!("Apply interrupted: state was saved with every completed operation.");
        }
        return Ok(ExitStatus::Error);
    }
    let verb = if mode == Mode::Destroy { "Destroy" } else { "Apply" };
    println!("\n{verb} complete! Resources: {} added, {} changed, {} destroyed.", counts.0, counts.1, counts.2);
    print_outputs(&new_state);
    Ok(ExitStatus::Success)
}

/// Apply progress on stderr: a progress bar on a terminal (indicatif), one line per operation
/// otherwise, nothing with KILN_QUIET. Also counts completed operations for the summary line.
pub(crate) struct Progress {
    counts: std::sync::Mutex<(usize, usize, usize)>,
    quiet: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total: usize) -> Self {
        let quiet = std::env::var_os("KILN_QUIET").is_some();
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress { counts: std::sync::Mutex::new((0, 0, 0)), quiet, bar }
    }

    fn counts(&self) -> (usize, usize, usize) {
        *self.counts.lock().expect("counts")
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(b) => b.println(text),
            None if !self.quiet => eprintln!("{text}"),
            None => {}
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
}
