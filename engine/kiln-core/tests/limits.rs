//! kiln-core's limits on hostile configurations: each is a diagnostic at the expression at
//! fault, never a stack overflow or an allocation without bound, and the generous sizes the
//! README promises (a chain of 100,000 locals, `count = 100000`) still plan.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kiln_core::{plan, NoopHook, PlanRequest, ProviderRegistry};
use kiln_diag::Diagnostics;
use kiln_plan::{Mode, Plan};
use kiln_state::State;

async fn plan_of(src: &str) -> (Option<Plan>, Diagnostics, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.kiln.hcl"), src).unwrap();
    let (config, d) = kiln_config::load(dir.path());
    assert!(!d.has_errors(), "{d:?}");
    let config = config.unwrap();
    let mut reg = ProviderRegistry::new();
    reg.register(Arc::new(kiln_provider_builtin::BuiltinFactory));
    let (p, d) = plan(PlanRequest {
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
        cwd: Path::new(".").to_path_buf(),
        placement: Default::default(),
    })
    .await;
    (p, d, src.to_string())
}

/// The text under the primary span of the first error with `code`.
fn error_at(d: &Diagnostics, src: &str, code: &str) -> String {
    let e = d.iter().find(|e| e.code == code).unwrap_or_else(|| panic!("no {code} in {d:?}"));
    let span = e.primary.as_ref().unwrap_or_else(|| panic!("{code} has no location: {e:?}")).span.range.clone();
    src[span].to_string()
}

#[tokio::test]
async fn a_count_beyond_the_limit_is_an_error_at_the_count_expression() {
    let (p, d, src) = plan_of("resource \"record\" \"r\" {\n  count = 10000000\n  input = count.index\n}\n").await;
    assert!(p.is_none());
    assert_eq!(error_at(&d, &src, "E-COUNT"), "10000000");
    let e = d.iter().find(|e| e.code == "E-COUNT").unwrap();
    assert!(e.summary.contains("more than the 100000 instances"), "{}", e.summary);
    let (p, d, src) =
        plan_of("resource \"record\" \"r\" {\n  for_each = toset([for i in range(3) : tostring(i)])\n  input = each.key\n}\n").await;
    assert!(p.is_some() && !d.has_errors(), "{d:?} {src}");
}

#[tokio::test]
async fn a_count_of_100000_still_plans() {
    let (p, d, _) = plan_of("resource \"record\" \"r\" {\n  count = 100000\n  input = count.index\n}\n").await;
    assert!(!d.has_errors(), "{d:?}");
    assert_eq!(p.unwrap().changes.len(), 100_000);
}

#[tokio::test]
async fn a_chain_of_100000_locals_plans() {
    let mut src = String::from("locals {\n  l0 = 0\n");
    for i in 1..100_000 {
        src.push_str(&format!("  l{i} = local.l{}\n", i - 1));
    }
    src.push_str("}\nresource \"record\" \"r\" {\n  input = local.l99999\n}\n");
    let (p, d, _) = plan_of(&src).await;
    assert!(!d.has_errors(), "{d:?}");
    assert_eq!(p.unwrap().changes.len(), 1);
}

#[tokio::test]
async fn an_overlong_create_delay_is_an_error_at_the_attribute() {
    let (p, d, src) = plan_of("resource \"record\" \"r\" {\n  input        = 1\n  create_delay = \"99999999999999999h\"\n}\n").await;
    assert!(p.is_none());
    assert_eq!(error_at(&d, &src, "E-RECORD-DELAY"), "\"99999999999999999h\"");
}

#[tokio::test]
async fn a_local_nested_deeper_than_the_value_limit_is_an_error_at_its_expression() {
    // Each local one list deeper than the one before: the 257th is refused, before anything is
    // created, so kiln never writes a state it cannot read back.
    let mut src = String::from("locals {\n  l0 = []\n");
    for i in 1..=kiln_value::MAX_DEPTH {
        src.push_str(&format!("  l{i} = [local.l{}]\n", i - 1));
    }
    src.push_str(&format!("}}\nresource \"record\" \"r\" {{\n  input = local.l{}\n}}\n", kiln_value::MAX_DEPTH));
    let (p, d, src) = plan_of(&src).await;
    assert!(p.is_none());
    assert_eq!(error_at(&d, &src, "E-VALUE-DEPTH"), format!("[local.l{}]", kiln_value::MAX_DEPTH - 1));
}

#[tokio::test]
async fn an_unknown_provider_in_a_resource_is_reported_at_the_resource() {
    let (p, d, src) = plan_of("resource \"record\" \"r\" {\n  provider = nope\n  input    = 1\n}\n").await;
    assert!(p.is_none());
    assert_eq!(error_at(&d, &src, "E-PROVIDER-UNKNOWN"), "nope");
    let e = d.iter().find(|e| e.code == "E-PROVIDER-UNKNOWN").unwrap();
    assert_eq!(e.address.as_deref(), Some("record.r"));
    assert!(e.hint.as_deref().unwrap_or_default().contains("kiln"), "{e:?}");
}

#[tokio::test]
async fn a_kind_whose_default_provider_is_missing_is_reported_at_the_resource() {
    // Only the built-in provider is registered here: `bucket` would be the local provider's.
    let (p, d, src) = plan_of("resource \"bucket\" \"b\" {\n  name = \"x\"\n}\n").await;
    assert!(p.is_none());
    assert!(error_at(&d, &src, "E-PROVIDER-UNKNOWN").starts_with("resource \"bucket\" \"b\""));
}
