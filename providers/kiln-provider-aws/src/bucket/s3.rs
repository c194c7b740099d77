//! The S3 calls behind `bucket`: existence, creation, each setting written and read back, and
//! emptying a bucket of every object version. Each returns AWS's error as an [`AwsError`].

use aws_sdk_s3::error::BuildError;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectIdentifier, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
};
use aws_sdk_s3::Client;

use super::spec::Spec;
use crate::error::AwsError;

const RULE_ID: &str = "kiln-expire";

fn built<T>(r: Result<T, BuildError>) -> Result<T, AwsError> {
    r.map_err(|e| AwsError { code: None, message: e.to_string() })
}

/// Whether the bucket exists (and is reachable with these credentials).
pub async fn exists(s3: &Client, name: &str) -> Result<bool, AwsError> {
    match s3.head_bucket().bucket(name).send().await {
        Ok(_) => Ok(true),
        Err(e) => {
            let e = AwsError::from_sdk(e);
            if e.is("NotFound") || e.is("NoSuchBucket") {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

pub async fn create(s3: &Client, name: &str, region: &str) -> Result<(), AwsError> {
    let mut req = s3.create_bucket().bucket(name);
    // us-east-1 is the default location and rejects being named.
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region)).build(),
        );
    }
    req.send().await.map(|_| ()).map_err(AwsError::from_sdk)
}

/// All tags, kiln's included; empty when the bucket has none.
pub async fn tags(s3: &Client, name: &str) -> Result<Vec<(String, String)>, AwsError> {
    match s3.get_bucket_tagging().bucket(name).send().await {
        Ok(out) => Ok(out.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()),
        Err(e) => match AwsError::from_sdk(e) {
            e if e.is("NoSuchTagSet") => Ok(Vec::new()),
            e => Err(e),
        },
    }
}

pub async fn put_tags(s3: &Client, name: &str, tags: &[(String, String)]) -> Result<(), AwsError> {
    let set: Vec<Tag> = tags.iter().map(|(k, v)| built(Tag::builder().key(k).value(v).build())).collect::<Result<_, _>>()?;
    let tagging = built(Tagging::builder().set_tag_set(Some(set)).build())?;
    s3.put_bucket_tagging().bucket(name).tagging(tagging).send().await.map(|_| ()).map_err(AwsError::from_sdk)
}

/// Writes every setting of `spec` except tags.
pub async fn configure(s3: &Client, name: &str, spec: &Spec, was_versioned: bool) -> Result<(), AwsError> {
    put_public_access(s3, name, spec.block_public_access).await?;
    put_encryption(s3, name, &spec.encryption).await?;
    // A bucket that never had versioning needs no "Suspended" written.
    if spec.versioning || was_versioned {
        put_versioning(s3, name, spec.versioning).await?;
    }
    put_lifecycle(s3, name, spec).await
}

async fn put_public_access(s3: &Client, name: &str, block: bool) -> Result<(), AwsError> {
    let r = if block {
        let all = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        s3.put_public_access_block()
            .bucket(name)
            .public_access_block_configuration(all)
            .send()
            .await
            .map(|_| ())
            .map_err(AwsError::from_sdk)
    } else {
        s3.delete_public_access_block().bucket(name).send().await.map(|_| ()).map_err(AwsError::from_sdk)
    };
    r
}

async fn put_encryption(s3: &Client, name: &str, algorithm: &str) -> Result<(), AwsError> {
    let default = built(ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::from(algorithm)).build())?;
    let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(default).build();
    let conf = built(ServerSideEncryptionConfiguration::builder().rules(rule).build())?;
    s3.put_bucket_encryption().bucket(name).server_side_encryption_configuration(conf).send().await.map(|_| ()).map_err(AwsError::from_sdk)
}

async fn put_versioning(s3: &Client, name: &str, on: bool) -> Result<(), AwsError> {
    let status = if on { BucketVersioningStatus::Enabled } else { BucketVersioningStatus::Suspended };
    let conf = aws_sdk_s3::types::VersioningConfiguration::builder().status(status).build();
    s3.put_bucket_versioning().bucket(name).versioning_configuration(conf).send().await.map(|_| ()).map_err(AwsError::from_sdk)
}

