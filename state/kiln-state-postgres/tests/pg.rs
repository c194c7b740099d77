//! The PostgreSQL backend against a real PostgreSQL (tests/harness/postgres): the backend
//! conformance suite, racing writers and lockers, and schema creation by many clients at once.

#[path = "support/pg.rs"]
mod pg;

use std::sync::Arc;

use kiln_state::conformance::{self, sample_state};
use kiln_state::{Codec, LockError, LockInfo, StateBackend, StateError};
use kiln_state_postgres::{PgBackend, PgSettings};

fn settings(name: &str) -> PgSettings {
    PgSettings { conn_str: pg::url().to_string(), schema: pg::schema(name) }
}

#[tokio::test]
async fn postgres_backend_conforms() {
    let s = settings("conf");
    conformance::run(&|ws, codec: Arc<dyn Codec>| {
        Box::new(PgBackend::new(s.clone()).with_workspace(ws).with_codec(codec)) as Box<dyn StateBackend>
    })
    .await;
}

#[tokio::test]
async fn a_writer_with_a_stale_view_fails_instead_of_overwriting() {
    let s = settings("stale");
    let a = PgBackend::new(s.clone());
    let b = PgBackend::new(s.clone());
    a.write(&sample_state("l", 1)).await.unwrap();
    let s2 = sample_state("l", 2);
    let (ra, rb) = tokio::join!(a.write(&s2), b.write(&s2));
    assert_eq!([&ra, &rb].iter().filter(|r| r.is_ok()).count(), 1, "exactly one of two racing writers wins: {ra:?} {rb:?}");
    let loser = if ra.is_ok() { rb } else { ra };
    assert!(matches!(loser, Err(StateError::Conflict { .. })), "{loser:?}");
    // Racing creators of a new state: one wins.
    let s = settings("create");
    let (a, b) = (PgBackend::new(s.clone()), PgBackend::new(s.clone()));
    let (x, y) = (sample_state("x", 1), sample_state("y", 1));
    let (ra, rb) = tokio::join!(a.write(&x), b.write(&y));
    assert_eq!([&ra, &rb].iter().filter(|r| r.is_ok()).count(), 1, "{ra:?} {rb:?}");
}

#[tokio::test]
async fn twenty_clients_create_the_schema_and_race_for_the_lock() {
    let s = settings("race");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let c = PgBackend::new(s.clone());
        let info = LockInfo::new("apply");
        set.spawn(async move { (c.lock(&info).await, info) });
    }
    let results: Vec<_> = set.join_all().await;
    let winners: Vec<&LockInfo> = results.iter().filter(|(r, _)| r.is_ok()).map(|(_, i)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one of 20 racing lockers wins: {results:?}");
    for (r, _) in results.iter().filter(|(r, _)| r.is_err()) {
        match r {
            Err(LockError::Held { holder, stale: false, .. }) => assert_eq!(holder, winners[0]),
            other => panic!("expected Held naming the winner, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn bad_settings_are_clear_errors() {
    let err = PgBackend::new(PgSettings { conn_str: pg::url().into(), schema: "no; drop".into() }).read().await.unwrap_err().to_string();
    assert!(err.contains("schema `no; drop` is not a valid name"), "{err}");
    let err = PgBackend::new(PgSettings::new("postgres://kiln:kiln@127.0.0.1:9/kiln")).read().await.unwrap_err().to_string();
    assert!(err.contains("cannot connect") && err.contains("conn_str") && err.contains("127.0.0.1:9"), "{err}");
    let err = PgBackend::new(PgSettings::new("postgres://kiln:wrong@127.0.0.1:55433/kiln")).read().await;
    assert!(err.is_err());
}
