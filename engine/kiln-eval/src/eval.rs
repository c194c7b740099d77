//! Evaluation of one expression against a [`Scope`]. Errors become diagnostics pointing at the
//! sub-expression at fault; all errors found in independent sub-expressions are reported.

use std::collections::BTreeMap;
use std::str::FromStr;

use hcl_edit::expr::{BinaryOperator, Expression, ForExpr, TraversalOperator, UnaryOperator};
use hcl_edit::template::{Directive, Element, Strip, Template};
use kiln_diag::{Diagnostic, Diagnostics, FileId, Span};
use kiln_value::{Decimal, Map, Value};

use crate::funcs::{self, FuncCtx};
use crate::refs::{parse_ref, Parsed};
use crate::{Expr, Scope};

/// Evaluates `expr`. On error the value is `Unknown` and the diagnostics say why.
pub fn eval(expr: &Expr, scope: &dyn Scope) -> Result<Value, Diagnostics> {
    let mut ev = Evaluator::new(expr.file, scope);
    ev.eval(&expr.node)
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
                let text = n.value().to_string();
                Decimal::from_str(&text)
                    .or_else(|_| Decimal::from_scientific(&text))
                    .map(Value::Number)
                    .map_err(|_| self.err(n, "E-NUMBER-RANGE", format!("number `{text}` is out of range")).into())
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
                for (k, v) in o.iter() {
                    let key = match k {
                        hcl_edit::expr::ObjectKey::Ident(i) => Ok(Value::String(i.as_str().to_string())),
                        hcl_edit::expr::ObjectKey::Expression(e) => self.eval(e),
                    };
                    let val = self.eval(v.expr());
                    match (key, val) {
                        (Ok(kv), Ok(v)) => match kv.unmarked() {
                            Value::Unknown => unknown_key = true,
                            kv => match kv.to_template_string() {
                                Some(s) => {
                                    out.insert(s, v);
                                }
                                None => diags.push(self.err(k, "E-OBJECT-KEY", "an object key must be a string")),
                            },
                        },
                        (k, v) => {
                            diags.extend(k.err().into_iter().flatten());
                            diags.extend(v.err().into_iter().flatten());
                        }
                    }
                }
                if diags.has_errors() {
                    Err(diags)
                } else if unknown_key {
                    Ok(Value::Unknown)
                } else {
                    Ok(Value::Map(out))
                }
            }
            Expression::StringTemplate(t) => self.template(t),
            Expression::HeredocTemplate(h) => self.template(&h.template),
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
                let r = match cond {
                    Value::Unknown => {
                        // Both branches must still be valid.
                        self.eval(&c.true_expr)?;
                        self.eval(&c.false_expr)?;
                        Value::Unknown
                    }
                    Value::Bool(true) => self.eval(&c.true_expr)?,
                    Value::Bool(false) => self.eval(&c.false_expr)?,
                    Value::String(s) if s == "true" => self.eval(&c.true_expr)?,
                    Value::String(s) if s == "false" => self.eval(&c.false_expr)?,
                    other => {
                        return Err(self
                            .err(&c.cond_expr, "E-COND-TYPE", format!("condition must be a bool, got {}", other.type_name()))
                            .into())
                    }
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
                let v = self.scope.resolve(&r).map_err(|d| Diagnostics::from(d.or_at(span_of(self.file, whole))))?;
                self.apply_ops(whole, v, &ops[used..])
            }
            Parsed::Incomplete(want) => Err(self
                .err(whole, "E-REF-INCOMPLETE", format!("`{root}` cannot be used alone"))
                .hint(format!("write {want}"))
                .into()),
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
                    let rest = &ops[i + 1..];
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        out.push(self.apply_ops(whole, item, rest)?);
                    }
                    return Ok(Value::List(out).mark_if(marked));
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
                        .hint(if keys.is_empty() { "the object is empty".to_string() } else { format!("attributes are: {}", keys.join(", ")) })
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
                            .err(at, "E-INDEX-RANGE", format!("index {n} is out of range for a list of {len} elements"))
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
                let ln = self.num_operand(&b.lhs_expr, &l, op)?;
                let rn = self.num_operand(&b.rhs_expr, &r, op)?;
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

    fn num_operand(&self, at: &Expression, v: &Value, op: BinaryOperator) -> Result<Option<Decimal>, Diagnostics> {
        if v.is_unknown() {
            return Ok(None);
        }
        to_number(v).map(Some).ok_or_else(|| {
            self.err(at, "E-OP-TYPE", format!("`{}` needs numbers, got {}", op.as_str(), describe(v))).into()
        })
    }

    fn for_expr(&mut self, f: &ForExpr) -> R {
        let coll = self.eval(&f.intro.collection_expr)?;
        let (coll, marked) = coll.unmark();
        let items: Vec<(Value, Value)> = match coll {
            Value::Unknown => return Ok(Value::Unknown),
            Value::List(l) => l.into_iter().enumerate().map(|(i, v)| (Value::from(i), v)).collect(),
            Value::Map(m) => m.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
            Value::Null => {
                return Err(self.err(&f.intro.collection_expr, "E-FOR-NULL", "cannot iterate over a null value").into())
            }
            other => {
                return Err(self
                    .err(&f.intro.collection_expr, "E-FOR-TYPE", format!("cannot iterate over a {}", other.type_name()))
                    .into())
            }
        };
        let kname = f.intro.key_var.as_ref().map(|k| k.as_str().to_string());
        let vname = f.intro.value_var.as_str().to_string();
        let mut list = Vec::new();
        let mut map: BTreeMap<String, Value> = BTreeMap::new();
        let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut unknown = false;
        for (k, v) in items {
            let depth = self.locals.len();
            if let Some(kn) = &kname {
                self.locals.push((kn.clone(), k));
            }
            self.locals.push((vname.clone(), v));
            let r = self.for_item(f, &mut list, &mut map, &mut groups, &mut unknown);
            self.locals.truncate(depth);
            r?;
        }
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
    ) -> Result<(), Diagnostics> {
        if let Some(c) = &f.cond {
            let cv = self.eval(&c.expr)?;
            match to_bool(cv.unmarked()) {
                Some(true) => {}
                Some(false) => return Ok(()),
                None if cv.is_unknown() => {
                    *unknown = true;
                    return Ok(());
                }
                None => return Err(self.err(&c.expr, "E-FOR-COND", "the `if` condition must be a bool").into()),
            }
        }
        let v = self.eval(&f.value_expr)?;
        match &f.key_expr {
            None => list.push(v),
            Some(ke) => {
                let k = self.eval(ke)?;
                if k.is_unknown() {
                    *unknown = true;
                    return Ok(());
                }
                let Some(key) = k.to_template_string() else {
                    return Err(self.err(ke, "E-FOR-KEY", "a `for` key must be a string").into());
                };
                if f.grouping {
                    groups.entry(key).or_default().push(v);
                } else if map.insert(key.clone(), v).is_some() {
                    return Err(self
                        .err(ke, "E-FOR-DUPKEY", format!("duplicate key \"{key}\" in a `for` expression"))
                        .hint("add `...` after the value to group values with the same key into lists")
                        .into());
                }
            }
        }
        Ok(())
    }

    pub fn template(&mut self, t: &Template) -> R {
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

    fn render(&mut self, t: &Template, out: &mut String, marked: &mut bool, unknown: &mut bool) -> Result<(), Diagnostics> {
        let elements: Vec<&Element> = t.iter().collect();
        let mut diags = Diagnostics::new();
        for (i, el) in elements.iter().enumerate() {
            match el {
                Element::Literal(s) => {
                    let mut text: &str = s.value();
                    if i > 0 && strips_after(elements[i - 1]) {
                        text = text.trim_start();
                    }
                    if elements.get(i + 1).is_some_and(|n| strips_before(n)) {
                        text = text.trim_end();
                    }
                    out.push_str(text);
                }
                Element::Interpolation(interp) => match self.eval(&interp.expr) {
                    Ok(v) => {
                        *marked |= v.contains_sensitive();
                        if v.contains_unknown() {
                            *unknown = true;
                        } else {
                            match v.to_template_string() {
                                Some(s) => out.push_str(&s),
                                None => diags.push(
                                    self.err(&interp.expr, "E-TEMPLATE-TYPE", format!("cannot insert a {} into a string", v.type_name()))
                                        .hint("use jsonencode(...) or join(\",\", ...) to turn it into a string"),
                                ),
                            }
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
                    None => Err(self.err(&d.if_expr.cond_expr, "E-COND-TYPE", "an %{if} condition must be a bool").into()),
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
                    other => {
                        return Err(self
                            .err(&d.for_expr.collection_expr, "E-FOR-TYPE", format!("cannot iterate over a {}", other.type_name()))
                            .into())
                    }
                };
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
            return Err(self.err(&f.name.name, "E-FUNC-UNKNOWN", format!("provider-defined functions are not supported (`{}`)", name)).into());
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
            match last.unmarked() {
                Value::List(l) => args.extend(l.iter().cloned()),
                Value::Unknown => return Ok(Value::Unknown),
                _ => return Err(self.err(f, "E-FUNC-EXPAND", "only a list can be expanded with `...`").into()),
            }
        }
        if name == "templatefile" {
            return self.templatefile(f, args);
        }
        let ctx = FuncCtx { base_dir: self.scope.base_dir().to_path_buf() };
        funcs::call(name, args, &ctx).map_err(|e| {
            let at = e.arg.and_then(|i| f.args.iter().nth(i)).and_then(|a| span_of(self.file, a)).or_else(|| span_of(self.file, f));
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
                Ok(v) => return Ok(v),
                Err(d) => last = d,
            }
        }
        Err(last)
    }

    fn templatefile(&mut self, f: &hcl_edit::expr::FuncCall, args: Vec<Value>) -> R {
        let [path, vars] = <[Value; 2]>::try_from(args)
            .map_err(|_| Diagnostics::from(self.err(f, "E-FUNC-ARITY", "templatefile(path, vars) takes two arguments")))?;
        let (vars, marked) = vars.unmark();
        let Some(path) = path.as_str() else {
            return Err(self.err(f, "E-FUNC", "templatefile: the path must be a string").into());
        };
        let vars = match vars {
            Value::Map(m) => m,
            Value::Unknown => return Ok(Value::Unknown),
            _ => return Err(self.err(f, "E-FUNC", "templatefile: the variables must be an object").into()),
        };
        let full = self.scope.base_dir().join(path);
        let text = std::fs::read_to_string(&full)
            .map_err(|e| Diagnostics::from(self.err(f, "E-FILE", format!("templatefile: cannot read `{}`: {e}", full.display()))))?;
        let t = hcl_edit::parser::parse_template(&text).map_err(|e| {
            Diagnostics::from(self.err(f, "E-TEMPLATE-PARSE", format!(
                "templatefile: `{}` line {}, column {}: {}",
                full.display(),
                e.location().line(),
                e.location().column(),
                e.message()
            )))
        })?;
        let mut ev = Evaluator { file: self.file, scope: self.scope, locals: vars.into_iter().collect(), only_locals: true };
        let mut out = String::new();
        let (mut m, mut unknown) = (marked, false);
        ev.render(&t, &mut out, &mut m, &mut unknown).map_err(|d| {
            d.into_iter()
                .map(|mut d| {
                    d.summary = format!("in template `{}`: {}", full.display(), d.summary);
                    d.primary = span_of(self.file, f).map(|span| kiln_diag::Label { span, message: String::new() });
                    d
                })
                .collect::<Diagnostics>()
        })?;
        Ok(if unknown { Value::Unknown } else { Value::String(out) }.mark_if(m))
    }
}

fn strips_after(el: &Element) -> bool {
    strip_of(el, false)
}

fn strips_before(el: &Element) -> bool {
    strip_of(el, true)
}

fn strip_of(el: &Element, before: bool) -> bool {
    let s = match el {
        Element::Interpolation(i) => i.strip,
        Element::Directive(d) => match &**d {
            Directive::If(d) => {
                if before {
                    d.if_expr.strip
                } else {
                    d.endif_expr.strip
                }
            }
            Directive::For(d) => {
                if before {
                    d.for_expr.strip
                } else {
                    d.endfor_expr.strip
                }
            }
        },
        Element::Literal(_) => Strip::None,
    };
    if before {
        s.strip_start()
    } else {
        s.strip_end()
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

fn describe(v: &Value) -> String {
    match v.unmarked() {
        Value::String(s) => format!("string \"{s}\""),
        v => v.type_name().to_string(),
    }
}
