//! `kiln jobs` and `kiln status`: what state holds, read now through the providers, shown by
//! `kiln_views::jobs` and `kiln_views::status` in every `--format`.

use kiln_addrs::InstanceAddr;
use kiln_state::State;
use kiln_value::{Decimal, Value};
use kiln_views::{ClusterView, JobView, Jobs, Status};

use super::jobs::{providers, read_jobs, read_kind};
use super::{load, open, read_state, Ctx, ExitStatus, R};
use crate::cli::VarArgs;

/// The kinds `kiln status` lists as clusters.
const CLUSTER_KINDS: [&str; 2] = ["cluster", "spot_pool"];

fn provider_of<'a>(state: &'a State, a: &InstanceAddr) -> &'a str {
    state.resources.get(a).map_or("", |r| r.provider.as_str())
}

fn job_views(state: &State, jobs: &[(InstanceAddr, Option<Value>)], now: chrono::DateTime<chrono::Utc>) -> Vec<JobView> {
    let events = |a: &InstanceAddr| state.events.get(a).map(Vec::as_slice).unwrap_or_default();
    jobs.iter().map(|(a, v)| JobView::new(&a.to_string(), provider_of(state, a), v.as_ref(), now).with_events(events(a))).collect()
}

/// `kiln jobs`: every job with its status, ID, nodes, times, duration, restarts and exit codes.
pub async fn list(cx: &Ctx, vars: &VarArgs, format: kiln_views::Format) -> R {
    let dir = cx.dir();
    let l = load(cx, vars)?;
    let backend = open(&l)?;
    let state = read_state(backend.as_ref()).await?;
    let p = providers(dir, &l, &state).await?;
    let jobs = read_jobs(&p, &state).await;
    let view = Jobs(job_views(&state, &jobs, chrono::Utc::now()));
    cx.printer.data_raw(kiln_views::render(&view, format, cx.settings.colour.stdout));
    Ok(ExitStatus::Success)
}

/// `kiln status`: clusters and jobs with nodes, GPUs, state and uptime.
pub async fn status_cmd(cx: &Ctx, vars: &VarArgs, format: kiln_views::Format) -> R {
    let dir = cx.dir();
    let l = load(cx, vars)?;
    let backend = open(&l)?;
    let state = read_state(backend.as_ref()).await?;
    let p = providers(dir, &l, &state).await?;
    let now = chrono::Utc::now();
    let mut clusters = Vec::new();
    for kind in CLUSTER_KINDS {
        for (a, v) in read_kind(&p, &state, kind).await {
            let hourly = state.resources.get(&a).and_then(|r| r.billing.as_ref()).and_then(|b| b.hourly);
            clusters.push(ClusterView::new(&a.to_string(), provider_of(&state, &a), kind, v.as_ref(), now).priced(hourly));
        }
    }
    for (a, r) in state.resources.iter().filter(|(_, r)| r.released.is_some() && CLUSTER_KINDS.contains(&r.kind.as_str())) {
        clusters.push(ClusterView::released(&a.to_string(), &r.provider, &r.kind, &r.attributes, now).priced(Some(Decimal::ZERO)));
    }
    clusters.sort_by(|a, b| a.address.cmp(&b.address));
    let jobs = read_jobs(&p, &state).await;
    let view = Status { clusters, jobs: job_views(&state, &jobs, now) };
    cx.printer.data_raw(kiln_views::render(&view, format, cx.settings.colour.stdout));
    Ok(ExitStatus::Success)
}
