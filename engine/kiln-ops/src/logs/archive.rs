//! The archives of destroyed jobs' logs: where they are kept ([`Store`]), how long, writing
//! them before an apply deletes a job and finding them again (see the
//! [module's documentation](super)).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kiln_core::Providers;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_plan::{Action, Plan};
use kiln_provider::logs::parse_duration;
use kiln_provider::portable::job::parse_log_retention;
use kiln_provider::{LogSeek, Provider, StoreOp, StoreRequest, StoreResponse};
use kiln_value::Value;

use super::read::{node_count, Source};

/// How long an archive is kept without `KILN_LOG_RETENTION`.
const DEFAULT_RETENTION: &str = "7d";

/// The most of each node's log an archive keeps (its end): a destroy never downloads
/// unbounded logs.
const ARCHIVE_MAX_BYTES: u64 = 256 << 20;

/// [`ARCHIVE_MAX_BYTES`]; debug builds take `KILN_TEST_LOG_ARCHIVE_MAX` (bytes) so tests can
/// reach the limit.
fn archive_max() -> u64 {
    std::env::var("KILN_TEST_LOG_ARCHIVE_MAX")
        .ok()
        .filter(|_| cfg!(debug_assertions))
        .and_then(|v| v.parse().ok())
        .unwrap_or(ARCHIVE_MAX_BYTES)
}

/// Where archives go when the job has no bucket that outlives it (under the configuration's
/// directory).
const ARCHIVE_DIR: &str = ".kiln/logs";

/// Where archives go in a directory bucket.
const BUCKET_ARCHIVE_DIR: &str = "kiln-logs";

/// An archived job's `job.json`.
pub struct ArchiveMeta {
    /// The workspace whose state held the job (`kiln logs` in another workspace does not show it).
    pub workspace: String,
    pub address: String,
    pub job_id: String,
    pub nodes: usize,
    pub destroyed_at: String,
    pub expires_at: String,
    /// The job's `restarts` when it was destroyed: which attempt of the job's address these logs
    /// are (`kiln logs --attempt N`); `None` in archives written before it was kept.
    pub attempt: Option<u64>,
}

impl ArchiveMeta {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "workspace": self.workspace,
            "address": self.address,
            "job_id": self.job_id,
            "nodes": self.nodes,
            "destroyed_at": self.destroyed_at,
            "expires_at": self.expires_at,
            "attempt": self.attempt,
        })
    }

    fn from_json(v: &serde_json::Value) -> Option<ArchiveMeta> {
        let s = |k: &str| v.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
        Some(ArchiveMeta {
            workspace: s("workspace").unwrap_or_else(|| kiln_state::DEFAULT_WORKSPACE.to_string()),
            address: s("address")?,
            job_id: s("job_id")?,
            nodes: v.get("nodes").and_then(serde_json::Value::as_u64)? as usize,
            destroyed_at: s("destroyed_at")?,
            expires_at: s("expires_at")?,
            attempt: v.get("attempt").and_then(serde_json::Value::as_u64),
        })
    }

    fn expired(&self, now: DateTime<Utc>) -> bool {
        DateTime::parse_from_rfc3339(&self.expires_at).is_ok_and(|t| t.with_timezone(&Utc) <= now)
    }
}

/// Where archives are kept: each archive is `JOB_ID/` under the store's root.
pub enum Store {
    /// A directory of this machine: `.kiln/logs/`, or a `local` bucket's `kiln-logs/`.
    Dir(PathBuf),
    /// `kiln-logs/` in a bucket whose provider keeps kiln's files ([`Provider::store`]): an S3
    /// bucket, an onprem host's directory; everyone sharing the state reads them.
    Bucket { provider: Arc<dyn Provider>, address: String, state: Value },
}

/// One archive: its store and its job directory there (`JOB_ID`).
pub struct Archive<'s> {
    pub store: &'s Store,
    pub job: String,
    pub meta: ArchiveMeta,
}

impl Store {
    /// How people see where an archive is.
    pub fn describe(&self) -> String {
        match self {
            Store::Dir(d) => d.display().to_string(),
            Store::Bucket { address, state, .. } => match state.get("uri").and_then(Value::as_str) {
                Some(uri) => format!("{}/{BUCKET_ARCHIVE_DIR} ({address})", uri.trim_end_matches('/')),
                None => format!("{BUCKET_ARCHIVE_DIR}/ of {address}"),
            },
        }
    }

