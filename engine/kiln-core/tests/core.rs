//! kiln-core against a mock provider: plan decisions and apply ordering, concurrency, failure
//! handling, pending entries and cancellation. Configurations are inline; each test names the
//! behaviour it pins down.

// Not every helper of the mock is used here.
#[allow(dead_code)]
mod mock;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use kiln_core::{apply, ApplyRequest, Cancel, NoopHook};
use kiln_plan::{Action, Mode, Plan, Reason};
use kiln_state::{Mutation, State};
use kiln_value::Value;
use mock::{registry, Fixture, Mock, Sink};

fn actions(p: &Plan) -> Vec<(String, Action)> {
    p.changes.iter().map(|c| (c.address.to_string(), c.action)).collect()
}

const CHAIN: &str = r#"
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
  name     = "c-${thing.b.id}"
}
"#;

#[tokio::test]
async fn creates_in_dependency_order_and_then_plans_no_changes() {
    let f = Fixture::new(CHAIN);
    let p = f.plan(&State::default()).await;
    assert_eq!(
        actions(&p),
        vec![("thing.a".into(), Action::Create), ("thing.b".into(), Action::Create), ("thing.c".into(), Action::Create)]
    );
    assert!(p.changes[1].after.as_ref().unwrap().get("name").unwrap().is_unknown(), "b's name depends on a's id");
    let state = f.converge(&State::new()).await;
    assert_eq!(f.mock.calls(), vec!["create thing.a", "create thing.b", "create thing.c"]);
    assert_eq!(state.resources.len(), 3);
    assert_eq!(state.resources[&"thing.c".parse().unwrap()].attributes.get("name").unwrap(), &Value::from("c-id-thing.b"));
    let again = f.plan(&state).await;
    assert!(!again.has_changes(), "{:?}", actions(&again));
    let deps: Vec<String> = state.resources[&"thing.c".parse().unwrap()].dependencies.iter().map(ToString::to_string).collect();
    assert_eq!(deps, ["thing.b"], "c records what it references directly");
}

#[tokio::test]
async fn update_in_place_and_replace_name_the_forcing_attribute() {
    let f = Fixture::new("provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n  size = 1\n}\n");
    let state = f.converge(&State::new()).await;
    f.rewrite("provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n  size = 2\n}\n");
    let p = f.plan(&state).await;
    assert_eq!(actions(&p), vec![("thing.a".into(), Action::Update)]);
    f.rewrite("provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"z\"\n  size = 1\n}\n");
    let p = f.plan(&state).await;
    assert_eq!(actions(&p), vec![("thing.a".into(), Action::Replace)]);
    assert_eq!(p.changes[0].reason, Some(Reason::AttributesForceNew { attributes: vec!["name".into()] }));
    assert!(p.changes[0].after.as_ref().unwrap().get("id").unwrap().is_unknown(), "a replacement gets a new id");
    let out = f.apply(&state, &p).await;
    assert!(!out.diagnostics.has_errors());
    let calls = f.mock.calls();
    assert_eq!(&calls[calls.len() - 2..], ["delete thing.a", "create thing.a"], "destroy before create by default");
}

#[tokio::test]
async fn create_before_destroy_creates_first() {
    let src = |n: &str| {
        format!("provider \"mock\" {{}}\nresource \"thing\" \"a\" {{\n  provider = mock\n  name = \"{n}\"\n  lifecycle {{\n    create_before_destroy = true\n  }}\n}}\n")
    };
    let f = Fixture::new(&src("a"));
    let state = f.converge(&State::new()).await;
    f.rewrite(&src("b"));
    f.converge(&state).await;
    let calls = f.mock.calls();
    assert_eq!(&calls[calls.len() - 2..], ["create thing.a", "delete thing.a"]);
}

