//! Property tests of the evaluator with generated expressions: literals, references (unknown,
//! sensitive, null), operators, conditionals, `for`, splats, templates and calls of every kind of
//! built-in function, nested a few levels. No expression may panic, overflow the stack, hang or
//! allocate without bound; every diagnostic points into the expression. Also every built-in
//! function called directly with generated values, and nesting far deeper than any real input.

mod common;

use common::*;
use kiln_diag::FileId;
use kiln_eval::Expr;
use kiln_testkit::fuzz::config;
use kiln_value::Value;
use proptest::prelude::*;

const LEAVES: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "1",
    "-1",
    "2.5",
    "0.1",
    "1e3",
    "99999999999999999999999999999",
    "1e400",
    "\"\"",
    "\"a\"",
    "\"1\"",
    "\"true\"",
    "\"x,y\"",
    "\"${1}\"",
    "\"é😀\"",
    "\"%{ for x in [1, 2] }${x}%{ endfor }\"",
    "[]",
    "{}",
    "var.u",
    "var.s",
    "var.list",
    "var.strs",
    "var.mixed",
    "var.snums",
    "var.sobj",
    "var.slist",
    "var.nullobj",
    "var.partial",
    "var.n",
    "local.obj",
    "local.objs",
    "local.map",
    "local.nothing",
    "local.objs_u",
    "local.sobjs",
    "record.a",
    "count.index",
    "each.value",
    "each.key",
    "path.module",
    "var.undeclared",
];

const FUNCS: &[&str] = &[
    "abs",
    "alltrue",
    "anytrue",
    "base64decode",
    "base64encode",
    "base64gzip",
    "base64sha256",
    "basename",
    "ceil",
    "chomp",
    "chunklist",
    "cidrhost",
    "cidrnetmask",
    "cidrsubnet",
    "cidrsubnets",
    "coalesce",
    "coalescelist",
    "compact",
    "concat",
    "contains",
    "csvdecode",
    "dirname",
    "distinct",
    "element",
    "endswith",
    "flatten",
    "floor",
    "format",
    "formatdate",
    "formatlist",
    "indent",
    "index",
    "issensitive",
    "join",
    "jsondecode",
    "jsonencode",
    "keys",
    "length",
    "log",
    "lookup",
    "lower",
    "matchkeys",
    "max",
    "md5",
    "merge",
    "min",
    "nonsensitive",
    "one",
    "parseint",
    "pow",
    "range",
    "regex",
    "regexall",
    "replace",
    "reverse",
    "sensitive",
    "setintersection",
    "setproduct",
    "setsubtract",
    "setunion",
    "sha1",
    "sha256",
    "signum",
    "slice",
    "sort",
    "split",
    "startswith",
    "strcontains",
    "strrev",
    "substr",
    "sum",
    "textdecodebase64",
    "textencodebase64",
    "timeadd",
    "timecmp",
    "title",
    "tobool",
    "tolist",
    "tomap",
    "tonumber",
    "toset",
    "tostring",
    "transpose",
    "trim",
    "trimprefix",
    "trimspace",
    "trimsuffix",
    "upper",
    "urlencode",
    "uuidv5",
    "values",
    "yamldecode",
    "yamlencode",
    "zipmap",
    "try",
    "can",
    "templatefile",
    "file",
    "fileexists",
    "fileset",
    "nosuchfunction",
];

const BINARY: &[&str] = &["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||"];

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(LEAVES).prop_map(str::to_string);
    leaf.prop_recursive(5, 48, 4, |inner| {
        let list = prop::collection::vec(inner.clone(), 0..4);
        prop_oneof![
            list.clone().prop_map(|l| format!("[{}]", l.join(", "))),
            prop::collection::vec(inner.clone(), 0..3)
                .prop_map(|l| format!("{{{}}}", l.iter().enumerate().map(|(i, v)| format!("k{i} = {v}")).collect::<Vec<_>>().join(", "))),
            (inner.clone(), prop::sample::select(BINARY), inner.clone()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (prop::sample::select(&["!", "-"][..]), inner.clone()).prop_map(|(op, a)| format!("{op}({a})")),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            (prop::sample::select(FUNCS), list.clone()).prop_map(|(f, l)| format!("{f}({})", l.join(", "))),
            (prop::sample::select(FUNCS), list).prop_map(|(f, l)| format!("{f}({}...)", l.join(", "))),
            (inner.clone(), inner.clone()).prop_map(|(c, v)| format!("[for i, x in {c} : {v}]")),
            (inner.clone(), inner.clone()).prop_map(|(c, v)| format!("{{for k, x in {c} : tostring(k) => {v}...}}")),
            (inner.clone(), inner.clone()).prop_map(|(c, v)| format!("[for x in {c} : x if {v}]")),
            (inner.clone(), inner.clone()).prop_map(|(a, i)| format!("({a})[{i}]")),
            inner.clone().prop_map(|a| format!("({a}).k0")),
            inner.clone().prop_map(|a| format!("({a})[*].id")),
            inner.clone().prop_map(|a| format!("({a}).*.n")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("\"<${{{a}}}%{{ if {b} }}y%{{ else }}n%{{ endif }}>\"")),
            inner.prop_map(|a| format!("<<EOT\n${{{a}}}\nEOT\n")),
        ]
    })
}

