//! Apply: runs exactly what a plan lists, concurrently in dependency order. Deletes go first
//! (dependents before their dependencies; deposed objects left by earlier applies among them),
//! then creates and updates walk the configuration graph (each resource starts as soon as
//! everything it references is done, bounded only by each provider's concurrency limit), then
//! the objects deposed by this apply are deleted. A `create_before_destroy` replacement deposes
//! its old object in the same state change that records the new one (or, when the create fails
//! half-way, deposes the new object and keeps the old), so an interrupted or failed apply leaves
//! it in state for the next plan to destroy, never untracked. A pending entry is made durable
//! before every create; every completed operation is handed to the [`StateSink`] at once. When
//! one resource fails, its dependents are skipped and independent ones go on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kiln_addrs::{InstanceAddr, InstanceKey, ResourceAddr};
use kiln_config::Config;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_plan::{Action, Plan, PlannedChange};
use kiln_provider::{CreateRequest, DeleteRequest, Provider, UpdateRequest};
use kiln_state::{DeposedObject, Mutation, OutputState, PendingCreate, ResourceState, State};
use kiln_value::Value;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::graph::{build_graph, Node};
use crate::hooks::{Hook, Subject};
use crate::instance::{eval_body, expand};
use crate::plan::{propose, remark, sensitive_attrs, PlanRequest, Walker};
use crate::providers::{provider_name, ProviderRegistry, Providers};
use crate::scope::{Expansion, Repetition};

/// Where apply sends state changes, in order. `persist` returns once these and every change
/// sent before are durable; `record` queues changes without waiting (a later `persist` or the
/// end of apply makes them durable, and reports a failure).
#[async_trait::async_trait]
pub trait StateSink: Send + Sync {
    async fn persist(&self, mutations: Vec<Mutation>) -> Result<(), String>;
    fn record(&self, mutations: Vec<Mutation>);
}

/// Interruption requests: 0 = none, 1 = start nothing new, 2 = abandon operations in flight.
#[derive(Clone)]
pub struct Cancel(pub watch::Receiver<u8>);

impl Cancel {
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(0);
        std::mem::forget(tx);
        Cancel(rx)
    }
    fn level(&self) -> u8 {
        *self.0.borrow()
    }
}

pub struct ApplyRequest<'a> {
    pub config: &'a Config,
    pub state: State,
    pub registry: &'a ProviderRegistry,
    /// The command's configured providers (shared with the plan when the command made it): what
    /// is not configured in it yet is configured here, once.
    pub providers: &'a Providers,
    pub plan: &'a Plan,
    pub hook: Arc<dyn Hook>,
    pub sink: Arc<dyn StateSink>,
    pub cancel: Cancel,
    pub cwd: PathBuf,
    /// Overrides every provider's own concurrency limit when set.
    pub parallelism: Option<usize>,
    /// The selected workspace's name: `kiln.workspace` in expressions.
    pub workspace: String,
}

pub struct ApplyOutcome {
    pub state: State,
    pub diagnostics: Diagnostics,
    pub interrupted: bool,
}

struct OpResult {
    addr: InstanceAddr,
    /// Which of [`run_deletes`]' items it was (0 elsewhere).
    index: usize,
    mutations: Vec<Mutation>,
    value: Option<Value>,
    diagnostics: Diagnostics,
}

impl OpResult {
    /// An operation that was queued when an interrupt came, and never started.
    fn not_started(addr: InstanceAddr) -> Self {
        OpResult { addr, index: 0, mutations: Vec::new(), value: None, diagnostics: Diagnostics::new() }
    }
}

struct Ctx {
    hook: Arc<dyn Hook>,
    sink: Arc<dyn StateSink>,
    limits: HashMap<String, Option<Arc<Semaphore>>>,
}

