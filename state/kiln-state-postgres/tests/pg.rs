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

/// Issue 10, defect 4 for PostgreSQL: the workspace's `states` row deleted out of band while its
/// `history` or `journal` rows remain is refused with how to restore it (the history row to copy
/// back, as an SQL statement), never started afresh; run as told, the state reads again.
#[tokio::test]
async fn a_deleted_state_row_with_history_is_refused_with_how_to_restore_it() {
    let s = settings("missing");
    let a = PgBackend::new(s.clone());
    let st = sample_state("l", 1);
    a.write(&st).await.unwrap();
    a.write(&sample_state("l", 2)).await.unwrap();
    let addr = st.resources.keys().next().unwrap().clone();
    a.append(&[kiln_state::Mutation::Remove { address: addr }]).await.unwrap();
    let (sql, conn) = kiln_state_postgres::tokio_postgres::connect(pg::url(), kiln_state_postgres::tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let sc = &s.schema;
    sql.execute(&format!("DELETE FROM \"{sc}\".states WHERE workspace = 'default'"), &[]).await.unwrap();

    let b = PgBackend::new(s.clone());
    let err = b.read().await.unwrap_err();
    assert!(matches!(err, StateError::Missing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("serial 1") && msg.contains("kiln state versions"), "{msg}");
    // A first write of a new state is refused too.
    assert!(matches!(b.write(&sample_state("new", 1)).await, Err(StateError::Missing { .. })));
    // The statement the message gives restores the newest history row.
    let restore = msg.split('`').find(|p| p.starts_with("INSERT INTO")).unwrap_or_else(|| panic!("no INSERT in: {msg}"));
    sql.batch_execute(restore).await.unwrap_or_else(|e| panic!("{restore}: {e}"));
    assert_eq!(b.read().await.unwrap(), Some(sample_state("l", 1)));

    // Journal rows alone show it too (a state written once, appended to, its row deleted).
    let s = settings("missing_journal");
    let a = PgBackend::new(s.clone());
    a.write(&st).await.unwrap();
    a.append(&[kiln_state::Mutation::SetOutputs(Default::default())]).await.unwrap();
    sql.execute(&format!("DELETE FROM \"{}\".states WHERE workspace = 'default'", s.schema), &[]).await.unwrap();
    let err = PgBackend::new(s.clone()).read().await.unwrap_err();
    assert!(matches!(err, StateError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains("journal"), "{err}");

    // A lock alone is normal, and a deliberately deleted workspace starts fresh.
    let s = settings("fresh");
    let a = PgBackend::new(s.clone());
    let lock = LockInfo::new("apply");
    a.lock(&lock).await.unwrap();
    assert_eq!(a.read().await.unwrap(), None);
    a.write(&sample_state("l", 1)).await.unwrap();
    a.write(&sample_state("l", 2)).await.unwrap();
    a.unlock(&lock.id).await.unwrap();
    a.delete_state().await.unwrap();
    assert_eq!(a.read().await.unwrap(), None);
    a.write(&sample_state("again", 1)).await.unwrap();
}
