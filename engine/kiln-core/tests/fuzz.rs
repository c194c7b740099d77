//! Property test of the whole planning path (load, graph, evaluation, instance expansion,
//! schema checks, the built-in provider) on mutations of record configurations: no mutation may
//! panic, overflow the stack or hang, and every diagnostic carries a location or an address.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_core::{plan, NoopHook, PlanRequest, ProviderRegistry};
use kiln_plan::Mode;
use kiln_state::State;
use kiln_testkit::fuzz::{config, pos};
use proptest::prelude::*;

const SEEDS: &[&str] = &[
    include_str!("../../../examples/records/main.kiln.hcl"),
    r#"
variable "names" {
  type    = set(string)
  default = ["a", "b"]
}
locals {
  base = { for n in var.names : n => upper(n) }
}
resource "record" "each" {
  for_each = local.base
  input    = "${each.key}=${each.value}"
}
resource "record" "after" {
  depends_on   = [record.each]
  input        = [for k, r in record.each : r.output]
  create_delay = "1ms"
  lifecycle {
    create_before_destroy = true
    ignore_changes        = [input]
  }
}
output "all" {
  value     = record.after.output
  sensitive = true
}
"#,
];

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\"",
    "${",
    "%{",
    "=",
    ",",
    ".",
    "*",
    "[*]",
    "...",
    "?",
    ":",
    "!",
    "-",
    "+",
    "\n",
    "#",
    "count",
    "for_each",
    "each.key",
    "count.index",
    "record.node",
    "record.bucket.output",
    "local.tags",
    "var.nodes",
    "depends_on",
    "provider",
    "lifecycle",
    "null",
    "true",
    "0",
    "3",
    "-1",
    "1.5",
    "1e400",
    "\"x\"",
    "resource",
    "locals",
    "output",
    "variable",
    "module",
    "data",
    "kiln",
    "nope",
    "self",
    "path.module",
    "range(",
    "jsondecode(",
    "format(",
];

/// Well-formed expressions that replace an attribute's value: most mutations keep the file's
/// syntax and reach evaluation, expansion, schema checks and the provider.
const VALUES: &[&str] = &[
    "null",
    "1",
    "0",
    "-1",
    "2.5",
    "100001",
    "\"s\"",
    "\"\"",
    "true",
    "var.nodes",
    "var.run_name",
    "var.names",
    "local.tags",
    "local.base",
    "local.missing",
    "record.bucket.output",
    "record.bucket.id",
    "record.node[0].id",
    "record.node[*].id",
    "record.each[\"a\"].output",
    "record.nope.id",
    "record.after",
    "count.index",
    "each.key",
    "each.value",
    "[for n in record.node : n.id]",
    "{ a = 1 }",
    "[1, \"a\"]",
    "jsondecode(\"[1,2]\")",
    "length(record.node)",
    "var.nodes * 2",
    "var.nodes / 0",
    "toset([\"a\", \"b\"])",
    "tomap({ a = 1 })",
    "sensitive(\"x\")",
    "sensitive(2)",
    "var.nodes > 1 ? 1 : 0",
    "\"${var.nodes}\"",
    "file(\"x\")",
    "module.m.out",
    "self.id",
    "path.module",
    "range(3)",
    "[record.node]",
    "\"99999999999999999h\"",
    "\"1ms\"",
    "[record.bucket]",
    "[var.nodes]",
    "{ for k in [\"a\"] : k => k }",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(u16, &'static str),
    Delete(u16, u8),
    Duplicate(u16, u16),
    /// Replace the value of the n-th one-line attribute.
    Value(u16, &'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => (any::<u16>(), prop::sample::select(TOKENS)).prop_map(|(a, t)| Edit::Insert(a, t)),
        1 => (any::<u16>(), any::<u8>()).prop_map(|(a, n)| Edit::Delete(a, n % 32)),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(a, n)| Edit::Duplicate(a, n)),
        8 => (any::<u16>(), prop::sample::select(VALUES)).prop_map(|(a, v)| Edit::Value(a, v)),
    ]
}

