//! `lifecycle` (prevent_destroy, ignore_changes, create_before_destroy) and `depends_on`.

use crate::support::Project;

/// Index of the first stderr line containing `needle`; panics naming it when absent.
fn line_of(out: &str, needle: &str) -> usize {
    out.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with `{needle}` in:\n{out}"))
}

const PREVENT: &str = r#"
resource "record" "keep" {
  input = "precious"
  lifecycle {
    prevent_destroy = true
  }
}

resource "record" "other" {
  input = "x"
}
"#;

#[test]
fn prevent_destroy_blocks_destroy() {
    let p = Project::new(PREVENT);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let r = p.kiln(&["destroy", "--auto-approve"]).code_is(1);
    assert!(r.stderr().contains("record.keep") && r.stderr().contains("prevent_destroy"), "{}", r.stderr());
    assert_eq!(p.state_list(), ["record.keep", "record.other"], "nothing destroyed, not even record.other");
}

#[test]
fn prevent_destroy_blocks_replacement() {
    let p = Project::new(PREVENT);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.write("main.kiln.hcl", &PREVENT.replace("input = \"precious\"", "input = \"precious\"\n  triggers_replace = 2"));
    let r = p.kiln(&["plan"]).code_is(1);
    assert!(r.stderr().contains("record.keep") && r.stderr().contains("prevent_destroy"), "{}", r.stderr());
}

#[test]
fn prevent_destroy_goes_with_its_block() {
    let p = Project::new(PREVENT);
    p.kiln(&["apply", "--auto-approve"]).ok();
    // As in Terraform: once the block is removed, so is its lifecycle, and the object is destroyed.
    p.write("main.kiln.hcl", "resource \"record\" \"other\" {\n  input = \"x\"\n}\n");
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("record.keep will be destroyed"), "{plan}");
}

#[test]
fn exclude_lets_destroy_skip_a_protected_resource() {
    let p = Project::new(PREVENT);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.kiln(&["destroy", "--auto-approve", "--exclude", "record.keep"]).ok();
    assert_eq!(p.state_list(), ["record.keep"]);
}

const IGNORE: &str = r#"
resource "record" "a" {
  input            = "one"
  triggers_replace = "t1"
  lifecycle {
    ignore_changes = [input]
  }
}
"#;

#[test]
fn ignore_changes_keeps_the_ignored_attribute_in_state() {
    let p = Project::new(IGNORE);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.write("main.kiln.hcl", &IGNORE.replace("\"one\"", "\"two\""));
    p.kiln(&["apply", "--auto-approve"]).ok();
    let shown = p.kiln(&["state", "show", "record.a"]).ok().stdout();
    assert!(shown.contains("input = \"one\""), "{shown}");
    // Attributes not ignored still count.
    p.write("main.kiln.hcl", &IGNORE.replace("\"t1\"", "\"t2\""));
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("record.a must be replaced"), "{plan}");
}

#[test]
fn ignore_changes_plans_no_change() {
    let p = Project::new(IGNORE);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.write("main.kiln.hcl", &IGNORE.replace("\"one\"", "\"two\""));
    let r = p.kiln(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code(), 0, "an ignored change is no change:\n{}", r.stdout());
}

const CBD: &str = r#"
resource "record" "a" {
  input            = "x"
  triggers_replace = "1"
  lifecycle {
    create_before_destroy = true
  }
}
"#;

#[test]
fn create_before_destroy_is_planned_as_create_then_destroy() {
    let p = Project::new(CBD);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.write("main.kiln.hcl", &CBD.replace("\"1\"", "\"2\""));
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("+/- resource \"record\" \"a\""), "{plan}");
    assert!(plan.contains("Plan: 1 to add, 0 to change, 1 to destroy."), "{plan}");
}

