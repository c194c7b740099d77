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

/// The most instances one resource may have (`count` or `for_each`). Each instance is planned,
/// stored and shown; ten million would exhaust memory long before apply.
pub const MAX_INSTANCES_PER_RESOURCE: usize = 100_000;
/// The most instances of all resources together in one configuration.
pub const MAX_INSTANCES: usize = 1_000_000;

/// The instance keys of a resource, with what each sees as `count.index` / `each`.
pub(crate) fn expand(r: &Resource, addr: &ResourceAddr, scope: &dyn Scope) -> Result<Vec<(InstanceKey, Repetition)>, Diagnostics> {
    if let Some(c) = &r.count {
        let v = eval(c, scope)?;
        let at = c.span();
        let bad = |msg: String| -> Diagnostics {
            Diagnostic::error("E-COUNT", msg)
                .or_at(at.clone())
                .address(addr)
                .hint("count must be a whole number known before apply, such as 3 or length(var.names)")
                .into()
        };
        if v.contains_unknown() {
            return Err(bad("`count` depends on values known only after apply".into()));
        }
        let n = v
            .as_number()
            .or_else(|| v.as_str().and_then(kiln_value::parse_number))
            .ok_or_else(|| bad(format!("`count` must be a number, got {}", v.type_name())))?;
        if n.is_sign_negative() || !n.fract().is_zero() {
            return Err(bad(format!("`count` must be a whole number ≥ 0, got {n}")));
        }
        let n: usize = n
            .to_string()
            .parse()
            .ok()
            .filter(|n| *n <= MAX_INSTANCES_PER_RESOURCE)
            .ok_or_else(|| bad(format!("`count` is {n}, more than the {MAX_INSTANCES_PER_RESOURCE} instances a resource may have")))?;
        return Ok((0..n).map(|i| (InstanceKey::Int(i as u64), Repetition::Count(i))).collect());
    }
    if let Some(f) = &r.for_each {
        let v = eval(f, scope)?;
        let at = f.span();
        let bad = |msg: String| -> Diagnostics {
            Diagnostic::error("E-FOR-EACH", msg)
                .or_at(at.clone())
                .address(addr)
                .hint("for_each takes a map, or a set of strings such as toset([\"a\", \"b\"]), known before apply")
                .into()
        };
        if v.contains_unknown() {
            return Err(bad("`for_each` depends on values known only after apply".into()));
        }
        if v.is_sensitive() {
            return Err(bad("`for_each` cannot use a sensitive value: instance keys are shown in plans".into()));
        }
        let len = match &v {
            Value::Map(m) => m.len(),
            Value::List(l) => l.len(),
            _ => 0,
        };
        if len > MAX_INSTANCES_PER_RESOURCE {
            return Err(bad(format!(
                "`for_each` has {len} elements, more than the {MAX_INSTANCES_PER_RESOURCE} instances a resource may have"
            )));
        }
        return match v {
            Value::Map(m) => Ok(m.into_iter().map(|(k, v)| (InstanceKey::Str(k.clone()), Repetition::Each { key: k, value: v })).collect()),
            Value::List(l) => {
                let mut out = Vec::with_capacity(l.len());
                let mut seen = std::collections::HashSet::new();
                for item in l {
                    let Some(s) = item.as_str() else {
                        return Err(bad(format!("`for_each` over a list needs strings, found a {}", item.type_name())));
                    };
                    if !seen.insert(s.to_string()) {
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

/// Checks that `adding` more instances of the resource at `addr` keep the configuration within
/// [`MAX_INSTANCES`], given `existing` instances of the resources planned before it.
pub(crate) fn check_total(existing: usize, adding: usize, r: &Resource, addr: &ResourceAddr) -> Result<(), Diagnostics> {
    if existing.saturating_add(adding) <= MAX_INSTANCES {
        return Ok(());
    }
    let at = r.count.as_ref().or(r.for_each.as_ref()).and_then(|e| e.span()).unwrap_or(r.span.clone());
    Err(Diagnostic::error("E-INSTANCES", format!("the configuration has more than {MAX_INSTANCES} resource instances, the limit"))
        .at(at, format!("{adding} more instances here"))
        .address(addr)
        .hint("split the configuration into several, each with its own state")
        .into())
}

/// Points a provider's diagnostic about one attribute (see [`Diagnostic::attribute`]: a name, or
/// a path into nested blocks such as `recovery.on`) at that attribute's expression in `r`, when it
/// has no location of its own.
pub(crate) fn locate(d: Diagnostic, r: &Resource) -> Diagnostic {
    let at = d.attribute.as_deref().and_then(|path| crate::providers::attribute_span(&r.body, path));
    d.or_at(at)
}

/// Evaluates `body` against `schema` into a map of every attribute the schema declares.
pub(crate) fn eval_body(body: &Body, schema: &SchemaBody, scope: &dyn Scope, decl: &Span) -> Result<Value, Diagnostics> {
    eval_part(body, Part::ALL, schema, scope, decl)
}

/// The part of a body that one reader sees: the attributes and nested blocks it keeps, by name.
/// Evaluating a part reads it in place, without a copy of the body's expressions (placement's
/// request and the chosen provider's body are parts of one block).
#[derive(Clone, Copy)]
pub(crate) struct Part {
    pub attr: fn(&str) -> bool,
    pub block: fn(&str) -> bool,
}

impl Part {
    pub const ALL: Part = Part { attr: |_| true, block: |_| true };
}

/// [`eval_body`] of the `part` of `body` (what is left out is as if not written).
pub(crate) fn eval_part(body: &Body, part: Part, schema: &SchemaBody, scope: &dyn Scope, decl: &Span) -> Result<Value, Diagnostics> {
    let mut out = Map::new();
    let mut diags = Diagnostics::new();
    for a in body.attrs.iter().filter(|a| (part.attr)(&a.name)) {
        let Some(s) = schema.attributes.get(&a.name) else {
            let known: Vec<&str> = schema.attributes.iter().filter(|(_, s)| s.required || s.optional).map(|(n, _)| n.as_str()).collect();
            let hint = if schema.blocks.contains_key(&a.name) {
                format!("`{}` is a block: write `{} {{ ... }}`", a.name, a.name)
            } else {
                kiln_config_suggest(&a.name, &known)
            };
            diags.push(
                Diagnostic::error("E-UNKNOWN-ATTR", format!("unsupported attribute `{}`", a.name))
                    .at(a.name_span.clone(), "not in this kind's schema")
                    .hint(hint),
            );
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
        if out.contains_key(name) || ((part.attr)(name) && body.attr(name).is_some()) {
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
        let blocks: Vec<_> = body.blocks.iter().filter(|b| &b.ident == name && (part.block)(&b.ident)).collect();
        if let Some(max) = bs.max_items.or(if bs.nesting == Nesting::Single { Some(1) } else { None }) {
            if blocks.len() > max {
                diags.push(
                    Diagnostic::error("E-BLOCK-COUNT", format!("at most {max} `{name}` block(s) allowed"))
                        .at(blocks[max].span.clone(), "one too many"),
                );
            }
        }
        if blocks.len() < bs.min_items {
            diags.push(
                Diagnostic::error("E-BLOCK-COUNT", format!("at least {} `{name}` block(s) required", bs.min_items))
                    .at(decl.clone(), "in this block"),
            );
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
    for b in body.blocks.iter().filter(|b| (part.block)(&b.ident)) {
        if !schema.blocks.contains_key(&b.ident) {
            let known: Vec<&str> = schema.blocks.keys().map(String::as_str).collect();
            let hint = if schema.attributes.contains_key(&b.ident) {
                format!("`{}` is an attribute: write `{} = ...`", b.ident, b.ident)
            } else {
                kiln_config_suggest(&b.ident, &known)
            };
            diags.push(
                Diagnostic::error("E-UNKNOWN-BLOCK", format!("unsupported block `{}`", b.ident))
                    .at(b.span.clone(), "not in this kind's schema")
                    .hint(hint),
            );
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
        _ => Err(Diagnostic::error(
            "E-BLOCK-LABELS",
            format!(
                "a `{}` block takes no label{}",
                b.ident,
                if schema.attributes.contains_key("name") { "s but one, its name" } else { "" }
            ),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_of_all_resources_together_are_limited() {
        let src = "resource \"record\" \"r\" {\n  count = 100000\n}\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.kiln.hcl"), src).unwrap();
        let config = kiln_config::load(dir.path()).0.unwrap();
        let r = &config.root.module.resources[0];
        let addr = crate::graph::resource_addr(&[], r);
        assert!(check_total(MAX_INSTANCES - 100_000, 100_000, r, &addr).is_ok());
        let d = check_total(MAX_INSTANCES - 99_999, 100_000, r, &addr).unwrap_err();
        let e = d.iter().next().unwrap();
        assert_eq!(e.code, "E-INSTANCES");
        assert_eq!(&src[e.primary.as_ref().unwrap().span.range.clone()], "100000");
    }
}
