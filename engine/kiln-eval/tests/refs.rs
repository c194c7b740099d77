//! `references()` tests: every kind of reference is found with the span of the reference itself,
//! in every construct, and names bound by `for` expressions and `%{for}` directives are skipped.

mod common;

use common::parse;
use kiln_eval::{references, Ref};

/// The references of `src` as `(reference, source text under its span)`.
fn refs(src: &str) -> Vec<(String, String)> {
    references(&parse(src)).into_iter().map(|(r, span)| (r.to_string(), src[span.range].to_string())).collect()
}

/// Asserts the references of `src`; `expected` lists `"ref @ text"` entries in order.
#[track_caller]
fn check_refs(src: &str, expected: &[&str]) {
    let got: Vec<String> = refs(src).into_iter().map(|(r, t)| format!("{r} @ {t}")).collect();
    assert_eq!(got, expected, "references of {src:?}");
}

#[test]
fn every_kind_of_reference() {
    check_refs("var.a", &["var.a @ var.a"]);
    check_refs("local.b", &["local.b @ local.b"]);
    check_refs("record.x.id", &["record.x @ record.x"]);
    check_refs("data.kind.name.attr", &["data.kind.name @ data.kind.name"]);
    check_refs("module.m.out.x", &["module.m.out @ module.m.out"]);
    check_refs("module.m", &["module.m @ module.m"]);
    check_refs("count.index", &["count.index @ count.index"]);
    check_refs("each.key", &["each.key @ each.key"]);
    check_refs("each.value.port", &["each.value @ each.value"]);
    check_refs("path.module", &["path.module @ path.module"]);
    check_refs("self.id", &["self @ self"]);
    check_refs("self", &["self @ self"]);
}

#[test]
fn reference_values() {
    let r: Vec<Ref> =
        references(&parse("[record.x.id, data.k.n, module.m.o, module.n, each.value, path.root]")).into_iter().map(|(r, _)| r).collect();
    assert_eq!(
        r,
        vec![
            Ref::Resource { kind: "record".into(), name: "x".into() },
            Ref::Data { kind: "k".into(), name: "n".into() },
            Ref::Module("m".into(), Some("o".into())),
            Ref::Module("n".into(), None),
            Ref::EachValue,
            Ref::Path("root".into()),
        ]
    );
}

#[test]
fn spans_cover_the_reference_not_what_is_read_from_it() {
    check_refs("var.list[0].id", &["var.list @ var.list"]);
    check_refs("record.x[*].id", &["record.x @ record.x"]);
    check_refs("record.x.*.id", &["record.x @ record.x"]);
    check_refs("module.m.out[\"k\"]", &["module.m.out @ module.m.out"]);
    let src = "1 +   var.a";
    let (_, span) = references(&parse(src)).remove(0);
    assert_eq!(span.range, 6..11);
}

#[test]
fn references_in_every_construct() {
    check_refs("var.a + local.b", &["var.a @ var.a", "local.b @ local.b"]);
    check_refs("-var.n", &["var.n @ var.n"]);
    check_refs("!(var.f)", &["var.f @ var.f"]);
    check_refs("var.c ? record.a.id : record.b.id", &["var.c @ var.c", "record.a @ record.a", "record.b @ record.b"]);
    check_refs("[var.a, {k = local.b, (var.key) = 1}]", &["var.a @ var.a", "local.b @ local.b", "var.key @ var.key"]);
    check_refs("upper(var.s)", &["var.s @ var.s"]);
    check_refs("try(var.a.b, local.c)", &["var.a @ var.a", "local.c @ local.c"]);
    check_refs("max(var.xs...)", &["var.xs @ var.xs"]);
    check_refs("var.list[local.i]", &["var.list @ var.list", "local.i @ local.i"]);
    check_refs("values(var.m)[0].id", &["var.m @ var.m"]);
    check_refs("(var.obj).a[local.k]", &["var.obj @ var.obj", "local.k @ local.k"]);
    check_refs("\"${var.a}-${record.x.id}\"", &["var.a @ var.a", "record.x @ record.x"]);
    check_refs("<<EOT\n${var.h}\nEOT", &["var.h @ var.h"]);
    check_refs("\"%{ if var.on }${local.a}%{ else }${local.b}%{ endif }\"", &["var.on @ var.on", "local.a @ local.a", "local.b @ local.b"]);
    check_refs("templatefile(\"t.tpl\", {a = var.a})", &["var.a @ var.a"]);
}

#[test]
fn for_variables_are_not_references() {
    check_refs("[for x in var.xs: x.id + local.y]", &["var.xs @ var.xs", "local.y @ local.y"]);
    check_refs("{for k, v in var.m: k => v.id if v.on != var.z}", &["var.m @ var.m", "var.z @ var.z"]);
    check_refs("[for record in var.rs: record.id]", &["var.rs @ var.rs"]);
    check_refs("[for x in var.xs: [for y in x.ys: y + x.n + local.c]]", &["var.xs @ var.xs", "local.c @ local.c"]);
    // An index inside a bound traversal is still searched.
    check_refs("[for x in var.xs: x[local.i]]", &["var.xs @ var.xs", "local.i @ local.i"]);
    // The binding ends with the expression.
    check_refs("concat([for x in []: x], [x.y])", &["x.y @ x.y"]);
    // The collection is outside the binding.
    check_refs("[for x in x.list: x]", &["x.list @ x.list"]);
}

#[test]
fn template_for_variables_are_not_references() {
    check_refs("\"%{ for s in var.ss }${s.name}${local.sep}%{ endfor }\"", &["var.ss @ var.ss", "local.sep @ local.sep"]);
    check_refs("\"%{ for i, s in var.ss }${i}${s}%{ endfor }${s.x}\"", &["var.ss @ var.ss", "s.x @ s.x"]);
}

#[test]
fn roots_that_are_not_references_are_skipped() {
    check_refs("foo", &[]);
    check_refs("var", &[]);
    check_refs("count", &[]);
    check_refs("each.other", &[]);
    check_refs("data.only_kind", &[]);
    check_refs("1 + 2", &[]);
    check_refs("\"plain\"", &[]);
}

/// `whole_reference`: an expression that is exactly a whole object (a resource, one of its
/// instances, a data resource, a module output) gives its text; anything read from it or
/// computed does not.
#[test]
fn whole_references() {
    let whole = |src: &str| kiln_eval::whole_reference(&parse(src));
    assert_eq!(whole("cluster.train").as_deref(), Some("cluster.train"));
    assert_eq!(whole("(cluster.train)").as_deref(), Some("cluster.train"));
    assert_eq!(whole("cluster.train[0]").as_deref(), Some("cluster.train[0]"));
    assert_eq!(whole("cluster.train.0").as_deref(), Some("cluster.train[0]"));
    assert_eq!(whole(r#"bucket.b["eu"]"#).as_deref(), Some(r#"bucket.b["eu"]"#));
    assert_eq!(whole("data.machine.this").as_deref(), Some("data.machine.this"));
    assert_eq!(whole("module.pool.cluster").as_deref(), Some("module.pool.cluster"));
    assert_eq!(whole("module.pool").as_deref(), Some("module.pool"));
    for not in [
        "cluster.train.nodes",
        "cluster.train[0].nodes",
        "cluster.train[var.i]",
        "module.pool.cluster.nodes",
        "var.x",
        "local.x",
        "each.value",
        "self",
        "cluster",
        "\"cluster.train\"",
        "merge(cluster.train, {})",
        "[cluster.train]",
    ] {
        assert_eq!(whole(not), None, "{not}");
    }
}
