//! One resource's instances: `count`/`for_each` expansion and evaluation of a block body against
//! the kind's schema (unknown attributes, missing required ones, type conversion, nested blocks,
//! defaults), with every problem reported at its span.

use kiln_addrs::{InstanceKey, ResourceAddr};
use kiln_config::{Body, Resource};
use kiln_diag::{Diagnostic, Diagnostics, Span};
use kiln_eval::{eval, Scope};
use kiln_schema::{Body as SchemaBody, Nesting};
use kiln_value::{convert, Map, Value};

use crate::scope::Repetition;

/// The instance keys of a resource, with what each sees as `count.index` / `each`.
pub(crate) fn expand(r: &Resource, addr: &ResourceAddr, scope: &dyn Scope) -> Result<Vec<(InstanceKey, Repetition)>, Diagnostics> {
    if let Some(c) = &r.count {
        let v = eval(c, scope)?;
        let at = c.span();
        let bad = |msg: String| -> Diagnostics {
            Diagnostic::error("E-COUNT", msg).or_at(at.clone()).address(addr).hint("count must be a whole number known before apply, such as 3 or length(var.names)").into()
        };
        if v.contains_unknown() {
            return Err(bad("`count` depends on values known only after apply".into()));
        }
        let n = v.as_number().or_else(|| v.as_str().and_then(kiln_value::parse_number)).ok_or_else(|| bad(format!("`count` must be a number, got {}", v.type_name())))?;
        if n.is_sign_negative() || !n.fract().is_zero() {
            return Err(bad(format!("`count` must be a whole number ≥ 0, got {n}")));
        }
        let n: usize = n.to_string().parse().map_err(|_| bad("`count` is too large".into()))?;
        return Ok((0..n).map(|i| (InstanceKey::Int(i as u64), Repetition::Count(i))).collect());
    }
    if let Some(f) = &r.for_each {
        let v = eval(f, scope)?;
        let at = f.span();
        let bad = |msg: String| -> Diagnostics {
            Diagnostic::error("E-FOR-EACH", msg).or_at(at.clone()).address(addr).hint("for_each takes a map, or a set of strings such as toset([\"a\", \"b\"]), known before apply").into()
        };
        if v.contains_unknown() {
            return Err(bad("`for_each` depends on values known only after apply".into()));
        }
        if v.is_sensitive() {
            return Err(bad("`for_each` cannot use a sensitive value: instance keys are shown in plans".into()));
        }
        return match v {
            Value::Map(m) => Ok(m.into_iter().map(|(k, v)| (InstanceKey::Str(k.clone()), Repetition::Each { key: k, value: v })).collect()),
            Value::List(l) => {
                let mut out = Vec::with_capacity(l.len());
                for item in l {
                    let Some(s) = item.as_str() else { return Err(bad(format!("`for_each` over a list needs strings, found a {}", item.type_name()))) };
                    if out.iter().any(|(k, _)| *k == InstanceKey::Str(s.to_string())) {
                        return Err(bad(format!("`for_each` has the key \"{s}\" twice")));
                    }
                    out.push((InstanceKey::Str(s.to_string()), Repetition::Each { key: s.to_string(), value: item.clone() }));
                }
                Ok(out)
            }
            Value::Null => Err(bad("`for_each` is null".into())),
            other => Err(bad(format!("`for_each` must be a map or a set of strings, got {}", other.type_name()))),
        };
    }
    Ok(vec![(InstanceKey::None, Repetition::None)])
}

