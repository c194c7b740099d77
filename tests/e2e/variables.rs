//! Root variables: `*.kilnvars` files, `--var-file`, `--var`, `KILN_VAR_name`, their precedence
//! (Terraform's: environment < kiln.kilnvars < *.auto.kilnvars < command line in order), types
//! and validation.

use crate::support::Project;

/// Five variables and an output of each, so a plan shows where each value came from.
fn project() -> Project {
    let mut config = String::new();
    for v in ["a", "b", "c", "d", "e"] {
        config.push_str(&format!(
            "variable \"{v}\" {{\n  type    = string\n  default = \"default\"\n}}\n\noutput \"{v}\" {{\n  value = var.{v}\n}}\n\n"
        ));
    }
    let p = Project::new(&config);
    p.write("kiln.kilnvars", "a = \"kilnvars\"\nb = \"kilnvars\"\nc = \"kilnvars\"\nd = \"kilnvars\"\n");
    p.write("x.auto.kilnvars", "b = \"auto\"\nc = \"auto\"\nd = \"auto\"\n");
    p.write("extra.kilnvars", "c = \"file\"\nd = \"file\"\n");
    p
}

fn outputs(p: &Project, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut apply = vec!["apply", "--auto-approve"];
    apply.extend_from_slice(args);
    let mut c = p.command(&apply);
    c.envs(env.iter().copied());
    crate::support::run(c).ok();
    let out = p.kiln(&["output", "--json"]).ok().stdout();
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    serde_json::Value::Object(v["outputs"].as_object().unwrap().iter().map(|(k, o)| (k.clone(), o["value"].clone())).collect())
}

#[test]
fn precedence_env_then_files_then_command_line() {
    let p = project();
    let env = [("KILN_VAR_a", "env"), ("KILN_VAR_b", "env"), ("KILN_VAR_c", "env"), ("KILN_VAR_d", "env"), ("KILN_VAR_e", "env")];
    let got = outputs(&p, &["--var-file", "extra.kilnvars", "--var", "d=flag"], &env);
    assert_eq!(got, serde_json::json!({"a": "kilnvars", "b": "auto", "c": "file", "d": "flag", "e": "env"}));
}

#[test]
fn auto_kilnvars_files_apply_in_name_order() {
    let p = project();
    p.write("y.auto.kilnvars", "d = \"auto-y\"\n");
    let got = outputs(&p, &[], &[]);
    assert_eq!(got["c"], "auto");
    assert_eq!(got["d"], "auto-y", "y.auto.kilnvars comes after x.auto.kilnvars");
}

#[test]
fn command_line_sources_apply_in_the_order_given() {
    let p = project();
    let got = outputs(&p, &["--var", "d=flag", "--var-file", "extra.kilnvars"], &[]);
    assert_eq!(got["d"], "file", "the later --var-file wins over the earlier --var");
}

#[test]
fn later_var_flag_wins() {
    let p = project();
    let got = outputs(&p, &["--var", "e=one", "--var", "e=two"], &[]);
    assert_eq!(got["e"], "two");
}

#[test]
fn values_are_converted_to_the_declared_type() {
    let p = Project::new("variable \"n\" {\n  type = number\n}\n\nvariable \"l\" {\n  type = list(string)\n}\n\noutput \"next\" {\n  value = var.n + 1\n}\n\noutput \"l\" {\n  value = var.l\n}\n");
    let mut c = p.command(&["apply", "--auto-approve", "--var", "l=[\"x\", \"y\"]"]);
    c.env("KILN_VAR_n", "41");
    crate::support::run(c).ok();
    assert_eq!(p.output_json("next"), serde_json::json!(42));
    assert_eq!(p.output_json("l"), serde_json::json!(["x", "y"]));
    let r = p.kiln(&["plan", "--var", "n=many", "--var", "l=[]"]).code_is(1);
    assert!(r.stderr().contains("var.n") || r.stderr().contains("`n`"), "{}", r.stderr());
}