pub async fn apply(req: ApplyRequest<'_>) -> ApplyOutcome {
    let mut state = req.state.clone();
    let mut diags = Diagnostics::new();
    let (graph, gd) = build_graph(req.config, req.registry);
    diags.extend(gd);
    if diags.has_errors() {
        return ApplyOutcome { state, diagnostics: diags, interrupted: false };
    }
    let preq = preq_for(&req);
    let mut w = Walker::new(&preq, &graph);
    w.recover_pending = false;
    let mut ctx = Ctx { hook: req.hook.clone(), sink: req.sink.clone(), limits: HashMap::new() };
    let changes: HashMap<&InstanceAddr, &PlannedChange> =
        req.plan.changes.iter().filter(|c| c.deposed.is_none()).map(|c| (&c.address, c)).collect();
    // Deposed objects from earlier applies: phase 1 destroys those the plan lists.
    let earlier: Vec<String> = state.deposed.keys().cloned().collect();

    // Refresh results and pending creates the plan resolved become state first.
    let mut first = Vec::new();
    for p in &req.plan.pending {
        if let Some(adopted) = &p.adopted {
            // What state holds at the address is the old half of an interrupted
            // create_before_destroy: deposed (under the key the plan shows), never dropped.
            if let Some(old) = state.resources.get(&p.address) {
                let shown = req.plan.changes.iter().filter(|c| c.address == p.address).filter_map(|c| c.deposed.clone());
                let key = shown.into_iter().find(|k| !state.deposed.contains_key(k)).unwrap_or_else(deposed_key);
                first.push(Mutation::PutDeposed(DeposedObject { key, address: p.address.clone(), resource: old.clone() }));
            }
            first.push(Mutation::Put {
                address: p.address.clone(),
                resource: resource_state(&p.provider, &p.kind, adopted.clone(), &[], Vec::new(), false),
            });
        }
        first.push(Mutation::ClearPending { token: p.token.clone() });
    }
    for c in req.plan.changes.iter().filter(|c| c.deposed.is_none()) {
        if let (Some(before), Some(prior)) = (&c.before, state.resources.get(&c.address)) {
            if !before.unmarked_eq(&prior.attributes) {
                let mut r = prior.clone();
                r.attributes = before.clone().unmark_deep().0;
                first.push(Mutation::Put { address: c.address.clone(), resource: r });
            }
        }
    }
    for d in &req.plan.drift {
        if d.after.is_none() {
            first.push(Mutation::Remove { address: d.address.clone() });
        }
    }
    if !first.is_empty() {
        commit(&mut state, &req.sink, first, &mut diags).await;
    }

    // Phase 1: deletes (deposed objects the plan lists among them), dependents first. They run
    // before the graph walk configures providers, so their providers are configured from the
    // configuration evaluated over prior state (and with an empty configuration when the
    // configuration no longer mentions them).
    let mut deletes: Vec<DeleteItem> = req
        .plan
        .changes
        .iter()
        .filter(|c| c.deposed.is_none())
        .filter(|c| c.action == Action::Delete || (c.action == Action::Replace && !c.create_before_destroy))
        .map(|c| {
            let prior = state.resources.get(&c.address);
            DeleteItem {
                address: c.address.clone(),
                provider: c.provider.clone(),
                kind: c.kind.clone(),
                prior: prior.map(|r| r.attributes.clone()).or_else(|| c.before.clone().map(|b| b.unmark_deep().0)).unwrap_or(Value::Null),
                dependencies: prior.map(|r| r.dependencies.clone()).unwrap_or_else(|| c.dependencies.clone()),
                done: Mutation::Remove { address: c.address.clone() },
                secrets: crate::redact::secrets_named(c.before.as_ref().or(prior.map(|r| &r.attributes)), &c.sensitive),
            }
        })
        .collect();
    let listed = |d: &&DeposedObject| req.plan.changes.iter().any(|c| c.deposed.as_ref() == Some(&d.key));
    deletes.extend(state.deposed.values().filter(listed).map(deposed_delete));
    let any_delete = req.plan.changes.iter().any(|c| matches!(c.action, Action::Delete | Action::Replace));
    if any_delete {
        let preq = preq_for(&req);
        diags.extend(
            crate::plan::configure_providers(crate::plan::ProvidersRequest {
                config: preq.config,
                state: preq.state,
                registry: preq.registry,
                providers: preq.providers,
                variables: preq.variables,
                workspace: preq.workspace,
                cwd: preq.cwd,
            })
            .await,
        );
    }
    let delete_providers = req.providers;
    let mut interrupted = run_deletes(deletes, &delete_providers, &mut ctx, &mut state, &mut diags, &req).await;

    // Phase 2: creates and updates in dependency order.
    if !interrupted && req.plan.mode == kiln_plan::Mode::Normal {
        interrupted = run_graph(&mut w, &graph, &changes, &mut ctx, &mut state, &mut diags, &req).await;
    }

    // Phase 3: what phase 2 deposed: old objects of create_before_destroy replacements, and new
    // objects whose create failed half-way.
    if !interrupted {
        let deposed = state.deposed.values().filter(|d| !earlier.contains(&d.key)).map(deposed_delete).collect();
        interrupted = run_deletes(deposed, &delete_providers, &mut ctx, &mut state, &mut diags, &req).await;
    }

    if !interrupted {
        let outputs: BTreeMap<String, OutputState> = if req.plan.mode == kiln_plan::Mode::Destroy {
            BTreeMap::new()
        } else {
            // An output still unknown (its resources were left out by --target) keeps its value.
            w.values
                .outputs
                .iter()
                .filter(|((m, _), _)| m.is_empty())
                .filter_map(|((_, n), v)| {
                    if v.contains_unknown() {
                        return state.outputs.get(n).map(|o| (n.clone(), o.clone()));
                    }
                    let sensitive = req.config.root.module.outputs.get(n).is_some_and(|o| o.sensitive) || v.contains_sensitive();
                    Some((n.clone(), OutputState { value: v.clone().unmark_deep().0, sensitive }))
                })
                .collect()
        };
        commit(&mut state, &req.sink, vec![Mutation::SetOutputs(outputs)], &mut diags).await;
    }
    diags.extend(w.diags);
    let diags = w.values.redact(diags);
    ApplyOutcome { state, diagnostics: diags, interrupted }
}

