//! `kiln plan`, `validate` and diagnostics.

use crate::support::Project;

const TWO: &str = r#"
resource "record" "a" {
  input = "alpha"
}

resource "record" "b" {
  input = "${record.a.output}-beta"
}
"#;

#[test]
fn plan_on_empty_state_lists_creates_and_detailed_exitcode_is_2() {
    let p = Project::new(TWO);
    let r = p.kiln(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    let out = r.stdout();
    assert!(out.contains("# record.a will be created"), "{out}");
    assert!(out.contains("= \"alpha\""), "{out}");
    assert!(out.contains("= (known after apply)"), "{out}");
    assert!(out.contains("Plan: 2 to add, 0 to change, 0 to destroy."), "{out}");
}

#[test]
fn config_error_names_file_line_and_column() {
    let p = Project::new("resource \"record\" \"a\" {\n  input = var.missing\n}\n");
    let r = p.kiln(&["plan"]);
    assert_eq!(r.code(), 1);
    let err = r.stderr();
    assert!(err.contains("main.kiln.hcl:2:11"), "{err}");
    assert!(err.contains("undeclared variable `var.missing`"), "{err}");
    assert!(err.contains("help: declare it"), "{err}");
}

#[test]
fn all_errors_are_reported() {
    let p =
        Project::new("resource \"record\" \"a\" {\n  input = var.x\n  bogus = 1\n}\nresource \"record\" \"b\" {\n  input = local.y\n}\n");
    let err = p.kiln(&["validate"]).stderr();
    assert!(err.contains("var.x") && err.contains("local.y"), "{err}");
    // Schema checks run once references resolve; they too report every problem at once.
    let p = Project::new("resource \"record\" \"a\" {\n  bogus = 1\n  other = 2\n}\n");
    let err = p.kiln(&["validate"]).stderr();
    assert!(err.contains("`bogus`") && err.contains("`other`"), "{err}");
}

#[test]
fn cycle_lists_every_address() {
    let p = Project::new("resource \"record\" \"a\" {\n  input = record.b.id\n}\nresource \"record\" \"b\" {\n  input = record.a.id\n}\n");
    let err = p.kiln(&["plan"]).stderr();
    assert!(err.contains("dependency cycle"), "{err}");
    assert!(err.contains("record.a") && err.contains("record.b"), "{err}");
}

#[test]
fn plan_json_is_machine_readable() {
    let p = Project::new(TWO);
    let r = p.kiln(&["plan", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(r.stdout().trim()).expect("json");
    assert_eq!(v["summary"]["add"], 2);
    assert_eq!(v["resource_changes"][0]["action"], "create");
}

#[test]
fn sensitive_values_are_redacted() {
    let p = Project::new(
        "variable \"token\" {\n  sensitive = true\n  default = \"hunter2\"\n}\nresource \"record\" \"a\" {\n  input = var.token\n}\n",
    );
    let out = p.kiln(&["plan"]).ok().stdout();
    assert!(!out.contains("hunter2"), "{out}");
    assert!(out.contains("(sensitive value)"), "{out}");
}

const TARGETS: &str = r#"
resource "record" "a" {
  input = "a"
}

resource "record" "b" {
  input = record.a.output
}

resource "record" "c" {
  count = 2
  input = "c${count.index}"
}
"#;

/// Addresses the plan creates, in order.
fn planned(p: &Project, args: &[&str]) -> Vec<String> {
    let mut all = vec!["plan", "--json"];
    all.extend_from_slice(args);
    let out = p.kiln(&all).ok().stdout();
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    v["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no-op")
        .map(|c| c["address"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn target_plans_the_target_and_its_dependencies() {
    let p = Project::new(TARGETS);
    assert_eq!(planned(&p, &["--target", "record.b"]), ["record.a", "record.b"]);
    assert_eq!(planned(&p, &["--target", "record.c[1]"]), ["record.c[1]"]);
    assert_eq!(planned(&p, &["--target", "record.a", "--target", "record.c"]), ["record.a", "record.c[0]", "record.c[1]"]);
}

#[test]
fn exclude_leaves_out_the_address_and_its_dependents() {
    let p = Project::new(TARGETS);
    assert_eq!(planned(&p, &["--exclude", "record.a"]), ["record.c[0]", "record.c[1]"]);
    assert_eq!(planned(&p, &["--exclude", "record.c"]), ["record.a", "record.b"]);
}

#[test]
fn exclude_of_an_instance_keeps_the_other_instances() {
    let p = Project::new(TARGETS);
    assert_eq!(planned(&p, &["--exclude", "record.c[0]"]), ["record.a", "record.b", "record.c[1]"]);
}

#[test]
fn targeted_apply_changes_only_the_target() {
    let p = Project::new(TARGETS);
    p.kiln(&["apply", "--auto-approve", "--target", "record.c"]).ok();
    assert_eq!(p.state_list(), ["record.c[0]", "record.c[1]"]);
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.state_list().len(), 4);
}

#[test]
fn malformed_target_is_an_error() {
    let p = Project::new(TARGETS);
    let r = p.kiln(&["plan", "--target", "not an address"]).code_is(1);
    assert!(r.stderr().contains("not an address"), "{}", r.stderr());
}

/// Issue 11: a kind no provider declares is an error at the resource, with the providers that
/// have a similar kind; it no longer goes to `local` silently.
#[test]
fn a_kind_no_provider_declares_is_reported_at_the_resource_with_a_did_you_mean() {
    let p = Project::new("resource \"record\" \"ok\" {}\nresource \"recrod\" \"r\" {\n  input = 1\n}\n");
    let r = p.kiln(&["plan"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("no provider built into this kiln has a kind `recrod`"), "{err}");
    assert!(err.contains("main.kiln.hcl:2:1"), "{err}");
    assert!(err.contains("did you mean `record` (provider `kiln`)?"), "{err}");
}

/// Issue 11: a provider's complaint about its configuration points at the attribute, nested
/// blocks included (the provider names `login.port`, the engine finds where it is written).
#[cfg(feature = "slurm")]
#[test]
fn a_bad_provider_setting_is_reported_at_the_attribute() {
    let p = Project::new(
        "provider \"slurm\" {\n  login {\n    host = \"login1\"\n    port = 70000\n  }\n}\n\nresource \"cluster\" \"c\" {\n  provider = slurm\n}\n",
    );
    let err = p.kiln(&["plan"]).code_is(1).stderr();
    assert!(err.contains("`port` must be a TCP port, got 70000"), "{err}");
    assert!(err.contains("main.kiln.hcl:4:12"), "{err}");
}

/// Issue 11: in a list of blocks, the provider names the block by its index (`host[1]`); a
/// setting that is missing points at its block. `fleet` is onprem's own kind: no `provider =`.
#[cfg(feature = "onprem")]
#[test]
fn a_bad_host_of_a_provider_is_reported_in_its_block() {
    let config = "provider \"onprem\" {\n  host {\n    name    = \"a\"\n    address = \"10.0.0.1\"\n  }\n  host {\n    name       = \"b\"\n    address    = \"10.0.0.2\"\n    proxy_jump = \"nowhere\"\n  }\n}\n\nresource \"fleet\" \"f\" {}\n";
    let p = Project::new(config);
    let err = p.kiln(&["plan"]).code_is(1).stderr();
    assert!(err.contains("proxy_jump names `nowhere`"), "{err}");
    assert!(err.contains("main.kiln.hcl:9:18"), "{err}");
    p.write("main.kiln.hcl", &config.replace("    name       = \"b\"\n", ""));
    let err = p.kiln(&["plan"]).code_is(1).stderr();
    assert!(err.contains("host block #2 has no name"), "{err}");
    assert!(err.contains("main.kiln.hcl:6:3"), "{err}");
}

/// `--replace ADDRESS` (issue 13, as Terraform's `-replace`): an object nothing forces to be
/// replaced is replaced on request, such as a job to run again without editing it.
#[test]
fn replace_replaces_an_unchanged_object_on_request() {
    let p = Project::new("resource \"record\" \"a\" {\n  input = \"x\"\n}\n\nresource \"record\" \"b\" {\n  input = \"y\"\n}\n\noutput \"id\" {\n  value = record.a.id\n}\n");
    p.kiln(&["apply", "--auto-approve"]).ok();
    let before = p.output_json("id");
    let r = p.kiln(&["plan", "--replace", "record.a", "--detailed-exitcode"]).code_is(2);
    assert!(r.stdout().contains("record.a will be replaced, as requested"), "{}", r.stdout());
    assert!(r.stdout().contains("1 to add, 0 to change, 1 to destroy"), "{}", r.stdout());
    assert!(!r.stdout().contains("record.b will"), "only the requested object: {}", r.stdout());
    p.kiln(&["apply", "--replace", "record.a", "--auto-approve"]).ok();
    assert_ne!(p.output_json("id"), before, "a new object");
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);

    // An address that replaces nothing is a warning, and the plan changes nothing.
    let r = p.kiln(&["plan", "--replace", "record.nope", "--detailed-exitcode"]).code_is(0);
    assert!(r.stderr().contains("W-REPLACE-UNMATCHED"), "{}", r.stderr());
    let r = p.kiln(&["plan", "--replace", "record.a[", "--detailed-exitcode"]).code_is(1);
    assert!(r.stderr().contains("E-ADDR-INVALID"), "{}", r.stderr());
}
