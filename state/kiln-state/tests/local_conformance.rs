//! Runs the public backend conformance suite against [`LocalBackend`] in a temporary directory,
//! through the crate's public API only.

use kiln_state::{conformance, LocalBackend, StateBackend};

#[tokio::test]
async fn local_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".kiln/state.json");
    conformance::run(&|ws, codec| Box::new(LocalBackend::new(&path).with_workspace(ws).with_codec(codec)) as Box<dyn StateBackend>).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_backend_conforms_on_a_multi_threaded_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    conformance::run(&|ws, codec| Box::new(LocalBackend::new(&path).with_workspace(ws).with_codec(codec)) as Box<dyn StateBackend>).await;
}
