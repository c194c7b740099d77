//! The conformance suite every [`StateBackend`] must pass: [`run`] drives two clients of the
//! same storage through reads, writes, conflicts, journal appends and locking, and panics with
//! a message naming the broken rule. Backend crates (local, S3, Postgres) call it from a test:
//!
//! ```no_run
//! # async fn conformance_test() {
//! use kiln_state::{conformance, LocalBackend, StateBackend};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("state.json");
//! conformance::run(&|| Box::new(LocalBackend::new(&path)) as Box<dyn StateBackend>).await;
//! # }
//! ```

use std::collections::BTreeMap;

use kiln_addrs::InstanceAddr;
use kiln_value::{Map, Value};

use crate::{
    LockError, LockInfo, Mutation, OutputState, PendingCreate, ResourceState, State, StateBackend, StateError,
};

fn addr(s: &str) -> InstanceAddr {
    s.parse().expect("valid address")
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map>())
}

fn num(s: &str) -> Value {
    Value::Number(s.parse().expect("valid decimal"))
}

/// A state exercising every part of the model: module and data addresses, string and integer
/// keys, sensitive attributes, nested and unicode values, exact decimals, dependencies, taint,
/// a pending create and outputs (one sensitive). Values hold no unknowns and no marks, as
/// state never does. Lists are sorted, as they are after a round trip.
pub fn sample_state(lineage: &str, serial: u64) -> State {
    let mut s = State { lineage: lineage.to_string(), serial, ..State::default() };
    s.resources.insert(
        addr("record.a[0]"),
        ResourceState {
            provider: "kiln".into(),
            kind: "record".into(),
            attributes: map(vec![
                ("id", Value::from("a0")),
                ("password", Value::from("hunter2")),
                ("size", Value::from(3i64)),
                ("ratio", num("0.1")),
                ("big", num("18446744073709551615")),
                ("negative", num("-42")),
                ("tags", Value::List(vec![Value::from("x"), Value::from("y")])),
                ("nested", map(vec![("k", Value::Null), ("b", Value::Bool(true)), ("empty", Value::List(vec![]))])),
            ]),
            sensitive: vec!["password".into()],
            dependencies: vec![],
            tainted: false,
            create_before_destroy: false,
        },
    );
    s.resources.insert(
        addr("record.a[1]"),
        ResourceState {
            provider: "kiln".into(),
            kind: "record".into(),
            attributes: map(vec![("id", Value::from("a1"))]),
            sensitive: vec![],
            dependencies: vec![],
            tainted: false,
            create_before_destroy: false,
        },
    );
    s.resources.insert(
        addr(r#"module.net.bucket.b["eu.west \"1\""]"#),
        ResourceState {
            provider: "aws.west".into(),
            kind: "bucket".into(),
            attributes: map(vec![
                ("name", Value::from("données ✓")),
                ("empty", map(vec![])),
                ("line", Value::from("a\nb\t\"c\"")),
            ]),
            sensitive: vec!["line".into(), "name".into()],
            dependencies: vec![addr("record.a[0]"), addr("record.a[1]")],
            tainted: true,
            create_before_destroy: true,
        },
    );
    s.resources.insert(
        addr("data.file.cfg"),
        ResourceState {
            provider: "local".into(),
            kind: "file".into(),
            attributes: map(vec![("content", Value::from("x = 1"))]),
            sensitive: vec![],
            dependencies: vec![],
            tainted: false,
            create_before_destroy: false,
        },
    );
    let pending = PendingCreate {
        address: addr("record.c[\"k\"]"),
        provider: "kiln".into(),
        kind: "record".into(),
        token: "kiln-2f0c8a1e".into(),
        planned: map(vec![("name", Value::from("c")), ("size", Value::from(1i64))]),
        started_at: "2025-03-01T12:00:00Z".into(),
    };
    s.pending.insert(pending.token.clone(), pending);
    s.outputs = outputs(vec![
        ("endpoint", Value::from("https://example.test"), false),
        ("token", Value::from("s3cr3t"), true),
        ("ids", Value::List(vec![Value::from("a0"), Value::from("a1")]), false),
    ]);
    s
}

fn outputs(entries: Vec<(&str, Value, bool)>) -> BTreeMap<String, OutputState> {
    entries.into_iter().map(|(k, value, sensitive)| (k.to_string(), OutputState { value, sensitive })).collect()
}

fn with_serial(s: &State, serial: u64) -> State {
    State { serial, ..s.clone() }
}

fn expect_conflict(what: &str, r: Result<(), StateError>) {
    match r {
        Err(StateError::Conflict { .. }) => {}
        other => panic!("{what}: expected StateError::Conflict, got {other:?}"),
    }
}

/// Runs the suite. Each call of `make` must return a new client of the SAME, initially empty,
/// storage; the suite uses two of them at once.
pub async fn run(make: &dyn Fn() -> Box<dyn StateBackend>) {
    let a = make();
    let b = make();
    assert!(!a.describe().is_empty(), "describe() must name the state for messages");

    // Empty storage.
    assert_eq!(a.read().await.expect("read of empty storage"), None, "empty storage must read as None");
    assert_eq!(a.lock_info().await.expect("lock_info of empty storage"), None, "empty storage has no lock");

    // Write, then read from another client.
    let lineage = uuid::Uuid::new_v4().to_string();
    let s1 = sample_state(&lineage, 1);
    a.write(&s1).await.expect("first write");
    assert_eq!(b.read().await.expect("read after write").as_ref(), Some(&s1), "a write must read back identically");
    assert_eq!(a.read().await.expect("read after write").as_ref(), Some(&s1), "the writer reads its own write");

    // Serial must grow; lineage must match.
    expect_conflict("write with the same serial", b.write(&with_serial(&s1, 1)).await);
    expect_conflict("write with a smaller serial", b.write(&with_serial(&s1, 0)).await);
    expect_conflict("write of another lineage", b.write(&sample_state("another-lineage", 99)).await);
    assert_eq!(a.read().await.expect("read").as_ref(), Some(&s1), "a refused write must change nothing");

    // An empty batch changes nothing.
    a.append(&[]).await.expect("empty append");
    assert_eq!(b.read().await.expect("read").as_ref(), Some(&s1), "an empty append must change nothing");

    // Appends replay on read, one serial per call.
    let new_resource = ResourceState {
        provider: "kiln".into(),
        kind: "record".into(),
        attributes: map(vec![("id", Value::from("n")), ("secret", Value::from("x"))]),
        sensitive: vec!["secret".into()],
        dependencies: vec![addr("record.a[0]")],
        tainted: false,
        create_before_destroy: false,
    };
    let new_pending = PendingCreate {
        address: addr("record.d"),
        provider: "kiln".into(),
        kind: "record".into(),
        token: "kiln-d".into(),
        planned: map(vec![("id", Value::Null)]),
        started_at: "2025-03-01T12:05:00Z".into(),
    };
    let batch1 =
        vec![Mutation::Put { address: addr("record.n"), resource: new_resource }, Mutation::PutPending(new_pending)];
    let batch2 = vec![
        Mutation::Remove { address: addr("record.a[1]") },
        Mutation::ClearPending { token: "kiln-2f0c8a1e".into() },
        Mutation::SetOutputs(outputs(vec![("endpoint", Value::from("https://new.example.test"), false)])),
    ];
    a.append(&batch1).await.expect("first append");
    a.append(&batch2).await.expect("second append");
    let mut s3 = s1.clone();
    for m in batch1.iter().chain(&batch2) {
        s3.apply_mutation(m);
    }
    s3.serial = 3;
    assert_eq!(
        b.read().await.expect("read after appends").as_ref(),
        Some(&s3),
        "appends must replay on read, serial +1 per call"
    );

    // Writes must be past the journaled serial too.
    expect_conflict(
        "write at the snapshot's serial + 1, below the journaled serial",
        b.write(&with_serial(&s3, 2)).await,
    );
    expect_conflict("write at the journaled serial", b.write(&with_serial(&s3, 3)).await);

    // A write replaces snapshot and journal.
    let mut s4 = with_serial(&s3, 4);
    s4.outputs.insert("extra".into(), OutputState { value: Value::from(4i64), sensitive: false });
    b.write(&s4).await.expect("write after appends");
    assert_eq!(a.read().await.expect("read").as_ref(), Some(&s4), "a write after appends must read back identically");
    let batch3 = vec![Mutation::Remove { address: addr("record.n") }];
    b.append(&batch3).await.expect("append after write");
    let mut s5 = s4.clone();
    s5.apply_mutation(&batch3[0]);
    s5.serial = 5;
    assert_eq!(
        a.read().await.expect("read").as_ref(),
        Some(&s5),
        "after a write, only appends made since must replay (the journal must have been cleared)"
    );
    let s6 = with_serial(&s5, 6);
    a.write(&s6).await.expect("second write after appends");
    assert_eq!(b.read().await.expect("read").as_ref(), Some(&s6));

    // Locking.
    let la = LockInfo::new("apply");
    a.lock(&la).await.expect("lock of an unlocked state");
    assert_eq!(b.lock_info().await.expect("lock_info").as_ref(), Some(&la), "lock_info must report the holder");
    match b.lock(&LockInfo::new("plan")).await {
        Err(e @ LockError::Held { .. }) => {
            let msg = e.to_string();
            let LockError::Held { holder, stale, .. } = e else { unreachable!() };
            assert_eq!(holder, la, "Held must name the holder");
            assert!(!stale, "a lock held by a live process is not stale");
            for part in [&la.id, &la.who, &la.operation, &la.created] {
                assert!(msg.contains(part.as_str()), "the Held message must mention `{part}`: {msg}");
            }
        }
        other => panic!("a second lock must fail with Held, got {other:?}"),
    }
    assert!(matches!(a.lock(&LockInfo::new("apply")).await, Err(LockError::Held { .. })), "locks are not reentrant");
    match b.unlock("not-the-id").await {
        Err(LockError::Mismatch { expected, found }) => {
            assert_eq!(expected, "not-the-id");
            assert_eq!(found, la.id);
        }
        other => panic!("unlock with a wrong ID must fail with Mismatch, got {other:?}"),
    }
    assert_eq!(a.lock_info().await.expect("lock_info").as_ref(), Some(&la), "a failed unlock must keep the lock");
    a.unlock(&la.id).await.expect("unlock by the holder");
    assert_eq!(b.lock_info().await.expect("lock_info"), None, "unlock must release the lock");
    assert!(matches!(a.unlock(&la.id).await, Err(LockError::NotHeld)), "unlocking twice must fail with NotHeld");

    let lb = LockInfo::new("destroy");
    b.lock(&lb).await.expect("lock after unlock");
    assert!(
        matches!(a.force_unlock("not-the-id").await, Err(LockError::Mismatch { .. })),
        "force_unlock checks the ID"
    );
    a.force_unlock(&lb.id).await.expect("force_unlock from another client");
    assert_eq!(b.lock_info().await.expect("lock_info"), None, "force_unlock must release the lock");
    assert!(
        matches!(a.force_unlock(&lb.id).await, Err(LockError::NotHeld)),
        "force_unlock of no lock must fail with NotHeld"
    );
    a.lock(&la).await.expect("lock after force_unlock");
    a.unlock(&la.id).await.expect("unlock");

    // State is untouched by locking.
    assert_eq!(a.read().await.expect("read").as_ref(), Some(&s6));
}
