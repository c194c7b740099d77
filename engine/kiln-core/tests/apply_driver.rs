//! The apply driver against a mock provider: providers configured once per command, the apply
//! graph built from the plan's changes (order of deletes, replacements and creates), refusal of
//! what the plan does not list, inconsistency with the reviewed plan, and no provider planning
//! of resources the plan leaves alone.

// Not every helper of the mock is used here.
#[allow(dead_code)]
mod mock;

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_core::Providers;
use kiln_plan::{Action, Mode, Plan};
use kiln_state::{Mutation, State};
use mock::{registry, Fixture, Sink};

/// a, b, c, d exist; the second configuration updates a, drops b, replaces c and adds e.
const BEFORE: &str = r#"
variable "region" {
  default = "eu"
}
provider "mock" {
  region = var.region
}
resource "thing" "a" {
  provider = mock
  name     = "a"
}
resource "thing" "b" {
  provider = mock
  name     = "b"
}
resource "thing" "c" {
  provider = mock
  name     = "c"
}
resource "thing" "d" {
  provider = mock
  name     = "d"
}
"#;

const AFTER: &str = r#"
variable "region" {
  default = "eu"
}
provider "mock" {
  region = var.region
}
resource "thing" "a" {
  provider = mock
  name     = "a"
  size     = 2
}
resource "thing" "c" {
  provider = mock
  name     = "c2"
}
resource "thing" "d" {
  provider = mock
  name     = "d"
}
resource "thing" "e" {
  provider = mock
  name     = "e-${thing.a.id}"
}
"#;

fn actions(p: &Plan) -> Vec<(String, Action)> {
    p.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.to_string(), c.action)).collect()
}

#[tokio::test]
async fn an_apply_with_deletes_creates_and_updates_configures_each_provider_once() {
    let f = Fixture::new(BEFORE);
    let state = f.converge(&State::new()).await;
    f.rewrite(AFTER);
    let p = f.plan(&state).await;
    assert_eq!(
        actions(&p),
        [
            ("thing.a".to_string(), Action::Update),
            ("thing.b".to_string(), Action::Delete),
            ("thing.c".to_string(), Action::Replace),
            ("thing.e".to_string(), Action::Create),
        ]
    );
    f.reset();
    let out = f.apply(&state, &p).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    assert_eq!(f.configures(), 1, "configured once for the deletes and the creates and updates");
    let calls = f.mock.calls();
    assert!(calls.contains(&"delete thing.b".to_string()) && calls.contains(&"create thing.e".to_string()), "{calls:?}");
}

#[tokio::test]
async fn a_plan_and_its_apply_sharing_providers_configure_once_in_total() {
    let f = Fixture::new(BEFORE);
    let state = f.converge(&State::new()).await;
    f.rewrite(AFTER);
    f.reset();
    let providers = Providers::new();
    let p = f.plan_with(&state, Mode::Normal, &providers).await;
    let out = f.apply_with(&state, &p, &providers, Arc::new(Sink::default())).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    assert_eq!(f.configures(), 1);
    assert_eq!(providers.keys(), ["mock"]);
}

#[tokio::test]
async fn a_second_plan_with_the_same_providers_refreshes_again_without_configuring() {
    let f = Fixture::new(BEFORE);
    let state = f.converge(&State::new()).await;
    f.reset();
    let providers = Providers::new();
    f.plan_with(&state, Mode::Normal, &providers).await;
    f.plan_with(&state, Mode::Normal, &providers).await;
    assert_eq!(f.configures(), 1);
    let reads = f.mock.calls().iter().filter(|c| c.starts_with("read")).count();
    assert_eq!(reads, 2, "refresh is a step of each plan: {:?}", f.mock.calls());
}

#[tokio::test]
async fn the_apply_of_a_saved_plan_configures_once() {
    let f = Fixture::new(BEFORE);
    let state = f.converge(&State::new()).await;
    f.rewrite(AFTER);
    let saved = f.plan(&state).await.to_json().unwrap();
    let p = Plan::from_json(&saved).unwrap();
    f.reset();
    let out = f.apply(&state, &p).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    assert_eq!(f.configures(), 1);
}

#[tokio::test]
async fn a_destroy_configures_once() {
    let f = Fixture::new(BEFORE);
    let state = f.converge(&State::new()).await;
    let p = f.plan_with(&state, Mode::Destroy, &Providers::new()).await;
    f.reset();
    let out = f.apply(&state, &p).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    assert!(out.state.resources.is_empty());
    assert_eq!(f.configures(), 1);
}

