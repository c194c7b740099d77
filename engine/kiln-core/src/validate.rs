//! The validate driver (`kiln validate`): every diagnostic of the configuration without reaching
//! a provider's API. Providers are configured and check each resource's configuration, but are
//! never asked to plan or to read data sources; references see the configuration with computed
//! attributes unknown.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use kiln_addrs::{Mode as AddrMode, ResourceAddr};
use kiln_config::Config;
use kiln_diag::Diagnostics;
use kiln_value::Value;

use crate::context::{propose, Context};
use crate::graph::{build_graph, Node};
use crate::providers::{ProviderRegistry, Providers};

/// What [`validate`] checks: the configuration with the given root variables, no state.
pub struct ValidateRequest<'a> {
    pub config: &'a Config,
    pub registry: &'a ProviderRegistry,
    pub providers: &'a Providers,
    /// Root variable values given by the user (files, flags, environment), before conversion.
    pub variables: BTreeMap<String, Value>,
    /// The selected workspace's name: `kiln.workspace` in expressions.
    pub workspace: String,
    pub cwd: PathBuf,
}

/// Every diagnostic of the configuration: structure, references, variables, provider
/// configurations, and each resource's configuration as its provider checks it.
pub async fn validate(req: ValidateRequest<'_>) -> Diagnostics {
    let (graph, diags) = build_graph(req.config, req.registry);
    if diags.has_errors() {
        return diags;
    }
    let Some(order) = graph.deps.topo_order() else {
        return diags;
    };
    let mut cx = Context::new(req.config, req.registry, &graph, req.providers, &req.variables, req.workspace, req.cwd);
    cx.diags = diags;
    cx.check_root_variables();
    let mut v = Validator { cx, instances: 0, failed: HashSet::new() };
    for node in &order {
        match node {
            Node::Provider(key) => {
                v.cx.provider(key).await;
            }
            Node::Resource(addr) => v.resource(addr),
            _ => v.cx.value_node(node),
        }
    }
    v.cx.finish()
}

struct Validator<'a> {
    cx: Context<'a>,
    /// Instances seen so far, for the limit on all instances together.
    instances: usize,
    /// Resources that failed: what depends on them is not checked (as a plan would not).
    failed: HashSet<ResourceAddr>,
}

impl Validator<'_> {
    fn resource(&mut self, addr: &ResourceAddr) {
        if !self.check(addr) {
            self.failed.insert(addr.clone());
        }
    }

    /// Whether the resource passed.
    fn check(&mut self, addr: &ResourceAddr) -> bool {
        if self.blocked(addr) {
            return false;
        }
        let r = self.cx.resource(addr);
        let key = self.cx.graph.provider_of[addr].clone();
        let Some(provider) = self.cx.ready.get(&key).cloned() else { return false };
        let Some(schema) = self.cx.kind_schema(&key, r) else {
            self.cx.unknown_kind(&key, r, addr);
            return false;
        };
        let Some(keys) = self.cx.instance_keys(addr) else { return false };
        if let Err(d) = crate::instance::check_total(self.instances, keys.len(), r, addr) {
            self.cx.diags.extend(d);
            return false;
        }
        self.instances += keys.len();
        let mut values = Vec::new();
        let mut ok = true;
        for (ik, rep) in keys {
            let iaddr = addr.instance(ik.clone());
            let value = match self.cx.instance_config(&iaddr, rep, &schema) {
                // A data source is not read: what it returns is not known.
                Some(_) if r.mode == AddrMode::Data => Some(Value::Unknown),
                Some(config) if self.cx.validate_instance(r, &iaddr, provider.as_ref(), &config) => {
                    let proposed = propose(&config, None, &schema);
                    Some(self.cx.marked(&key, proposed, &config, None, &schema).0)
                }
                _ => None,
            };
            ok &= value.is_some();
            values.push((ik, value.unwrap_or(Value::Unknown)));
        }
        self.cx.set_resource(addr, values);
        ok
    }

    /// Whether a resource it depends on (through variables, locals and outputs) failed.
    fn blocked(&self, addr: &ResourceAddr) -> bool {
        let mut seen = HashSet::new();
        let mut stack: Vec<&Node> = self.cx.graph.deps.dependencies(&Node::Resource(addr.clone()));
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            match n {
                Node::Resource(r) if self.failed.contains(r) => return true,
                Node::Resource(_) | Node::Provider(_) => {}
                _ => stack.extend(self.cx.graph.deps.dependencies(n)),
            }
        }
        false
    }
}
