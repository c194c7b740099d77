//! Builds the dependency graph of one configuration: a node per variable, local, output,
//! provider configuration and resource, edges from the references in their expressions and from
//! `depends_on`. References to things that do not exist and cycles are reported here, all at
//! once, with spans.

use std::collections::HashMap;
use std::fmt;

use kiln_addrs::{Mode, ResourceAddr};
use kiln_config::{Config, DependsOn, ModuleNode};
use kiln_diag::{Diagnostic, Diagnostics, Span};
use kiln_eval::{references, Expr, Ref};
use kiln_graph::DepGraph;

use crate::providers::ProviderRegistry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    Var { module: Vec<String>, name: String },
    Local { module: Vec<String>, name: String },
    Output { module: Vec<String>, name: String },
    Provider(String),
    Resource(ResourceAddr),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = |m: &[String]| m.iter().map(|m| format!("module.{m}.")).collect::<String>();
        match self {
            Node::Var { module, name } => write!(f, "{}var.{name}", prefix(module)),
            Node::Local { module, name } => write!(f, "{}local.{name}", prefix(module)),
            Node::Output { module, name } => write!(f, "{}output.{name}", prefix(module)),
            Node::Provider(k) => write!(f, "provider[\"{k}\"]"),
            Node::Resource(r) => write!(f, "{r}"),
        }
    }
}

pub struct Graph {
    pub deps: DepGraph<Node>,
    /// Provider configuration key (`kiln`, `aws.west`) of every resource.
    pub provider_of: HashMap<ResourceAddr, String>,
    /// Where each node is declared, for cycle reports.
    pub spans: HashMap<Node, Span>,
    /// Resources placed by the optimizer (`crate::placement`): the provider blocks each may
    /// land on. Their `provider_of` is the first, only so every resource has one.
    pub placed: HashMap<ResourceAddr, Vec<String>>,
    /// Jobs without `provider` whose `cluster` is a placed cluster, and buckets without
    /// `provider` only that cluster's jobs use (not as `data`): they follow it.
    pub follows: HashMap<ResourceAddr, ResourceAddr>,
    /// The `data` blocks of the jobs on each placed resource (`crate::placement::data`), whose
    /// moves its placement prices. The buckets they name keep their own provider.
    pub data: HashMap<ResourceAddr, Vec<crate::placement::data::Source>>,
}

pub fn build_graph(config: &Config, registry: &ProviderRegistry) -> (Graph, Diagnostics) {
    let mut b = Builder::new(config);
    // Providers are configured in the root module; child modules inherit them.
    for p in &config.root.module.providers {
        let n = Node::Provider(p.key());
        b.g.add(n.clone());
        b.spans.insert(n.clone(), p.span.clone());
        if registry.get(&p.name).is_none() {
            b.diags.push(
                Diagnostic::error("E-PROVIDER-UNKNOWN", format!("unknown provider `{}`", p.name))
                    .at(p.span.clone(), "not built into this kiln")
                    .hint(format!("available providers: {}", registry.names().collect::<Vec<_>>().join(", "))),
            );
        }
        for e in p.body.exprs() {
            b.edges_from_expr(&config.root, &n, e);
        }
    }
    for m in config.root.walk() {
        b.module(m, registry);
    }
    b.data_sources(config);
    for cycle in b.g.cycles() {
        let names: Vec<String> = cycle.iter().map(ToString::to_string).collect();
        let mut d = Diagnostic::error("E-CYCLE", format!("dependency cycle: {}", names.join(" → ")))
            .hint("break the cycle: one of these must not refer to the next (check references and depends_on)");
        for (i, n) in cycle.iter().enumerate() {
            if let Some(s) = b.spans.get(n) {
                d = if i == 0 { d.at(s.clone(), format!("{n} is part of the cycle")) } else { d.also(s.clone(), format!("{n}")) };
            }
        }
        b.diags.push(d);
    }
    b.followers(config);
    (Graph { deps: b.g, provider_of: b.provider_of, spans: b.spans, placed: b.placed, follows: b.follows, data: b.data }, b.diags)
}

