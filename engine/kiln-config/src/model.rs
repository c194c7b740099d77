//! The configuration model: one [`Module`] per directory, linked into a tree by module calls.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_addrs::Mode;
use kiln_diag::{Sources, Span};
use kiln_eval::Expr;
use kiln_value::Type;

/// The root module and everything it calls, with the source files they came from.
#[derive(Debug)]
pub struct Config {
    pub root: ModuleNode,
    pub sources: Sources,
}

#[derive(Debug)]
pub struct ModuleNode {
    /// Module path from the root (`[]` for the root, `["net"]` for `module.net`).
    pub path: Vec<String>,
    pub module: Module,
    pub children: BTreeMap<String, ModuleNode>,
}

impl ModuleNode {
    /// Every module in the tree, parents before children.
    pub fn walk(&self) -> Vec<&ModuleNode> {
        let mut out = vec![self];
        for c in self.children.values() {
            out.extend(c.walk());
        }
        out
    }

    pub fn find(&self, path: &[String]) -> Option<&ModuleNode> {
        match path.split_first() {
            None => Some(self),
            Some((first, rest)) => self.children.get(first)?.find(rest),
        }
    }
}

/// The contents of one directory of `*.kiln.hcl` files.
#[derive(Debug, Default)]
pub struct Module {
    pub dir: PathBuf,
    pub settings: Option<KilnBlock>,
    pub variables: BTreeMap<String, Variable>,
    pub locals: BTreeMap<String, Local>,
    pub outputs: BTreeMap<String, Output>,
    pub providers: Vec<ProviderBlock>,
    pub resources: Vec<Resource>,
    pub module_calls: BTreeMap<String, ModuleCall>,
    /// `policy "NAME" { ... }` blocks by name (root module only).
    pub policies: BTreeMap<String, Policy>,
    /// The `catalog { ... }` block (root module only, at most one).
    pub catalog: Option<CatalogBlock>,
    /// Position of each resource in `resources` by (mode, kind, name), for constant-time lookups.
    resource_index: std::collections::HashMap<(Mode, String, String), usize>,
}

impl Module {
    pub fn new(dir: PathBuf) -> Self {
        Module { dir, ..Module::default() }
    }

    /// The resource declared as `mode` `kind` `name`, if any.
    pub fn resource(&self, mode: Mode, kind: &str, name: &str) -> Option<&Resource> {
        self.resource_index.get(&(mode, kind.to_string(), name.to_string())).map(|&i| &self.resources[i])
    }

    /// Adds a resource, or gives it back when one with the same address exists.
    pub fn add_resource(&mut self, r: Resource) -> Result<(), Resource> {
        let key = (r.mode, r.kind.clone(), r.name.clone());
        if self.resource_index.contains_key(&key) {
            return Err(r);
        }
        self.resource_index.insert(key, self.resources.len());
        self.resources.push(r);
        Ok(())
    }
}

#[derive(Debug)]
pub struct KilnBlock {
    pub required_version: Option<(String, Span)>,
    pub backend: Option<Backend>,
    /// The `encryption { }` block: how state and saved plans are encrypted at rest (read by
    /// kiln-crypt, which documents its syntax).
    pub encryption: Option<Encryption>,
    pub span: Span,
}

#[derive(Debug)]
pub struct Backend {
    pub kind: String,
    pub body: Body,
    pub span: Span,
}

/// The `encryption` block inside `kiln`, unevaluated: its `key_provider`, `method` and
/// `fallback` blocks are checked and evaluated by kiln-crypt.
#[derive(Debug)]
pub struct Encryption {
    pub body: Body,
    /// The block header (`encryption`).
    pub span: Span,
}

#[derive(Debug)]
pub struct Variable {
    pub name: String,
    pub ty: Type,
    pub default: Option<Expr>,
    pub description: Option<String>,
    pub sensitive: bool,
    pub nullable: bool,
    pub validations: Vec<Validation>,
    pub span: Span,
}

#[derive(Debug)]
pub struct Validation {
    pub condition: Expr,
    pub error_message: Expr,
    pub span: Span,
}

#[derive(Debug)]
pub struct Local {
    pub name: String,
    pub expr: Expr,
    pub span: Span,
}

#[derive(Debug)]
pub struct Output {
    pub name: String,
    pub value: Expr,
    pub sensitive: bool,
    pub description: Option<String>,
    pub depends_on: Vec<DependsOn>,
    pub span: Span,
}

#[derive(Debug)]
pub struct ProviderBlock {
    pub name: String,
    pub alias: Option<String>,
    pub body: Body,
    pub span: Span,
}

