//! Planning: walk the graph in dependency order, configure providers, refresh what state holds
//! in one batched read per provider, evaluate each resource instance and let its provider plan
//! it, then decide the action (create, update in place, replace naming the attributes that force
//! it, delete, no-op). Targets and excludes filter the result.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kiln_addrs::{InstanceAddr, InstanceKey, Mode as AddrMode, ResourceAddr, Target};
use kiln_config::{Config, ModuleNode, Resource};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_eval::eval;
use kiln_plan::{Action, Drift, Mode, OutputChange, PendingResolution, Plan, PlannedChange, Reason};
use kiln_provider::{
    ConfigureRequest, PlanRequest as ProviderPlanRequest, Provider, ReadItem, ReadRequest, RecoverRequest,
    ValidateRequest as ProviderValidateRequest,
};
use kiln_schema::KindSchema;
use kiln_state::{ResourceState, State};
use kiln_value::{convert, Map, Value};
use sha2::Digest;

use crate::graph::{build_graph, Graph, Node};
use crate::hooks::Hook;
use crate::instance::{eval_body, expand};
use crate::providers::{provider_name, ProviderRegistry, Providers};
use crate::scope::{Expansion, ModuleScope, Repetition, Values};

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
    pub hook: &'a dyn Hook,
    pub cwd: PathBuf,
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
    let (graph, mut diags) = build_graph(req.config, req.registry);
    if diags.has_errors() {
        return (None, diags);
    }
    let Some(order) = graph.deps.topo_order() else {
        return (None, diags);
    };
    let mut w = Walker::new(&req, &graph);
    w.diags = diags;
    w.check_root_variables();
    for node in &order {
        w.visit(node).await;
    }
    if w.diags.has_errors() {
        return (None, w.values.redact(w.diags));
    }
    w.resolve_pending().await;
    w.plan_orphans().await;
    let outputs = w.root_outputs();
    let mut changes: Vec<PlannedChange> = std::mem::take(&mut w.changes);
    filter_targets(&mut changes, &req.targets, &req.excludes, &graph, req.mode);
    if !req.targets.is_empty() || !req.excludes.is_empty() {
        w.diags.push(targeting_warning(req.mode));
    }
    w.diags.extend(check_prevent_destroy(&changes, req.config));
    changes.sort_by(|a, b| a.address.cmp(&b.address));
    let mut keys: Vec<&String> = w.ready.keys().collect();
    keys.sort();
    for key in keys {
        let calls = w.ready[key].api_calls();
        if !calls.is_empty() {
            req.hook.api_calls(key, &calls);
        }
    }
    let variables = w.root_var_values();
    diags = w.values.redact(w.diags);
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
        drift: w.drift,
        outputs,
        variables,
        config_digest: config_digest(req.config),
        targets: req.targets.iter().map(ToString::to_string).collect(),
        excludes: req.excludes.iter().map(ToString::to_string).collect(),
        refresh: req.refresh,
        pending: w.pending,
    };
    (Some(plan), diags)
}

/// What [`validate`] checks: the configuration with the given root variables, no state.
pub struct ValidateRequest<'a> {
    pub config: &'a Config,
    pub registry: &'a ProviderRegistry,
    pub providers: &'a Providers,
    pub variables: BTreeMap<String, Value>,
    pub workspace: String,
    pub cwd: PathBuf,
}

/// Validation only (`kiln validate`): every diagnostic of the configuration. Providers are
/// configured and check resource configurations, but are never asked to plan or to read data
/// sources, so nothing reaches a remote API.
pub async fn validate(req: ValidateRequest<'_>) -> Diagnostics {
    let state = State::default();
    let preq = PlanRequest {
        config: req.config,
        state: &state,
        registry: req.registry,
        providers: req.providers,
        variables: req.variables,
        mode: Mode::Normal,
        refresh: false,
        workspace: req.workspace,
        targets: Vec::new(),
        excludes: Vec::new(),
        hook: &crate::hooks::NoopHook,
        cwd: req.cwd,
    };
    let (graph, diags) = build_graph(preq.config, preq.registry);
    if diags.has_errors() {
        return diags;
    }
    let Some(order) = graph.deps.topo_order() else {
        return diags;
    };
    let mut w = Walker::new(&preq, &graph);
    w.offline = true;
    w.diags = diags;
    w.check_root_variables();
    for node in &order {
        w.visit(node).await;
    }
    w.values.redact(w.diags)
}

