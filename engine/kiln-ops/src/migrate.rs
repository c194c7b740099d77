//! Backend migration (`kiln init -migrate-state`): every workspace's state copied from one
//! opened backend to another, each under both locks, verified by reading it back. A destination
//! holding another state that is not empty is refused, and so is one ahead of the source; the
//! source is left as it was.

use std::sync::Arc;

use kiln_diag::Diagnostic;
use kiln_state::{State, StateBackend};

use crate::operation::{run, Context, Notice};

/// Opens workspace `name` of a backend.
pub type OpenWorkspace<'a> = &'a (dyn Fn(&str) -> Arc<dyn StateBackend> + Send + Sync);

/// What happened to one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copy {
    /// Copied: its serial and resource count.
    Copied { serial: u64, resources: usize },
    /// The destination already held exactly this state.
    AlreadyThere { serial: u64 },
    /// The source had no state for it.
    Nothing,
}

/// Copies every workspace of `from` (listed by its `default` workspace) to `to`; the number of
/// workspaces copied. Each copy is told through the context's notices as it happens.
pub async fn migrate(ctx: &Context, from: OpenWorkspace<'_>, to: OpenWorkspace<'_>) -> Result<usize, Diagnostic> {
    let listing = from(kiln_state::DEFAULT_WORKSPACE);
    let workspaces = listing.workspaces().await.map_err(|e| {
        Diagnostic::error("E-MIGRATE", format!("cannot list the workspaces of {}: {e}", listing.describe()))
            .hint("check that the old backend is reachable; nothing was copied")
    })?;
    let mut copied = 0;
    for ws in &workspaces {
        let (src, dst) = (from(ws), to(ws));
        let done = run(ctx, &src, "migrate-state", |_| {
            let (src, dst) = (src.clone(), dst.clone());
            async move { run(ctx, &dst, "migrate-state", |_| async { copy_one(ws, src.as_ref(), dst.as_ref()).await }).await }
        })
        .await?;
        match done {
            Copy::Copied { serial, resources } => {
                copied += 1;
                (ctx.notify)(&Notice::WorkspaceCopied { workspace: ws.clone(), serial, resources, to: dst.describe() });
            }
            Copy::AlreadyThere { serial } => (ctx.notify)(&Notice::WorkspaceUpToDate { workspace: ws.clone(), serial, at: dst.describe() }),
            Copy::Nothing => {}
        }
    }
    Ok(copied)
}

/// Copies one workspace, the locks of both held.
pub async fn copy_one(ws: &str, src: &dyn StateBackend, dst: &dyn StateBackend) -> Result<Copy, Diagnostic> {
    let err = |summary: String| Diagnostic::error("E-MIGRATE", summary);
    let Some(state) = src.read().await.map_err(|e| {
        err(format!("cannot read workspace `{ws}` from {}: {e}", src.describe()))
            .hint("the old state was left untouched; fix it, then run `kiln init --migrate-state` again")
    })?
    else {
        return Ok(Copy::Nothing);
    };
    let existing = dst.read().await.map_err(|e| {
        err(format!("cannot read workspace `{ws}` at {}: {e}", dst.describe()))
            .hint("check the new backend, then run `kiln init --migrate-state` again")
    })?;
    if let Some(d) = &existing {
        if d.lineage != state.lineage && !is_empty(d) {
            return Err(err(format!(
                "refusing to overwrite workspace `{ws}` at {}: it holds another state (lineage `{}`, serial {}, {} resource(s))",
                dst.describe(),
                d.lineage,
                d.serial,
                d.resources.len()
            ))
            .hint("point the backend somewhere else, or remove that state if it is not needed"));
        }
        if d.lineage == state.lineage && d.serial >= state.serial {
            if *d == state {
                return Ok(Copy::AlreadyThere { serial: d.serial });
            }
            return Err(err(format!(
                "workspace `{ws}` at {} is at serial {}, ahead of serial {} at {}: refusing to go back",
                dst.describe(),
                d.serial,
                state.serial,
                src.describe()
            ))
            .hint("the new backend was used after a copy; check which state is right"));
        }
        if d.lineage != state.lineage {
            dst.delete_state().await.map_err(|e| {
                err(format!("cannot clear the empty state at {}: {e}", dst.describe()))
                    .hint("check the new backend, then run `kiln init --migrate-state` again")
            })?;
        }
    }
    dst.write(&state).await.map_err(|e| {
        err(format!("cannot write workspace `{ws}` to {}: {e}", dst.describe()))
            .hint("check the new backend, then run `kiln init --migrate-state` again")
    })?;
    let back = dst.read().await.map_err(|e| {
        err(format!("cannot read back workspace `{ws}` from {}: {e}", dst.describe()))
            .hint("check the new backend, then run `kiln init --migrate-state` again")
    })?;
    if back.as_ref() != Some(&state) {
        return Err(err(format!(
            "the copy of workspace `{ws}` at {} does not read back as written: the backend was not switched and {} is untouched",
            dst.describe(),
            src.describe()
        ))
        .hint("check the new backend, then run `kiln init --migrate-state` again"));
    }
    Ok(Copy::Copied { serial: state.serial, resources: state.resources.len() })
}