    async fn op(&self, op: StoreOp<'_>) -> Result<StoreResponse, Diagnostics> {
        let Store::Bucket { provider, address, state } = self else { unreachable!("directories are read directly") };
        let r = provider.store(StoreRequest { address, kind: "bucket", state, op }).await;
        if r.diagnostics.has_errors() {
            return Err(r.diagnostics);
        }
        Ok(r)
    }

    fn key(rel: &str) -> String {
        format!("{BUCKET_ARCHIVE_DIR}/{rel}")
    }

    async fn put(&self, rel: &str, data: &[u8]) -> Result<(), Diagnostics> {
        match self {
            Store::Dir(root) => {
                let path = root.join(rel);
                let io = |e: std::io::Error| {
                    Diagnostics::from(Diagnostic::error("E-LOGS-ARCHIVE", format!("cannot write {}: {e}", path.display())))
                };
                if let Some(parent) = path.parent() {
                    create_private_dir(parent).map_err(io)?;
                }
                let mut f = private_file(&path).map_err(io)?;
                std::io::Write::write_all(&mut f, data).map_err(io)
            }
            Store::Bucket { .. } => self.op(StoreOp::Put { key: &Self::key(rel), data }).await.map(|_| ()),
        }
    }

    /// Up to `len` bytes of `rel` from `offset`, and its size.
    pub(crate) async fn get(&self, rel: &str, offset: u64, len: u64) -> Result<(Vec<u8>, u64), Diagnostics> {
        match self {
            Store::Dir(root) => {
                use std::io::{Read, Seek, SeekFrom};
                let path = root.join(rel);
                let io = |e: std::io::Error| {
                    Diagnostics::from(
                        Diagnostic::error("E-LOGS-ARCHIVE", format!("cannot read the archived log {}: {e}", path.display()))
                            .hint("the archive may have been pruned meanwhile (its retention ended)"),
                    )
                };
                let mut f = std::fs::File::open(&path).map_err(io)?;
                let size = f.metadata().map_err(io)?.len();
                f.seek(SeekFrom::Start(offset.min(size))).map_err(io)?;
                let mut data = Vec::new();
                f.take(len).read_to_end(&mut data).map_err(io)?;
                Ok((data, size))
            }
            Store::Bucket { .. } => {
                let r = self.op(StoreOp::Get { key: &Self::key(rel), offset, len }).await?;
                Ok((r.data, r.size))
            }
        }
    }

    /// The archives kept here (unreadable ones left out).
    async fn archives(&self) -> Result<Vec<Archive<'_>>, Diagnostics> {
        let mut jobs = Vec::new();
        // Every file's path under the root (`JOB/node-0.log`), to count each archive's node logs.
        let mut files: Vec<String> = Vec::new();
        match self {
            Store::Dir(root) => {
                let Ok(entries) = std::fs::read_dir(root) else { return Ok(Vec::new()) };
                jobs.extend(entries.flatten().filter(|e| e.path().is_dir()).filter_map(|e| e.file_name().to_str().map(str::to_string)));
                for job in &jobs {
                    let Ok(entries) = std::fs::read_dir(root.join(job)) else { continue };
                    files.extend(entries.flatten().filter_map(|e| e.file_name().to_str().map(|f| format!("{job}/{f}"))));
                }
            }
            Store::Bucket { .. } => {
                let keys = self.op(StoreOp::List { prefix: &format!("{BUCKET_ARCHIVE_DIR}/") }).await?.keys;
                let under = format!("{BUCKET_ARCHIVE_DIR}/");
                files.extend(keys.iter().filter_map(|k| k.strip_prefix(&under)).map(str::to_string));
                jobs.extend(
                    keys.iter()
                        .filter_map(|k| k.strip_prefix(&under)?.strip_suffix("/job.json"))
                        .filter(|j| !j.contains('/'))
                        .map(str::to_string),
                );
            }
        }
        let mut out = Vec::new();
        for job in jobs.into_iter().filter(|j| !j.starts_with('.')) {
            let Ok((bytes, _)) = self.get(&format!("{job}/job.json"), 0, 1 << 20).await else { continue };
            let meta = serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|v| ArchiveMeta::from_json(&v));
            if let Some(mut meta) = meta {
                // No more nodes than it keeps logs of (its job.json may say anything).
                let logs = files
                    .iter()
                    .filter(|f| f.strip_prefix(&job).and_then(|f| f.strip_prefix("/node-")).is_some_and(|f| f.ends_with(".log")))
                    .count();
                meta.nodes = meta.nodes.min(logs);
                out.push(Archive { store: self, job, meta });
            }
        }
        Ok(out)
    }

    /// Removes the archive `job` (its `job.json` first, so it is never half there).
    async fn remove(&self, job: &str) -> Result<(), Diagnostics> {
        match self {
            Store::Dir(root) => {
                let _ = std::fs::remove_file(root.join(job).join("job.json"));
                let _ = std::fs::remove_dir_all(root.join(job));
                Ok(())
            }
            Store::Bucket { .. } => {
                self.op(StoreOp::Delete { keys: &[Self::key(&format!("{job}/job.json"))] }).await?;
                let keys = self.op(StoreOp::List { prefix: &Self::key(&format!("{job}/")) }).await?.keys;
                if !keys.is_empty() {
                    self.op(StoreOp::Delete { keys: &keys }).await?;
                }
                Ok(())
            }
        }
    }

    /// Removes the archives whose retention has ended; answers the others.
    async fn prune(&self) -> Result<Vec<Archive<'_>>, Diagnostics> {
        let now = Utc::now();
        let (expired, kept): (Vec<_>, Vec<_>) = self.archives().await?.into_iter().partition(|a| a.meta.expired(now));
        for a in expired {
            self.remove(&a.job).await?;
        }
        Ok(kept)
    }
}

