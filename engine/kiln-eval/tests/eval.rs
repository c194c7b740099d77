//! Evaluator tests: literals and exact numbers, operators and Terraform's conversions,
//! conditionals, `for` expressions, splats, indexing and attribute errors, `try`/`can`,
//! function-call errors, and how unknown values and sensitive marks flow through each construct.

mod common;

use common::*;

// ----- literals and numbers -----

#[test]
fn literals() {
    check("null", "null");
    check("true", "true");
    check("false", "false");
    check(r#""a""#, r#""a""#);
    check(r#""tab\there""#, r#""tab\there""#);
    check(r#"[1, "a", true, null]"#, r#"[1, "a", true, null]"#);
    check(r#"{a = 1, "b c" = [2]}"#, r#"{a = 1, b c = [2]}"#);
    check("{(local.k) = 1}", "{key = 1}");
    check("{1 = \"one\", true = 2}", r#"{1 = "one", true = 2}"#);
    check("[]", "[]");
    check("{}", "{}");
}

#[test]
fn numbers_are_exact_decimals() {
    check("0.1 + 0.2", "0.3");
    check("0.1 + 0.2 == 0.3", "true");
    check("1.10", "1.1");
    check("10 / 4", "2.5");
    check("7 % 3", "1");
    check("2 * 0.1", "0.2");
    check("-5", "-5");
    check("- 5 + 1", "-4");
    check("1 + 2 * 3", "7");
    check("(1 + 2) * 3", "9");
}

#[test]
fn numbers_keep_the_exact_source_text() {
    // hcl-edit stores numbers as f64: these lose digits unless the source text is used.
    check("12345678901234567890123", "12345678901234567890123");
    check("12345678901234567890123 + 1", "12345678901234567890124");
    check("0.12345678901234567890", "0.1234567890123456789");
    check("18446744073709551617", "18446744073709551617");
}

#[test]
fn numbers_with_exponents() {
    check("1e3", "1000");
    check("2E2", "200");
    check("1.5e-3", "0.0015");
    check("1e+2", "100");
    check("1e3 == 1000", "true");
    check_err_at("1e40", "E-NUMBER-RANGE", "out of range", "1e40");
}

// ----- operators and conversions -----

#[test]
fn arithmetic_converts_strings_like_terraform() {
    check(r#""1" + 1"#, "2");
    check(r#""2" * "3""#, "6");
    check("var.n * 2", "6");
    check(r#"-"3""#, "-3");
    check_err_at(r#""a" + 1"#, "E-OP-TYPE", r#"needs numbers, got string "a""#, r#""a""#);
    check_err_at("1 + [1]", "E-OP-TYPE", "needs numbers, got list", "[1]");
    check_err_at("1 / 0", "E-DIV-ZERO", "division by zero", "0");
    check_err_at("5 % (1 - 1)", "E-DIV-ZERO", "modulo by zero", "(1 - 1)");
}

#[test]
fn errors_of_both_operands_are_reported() {
    let src = "var.missing1 + var.missing2";
    let d = eval_in(src, &scope()).unwrap_err();
    assert_eq!(d.len(), 2, "{}", describe(&d, src));
}

#[test]
fn logic_converts_strings_like_terraform() {
    check(r#""true" && true"#, "true");
    check(r#"true && "true""#, "true");
    check(r#"!"false""#, "true");
    check("!true || true", "true");
    check("false || false", "false");
    check_err_at("1 && true", "E-OP-TYPE", "a bool is required, got number", "1");
    check_err_at("!1", "E-OP-TYPE", "`!` needs a bool", "1");
    check_err_at(r#"-"x""#, "E-OP-TYPE", "`-` needs a number", r#""x""#);
}

#[test]
fn equality_does_not_convert() {
    check(r#"1 == "1""#, "false");
    check(r#""1" != 1"#, "true");
    check("1 == 1.0", "true");
    check("[1, 2] == [1, 2]", "true");
    check("[1, 2] == [2, 1]", "false");
    check("{a = 1} == {a = 1}", "true");
    check("null == null", "true");
    check("local.nothing == null", "true");
    check(r#"local.obj != null"#, "true");
}

#[test]
fn comparisons() {
    check(r#""2" < "10""#, "true");
    check("3 >= 3", "true");
    check("3 > 3", "false");
    check("-1 <= 0", "true");
    check_err("1 < true", "E-OP-TYPE", "needs numbers, got bool");
}

#[test]
fn operators_with_unknowns() {
    check("var.u + 1", "?");
    check("var.u == 1", "?");
    check("var.u != null", "?");
    check("var.u > 1", "?");
    check("1 <= var.u", "?");
    check("[1, var.u] == [1, 2]", "?");
    check("!var.u", "?");
    check("-var.u", "?");
    check("var.u && true", "?");
    check("var.u && false", "false");
    check("var.u || true", "true");
    check("var.u || false", "?");
    // Type errors are still found next to an unknown.
    check_err("var.u + [1]", "E-OP-TYPE", "needs numbers");
}

#[test]
fn operators_with_sensitive_values() {
    check(r#"var.s == "x""#, "sensitive(false)");
    check(r#"var.s != "x""#, "sensitive(true)");
    check("var.snums == [1, 3, 2]", "sensitive(true)");
    check("var.sobj.a + 1", "sensitive(2)");
    check("!var.sbool", "sensitive(false)");
    check("-var.sobj.b", "sensitive(-2)");
    check("var.sbool && var.u", "sensitive(?)");
}

// ----- conditionals -----

#[test]
fn conditionals() {
    check("true ? 1 : 2", "1");
    check("false ? 1 : 2", "2");
    check(r#""false" ? 1 : 2"#, "2");
    check("var.flag ? var.name : \"none\"", r#""web""#);
    check("1 > 2 ? \"a\" : \"b\"", r#""b""#);
    check_err_at("1 ? 1 : 2", "E-COND-TYPE", "condition must be a bool, got number", "1");
    check_err_at(r#""yes" ? 1 : 2"#, "E-COND-TYPE", r#"got string "yes""#, r#""yes""#);
}

#[test]
fn conditional_results_get_a_common_type() {
    // Terraform converts both results to a common type: a number next to a string is a string.
    check(r#"true ? 1 : "a""#, r#""1""#);
    check(r#"false ? 1 : "a""#, r#""a""#);
    check(r#"true ? true : "no""#, r#""true""#);
    check("true ? 1 : null", "1");
}

#[test]
fn conditional_ignores_errors_of_the_branch_not_taken() {
    check(r#"var.nullobj == null ? "none" : var.nullobj.name"#, r#""none""#);
    check(r#"length(var.list) > 5 ? var.list[5] : -1"#, "-1");
    check_err_at(r#"true ? var.nullobj.name : "x""#, "E-ATTR-NULL", "null", "var.nullobj.name");
}

#[test]
fn conditional_with_unknown_or_sensitive_condition() {
    check("var.u ? 1 : 2", "?");
    check("var.u ? null : null", "null");
    // Errors in either branch cannot be known to matter.
    check("var.u ? var.nullobj.name : 1", "?");
    check(r#"var.sbool ? "a" : "b""#, r#"sensitive("a")"#);
    check(r#"var.s == "hunter2" ? 1 : 2"#, "sensitive(1)");
    check("var.sbool ? var.u : 1", "sensitive(?)");
    check("var.flag ? var.s : \"\"", r#"sensitive("hunter2")"#);
}

// ----- references, indexes and attributes -----

#[test]
fn references_resolve_through_the_scope() {
    check("var.name", r#""web""#);
    check("record.a.id", r#""rec-a""#);
    check("data.kind.d.out", r#""D""#);
    check("module.m.out", r#""M""#);
    check("count.index", "2");
    check("each.key", r#""k1""#);
    check("each.value.port", "80");
    check("path.module", r#"".""#);
    check_err_at("var.missing", "E-REF-UNDECLARED", "`var.missing` is not declared", "var.missing");
    check_err_at("var.missing.attr", "E-REF-UNDECLARED", "`var.missing`", "var.missing.attr");
    let d = check_err_at("foo", "E-REF-UNKNOWN", "unknown name `foo`", "foo");
    assert!(d.hint.unwrap().contains("var.NAME"));
    let d = check_err_at("var", "E-REF-INCOMPLETE", "`var` cannot be used alone", "var");
    assert_eq!(d.hint.as_deref(), Some("write var.NAME"));
    let d = check_err("count", "E-REF-INCOMPLETE", "`count`");
    assert_eq!(d.hint.as_deref(), Some("write count.index"));
    check_err("each.other", "E-REF-INCOMPLETE", "`each`");
    check_err("data.kind", "E-REF-INCOMPLETE", "`data`");
}

#[test]
fn attribute_access() {
    check("local.obj.id", r#""x""#);
    check("local.obj.tags.env", r#""prod""#);
    check(r#"local.obj["tags"]["env"]"#, r#""prod""#);
    check("record.u.id", "null");
    let d = check_err_at("local.obj.nope", "E-ATTR-MISSING", "this object has no attribute `nope`", "local.obj.nope");
    assert_eq!(d.hint.as_deref(), Some("attributes are: id, tags"));
    let d = check_err("{}.x", "E-ATTR-MISSING", "`x`");
    assert_eq!(d.hint.as_deref(), Some("the object is empty"));
    check_err("local.nothing.x", "E-ATTR-NULL", "cannot read `x` of a null value");
    let d = check_err("local.objs.id", "E-ATTR-LIST", "cannot read `id` of a list");
    assert!(d.hint.unwrap().contains("[*].id"));
    check_err(r#""abc".x"#, "E-ATTR-TYPE", "cannot read `x` of a string");
}

#[test]
fn index_access() {
    check("var.list[0]", "10");
    check("var.list[2]", "30");
    check(r#"var.list["1"]"#, "20");
    check("var.list[local.i]", "20");
    check("var.list.1", "20");
    check(r#"local.map["a"]"#, r#""A""#);
    check("local.map[local.k == \"key\" ? \"b\" : \"a\"]", r#""B""#);
    check(r#"{"1" = "x"}[1]"#, r#""x""#);
    check_err_at("var.list[5]", "E-INDEX-RANGE", "index 5 is out of range for a list of 3 elements", "5");
    check_err("var.list[-1]", "E-INDEX-RANGE", "index -1");
    check_err("var.list[1.5]", "E-INDEX-RANGE", "index 1.5");
    check_err_at(r#"var.list["x"]"#, "E-INDEX-TYPE", "a list index must be a number, got string", r#""x""#);
    let d = check_err_at(r#"local.map["zz"]"#, "E-INDEX-MISSING", r#"the map has no element "zz""#, r#""zz""#);
    assert_eq!(d.hint.as_deref(), Some(r#"keys are: "a", "b""#));
    check_err("local.map[[1]]", "E-INDEX-TYPE", "a map key must be a string, got list");
    check_err("local.nothing[0]", "E-INDEX-NULL", "cannot index a null value");
    check_err(r#""abc"[0]"#, "E-INDEX-TYPE", "cannot index a string");
}

#[test]
fn indexes_and_attributes_with_unknowns_and_marks() {
    check("var.u.attr", "?");
    check("var.u[0]", "?");
    check("var.list[var.u]", "?");
    check("var.partial[1]", "?");
    check("var.partial[0]", r#""a""#);
    check("var.sobj.a", "sensitive(1)");
    check(r#"var.sobj["b"]"#, "sensitive(2)");
    check("var.slist[0]", r#"sensitive("x")"#);
    check("var.list[var.sobj.a]", "sensitive(20)");
    check("local.sobjs[0].id", r#"sensitive("a")"#);
    check("local.sobjs[1].id", r#""b""#);
}

// ----- splats -----

#[test]
fn full_splat() {
    check("local.objs[*].id", r#"["a", "b"]"#);
    check("local.objs[*].n[0]", "[1, 3]");
    check("local.objs[*]", r#"[{id = "a", n = [1, 2]}, {id = "b", n = [3, 4]}]"#);
    check("local.objs[*].n[*]", "[[1, 2], [3, 4]]");
    check("length(local.objs[*].id)", "2");
}

#[test]
fn attribute_only_splat_ends_at_the_first_index() {
    // `a.*.b[0]` is `(a.*.b)[0]` (HCL spec), unlike `a[*].b[0]`.
    check("local.objs.*.id", r#"["a", "b"]"#);
    check("local.objs.*.n[0]", "[1, 2]");
    check("local.objs.*.n[1][0]", "3");
    check("local.objs.*.id[1]", r#""b""#);
}

#[test]
fn splat_on_null_single_values_and_maps() {
    check("local.nothing[*]", "[]");
    check("local.nothing[*].id", "[]");
    check("local.nothing.*.id", "[]");
    check("local.obj[*].id", r#"["x"]"#);
    check("local.obj.*.id", r#"["x"]"#);
    // A map is a single value to a splat, as in Terraform: it becomes a one-element list.
    check("local.map[*]", r#"[{a = "A", b = "B"}]"#);
    check("local.map[*].a", r#"["A"]"#);
    check(r#""s"[*]"#, r#"["s"]"#);
}

#[test]
fn splat_with_unknowns_marks_and_errors() {
    check("var.u[*].id", "?");
    check("local.objs_u[*].id", r#"["a", ?]"#);
    check("var.slist[*]", r#"sensitive(["x", "y"])"#);
    check("local.sobjs[*].id", r#"[sensitive("a"), "b"]"#);
    check_err_at("local.objs[*].missing", "E-ATTR-MISSING", "no attribute `missing`", "local.objs[*].missing");
}

// ----- for expressions -----

#[test]
fn for_expressions() {
    check("[for x in [1, 2, 3]: x * 2]", "[2, 4, 6]");
    check(r#"[for i, x in ["a", "b"]: "${i}${x}"]"#, r#"["0a", "1b"]"#);
    check("{for k, v in {a = 1, b = 2}: v => k}", r#"{1 = "a", 2 = "b"}"#);
    check(r#"{for x in ["a", "b"]: x => upper(x)}"#, r#"{a = "A", b = "B"}"#);
    check("[for x in [1, 2, 3, 4]: x if x % 2 == 0]", "[2, 4]");
    check("[for k, v in {b = 1, a = 2}: k]", r#"["a", "b"]"#);
    check("[for v in {b = 1, a = 2}: v]", "[2, 1]");
    check("[for xs in [[1, 2], [3]]: [for x in xs: x + 1]]", "[[2, 3], [4]]");
    check("[for x in []: x]", "[]");
    check("{for x in []: x => x}", "{}");
    check("[for o in local.objs: o.id]", r#"["a", "b"]"#);
    // The for variable shadows names of the scope only inside the expression.
    check("[for name in [1]: name]", "[1]");
}

#[test]
fn for_grouping() {
    check(r#"{for x in ["a", "bb", "cc"]: length(x) => x...}"#, r#"{1 = ["a"], 2 = ["bb", "cc"]}"#);
    check(r#"{for x in ["a", "bb", "cc"]: length(x) => x... if x != "cc"}"#, r#"{1 = ["a"], 2 = ["bb"]}"#);
}

#[test]
fn for_errors() {
    let d = check_err_at(r#"{for x in ["a", "b", "a"]: x => x}"#, "E-FOR-DUPKEY", r#"duplicate key "a""#, "x");
    assert!(d.hint.unwrap().contains("`...`"), "hint names the grouping mode");
    check_err_at("[for x in null: x]", "E-FOR-NULL", "cannot iterate over a null value", "null");
    check_err_at("[for x in 1: x]", "E-FOR-TYPE", "cannot iterate over a number", "1");
    check_err_at("[for x in [1, 2]: x if x]", "E-FOR-COND", "must be a bool", "x");
    check_err("{for x in [[1]]: x => 1}", "E-FOR-KEY", "must be a string");
    check_err("[for x in [1]: x.nope]", "E-ATTR-TYPE", "of a number");
}

#[test]
fn for_with_unknowns_and_marks() {
    check("[for x in var.u: x]", "?");
    check("[for x in var.list: x if var.u]", "?");
    check(r#"{for x in ["a"]: var.u => x}"#, "?");
    check("[for x in var.partial: x]", r#"["a", ?]"#);
    check("[for x in var.slist: upper(x)]", r#"sensitive(["X", "Y"])"#);
    check("[for x in var.list: var.s]", r#"[sensitive("hunter2"), sensitive("hunter2"), sensitive("hunter2")]"#);
    check("{for k, v in var.sobj: k => v}", "sensitive({a = 1, b = 2})");
    // Marks of keys and of `if` conditions mark the whole result.
    check(r#"{for x in ["a"]: var.s => x}"#, r#"sensitive({hunter2 = "a"})"#);
    check("[for x in [1, 2]: x if var.sbool]", "sensitive([1, 2])");
    check("[for x in var.u: x if var.sbool]", "?");
    check("[for x in var.slist: x if var.u]", "sensitive(?)");
}

// ----- collections with unknowns and marks -----

#[test]
fn collections_keep_unknowns_and_marks_inside() {
    check("[var.u, 1]", "[?, 1]");
    check("{a = var.u}", "{a = ?}");
    check("{(var.u) = 1}", "?");
    check("[var.s]", r#"[sensitive("hunter2")]"#);
    check("{k = var.s}", r#"{k = sensitive("hunter2")}"#);
    // A sensitive key makes the whole object sensitive, as in Terraform.
    check("{(var.s) = 1}", "sensitive({hunter2 = 1})");
    check_err_at("{(local.nothing) = 1}", "E-OBJECT-KEY", "cannot be null", "(local.nothing)");
    check_err_at("{([1]) = 1}", "E-OBJECT-KEY", "must be a string, got list", "([1])");
}

// ----- try and can -----

#[test]
fn try_and_can() {
    check(r#"try(local.obj.nope, "d")"#, r#""d""#);
    check(r#"try(local.obj.id, "d")"#, r#""x""#);
    check(r#"try(local.nothing.a, local.map.zz, 3)"#, "3");
    check("can(local.obj.nope)", "false");
    check("can(local.obj.id)", "true");
    check("can(var.list[9])", "false");
    check("can(var.u)", "?");
    check("try(var.u, 1)", "?");
    check("try(var.partial, 1)", "?");
    check("try(var.s, 1)", r#"sensitive("hunter2")"#);
    check_err("try(local.obj.nope, local.map.zz)", "E-ATTR-MISSING", "`zz`");
    check_err("try()", "E-FUNC-ARITY", "at least one argument");
    check_err("can(1, 2)", "E-FUNC-ARITY", "exactly one argument");
}

// ----- function calls -----

#[test]
fn function_calls() {
    check(r#"upper("a")"#, r#""A""#);
    check("max(var.list...)", "30");
    check("max(1, var.list...)", "30");
    check("length(var.list)", "3");
    check(r#"join("-", var.strs)"#, r#""a-b""#);
    check("upper(var.u)", "?");
    check("upper(var.s)", r#"sensitive("HUNTER2")"#);
    check("max(var.u...)", "?");
}

#[test]
fn expanding_a_sensitive_list_keeps_the_mark() {
    check("max(var.snums...)", "sensitive(3)");
    check("min(var.snums...)", "sensitive(1)");
}

#[test]
fn function_errors_point_at_the_offending_argument() {
    // An extra argument is the offending one.
    check_err_at(r#"upper("a", "b")"#, "E-FUNC", "upper", r#""b""#);
    check_err_at(r#"substr("abc", "x", 1)"#, "E-FUNC", r#""offset" parameter: a number is required"#, r#""x""#);
    check_err_at(r#"join("-", [1, [2]])"#, "E-FUNC", "join", r#"[1, [2]]"#);
    let d = check_err_at(r#"uper("a")"#, "E-FUNC", "no function named", r#"uper("a")"#);
    assert!(d.summary.contains(r#"did you mean "upper""#), "{}", d.summary);
    check_err_at("max(1, var.mixed...)", "E-FUNC", "number", "var.mixed");
    check_err_at(r#"max(1, "a"...)"#, "E-FUNC-EXPAND", "only a list can be expanded", r#""a""#);
    check_err_at(r#"upper(var.nullobj.x)"#, "E-ATTR-NULL", "null", "var.nullobj.x");
    check_err_at("aws::fn(1)", "E-FUNC-UNKNOWN", "provider-defined functions", "fn");
}

#[test]
fn function_errors_never_show_sensitive_values() {
    let d = eval_in("tonumber(var.s)", &scope()).unwrap_err();
    for x in d.iter() {
        assert!(!x.summary.contains("hunter2"), "{}", x.summary);
    }
}

#[test]
fn values_nested_deeper_than_the_limit_are_an_error_at_the_expression() {
    let mut s = scope();
    // A value built by a chain of locals, each one list deeper than the last.
    let mut v = kiln_value::Value::List(Vec::new());
    for _ in 1..kiln_value::MAX_DEPTH {
        v = kiln_value::Value::List(vec![v]);
    }
    s.values.insert("local.deep".into(), v);
    assert!(eval_in("local.deep", &s).is_ok());
    let src = "[local.deep]";
    let d = check_err_in(src, &s, "E-VALUE-DEPTH", "more than 256 levels deep");
    assert_eq!(&src[d.primary.unwrap().span.range], src);
    // jsondecode of deeply nested input is refused at its argument, without a stack overflow.
    let deep = format!("jsondecode(\"{}{}\")", "[".repeat(40_000), "]".repeat(40_000));
    check_err_in(&deep, &s, "E-FUNC", "nested deeper than 256 levels");
    let deep = format!("yamldecode(\"{}1\")", "- ".repeat(40_000));
    check_err_in(&deep, &s, "E-FUNC", "nested deeper than 256 levels");
}

#[test]
fn nested_for_loops_are_bounded() {
    // 1,000,000,000 iterations would exhaust memory: refused once past the limit.
    let src = "[for a in range(1000) : [for b in range(1000) : [for c in range(1000) : 1]]]";
    let d = check_err(src, "E-FOR-LIMIT", "more than 1000000");
    assert!(d.primary.is_some(), "{src}");
    let d = check_err(
        r#""%{ for a in range(1000) }%{ for b in range(1000) }%{ for c in range(1000) }x%{ endfor }%{ endfor }%{ endfor }""#,
        "E-FOR-LIMIT",
        "`for` iterations",
    );
    assert!(d.primary.is_some());
    // The budget is per expression: many loops in separate expressions are fine.
    for _ in 0..3 {
        assert!(eval_in("length([for a in range(500) : [for b in range(1000) : b]])", &scope()).is_ok());
    }
}
