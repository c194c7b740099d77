//! Secrets (issue 5, "Encryption and secrets"): sensitive values never appear in plan output,
//! apply output, logs or error messages; `kiln show --json` marks them; sensitive outputs need
//! `kiln output --raw NAME`. Each test hunts for a distinctive secret in everything kiln prints.
//! The `encrypted_*` tests cover state and saved-plan encryption through the binary.

use crate::support::{run, Project, Run};

/// The secret every test hunts for (and a second one for updates).
const SECRET: &str = "hunter2-s3cr3t-4f1e";
const SECRET2: &str = "c0rrect-h0rse-99ab";

/// Asserts that neither stream of a run contains a secret.
#[track_caller]
fn no_secret(what: &str, r: &Run) {
    for s in [SECRET, SECRET2] {
        assert!(!r.stdout().contains(s), "{what}: secret in stdout:\n{}", r.stdout());
        assert!(!r.stderr().contains(s), "{what}: secret in stderr:\n{}", r.stderr());
    }
}

/// Runs kiln with the secret variable `token` set through the environment (as CI would).
fn kiln_with(p: &Project, token: &str, args: &[&str]) -> Run {
    let mut c = p.command(args);
    c.env("KILN_VAR_token", token);
    run(c)
}

const CONFIG: &str = r#"
variable "token" {
  type      = string
  sensitive = true
}

resource "record" "plain" {
  input = "visible"
}

resource "record" "direct" {
  input = var.token
}

resource "record" "nested" {
  input = {
    user  = "admin"
    pass  = var.token
    list  = ["a", var.token]
    templ = "Bearer ${var.token}"
  }
}

# Derived from a sensitive value through another resource's computed attribute.
resource "record" "derived" {
  input = upper(record.direct.output)
}

output "visible" {
  value = record.plain.output
}

output "token" {
  value     = var.token
  sensitive = true
}

output "nested" {
  value     = record.nested.output
  sensitive = true
}
"#;

#[test]
fn plan_and_apply_output_never_show_secrets() {
    let p = Project::new(CONFIG);
    let plan = kiln_with(&p, SECRET, &["plan"]).ok();
    no_secret("plan", &plan);
    assert!(plan.stdout().contains("(sensitive value)"), "{}", plan.stdout());
    assert!(plan.stdout().contains("\"visible\""), "non-sensitive values still show: {}", plan.stdout());

    let json = kiln_with(&p, SECRET, &["plan", "--json"]).ok();
    no_secret("plan --json", &json);
    let v: serde_json::Value = serde_json::from_str(json.stdout().trim()).expect("plan --json is JSON");
    let direct = v["resource_changes"].as_array().unwrap().iter().find(|c| c["address"] == "record.direct").unwrap();
    assert_eq!(direct["change"]["after"]["input"], serde_json::json!(null));
    assert_eq!(direct["change"]["after_sensitive"]["input"], true, "marked beside the value: {direct}");

    // Apply with progress lines and every log target on.
    let mut c = p.command(&["apply", "--auto-approve"]);
    c.env("KILN_VAR_token", SECRET).env("KILN_LOG", "trace").env_remove("KILN_QUIET");
    let apply = run(c).ok();
    no_secret("apply with KILN_LOG=trace", &apply);

    // An update in place of the secret shows neither the old nor the new value.
    let plan2 = kiln_with(&p, SECRET2, &["plan"]).ok();
    no_secret("plan of an update", &plan2);
    assert!(plan2.stdout().contains("(sensitive value) -> (sensitive value)"), "{}", plan2.stdout());
    let apply2 = kiln_with(&p, SECRET2, &["apply", "--auto-approve"]).ok();
    no_secret("apply of an update", &apply2);

    // Destroy shows the removed values redacted too.
    let destroy = kiln_with(&p, SECRET2, &["destroy", "--auto-approve"]).ok();
    no_secret("destroy", &destroy);
}

