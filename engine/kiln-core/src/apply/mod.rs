//! Apply: runs exactly what a plan lists, concurrently in dependency order, over the apply graph
//! built from the plan's changes (`graph.rs`). Deletes go first (dependents before their
//! dependencies; deposed objects left by earlier applies among them), their providers configured
//! from the configuration evaluated over prior state; then the creates and updates walk
//! (`driver.rs`: each resource starts as soon as everything it references is done, bounded only
//! by each provider's concurrency limit); then the objects deposed by this apply are deleted. A
//! `create_before_destroy` replacement deposes its old object in the same state change that
//! records the new one (or, when the create fails half-way, deposes the new object and keeps the
//! old), so an interrupted or failed apply leaves it in state for the next plan to destroy,
//! never untracked. A pending entry is made durable before every create (`ops.rs`); every
//! completed operation is handed to the [`StateSink`] at once. When one resource fails, its
//! dependents are skipped and independent ones go on. Each provider is configured once per
//! command, in the caller's [`Providers`].

pub(crate) mod billing;
mod driver;
mod graph;
mod ops;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use kiln_config::Config;
use kiln_diag::Diagnostics;
use kiln_plan::Plan;
use kiln_state::{DeposedObject, Mutation, OutputState, State};
use tokio::sync::watch;

use crate::graph::build_graph;
use crate::hooks::Hook;
use crate::providers::{ProviderRegistry, Providers};
use graph::{deposed_delete, ApplyGraph};
use ops::{commit, deposed_key, resource_state, run_deletes, Ops};

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

pub async fn apply(req: ApplyRequest<'_>) -> ApplyOutcome {
    let mut state = req.state.clone();
    let mut diags = Diagnostics::new();
    let (graph, gd) = build_graph(req.config, req.registry);
    diags.extend(gd);
    if diags.has_errors() {
        return ApplyOutcome { state, diagnostics: diags, interrupted: false };
    }
    // Deposed objects from earlier applies: phase 1 destroys those the plan lists.
    let earlier: Vec<String> = state.deposed.keys().cloned().collect();
    let first = adopted(&req, &state);
    if !first.is_empty() {
        commit(&mut state, &req.sink, first, &mut diags).await;
    }
    let apply_graph = ApplyGraph::build(req.plan, &graph, &state);
    let mut ops = Ops::new(req.hook.clone(), req.sink.clone(), req.cancel.clone(), req.parallelism);

    // Phase 1: deletes. Their providers are configured (once for the command) before the walk,
    // from the configuration evaluated over prior state, or with an empty configuration when
    // the configuration no longer mentions them.
    let keys = apply_graph.delete_providers();
    let (delete_providers, d) = crate::walk_state::configure_keys(
        &graph,
        req.config,
        req.registry,
        req.providers,
        &req.plan.variables,
        &req.workspace,
        &req.cwd,
        &state,
        &keys,
    )
    .await;
    diags.extend(d);
    let ApplyGraph { deletes, walk, changed } = apply_graph;
    // A planned create or update of a resource the configuration no longer has is refused.
    let mut unconfigured: Vec<_> = req
        .plan
        .changes
        .iter()
        .filter(|c| changed.contains(&c.address.resource) && !walk.contains(&crate::graph::Node::Resource(c.address.resource.clone())))
        .filter(|c| {
            c.deposed.is_none() && matches!(c.action, kiln_plan::Action::Create | kiln_plan::Action::Update | kiln_plan::Action::Replace)
        })
        .map(|c| driver::not_configured(&c.address))
        .collect();
    unconfigured.sort_by(|a, b| a.address.cmp(&b.address));
    diags.extend(unconfigured);
    let mut interrupted = run_deletes(deletes, &delete_providers, &mut ops, &mut state, &mut diags).await;

    // Phase 2: creates and updates in dependency order.
    let mut driver = driver::Applier::new(&req, &graph, changed, ops);
    if !interrupted {
        interrupted = driver.run(&walk, &mut state, &mut diags).await;
    }
    let (cx, mut ops) = driver.finish();

    // Phase 3: what phase 2 deposed: old objects of create_before_destroy replacements, and new
    // objects whose create failed half-way.
    if !interrupted {
        let deposed = state.deposed.values().filter(|d| !earlier.contains(&d.key)).map(deposed_delete).collect();
        let mut providers = cx.ready.clone();
        providers.extend(delete_providers);
        interrupted = run_deletes(deposed, &providers, &mut ops, &mut state, &mut diags).await;
    }

    if !interrupted {
        let outputs: BTreeMap<String, OutputState> = if req.plan.mode == kiln_plan::Mode::Destroy {
            BTreeMap::new()
        } else if req.plan.mode == kiln_plan::Mode::RefreshOnly {
            refreshed_outputs(req.plan, &state)
        } else {
            // An output still unknown (its resources were left out by --target) keeps its value.
            cx.values
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
    diags.extend(cx.diags);
    let diags = cx.values.redact(diags);
    ApplyOutcome { state, diagnostics: diags, interrupted }
}

/// A refresh-only apply's outputs: as its plan evaluated them over what refresh found; one still
/// unknown there (it refers to an object that is gone or not created yet) keeps its value.
fn refreshed_outputs(plan: &kiln_plan::Plan, state: &State) -> BTreeMap<String, OutputState> {
    plan.outputs
        .iter()
        .filter_map(|(n, o)| match &o.after {
            None => None,
            Some(v) if v.contains_unknown() => state.outputs.get(n).map(|prior| (n.clone(), prior.clone())),
            Some(v) => {
                Some((n.clone(), OutputState { value: v.clone().unmark_deep().0, sensitive: o.sensitive || v.contains_sensitive() }))
            }
        })
        .collect()
}

/// Refresh results and pending creates the plan resolved, which become state first.
fn adopted(req: &ApplyRequest<'_>, state: &State) -> Vec<Mutation> {
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
    // A gone object the plan releases stays: its delete records it as released.
    let released = |a: &kiln_addrs::InstanceAddr| {
        req.plan.changes.iter().any(|c| &c.address == a && matches!(c.reason, Some(kiln_plan::Reason::Released { .. })))
    };
    for d in &req.plan.drift {
        if d.after.is_none() && !released(&d.address) {
            first.push(Mutation::Remove { address: d.address.clone() });
        }
    }
    first
}
