//! kiln's S3 state backend: `backend "s3" { bucket, key, region, endpoint }`.
//!
//! Objects, for the state at key `K` (workspace `W` other than `default` uses
//! `K = <workspace_key_prefix>/W/<key>`, `env:/W/<key>` by default, as Terraform does):
//!
//! - `K`: the snapshot, a [`kiln_state::format`] document sealed by the backend's [`Codec`]. Created
//!   with `If-None-Match: *` and replaced with `If-Match: <ETag read>`, so two writers never both
//!   win: the one holding a stale view gets [`StateError::Conflict`] instead of overwriting. The
//!   snapshot's lineage and serial are also stored as object metadata (for `kiln state versions`).
//! - previous snapshots: kept by bucket versioning when it is enabled (recommended; `kiln state
//!   versions` lists them); when it is not, each write first copies the old snapshot to `K.backup`.
//! - `K.journal/<lineage>/<serial, 20 digits>/<n, 8 digits>`: mutations appended on top of the
//!   snapshot `<lineage>/<serial>`, one object per `append` call, each created with
//!   `If-None-Match: *`. `read` folds in the entries of the snapshot it read, in order; a write
//!   stores a new snapshot (whose serial is higher, so its journal prefix is fresh) and then
//!   deletes the old entries (of every older snapshot). A crash between the two leaves entries
//!   under a dead prefix, which nothing reads; the next write of that workspace removes them.
//! - `K.lock`: the lock, a JSON [`LockInfo`] created with `If-None-Match: *` (no DynamoDB
//!   table), renewed with `If-Match`. Lock records are not sealed.
//! - `K.deleted`: in a versioned bucket, written by `delete_state` (`kiln workspace delete`):
//!   the versions of `K` the bucket keeps belong to a state deleted on purpose. The next first
//!   write removes it.
//!
//! A missing `K` is a new workspace only when nothing shows that it existed (a lock alone is a
//! first apply under way). When versions of it (without `K.deleted`), its `.backup` or journal
//! entries remain, it was deleted out of band: `read` and `write` refuse with
//! [`StateError::Missing`], saying which version or backup to copy back (an `aws s3api
//! copy-object` command) instead of starting afresh and forgetting every object it tracked.
//!
//! Credentials come from the standard AWS chain (environment `AWS_ACCESS_KEY_ID`/
//! `AWS_SECRET_ACCESS_KEY`, profiles, SSO, instance roles) unless `access_key`/`secret_key` are set.
//! With `endpoint` set (an S3-compatible server such as MinIO, or moto), path-style addressing is
//! used.

#![allow(clippy::result_large_err)]

mod errors;
mod factory;
use errors::sdk_message;
pub use factory::S3Factory;

use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use kiln_state::format::{self, MutationsOut};
use kiln_state::{Codec, LockError, LockInfo, Mutation, Plain, State, StateBackend, StateError, StateVersion, DEFAULT_WORKSPACE};
use tokio::sync::OnceCell;

/// The settings of a `backend "s3"` block.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct S3Settings {
    /// The bucket; it must exist (with versioning enabled, to keep previous states).
    pub bucket: String,
    /// Key of the default workspace's state object, such as `prod/kiln.json`.
    pub key: String,
    /// AWS region; else `AWS_REGION` or the profile's; else `us-east-1`.
    pub region: Option<String>,
    /// An S3-compatible endpoint URL (path-style addressing).
    pub endpoint: Option<String>,
    /// Static access key ID; else the standard chain.
    pub access_key: Option<String>,
    /// Static secret access key, with `access_key`.
    pub secret_key: Option<String>,
    /// A named profile of the shared AWS config files.
    pub profile: Option<String>,
    /// Prefix of non-default workspaces' keys (default `env:`).
    pub workspace_key_prefix: Option<String>,
}

/// Without the credentials.
impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key.as_ref().map(|_| "(sensitive value)"))
            .field("secret_key", &self.secret_key.as_ref().map(|_| "(sensitive value)"))
            .field("profile", &self.profile)
            .field("workspace_key_prefix", &self.workspace_key_prefix)
            .finish()
    }
}

impl S3Settings {
    fn prefix(&self) -> &str {
        self.workspace_key_prefix.as_deref().unwrap_or("env:")
    }
}

