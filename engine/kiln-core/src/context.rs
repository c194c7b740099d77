//! The evaluation context every walk shares: the configuration and its graph, the values
//! computed so far (variables, locals, outputs, resources) and the scope expressions read them
//! through, provider blocks evaluated and configured (once per command, in the caller's
//! [`Providers`]), and the diagnostics. The drivers (`plan.rs`, `validate.rs`, `walk_state.rs`,
//! `apply/`) decide what a resource node means; the context evaluates.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use kiln_addrs::{InstanceAddr, InstanceKey, Mode as AddrMode, ResourceAddr};
use kiln_config::{Config, ModuleNode, Resource};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_eval::eval;
use kiln_provider::{ConfigureRequest, Provider};
use kiln_schema::KindSchema;
use kiln_state::State;
use kiln_value::{Map, Value};

use crate::graph::{Graph, Node};
use crate::instance::{eval_body, expand};
use crate::providers::{provider_name, Configured, ProviderRegistry, Providers};
use crate::scope::{Expansion, ModuleScope, Repetition, Values};

pub(crate) struct Context<'a> {
    pub config: &'a Config,
    pub registry: &'a ProviderRegistry,
    pub graph: &'a Graph,
    /// The command's providers, shared with its other walks.
    pub providers: &'a Providers,
    /// Root variable values as given, before conversion.
    pub inputs: &'a BTreeMap<String, Value>,
    pub cwd: PathBuf,
    pub values: Values,
    pub diags: Diagnostics,
    /// The providers this walk has taken from `providers` (configuring them when needed).
    pub ready: HashMap<String, Arc<dyn Provider>>,
    /// Placed instances' decisions: their configuration is the placed body with the decision's
    /// values (`crate::placement`).
    pub placed: HashMap<InstanceAddr, crate::placement::Chosen>,
}

impl<'a> Context<'a> {
    pub fn new(
        config: &'a Config,
        registry: &'a ProviderRegistry,
        graph: &'a Graph,
        providers: &'a Providers,
        inputs: &'a BTreeMap<String, Value>,
        workspace: String,
        cwd: PathBuf,
    ) -> Self {
        Context {
            config,
            registry,
            graph,
            providers,
            inputs,
            values: Values { root_dir: config.root.module.dir.clone(), cwd: cwd.clone(), workspace, ..Values::default() },
            cwd,
            diags: Diagnostics::new(),
            ready: HashMap::new(),
            placed: HashMap::new(),
        }
    }

    /// The diagnostics, redacted with every sensitive value the walk knows.
    pub fn finish(self) -> Diagnostics {
        self.values.redact(self.diags)
    }

