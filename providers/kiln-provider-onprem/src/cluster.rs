//! `cluster`: hosts of the fleet allocated to a request. Plan scans the fleet (inventory and
//! GPU claims, one round trip per host) and chooses the hosts (see [`crate::alloc`]), so the
//! plan shows exactly which hosts and GPUs the cluster gets, and a request the fleet cannot
//! satisfy fails there, saying what was asked and what each host has free. Other clusters'
//! allocations come from the claim files on the hosts (see [`crate::claims`]) plus what this
//! provider instance planned for other clusters in the same run.
//!
//! Create claims the planned GPUs on each host atomically and fails, claiming nothing, if one
//! was taken since the plan. Read reports allocated hosts that do not answer (`unreachable`;
//! a host whose key is refused is a warning, never a reason to move); a cluster whose claims
//! are gone from every host that answers is gone. Every request attribute forces replacement;
//! delete releases the claims and stops what its jobs still run, leaving the record of a job
//! that finished (a job that releases its capacity when done outlives its cluster in state).
//!
//! A host that stops answering is replaced in place: when the refresh found allocated hosts
//! unreachable, plan gives each of their nodes another free host that satisfies the request
//! (same rank, the other nodes keep theirs), and update claims the new hosts under the same
//! `cluster_id` and releases the old ones (a warning when they still do not answer). The
//! cluster keeps its identity and its healthy nodes; only jobs on it, which are `lost` anyway,
//! are replaced. When no free host can take a node, the plan warns and changes nothing.
//!
//! Such a host may come back still holding the cluster's claims and running the nodes of its
//! old jobs (it was unreachable, not dead). Read lists it in `stale_hosts`, plan shows it going
//! from there, and update stops those nodes and releases the claims, as delete does on every
//! host the cluster holds.
//!
//! `created_at` is when the create claimed the hosts; a state written before kiln recorded it
//! takes, on refresh, the time of the oldest member file among the hosts that answer (plans
//! keep a prior's, or none: such a state plans no change).

use std::collections::BTreeMap;

use futures_util::future::join_all;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, UpdateRequest,
};
use kiln_value::{Map, Value};

use kiln_provider::portable::request::{self, CPUS_PER_NODE};

use crate::alloc::{computed, place, placements, Ask, Candidate, Placement};
use crate::claims::{self, Claim};
use crate::scan::{scan, scan_all, HostScan};
use crate::ssh::SshError;
use crate::util::{attrs, error, object_id, str_attr, str_list, strings};
use crate::{Batch, Ctx, Kind, KindSchema, Outcome};

pub(crate) struct Cluster;

const COMPUTED: [&str; 7] = ["cluster_id", "allocation", "node_ips", "gpus_per_node", CPUS_PER_NODE, "unreachable", "stale_hosts"];

/// The state attributes of a cluster that holds exactly its allocation.
fn settled() -> [(&'static str, Value); 2] {
    [("unreachable", strings(Vec::<&str>::new())), ("stale_hosts", strings(Vec::<&str>::new()))]
}

/// Whether `v` (a prior state) was written before the shared request grammar: it has no
/// `cpus_per_node`, and its requests keep the meaning they had (see [`Ask::before`]).
fn written_before(v: &Value) -> bool {
    v.get(CPUS_PER_NODE).is_none_or(Value::is_null)
}

/// `cpus_per_node` of an allocation: the request's, or the smallest host's CPUs.
fn cpus_per_node(ask: &Ask, ps: &[Placement], scans: &[HostScan]) -> Value {
    let cpus = ps.iter().filter_map(|p| scans.iter().find(|s| s.host.name == p.host)?.inventory().ok().map(|i| i.cpus));
    Value::from(ask.cpus_per_node(cpus) as i64)
}

/// The hosts as the allocator sees them: GPUs held by other clusters' claims, and by other
/// clusters this instance planned.
pub(crate) fn candidates<'a>(scans: &'a [HostScan], planned: &BTreeMap<String, Vec<Placement>>, address: &str) -> Vec<Candidate<'a>> {
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

const CREATED_AT: &str = "created_at";

/// When the cluster took its hosts: the oldest of its member files on the hosts that answered.
fn member_since(scans: &[HostScan], id: &str) -> Option<String> {
    scans.iter().filter_map(|s| s.claims()?.member_since.get(id).copied()).min().map(crate::util::from_epoch)
}

/// `base`'s `created_at` once recorded (it never moves), else `found`, else none.
fn created_at(base: &Value, found: Option<String>) -> Value {
    let mut m = attrs(base);
    match (base.get(CREATED_AT).filter(|v| v.as_str().is_some()), found) {
        (Some(_), _) => None,
        (None, Some(t)) => m.insert(CREATED_AT.into(), t.into()),
        (None, None) => m.remove(CREATED_AT),
    };
    Value::Map(m)
}