/// The walk apply makes: over the reviewed plan's variables, prior state, no refresh.
fn preq_for<'a>(req: &'a ApplyRequest<'a>) -> PlanRequest<'a> {
    PlanRequest {
        config: req.config,
        state: &req.state,
        registry: req.registry,
        providers: req.providers,
        variables: req.plan.variables.clone(),
        mode: req.plan.mode,
        refresh: false,
        workspace: req.workspace.clone(),
        targets: Vec::new(),
        excludes: Vec::new(),
        hook: req.hook.as_ref(),
        cwd: req.cwd.clone(),
    }
}

async fn commit(state: &mut State, sink: &Arc<dyn StateSink>, muts: Vec<Mutation>, diags: &mut Diagnostics) {
    for m in &muts {
        state.apply_mutation(m);
    }
    if let Err(e) = sink.persist(muts).await {
        diags.push(
            Diagnostic::error("E-STATE-WRITE", format!("cannot save state: {e}"))
                .hint("check the disk and permissions; state is also written at the end of apply"),
        );
    }
}

/// A short random key for a deposed object.
fn deposed_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

fn resource_state(provider: &str, kind: &str, value: Value, sensitive: &[String], deps: Vec<InstanceAddr>, cbd: bool) -> ResourceState {
    let (attributes, _) = value.unmark_deep();
    ResourceState {
        provider: provider.to_string(),
        kind: kind.to_string(),
        attributes,
        sensitive: sensitive.to_vec(),
        dependencies: deps,
        tainted: false,
        create_before_destroy: cbd,
    }
}

impl Ctx {
    fn semaphore(&mut self, key: &str, p: &dyn Provider, parallelism: Option<usize>) -> Option<Arc<Semaphore>> {
        self.limits
            .entry(key.to_string())
            .or_insert_with(|| parallelism.or(p.limits().concurrency).map(|n| Arc::new(Semaphore::new(n.max(1)))))
            .clone()
    }
}