struct Builder<'c> {
    g: DepGraph<Node>,
    provider_of: HashMap<ResourceAddr, String>,
    placed: HashMap<ResourceAddr, Vec<String>>,
    follows: HashMap<ResourceAddr, ResourceAddr>,
    data: HashMap<ResourceAddr, Vec<crate::placement::data::Source>>,
    spans: HashMap<Node, Span>,
    diags: Diagnostics,
    config: &'c Config,
}

impl<'c> Builder<'c> {
    fn new(config: &'c Config) -> Self {
        Builder {
            g: DepGraph::new(),
            provider_of: HashMap::new(),
            placed: HashMap::new(),
            follows: HashMap::new(),
            data: HashMap::new(),
            spans: HashMap::new(),
            diags: Diagnostics::new(),
            config,
        }
    }

    fn module(&mut self, m: &ModuleNode, registry: &ProviderRegistry) {
        let path = &m.path;
        for (name, v) in &m.module.variables {
            let n = Node::Var { module: path.clone(), name: name.clone() };
            self.g.add(n.clone());
            self.spans.insert(n, v.span.clone());
        }
        // Inputs of child modules are evaluated in this module.
        for (cname, call) in &m.module.module_calls {
            let Some(child) = m.children.get(cname) else { continue };
            for (iname, attr) in &call.inputs {
                let n = Node::Var { module: child.path.clone(), name: iname.clone() };
                if !child.module.variables.contains_key(iname) {
                    self.diags.push(
                        Diagnostic::error("E-MODULE-INPUT", format!("module `{cname}` has no variable `{iname}`"))
                            .at(attr.name_span.clone(), "unexpected input")
                            .hint(format!("declare `variable \"{iname}\" {{}}` in {}", child.module.dir.display())),
                    );
                    continue;
                }
                self.edges_from_expr(m, &n, &attr.expr);
            }
            for (vname, v) in &child.module.variables {
                if v.default.is_none() && !call.inputs.contains_key(vname) {
                    self.diags.push(
                        Diagnostic::error("E-MODULE-INPUT", format!("module `{cname}` needs input `{vname}`"))
                            .at(call.span.clone(), "missing input")
                            .also(v.span.clone(), "declared here without a default")
                            .hint(format!("add `{vname} = ...` to the module block")),
                    );
                }
            }
            let child_nodes: Vec<Node> = child
                .walk()
                .into_iter()
                .flat_map(|c| c.module.resources.iter().map(move |r| Node::Resource(resource_addr(&c.path, r))))
                .collect();
            for d in &call.depends_on {
                for target in self.depends_on_nodes(m, d) {
                    for cn in &child_nodes {
                        self.g.depend(cn, &target);
                    }
                }
            }
        }
        for (name, l) in &m.module.locals {
            let n = Node::Local { module: path.clone(), name: name.clone() };
            self.g.add(n.clone());
            self.spans.insert(n.clone(), l.span.clone());
            self.edges_from_expr(m, &n, &l.expr);
        }
        for (name, o) in &m.module.outputs {
            let n = Node::Output { module: path.clone(), name: name.clone() };
            self.g.add(n.clone());
            self.spans.insert(n.clone(), o.span.clone());
            self.edges_from_expr(m, &n, &o.value);
            for d in &o.depends_on {
                for t in self.depends_on_nodes(m, d) {
                    self.g.depend(&n, &t);
                }
            }
        }
        if !path.is_empty() {
            for p in &m.module.providers {
                self.diags.push(
                    Diagnostic::error(
                        "E-PROVIDER-MODULE",
                        format!("provider `{}` is configured inside module `{}`", p.key(), path.join(".")),
                    )
                    .at(p.span.clone(), "configure providers in the root module")
                    .hint("move this block to the root module; modules inherit its providers"),
                );
            }
        }
        for r in &m.module.resources {
            let addr = resource_addr(path, r);
            let n = Node::Resource(addr.clone());
            self.g.add(n.clone());
            self.spans.insert(n.clone(), r.span.clone());
            let placed = crate::placement::opts_in(r);
            let key = match &r.provider {
                _ if placed => self.placed(registry, r, &addr),
                Some(p) => {
                    if registry.get(&p.name).is_none() {
                        self.diags.push(
                            Diagnostic::error("E-PROVIDER-UNKNOWN", format!("unknown provider `{}`", p.name))
                                .at(p.span.clone(), "not built into this kiln")
                                .address(&addr)
                                .hint(format!("available providers: {}", registry.names().collect::<Vec<_>>().join(", "))),
                        );
                    } else if !self.config.root.module.providers.iter().any(|b| b.key() == p.key()) && p.alias.is_some() {
                        self.diags.push(
                            Diagnostic::error("E-PROVIDER-REF", format!("provider `{}` is not configured", p.key()))
                                .at(p.span.clone(), "no such provider block")
                                .address(&addr)
                                .hint(format!(
                                    "add `provider \"{}\" {{ alias = \"{}\" }}` to the root module",
                                    p.name,
                                    p.alias.clone().unwrap_or_default()
                                )),
                        );
                    }
                    p.key()
                }
                None => match registry.resolve(&r.kind, r.mode == Mode::Data) {
                    Ok(resolution) => {
                        let key = resolution.key().to_string();
                        if registry.get(&key).is_none() {
                            self.diags.push(
                                Diagnostic::error(
                                    "E-PROVIDER-UNKNOWN",
                                    format!("kind `{}` would use provider `{key}`, which is not built into this kiln", r.kind),
                                )
                                .at(r.span.clone(), "declared here")
                                .address(&addr)
                                .hint(format!(
                                    "choose one of the available providers with `provider = NAME`: {}",
                                    registry.names().collect::<Vec<_>>().join(", ")
                                )),
                            );
                        }
                        key
                    }
                    Err(d) => {
                        self.diags.push(d.at(r.span.clone(), "declared here").address(&addr));
                        // Reported: the graph is not planned, the key only completes it.
                        crate::providers::DEFAULT_PROVIDER.to_string()
                    }
                },
            };
            let pn = Node::Provider(key.clone());
            if !self.g.contains(&pn) {
                self.g.add(pn.clone());
                self.spans.insert(pn.clone(), r.span.clone());
            }
            self.g.depend(&n, &pn);
            self.provider_of.insert(addr.clone(), key);
            let mut exprs: Vec<&Expr> = r.body.exprs();
            exprs.extend(r.count.iter());
            exprs.extend(r.for_each.iter());
            for e in exprs {
                self.edges_from_expr(m, &n, e);
            }
            for d in &r.depends_on {
                for t in self.depends_on_nodes(m, d) {
                    self.g.depend(&n, &t);
                }
            }
        }
    }

