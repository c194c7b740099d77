//! Read-only views: `kiln show [--json]`, `kiln output [--json|--raw]`, `kiln validate --json`
//! (each JSON view checked against its schema in `schemas/json/`), their markdown, `kiln graph`.

use crate::plan_view::{conforms, parsed};
use crate::support::Project;

const CONFIG: &str = r#"
variable "token" {
  type      = string
  sensitive = true
  default   = "s3cr3t-token"
}

resource "record" "a" {
  input = "alpha"
}

resource "record" "b" {
  input = "${record.a.output}-beta"
}

resource "record" "secret" {
  input = var.token
}

output "b" {
  value = record.b.output
}

output "token" {
  value     = var.token
  sensitive = true
}
"#;

fn applied() -> Project {
    let p = Project::new(CONFIG);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p
}

#[test]
fn show_json_lists_resources_and_outputs_without_secrets() {
    let p = applied();
    let out = p.kiln(&["show", "--json"]).ok().stdout();
    assert!(!out.contains("s3cr3t-token"), "{out}");
    let v = parsed(&out);
    conforms("state-view.schema.json", &v);
    assert_eq!(v["format_version"], "1.0");
    assert_eq!(parsed(&p.kiln(&["show", "--format", "json"]).ok().stdout()), v);
    let addrs: Vec<&str> = v["resources"].as_array().unwrap().iter().map(|r| r["address"].as_str().unwrap()).collect();
    assert_eq!(addrs, ["record.a", "record.b", "record.secret"]);
    let b = &v["resources"][1];
    assert_eq!(b["kind"], "record");
    assert_eq!(b["values"]["output"], "alpha-beta");
    // Marked beside the value: null in `values`, true in `sensitive_values`.
    assert_eq!(v["resources"][2]["values"]["input"], serde_json::json!(null));
    assert_eq!(v["resources"][2]["sensitive_values"], serde_json::json!({"input": true, "output": true}));
    assert_eq!(v["resources"][0]["sensitive_values"], serde_json::json!({}));
    assert_eq!(v["outputs"]["b"]["value"], "alpha-beta");
    assert_eq!(v["outputs"]["token"]["sensitive"], true);
    assert_eq!(v["lineage"], p.state_json()["lineage"]);
}

#[test]
fn show_human_redacts_sensitive_values() {
    let p = applied();
    let out = p.kiln(&["show"]).ok().stdout();
    assert!(out.contains("# record.b:") && out.contains("\"alpha-beta\""), "{out}");
    assert!(!out.contains("s3cr3t-token"), "{out}");
    assert!(out.contains("(sensitive value)"), "{out}");
}

#[test]
fn show_on_empty_state_says_so() {
    let p = Project::new(CONFIG);
    let out = p.kiln(&["show"]).ok().stdout();
    assert!(out.contains("The state is empty"), "{out}");
}

#[test]
fn output_raw_prints_a_sensitive_value() {
    let p = applied();
    let r = p.kiln(&["output", "token"]).ok();
    assert!(!r.stdout().contains("s3cr3t-token"), "{}", r.stdout());
    assert!(r.stderr().contains("--raw"), "hints at --raw: {}", r.stderr());
    assert_eq!(r.stdout(), "(sensitive value)\n", "the one marker for people");
    assert_eq!(p.kiln(&["output", "--raw", "token"]).ok().stdout(), "s3cr3t-token\n");
    assert_eq!(p.kiln(&["output", "--raw", "b"]).ok().stdout(), "alpha-beta\n", "raw strings are unquoted");
    let all = p.kiln(&["output"]).ok().stdout();
    assert!(all.contains("b = \"alpha-beta\"") && !all.contains("s3cr3t-token"), "{all}");
    assert!(all.contains("token = (sensitive value)"), "{all}");
}

#[test]
fn output_of_an_unknown_name_fails() {
    let p = applied();
    let r = p.kiln(&["output", "nope"]).code_is(1);
    assert!(r.stderr().contains("nope") && r.stderr().contains("outputs in state: b, token"), "{}", r.stderr());
}

