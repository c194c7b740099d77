//! The `policy "NAME" { ... }` block (issue 14's plan-review gates): its settings kept as
//! unevaluated expressions, literals type-checked here so a typo fails at load with its span,
//! and its `rule` blocks. Policies, like the `catalog` block, belong to the root module only.

use hcl_edit::expr::{Expression, UnaryOperator};
use hcl_edit::structure::Block;
use kiln_diag::{Diagnostic, Diagnostics};

use crate::load::{suggest, Parser};
use crate::model::*;

/// The settings of a `policy` block, and what each takes.
const SETTINGS: [(&str, Want); 6] = [
    ("max_hourly_cost", Want::Amount),
    ("allowed_providers", Want::Strings),
    ("allowed_regions", Want::Strings),
    ("spot_above_gpus", Want::Count),
    ("protect_nonempty_buckets", Want::Bool),
    ("description", Want::Text),
];

/// What a setting takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// A number of at least 0 (USD per hour).
    Amount,
    /// A whole number of at least 0.
    Count,
    /// A list of strings.
    Strings,
    Bool,
    /// A literal string.
    Text,
}

impl Want {
    fn describe(self) -> &'static str {
        match self {
            Want::Amount => "a number of at least 0",
            Want::Count => "a whole number of at least 0",
            Want::Strings => "a list of strings",
            Want::Bool => "true or false",
            Want::Text => "a string",
        }
    }

    fn example(self, name: &str) -> String {
        match (self, name) {
            (Want::Amount, _) => format!("write {name} = 40"),
            (Want::Count, _) => format!("write {name} = 8"),
            (Want::Strings, "allowed_regions") => "write allowed_regions = [\"us-east-1\", \"eu-west-1\"]".to_string(),
            (Want::Strings, _) => format!("write {name} = [\"aws\", \"onprem\"]"),
            (Want::Bool, _) => format!("write {name} = true"),
            (Want::Text, _) => format!("write {name} = \"...\""),
        }
    }
}

/// What a literal expression is: `None` for anything only evaluation can tell (a reference, a
/// function call, a template with interpolations).
pub(crate) fn literal_type(e: &Expression) -> Option<&'static str> {
    match e {
        Expression::Null(_) => Some("null"),
        Expression::Bool(_) => Some("bool"),
        Expression::Number(_) => Some("number"),
        Expression::UnaryOp(u) if matches!(u.operator.value(), UnaryOperator::Neg) => literal_type(&u.expr).filter(|t| *t == "number"),
        Expression::String(_) => Some("string"),
        Expression::StringTemplate(t) => t.iter().all(|el| el.as_literal().is_some()).then_some("string"),
        Expression::Array(_) => Some("list"),
        Expression::Object(_) => Some("object"),
        Expression::Parenthesis(p) => literal_type(p.inner()),
        _ => None,
    }
}

/// A literal number's value (negative ones included), for range checks.
pub(crate) fn literal_number(e: &Expression) -> Option<f64> {
    match e {
        Expression::Number(n) => n.value().as_f64(),
        Expression::UnaryOp(u) if matches!(u.operator.value(), UnaryOperator::Neg) => literal_number(&u.expr).map(|n| -n),
        Expression::Parenthesis(p) => literal_number(p.inner()),
        _ => None,
    }
}