/// A create_before_destroy replacement interrupted after the provider made the new object but
/// before state recorded it: the next plan adopts the new object, and the old one, which the
/// adoption displaces from its address, is destroyed (it was silently dropped from state, left
/// running untracked).
#[tokio::test]
async fn an_adopted_replacement_deposes_and_destroys_the_old_object() {
    let src = |n: &str| {
        format!("provider \"mock\" {{}}\nresource \"thing\" \"a\" {{\n  provider = mock\n  name = \"{n}\"\n  lifecycle {{\n    create_before_destroy = true\n  }}\n}}\n")
    };
    let f = Fixture::new(&src("old"));
    let state = f.converge(&State::new()).await;
    f.rewrite(&src("new"));
    let p = f.plan(&state).await;
    let sink = Arc::new(Sink::default());
    f.apply_into(&state, &p, sink.clone()).await;
    // The crash: of that apply, only the pending entry reached state.
    let mut crashed = state.clone();
    for m in sink.mutations().iter().filter(|m| matches!(m, Mutation::PutPending(_))) {
        crashed.apply_mutation(m);
    }
    f.mock.deleted.lock().unwrap().clear();
    let p = f.plan(&crashed).await;
    assert!(p.pending[0].adopted.is_some());
    let shown: Vec<_> = p.changes.iter().filter(|c| c.action == Action::Delete && c.deposed.is_some()).collect();
    assert_eq!(shown.len(), 1, "the plan shows the old object's destroy: {:?}", actions(&p));
    let out = f.apply(&crashed, &p).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    assert_eq!(*f.mock.deleted.lock().unwrap(), ["old"], "the old object is destroyed");
    let a: kiln_addrs::InstanceAddr = "thing.a".parse().unwrap();
    assert_eq!(out.state.resources[&a].attributes.get("name"), Some(&Value::from("new")));
    assert!(out.state.deposed.is_empty() && out.state.pending.is_empty());
    let again = f.plan(&out.state).await;
    assert!(again.changes.iter().all(|c| c.action == Action::NoOp), "{:?}", actions(&again));
}

#[tokio::test]
async fn a_replaced_object_whose_destroy_fails_stays_deposed_until_destroyed() {
    let src = |n: &str| {
        format!("provider \"mock\" {{}}\nresource \"thing\" \"a\" {{\n  provider = mock\n  name = \"{n}\"\n  lifecycle {{\n    create_before_destroy = true\n  }}\n}}\n")
    };
    let f = Fixture::new(&src("a"));
    let state = f.converge(&State::new()).await;
    f.rewrite(&src("b"));
    f.mock.fail_deletes.store(true, std::sync::atomic::Ordering::SeqCst);
    let p = f.plan(&state).await;
    let sink = Arc::new(Sink::default());
    let out = f.apply_into(&state, &p, sink.clone()).await;
    assert!(out.diagnostics.has_errors());
    let a: kiln_addrs::InstanceAddr = "thing.a".parse().unwrap();
    assert_eq!(out.state.resources[&a].attributes.get("name"), Some(&Value::from("b")));
    let deposed: Vec<_> = out.state.deposed.values().collect();
    assert_eq!(deposed.len(), 1);
    assert_eq!((&deposed[0].address, deposed[0].resource.attributes.get("name")), (&a, Some(&Value::from("a"))));
    // Made durable with the new object, in one batch.
    let batch = sink.batches().into_iter().find(|b| b.iter().any(|m| matches!(m, Mutation::PutDeposed(_)))).expect("a batch deposes");
    assert!(batch.iter().any(|m| matches!(m, Mutation::Put { .. })), "{batch:?}");

    // `kiln destroy` destroys both objects.
    let (all, _) = f.plan_mode(&out.state, Mode::Destroy).await;
    let all = all.unwrap();
    let keys: Vec<Option<&str>> = all.changes.iter().filter(|c| c.action == Action::Delete).map(|c| c.deposed.as_deref()).collect();
    assert_eq!(keys, [None, Some(deposed[0].key.as_str())]);

    // The next plan destroys it (and only it); once deletes work, it is gone.
    let again = f.plan(&out.state).await;
    let changes: Vec<_> = again.changes.iter().filter(|c| c.action != Action::NoOp).collect();
    assert_eq!(changes.len(), 1, "{:?}", actions(&again));
    assert_eq!(
        (changes[0].action, changes[0].reason.clone(), changes[0].deposed.as_deref()),
        (Action::Delete, Some(Reason::Deposed), Some(deposed[0].key.as_str()))
    );
    f.mock.fail_deletes.store(false, std::sync::atomic::Ordering::SeqCst);
    let done = f.apply(&out.state, &again).await;
    assert!(!done.diagnostics.has_errors(), "{:?}", done.diagnostics);
    assert!(done.state.deposed.is_empty());
    assert_eq!(*f.mock.deleted.lock().unwrap(), ["a"], "the old object, not the new one");
    assert_eq!(done.state.resources[&a].attributes.get("name"), Some(&Value::from("b")));
    assert!(!f.plan(&done.state).await.has_changes());
}

