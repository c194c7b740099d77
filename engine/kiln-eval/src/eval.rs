//! Evaluation of one expression against a [`Scope`]. Errors become diagnostics pointing at the
//! sub-expression at fault; all errors found in independent sub-expressions are reported.
//! Also Terraform's parse-time template rules (strip markers, `<<-` dedent), applied once when
//! an [`Expr`] is built.

use std::collections::BTreeMap;
use std::str::FromStr;

use hcl_edit::expr::{BinaryOperator, Expression, ForExpr, TraversalOperator, UnaryOperator};
use hcl_edit::template::{Directive, Element, Strip, Template};
use kiln_diag::{Diagnostic, Diagnostics, FileId, Span};
use kiln_value::{Decimal, Map, Value};

use crate::funcs::{self, FuncCtx};
use crate::refs::{parse_ref, Parsed};
use crate::{Expr, Scope};

/// The most `for` iterations (of expressions and `%{for}` directives together) one expression
/// may run: nested loops multiply (`range` alone makes 1,024 values), and results must fit in
/// memory.
pub const MAX_ITERATIONS: usize = 1_000_000;

thread_local! {
    /// Iterations run so far by the expression being evaluated on this thread.
    static ITERATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Spends `n` iterations of the expression being evaluated; false once past [`MAX_ITERATIONS`].
fn spend_iterations(n: usize) -> bool {
    ITERATIONS.with(|c| {
        let used = c.get().saturating_add(n);
        c.set(used);
        used <= MAX_ITERATIONS
    })
}

fn too_many_iterations(at: Option<Span>) -> Diagnostics {
    Diagnostic::error("E-FOR-LIMIT", format!("this expression runs more than {MAX_ITERATIONS} `for` iterations"))
        .or_at(at)
        .hint("kiln bounds the work of one expression: iterate over fewer elements or nest fewer loops")
        .into()
}

/// Evaluates `expr`. On error the value is `Unknown` and the diagnostics say why.
pub fn eval(expr: &Expr, scope: &dyn Scope) -> Result<Value, Diagnostics> {
    ITERATIONS.with(|c| c.set(0));
    let mut ev = Evaluator::new(expr.file, scope);
    let v = ev.eval(&expr.node)?;
    // Values deeper than kiln's limit could not be stored or read back (nor dropped safely).
    if funcs::value_depth(&v) > kiln_value::MAX_DEPTH {
        return Err(Diagnostic::error(
            "E-VALUE-DEPTH",
            format!("this value nests lists and objects more than {} levels deep", kiln_value::MAX_DEPTH),
        )
        .or_at(expr.span())
        .hint("kiln values may nest at most that deep; flatten the structure (for example with flatten() or a map of names)")
        .into());
    }
    Ok(v)
}

/// Renders a template file (`templatefile`) with only `vars` in scope.
pub fn eval_template_file(file: FileId, template: &Template, vars: Map, scope: &dyn Scope) -> Result<Value, Diagnostics> {
    let mut ev = Evaluator::new(file, scope);
    ev.locals = vars.into_iter().collect();
    ev.only_locals = true;
    ev.template(template)
}

type R = Result<Value, Diagnostics>;

pub struct Evaluator<'s> {
    file: FileId,
    scope: &'s dyn Scope,
    /// Names bound by `for` expressions and directives, innermost last.
    locals: Vec<(String, Value)>,
    /// In `templatefile`, only the given variables are visible.
    only_locals: bool,
}

fn span_of(file: FileId, e: &impl hcl_edit::Span) -> Option<Span> {
    e.span().map(|r| Span::new(file, r))
}

impl<'s> Evaluator<'s> {
    pub fn new(file: FileId, scope: &'s dyn Scope) -> Self {
        Evaluator { file, scope, locals: Vec::new(), only_locals: false }
    }

    fn err(&self, at: &impl hcl_edit::Span, code: &'static str, summary: impl Into<String>) -> Diagnostic {
        Diagnostic::error(code, summary).or_at(span_of(self.file, at))
    }