/// State in an S3 bucket. See the crate documentation for the objects it uses.
#[derive(Clone)]
pub struct S3Backend {
    settings: Arc<S3Settings>,
    client: Arc<OnceCell<Client>>,
    workspace: String,
    key: String,
    codec: Arc<dyn Codec>,
    /// What this client last saw of the stored snapshot: appends go on top of it.
    seen: Arc<Mutex<Option<Seen>>>,
    /// Whether the bucket keeps versions (asked once).
    versioned: Arc<OnceCell<bool>>,
}

#[derive(Clone, Debug, PartialEq)]
struct Seen {
    etag: String,
    lineage: String,
    serial: u64,
    /// Journal entries on top of it.
    entries: u64,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend").field("bucket", &self.settings.bucket).field("key", &self.key).finish()
    }
}

/// rustls with ring, as the aws provider: no OpenSSL, no aws-lc C build.
fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https()
}

impl S3Backend {
    /// A backend for the default workspace. Nothing is contacted until the first operation.
    pub fn new(settings: S3Settings) -> Self {
        let key = settings.key.clone();
        S3Backend {
            settings: Arc::new(settings),
            client: Arc::new(OnceCell::new()),
            workspace: DEFAULT_WORKSPACE.to_string(),
            key,
            codec: Arc::new(Plain),
            seen: Arc::new(Mutex::new(None)),
            versioned: Arc::new(OnceCell::new()),
        }
    }

    /// The same bucket, addressing workspace `name` (shares the connection).
    pub fn with_workspace(mut self, name: &str) -> Self {
        self.key = if name == DEFAULT_WORKSPACE {
            self.settings.key.clone()
        } else {
            format!("{}/{name}/{}", self.settings.prefix(), self.settings.key)
        };
        self.workspace = name.to_string();
        self.seen = Arc::new(Mutex::new(None));
        self
    }

    /// The same storage, protecting every document with `codec`.
    pub fn with_codec(mut self, codec: Arc<dyn Codec>) -> Self {
        self.codec = codec;
        self
    }

