//! References an expression makes (`var.x`, `record.a`, `module.m`, ...), found without
//! evaluating it: the graph builder uses them for dependencies, the evaluator to resolve names.

use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::template::{Directive, Element, Template};
use hcl_edit::Span as _;
use kiln_diag::Span;

use crate::Expr;

/// What a traversal's root names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ref {
    Var(String),
    Local(String),
    /// A module call's outputs (`module.m`, or `module.m.out` with the output name).
    Module(String, Option<String>),
    Resource {
        kind: String,
        name: String,
    },
    Data {
        kind: String,
        name: String,
    },
    CountIndex,
    EachKey,
    EachValue,
    Path(String),
    /// `kiln.workspace`: the selected workspace's name (Terraform's `terraform.workspace`).
    Workspace,
    SelfRef,
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Var(n) => write!(f, "var.{n}"),
            Ref::Local(n) => write!(f, "local.{n}"),
            Ref::Module(m, None) => write!(f, "module.{m}"),
            Ref::Module(m, Some(o)) => write!(f, "module.{m}.{o}"),
            Ref::Resource { kind, name } => write!(f, "{kind}.{name}"),
            Ref::Data { kind, name } => write!(f, "data.{kind}.{name}"),
            Ref::CountIndex => write!(f, "count.index"),
            Ref::EachKey => write!(f, "each.key"),
            Ref::EachValue => write!(f, "each.value"),
            Ref::Path(p) => write!(f, "path.{p}"),
            Ref::Workspace => write!(f, "kiln.workspace"),
            Ref::SelfRef => write!(f, "self"),
        }
    }
}