#[test]
fn show_marks_sensitive_values_and_state_show_redacts_them() {
    let p = Project::new(CONFIG);
    kiln_with(&p, SECRET, &["apply", "--auto-approve"]).ok();

    let show = p.kiln(&["show"]).ok();
    no_secret("show", &show);
    assert!(show.stdout().contains("(sensitive value)"), "{}", show.stdout());

    let json = p.kiln(&["show", "--json"]).ok();
    no_secret("show --json", &json);
    let v: serde_json::Value = serde_json::from_str(json.stdout().trim()).expect("show --json is JSON");
    let res = |addr: &str| v["resources"].as_array().unwrap().iter().find(|r| r["address"] == addr).cloned().unwrap();
    for addr in ["record.direct", "record.nested", "record.derived"] {
        let r = res(addr);
        assert_eq!((&r["values"]["input"], &r["values"]["output"]), (&serde_json::json!(null), &serde_json::json!(null)), "{addr}: {r}");
        assert_eq!(
            (&r["sensitive_values"]["input"], &r["sensitive_values"]["output"]),
            (&serde_json::json!(true), &serde_json::json!(true)),
            "{addr}: {r}"
        );
    }
    assert_eq!(res("record.plain")["values"]["input"], "visible");
    assert_eq!(v["outputs"]["token"], serde_json::json!({"sensitive": true, "value": null}));
    assert_eq!(v["outputs"]["visible"]["value"], "visible");

    for addr in ["record.direct", "record.nested", "record.derived"] {
        let r = p.kiln(&["state", "show", addr]).ok();
        no_secret("state show", &r);
        assert!(r.stdout().contains("(sensitive value)"), "{}", r.stdout());
    }
    no_secret("state list", &p.kiln(&["state", "list"]).ok());
}

#[test]
fn sensitive_outputs_print_only_with_raw() {
    let p = Project::new(CONFIG);
    kiln_with(&p, SECRET, &["apply", "--auto-approve"]).ok();
    let apply_again = kiln_with(&p, SECRET, &["apply", "--auto-approve"]).ok();
    no_secret("apply's outputs", &apply_again);

    let all = p.kiln(&["output"]).ok();
    no_secret("output", &all);
    assert!(all.stdout().contains("visible = \"visible\""), "{}", all.stdout());
    let one = p.kiln(&["output", "token"]).ok();
    no_secret("output token", &one);
    assert!(one.stderr().contains("kiln output --raw token"), "{}", one.stderr());
    let nested = p.kiln(&["output", "nested"]).ok();
    no_secret("output nested", &nested);

    let all_json = p.kiln(&["output", "--json"]).ok();
    no_secret("output --json", &all_json);
    let v: serde_json::Value = serde_json::from_str(all_json.stdout().trim()).unwrap();
    assert_eq!(v["outputs"]["token"], serde_json::json!({"sensitive": true, "value": null}));

    assert_eq!(p.kiln(&["output", "--raw", "token"]).ok().stdout(), format!("{SECRET}\n"));
    let raw_nested = p.kiln(&["output", "--raw", "nested"]).ok().stdout();
    assert!(raw_nested.contains(SECRET), "--raw prints structured values as JSON: {raw_nested}");
}

/// `kiln output --json NAME` of a sensitive output needs `--raw` to print the value (unlike
/// `terraform output -json NAME`): sensitive outputs need `--raw` to print.
#[test]
fn output_json_of_one_sensitive_output_needs_raw() {
    let p = Project::new(CONFIG);
    kiln_with(&p, SECRET, &["apply", "--auto-approve"]).ok();
    no_secret("output --json token", &p.kiln(&["output", "--json", "token"]));
}

#[test]
fn saved_plans_redact_when_shown() {
    let p = Project::new(CONFIG);
    let plan = kiln_with(&p, SECRET, &["plan", "--out", "tfplan"]).ok();
    no_secret("plan --out", &plan);
    assert!(plan.stderr().contains("sensitive variable values in plain text"), "warns about the plan file: {}", plan.stderr());
    let show = p.kiln(&["show", "tfplan"]).ok();
    no_secret("show PLAN", &show);
    let json = p.kiln(&["show", "--json", "tfplan"]).ok();
    no_secret("show --json PLAN", &json);
    assert!(json.stdout().contains("\"after_sensitive\":{\"input\":true"), "{}", json.stdout());
    let apply = kiln_with(&p, SECRET, &["apply", "tfplan"]).ok();
    no_secret("apply PLAN", &apply);
}

