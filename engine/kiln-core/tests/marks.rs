//! Issue 10 (defects 5 and 10): sensitive marks follow values through whole-resource references
//! into every attribute, output and state record, and what a provider says about a sensitive
//! value is redacted at the engine boundary. The mock provider returns plain values (as real
//! providers do) and quotes what its validation rejects.

#[allow(dead_code)]
mod mock;

use std::collections::BTreeMap;

use kiln_state::State;
use kiln_value::Value;
use mock::Fixture;

const WHOLE: &str = r#"
provider "mock" {}
resource "thing" "pool" {
  provider = mock
  name     = "pool"
}
# A whole-resource reference: `pool.key` is sensitive by the schema.
resource "thing" "job" {
  provider = mock
  name     = "job"
  data     = thing.pool
}
resource "thing" "nested" {
  provider = mock
  name     = "nested"
  data     = { inner = [thing.pool] }
}
output "pool" {
  value     = thing.pool
  sensitive = true
}
"#;

#[tokio::test]
async fn schema_marks_follow_whole_resource_references_into_state() {
    let f = Fixture::new(WHOLE);
    let state = f.converge(&State::new()).await;
    let pool = &state.resources[&"thing.pool".parse().unwrap()];
    assert_eq!(pool.attributes.get("key"), Some(&Value::from("generated-key-of-thing.pool")));
    assert!(pool.sensitive.contains(&"key".to_string()), "{:?}", pool.sensitive);
    for addr in ["thing.job", "thing.nested"] {
        let r = &state.resources[&addr.parse().unwrap()];
        assert!(
            r.sensitive.contains(&"data".to_string()),
            "{addr}: the private key inside `data` is recorded as sensitive: {:?}",
            r.sensitive
        );
    }
    assert!(state.outputs["pool"].sensitive);

    // The next plan changes nothing and keeps the marks in what references see.
    let (p, d) = f.plan_vars(&state, BTreeMap::new()).await;
    assert!(!d.has_errors(), "{d:?}");
    let p = p.unwrap();
    assert!(!p.has_changes(), "{:?}", p.changes.iter().map(|c| (c.address.to_string(), c.action)).collect::<Vec<_>>());
    let job = p.changes.iter().find(|c| c.address.to_string() == "thing.job");
    if let Some(job) = job {
        assert!(job.sensitive.contains(&"data".to_string()));
    }
}

#[tokio::test]
async fn an_unmarked_output_of_a_whole_resource_with_a_secret_is_refused() {
    let f = Fixture::new(&WHOLE.replace("  sensitive = true\n", ""));
    // The pool's private key is sensitive by the schema, known or not: the plan is refused.
    let (p, d) = f.plan_vars(&State::new(), BTreeMap::new()).await;
    assert!(p.is_none());
    assert!(d.iter().any(|d| d.code == "E-OUTPUT-SENSITIVE"), "{d:?}");
}

#[tokio::test]
async fn provider_validation_errors_never_quote_a_sensitive_value() {
    let f = Fixture::new(
        "provider \"mock\" {}\nvariable \"token\" {\n  sensitive = true\n}\nresource \"thing\" \"a\" {\n  provider = mock\n  name     = var.token\n}\n",
    );
    let secret = "invalid-hunter2-s3cr3t";
    let (p, d) = f.plan_vars(&State::new(), [("token".to_string(), Value::from(secret))].into()).await;
    assert!(p.is_none());
    let e = d.iter().find(|x| x.code == "E-MOCK-NAME").unwrap_or_else(|| panic!("{d:?}"));
    assert_eq!(e.summary, "invalid name (sensitive value)");
    assert!(!format!("{d:?}").contains(secret), "{d:?}");
}

#[tokio::test]
async fn provider_delete_errors_never_quote_a_sensitive_value() {
    let f = Fixture::new(
        "provider \"mock\" {}\nresource \"thing\" \"a\" {\n  provider = mock\n  name     = \"a\"\n  secret   = \"hunter2-s3cr3t\"\n}\n",
    );
    let state = f.converge(&State::new()).await;
    f.mock.fail_deletes.store(true, std::sync::atomic::Ordering::SeqCst);
    std::fs::write(f.dir.path().join("main.kiln.hcl"), "provider \"mock\" {}\n").unwrap();
    let (p, d) = f.plan_vars(&state, BTreeMap::new()).await;
    assert!(!d.has_errors(), "{d:?}");
    let out = f.apply(&state, &p.unwrap()).await;
    let e = out.diagnostics.iter().find(|d| d.code == "E-MOCK").unwrap_or_else(|| panic!("{:?}", out.diagnostics));
    assert_eq!(e.summary, "delete failed on purpose (secret (sensitive value))");
}
