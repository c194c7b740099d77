//! The apply driver: walks the apply graph's creates and updates over the evaluation
//! [`Context`]. A resource node expands its instances; an instance the plan leaves alone takes
//! its value from state; a planned one has its configuration evaluated with final values, is
//! planned by its provider once more and checked against the reviewed plan, and its operation
//! is started. Variables, locals, outputs and providers are evaluated as in every walk.

use std::collections::{HashMap, HashSet};

use kiln_addrs::{InstanceAddr, InstanceKey, Mode as AddrMode, ResourceAddr};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_graph::{DepGraph, NodeIndex};
use kiln_plan::{Action, Plan, PlannedChange};
use kiln_provider::Provider;
use kiln_schema::KindSchema;
use kiln_state::State;
use kiln_value::Value;
use std::sync::Arc;
use tokio::task::JoinSet;

use super::ops::{next_result, OpResult, Operation, Ops};
use super::ApplyRequest;
use crate::context::{ignore_changes, propose, remark, sensitive_attrs, Context};
use crate::graph::{Graph, Node};
use crate::scope::{Expansion, Repetition};

pub(crate) struct Applier<'a> {
    cx: Context<'a>,
    plan: &'a Plan,
    /// The plan's changes of objects in state (deposed objects' are phase 1's), by address.
    changes: HashMap<&'a InstanceAddr, &'a PlannedChange>,
    /// Resources with an instance to create, update or replace.
    changed: HashSet<ResourceAddr>,
    /// Those instances, by resource (a lookup per resource: a scan of every change per
    /// resource made an apply of 10,000 quadratic).
    planned: HashMap<&'a ResourceAddr, Vec<&'a InstanceAddr>>,
    ops: Ops,
}

/// A resource's provider and its kind's schema.
#[derive(Clone)]
struct Target {
    key: String,
    /// Set up by the provider node: for resources the plan changes and data sources (a managed
    /// resource the plan leaves alone takes its values from state, without its provider).
    provider: Option<Arc<dyn Provider>>,
    schema: KindSchema,
}

impl<'a> Applier<'a> {
    pub fn new(req: &'a ApplyRequest<'a>, graph: &'a Graph, changed: HashSet<ResourceAddr>, ops: Ops) -> Self {
        let cx = Context::new(req.config, req.registry, graph, req.providers, &req.plan.variables, req.workspace.clone(), req.cwd.clone());
        let changes: HashMap<&InstanceAddr, &PlannedChange> =
            req.plan.changes.iter().filter(|c| c.deposed.is_none()).map(|c| (&c.address, c)).collect();
        let mut planned: HashMap<&ResourceAddr, Vec<&InstanceAddr>> = HashMap::new();
        for (a, _) in changes.iter().filter(|(_, c)| matches!(c.action, Action::Create | Action::Update | Action::Replace)) {
            planned.entry(&a.resource).or_default().push(*a);
        }
        Applier { cx, plan: req.plan, changes, changed, planned, ops }
    }

    /// The evaluation context (final values, providers, diagnostics) and the operations.
    pub fn finish(self) -> (Context<'a>, Ops) {
        (self.cx, self.ops)
    }

