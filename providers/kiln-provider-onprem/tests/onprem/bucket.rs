//! `bucket`: conformance, a directory on the chosen host with an sftp:// URI, refusal to delete
//! one that holds files unless `force_destroy`, and hosts that do not exist.

use kiln_provider::conformance::{self, Case};
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

#[tokio::test]
async fn a_bucket_on_a_host_that_does_not_exist() {
    let p = provider(&["host1"]);
    let r = plan(&p, "bucket.x", &config(&p, "bucket", json!({ "host": "nowhere" })), None).await;
    let e = r.diagnostics.errors().next().expect("refused");
    assert!(e.summary.contains("`nowhere` is not a host of this provider"), "{}", e.summary);
}