    /// A block that opts into placement: it depends on every provider it may land on.
    fn placed(&mut self, registry: &ProviderRegistry, r: &kiln_config::Resource, addr: &ResourceAddr) -> String {
        let n = Node::Resource(addr.clone());
        if !crate::placement::KINDS.contains(&r.kind.as_str()) {
            self.diags.push(
                Diagnostic::error("E-PLACEMENT", format!("placement places clusters and spot pools, not a `{}`", r.kind))
                    .at(r.span.clone(), "declared here")
                    .address(addr)
                    .hint("remove the `placement` block (or `provider = auto`); a job follows the cluster it runs on"),
            );
        }
        let keys = crate::placement::candidates(self.config, registry, &r.kind);
        if keys.is_empty() {
            let clouds: Vec<&str> = registry.names().filter(|n| !["local", "kiln"].contains(n)).collect();
            self.diags.push(
                Diagnostic::error("E-PLACEMENT-NO-PROVIDER", format!("no configured provider can place `{addr}`"))
                    .at(r.span.clone(), "opts into placement")
                    .address(addr)
                    .hint(format!(
                        "placement chooses among the configured providers (never `local`): add a provider block such as `provider \"{}\" {{}}`",
                        clouds.first().copied().unwrap_or("aws")
                    )),
            );
        }
        for k in &keys {
            let pn = Node::Provider(k.clone());
            if !self.g.contains(&pn) {
                self.g.add(pn.clone());
            }
            self.g.depend(&n, &pn);
        }
        let first = keys.first().cloned().unwrap_or_else(|| crate::providers::DEFAULT_PROVIDER.to_string());
        self.placed.insert(addr.clone(), keys);
        first
    }