#[test]
fn error_messages_never_show_secrets() {
    // A function failing on a sensitive argument.
    let p = Project::new(&format!("{}\nresource \"record\" \"n\" {{\n  input = tonumber(var.token)\n}}\n", VAR_ONLY));
    let r = kiln_with(&p, SECRET, &["plan"]).code_is(1);
    no_secret("function error", &r);
    assert!(r.stderr().contains("main.kiln.hcl:"), "errors name file:line:col: {}", r.stderr());

    // An output that is not marked sensitive.
    let p = Project::new(&format!("{VAR_ONLY}\noutput \"leak\" {{\n  value = \"x-${{var.token}}\"\n}}\n"));
    let r = kiln_with(&p, SECRET, &["plan"]).code_is(1);
    no_secret("unmarked output", &r);
    assert!(r.stderr().contains("sensitive = true"), "{}", r.stderr());

    // `for_each` over sensitive keys.
    for each in ["toset([var.token])", "{ (var.token) = 1 }", "{ for k in [var.token] : k => 1 }"] {
        let p = Project::new(&format!("{VAR_ONLY}\nresource \"record\" \"e\" {{\n  for_each = {each}\n  input    = each.value\n}}\n"));
        let r = kiln_with(&p, SECRET, &["plan"]);
        no_secret(&format!("for_each = {each}"), &r);
    }
}

/// A sensitive variable given a value of the wrong type.
#[test]
fn type_errors_of_sensitive_variables_never_show_the_value() {
    let p = Project::new(
        "variable \"port\" {\n  type      = number\n  sensitive = true\n}\nresource \"record\" \"a\" {\n  input = var.port\n}\n",
    );
    let mut c = p.command(&["plan"]);
    c.env("KILN_VAR_port", SECRET);
    let r = run(c).code_is(1);
    no_secret("variable type error", &r);
}

/// A variable validation whose `error_message` interpolates the sensitive value prints it.
#[test]
fn validation_messages_never_show_secrets() {
    let p = Project::new(
        "variable \"token\" {\n  type      = string\n  sensitive = true\n  validation {\n    condition     = length(var.token) > 40\n    error_message = \"token ${var.token} is too short\"\n  }\n}\n",
    );
    let r = kiln_with(&p, SECRET, &["plan"]).code_is(1);
    no_secret("validation error_message", &r);
}

const VAR_ONLY: &str = "variable \"token\" {\n  type      = string\n  sensitive = true\n}\n";

// ----- encryption of state and saved plans -----

const ENCRYPTED: &str = r#"
variable "token" {
  type      = string
  sensitive = true
}

variable "state_passphrase" {
  type      = string
  sensitive = true
}

kiln {
  encryption {
    key_provider "passphrase" { passphrase = var.state_passphrase }
    method "aes_gcm" {}
  }
}

resource "record" "direct" {
  input = var.token
}

output "token" {
  value     = var.token
  sensitive = true
}
"#;

/// [`ENCRYPTED`] without its `kiln` block.
fn without_encryption() -> String {
    let start = ENCRYPTED.find("kiln {").expect("a kiln block");
    let end = start + ENCRYPTED[start..].find("\n}\n").expect("its end") + 3;
    let config = format!("{}{}", &ENCRYPTED[..start], &ENCRYPTED[end..]);
    assert!(!config.contains("encryption"), "{config}");
    config
}

const PASSPHRASE: &str = "a long state passphrase for tests";

fn kiln_enc(p: &Project, passphrase: &str, args: &[&str]) -> Run {
    let mut c = p.command(args);
    c.env("KILN_VAR_token", SECRET).env("KILN_VAR_state_passphrase", passphrase);
    run(c)
}

fn assert_encrypted(file: &std::path::Path) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(text.starts_with("{\"kiln_encrypted\":1,"), "{} is not encrypted: {text}", file.display());
    assert!(!text.contains(SECRET) && !text.contains("record.direct"), "{} shows its content", file.display());
}