#[tokio::test]
async fn a_replacement_whose_create_fails_half_way_keeps_the_old_object() {
    let src = |extra: &str| {
        format!("provider \"mock\" {{}}\nresource \"thing\" \"a\" {{\n  provider = mock\n  {extra}\n  lifecycle {{\n    create_before_destroy = true\n  }}\n}}\n")
    };
    let f = Fixture::new(&src("name = \"a\""));
    let state = f.converge(&State::new()).await;
    f.rewrite(&src("name = \"b\"\n  partial = true"));
    let p = f.plan(&state).await;
    assert_eq!(actions(&p), [("thing.a".into(), Action::Replace)]);
    let out = f.apply(&state, &p).await;
    assert!(out.diagnostics.has_errors());
    let a: kiln_addrs::InstanceAddr = "thing.a".parse().unwrap();
    let kept = &out.state.resources[&a];
    assert!(!kept.tainted && kept.attributes.get("name") == Some(&Value::from("a")), "the old object keeps the address: {kept:?}");
    assert_eq!(*f.mock.deleted.lock().unwrap(), ["b"], "the half-made new object was destroyed");
    assert!(out.state.deposed.is_empty());
}

#[tokio::test]
async fn orphans_are_deleted_dependents_first() {
    let f = Fixture::new(CHAIN);
    let state = f.converge(&State::new()).await;
    f.rewrite("provider \"mock\" {}\n");
    let p = f.plan(&state).await;
    assert!(p.changes.iter().all(|c| c.action == Action::Delete && c.reason == Some(Reason::NotInConfig)));
    let out = f.apply(&state, &p).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    let calls = f.mock.calls();
    let deletes: Vec<&String> = calls.iter().filter(|c| c.starts_with("delete")).collect();
    assert_eq!(deletes, ["delete thing.c", "delete thing.b", "delete thing.a"]);
    assert!(out.state.resources.is_empty());
}

#[tokio::test]
async fn a_failure_skips_dependents_and_independent_resources_go_on() {
    let f = Fixture::new(
        r#"
provider "mock" {}
resource "thing" "bad" {
  provider = mock
  name     = "bad"
  fail     = true
}
resource "thing" "child" {
  provider = mock
  name     = "child-${thing.bad.id}"
}
resource "thing" "other" {
  provider = mock
  name     = "other"
}
"#,
    );
    let p = f.plan(&State::default()).await;
    let out = f.apply(&State::new(), &p).await;
    assert!(out.diagnostics.has_errors());
    let calls = f.mock.calls();
    assert!(calls.contains(&"create thing.other".to_string()));
    assert!(!calls.iter().any(|c| c.contains("child")), "{calls:?}");
    assert_eq!(out.state.resources.keys().map(ToString::to_string).collect::<Vec<_>>(), ["thing.other"]);
    assert!(out.state.pending.is_empty(), "a failed create clears its pending entry");
}

#[tokio::test]
async fn pending_entry_is_persisted_before_create() {
    let f = Fixture::new("provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n}\n");
    let p = f.plan(&State::default()).await;
    let sink = Arc::new(Sink::default());
    f.apply_into(&State::new(), &p, sink.clone()).await;
    let muts = sink.mutations();
    let kinds: Vec<&str> = muts
        .iter()
        .map(|m| match m {
            Mutation::PutPending(_) => "pending",
            Mutation::ClearPending { .. } => "clear",
            Mutation::Put { .. } => "put",
            Mutation::Remove { .. } => "remove",
            Mutation::SetOutputs(_) => "outputs",
            Mutation::PutDeposed(_) => "depose",
            Mutation::RemoveDeposed { .. } => "remove deposed",
            Mutation::AddEvent { .. } | Mutation::ClearEvents { .. } => "event",
        })
        .collect();
    assert_eq!(kinds, ["pending", "clear", "put", "outputs"]);
}

