//! The configuration language end to end: functions, `for`, conditionals, splats, `try`,
//! templates and heredocs, exact numbers and type conversions. Each test applies a
//! configuration of outputs and reads them back with `kiln output --json`.

use serde_json::json;

use crate::support::Project;

/// Applies `config` and checks each named output (`kiln output --json NAME`) against its value.
fn check(config: &str, expect: &[(&str, serde_json::Value)]) -> Project {
    let p = Project::new(config);
    p.kiln(&["apply", "--auto-approve"]).ok();
    for (name, value) in expect {
        assert_eq!(&p.output_json(name), value, "output `{name}`");
    }
    p
}

#[test]
fn string_and_collection_functions() {
    check(
        r#"
locals {
  names = ["a", "b", "c"]
}
output "format" { value = format("%s-node-%02d", "run", 7) }
output "join"   { value = join(",", local.names) }
output "merge"  { value = merge({ a = 1, b = 2 }, { b = 3, c = 4 }) }
output "cidr"   { value = cidrsubnet("10.0.0.0/16", 8, 2) }
output "json"   { value = jsonencode({ b = [true, null], a = 1 }) }
"#,
        &[
            ("format", json!("run-node-07")),
            ("join", json!("a,b,c")),
            ("merge", json!({"a": 1, "b": 3, "c": 4})),
            ("cidr", json!("10.0.2.0/24")),
            ("json", json!(r#"{"a":1,"b":[true,null]}"#)),
        ],
    );
}

#[test]
fn templatefile_renders_a_template_file() {
    let p = Project::new(
        "output \"rendered\" {\n  value = templatefile(\"${path.module}/hosts.tftpl\", { name = \"trainer\", hosts = [\"h1\", \"h2\"] })\n}\n",
    );
    p.write("hosts.tftpl", "job: ${name}\n%{ for h in hosts }- ${h}\n%{ endfor }");
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.output_json("rendered"), json!("job: trainer\n- h1\n- h2\n"));
}

#[test]
fn template_strip_markers() {
    let p =
        Project::new("output \"rendered\" {\n  value = templatefile(\"${path.module}/hosts.tftpl\", { hosts = [\"h1\", \"h2\"] })\n}\n");
    p.write("hosts.tftpl", "hosts:\n%{ for h in hosts ~}\n  - ${h}\n%{ endfor ~}\n");
    p.kiln(&["apply", "--auto-approve"]).ok();
    // As HCL: `~}` strips the rest of its own line (the newline), not the next line's indentation.
    assert_eq!(p.output_json("rendered"), json!("hosts:\n  - h1\n  - h2\n"));
}

#[test]
fn heredoc_with_for_directive() {
    check(
        r#"
locals {
  names = ["a", "b", "c"]
}
output "heredoc" {
  value = <<-EOT
    %{ for n in local.names ~}
    item ${n}
    %{ endfor ~}
  EOT
}
"#,
        // Terraform applies `~` before the `<<-` dedent, so lines after a stripped line break are
        // not dedented (hashicorp/terraform#23710); kiln matches it.
        &[("heredoc", json!("    item a\n    item b\n    item c\n"))],
    );
}

#[test]
fn heredoc_is_dedented() {
    check(
        "output \"script\" {\n  value = <<-EOT\n    #!/bin/sh\n      indented ${1 + 1}\n    done\n  EOT\n}\n",
        &[("script", json!("#!/bin/sh\n  indented 2\ndone\n"))],
    );
}

#[test]
fn for_expressions_conditionals_and_splats() {
    check(
        r#"
locals {
  names = ["a", "b", "c"]
}
resource "record" "r" {
  count = 3
  input = { name = local.names[count.index] }
}
output "upper"  { value = [for n in local.names : upper(n) if n != "b"] }
output "index"  { value = { for i, n in local.names : n => i } }
output "group"  { value = { for n in ["x", "y", "x"] : n => n... } }
output "cond"   { value = length(local.names) > 2 ? "many" : "few" }
output "splat"  { value = record.r[*].output.name }
output "ids"    { value = length(record.r[*].id) }
"#,
        &[
            ("upper", json!(["A", "C"])),
            ("index", json!({"a": 0, "b": 1, "c": 2})),
            ("group", json!({"x": ["x", "x"], "y": ["y"]})),
            ("cond", json!("many")),
            ("splat", json!(["a", "b", "c"])),
            ("ids", json!(3)),
        ],
    );
}

#[test]
fn try_falls_back_on_errors_only() {
    check(
        r#"
locals {
  m = { present = "yes" }
}
output "missing" { value = try(local.m.absent, "fallback") }
output "present" { value = try(local.m.present, "fallback") }
output "convert" { value = try(tonumber("abc"), -1) }
output "can"     { value = can(local.m.absent) }
"#,
        &[("missing", json!("fallback")), ("present", json!("yes")), ("convert", json!(-1)), ("can", json!(false))],
    );
}

#[test]
fn decimal_arithmetic_is_exact() {
    let p = check("output \"sum\" {\n  value = 0.1 + 0.2\n}\n", &[("sum", json!(0.3))]);
    // Exactly `0.3`, not the binary 0.30000000000000004, in every view.
    assert_eq!(p.output_json("sum").to_string(), "0.3");
    assert_eq!(p.kiln(&["output", "sum"]).ok().stdout().trim(), "0.3");
    assert_eq!(p.kiln(&["output", "--raw", "sum"]).ok().stdout().trim(), "0.3");
}

#[test]
fn large_and_precise_numbers_survive_state() {
    let p = Project::new(
        "output \"big\" {\n  value = 12345678901234567890 * 10\n}\n\noutput \"precise\" {\n  value = 1.000000000000000001 + 1\n}\n",
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.output_json("big").to_string(), "123456789012345678900");
    assert_eq!(p.kiln(&["output", "big"]).ok().stdout().trim(), "123456789012345678900");
    assert_eq!(p.output_json("precise").to_string(), "2.000000000000000001");
}

#[test]
fn string_and_number_conversions() {
    let p = check(
        r#"
output "alone"   { value = "${1 + 1}" }
output "mixed"   { value = "n${1 + 1}" }
output "add"     { value = "5" + 1 }
output "tostr"   { value = tostring(2.50) }
output "tonum"   { value = tonumber("1e3") }
output "compare" { value = 1 == "1" }
"#,
        &[("mixed", json!("n2")), ("add", json!(6)), ("tostr", json!("2.5")), ("tonum", json!(1000)), ("compare", json!(false))],
    );
    // A template that is a single interpolation keeps its value's type: a number, not "2".
    assert_eq!(p.output_json("alone").to_string(), "2");
}

#[test]
fn unknown_function_is_reported_with_its_position() {
    let p = Project::new("output \"x\" {\n  value = frobnicate(1)\n}\n");
    let r = p.kiln(&["validate"]).code_is(1);
    assert!(r.stderr().contains("frobnicate"), "{}", r.stderr());
    assert!(r.stderr().contains("main.kiln.hcl:2:"), "{}", r.stderr());
}

/// Hostile configurations: each gets a diagnostic naming file:line:column and exits 1, never a
/// stack overflow, a panic, an out-of-memory abort or a hang.
#[test]
fn hostile_inputs_get_diagnostics_with_locations() {
    let deep_json = format!("{}{}", "[".repeat(40_000), "]".repeat(40_000));
    let mut bomb = String::from("l0: &l0 [\\\"lol\\\", \\\"lol\\\", \\\"lol\\\", \\\"lol\\\", \\\"lol\\\", \\\"lol\\\", \\\"lol\\\", \\\"lol\\\", \\\"lol\\\", \\\"lol\\\"]\\n");
    for i in 1..=9 {
        bomb.push_str(&format!("l{i}: &l{i} [{}]\\n", vec![format!("*l{}", i - 1); 10].join(", ")));
    }
    let cases: Vec<(String, &str, &str)> = vec![
        (format!("output \"x\" {{\n  value = jsondecode(\"{deep_json}\")\n}}\n"), "nested deeper than 256 levels", "main.kiln.hcl:2:22"),
        (format!("output \"x\" {{\n  value = yamldecode(\"{bomb}\")\n}}\n"), "expands to more than 1000000 values", "main.kiln.hcl:2:22"),
        (
            "output \"x\" {\n  value = templatefile(\"${path.module}/self.tpl\", {})\n}\n".into(),
            "cannot call templatefile from inside a template file",
            "main.kiln.hcl:2:11",
        ),
        ("output \"x\" {\n  value = format(\"%9999999999d\", 1)\n}\n".into(), "is too large: the limit is 1000000", "main.kiln.hcl:2:11"),
        (
            "output \"x\" {\n  value = fileset(\"/\", \"**\")\n}\n".into(),
            "looks at more than 100000 files and directories",
            "main.kiln.hcl:2:11",
        ),
        (
            "resource \"record\" \"r\" {\n  count = 10000000\n  input = count.index\n}\n".into(),
            "more than the 100000 instances a resource may have",
            "main.kiln.hcl:2:11",
        ),
        (
            "resource \"record\" \"r\" {\n  input        = 1\n  create_delay = \"99999999999999999h\"\n}\n".into(),
            "invalid create_delay",
            "main.kiln.hcl:3:18",
        ),
        ("resource \"record\" \"r\" {\n  provider = nope\n  input    = 1\n}\n".into(), "unknown provider `nope`", "main.kiln.hcl:2:14"),
    ];
    for (config, message, at) in cases {
        let p = Project::new(&config);
        p.write("self.tpl", "${templatefile(\"self.tpl\", {})}\n");
        let r = p.kiln(&["plan"]);
        let err = r.stderr();
        assert_eq!(r.code(), 1, "{message}: {err}");
        assert!(err.contains(message), "expected {message:?} in:\n{err}");
        assert!(err.contains(at), "expected {at} in:\n{err}");
    }
}

#[test]
fn a_fifo_named_like_a_configuration_file_is_refused() {
    let p = Project::new("locals {\n  a = 1\n}\n");
    let fifo = p.path().join("pipe.kiln.hcl");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let r = p.kiln(&["validate"]).code_is(1);
    assert!(r.stderr().contains("cannot read `pipe.kiln.hcl`: it is not a regular file"), "{}", r.stderr());
}

#[test]
fn invalid_utf8_is_reported_at_its_line_and_column() {
    let p = Project::empty();
    std::fs::write(p.path().join("main.kiln.hcl"), b"locals {\n  a = 1\n  b = \"\xff\"\n}\n").unwrap();
    let r = p.kiln(&["validate"]).code_is(1);
    assert!(r.stderr().contains("is not valid UTF-8: byte 0xff"), "{}", r.stderr());
    assert!(r.stderr().contains("main.kiln.hcl:3:8"), "{}", r.stderr());
}

#[test]
fn chains_of_100000_locals_and_resources_plan() {
    let mut locals = String::from("locals {\n  l0 = 0\n");
    let mut records = String::from("resource \"record\" \"r0\" {\n  input = 0\n}\n");
    for i in 1..100_000 {
        locals.push_str(&format!("  l{i} = local.l{}\n", i - 1));
        records.push_str(&format!("resource \"record\" \"r{i}\" {{\n  input = record.r{}.input\n}}\n", i - 1));
    }
    locals.push_str("}\noutput \"last\" {\n  value = local.l99999\n}\n");
    let p = Project::new(&locals);
    p.kiln(&["plan"]).ok();
    let p = Project::new(&records);
    let out = p.kiln(&["plan"]).ok().stdout();
    assert!(out.contains("Plan: 100000 to add"), "{}", &out[out.len().saturating_sub(500)..]);
}

#[test]
fn validate_makes_the_providers_checks_that_plan_makes() {
    let p = Project::new("resource \"job\" \"j\" {\n  cluster = 1\n  run     = 2\n}\n");
    let plan = p.kiln(&["plan"]).code_is(1).stderr();
    assert!(plan.contains("`cluster` must be a cluster object"), "{plan}");
    let r = p.kiln(&["validate"]).code_is(1);
    assert!(r.stderr().contains("`cluster` must be a cluster object"), "{}", r.stderr());
    assert!(r.stderr().contains("main.kiln.hcl:2:13"), "{}", r.stderr());
}

#[test]
fn ten_thousand_errors_are_all_reported() {
    let config: String = (0..10_000).map(|i| format!("resource \"record\" \"r{i}\" {{\n  bogus = 1\n}}\n")).collect();
    let p = Project::new(&config);
    let err = p.kiln(&["validate"]).code_is(1).stderr();
    assert_eq!(err.matches("unsupported attribute `bogus`").count(), 10_000);
    assert!(err.contains("main.kiln.hcl:29999:3"), "the last one, at its line");
}