#[test]
fn encrypted_state_round_trips_and_a_wrong_passphrase_changes_nothing() {
    let p = Project::new(ENCRYPTED);
    kiln_enc(&p, PASSPHRASE, &["apply", "--auto-approve"]).ok();
    assert_encrypted(&p.state_path());
    assert_eq!(kiln_enc(&p, PASSPHRASE, &["state", "list"]).ok().stdout(), "record.direct\n");
    assert_eq!(kiln_enc(&p, PASSPHRASE, &["output", "--raw", "token"]).ok().stdout(), format!("{SECRET}\n"));

    let before = std::fs::read(p.state_path()).unwrap();
    for args in [&["plan"][..], &["apply", "--auto-approve"], &["show"], &["state", "list"]] {
        let r = kiln_enc(&p, "not the right passphrase!", args).code_is(1);
        no_secret("wrong passphrase", &r);
        assert!(r.stderr().contains("check the passphrase"), "{args:?}: {}", r.stderr());
        assert!(!r.stderr().contains("not the right passphrase!") && !r.stderr().contains(PASSPHRASE), "{}", r.stderr());
    }
    assert_eq!(std::fs::read(p.state_path()).unwrap(), before, "a wrong passphrase must change nothing");

    // The same state without the `encryption` block: a clear error, not a parse error.
    p.write("main.kiln.hcl", &without_encryption());
    let r = kiln_enc(&p, PASSPHRASE, &["plan"]).code_is(1);
    assert!(r.stderr().contains("add the `encryption` block"), "{}", r.stderr());
    assert_eq!(std::fs::read(p.state_path()).unwrap(), before);
}

#[test]
fn encrypted_saved_plans() {
    let p = Project::new(ENCRYPTED);
    let plan = kiln_enc(&p, PASSPHRASE, &["plan", "--out", "tfplan"]).ok();
    no_secret("plan --out", &plan);
    assert_encrypted(&p.path().join("tfplan"));
    no_secret("show PLAN", &kiln_enc(&p, PASSPHRASE, &["show", "tfplan"]).ok());
    let r = kiln_enc(&p, "not the right passphrase!", &["apply", "tfplan"]).code_is(1);
    assert!(r.stderr().contains("check the passphrase"), "{}", r.stderr());
    kiln_enc(&p, PASSPHRASE, &["apply", "tfplan"]).ok();
    assert_encrypted(&p.state_path());
}

#[test]
fn encrypted_unencrypted_state_is_migrated_on_request_and_keys_rotate() {
    let p = Project::new(&without_encryption());
    kiln_enc(&p, PASSPHRASE, &["apply", "--auto-approve"]).ok();
    assert!(p.read(".kiln/state.json").contains("record.direct"), "starts unencrypted");

    // Encryption configured: the unencrypted state is refused until migration is asked for.
    p.write("main.kiln.hcl", ENCRYPTED);
    let r = kiln_enc(&p, PASSPHRASE, &["plan"]).code_is(1);
    assert!(r.stderr().contains("allow_plaintext = true"), "{}", r.stderr());
    let migrate = ENCRYPTED.replace("method \"aes_gcm\" {}", "method \"aes_gcm\" {}\n    fallback { allow_plaintext = true }");
    p.write("main.kiln.hcl", &migrate);
    p.write("extra.kiln.hcl", "resource \"record\" \"extra\" {\n  input = \"x\"\n}\n");
    kiln_enc(&p, PASSPHRASE, &["apply", "--auto-approve"]).ok();
    assert_encrypted(&p.state_path());

    // Rotation: the new passphrase is primary, the old one a fallback.
    let rotate = ENCRYPTED
        .replace(
            "key_provider \"passphrase\" { passphrase = var.state_passphrase }",
            "key_provider \"passphrase\" \"new\" { passphrase = var.new_passphrase }\n    key_provider \"passphrase\" \"old\" { passphrase = var.state_passphrase }",
        )
        .replace("method \"aes_gcm\" {}", "method \"aes_gcm\" { keys = key_provider.passphrase.new }\n    fallback { keys = key_provider.passphrase.old }")
        + "variable \"new_passphrase\" {\n  sensitive = true\n}\n";
    p.write("main.kiln.hcl", &rotate);
    p.write("extra.kiln.hcl", "resource \"record\" \"extra\" {\n  input = \"y\"\n}\n");
    let mut c = p.command(&["apply", "--auto-approve"]);
    c.env("KILN_VAR_token", SECRET)
        .env("KILN_VAR_state_passphrase", PASSPHRASE)
        .env("KILN_VAR_new_passphrase", "the brand new passphrase 2");
    run(c).ok();
    // Only the new passphrase is needed now.
    let only_new =
        ENCRYPTED.replace("var.state_passphrase", "var.new_passphrase") + "variable \"new_passphrase\" {\n  sensitive = true\n}\n";
    p.write("main.kiln.hcl", &only_new);
    let mut c = p.command(&["state", "list"]);
    c.env("KILN_VAR_token", SECRET).env("KILN_VAR_new_passphrase", "the brand new passphrase 2").env("KILN_VAR_state_passphrase", "unused");
    let r = run(c).ok();
    assert!(r.stdout().contains("record.extra"), "{}", r.stdout());
}