/// Byte ranges of the values of attributes written on one line (`name = value`).
fn one_line_values(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end();
        if let Some(eq) = body.find(" = ") {
            let value = &body[eq + 3..];
            let name = body[..eq].trim();
            let opens = value.ends_with(['{', '[', '(']) || value.starts_with("<<");
            if !opens && !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.push(start + eq + 3..start + body.len());
            }
        }
        start += line.len();
    }
    out
}

fn mutate(mut text: String, edits: &[Edit]) -> String {
    for e in edits {
        if let Edit::Value(n, v) = *e {
            let values = one_line_values(&text);
            if !values.is_empty() {
                text.replace_range(values[n as usize % values.len()].clone(), v);
            }
            continue;
        }
        let i = match *e {
            Edit::Insert(a, _) | Edit::Delete(a, _) | Edit::Duplicate(a, _) | Edit::Value(a, _) => pos(&text, a),
        };
        let end = |n: usize, text: &str| {
            let mut j = (i + n).min(text.len());
            while !text.is_char_boundary(j) {
                j += 1;
            }
            j
        };
        match *e {
            Edit::Insert(_, t) => text.insert_str(i, t),
            Edit::Delete(_, n) => {
                let j = end(n as usize, &text);
                text.replace_range(i..j, "");
            }
            Edit::Duplicate(_, n) => {
                let j = end(n as usize % 300, &text);
                let piece = text[i..j].to_string();
                text.insert_str(j, &piece);
            }
            Edit::Value(..) => {}
        }
    }
    text
}

/// Plans `text`; whether it loaded, and whether it planned.
fn plan_of(text: &str) -> (bool, bool) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.kiln.hcl"), text).unwrap();
    let (config, d) = kiln_config::load(dir.path());
    if d.has_errors() {
        return (false, false);
    }
    let config = config.unwrap();
    let mut reg = ProviderRegistry::new();
    reg.register(Arc::new(kiln_provider_builtin::BuiltinFactory));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (p, diags) = rt.block_on(plan(PlanRequest {
        config: &config,
        state: &State::new(),
        registry: &reg,
        providers: &kiln_core::Providers::new(),
        variables: BTreeMap::new(),
        mode: Mode::Normal,
        refresh: false,
        workspace: "default".into(),
        targets: Vec::new(),
        excludes: Vec::new(),
        replace: Vec::new(),
        hook: &NoopHook,
        cwd: dir.path().to_path_buf(),
        placement: Default::default(),
    }));
    for e in diags.errors() {
        assert!(e.primary.is_some() || e.address.is_some(), "an error with neither location nor address: {e:?}\nin:\n{text}");
        if let Some(l) = &e.primary {
            assert!(l.span.range.end <= config.sources.text(l.span.file).len(), "{e:?}");
        }
    }
    (true, p.is_some())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn mutated_record_configurations_plan_or_fail_with_located_errors(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let _ = plan_of(&mutate(SEEDS[seed.index(SEEDS.len())].to_string(), &edits));
    }
}

#[test]
fn the_seeds_plan() {
    for s in SEEDS {
        assert_eq!(plan_of(s), (true, true), "{s}");
    }
}

/// The mutations are only useful if many still load and some still plan.
#[test]
fn many_mutations_load_and_some_plan() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (any::<prop::sample::Index>(), prop::collection::vec(edit(), 1..4));
    let (mut loaded, mut planned) = (0, 0);
    for _ in 0..100 {
        let (seed, edits) = strategy.new_tree(&mut runner).unwrap().current();
        let (l, p) = plan_of(&mutate(SEEDS[seed.index(SEEDS.len())].to_string(), &edits));
        loaded += l as usize;
        planned += p as usize;
    }
    assert!(loaded >= 30 && planned >= 10, "{loaded} of 100 mutations load, {planned} plan");
}