/// How long a job's archive is kept: `KILN_LOG_RETENTION` when set, else the job's
/// `log_retention`, else 7 days. An unreadable setting keeps the default (and says so).
fn retention(job: Option<&Value>) -> Result<Duration, String> {
    if let Ok(v) = std::env::var("KILN_LOG_RETENTION") {
        return parse_log_retention(&v).map_err(|e| format!("KILN_LOG_RETENTION: {e}"));
    }
    match job.and_then(|j| j.get("log_retention")).and_then(Value::as_str) {
        Some(v) => parse_log_retention(v).map_err(|e| format!("log_retention: {e}")),
        None => parse_log_retention(DEFAULT_RETENTION),
    }
}

pub fn retention_text() -> String {
    std::env::var("KILN_LOG_RETENTION").unwrap_or_else(|_| DEFAULT_RETENTION.to_string())
}

pub fn is_local(provider: &str) -> bool {
    provider == "local" || provider.starts_with("local.")
}

fn bucket_dir(bucket: &Value) -> Option<PathBuf> {
    bucket.get("uri").and_then(Value::as_str).and_then(|u| u.strip_prefix("file://")).map(PathBuf::from)
}

/// Every place archives may be: `.kiln/logs/`, `kiln-logs/` in each `local` bucket's directory
/// (another provider's directory bucket, such as an onprem host's, is not this machine's), and
/// `kiln-logs/` in each other bucket in state whose provider is configured in `providers`.
pub fn stores(dir: &Path, state: &kiln_state::State, providers: Option<&Providers>) -> Vec<Store> {
    let mut out = vec![Store::Dir(dir.join(ARCHIVE_DIR))];
    for (addr, r) in state.resources.iter().filter(|(_, r)| r.kind == "bucket") {
        if is_local(&r.provider) {
            out.extend(bucket_dir(&r.attributes).map(|b| Store::Dir(b.join(BUCKET_ARCHIVE_DIR))));
        } else if let Some(p) = providers.and_then(|p| p.get(&r.provider)) {
            out.push(Store::Bucket { provider: p, address: addr.to_string(), state: r.attributes.clone() });
        }
    }
    out
}

/// Whether a store's failure only says its provider keeps no files.
fn cannot_store(d: &Diagnostics) -> bool {
    d.errors().all(|e| e.code == "E-PROVIDER-STORE")
}

fn summary(d: &Diagnostics) -> String {
    d.errors().map(|e| e.summary.clone()).collect::<Vec<_>>().join("; ")
}

