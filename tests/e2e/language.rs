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
    assert_eq!(p.kiln(&["output", "--json", "sum"]).ok().stdout().trim(), "0.3");
    assert_eq!(p.kiln(&["output", "sum"]).ok().stdout().trim(), "0.3");
    assert_eq!(p.kiln(&["output", "--raw", "sum"]).ok().stdout().trim(), "0.3");
}

#[test]
fn large_and_precise_numbers_survive_state() {
    let p = Project::new(
        "output \"big\" {\n  value = 12345678901234567890 * 10\n}\n\noutput \"precise\" {\n  value = 1.000000000000000001 + 1\n}\n",
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.kiln(&["output", "--json", "big"]).ok().stdout().trim(), "123456789012345678900");
    assert_eq!(p.kiln(&["output", "big"]).ok().stdout().trim(), "123456789012345678900");
    assert_eq!(p.kiln(&["output", "--json", "precise"]).ok().stdout().trim(), "2.000000000000000001");
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
    assert_eq!(p.kiln(&["output", "--json", "alone"]).ok().stdout().trim(), "2");
}

#[test]
fn unknown_function_is_reported_with_its_position() {
    let p = Project::new("output \"x\" {\n  value = frobnicate(1)\n}\n");
    let r = p.kiln(&["validate"]).code_is(1);
    assert!(r.stderr().contains("frobnicate"), "{}", r.stderr());
    assert!(r.stderr().contains("main.kiln.hcl:2:"), "{}", r.stderr());
}
