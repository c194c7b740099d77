//! The AWS API server the tests run against: moto, started once per test binary by
//! `kiln_testkit::moto` (venv, launcher and the spot-interruption and fault-injection controls).
//!
//! Tests share the server and wipe it between cases: `exclusive()` serialises them and resets
//! moto (`POST /moto-api/reset`, which also drops injected faults).

pub use kiln_testkit::moto::server;

/// Serialises the tests that use the server; the server is reset when the guard is taken.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = LOCK.lock().await;
    server().reset();
    guard
}