fn is_empty(s: &State) -> bool {
    s.resources.is_empty() && s.pending.is_empty() && s.outputs.is_empty()
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use kiln_state::LocalBackend;

    use super::*;
    use crate::lock::LockSettings;

    fn opener(root: PathBuf) -> impl Fn(&str) -> Arc<dyn StateBackend> + Send + Sync {
        move |ws: &str| Arc::new(LocalBackend::new(root.join("state.json")).with_workspace(ws)) as Arc<dyn StateBackend>
    }

    fn context() -> (Context, Arc<Mutex<Vec<Notice>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let ctx = Context::new(LockSettings::default(), Arc::new(move |n: &Notice| s.lock().unwrap().push(n.clone())));
        (ctx, seen)
    }

    fn with_record(name: &str, serial: u64) -> State {
        let mut s = State::new();
        s.serial = serial;
        s.apply_mutation(&crate::testing::put(name));
        s
    }

    async fn setup(root: &Path) -> (State, State) {
        let from = opener(root.join("old"));
        let (a, b) = (with_record("a", 3), with_record("b", 7));
        from("default").write(&a).await.unwrap();
        from("staging").write(&b).await.unwrap();
        (a, b)
    }

    /// Every workspace is copied, under both locks (released after), and reads back the same.
    #[tokio::test]
    async fn every_workspace_is_copied_and_the_locks_released() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = setup(dir.path()).await;
        let (from, to) = (opener(dir.path().join("old")), opener(dir.path().join("new")));
        let (ctx, seen) = context();
        assert_eq!(migrate(&ctx, &from, &to).await.unwrap(), 2);
        assert_eq!(to("default").read().await.unwrap(), Some(a.clone()));
        assert_eq!(to("staging").read().await.unwrap(), Some(b));
        assert_eq!(from("default").read().await.unwrap(), Some(a), "the source is left as it was");
        for ws in ["default", "staging"] {
            assert_eq!(from(ws).lock_info().await.unwrap(), None);
            assert_eq!(to(ws).lock_info().await.unwrap(), None);
        }
        assert!(ctx.locks.ids().is_empty());
        let copied = seen.lock().unwrap().iter().filter(|n| matches!(n, Notice::WorkspaceCopied { .. })).count();
        assert_eq!(copied, 2);
        // Again: nothing to copy, each workspace already there.
        assert_eq!(migrate(&ctx, &from, &to).await.unwrap(), 0);
        assert!(seen.lock().unwrap().iter().any(|n| matches!(n, Notice::WorkspaceUpToDate { serial: 7, .. })));
    }

    #[tokio::test]
    async fn another_state_at_the_destination_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path()).await;
        let (from, to) = (opener(dir.path().join("old")), opener(dir.path().join("new")));
        let theirs = with_record("z", 1);
        to("default").write(&theirs).await.unwrap();
        let (ctx, _) = context();
        let d = migrate(&ctx, &from, &to).await.unwrap_err();
        assert!(d.summary.contains("refusing to overwrite workspace `default`") && d.hint.is_some(), "{d:?}");
        assert_eq!(to("default").read().await.unwrap(), Some(theirs), "theirs is kept");
        assert_eq!(from("default").lock_info().await.unwrap(), None, "locks released after a refusal");
        assert_eq!(to("default").lock_info().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_destination_ahead_of_the_source_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = setup(dir.path()).await;
        let (from, to) = (opener(dir.path().join("old")), opener(dir.path().join("new")));
        let mut ahead = a.clone();
        ahead.serial = 9;
        ahead.resources.clear();
        to("default").write(&ahead).await.unwrap();
        let (ctx, _) = context();
        let d = migrate(&ctx, &from, &to).await.unwrap_err();
        assert!(d.summary.contains("ahead of serial 3"), "{d:?}");
    }

    /// A workspace locked by a run is not copied under it.
    #[tokio::test]
    async fn a_locked_workspace_is_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path()).await;
        let (from, to) = (opener(dir.path().join("old")), opener(dir.path().join("new")));
        let running = kiln_state::LockInfo::new("apply");
        to("default").lock(&running).await.unwrap();
        let (ctx, _) = context();
        let d = migrate(&ctx, &from, &to).await.unwrap_err();
        assert_eq!(d.code, "E-STATE-LOCK");
        assert_eq!(to("default").read().await.unwrap(), None);
        assert_eq!(from("default").lock_info().await.unwrap(), None, "the source's lock was released");
    }
}
