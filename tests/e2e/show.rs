//! Read-only views: `kiln show [--json]`, `kiln output [--json|--raw]`, `kiln graph`.

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
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("show --json is JSON");
    let addrs: Vec<&str> = v["resources"].as_array().unwrap().iter().map(|r| r["address"].as_str().unwrap()).collect();
    assert_eq!(addrs, ["record.a", "record.b", "record.secret"]);
    let b = &v["resources"][1];
    assert_eq!(b["kind"], "record");
    assert_eq!(b["values"]["output"], "alpha-beta");
    assert_eq!(v["resources"][2]["values"]["input"], serde_json::json!({"sensitive": true}));
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
    assert_eq!(p.kiln(&["output", "--raw", "token"]).ok().stdout(), "s3cr3t-token\n");
    assert_eq!(p.kiln(&["output", "--raw", "b"]).ok().stdout(), "alpha-beta\n", "raw strings are unquoted");
    let all = p.kiln(&["output"]).ok().stdout();
    assert!(all.contains("b = \"alpha-beta\"") && !all.contains("s3cr3t-token"), "{all}");
}

#[test]
fn output_of_an_unknown_name_fails() {
    let p = applied();
    let r = p.kiln(&["output", "nope"]).code_is(1);
    assert!(r.stderr().contains("nope"), "{}", r.stderr());
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
