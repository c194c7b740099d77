//! `bucket`: conformance, the default and custom directories, the non-empty delete guard,
//! reads after the directory vanished, recover and import.

use kiln_provider::conformance::{self, Case};
use kiln_provider::{ImportRequest, Provider, RecoverRequest, ValidateRequest};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn conformance_suite() {
    let (_dir, p) = cpu_provider();
    let case = Case {
        kind: "bucket",
        config: json(json!({ "name": "conformance" })),
        update: Some(json(json!({ "name": "conformance", "force_destroy": true }))),
        import_id: None,
    };
    conformance::run(&p, &[case]).await;
}

#[tokio::test]
async fn default_directory_is_named_after_the_address() {
    let (dir, p) = cpu_provider();
    let state = create(&p, "bucket.ckpt", &config(&p, "bucket", json!({}))).await;
    let path = dir.path().join(".kiln/buckets/ckpt");
    assert!(path.is_dir());
    assert_eq!(str_of(&state, "name"), "ckpt");
    assert_eq!(str_of(&state, "path"), path.display().to_string());
    assert_eq!(str_of(&state, "uri"), format!("file://{}", path.display()));
}

#[tokio::test]
async fn relative_path_is_kept_as_written() {
    let (dir, p) = cpu_provider();
    let cfg = config(&p, "bucket", json!({ "path": "data/ckpt" }));
    let state = create(&p, "bucket.data", &cfg).await;
    assert!(dir.path().join("data/ckpt").is_dir());
    assert_eq!(str_of(&state, "path"), "data/ckpt");
    assert!(str_of(&state, "uri").ends_with("/data/ckpt"));
    let again = plan(&p, "bucket.data", &cfg, Some(&state)).await;
    assert!(again.planned.unmarked_eq(&state), "a second plan changes nothing: {}", again.planned);
}

#[tokio::test]
async fn non_empty_bucket_refuses_delete_without_force_destroy() {
    let (_dir, p) = cpu_provider();
    let state = create(&p, "bucket.ckpt", &config(&p, "bucket", json!({}))).await;
    let path = std::path::PathBuf::from(str_of(&state, "path"));
    std::fs::write(path.join("step-10.json"), "{}").unwrap();

    let d = delete(&p, "bucket.ckpt", &state).await;
    let e = d.errors().next().expect("delete refused");
    assert_eq!(e.code, "E-LOCAL-BUCKET-NOT-EMPTY");
    assert!(e.summary.contains("bucket.ckpt") && e.summary.contains("step-10.json"), "{}", e.summary);
    assert!(e.hint.as_deref().unwrap_or_default().contains("force_destroy = true"), "{:?}", e.hint);
    assert!(path.join("step-10.json").is_file(), "nothing was deleted");

    let forced = update(&p, "bucket.ckpt", &state, &config(&p, "bucket", json!({ "force_destroy": true }))).await;
    assert!(!delete(&p, "bucket.ckpt", &forced).await.has_errors());
    assert!(!path.exists());
}

#[tokio::test]
async fn empty_bucket_deletes_without_force_destroy() {
    let (_dir, p) = cpu_provider();
    let state = create(&p, "bucket.ckpt", &config(&p, "bucket", json!({}))).await;
    assert!(!delete(&p, "bucket.ckpt", &state).await.has_errors());
    assert!(!std::path::Path::new(str_of(&state, "path")).exists());
}

#[tokio::test]
async fn read_reports_gone_when_the_directory_vanished() {
    let (_dir, p) = cpu_provider();
    let state = create(&p, "bucket.ckpt", &config(&p, "bucket", json!({}))).await;
    assert!(read(&p, "bucket.ckpt", &state).await.is_some());
    std::fs::remove_dir_all(str_of(&state, "path")).unwrap();
    assert!(read(&p, "bucket.ckpt", &state).await.is_none());
}

#[tokio::test]
async fn recover_finds_the_bucket_its_token_made() {
    let (_dir, p) = cpu_provider();
    let cfg = config(&p, "bucket", json!({}));
    let made = create_with_token(&p, "bucket.ckpt", &cfg, "token-1").await;
    let planned = plan(&p, "bucket.ckpt", &cfg, None).await.planned;
    let found = p.recover(RecoverRequest { address: "bucket.ckpt", kind: "bucket", token: "token-1", planned: &planned }).await;
    assert!(found.state.is_some_and(|s| s.unmarked_eq(&made)));
    let other = p.recover(RecoverRequest { address: "bucket.ckpt", kind: "bucket", token: "token-2", planned: &planned }).await;
    assert!(other.state.is_none());
}

/// A create killed after making the directory and before its marker held the whole token (no
/// marker, an empty one, part of the token) made that directory: recover adopts it, or nothing
/// would track it. A marker holding another create's token is that create's bucket.
#[tokio::test]
async fn recover_adopts_the_directory_of_a_create_killed_before_its_marker_was_written() {
    let (dir, p) = cpu_provider();
    let cfg = config(&p, "bucket", json!({}));
    let planned = plan(&p, "bucket.ckpt", &cfg, None).await.planned;
    let path = dir.path().join(".kiln/buckets/ckpt");
    let marker = path.join(".kiln-bucket");
    let recover = || p.recover(RecoverRequest { address: "bucket.ckpt", kind: "bucket", token: "token-1", planned: &planned });
    std::fs::create_dir_all(&path).unwrap();
    for written in [None, Some(""), Some("toke")] {
        if let Some(text) = written {
            std::fs::write(&marker, text).unwrap();
        }
        let found = recover().await.state.unwrap_or_else(|| panic!("marker {written:?}: the directory is not adopted"));
        assert_eq!(str_of(&found, "path"), path.display().to_string());
    }
    std::fs::write(&marker, "token-2").unwrap();
    assert!(recover().await.state.is_none(), "another create's bucket is not adopted");
}

#[tokio::test]
async fn import_by_name() {
    let (dir, p) = cpu_provider();
    std::fs::create_dir_all(dir.path().join(".kiln/buckets/old")).unwrap();
    let r = p.import(ImportRequest { address: "bucket.old", kind: "bucket", id: "old" }).await;
    let state = r.state.expect("imported");
    assert_eq!(str_of(&state, "name"), "old");
    let missing = p.import(ImportRequest { address: "bucket.x", kind: "bucket", id: "nope" }).await;
    assert!(missing.diagnostics.has_errors());
}

#[tokio::test]
async fn names_are_single_directory_names() {
    let (_dir, p) = cpu_provider();
    let d = p.validate(ValidateRequest { kind: "bucket", config: &json(json!({ "name": "a/b" })) });
    assert!(d.has_errors());
}