#[test]
fn graph_prints_dot_with_dependency_edges() {
    let p = Project::new(CONFIG);
    let out = p.kiln(&["graph"]).ok().stdout();
    assert!(out.trim_start().starts_with("digraph"), "{out}");
    assert!(out.trim_end().ends_with('}'), "{out}");
    assert!(out.contains(r#""record.b" -> "record.a""#), "{out}");
    assert!(out.contains(r#""output.token" -> "var.token""#), "{out}");
    assert!(!out.contains(r#""record.a" -> "record.b""#), "edges point from dependent to dependency: {out}");
}

#[test]
fn graph_dot_quotes_are_escaped() {
    let p = Project::new(CONFIG);
    let out = p.kiln(&["graph"]).ok().stdout();
    // Every quoted DOT ID is a well-formed string: inner quotes escaped.
    let id = r#""(?:[^"\\]|\\.)*""#;
    let node = regex::Regex::new(&format!(r"^\s*{id};$")).unwrap();
    let edge = regex::Regex::new(&format!(r"^\s*{id} -> {id};$")).unwrap();
    for line in out.lines().filter(|l| l.trim_start().starts_with('"')) {
        assert!(node.is_match(line) || edge.is_match(line), "malformed DOT line: {line}\n{out}");
    }
}

#[test]
fn output_json_views_conform_with_and_without_a_name() {
    let p = applied();
    let all = parsed(&p.kiln(&["output", "--json"]).ok().stdout());
    conforms("output-view.schema.json", &all);
    assert_eq!(all["format_version"], "1.0");
    assert_eq!(all["outputs"]["b"], serde_json::json!({"sensitive": false, "value": "alpha-beta"}));
    assert_eq!(all["outputs"]["token"], serde_json::json!({"sensitive": true, "value": null}));
    let b = parsed(&p.kiln(&["output", "--json", "b"]).ok().stdout());
    conforms("output-view.schema.json", &b);
    assert_eq!(b, serde_json::json!({"format_version": "1.0", "name": "b", "sensitive": false, "value": "alpha-beta"}));
    let r = p.kiln(&["output", "--format", "json", "token"]).ok();
    let token = parsed(&r.stdout());
    conforms("output-view.schema.json", &token);
    assert_eq!((&token["sensitive"], &token["value"]), (&serde_json::json!(true), &serde_json::json!(null)));
    assert!(r.stderr().contains("--raw"), "{}", r.stderr());
    assert_eq!(p.kiln(&["output", "--json", "--raw", "token"]).ok().stdout(), "\"s3cr3t-token\"\n", "--raw asks for the value itself");
}

#[test]
fn markdown_views_are_tables_without_secrets() {
    let p = applied();
    let show = p.kiln(&["show", "--format", "markdown"]).ok().stdout();
    assert!(show.starts_with("### kiln state: 3 objects\n"), "{show}");
    assert!(show.contains("| Address | Kind | Provider |\n| --- | --- | --- |\n| `record.a` | record | kiln |"), "{show}");
    assert!(show.contains("| `b` | `\"alpha-beta\"` |") && show.contains("| `token` | (sensitive value) |"), "{show}");
    let out = p.kiln(&["output", "--format", "markdown"]).ok().stdout();
    assert_eq!(out, "| Output | Value |\n| --- | --- |\n| `b` | `\"alpha-beta\"` |\n| `token` | (sensitive value) |\n");
    for text in [show, out] {
        assert!(!text.contains("s3cr3t-token"), "{text}");
    }
}

#[test]
fn validate_views_conform() {
    let p = Project::new(CONFIG);
    let ok = parsed(&p.kiln(&["validate", "--json"]).ok().stdout());
    conforms("validate-view.schema.json", &ok);
    assert_eq!((&ok["valid"], &ok["error_count"]), (&serde_json::json!(true), &serde_json::json!(0)));
    let bad = Project::new("resource \"record\" \"a\" {\n  nonsense = 1\n}\n");
    let v = parsed(&bad.kiln(&["validate", "--format", "json"]).code_is(1).stdout());
    conforms("validate-view.schema.json", &v);
    assert_eq!((&v["valid"], &v["format_version"]), (&serde_json::json!(false), &serde_json::json!("1.0")));
    let d = &v["diagnostics"][0];
    assert_eq!(
        (&d["severity"], &d["range"]["filename"], &d["range"]["start"]["line"]),
        (&serde_json::json!("error"), &serde_json::json!("main.kiln.hcl"), &serde_json::json!(2)),
        "{v}"
    );
    let md = bad.kiln(&["validate", "--format", "markdown"]).code_is(1).stdout();
    assert!(md.starts_with("### kiln validate: 1 error\n\n- **Error** `"), "{md}");
    assert!(md.contains("at `main.kiln.hcl:2:3`"), "{md}");
}

/// `kiln show | head` (issue 13): a reader that closes the pipe early ends the command quietly:
/// exit 0, no panic, nothing on stderr.
#[test]
fn a_closed_stdout_pipe_ends_show_quietly() {
    use std::io::Read;
    let p = crate::support::Project::new("resource \"record\" \"r\" {\n  count = 3000\n  input = \"value-${count.index}\"\n}\n");
    p.kiln(&["apply", "--auto-approve"]).ok();
    for args in [&["show"][..], &["state", "list"][..], &["show", "--json"][..]] {
        let mut child =
            p.command(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn kiln");
        let mut first = [0u8; 64];
        child.stdout.take().expect("stdout").read_exact(&mut first).expect("some output");
        // The read end is dropped here: every later write fails with EPIPE.
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.trim().is_empty(), "{args:?} printed on stderr: {err}");
    }
}