#[tokio::test]
async fn pending_create_is_adopted_by_the_next_plan() {
    let f = Fixture::new("provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n}\n");
    let p = f.plan(&State::default()).await;
    let sink = Arc::new(Sink::default());
    f.apply_into(&State::new(), &p, sink.clone()).await;
    // Simulate a crash after the provider created the object but before its state was saved.
    let mut crashed = State::new();
    for m in sink.mutations().iter().filter(|m| matches!(m, Mutation::PutPending(_))) {
        crashed.apply_mutation(m);
    }
    assert_eq!(crashed.pending.len(), 1);
    let p = f.plan(&crashed).await;
    assert_eq!(p.pending.len(), 1);
    assert!(p.pending[0].adopted.is_some(), "the mock remembers the token, so the object is adopted");
    let out = f.apply(&crashed, &p).await;
    assert!(out.state.pending.is_empty());
    assert_eq!(out.state.resources.len(), 1);
    let creates = f.mock.calls().iter().filter(|c| c.starts_with("create")).count();
    assert_eq!(creates, 1, "adoption must not create a duplicate");
}

#[tokio::test]
async fn independent_creates_run_concurrently_up_to_the_provider_limit() {
    let mut src = String::from("provider \"mock\" {}\n");
    for i in 0..20 {
        src.push_str(&format!("resource \"thing\" \"t{i}\" {{\n  provider = mock\n  name = \"t{i}\"\n  delay_ms = 50\n}}\n"));
    }
    let f = Fixture::with_mock(&src, Mock { limit: Some(4), ..Mock::default() });
    f.converge(&State::new()).await;
    assert_eq!(f.mock.max_in_flight.load(Ordering::SeqCst), 4);
    let g = Fixture::with_mock(&src, Mock { limit: None, ..Mock::default() });
    g.converge(&State::new()).await;
    assert_eq!(g.mock.max_in_flight.load(Ordering::SeqCst), 20, "no limit: every independent create at once");
}

#[tokio::test]
async fn cancel_stops_new_operations() {
    let f = Fixture::new(CHAIN);
    let p = f.plan(&State::default()).await;
    let (config, _) = kiln_config::load(f.dir.path());
    let config = config.unwrap();
    let reg = registry(&f.mock);
    let (tx, rx) = tokio::sync::watch::channel(1u8);
    let out = apply(ApplyRequest {
        config: &config,
        state: State::new(),
        registry: &reg,
        providers: &kiln_core::Providers::new(),
        plan: &p,
        hook: Arc::new(NoopHook),
        sink: Arc::new(Sink::default()),
        cancel: Cancel(rx),
        cwd: f.dir.path().to_path_buf(),
        parallelism: None,
        workspace: "default".into(),
    })
    .await;
    drop(tx);
    assert!(out.interrupted);
    assert!(f.mock.calls().iter().all(|c| !c.starts_with("create")));
}

