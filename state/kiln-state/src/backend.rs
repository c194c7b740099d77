//! The [`StateBackend`] trait every state storage implements (local files, S3, PostgreSQL),
//! [`LockInfo`], the record of who holds a state lock (with its lease), and [`StateVersion`],
//! one stored version of a state.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{LockError, Mutation, State, StateError};

/// The workspace every storage has, and the one used unless another is selected.
pub const DEFAULT_WORKSPACE: &str = "default";

/// Where state lives. Every implementation must pass [`crate::conformance::run`].
///
/// One value of an implementation addresses the state of ONE workspace of its storage (chosen
/// when it is built); [`StateBackend::workspaces`] lists every workspace of the storage. Every
/// stored document (snapshots, previous versions, journal records) goes through the backend's
/// [`crate::Codec`]; lock records are stored as they are.
#[async_trait::async_trait]
pub trait StateBackend: Send + Sync {
    /// Current state, `None` if there is none yet. Folds in mutations journaled by an interrupted run.
    async fn read(&self) -> Result<Option<State>, StateError>;
    /// Persists a full snapshot atomically. Refuses (StateError::Conflict) a different lineage or a serial not greater than the stored one. Keeps the previous snapshot as a backup. Clears the journal.
    async fn write(&self, state: &State) -> Result<(), StateError>;
    /// Durably records mutations on top of the last snapshot (one write + one fsync per call: callers batch = group commit). Each call counts as one serial increment on replay.
    async fn append(&self, mutations: &[Mutation]) -> Result<(), StateError>;
    async fn lock(&self, info: &LockInfo) -> Result<(), LockError>;
    async fn unlock(&self, id: &str) -> Result<(), LockError>;
    /// Removes a lock whatever its holder, if its id matches.
    async fn force_unlock(&self, id: &str) -> Result<(), LockError>;
    /// The lock currently held, if any.
    async fn lock_info(&self) -> Result<Option<LockInfo>, LockError>;
    /// Replaces the stored lock record with `info` (a renewed lease) if the lock held has the
    /// same ID; `NotHeld` or `Mismatch` otherwise (the lock was broken by someone else).
    async fn renew_lock(&self, info: &LockInfo) -> Result<(), LockError>;
    /// Stored versions of this workspace's state, newest first: the current one and the
    /// previous ones the storage keeps (a backup file, bucket versioning, a history table).
    async fn versions(&self) -> Result<Vec<StateVersion>, StateError>;
    /// Names of the workspaces that have a state in this storage, sorted.
    async fn workspaces(&self) -> Result<Vec<String>, StateError>;
    /// Deletes this workspace's state: snapshot, journal and the previous versions the backend
    /// manages itself (bucket versions are left to the bucket's lifecycle). The caller checks
    /// that it is empty or that the user insisted, and holds the lock.
    async fn delete_state(&self) -> Result<(), StateError>;
    /// Human description such as `.kiln/state.json`, for messages.
    fn describe(&self) -> String;
}

/// One stored version of a state, as `kiln state versions` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateVersion {
    /// What names this version in the storage: `current`/`backup`, an S3 version ID, a history row.
    pub id: String,
    /// Serial of the snapshot, when the storage records it without reading the document.
    pub serial: Option<u64>,
    /// RFC 3339 time the version was stored, when known.
    pub stored: Option<String>,
    /// Size in bytes as stored.
    pub size: u64,
    /// The version `read` starts from.
    pub current: bool,
}

/// Who holds a state lock, stored with the lock so that others can say who to wait for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Random UUID naming this lock; `unlock` and `force-unlock` take it.
    pub id: String,
    /// What the holder is doing: `apply`, `plan`, `destroy`, ...
    pub operation: String,
    /// `user@host`.
    pub who: String,
    pub host: String,
    pub pid: u32,
    /// RFC 3339 time the lock was taken.
    pub created: String,
    /// Version of the kiln that took the lock.
    pub version: String,
    /// RFC 3339 time the lease ends unless the holder renews it. A lock whose lease has ended is
    /// stale: its holder stopped renewing (crashed, killed, or lost its connection). Locks
    /// written without a lease (older kilns) have none and never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl LockInfo {
    /// A lock for `operation` held by this process: fresh ID, current user, host, pid and time.
    pub fn new(operation: impl Into<String>) -> Self {
        let host = current_host().to_string();
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            operation: operation.into(),
            who: format!("{}@{host}", current_user()),
            host,
            pid: std::process::id(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            version: crate::format::KILN_VERSION.to_string(),
            expires: None,
        }
    }

    /// The same lock with a lease of `lease` from now (see [`LockInfo::expires`]).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.renew(lease);
        self
    }

    /// Extends the lease to `lease` from now.
    pub fn renew(&mut self, lease: Duration) {
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let until = chrono::Utc::now().checked_add_signed(lease).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        self.expires = Some(until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }

    /// True when the lock has a lease and it has ended. An unreadable expiry counts as ended
    /// only if it is not a time at all (it is never "in the future").
    pub fn lease_expired(&self) -> bool {
        match &self.expires {
            None => false,
            Some(t) => chrono::DateTime::parse_from_rfc3339(t).map_or(true, |t| t < chrono::Utc::now()),
        }
    }

    /// True when nobody will release the lock: its lease ended, or its holder ran on this host
    /// and its process no longer exists. A holder on another host with a live (or no) lease is
    /// never considered stale.
    pub fn is_stale(&self) -> bool {
        if self.pid == std::process::id() && self.host == current_host() {
            return false;
        }
        self.lease_expired() || (self.host == current_host() && !process_alive(self.pid))
    }
}

impl LockInfo {
    /// Whether the holder may still be running: on this host, whether its process exists; on
    /// another host, whether its lease has not ended (a lock without a lease from another host
    /// cannot be checked, and counts as not known to be alive). `kiln force-unlock` refuses to
    /// break the lock of a holder that may be alive unless told `--force`.
    pub fn holder_may_be_alive(&self) -> bool {
        if self.host == current_host() {
            process_alive(self.pid)
        } else {
            self.expires.is_some() && !self.lease_expired()
        }
    }
}

/// This machine's host name, as recorded in [`LockInfo::host`].
pub fn current_host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string())
            .chain(["HOSTNAME", "COMPUTERNAME"].iter().filter_map(|v| std::env::var(v).ok()))
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    })
}

fn current_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Whether process `pid` exists on this host. Errs towards "alive" when it cannot tell, so a
/// live lock is never reported stale.
pub(crate) fn process_alive(pid: u32) -> bool {
    if pid == 0 {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        if !Path::new("/proc/self").exists() {
            return true; // no procfs mounted: cannot tell
        }
        Path::new(&format!("/proc/{pid}")).exists()
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        let _ = Path::new; // procfs is Linux-only
        let Ok(pid) = libc::pid_t::try_from(pid) else { return true };
        // SAFETY: signal 0 sends nothing; kill only checks that the process exists.
        #[allow(unsafe_code)]
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = Path::new;
        true
    }
}

/// Checks a workspace name: 1 to 64 ASCII letters, digits, `-` and `_`, so that it is safe as a
/// directory name, an object key segment and a table key. The error says what is allowed.
pub fn check_workspace_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid workspace name: use 1 to 64 letters, digits, `-` and `_` (for example `staging`)"))
    }
}
