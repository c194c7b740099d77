//! The plan driver: walk the graph in dependency order over the evaluation [`Context`], take
//! each provider from the command's providers (configuring it once), refresh what state holds in
//! one batched read per provider, resolve creates an interrupted apply left pending, evaluate
//! each resource instance and let its provider plan it, then decide the action (create, update
//! in place, replace naming the attributes that force it, delete, no-op) and plan deletes for
//! orphans. Targets and excludes filter the result.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kiln_addrs::{InstanceAddr, InstanceKey, Mode as AddrMode, ResourceAddr, Target};
use kiln_config::{Config, Resource};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_plan::{Action, Drift, Mode, OutputChange, PendingResolution, Plan, PlannedChange, Reason};
use kiln_provider::{PlanRequest as ProviderPlanRequest, Provider, ReadItem, ReadRequest, RecoverRequest};
use kiln_schema::KindSchema;
use kiln_state::{ResourceState, State};
use kiln_value::{Map, Value};
use sha2::Digest;

use crate::context::{ignore_changes, propose, recorded, remark, Context};
use crate::graph::{build_graph, Graph, Node};

#[path = "plan_placed.rs"]
mod placed;
use crate::hooks::Hook;
use crate::providers::{ProviderRegistry, Providers};
use crate::scope::Repetition;

/// What a plan is made from.
pub struct PlanRequest<'a> {
    pub config: &'a Config,
    pub state: &'a State,
    pub registry: &'a ProviderRegistry,
    /// The command's configured providers: what is not configured in it yet is configured here.
    pub providers: &'a Providers,
    /// Root variable values given by the user (files, flags, environment), before conversion.
    pub variables: BTreeMap<String, Value>,
    pub mode: Mode,
    pub refresh: bool,
    /// The selected workspace's name: `kiln.workspace` in expressions.
    pub workspace: String,
    pub targets: Vec<Target>,
    pub excludes: Vec<Target>,
    /// `--replace`: instances to replace although nothing forces it (a job to run again).
    pub replace: Vec<Target>,
    pub hook: &'a dyn Hook,
    pub cwd: PathBuf,
    /// The catalog placement and cost lines read, and `--replan-placement`.
    pub placement: PlacementOptions,
}

/// What placement and pricing read besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct PlacementOptions {
    /// The layered catalog (shipped, refreshed, the user's); `None`: the shipped one.
    pub catalog: Option<Arc<kiln_catalog::Catalog>>,
    /// `--replan-placement`: place again instances whose request did not change.
    pub replan: bool,
    /// Instances placed again, leaving these offerings or regions, whatever their recorded
    /// decision: a restart's `recovery.strategy` (`kiln watch`).
    pub avoid: Vec<(kiln_addrs::InstanceAddr, Vec<kiln_place::Avoid>)>,
}