    /// Jobs without `provider` whose `cluster` refers to a placed cluster follow it: they depend
    /// on its providers too.
    fn followers(&mut self, config: &Config) {
        for m in config.root.walk() {
            for r in m.module.resources.iter().filter(|r| r.kind == "job" && r.provider.is_none() && r.mode == Mode::Managed) {
                let Some(cluster) = placed_cluster(m, r) else { continue };
                let Some(keys) = self.placed.get(&cluster).cloned() else { continue };
                let job = resource_addr(&m.path, r);
                let n = Node::Resource(job.clone());
                for k in &keys {
                    self.g.depend(&n, &Node::Provider(k.clone()));
                }
                if let Some(k) = keys.first() {
                    self.provider_of.insert(job.clone(), k.clone());
                }
                self.follows.insert(job, cluster);
            }
        }
        self.bucket_followers(config);
    }

    /// Buckets without `provider` that the jobs of one placed cluster use (other than as their
    /// `data`, which stays where it is) follow that cluster: created on the provider it lands
    /// on. Each is planned after the cluster's decision (it depends on the cluster), unless the
    /// cluster depends on it; a bucket the jobs of several placed clusters use keeps its own
    /// provider.
    fn bucket_followers(&mut self, config: &Config) {
        let data: std::collections::HashSet<&ResourceAddr> = self.data.values().flatten().map(|s| &s.bucket).collect();
        let mut users: std::collections::BTreeMap<ResourceAddr, std::collections::BTreeSet<ResourceAddr>> = Default::default();
        for m in config.root.walk() {
            for r in m.module.resources.iter().filter(|r| r.kind == "job" && r.mode == Mode::Managed) {
                let Some(cluster) = placed_cluster(m, r).filter(|c| self.placed.contains_key(c)) else { continue };
                for e in crate::placement::data::provider_body(&r.body).exprs() {
                    for (reference, _) in references(e) {
                        if let Ref::Resource { kind, name } = reference {
                            if kind == "bucket" {
                                let bucket = ResourceAddr { module: m.path.clone(), mode: Mode::Managed, kind, name };
                                users.entry(bucket).or_default().insert(cluster.clone());
                            }
                        }
                    }
                }
            }
        }
        let mut follows = Vec::new();
        let modules = config.root.walk();
        for (bucket, clusters) in users {
            let mut clusters = clusters.into_iter();
            let (Some(cluster), None) = (clusters.next(), clusters.next()) else { continue };
            let Some(m) = modules.iter().find(|m| m.path == bucket.module) else { continue };
            let declared = m.module.resources.iter().find(|r| r.mode == Mode::Managed && r.kind == "bucket" && r.name == bucket.name);
            let Some(r) = declared else { continue };
            let (b, c) = (Node::Resource(bucket.clone()), Node::Resource(cluster.clone()));
            if r.provider.is_some() || self.placed.contains_key(&bucket) || data.contains(&bucket) || self.reaches(&c, &b) {
                continue;
            }
            follows.push((bucket, cluster, b, c));
        }
        for (bucket, cluster, b, c) in follows {
            self.g.depend(&b, &c);
            for k in self.placed[&cluster].clone() {
                self.g.depend(&b, &Node::Provider(k));
            }
            self.follows.insert(bucket, cluster);
        }
    }

