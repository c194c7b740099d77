//! The conformance suite every [`StateBackend`] must pass: [`run`] drives two clients of the
//! same storage through reads, writes, conflicts, journal appends, locking with leases, codecs,
//! workspaces and versions, and panics with a message naming the broken rule. Backend crates
//! (local, S3, Postgres) call it from a test:
//!
//! ```no_run
//! # async fn conformance_test() {
//! use kiln_state::{conformance, LocalBackend, StateBackend};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("state.json");
//! conformance::run(&|workspace, codec| {
//!     Box::new(LocalBackend::new(&path).with_workspace(workspace).with_codec(codec)) as Box<dyn StateBackend>
//! })
//! .await;
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_addrs::InstanceAddr;
use kiln_value::{Map, Value};

use crate::{
    Codec, DeposedObject, JobEvent, LockError, LockInfo, Mutation, OutputState, PendingCreate, Plain, ResourceState, State, StateBackend,
    StateError, DEFAULT_WORKSPACE, MAX_EVENTS_PER_JOB,
};

/// A reversible codec for tests: hex of the bytes XOR a one-byte key, behind a prefix naming the
/// key. Opening bytes sealed with another key, or not sealed at all, is [`StateError::Crypto`],
/// so a backend that skips the codec anywhere fails the suite.
#[derive(Debug, Clone, Copy)]
pub struct TestCodec(pub u8);

impl Codec for TestCodec {
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, StateError> {
        let mut out = format!("kiln-test-codec:{:02x}:", self.0).into_bytes();
        for b in plain {
            out.extend_from_slice(format!("{:02x}", b ^ self.0).as_bytes());
        }
        Ok(out)
    }

    fn open(&self, stored: &[u8], what: &str) -> Result<Vec<u8>, StateError> {
        let fail = |message: &str| StateError::Crypto { path: what.to_string(), message: message.to_string() };
        let prefix = format!("kiln-test-codec:{:02x}:", self.0);
        let body = stored.strip_prefix(prefix.as_bytes()).ok_or_else(|| fail("not sealed with this test key"))?;
        if body.len() % 2 != 0 {
            return Err(fail("odd length"));
        }
        body.chunks(2)
            .map(|c| {
                std::str::from_utf8(c).ok().and_then(|h| u8::from_str_radix(h, 16).ok()).map(|b| b ^ self.0).ok_or_else(|| fail("not hex"))
            })
            .collect()
    }

    fn name(&self) -> &str {
        "test"
    }
}

