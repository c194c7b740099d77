//! The errors of state storage: [`StateError`] for reading and writing state, [`LockError`] for
//! locking it. Messages quote values in backticks and end by saying what to do.

use crate::backend::LockInfo;

/// A state could not be read or written.
///
/// `path` fields name where the state lives as the user knows it: a file path for the local
/// backend, a URL for remote ones.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot access `{path}`: {source}{}", file_hint(path, "readable and writable"))]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Not a valid state document (or journal). `line` and `column` are 1-based; 0 when the
    /// problem has no single position (for example after an upgrade from an older format).
    #[error("{}", corrupt_message(path, *line, *column, message))]
    Corrupt { path: String, line: usize, column: usize, message: String },
    /// Written by a newer kiln in a format this one does not understand.
    #[error("`{path}` uses state format `{found}` but this kiln understands formats up to `{supported}`: upgrade kiln")]
    NewerFormat { path: String, found: u64, supported: u64 },
    /// A write that would lose changes: another lineage, or a serial that does not grow.
    #[error("refusing to write state: {reason}")]
    Conflict { reason: String },
    /// A journal of changes left by an interrupted run does not belong on top of the stored
    /// snapshot. It is never dropped silently: `reason` says how to resolve it.
    #[error("cannot replay the journal `{path}`: {reason}")]
    JournalMismatch { path: String, reason: String },
    /// The state document is missing, but files that continue it (its backup or journal) are
    /// there: it was deleted or moved. Starting afresh would forget every object it tracked and
    /// overwrite the backup, so it is refused; `reason` says how to restore it.
    #[error("`{path}` does not exist, but {reason}")]
    Missing { path: String, reason: String },
    /// `append` with no snapshot to append to.
    #[error("there is no state at `{path}` to record changes on top of: write a full state first")]
    NoState { path: String },
    /// A document could not be decrypted or encrypted: wrong or missing key, tampered bytes,
    /// or an encrypted document read without an `encryption` block. `message` says what to do.
    #[error("cannot decrypt or encrypt `{path}`: {message}")]
    Crypto { path: String, message: String },
}

fn corrupt_message(path: &str, line: usize, column: usize, message: &str) -> String {
    let at = if line == 0 { String::new() } else { format!(" at line {line}, column {column}") };
    format!("`{path}` is not a valid kiln state{at}: {message}; kiln will not overwrite it: repair it by hand or restore it from a backup")
}

/// A lock could not be taken or released.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds the lock. `stale` is true when the holder ran on this host and its
    /// process is gone. `path` names the locked state.
    #[error("{}", held_message(holder, *stale, path))]
    Held { holder: LockInfo, stale: bool, path: String },
    #[error("the state is not locked: there is nothing to unlock")]
    NotHeld,
    /// `expected` is the lock ID the caller gave, `found` the ID of the lock actually held.
    #[error("the state is locked with ID `{found}`, not `{expected}`: check the lock ID (`kiln force-unlock` takes the ID shown when locking fails)")]
    Mismatch { expected: String, found: String },
    #[error("cannot access the lock `{path}`: {source}{}", file_hint(path, "writable"))]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The lock record exists but cannot be read.
    #[error("the lock `{path}` is unreadable ({message}): if no kiln run is using this state, delete it")]
    Corrupt { path: String, message: String },
}

/// The hint for a file path; none for a remote backend's URL (`s3://`, `postgres://`), whose
/// message carries its own.
fn file_hint(path: &str, may: &str) -> String {
    if path.contains("://") {
        String::new()
    } else {
        format!("; check that the path exists and is {may}")
    }
}

fn held_message(holder: &LockInfo, stale: bool, path: &str) -> String {
    let LockInfo { id, operation, who, pid, created, .. } = holder;
    let head = format!("`{path}` is locked by `{who}` (pid `{pid}`) for `{operation}` since `{created}`, lock ID `{id}`");
    if stale && holder.lease_expired() {
        format!(
            "{head}: its lease ended at `{}` and was not renewed, so the lock is stale (its holder crashed or was killed); if no other kiln run uses this state, run `kiln force-unlock {id}`",
            holder.expires.as_deref().unwrap_or_default()
        )
    } else if stale {
        format!(
            "{head}: that process is no longer running on this host, so the lock is stale; if no other kiln run uses this state, run `kiln force-unlock {id}`"
        )
    } else {
        format!(
            "{head}: wait for that run to finish, or retry with `--lock-timeout` (for example `--lock-timeout 5m`) to wait for the lock; if that run died on another machine, run `kiln force-unlock {id}`"
        )
    }
}
