//! What the job commands share (`kiln logs`, `kiln jobs`, `kiln status`, `apply --wait`,
//! `kiln run`): this command's providers, and jobs read from them. Jobs are resources of the
//! portable kind `job`; their provider reports `status` (one of [`JobStatus`]), `started_at`,
//! `finished_at` and `restarts` as attributes, and serves their logs.

use std::path::Path;

use kiln_addrs::InstanceAddr;
use kiln_core::Providers;
use kiln_provider::portable::job::JobStatus;
use kiln_provider::{ReadItem, ReadRequest};
use kiln_state::State;
use kiln_value::Value;

use super::{registry, Failure, Loaded};

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
pub(crate) async fn read_jobs(providers: &Providers, state: &State) -> Vec<(InstanceAddr, Option<Value>)> {
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
pub(crate) fn status(v: &Option<Value>) -> &str {
    v.as_ref().and_then(|v| v.get("status")).and_then(Value::as_str).unwrap_or("gone")
}

/// Whether a job's status will not change by itself ([`JobStatus::is_terminal`]).
pub(crate) fn terminal(v: &Option<Value>) -> bool {
    v.as_ref().and_then(JobStatus::of).is_some_and(JobStatus::is_terminal)
}

pub(crate) fn succeeded(v: &Option<Value>) -> bool {
    v.as_ref().and_then(JobStatus::of) == Some(JobStatus::Succeeded)
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
