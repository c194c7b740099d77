//! The provider as the engine meets it: the factory and its configuration block, the schema,
//! retries of throttling and 5xx answers, errors carrying AWS's code and the address.

use kiln_provider::{ConfigureRequest, ProviderFactory};
use kiln_provider_aws::{AwsFactory, AwsProvider, Settings};
use serde_json::json as j;

use crate::common::moto::{exclusive, server};
use crate::common::*;

#[tokio::test]
async fn factory_configures_from_the_provider_block() {
    let _g = exclusive().await;
    assert_eq!(AwsFactory.name(), "aws");
    let schema = AwsFactory.schema();
    assert!(schema.kinds.contains_key("bucket") && schema.kinds.contains_key("cluster"));
    for attr in ["region", "endpoint", "profile", "max_attempts"] {
        assert!(schema.config.attributes.contains_key(attr), "{attr}");
    }
    let block = json(j!({ "region": "eu-west-1", "endpoint": server().endpoint() }));
    let p = AwsFactory.configure(ConfigureRequest { config: block, working_dir: ".".into() }).await;
    assert!(p.is_ok(), "configure failed");

    let bad = json(j!({ "region": "eu-west-1", "max_attempts": 0 }));
    let err = AwsFactory.configure(ConfigureRequest { config: bad, working_dir: ".".into() }).await.err().expect("refused");
    assert!(err.iter().any(|d| d.summary.contains("max_attempts")));
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let _g = exclusive().await;
    let p = provider().await;
    let state = create(&p, "cluster.a", &config(&p, "cluster", j!({ "instance_type": "t3.micro" }))).await;
    server().fault("DescribeInstances", "", "RequestLimitExceeded", 400, 1);
    server().fault("DescribeInstances", "", "InternalError", 503, 1);
    p.api_calls().reset();
    let again = read(&p, "cluster.a", &state).await.expect("still there");
    assert_eq!(str_of(&again, "state"), "running");
    assert_eq!(server().faults_left(), 0, "both faults were hit");
    assert_eq!(p.api_calls().of("DescribeInstances"), 1, "one call");
    assert_eq!(p.api_calls().attempts(), 3, "three attempts: throttled, 503, success");
}

#[tokio::test]
async fn errors_carry_the_aws_code_and_the_address() {
    let _g = exclusive().await;
    let p = AwsProvider::connect(Settings { max_attempts: 1, ..settings() }).await.unwrap();
    let state = create(&p, "cluster.a", &config(&p, "cluster", j!({ "instance_type": "t3.micro" }))).await;
    server().fault("DescribeInstances", "", "RequestLimitExceeded", 400, 1);
    let r = kiln_provider::Provider::read(
        &p,
        kiln_provider::ReadRequest { items: vec![kiln_provider::ReadItem { address: "cluster.a", kind: "cluster", state: &state }] },
    )
    .await;
    let d = r.results[0].diagnostics.errors().next().expect("an error without retries");
    assert_eq!(d.address.as_deref(), Some("cluster.a"));
    assert!(d.summary.starts_with("cluster.a: cannot describe instances: RequestLimitExceeded: "), "{}", d.summary);
    assert!(d.hint.as_deref().unwrap_or_default().contains("max_attempts"));
}

#[tokio::test]
async fn throttling_lowers_the_concurrency_and_success_raises_it_again() {
    let _g = exclusive().await;
    let p = provider().await;
    assert_eq!(p.concurrency(), 16);
    server().fault("CreateSecurityGroup", "", "RequestLimitExceeded", 503, 2);
    let cfg = config(&p, "cluster", j!({ "instance_type": "t3.micro" }));
    let state = create(&p, "cluster.a", &cfg).await;
    assert_eq!(server().faults_left(), 0, "both throttling answers were met, and retried");
    assert!(p.api_calls().throttled() >= 2, "{}", p.api_calls().throttled());
    assert_eq!(p.concurrency(), 8, "one throttled operation halves the limit");
    let r = delete(&p, "cluster.a", &state).await;
    assert!(!r.has_errors(), "{r:?}");
    assert_eq!(p.concurrency(), 8, "one operation without throttling is not yet enough to grow");
    for i in 0..8 {
        let b = create(&p, &format!("bucket.b{i}"), &config(&p, "bucket", j!({}))).await;
        assert!(!delete(&p, &format!("bucket.b{i}"), &b).await.has_errors());
    }
    assert!(p.concurrency() > 8, "unthrottled operations raise it again: {}", p.concurrency());
}
