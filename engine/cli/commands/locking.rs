//! The command's operation context ([`kiln_ops::operation::Context`]: the state locks it holds,
//! how it locks, where interrupts come from) and the words people read for what operations
//! report. Locking, leases, interrupts and persistence live in `kiln_ops`.

use kiln_ops::lock::LockSettings;
use kiln_ops::operation::{Context, Notice};

use super::*;

/// The lease of state locks: `KILN_LOCK_LEASE` (such as `30s`), else 60 s. The holder renews it
/// every third of that; a lock whose lease ran out is reported stale.
pub(crate) fn lock_lease() -> Duration {
    std::env::var("KILN_LOCK_LEASE")
        .ok()
        .and_then(|v| kiln_provider_builtin::parse_duration(&v))
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(60))
}

/// The operation context of one command: locks retried for `lock_timeout` (`--lock-timeout`),
/// notices printed on stderr. The panic handler keeps a clone of its `locks`.
pub(crate) fn ops_context(lock_timeout: Duration) -> Context {
    Context::new(LockSettings { timeout: lock_timeout, lease: lock_lease() }, Arc::new(|n: &Notice| eprintln!("{}", notice_text(n))))
}

/// What people read for a notice.
pub(crate) fn notice_text(n: &Notice) -> String {
    match n {
        Notice::Interrupted { level: 1 } => {
            "\nInterrupt received: no new operations will start; waiting for those in flight. Press Ctrl-C again to abandon them.".into()
        }
        Notice::Interrupted { .. } => "\nSecond interrupt: abandoning operations in flight. Every completed operation is saved; a create that was still running stays pending in state, and the next plan resolves it.".into(),
        Notice::StoppingForLostLock { why } => {
            format!("\nError: {why}: another run may be changing the state, so no new operations will start; waiting for those in flight.")
        }
        Notice::LeaseNotRenewed { error, .. } => format!("Warning: could not renew the state lock's lease: {error}"),
        Notice::LockNotReleased { id, error } => format!("Warning: could not release the state lock `{id}`: {error}"),
        Notice::WorkspaceCopied { workspace, serial, resources, to } => {
            format!("Copied workspace `{workspace}` (serial {serial}, {resources} resource(s)) to {to}.")
        }
        Notice::WorkspaceUpToDate { workspace, serial, at } => format!("Workspace `{workspace}` is already at {at} (serial {serial})."),
    }
}