#[tokio::test]
async fn configuring_for_logs_and_jobs_reuses_the_commands_providers() {
    let f = Fixture::new(BEFORE);
    let state = f.converge(&State::new()).await;
    f.reset();
    let config = f.config();
    let reg = registry(&f.mock);
    let providers = Providers::new();
    let req = || kiln_core::ProvidersRequest {
        config: &config,
        state: &state,
        registry: &reg,
        providers: &providers,
        variables: BTreeMap::new(),
        workspace: "default".into(),
        cwd: f.dir.path().to_path_buf(),
    };
    let d = kiln_core::configure_providers(req()).await;
    assert!(!d.has_errors(), "{d:?}");
    assert!(providers.get("mock").is_some());
    let d = kiln_core::configure_providers(req()).await;
    assert!(!d.has_errors(), "{d:?}");
    assert!(kiln_core::configure_provider(req(), "mock").await.is_ok());
    assert_eq!(f.configures(), 1);
    assert!(f.mock.calls().is_empty(), "no refresh, no planning: {:?}", f.mock.calls());
}

#[tokio::test]
async fn configure_provider_evaluates_the_provider_block_with_root_variables() {
    let f = Fixture::new(
        "variable \"region\" {}\nprovider \"mock\" {\n  region = var.region\n}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n}\n",
    );
    let config = f.config();
    let reg = registry(&f.mock);
    let state = State::new();
    let providers = Providers::new();
    let req = |variables: BTreeMap<String, kiln_value::Value>| kiln_core::ProvidersRequest {
        config: &config,
        state: &state,
        registry: &reg,
        providers: &providers,
        variables,
        workspace: "default".into(),
        cwd: f.dir.path().to_path_buf(),
    };
    // Without the variable the block cannot be evaluated: an error naming the variable.
    let d = kiln_core::configure_provider(req(BTreeMap::new()), "mock").await.err().expect("a required variable is missing");
    assert!(d.iter().any(|d| d.code == "E-VAR-MISSING"), "{d:?}");
    assert_eq!(f.configures(), 0);
    let vars = BTreeMap::from([("region".to_string(), kiln_value::Value::from("us"))]);
    assert!(kiln_core::configure_provider(req(vars), "mock").await.is_ok());
    assert_eq!(f.configures(), 1);
}

#[tokio::test]
async fn a_pending_entry_is_durable_before_each_create() {
    let f = Fixture::new(BEFORE);
    let p = f.plan(&State::new()).await;
    let sink = Arc::new(Sink::default());
    let out = f.apply_with(&State::new(), &p, &Providers::new(), sink.clone()).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    // Every create's pending entry is persisted alone, before the object it names is recorded.
    let batches = sink.batches();
    for (i, b) in batches.iter().enumerate() {
        for m in b {
            if let Mutation::Put { address, .. } = m {
                let pending =
                    batches[..i].iter().position(|b| matches!(b.as_slice(), [Mutation::PutPending(pc)] if &pc.address == address));
                assert!(pending.is_some(), "no durable pending entry before {address}: {batches:?}");
            }
        }
    }
}

