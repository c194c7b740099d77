//! Releasing the capacity of finished jobs (`on_finish = "destroy_capacity"`) where kiln sees
//! them finish: after `apply --wait` and `kiln run`, and in `kiln watch`. The release is the
//! plan's own (`kiln_core`'s `release` decides it: the job succeeded and nothing else needs the
//! cluster), and only the releases of that plan are applied: a configuration edit nobody
//! reviewed is never applied on the way. A plain `kiln plan` shows the same releases.

use std::path::Path;

use kiln_addrs::InstanceAddr;
use kiln_core::Providers;
use kiln_ops::operation::Session;
use kiln_plan::{Action, Mode, Reason};
use kiln_provider::portable::job::{releases_capacity, DESTROY_CAPACITY, ON_FINISH};
use kiln_state::State;
use kiln_value::Value;

use super::apply::apply_plan;
use super::planning::make_plan;
use super::{ExitStatus, Failure, Loaded};
use crate::cli::PlanArgs;

/// Whether a job in `jobs` (addresses with their values now) succeeded, asks to release its
/// capacity, and ran on a cluster state still holds as running: worth a plan.
pub(crate) fn releasable<'a>(state: &State, mut jobs: impl Iterator<Item = (&'a InstanceAddr, &'a Value)>) -> bool {
    jobs.any(|(a, v)| releases_capacity(v) && state.resources.get(a).is_some_and(|r| runs_on_live_cluster(state, r)))
}

/// Whether a job in state asks to release its capacity while its cluster runs: `kiln watch`
/// has something to wait for.
pub(crate) fn awaiting(state: &State) -> bool {
    state.resources.iter().any(|(_, r)| {
        r.kind == "job" && r.attributes.get(ON_FINISH).and_then(Value::as_str) == Some(DESTROY_CAPACITY) && runs_on_live_cluster(state, r)
    })
}

/// Whether the job `r` depends on a cluster state holds as running (not released).
fn runs_on_live_cluster(state: &State, r: &kiln_state::ResourceState) -> bool {
    r.dependencies.iter().any(|d| state.resources.get(d).is_some_and(|c| c.kind == "cluster" && c.released.is_none()))
}

/// Plans against `state` (refreshed first when `refresh`) and applies the plan's releases, and
/// nothing else, in the operation `s`. The addresses released (none: nothing to release).
pub(crate) async fn release_finished(
    s: &Session,
    dir: &Path,
    l: &Loaded,
    state: State,
    p: &Providers,
    vars: &crate::cli::VarArgs,
    refresh: bool,
) -> Result<Vec<InstanceAddr>, Failure> {
    let args = PlanArgs { vars: vars.clone(), refresh, ..PlanArgs::default() };
    let mut plan = make_plan(s, dir, l, &state, p, &args, Mode::Normal).await?;
    plan.changes.retain(|c| c.action == Action::Delete && matches!(c.reason, Some(Reason::Released { .. })));
    let released: Vec<InstanceAddr> = plan.changes.iter().map(|c| c.address.clone()).collect();
    if released.is_empty() {
        return Ok(released);
    }
    for c in &plan.changes {
        if let Some(Reason::Released { by }) = &c.reason {
            l.printer.note(format_args!("{by} succeeded: releasing {} (on_finish = \"destroy_capacity\")", c.address));
        }
    }
    match apply_plan(s, dir, l, p, state, &plan, None, false).await? {
        (ExitStatus::Success, _) => Ok(released),
        (_, errors) => Err(Failure::new(errors)),
    }
}
