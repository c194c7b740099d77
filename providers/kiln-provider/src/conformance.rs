//! The provider conformance suite: every provider runs it against its real test service.
//! For each case it plans a create, creates, reads back, plans and applies an update, checks
//! recovery of an unknown token, imports, deletes and reads the object as gone.

use kiln_value::Value;

use crate::{CreateRequest, DeleteRequest, ImportRequest, PlanRequest, Provider, ReadItem, ReadRequest, RecoverRequest, UpdateRequest};

pub struct Case {
    pub kind: &'static str,
    /// Configuration of a new object (a map).
    pub config: Value,
    /// Configuration after an in-place change, if the kind supports one.
    pub update: Option<Value>,
    /// An ID `import` must accept, if the kind supports import.
    pub import_id: Option<&'static str>,
}

fn assert_known(v: &Value, what: &str) {
    assert!(!v.contains_unknown(), "{what} contains unknown values: {v}");
}

/// Runs every check for every case, panicking with a message naming the kind and step.
pub async fn run(p: &dyn Provider, cases: &[Case]) {
    let schema = p.schema();
    for case in cases {
        let kind = case.kind;
        assert!(schema.kinds.contains_key(kind), "{kind}: not in the provider's schema");
        let addr = format!("{kind}.conformance");
        assert!(!p.validate(crate::ValidateRequest { kind, config: &case.config }).has_errors(), "{kind}: valid config rejected");

        let plan =
            p.plan(PlanRequest { address: &addr, kind, prior: None, replacing: None, config: &case.config, proposed: &case.config }).await;
        assert!(!plan.diagnostics.has_errors(), "{kind}: plan failed: {:?}", plan.diagnostics);

        let token = format!("conformance-{kind}");
        let created = p.create(CreateRequest { address: &addr, kind, planned: &plan.planned, token: &token }).await;
        assert!(!created.diagnostics.has_errors(), "{kind}: create failed: {:?}", created.diagnostics);
        let state = created.state.unwrap_or_else(|| panic!("{kind}: create returned no state"));
        assert_known(&state, &format!("{kind}: created state"));
        for (name, attr) in &schema.kinds[kind].body.attributes {
            if attr.required {
                assert!(state.get(name).is_some(), "{kind}: required attribute `{name}` missing from state");
            }
        }

        let read = p.read(ReadRequest { items: vec![ReadItem { address: &addr, kind, state: &state }] }).await;
        assert_eq!(read.results.len(), 1, "{kind}: read must answer once per item");
        let read_state =
            read.results.into_iter().next().and_then(|r| r.state).unwrap_or_else(|| panic!("{kind}: created object not found by read"));
        assert_known(&read_state, &format!("{kind}: read state"));

        let mut current = read_state;
        if let Some(update) = &case.update {
            let plan = p
                .plan(PlanRequest { address: &addr, kind, prior: Some(&current), replacing: None, config: update, proposed: update })
                .await;
            assert!(!plan.diagnostics.has_errors(), "{kind}: update plan failed: {:?}", plan.diagnostics);
            let updated = p.update(UpdateRequest { address: &addr, kind, prior: &current, planned: &plan.planned }).await;
            assert!(!updated.diagnostics.has_errors(), "{kind}: update failed: {:?}", updated.diagnostics);
            current = updated.state.unwrap_or_else(|| panic!("{kind}: update returned no state"));
            for (k, v) in update.as_map().into_iter().flatten() {
                assert!(current.get(k).is_some_and(|c| c.unmarked_eq(v)), "{kind}: update did not apply `{k}`");
            }
        }

        let never = p.recover(RecoverRequest { address: &addr, kind, token: "token-never-used", planned: &plan.planned }).await;
        assert!(never.state.is_none(), "{kind}: recover found an object for a token never used");

        if let Some(id) = case.import_id {
            let imported = p.import(ImportRequest { address: &addr, kind, id }).await;
            assert!(!imported.diagnostics.has_errors(), "{kind}: import failed: {:?}", imported.diagnostics);
        }

        let deleted = p.delete(DeleteRequest { address: &addr, kind, prior: &current }).await;
        assert!(!deleted.has_errors(), "{kind}: delete failed: {deleted:?}");
        let read = p.read(ReadRequest { items: vec![ReadItem { address: &addr, kind, state: &current }] }).await;
        let gone = read.results.into_iter().next().map(|r| r.state.is_none());
        if !schema.kinds[kind].state_only {
            assert_eq!(gone, Some(true), "{kind}: object still readable after delete");
        }
    }
}
