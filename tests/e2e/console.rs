//! `kiln console` (issue 13): expressions read from stdin one per line, evaluated against the
//! configuration, variables and state as Terraform's console; results on stdout, errors as
//! diagnostics on stderr without ending the loop, exit 0 at the end of input.

use std::process::Command;

use crate::support::{bin, run, Project, Run};

const CONFIG: &str = r#"variable "name" {
  default = "train"
}

variable "token" {
  default   = "hunter2-secret"
  sensitive = true
}

locals {
  upper = upper(var.name)
}

resource "record" "a" {
  input = local.upper
}

output "o" {
  value = record.a.output
}
"#;

/// `kiln console EXTRA...` with `input` on stdin (through a shell's redirection, so the run
/// stays bounded as every other).
fn console(p: &Project, input: &str, extra: &[&str]) -> Run {
    p.write("console-input.txt", input);
    let mut c = Command::new("sh");
    c.arg("-c").arg("exec \"$0\" console \"$@\" < console-input.txt").arg(bin()).args(extra);
    c.current_dir(p.path()).env("NO_COLOR", "1").env("KILN_QUIET", "1");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KILN_") && k != "KILN_QUIET" {
            c.env_remove(k);
        }
    }
    run(c)
}

#[test]
fn evaluates_variables_locals_state_and_functions_line_by_line() {
    let p = Project::new(CONFIG);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let input = "var.name\nlocal.upper\nrecord.a.output\n\n[for s in [\"a\", \"b\"] : upper(s)]\n1 + 2\nlength(record.a.id) > 0\n";
    let r = console(&p, input, &[]).ok();
    assert_eq!(r.stdout(), "\"train\"\n\"TRAIN\"\n\"TRAIN\"\n[\"A\", \"B\"]\n3\ntrue\n");
    assert!(r.stderr().is_empty(), "{}", r.stderr());
    // Variables given on the command line count, as for plan.
    let r = console(&p, "local.upper\n", &["--var", "name=eval"]).ok();
    assert_eq!(r.stdout(), "\"EVAL\"\n");
}

#[test]
fn errors_are_diagnostics_and_the_loop_goes_on_to_exit_0() {
    let p = Project::new(CONFIG);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let r = console(&p, "nope.x\nupper(\nrecord.b.id\nvar.name\nexit\nvar.name\n", &[]).ok();
    assert_eq!(r.stdout(), "\"train\"\n", "each error is reported, the next line evaluated, `exit` ends the loop");
    let err = r.stderr();
    assert!(err.contains("E-REF-UNDECLARED") && err.contains("reference to undeclared resource `nope.x`"), "{err}");
    assert!(err.contains("E-SYNTAX") && err.contains("<console>:1:"), "{err}");
    assert!(err.contains("declared record resources: record.a"), "{err}");
    assert_eq!(err.matches("help:").count(), 3, "{err}");
}

#[test]
fn sensitive_values_are_never_shown() {
    let p = Project::new(CONFIG);
    let r = console(&p, "var.token\nupper(var.token)\n{ t = var.token }\ntonumber(var.token)\nlength(var.token)\n", &[]).ok();
    let out = r.stdout();
    assert_eq!(out, "(sensitive value)\n(sensitive value)\n(sensitive value)\n(sensitive value)\n", "{}", r.stderr());
    assert!(!out.contains("hunter2") && !r.stderr().contains("hunter2"), "{out}\n{}", r.stderr());
    assert!(r.stderr().contains("tonumber"), "the failing line is reported: {}", r.stderr());
}

#[test]
fn without_state_objects_are_known_after_apply() {
    let p = Project::new(CONFIG);
    let r = console(&p, "record.a.output\nlocal.upper\n", &[]).ok();
    assert_eq!(r.stdout(), "(known after apply)\n\"TRAIN\"\n");
}

#[test]
fn a_configuration_that_cannot_be_evaluated_stops_before_reading() {
    let p = Project::new("variable \"needed\" {}\n\noutput \"o\" {\n  value = var.needed\n}\n");
    let r = console(&p, "1\n", &[]).code_is(1);
    assert!(r.stdout().is_empty(), "{}", r.stdout());
    assert!(r.stderr().contains("needed") && r.stderr().contains("help:"), "{}", r.stderr());
    let r = console(&p, "var.needed\n", &["--var", "needed=yes"]).ok();
    assert_eq!(r.stdout(), "\"yes\"\n");
}