/// Builds a client of the storage under test for a workspace and a codec.
pub type Make<'a> = &'a dyn Fn(&str, Arc<dyn Codec>) -> Box<dyn StateBackend>;

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
/// a pending create, a deposed object, outputs (one sensitive) and the events of a job no longer
/// in state. Values hold no unknowns and
/// no marks, as state never does. Lists are sorted, as they are after a round trip.
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
            billing: None,
            released: None,
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
            billing: None,
            released: None,
        },
    );
    s.resources.insert(
        addr(r#"module.net.bucket.b["eu.west \"1\""]"#),
        ResourceState {
            provider: "aws.west".into(),
            kind: "bucket".into(),
            attributes: map(vec![("name", Value::from("données ✓")), ("empty", map(vec![])), ("line", Value::from("a\nb\t\"c\""))]),
            sensitive: vec!["line".into(), "name".into()],
            dependencies: vec![addr("record.a[0]"), addr("record.a[1]")],
            tainted: true,
            create_before_destroy: true,
            billing: None,
            released: None,
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
            billing: None,
            released: None,
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
    let old = ResourceState {
        attributes: map(vec![("id", Value::from("a1-old"))]),
        create_before_destroy: true,
        ..s.resources[&addr("record.a[1]")].clone()
    };
    s.deposed.insert("5e6f7a8b".into(), DeposedObject { key: "5e6f7a8b".into(), address: addr("record.a[1]"), resource: old });
    s.outputs = outputs(vec![
        ("endpoint", Value::from("https://example.test"), false),
        ("token", Value::from("s3cr3t"), true),
        ("ids", Value::List(vec![Value::from("a0"), Value::from("a1")]), false),
    ]);
    s.events.insert(addr(r#"job.old["x"]"#), vec![job_event("detected", 0), job_event("gave_up", 1)]);
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

/// Runs the suite. Each call of `make(workspace, codec)` must return a new client of the SAME,
/// initially empty, storage, addressing `workspace` and protecting documents with `codec`; the
/// suite uses several at once.
pub async fn run(make: Make<'_>) {
    let sealed: Arc<dyn Codec> = Arc::new(TestCodec(0x5a));
    let a = make(DEFAULT_WORKSPACE, sealed.clone());
    let b = make(DEFAULT_WORKSPACE, sealed.clone());
    core(&*a, &*b).await;
    codec(make, &*a).await;
    events(&*a, &*b).await;
    leases(&*a, &*b).await;
    versions(&*a).await;
    workspaces(make).await;
}

/// Reads, writes, conflicts, appends and plain locking between two clients `a` and `b`.
async fn core(a: &dyn StateBackend, b: &dyn StateBackend) {
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
        billing: None,
        released: None,
    };
    let new_pending = PendingCreate {
        address: addr("record.d"),
        provider: "kiln".into(),
        kind: "record".into(),
        token: "kiln-d".into(),
        planned: map(vec![("id", Value::Null)]),
        started_at: "2025-03-01T12:05:00Z".into(),
    };
    let deposed = DeposedObject { key: "0d1e2f3a".into(), address: addr("record.n"), resource: new_resource.clone() };
    let batch1 = vec![
        Mutation::Put { address: addr("record.n"), resource: new_resource },
        Mutation::PutPending(new_pending),
        Mutation::PutDeposed(deposed),
    ];
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
    assert_eq!(b.read().await.expect("read after appends").as_ref(), Some(&s3), "appends must replay on read, serial +1 per call");

    // Writes must be past the journaled serial too.
    expect_conflict("write at the snapshot's serial + 1, below the journaled serial", b.write(&with_serial(&s3, 2)).await);
    expect_conflict("write at the journaled serial", b.write(&with_serial(&s3, 3)).await);

    // A write replaces snapshot and journal.
    let mut s4 = with_serial(&s3, 4);
    s4.outputs.insert("extra".into(), OutputState { value: Value::from(4i64), sensitive: false });
    b.write(&s4).await.expect("write after appends");
    assert_eq!(a.read().await.expect("read").as_ref(), Some(&s4), "a write after appends must read back identically");
    let batch3 = vec![Mutation::Remove { address: addr("record.n") }, Mutation::RemoveDeposed { key: "0d1e2f3a".into() }];
    b.append(&batch3).await.expect("append after write");
    let mut s5 = s4.clone();
    for m in &batch3 {
        s5.apply_mutation(m);
    }
    assert!(!s5.deposed.contains_key("0d1e2f3a"));
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
    assert!(matches!(a.force_unlock("not-the-id").await, Err(LockError::Mismatch { .. })), "force_unlock checks the ID");
    a.force_unlock(&lb.id).await.expect("force_unlock from another client");
    assert_eq!(b.lock_info().await.expect("lock_info"), None, "force_unlock must release the lock");
    assert!(matches!(a.force_unlock(&lb.id).await, Err(LockError::NotHeld)), "force_unlock of no lock must fail with NotHeld");
    a.lock(&la).await.expect("lock after force_unlock");
    a.unlock(&la.id).await.expect("unlock");

    // State is untouched by locking.
    assert_eq!(a.read().await.expect("read").as_ref(), Some(&s6));
}

/// `a` holds a state sealed with `TestCodec(0x5a)`, with a journal: clients with no codec or
/// another key must fail to read it (never return garbage), and must not overwrite it.
async fn codec(make: Make<'_>, a: &dyn StateBackend) {
    let before = a.read().await.expect("read").expect("a state");
    a.append(&[Mutation::SetOutputs(outputs(vec![("sealed", Value::from("yes"), false)]))]).await.expect("append");
    let mut expected = before.clone();
    expected.outputs = outputs(vec![("sealed", Value::from("yes"), false)]);
    expected.serial += 1;
    for (what, codec) in [("no codec", Arc::new(Plain) as Arc<dyn Codec>), ("another key", Arc::new(TestCodec(0x33)))] {
        let other = make(DEFAULT_WORKSPACE, codec);
        match other.read().await {
            Err(StateError::Crypto { .. } | StateError::Corrupt { .. }) => {}
            other => panic!("reading a sealed state with {what} must fail with Crypto or Corrupt, got {other:?}"),
        }
        assert!(
            other.write(&with_serial(&expected, expected.serial + 10)).await.is_err(),
            "writing over a state that cannot be opened ({what}) must fail"
        );
    }
    assert_eq!(a.read().await.expect("read").as_ref(), Some(&expected), "failed reads and writes with the wrong codec must change nothing");
    let next = with_serial(&expected, expected.serial + 1);
    a.write(&next).await.expect("write after codec checks");
}

fn job_event(kind: &str, attempt: u64) -> JobEvent {
    JobEvent {
        at: format!("2025-03-01T12:{:02}:{:02}.{:03}Z", attempt / 60 % 60, attempt % 60, attempt % 1000),
        kind: kind.into(),
        category: Some("preemption".into()),
        detail: format!("attempt {attempt}: \"spot\" notice ✓"),
        attempt,
        latency_ms: Some(attempt * 7),
    }
}

/// Jobs' events: added through journal batches, replayed on read and kept by a snapshot write,
/// bounded to [`MAX_EVENTS_PER_JOB`] per job (the oldest dropped), and kept after the job's
/// resource is removed; `ClearEvents` forgets them.
async fn events(a: &dyn StateBackend, b: &dyn StateBackend) {
    let (train, other) = (addr("job.train"), addr(r#"module.m.job.eval["nightly"]"#));
    let job = ResourceState {
        provider: "local".into(),
        kind: "job".into(),
        attributes: map(vec![("id", Value::from("j-1"))]),
        sensitive: vec![],
        dependencies: vec![],
        tainted: false,
        create_before_destroy: false,
        billing: None,
        released: None,
    };
    let mut expected = a.read().await.expect("read").expect("a state");
    let bare = JobEvent { category: None, detail: String::new(), latency_ms: None, ..job_event("succeeded", 0) };
    let first = vec![
        Mutation::Put { address: train.clone(), resource: job },
        Mutation::AddEvent { address: train.clone(), event: job_event("detected", 0) },
        Mutation::AddEvent { address: other.clone(), event: bare.clone() },
        Mutation::AddEvent { address: train.clone(), event: job_event("relaunched", 1) },
    ];
    a.append(&first).await.expect("append of events");
    for m in &first {
        expected.apply_mutation(m);
    }
    expected.serial += 1;
    let read = b.read().await.expect("read after appending events").expect("a state");
    assert_eq!(read.events.get(&train), Some(&vec![job_event("detected", 0), job_event("relaunched", 1)]), "events replay in order");
    assert_eq!(read.events.get(&other), Some(&vec![bare.clone()]), "an event with only its required fields replays as it was");
    assert_eq!(read, expected, "a batch with events must replay like any other");

    // Bounded: the oldest go first.
    let many: Vec<Mutation> = (2..MAX_EVENTS_PER_JOB as u64 + 7)
        .map(|i| Mutation::AddEvent { address: train.clone(), event: job_event("relaunched", i) })
        .collect();
    a.append(&many).await.expect("append of many events");
    let read = b.read().await.expect("read").expect("a state");
    let kept = &read.events[&train];
    assert_eq!(kept.len(), MAX_EVENTS_PER_JOB, "at most MAX_EVENTS_PER_JOB events are kept per job");
    assert_eq!(kept.first(), Some(&job_event("relaunched", 7)), "the oldest events are dropped first");
    assert_eq!(kept.last(), Some(&job_event("relaunched", MAX_EVENTS_PER_JOB as u64 + 6)));
    assert_eq!(read.events[&other], vec![bare.clone()], "one job's bound does not touch another's events");

    // Removing the job's resource keeps its history; a snapshot write keeps it too.
    a.append(&[Mutation::Remove { address: train.clone() }]).await.expect("append of a remove");
    let read = b.read().await.expect("read").expect("a state");
    assert!(!read.resources.contains_key(&train), "the resource is removed");
    assert_eq!(read.events[&train].len(), MAX_EVENTS_PER_JOB, "a removed job's events stay in state");
    let written = with_serial(&read, read.serial + 1);
    b.write(&written).await.expect("write of a state with events");
    assert_eq!(a.read().await.expect("read").as_ref(), Some(&written), "a snapshot with events must read back identically");

    // And events appended after that snapshot replay onto it, still bounded.
    a.append(&[
        Mutation::AddEvent { address: train.clone(), event: job_event("gave_up", 999) },
        Mutation::ClearEvents { address: other.clone() },
    ])
    .await
    .expect("append after the snapshot");
    let read = b.read().await.expect("read").expect("a state");
    assert_eq!(read.events[&train].len(), MAX_EVENTS_PER_JOB);
    assert_eq!(read.events[&train].last(), Some(&job_event("gave_up", 999)));
    assert_eq!(read.events[&train].first(), Some(&job_event("relaunched", 8)));
    assert!(!read.events.contains_key(&other), "ClearEvents forgets a job's events");
    assert_eq!(read.serial, written.serial + 1);
}

/// Leases: an expired lease is stale, a renewed one is not, renew checks the ID.
async fn leases(a: &dyn StateBackend, b: &dyn StateBackend) {
    // A holder on another machine whose lease ended a minute ago.
    let mut gone = LockInfo::new("apply");
    gone.host = format!("elsewhere-{}", gone.host);
    gone.expires = Some((chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    a.lock(&gone).await.expect("lock with a lease");
    assert_eq!(b.lock_info().await.expect("lock_info").as_ref(), Some(&gone), "the lease must be stored with the lock");
    match b.lock(&LockInfo::new("plan")).await {
        Err(e @ LockError::Held { stale: true, .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("lease") && msg.contains(&format!("kiln force-unlock {}", gone.id)), "{msg}");
        }
        other => panic!("a lock whose lease ended must be Held {{ stale: true }}, got {other:?}"),
    }
    // The holder renews: no longer stale.
    let mut renewed = gone.clone();
    renewed.renew(std::time::Duration::from_secs(3600));
    a.renew_lock(&renewed).await.expect("renew by the holder");
    assert_eq!(b.lock_info().await.expect("lock_info").as_ref(), Some(&renewed), "renew must store the new lease");
    assert!(matches!(b.lock(&LockInfo::new("plan")).await, Err(LockError::Held { stale: false, .. })), "a renewed lease is live");
    let mut impostor = LockInfo::new("apply").with_lease(std::time::Duration::from_secs(60));
    assert!(matches!(b.renew_lock(&impostor).await, Err(LockError::Mismatch { .. })), "renew checks the lock ID");
    assert_eq!(a.lock_info().await.expect("lock_info").as_ref(), Some(&renewed), "a refused renew changes nothing");
    b.force_unlock(&gone.id).await.expect("force_unlock of a stale lock");
    assert!(matches!(a.renew_lock(&renewed).await, Err(LockError::NotHeld)), "renewing a broken lock fails with NotHeld");
    impostor.renew(std::time::Duration::from_secs(60));
    b.lock(&impostor).await.expect("lock after breaking a stale one");
    b.unlock(&impostor.id).await.expect("unlock");
}

/// Versions: newest first, exactly one current, carrying the serial read.
async fn versions(a: &dyn StateBackend) {
    let current = a.read().await.expect("read").expect("a state");
    let vs = a.versions().await.expect("versions");
    assert!(vs.len() >= 2, "after several writes, the current and at least one previous version are listed: {vs:?}");
    assert!(vs[0].current, "the current version comes first: {vs:?}");
    assert_eq!(vs.iter().filter(|v| v.current).count(), 1, "exactly one version is current: {vs:?}");
    if let Some(serial) = vs[0].serial {
        assert!(serial <= current.serial, "the current version's serial cannot be ahead of what read returns: {vs:?}");
    }
}

/// Workspaces are independent states of one storage, listed by every client.
async fn workspaces(make: Make<'_>) {
    let plain = || Arc::new(Plain) as Arc<dyn Codec>;
    let (x, y, d) = (make("ws-x", plain()), make("ws-y", plain()), make(DEFAULT_WORKSPACE, plain()));
    assert_eq!(x.read().await.expect("read of a new workspace"), None, "a new workspace has no state");
    assert_ne!(x.describe(), d.describe(), "describe() must tell workspaces apart");
    let sx = sample_state("lineage-x", 1);
    x.write(&sx).await.expect("write to a workspace");
    assert_eq!(y.read().await.expect("read"), None, "a write to one workspace must not show in another");
    let sy = sample_state("lineage-y", 7);
    y.write(&sy).await.expect("a workspace has its own lineage and serials");
    x.append(&[Mutation::Remove { address: addr("record.a[0]") }]).await.expect("append to a workspace");
    let mut sx2 = sx.clone();
    sx2.resources.remove(&addr("record.a[0]"));
    sx2.serial = 2;
    assert_eq!(make("ws-x", plain()).read().await.expect("read").as_ref(), Some(&sx2));
    assert_eq!(y.read().await.expect("read").as_ref(), Some(&sy), "appends to one workspace must not replay in another");
    let lx = LockInfo::new("apply");
    x.lock(&lx).await.expect("lock a workspace");
    let ly = LockInfo::new("apply");
    y.lock(&ly).await.expect("a lock on one workspace must not block another");
    assert_eq!(d.lock_info().await.expect("lock_info"), None, "workspace locks are separate from the default's");
    y.unlock(&ly.id).await.expect("unlock");
    x.unlock(&lx.id).await.expect("unlock");
    let names = d.workspaces().await.expect("workspaces");
    for n in [DEFAULT_WORKSPACE, "ws-x", "ws-y"] {
        assert!(names.iter().any(|w| w == n), "workspaces() must list `{n}`: {names:?}");
    }
    assert!(names.windows(2).all(|w| w[0] < w[1]), "workspaces() is sorted and without duplicates: {names:?}");
    // Give `y` history (an earlier version, a journal): deleting a workspace is deliberate, so
    // it starts again afresh, whereas a state document lost out of band beside such history is
    // refused (issue 10, defect 4).
    let mut sy2 = sy.clone();
    sy2.serial = 8;
    y.write(&sy2).await.expect("write");
    y.append(&[Mutation::Remove { address: addr("record.a[0]") }]).await.expect("append");
    y.delete_state().await.expect("delete a workspace's state");
    assert_eq!(y.read().await.expect("read after delete"), None, "a deleted workspace reads as empty");
    assert!(!x.workspaces().await.expect("workspaces").iter().any(|w| w == "ws-y"), "a deleted workspace is not listed");
    assert_eq!(x.read().await.expect("read").as_ref(), Some(&sx2), "deleting one workspace leaves the others");
    y.write(&sample_state("lineage-y2", 1)).await.expect("a deleted workspace can start again with a new lineage");
    assert_eq!(
        make("ws-y", plain()).read().await.expect("read").as_ref(),
        Some(&sample_state("lineage-y2", 1)),
        "nothing of the deleted state is replayed"
    );
}