#[test]
fn missing_required_variable_is_an_error() {
    let p = Project::new("variable \"region\" {\n  type = string\n}\n\noutput \"r\" {\n  value = var.region\n}\n");
    let r = p.kiln(&["plan"]).code_is(1);
    assert!(r.stderr().contains("region"), "{}", r.stderr());
    p.kiln(&["plan", "--var", "region=eu"]).ok();
}

const VALIDATED: &str = r#"
variable "gpus" {
  type    = number
  default = 8
  validation {
    condition     = var.gpus % 8 == 0
    error_message = "gpus must be a multiple of 8."
  }
}

resource "record" "node" {
  input = var.gpus
}
"#;

#[test]
fn failing_validation_shows_its_error_message() {
    let p = Project::new(VALIDATED);
    p.kiln(&["plan"]).ok();
    p.kiln(&["plan", "--var", "gpus=16"]).ok();
    let r = p.kiln(&["plan", "--var", "gpus=12"]).code_is(1);
    assert!(r.stderr().contains("gpus must be a multiple of 8."), "{}", r.stderr());
    assert!(r.stderr().contains("main.kiln.hcl"), "points at the configuration: {}", r.stderr());
    assert_eq!(r.stdout(), "", "no plan is printed");
    let r = p.kiln(&["apply", "--auto-approve", "--var", "gpus=12"]).code_is(1);
    assert!(r.stderr().contains("gpus must be a multiple of 8."), "{}", r.stderr());
    assert!(!p.state_path().exists() || p.state_list().is_empty(), "nothing applied");
}

#[test]
fn missing_var_file_is_an_error() {
    let p = project();
    let r = p.kiln(&["plan", "--var-file", "nope.kilnvars"]).code_is(1);
    assert!(r.stderr().contains("nope.kilnvars"), "{}", r.stderr());
}

/// Issue 10, defect 6: a FIFO given as a variables file is refused, not waited on forever.
#[test]
fn a_fifo_given_as_a_variables_file_is_refused() {
    let p = project();
    let fifo = p.path().join("pipe.kilnvars");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let r = p.kiln(&["plan", "--var-file", "pipe.kilnvars"]).code_is(1);
    assert!(r.stderr().contains("it is not a regular file"), "{}", r.stderr());
}

/// The blocks read before planning (`backend`, `encryption`) and the planner agree on what a
/// root variable is: converted to its declared type (`KILN_VAR_n=05` is the number 5 in the
/// state file's path, in the key file's path and in the output), sensitive where declared.
#[test]
fn the_backend_and_encryption_blocks_see_variables_as_the_planner_does() {
    let p = Project::new(
        "variable \"n\" {\n  type = number\n}\n\nkiln {\n  backend \"local\" {\n    path = \"st-${var.n}/kiln.json\"\n  }\n  encryption {\n    key_provider \"file\" { path = \"key-${var.n}\" }\n    method \"aes_gcm\" {}\n  }\n}\n\noutput \"n\" {\n  value = var.n\n}\n",
    );
    p.write("key-5", "a passphrase kept in a file\n");
    let mut c = p.command(&["apply", "--auto-approve"]);
    c.env("KILN_VAR_n", "05");
    crate::support::run(c).ok();
    assert!(p.path().join("st-5/kiln.json").exists(), "the state file's path uses 5, not 05");
    let mut c = p.command(&["output", "--json", "n"]);
    c.env("KILN_VAR_n", "05");
    let out: serde_json::Value = serde_json::from_str(crate::support::run(c).ok().stdout().trim()).expect("json");
    assert_eq!(out["value"], serde_json::json!(5), "{out}");

    // A sensitive variable the backend block cannot use is not quoted in the error.
    p.write(
        "main.kiln.hcl",
        "variable \"pw\" {\n  sensitive = true\n}\n\nkiln {\n  backend \"local\" {\n    path = \"${tonumber(var.pw)}\"\n  }\n}\n",
    );
    let mut c = p.command(&["plan"]);
    c.env("KILN_VAR_pw", "hunter2-not-a-number");
    let err = crate::support::run(c).code_is(1).stderr();
    assert!(err.contains("main.kiln.hcl:7:") && err.contains("(sensitive value)"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