/// The newest unexpired archive of `address` in `workspace` among `stores`, pruning expired ones
/// on the way; a bucket that cannot be read is a warning.
pub async fn find_archive<'s>(
    warn: &(dyn Fn(String) + Sync),
    stores: &'s [Store],
    workspace: &str,
    address: &str,
    attempt: Option<u64>,
) -> Option<Archive<'s>> {
    let mut found: Vec<Archive<'s>> = Vec::new();
    let wanted =
        |a: &Archive<'_>| a.meta.address == address && a.meta.workspace == workspace && attempt.is_none_or(|n| a.meta.attempt == Some(n));
    for s in stores {
        match s.prune().await {
            Ok(kept) => found.extend(kept.into_iter().filter(wanted)),
            Err(d) if cannot_store(&d) => {}
            Err(d) => warn(format!("cannot look for destroyed jobs' logs in {}: {}", s.describe(), summary(&d))),
        }
    }
    found.into_iter().max_by(|a, b| a.meta.destroyed_at.cmp(&b.meta.destroyed_at))
}

/// Before `plan`'s deletes and replacements of jobs run: each such job's logs, every node's,
/// read through its provider and archived (see the module's documentation). Never stops the
/// apply: a log that cannot be archived is a warning (given to `warn`). `configure` configures
/// `providers` for `state` (the caller's registry), answering whether it could.
pub async fn archive_before_delete(
    dir: &Path,
    workspace: &str,
    providers: &Providers,
    state: &kiln_state::State,
    plan: &Plan,
    configure: impl std::future::Future<Output = bool>,
    warn: &(dyn Fn(String) + Sync),
) {
    let jobs: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.kind == "job" && matches!(c.action, Action::Delete | Action::Replace) && c.before.is_some())
        .collect();
    if jobs.is_empty() {
        return;
    }
    let local = Store::Dir(dir.join(ARCHIVE_DIR));
    let _ = local.prune().await;
    if !configure.await {
        warn("cannot configure the providers to archive the logs of the jobs this apply destroys".to_string());
        return;
    }
    // Buckets this plan deletes do not outlive it.
    let deleted: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.kind == "bucket" && matches!(c.action, Action::Delete | Action::Replace))
        .map(|c| c.address.to_string())
        .collect();
    for c in jobs {
        let before = c.before.as_ref().expect("filtered");
        let name = c.address.to_string();
        let keep = match retention(Some(before)) {
            Ok(d) => d,
            Err(e) => {
                warn(format!("{name}: {e}; keeping its logs for {DEFAULT_RETENTION}"));
                parse_duration(DEFAULT_RETENTION).unwrap_or_default()
            }
        };
        if keep.is_zero() {
            continue;
        }
        let Some(p) = providers.get(&c.provider) else { continue };
        let src = Source::Live { provider: p, address: &name, kind: &c.kind, state: before };
        let mut done = false;
        if let Some(store) = job_bucket(state, providers, before, &deleted) {
            let _ = store.prune().await;
            match archive_job(&src, &store, workspace, keep).await {
                Ok(()) => done = true,
                Err(d) if cannot_store(&d) => {}
                Err(d) => warn(format!(
                    "{name}: its logs could not be kept in {}: {}; keeping them under {ARCHIVE_DIR}/ instead",
                    store.describe(),
                    summary(&d)
                )),
            }
        }
        if !done {
            if let Err(d) = archive_job(&src, &local, workspace, keep).await {
                warn(format!("{name}: its logs could not be kept after destroy: {}", summary(&d)));
            }
        }
    }
}

/// The store in the job's checkpoint bucket, when that bucket is in state and outlives the
/// apply (not among `deleted`).
fn job_bucket(state: &kiln_state::State, providers: &Providers, job: &Value, deleted: &[String]) -> Option<Store> {
    let bucket = job.get("checkpoint").and_then(|ck| ck.get("bucket"))?;
    let uri = bucket.get("uri").and_then(Value::as_str)?;
    let (addr, r) = state.resources.iter().find(|(a, r)| {
        r.kind == "bucket" && r.attributes.get("uri").and_then(Value::as_str) == Some(uri) && !deleted.contains(&a.to_string())
    })?;
    if is_local(&r.provider) {
        return bucket_dir(&r.attributes).filter(|b| b.is_dir()).map(|b| Store::Dir(b.join(BUCKET_ARCHIVE_DIR)));
    }
    Some(Store::Bucket { provider: providers.get(&r.provider)?, address: addr.to_string(), state: r.attributes.clone() })
}

fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