async fn put_lifecycle(s3: &Client, name: &str, spec: &Spec) -> Result<(), AwsError> {
    if spec.expire_days.is_none() && spec.noncurrent_expire_days.is_none() {
        return match s3.delete_bucket_lifecycle().bucket(name).send().await {
            Ok(_) => Ok(()),
            Err(e) => match AwsError::from_sdk(e) {
                e if e.is("NoSuchLifecycleConfiguration") => Ok(()),
                e => Err(e),
            },
        };
    }
    let mut rule =
        LifecycleRule::builder().id(RULE_ID).status(ExpirationStatus::Enabled).filter(LifecycleRuleFilter::builder().prefix("").build());
    if let Some(d) = spec.expire_days {
        rule = rule.expiration(LifecycleExpiration::builder().days(d as i32).build());
    }
    if let Some(d) = spec.noncurrent_expire_days {
        rule = rule.noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(d as i32).build());
    }
    let conf = built(BucketLifecycleConfiguration::builder().rules(built(rule.build())?).build())?;
    s3.put_bucket_lifecycle_configuration().bucket(name).lifecycle_configuration(conf).send().await.map(|_| ()).map_err(AwsError::from_sdk)
}

/// Reads back the settings kiln manages; `force_destroy` and `tags_set` come from `prior`.
pub async fn read(s3: &Client, name: &str, prior: &Spec) -> Result<(Spec, Vec<(String, String)>), AwsError> {
    let (versioning, tags, lifecycle, encryption, public) = tokio::join!(
        read_versioning(s3, name),
        tags(s3, name),
        read_lifecycle(s3, name),
        read_encryption(s3, name),
        read_public_access(s3, name)
    );
    let all_tags = tags?;
    let (expire_days, noncurrent_expire_days) = lifecycle?;
    let spec = Spec {
        name: Some(name.to_string()),
        versioning: versioning?,
        expire_days,
        noncurrent_expire_days,
        encryption: encryption?,
        block_public_access: public?,
        tags: all_tags.iter().filter(|(k, _)| !k.starts_with("kiln:")).cloned().collect(),
        tags_set: prior.tags_set,
        force_destroy: prior.force_destroy,
    };
    Ok((spec, all_tags))
}

async fn read_versioning(s3: &Client, name: &str) -> Result<bool, AwsError> {
    let out = s3.get_bucket_versioning().bucket(name).send().await.map_err(AwsError::from_sdk)?;
    Ok(out.status() == Some(&BucketVersioningStatus::Enabled))
}

async fn read_lifecycle(s3: &Client, name: &str) -> Result<(Option<u64>, Option<u64>), AwsError> {
    let out = match s3.get_bucket_lifecycle_configuration().bucket(name).send().await {
        Ok(out) => out,
        Err(e) => match AwsError::from_sdk(e) {
            e if e.is("NoSuchLifecycleConfiguration") => return Ok((None, None)),
            e => return Err(e),
        },
    };
    let Some(rule) = out.rules().iter().find(|r| r.id() == Some(RULE_ID)) else { return Ok((None, None)) };
    let days = rule.expiration().and_then(|e| e.days()).map(|d| d as u64);
    let noncurrent = rule.noncurrent_version_expiration().and_then(|e| e.noncurrent_days()).map(|d| d as u64);
    Ok((days, noncurrent))
}

async fn read_encryption(s3: &Client, name: &str) -> Result<String, AwsError> {
    let out = match s3.get_bucket_encryption().bucket(name).send().await {
        Ok(out) => out,
        Err(e) => match AwsError::from_sdk(e) {
            e if e.is("ServerSideEncryptionConfigurationNotFoundError") => return Ok("none".into()),
            e => return Err(e),
        },
    };
    let algorithm = out
        .server_side_encryption_configuration()
        .and_then(|c| c.rules().first())
        .and_then(|r| r.apply_server_side_encryption_by_default())
        .map(|d| d.sse_algorithm().as_str().to_string());
    Ok(algorithm.unwrap_or_else(|| "none".into()))
}

async fn read_public_access(s3: &Client, name: &str) -> Result<bool, AwsError> {
    match s3.get_public_access_block().bucket(name).send().await {
        Ok(out) => Ok(out.public_access_block_configuration().is_some_and(|c| {
            [c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()]
                .iter()
                .all(|b| *b == Some(true))
        })),
        Err(e) => match AwsError::from_sdk(e) {
            e if e.is("NoSuchPublicAccessBlockConfiguration") => Ok(false),
            e => Err(e),
        },
    }
}