    /// Whether `from` depends on `to`, directly or through others.
    fn reaches(&self, from: &Node, to: &Node) -> bool {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n) {
                stack.extend(self.g.dependencies(n));
            }
        }
        false
    }

    /// Every job's `data` blocks, checked; those of jobs whose `cluster` is a placed resource
    /// (following it or not) are recorded for it, and it depends on each bucket's provider and
    /// on what `size_gb` refers to (never on the bucket: it keeps its own provider).
    fn data_sources(&mut self, config: &Config) {
        for m in config.root.walk() {
            for r in m.module.resources.iter().filter(|r| r.mode == Mode::Managed && crate::placement::data::has_data(r)) {
                let (written, diags) = crate::placement::data::written(m, r);
                self.diags.extend(diags);
                let Some(placed) = runs_on(m, r).filter(|a| self.placed.contains_key(a)) else { continue };
                let job = resource_addr(&m.path, r);
                let n = Node::Resource(placed.clone());
                for w in written {
                    let Some(key) = self.provider_of.get(&w.bucket).cloned() else { continue };
                    let pn = Node::Provider(key.clone());
                    if !self.g.contains(&pn) {
                        self.g.add(pn.clone());
                    }
                    self.g.depend(&n, &pn);
                    // The job's own edges reported what does not resolve: not again.
                    let reported = std::mem::take(&mut self.diags);
                    self.edges_from_expr(m, &n, &w.size_gb);
                    self.diags = reported;
                    let source = crate::placement::data::Source { job: job.clone(), bucket: w.bucket, provider: key, size_gb: w.size_gb };
                    self.data.entry(placed.clone()).or_default().push(source);
                }
            }
        }
    }

    fn depends_on_nodes(&mut self, m: &ModuleNode, d: &DependsOn) -> Vec<Node> {
        let parts: Vec<&str> = d.target.split('.').collect();
        let r = match parts.as_slice() {
            ["module", name] => Ref::Module(name.to_string(), None),
            ["data", kind, name] => Ref::Data { kind: kind.to_string(), name: name.to_string() },
            [kind, name] => Ref::Resource { kind: kind.to_string(), name: name.to_string() },
            _ => {
                self.diags.push(
                    Diagnostic::error("E-DEPENDS-ON", format!("`{}` is not a resource or module", d.target))
                        .at(d.span.clone(), "here")
                        .hint("depends_on lists resources (record.a), data sources (data.kind.name) or modules (module.m)"),
                );
                return Vec::new();
            }
        };
        self.resolve(m, &r, &d.span)
    }

    fn edges_from_expr(&mut self, m: &ModuleNode, from: &Node, e: &Expr) {
        for (r, span) in references(e) {
            for t in self.resolve(m, &r, &span) {
                self.g.depend(from, &t);
            }
        }
    }

    /// Graph nodes a reference made in module `m` points to; reports undeclared names.
    fn resolve(&mut self, m: &ModuleNode, r: &Ref, span: &Span) -> Vec<Node> {
        let path = &m.path;
        let missing = |what: String, hint: String| Diagnostic::error("E-REF-UNDECLARED", what).at(span.clone(), "not declared").hint(hint);
        match r {
            Ref::Var(n) => {
                if m.module.variables.contains_key(n) {
                    return vec![Node::Var { module: path.clone(), name: n.clone() }];
                }
                self.diags.push(missing(
                    format!("reference to undeclared variable `var.{n}`"),
                    format!("declare it with `variable \"{n}\" {{}}`"),
                ));
            }
            Ref::Local(n) => {
                if m.module.locals.contains_key(n) {
                    return vec![Node::Local { module: path.clone(), name: n.clone() }];
                }
                self.diags.push(missing(
                    format!("reference to undeclared local value `local.{n}`"),
                    format!("add `{n} = ...` to a `locals` block"),
                ));
            }
            Ref::Module(name, out) => {
                let Some(child) = m.children.get(name) else {
                    if !m.module.module_calls.contains_key(name) {
                        self.diags.push(missing(
                            format!("reference to undeclared module `module.{name}`"),
                            format!("add a `module \"{name}\" {{ source = \"./...\" }}` block"),
                        ));
                    }
                    return Vec::new();
                };
                match out {
                    Some(o) if child.module.outputs.contains_key(o) => {
                        return vec![Node::Output { module: child.path.clone(), name: o.clone() }]
                    }
                    Some(o) => self.diags.push(missing(
                        format!("module `{name}` has no output `{o}`"),
                        format!("declare `output \"{o}\" {{ value = ... }}` in {}", child.module.dir.display()),
                    )),
                    None => {
                        return child.module.outputs.keys().map(|o| Node::Output { module: child.path.clone(), name: o.clone() }).collect()
                    }
                }
            }
            Ref::Resource { kind, name } | Ref::Data { kind, name } => {
                let mode = if matches!(r, Ref::Data { .. }) { Mode::Data } else { Mode::Managed };
                if m.module.resource(mode, kind, name).is_some() {
                    return vec![Node::Resource(ResourceAddr { module: path.clone(), mode, kind: kind.clone(), name: name.clone() })];
                }
                let same_kind: Vec<String> = m
                    .module
                    .resources
                    .iter()
                    .filter(|x| x.mode == mode && &x.kind == kind)
                    .map(|x| format!("{}.{}", x.kind, x.name))
                    .collect();
                let hint = if same_kind.is_empty() {
                    format!("declare `resource \"{kind}\" \"{name}\" {{ ... }}`, or check the spelling")
                } else {
                    format!("declared {kind} resources: {}", same_kind.join(", "))
                };
                let what = if mode == Mode::Data { format!("data.{kind}.{name}") } else { format!("{kind}.{name}") };
                self.diags.push(missing(format!("reference to undeclared resource `{what}`"), hint));
            }
            Ref::CountIndex | Ref::EachKey | Ref::EachValue | Ref::Path(_) | Ref::Workspace | Ref::SelfRef => {}
        }
        Vec::new()
    }
}