    pub fn eval(&mut self, e: &Expression) -> R {
        match e {
            Expression::Null(_) => Ok(Value::Null),
            Expression::Bool(b) => Ok(Value::Bool(*b.value())),
            Expression::Number(n) => {
                // The source text is exact (`0.1`, `12345678901234567890123`); the parsed value is
                // an f64 and is only used for numbers built without source.
                let parse = |t: &str| Decimal::from_str(t).or_else(|_| Decimal::from_scientific(t)).ok();
                let repr = n.as_repr().map(|r| r.split_whitespace().collect::<String>()).filter(|r| !r.is_empty());
                let text = repr.unwrap_or_else(|| n.value().to_string());
                // Falls back to the f64 value for odd source text, never for an exponent that is
                // out of range (the f64 would round it silently).
                parse(&text)
                    .or_else(|| parse(&n.value().to_string()).filter(|_| !text.contains(['e', 'E'])))
                    .map(|d| Value::Number(d.normalize()))
                    .ok_or_else(|| {
                        self.err(n, "E-NUMBER-RANGE", format!("number `{text}` is out of range"))
                            .hint("kiln numbers are exact decimals of up to 28 digits, between about -7.9e28 and 7.9e28")
                            .into()
                    })
            }
            Expression::String(s) => Ok(Value::String(s.value().clone())),
            Expression::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                let mut diags = Diagnostics::new();
                for x in a.iter() {
                    match self.eval(x) {
                        Ok(v) => out.push(v),
                        Err(d) => diags.extend(d),
                    }
                }
                if diags.has_errors() {
                    Err(diags)
                } else {
                    Ok(Value::List(out))
                }
            }
            Expression::Object(o) => {
                let mut out = Map::new();
                let mut diags = Diagnostics::new();
                let mut unknown_key = false;
                // As in Terraform, a sensitive key makes the whole object sensitive.
                let mut marked = false;
                for (k, v) in o.iter() {
                    let key = match k {
                        hcl_edit::expr::ObjectKey::Ident(i) => Ok(Value::String(i.as_str().to_string())),
                        hcl_edit::expr::ObjectKey::Expression(e) => self.eval(e),
                    };
                    let val = self.eval(v.expr());
                    match (key, val) {
                        (Ok(kv), Ok(v)) => {
                            marked |= kv.is_sensitive();
                            match kv.unmarked() {
                                Value::Unknown => unknown_key = true,
                                Value::Null => diags.push(self.err(k, "E-OBJECT-KEY", "an object key cannot be null")),
                                kv => match kv.to_template_string() {
                                    Some(s) => {
                                        out.insert(s, v);
                                    }
                                    None => diags.push(self.err(
                                        k,
                                        "E-OBJECT-KEY",
                                        format!("an object key must be a string, got {}", kv.type_name()),
                                    )),
                                },
                            }
                        }
                        (k, v) => {
                            diags.extend(k.err().into_iter().flatten());
                            diags.extend(v.err().into_iter().flatten());
                        }
                    }
                }
                if diags.has_errors() {
                    Err(diags)
                } else if unknown_key {
                    Ok(Value::Unknown.mark_if(marked))
                } else {
                    Ok(Value::Map(out).mark_if(marked))
                }
            }
            Expression::StringTemplate(t) => self.template_of(t, TemplateKind::Quoted),
            Expression::HeredocTemplate(h) => self.template_of(&h.template, TemplateKind::Lines),
            Expression::Parenthesis(p) => self.eval(p.inner()),
            Expression::Variable(v) => self.traversal(e, v.as_str(), &[]),
            Expression::Traversal(t) => {
                let ops: Vec<&TraversalOperator> = t.operators.iter().map(|o| o.value()).collect();
                match &t.expr {
                    Expression::Variable(v) => self.traversal(e, v.as_str(), &ops),
                    base => {
                        let v = self.eval(base)?;
                        self.apply_ops(e, v, &ops)
                    }
                }
            }
            Expression::Conditional(c) => {
                let cond = self.eval(&c.cond_expr)?;
                let (cond, marked) = cond.unmark();
                let take = match cond {
                    Value::Unknown => None,
                    Value::Bool(b) => Some(b),
                    Value::String(s) if s == "true" => Some(true),
                    Value::String(s) if s == "false" => Some(false),
                    other => {
                        return Err(self
                            .err(&c.cond_expr, "E-COND-TYPE", format!("condition must be a bool, got {}", describe(&other, marked)))
                            .hint("compare the value, for example `var.x != \"\"` or `var.n > 0`")
                            .into())
                    }
                };
                // Like Terraform, both results are evaluated to find a common type, but only the
                // errors of the chosen one count (`var.x == null ? "none" : var.x.name`).
                let t = self.eval(&c.true_expr);
                let f = self.eval(&c.false_expr);
                let r = match take {
                    // Unknown condition: unknown, unless both results are null.
                    None => match (&t, &f) {
                        (Ok(a), Ok(b)) if a.is_null() && b.is_null() => Value::Null,
                        _ => Value::Unknown,
                    },
                    Some(true) => unify_result(t?, f.ok().as_ref()),
                    Some(false) => unify_result(f?, t.ok().as_ref()),
                };
                Ok(r.mark_if(marked))
            }
            Expression::FuncCall(f) => self.call(f),
            Expression::UnaryOp(u) => {
                let v = self.eval(&u.expr)?;
                let (v, marked) = v.unmark();
                let r = match (u.operator.value(), v) {
                    (_, Value::Unknown) => Value::Unknown,
                    (UnaryOperator::Not, v) => match to_bool(&v) {
                        Some(b) => Value::Bool(!b),
                        None => return Err(self.err(&u.expr, "E-OP-TYPE", format!("`!` needs a bool, got {}", v.type_name())).into()),
                    },
                    (UnaryOperator::Neg, v) => match to_number(&v) {
                        Some(n) => Value::Number(-n),
                        None => return Err(self.err(&u.expr, "E-OP-TYPE", format!("`-` needs a number, got {}", v.type_name())).into()),
                    },
                };
                Ok(r.mark_if(marked))
            }
            Expression::BinaryOp(b) => self.binary(b),
            Expression::ForExpr(f) => self.for_expr(f),
        }
    }

    fn traversal(&mut self, whole: &Expression, root: &str, ops: &[&TraversalOperator]) -> R {
        if let Some(i) = self.locals.iter().rposition(|(n, _)| n == root) {
            let v = self.locals[i].1.clone();
            return self.apply_ops(whole, v, ops);
        }
        if self.only_locals {
            let names: Vec<&str> = self.locals.iter().map(|(n, _)| n.as_str()).collect();
            return Err(self
                .err(whole, "E-TEMPLATE-VAR", format!("template variable `{root}` is not defined"))
                .hint(format!("pass it in templatefile's second argument; defined: {}", names.join(", ")))
                .into());
        }
        match parse_ref(root, ops) {
            Parsed::Ref(r, used) => {
                let v = self.scope.resolve(&r).map_err(|d| {
                    // A diagnostic that points elsewhere (a declaration) keeps its label and
                    // gains the reference as a second one.
                    let at = span_of(self.file, whole);
                    Diagnostics::from(match at {
                        Some(at) if d.primary.is_some() => d.also(at, "referenced here"),
                        at => d.or_at(at),
                    })
                })?;
                self.apply_ops(whole, v, &ops[used..])
            }
            Parsed::Incomplete(want) => {
                Err(self.err(whole, "E-REF-INCOMPLETE", format!("`{root}` cannot be used alone")).hint(format!("write {want}")).into())
            }
            Parsed::Bare => Err(self
                .err(whole, "E-REF-UNKNOWN", format!("unknown name `{root}`"))
                .hint("references look like var.NAME, local.NAME, KIND.NAME (a resource), data.KIND.NAME or module.NAME.OUTPUT")
                .into()),
        }
    }

    fn apply_ops(&mut self, whole: &Expression, mut v: Value, ops: &[&TraversalOperator]) -> R {
        for (i, op) in ops.iter().enumerate() {
            match op {
                TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => {
                    let (inner, marked) = v.unmark();
                    let items = match inner {
                        Value::Unknown => return Ok(Value::Unknown),
                        Value::Null => Vec::new(),
                        Value::List(l) => l,
                        other => vec![other],
                    };
                    // `a[*].b[0]` applies `.b[0]` to each element; the legacy `a.*.b[0]` applies
                    // only the attribute accesses (`.b`) and indexes the resulting list.
                    let rest = &ops[i + 1..];
                    let (each, after) = match op {
                        TraversalOperator::AttrSplat(_) => {
                            let n = rest.iter().take_while(|o| matches!(o, TraversalOperator::GetAttr(_))).count();
                            rest.split_at(n)
                        }
                        _ => (rest, &[][..]),
                    };
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        out.push(self.apply_ops(whole, item, each)?);
                    }
                    return self.apply_ops(whole, Value::List(out).mark_if(marked), after);
                }
                TraversalOperator::GetAttr(name) => v = self.get_attr(whole, v, name.as_str())?,
                TraversalOperator::Index(idx) => {
                    let k = self.eval(idx)?;
                    v = self.index(idx, v, k)?;
                }
                TraversalOperator::LegacyIndex(n) => v = self.index_num(whole, v, *n.value())?,
            }
        }
        Ok(v)
    }

    fn get_attr(&self, at: &Expression, v: Value, name: &str) -> R {
        let (inner, marked) = v.unmark();
        let r = match inner {
            Value::Unknown => Value::Unknown,
            Value::Map(mut m) => match m.remove(name) {
                Some(x) => x,
                None => {
                    let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
                    keys.truncate(20);
                    return Err(self
                        .err(at, "E-ATTR-MISSING", format!("this object has no attribute `{name}`"))
                        .hint(if keys.is_empty() {
                            "the object is empty".to_string()
                        } else {
                            format!("attributes are: {}", keys.join(", "))
                        })
                        .into());
                }
            },
            Value::Null => return Err(self.err(at, "E-ATTR-NULL", format!("cannot read `{name}` of a null value")).into()),
            Value::List(_) => {
                return Err(self
                    .err(at, "E-ATTR-LIST", format!("cannot read `{name}` of a list"))
                    .hint(format!("pick an element with [INDEX].{name}, or all of them with [*].{name}"))
                    .into())
            }
            other => return Err(self.err(at, "E-ATTR-TYPE", format!("cannot read `{name}` of a {}", other.type_name())).into()),
        };
        Ok(r.mark_if(marked))
    }

    fn index(&self, at: &Expression, v: Value, k: Value) -> R {
        let (k, kmarked) = k.unmark();
        let (inner, marked) = v.unmark();
        let marked = marked || kmarked;
        let r = match (inner, k) {
            (Value::Unknown, _) | (_, Value::Unknown) => Value::Unknown,
            (Value::List(l), k) => {
                let Some(n) = to_number(&k) else {
                    return Err(self.err(at, "E-INDEX-TYPE", format!("a list index must be a number, got {}", k.type_name())).into());
                };
                let len = l.len();
                match usize::try_from(n.trunc().mantissa()).ok().filter(|_| n.fract().is_zero() && n >= Decimal::ZERO) {
                    Some(i) if i < len => l.into_iter().nth(i).unwrap_or_default(),
                    _ => {
                        return Err(self
                            .err(at, "E-INDEX-RANGE", format!("index {} is out of range for a list of {len} elements", shown(n, kmarked)))
                            .into())
                    }
                }
            }
            (Value::Map(mut m), k) => {
                let Some(key) = k.to_template_string() else {
                    return Err(self.err(at, "E-INDEX-TYPE", format!("a map key must be a string, got {}", k.type_name())).into());
                };
                match m.remove(&key) {
                    Some(x) => x,
                    None => {
                        let mut keys: Vec<String> = m.keys().map(|k| format!("\"{k}\"")).collect();
                        keys.truncate(20);
                        if marked {
                            // The key or the map is sensitive: name neither the key nor the keys.
                            return Err(self.err(at, "E-INDEX-MISSING", "the map has no element for this (sensitive) key").into());
                        }
                        return Err(self
                            .err(at, "E-INDEX-MISSING", format!("the map has no element \"{key}\""))
                            .hint(if keys.is_empty() { "the map is empty".into() } else { format!("keys are: {}", keys.join(", ")) })
                            .into());
                    }
                }
            }
            (Value::Null, _) => return Err(self.err(at, "E-INDEX-NULL", "cannot index a null value").into()),
            (other, _) => return Err(self.err(at, "E-INDEX-TYPE", format!("cannot index a {}", other.type_name())).into()),
        };
        Ok(r.mark_if(marked))
    }

    fn index_num(&self, at: &Expression, v: Value, n: u64) -> R {
        self.index(at, v, Value::Number(n.into()))
    }

    fn binary(&mut self, b: &hcl_edit::expr::BinaryOp) -> R {
        use BinaryOperator::*;
        let op = *b.operator.value();
        let lhs = self.eval(&b.lhs_expr);
        // Short-circuit like Terraform does not: both sides are evaluated, errors from both reported.
        let rhs = self.eval(&b.rhs_expr);
        let (lhs, rhs) = match (lhs, rhs) {
            (Ok(l), Ok(r)) => (l, r),
            (l, r) => {
                let mut d = Diagnostics::new();
                d.extend(l.err().into_iter().flatten());
                d.extend(r.err().into_iter().flatten());
                return Err(d);
            }
        };
        let (l, lm) = lhs.unmark_deep();
        let (r, rm) = rhs.unmark_deep();
        let marked = lm || rm;
        let result = match op {
            Eq | NotEq => match l.known_eq(&r) {
                None => Value::Unknown,
                Some(eq) => Value::Bool(eq == (op == Eq)),
            },
            And | Or => {
                let lb = self.bool_operand(&b.lhs_expr, &l)?;
                let rb = self.bool_operand(&b.rhs_expr, &r)?;
                match (lb, rb, op) {
                    (Some(false), _, And) | (_, Some(false), And) => Value::Bool(false),
                    (Some(true), _, Or) | (_, Some(true), Or) => Value::Bool(true),
                    (Some(x), Some(y), _) => Value::Bool(if op == And { x && y } else { x || y }),
                    _ => Value::Unknown,
                }
            }
            _ => {
                let ln = self.num_operand(&b.lhs_expr, &l, lm, op)?;
                let rn = self.num_operand(&b.rhs_expr, &r, rm, op)?;
                let (Some(x), Some(y)) = (ln, rn) else { return Ok(Value::Unknown.mark_if(marked)) };
                match op {
                    Plus => x.checked_add(y).map(Value::Number).ok_or_else(|| self.overflow(b))?,
                    Minus => x.checked_sub(y).map(Value::Number).ok_or_else(|| self.overflow(b))?,
                    Mul => x.checked_mul(y).map(Value::Number).ok_or_else(|| self.overflow(b))?,
                    Div => {
                        if y.is_zero() {
                            return Err(self.err(&b.rhs_expr, "E-DIV-ZERO", "division by zero").into());
                        }
                        x.checked_div(y).map(Value::Number).ok_or_else(|| self.overflow(b))?
                    }
                    Mod => {
                        if y.is_zero() {
                            return Err(self.err(&b.rhs_expr, "E-DIV-ZERO", "modulo by zero").into());
                        }
                        Value::Number(x % y)
                    }
                    Less => Value::Bool(x < y),
                    LessEq => Value::Bool(x <= y),
                    Greater => Value::Bool(x > y),
                    GreaterEq => Value::Bool(x >= y),
                    Eq | NotEq | And | Or => unreachable!("handled above"),
                }
            }
        };
        Ok(result.mark_if(marked))
    }

    fn overflow(&self, b: &hcl_edit::expr::BinaryOp) -> Diagnostics {
        self.err(b, "E-NUMBER-RANGE", "arithmetic overflow").into()
    }

    fn bool_operand(&self, at: &Expression, v: &Value) -> Result<Option<bool>, Diagnostics> {
        if v.is_unknown() {
            return Ok(None);
        }
        to_bool(v).map(Some).ok_or_else(|| self.err(at, "E-OP-TYPE", format!("a bool is required, got {}", v.type_name())).into())
    }

    fn num_operand(&self, at: &Expression, v: &Value, marked: bool, op: BinaryOperator) -> Result<Option<Decimal>, Diagnostics> {
        if v.is_unknown() {
            return Ok(None);
        }
        to_number(v)
            .map(Some)
            .ok_or_else(|| self.err(at, "E-OP-TYPE", format!("`{}` needs numbers, got {}", op.as_str(), describe(v, marked))).into())
    }

    fn for_expr(&mut self, f: &ForExpr) -> R {
        let coll = self.eval(&f.intro.collection_expr)?;
        let (coll, mut marked) = coll.unmark();
        let items: Vec<(Value, Value)> = match coll {
            Value::Unknown => return Ok(Value::Unknown.mark_if(marked)),
            Value::List(l) => l.into_iter().enumerate().map(|(i, v)| (Value::from(i), v)).collect(),
            Value::Map(m) => m.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
            Value::Null => return Err(self.err(&f.intro.collection_expr, "E-FOR-NULL", "cannot iterate over a null value").into()),
            other => {
                return Err(self.err(&f.intro.collection_expr, "E-FOR-TYPE", format!("cannot iterate over a {}", other.type_name())).into())
            }
        };
        let kname = f.intro.key_var.as_ref().map(|k| k.as_str().to_string());
        let vname = f.intro.value_var.as_str().to_string();
        let mut list = Vec::new();
        let mut map: BTreeMap<String, Value> = BTreeMap::new();
        let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut unknown = false;
        if !spend_iterations(items.len()) {
            return Err(too_many_iterations(span_of(self.file, &f.intro.collection_expr)));
        }
        for (k, v) in items {
            let depth = self.locals.len();
            if let Some(kn) = &kname {
                self.locals.push((kn.clone(), k));
            }
            self.locals.push((vname.clone(), v));
            let r = self.for_item(f, &mut list, &mut map, &mut groups, &mut unknown, &mut marked);
            self.locals.truncate(depth);
            r?;
        }
        // Marks of the collection, of `if` conditions and of keys apply to the whole result.
        let out = if unknown {
            Value::Unknown
        } else if f.key_expr.is_some() {
            if f.grouping {
                Value::Map(groups.into_iter().map(|(k, v)| (k, Value::List(v))).collect())
            } else {
                Value::Map(map)
            }
        } else {
            Value::List(list)
        };
        Ok(out.mark_if(marked))
    }

    fn for_item(
        &mut self,
        f: &ForExpr,
        list: &mut Vec<Value>,
        map: &mut BTreeMap<String, Value>,
        groups: &mut BTreeMap<String, Vec<Value>>,
        unknown: &mut bool,
        marked: &mut bool,
    ) -> Result<(), Diagnostics> {
        if let Some(c) = &f.cond {
            let cv = self.eval(&c.expr)?;
            *marked |= cv.is_sensitive();
            match to_bool(cv.unmarked()) {
                Some(true) => {}
                Some(false) => return Ok(()),
                None if cv.is_unknown() => {
                    *unknown = true;
                    return Ok(());
                }
                None => {
                    return Err(self
                        .err(&c.expr, "E-FOR-COND", format!("the `if` condition must be a bool, got {}", describe(&cv, false)))
                        .into())
                }
            }
        }
        let v = self.eval(&f.value_expr)?;
        match &f.key_expr {
            None => list.push(v),
            Some(ke) => {
                let k = self.eval(ke)?;
                *marked |= k.is_sensitive();
                if k.is_unknown() {
                    *unknown = true;
                    return Ok(());
                }
                let Some(key) = k.to_template_string() else {
                    return Err(self.err(ke, "E-FOR-KEY", format!("a `for` key must be a string, got {}", k.type_name())).into());
                };
                if f.grouping {
                    groups.entry(key).or_default().push(v);
                } else if map.insert(key.clone(), v).is_some() {
                    let key = if k.is_sensitive() { kiln_value::REDACTED.to_string() } else { format!("\"{key}\"") };
                    return Err(self
                        .err(ke, "E-FOR-DUPKEY", format!("duplicate key {key} in a `for` expression"))
                        .hint("add `...` after the value to group values with the same key into lists")
                        .into());
                }
            }
        }
        Ok(())
    }

    /// Evaluates a quoted template or a template file.
    pub fn template(&mut self, t: &Template) -> R {
        self.template_of(t, TemplateKind::Quoted)
    }

    fn template_of(&mut self, t: &Template, kind: TemplateKind) -> R {
        // Strip markers are normally applied when the expression is built (`Expr::new`); a tree
        // that still has them is prepared here.
        if has_strip_markers(t) {
            let mut t = t.clone();
            prepare_template(&mut t, kind, None);
            return self.template_of(&t, kind);
        }
        // "${x}" alone keeps x's type, as in Terraform.
        if let Some(Element::Interpolation(i)) = t.as_single_element() {
            return self.eval(&i.expr);
        }
        let mut out = String::new();
        let mut marked = false;
        let mut unknown = false;
        self.render(t, &mut out, &mut marked, &mut unknown)?;
        if unknown {
            return Ok(Value::Unknown.mark_if(marked));
        }
        Ok(Value::String(out).mark_if(marked))
    }

    /// Appends the rendering of `t` to `out`. Strip markers must have been applied already.
    fn render(&mut self, t: &Template, out: &mut String, marked: &mut bool, unknown: &mut bool) -> Result<(), Diagnostics> {
        let mut diags = Diagnostics::new();
        for el in t.iter() {
            match el {
                Element::Literal(s) => out.push_str(s.value()),
                Element::Interpolation(interp) => match self.eval(&interp.expr) {
                    Ok(v) => {
                        *marked |= v.contains_sensitive();
                        match v.unmarked() {
                            Value::Unknown => *unknown = true,
                            Value::Null => diags.push(
                                self.err(&interp.expr, "E-TEMPLATE-NULL", "cannot insert a null value into a string")
                                    .hint("give a default with coalesce(VALUE, \"\") or a conditional"),
                            ),
                            inner => match inner.to_template_string() {
                                Some(s) => out.push_str(&s),
                                None => diags.push(
                                    self.err(&interp.expr, "E-TEMPLATE-TYPE", format!("cannot insert {} into a string", a_type(&v)))
                                        .hint("use jsonencode(...) or join(\",\", ...) to turn it into a string"),
                                ),
                            },
                        }
                    }
                    Err(d) => diags.extend(d),
                },
                Element::Directive(d) => {
                    if let Err(d) = self.directive(d, out, marked, unknown) {
                        diags.extend(d);
                    }
                }
            }
        }
        if diags.has_errors() {
            Err(diags)
        } else {
            Ok(())
        }
    }

    fn directive(&mut self, d: &Directive, out: &mut String, marked: &mut bool, unknown: &mut bool) -> Result<(), Diagnostics> {
        match d {
            Directive::If(d) => {
                let c = self.eval(&d.if_expr.cond_expr)?;
                *marked |= c.is_sensitive();
                match to_bool(c.unmarked()) {
                    Some(true) => self.render(&d.if_expr.template, out, marked, unknown),
                    Some(false) => match &d.else_expr {
                        Some(e) => self.render(&e.template, out, marked, unknown),
                        None => Ok(()),
                    },
                    None if c.is_unknown() => {
                        *unknown = true;
                        Ok(())
                    }
                    None => Err(self
                        .err(
                            &d.if_expr.cond_expr,
                            "E-COND-TYPE",
                            format!("an %{{if}} condition must be a bool, got {}", describe(&c, false)),
                        )
                        .into()),
                }
            }
            Directive::For(d) => {
                let coll = self.eval(&d.for_expr.collection_expr)?;
                let (coll, m) = coll.unmark();
                *marked |= m;
                let items: Vec<(Value, Value)> = match coll {
                    Value::Unknown => {
                        *unknown = true;
                        return Ok(());
                    }
                    Value::List(l) => l.into_iter().enumerate().map(|(i, v)| (Value::from(i), v)).collect(),
                    Value::Map(m) => m.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
                    Value::Null => {
                        return Err(self.err(&d.for_expr.collection_expr, "E-FOR-NULL", "cannot iterate over a null value").into())
                    }
                    other => {
                        return Err(self
                            .err(&d.for_expr.collection_expr, "E-FOR-TYPE", format!("cannot iterate over a {}", other.type_name()))
                            .into())
                    }
                };
                if !spend_iterations(items.len()) {
                    return Err(too_many_iterations(span_of(self.file, &d.for_expr.collection_expr)));
                }
                for (k, v) in items {
                    let depth = self.locals.len();
                    if let Some(kn) = &d.for_expr.key_var {
                        self.locals.push((kn.as_str().to_string(), k));
                    }
                    self.locals.push((d.for_expr.value_var.as_str().to_string(), v));
                    let r = self.render(&d.for_expr.template, out, marked, unknown);
                    self.locals.truncate(depth);
                    r?;
                }
                Ok(())
            }
        }
    }

    fn call(&mut self, f: &hcl_edit::expr::FuncCall) -> R {
        let name = f.name.name.as_str();
        if f.name.is_namespaced() {
            return Err(self
                .err(&f.name.name, "E-FUNC-UNKNOWN", format!("provider-defined functions are not supported (`{}`)", name))
                .into());
        }
        match name {
            "try" => return self.call_try(f),
            "can" => {
                let Some(arg) = f.args.iter().next().filter(|_| f.args.len() == 1) else {
                    return Err(self.err(f, "E-FUNC-ARITY", "can(EXPR) takes exactly one argument").into());
                };
                return Ok(match self.eval(arg) {
                    Ok(v) if v.contains_unknown() => Value::Unknown,
                    Ok(_) => Value::Bool(true),
                    Err(_) => Value::Bool(false),
                });
            }
            _ => {}
        }
        let mut args = Vec::with_capacity(f.args.len());
        let mut diags = Diagnostics::new();
        for a in f.args.iter() {
            match self.eval(a) {
                Ok(v) => args.push(v),
                Err(d) => diags.extend(d),
            }
        }
        if diags.has_errors() {
            return Err(diags);
        }
        if f.args.expand_final() {
            let last = args.pop().unwrap_or_default();
            let (last, marked) = last.unmark();
            match last {
                // The elements of a sensitive list stay sensitive.
                Value::List(l) => args.extend(l.into_iter().map(|v| v.mark_if(marked))),
                Value::Unknown => return Ok(Value::Unknown.mark_if(marked)),
                other => {
                    let at = f.args.iter().last().map_or_else(|| span_of(self.file, f), |a| span_of(self.file, a));
                    return Err(Diagnostic::error(
                        "E-FUNC-EXPAND",
                        format!("only a list can be expanded with `...`, got {}", other.type_name()),
                    )
                    .or_at(at)
                    .into());
                }
            }
        }
        if name == "templatefile" {
            if self.only_locals {
                // As in Terraform: a template calling templatefile could include itself forever.
                return Err(self
                    .err(f, "E-FUNC", "templatefile: cannot call templatefile from inside a template file")
                    .hint("render the inner template in the configuration and pass the result in the variables")
                    .into());
            }
            return self.templatefile(f, args);
        }
        let ctx = FuncCtx { base_dir: self.scope.base_dir().to_path_buf() };
        funcs::call(name, args, &ctx).map_err(|e| {
            // With `f(a, rest...)`, an error about an expanded element points at `rest`.
            let last = f.args.len().saturating_sub(1);
            let arg = e.arg.map(|i| if f.args.expand_final() { i.min(last) } else { i });
            let at = arg.and_then(|i| f.args.iter().nth(i)).and_then(|a| span_of(self.file, a)).or_else(|| span_of(self.file, f));
            // The message already suggests the closest name for an unknown function.
            Diagnostic::error("E-FUNC", format!("{name}: {}", e.message)).or_at(at).into()
        })
    }

    fn call_try(&mut self, f: &hcl_edit::expr::FuncCall) -> R {
        if f.args.is_empty() {
            return Err(self.err(f, "E-FUNC-ARITY", "try(...) needs at least one argument").into());
        }
        let mut last = Diagnostics::new();
        for a in f.args.iter() {
            match self.eval(a) {
                // Whether a partly unknown value would fail later cannot be told yet.
                Ok(v) if v.contains_unknown() => return Ok(Value::Unknown.mark_if(v.contains_sensitive())),
                Ok(v) => return Ok(v),
                Err(d) => last = d,
            }
        }
        Err(last)
    }

    fn templatefile(&mut self, f: &hcl_edit::expr::FuncCall, args: Vec<Value>) -> R {
        let arg_span = |i: usize| f.args.iter().nth(i).and_then(|a| span_of(self.file, a)).or_else(|| span_of(self.file, f));
        let [path, vars] = <[Value; 2]>::try_from(args)
            .map_err(|_| Diagnostics::from(self.err(f, "E-FUNC-ARITY", "templatefile(path, vars) takes two arguments")))?;
        let (vars, vars_marked) = vars.unmark();
        let (path, path_marked) = path.unmark();
        let marked = vars_marked || path_marked;
        let path = match path {
            Value::String(p) => p,
            Value::Unknown => return Ok(Value::Unknown.mark_if(marked)),
            other => {
                return Err(Diagnostic::error("E-FUNC", format!("templatefile: the path must be a string, got {}", other.type_name()))
                    .or_at(arg_span(0))
                    .into())
            }
        };
        let vars = match vars {
            Value::Map(m) => m,
            Value::Unknown => return Ok(Value::Unknown.mark_if(marked)),
            other => {
                return Err(Diagnostic::error(
                    "E-FUNC",
                    format!("templatefile: the variables must be an object, got {}", other.type_name()),
                )
                .or_at(arg_span(1))
                .hint("write templatefile(\"PATH\", { name = value, ... })")
                .into())
            }
        };
        let full = self.scope.base_dir().join(&path);
        let text = funcs::read_regular_to_string(&full).map_err(|e| {
            Diagnostics::from(
                Diagnostic::error("E-FILE", format!("templatefile: cannot read `{}`: {e}", full.display()))
                    .or_at(arg_span(0))
                    .hint("the path is relative to the module's directory; use path.module for clarity"),
            )
        })?;
        let mut t = hcl_edit::parser::parse_template(&text).map_err(|e| {
            Diagnostics::from(self.err(
                f,
                "E-TEMPLATE-PARSE",
                format!(
                    "templatefile: `{}` line {}, column {}: {}",
                    full.display(),
                    e.location().line(),
                    e.location().column(),
                    e.message()
                ),
            ))
        })?;
        // A template file is scanned like a heredoc: one literal token per line.
        prepare_template(&mut t, TemplateKind::Lines, None);
        let mut ev = Evaluator {
            file: self.file,
            scope: self.scope,
            locals: vars.into_iter().map(|(k, v)| (k, v.mark_if(vars_marked))).collect(),
            only_locals: true,
        };
        // Like Terraform's, the result of a template that is a lone `${...}` keeps its type.
        let result = ev.template_of(&t, TemplateKind::Lines).map_err(|d| {
            d.into_iter()
                .map(|mut d| {
                    // Spans inside the template are offsets into its text: name line and column.
                    let at = d.primary.as_ref().map(|l| kiln_diag::SourceFile::new(&full, text.clone()).line_col(l.span.range.start));
                    d.summary = match at {
                        Some(lc) => format!("in template `{}` line {}, column {}: {}", full.display(), lc.line, lc.column, d.summary),
                        None => format!("in template `{}`: {}", full.display(), d.summary),
                    };
                    d.primary = span_of(self.file, f).map(|span| kiln_diag::Label { span, message: String::new() });
                    d
                })
                .collect::<Diagnostics>()
        })?;
        Ok(result.mark_if(marked))
    }
}