// ----- issue 10: every error path, every command and every file kiln writes -----

/// A number no message would contain by chance.
const SECRET_NUMBER: &str = "7340123";

/// `variable "token"` (string) and `variable "n"` (number), both sensitive.
const TWO_VARS: &str =
    "variable \"token\" {\n  type      = string\n  sensitive = true\n}\nvariable \"n\" {\n  type      = number\n  sensitive = true\n}\n";

/// Runs kiln with both secrets given as `--var` flags (the issue's reproduction).
fn kiln_vars(p: &Project, args: &[&str], n: &str) -> Run {
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend(["--var".into(), format!("token={SECRET}"), "--var".into(), format!("n={n}")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    p.kiln(&args)
}

#[track_caller]
fn fails_without_secrets(what: &str, r: Run) {
    let r = r.code_is(1);
    no_secret(what, &r);
    for s in [r.stdout(), r.stderr()] {
        assert!(!s.contains(SECRET_NUMBER), "{what}: the sensitive number is shown:\n{s}");
    }
    assert!(
        r.stderr().contains("(sensitive") || r.stderr().contains("sensitive "),
        "{what}: says a sensitive value is involved:\n{}",
        r.stderr()
    );
}

/// Issue 10, defect 5: evaluator errors about a sensitive operand, condition, key or index
/// (and inside a template file) say so without the value; each names file:line:col.
#[test]
fn evaluator_error_paths_never_show_secrets() {
    let p = Project::empty();
    p.write("t.tpl", "n = ${x + 1}\n");
    for input in [
        "var.token + 1",
        "1 - var.token",
        "var.token < 3",
        "var.token ? 1 : 2",
        "{a = 1}[var.token]",
        "[1, 2][var.n]",
        "templatefile(\"t.tpl\", {x = var.token})",
        "[for x in [1] : x if var.token]",
        "{for x in [1, 2] : var.token => x}",
        "\"%{if var.token}a%{endif}\"",
    ] {
        p.write("main.kiln.hcl", &format!("{TWO_VARS}resource \"record\" \"x\" {{\n  input = {input}\n}}\n"));
        let r = kiln_vars(&p, &["plan"], SECRET_NUMBER);
        assert!(r.stderr().contains("main.kiln.hcl:"), "{input}: {}", r.stderr());
        fails_without_secrets(input, r);
        // `kiln validate` walks the same expressions.
        let v = kiln_vars(&p, &["validate"], SECRET_NUMBER);
        no_secret(&format!("validate: {input}"), &v);
        assert!(!v.stderr().contains(SECRET_NUMBER), "{}", v.stderr());
    }
}

/// Issue 10, defect 5: what a provider says while validating, planning or creating an object
/// is redacted by the engine when it quotes one of the object's sensitive values.
#[test]
fn provider_errors_never_show_secrets() {
    let cases: [(&str, &[&str], &str); 6] = [
        ("resource \"record\" \"x\" {\n  create_delay = var.token\n}\n", &["plan"], SECRET_NUMBER),
        ("resource \"cluster\" \"c\" {\n  nodes = var.n\n}\n", &["plan"], "0"),
        ("resource \"cluster\" \"c\" {\n  nodes = var.n\n}\n", &["plan"], "7340123.5"),
        ("resource \"cluster\" \"c\" {\n  accelerators = var.token\n}\n", &["plan"], SECRET_NUMBER),
        ("resource \"bucket\" \"b\" {\n  name = \"Bad/${var.token}\"\n}\n", &["plan"], SECRET_NUMBER),
        (
            "resource \"cluster\" \"c\" {}\nresource \"job\" \"j\" {\n  cluster = cluster.c\n  workdir = \"/nonexistent/${var.token}\"\n  run     = \"true\"\n}\n",
            &["apply", "--auto-approve"],
            SECRET_NUMBER,
        ),
    ];
    for (body, args, n) in cases {
        let p = Project::new(&format!("{TWO_VARS}{body}"));
        let r = kiln_vars(&p, args, n);
        if n != SECRET_NUMBER && n != "0" {
            assert!(!r.stderr().contains(n), "{body}: {}", r.stderr());
        }
        fails_without_secrets(body, r);
    }
}

/// Files kiln writes that may hold secrets by design: state, its backup and journal, and saved
/// plans. Everything else kiln writes must not.
fn holds_secrets_by_design(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name == "tfplan"
        || (rel.starts_with(".kiln/") && name.starts_with("state.json") && !name.ends_with(".lock.guard") && !name.ends_with(".lock"))
}

/// Walks the project: no file kiln wrote shows a secret, except those that hold them by design,
/// which must be private (0600) and, when `encrypted`, encrypted. Returns the files seen.
#[track_caller]
fn no_secret_in_files(p: &Project, after: &str, encrypted: bool) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut seen = Vec::new();
    let mut stack = vec![p.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let rel = path.strip_prefix(p.path()).unwrap().display().to_string();
            if rel.ends_with(".kiln.hcl") || rel.ends_with(".tpl") {
                continue; // the user's own files
            }
            let bytes = std::fs::read(&path).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            if holds_secrets_by_design(&rel) {
                assert_eq!(
                    meta.permissions().mode() & 0o077,
                    0,
                    "after {after}: {rel} must be private (mode {:o})",
                    meta.permissions().mode()
                );
                if encrypted && !text.trim().is_empty() {
                    for line in text.lines().filter(|l| !l.trim().is_empty()) {
                        assert!(line.starts_with("{\"kiln_encrypted\":1,"), "after {after}: {rel} is not encrypted: {line}");
                    }
                }
            } else {
                for s in [SECRET, SECRET2] {
                    assert!(!text.contains(s), "after {after}: {rel} holds the secret in clear:\n{text}");
                }
            }
            seen.push(rel);
        }
    }
    seen
}