/// How a reference was parsed out of a traversal: the reference, and how many operators of the
/// traversal it consumed.
pub(crate) enum Parsed {
    Ref(Ref, usize),
    /// A root name that is not a reference (a `for` variable, or a bare kind).
    Bare,
    /// A root that needs an attribute that is missing, such as `var` alone.
    Incomplete(&'static str),
}

pub(crate) fn attr(op: Option<&TraversalOperator>) -> Option<&str> {
    match op {
        Some(TraversalOperator::GetAttr(a)) => Some(a.as_str()),
        _ => None,
    }
}

/// Interprets `root` followed by `ops` as a reference.
pub(crate) fn parse_ref(root: &str, ops: &[&TraversalOperator]) -> Parsed {
    let a0 = attr(ops.first().copied());
    let a1 = attr(ops.get(1).copied());
    match root {
        "var" => a0.map_or(Parsed::Incomplete("var.NAME"), |n| Parsed::Ref(Ref::Var(n.into()), 1)),
        "local" => a0.map_or(Parsed::Incomplete("local.NAME"), |n| Parsed::Ref(Ref::Local(n.into()), 1)),
        "module" => match (a0, a1) {
            (Some(m), Some(o)) => Parsed::Ref(Ref::Module(m.into(), Some(o.into())), 2),
            (Some(m), None) => Parsed::Ref(Ref::Module(m.into(), None), 1),
            _ => Parsed::Incomplete("module.NAME"),
        },
        "data" => match (a0, a1) {
            (Some(k), Some(n)) => Parsed::Ref(Ref::Data { kind: k.into(), name: n.into() }, 2),
            _ => Parsed::Incomplete("data.KIND.NAME"),
        },
        "count" => match a0 {
            Some("index") => Parsed::Ref(Ref::CountIndex, 1),
            _ => Parsed::Incomplete("count.index"),
        },
        "each" => match a0 {
            Some("key") => Parsed::Ref(Ref::EachKey, 1),
            Some("value") => Parsed::Ref(Ref::EachValue, 1),
            _ => Parsed::Incomplete("each.key or each.value"),
        },
        "path" => a0.map_or(Parsed::Incomplete("path.module"), |n| Parsed::Ref(Ref::Path(n.into()), 1)),
        "self" => Parsed::Ref(Ref::SelfRef, 0),
        "kiln" => match a0 {
            Some("workspace") => Parsed::Ref(Ref::Workspace, 1),
            _ => Parsed::Incomplete("kiln.workspace"),
        },
        kind => match a0 {
            Some(n) => Parsed::Ref(Ref::Resource { kind: kind.into(), name: n.into() }, 1),
            None => Parsed::Bare,
        },
    }
}

/// The reference `expr` is exactly, when it names a whole object: a resource or data resource
/// (`cluster.train`, `data.machine.this`), one of its instances (`cluster.train[0]`,
/// `bucket.b["eu"]`) or a module's output (`module.m.out`, `module.m`), written as the
/// configuration spells it. `None` for anything else (`cluster.train.nodes`, a function call,
/// a template, a variable). The plan view shows such an attribute as the reference instead of
/// the object inlined.
pub fn whole_reference(expr: &Expr) -> Option<String> {
    let mut e = &*expr.node;
    while let Expression::Parenthesis(p) = e {
        e = p.inner();
    }
    let (root, ops): (&str, Vec<&TraversalOperator>) = match e {
        Expression::Variable(v) => (v.as_str(), Vec::new()),
        Expression::Traversal(t) => match &t.expr {
            Expression::Variable(v) => (v.as_str(), t.operators.iter().map(|o| o.value()).collect()),
            _ => return None,
        },
        _ => return None,
    };
    let Parsed::Ref(r, used) = parse_ref(root, &ops) else { return None };
    let mut text = match &r {
        Ref::Resource { .. } | Ref::Data { .. } | Ref::Module(..) => r.to_string(),
        _ => return None,
    };
    let rest = &ops[used..];
    match rest {
        [] => {}
        // One instance of a resource: a literal index or key.
        [op] if !matches!(r, Ref::Module(..)) => match op {
            TraversalOperator::Index(Expression::Number(n)) => text.push_str(&format!("[{}]", n.value())),
            TraversalOperator::Index(Expression::String(s)) => {
                text.push_str(&format!("[{}]", serde_json::Value::String(s.value().to_string())))
            }
            TraversalOperator::LegacyIndex(n) => text.push_str(&format!("[{}]", n.value())),
            _ => return None,
        },
        _ => return None,
    }
    Some(text)
}

/// Every reference in `expr`, in source order, with the span of the reference (`var.list` in
/// `var.list[0]`, `module.m.out`, `data.k.n`). Names bound by enclosing `for` expressions and
/// `%{for}` directives are skipped, and so are roots that are not references.
pub fn references(expr: &Expr) -> Vec<(Ref, Span)> {
    let mut out = Vec::new();
    let mut bound = Vec::new();
    walk(&expr.node, &mut bound, &mut |r, range| out.push((r, Span::new(expr.file, range))));
    out
}

type Sink<'a> = dyn FnMut(Ref, std::ops::Range<usize>) + 'a;

fn walk(e: &Expression, bound: &mut Vec<String>, sink: &mut Sink<'_>) {
    match e {
        Expression::Variable(v) => {
            if !bound.iter().any(|b| b == v.as_str()) {
                if let Parsed::Ref(r, _) = parse_ref(v.as_str(), &[]) {
                    sink(r, v.span().unwrap_or_default());
                }
            }
        }
        Expression::Traversal(t) => {
            if let Expression::Variable(v) = &t.expr {
                if !bound.iter().any(|b| b == v.as_str()) {
                    let ops: Vec<&TraversalOperator> = t.operators.iter().map(|o| o.value()).collect();
                    if let Parsed::Ref(r, used) = parse_ref(v.as_str(), &ops) {
                        // Like Terraform, the span covers the reference itself (`var.list` in
                        // `var.list[0].id`), not what is read from it.
                        let start = v.span().or_else(|| t.span()).map_or(0, |r| r.start);
                        let end = match used.checked_sub(1).and_then(|i| t.operators.get(i)) {
                            Some(op) => op.span().map(|r| r.end),
                            None => v.span().map(|r| r.end),
                        };
                        sink(r, start..end.or_else(|| t.span().map(|r| r.end)).unwrap_or(start));
                    }
                }
            } else {
                walk(&t.expr, bound, sink);
            }
            for op in &t.operators {
                if let TraversalOperator::Index(i) = op.value() {
                    walk(i, bound, sink);
                }
            }
        }
        Expression::Array(a) => a.iter().for_each(|x| walk(x, bound, sink)),
        Expression::Object(o) => {
            for (k, v) in o.iter() {
                if let Some(k) = k.as_expr() {
                    walk(k, bound, sink);
                }
                walk(v.expr(), bound, sink);
            }
        }
        Expression::StringTemplate(t) => walk_template(t, bound, sink),
        Expression::HeredocTemplate(h) => walk_template(&h.template, bound, sink),
        Expression::Parenthesis(p) => walk(p.inner(), bound, sink),
        Expression::Conditional(c) => {
            walk(&c.cond_expr, bound, sink);
            walk(&c.true_expr, bound, sink);
            walk(&c.false_expr, bound, sink);
        }
        Expression::FuncCall(f) => f.args.iter().for_each(|a| walk(a, bound, sink)),
        Expression::UnaryOp(u) => walk(&u.expr, bound, sink),
        Expression::BinaryOp(b) => {
            walk(&b.lhs_expr, bound, sink);
            walk(&b.rhs_expr, bound, sink);
        }
        Expression::ForExpr(f) => {
            walk(&f.intro.collection_expr, bound, sink);
            let n = bound.len();
            if let Some(k) = &f.intro.key_var {
                bound.push(k.as_str().to_string());
            }
            bound.push(f.intro.value_var.as_str().to_string());
            if let Some(k) = &f.key_expr {
                walk(k, bound, sink);
            }
            walk(&f.value_expr, bound, sink);
            if let Some(c) = &f.cond {
                walk(&c.expr, bound, sink);
            }
            bound.truncate(n);
        }
        Expression::Null(_) | Expression::Bool(_) | Expression::Number(_) | Expression::String(_) => {}
    }
}

fn walk_template(t: &Template, bound: &mut Vec<String>, sink: &mut Sink<'_>) {
    for el in t.iter() {
        match el {
            Element::Literal(_) => {}
            Element::Interpolation(i) => walk(&i.expr, bound, sink),
            Element::Directive(d) => match &**d {
                Directive::If(d) => {
                    walk(&d.if_expr.cond_expr, bound, sink);
                    walk_template(&d.if_expr.template, bound, sink);
                    if let Some(e) = &d.else_expr {
                        walk_template(&e.template, bound, sink);
                    }
                }
                Directive::For(d) => {
                    walk(&d.for_expr.collection_expr, bound, sink);
                    let n = bound.len();
                    if let Some(k) = &d.for_expr.key_var {
                        bound.push(k.as_str().to_string());
                    }
                    bound.push(d.for_expr.value_var.as_str().to_string());
                    walk_template(&d.for_expr.template, bound, sink);
                    bound.truncate(n);
                }
            },
        }
    }
}
