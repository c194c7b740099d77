//! `cluster`: hosts of the fleet allocated to a request. Plan scans the fleet (inventory and
//! GPU claims, one round trip per host) and chooses the hosts (see [`crate::alloc`]), so the
//! plan shows exactly which hosts and GPUs the cluster gets, and a request the fleet cannot
//! satisfy fails there, saying what was asked and what each host has free. Other clusters'
//! allocations come from the claim files on the hosts (see [`crate::claims`]) plus what this
//! provider instance planned for other clusters in the same run.
//!
//! Create claims the planned GPUs on each host atomically and fails, claiming nothing, if one
//! was taken since the plan. Read reports allocated hosts that do not answer (`unreachable`);
//! a cluster whose claims are gone from every host that answers is gone. Every request
//! attribute forces replacement; delete releases the claims.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, UpdateRequest,
};
use kiln_value::{Map, Value};

use crate::alloc::{computed, place, placements, Ask, Candidate, Placement};
use crate::claims::{self, Claim};
use crate::scan::{scan, scan_all, HostScan};
use crate::ssh::SshError;
use crate::util::{attrs, error, object_id, read_error, str_attr, strings};
use crate::{Batch, Ctx, Kind};

pub(crate) struct Cluster;

const COMPUTED: [&str; 5] = ["cluster_id", "allocation", "node_ips", "gpus_per_node", "unreachable"];

fn invalid(errs: Vec<String>) -> Diagnostics {
    errs.into_iter()
        .map(|e| {
            Diagnostic::error("E-ONPREM-CLUSTER", e)
                .hint("write accelerators = \"A100:8\", cpus = \"16+\", memory = \"64+\", labels = { rack = \"a\" }")
        })
        .collect()
}

/// The hosts as the allocator sees them: GPUs held by other clusters' claims, and by other
/// clusters this instance planned.
fn candidates<'a>(scans: &'a [HostScan], planned: &BTreeMap<String, Vec<Placement>>, address: &str) -> Vec<Candidate<'a>> {
    scans
        .iter()
        .map(|s| {
            let mut taken = s.claims().map(|c| c.holders(address)).unwrap_or_default();
            for (owner, ps) in planned.iter().filter(|(a, _)| a.as_str() != address) {
                for p in ps.iter().filter(|p| p.host == s.host.name) {
                    taken.extend(p.indices().into_iter().map(|i| (i, owner.clone())));
                }
            }
            Candidate {
                name: &s.host.name,
                address: &s.host.address,
                labels: &s.host.labels,
                allocate: s.host.allocate,
                inventory: s.inventory(),
                taken,
            }
        })
        .collect()
}

/// Host-key problems found while scanning: never skipped silently.
fn key_warnings(scans: &[HostScan]) -> Diagnostics {
    scans
        .iter()
        .filter_map(|s| match &s.result {
            Err(SshError::HostKey(m)) => {
                Some(Diagnostic::warning("W-ONPREM-HOST-KEY", format!("{m}; the host was left out of the allocation")))
            }
            _ => None,
        })
        .collect()
}

fn with(base: &Value, extra: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    let mut m: Map = attrs(base);
    m.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
    Value::Map(m)
}

/// Chooses hosts for a new cluster and reserves them in this instance.
async fn allocate(ctx: &Ctx, address: &str, proposed: &Value) -> Result<(Value, Diagnostics), Diagnostics> {
    let ask = match Ask::parse(proposed) {
        Ok(Some(a)) => a,
        Ok(None) => return Ok((with(proposed, COMPUTED.map(|k| (k, Value::Unknown))), Diagnostics::new())),
        Err(errs) => return Err(invalid(errs)),
    };
    let mut planned = ctx.reservations.lock().await;
    let scans = scan_all(ctx).await;
    match place(address, &ask, &candidates(&scans, &planned, address)) {
        Ok(ps) => {
            let v = with(
                proposed,
                computed(&ps).into_iter().chain([("cluster_id", Value::Unknown), ("unreachable", strings(Vec::<&str>::new()))]),
            );
            planned.insert(address.to_string(), ps);
            Ok((v, key_warnings(&scans)))
        }
        Err(msg) => Err(error("E-ONPREM-CAPACITY", address, msg)
            .hint("ask for less (fewer `nodes`, GPUs or labels), free GPUs by destroying a cluster that holds them, or add hosts")
            .into()),
    }
}

