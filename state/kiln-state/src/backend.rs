//! The [`StateBackend`] trait every state storage implements (local files now, S3 and
//! Postgres later), and [`LockInfo`], the record of who holds a state lock.

use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::{LockError, Mutation, State, StateError};

/// Where state lives. Every implementation must pass [`crate::conformance::run`].
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
    /// Human description such as `.kiln/state.json`, for messages.
    fn describe(&self) -> String;
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
        }
    }

    /// True when the holder ran on this host and its process no longer exists, so nobody will
    /// ever release the lock. A holder on another host is never considered stale.
    pub fn is_stale(&self) -> bool {
        self.host == current_host() && self.pid != std::process::id() && !process_alive(self.pid)
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
fn process_alive(pid: u32) -> bool {
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
