//! `kiln console`'s evaluation, as Terraform's console: the configuration evaluated once with
//! resource values taken from state (variables, locals, outputs; nothing is refreshed, planned
//! or configured), then any expression evaluated in the root module's scope: `var.x`,
//! `local.y`, `record.a.id`, `module.m.out`, functions.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_addrs::ResourceAddr;
use kiln_config::Config;
use kiln_diag::{Diagnostic, Diagnostics, Sources, Span};
use kiln_eval::Expr;
use kiln_state::State;
use kiln_value::Value;

use crate::context::{recorded, Context};
use crate::graph::{build_graph, Node};
use crate::providers::{ProviderRegistry, Providers};
use crate::scope::{ModuleScope, Repetition, Values};

/// What a console evaluates against.
pub struct ConsoleRequest<'a> {
    pub config: &'a Config,
    pub state: &'a State,
    pub registry: &'a ProviderRegistry,
    /// Root variable values given by the user (files, flags, environment), before conversion.
    pub variables: BTreeMap<String, Value>,
    /// The selected workspace's name: `kiln.workspace` in expressions.
    pub workspace: String,
    pub cwd: PathBuf,
}

/// The configuration's values, ready to evaluate expressions against.
pub struct Console<'a> {
    config: &'a Config,
    values: Values,
    dir: PathBuf,
    /// The configuration's files, and each line evaluated (`<console>`), for diagnostics.
    sources: Sources,
}

impl<'a> Console<'a> {
    /// Evaluates the configuration over `req.state`. `None` when errors prevent it (a required
    /// variable without a value, a reference cycle, ...); the diagnostics say why.
    pub fn new(req: ConsoleRequest<'a>) -> (Option<Console<'a>>, Diagnostics) {
        let (graph, diags) = build_graph(req.config, req.registry);
        if diags.has_errors() {
            return (None, diags);
        }
        let Some(order) = graph.deps.topo_order() else {
            return (None, diags);
        };
        let providers = Providers::new();
        let mut cx = Context::new(req.config, req.registry, &graph, &providers, &req.variables, req.workspace.clone(), req.cwd.clone());
        cx.diags = diags;
        cx.check_root_variables();
        for node in &order {
            match node {
                Node::Provider(_) => {}
                Node::Resource(addr) => resource(&mut cx, req.state, addr),
                _ => cx.value_node(node),
            }
        }
        let Context { values, diags, .. } = cx;
        let diags = values.redact(diags);
        if diags.has_errors() {
            return (None, diags);
        }
        let console = Console { config: req.config, values, dir: req.config.root.module.dir.clone(), sources: req.config.sources.clone() };
        (Some(console), diags)
    }

    /// Evaluates one expression (a line of input) in the root module.
    pub fn eval(&mut self, text: &str) -> Result<Value, Diagnostics> {
        let file = self.sources.add("<console>", text.to_string());
        let node = hcl_edit::parser::parse_expr(text).map_err(|e| {
            let loc = e.location();
            let at = self.sources.get(file).offset(loc.line(), loc.column());
            let end = (at + 1).min(text.len()).max(at);
            Diagnostics::from(
                Diagnostic::error("E-SYNTAX", format!("syntax error: {}", e.message()))
                    .at(Span::new(file, at..end), "here")
                    .hint("write one expression per line, such as var.name, local.x, record.a.output or upper(\"x\")"),
            )
        })?;
        let expr = Expr::with_source(file, node, text);
        let undeclared = crate::graph::undeclared(self.config, &expr);
        if undeclared.has_errors() {
            return Err(undeclared);
        }
        let scope = ModuleScope { values: &self.values, module: &[], dir: &self.dir, rep: Repetition::None };
        kiln_eval::eval(&expr, &scope).map_err(|d| self.values.redact(d))
    }

    /// The configuration's files and the lines evaluated so far, which diagnostics point into.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }
}

/// What references to a resource see: the values state records for its instances (unknown for
/// instances state does not have). Its provider's schema says which attributes are sensitive.
fn resource(cx: &mut Context<'_>, state: &State, addr: &ResourceAddr) {
    let r = cx.resource(addr);
    let key = cx.graph.provider_of[addr].clone();
    let Some(schema) = cx.kind_schema(&key, r) else {
        cx.unknown_kind(&key, r, addr);
        return;
    };
    let Some(keys) = cx.instance_keys(addr) else { return };
    let values = keys.into_iter().map(|(ik, _)| (ik.clone(), recorded(state, &addr.instance(ik), &schema))).collect();
    cx.set_resource(addr, values);
}