/// One object to delete, and the state change once it is gone.
struct DeleteItem {
    address: InstanceAddr,
    provider: String,
    kind: String,
    prior: Value,
    /// What it depended on: it goes before those.
    dependencies: Vec<InstanceAddr>,
    done: Mutation,
    /// What its provider's errors must not quote.
    secrets: kiln_value::Secrets,
}

fn deposed_delete(d: &DeposedObject) -> DeleteItem {
    DeleteItem {
        address: d.address.clone(),
        provider: d.resource.provider.clone(),
        kind: d.resource.kind.clone(),
        prior: d.resource.attributes.clone(),
        dependencies: d.resource.dependencies.clone(),
        done: Mutation::RemoveDeposed { key: d.key.clone() },
        secrets: crate::redact::secrets_named(Some(&d.resource.attributes), &d.resource.sensitive),
    }
}

/// Deletes in reverse dependency order, concurrently where independent.
async fn run_deletes(
    deletes: Vec<DeleteItem>,
    providers: &Providers,
    ctx: &mut Ctx,
    state: &mut State,
    diags: &mut Diagnostics,
    req: &ApplyRequest<'_>,
) -> bool {
    if deletes.is_empty() {
        return false;
    }
    // waiting[i] = deletes that must finish before item i (the things depending on it).
    let mut at: HashMap<&InstanceAddr, Vec<usize>> = HashMap::new();
    for (i, d) in deletes.iter().enumerate() {
        at.entry(&d.address).or_default().push(i);
    }
    let mut waiting = vec![0usize; deletes.len()];
    let mut unblocks: Vec<Vec<usize>> = vec![Vec::new(); deletes.len()];
    for (i, d) in deletes.iter().enumerate() {
        for dep in &d.dependencies {
            for &k in at.get(dep).into_iter().flatten() {
                waiting[k] += 1;
                unblocks[i].push(k);
            }
        }
    }
    let mut ready: Vec<usize> = (0..deletes.len()).filter(|i| waiting[*i] == 0).collect();
    ready.sort_by(|a, b| deletes[*a].address.cmp(&deletes[*b].address));
    let mut tasks: JoinSet<OpResult> = JoinSet::new();
    let mut cancel = req.cancel.clone();
    loop {
        while let Some(i) = ready.pop() {
            if cancel.level() >= 1 {
                continue;
            }
            let d = &deletes[i];
            let Some(p) = providers.get(&d.provider) else {
                diags.push(
                    Diagnostic::error("E-PROVIDER-MISSING", format!("provider `{}` is not configured", d.provider)).address(&d.address),
                );
                continue;
            };
            let sem = ctx.semaphore(&d.provider, p.as_ref(), req.parallelism);
            let (hook, sink) = (ctx.hook.clone(), ctx.sink.clone());
            let (addr, kind, prior, done) = (d.address.clone(), d.kind.clone(), d.prior.clone(), d.done.clone());
            let secrets = d.secrets.clone();
            let cancel_task = cancel.clone();
            tasks.spawn(async move {
                let _permit = match &sem {
                    Some(s) => Some(s.clone().acquire_owned().await.expect("semaphore open")),
                    None => None,
                };
                if cancel_task.level() >= 1 {
                    return OpResult { index: i, ..OpResult::not_started(addr) };
                }
                let key = match &done {
                    Mutation::RemoveDeposed { key } => Some(key.clone()),
                    _ => None,
                };
                let what = Subject { addr: &addr, deposed: key.as_deref() };
                hook.apply_start(what, Action::Delete);
                let started = Instant::now();
                let name = addr.to_string();
                let d = crate::redact::diags(p.delete(DeleteRequest { address: &name, kind: &kind, prior: &prior }).await, &secrets);
                let mut mutations = Vec::new();
                if !d.has_errors() {
                    mutations.push(done);
                    sink.record(mutations.clone());
                }
                let err = d.errors().next().map(ToString::to_string);
                hook.apply_done(what, Action::Delete, err.as_deref(), started.elapsed());
                OpResult { addr, index: i, mutations, value: None, diagnostics: d.with_address(&name) }
            });
        }
        let Some(res) = next_result(&mut tasks, &mut cancel).await else { break };
        let Some(res) = res else { return true };
        let ok = !res.diagnostics.has_errors();
        for m in &res.mutations {
            state.apply_mutation(m);
        }
        diags.extend(res.diagnostics);
        if ok {
            for &b in &unblocks[res.index] {
                waiting[b] -= 1;
                if waiting[b] == 0 {
                    ready.push(b);
                }
            }
        }
    }
    cancel.level() >= 1
}