impl ProviderBlock {
    /// `aws` or `aws.west`.
    pub fn key(&self) -> String {
        match &self.alias {
            Some(a) => format!("{}.{a}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A `provider = NAME` or `provider = NAME.ALIAS` meta-argument.
#[derive(Debug, Clone)]
pub struct ProviderRef {
    pub name: String,
    pub alias: Option<String>,
    pub span: Span,
}

impl ProviderRef {
    pub fn key(&self) -> String {
        match &self.alias {
            Some(a) => format!("{}.{a}", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DependsOn {
    /// The address as written, such as `record.a` or `module.m`.
    pub target: String,
    pub span: Span,
}

#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    pub prevent_destroy: bool,
    pub create_before_destroy: bool,
    /// Attribute names whose changes are ignored after create (`all` ignores every change).
    pub ignore_changes: Vec<String>,
    pub ignore_all_changes: bool,
}

#[derive(Debug)]
pub struct Resource {
    pub mode: Mode,
    pub kind: String,
    pub name: String,
    pub count: Option<Expr>,
    pub for_each: Option<Expr>,
    pub provider: Option<ProviderRef>,
    pub depends_on: Vec<DependsOn>,
    pub lifecycle: Lifecycle,
    /// Everything but the meta-arguments.
    pub body: Body,
    /// The block header (`resource "record" "a"`).
    pub span: Span,
}

#[derive(Debug)]
pub struct ModuleCall {
    pub name: String,
    pub source: String,
    pub source_span: Span,
    pub inputs: BTreeMap<String, Attr>,
    pub depends_on: Vec<DependsOn>,
    pub span: Span,
}

/// A block body: attributes and nested blocks, in source order.
#[derive(Debug, Clone, Default)]
pub struct Body {
    pub attrs: Vec<Attr>,
    pub blocks: Vec<NestedBlock>,
}

impl Body {
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// Every expression in the body, nested blocks included.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut out: Vec<&Expr> = self.attrs.iter().map(|a| &a.expr).collect();
        for b in &self.blocks {
            out.extend(b.body.exprs());
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Attr {
    pub name: String,
    pub expr: Expr,
    /// The attribute's name.
    pub name_span: Span,
}

#[derive(Debug, Clone)]
pub struct NestedBlock {
    pub ident: String,
    pub labels: Vec<String>,
    pub body: Body,
    pub span: Span,
}

/// A `policy "NAME" { ... }` block: rules a plan must keep, checked at plan time (kiln-core's
/// `policy.rs`); a plan that breaks one is refused (exit code 3). Every setting is optional and
/// kept unevaluated: literals are type-checked at load, the rest when the plan is checked.
#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub description: Option<String>,
    /// `max_hourly_cost`: the plan's total hourly cost after apply must not exceed it (USD).
    pub max_hourly_cost: Option<Attr>,
    /// `allowed_providers`: the provider names or keys (`aws`, `aws.west`) objects may use.
    pub allowed_providers: Option<Attr>,
    /// `allowed_regions`: the regions objects may be in.
    pub allowed_regions: Option<Attr>,
    /// `spot_above_gpus = N`: a cluster or spot pool with more than N GPUs in total must use spot.
    pub spot_above_gpus: Option<Attr>,
    /// `protect_nonempty_buckets = true`: no delete or replace of a bucket that holds objects.
    pub protect_nonempty_buckets: Option<Attr>,
    /// `rule { condition = EXPR, message = "..." }` blocks, in source order.
    pub rules: Vec<PolicyRule>,
    /// The block header (`policy "budget"`).
    pub span: Span,
}

impl Policy {
    /// The settings that are written, by name, in the order the checks run.
    pub fn settings(&self) -> impl Iterator<Item = &Attr> {
        [&self.max_hourly_cost, &self.allowed_providers, &self.allowed_regions, &self.spot_above_gpus, &self.protect_nonempty_buckets]
            .into_iter()
            .flatten()
    }
}

/// A policy's `rule` block: `condition` is evaluated once per planned change (with `change.*`
/// and `plan.*`) and must be true; `message` says what a false one means.
#[derive(Debug)]
pub struct PolicyRule {
    pub condition: Expr,
    pub message: Expr,
    /// The block header (`rule`).
    pub span: Span,
}

/// The `catalog { ... }` block: the user's prices beside the catalog kiln ships (evaluated by
/// kiln-ops' catalog). Attributes stay unevaluated expressions.
#[derive(Debug)]
pub struct CatalogBlock {
    /// `path`: a CSV file of catalog rows, or a list of them (relative to the root module).
    pub path: Option<Attr>,
    /// `discount { ... }` blocks, in source order.
    pub discounts: Vec<DiscountBlock>,
    /// The block header (`catalog`).
    pub span: Span,
}

/// `discount { cloud = "aws", percent = 30, instance_type = "p5.48xlarge" }`: a negotiated
/// discount off a cloud's catalog prices, for every instance type or one.
#[derive(Debug)]
pub struct DiscountBlock {
    pub cloud: Attr,
    pub percent: Attr,
    pub instance_type: Option<Attr>,
    /// The block header (`discount`).
    pub span: Span,
}
