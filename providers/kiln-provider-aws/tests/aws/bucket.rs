//! `bucket`: conformance, what S3 holds after a create (checked through the S3 API), the
//! non-empty delete guard and `force_destroy`, drift, recovery by token and name clashes.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::BucketVersioningStatus;
use kiln_provider::conformance::{self, Case};
use kiln_provider::{Provider, RecoverRequest};
use serde_json::json as j;

use crate::common::moto::exclusive;
use crate::common::*;

#[tokio::test]
async fn conformance_suite() {
    let _g = exclusive().await;
    let p = provider().await;
    let case = Case {
        kind: "bucket",
        config: json(j!({ "name": "kiln-conformance" })),
        update: Some(json(j!({ "name": "kiln-conformance", "versioning": true, "expire_days": 30, "force_destroy": true }))),
        import_id: Some("kiln-conformance"),
    };
    conformance::run(&p, &[case]).await;
}

#[tokio::test]
async fn create_writes_every_setting_and_kilns_tags() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "bucket", j!({ "versioning": true, "expire_days": 30, "noncurrent_expire_days": 7, "tags": { "team": "ml" } }));
    let plan = planned(&p, "bucket.ckpt", &cfg, None).await;
    assert!(plan.get("name").is_some_and(|v| v.is_unknown()), "a made-up name is known after apply");
    let state = create_with_token(&p, "bucket.ckpt", &cfg, "5eed1234-aaaa").await;
    let name = str_of(&state, "name");
    assert_eq!(name, "kiln-ckpt-5eed1234");
    assert_eq!(str_of(&state, "uri"), format!("s3://{name}"));
    assert_eq!(str_of(&state, "arn"), format!("arn:aws:s3:::{name}"));
    assert_eq!(str_of(&state, "region"), "us-east-1");

    let s3 = aws().await.s3;
    let v = s3.get_bucket_versioning().bucket(name).send().await.unwrap();
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
    let tags = s3.get_bucket_tagging().bucket(name).send().await.unwrap();
    let tag = |k: &str| tags.tag_set().iter().find(|t| t.key() == k).map(|t| t.value().to_string());
    assert_eq!(tag("kiln:address").as_deref(), Some("bucket.ckpt"));
    assert_eq!(tag("kiln:token").as_deref(), Some("5eed1234-aaaa"));
    assert_eq!(tag("team").as_deref(), Some("ml"));
    let pab = s3.get_public_access_block().bucket(name).send().await.unwrap();
    let c = pab.public_access_block_configuration().unwrap();
    assert_eq!((c.block_public_acls(), c.restrict_public_buckets()), (Some(true), Some(true)));
    let enc = s3.get_bucket_encryption().bucket(name).send().await.unwrap();
    let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(rule.apply_server_side_encryption_by_default().unwrap().sse_algorithm().as_str(), "AES256");
    let lc = s3.get_bucket_lifecycle_configuration().bucket(name).send().await.unwrap();
    assert_eq!(lc.rules()[0].expiration().and_then(|e| e.days()), Some(30));

    let again = read(&p, "bucket.ckpt", &state).await.expect("exists");
    assert!(again.unmarked_eq(&state), "read matches create:\n{again}\n{state}");
    let replan = planned(&p, "bucket.ckpt", &cfg, Some(&state)).await;
    assert!(changed(&state, &replan).is_empty(), "no change planned: {:?}", changed(&state, &replan));
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &str) {
    s3.put_object().bucket(bucket).key(key).body(ByteStream::from(body.as_bytes().to_vec())).send().await.unwrap();
}

#[tokio::test]
async fn non_empty_bucket_refuses_delete_and_force_destroy_empties_it() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "bucket", j!({ "name": "kiln-full", "versioning": true }));
    let state = create(&p, "bucket.full", &cfg).await;
    let s3 = aws().await.s3;
    put(&s3, "kiln-full", "step-10/model.pt", "v1").await;
    put(&s3, "kiln-full", "step-10/model.pt", "v2").await;
    s3.delete_object().bucket("kiln-full").key("step-10/model.pt").send().await.unwrap();

    let d = delete(&p, "bucket.full", &state).await;
    let e = d.errors().next().expect("delete refused");
    assert_eq!(e.code, "E-AWS-BUCKET-NOT-EMPTY");
    assert!(e.summary.contains("step-10/model.pt") && e.summary.contains("nothing was deleted"), "{}", e.summary);
    assert!(e.hint.as_deref().unwrap_or_default().contains("force_destroy = true"));
    let versions = s3.list_object_versions().bucket("kiln-full").send().await.unwrap();
    assert_eq!(versions.versions().len(), 2, "nothing was deleted");

    let forced =
        update(&p, "bucket.full", &state, &config(&p, "bucket", j!({ "name": "kiln-full", "versioning": true, "force_destroy": true })))
            .await;
    let d = delete(&p, "bucket.full", &forced).await;
    assert!(!d.has_errors(), "{d:?}");
    assert!(s3.head_bucket().bucket("kiln-full").send().await.is_err(), "bucket deleted");
    assert!(read(&p, "bucket.full", &forced).await.is_none());
}