impl Parser<'_> {
    /// Checks a literal setting against what it takes; anything else is checked when evaluated.
    /// `null` stands for "not set".
    pub(crate) fn check_literal(&self, a: &Attr, want: Want, block: &str, diags: &mut Diagnostics) {
        let node = &*a.expr.node;
        let Some(found) = literal_type(node) else { return };
        let wrong = |what: String| {
            Diagnostic::error("E-CONFIG-TYPE", format!("`{}` in a `{block}` block must be {}, found {what}", a.name, want.describe()))
                .or_at(a.expr.span())
                .hint(want.example(&a.name))
        };
        if found == "null" {
            return;
        }
        match want {
            Want::Amount | Want::Count => match literal_number(node) {
                None => diags.push(wrong(format!("a {found}"))),
                Some(n) if n < 0.0 => diags.push(wrong(format!("{n}"))),
                Some(n) if want == Want::Count && n.fract() != 0.0 => diags.push(wrong(format!("{n}"))),
                Some(_) => {}
            },
            Want::Strings => match node {
                Expression::Array(items) => {
                    for item in items.iter() {
                        if let Some(t) = literal_type(item).filter(|t| *t != "string") {
                            diags.push(
                                Diagnostic::error("E-CONFIG-TYPE", format!("`{}` lists strings, found a {t}", a.name))
                                    .or_at(self.span(item))
                                    .hint(want.example(&a.name)),
                            );
                        }
                    }
                }
                _ => diags.push(wrong(format!("a {found}"))),
            },
            Want::Bool if found != "bool" => diags.push(wrong(format!("a {found}"))),
            Want::Text if found != "string" => diags.push(wrong(format!("a {found}"))),
            Want::Bool | Want::Text => {}
        }
    }

    pub(crate) fn policy(&self, name: &str, b: &Block, diags: &mut Diagnostics) -> Policy {
        let body = self.body(&b.body, diags);
        let span = self.header_span(b);
        let mut p = Policy {
            name: name.to_string(),
            description: None,
            max_hourly_cost: None,
            allowed_providers: None,
            allowed_regions: None,
            spot_above_gpus: None,
            protect_nonempty_buckets: None,
            rules: Vec::new(),
            span,
        };
        let at = |d: Diagnostic| d.address(format!("policy.{name}"));
        for a in &body.attrs {
            let Some(&(_, want)) = SETTINGS.iter().find(|(n, _)| *n == a.name) else {
                let known: Vec<&str> = SETTINGS.iter().map(|(n, _)| *n).collect();
                diags.push(at(self.unknown_attr(a, &a.name, "policy", &known)));
                continue;
            };
            self.check_literal(a, want, "policy", diags);
            let slot = match a.name.as_str() {
                "max_hourly_cost" => &mut p.max_hourly_cost,
                "allowed_providers" => &mut p.allowed_providers,
                "allowed_regions" => &mut p.allowed_regions,
                "spot_above_gpus" => &mut p.spot_above_gpus,
                "protect_nonempty_buckets" => &mut p.protect_nonempty_buckets,
                _ => {
                    p.description = self.literal_text(a, diags);
                    continue;
                }
            };
            *slot = Some(a.clone());
        }
        for nb in &body.blocks {
            if nb.ident != "rule" {
                diags.push(at(Diagnostic::error("E-UNKNOWN-BLOCK", format!("unknown block `{}` in a policy", nb.ident))
                    .at(nb.span.clone(), "here")
                    .hint(suggest(&nb.ident, &["rule"]))));
                continue;
            }
            if let Some(r) = self.rule(nb, name, diags) {
                p.rules.push(r);
            }
        }
        if body.attrs.iter().all(|a| a.name == "description") && body.blocks.is_empty() {
            diags.push(at(Diagnostic::warning("W-POLICY-EMPTY", format!("policy `{name}` checks nothing"))
                .at(p.span.clone(), "here")
                .hint("set max_hourly_cost, allowed_providers, allowed_regions, spot_above_gpus or protect_nonempty_buckets, or add a `rule { condition = ..., message = \"...\" }` block")));
        }
        p
    }

    fn rule(&self, nb: &NestedBlock, policy: &str, diags: &mut Diagnostics) -> Option<PolicyRule> {
        let at = |d: Diagnostic| d.address(format!("policy.{policy}"));
        let mut ok = true;
        if !nb.labels.is_empty() {
            diags.push(at(Diagnostic::error("E-BLOCK-LABELS", "a `rule` block takes no labels")
                .at(nb.span.clone(), "here")
                .hint("write `rule { condition = ..., message = \"...\" }`")));
            ok = false;
        }
        for a in nb.body.attrs.iter().filter(|a| a.name != "condition" && a.name != "message") {
            diags.push(at(self.unknown_attr(a, &a.name, "rule", &["condition", "message"])));
        }
        for b in &nb.body.blocks {
            diags.push(at(Diagnostic::error("E-UNKNOWN-BLOCK", format!("unexpected block `{}` in a rule", b.ident))
                .at(b.span.clone(), "here")
                .hint("a rule holds `condition` and `message`")));
        }
        let condition = nb.body.attr("condition");
        let message = nb.body.attr("message");
        if let Some(m) = message {
            if literal_type(&m.expr.node).is_some_and(|t| t != "string") {
                diags.push(at(Diagnostic::error("E-CONFIG-TYPE", "a rule's `message` must be a string")
                    .or_at(m.expr.span())
                    .hint("write message = \"jobs must run on spot\"; it may use ${change.address}")));
                ok = false;
            }
        }
        if let Some(c) = condition {
            if let Some(t) = literal_type(&c.expr.node).filter(|t| *t != "bool") {
                diags.push(at(Diagnostic::error("E-CONFIG-TYPE", format!("a rule's `condition` must be true or false, found a {t}"))
                    .or_at(c.expr.span())
                    .hint("write an expression over change and plan, such as condition = change.action != \"delete\"")));
                ok = false;
            }
        }
        match (condition, message) {
            (Some(c), Some(m)) if ok => Some(PolicyRule { condition: c.expr.clone(), message: m.expr.clone(), span: nb.span.clone() }),
            (Some(_), Some(_)) => None,
            _ => {
                let missing: Vec<&str> = [("condition", condition.is_none()), ("message", message.is_none())]
                    .into_iter()
                    .filter(|(_, m)| *m)
                    .map(|(n, _)| n)
                    .collect();
                diags.push(at(Diagnostic::error(
                    "E-POLICY-RULE",
                    format!("a `rule` block needs `condition` and `message`: `{}` is missing", missing.join("` and `")),
                )
                .at(nb.span.clone(), "here")
                .hint("write rule { condition = change.action != \"delete\", message = \"nothing may be destroyed\" }")));
                None
            }
        }
    }
}

/// Policies and the catalog belong to the root module: a called module's are reported (each at
/// its block) and dropped.
pub(crate) fn root_only(module: &mut Module, path: &[String], diags: &mut Diagnostics) {
    let address = path.iter().map(|m| format!("module.{m}")).collect::<Vec<_>>().join(".");
    for p in std::mem::take(&mut module.policies).into_values() {
        diags.push(
            Diagnostic::error(
                "E-POLICY-MODULE",
                format!("policy `{}` is declared in `{address}`: policies belong to the root module", p.name),
            )
            .at(p.span, "here")
            .address(&address)
            .hint("move the policy block to the root module's files; a policy checks the whole plan"),
        );
    }
    if let Some(c) = module.catalog.take() {
        diags.push(
            Diagnostic::error("E-CATALOG-MODULE", format!("a `catalog` block is declared in `{address}`: it belongs to the root module"))
                .at(c.span, "here")
                .address(&address)
                .hint("move the catalog block to the root module's files; one catalog serves the whole configuration"),
        );
    }
}
