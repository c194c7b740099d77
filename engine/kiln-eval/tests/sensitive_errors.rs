//! Issue 10 (defect 5): no evaluator error prints a sensitive value. Each test drives one error
//! path with the sensitive `var.s` ("hunter2") or a sensitive number and checks every text of
//! the diagnostics (summary, detail, hint, labels).

mod common;

use common::*;
use kiln_diag::Diagnostics;
use kiln_value::Value;

const SECRET: &str = "hunter2";

#[track_caller]
fn fails_without_secret(src: &str, scope: &TestScope, code: &str, secret: &str) {
    let d: Diagnostics = match eval_in(src, scope) {
        Ok(v) => panic!("{src:?}: expected {code}, got {}", show(&v)),
        Err(d) => d,
    };
    assert!(d.iter().any(|x| x.code == code), "{src:?}: expected {code}:\n{}", describe(&d, src));
    for x in d.iter() {
        let mut texts = vec![x.summary.clone()];
        texts.extend(x.detail.clone());
        texts.extend(x.hint.clone());
        texts.extend(x.primary.iter().chain(&x.secondary).map(|l| l.message.clone()));
        for t in texts {
            assert!(!t.contains(secret), "{src:?}: {} shows the secret: {t}", x.code);
        }
    }
}

#[test]
fn arithmetic_and_comparison_on_a_sensitive_string() {
    let s = scope();
    for src in ["var.s + 1", "1 - var.s", "var.s < 3", "var.s >= 3", "var.s * 2", "var.s % 2"] {
        fails_without_secret(src, &s, "E-OP-TYPE", SECRET);
    }
    // The value of a non-sensitive string is still shown, to help.
    check_err("var.name + 1", "E-OP-TYPE", "string \"web\"");
}

#[test]
fn a_sensitive_string_as_a_condition() {
    fails_without_secret("var.s ? 1 : 2", &scope(), "E-COND-TYPE", SECRET);
    fails_without_secret("[for x in [1] : x if var.s]", &scope(), "E-FOR-COND", SECRET);
    fails_without_secret("\"%{if var.s}a%{endif}\"", &scope(), "E-COND-TYPE", SECRET);
}

#[test]
fn a_sensitive_key_or_index() {
    fails_without_secret("{a = 1}[var.s]", &scope(), "E-INDEX-MISSING", SECRET);
    // A sensitive map does not list its keys.
    let mut s = scope();
    s.values.insert("var.smap".into(), val("{hunter2 = 1}").sensitive());
    fails_without_secret("var.smap[\"b\"]", &s, "E-INDEX-MISSING", SECRET);
    // A sensitive index out of range.
    s.values.insert("var.sn".into(), Value::from(73519i64).sensitive());
    fails_without_secret("[1, 2][var.sn]", &s, "E-INDEX-RANGE", "73519");
    // Duplicate sensitive keys of a `for`.
    fails_without_secret("{for x in [1, 2] : var.s => x}", &scope(), "E-FOR-DUPKEY", SECRET);
}

#[test]
fn a_template_file_doing_arithmetic_on_a_sensitive_value() {
    let mut s = scope();
    fails_without_secret("templatefile(\"sensitive_math.tpl\", {x = var.s})", &s, "E-OP-TYPE", SECRET);
    // The variables' object itself sensitive: each variable inside the template is.
    s.values.insert("var.sobj2".into(), val("{x = \"hunter2\"}").sensitive());
    fails_without_secret("templatefile(\"sensitive_math.tpl\", var.sobj2)", &s, "E-OP-TYPE", SECRET);
}
