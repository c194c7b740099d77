//! The `policy` and `catalog` blocks (issue 14): what they load into, and each mistake reported
//! with its code, at its line and column, with a hint.

use kiln_config::Config;
use kiln_diag::{Diagnostic, Diagnostics};

fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Config, Diagnostics) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let (config, d) = kiln_config::load(dir.path());
    (dir, config.unwrap(), d)
}

fn one(src: &str) -> (tempfile::TempDir, Config, Diagnostics) {
    load(&[("main.kiln.hcl", src)])
}

/// The one diagnostic with `code`, and its `line:col`.
fn find<'a>(config: &Config, d: &'a Diagnostics, code: &str) -> (&'a Diagnostic, String) {
    let e = d.iter().find(|e| e.code == code).unwrap_or_else(|| panic!("no {code} in {d:?}"));
    assert_eq!(d.iter().filter(|e| e.code == code).count(), 1, "{d:?}");
    let l = e.primary.as_ref().unwrap_or_else(|| panic!("{code} has a location: {e:?}"));
    let lc = config.sources.get(l.span.file).line_col(l.span.range.start);
    (e, format!("{}:{}", lc.line, lc.column))
}

#[test]
fn a_policy_loads_every_setting_and_its_rules() {
    let (_d, config, d) = one(r#"
policy "budget" {
  description              = "the team's budget"
  max_hourly_cost          = 40
  allowed_providers        = ["aws", "onprem"]
  allowed_regions          = ["us-east-1"]
  spot_above_gpus          = 8
  protect_nonempty_buckets = true
  rule {
    condition = change.action != "delete"
    message   = "${change.address} would be destroyed"
  }
}

policy "other" {
  max_hourly_cost = var.budget
}
"#);
    assert!(d.is_empty(), "{d:?}");
    let policies = &config.root.module.policies;
    assert_eq!(policies.keys().collect::<Vec<_>>(), ["budget", "other"]);
    let p = &policies["budget"];
    assert_eq!(p.description.as_deref(), Some("the team's budget"));
    assert_eq!(
        p.settings().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["max_hourly_cost", "allowed_providers", "allowed_regions", "spot_above_gpus", "protect_nonempty_buckets"]
    );
    assert_eq!(p.rules.len(), 1);
    assert_eq!(config.sources.location(p.span.file, p.span.range.start).rsplit_once("main.kiln.hcl").unwrap().1, ":2:1");
    assert!(policies["other"].max_hourly_cost.is_some(), "an expression is kept for evaluation at plan time");
}

#[test]
fn policy_settings_of_the_wrong_type_are_errors_at_their_value() {
    let (_d, config, d) = one(
        "policy \"p\" {\n  max_hourly_cost = \"forty\"\n  allowed_providers = \"aws\"\n  allowed_regions = [\"us-east-1\", 3]\n  spot_above_gpus = 2.5\n  protect_nonempty_buckets = \"yes\"\n}\n",
    );
    let errors: Vec<&Diagnostic> = d.iter().filter(|e| e.code == "E-CONFIG-TYPE").collect();
    assert_eq!(errors.len(), 5, "{d:?}");
    let at = |e: &Diagnostic| {
        let l = e.primary.as_ref().unwrap();
        let lc = config.sources.get(l.span.file).line_col(l.span.range.start);
        (lc.line, lc.column)
    };
    assert!(
        errors[0].summary.contains("`max_hourly_cost` in a `policy` block must be a number of at least 0, found a string"),
        "{}",
        errors[0].summary
    );
    assert_eq!(at(errors[0]), (2, 21));
    assert!(errors[1].summary.contains("`allowed_providers` in a `policy` block must be a list of strings"), "{}", errors[1].summary);
    assert!(errors[1].hint.as_deref().unwrap().contains("[\"aws\", \"onprem\"]"));
    assert!(errors[2].summary.contains("lists strings, found a number"), "{}", errors[2].summary);
    assert_eq!(at(errors[2]), (4, 35), "the element itself");
    assert!(errors[3].summary.contains("whole number of at least 0, found 2.5"), "{}", errors[3].summary);
    assert!(errors[4].summary.contains("`protect_nonempty_buckets` in a `policy` block must be true or false, found a string"));
    let (_d, _c, d) = one("policy \"p\" {\n  max_hourly_cost = -1\n}\n");
    assert!(d.iter().any(|e| e.code == "E-CONFIG-TYPE" && e.summary.contains("found -1")), "{d:?}");
}

#[test]
fn unknown_attributes_and_blocks_in_a_policy_suggest_the_right_name() {
    let (_d, config, d) = one("policy \"p\" {\n  max_hourly_cots = 4\n  rules {\n  }\n}\n");
    let (e, at) = find(&config, &d, "E-UNKNOWN-ATTR");
    assert_eq!(at, "2:3");
    assert_eq!(e.hint.as_deref(), Some("did you mean `max_hourly_cost`?"));
    assert_eq!(e.address.as_deref(), Some("policy.p"));
    let (e, at) = find(&config, &d, "E-UNKNOWN-BLOCK");
    assert_eq!(at, "3:3");
    assert_eq!(e.hint.as_deref(), Some("did you mean `rule`?"));
}

#[test]
fn a_rule_needs_condition_and_message_and_a_literal_condition_must_be_bool() {
    let (_d, config, d) = one("policy \"p\" {\n  rule {\n    condition = true\n  }\n  rule {\n    condition = \"yes\"\n    message = \"m\"\n    severity = 1\n  }\n}\n");
    let (e, at) = find(&config, &d, "E-POLICY-RULE");
    assert_eq!(at, "2:3");
    assert!(e.summary.contains("`message` is missing"), "{}", e.summary);
    let (e, at) = find(&config, &d, "E-CONFIG-TYPE");
    assert_eq!(at, "6:17");
    assert!(e.summary.contains("must be true or false, found a string"), "{}", e.summary);
    let (e, _) = find(&config, &d, "E-UNKNOWN-ATTR");
    assert!(e.summary.contains("`severity` in a `rule` block"), "{}", e.summary);
    assert!(config.root.module.policies["p"].rules.is_empty(), "rules with errors are not kept");
}

#[test]
fn policy_names_are_unique_and_labelled_once() {
    let (_d, config, d) = load(&[
        ("a.kiln.hcl", "policy \"budget\" {\n  max_hourly_cost = 1\n}\n"),
        ("b.kiln.hcl", "policy \"budget\" {\n  max_hourly_cost = 2\n}\npolicy {\n}\n"),
    ]);
    let e = d.iter().find(|e| e.code == "E-DUPLICATE").unwrap_or_else(|| panic!("{d:?}"));
    assert_eq!(e.summary, "policy `budget` is declared twice");
    let second = &e.primary.as_ref().unwrap().span;
    assert!(config.sources.location(second.file, second.range.start).ends_with("b.kiln.hcl:1:1"));
    assert!(config.sources.location(e.secondary[0].span.file, e.secondary[0].span.range.start).ends_with("a.kiln.hcl:1:1"));
    assert!(d.iter().any(|e| e.code == "E-BLOCK-LABELS" && e.summary.contains("`policy` block needs 1 label")), "{d:?}");
}

#[test]
fn an_empty_policy_is_a_warning() {
    let (_d, config, d) = one("policy \"p\" {\n  description = \"nothing yet\"\n}\n");
    let (e, at) = find(&config, &d, "W-POLICY-EMPTY");
    assert_eq!(at, "1:1");
    assert!(!d.has_errors(), "{e:?}");
}

#[test]
fn policies_and_the_catalog_in_a_called_module_are_errors() {
    let (_d, config, d) = load(&[
        ("main.kiln.hcl", "module \"m\" {\n  source = \"./m\"\n}\n"),
        ("m/main.kiln.hcl", "policy \"p\" {\n  max_hourly_cost = 1\n}\n\ncatalog {\n  path = \"x.csv\"\n}\n"),
    ]);
    let (e, at) = find(&config, &d, "E-POLICY-MODULE");
    assert_eq!(at, "1:1");
    assert!(e.summary.contains("policy `p` is declared in `module.m`"), "{}", e.summary);
    let (e, at) = find(&config, &d, "E-CATALOG-MODULE");
    assert_eq!(at, "5:1");
    assert!(e.hint.as_deref().unwrap().contains("root module"));
    assert!(config.root.children["m"].module.policies.is_empty() && config.root.children["m"].module.catalog.is_none());
}

#[test]
fn a_catalog_loads_its_paths_and_discounts() {
    let (_d, config, d) = one(
        "catalog {\n  path = [\"a.csv\", \"b.csv\"]\n  discount {\n    cloud = \"aws\"\n    percent = 30\n  }\n  discount {\n    cloud = \"aws\"\n    percent = 50\n    instance_type = \"p5.48xlarge\"\n  }\n}\n",
    );
    assert!(d.is_empty(), "{d:?}");
    let c = config.root.module.catalog.as_ref().unwrap();
    assert!(c.path.is_some());
    assert_eq!(c.discounts.len(), 2);
    assert!(c.discounts[0].instance_type.is_none() && c.discounts[1].instance_type.is_some());
    assert_eq!(config.sources.location(c.discounts[1].span.file, c.discounts[1].span.range.start).rsplit_once(".hcl").unwrap().1, ":7:3");
    let (_d, _config, d) = one("catalog {\n  path = \"prices.csv\"\n}\n");
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn catalog_mistakes_are_errors_at_their_place() {
    let (_d, config, d) = one(
        "catalog {\n  path = 3\n  paths = \"x\"\n  discount {\n    cloud = \"aws\"\n  }\n  discount {\n    cloud = 1\n    percent = 130\n    region = \"x\"\n  }\n  discounts {\n  }\n}\ncatalog {\n}\n",
    );
    let types: Vec<&Diagnostic> = d.iter().filter(|e| e.code == "E-CONFIG-TYPE").collect();
    assert_eq!(types.len(), 3, "{d:?}");
    assert!(types[0].summary.contains("`path` in a `catalog` block must be a file or a list of files, found a number"));
    assert!(types[1].summary.contains("`cloud` in a `discount` block must be a string"), "{}", types[1].summary);
    assert!(types[2].summary.contains("at most 100, found 130"), "{}", types[2].summary);
    let (e, at) = find(&config, &d, "E-CATALOG-DISCOUNT");
    assert_eq!(at, "4:3");
    assert!(e.summary.contains("`percent` is missing"), "{}", e.summary);
    let attrs: Vec<&Diagnostic> = d.iter().filter(|e| e.code == "E-UNKNOWN-ATTR").collect();
    assert_eq!(attrs.len(), 2, "{d:?}");
    assert_eq!(attrs[0].hint.as_deref(), Some("did you mean `path`?"));
    assert!(attrs[1].summary.contains("`region` in a `discount` block"));
    let (e, _) = find(&config, &d, "E-UNKNOWN-BLOCK");
    assert_eq!(e.hint.as_deref(), Some("did you mean `discount`?"));
    let (e, at) = find(&config, &d, "E-DUPLICATE");
    assert_eq!(at, "15:1");
    assert_eq!(e.summary, "more than one `catalog` block");
}

#[test]
fn a_misspelt_top_level_block_suggests_policy_and_catalog() {
    let (_d, config, d) = one("polcy \"p\" {\n}\ncatalogue {\n}\n");
    let hints: Vec<&str> = d.iter().filter(|e| e.code == "E-UNKNOWN-BLOCK").filter_map(|e| e.hint.as_deref()).collect();
    assert_eq!(hints, ["did you mean `policy`?", "did you mean `catalog`?"]);
    let _ = config;
}
