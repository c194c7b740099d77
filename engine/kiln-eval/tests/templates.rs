//! Template tests: interpolation, `%{if}`/`%{for}` directives, strip markers `~`, heredocs
//! (`<<EOT` and `<<-EOT`, dedented exactly like Terraform), and `templatefile`.
//!
//! Expected values follow Terraform (HCL's hclsyntax): strip markers and the `<<-` dedent are
//! applied to the template's token stream, in which a heredoc's text is one token per line.

mod common;

use common::*;
use kiln_diag::FileId;
use kiln_eval::Expr;

// ----- interpolation -----

#[test]
fn interpolation_of_primitives() {
    check(r#""n=${1.50} b=${true} s=${"x"}""#, r#""n=1.5 b=true s=x""#);
    check(r#""${var.name}-${count.index}""#, r#""web-2""#);
    check(r#""""#, r#""""#);
    check(r#""$${x} %%{y}""#, r#""${x} %{y}""#);
    check(r#""line\nnext""#, r#""line\nnext""#);
}

#[test]
fn a_lone_interpolation_keeps_its_type() {
    check(r#""${1}""#, "1");
    check(r#""${[1]}""#, "[1]");
    check(r#""${ {a = true} }""#, "{a = true}");
    check(r#""${null}""#, "null");
    check(r#""${var.u}""#, "?");
    check(r#""${var.s}""#, r#"sensitive("hunter2")"#);
    check(r#""${~ 1 ~}""#, "1");
}

#[test]
fn collections_and_null_cannot_be_interpolated() {
    let d = check_err_at(r#""x${[1]}""#, "E-TEMPLATE-TYPE", "cannot insert a list into a string", "[1]");
    assert!(d.hint.unwrap().contains("jsonencode"));
    check_err_at(r#""x${ {a = 1} }""#, "E-TEMPLATE-TYPE", "cannot insert an object", "{a = 1}");
    // A list with an unknown element is still a list.
    check_err("\"x${var.partial}\"", "E-TEMPLATE-TYPE", "a list");
    check_err_at(r#""x${local.nothing}""#, "E-TEMPLATE-NULL", "null", "local.nothing");
}

#[test]
fn every_failing_interpolation_is_reported() {
    let src = r#""${var.m1} and ${var.m2}""#;
    let d = eval_in(src, &scope()).unwrap_err();
    assert_eq!(d.len(), 2, "{}", describe(&d, src));
}

#[test]
fn interpolation_with_unknowns_and_marks() {
    check(r#""a ${var.u} b""#, "?");
    check(r#""a ${var.s} b""#, r#"sensitive("a hunter2 b")"#);
    check(r#""${var.s}${var.u}""#, "sensitive(?)");
    check(r#""${var.sobj.a}!""#, r#"sensitive("1!")"#);
}

// ----- directives -----

#[test]
fn if_directive() {
    check(r#""%{ if true }yes%{ else }no%{ endif }""#, r#""yes""#);
    check(r#""%{ if false }yes%{ else }no%{ endif }""#, r#""no""#);
    check(r#""%{ if false }yes%{ endif }""#, r#""""#);
    check(r#""%{ if "true" }yes%{ endif }""#, r#""yes""#);
    check(r#""<%{ if var.flag }${var.name}%{ endif }>""#, r#""<web>""#);
    check(r#""%{ if var.u }a%{ endif }""#, "?");
    check(r#""%{ if var.sbool }a%{ endif }""#, r#"sensitive("a")"#);
    check_err_at(r#""%{ if 1 }a%{ endif }""#, "E-COND-TYPE", "an %{if} condition must be a bool, got number", "1");
}

#[test]
fn for_directive() {
    check(r#""%{ for x in [1, 2] }${x},%{ endfor }""#, r#""1,2,""#);
    check(r#""%{ for k, v in {b = 2, a = 1} }${k}=${v};%{ endfor }""#, r#""a=1;b=2;""#);
    check(r#""%{ for i, x in ["a", "b"] }${i}${x}%{ endfor }""#, r#""0a1b""#);
    check(r#""%{ for x in [] }${x}%{ endfor }""#, r#""""#);
    check(r#""%{ for x in [1, 2] }%{ if x == 2 }two%{ else }${x}%{ endif }%{ endfor }""#, r#""1two""#);
    check(r#""%{ for x in var.u }${x}%{ endfor }""#, "?");
    check(r#""%{ for x in var.slist }${x}%{ endfor }""#, r#"sensitive("xy")"#);
    check_err_at(r#""%{ for x in null }${x}%{ endfor }""#, "E-FOR-NULL", "null", "null");
    check_err_at(r#""%{ for x in 1 }${x}%{ endfor }""#, "E-FOR-TYPE", "cannot iterate over a number", "1");
    // The loop variable is not visible after the loop.
    check_err_at(r#""%{ for x in [1] }${x}%{ endfor }${x}""#, "E-REF-UNKNOWN", "`x`", "x");
}

// ----- strip markers -----

#[test]
fn strip_markers_on_interpolations() {
    check(r#""a ${~ "b" ~} c""#, r#""abc""#);
    check(r#""a ${~ "b"} c""#, r#""ab c""#);
    check(r#""a ${"b" ~} c""#, r#""a bc""#);
    // In a quoted string the literal is one token: `~` strips across escaped newlines.
    check(r#""a\n   ${~ "b"}""#, r#""ab""#);
    check(r#""x ${"y" ~}\n\n  z""#, r#""x yz""#);
}

#[test]
fn strip_markers_reach_into_directive_bodies() {
    check(r#""a %{ if true ~} b %{~ endif } c""#, r#""a b c""#);
    check(r#""a %{~ if true } b %{ endif ~} c""#, r#""a b c""#);
    check(r#""%{ if false }x %{~ else ~} y %{ endif }""#, r#""y ""#);
    check(r#""%{ if true }x %{~ else ~} y %{ endif }""#, r#""x""#);
    check(r#""%{ for x in [1, 2, 3] ~} ${x} %{~ endfor }""#, r#""123""#);
    check(r#""[ %{~ for x in [1, 2] ~} ${x} %{~ endfor ~} ]""#, r#""[12]""#);
}

// ----- heredocs -----

#[test]
fn heredoc() {
    check("<<EOT\nhello\n  world\nEOT", r#""hello\n  world\n""#);
    check("<<EOT\n${var.name}\nEOT", r#""web\n""#);
    check("<<EOT\n  a ${var.name} b\nEOT", r#""  a web b\n""#);
    check("<<EOT\nEOT", r#""""#);
    check("<<EOT\n$${not} %%{this}\nEOT", r#""${not} %{this}\n""#);
    check("<<EOT\n${var.u}\nEOT", "?");
    check("<<EOT\n${var.s}\nEOT", r#"sensitive("hunter2\n")"#);
}

#[test]
fn indented_heredoc_is_dedented_by_the_smallest_indentation() {
    check("<<-EOT\n    a\n      b\n    EOT", r#""a\n  b\n""#);
    check("<<-EOT\n      a\n    b\n  EOT", r#""  a\nb\n""#);
    check("<<-EOT\n    a\n\n    b\n  EOT", r#""a\n\nb\n""#);
    check("<<-EOT\n\tfoo\n\t\tbar\n\tEOT", r#""foo\n\tbar\n""#);
    check("<<-EOT\na\n  b\nEOT", r#""a\n  b\n""#);
    check("<<-EOT\n    $${a}\n      b\n    EOT", r#""${a}\n  b\n""#);
    check("<<-EOT\n    x ${var.name} y\n      z\n    EOT", r#""x web y\n  z\n""#);
}

#[test]
fn indented_heredoc_ignores_whitespace_only_lines() {
    // Terraform neither counts whitespace-only lines nor trims them.
    check("<<-EOT\n    a\n  \n    b\nEOT", r#""a\n  \nb\n""#);
    check("<<-EOT\n    a\n        \n    b\nEOT", r#""a\n        \nb\n""#);
}

#[test]
fn indented_heredoc_counts_only_literal_indentation() {
    // A line starting with an interpolation has no indentation: nothing is removed.
    check("<<-EOT\n  a\n${var.name}\n  b\nEOT", r#""  a\nweb\n  b\n""#);
    // Whitespace produced by an interpolation is not indentation.
    check("<<-EOT\n    ${\"  \"}a\n    b\nEOT", r#""  a\nb\n""#);
}

#[test]
fn indented_heredoc_dedents_directive_bodies() {
    check("<<-EOT\n  %{ if true }\n    x\n  %{ endif }\nEOT", r#""\n  x\n\n""#);
    check("<<-EOT\n    %{ for x in [1, 2] }\n    - ${x}\n    %{ endfor }\n    EOT", r#""\n- 1\n\n- 2\n\n""#);
    check("<<-EOT\n    %{ if false }\n      yes\n    %{ else }\n      no\n    %{ endif }\n    EOT", r#""\n  no\n\n""#);
}

#[test]
fn heredoc_strip_markers_stop_at_the_line_break() {
    // A heredoc's text is one token per line, so `~` strips at most through one line break.
    check("<<EOT\nx ${\"y\" ~}\n\n  z\nEOT", r#""x y\n  z\n""#);
    check("<<EOT\na\n   ${~ \"b\"}\nEOT", r#""a\nb\n""#);
    check("<<EOT\n%{ for x in [\"a\", \"b\"] ~}\n${x}\n%{ endfor ~}\nEOT", r#""a\nb\n""#);
}

#[test]
fn indented_heredoc_with_strip_markers_matches_terraform() {
    // Markers are applied before the dedent; both choices below are Terraform's (see
    // hashicorp/terraform#23710: a marker on `for` keeps the body's indentation).
    check("<<-EOT\n    %{ for x in [\"a\", \"b\"] }\n    ${x}\n    %{ endfor ~}\n    EOT", r#""\na\n\nb\n""#);
    check("<<-EOT\n    %{ for x in [\"a\", \"b\"] ~}\n    ${x}\n    %{ endfor }\n    EOT", r#""    a\n    b\n\n""#);
    check("<<-EOT\n  %{~ if true ~}\n    x\n  %{~ endif ~}\nEOT", r#""    x\n""#);
}

#[test]
fn expressions_built_without_source_still_strip_and_dedent() {
    let eval_new = |src: &str| {
        let e = hcl_edit::parser::parse_expr(src).unwrap();
        show(&kiln_eval::eval(&Expr::new(FileId(0), e), &scope()).unwrap())
    };
    assert_eq!(eval_new(r#""a ${~ "b" ~} c""#), r#""abc""#);
    assert_eq!(eval_new("<<-EOT\n    a\n      b\n    EOT"), r#""a\n  b\n""#);
    assert_eq!(eval_new("<<EOT\n%{ for x in [1, 2] ~}\n${x}\n%{ endfor ~}\nEOT"), r#""1\n2\n""#);
}

#[test]
fn heredoc_inside_an_interpolation_is_prepared_too() {
    check("\"<${<<-EOT\n    in\n    EOT\n}>\"", r#""<in\n>""#);
}

// ----- templatefile -----

#[test]
fn templatefile_renders_relative_to_the_module_directory() {
    check(r#"templatefile("greet.tpl", {name = "Bob", items = ["a", "b"]})"#, r#""Hello, Bob!\n- a\n- b\n""#);
    check(r#"templatefile("${path.module}/greet.tpl", {name = "Al", items = []})"#, r#""Hello, Al!\n""#);
    // A template file is scanned a line at a time, like a heredoc: `~}` strips the rest of its
    // own line, not the next line's indentation.
    check(r#"templatefile("strip.tpl", {on = true})"#, r#""  on\n""#);
    check(r#"templatefile("strip.tpl", {on = false})"#, r#""  off\n""#);
    check(r#"templatefile("funcs.tpl", {name = "bob", items = [1, 2]})"#, r#""BOB 2\n""#);
    check(r#"templatefile("passthru.tpl", {port = 80})"#, "80");
}

#[test]
fn templatefile_sees_only_its_variables() {
    let d = check_err("templatefile(\"leak.tpl\", {})", "E-TEMPLATE-VAR", "template variable `var` is not defined");
    assert!(d.summary.contains("leak.tpl` line 1, column 6"), "{}", d.summary);
    let d = check_err(r#"templatefile("undefined.tpl", {name = "x"})"#, "E-TEMPLATE-VAR", "`nope`");
    assert!(d.summary.contains("line 2, column 3"), "{}", d.summary);
    assert!(d.hint.unwrap().contains("defined: name"));
    // Names bound around the call are not visible inside the template either.
    check_err(r#"[for items in [[1]]: templatefile("funcs.tpl", {name = "a"})]"#, "E-TEMPLATE-VAR", "`items`");
    let src = "templatefile(\"leak.tpl\", {})";
    let d = check_err_at(src, "E-TEMPLATE-VAR", "", src);
    assert_eq!(d.code, "E-TEMPLATE-VAR");
}

#[test]
fn templatefile_errors_point_at_the_argument() {
    check_err_at(r#"templatefile("missing.tpl", {})"#, "E-FILE", "cannot read", r#""missing.tpl""#);
    check_err_at(r#"templatefile("greet.tpl", 1)"#, "E-FUNC", "must be an object, got number", "1");
    check_err_at(r#"templatefile(1, {})"#, "E-FUNC", "the path must be a string, got number", "1");
    check_err(r#"templatefile("greet.tpl")"#, "E-FUNC-ARITY", "two arguments");
    let d = check_err(r#"templatefile("broken.tpl", {})"#, "E-TEMPLATE-PARSE", "broken.tpl");
    assert!(d.summary.contains("line 1"), "{}", d.summary);
}

#[test]
fn templatefile_with_unknowns_and_marks() {
    check(r#"templatefile("greet.tpl", {name = var.u, items = []})"#, "?");
    check(r#"templatefile(var.u, {})"#, "?");
    check(r#"templatefile("greet.tpl", var.u)"#, "?");
    check(r#"templatefile("greet.tpl", {name = var.s, items = []})"#, r#"sensitive("Hello, hunter2!\n")"#);
    check(r#"templatefile("funcs.tpl", {name = "a", items = var.slist})"#, r#"sensitive("A 2\n")"#);
}

#[test]
fn a_template_including_itself_is_an_error_not_a_stack_overflow() {
    let src = r#"templatefile("self.tpl", {})"#;
    let d = check_err_at(src, "E-FUNC", "cannot call templatefile from inside a template file", src);
    assert!(d.summary.contains("self.tpl` line 1, column 10"), "{}", d.summary);
}

#[test]
fn a_template_that_is_a_fifo_is_refused() {
    let dir = std::env::temp_dir().join(format!("kiln-eval-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("t.tpl");
    let _ = std::fs::remove_file(&fifo);
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut s = scope();
    s.dir = dir.clone();
    let d = check_err_in(r#"templatefile("t.tpl", {})"#, &s, "E-FILE", "is not a regular file");
    assert!(d.primary.is_some());
    std::fs::remove_dir_all(dir).unwrap();
}
