//! `bucket`: conformance, a directory on the chosen host with an sftp:// URI, refusal to delete
//! one that holds files unless `force_destroy`, and hosts that do not exist.

use kiln_provider::conformance::{self, Case};
use kiln_provider::{Provider, RecoverRequest};
use serde_json::json;

use crate::common::*;
use crate::harness::harness;

#[tokio::test]
async fn conformance_suite() {
    let p = provider(&["host1", "host2"]);
    let path = format!("{}/hosts/host1/buckets/conformance", p.fleet().root);
    let import_id: &'static str = Box::leak(format!("host1:{path}").into_boxed_str());
    let case =
        Case { kind: "bucket", config: json(json!({})), update: Some(json(json!({ "force_destroy": true }))), import_id: Some(import_id) };
    conformance::run(&p, &[case]).await;
    assert!(!std::path::Path::new(&path).exists(), "delete removed the directory");
}

#[tokio::test]
async fn a_directory_on_the_chosen_host() {
    let p = provider(&["host1", "host2"]);
    let dir = format!("{}/data", harness().scratch("bucket"));
    let b = create(&p, "bucket.ckpt", &config(&p, "bucket", json!({ "host": "host2", "path": dir }))).await;
    let h = harness().host("host2");
    assert_eq!(str_of(&b, "uri"), format!("sftp://{}@{}:{}{dir}", h.user, h.address, h.port));
    assert_eq!(str_of(&b, "name"), "ckpt");
    assert!(std::path::Path::new(&dir).is_dir());

    std::fs::write(format!("{dir}/model.pt"), "weights").unwrap();
    let d = delete(&p, "bucket.ckpt", &b).await;
    let e = d.errors().next().expect("a bucket holding files is not deleted");
    assert_eq!(e.code, "E-ONPREM-BUCKET-NOT-EMPTY");
    assert!(e.summary.contains("model.pt"), "{}", e.summary);
    assert!(std::path::Path::new(&dir).is_dir());

    let mut forced = b.clone();
    if let kiln_value::Value::Map(m) = &mut forced {
        m.insert("force_destroy".into(), kiln_value::Value::from(true));
    }
    assert!(!delete(&p, "bucket.ckpt", &forced).await.has_errors());
    assert!(!std::path::Path::new(&dir).exists());
    assert!(read(&p, "bucket.ckpt", &b).await.is_none());
}

/// A create cut off after `mkdir` and before its marker held the whole token made that
/// directory: recover adopts it (or nothing would track it); a marker with another token is
/// another create's bucket.
#[tokio::test]
async fn recover_adopts_the_directory_of_a_create_cut_off_before_its_marker() {
    let p = provider(&["host1"]);
    let dir = format!("{}/cut", harness().scratch("bucket"));
    let cfg = config(&p, "bucket", json!({ "host": "host1", "path": dir }));
    let planned = plan(&p, "bucket.cut", &cfg, None).await.planned;
    let token = "6f1c2a3e-0000-4000-8000-000000000001";
    let recover = || p.recover(RecoverRequest { address: "bucket.cut", kind: "bucket", token, planned: &planned });
    std::fs::create_dir_all(&dir).unwrap();
    for written in [None, Some(""), Some("6f1c")] {
        if let Some(text) = written {
            std::fs::write(format!("{dir}/.kiln-bucket"), text).unwrap();
        }
        let found = recover().await;
        assert!(!found.diagnostics.has_errors(), "{:?}", found.diagnostics);
        let state = found.state.unwrap_or_else(|| panic!("marker {written:?}: the directory is not adopted"));
        assert_eq!(str_of(&state, "path"), dir);
    }
    std::fs::write(format!("{dir}/.kiln-bucket"), "another-token").unwrap();
    assert!(recover().await.state.is_none(), "another create's bucket is not adopted");
}

#[tokio::test]
async fn a_bucket_on_a_host_that_does_not_exist() {
    let p = provider(&["host1"]);
    let r = plan(&p, "bucket.x", &config(&p, "bucket", json!({ "host": "nowhere" })), None).await;
    let e = r.diagnostics.errors().next().expect("refused");
    assert!(e.summary.contains("`nowhere` is not a host of this provider"), "{}", e.summary);
}

/// `Provider::store` (issue 13: destroyed jobs' logs kept in the bucket): files under the
/// directory on its host, private to the login user; ranged reads with the file's size (a read
/// at or past the end is empty), listing by prefix, deletes that leave no empty directory, and
/// keys that would leave the bucket refused.
#[tokio::test]
async fn store_keeps_kilns_files_in_the_directory() {
    use kiln_provider::{Provider, StoreOp, StoreRequest};
    let p = provider(&["host1", "host2"]);
    let dir = format!("{}/data", harness().scratch("bucket-store"));
    let b = create(&p, "bucket.logs", &config(&p, "bucket", json!({ "host": "host2", "path": dir, "force_destroy": true }))).await;
    let op = |op| p.store(StoreRequest { address: "bucket.logs", kind: "bucket", state: &b, op });
    let bytes: Vec<u8> = (0..=255u8).chain(b"end\n".iter().copied()).collect();
    for (key, data) in [("kiln-logs/j-1/node-0.log", &bytes[..]), ("kiln-logs/j-1/job.json", b"{}"), ("other/x", b"x")] {
        let r = op(StoreOp::Put { key, data }).await;
        assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    }
    let file = std::path::Path::new(&dir).join("kiln-logs/j-1/node-0.log");
    assert_eq!(std::fs::read(&file).unwrap(), bytes, "binary data arrives whole");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let r = op(StoreOp::Get { key: "kiln-logs/j-1/node-0.log", offset: 254, len: 4 }).await;
    assert_eq!((r.data, r.size), (vec![254, 255, b'e', b'n'], 260));
    for (offset, len) in [(260, 100), (0, 0), (400, 5)] {
        let r = op(StoreOp::Get { key: "kiln-logs/j-1/node-0.log", offset, len }).await;
        assert!(!r.diagnostics.has_errors(), "{offset}+{len}: {:?}", r.diagnostics);
        assert_eq!((r.data.len(), r.size), (0, 260), "{offset}+{len}");
    }
    let mut keys = op(StoreOp::List { prefix: "kiln-logs/" }).await.keys;
    keys.sort();
    assert_eq!(keys, ["kiln-logs/j-1/job.json", "kiln-logs/j-1/node-0.log"]);
    let r = op(StoreOp::Delete { keys: &keys }).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    assert!(op(StoreOp::List { prefix: "kiln-logs/" }).await.keys.is_empty());
    assert!(!std::path::Path::new(&dir).join("kiln-logs/j-1").exists(), "no empty directory left");
    assert!(op(StoreOp::Get { key: "kiln-logs/j-1/job.json", offset: 0, len: 10 }).await.diagnostics.has_errors());
    for bad in ["../escape", "/etc/passwd", "a/../../b"] {
        let r = op(StoreOp::Put { key: bad, data: b"x" }).await;
        assert_eq!(r.diagnostics.errors().next().map(|e| e.code), Some("E-ONPREM-BUCKET-KEY"), "{bad}");
    }
    assert!(!delete(&p, "bucket.logs", &b).await.has_errors());
}