    /// Walks `walk`: each node once everything it depends on is done; a node whose dependency
    /// failed or was skipped is skipped. Whether an interrupt stopped it.
    pub async fn run(&mut self, walk: &DepGraph<Node>, state: &mut State, diags: &mut Diagnostics) -> bool {
        let mut order = walk.walk();
        let mut ready: Vec<NodeIndex> = order.take_ready();
        let mut tasks: JoinSet<OpResult> = JoinSet::new();
        // Per resource node: its index, instance operations still running, and whether one failed.
        let mut running: HashMap<ResourceAddr, (NodeIndex, usize, bool)> = HashMap::new();
        let mut cancel = self.ops.cancel.clone();
        let mut skipped: HashSet<Node> = HashSet::new();
        loop {
            while let Some(idx) = ready.pop() {
                let node = walk.node(idx).clone();
                let blocked = walk.dependencies(&node).iter().any(|d| skipped.contains(*d));
                if blocked || (cancel.level() >= 1 && matches!(node, Node::Resource(_))) {
                    skipped.insert(node);
                    ready.extend(order.complete(idx));
                    continue;
                }
                match &node {
                    Node::Resource(addr) => match self.resource(addr, state, &mut tasks).await {
                        Some(0) => ready.extend(order.complete(idx)),
                        Some(n) => {
                            running.insert(addr.clone(), (idx, n, false));
                        }
                        None => {
                            skipped.insert(node);
                            ready.extend(order.complete(idx));
                        }
                    },
                    _ => {
                        let before = self.cx.diags.len();
                        match &node {
                            Node::Provider(key) => {
                                self.cx.provider(key).await;
                            }
                            _ => self.cx.value_node(&node),
                        }
                        if self.cx.diags.len() > before && self.cx.diags.has_errors() {
                            skipped.insert(node);
                        }
                        ready.extend(order.complete(idx));
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
                self.cx.set_instance(&res.addr, v);
            }
            if let Some(entry) = running.get_mut(&addr) {
                entry.1 -= 1;
                entry.2 |= failed;
                if entry.1 == 0 {
                    let (idx, _, any_failed) = running.remove(&addr).expect("present");
                    if any_failed {
                        skipped.insert(Node::Resource(addr));
                    }
                    ready.extend(order.complete(idx));
                }
            }
        }
        cancel.level() >= 1
    }

    /// A resource node: its instances' values, and the operations of those the plan changes,
    /// started once every instance has been checked against the plan. How many operations were
    /// started, or `None` when the resource failed (then none is started).
    async fn resource(&mut self, addr: &ResourceAddr, state: &State, tasks: &mut JoinSet<OpResult>) -> Option<usize> {
        let planned = addr.mode == AddrMode::Managed && self.changed.contains(addr);
        // A placed (or following) resource's instances each have their own provider.
        let placed = self.cx.graph.placed.contains_key(addr) || self.cx.graph.follows.contains_key(addr);
        let target = if placed { None } else { Some(self.target(addr, planned)?) };
        let keys = self.expand_instances(addr)?;
        if planned && !self.all_planned_configured(addr, &keys) {
            return None;
        }
        let mut ops = Vec::new();
        for (ik, rep) in keys {
            let iaddr = addr.instance(ik);
            let change = self.changes.get(&iaddr).copied();
            let target = match &target {
                Some(t) => t.clone(),
                None => self.instance_target(&iaddr, rep.clone(), change, state).await?,
            };
            match change.filter(|c| planned && matches!(c.action, Action::Create | Action::Update | Action::Replace)) {
                Some(change) => {
                    let config = self.final_config(&iaddr, rep, &target)?;
                    ops.push(self.final_plan(&iaddr, change, config, &target, state).await?);
                }
                None => {
                    let v = self.unchanged_value(&iaddr, rep, change, &target, state).await?;
                    self.cx.set_instance(&iaddr, v);
                }
            }
        }
        let started = ops.len();
        for op in ops {
            op.spawn(&mut self.ops, tasks);
        }
        Some(started)
    }

    /// Whether every instance of `addr` the plan creates, updates or replaces is still in the
    /// configuration (reported when not: apply runs what the plan lists or refuses).
    fn all_planned_configured(&mut self, addr: &ResourceAddr, keys: &[(InstanceKey, Repetition)]) -> bool {
        let configured: HashSet<&InstanceKey> = keys.iter().map(|(k, _)| k).collect();
        let mut gone: Vec<&InstanceAddr> =
            self.planned.get(addr).into_iter().flatten().filter(|a| !configured.contains(&a.key)).copied().collect();
        gone.sort();
        for a in &gone {
            self.cx.diags.push(not_configured(a));
        }
        gone.is_empty()
    }

    /// The resource's provider (set up by its provider node, for what needs it) and its kind's
    /// schema.
    fn target(&self, addr: &ResourceAddr, planned: bool) -> Option<Target> {
        let r = self.cx.resource(addr);
        let key = self.cx.graph.provider_of[addr].clone();
        let provider = self.cx.ready.get(&key).cloned();
        if provider.is_none() && (planned || addr.mode == AddrMode::Data) {
            return None;
        }
        let schema = self.cx.kind_schema(&key, r)?;
        Some(Target { key, provider, schema })
    }

    /// A placed or following instance's provider: the one the plan chose, else the one state
    /// records; its decision joins the walk so its configuration is the placed one.
    async fn instance_target(
        &mut self,
        iaddr: &InstanceAddr,
        rep: Repetition,
        change: Option<&PlannedChange>,
        state: &State,
    ) -> Option<Target> {
        let r = self.cx.resource(&iaddr.resource);
        let key = change
            .map(|c| c.provider.clone())
            .or_else(|| state.resources.get(iaddr).map(|s| s.provider.clone()))
            .unwrap_or_else(|| self.cx.graph.provider_of[&iaddr.resource].clone());
        if let Some(p) = self.plan.placements.iter().find(|p| &p.address == iaddr) {
            let meta = self.placement_meta(iaddr, rep);
            self.cx.placed.insert(iaddr.clone(), crate::placement::Chosen::new(p.chosen.clone(), p.fallbacks.clone(), meta));
        }
        let provider = self.cx.provider(&key).await;
        let schema = self.cx.kind_schema(&key, r)?;
        Some(Target { key, provider, schema })
    }

    /// The placement attributes of an instance (`max_price` reaches a provider that has it).
    fn placement_meta(&mut self, iaddr: &InstanceAddr, rep: Repetition) -> Value {
        let r = self.cx.resource(&iaddr.resource);
        let body = crate::placement::meta_body(&r.body);
        crate::instance::eval_body(&body, crate::placement::meta_schema(), &self.cx.scope(&iaddr.resource.module, rep), &r.span)
            .unwrap_or(Value::Null)
    }

    /// The instance keys with final values, references starting from an empty expansion of the
    /// right shape so they see every instance.
    fn expand_instances(&mut self, addr: &ResourceAddr) -> Option<Vec<(InstanceKey, Repetition)>> {
        let keys = self.cx.instance_keys(addr)?;
        let r = self.cx.resource(addr);
        let empty = if r.count.is_some() {
            Expansion::Count(vec![Value::Unknown; keys.len()])
        } else if r.for_each.is_some() {
            Expansion::ForEach(Default::default())
        } else {
            Expansion::Single(Value::Unknown)
        };
        self.cx.values.resources.insert(addr.clone(), empty);
        Some(keys)
    }

    /// What references see of an instance the plan does not create, update or replace: the
    /// object in state; else the plan's value; a data source is read; an instance neither state
    /// nor the plan has is refused (unless targeting left it out).
    async fn unchanged_value(
        &mut self,
        iaddr: &InstanceAddr,
        rep: Repetition,
        change: Option<&PlannedChange>,
        t: &Target,
        state: &State,
    ) -> Option<Value> {
        Some(match (state.resources.get(iaddr), change) {
            (Some(p), _) => remark(p.attributes.clone(), &t.schema, &p.sensitive),
            (None, Some(c)) => c.after.clone().unwrap_or(Value::Unknown),
            (None, None) if iaddr.resource.mode == AddrMode::Data => match (self.cx.instance_config(iaddr, rep, &t.schema), &t.provider) {
                (Some(config), Some(provider)) => {
                    let kind = &self.cx.resource(&iaddr.resource).kind;
                    provider.read_data(kiln_provider::ReadDataRequest { kind, config: &config }).await.state.unwrap_or(Value::Unknown)
                }
                _ => Value::Unknown,
            },
            // Left out by --target/--exclude: nothing to do, nothing known.
            (None, None) if !self.plan.targets.is_empty() || !self.plan.excludes.is_empty() => Value::Unknown,
            (None, None) => {
                self.cx.diags.push(
                    Diagnostic::error("E-APPLY-NOT-PLANNED", format!("`{iaddr}` is not in the plan"))
                        .address(iaddr)
                        .hint("the configuration changed since the plan was made: run `kiln plan` again"),
                );
                return None;
            }
        })
    }

    /// The instance's configuration evaluated with final values.
    fn final_config(&mut self, iaddr: &InstanceAddr, rep: Repetition, t: &Target) -> Option<Value> {
        self.cx.instance_config(iaddr, rep, &t.schema)
    }

    /// The provider's plan of the final configuration, checked against the reviewed plan: an
    /// attribute the plan knew must keep its value. The operation to run.
    async fn final_plan(
        &mut self,
        iaddr: &InstanceAddr,
        change: &PlannedChange,
        config: Value,
        t: &Target,
        state: &State,
    ) -> Option<Operation> {
        let r = self.cx.resource(&iaddr.resource);
        let provider = t.provider.clone().expect("a planned resource's provider is set up");
        let prior = state.resources.get(iaddr);
        let action = change.action;
        let prior_v = if action == Action::Update { prior.map(|p| remark(p.attributes.clone(), &t.schema, &p.sensitive)) } else { None };
        // The replaced object may already be deleted: the reviewed plan still has it.
        let replacing = if action == Action::Replace { change.before.clone() } else { None };
        let mut config = config;
        if let Some(p) = &prior_v {
            ignore_changes(&mut config, p, &r.lifecycle);
        }
        let proposed = propose(&config, prior_v.as_ref(), &t.schema);
        let name = iaddr.to_string();
        let resp = provider
            .plan(kiln_provider::PlanRequest {
                address: &name,
                kind: &r.kind,
                prior: prior_v.as_ref(),
                replacing: replacing.as_ref(),
                config: &config,
                proposed: &proposed,
            })
            .await;
        // What the provider says about this object is redacted with every value it was given.
        let mut secrets =
            crate::redact::secrets([&config, &proposed, &resp.planned].into_iter().chain(prior_v.as_ref()).chain(replacing.as_ref()));
        if let Some(p) = self.cx.values.provider_secrets.get(&t.key) {
            secrets.extend(p);
        }
        if resp.diagnostics.has_errors() {
            self.cx.diags.extend(crate::redact::diags(resp.diagnostics, &secrets).with_address(&name));
            return None;
        }
        let mut planned = resp.planned;
        if let Some(p) = &prior_v {
            ignore_changes(&mut planned, p, &r.lifecycle);
        }
        if let Some(msg) = inconsistent(change.after.as_ref(), &planned) {
            self.cx.diags.push(
                Diagnostic::error("E-APPLY-INCONSISTENT", format!("`{name}`: the final configuration differs from the plan: {msg}"))
                    .address(&name)
                    .hint("something changed since the plan was made: run `kiln plan` again"),
            );
            return None;
        }
        // Marks a provider's plan dropped: the configuration's and the reviewed plan's.
        let mut sensitive = sensitive_attrs(&planned, &t.schema);
        sensitive.extend(sensitive_attrs(&config, &t.schema).into_iter().chain(change.sensitive.iter().cloned()));
        sensitive.sort();
        sensitive.dedup();
        // The provider sees which attributes are sensitive, to keep them out of what it writes.
        let planned = remark(planned, &t.schema, &sensitive);
        let cbd = change.create_before_destroy;
        Some(Operation {
            addr: iaddr.clone(),
            op: if action == Action::Update { Action::Update } else { Action::Create },
            provider_key: t.key.clone(),
            provider,
            kind: r.kind.clone(),
            schema: t.schema.clone(),
            planned,
            sensitive,
            secrets,
            dependencies: change.dependencies.clone(),
            create_before_destroy: cbd,
            prior: prior.map(|p| p.attributes.clone()),
            deposing: if action == Action::Replace && cbd { prior.cloned() } else { None },
            pricing: super::billing::Pricing {
                after: change.cost.as_ref().and_then(|c| c.after.clone()),
                placement: self.plan.placements.iter().find(|p| &p.address == iaddr).cloned(),
                prior: if action == Action::Update { prior.and_then(|p| p.billing.clone()) } else { None },
            },
        })
    }
}

/// A change the plan lists for an instance the configuration no longer has.
pub(crate) fn not_configured(addr: &InstanceAddr) -> Diagnostic {
    Diagnostic::error("E-APPLY-NOT-CONFIGURED", format!("`{addr}` is in the plan but no longer in the configuration"))
        .address(addr)
        .hint("the configuration changed since the plan was made: run `kiln plan` again")
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