/// Evaluates `body` against `schema` into a map of every attribute the schema declares.
pub(crate) fn eval_body(body: &Body, schema: &SchemaBody, scope: &dyn Scope, decl: &Span) -> Result<Value, Diagnostics> {
    let mut out = Map::new();
    let mut diags = Diagnostics::new();
    for a in &body.attrs {
        let Some(s) = schema.attributes.get(&a.name) else {
            let known: Vec<&str> = schema.attributes.iter().filter(|(_, s)| s.required || s.optional).map(|(n, _)| n.as_str()).collect();
            let hint = if schema.blocks.contains_key(&a.name) {
                format!("`{}` is a block: write `{} {{ ... }}`", a.name, a.name)
            } else {
                kiln_config_suggest(&a.name, &known)
            };
            diags.push(Diagnostic::error("E-UNKNOWN-ATTR", format!("unsupported attribute `{}`", a.name)).at(a.name_span.clone(), "not in this kind's schema").hint(hint));
            continue;
        };
        if !s.required && !s.optional {
            diags.push(
                Diagnostic::error("E-COMPUTED-ATTR", format!("`{}` is set by the provider and cannot be configured", a.name))
                    .at(a.name_span.clone(), "computed attribute")
                    .hint("remove it; read it from the resource instead"),
            );
            continue;
        }
        match eval(&a.expr, scope) {
            Ok(v) => match convert(v, &s.ty) {
                Ok(v) => {
                    out.insert(a.name.clone(), v.mark_if(s.sensitive));
                }
                Err(e) => diags.push(
                    Diagnostic::error("E-ATTR-TYPE", format!("invalid value for `{}`: {e}", a.name))
                        .or_at(a.expr.span())
                        .hint(format!("`{}` takes a value of type {}", a.name, s.ty)),
                ),
            },
            Err(d) => diags.extend(d),
        }
    }
    for (name, s) in &schema.attributes {
        if out.contains_key(name) || body.attr(name).is_some() {
            continue;
        }
        if s.required {
            diags.push(
                Diagnostic::error("E-MISSING-ATTR", format!("missing required attribute `{name}`"))
                    .at(decl.clone(), "in this block")
                    .hint(format!("add `{name} = ...` ({}: {})", s.ty, s.description)),
            );
        } else {
            out.insert(name.clone(), s.default.clone().unwrap_or(Value::Null));
        }
    }
    for (name, bs) in &schema.blocks {
        let blocks: Vec<_> = body.blocks.iter().filter(|b| &b.ident == name).collect();
        if let Some(max) = bs.max_items.or(if bs.nesting == Nesting::Single { Some(1) } else { None }) {
            if blocks.len() > max {
                diags.push(Diagnostic::error("E-BLOCK-COUNT", format!("at most {max} `{name}` block(s) allowed")).at(blocks[max].span.clone(), "one too many"));
            }
        }
        if blocks.len() < bs.min_items {
            diags.push(Diagnostic::error("E-BLOCK-COUNT", format!("at least {} `{name}` block(s) required", bs.min_items)).at(decl.clone(), "in this block"));
        }
        let mut vals = Vec::new();
        for b in &blocks {
            match (eval_body(&b.body, &bs.body, scope, &b.span), labelled(b, &bs.body)) {
                (Ok(v), Ok(label)) => vals.push(with_label(v, label)),
                (r, l) => {
                    diags.extend(r.err().into_iter().flatten());
                    diags.extend(l.err());
                }
            }
        }
        let v = match bs.nesting {
            Nesting::Single => vals.into_iter().next().unwrap_or(Value::Null),
            Nesting::List => Value::List(vals),
        };
        out.insert(name.clone(), v);
    }
    for b in &body.blocks {
        if !schema.blocks.contains_key(&b.ident) {
            let known: Vec<&str> = schema.blocks.keys().map(String::as_str).collect();
            let hint = if schema.attributes.contains_key(&b.ident) { format!("`{}` is an attribute: write `{} = ...`", b.ident, b.ident) } else { kiln_config_suggest(&b.ident, &known) };
            diags.push(Diagnostic::error("E-UNKNOWN-BLOCK", format!("unsupported block `{}`", b.ident)).at(b.span.clone(), "not in this kind's schema").hint(hint));
        }
    }
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(Value::Map(out))
    }
}

/// A nested block's label (`host "gpu-01" { ... }`) is its `name` when the block's schema has a
/// `name` attribute; any other label is an error.
fn labelled<'b>(b: &'b kiln_config::NestedBlock, schema: &SchemaBody) -> Result<Option<&'b str>, Diagnostic> {
    match b.labels.as_slice() {
        [] => Ok(None),
        [label] if schema.attributes.contains_key("name") => {
            if b.body.attr("name").is_some() {
                return Err(Diagnostic::error("E-BLOCK-LABELS", format!("`{}` is named twice: by its label and by `name`", b.ident))
                    .at(b.span.clone(), "here")
                    .hint("keep one of them"));
            }
            Ok(Some(label))
        }
        _ => Err(Diagnostic::error("E-BLOCK-LABELS", format!("a `{}` block takes no label{}", b.ident, if schema.attributes.contains_key("name") { "s but one, its name" } else { "" }))
            .at(b.span.clone(), "here")
            .hint(format!("write `{} {{ ... }}`", b.ident))),
    }
}

fn with_label(v: Value, label: Option<&str>) -> Value {
    match (v, label) {
        (Value::Map(mut m), Some(l)) => {
            m.insert("name".to_string(), Value::from(l));
            Value::Map(m)
        }
        (v, _) => v,
    }
}

fn kiln_config_suggest(word: &str, known: &[&str]) -> String {
    if known.is_empty() {
        return "this kind takes no such setting".to_string();
    }
    kiln_config::suggest(word, known)
}