/// Up to `max` object keys (of any version or delete marker) the bucket holds.
pub async fn some_keys(s3: &Client, name: &str, max: i32) -> Result<Vec<String>, AwsError> {
    let out = s3.list_object_versions().bucket(name).max_keys(max).send().await.map_err(AwsError::from_sdk)?;
    let mut keys: Vec<String> = out.versions().iter().filter_map(|v| v.key().map(str::to_string)).collect();
    keys.extend(out.delete_markers().iter().filter_map(|m| m.key().map(str::to_string)));
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Deletes every object version and delete marker, 1,000 per call.
pub async fn empty(s3: &Client, name: &str) -> Result<u64, AwsError> {
    let mut deleted = 0;
    loop {
        let out = s3.list_object_versions().bucket(name).max_keys(1000).send().await.map_err(AwsError::from_sdk)?;
        let ids: Vec<ObjectIdentifier> = out
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(out.delete_markers().iter().map(|m| (m.key(), m.version_id())))
            .filter_map(|(k, v)| k.map(|k| (k, v)))
            .map(|(k, v)| built(ObjectIdentifier::builder().key(k).set_version_id(v.map(str::to_string)).build()))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        deleted += ids.len() as u64;
        delete_ids(s3, name, ids).await?;
    }
}

/// Deletes these objects (their current versions), 1,000 per call.
pub async fn delete_keys(s3: &Client, name: &str, keys: &[String]) -> Result<(), AwsError> {
    for chunk in keys.chunks(1000) {
        let ids = chunk.iter().map(|k| built(ObjectIdentifier::builder().key(k).build())).collect::<Result<_, _>>()?;
        delete_ids(s3, name, ids).await?;
    }
    Ok(())
}

/// One DeleteObjects call (at most 1,000 objects).
async fn delete_ids(s3: &Client, name: &str, ids: Vec<ObjectIdentifier>) -> Result<(), AwsError> {
    let delete = built(Delete::builder().set_objects(Some(ids)).quiet(true).build())?;
    let out = s3.delete_objects().bucket(name).delete(delete).send().await.map_err(AwsError::from_sdk)?;
    match out.errors().first() {
        Some(e) => Err(AwsError {
            code: e.code().map(str::to_string),
            message: format!("{}: {}", e.key().unwrap_or("?"), e.message().unwrap_or("")),
        }),
        None => Ok(()),
    }
}

pub async fn delete(s3: &Client, name: &str) -> Result<(), AwsError> {
    match s3.delete_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(e) => match AwsError::from_sdk(e) {
            e if e.is("NoSuchBucket") => Ok(()),
            e => Err(e),
        },
    }
}

/// Writes an object (kiln's own files in a bucket: [`kiln_provider::Provider::store`]).
pub async fn put_object(s3: &Client, name: &str, key: &str, data: &[u8]) -> Result<(), AwsError> {
    let body = aws_sdk_s3::primitives::ByteStream::from(data.to_vec());
    s3.put_object().bucket(name).key(key).body(body).send().await.map(|_| ()).map_err(AwsError::from_sdk)
}

/// Up to `len` bytes of an object from `offset`, and the object's size.
pub async fn get_range(s3: &Client, name: &str, key: &str, offset: u64, len: u64) -> Result<(Vec<u8>, u64), AwsError> {
    let size = || async {
        let head = s3.head_object().bucket(name).key(key).send().await.map_err(AwsError::from_sdk)?;
        Ok::<u64, AwsError>(head.content_length().unwrap_or_default().max(0) as u64)
    };
    if len == 0 {
        return Ok((Vec::new(), size().await?));
    }
    let range = format!("bytes={offset}-{}", offset.saturating_add(len) - 1);
    match s3.get_object().bucket(name).key(key).range(range).send().await.map_err(AwsError::from_sdk) {
        Ok(out) => {
            // `bytes A-B/SIZE`
            let total = out.content_range().and_then(|r| r.rsplit_once('/')).and_then(|(_, n)| n.parse::<u64>().ok());
            let body = out.body.collect().await.map_err(|e| AwsError { code: None, message: e.to_string() })?.into_bytes().to_vec();
            let total = match total {
                Some(t) => t,
                None => size().await?,
            };
            Ok((body, total))
        }
        // At or past the end.
        Err(e) if e.is("InvalidRange") => Ok((Vec::new(), size().await?)),
        Err(e) => Err(e),
    }
}

/// Every key under `prefix`.
pub async fn list_keys(s3: &Client, name: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
    let mut keys = Vec::new();
    let mut next = None;
    loop {
        let out = s3.list_objects_v2().bucket(name).prefix(prefix).set_continuation_token(next).send().await.map_err(AwsError::from_sdk)?;
        keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        next = out.next_continuation_token().map(str::to_string);
        if next.is_none() {
            return Ok(keys);
        }
    }
}