/// Reads every node's log (at most the last [`archive_max`] bytes of each) and writes the
/// archive `JOB_ID/` into `store`: the logs first, `job.json` last, so a reader never sees half
/// an archive. `src` is the live job: its state names its ID, nodes and attempt (`restarts`).
async fn archive_job(src: &Source<'_>, store: &Store, workspace: &str, keep: Duration) -> Result<(), Diagnostics> {
    let Source::Live { address, state: before, .. } = src else { return Ok(()) };
    let job_id = before.get("job_id").and_then(Value::as_str).map_or_else(|| slug(address), str::to_string);
    let nodes = node_count(before);
    let job = slug(&job_id);
    store.remove(&job).await?;
    let mut written = 0;
    for node in 0..nodes {
        let mut log = Vec::new();
        let end = src.read(node, 0, Some(LogSeek::End)).await?;
        let mut all_nodes = end.all_nodes;
        // Up to where the log ends now: a running job's log grows while it is read.
        let size = end.next_offset;
        // A log longer than the archive keeps: its end, from a line start.
        let mut at = size.saturating_sub(archive_max());
        let mut skip_line = at > 0;
        if at > 0 {
            log.extend_from_slice(format!("[kiln: the first {at} bytes of this log were not kept after destroy]\n").as_bytes());
            at -= 1;
        }
        while at < size {
            let c = src.read(node, at, None).await?;
            all_nodes |= c.all_nodes;
            if c.data.is_empty() {
                break;
            }
            let mut data: &[u8] = &c.data[..c.data.len().min((size - at) as usize)];
            if skip_line {
                let Some(i) = data.iter().position(|b| *b == b'\n') else {
                    at = c.next_offset;
                    continue;
                };
                data = &data[i + 1..];
                skip_line = false;
            }
            log.extend_from_slice(data);
            at = c.next_offset;
        }
        store.put(&format!("{job}/node-{node}.log"), &log).await?;
        written += 1;
        if all_nodes {
            // One log holds every node's output.
            break;
        }
    }
    let now = Utc::now();
    let expires = now + chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(7));
    let meta = ArchiveMeta {
        workspace: workspace.to_string(),
        address: address.to_string(),
        job_id: job_id.to_string(),
        nodes: written,
        destroyed_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        attempt: Some(kiln_provider::portable::job::restarts_of(before)),
    };
    let text = serde_json::to_vec_pretty(&meta.to_json()).map_err(|e| Diagnostic::error("E-LOGS-ARCHIVE", e.to_string()))?;
    store.put(&format!("{job}/job.json"), &text).await
}

/// Logs may hold what a job printed of its secrets: archives are private to their owner.
fn create_private_dir(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(p)
}

fn private_file(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Archiving a running job's log reads it up to where it ended when the archiving began,
    /// not after its end as it keeps growing.
    #[tokio::test]
    async fn a_growing_log_is_archived_up_to_its_end() {
        let provider = Arc::new(crate::jobs::tests::Endless::with_history(16_000));
        let state = Value::from_json(&serde_json::json!({ "job_id": "j-1", "nodes": 1 }));
        let src = Source::Live { provider: provider.clone(), address: "job.train", kind: "job", state: &state };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Dir(dir.path().to_path_buf());
        archive_job(&src, &store, "default", Duration::from_secs(60)).await.unwrap();
        let log = std::fs::read(dir.path().join("j-1/node-0.log")).unwrap();
        // The end was 16,000 + 2,000 bytes when measured (by the first read).
        assert_eq!(log.len(), 18_000);
        assert!(provider.reads() < 30, "{} reads", provider.reads());
    }

    /// An archive's job.json claiming more nodes than it keeps logs of is read with those it keeps.
    #[tokio::test]
    async fn an_archive_has_the_nodes_it_keeps_logs_of() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Dir(dir.path().to_path_buf());
        std::fs::create_dir(dir.path().join("j-1")).unwrap();
        std::fs::write(dir.path().join("j-1/node-0.log"), "x\n").unwrap();
        std::fs::write(dir.path().join("j-1/node-1.log"), "y\n").unwrap();
        let meta = r#"{"address": "job.train", "job_id": "j-1", "nodes": 1000000000000, "destroyed_at": "2026-01-01T00:00:00Z", "expires_at": "2999-01-01T00:00:00Z"}"#;
        std::fs::write(dir.path().join("j-1/job.json"), meta).unwrap();
        let archives = store.archives().await.unwrap();
        assert_eq!(archives.len(), 1);
        assert_eq!(archives[0].meta.nodes, 2);
    }
}