/// The undeclared names among the references of `e`, an expression of the root module
/// (`kiln console`'s input), reported as the graph reports them in the configuration.
pub(crate) fn undeclared(config: &Config, e: &Expr) -> Diagnostics {
    let mut b = Builder::new(config);
    for (r, span) in references(e) {
        b.resolve(&config.root, &r, &span);
    }
    b.diags
}

pub(crate) fn resource_addr(module: &[String], r: &kiln_config::Resource) -> ResourceAddr {
    ResourceAddr { module: module.to_vec(), mode: r.mode, kind: r.kind.clone(), name: r.name.clone() }
}

/// What a job's `cluster` refers to (`cluster.NAME` or `spot_pool.NAME`, whole or one instance).
fn runs_on(m: &ModuleNode, r: &kiln_config::Resource) -> Option<ResourceAddr> {
    let text = r.body.attr("cluster").and_then(|a| kiln_eval::whole_reference(&a.expr))?;
    let (kind, name) = text.split('[').next().unwrap_or_default().split_once('.')?;
    Some(ResourceAddr { module: m.path.clone(), mode: Mode::Managed, kind: kind.into(), name: name.into() })
}

/// The cluster a job's `cluster` refers to.
fn placed_cluster(m: &ModuleNode, r: &kiln_config::Resource) -> Option<ResourceAddr> {
    runs_on(m, r).filter(|a| a.kind == "cluster")
}