/// Everything kiln makes for this configuration carries the secret somewhere: a record, a local
/// job's environment (defect 11: its record `job.json` kept it in clear), an output.
const EVERYWHERE: &str = r#"
variable "token" {
  type      = string
  sensitive = true
}

resource "bucket" "b" {
  force_destroy = true
}

resource "cluster" "c" {}

resource "job" "j" {
  cluster = cluster.c
  env     = { TOKEN = var.token, LR = "0.1" }
  run     = "test -n \"$TOKEN\" && echo token-received"
}

resource "record" "r" {
  input = { token = var.token, plain = "visible" }
}

# A whole-resource reference: the record's marks follow it.
resource "record" "whole" {
  input = record.r
}

output "token" {
  value     = var.token
  sensitive = true
}

output "whole" {
  value     = record.whole
  sensitive = true
}
"#;

/// Issue 10 (secrets suite): a marked value driven through every command; no output shows it
/// but `output --raw`, and after each command no file kiln wrote holds it in clear (state,
/// backup, journal and saved plans are 0600). `encrypted` adds an `encryption` block: those
/// files are then encrypted too.
fn every_command_and_every_file(encrypted: bool) {
    let config = if encrypted {
        EVERYWHERE.to_string()
            + "variable \"state_passphrase\" {\n  sensitive = true\n}\nkiln {\n  encryption {\n    key_provider \"passphrase\" { passphrase = var.state_passphrase }\n    method \"aes_gcm\" {}\n  }\n}\n"
    } else {
        EVERYWHERE.to_string()
    };
    let p = Project::new(&config);
    let k = |args: &[&str]| {
        let mut c = p.command(args);
        c.env("KILN_VAR_token", SECRET).env("KILN_VAR_state_passphrase", PASSPHRASE).env("KILN_LOG", "debug");
        run(c)
    };
    let step = |args: &[&str], expect_ok: bool| {
        let r = k(args);
        let what = args.join(" ");
        if expect_ok {
            assert_eq!(r.code(), 0, "{what}: {}\n{}", r.stdout(), r.stderr());
        }
        no_secret(&what, &r);
        no_secret_in_files(&p, &what, encrypted);
        r
    };
    step(&["validate"], true);
    step(&["plan"], true);
    step(&["plan", "--json"], true);
    step(&["plan", "--out", "tfplan"], true);
    step(&["show", "tfplan"], true);
    step(&["show", "--json", "tfplan"], true);
    step(&["graph"], true);
    step(&["apply", "--auto-approve", "--wait"], true);
    let files = no_secret_in_files(&p, "apply", encrypted);
    assert!(files.iter().any(|f| f.ends_with("job.json")), "the local job's record is among the files checked: {files:?}");
    step(&["show"], true);
    let json = step(&["show", "--json"], true);
    let v: serde_json::Value = serde_json::from_str(json.stdout().trim()).expect("show --json is JSON");
    let whole = v["resources"].as_array().unwrap().iter().find(|r| r["address"] == "record.whole").cloned().unwrap();
    assert_eq!(
        (&whole["values"]["input"], &whole["sensitive_values"]["input"]),
        (&serde_json::json!(null), &serde_json::json!(true)),
        "{whole}"
    );
    step(&["state", "list"], true);
    for addr in ["record.r", "record.whole", "job.j", "cluster.c", "bucket.b"] {
        step(&["state", "show", addr], true);
    }
    step(&["output"], true);
    step(&["output", "--json"], true);
    step(&["output", "token"], true);
    step(&["output", "whole"], true);
    let logs = step(&["logs", "job.j"], true);
    assert!(logs.stdout().contains("token-received"), "the job got its sensitive environment: {}", logs.stdout());
    // The one explicit request for a secret.
    assert_eq!(k(&["output", "--raw", "token"]).ok().stdout(), format!("{SECRET}\n"));
    no_secret_in_files(&p, "output --raw", encrypted);
    // An update of the secret, then destroy.
    let mut c = p.command(&["apply", "--auto-approve"]);
    c.env("KILN_VAR_token", SECRET2).env("KILN_VAR_state_passphrase", PASSPHRASE);
    let r = run(c).ok();
    no_secret("apply of an update", &r);
    no_secret_in_files(&p, "apply of an update", encrypted);
    step(&["destroy", "--auto-approve"], true);
}