/// A second interrupt abandons the creates in flight: they are cancelled (not left running to
/// finish behind apply's back), and each keeps its durable pending entry for the next plan.
#[tokio::test]
async fn a_second_cancel_abandons_creates_in_flight_leaving_them_pending() {
    let f =
        Fixture::new("provider \"mock\" {}\nresource \"thing\" \"slow\" {\n  provider = mock\n  name = \"slow\"\n  delay_ms = 300\n}\n");
    let p = f.plan(&State::default()).await;
    let (config, _) = kiln_config::load(f.dir.path());
    let config = config.unwrap();
    let reg = registry(&f.mock);
    let (tx, rx) = tokio::sync::watch::channel(0u8);
    let sink = Arc::new(Sink::default());
    let providers = kiln_core::Providers::new();
    let watcher = {
        let sink = sink.clone();
        async move {
            while !sink.mutations().iter().any(|m| matches!(m, kiln_state::Mutation::PutPending(_))) {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            tx.send(1).unwrap();
            tx.send(2).unwrap();
            tx
        }
    };
    let (out, _tx) = tokio::join!(
        apply(ApplyRequest {
            config: &config,
            state: State::new(),
            registry: &reg,
            providers: &providers,
            plan: &p,
            hook: Arc::new(NoopHook),
            sink: sink.clone(),
            cancel: Cancel(rx),
            cwd: f.dir.path().to_path_buf(),
            parallelism: None,
            workspace: "default".into(),
        }),
        watcher
    );
    assert!(out.interrupted);
    // Longer than the create would take: a create left running would finish meanwhile.
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert!(f.mock.created.lock().unwrap().is_empty(), "the abandoned create was cancelled");
    let muts = sink.mutations();
    assert!(muts.iter().any(|m| matches!(m, kiln_state::Mutation::PutPending(_))), "{muts:?}");
    assert!(!muts.iter().any(|m| matches!(m, kiln_state::Mutation::ClearPending { .. } | kiln_state::Mutation::Put { .. })), "{muts:?}");
}

#[tokio::test]
async fn prevent_destroy_blocks_destroy() {
    let f = Fixture::new("provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n  lifecycle {\n    prevent_destroy = true\n  }\n}\n");
    let state = f.converge(&State::new()).await;
    let (p, d) = f.plan_mode(&state, Mode::Destroy).await;
    assert!(p.is_none());
    assert!(d.iter().any(|d| d.code == "E-PREVENT-DESTROY"), "{d:?}");
}

#[tokio::test]
async fn sensitive_attributes_are_recorded_and_marked() {
    let f = Fixture::new("provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n  secret = \"s3cret\"\n}\n");
    let p = f.plan(&State::default()).await;
    assert!(p.changes[0].after.as_ref().unwrap().get("secret").unwrap().is_sensitive());
    let state = f.converge(&State::new()).await;
    assert_eq!(
        state.resources[&"thing.a".parse().unwrap()].sensitive,
        ["key", "secret", "secret_env"],
        "the generated key is sensitive by the schema (and the unset secret_env)"
    );
}

#[tokio::test]
async fn count_and_for_each_expand_and_shrink() {
    let src = |n: usize| {
        format!("provider \"mock\" {{}}\nresource \"thing\" \"n\" {{\n  provider = mock\n  count = {n}\n  name = \"n${{count.index}}\"\n}}\nresource \"thing\" \"m\" {{\n  provider = mock\n  for_each = {{ x = 1, y = 2 }}\n  name = each.key\n  size = each.value\n}}\n")
    };
    let f = Fixture::new(&src(3));
    let state = f.converge(&State::new()).await;
    let names: Vec<String> = state.resources.keys().map(ToString::to_string).collect();
    assert_eq!(names, ["thing.m[\"x\"]", "thing.m[\"y\"]", "thing.n[0]", "thing.n[1]", "thing.n[2]"]);
    f.rewrite(&src(1));
    let p = f.plan(&state).await;
    let deletes: Vec<(String, Option<Reason>)> =
        p.changes.iter().filter(|c| c.action == Action::Delete).map(|c| (c.address.to_string(), c.reason.clone())).collect();
    assert_eq!(deletes, [("thing.n[1]".to_string(), Some(Reason::KeyGone)), ("thing.n[2]".to_string(), Some(Reason::KeyGone))]);
}

#[tokio::test]
async fn deletes_configure_providers_that_read_variables() {
    let src = |n: usize| {
        format!(
            "variable \"region\" {{\n  default = \"eu\"\n}}\nprovider \"mock\" {{\n  alias = \"x\"\n  region = var.region\n}}\nresource \"thing\" \"a\" {{\n  provider = mock.x\n  count = {n}\n  name = \"${{var.region}}-${{count.index}}\"\n}}\n"
        )
    };
    let f = Fixture::new(&src(2));
    let state = f.converge(&State::new()).await;
    f.rewrite(&src(1));
    let p = f.plan(&state).await;
    let out = f.apply(&state, &p).await;
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    assert_eq!(out.state.resources.len(), 1);
}

/// An attribute whose expression is exactly a reference to a whole object is recorded with the
/// reference's text (the plan view shows it instead of the object inlined); a value read from
/// an object, or computed from one, is not. The saved plan keeps them.
#[tokio::test]
async fn whole_object_references_are_recorded_in_the_plan() {
    let f = Fixture::new(
        r#"
provider "mock" {}
resource "thing" "a" {
  provider = mock
  name     = "a"
}
resource "thing" "n" {
  provider = mock
  count    = 2
  name     = "n${count.index}"
}
resource "thing" "b" {
  provider = mock
  name     = "b"
  data     = thing.a
}
resource "thing" "c" {
  provider = mock
  name     = thing.a.name
  data     = (thing.n[1])
}
resource "thing" "d" {
  provider = mock
  name     = "d"
  data     = { a = thing.a }
}
"#,
    );
    let p = f.plan(&State::default()).await;
    let refs = |addr: &str| -> Vec<(String, String)> {
        let c = p.changes.iter().find(|c| c.address.to_string() == addr).unwrap();
        c.references.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    assert_eq!(refs("thing.b"), [("data".to_string(), "thing.a".to_string())]);
    assert_eq!(refs("thing.c"), [("data".to_string(), "thing.n[1]".to_string())], "a value read from an object is no reference");
    assert!(refs("thing.d").is_empty() && refs("thing.a").is_empty());
    let back = Plan::from_json(&p.to_json().unwrap()).unwrap();
    assert_eq!(back, p, "a saved plan keeps the references");
    let state = f.converge(&State::new()).await;
    assert!(!f.plan(&state).await.has_changes());
}

/// A computed attribute a newer provider reports that an older state has no key for (a
/// cluster's `created_at`) is no drift and plans no change: the plan goes on from state as it
/// is, so what refers to the object sees no change either. A computed attribute whose value
/// changed, or a configurable one that appears, is drift as before.
#[tokio::test]
async fn a_computed_attribute_a_newer_provider_reports_is_not_drift() {
    let f = Fixture::new(
        "provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name = \"a\"\n}\nresource \"thing\" \"b\" {\n  provider = mock\n  name = \"b\"\n  data = thing.a\n}\n",
    );
    let mut state = f.converge(&State::new()).await;
    let a: kiln_addrs::InstanceAddr = "thing.a".parse().unwrap();
    let b: kiln_addrs::InstanceAddr = "thing.b".parse().unwrap();
    // As an older provider wrote them: `id` is not in a's state, nor in b's copy of a.
    let Value::Map(m) = &mut state.resources.get_mut(&a).unwrap().attributes else { panic!("a map") };
    let id = m.remove("id").expect("an id");
    let Value::Map(bm) = &mut state.resources.get_mut(&b).unwrap().attributes else { panic!("a map") };
    let Some(Value::Map(m)) = bm.get_mut("data") else { panic!("b's data is a's value") };
    m.remove("id");
    *f.mock.reports.lock().unwrap() = vec![("thing.a".into(), "id".into(), id.clone())];
    let p = f.plan(&state).await;
    assert!(p.drift.is_empty(), "{:?}", p.drift);
    assert!(!p.has_changes(), "neither a nor what refers to it changes: {:?}", actions(&p));
    assert_eq!(p.changes[0].before.as_ref().and_then(|b| b.get("id")), None, "the plan goes on from state");
    let refresh_only = f.plan_mode(&state, Mode::RefreshOnly).await.0.expect("a plan");
    assert!(refresh_only.drift.is_empty(), "{:?}", refresh_only.drift);

    *f.mock.reports.lock().unwrap() = vec![("thing.a".into(), "id".into(), Value::from("another"))];
    let mut recorded = state.clone();
    let Value::Map(m) = &mut recorded.resources.get_mut(&a).unwrap().attributes else { panic!("a map") };
    m.insert("id".into(), id);
    assert_eq!(f.plan(&recorded).await.drift.len(), 1, "a changed value is drift");
    *f.mock.reports.lock().unwrap() = vec![("thing.a".into(), "size".into(), Value::from(3i64))];
    assert_eq!(f.plan(&recorded).await.drift.len(), 1, "a configurable attribute is drift");
}