/// What the providers of a configuration and its state are configured from: the configuration
/// evaluated with the given root variables and with resource values taken from state.
pub struct ProvidersRequest<'a> {
    pub config: &'a Config,
    pub state: &'a State,
    pub registry: &'a ProviderRegistry,
    pub providers: &'a Providers,
    /// Root variable values given by the user (files, flags, environment), before conversion.
    pub variables: BTreeMap<String, Value>,
    pub workspace: String,
    pub cwd: PathBuf,
}

impl<'a> ProvidersRequest<'a> {
    fn plan_request(&self) -> PlanRequest<'a> {
        PlanRequest {
            config: self.config,
            state: self.state,
            registry: self.registry,
            providers: self.providers,
            variables: self.variables.clone(),
            mode: Mode::Normal,
            refresh: false,
            workspace: self.workspace.clone(),
            targets: Vec::new(),
            excludes: Vec::new(),
            hook: &crate::hooks::NoopHook,
            cwd: self.cwd.clone(),
        }
    }
}

/// Configures (in `req.providers`) every provider the configuration and state use, evaluating
/// the configuration with resource values taken from state (no planning, no refresh). For
/// commands that talk to providers about existing objects: `logs`, `jobs`, waiting for jobs.
pub async fn configure_providers(req: ProvidersRequest<'_>) -> Diagnostics {
    let preq = req.plan_request();
    let (graph, diags) = build_graph(preq.config, preq.registry);
    if diags.has_errors() {
        return diags;
    }
    let Some(order) = graph.deps.topo_order() else {
        return diags;
    };
    let mut w = Walker::new(&preq, &graph);
    w.diags = diags;
    w.recover_pending = false;
    w.state_values_only = true;
    for node in &order {
        w.visit(node).await;
    }
    let keys: BTreeSet<String> = req.state.resources.values().map(|r| r.provider.clone()).collect();
    for k in keys {
        w.ensure_provider(&k).await;
    }
    w.values.redact(w.diags)
}

/// Configures the provider `key` (`name` or `name.alias`) in `req.providers`, unless it already
/// is, from its `provider` block evaluated with the root variables (and what the block refers
/// to: locals, resource values from state), or with an empty configuration when there is no
/// block. For `kiln import`.
pub async fn configure_provider(req: ProvidersRequest<'_>, key: &str) -> Result<Arc<dyn Provider>, Diagnostics> {
    if let Some(p) = req.providers.get(key) {
        return Ok(p);
    }
    let preq = req.plan_request();
    let (graph, diags) = build_graph(preq.config, preq.registry);
    if diags.has_errors() {
        return Err(diags);
    }
    let Some(order) = graph.deps.topo_order() else {
        return Err(diags);
    };
    // Only what the provider's block refers to is evaluated.
    let target = Node::Provider(key.to_string());
    let mut needed: HashSet<Node> = HashSet::new();
    let mut stack = vec![target.clone()];
    while let Some(n) = stack.pop() {
        if needed.insert(n.clone()) {
            stack.extend(graph.deps.dependencies(&n).into_iter().cloned());
        }
    }
    let mut w = Walker::new(&preq, &graph);
    w.diags = diags;
    w.recover_pending = false;
    w.state_values_only = true;
    for node in order.iter().filter(|n| needed.contains(*n) && **n != target) {
        w.visit(node).await;
    }
    let p = w.ensure_provider(key).await;
    let diags = w.values.redact(w.diags);
    match p {
        Some(p) if !diags.has_errors() => Ok(p),
        _ => Err(diags),
    }
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

pub(crate) struct Walker<'a> {
    pub config: &'a Config,
    pub state: &'a State,
    pub registry: &'a ProviderRegistry,
    pub graph: &'a Graph,
    pub inputs: &'a BTreeMap<String, Value>,
    pub mode: Mode,
    pub refresh: bool,
    pub offline: bool,
    pub hook: &'a dyn Hook,
    pub cwd: PathBuf,
    pub values: Values,
    /// The command's providers, shared with its other walks.
    pub providers: &'a Providers,
    /// The providers this walk has set up (configured or taken from `providers`, refreshed).
    pub ready: HashMap<String, Arc<dyn Provider>>,
    pub diags: Diagnostics,
    /// State after refresh (and adoption of pending creates): `None` = object gone.
    pub refreshed: HashMap<InstanceAddr, Option<Value>>,
    pub changes: Vec<PlannedChange>,
    pub drift: Vec<Drift>,
    pub pending: Vec<PendingResolution>,
    pub visited: HashSet<InstanceAddr>,
    /// Instances of each resource, for dependency lists.
    pub instances: HashMap<ResourceAddr, Vec<InstanceAddr>>,
    /// Resources whose planning failed: their dependents are not planned.
    pub failed: HashSet<ResourceAddr>,
    /// Ask providers about pending creates (plan does; apply uses the plan's answers).
    pub recover_pending: bool,
    /// Resources take their values from state instead of being planned.
    pub state_values_only: bool,
}