/// Terraform converts both results of a conditional to a common type: when one is a string and
/// the other a number or bool, the result is a string (`true ? 1 : "a"` is `"1"`).
fn unify_result(chosen: Value, other: Option<&Value>) -> Value {
    let other_is_string = other.is_some_and(|o| matches!(o.unmarked(), Value::String(_)));
    let (inner, marked) = chosen.unmark();
    match inner {
        Value::Number(_) | Value::Bool(_) if other_is_string => {
            Value::String(inner.to_template_string().unwrap_or_default()).mark_if(marked)
        }
        v => v.mark_if(marked),
    }
}

/// "a list", "an object": a value's type with its article, for messages.
fn a_type(v: &Value) -> String {
    let t = v.type_name();
    if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {t}")
    } else {
        format!("a {t}")
    }
}

/// A number for a message, or the redaction when it is sensitive.
fn shown(n: Decimal, marked: bool) -> String {
    if marked {
        kiln_value::REDACTED.to_string()
    } else {
        n.to_string()
    }
}

fn to_bool(v: &Value) -> Option<bool> {
    match v.unmarked() {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

fn to_number(v: &Value) -> Option<Decimal> {
    match v.unmarked() {
        Value::Number(n) => Some(*n),
        Value::String(s) => kiln_value::parse_number(s),
        _ => None,
    }
}

/// A value's type, and a string's text unless the value is sensitive (`marked`, or marked itself).
fn describe(v: &Value, marked: bool) -> String {
    match v.unmarked() {
        _ if marked || v.is_sensitive() => format!("sensitive {}", v.type_name()),
        Value::String(s) => format!("string \"{s}\""),
        v => v.type_name().to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Terraform's parse-time template rules.
//
// HCL applies strip markers (`~`) and the `<<-` dedent to a flat token stream before it builds
// the template's tree, so both reach into `%{if}`/`%{for}` bodies, and in heredocs the literal
// text is one token per line. hcl-edit keeps the markers unapplied and dedents `<<-` heredocs
// itself, differently (only top-level literals, whitespace-only lines counted, before the markers
// are applied). `prepare` redoes both the way Terraform does, once, when an `Expr` is built; the
// markers are then cleared so the evaluator only concatenates.
// ---------------------------------------------------------------------------------------------

/// How the literal text of a template is tokenized, which decides how far `~` strips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TemplateKind {
    /// A quoted string: each literal run is one token.
    Quoted,
    /// A heredoc or a template file: one token per line, so `~` strips at most to the next
    /// line break.
    Lines,
}

/// Applies strip markers and `<<-` dedent in every template of `node`. With the file's `source`,
/// `<<-` heredocs are re-read from their literal spans so the dedent matches Terraform exactly;
/// without it, hcl-edit's dedent of them is kept.
pub(crate) fn prepare(node: &mut Expression, source: Option<&str>) {
    use hcl_edit::visit_mut::{visit_heredoc_template_mut, visit_string_template_mut, VisitMut};
    struct Prepare<'a>(Option<&'a str>);
    impl VisitMut for Prepare<'_> {
        fn visit_string_template_mut(&mut self, node: &mut hcl_edit::template::StringTemplate) {
            visit_string_template_mut(self, node);
            prepare_template(node, TemplateKind::Quoted, None);
        }
        fn visit_heredoc_template_mut(&mut self, node: &mut hcl_edit::template::HeredocTemplate) {
            visit_heredoc_template_mut(self, node);
            // hcl-edit records an indent only for `<<-` heredocs it could dedent; for the others
            // Terraform's dedent would find a line without indentation and remove nothing.
            let flush_source = node.indent().and(self.0);
            prepare_template(&mut node.template, TemplateKind::Lines, flush_source);
        }
    }
    Prepare(source).visit_expr_mut(node);
}

/// True when a strip marker in `t` (or in its directives' bodies) is still unapplied.
fn has_strip_markers(t: &Template) -> bool {
    t.iter().any(|el| match el {
        Element::Literal(_) => false,
        Element::Interpolation(i) => i.strip != Strip::None,
        Element::Directive(d) => match &**d {
            Directive::If(d) => {
                d.if_expr.strip != Strip::None
                    || d.endif_expr.strip != Strip::None
                    || has_strip_markers(&d.if_expr.template)
                    || d.else_expr.as_ref().is_some_and(|e| e.strip != Strip::None || has_strip_markers(&e.template))
            }
            Directive::For(d) => {
                d.for_expr.strip != Strip::None || d.endfor_expr.strip != Strip::None || has_strip_markers(&d.for_expr.template)
            }
        },
    })
}

/// One token of the flattened template: literal text, or a control sequence (`${...}`,
/// `%{if}`, `%{else}`, `%{endif}`, `%{for}`, `%{endfor}`) with its strip markers.
enum Tok {
    Lit(String),
    Ctrl { strip_before: bool, strip_after: bool },
}

/// Applies Terraform's strip and (with `flush_source`) `<<-` rules to `t`'s literals, in place,
/// and clears the strip markers.
pub(crate) fn prepare_template(t: &mut Template, kind: TemplateKind, flush_source: Option<&str>) {
    let mut toks = Vec::new();
    let mut lits = Vec::new();
    flatten(t, kind, flush_source, &mut toks, &mut lits);

    // Strip markers (HCL's parseTemplateParts): `~}` trims the start of the next token if it is
    // literal text, `${~`/`%{~` the end of the previous token if that is literal text.
    let mut trim_next = false;
    let mut prev_is_lit = false;
    for i in 0..toks.len() {
        let (trim, can_trim_prev) = (std::mem::take(&mut trim_next), std::mem::take(&mut prev_is_lit));
        match &mut toks[i] {
            Tok::Lit(s) => {
                if trim {
                    *s = s.trim_start().to_string();
                }
                prev_is_lit = true;
            }
            Tok::Ctrl { strip_before, strip_after } => {
                trim_next = *strip_after;
                if *strip_before && can_trim_prev {
                    if let Some(Tok::Lit(p)) = i.checked_sub(1).map(|j| &mut toks[j]) {
                        *p = p.trim_end().to_string();
                    }
                }
            }
        }
    }

    if flush_source.is_some() {
        flush(&mut toks);
    }

    let mut pieces = lits.into_iter().map(|r: std::ops::Range<usize>| {
        toks[r]
            .iter()
            .map(|t| match t {
                Tok::Lit(s) => s.as_str(),
                Tok::Ctrl { .. } => "",
            })
            .collect::<String>()
    });
    write_back(t, &mut pieces);
}

fn flatten(t: &Template, kind: TemplateKind, source: Option<&str>, toks: &mut Vec<Tok>, lits: &mut Vec<std::ops::Range<usize>>) {
    let ctrl = |s: Strip| Tok::Ctrl { strip_before: s.strip_start(), strip_after: s.strip_end() };
    for el in t.iter() {
        match el {
            Element::Literal(l) => {
                let raw = source.and_then(|src| hcl_edit::Span::span(l).and_then(|r| src.get(r))).map(unescape_template_literal);
                let text = raw.as_deref().unwrap_or(l.value());
                let start = toks.len();
                match kind {
                    TemplateKind::Quoted => toks.push(Tok::Lit(text.to_string())),
                    TemplateKind::Lines => toks.extend(text.split_inclusive('\n').map(|line| Tok::Lit(line.to_string()))),
                }
                if toks.len() == start {
                    toks.push(Tok::Lit(String::new()));
                }
                lits.push(start..toks.len());
            }
            Element::Interpolation(i) => toks.push(ctrl(i.strip)),
            Element::Directive(d) => match &**d {
                Directive::If(d) => {
                    toks.push(ctrl(d.if_expr.strip));
                    flatten(&d.if_expr.template, kind, source, toks, lits);
                    if let Some(e) = &d.else_expr {
                        toks.push(ctrl(e.strip));
                        flatten(&e.template, kind, source, toks, lits);
                    }
                    toks.push(ctrl(d.endif_expr.strip));
                }
                Directive::For(d) => {
                    toks.push(ctrl(d.for_expr.strip));
                    flatten(&d.for_expr.template, kind, source, toks, lits);
                    toks.push(ctrl(d.endfor_expr.strip));
                }
            },
        }
    }
}

/// The text of a template literal from its source: only `$${` and `%%{` are escapes there.
fn unescape_template_literal(raw: &str) -> String {
    raw.replace("$${", "${").replace("%%{", "%{")
}

/// Terraform's `<<-` rule (HCL's flushHeredocTemplateParts): among the tokens that start a line,
/// find the smallest number of leading whitespace characters, where a line-starting control
/// sequence counts as zero and a whitespace-only line is ignored; remove that many characters
/// from each line-starting literal that is not whitespace-only.
fn flush(toks: &mut [Tok]) {
    let mut min = usize::MAX;
    let mut at_line_start = true;
    let mut adjust = Vec::new();
    for (i, tok) in toks.iter().enumerate() {
        if at_line_start {
            at_line_start = false;
            let spaces = match tok {
                Tok::Lit(s) => {
                    let trimmed = s.trim_start();
                    if trimmed.is_empty() && s.ends_with('\n') {
                        usize::MAX
                    } else {
                        adjust.push(i);
                        s[..s.len() - trimmed.len()].chars().count()
                    }
                }
                Tok::Ctrl { .. } => 0,
            };
            min = min.min(spaces);
        }
        if let Tok::Lit(s) = tok {
            if s.ends_with('\n') {
                at_line_start = true;
            }
        }
    }
    if min == usize::MAX || min == 0 {
        return;
    }
    for i in adjust {
        if let Tok::Lit(s) = &mut toks[i] {
            let cut = s.char_indices().nth(min).map_or(s.len(), |(b, _)| b);
            s.replace_range(..cut, "");
        }
    }
}

/// Stores the prepared literal texts back, in the order `flatten` read them, and clears markers.
fn write_back(t: &mut Template, pieces: &mut dyn Iterator<Item = String>) {
    for el in t.iter_mut() {
        match el {
            Element::Literal(l) => {
                if let Some(p) = pieces.next() {
                    *l.value_mut() = p;
                }
            }
            Element::Interpolation(i) => i.strip = Strip::None,
            Element::Directive(d) => match &mut **d {
                Directive::If(d) => {
                    d.if_expr.strip = Strip::None;
                    write_back(&mut d.if_expr.template, pieces);
                    if let Some(e) = &mut d.else_expr {
                        e.strip = Strip::None;
                        write_back(&mut e.template, pieces);
                    }
                    d.endif_expr.strip = Strip::None;
                }
                Directive::For(d) => {
                    d.for_expr.strip = Strip::None;
                    write_back(&mut d.for_expr.template, pieces);
                    d.endfor_expr.strip = Strip::None;
                }
            },
        }
    }
}
