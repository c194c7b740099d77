//! Shared helpers for kiln-eval's integration tests: a test `Scope` with fixed values, a value
//! renderer that shows unknowns and sensitive marks, and `check`-style assertions.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_diag::{Diagnostic, Diagnostics, FileId};
use kiln_eval::{Expr, Ref, Scope};
use kiln_value::{format_number, Value};

/// A scope answering references from a table keyed by their text (`var.x`, `record.a`, ...).
pub struct TestScope {
    pub values: BTreeMap<String, Value>,
    pub dir: PathBuf,
}

impl Scope for TestScope {
    fn resolve(&self, r: &Ref) -> Result<Value, Diagnostic> {
        let key = r.to_string();
        self.values
            .get(&key)
            .cloned()
            .ok_or_else(|| Diagnostic::error("E-REF-UNDECLARED", format!("`{key}` is not declared")).hint("declare it first"))
    }

    fn base_dir(&self) -> &Path {
        &self.dir
    }
}

/// Evaluates a constant HCL expression (no references).
pub fn val(src: &str) -> Value {
    let scope = TestScope { values: BTreeMap::new(), dir: PathBuf::from(".") };
    let e = hcl_edit::parser::parse_expr(src).unwrap_or_else(|e| panic!("cannot parse {src:?}: {e}"));
    kiln_eval::eval(&Expr::with_source(FileId(0), e, src), &scope).unwrap_or_else(|d| panic!("cannot evaluate {src:?}: {d:?}"))
}

/// The scope most tests use.
pub fn scope() -> TestScope {
    let mut v = BTreeMap::new();
    let mut put = |k: &str, x: Value| {
        v.insert(k.to_string(), x);
    };
    put("var.u", Value::Unknown);
    put("var.s", Value::from("hunter2").sensitive());
    put("var.sbool", Value::Bool(true).sensitive());
    put("var.snums", val("[1, 3, 2]").sensitive());
    put("var.sobj", val("{a = 1, b = 2}").sensitive());
    put("var.slist", val(r#"["x", "y"]"#).sensitive());
    put("var.name", Value::from("web"));
    put("var.n", Value::from("3"));
    put("var.flag", Value::Bool(true));
    put("var.nullobj", Value::Null);
    put("var.partial", Value::List(vec![Value::from("a"), Value::Unknown]));
    put("var.list", val("[10, 20, 30]"));
    put("var.strs", val(r#"["a", "b"]"#));
    put("var.mixed", val(r#"[1, "x"]"#));
    put("local.k", Value::from("key"));
    put("local.i", Value::from(1i64));
    put("local.obj", val(r#"{id = "x", tags = {env = "prod"}}"#));
    put("local.objs", val(r#"[{id = "a", n = [1, 2]}, {id = "b", n = [3, 4]}]"#));
    put("local.map", val(r#"{a = "A", b = "B"}"#));
    put("local.nothing", Value::Null);
    put("local.objs_u", Value::List(vec![val(r#"{id = "a"}"#), Value::Unknown]));
    put("local.sobjs", Value::List(vec![val(r#"{id = "a"}"#).sensitive(), val(r#"{id = "b"}"#)]));
    put("record.a", val(r#"{id = "rec-a", size = 2}"#));
    put("record.u", val(r#"{id = null}"#));
    put("data.kind.d", val(r#"{out = "D"}"#));
    put("module.m.out", Value::from("M"));
    put("count.index", Value::from(2i64));
    put("each.key", Value::from("k1"));
    put("each.value", val(r#"{port = 80}"#));
    put("path.module", Value::from("."));
    TestScope { values: v, dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/templates") }
}

/// Renders a value for assertions: strings quoted, `?` for unknown, `sensitive(...)` marks.
pub fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format_number(*n),
        Value::String(s) => format!("{s:?}"),
        Value::List(l) => format!("[{}]", l.iter().map(show).collect::<Vec<_>>().join(", ")),
        Value::Map(m) => format!("{{{}}}", m.iter().map(|(k, v)| format!("{k} = {}", show(v))).collect::<Vec<_>>().join(", ")),
        Value::Unknown => "?".into(),
        Value::Sensitive(inner) => format!("sensitive({})", show(inner)),
    }
}

pub fn parse(src: &str) -> Expr {
    let e = hcl_edit::parser::parse_expr(src).unwrap_or_else(|e| panic!("cannot parse {src:?}: {e}"));
    Expr::with_source(FileId(0), e, src)
}

pub fn eval_in(src: &str, scope: &TestScope) -> Result<Value, Diagnostics> {
    kiln_eval::eval(&parse(src), scope)
}

/// Asserts that `src` evaluates to a value rendered as `expected` (see [`show`]).
#[track_caller]
pub fn check(src: &str, expected: &str) {
    match eval_in(src, &scope()) {
        Ok(v) => assert_eq!(show(&v), expected, "value of {src:?}"),
        Err(d) => panic!("{src:?}: expected {expected}, got errors:\n{}", describe(&d, src)),
    }
}

/// Asserts that `src` fails with a diagnostic of `code` whose summary contains `message`, and
/// returns that diagnostic.
#[track_caller]
pub fn check_err(src: &str, code: &str, message: &str) -> Diagnostic {
    check_err_in(src, &scope(), code, message)
}

#[track_caller]
pub fn check_err_in(src: &str, scope: &TestScope, code: &str, message: &str) -> Diagnostic {
    match eval_in(src, scope) {
        Ok(v) => panic!("{src:?}: expected error {code} ({message}), got value {}", show(&v)),
        Err(d) => d
            .iter()
            .find(|x| x.code == code && x.summary.contains(message))
            .cloned()
            .unwrap_or_else(|| panic!("{src:?}: expected error {code} containing {message:?}, got:\n{}", describe(&d, src))),
    }
}

/// Like [`check_err`], also asserting the source text under the diagnostic's primary span.
#[track_caller]
pub fn check_err_at(src: &str, code: &str, message: &str, at: &str) -> Diagnostic {
    let d = check_err(src, code, message);
    let span = d.primary.as_ref().unwrap_or_else(|| panic!("{src:?}: {code} has no span")).span.clone();
    assert_eq!(&src[span.range.clone()], at, "span of {code} in {src:?}");
    d
}

pub fn describe(d: &Diagnostics, src: &str) -> String {
    d.iter()
        .map(|x| {
            let at = x.primary.as_ref().and_then(|l| src.get(l.span.range.clone())).unwrap_or("<no span>");
            format!("  {} {} at {:?} (hint: {:?})", x.code, x.summary, at, x.hint)
        })
        .collect::<Vec<_>>()
        .join("\n")
}