impl<'a> Walker<'a> {
    pub fn new(req: &'a PlanRequest<'a>, graph: &'a Graph) -> Self {
        Walker {
            config: req.config,
            state: req.state,
            registry: req.registry,
            graph,
            inputs: &req.variables,
            mode: req.mode,
            refresh: req.refresh,
            offline: false,
            hook: req.hook,
            cwd: req.cwd.clone(),
            values: Values {
                root_dir: req.config.root.module.dir.clone(),
                cwd: req.cwd.clone(),
                workspace: req.workspace.clone(),
                ..Values::default()
            },
            providers: req.providers,
            ready: HashMap::new(),
            diags: Diagnostics::new(),
            refreshed: HashMap::new(),
            changes: Vec::new(),
            drift: Vec::new(),
            pending: Vec::new(),
            visited: HashSet::new(),
            instances: HashMap::new(),
            failed: HashSet::new(),
            recover_pending: true,
            state_values_only: false,
        }
    }

    fn module(&self, path: &[String]) -> &'a ModuleNode {
        self.config.root.find(path).expect("graph nodes come from the configuration")
    }

    fn scope<'s>(&'s self, path: &'s [String], rep: Repetition) -> ModuleScope<'s> {
        let dir = &self.module(path).module.dir;
        ModuleScope { values: &self.values, module: path, dir, rep }
    }

    pub fn check_root_variables(&mut self) {
        for name in self.inputs.keys() {
            if !self.config.root.module.variables.contains_key(name) {
                self.diags.push(
                    Diagnostic::warning("W-VAR-UNDECLARED", format!("a value was given for undeclared variable `{name}`"))
                        .hint(format!("declare `variable \"{name}\" {{}}` or remove the value")),
                );
            }
        }
    }

    pub fn root_var_values(&self) -> BTreeMap<String, Value> {
        self.values.vars.iter().filter(|((m, _), _)| m.is_empty()).map(|((_, n), v)| (n.clone(), v.clone())).collect()
    }

    pub async fn visit(&mut self, node: &Node) {
        match node {
            Node::Var { module, name } => self.variable(module, name),
            Node::Local { module, name } => {
                let m = self.module(module);
                let expr = &m.module.locals[name].expr;
                let r = eval(expr, &self.scope(module, Repetition::None));
                let v = self.take(r, &format!("local.{name}"));
                self.values.locals.insert((module.clone(), name.clone()), v);
            }
            Node::Output { module, name } => {
                let m = self.module(module);
                let o = &m.module.outputs[name];
                let r = eval(&o.value, &self.scope(module, Repetition::None));
                let v = self.take(r, &format!("output.{name}"));
                if v.contains_sensitive() && !o.sensitive && module.is_empty() {
                    self.diags.push(
                        Diagnostic::error("E-OUTPUT-SENSITIVE", format!("output `{name}` refers to sensitive values"))
                            .at(o.span.clone(), "this output")
                            .hint("add `sensitive = true` to the output to confirm it may hold secrets"),
                    );
                }
                self.values.outputs.insert((module.clone(), name.clone()), v.mark_if(o.sensitive));
            }
            Node::Provider(key) => self.provider(key).await,
            Node::Resource(addr) => self.resource(addr).await,
        }
    }

    fn take(&mut self, r: Result<Value, Diagnostics>, addr: &str) -> Value {
        match r {
            Ok(v) => v,
            Err(d) => {
                self.diags.extend(d.with_address(addr));
                Value::Unknown
            }
        }
    }

    fn variable(&mut self, module: &[String], name: &str) {
        let m = self.module(module);
        let v = &m.module.variables[name];
        let addr = format!("var.{name}");
        let raw = if module.is_empty() {
            match self.inputs.get(name) {
                Some(x) => Some(Ok(x.clone())),
                None => v.default.as_ref().map(|d| eval(d, &self.scope(module, Repetition::None))),
            }
        } else {
            let parent_path = &module[..module.len() - 1];
            let parent = self.module(parent_path);
            let call = &parent.module.module_calls[module.last().expect("child module")];
            match call.inputs.get(name) {
                Some(a) => Some(eval(&a.expr, &self.scope(parent_path, Repetition::None))),
                None => v.default.as_ref().map(|d| eval(d, &self.scope(module, Repetition::None))),
            }
        };
        let Some(raw) = raw else {
            self.diags.push(
                Diagnostic::error("E-VAR-MISSING", format!("no value for required variable `{name}`"))
                    .at(v.span.clone(), "declared here without a default")
                    .address(&addr)
                    .hint(format!("pass --var {name}=VALUE, set KILN_VAR_{name}, or add it to a *.auto.kilnvars file")),
            );
            return;
        };
        let raw = self.take(raw, &addr);
        let value = match convert(raw, &v.ty) {
            Ok(x) if x.is_null() && !v.nullable => {
                self.diags.push(
                    Diagnostic::error("E-VAR-NULL", format!("variable `{name}` must not be null"))
                        .at(v.span.clone(), "declared nullable = false")
                        .address(&addr),
                );
                x
            }
            Ok(x) => x,
            Err(e) => {
                // The conversion error quotes the value: not for a sensitive variable.
                let why = if v.sensitive { format!("the (sensitive) value is not a {}", v.ty) } else { e.to_string() };
                self.diags.push(
                    Diagnostic::error("E-VAR-TYPE", format!("invalid value for variable `{name}`: {why}"))
                        .at(v.span.clone(), "declared here")
                        .address(&addr)
                        .hint(format!("the variable's type is {}", v.ty)),
                );
                Value::Unknown
            }
        };
        let value = value.mark_if(v.sensitive);
        self.values.vars.insert((module.to_vec(), name.to_string()), value);
        for val in &v.validations {
            let scope = self.scope(module, Repetition::None);
            let ok = eval(&val.condition, &scope);
            let msg = eval(&val.error_message, &scope);
            match ok {
                Ok(c) if c.as_bool() == Some(false) => {
                    let message = match msg {
                        Ok(m) if m.contains_sensitive() => {
                            "validation failed (the message is hidden: it refers to sensitive values)".into()
                        }
                        m => m.ok().and_then(|m| m.as_str().map(str::to_string)).unwrap_or_else(|| "validation failed".into()),
                    };
                    self.diags.push(
                        Diagnostic::error("E-VAR-INVALID", format!("invalid value for variable `{name}`: {message}"))
                            .at(val.span.clone(), "this validation failed")
                            .address(&addr)
                            .hint("pass a value that satisfies the condition"),
                    );
                }
                Ok(_) => {}
                Err(d) => self.diags.extend(d.with_address(&addr)),
            }
        }
    }

    async fn provider(&mut self, key: &str) {
        // Configured earlier in this command (by an earlier plan or walk): set up, not again.
        if let Some(c) = self.providers.configured(key) {
            self.provider_ready(key, c).await;
            return;
        }
        let name = provider_name(key);
        let Some(factory) = self.registry.get(name).cloned() else {
            self.diags.push(
                Diagnostic::error("E-PROVIDER-UNKNOWN", format!("provider `{name}` is not available in this build of kiln"))
                    .hint(format!("available providers: {}", self.registry.names().collect::<Vec<_>>().join(", "))),
            );
            return;
        };
        let block = self.config.root.module.providers.iter().find(|p| p.key() == key);
        let config = match block {
            Some(b) => {
                let schema = factory.schema();
                let r = eval_body(&b.body, &schema.config, &self.scope(&[], Repetition::None), &b.span);
                self.take(r, &format!("provider[\"{key}\"]"))
            }
            None => Value::Map(Map::new()),
        };
        if config.contains_unknown() {
            self.diags.push(
                Diagnostic::error(
                    "E-PROVIDER-UNKNOWN-CONFIG",
                    format!("provider `{key}` configuration depends on values known only after apply"),
                )
                .hint("use variables or locals known at plan time in provider blocks"),
            );
            return;
        }
        // A provider's complaint about its configuration never quotes a sensitive setting.
        let secrets = crate::redact::secrets([&config]);
        let request = ConfigureRequest { config: config.unmark_deep().0, working_dir: self.cwd.clone() };
        let configure = || async {
            let instance = factory.configure(request).await?;
            Ok(crate::providers::Configured { instance, secrets: secrets.clone() })
        };
        match self.providers.get_or_configure(key, configure).await {
            Ok(c) => self.provider_ready(key, c).await,
            Err(d) => {
                // The provider names the attribute; the block says where it is written.
                let d = match block {
                    Some(b) => d.into_iter().map(|d| crate::providers::locate_config(d, &b.body, &b.span)).collect(),
                    None => d,
                };
                self.diags.extend(crate::redact::diags(d, &secrets).with_address(&format!("provider[\"{key}\"]")))
            }
        }
    }

    /// A configured provider joins this walk: its secrets redact, it is refreshed (when the plan
    /// refreshes) and asked about the creates an interrupted apply left pending with it.
    async fn provider_ready(&mut self, key: &str, c: crate::providers::Configured) {
        self.values.provider_secrets.insert(key.to_string(), c.secrets);
        let p = c.instance;
        self.ready.insert(key.to_string(), p.clone());
        self.refresh_provider(key, p.clone()).await;
        if self.recover_pending {
            self.resolve_pending_for(key, p.as_ref()).await;
        }
    }

    /// One batched read of every object in state that this provider manages.
    async fn refresh_provider(&mut self, key: &str, p: Arc<dyn Provider>) {
        let items: Vec<(&InstanceAddr, &ResourceState)> = self.state.resources.iter().filter(|(_, r)| r.provider == key).collect();
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
            self.diags.push(Diagnostic::error(
                "E-PROVIDER-BUG",
                format!("provider `{key}` answered {} of {} reads", resp.results.len(), items.len()),
            ));
            return;
        }
        for ((addr, r), res) in items.into_iter().zip(resp.results) {
            if res.diagnostics.has_errors() {
                let secrets = crate::redact::secrets_named(Some(&r.attributes), &r.sensitive);
                self.diags.extend(crate::redact::diags(res.diagnostics, &secrets).with_address(&addr.to_string()));
                continue;
            }
            // Only what changed is kept: lookups fall back to state (10,000 copies add up).
            if !res.state.as_ref().is_some_and(|s| s.unmarked_eq(&r.attributes)) {
                self.drift.push(Drift {
                    address: addr.clone(),
                    before: r.attributes.clone(),
                    after: res.state.clone(),
                    sensitive: r.sensitive.clone(),
                });
                self.refreshed.insert(addr.clone(), res.state);
            }
        }
    }

    fn provider_for(&self, key: &str) -> Option<Arc<dyn Provider>> {
        self.ready.get(key).cloned()
    }

    /// Configures a provider that the configuration no longer mentions (for orphans).
    pub async fn ensure_provider(&mut self, key: &str) -> Option<Arc<dyn Provider>> {
        if let Some(p) = self.provider_for(key) {
            return Some(p);
        }
        self.provider(key).await;
        self.provider_for(key)
    }

    fn kind_schema(&self, key: &str, r: &Resource) -> Option<KindSchema> {
        let schema = self.registry.schema(provider_name(key))?;
        let kinds = if r.mode == AddrMode::Data { &schema.data_kinds } else { &schema.kinds };
        kinds.get(&r.kind).cloned()
    }

    async fn resource(&mut self, addr: &ResourceAddr) {
        let m = self.module(&addr.module);
        let r = m.module.resource(addr.mode, &addr.kind, &addr.name).expect("resource node");
        let key = self.graph.provider_of[addr].clone();
        let deps = self.resource_dependencies(addr);
        if deps.iter().any(|d| self.failed.contains(&d.resource)) {
            self.failed.insert(addr.clone());
            return;
        }
        let Some(provider) = self.provider_for(&key) else {
            self.failed.insert(addr.clone());
            return;
        };
        let Some(schema) = self.kind_schema(&key, r) else {
            let kinds: Vec<String> =
                self.registry.schema(provider_name(&key)).map(|s| s.kinds.keys().cloned().collect()).unwrap_or_default();
            self.diags.push(
                Diagnostic::error("E-KIND-UNKNOWN", format!("provider `{key}` has no kind `{}`", r.kind))
                    .at(r.span.clone(), "declared here")
                    .address(addr)
                    .hint(format!("kinds of `{key}`: {}; or choose another provider with `provider = NAME`", kinds.join(", "))),
            );
            self.failed.insert(addr.clone());
            return;
        };
        let keys = match expand(r, addr, &self.scope(&addr.module, Repetition::None))
            .and_then(|k| crate::instance::check_total(self.visited.len(), k.len(), r, addr).map(|_| k))
        {
            Ok(k) => k,
            Err(d) => {
                self.diags.extend(d);
                self.failed.insert(addr.clone());
                return;
            }
        };
        let mut list = Vec::new();
        let mut map = BTreeMap::new();
        let mut insts = Vec::new();
        let mut failed = false;
        for (ik, rep) in keys {
            let iaddr = addr.instance(ik.clone());
            self.visited.insert(iaddr.clone());
            insts.push(iaddr.clone());
            let value = if self.mode == Mode::Destroy || self.state_values_only {
                let recorded = self.state.resources.get(&iaddr).map(|s| s.sensitive.clone()).unwrap_or_default();
                let v = self
                    .refreshed
                    .get(&iaddr)
                    .cloned()
                    .flatten()
                    .or_else(|| self.state.resources.get(&iaddr).map(|s| s.attributes.clone()))
                    .unwrap_or(Value::Unknown);
                // References see the marks state recorded and the schema declares.
                remark(v, &schema, &recorded)
            } else {
                match self.plan_instance(r, &iaddr, rep.clone(), &schema, &key, provider.as_ref(), &deps).await {
                    Some(v) => v,
                    None => {
                        failed = true;
                        Value::Unknown
                    }
                }
            };
            match (&ik, rep) {
                (InstanceKey::Int(_), _) => list.push(value),
                (InstanceKey::Str(k), _) => {
                    map.insert(k.clone(), value);
                }
                (InstanceKey::None, _) => {
                    self.values.resources.insert(addr.clone(), Expansion::Single(value));
                }
            }
        }
        if r.count.is_some() {
            self.values.resources.insert(addr.clone(), Expansion::Count(list));
        } else if r.for_each.is_some() {
            self.values.resources.insert(addr.clone(), Expansion::ForEach(map));
        }
        self.instances.insert(addr.clone(), insts);
        if failed {
            self.failed.insert(addr.clone());
        }
    }

    /// Resources this one depends on, through locals, variables and outputs.
    fn resource_dependencies(&self, addr: &ResourceAddr) -> Vec<InstanceAddr> {
        let mut seen = HashSet::new();
        let mut stack: Vec<Node> = self.graph.deps.dependencies(&Node::Resource(addr.clone())).into_iter().cloned().collect();
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
                _ => stack.extend(self.graph.deps.dependencies(&n).into_iter().cloned()),
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
        let config = match eval_body(&r.body, &schema.body, &self.scope(&iaddr.resource.module, rep), &r.span) {
            Ok(v) => v,
            Err(d) => {
                self.diags.extend(d.with_address(&addr_s));
                return None;
            }
        };
        if r.mode == AddrMode::Data {
            return self.read_data(r, iaddr, &config, provider).await;
        }
        let vd = provider.validate(ProviderValidateRequest { kind: &r.kind, config: &config });
        let vd = crate::redact::diags(vd, &crate::redact::secrets([&config]));
        let vd_err = vd.has_errors();
        self.diags.extend(vd.into_iter().map(|d| crate::instance::locate(d, r).or_at(Some(r.span.clone())).or_address(&addr_s)));
        if vd_err {
            return None;
        }
        let prior_state = self.state.resources.get(iaddr);
        let prior: Option<Value> = match self.refreshed.get(iaddr) {
            Some(v) => v.clone(),
            None => prior_state.map(|s| s.attributes.clone()),
        };
        let prior = prior.map(|p| remark(p, schema, prior_state.map(|s| s.sensitive.as_slice()).unwrap_or(&[])));
        let tainted = prior_state.is_some_and(|s| s.tainted) && prior.is_some();
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
                if tainted {
                    let fresh = self.provider_plan(provider, &addr_s, &r.kind, None, Some(p), &config, schema).await?.0;
                    (Action::Replace, Some(Reason::Tainted), fresh)
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
        // Values the provider copied from a sensitive setting of its own are sensitive too.
        let after = match self.values.provider_secrets.get(key) {
            Some(s) => s.mark(after),
            None => after,
        };
        // Marks a provider dropped come back: the schema's, the configuration's and the prior's.
        let mut sensitive = sensitive_attrs(&after, schema);
        sensitive.extend(sensitive_attrs(&config, schema));
        sensitive.extend(prior.as_ref().map(|p| sensitive_attrs(p, schema)).unwrap_or_default());
        sensitive.sort();
        sensitive.dedup();
        let after = remark(after, schema, &sensitive);
        self.changes.push(PlannedChange {
            address: iaddr.clone(),
            provider: key.to_string(),
            kind: r.kind.clone(),
            action,
            before: prior.clone(),
            after: Some(after.clone()),
            reason,
            create_before_destroy: r.lifecycle.create_before_destroy,
            sensitive,
            dependencies: deps.to_vec(),
            deposed: None,
        });
        Some(after)
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
        if self.offline {
            return Some((proposed, Vec::new()));
        }
        let resp = provider.plan(ProviderPlanRequest { address: addr, kind, prior, replacing, config, proposed: &proposed }).await;
        let err = resp.diagnostics.has_errors();
        let secrets = crate::redact::secrets([config, &proposed].into_iter().chain(prior).chain(replacing));
        self.diags.extend(crate::redact::diags(resp.diagnostics, &secrets).with_address(addr));
        if err {
            return None;
        }
        Some((resp.planned, resp.requires_replace))
    }

    async fn read_data(&mut self, r: &Resource, iaddr: &InstanceAddr, config: &Value, provider: &dyn Provider) -> Option<Value> {
        if config.contains_unknown() || self.offline {
            return Some(Value::Unknown);
        }
        let res = provider.read_data(kiln_provider::ReadDataRequest { kind: &r.kind, config }).await;
        let err = res.diagnostics.has_errors();
        self.diags.extend(
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
                    },
                ))
            })
            .collect();
        orphans.extend(adopted);
        // An adopted object displaces what state holds at its address: the old half of a
        // create_before_destroy replacement interrupted before it was deposed. It is deposed
        // now (apply does so under this key) and destroyed, as the interrupted apply would have.
        let displaced: Vec<PlannedChange> = self
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
            })
            .collect();
        self.changes.extend(displaced);
        for (addr, rs) in orphans {
            if self.ensure_provider(&rs.provider).await.is_none() {
                continue;
            }
            let before = match self.refreshed.get(&addr) {
                Some(Some(v)) => v.clone(),
                Some(None) => continue, // already gone: refresh dropped it
                None => rs.attributes.clone(),
            };
            let declared = self
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
            });
        }
        if self.mode == Mode::Destroy {
            self.changes.retain(|c| c.action == Action::Delete);
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
            stack.extend(self.graph.deps.dependencies(&n).into_iter().cloned());
        }
        self.state.resources.keys().filter(|a| resources.contains(&a.resource)).cloned().collect()
    }

    /// Looks up the creates an interrupted apply left pending with this provider. An object
    /// found is adopted: it becomes the prior state of its address.
    async fn resolve_pending_for(&mut self, key: &str, provider: &dyn Provider) {
        for p in self.state.pending.values().filter(|p| p.provider == key) {
            if self.pending.iter().any(|r| r.token == p.token) {
                continue;
            }
            let addr = p.address.to_string();
            let res = provider.recover(RecoverRequest { address: &addr, kind: &p.kind, token: &p.token, planned: &p.planned }).await;
            self.diags.extend(res.diagnostics.with_address(&addr));
            if let Some(v) = &res.state {
                self.refreshed.insert(p.address.clone(), Some(v.clone()));
            }
            self.pending.push(PendingResolution {
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
        for name in self.config.root.module.outputs.keys() {
            let after = self.values.outputs.get(&(Vec::new(), name.clone())).cloned();
            let before = self.state.outputs.get(name).map(|o| o.value.clone().mark_if(o.sensitive));
            let sensitive = self.config.root.module.outputs[name].sensitive;
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

/// Config with computed attributes filled from prior state, or unknown when there is none.
pub(crate) fn propose(config: &Value, prior: Option<&Value>, schema: &KindSchema) -> Value {
    let mut m = config.as_map().cloned().unwrap_or_default();
    for (name, a) in &schema.body.attributes {
        if a.computed && m.get(name).is_none_or(Value::is_null) {
            let v = prior.and_then(|p| p.get(name)).cloned().unwrap_or(Value::Unknown);
            m.insert(name.clone(), v);
        }
    }
    Value::Map(m)
}

/// `lifecycle.ignore_changes`: keeps the prior value of ignored attributes.
pub(crate) fn ignore_changes(planned: &mut Value, prior: &Value, l: &kiln_config::Lifecycle) {
    let (Value::Map(m), Some(p)) = (planned, prior.as_map()) else { return };
    for (k, v) in m.iter_mut() {
        if l.ignore_all_changes || l.ignore_changes.contains(k) {
            if let Some(pv) = p.get(k) {
                *v = pv.clone();
            }
        }
    }
}

/// Re-applies the sensitive marks state recorded.
pub(crate) fn remark(v: Value, schema: &KindSchema, recorded: &[String]) -> Value {
    match v {
        Value::Map(m) => Value::Map(
            m.into_iter()
                .map(|(k, v)| {
                    let s = recorded.contains(&k) || schema.body.attributes.get(&k).is_some_and(|a| a.sensitive);
                    (k, v.mark_if(s))
                })
                .collect(),
        ),
        v => v,
    }
}

pub(crate) fn sensitive_attrs(v: &Value, schema: &KindSchema) -> Vec<String> {
    v.as_map()
        .map(|m| {
            m.iter()
                .filter(|(k, v)| v.contains_sensitive() || schema.body.attributes.get(*k).is_some_and(|a| a.sensitive))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Top-level attributes whose values differ (unknown counts as different).
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
