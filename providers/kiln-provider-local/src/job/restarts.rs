//! How many times a job address has been started again after being lost. A lost job is
//! replaced: delete then create (or create then delete with `create_before_destroy`). The
//! count crosses that gap through the lost predecessor itself when it still exists, or through
//! a note, `ROOT/jobs/SLUG.restarts`, that deleting a lost job leaves for the next create.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::job::dir::{status, JobDir, LOST};
use crate::procs::ProcTable;
use crate::util::slug;
use crate::Ctx;

#[derive(Serialize, Deserialize)]
struct Note {
    address: String,
    restarts: u64,
}

fn note_path(ctx: &Ctx, address: &str) -> PathBuf {
    JobDir::jobs_root(ctx).join(format!("{}.restarts", slug(address, "job")))
}

/// Restarts of the last lost job of `address` other than `except`, if one still exists.
fn lost_sibling(ctx: &Ctx, address: &str, except: &str, procs: &ProcTable) -> Option<u64> {
    JobDir::all(ctx)
        .into_iter()
        .filter(|(d, m)| m.address == address && m.job_id != except && status(&d.nodes(m, procs)) == LOST)
        .map(|(_, m)| m.restarts)
        .max()
}

/// The restart count a new job of `address` (with ID `job_id`) starts with; consumes the note.
pub(crate) fn inherit(ctx: &Ctx, address: &str, job_id: &str) -> u64 {
    if let Some(r) = lost_sibling(ctx, address, job_id, &ProcTable::snapshot()) {
        return r + 1;
    }
    let path = note_path(ctx, address);
    let note: Option<Note> = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok());
    match note.filter(|n| n.address == address) {
        Some(n) => {
            let _ = std::fs::remove_file(&path);
            n.restarts
        }
        None => 0,
    }
}

/// Called when a lost job is deleted: unless its replacement already exists, leave its
/// count + 1 for the next create of the address.
pub(crate) fn leave_note(ctx: &Ctx, address: &str, job_id: &str, restarts: u64) {
    if JobDir::all(ctx).iter().any(|(_, m)| m.address == address && m.job_id != job_id) {
        return;
    }
    let note = Note { address: address.to_string(), restarts: restarts + 1 };
    if let Ok(text) = serde_json::to_string(&note) {
        let _ = std::fs::write(note_path(ctx, address), text);
    }
}
