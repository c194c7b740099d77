//! The words people read for what operations report (the command's operation context is built
//! from its settings in `Ctx::new`). Locking, leases, interrupts and persistence live in `kiln_ops`.

use kiln_ops::operation::Notice;

/// What people read for a notice.
pub(crate) fn notice_text(n: &Notice) -> String {
    match n {
        Notice::Interrupted { level: 1 } => {
            "\nInterrupt received: no new operations will start; waiting for those in flight. Press Ctrl-C again to abandon them.".into()
        }
        Notice::Interrupted { .. } => "\nSecond interrupt: abandoning operations in flight. Every completed operation is saved; a create that was still running stays pending in state, and the next plan resolves it.".into(),
        Notice::StoppingForLostLock { why } => {
            format!("\nStopping: {why}; another run may be changing the state, so no new operations will start; waiting for those in flight.")
        }
        Notice::LeaseNotRenewed { error, .. } => format!("Warning: could not renew the state lock's lease: {error}"),
        Notice::LockNotReleased { id, error } => format!("Warning: could not release the state lock `{id}`: {error}"),
        Notice::WorkspaceCopied { workspace, serial, resources, to } => {
            format!("Copied workspace `{workspace}` (serial {serial}, {resources} resource(s)) to {to}.")
        }
        Notice::WorkspaceUpToDate { workspace, serial, at } => format!("Workspace `{workspace}` is already at {at} (serial {serial})."),
    }
}