#[tokio::test]
async fn read_reports_drift_and_disappearance() {
    let _g = exclusive().await;
    let p = provider().await;
    let state = create(&p, "bucket.d", &config(&p, "bucket", j!({ "name": "kiln-drift", "versioning": true }))).await;
    let s3 = aws().await.s3;
    let off = aws_sdk_s3::types::VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
    s3.put_bucket_versioning().bucket("kiln-drift").versioning_configuration(off).send().await.unwrap();
    s3.delete_public_access_block().bucket("kiln-drift").send().await.unwrap();
    let now = read(&p, "bucket.d", &state).await.expect("exists");
    assert_eq!(now.get("versioning"), Some(&false.into()));
    assert_eq!(now.get("block_public_access"), Some(&false.into()));
    let fix = planned(&p, "bucket.d", &config(&p, "bucket", j!({ "name": "kiln-drift", "versioning": true })), Some(&now)).await;
    let mut c = changed(&now, &fix);
    c.sort();
    assert_eq!(c, ["block_public_access", "versioning"]);
    s3.delete_bucket().bucket("kiln-drift").send().await.unwrap();
    assert!(read(&p, "bucket.d", &state).await.is_none());
}

#[tokio::test]
async fn recover_adopts_the_bucket_of_its_token_only() {
    let _g = exclusive().await;
    let p = provider().await;
    let cfg = config(&p, "bucket", j!({}));
    let plan = planned(&p, "bucket.r", &cfg, None).await;
    let made = create_with_token(&p, "bucket.r", &cfg, "aaaa1111-x").await;
    let found = p.recover(RecoverRequest { address: "bucket.r", kind: "bucket", token: "aaaa1111-x", planned: &plan }).await;
    assert!(found.state.is_some_and(|s| s.unmarked_eq(&made)));
    let other = p.recover(RecoverRequest { address: "bucket.r", kind: "bucket", token: "bbbb2222-y", planned: &plan }).await;
    assert!(other.state.is_none() && !other.diagnostics.has_errors());

    // Interrupted right after CreateBucket: no tags yet, but the made-up name embeds the token.
    let s3 = aws().await.s3;
    s3.create_bucket().bucket("kiln-r-cccc3333").send().await.unwrap();
    let adopted = p.recover(RecoverRequest { address: "bucket.r", kind: "bucket", token: "cccc3333-z", planned: &plan }).await;
    let state = adopted.state.expect("adopted");
    assert_eq!(str_of(&state, "name"), "kiln-r-cccc3333");
    let tags = s3.get_bucket_tagging().bucket("kiln-r-cccc3333").send().await.unwrap();
    assert!(tags.tag_set().iter().any(|t| t.key() == "kiln:token" && t.value() == "cccc3333-z"), "recover finished the create");
}

#[tokio::test]
async fn an_existing_bucket_is_not_taken_over() {
    let _g = exclusive().await;
    let p = provider().await;
    aws().await.s3.create_bucket().bucket("someone-elses").send().await.unwrap();
    let cfg = config(&p, "bucket", j!({ "name": "someone-elses" }));
    let planned = planned(&p, "bucket.x", &cfg, None).await;
    let r = p.create(kiln_provider::CreateRequest { address: "bucket.x", kind: "bucket", planned: &planned, token: &token() }).await;
    let e = r.diagnostics.errors().next().expect("refused");
    assert_eq!(e.code, "E-AWS-BUCKET-EXISTS");
    assert!(e.hint.as_deref().unwrap_or_default().contains("kiln import bucket.x someone-elses"));
}

#[tokio::test]
async fn invalid_settings_fail_validation() {
    let p = kiln_provider_aws::AwsProvider::connect(kiln_provider_aws::Settings { region: Some("us-east-1".into()), ..Default::default() })
        .await
        .unwrap();
    let d = p.validate(kiln_provider::ValidateRequest { kind: "bucket", config: &json(j!({ "name": "Bad_Name", "encryption": "rot13" })) });
    assert_eq!(d.errors().count(), 2);
}

/// `Provider::store` (issue 13: destroyed jobs' logs kept in the bucket): writes, ranged reads
/// with the object's size (a read at or past the end is empty), listing by prefix, deletes.
#[tokio::test]
async fn store_keeps_kilns_files_as_objects() {
    use kiln_provider::{StoreOp, StoreRequest};
    let _g = exclusive().await;
    let p = provider().await;
    let state = create(&p, "bucket.logs", &config(&p, "bucket", j!({ "force_destroy": true }))).await;
    let op = |op| p.store(StoreRequest { address: "bucket.logs", kind: "bucket", state: &state, op });
    for (key, data) in [("kiln-logs/j-1/node-0.log", "hello\nworld\n"), ("kiln-logs/j-1/job.json", "{}"), ("other/x", "x")] {
        let r = op(StoreOp::Put { key, data: data.as_bytes() }).await;
        assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    }
    let r = op(StoreOp::Get { key: "kiln-logs/j-1/node-0.log", offset: 6, len: 3 }).await;
    assert_eq!((String::from_utf8(r.data).unwrap().as_str(), r.size), ("wor", 12));
    for (offset, len) in [(12, 100), (0, 0), (40, 5)] {
        let r = op(StoreOp::Get { key: "kiln-logs/j-1/node-0.log", offset, len }).await;
        assert!(!r.diagnostics.has_errors(), "{offset}+{len}: {:?}", r.diagnostics);
        assert_eq!((r.data.len(), r.size), (0, 12), "{offset}+{len}");
    }
    let mut keys = op(StoreOp::List { prefix: "kiln-logs/" }).await.keys;
    keys.sort();
    assert_eq!(keys, ["kiln-logs/j-1/job.json", "kiln-logs/j-1/node-0.log"]);
    let r = op(StoreOp::Delete { keys: &keys }).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
    assert!(op(StoreOp::List { prefix: "kiln-logs/" }).await.keys.is_empty());
    let missing = op(StoreOp::Get { key: "kiln-logs/j-1/job.json", offset: 0, len: 10 }).await;
    assert!(missing.diagnostics.has_errors(), "a missing object is an error");
    let d = delete(&p, "bucket.logs", &state).await;
    assert!(!d.has_errors(), "{d:?}");
}