/// Claims `p`'s GPUs and membership on its host.
async fn claim_on(ctx: &Ctx, p: &Placement, claim: &Claim) -> Result<(), String> {
    let h = ctx.host(&p.host).ok_or_else(|| format!("host `{}` is no longer in the provider block", p.host))?;
    let dir = ctx.host_dir(h).await.map_err(|e| e.message().to_string())?;
    let idx: Vec<String> = p.indices().iter().map(u32::to_string).collect();
    let mut args = vec![dir.as_str(), claim.cluster_id.as_str()];
    let json = claim.to_json();
    args.push(&json);
    args.extend(idx.iter().map(String::as_str));
    let out = ctx.ssh.run(h, "cluster.claim", claims::CLAIM, &args).await.map_err(|e| e.message().to_string())?;
    match out.code {
        Some(0) => Ok(()),
        Some(3) => {
            let held: Vec<String> = claims::parse(&out.text()).gpus.iter().map(|(i, c)| format!("GPU {i} by {}", c.address)).collect();
            Err(format!("on host `{}`, {} since the plan", p.host, held.join(", ")))
        }
        _ => Err(format!("cannot claim GPUs on host `{}`: {}", p.host, out.stderr.trim())),
    }
}

/// Removes `cluster_id`'s claims from `host`.
async fn release_on(ctx: &Ctx, host: &str, cluster_id: &str) -> Result<(), SshError> {
    let Some(h) = ctx.host(host) else { return Ok(()) };
    let dir = ctx.host_dir(h).await?;
    ctx.ssh.run(h, "cluster.release", claims::RELEASE, &[&dir, cluster_id]).await.map(|_| ())
}

async fn create(ctx: &Ctx, req: &CreateRequest<'_>) -> Result<Value, Diagnostic> {
    let ps = placements(req.planned);
    if ps.is_empty() {
        return Err(error("E-ONPREM-UNKNOWN", req.address, format!("{}: the allocation is not known; run `kiln plan` again", req.address)));
    }
    let claim =
        Claim { address: req.address.to_string(), cluster_id: object_id(req.address, "cluster", req.token), token: req.token.to_string() };
    let results = join_all(ps.iter().map(|p| claim_on(ctx, p, &claim))).await;
    let failed: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().cloned()).collect();
    if !failed.is_empty() {
        join_all(ps.iter().map(|p| release_on(ctx, &p.host, &claim.cluster_id))).await;
        return Err(error("E-ONPREM-CLAIM", req.address, format!("{}: GPUs were taken: {}", req.address, failed.join("; ")))
            .hint("run `kiln plan` again: it allocates from what is free now"));
    }
    Ok(with(req.planned, [("cluster_id", Value::from(claim.cluster_id.as_str())), ("unreachable", strings(Vec::<&str>::new()))]))
}

/// Present on every answering host? `None` when no allocated host answered.
fn membership(ps: &[Placement], scans: &[HostScan], id: &str) -> (Vec<String>, Option<bool>) {
    let mut unreachable = Vec::new();
    let mut any_member = None;
    for p in ps {
        match scans.iter().find(|s| s.host.name == p.host).and_then(|s| s.claims()) {
            Some(c) => any_member = Some(any_member.unwrap_or(false) || c.members.contains_key(id)),
            None => unreachable.push(p.host.clone()),
        }
    }
    (unreachable, any_member)
}

