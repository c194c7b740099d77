//! What the job commands share (`kiln logs`, `kiln jobs`, `kiln status`, `apply --wait`,
//! `kiln run`): this command's providers, and jobs read from them. Jobs are resources of the
//! portable kind `job`; their provider reports `status` (one of `JobStatus`; what kiln-ops' `jobs` reads of it), `started_at`,
//! `finished_at` and `restarts` as attributes, and serves their logs.

use std::path::Path;

use kiln_addrs::InstanceAddr;
use kiln_core::Providers;
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

/// Current attributes of every resource of `kind` in state, read from providers in one batch
/// each; released objects (which do not exist) are not read.
pub(crate) async fn read_kind(providers: &Providers, state: &State, kind: &str) -> Vec<(InstanceAddr, Option<Value>)> {
    let mut out = Vec::new();
    let mut by_provider: std::collections::BTreeMap<&str, Vec<(&InstanceAddr, &kiln_state::ResourceState)>> = Default::default();
    for (a, r) in state.resources.iter().filter(|(_, r)| r.kind == kind && r.released.is_none()) {
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

/// The configured provider of `r` (an object in state at `addr`), or why there is none.
pub(crate) fn provider_of(
    p: &Providers,
    addr: &InstanceAddr,
    r: &kiln_state::ResourceState,
) -> Result<std::sync::Arc<dyn kiln_provider::Provider>, kiln_diag::Diagnostic> {
    p.get(&r.provider).ok_or_else(|| {
        kiln_diag::Diagnostic::error("E-PROVIDER-UNAVAILABLE", format!("provider `{}` is not available", r.provider))
            .address(addr)
            .hint("the configuration no longer declares it, or this kiln was built without it")
    })
}
