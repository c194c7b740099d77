//! Exit codes, as Terraform's: 0 success, 1 error, 2 changes present with `--detailed-exitcode`.

use crate::support::Project;

const ONE: &str = "resource \"record\" \"a\" {\n  input = \"x\"\n}\n\noutput \"o\" {\n  value = record.a.output\n}\n";

#[test]
fn detailed_exitcode_is_2_with_changes_0_without() {
    let p = Project::new(ONE);
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(2);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let r = p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
    assert!(r.stdout().contains("No changes."), "{}", r.stdout());
}

#[test]
fn detailed_exitcode_is_2_when_only_outputs_change() {
    let p = Project::new(ONE);
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.write("main.kiln.hcl", &format!("{ONE}\noutput \"extra\" {{\n  value = 1\n}}\n"));
    let r = p.kiln(&["plan", "--detailed-exitcode"]).code_is(2);
    assert!(r.stdout().contains("+ extra = 1"), "{}", r.stdout());
}

#[test]
fn detailed_exitcode_is_1_on_error() {
    let p = Project::new("resource \"record\" \"a\" {\n  input = var.nope\n}\n");
    let r = p.kiln(&["plan", "--detailed-exitcode"]).code_is(1);
    assert!(r.stderr().contains("var.nope"), "{}", r.stderr());
    assert!(r.stdout().is_empty(), "no plan is printed on error: {}", r.stdout());
}

#[test]
fn plan_without_detailed_exitcode_is_0_with_changes() {
    let p = Project::new(ONE);
    p.kiln(&["plan"]).code_is(0);
}

#[test]
fn validate_errors_exit_1() {
    let p = Project::new("resource \"record\" \"a\" {\n  input = \n}\n");
    let r = p.kiln(&["validate"]).code_is(1);
    assert!(r.stderr().contains("main.kiln.hcl"), "{}", r.stderr());
    assert!(!r.stdout().contains("Success"), "{}", r.stdout());
    let p = Project::new("resource \"record\" \"a\" {\n  nonsense = 1\n}\n");
    p.kiln(&["validate"]).code_is(1);
    let r = p.kiln(&["validate", "--json"]).code_is(1);
    let v: serde_json::Value = serde_json::from_str(r.stdout().trim()).expect("validate --json is JSON");
    assert_eq!(v["valid"], false);
}

#[test]
fn validate_success_exits_0() {
    let p = Project::new(ONE);
    let r = p.kiln(&["validate"]).ok();
    assert!(r.stdout().contains("Success! The configuration is valid."), "{}", r.stdout());
}

#[test]
fn apply_refuses_without_a_terminal_and_changes_nothing() {
    let p = Project::new(ONE);
    let r = p.kiln(&["apply"]).code_is(1);
    assert!(r.stderr().contains("--auto-approve"), "{}", r.stderr());
    assert!(!p.state_path().exists(), "a refused apply must not create state");
    // The same for destroy, once there is something to destroy.
    p.kiln(&["apply", "--auto-approve"]).ok();
    let r = p.kiln(&["destroy"]).code_is(1);
    assert!(r.stderr().contains("--auto-approve"), "{}", r.stderr());
    assert_eq!(p.state_list(), ["record.a"]);
}

#[test]
fn usage_errors_exit_1_not_2() {
    let p = Project::new(ONE);
    let r = p.kiln(&["plan", "--detailed-exitcode", "--no-such-flag"]);
    assert!(r.stderr().contains("--no-such-flag"), "{}", r.stderr());
    assert_eq!(r.code(), 1, "a typo in CI must not read as \"changes present\"");
    assert_eq!(p.kiln(&["frobnicate"]).code(), 1);
}