fn read(item: &ReadItem<'_>, scans: &[HostScan]) -> ReadResult {
    let Some(id) = str_attr(item.state, "cluster_id") else { return ReadResult::gone() };
    match membership(&placements(item.state), scans, id) {
        (_, Some(false)) => ReadResult::gone(),
        (unreachable, _) => ReadResult::found(with(item.state, [("unreachable", strings(&unreachable))])),
    }
}

async fn delete(ctx: &Ctx, req: &DeleteRequest<'_>) -> Diagnostics {
    ctx.reservations.lock().await.remove(req.address);
    let Some(id) = str_attr(req.prior, "cluster_id") else { return Diagnostics::new() };
    let ps = placements(req.prior);
    let results = join_all(ps.iter().map(|p| release_on(ctx, &p.host, id))).await;
    ps.iter()
        .zip(results)
        .filter_map(|(p, r)| r.err().map(|e| (p, e)))
        .map(|(p, e)| {
            Diagnostic::warning(
                "W-ONPREM-RELEASE",
                format!("{}: could not release its GPUs on host `{}`: {}", req.address, p.host, e.message()),
            )
            .address(req.address)
            .hint(format!("when the host is back, remove its files `claims/*` naming cluster_id {id} in the host's kiln directory"))
        })
        .collect()
}

async fn recover(ctx: &Ctx, req: &RecoverRequest<'_>) -> ReadResult {
    let ps = placements(req.planned);
    let hosts: Vec<_> = ps.iter().filter_map(|p| ctx.host(&p.host)).collect();
    let scans = scan(ctx, &hosts).await;
    let owned = |s: &HostScan| s.claims().and_then(|c| c.members.values().find(|m| m.token == req.token).cloned());
    let found: Vec<Claim> = scans.iter().filter_map(owned).collect();
    if found.is_empty() {
        return ReadResult::gone();
    }
    let id = found[0].cluster_id.clone();
    if found.len() < ps.len() {
        join_all(ps.iter().map(|p| release_on(ctx, &p.host, &id))).await;
        return ReadResult::gone();
    }
    ReadResult::found(with(req.planned, [("cluster_id", Value::from(id)), ("unreachable", strings(Vec::<&str>::new()))]))
}

#[async_trait]
impl Kind for Cluster {
    fn validate(&self, config: &Value) -> Diagnostics {
        Ask::parse(config).err().map(invalid).unwrap_or_default()
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> PlanResponse {
        if req.prior.is_some() {
            // The allocation stands; any change of the request replaces the cluster, and the
            // engine then plans it afresh (prior = None).
            return PlanResponse { planned: req.proposed.clone(), requires_replace: Vec::new(), diagnostics: Diagnostics::new() };
        }
        match allocate(ctx, req.address, req.proposed).await {
            Ok((planned, diagnostics)) => PlanResponse { planned, requires_replace: Vec::new(), diagnostics },
            Err(d) => {
                PlanResponse { planned: req.proposed.clone(), requires_replace: Vec::new(), diagnostics: d.with_address(req.address) }
            }
        }
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> ApplyResponse {
        create(ctx, req).await.map_or_else(ApplyResponse::error, ApplyResponse::ok)
    }

    async fn update(&self, _ctx: &Ctx, req: &UpdateRequest<'_>) -> ApplyResponse {
        // Nothing a cluster holds can change in place.
        ApplyResponse::ok(req.planned.clone())
    }

    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Diagnostics {
        delete(ctx, req).await
    }

    async fn read(&self, ctx: &Ctx, item: &ReadItem<'_>, batch: &Batch) -> ReadResult {
        read(item, batch.scans(ctx).await)
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> ReadResult {
        recover(ctx, req).await
    }

    async fn import(&self, _ctx: &Ctx, req: &ImportRequest<'_>) -> ReadResult {
        read_error(
            error("E-ONPREM-IMPORT", req.address, "onprem clusters cannot be imported yet")
                .hint("declare the cluster and run `kiln apply`"),
        )
    }
}