#[test]
fn create_before_destroy_replaces_new_before_old() {
    let p = Project::new(CBD);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let old_id = p.state_json()["resources"][0]["attributes"]["id"].as_str().unwrap().to_string();
    p.write("main.kiln.hcl", &CBD.replace("\"1\"", "\"2\""));
    let err = p.kiln_loud(&["apply", "--auto-approve"]).ok().stderr();
    // The old object is deposed once the new one exists, then destroyed.
    assert!(line_of(&err, "record.a: Creation complete") < line_of(&err, "record.a (deposed object "), "{err}");
    assert!(err.lines().any(|l| l.starts_with("record.a (deposed object ") && l.ends_with("): Destroying...")), "{err}");
    assert_eq!(p.state_list(), ["record.a"], "the new object is in state");
    let new_id = p.state_json()["resources"][0]["attributes"]["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id);
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

#[test]
fn without_create_before_destroy_the_old_object_goes_first() {
    let config = CBD.replace("create_before_destroy = true", "create_before_destroy = false");
    let p = Project::new(&config);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.write("main.kiln.hcl", &config.replace("\"1\"", "\"2\""));
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("-/+ resource \"record\" \"a\""), "{plan}");
    let err = p.kiln_loud(&["apply", "--auto-approve"]).ok().stderr();
    assert!(line_of(&err, "record.a: Destruction complete") < line_of(&err, "record.a: Creating..."), "{err}");
    assert_eq!(p.state_list(), ["record.a"]);
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

#[test]
fn depends_on_orders_creates_and_destroys() {
    let p = Project::new(
        r#"
resource "record" "first" {
  input        = "f"
  create_delay = "200ms"
}

resource "record" "second" {
  input      = "s"
  depends_on = [record.first]
}
"#,
    );
    let err = p.kiln_loud(&["apply", "--auto-approve"]).ok().stderr();
    assert!(line_of(&err, "record.first: Creation complete") < line_of(&err, "record.second: Creating..."), "{err}");
    let deps =
        p.state_json()["resources"].as_array().unwrap().iter().find(|r| r["address"] == "record.second").unwrap()["dependencies"].clone();
    assert_eq!(deps, serde_json::json!(["record.first"]));
    let err = p.kiln_loud(&["destroy", "--auto-approve"]).ok().stderr();
    assert!(line_of(&err, "record.second: Destruction complete") < line_of(&err, "record.first: Destroying..."), "{err}");
}

/// a ← b ← c (each depends on the one before), with d beside them.
const CHAIN: &str = r#"
resource "record" "a" {
  input = "a"
}

resource "record" "b" {
  input = record.a.output
}

resource "record" "c" {
  input = record.b.output
}

resource "record" "d" {
  input = "d"
}
"#;

/// Issue 10, defect 9: `destroy --target` also destroyed what the target depends on (on the
/// quickstart, `destroy --target job.train` deleted the checkpoint bucket and the cluster).
/// As in Terraform, destroying a target removes it and what depends on it, never what it
/// depends on.
#[test]
fn destroy_target_removes_dependents_and_keeps_dependencies() {
    let p = Project::new(CHAIN);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.kiln(&["destroy", "--auto-approve", "--target", "record.b"]).ok();
    assert_eq!(p.state_list(), ["record.a", "record.d"], "b and its dependent c are gone; a, which b depends on, stays");
}

/// An excluded object stays, and so does what it depends on; its dependents may go.
#[test]
fn destroy_exclude_keeps_the_object_and_its_dependencies() {
    let p = Project::new(CHAIN);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.kiln(&["destroy", "--auto-approve", "--exclude", "record.b"]).ok();
    assert_eq!(p.state_list(), ["record.a", "record.b"]);
}

/// Terraform's warning: plan, apply and destroy with --target or --exclude say that targeting is
/// in effect; without them they do not.
#[test]
fn targeting_warns_that_it_is_in_effect() {
    let p = Project::new(CHAIN);
    let warned = |r: &crate::support::Run| r.stderr().contains("Resource targeting is in effect");
    assert!(!warned(&p.kiln(&["plan"]).ok()));
    for args in
        [&["plan", "--target", "record.b"][..], &["plan", "--exclude", "record.d"], &["apply", "--auto-approve", "--target", "record.c"]]
    {
        let r = p.kiln(args).ok();
        assert!(warned(&r), "kiln {args:?}:\n{}", r.stderr());
    }
    let r = p.kiln(&["destroy", "--auto-approve", "--target", "record.a"]).ok();
    assert!(warned(&r), "{}", r.stderr());
    assert_eq!(p.state_list(), Vec::<String>::new());
}

/// The issue's case: `destroy --target job.train` on a quickstart-like project cancels the job
/// and keeps its checkpoint bucket and cluster.
#[test]
fn destroy_target_job_keeps_its_bucket_and_cluster() {
    let p = Project::new(
        r#"
resource "bucket" "checkpoints" {
  force_destroy = true
}

resource "cluster" "train" {
  nodes = 1
}

resource "job" "train" {
  cluster    = cluster.train
  run        = "sleep 30"
  stop_grace = 1
  checkpoint {
    bucket = bucket.checkpoints
    path   = "run-1/"
  }
}
"#,
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    let r = p.kiln(&["destroy", "--auto-approve", "--target", "job.train"]).ok();
    assert!(r.stderr().contains("Resource targeting is in effect"), "{}", r.stderr());
    assert_eq!(p.state_list(), ["bucket.checkpoints", "cluster.train"]);
    assert!(p.path().join(".kiln/buckets/checkpoints").is_dir(), "the bucket's directory is kept");
    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert_eq!(p.state_list(), Vec::<String>::new());
}