/// Settings are resolved before a command runs: a bad `--lock-timeout` or `--chdir` is a
/// diagnostic with a code and a hint (exit 1), and nothing runs.
#[test]
fn invalid_global_settings_are_diagnostics_with_a_hint() {
    let p = Project::new(ONE);
    let r = p.kiln(&["--lock-timeout", "forever", "apply", "--auto-approve"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("E-CLI-LOCK-TIMEOUT") && err.contains("invalid --lock-timeout `forever`"), "{err}");
    assert!(err.contains("help:") && err.contains("30s"), "the hint names a valid duration: {err}");
    assert!(!p.state_path().exists(), "nothing ran: {err}");
    let r = p.kiln(&["--chdir", "no-such-dir", "plan"]).code_is(1);
    assert!(r.stderr().contains("E-CLI-CHDIR") && r.stderr().contains("help:"), "{}", r.stderr());
}

/// Data goes to stdout and diagnostics to stderr, also for commands' own errors.
#[test]
fn errors_go_to_stderr_as_diagnostics_and_nothing_to_stdout() {
    let p = Project::new(ONE);
    let r = p.kiln(&["workspace", "select", "nope"]).code_is(1);
    assert!(r.stdout().is_empty(), "{}", r.stdout());
    let err = r.stderr();
    assert!(err.contains("E-WORKSPACE-MISSING") && err.contains("workspace `nope` does not exist"), "{err}");
    assert!(err.contains("help:") && err.contains("kiln workspace new nope"), "{err}");
    let r = p.kiln(&["workspace", "show"]).ok();
    assert_eq!(r.stdout(), "default\n");
    assert!(r.stderr().is_empty(), "{}", r.stderr());
}

/// Terraform's single-dash flags work as the GNU ones (issue 13), and `-no-color` exists.
#[test]
fn terraform_single_dash_flags_work() {
    let p = Project::new("variable \"x\" {}\n\nresource \"record\" \"a\" {\n  input = var.x\n}\n");
    let r = p.kiln(&["plan", "-var", "x=one", "-detailed-exitcode", "-no-color", "-out=saved.plan"]).code_is(2);
    assert!(r.stdout().contains("\"one\""), "{}", r.stdout());
    assert!(!r.stdout().contains('\u{1b}'), "no colour: {}", r.stdout());
    p.kiln(&["apply", "saved.plan"]).ok();
    let r = p.kiln(&["plan", "-var=x=one", "-detailed-exitcode", "-json"]).code_is(0);
    let v: serde_json::Value = serde_json::from_str(r.stdout().trim()).expect("-json is --json");
    assert!(v.get("format_version").is_some(), "{v}");
}

/// A saved plan applies the variable values it was made with: `--var` beside it is refused,
/// as Terraform refuses it, and nothing is applied.
#[test]
fn a_saved_plan_with_var_flags_is_refused() {
    let p = Project::new("variable \"x\" {}\n\nresource \"record\" \"a\" {\n  input = var.x\n}\n");
    p.kiln(&["plan", "--var", "x=one", "--out", "saved.plan"]).ok();
    let r = p.kiln(&["apply", "saved.plan", "--var", "x=two"]).code_is(1);
    assert!(r.stderr().contains("E-APPLY-PLAN-VARS"), "{}", r.stderr());
    assert!(p.state_list().is_empty(), "nothing applied");
    p.kiln(&["apply", "saved.plan"]).ok();
    assert_eq!(p.state_list(), ["record.a"]);
}

/// `kiln --help` documents the exit codes and the environment variables kiln reads.
#[test]
fn help_documents_exit_codes_and_environment() {
    let p = Project::new(ONE);
    let out = p.kiln(&["--help"]).ok().stdout();
    for needle in ["Exit status:", "2  plan --detailed-exitcode", "KILN_VAR_name", "KILN_WORKSPACE", "NO_COLOR", "--no-color"] {
        assert!(out.contains(needle), "`{needle}` missing from --help:\n{out}");
    }
}

/// `plan --destroy` (issue 13): the destroy plan `kiln destroy` makes, saved and applied later.
#[test]
fn plan_destroy_saves_a_destroy_plan_that_apply_runs() {
    let p = Project::new(ONE);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let r = p.kiln(&["plan", "--destroy", "--detailed-exitcode", "--out", "gone.plan"]).code_is(2);
    assert!(r.stdout().contains("0 to add, 0 to change, 1 to destroy"), "{}", r.stdout());
    assert_eq!(p.state_list(), ["record.a"], "planning destroys nothing");
    let r = p.kiln(&["apply", "gone.plan"]).ok();
    assert!(r.stdout().contains("Destroy complete!"), "{}", r.stdout());
    assert!(p.state_list().is_empty());
}

/// Issue 13: every error renders the same way. Clap's usage errors are diagnostics as a
/// command's own (code E-CLI-USAGE, the message, clap's tip and usage as the hint), exit 1;
/// `--help` and `--version` print as before and exit 0.
#[test]
fn usage_errors_render_as_diagnostics_like_every_error() {
    let p = Project::new(ONE);
    let own = p.kiln(&["workspace", "select", "nope"]).code_is(1).stderr();
    let r = p.kiln(&["plan", "--no-such-flag"]).code_is(1);
    let err = r.stderr();
    assert!(r.stdout().is_empty(), "{}", r.stdout());
    assert!(err.starts_with("E-CLI-USAGE\n"), "{err}");
    assert!(own.starts_with("E-WORKSPACE-MISSING\n"), "{own}");
    assert!(err.contains("× unexpected argument '--no-such-flag' found"), "{err}");
    assert!(err.contains("help:") && err.contains("Usage: kiln plan"), "{err}");
    assert!(!err.contains("error:"), "clap's own rendering: {err}");
    // A bad value names the possible ones; a missing argument names it.
    let err = p.kiln(&["plan", "--format", "xml"]).code_is(1).stderr();
    assert!(err.contains("E-CLI-USAGE") && err.contains("invalid value 'xml'") && err.contains("possible values: human, json"), "{err}");
    let err = p.kiln(&["logs"]).code_is(1).stderr();
    assert!(err.contains("E-CLI-USAGE") && err.contains("<ADDRESS>"), "{err}");
    let err = p.kiln(&["frobnicate"]).code_is(1).stderr();
    assert!(err.contains("E-CLI-USAGE") && err.contains("unrecognized subcommand 'frobnicate'"), "{err}");
    // A command without its subcommand shows its help, as before (exit 1).
    let r = p.kiln(&["state"]).code_is(1);
    assert!(
        r.stderr().contains("Usage: kiln state") && r.stderr().contains("pull") && !r.stderr().contains("E-CLI-USAGE"),
        "{}",
        r.stderr()
    );
    // Help and version are not errors.
    let r = p.kiln(&["plan", "--help"]).ok();
    assert!(r.stdout().contains("Usage: kiln plan") && r.stderr().is_empty(), "{}", r.stderr());
    let r = p.kiln(&["--version"]).ok();
    assert!(r.stdout().starts_with("kiln "), "{}", r.stdout());
}

/// Issue 13: a missing AWS credential says so in one short line with how to give one, not the
/// SDK's Debug dump of its error tree (about 1 KB before). No credentials anywhere (no
/// environment variables, an empty HOME, no instance metadata) and an endpoint nobody listens
/// on: the plan needs the instance type catalogue and stops at the credentials.
#[cfg(feature = "aws")]
#[test]
fn missing_aws_credentials_are_one_readable_line_with_how_to_give_them() {
    let p = Project::new(
        "provider \"aws\" {\n  region   = \"us-east-1\"\n  endpoint = \"http://127.0.0.1:9\"\n}\n\nresource \"cluster\" \"c\" {\n  provider     = aws\n  accelerators = \"A100:8\"\n}\n",
    );
    let home = tempfile::tempdir().expect("tempdir");
    let mut c = p.command(&["plan"]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", home.path()).env("AWS_EC2_METADATA_DISABLED", "true");
    let r = crate::support::run(c).code_is(1);
    let err = r.stderr();
    let summary = err.lines().find(|l| l.contains("cluster.c:")).unwrap_or_else(|| panic!("no summary line:\n{err}"));
    assert!(summary.ends_with("no AWS credentials found"), "{err}");
    for needle in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "provider \"aws\" block"] {
        assert!(err.contains(needle), "the hint names `{needle}`:\n{err}");
    }
    for dump in ["{", "Some(", "DispatchFailure", "CredentialsNotLoaded"] {
        assert!(!err.contains(dump), "a Debug dump (`{dump}`):\n{err}");
    }
    assert!(err.len() < 700, "{} bytes:\n{err}", err.len());
}