    /// The key of this workspace's state object.
    pub fn key(&self) -> &str {
        &self.key
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let s = &self.settings;
                // Patient on a busy server: a state write must not fail for want of a retry.
                let retry = aws_config::retry::RetryConfig::standard().with_max_attempts(4);
                let timeouts = aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .read_timeout(std::time::Duration::from_secs(60))
                    .build();
                let mut loader =
                    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).retry_config(retry).timeout_config(timeouts);
                if let Some(r) = &s.region {
                    loader = loader.region(Region::new(r.clone()));
                }
                if let Some(e) = &s.endpoint {
                    loader = loader.endpoint_url(e.clone());
                }
                if let Some(p) = &s.profile {
                    loader = loader.profile_name(p.clone());
                }
                if let (Some(k), Some(sk)) = (&s.access_key, &s.secret_key) {
                    loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                        k.clone(),
                        sk.clone(),
                        None,
                        None,
                        "kiln-backend",
                    ));
                }
                let sdk = loader.load().await;
                let mut b = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(s.endpoint.is_some());
                if sdk.region().is_none() {
                    b = b.region(Region::new("us-east-1"));
                }
                Client::from_conf(b.build())
            })
            .await
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.settings.bucket)
    }

    fn lock_key(&self) -> String {
        format!("{}.lock", self.key)
    }

    fn backup_key(&self) -> String {
        format!("{}.backup", self.key)
    }

    /// Written by [`StateBackend::delete_state`] in a versioned bucket: the versions left
    /// behind belong to a workspace deleted on purpose, so a new state may start there. The
    /// next first write removes it.
    fn tombstone_key(&self) -> String {
        format!("{}.deleted", self.key)
    }

    fn journal_prefix(&self, lineage: &str, serial: u64) -> String {
        format!("{}.journal/{lineage}/{serial:020}/", self.key)
    }

    fn io_err<E, R>(&self, key: &str, what: &str, e: SdkError<E, R>) -> StateError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        StateError::Io { path: self.url(key), source: std::io::Error::other(sdk_message(what, &self.settings, e)) }
    }

    fn lock_err<E, R>(&self, what: &str, e: SdkError<E, R>) -> LockError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        LockError::Io { path: self.url(&self.lock_key()), source: std::io::Error::other(sdk_message(what, &self.settings, e)) }
    }

    /// The object at `key` with its ETag, `None` if it does not exist.
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StateError> {
        let r = self.client().await.get_object().bucket(&self.settings.bucket).key(key).send().await;
        match r {
            Ok(o) => {
                let etag = o.e_tag().unwrap_or_default().to_string();
                let bytes = o.body.collect().await.map_err(|e| StateError::Io {
                    path: self.url(key),
                    source: std::io::Error::other(format!("reading the object failed: {e}")),
                })?;
                Ok(Some((bytes.into_bytes().to_vec(), etag)))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.io_err(key, "GetObject", e)),
        }
    }

    /// Keys under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let r = self
                .client()
                .await
                .list_objects_v2()
                .bucket(&self.settings.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| self.io_err(prefix, "ListObjectsV2", e))?;
            keys.extend(r.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            match r.next_continuation_token() {
                Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        match self.client().await.delete_object().bucket(&self.settings.bucket).key(key).send().await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.io_err(key, "DeleteObject", e)),
        }
    }

    /// Lineage and serial of a stored snapshot.
    fn peek(&self, stored: &[u8]) -> Result<(String, u64), StateError> {
        let url = self.url(&self.key);
        format::peek(&self.codec.open(stored, &url)?, &url)
    }

    /// The stored snapshot as it is now: bytes, what it is, and its journal's keys.
    async fn snapshot(&self) -> Result<Option<(Vec<u8>, Seen, Vec<String>)>, StateError> {
        let Some((bytes, etag)) = self.get(&self.key).await? else { return Ok(None) };
        let (lineage, serial) = self.peek(&bytes)?;
        let keys = self.list(&self.journal_prefix(&lineage, serial)).await?;
        let prefix = self.journal_prefix(&lineage, serial);
        for (i, k) in keys.iter().enumerate() {
            let n = k.strip_prefix(&prefix).and_then(|n| n.parse::<u64>().ok());
            if n != Some(i as u64 + 1) {
                return Err(StateError::JournalMismatch {
                    path: self.url(&prefix),
                    reason: format!(
                        "entry `{}` is not entry number {} of the journal: entries are missing or foreign objects were put there; remove the objects under that prefix that kiln did not write, or restore the missing ones",
                        self.url(k),
                        i + 1
                    ),
                });
            }
        }
        let seen = Seen { etag, lineage, serial, entries: keys.len() as u64 };
        Ok(Some((bytes, seen, keys)))
    }

    /// The `aws` command-line options that reach this bucket's server.
    fn cli_endpoint(&self) -> String {
        self.settings.endpoint.as_deref().map(|e| format!(" --endpoint-url {e}")).unwrap_or_default()
    }

    /// Called when the snapshot does not exist: refuses (with how to restore it) when what is
    /// left shows that it did exist and was deleted out of band: earlier versions of it in a
    /// versioned bucket (unless the workspace was deleted on purpose), its `.backup`, or journal
    /// entries. Starting afresh there would forget every object the old state tracks. A new
    /// workspace (nothing, or a lock alone) is fine. Returns whether a tombstone of a deliberate
    /// deletion is there (the next first write removes it).
    async fn check_missing(&self) -> Result<bool, StateError> {
        let url = self.url(&self.key);
        let (bucket, key, endpoint) = (&self.settings.bucket, &self.key, self.cli_endpoint());
        let refuse = |found: String, restore: String, fresh: String| {
            let reason = format!(
                "{found}: the state object was deleted. kiln will not start a new state there, which would forget every object the old one tracks (the next apply would create them all again). {restore}, then run `kiln plan` to see what changed since; if you really mean to start from nothing, {fresh} first"
            );
            StateError::Missing { path: url.clone(), reason }
        };
        let journal = self.list(&format!("{key}.journal/")).await?;
        let versioned = self.is_versioned().await?;
        let tombstone = match versioned {
            true => self.stored_at(&self.tombstone_key()).await?,
            false => None,
        };
        if versioned {
            if let Some((id, count, stored)) = self.newest_version().await? {
                // A tombstone covers the versions stored before it; one that a first write
                // failed to remove (killed right after storing its snapshot) covers nothing
                // stored since. In whole seconds: HEAD gives no finer time.
                let covered = match (&tombstone, &stored) {
                    (Some(Some(deleted)), Some(v)) => v.secs() <= deleted.secs(),
                    (Some(_), _) => true,
                    (None, _) => false,
                };
                if !covered {
                    let serial = match self.client().await.head_object().bucket(bucket).key(key).version_id(&id).send().await {
                        Ok(h) => h.metadata().and_then(|m| m.get("kiln-serial")).map(|s| format!(", serial {s}")).unwrap_or_default(),
                        Err(e) => return Err(self.io_err(key, "HeadObject", e)),
                    };
                    return Err(refuse(
                        format!("bucket versioning keeps {count} earlier version(s) of it (the newest is version `{id}`{serial})"),
                        format!(
                            "Restore the newest version with `aws s3api copy-object{endpoint} --bucket {bucket} --key {key} --copy-source '{bucket}/{key}?versionId={id}'` (`kiln state versions` lists them all; the journal entries kiln wrote on top of it are kept and read again)"
                        ),
                        format!(
                            "record that the old state is abandoned with `aws s3api put-object{endpoint} --bucket {bucket} --key {}`",
                            self.tombstone_key()
                        ),
                    ));
                }
            }
        }
        if !versioned && self.get_head(&self.backup_key()).await? {
            let backup = self.backup_key();
            return Err(refuse(
                format!("its backup `{}` does (the state before the last write)", self.url(&backup)),
                format!(
                    "Restore it with `aws s3api copy-object{endpoint} --bucket {bucket} --key {key} --copy-source '{bucket}/{backup}'` (the changes of the last write are lost unless you have a copy of the object itself)"
                ),
                format!("delete `{}`", self.url(&backup)),
            ));
        }
        if let Some(first) = journal.first() {
            return Err(refuse(
                format!(
                    "{} journal entr{} of it remain under `{}` (such as `{}`)",
                    journal.len(),
                    if journal.len() == 1 { "y" } else { "ies" },
                    self.url(&format!("{key}.journal/")),
                    self.url(first)
                ),
                "Put the state object back from a copy (the journal entries hold only the changes made on top of it)".to_string(),
                format!("delete the journal with `aws s3 rm{endpoint} --recursive s3://{bucket}/{key}.journal/`"),
            ));
        }
        Ok(tombstone.is_some())
    }

    /// When the object at `key` was stored (`Some(None)` if the server does not say); `None`
    /// if it does not exist.
    async fn stored_at(&self, key: &str) -> Result<Option<Option<aws_sdk_s3::primitives::DateTime>>, StateError> {
        match self.client().await.head_object().bucket(&self.settings.bucket).key(key).send().await {
            Ok(h) => Ok(Some(h.last_modified().copied())),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.io_err(key, "HeadObject", e)),
        }
    }

    /// Every stored version of the state object (not delete markers), in a versioned bucket,
    /// in the order S3 lists them (newest first within a page).
    async fn key_versions(&self) -> Result<Vec<aws_sdk_s3::types::ObjectVersion>, StateError> {
        let client = self.client().await;
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let r = client
                .list_object_versions()
                .bucket(&self.settings.bucket)
                .prefix(&self.key)
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .map_err(|e| self.io_err(&self.key, "ListObjectVersions", e))?;
            out.extend(r.versions().iter().filter(|v| v.key() == Some(self.key.as_str())).cloned());
            if r.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = r.next_key_marker().map(str::to_string);
            version_marker = r.next_version_id_marker().map(str::to_string);
        }
    }

    /// The newest stored version of the state object (not a delete marker), how many there
    /// are, and when it was stored, in a versioned bucket.
    #[allow(clippy::type_complexity)]
    async fn newest_version(&self) -> Result<Option<(String, usize, Option<aws_sdk_s3::primitives::DateTime>)>, StateError> {
        let versions = self.key_versions().await?;
        let mut newest: Option<&aws_sdk_s3::types::ObjectVersion> = None;
        // S3 lists a key's versions newest first; the time breaks ties across pages.
        for v in &versions {
            if newest.is_none_or(|n| matches!((v.last_modified(), n.last_modified()), (Some(a), Some(b)) if a > b)) {
                newest = Some(v);
            }
        }
        Ok(newest.map(|v| (v.version_id().unwrap_or("null").to_string(), versions.len(), v.last_modified().copied())))
    }

    fn remember(&self, seen: Option<Seen>) {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = seen;
    }

    fn remembered(&self) -> Option<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn is_versioned(&self) -> Result<bool, StateError> {
        self.versioned
            .get_or_try_init(|| async {
                let r = self
                    .client()
                    .await
                    .get_bucket_versioning()
                    .bucket(&self.settings.bucket)
                    .send()
                    .await
                    .map_err(|e| self.io_err("", "GetBucketVersioning", e))?;
                Ok(r.status().is_some_and(|s| s.as_str() == "Enabled"))
            })
            .await
            .copied()
    }

    /// `PUT` with a condition: `If-Match` an ETag, or `If-None-Match: *` when `etag` is `None`.
    /// `Ok(false)` when the condition failed (412, or 409 for a concurrent conditional write).
    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        etag: Option<&str>,
        meta: &[(&str, String)],
    ) -> Result<
        Result<String, ()>,
        (String, SdkError<aws_sdk_s3::operation::put_object::PutObjectError, aws_smithy_runtime_api::http::Response>),
    > {
        let body_copy = body.clone();
        let mut req = self.client().await.put_object().bucket(&self.settings.bucket).key(key).body(ByteStream::from(body));
        req = match etag {
            Some(e) => req.if_match(e),
            None => req.if_none_match("*"),
        };
        for (k, v) in meta {
            req = req.metadata(*k, v.clone());
        }
        let expected = body_copy;
        match req.send().await {
            Ok(o) => Ok(Ok(o.e_tag().unwrap_or_default().to_string())),
            Err(e) if matches!(status(&e), Some(412 | 409)) => {
                // A retried request whose first attempt succeeded (its answer was lost) fails its
                // own condition: what is stored is then exactly what we sent.
                match self.get(key).await {
                    Ok(Some((stored, etag))) if stored == expected => Ok(Ok(etag)),
                    _ => Ok(Err(())),
                }
            }
            Err(e) => Err((key.to_string(), e)),
        }
    }

    async fn read_lock(&self) -> Result<Option<(LockInfo, String)>, LockError> {
        let key = self.lock_key();
        let r = self.client().await.get_object().bucket(&self.settings.bucket).key(&key).send().await;
        let o = match r {
            Ok(o) => o,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.lock_err("GetObject", e)),
        };
        let etag = o.e_tag().unwrap_or_default().to_string();
        let bytes = o
            .body
            .collect()
            .await
            .map_err(|e| LockError::Io { path: self.url(&key), source: std::io::Error::other(format!("reading the lock failed: {e}")) })?;
        serde_json::from_slice::<LockInfo>(&bytes.into_bytes())
            .map(|i| Some((i, etag)))
            .map_err(|e| LockError::Corrupt { path: self.url(&key), message: e.to_string() })
    }
}