fn with(base: &Value, extra: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    let mut m: Map = attrs(base);
    m.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
    Value::Map(m)
}

/// Chooses hosts for a new cluster and reserves them in this instance.
async fn allocate(ctx: &Ctx, address: &str, proposed: &Value) -> Result<(Value, Diagnostics), Diagnostics> {
    let ask = match Ask::parse(proposed, false) {
        Ok(Some(a)) => a,
        Ok(None) => return Ok((with(proposed, COMPUTED.map(|k| (k, Value::Unknown))), Diagnostics::new())),
        Err(errs) => return Err(errs),
    };
    let mut planned = ctx.reservations.lock().await;
    let scans = scan_all(ctx).await;
    match place(address, &ask, &candidates(&scans, &planned, address)) {
        Ok(ps) => {
            let cpus = (CPUS_PER_NODE, cpus_per_node(&ask, &ps, &scans));
            let v = with(proposed, computed(&ps).into_iter().chain([("cluster_id", Value::Unknown), cpus]).chain(settled()));
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

/// Stops the nodes of `cluster_id`'s jobs left on `host` (see the module comment) and removes
/// their directories, then removes its claims there.
async fn release_on(ctx: &Ctx, host: &str, cluster_id: &str) -> Result<(), SshError> {
    release_keeping(ctx, host, cluster_id, "").await
}

/// [`release_on`], except that `keep` = `keep-finished` leaves the directories of jobs that
/// finished (see [`crate::job::orphans_script`]).
async fn release_keeping(ctx: &Ctx, host: &str, cluster_id: &str, keep: &str) -> Result<(), SshError> {
    let Some(h) = ctx.host(host) else { return Ok(()) };
    let dir = ctx.host_dir(h).await?;
    let script = format!("{}{}", crate::job::orphans_script(), claims::RELEASE);
    ctx.ssh.run(h, "cluster.release", &script, &[&dir, cluster_id, keep]).await.map(|_| ())
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
    let made = [("cluster_id", Value::from(claim.cluster_id.as_str())), (CREATED_AT, Value::from(crate::util::now()))];
    Ok(with(req.planned, made.into_iter().chain(settled())))
}

/// Present on every answering host? `None` when no allocated host answered. Also the hosts
/// that do not answer, and the problems of those that answered but were refused (host key).
fn membership(ps: &[Placement], scans: &[HostScan], id: &str) -> (Vec<String>, Option<bool>, Diagnostics) {
    let mut unreachable = Vec::new();
    let mut any_member = None;
    let mut refused = Diagnostics::new();
    for p in ps {
        match scans.iter().find(|s| s.host.name == p.host).map(|s| &s.result) {
            Some(Ok((_, c))) => any_member = Some(any_member.unwrap_or(false) || c.members.contains_key(id)),
            Some(Err(SshError::HostKey(m))) => refused
                .push(Diagnostic::warning("W-ONPREM-HOST-KEY", m.clone()).hint(
                    "check the key on the host itself (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) and set `host_key` to it",
                )),
            Some(Err(SshError::Login(m))) => refused.push(Diagnostic::warning("W-ONPREM-LOGIN", m.clone())),
            Some(Err(SshError::Unreachable(_))) | None => unreachable.push(p.host.clone()),
        }
    }
    (unreachable, any_member, refused)
}

/// Answering hosts outside the allocation that still hold the cluster's claims.
fn stale_hosts<'a>(ps: &[Placement], scans: &'a [HostScan], id: &str) -> Vec<&'a str> {
    scans
        .iter()
        .filter(|s| !ps.iter().any(|p| p.host == s.host.name))
        .filter(|s| s.claims().is_some_and(|c| c.members.contains_key(id)))
        .map(|s| s.host.name.as_str())
        .collect()
}

fn read(item: &ReadItem<'_>, scans: &[HostScan]) -> ReadResult {
    let Some(id) = str_attr(item.state, "cluster_id") else { return ReadResult::gone() };
    let ps = placements(item.state);
    match membership(&ps, scans, id) {
        (_, Some(false), _) => ReadResult::gone(),
        (unreachable, _, refused) => ReadResult {
            state: Some(created_at(
                &with(item.state, [("unreachable", strings(&unreachable)), ("stale_hosts", strings(stale_hosts(&ps, scans, id)))]),
                member_since(scans, id),
            )),
            diagnostics: refused.with_address(item.address),
        },
    }
}

/// For a cluster whose refresh found allocated hosts unreachable: the prior allocation with
/// each node on a host that still does not answer moved to a free host satisfying the request.
/// `None` when nothing is to move; a warning when a node cannot move.
async fn reallocate(ctx: &Ctx, address: &str, prior: &Value, proposed: &Value) -> Option<(Value, Diagnostics)> {
    if str_list(prior, "unreachable").is_empty() {
        return None;
    }
    let before = written_before(prior) && request::unchanged(prior, proposed);
    let ask = Ask::parse(proposed, before).ok().flatten()?;
    let mut planned = ctx.reservations.lock().await;
    let scans = scan_all(ctx).await;
    let old = placements(prior);
    let down =
        |p: &Placement| scans.iter().find(|s| s.host.name == p.host).is_none_or(|s| matches!(s.result, Err(SshError::Unreachable(_))));
    let lost: Vec<usize> = (0..old.len()).filter(|i| down(&old[*i])).collect();
    if lost.is_empty() {
        return None;
    }
    let lost_names: Vec<&str> = lost.iter().map(|i| old[*i].host.as_str()).collect();
    // Hosts the cluster has (answering or not) cannot take a second node of it.
    let free: Vec<Candidate<'_>> =
        candidates(&scans, &planned, address).into_iter().filter(|c| !old.iter().any(|p| p.host == c.name)).collect();
    let sub = Ask { nodes: lost.len() as u64, ..ask.clone() };
    match place(address, &sub, &free) {
        Ok(moved) => {
            let mut ps = old.clone();
            for (i, p) in lost.iter().zip(moved) {
                ps[*i] = p;
            }
            let to: Vec<String> = lost.iter().map(|i| format!("`{}`", ps[*i].host)).collect();
            let note = Diagnostic::warning(
                "W-ONPREM-REALLOCATE",
                format!("{address}: host {} does not answer; its node moves to host {}", quoted(&lost_names), to.join(", ")),
            )
            .address(address)
            .hint("jobs on this cluster that lost a node are replaced on the new allocation");
            let mut v = with(proposed, computed(&ps).into_iter().chain([("unreachable", strings(Vec::<&str>::new()))]));
            if !ask.before {
                v = with(&v, [(CPUS_PER_NODE, cpus_per_node(&ask, &ps, &scans))]);
            }
            planned.insert(address.to_string(), ps);
            Some((v, note.into()))
        }
        Err(why) => {
            let note = Diagnostic::warning(
                "W-ONPREM-DEGRADED",
                format!("{address}: host {} does not answer, and no free host can take its node: {why}", quoted(&lost_names)),
            )
            .address(address)
            .hint("bring the host back, add a host to the provider block, or free one by destroying a cluster that holds it");
            Some((proposed.clone(), note.into()))
        }
    }
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Moves the nodes whose host changed between `prior` and `planned`: claims the new hosts under
/// the cluster's ID, then releases the old ones (warning when one still does not answer).
async fn update(ctx: &Ctx, req: &UpdateRequest<'_>) -> ApplyResponse {
    let (old, new) = (placements(req.prior), placements(req.planned));
    let Some(id) = str_attr(req.prior, "cluster_id") else { return ApplyResponse::ok(req.planned.clone()) };
    let added: Vec<&Placement> = new.iter().filter(|p| !old.contains(p)).collect();
    let mut removed: Vec<String> = old.iter().filter(|p| !new.iter().any(|n| n.host == p.host)).map(|p| p.host.clone()).collect();
    removed.extend(str_list(req.prior, "stale_hosts").into_iter().filter(|h| !new.iter().any(|n| &n.host == h)));
    if added.is_empty() && removed.is_empty() {
        return ApplyResponse::ok(req.planned.clone());
    }
    // The create token, as the hosts that stay recorded it (used only to recover creates).
    let kept: Vec<_> = new.iter().filter(|p| old.contains(p)).filter_map(|p| ctx.host(&p.host)).take(1).collect();
    let token = scan(ctx, &kept).await.iter().filter_map(|s| s.claims()?.members.get(id).map(|c| c.token.clone())).next();
    let claim = Claim { address: req.address.to_string(), cluster_id: id.to_string(), token: token.unwrap_or_default() };
    let results = join_all(added.iter().map(|p| claim_on(ctx, p, &claim))).await;
    let failed: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().cloned()).collect();
    if !failed.is_empty() {
        join_all(added.iter().map(|p| release_on(ctx, &p.host, id))).await;
        return ApplyResponse::error(
            error("E-ONPREM-CLAIM", req.address, format!("{}: cannot move to the new hosts: {}", req.address, failed.join("; ")))
                .hint("run `kiln plan` again: it allocates from what is free now"),
        );
    }
    // What cannot be released now is found again by the refresh once the host answers.
    let released = join_all(removed.iter().map(|h| release_on(ctx, h, id))).await;
    let diagnostics = removed
        .iter()
        .zip(released)
        .filter_map(|(h, r)| r.err().map(|e| (h, e)))
        .map(|(h, e)| {
            Diagnostic::warning("W-ONPREM-RELEASE", format!("{}: could not release its GPUs on host `{h}`: {}", req.address, e.message()))
                .address(req.address)
                .hint("when the host answers again, the next `kiln apply` releases them")
        })
        .collect();
    ApplyResponse { state: Some(req.planned.clone()), diagnostics }
}

async fn delete(ctx: &Ctx, req: &DeleteRequest<'_>) -> Diagnostics {
    ctx.reservations.lock().await.remove(req.address);
    let Some(id) = str_attr(req.prior, "cluster_id") else { return Diagnostics::new() };
    let ps = placements(req.prior);
    // A finished job stays in state after its cluster goes (`on_finish = "destroy_capacity"`):
    // its record stays on the host for it.
    let results = join_all(ps.iter().map(|p| release_keeping(ctx, &p.host, id, "keep-finished"))).await;
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
    let since = member_since(&scans, &id);
    ReadResult::found(created_at(
        &with(req.planned, [("cluster_id", Value::from(id)), ("unreachable", strings(Vec::<&str>::new()))]),
        since,
    ))
}

#[async_trait]
impl Kind<Ctx, Batch> for Cluster {
    fn name(&self) -> &'static str {
        "cluster"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("Hosts of the fleet allocated to a request; their GPUs are claimed on the hosts", crate::schema::cluster())
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        Ask::parse(config, false).err().unwrap_or_default()
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        if let Some(prior) = req.prior {
            // The allocation stands, but for nodes on hosts that stopped answering; any change
            // of the request replaces the cluster, and the engine then plans it afresh.
            let (mut planned, mut diagnostics) =
                reallocate(ctx, req.address, prior, req.proposed).await.unwrap_or_else(|| (req.proposed.clone(), Diagnostics::new()));
            if written_before(prior) {
                // A state written before the shared grammar records nothing new (see `Ask::before`).
                let mut m = attrs(&planned);
                m.remove(CPUS_PER_NODE);
                planned = Value::Map(m);
            }
            let stale = str_list(prior, "stale_hosts");
            if !stale.is_empty() {
                let names: Vec<&str> = stale.iter().map(String::as_str).collect();
                diagnostics.push(
                    Diagnostic::warning(
                        "W-ONPREM-STALE",
                        format!(
                            "{}: host {} answers again and still holds this cluster's GPUs; apply stops the cluster's old job nodes there and releases them",
                            req.address,
                            quoted(&names)
                        ),
                    )
                    .address(req.address),
                );
                planned = with(&planned, [("stale_hosts", strings(Vec::<&str>::new()))]);
            }
            // When the cluster was made: the prior's, or none (a state written before kiln
            // recorded it plans no change; refresh reads it from the hosts).
            let mut m = attrs(&planned);
            match prior.get(CREATED_AT).filter(|v| v.as_str().is_some()) {
                Some(t) => m.insert(CREATED_AT.into(), t.clone()),
                None => m.remove(CREATED_AT),
            };
            let planned = Value::Map(m);
            return Ok(PlanResponse { planned, requires_replace: Vec::new(), diagnostics });
        }
        let (planned, diagnostics) = allocate(ctx, req.address, req.proposed).await.map_err(|d| d.with_address(req.address))?;
        Ok(PlanResponse { planned, requires_replace: Vec::new(), diagnostics })
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(create(ctx, req).await?))
    }

    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(update(ctx, req).await)
    }

    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        Ok(delete(ctx, req).await)
    }

    /// Every item at once, each in its own task over the shared host connections.
    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], batch: &Batch) -> Outcome<Vec<ReadResult>> {
        Ok(futures_util::future::join_all(items.iter().map(|item| async move { read(item, batch.scans(ctx).await) })).await)
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(recover(ctx, req).await)
    }

    async fn shell(&self, ctx: &Ctx, req: &kiln_provider::ShellRequest<'_>) -> Outcome<kiln_provider::ShellAccess> {
        Ok(crate::ssh::shell(ctx, req).await?)
    }

    async fn import(&self, _ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        Err(error("E-ONPREM-IMPORT", req.address, "onprem clusters cannot be imported yet")
            .hint("declare the cluster and run `kiln apply`")
            .into())
    }
}