/// Evaluates `src` if it parses, checking that every diagnostic points into it.
fn eval_checked(src: &str) {
    let Ok(e) = hcl_edit::parser::parse_expr(src) else { return };
    let expr = Expr::with_source(FileId(0), e, src);
    if let Err(diags) = kiln_eval::eval(&expr, &scope()) {
        assert!(diags.has_errors());
        for d in diags.iter() {
            for l in d.primary.iter().chain(&d.secondary) {
                assert!(l.span.range.end <= src.len() && l.span.range.start <= l.span.range.end, "{d:?} in {src}");
            }
            // A sensitive input never shows in an error.
            assert!(!d.summary.contains("hunter2") && !d.hint.as_deref().unwrap_or_default().contains("hunter2"), "{d:?} in {src}");
        }
    }
}

/// Values that function arguments are drawn from.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        Just(Value::Unknown),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| Value::from(n as i64)),
        prop::sample::select(&["0.5", "-3", "1e20", "255", "24"][..]).prop_map(val),
        "[a-z0-9 ,.%/{}\\[\\]*:$-]{0,12}".prop_map(Value::from),
        prop::sample::select(
            &["10.0.0.0/16", "2001:db8::/32", "2026-01-01T00:00:00Z", "1h", "%s-%05d", "[a-z]+", "{\"a\": [1]}", "a: [1, 2]"][..]
        )
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
            prop::collection::btree_map("[a-c]", inner.clone(), 0..3).prop_map(Value::Map),
            inner.prop_map(Value::sensitive),
        ]
    })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn generated_expressions_never_panic(src in expr()) {
        eval_checked(&src);
    }

    #[test]
    fn functions_called_with_generated_values_never_panic(
        f in prop::sample::select(FUNCS),
        args in prop::collection::vec(value(), 0..4),
    ) {
        let ctx = kiln_eval::funcs::FuncCtx { base_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/templates") };
        let _ = kiln_eval::funcs::call(f, args, &ctx);
    }
}

/// Deeply nested or very long expressions the parser accepts evaluate, or fail, without
/// overflowing the stack.
#[test]
fn long_flat_expressions_evaluate() {
    let n = 100_000;
    eval_checked(&format!("local.obj{}", ".tags".repeat(n)));
    eval_checked(&format!("var.list{}", "[0]".repeat(n)));
    eval_checked(&format!("[{}]", vec!["1"; n].join(", ")));
    eval_checked(&format!("\"{}\"", "${1}".repeat(n)));
    // The parser's own nesting limit is the evaluator's recursion limit.
    for depth in [10, 60, 64, 65, 200] {
        eval_checked(&format!("{}1{}", "[".repeat(depth), "]".repeat(depth)));
        eval_checked(&format!("{}1{}", "abs(".repeat(depth), ")".repeat(depth)));
        eval_checked(&("[for x in ".repeat(depth) + "[1] : x" + &"]".repeat(depth)));
        eval_checked(&format!("1{}", " + 1".repeat(depth)));
    }
}

/// The generator is only useful if what it makes parses: most of it must.
#[test]
fn generated_expressions_mostly_parse() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = expr();
    let (mut parsed, mut evaluated) = (0, 0);
    for _ in 0..300 {
        let src = strategy.new_tree(&mut runner).unwrap().current();
        if let Ok(e) = hcl_edit::parser::parse_expr(&src) {
            parsed += 1;
            if kiln_eval::eval(&Expr::with_source(FileId(0), e, &src), &scope()).is_ok() {
                evaluated += 1;
            }
        }
    }
    assert!(parsed >= 240, "only {parsed} of 300 generated expressions parse");
    assert!(evaluated >= 30, "only {evaluated} of 300 generated expressions evaluate");
}