/// Waits for the next finished task. `None`: nothing left; `Some(None)`: abandoned (second Ctrl-C).
async fn next_result(tasks: &mut JoinSet<OpResult>, cancel: &mut Cancel) -> Option<Option<OpResult>> {
    loop {
        if tasks.is_empty() {
            return None;
        }
        if cancel.level() >= 2 {
            // Abandon: stop waiting. Operations are cancelled where they wait; one that already
            // finished has handed its changes to the sink, and a create cut short keeps its
            // durable pending entry for the next plan to resolve. A moment is given for the
            // cancelled ones to unwind, so none of them writes after the final snapshot.
            tasks.abort_all();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async { while tasks.join_next().await.is_some() {} }).await;
            tasks.detach_all();
            return Some(None);
        }
        tokio::select! {
            r = tasks.join_next() => match r {
                Some(Ok(r)) => return Some(Some(r)),
                Some(Err(e)) => {
                    tracing::error!("apply task failed: {e}");
                    continue;
                }
                None => return None,
            },
            changed = cancel.0.changed() => {
                if changed.is_err() {
                    // The sender is gone: no more interrupts can come.
                    let r = tasks.join_next().await;
                    return match r { Some(Ok(r)) => Some(Some(r)), _ => None };
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_graph(
    w: &mut Walker<'_>,
    graph: &crate::graph::Graph,
    changes: &HashMap<&InstanceAddr, &PlannedChange>,
    ctx: &mut Ctx,
    state: &mut State,
    diags: &mut Diagnostics,
    req: &ApplyRequest<'_>,
) -> bool {
    let mut walk = graph.deps.walk();
    let mut ready: Vec<_> = walk.take_ready();
    let mut tasks: JoinSet<OpResult> = JoinSet::new();
    // Per resource node: instance ops still running, and the values gathered.
    let mut running: HashMap<ResourceAddr, (kiln_graph::NodeIndex, usize, bool)> = HashMap::new();
    let mut cancel = req.cancel.clone();
    let mut skipped: HashSet<Node> = HashSet::new();
    loop {
        while let Some(idx) = ready.pop() {
            let node = graph.deps.node(idx).clone();
            let blocked = graph.deps.dependencies(&node).iter().any(|d| skipped.contains(*d));
            if blocked || (cancel.level() >= 1 && matches!(node, Node::Resource(_))) {
                skipped.insert(node);
                ready.extend(walk.complete(idx));
                continue;
            }
            match &node {
                Node::Resource(addr) => {
                    let n = start_resource(w, addr, changes, ctx, state, req, &mut tasks).await;
                    match n {
                        Some(0) => ready.extend(walk.complete(idx)),
                        Some(n) => {
                            running.insert(addr.clone(), (idx, n, false));
                        }
                        None => {
                            skipped.insert(node);
                            ready.extend(walk.complete(idx));
                        }
                    }
                }
                _ => {
                    let before = w.diags.len();
                    w.visit(&node).await;
                    if w.diags.len() > before && w.diags.has_errors() {
                        skipped.insert(node);
                    }
                    ready.extend(walk.complete(idx));
                }
            }
        }
        let Some(res) = next_result(&mut tasks, &mut cancel).await else { break };
        let Some(res) = res else { return true };
        let failed = res.diagnostics.has_errors();
        for m in &res.mutations {
            state.apply_mutation(m);
        }
        diags.extend(res.diagnostics);
        let addr = res.addr.resource.clone();
        if let Some(v) = res.value {
            set_instance_value(w, &res.addr, v);
        }
        if let Some(entry) = running.get_mut(&addr) {
            entry.1 -= 1;
            entry.2 |= failed;
            if entry.1 == 0 {
                let (idx, _, any_failed) = running.remove(&addr).expect("present");
                if any_failed {
                    skipped.insert(Node::Resource(addr));
                }
                ready.extend(walk.complete(idx));
            }
        }
    }
    cancel.level() >= 1
}

fn set_instance_value(w: &mut Walker<'_>, addr: &InstanceAddr, v: Value) {
    let e = w.values.resources.entry(addr.resource.clone()).or_insert_with(|| match addr.key {
        InstanceKey::None => Expansion::Single(Value::Unknown),
        InstanceKey::Int(_) => Expansion::Count(Vec::new()),
        InstanceKey::Str(_) => Expansion::ForEach(BTreeMap::new()),
    });
    match (e, &addr.key) {
        (Expansion::Single(x), InstanceKey::None) => *x = v,
        (Expansion::Count(l), InstanceKey::Int(i)) => {
            let i = *i as usize;
            if l.len() <= i {
                l.resize(i + 1, Value::Unknown);
            }
            l[i] = v;
        }
        (Expansion::ForEach(m), InstanceKey::Str(k)) => {
            m.insert(k.clone(), v);
        }
        _ => {}
    }
}

/// Evaluates a resource's instances with final values and starts their operations. Returns how
/// many operations were started, or `None` when the resource failed before any started.
async fn start_resource(
    w: &mut Walker<'_>,
    addr: &ResourceAddr,
    changes: &HashMap<&InstanceAddr, &PlannedChange>,
    ctx: &mut Ctx,
    state: &State,
    req: &ApplyRequest<'_>,
    tasks: &mut JoinSet<OpResult>,
) -> Option<usize> {
    let config = req.config;
    let m = config.root.find(&addr.module)?;
    let r = m.module.resource(addr.mode, &addr.kind, &addr.name)?;
    let key = w.graph.provider_of[addr].clone();
    let provider = w.ready.get(&key).cloned()?;
    let schema = req.registry.schema(provider_name(&key))?;
    let kinds = if addr.mode == kiln_addrs::Mode::Data { &schema.data_kinds } else { &schema.kinds };
    let kind_schema = kinds.get(&addr.kind)?.clone();
    let scope_dir = m.module.dir.clone();
    let keys = {
        let scope = crate::scope::ModuleScope { values: &w.values, module: &addr.module, dir: &scope_dir, rep: Repetition::None };
        match expand(r, addr, &scope) {
            Ok(k) => k,
            Err(d) => {
                w.diags.extend(d);
                return None;
            }
        }
    };
    // Start from an empty expansion of the right shape so references see every instance.
    w.values.resources.insert(
        addr.clone(),
        if r.count.is_some() {
            Expansion::Count(vec![Value::Unknown; keys.len()])
        } else if r.for_each.is_some() {
            Expansion::ForEach(BTreeMap::new())
        } else {
            Expansion::Single(Value::Unknown)
        },
    );
    let mut started = 0;
    for (ik, rep) in keys {
        let iaddr = addr.instance(ik);
        let prior = state.resources.get(&iaddr);
        let change = changes.get(&iaddr).copied();
        let action = change.map(|c| c.action).unwrap_or(Action::NoOp);
        if matches!(action, Action::NoOp | Action::Read | Action::Delete) || addr.mode == kiln_addrs::Mode::Data {
            let v = match (prior, change) {
                (Some(p), _) => remark(p.attributes.clone(), &kind_schema, &p.sensitive),
                (None, Some(c)) => c.after.clone().unwrap_or(Value::Unknown),
                (None, None) => {
                    if addr.mode == kiln_addrs::Mode::Data {
                        let scope = crate::scope::ModuleScope { values: &w.values, module: &addr.module, dir: &scope_dir, rep };
                        match eval_body(&r.body, &kind_schema.body, &scope, &r.span) {
                            Ok(cfg) => provider
                                .read_data(kiln_provider::ReadDataRequest { kind: &r.kind, config: &cfg })
                                .await
                                .state
                                .unwrap_or(Value::Unknown),
                            Err(d) => {
                                w.diags.extend(d);
                                Value::Unknown
                            }
                        }
                    } else if !req.plan.targets.is_empty() || !req.plan.excludes.is_empty() {
                        // Left out by --target/--exclude: nothing to do, nothing known.
                        Value::Unknown
                    } else {
                        w.diags.push(
                            Diagnostic::error("E-APPLY-NOT-PLANNED", format!("`{iaddr}` is not in the plan"))
                                .address(&iaddr)
                                .hint("the configuration changed since the plan was made: run `kiln plan` again"),
                        );
                        return None;
                    }
                }
            };
            set_instance_value(w, &iaddr, v);
            continue;
        }
        let change = change.expect("a change for every action but no-op");
        let scope = crate::scope::ModuleScope { values: &w.values, module: &addr.module, dir: &scope_dir, rep };
        let cfg = match eval_body(&r.body, &kind_schema.body, &scope, &r.span) {
            Ok(v) => v,
            Err(d) => {
                w.diags.extend(d.with_address(&iaddr.to_string()));
                return None;
            }
        };
        let prior_v = if action == Action::Update { prior.map(|p| remark(p.attributes.clone(), &kind_schema, &p.sensitive)) } else { None };
        // The replaced object may already be deleted: the reviewed plan still has it.
        let replacing = if action == Action::Replace { change.before.clone() } else { None };
        let mut cfg = cfg;
        if let Some(p) = &prior_v {
            crate::plan::ignore_changes(&mut cfg, p, &r.lifecycle);
        }
        let proposed = propose(&cfg, prior_v.as_ref(), &kind_schema);
        let name = iaddr.to_string();
        let resp = provider
            .plan(kiln_provider::PlanRequest {
                address: &name,
                kind: &r.kind,
                prior: prior_v.as_ref(),
                replacing: replacing.as_ref(),
                config: &cfg,
                proposed: &proposed,
            })
            .await;
        // What the provider says about this object is redacted with every value it was given.
        let mut secrets =
            crate::redact::secrets([&cfg, &proposed, &resp.planned].into_iter().chain(prior_v.as_ref()).chain(replacing.as_ref()));
        if let Some(p) = w.values.provider_secrets.get(&key) {
            secrets.extend(p);
        }
        if resp.diagnostics.has_errors() {
            w.diags.extend(crate::redact::diags(resp.diagnostics, &secrets).with_address(&name));
            return None;
        }
        let mut planned = resp.planned;
        if let Some(p) = &prior_v {
            crate::plan::ignore_changes(&mut planned, p, &r.lifecycle);
        }
        if let Some(msg) = inconsistent(change.after.as_ref(), &planned) {
            w.diags.push(
                Diagnostic::error("E-APPLY-INCONSISTENT", format!("`{name}`: the final configuration differs from the plan: {msg}"))
                    .address(&name)
                    .hint("something changed since the plan was made: run `kiln plan` again"),
            );
            return None;
        }
        // Marks a provider's plan dropped: the configuration's and the reviewed plan's.
        let mut sensitive = sensitive_attrs(&planned, &kind_schema);
        sensitive.extend(sensitive_attrs(&cfg, &kind_schema).into_iter().chain(change.sensitive.iter().cloned()));
        sensitive.sort();
        sensitive.dedup();
        // The provider sees which attributes are sensitive, to keep them out of what it writes.
        let planned = remark(planned, &kind_schema, &sensitive);
        let sem = ctx.semaphore(&key, provider.as_ref(), req.parallelism);
        let (hook, sink, p) = (ctx.hook.clone(), ctx.sink.clone(), provider.clone());
        let kind = r.kind.clone();
        let deps = change.dependencies.clone();
        let cbd = change.create_before_destroy;
        let provider_key = key.clone();
        let prior_attrs = prior.map(|p| p.attributes.clone());
        // A create_before_destroy replacement deposes the old object once the new one exists.
        let deposing = if action == Action::Replace && cbd { prior.cloned() } else { None };
        let op = if action == Action::Update { Action::Update } else { Action::Create };
        let state_only = kind_schema.state_only;
        let marks_schema = kind_schema.clone();
        let cancel = req.cancel.clone();
        tasks.spawn(async move {
            let _permit = match &sem {
                Some(s) => Some(s.clone().acquire_owned().await.expect("semaphore open")),
                None => None,
            };
            if cancel.level() >= 1 {
                return OpResult::not_started(iaddr);
            }
            let what = Subject { addr: &iaddr, deposed: None };
            hook.apply_start(what, op);
            let t0 = Instant::now();
            let mut mutations = Vec::new();
            let resp = if op == Action::Create && state_only {
                // Nothing outside kiln's state is created: no pending entry to make durable.
                p.create(CreateRequest { address: &name, kind: &kind, planned: &planned, token: "" }).await
            } else if op == Action::Create {
                let token = uuid::Uuid::new_v4().to_string();
                let pending = Mutation::PutPending(PendingCreate {
                    address: iaddr.clone(),
                    provider: provider_key.clone(),
                    kind: kind.clone(),
                    token: token.clone(),
                    planned: planned.clone().unmark_deep().0,
                    started_at: chrono::Utc::now().to_rfc3339(),
                });
                if let Err(e) = sink.persist(vec![pending.clone()]).await {
                    let d: Diagnostics =
                        Diagnostic::error("E-STATE-WRITE", format!("cannot save the pending entry: {e}")).address(&iaddr).into();
                    hook.apply_done(what, op, Some("state write failed"), t0.elapsed());
                    return OpResult { addr: iaddr, index: 0, mutations, value: None, diagnostics: d };
                }
                mutations.push(pending);
                let r = p.create(CreateRequest { address: &name, kind: &kind, planned: &planned, token: &token }).await;
                mutations.push(Mutation::ClearPending { token });
                r
            } else {
                let prior = prior_attrs.unwrap_or(Value::Null);
                p.update(UpdateRequest { address: &name, kind: &kind, prior: &prior, planned: &planned }).await
            };
            let mut resp = resp;
            resp.diagnostics = crate::redact::diags(std::mem::take(&mut resp.diagnostics), &secrets);
            let mut value = None;
            if let Some(new) = resp.state {
                let mut rs = resource_state(&provider_key, &kind, new.clone(), &sensitive, deps, cbd);
                rs.tainted = resp.diagnostics.has_errors();
                let depose = |resource| Mutation::PutDeposed(DeposedObject { key: deposed_key(), address: iaddr.clone(), resource });
                match deposing {
                    // The old object stays; the broken new one is destroyed after the creates.
                    Some(_) if rs.tainted => mutations.push(depose(rs)),
                    old => {
                        mutations.extend(old.map(depose));
                        mutations.push(Mutation::Put { address: iaddr.clone(), resource: rs });
                        // References to it see the marks its plan had (a provider returns plain values).
                        value = Some(remark(new, &marks_schema, &sensitive));
                    }
                }
            }
            // Queued behind the pending entry: durable no later than anything a dependent writes.
            sink.record(mutations.iter().filter(|m| !matches!(m, Mutation::PutPending(_))).cloned().collect());
            let err = resp.diagnostics.errors().next().map(ToString::to_string);
            hook.apply_done(Subject { addr: &iaddr, deposed: None }, op, err.as_deref(), t0.elapsed());
            OpResult { addr: iaddr, index: 0, mutations, value, diagnostics: resp.diagnostics.with_address(&name) }
        });
        started += 1;
    }
    Some(started)
}

/// Where the final planned value contradicts a known value of the reviewed plan.
fn inconsistent(reviewed: Option<&Value>, fin: &Value) -> Option<String> {
    let reviewed = reviewed?.as_map()?;
    let fin = fin.as_map()?;
    for (k, v) in reviewed {
        if v.contains_unknown() {
            continue;
        }
        match fin.get(k) {
            Some(f) if f.known_eq(v) == Some(true) => {}
            _ => return Some(format!("attribute `{k}` was planned as a different value")),
        }
    }
    None
}
