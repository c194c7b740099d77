//! `apply --wait`: waiting for jobs after an apply, then refreshing state and outputs.

use std::path::Path;
use std::time::Duration;

use kiln_core::Providers;
use kiln_diag::Diagnostic;
use kiln_ops::operation::Session;
use kiln_plan::{Action, Mode};

use super::jobs::{configure, read_jobs, status, succeeded, terminal};
use super::{execute, make_plan, ExitStatus, Loaded, R};
use crate::cli::PlanArgs;

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