/// Digest of every configuration file, so a saved plan can tell the configuration changed.
pub fn config_digest(config: &Config) -> String {
    let mut h = sha2::Sha256::new();
    for (_, f) in config.sources.iter() {
        h.update(f.path.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(f.text.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}
/// Makes a plan. `None` when errors prevent one; diagnostics say why.
pub async fn plan(req: PlanRequest<'_>) -> (Option<Plan>, Diagnostics) {
    let (graph, diags) = build_graph(req.config, req.registry);
    if diags.has_errors() {
        return (None, diags);
    }
    let Some(order) = graph.deps.topo_order() else {
        return (None, diags);
    };
    // A released object a created or replaced job needs is created again; that changes what
    // the job sees of it, so the walk runs once more knowing it (refresh is not repeated).
    let mut found = Found::default();
    let mut reacquire: BTreeMap<InstanceAddr, String> = BTreeMap::new();
    let mut p = loop {
        let mut cx = Context::new(req.config, req.registry, &graph, req.providers, &req.variables, req.workspace.clone(), req.cwd.clone());
        cx.diags = diags.clone();
        cx.check_root_variables();
        let mut p = Planner::new(cx, req.state, req.mode, req.refresh, &req.replace, req.hook, req.placement.clone());
        p.found = found;
        p.reacquire = reacquire.clone();
        for node in &order {
            p.visit(node).await;
        }
        if p.cx.diags.has_errors() {
            return (None, p.cx.finish());
        }
        let more = crate::release::needed(&p.changes);
        if more.is_empty() {
            break p;
        }
        reacquire.extend(more);
        found = std::mem::take(&mut p.found);
    };
    p.resolve_pending().await;
    p.plan_orphans().await;
    let outputs = p.root_outputs();
    let mut changes: Vec<PlannedChange> = std::mem::take(&mut p.changes);
    if req.mode == Mode::Normal {
        crate::release::plan_releases(&mut changes);
    }
    filter_targets(&mut changes, &req.targets, &req.excludes, &graph, req.mode);
    if !req.targets.is_empty() || !req.excludes.is_empty() {
        p.cx.diags.push(targeting_warning(req.mode));
    }
    p.cx.diags.extend(check_prevent_destroy(&changes, req.config));
    p.cx.diags.extend(unmatched_replacements(&changes, &req.replace));
    changes.sort_by(|a, b| a.address.cmp(&b.address));
    let mut keys: Vec<&String> = p.cx.ready.keys().collect();
    keys.sort();
    for key in keys {
        let calls = p.cx.ready[key].api_calls();
        if !calls.is_empty() {
            req.hook.api_calls(key, &calls);
        }
    }
    let variables = p.cx.root_var_values();
    let cost = p.price(&mut changes).await;
    let Planner { cx, found: Found { drift, pending, .. }, placements, .. } = p;
    let diags = cx.finish();
    if diags.has_errors() {
        return (None, diags);
    }
    let plan = Plan {
        format_version: kiln_plan::FORMAT_VERSION,
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: req.mode,
        lineage: (!req.state.lineage.is_empty()).then(|| req.state.lineage.clone()),
        serial: (!req.state.lineage.is_empty()).then_some(req.state.serial),
        changes,
        drift,
        outputs,
        variables,
        config_digest: config_digest(req.config),
        targets: req.targets.iter().map(ToString::to_string).collect(),
        excludes: req.excludes.iter().map(ToString::to_string).collect(),
        refresh: req.refresh,
        pending,
        cost: Some(cost),
        placements,
        policies: Vec::new(),
        git_commit: None,
    };
    // Last: policies see the finished plan, its costs and placements included.
    crate::policy::check(&req, plan, diags).await
}

/// `lifecycle.prevent_destroy`, checked on what is left after `--target`/`--exclude`.
fn check_prevent_destroy(changes: &[PlannedChange], config: &Config) -> Diagnostics {
    let mut diags = Diagnostics::new();
    for c in changes.iter().filter(|c| matches!(c.action, Action::Delete | Action::Replace)) {
        let Some(m) = config.root.find(&c.address.resource.module) else { continue };
        let a = &c.address.resource;
        let Some(r) = m.module.resource(a.mode, &a.kind, &a.name) else { continue };
        if !r.lifecycle.prevent_destroy {
            continue;
        }
        let (what, hint) = if c.action == Action::Replace {
            ("would be replaced", "undo the change that forces replacement, or remove prevent_destroy first")
        } else {
            ("would be destroyed", "remove prevent_destroy from the configuration first, or leave it out with --exclude")
        };
        diags.push(
            Diagnostic::error("E-PREVENT-DESTROY", format!("`{}` {what}, but it has lifecycle.prevent_destroy", c.address))
                .at(r.span.clone(), "declared here")
                .address(&c.address)
                .hint(hint),
        );
    }
    diags
}

/// A `--replace` address that replaces nothing (no such object in state, or one that the plan
/// destroys or leaves out) is a warning: the plan does not do what was asked.
fn unmatched_replacements(changes: &[PlannedChange], replace: &[Target]) -> Diagnostics {
    replace
        .iter()
        .filter(|t| !changes.iter().any(|c| c.reason == Some(Reason::Requested) && c.address.matches(t)))
        .map(|t| {
            Diagnostic::warning("W-REPLACE-UNMATCHED", format!("--replace {t} replaces nothing"))
                .hint("name an object in state that the configuration still has (`kiln state list` shows them)")
        })
        .collect()
}

/// Terraform's "Resource targeting is in effect": a partial plan can leave the configuration and
/// what exists apart.
fn targeting_warning(mode: Mode) -> Diagnostic {
    let scope = if mode == Mode::Destroy {
        "only the targeted objects and what depends on them are destroyed; what they depend on is kept"
    } else {
        "only the targeted objects and what they depend on are planned"
    };
    Diagnostic::warning("W-TARGETING", format!("Resource targeting is in effect: {scope}"))
        .hint("use --target and --exclude for exceptional situations; run `kiln plan` without them to see the whole picture")
}

/// Keeps only changes selected by `--target` (and what they depend on) and not `--exclude`d
/// (nor depending on something excluded). In destroy mode the walk turns round, as in
/// Terraform: a target takes what depends on it (never what it depends on), and an exclusion
/// keeps what it depends on.
fn filter_targets(changes: &mut Vec<PlannedChange>, targets: &[Target], excludes: &[Target], graph: &Graph, mode: Mode) {
    if targets.is_empty() && excludes.is_empty() {
        return;
    }
    if mode == Mode::Destroy {
        filter_destroy_targets(changes, targets, excludes, graph);
        return;
    }
    let resource_closure = |seeds: Vec<ResourceAddr>, up: bool| -> HashSet<ResourceAddr> {
        let mut seen: HashSet<Node> = HashSet::new();
        let mut stack: Vec<Node> = seeds.into_iter().map(Node::Resource).collect();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            let next = if up { graph.deps.dependencies(&n) } else { graph.deps.dependents(&n) };
            stack.extend(next.into_iter().cloned());
        }
        seen.into_iter().filter_map(|n| if let Node::Resource(r) = n { Some(r) } else { None }).collect()
    };
    if !targets.is_empty() {
        let direct = |c: &PlannedChange| targets.iter().any(|t| c.address.matches(t));
        let seeds: Vec<ResourceAddr> = changes.iter().filter(|c| direct(c)).map(|c| c.address.resource.clone()).collect();
        let mut upstream = resource_closure(seeds.clone(), true);
        for s in &seeds {
            upstream.remove(s);
        }
        changes.retain(|c| direct(c) || upstream.contains(&c.address.resource));
    }
    if !excludes.is_empty() {
        let seeds: Vec<ResourceAddr> =
            changes.iter().filter(|c| excludes.iter().any(|t| c.address.matches(t))).map(|c| c.address.resource.clone()).collect();
        let mut downstream = resource_closure(seeds.clone(), false);
        for s in &seeds {
            downstream.remove(s);
        }
        changes.retain(|c| !excludes.iter().any(|t| c.address.matches(t)) && !downstream.contains(&c.address.resource));
    }
}

/// [`filter_targets`] for destroy: targets with everything that depends on them, by the
/// configuration's graph and by the dependencies state recorded; excludes with everything they
/// depend on.
fn filter_destroy_targets(changes: &mut Vec<PlannedChange>, targets: &[Target], excludes: &[Target], graph: &Graph) {
    // `down`: towards dependents; else towards dependencies.
    let closure = |changes: &[PlannedChange], seeds: &[&Target], down: bool| -> HashSet<(InstanceAddr, Option<String>)> {
        let direct = |c: &PlannedChange| seeds.iter().any(|t| c.address.matches(t));
        let seed_resources: HashSet<ResourceAddr> = changes.iter().filter(|c| direct(c)).map(|c| c.address.resource.clone()).collect();
        let mut related: HashSet<ResourceAddr> = HashSet::new();
        let mut stack: Vec<Node> = seed_resources.iter().cloned().map(Node::Resource).collect();
        let mut seen: HashSet<Node> = HashSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Node::Resource(r) = &n {
                if !seed_resources.contains(r) {
                    related.insert(r.clone());
                }
            }
            let next = if down { graph.deps.dependents(&n) } else { graph.deps.dependencies(&n) };
            stack.extend(next.into_iter().cloned());
        }
        let key = |c: &PlannedChange| (c.address.clone(), c.deposed.clone());
        let mut selected: HashSet<(InstanceAddr, Option<String>)> =
            changes.iter().filter(|c| direct(c) || related.contains(&c.address.resource)).map(key).collect();
        loop {
            let chosen = changes.iter().filter(|c| selected.contains(&key(c)));
            let addrs: HashSet<&InstanceAddr> = chosen.clone().map(|c| &c.address).collect();
            let their_deps: HashSet<&InstanceAddr> = chosen.flat_map(|c| c.dependencies.iter()).collect();
            let more: Vec<_> = changes
                .iter()
                .filter(|c| !selected.contains(&key(c)))
                .filter(|c| if down { c.dependencies.iter().any(|d| addrs.contains(d)) } else { their_deps.contains(&c.address) })
                .map(key)
                .collect();
            if more.is_empty() {
                return selected;
            }
            selected.extend(more);
        }
    };
    let key = |c: &PlannedChange| (c.address.clone(), c.deposed.clone());
    if !targets.is_empty() {
        let keep = closure(changes, &targets.iter().collect::<Vec<_>>(), true);
        changes.retain(|c| keep.contains(&key(c)));
    }
    if !excludes.is_empty() {
        let spared = closure(changes, &excludes.iter().collect::<Vec<_>>(), false);
        changes.retain(|c| !spared.contains(&key(c)));
    }
}
/// The plan driver's walk.
/// What refresh and the pending creates' resolution found, kept when the walk runs again.
#[derive(Default)]
struct Found {
    /// State after refresh (and adoption of pending creates): `None` = object gone.
    refreshed: HashMap<InstanceAddr, Option<Value>>,
    drift: Vec<Drift>,
    pending: Vec<PendingResolution>,
    /// The providers refreshed and asked about their pending creates.
    providers: HashSet<String>,
}

struct Planner<'a> {
    cx: Context<'a>,
    state: &'a State,
    mode: Mode,
    refresh: bool,
    replace: &'a [Target],
    hook: &'a dyn Hook,
    found: Found,
    /// Released objects to create again, each with the job that needs it.
    reacquire: BTreeMap<InstanceAddr, String>,
    changes: Vec<PlannedChange>,
    visited: HashSet<InstanceAddr>,
    /// Instances of each resource, for dependency lists.
    instances: HashMap<ResourceAddr, Vec<InstanceAddr>>,
    /// Resources whose planning failed: their dependents are not planned.
    failed: HashSet<ResourceAddr>,
    options: PlacementOptions,
    /// Each provider's answer to `offerings()`, asked once (`None`: not configured).
    answers: HashMap<String, Option<kiln_provider::offerings::Offerings>>,
    /// What each candidate provider offers placement, as rows, each with its accelerator
    /// table entry (read once per plan, not once per decision).
    offers: HashMap<String, Vec<(kiln_provider::offerings::Offering, Option<&'static kiln_provider::portable::accelerators::Model>)>>,
    placements: Vec<kiln_plan::Placement>,
    /// The optimizer's answer per distinct request (`placement::Meta::digest`),
    /// with its chosen offering and fallbacks as the instances share them, fitted to the
    /// chosen provider.
    #[allow(clippy::type_complexity)]
    decided: HashMap<String, Result<(kiln_place::Decision, Arc<crate::placement::Choice>), kiln_place::Infeasible>>,
    /// Each distinct request's reading (`placement::Meta`), once per plan.
    metas: crate::placement::Metas,
}

impl<'a> Planner<'a> {
    fn new(
        cx: Context<'a>,
        state: &'a State,
        mode: Mode,
        refresh: bool,
        replace: &'a [Target],
        hook: &'a dyn Hook,
        options: PlacementOptions,
    ) -> Self {
        Planner {
            cx,
            state,
            mode,
            refresh,
            replace,
            hook,
            found: Found::default(),
            reacquire: BTreeMap::new(),
            changes: Vec::new(),
            visited: HashSet::new(),
            instances: HashMap::new(),
            failed: HashSet::new(),
            options,
            answers: HashMap::new(),
            offers: HashMap::new(),
            placements: Vec::new(),
            decided: HashMap::new(),
            metas: crate::placement::Metas::default(),
        }
    }

    async fn visit(&mut self, node: &Node) {
        match node {
            Node::Provider(key) => {
                self.ensure_provider(key).await;
            }
            Node::Resource(addr) => self.resource(addr).await,
            _ => self.cx.value_node(node),
        }
    }

    /// The provider `key` for this plan: the first time, taken from the command's providers
    /// (configured there once), refreshed, and asked about the creates an interrupted apply left
    /// pending with it. Also for providers only state mentions (orphans, pending creates).
    async fn ensure_provider(&mut self, key: &str) -> Option<Arc<dyn Provider>> {
        if let Some(p) = self.cx.ready.get(key) {
            return Some(p.clone());
        }
        let p = self.cx.provider(key).await?;
        if self.found.providers.insert(key.to_string()) {
            self.refresh_provider(key, p.clone()).await;
            self.resolve_pending_for(key, p.as_ref()).await;
        }
        Some(p)
    }

    /// One batched read of every object in state that this provider manages.
    async fn refresh_provider(&mut self, key: &str, p: Arc<dyn Provider>) {
        // A released object does not exist: there is nothing to read.
        let items: Vec<(&InstanceAddr, &ResourceState)> =
            self.state.resources.iter().filter(|(_, r)| r.provider == key && r.released.is_none()).collect();
        // Without refresh, state is the prior: lookups fall back to it.
        if !self.refresh || items.is_empty() {
            return;
        }
        self.hook.refresh_start(key, items.len());
        let started = Instant::now();
        let names: Vec<String> = items.iter().map(|(a, _)| a.to_string()).collect();
        let req = ReadRequest {
            items: items.iter().zip(&names).map(|((_, r), n)| ReadItem { address: n, kind: &r.kind, state: &r.attributes }).collect(),
        };
        let resp = p.read(req).await;
        self.hook.refresh_done(key, items.len(), started.elapsed());
        if resp.results.len() != items.len() {
            self.cx.diags.push(Diagnostic::error(
                "E-PROVIDER-BUG",
                format!("provider `{key}` answered {} of {} reads", resp.results.len(), items.len()),
            ));
            return;
        }
        for ((addr, r), res) in items.into_iter().zip(resp.results) {
            if res.diagnostics.has_errors() {
                let secrets = crate::redact::secrets_named(Some(&r.attributes), &r.sensitive);
                self.cx.diags.extend(crate::redact::diags(res.diagnostics, &secrets).with_address(&addr.to_string()));
                continue;
            }
            // Only what changed is kept: lookups fall back to state (10,000 copies add up).
            if !res.state.as_ref().is_some_and(|s| s.unmarked_eq(&r.attributes)) {
                // What a newer provider reports besides (a computed attribute the state has
                // no key for, such as a cluster's `created_at`) is no change made outside kiln:
                // not drift, and the plan goes on from state as it is, so nothing that refers
                // to the object (a job's `cluster`) sees it change. Status views read it.
                let newly_reported = res.state.as_ref().is_some_and(|s| {
                    let schema = self.cx.registry.schema(crate::providers::provider_name(key));
                    let kind =
                        schema.and_then(|sc| if addr.resource.mode == AddrMode::Data { &sc.data_kinds } else { &sc.kinds }.get(&r.kind));
                    kind.is_some_and(|k| only_new_computed(&r.attributes, s, k))
                });
                if newly_reported {
                    continue;
                }
                self.found.drift.push(Drift {
                    address: addr.clone(),
                    before: r.attributes.clone(),
                    after: res.state.clone(),
                    sensitive: r.sensitive.clone(),
                });
                self.found.refreshed.insert(addr.clone(), res.state);
            }
        }
    }

    async fn resource(&mut self, addr: &ResourceAddr) {
        let r = self.cx.resource(addr);
        if self.cx.graph.placed.contains_key(addr) && self.mode == Mode::Normal {
            return self.placed_resource(addr).await;
        }
        let key = match self.followed(addr) {
            Some(k) if self.mode == Mode::Normal => k,
            // Not planning new objects: a placed or following resource's are where state says.
            _ if self.cx.graph.placed.contains_key(addr) || self.cx.graph.follows.contains_key(addr) => self
                .state
                .resources
                .iter()
                .find(|(a, _)| &a.resource == addr)
                .map(|(_, s)| s.provider.clone())
                .unwrap_or_else(|| self.cx.graph.provider_of[addr].clone()),
            _ => self.cx.graph.provider_of[addr].clone(),
        };
        let Some(deps) = self.planned_dependencies(addr) else { return };
        let Some(provider) = self.cx.ready.get(&key).cloned() else {
            self.failed.insert(addr.clone());
            return;
        };
        let Some(schema) = self.cx.kind_schema(&key, r) else {
            self.cx.unknown_kind(&key, r, addr);
            self.failed.insert(addr.clone());
            return;
        };
        let Some(keys) = self.checked_instance_keys(addr) else { return };
        let mut values = Vec::new();
        let mut insts = Vec::new();
        let mut failed = false;
        for (ik, rep) in keys {
            let iaddr = addr.instance(ik.clone());
            self.visited.insert(iaddr.clone());
            insts.push(iaddr.clone());
            let value = if self.mode == Mode::RefreshOnly && r.mode == AddrMode::Managed {
                self.refresh_only(r, &iaddr, &schema, &key, &deps)
            } else if self.mode == Mode::Destroy {
                // Nothing is planned but deletes: references see what exists.
                match self.found.refreshed.get(&iaddr).cloned().flatten() {
                    Some(v) => {
                        let recorded = self.state.resources.get(&iaddr).map(|s| s.sensitive.clone()).unwrap_or_default();
                        remark(v, &schema, &recorded)
                    }
                    None => recorded(self.state, &iaddr, &schema),
                }
            } else {
                match self.plan_instance(r, &iaddr, rep, &schema, &key, provider.as_ref(), &deps).await {
                    Some(v) => v,
                    None => {
                        failed = true;
                        Value::Unknown
                    }
                }
            };
            values.push((ik, value));
        }
        self.planned_resource(addr, values, insts, failed);
    }

    /// What a resource depends on, when all of it was planned; `None` (the resource failed too)
    /// when some of it failed.
    fn planned_dependencies(&mut self, addr: &ResourceAddr) -> Option<Vec<InstanceAddr>> {
        let deps = self.resource_dependencies(addr);
        if deps.iter().any(|d| self.failed.contains(&d.resource)) {
            self.failed.insert(addr.clone());
            return None;
        }
        Some(deps)
    }

    /// A resource's instance keys, within the limit on instances; `None` (reported, the
    /// resource failed) when they cannot be known or are too many.
    fn checked_instance_keys(&mut self, addr: &ResourceAddr) -> Option<Vec<(InstanceKey, crate::scope::Repetition)>> {
        let r = self.cx.resource(addr);
        let keys = self.cx.instance_keys(addr);
        let checked = keys.and_then(|keys| match crate::instance::check_total(self.visited.len(), keys.len(), r, addr) {
            Ok(()) => Some(keys),
            Err(d) => {
                self.cx.diags.extend(d);
                None
            }
        });
        if checked.is_none() {
            self.failed.insert(addr.clone());
        }
        checked
    }

    /// What references to a planned resource see, and whether it failed.
    fn planned_resource(&mut self, addr: &ResourceAddr, values: Vec<(InstanceKey, Value)>, insts: Vec<InstanceAddr>, failed: bool) {
        self.cx.set_resource(addr, values);
        self.instances.insert(addr.clone(), insts);
        if failed {
            self.failed.insert(addr.clone());
        }
    }

    /// `--refresh-only`: nothing is planned for the instance; references see what refresh
    /// found (unknown where nothing exists: gone, or not created yet). An object that changed
    /// outside kiln is a no-op change from the refreshed value, which apply records in state.
    fn refresh_only(&mut self, r: &Resource, iaddr: &InstanceAddr, schema: &KindSchema, key: &str, deps: &[InstanceAddr]) -> Value {
        let recorded_marks = self.state.resources.get(iaddr).map(|s| s.sensitive.clone()).unwrap_or_default();
        match self.found.refreshed.get(iaddr).cloned() {
            Some(None) => Value::Unknown,
            None => recorded(self.state, iaddr, schema),
            Some(Some(v)) => {
                let v = remark(v, schema, &recorded_marks);
                self.changes.push(PlannedChange {
                    address: iaddr.clone(),
                    provider: key.to_string(),
                    kind: r.kind.clone(),
                    action: Action::NoOp,
                    before: Some(v.clone()),
                    after: Some(v.clone()),
                    reason: None,
                    create_before_destroy: r.lifecycle.create_before_destroy,
                    sensitive: recorded_marks,
                    dependencies: deps.to_vec(),
                    deposed: None,
                    references: BTreeMap::new(),
                    cost: None,
                });
                v
            }
        }
    }

    /// Resources this one depends on, through locals, variables and outputs.
    fn resource_dependencies(&self, addr: &ResourceAddr) -> Vec<InstanceAddr> {
        let mut seen = HashSet::new();
        let mut stack: Vec<Node> = self.cx.graph.deps.dependencies(&Node::Resource(addr.clone())).into_iter().cloned().collect();
        let mut out = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            match &n {
                Node::Resource(r) => {
                    for i in self.instances.get(r).into_iter().flatten() {
                        out.insert(i.clone());
                    }
                    if !self.instances.contains_key(r) {
                        out.insert(r.instance(InstanceKey::None));
                    }
                }
                Node::Provider(_) => {}
                _ => stack.extend(self.cx.graph.deps.dependencies(&n).into_iter().cloned()),
            }
        }
        out.into_iter().collect()
    }

    #[allow(clippy::too_many_arguments)]
    async fn plan_instance(
        &mut self,
        r: &Resource,
        iaddr: &InstanceAddr,
        rep: Repetition,
        schema: &KindSchema,
        key: &str,
        provider: &dyn Provider,
        deps: &[InstanceAddr],
    ) -> Option<Value> {
        let addr_s = iaddr.to_string();
        let config = self.cx.instance_config(iaddr, rep, schema)?;
        if r.mode == AddrMode::Data {
            return self.read_data(r, iaddr, &config, provider).await;
        }
        if !self.cx.validate_instance(r, iaddr, provider, &config) {
            return None;
        }
        let prior_state = self.state.resources.get(iaddr);
        if let Some(v) = self.gone_with_its_job(r, iaddr, key, schema, deps) {
            return Some(v);
        }
        let prior: Option<Value> = match self.found.refreshed.get(iaddr) {
            Some(v) => v.clone(),
            None => prior_state.map(|s| s.attributes.clone()),
        };
        let prior = prior.map(|p| remark(p, schema, prior_state.map(|s| s.sensitive.as_slice()).unwrap_or(&[])));
        let tainted = prior_state.is_some_and(|s| s.tainted) && prior.is_some();
        let requested = prior.is_some() && self.replace.iter().any(|t| iaddr.matches(t));
        let mut config = config;
        if let Some(p) = &prior {
            ignore_changes(&mut config, p, &r.lifecycle);
        }
        let (mut planned, resp_replace) = self.provider_plan(provider, &addr_s, &r.kind, prior.as_ref(), None, &config, schema).await?;
        if let Some(p) = &prior {
            ignore_changes(&mut planned, p, &r.lifecycle);
        }
        let (action, reason, after) = match &prior {
            None => (Action::Create, None, planned),
            Some(p) => {
                let changed = changed_attrs(p, &planned);
                let mut force: Vec<String> = changed
                    .iter()
                    .filter(|a| {
                        schema.body.attributes.get(*a).is_some_and(|s| s.force_new)
                            || schema.body.blocks.get(*a).is_some_and(|b| b.force_new)
                            || resp_replace.contains(a)
                    })
                    .cloned()
                    .collect();
                force.sort();
                let placed = self.cx.graph.placed.contains_key(&iaddr.resource) || self.cx.graph.follows.contains_key(&iaddr.resource);
                let moved = prior_state.map(|s| s.provider.as_str()).filter(|from| placed && *from != key);
                if let Some(from) = moved {
                    // Placement sent it to another provider: a new object there, the old one
                    // destroyed where it is.
                    let fresh = self.provider_plan(provider, &addr_s, &r.kind, None, Some(p), &config, schema).await?.0;
                    (Action::Replace, Some(Reason::PlacementMoved { from: from.to_string() }), fresh)
                } else if tainted || requested {
                    let fresh = self.provider_plan(provider, &addr_s, &r.kind, None, Some(p), &config, schema).await?.0;
                    (Action::Replace, Some(if tainted { Reason::Tainted } else { Reason::Requested }), fresh)
                } else if changed.is_empty() {
                    (Action::NoOp, None, p.clone())
                } else if !force.is_empty() {
                    let fresh = self.provider_plan(provider, &addr_s, &r.kind, None, Some(p), &config, schema).await?.0;
                    (Action::Replace, Some(Reason::AttributesForceNew { attributes: force }), fresh)
                } else {
                    (Action::Update, None, planned)
                }
            }
        };
        let (action, reason, after, before) = match prior_state.and_then(|s| s.released.as_ref()) {
            None => (action, reason, after, prior),
            Some(released) => {
                let by = released.by.to_string();
                let needed_by = self.reacquire.get(iaddr).cloned();
                match (action, needed_by) {
                    (Action::NoOp, None) => (Action::NoOp, Some(Reason::Released { by }), after, prior),
                    // It does not exist: what would update or replace it creates it.
                    (action, needed_by) => {
                        let after = match (action, &prior) {
                            (Action::NoOp | Action::Update, Some(p)) => {
                                self.provider_plan(provider, &addr_s, &r.kind, None, Some(p), &config, schema).await?.0
                            }
                            _ => after,
                        };
                        (Action::Create, Some(Reason::Reacquired { released_by: by, needed_by }), after, None)
                    }
                }
            }
        };
        let (after, sensitive) = self.cx.marked(key, after, &config, before.as_ref(), schema);
        self.changes.push(PlannedChange {
            address: iaddr.clone(),
            provider: key.to_string(),
            kind: r.kind.clone(),
            action,
            before,
            after: Some(after.clone()),
            reason,
            create_before_destroy: r.lifecycle.create_before_destroy,
            sensitive,
            dependencies: deps.to_vec(),
            deposed: None,
            references: crate::references::references(&r.body, &schema.body, &after),
            cost: None,
        });
        Some(after)
    }

    /// A cluster refresh found gone while the job it served had succeeded asking to release it
    /// (an apply killed between the release's delete and its record): its release is planned
    /// (apply records it; there is nothing left to delete), not a new cluster that would run the
    /// finished job again. References see what state holds. `None`: not such a cluster.
    fn gone_with_its_job(
        &mut self,
        r: &Resource,
        iaddr: &InstanceAddr,
        key: &str,
        schema: &KindSchema,
        deps: &[InstanceAddr],
    ) -> Option<Value> {
        let prior_state = self.state.resources.get(iaddr).filter(|s| s.released.is_none() && s.kind == crate::release::CAPACITY)?;
        if !matches!(self.found.refreshed.get(iaddr), Some(None)) || self.reacquire.contains_key(iaddr) {
            return None;
        }
        let refreshed = |a: &InstanceAddr| match self.found.refreshed.get(a) {
            Some(v) => v.clone(),
            None => self.state.resources.get(a).map(|s| s.attributes.clone()),
        };
        let by = crate::release::releasing_job(self.state, refreshed, iaddr)?;
        let before = remark(prior_state.attributes.clone(), schema, &prior_state.sensitive);
        self.changes.push(PlannedChange {
            address: iaddr.clone(),
            provider: key.to_string(),
            kind: r.kind.clone(),
            action: Action::Delete,
            before: Some(before.clone()),
            after: None,
            reason: Some(Reason::Released { by: by.to_string() }),
            create_before_destroy: r.lifecycle.create_before_destroy,
            sensitive: prior_state.sensitive.clone(),
            dependencies: deps.to_vec(),
            deposed: None,
            references: BTreeMap::new(),
            cost: None,
        });
        Some(before)
    }

    /// Asks the provider to plan, having merged prior computed values into the proposal.
    /// The planned value and the attributes the provider says force replacement.
    #[allow(clippy::too_many_arguments)]
    async fn provider_plan(
        &mut self,
        provider: &dyn Provider,
        addr: &str,
        kind: &str,
        prior: Option<&Value>,
        replacing: Option<&Value>,
        config: &Value,
        schema: &KindSchema,
    ) -> Option<(Value, Vec<String>)> {
        let proposed = propose(config, prior, schema);
        let resp = provider.plan(ProviderPlanRequest { address: addr, kind, prior, replacing, config, proposed: &proposed }).await;
        let err = resp.diagnostics.has_errors();
        let secrets = crate::redact::secrets([config, &proposed].into_iter().chain(prior).chain(replacing));
        self.cx.diags.extend(crate::redact::diags(resp.diagnostics, &secrets).with_address(addr));
        if err {
            return None;
        }
        Some((resp.planned, resp.requires_replace))
    }

    async fn read_data(&mut self, r: &Resource, iaddr: &InstanceAddr, config: &Value, provider: &dyn Provider) -> Option<Value> {
        if config.contains_unknown() {
            return Some(Value::Unknown);
        }
        let res = provider.read_data(kiln_provider::ReadDataRequest { kind: &r.kind, config }).await;
        let err = res.diagnostics.has_errors();
        self.cx.diags.extend(
            crate::redact::diags(res.diagnostics, &crate::redact::secrets([config]))
                .into_iter()
                .map(|d| d.or_at(Some(r.span.clone())).or_address(iaddr)),
        );
        if err {
            return None;
        }
        res.state
    }

    /// Deletes for everything in state the configuration no longer has (or all, in destroy mode),
    /// and for every deposed object.
    pub async fn plan_orphans(&mut self) {
        let mut orphans: Vec<(InstanceAddr, ResourceState)> = self
            .state
            .resources
            .iter()
            .filter(|(a, _)| self.mode == Mode::Destroy || !self.visited.contains(*a))
            .map(|(a, r)| (a.clone(), r.clone()))
            .collect();
        // What an interrupted create made, adopted by this plan but not yet in state, goes the
        // same way: a destroy right after a crash must not leave it running (apply records it
        // first, then deletes it).
        let adopted: Vec<(InstanceAddr, ResourceState)> = self
            .found
            .pending
            .iter()
            .filter(|r| !self.state.resources.contains_key(&r.address))
            .filter(|r| self.mode == Mode::Destroy || !self.visited.contains(&r.address))
            .filter_map(|r| {
                let attributes = r.adopted.clone()?;
                let dependencies = self.config_dependencies(&r.address);
                Some((
                    r.address.clone(),
                    ResourceState {
                        provider: r.provider.clone(),
                        kind: r.kind.clone(),
                        attributes,
                        sensitive: Vec::new(),
                        dependencies,
                        tainted: false,
                        create_before_destroy: false,
                        billing: None,
                        released: None,
                    },
                ))
            })
            .collect();
        orphans.extend(adopted);
        // An adopted object displaces what state holds at its address: the old half of a
        // create_before_destroy replacement interrupted before it was deposed. It is deposed
        // now (apply does so under this key) and destroyed, as the interrupted apply would have.
        let displaced: Vec<PlannedChange> = self
            .found
            .pending
            .iter()
            .filter(|r| r.adopted.is_some())
            .filter_map(|r| Some((r, self.state.resources.get(&r.address)?)))
            .map(|(r, old)| PlannedChange {
                address: r.address.clone(),
                provider: old.provider.clone(),
                kind: old.kind.clone(),
                action: Action::Delete,
                before: Some(old.attributes.clone()),
                after: None,
                reason: Some(Reason::Deposed),
                create_before_destroy: false,
                sensitive: old.sensitive.clone(),
                dependencies: old.dependencies.clone(),
                deposed: Some(uuid::Uuid::new_v4().simple().to_string()[..8].to_string()),
                references: BTreeMap::new(),
                cost: None,
            })
            .collect();
        self.changes.extend(displaced);
        for (addr, rs) in orphans {
            if self.ensure_provider(&rs.provider).await.is_none() {
                continue;
            }
            let before = match self.found.refreshed.get(&addr) {
                Some(Some(v)) => v.clone(),
                Some(None) => continue, // already gone: refresh dropped it
                None => rs.attributes.clone(),
            };
            let declared = self
                .cx
                .config
                .root
                .find(&addr.resource.module)
                .is_some_and(|m| m.module.resource(addr.resource.mode, &addr.resource.kind, &addr.resource.name).is_some());
            let reason = if self.mode == Mode::Destroy {
                Reason::DestroyMode
            } else if declared {
                Reason::KeyGone
            } else {
                Reason::NotInConfig
            };
            self.changes.push(PlannedChange {
                address: addr.clone(),
                provider: rs.provider.clone(),
                kind: rs.kind.clone(),
                action: if addr.resource.mode == AddrMode::Data { Action::Read } else { Action::Delete },
                before: Some(before),
                after: None,
                reason: Some(reason),
                create_before_destroy: false,
                sensitive: rs.sensitive.clone(),
                dependencies: rs.dependencies.clone(),
                deposed: None,
                references: BTreeMap::new(),
                cost: None,
            });
        }
        if self.mode == Mode::Destroy {
            self.changes.retain(|c| c.action == Action::Delete);
        }
        if self.mode == Mode::RefreshOnly {
            // Nothing is destroyed: what the configuration no longer has stays, with what
            // refresh found (a no-op change, which apply records), as do deposed objects.
            self.changes.retain(|c| c.deposed.is_none());
            for c in self.changes.iter_mut().filter(|c| c.action == Action::Delete) {
                c.action = Action::NoOp;
                c.after = c.before.clone();
                c.reason = None;
            }
            return;
        }
        // Old objects of create_before_destroy replacements: destroyed by every plan.
        let deposed: Vec<_> = self.state.deposed.values().cloned().collect();
        for d in deposed {
            if self.ensure_provider(&d.resource.provider).await.is_none() {
                continue;
            }
            self.changes.push(PlannedChange {
                address: d.address,
                provider: d.resource.provider,
                kind: d.resource.kind,
                action: Action::Delete,
                before: Some(d.resource.attributes),
                after: None,
                reason: Some(Reason::Deposed),
                create_before_destroy: false,
                sensitive: d.resource.sensitive,
                dependencies: d.resource.dependencies,
                deposed: Some(d.key),
                references: BTreeMap::new(),
                cost: None,
            });
        }
    }

    /// The instances in state of the resources `addr`'s resource depends on in the configuration
    /// (for the destroy order of an adopted object, which state has no dependencies for yet).
    fn config_dependencies(&self, addr: &InstanceAddr) -> Vec<InstanceAddr> {
        let start = Node::Resource(addr.resource.clone());
        let mut seen: HashSet<Node> = HashSet::new();
        let mut stack = vec![start.clone()];
        let mut resources: HashSet<ResourceAddr> = HashSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Node::Resource(r) = &n {
                if n != start {
                    resources.insert(r.clone());
                }
            }
            stack.extend(self.cx.graph.deps.dependencies(&n).into_iter().cloned());
        }
        self.state.resources.keys().filter(|a| resources.contains(&a.resource)).cloned().collect()
    }

    /// Looks up the creates an interrupted apply left pending with this provider. An object
    /// found is adopted: it becomes the prior state of its address.
    async fn resolve_pending_for(&mut self, key: &str, provider: &dyn Provider) {
        for p in self.state.pending.values().filter(|p| p.provider == key) {
            if self.found.pending.iter().any(|r| r.token == p.token) {
                continue;
            }
            let addr = p.address.to_string();
            let res = provider.recover(RecoverRequest { address: &addr, kind: &p.kind, token: &p.token, planned: &p.planned }).await;
            self.cx.diags.extend(res.diagnostics.with_address(&addr));
            if let Some(v) = &res.state {
                self.found.refreshed.insert(p.address.clone(), Some(v.clone()));
            }
            self.found.pending.push(PendingResolution {
                token: p.token.clone(),
                address: p.address.clone(),
                provider: p.provider.clone(),
                kind: p.kind.clone(),
                adopted: res.state,
            });
        }
    }

    /// Pending creates of providers the configuration no longer uses.
    pub async fn resolve_pending(&mut self) {
        let keys: BTreeSet<String> = self.state.pending.values().map(|p| p.provider.clone()).collect();
        for key in keys {
            if let Some(p) = self.ensure_provider(&key).await {
                self.resolve_pending_for(&key, p.as_ref()).await;
            }
        }
    }

    pub fn root_outputs(&self) -> BTreeMap<String, OutputChange> {
        let mut out = BTreeMap::new();
        for name in self.cx.config.root.module.outputs.keys() {
            let after = self.cx.values.outputs.get(&(Vec::new(), name.clone())).cloned();
            let before = self.state.outputs.get(name).map(|o| o.value.clone().mark_if(o.sensitive));
            let sensitive = self.cx.config.root.module.outputs[name].sensitive;
            let after = if self.mode == Mode::Destroy { None } else { after };
            out.insert(name.clone(), OutputChange { before, after, sensitive });
        }
        for (name, o) in &self.state.outputs {
            out.entry(name.clone()).or_insert(OutputChange {
                before: Some(o.value.clone().mark_if(o.sensitive)),
                after: None,
                sensitive: o.sensitive,
            });
        }
        out
    }
}