/// Issue 13: `secret_env` is never in state in clear, not even in the pending entry written
/// before the create runs (which stays there if kiln dies mid-create, and in the backup).
#[tokio::test]
async fn a_pending_entry_holds_no_secret_env_value_in_clear() {
    let f = Fixture::new(
        r#"
provider "mock" {}
resource "thing" "job" {
  provider   = mock
  name       = "job"
  secret_env = { HF_TOKEN = "hf_pending_secret" }
}
"#,
    );
    let p = f.plan(&State::new()).await;
    let sink = Arc::new(Sink::default());
    let out = f.apply_with(&State::new(), &p, &Providers::new(), sink.clone()).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    let pending: Vec<_> = sink
        .mutations()
        .into_iter()
        .filter_map(|m| match m {
            Mutation::PutPending(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(pending.len(), 1, "{pending:?}");
    let mut state = State::new();
    state.pending.insert(pending[0].token.clone(), pending[0].clone());
    // Neither the journal's record nor the state document quotes it.
    let text = String::from_utf8(kiln_state::format::encode_mutations(&[Mutation::PutPending(pending[0].clone())])).unwrap()
        + &String::from_utf8(kiln_state::encode(&state)).unwrap();
    assert!(!text.contains("hf_pending_secret"), "{text}");
    let digest = pending[0].planned.get("secret_env").and_then(|e| e.get("HF_TOKEN")).and_then(|v| v.as_str()).unwrap_or_default();
    assert!(kiln_provider::portable::secret_env::is_sealed(digest), "{text}");
    // The create itself got the value.
    let created = f.mock.created.lock().unwrap().clone();
    assert_eq!(created[0].1.get("secret_env").and_then(|e| e.get("HF_TOKEN")).and_then(|v| v.as_str()), Some("hf_pending_secret"));
}

/// b depends on a; c is replaced (delete first), d is replaced create_before_destroy.
const ORDER_BEFORE: &str = r#"
provider "mock" {}
resource "thing" "a" {
  provider = mock
  name     = "a"
}
resource "thing" "b" {
  provider = mock
  name     = "b-${thing.a.id}"
}
resource "thing" "c" {
  provider = mock
  name     = "c"
}
resource "thing" "d" {
  provider = mock
  name     = "d"
  lifecycle {
    create_before_destroy = true
  }
}
"#;

const ORDER_AFTER: &str = r#"
provider "mock" {}
resource "thing" "c" {
  provider = mock
  name     = "c2"
}
resource "thing" "d" {
  provider = mock
  name     = "d2"
  lifecycle {
    create_before_destroy = true
  }
}
resource "thing" "e" {
  provider = mock
  name     = "e-${thing.c.id}"
}
"#;

#[tokio::test]
async fn deletes_go_dependents_first_then_creates_and_cbd_replacements_delete_the_old_last() {
    let f = Fixture::new(ORDER_BEFORE);
    let state = f.converge(&State::new()).await;
    f.rewrite(ORDER_AFTER);
    let p = f.plan(&state).await;
    assert_eq!(
        actions(&p),
        [
            ("thing.a".to_string(), Action::Delete),
            ("thing.b".to_string(), Action::Delete),
            ("thing.c".to_string(), Action::Replace),
            ("thing.d".to_string(), Action::Replace),
            ("thing.e".to_string(), Action::Create),
        ]
    );
    f.reset();
    let out = f.apply(&state, &p).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    let calls = f.mock.calls();
    let at = |c: &str| calls.iter().position(|x| x == c).unwrap_or_else(|| panic!("no `{c}` in {calls:?}"));
    assert!(at("delete thing.b") < at("delete thing.a"), "dependents first: {calls:?}");
    assert!(at("delete thing.c") < at("create thing.c"), "a replacement deletes before it creates: {calls:?}");
    assert!(at("create thing.c") < at("create thing.e"), "dependency order: {calls:?}");
    let first_create = calls.iter().position(|c| c.starts_with("create")).unwrap();
    assert!(at("delete thing.a") < first_create, "the deletes go first: {calls:?}");
    let last_delete = calls.iter().rposition(|c| c == "delete thing.d").unwrap();
    assert!(at("create thing.d") < last_delete, "create_before_destroy: the old object goes after the new one exists: {calls:?}");
    assert_eq!(*f.mock.deleted.lock().unwrap().last().unwrap(), "d", "the deposed object is deleted last");
    assert!(out.state.deposed.is_empty(), "{:?}", out.state.deposed);
    let names: Vec<String> = out.state.resources.keys().map(ToString::to_string).collect();
    assert_eq!(names, ["thing.c", "thing.d", "thing.e"]);
}

#[tokio::test]
async fn an_instance_the_plan_does_not_list_is_refused_and_nothing_of_it_starts() {
    let src = |n: usize| {
        format!(
            "provider \"mock\" {{}}\nresource \"thing\" \"n\" {{\n  provider = mock\n  count = {n}\n  name = \"n${{count.index}}\"\n}}\n"
        )
    };
    let f = Fixture::new(&src(1));
    let p = f.plan(&State::new()).await;
    f.rewrite(&src(2));
    let out = f.apply(&State::new(), &p).await;
    let d = out.diagnostics.iter().find(|d| d.code == "E-APPLY-NOT-PLANNED").unwrap_or_else(|| panic!("{:?}", out.diagnostics));
    assert_eq!(d.address.as_deref(), Some("thing.n[1]"));
    assert!(f.mock.calls().iter().all(|c| !c.starts_with("create")), "{:?}", f.mock.calls());
    assert!(out.state.resources.is_empty());
}

#[tokio::test]
async fn a_planned_instance_the_configuration_no_longer_has_is_refused() {
    let src = |n: usize| {
        format!(
            "provider \"mock\" {{}}\nresource \"thing\" \"n\" {{\n  provider = mock\n  count = {n}\n  name = \"n${{count.index}}\"\n}}\n"
        )
    };
    let f = Fixture::new(&src(2));
    let p = f.plan(&State::new()).await;
    f.rewrite(&src(1));
    let out = f.apply(&State::new(), &p).await;
    let d = out.diagnostics.iter().find(|d| d.code == "E-APPLY-NOT-CONFIGURED").unwrap_or_else(|| panic!("{:?}", out.diagnostics));
    assert_eq!(d.address.as_deref(), Some("thing.n[1]"));
    assert!(f.mock.calls().iter().all(|c| !c.starts_with("create")), "{:?}", f.mock.calls());
    // A resource dropped from the configuration altogether is refused too.
    f.rewrite("provider \"mock\" {}\n");
    let out = f.apply(&State::new(), &p).await;
    let refused: Vec<_> = out.diagnostics.iter().filter(|d| d.code == "E-APPLY-NOT-CONFIGURED").filter_map(|d| d.address.clone()).collect();
    assert_eq!(refused, ["thing.n[0]", "thing.n[1]"]);
}

#[tokio::test]
async fn a_final_value_contradicting_the_plan_is_an_error() {
    let f = Fixture::new("provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n}\n");
    let p = f.plan(&State::new()).await;
    f.rewrite("provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"z\"\n}\n");
    let out = f.apply(&State::new(), &p).await;
    let d = out.diagnostics.iter().find(|d| d.code == "E-APPLY-INCONSISTENT").unwrap_or_else(|| panic!("{:?}", out.diagnostics));
    assert!(d.summary.contains("`name`"), "{}", d.summary);
    assert_eq!(d.address.as_deref(), Some("thing.a"));
    assert!(f.mock.calls().iter().all(|c| !c.starts_with("create")), "{:?}", f.mock.calls());
}

#[tokio::test]
async fn a_plan_touching_one_resource_does_not_ask_the_provider_about_unrelated_ones() {
    let src = |size: u32| {
        format!(
            "provider \"mock\" {{}}\nresource \"thing\" \"a\" {{\n  provider = mock\n  name = \"a\"\n  size = {size}\n}}\nresource \"thing\" \"b\" {{\n  provider = mock\n  name = \"b\"\n}}\nresource \"thing\" \"c\" {{\n  provider = mock\n  name = \"c-${{thing.b.id}}\"\n}}\n"
        )
    };
    let f = Fixture::new(&src(1));
    let state = f.converge(&State::new()).await;
    f.rewrite(&src(2));
    let p = f.plan(&state).await;
    assert_eq!(actions(&p), [("thing.a".to_string(), Action::Update)]);
    f.reset();
    let out = f.apply(&state, &p).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    assert_eq!(*f.mock.planned.lock().unwrap(), ["thing.a"]);
    assert_eq!(f.mock.calls(), ["update thing.a"]);
    assert_eq!(out.state.resources.len(), 3);
}

#[tokio::test]
async fn outputs_see_final_values_of_changed_resources_and_state_values_of_the_others() {
    let f = Fixture::new(
        "provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n}\nresource \"thing\" \"b\" {\n  provider = mock\n  name = \"b\"\n}\noutput \"ids\" {\n  value = [thing.a.id, thing.b.id]\n}\n",
    );
    let state = f.converge(&State::new()).await;
    f.rewrite(
        "provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a2\"\n}\nresource \"thing\" \"b\" {\n  provider = mock\n  name = \"b\"\n}\noutput \"ids\" {\n  value = [thing.a.name, thing.b.id]\n}\n",
    );
    let p = f.plan(&state).await;
    let out = f.apply(&state, &p).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    let ids = &out.state.outputs["ids"].value;
    assert_eq!(ids, &kiln_value::Value::List(vec!["a2".into(), "id-thing.b".into()]));
}

#[tokio::test]
async fn a_failure_skips_dependents_only() {
    let f = Fixture::new(
        "provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n  fail = true\n}\nresource \"thing\" \"b\" {\n  provider = mock\n  name = \"b-${thing.a.id}\"\n}\nresource \"thing\" \"c\" {\n  provider = mock\n  name = \"c\"\n}\n",
    );
    let p = f.plan(&State::new()).await;
    let out = f.apply(&State::new(), &p).await;
    assert!(out.diagnostics.has_errors());
    let names: Vec<String> = out.state.resources.keys().map(ToString::to_string).collect();
    assert_eq!(names, ["thing.c"]);
    assert!(!f.mock.calls().contains(&"create thing.b".to_string()), "{:?}", f.mock.calls());
}

#[tokio::test]
async fn an_apply_configures_only_the_providers_of_what_it_changes_or_reads() {
    let src = |size: u32| {
        format!(
            "provider \"mock\" {{}}\nprovider \"mock\" {{\n  alias = \"x\"\n}}\nresource \"thing\" \"a\" {{\n  provider = mock\n  name = \"a\"\n  size = {size}\n}}\nresource \"thing\" \"b\" {{\n  provider = mock.x\n  name = \"b\"\n}}\noutput \"both\" {{\n  value = [thing.a.size, thing.b.id]\n}}\n"
        )
    };
    let f = Fixture::new(&src(1));
    let state = f.converge(&State::new()).await;
    f.rewrite(&src(2));
    let p = f.plan(&state).await;
    f.reset();
    let out = f.apply(&state, &p).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    assert_eq!(f.configures(), 1, "`mock.x` serves only an unchanged resource, whose value comes from state");
    assert_eq!(out.state.outputs["both"].value, kiln_value::Value::List(vec![2i64.into(), "id-thing.b".into()]));
}
