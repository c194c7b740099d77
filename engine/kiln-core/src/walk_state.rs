//! The state-values driver: configures providers for commands that talk to them about objects
//! that exist (`logs`, `jobs`, `apply --wait`, `import`, and apply's deletes), evaluating the
//! configuration with resource values taken from state. Nothing is refreshed or planned.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use kiln_addrs::ResourceAddr;
use kiln_config::Config;
use kiln_diag::Diagnostics;
use kiln_provider::Provider;
use kiln_state::State;
use kiln_value::Value;

use crate::context::{recorded, Context};
use crate::graph::{build_graph, Graph, Node};
use crate::providers::{ProviderRegistry, Providers};

/// What the providers of a configuration and its state are configured from: the configuration
/// evaluated with the given root variables and with resource values taken from state.
pub struct ProvidersRequest<'a> {
    pub config: &'a Config,
    pub state: &'a State,
    pub registry: &'a ProviderRegistry,
    /// The command's providers: what is configured is configured in it, once.
    pub providers: &'a Providers,
    /// Root variable values given by the user (files, flags, environment), before conversion.
    pub variables: BTreeMap<String, Value>,
    /// The selected workspace's name: `kiln.workspace` in expressions.
    pub workspace: String,
    pub cwd: PathBuf,
}

/// Configures (in `req.providers`) every provider the configuration and state use, evaluating
/// the configuration with resource values taken from state (no planning, no refresh). For
/// commands that talk to providers about existing objects: `logs`, `jobs`, waiting for jobs.
pub async fn configure_providers(req: ProvidersRequest<'_>) -> Diagnostics {
    let (graph, diags) = build_graph(req.config, req.registry);
    if diags.has_errors() {
        return diags;
    }
    let Some(order) = graph.deps.topo_order() else {
        return diags;
    };
    let mut cx = Context::new(req.config, req.registry, &graph, req.providers, &req.variables, req.workspace.clone(), req.cwd.clone());
    cx.diags = diags;
    for node in &order {
        visit(&mut cx, req.state, node).await;
    }
    let keys: BTreeSet<&String> = req.state.resources.values().map(|r| &r.provider).collect();
    for k in keys {
        cx.provider(k).await;
    }
    cx.finish()
}

/// Configures the provider `key` (`name` or `name.alias`) in `req.providers`, unless it already
/// is, from its `provider` block evaluated with the root variables (and what the block refers
/// to: locals, resource values from state), or with an empty configuration when there is no
/// block. For `kiln import`.
pub async fn configure_provider(req: ProvidersRequest<'_>, key: &str) -> Result<Arc<dyn Provider>, Diagnostics> {
    if let Some(p) = req.providers.get(key) {
        return Ok(p);
    }
    let (graph, diags) = build_graph(req.config, req.registry);
    if diags.has_errors() {
        return Err(diags);
    }
    let (mut ready, diags) =
        configure_keys(&graph, req.config, req.registry, req.providers, &req.variables, &req.workspace, &req.cwd, req.state, &[key]).await;
    match ready.remove(key) {
        Some(p) if !diags.has_errors() => Ok(p),
        _ => Err(diags),
    }
}

/// Configures the providers `keys` in `providers`, evaluating only what their blocks depend on,
/// with resource values from `state`. The instances, by key, and the diagnostics.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn configure_keys(
    graph: &Graph,
    config: &Config,
    registry: &ProviderRegistry,
    providers: &Providers,
    variables: &BTreeMap<String, Value>,
    workspace: &str,
    cwd: &std::path::Path,
    state: &State,
    keys: &[&str],
) -> (std::collections::HashMap<String, Arc<dyn Provider>>, Diagnostics) {
    let mut cx = Context::new(config, registry, graph, providers, variables, workspace.to_string(), cwd.to_path_buf());
    let unconfigured: Vec<&str> = keys.iter().copied().filter(|k| providers.get(k).is_none()).collect();
    if !unconfigured.is_empty() {
        let Some(order) = graph.deps.topo_order() else {
            let ready = std::mem::take(&mut cx.ready);
            return (ready, cx.finish());
        };
        let targets: Vec<Node> = unconfigured.iter().map(|k| Node::Provider(k.to_string())).collect();
        let needed = dependencies(graph, targets.iter().filter(|t| graph.deps.contains(t)).cloned());
        for node in order.iter().filter(|n| needed.contains(*n) && !targets.contains(*n)) {
            visit(&mut cx, state, node).await;
        }
    }
    for k in keys {
        cx.provider(k).await;
    }
    let ready = std::mem::take(&mut cx.ready);
    (ready, cx.finish())
}

/// Everything `seeds` depend on, directly or not (the seeds too).
pub(crate) fn dependencies(graph: &Graph, seeds: impl IntoIterator<Item = Node>) -> HashSet<Node> {
    let mut seen: HashSet<Node> = HashSet::new();
    let mut stack: Vec<Node> = seeds.into_iter().collect();
    while let Some(n) = stack.pop() {
        if seen.insert(n.clone()) {
            stack.extend(graph.deps.dependencies(&n).into_iter().cloned());
        }
    }
    seen
}

/// One node of the walk: values evaluated, providers configured, resources from state.
async fn visit(cx: &mut Context<'_>, state: &State, node: &Node) {
    match node {
        Node::Provider(key) => {
            cx.provider(key).await;
        }
        Node::Resource(addr) => resource(cx, state, addr),
        _ => cx.value_node(node),
    }
}

/// What references to a resource see: the values state records for its instances.
fn resource(cx: &mut Context<'_>, state: &State, addr: &ResourceAddr) {
    let r = cx.resource(addr);
    let key = cx.graph.provider_of[addr].clone();
    if !cx.ready.contains_key(&key) {
        return;
    }
    let Some(schema) = cx.kind_schema(&key, r) else {
        cx.unknown_kind(&key, r, addr);
        return;
    };
    let Some(keys) = cx.instance_keys(addr) else { return };
    let values = keys.into_iter().map(|(ik, _)| (ik.clone(), recorded(state, &addr.instance(ik), &schema))).collect();
    cx.set_resource(addr, values);
}
