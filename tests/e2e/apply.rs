//! `kiln apply`, `destroy`, saved plans and outputs.

use crate::support::Project;

const CONFIG: &str = r#"
variable "n" {
  type    = number
  default = 2
}

resource "record" "node" {
  count = var.n
  input = "node-${count.index}"
}

output "names" {
  value = record.node[*].output
}
"#;

#[test]
fn apply_then_no_changes_then_destroy() {
    let p = Project::new(CONFIG);
    let r = p.kiln(&["apply", "--auto-approve"]).ok();
    assert!(r.stdout().contains("Apply complete! Resources: 2 added, 0 changed, 0 destroyed."), "{}", r.stdout());
    assert_eq!(p.output_json("names").to_string(), r#"["node-0","node-1"]"#);
    let r = p.kiln(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains("No changes."), "{}", r.stdout());
    let r = p.kiln(&["plan", "--var", "n=3"]).ok();
    assert!(r.stdout().contains("Plan: 1 to add, 0 to change, 0 to destroy."), "{}", r.stdout());
    let r = p.kiln(&["destroy", "--auto-approve"]).ok();
    assert!(r.stdout().contains("2 destroyed"), "{}", r.stdout());
    assert_eq!(p.kiln(&["state", "list"]).ok().stdout().trim(), "");
}

#[test]
fn apply_without_terminal_or_auto_approve_refuses() {
    let p = Project::new(CONFIG);
    let r = p.kiln(&["apply"]);
    assert_eq!(r.code(), 1);
    assert!(r.stderr().contains("--auto-approve"), "{}", r.stderr());
}

#[test]
fn update_in_place_and_replace_are_planned() {
    let p = Project::new("resource \"record\" \"a\" {\n  input = \"one\"\n  triggers_replace = \"x\"\n}\n");
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.write("main.kiln.hcl", "resource \"record\" \"a\" {\n  input = \"two\"\n  triggers_replace = \"x\"\n}\n");
    let out = p.kiln(&["plan"]).ok().stdout();
    assert!(out.contains("will be updated in place") && out.contains("\"one\" -> \"two\""), "{out}");
    p.write("main.kiln.hcl", "resource \"record\" \"a\" {\n  input = \"one\"\n  triggers_replace = \"y\"\n}\n");
    let out = p.kiln(&["plan"]).ok().stdout();
    assert!(out.contains("must be replaced (`triggers_replace` forces replacement)"), "{out}");
    assert!(out.contains("Plan: 1 to add, 0 to change, 1 to destroy."), "{out}");
}

#[test]
fn saved_plan_is_refused_after_state_changed() {
    let p = Project::new(CONFIG);
    p.kiln(&["plan", "--out", "first.kilnplan"]).ok();
    p.kiln(&["apply", "--auto-approve", "--var", "n=1"]).ok();
    let r = p.kiln(&["apply", "first.kilnplan"]);
    assert_eq!(r.code(), 1);
    assert!(r.stderr().contains("saved plan is stale"), "{}", r.stderr());
}

#[test]
fn saved_plan_applies_exactly() {
    let p = Project::new(CONFIG);
    p.kiln(&["plan", "--out", "p.kilnplan"]).ok();
    let r = p.kiln(&["apply", "p.kilnplan"]).ok();
    assert!(r.stdout().contains("2 added"), "{}", r.stdout());
}