/// Top-level attributes whose values differ (unknown counts as different).
/// Whether `after` is `before` plus attributes `before` has no key for, each computed only (set
/// by the provider, never by a configuration).
fn only_new_computed(before: &Value, after: &Value, schema: &KindSchema) -> bool {
    let (Some(b), Some(a)) = (before.as_map(), after.as_map()) else { return false };
    let new_computed =
        |k: &String| !b.contains_key(k) && schema.body.attributes.get(k).is_some_and(|s| s.computed && !s.optional && !s.required);
    let kept: Map = a.iter().filter(|(k, _)| !new_computed(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    kept.len() < a.len() && Value::Map(kept).unmarked_eq(before)
}

pub(crate) fn changed_attrs(prior: &Value, planned: &Value) -> Vec<String> {
    let empty = Map::new();
    let p = prior.as_map().unwrap_or(&empty);
    let n = planned.as_map().unwrap_or(&empty);
    let mut keys: BTreeSet<&String> = p.keys().collect();
    keys.extend(n.keys());
    keys.into_iter()
        .filter(|k| {
            let a = p.get(*k).unwrap_or(&Value::Null);
            let b = n.get(*k).unwrap_or(&Value::Null);
            a.known_eq(b) != Some(true)
        })
        .cloned()
        .collect()
}