    pub fn module(&self, path: &[String]) -> &'a ModuleNode {
        self.config.root.find(path).expect("graph nodes come from the configuration")
    }

    /// The block of a resource node.
    pub fn resource(&self, addr: &ResourceAddr) -> &'a Resource {
        self.module(&addr.module).module.resource(addr.mode, &addr.kind, &addr.name).expect("resource node")
    }

    pub fn scope<'s>(&'s self, path: &'s [String], rep: Repetition) -> ModuleScope<'s> {
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

    /// Evaluates a variable, local or output node (provider and resource nodes are the
    /// drivers').
    pub fn value_node(&mut self, node: &Node) {
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
            Node::Provider(_) | Node::Resource(_) => {}
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
        let (value, refused) = v.accept(raw);
        if let Some(d) = refused {
            self.diags.push(d);
        }
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

    /// The provider `key` for this walk: taken from the command's providers, or configured
    /// there (once per command) from its `provider` block evaluated with the values computed so
    /// far, or from an empty configuration when there is no block.
    pub async fn provider(&mut self, key: &str) -> Option<Arc<dyn Provider>> {
        if let Some(p) = self.ready.get(key) {
            return Some(p.clone());
        }
        if let Some(c) = self.providers.configured(key) {
            return Some(self.join(key, c));
        }
        let name = provider_name(key);
        let Some(factory) = self.registry.get(name).cloned() else {
            self.diags.push(
                Diagnostic::error("E-PROVIDER-UNKNOWN", format!("provider `{name}` is not available in this build of kiln"))
                    .hint(format!("available providers: {}", self.registry.names().collect::<Vec<_>>().join(", "))),
            );
            return None;
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
            return None;
        }
        // A provider's complaint about its configuration never quotes a sensitive setting.
        let secrets = crate::redact::secrets([&config]);
        let request = ConfigureRequest { config: config.unmark_deep().0, working_dir: self.cwd.clone() };
        let configure = || async {
            let instance = factory.configure(request).await?;
            Ok(Configured { instance, secrets: secrets.clone() })
        };
        match self.providers.get_or_configure(key, configure).await {
            Ok(c) => Some(self.join(key, c)),
            Err(d) => {
                // The provider names the attribute; the block says where it is written.
                let d = match block {
                    Some(b) => d.into_iter().map(|d| crate::providers::locate_config(d, &b.body, &b.span)).collect(),
                    None => d,
                };
                self.diags.extend(crate::redact::diags(d, &secrets).with_address(&format!("provider[\"{key}\"]")));
                None
            }
        }
    }

    /// A configured provider joins this walk: its settings' secrets redact what is said.
    fn join(&mut self, key: &str, c: Configured) -> Arc<dyn Provider> {
        self.values.provider_secrets.insert(key.to_string(), c.secrets);
        self.ready.insert(key.to_string(), c.instance.clone());
        c.instance
    }

    /// The schema of a resource's kind at its provider.
    pub fn kind_schema(&self, key: &str, r: &Resource) -> Option<KindSchema> {
        self.kind_schema_ref(key, r).cloned()
    }

    /// [`Context::kind_schema`], borrowed.
    pub fn kind_schema_ref(&self, key: &str, r: &Resource) -> Option<&KindSchema> {
        let schema = self.registry.schema(provider_name(key))?;
        let kinds = if r.mode == AddrMode::Data { &schema.data_kinds } else { &schema.kinds };
        kinds.get(&r.kind)
    }

    /// "provider X has no kind Y", at the block.
    pub fn unknown_kind(&mut self, key: &str, r: &Resource, addr: &ResourceAddr) {
        let kinds: Vec<String> = self.registry.schema(provider_name(key)).map(|s| s.kinds.keys().cloned().collect()).unwrap_or_default();
        self.diags.push(
            Diagnostic::error("E-KIND-UNKNOWN", format!("provider `{key}` has no kind `{}`", r.kind))
                .at(r.span.clone(), "declared here")
                .address(addr)
                .hint(format!("kinds of `{key}`: {}; or choose another provider with `provider = NAME`", kinds.join(", "))),
        );
    }

    /// A resource's instance keys (`count`/`for_each`), with what each sees as `count.index` or
    /// `each`; `None` (reported) when they cannot be known.
    pub fn instance_keys(&mut self, addr: &ResourceAddr) -> Option<Vec<(InstanceKey, Repetition)>> {
        let r = self.resource(addr);
        match expand(r, addr, &self.scope(&addr.module, Repetition::None)) {
            Ok(k) => Some(k),
            Err(d) => {
                self.diags.extend(d);
                None
            }
        }
    }

    /// An instance's configuration evaluated against its kind's schema; `None` (reported) on
    /// errors.
    pub fn instance_config(&mut self, iaddr: &InstanceAddr, rep: Repetition, schema: &KindSchema) -> Option<Value> {
        let r = self.resource(&iaddr.resource);
        let placed = self.placed.get(iaddr);
        let part = match placed {
            Some(_) => crate::placement::PROVIDER_PART,
            // A job's `data` blocks are the engine's (placement's): its provider never sees them.
            None if crate::placement::data::has_data(r) => crate::placement::data::PROVIDER_PART,
            None => crate::instance::Part::ALL,
        };
        match crate::instance::eval_part(&r.body, part, &schema.body, &self.scope(&iaddr.resource.module, rep), &r.span) {
            Ok(mut v) => {
                if let Some(c) = placed {
                    crate::placement::apply_choice(&mut v, &c.meta, &c.choice.offering, &c.choice.fallbacks, schema);
                }
                Some(v)
            }
            Err(d) => {
                self.diags.extend(d.with_address(&iaddr.to_string()));
                None
            }
        }
    }

    /// The provider's own checks of an instance's configuration, reported at the attributes
    /// they name. Whether it passed.
    pub fn validate_instance(&mut self, r: &Resource, iaddr: &InstanceAddr, provider: &dyn Provider, config: &Value) -> bool {
        let vd = provider.validate(kiln_provider::ValidateRequest { kind: &r.kind, config });
        let vd = crate::redact::diags(vd, &crate::redact::secrets([config]));
        let ok = !vd.has_errors();
        let addr = iaddr.to_string();
        self.diags.extend(vd.into_iter().map(|d| crate::instance::locate(d, r).or_at(Some(r.span.clone())).or_address(&addr)));
        ok
    }

    /// Sets what references to a resource see, one value per instance, in the shape its block
    /// declares (single, `count` list, `for_each` map).
    pub fn set_resource(&mut self, addr: &ResourceAddr, instances: Vec<(InstanceKey, Value)>) {
        let r = self.resource(addr);
        let e = if r.count.is_some() {
            Expansion::Count(instances.into_iter().map(|(_, v)| v).collect())
        } else if r.for_each.is_some() {
            Expansion::ForEach(
                instances.into_iter().filter_map(|(k, v)| if let InstanceKey::Str(k) = k { Some((k, v)) } else { None }).collect(),
            )
        } else {
            Expansion::Single(instances.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Unknown))
        };
        self.values.resources.insert(addr.clone(), e);
    }

    /// Sets one instance's value, leaving its siblings as they are.
    pub fn set_instance(&mut self, addr: &InstanceAddr, v: Value) {
        let e = self.values.resources.entry(addr.resource.clone()).or_insert_with(|| match addr.key {
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

    /// A planned value as references and state see it: with the marks of the provider's
    /// sensitive settings it copied, of the schema, of the configuration and of the prior
    /// value. The value and the names of its sensitive attributes.
    pub fn marked(&self, key: &str, after: Value, config: &Value, prior: Option<&Value>, schema: &KindSchema) -> (Value, Vec<String>) {
        // Values the provider copied from a sensitive setting of its own are sensitive too.
        let after = match self.values.provider_secrets.get(key) {
            Some(s) => s.mark(after),
            None => after,
        };
        // Marks a provider dropped come back: the schema's, the configuration's and the prior's.
        let mut sensitive = sensitive_attrs(&after, schema);
        sensitive.extend(sensitive_attrs(config, schema));
        sensitive.extend(prior.map(|p| sensitive_attrs(p, schema)).unwrap_or_default());
        sensitive.sort();
        sensitive.dedup();
        (remark(after, schema, &sensitive), sensitive)
    }
}

/// The value state records for an instance, with the marks state recorded and the schema
/// declares (`Unknown` when state has none).
pub(crate) fn recorded(state: &State, iaddr: &InstanceAddr, schema: &KindSchema) -> Value {
    match state.resources.get(iaddr) {
        Some(s) => remark(s.attributes.clone(), schema, &s.sensitive),
        None => Value::Unknown,
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