#[test]
fn every_command_and_every_file_never_show_secrets() {
    every_command_and_every_file(false);
}

#[test]
fn encrypted_every_command_and_every_file_never_show_secrets() {
    every_command_and_every_file(true);
}

/// Issue 10, defect 5: a provider's own sensitive settings never show, neither in what it says
/// (a connection error naming the login host) nor in the values it copies into an object (the
/// region of an AWS bucket).
#[test]
#[cfg(all(feature = "aws", feature = "slurm"))]
fn sensitive_provider_settings_never_show() {
    let aws = Project::new(&format!(
        "{VAR_ONLY}provider \"aws\" {{\n  region = var.token\n}}\nresource \"bucket\" \"b\" {{\n  provider = aws\n}}\n"
    ));
    let mut c = aws.command(&["plan"]);
    c.env("KILN_VAR_token", SECRET)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let r = run(c);
    no_secret("aws region", &r);
    assert!(r.stdout().contains("region") && r.stdout().contains("(sensitive value)"), "{}\n{}", r.stdout(), r.stderr());

    let slurm = Project::new(&format!(
        "{VAR_ONLY}provider \"slurm\" {{\n  login {{\n    host = var.token\n  }}\n}}\nresource \"cluster\" \"c\" {{\n  provider  = slurm\n  partition = \"debug\"\n}}\n"
    ));
    let r = kiln_with(&slurm, SECRET, &["plan"]).code_is(1);
    no_secret("slurm login host", &r);
    assert!(r.stderr().contains("(sensitive value)"), "{}", r.stderr());
}
