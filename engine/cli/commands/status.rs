//! `kiln jobs` and `kiln status`.

use super::jobs::{duration, providers, read_jobs, status};
use super::{load, open, read_state, Ctx, ExitStatus, R};
use crate::cli::VarArgs;

pub async fn list(cx: &Ctx, vars: &VarArgs, _format: kiln_views::Format) -> R {
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

/// `kiln status`: clusters and jobs with nodes, GPUs, state and uptime.
pub async fn status_cmd(_cx: &Ctx, _vars: &VarArgs, _format: kiln_views::Format) -> R {
    Err(kiln_diag::Diagnostic::error("E-TODO", "kiln status is being written").into())
}