/// The HTTP status of a failed call, if it got an answer.
fn status<E, R>(e: &SdkError<E, R>) -> Option<u16>
where
    R: HasStatus,
{
    e.raw_response().map(HasStatus::status_code)
}

trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

fn meta_of(lineage: &str, serial: u64) -> [(&'static str, String); 2] {
    [("kiln-lineage", lineage.to_string()), ("kiln-serial", serial.to_string())]
}

#[async_trait::async_trait]
impl StateBackend for S3Backend {
    async fn read(&self) -> Result<Option<State>, StateError> {
        let Some((bytes, seen, keys)) = self.snapshot().await? else {
            self.remember(None);
            self.check_missing().await?;
            return Ok(None);
        };
        let url = self.url(&self.key);
        let mut state = format::decode(&self.codec.open(&bytes, &url)?, &url)?;
        for k in &keys {
            let entry_url = self.url(k);
            let (stored, _) = self.get(k).await?.ok_or_else(|| StateError::JournalMismatch {
                path: entry_url.clone(),
                reason:
                    "the journal entry disappeared while it was read: another kiln wrote the state at the same time; run the command again"
                        .into(),
            })?;
            let plain = self.codec.open(&stored, &entry_url)?;
            let mutations = format::decode_mutations(&plain).map_err(|e| {
                let mut err = StateError::Corrupt { path: entry_url.clone(), line: e.line(), column: e.column(), message: e.to_string() };
                if let StateError::Corrupt { message, .. } = &mut err {
                    message.push_str(": the journal entry is damaged; delete it to discard its changes");
                }
                err
            })?;
            for m in &mutations {
                state.apply_mutation(m);
            }
            state.serial = format::advance_serial(state.serial, 1, &entry_url)?;
        }
        self.remember(Some(seen));
        Ok(Some(state))
    }

    async fn write(&self, state: &State) -> Result<(), StateError> {
        let url = self.url(&self.key);
        let current = self.snapshot().await?;
        // A first write must not start over a state that was deleted out of band.
        let tombstone = match current {
            None => self.check_missing().await?,
            Some(_) => false,
        };
        if let Some((_, seen, _)) = &current {
            if seen.lineage != state.lineage {
                return Err(StateError::Conflict {
                    reason: format!(
                        "`{url}` holds lineage `{}` but the state to write has lineage `{}`: they are different histories; check that kiln is pointed at the right state",
                        seen.lineage, state.lineage
                    ),
                });
            }
            let stored = seen.serial + seen.entries;
            if state.serial <= stored {
                return Err(StateError::Conflict {
                    reason: format!(
                        "its serial `{}` is not greater than serial `{stored}` stored in `{url}`: the state changed since it was read; read it again and retry",
                        state.serial
                    ),
                });
            }
        }
        let sealed = self.codec.seal(&format::encode(state))?;
        if let Some((old, seen, _)) = &current {
            if !self.is_versioned().await? {
                let key = self.backup_key();
                let mut req = self.client().await.put_object().bucket(&self.settings.bucket).key(&key);
                // Its lineage and serial too, as on the snapshot (for `kiln state versions`).
                for (k, v) in meta_of(&seen.lineage, seen.serial) {
                    req = req.metadata(k, v);
                }
                req.body(ByteStream::from(old.clone())).send().await.map_err(|e| self.io_err(&key, "PutObject", e))?;
            }
        }
        let etag = current.as_ref().map(|(_, s, _)| s.etag.as_str());
        let new_etag = match self.put_if(&self.key, sealed, etag, &meta_of(&state.lineage, state.serial)).await {
            Ok(Ok(e)) => e,
            Ok(Err(())) => {
                self.remember(None);
                return Err(StateError::Conflict {
                    reason: format!(
                        "`{url}` was changed by another writer after this kiln read it (its ETag no longer matches): read the state again and retry; if two runs share this state without a lock, stop one"
                    ),
                });
            }
            Err((key, e)) => return Err(self.io_err(&key, "PutObject", e)),
        };
        self.remember(Some(Seen { etag: new_etag, lineage: state.lineage.clone(), serial: state.serial, entries: 0 }));
        if tombstone {
            // The new state is stored: from now on a deletion is refused again.
            self.delete(&self.tombstone_key()).await?;
        }
        // The old journal is folded into the new snapshot: remove it, and entries a write that
        // crashed at this point left under older snapshots. Nothing reads them any more, so a
        // failure here loses nothing.
        let fresh = self.journal_prefix(&state.lineage, state.serial);
        if current.is_some() {
            for k in self.list(&format!("{}.journal/", self.key)).await?.iter().rev() {
                if !k.starts_with(&fresh) {
                    self.delete(k).await?;
                }
            }
        }
        Ok(())
    }

    async fn append(&self, mutations: &[Mutation]) -> Result<(), StateError> {
        if mutations.is_empty() {
            return Ok(());
        }
        // Is what this client saw still the stored snapshot? One HEAD; else look again.
        let head = self.client().await.head_object().bucket(&self.settings.bucket).key(&self.key).send().await;
        let etag = match head {
            Ok(h) => h.e_tag().unwrap_or_default().to_string(),
            Err(e) if status(&e) == Some(404) => return Err(StateError::NoState { path: self.url(&self.key) }),
            Err(e) => return Err(self.io_err(&self.key, "HeadObject", e)),
        };
        let seen = match self.remembered() {
            Some(s) if s.etag == etag => s,
            _ => match self.snapshot().await? {
                Some((_, s, _)) => s,
                None => return Err(StateError::NoState { path: self.url(&self.key) }),
            },
        };
        let n = seen.entries + 1;
        let key = format!("{}{n:08}", self.journal_prefix(&seen.lineage, seen.serial));
        let sealed = self.codec.seal(&serde_json::to_vec(&MutationsOut(mutations)).map_err(|e| StateError::Corrupt {
            path: self.url(&key),
            line: 0,
            column: 0,
            message: e.to_string(),
        })?)?;
        match self.put_if(&key, sealed, None, &[]).await {
            Ok(Ok(_)) => {
                self.remember(Some(Seen { entries: n, ..seen }));
                Ok(())
            }
            Ok(Err(())) => {
                self.remember(None);
                Err(StateError::Conflict {
                    reason: format!(
                        "journal entry `{}` was written by another kiln at the same time: two runs are changing this state; is it locked?",
                        self.url(&key)
                    ),
                })
            }
            Err((key, e)) => Err(self.io_err(&key, "PutObject", e)),
        }
    }

    async fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let body = serde_json::to_vec_pretty(info).expect("lock info encodes");
        for _ in 0..20 {
            match self.put_if(&self.lock_key(), body.clone(), None, &[]).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(())) => {
                    if let Some((holder, _)) = self.read_lock().await? {
                        return Err(LockError::Held { stale: holder.is_stale(), holder, path: self.url(&self.key) });
                    }
                    // Released between our two calls: try again.
                }
                Err((_, e)) => return Err(self.lock_err("PutObject", e)),
            }
        }
        Err(LockError::Io {
            path: self.url(&self.lock_key()),
            source: std::io::Error::other("the lock object keeps appearing and disappearing"),
        })
    }

    async fn unlock(&self, id: &str) -> Result<(), LockError> {
        match self.read_lock().await? {
            None => Err(LockError::NotHeld),
            Some((h, _)) if h.id != id => Err(LockError::Mismatch { expected: id.to_string(), found: h.id }),
            Some((_, etag)) => {
                // Only the lock just read: if it was broken and taken again meanwhile, S3
                // answers 412 and the new holder keeps it.
                let key = self.lock_key();
                match self.client().await.delete_object().bucket(&self.settings.bucket).key(&key).if_match(etag).send().await {
                    Ok(_) => Ok(()),
                    Err(e) if status(&e) == Some(412) => match self.read_lock().await? {
                        Some((h, _)) => Err(LockError::Mismatch { expected: id.to_string(), found: h.id }),
                        None => Err(LockError::NotHeld),
                    },
                    Err(e) => Err(self.lock_err("DeleteObject", e)),
                }
            }
        }
    }

    async fn force_unlock(&self, id: &str) -> Result<(), LockError> {
        self.unlock(id).await
    }

    async fn lock_info(&self) -> Result<Option<LockInfo>, LockError> {
        Ok(self.read_lock().await?.map(|(i, _)| i))
    }

    async fn renew_lock(&self, info: &LockInfo) -> Result<(), LockError> {
        match self.read_lock().await? {
            None => Err(LockError::NotHeld),
            Some((h, _)) if h.id != info.id => Err(LockError::Mismatch { expected: info.id.clone(), found: h.id }),
            Some((_, etag)) => {
                let body = serde_json::to_vec_pretty(info).expect("lock info encodes");
                match self.put_if(&self.lock_key(), body, Some(&etag), &[]).await {
                    Ok(Ok(_)) => Ok(()),
                    // Replaced between our read and write: whoever holds it now is not us.
                    Ok(Err(())) => match self.read_lock().await? {
                        None => Err(LockError::NotHeld),
                        Some((h, _)) => Err(LockError::Mismatch { expected: info.id.clone(), found: h.id }),
                    },
                    Err((_, e)) => Err(self.lock_err("PutObject", e)),
                }
            }
        }
    }

    async fn versions(&self) -> Result<Vec<StateVersion>, StateError> {
        let client = self.client().await;
        let mut out = Vec::new();
        if self.is_versioned().await? {
            out = self
                .key_versions()
                .await?
                .iter()
                .map(|v| StateVersion {
                    id: v.version_id().unwrap_or("null").to_string(),
                    serial: None,
                    stored: v.last_modified().map(|t| t.to_string()),
                    size: v.size().unwrap_or_default().max(0) as u64,
                    current: v.is_latest() == Some(true),
                })
                .collect();
            // Newest first: the API lists a key's versions newest first; keep that, current first.
            out.sort_by(|a, b| b.current.cmp(&a.current).then_with(|| b.stored.cmp(&a.stored)));
            // Serials from the metadata, for the most recent ones (one HEAD each).
            for v in out.iter_mut().take(50) {
                if let Ok(h) = client.head_object().bucket(&self.settings.bucket).key(&self.key).version_id(&v.id).send().await {
                    v.serial = h.metadata().and_then(|m| m.get("kiln-serial")).and_then(|s| s.parse().ok());
                }
            }
        } else {
            for (id, key) in [("current", self.key.clone()), ("backup", self.backup_key())] {
                if let Ok(h) = client.head_object().bucket(&self.settings.bucket).key(&key).send().await {
                    out.push(StateVersion {
                        id: id.to_string(),
                        serial: h.metadata().and_then(|m| m.get("kiln-serial")).and_then(|s| s.parse().ok()),
                        stored: h.last_modified().map(|t| t.to_string()),
                        size: h.content_length().unwrap_or_default().max(0) as u64,
                        current: id == "current",
                    });
                }
            }
        }
        Ok(out)
    }

    async fn workspaces(&self) -> Result<Vec<String>, StateError> {
        let mut names = Vec::new();
        if self.get_head(&self.settings.key).await? {
            names.push(DEFAULT_WORKSPACE.to_string());
        }
        let prefix = format!("{}/", self.settings.prefix());
        let suffix = format!("/{}", self.settings.key);
        for k in self.list(&prefix).await? {
            if let Some(name) = k.strip_prefix(&prefix).and_then(|r| r.strip_suffix(&suffix)) {
                if kiln_state::check_workspace_name(name).is_ok() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn delete_state(&self) -> Result<(), StateError> {
        for k in self.list(&format!("{}.journal/", self.key)).await? {
            self.delete(&k).await?;
        }
        self.delete(&self.key).await?;
        self.delete(&self.backup_key()).await?;
        self.remember(None);
        // The bucket keeps the deleted versions: record that they were deleted on purpose, so a
        // new state may start here. Last, so a deletion cut short is refused (and explained) by
        // the next read rather than taken for a deliberate one.
        if self.is_versioned().await? {
            let key = self.tombstone_key();
            let body = serde_json::to_vec_pretty(&serde_json::json!({
                "deleted_by": "kiln",
                "deleted": LockInfo::new("delete").created,
            }))
            .expect("tombstone encodes");
            self.client()
                .await
                .put_object()
                .bucket(&self.settings.bucket)
                .key(&key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| self.io_err(&key, "PutObject", e))?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.url(&self.key)
    }
}

impl S3Backend {
    /// Whether an object exists.
    async fn get_head(&self, key: &str) -> Result<bool, StateError> {
        match self.client().await.head_object().bucket(&self.settings.bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.io_err(key, "HeadObject", e)),
        }
    }
}

/// Creates `bucket` with versioning enabled, if it does not exist (for tests and tools setting
/// up a fresh S3-compatible server; kiln itself never creates buckets). Returns whether it was
/// created.
pub async fn ensure_bucket(settings: &S3Settings) -> Result<bool, StateError> {
    let b = S3Backend::new(settings.clone());
    let client = b.client().await;
    let url = format!("s3://{}", settings.bucket);
    if client.head_bucket().bucket(&settings.bucket).send().await.is_ok() {
        return Ok(false);
    }
    let mut req = client.create_bucket().bucket(&settings.bucket);
    if let Some(r) = settings.region.as_deref().filter(|r| *r != "us-east-1") {
        req = req.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(r))
                .build(),
        );
    }
    req.send()
        .await
        .map_err(|e| StateError::Io { path: url.clone(), source: std::io::Error::other(sdk_message("CreateBucket", settings, e)) })?;
    client
        .put_bucket_versioning()
        .bucket(&settings.bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder().status(aws_sdk_s3::types::BucketVersioningStatus::Enabled).build(),
        )
        .send()
        .await
        .map_err(|e| StateError::Io { path: url, source: std::io::Error::other(sdk_message("PutBucketVersioning", settings, e)) })?;
    Ok(true)
}
