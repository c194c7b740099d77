//! One operation on a workspace's state, whatever runs inside it (plan, apply, import, a state
//! edit): lock, read state, run the core, persist, unlock. [`run`] takes the lock and releases
//! it on every path its closure ends by (a panic is left to the [`HeldLocks`] of the
//! [`Context`]); the [`Session`] it hands the closure reads state, runs an apply with the
//! group-committed journal and the cancel levels, and writes edits with their serial, so every
//! caller of the core gets the same guarantees: state written before unlock, an interrupted run
//! leaves state readable, a serial that only goes up.

use std::future::Future;
use std::sync::Arc;

use kiln_core::{Cancel, StateSink};
use kiln_diag::Diagnostic;
use kiln_state::{LockError, State, StateBackend, StateError};
use tokio::sync::watch;

use crate::interrupt::{CancelLevels, Interrupts, Signals};
use crate::lock::{HeldLocks, LockSettings};
use crate::sink::{Closed, JournalSink};

/// Something an operation tells people (the caller prints it; kiln-ops prints nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Ctrl-C, SIGTERM or SIGHUP: level 1 starts nothing new, level 2 abandons what is in flight.
    Interrupted { level: u8 },
    /// The state lock was removed by someone else while this run held it: nothing new starts.
    StoppingForLostLock { why: String },
    /// A renewal of the lock's lease failed (it is retried at the next third of the lease).
    LeaseNotRenewed { id: String, error: String },
    /// The lock could not be released at the end of the operation.
    LockNotReleased { id: String, error: String },
    /// `init -migrate-state` copied a workspace (`to` describes the new backend).
    WorkspaceCopied { workspace: String, serial: u64, resources: usize, to: String },
    /// `init -migrate-state` found a workspace already copied to `at`.
    WorkspaceUpToDate { workspace: String, serial: u64, at: String },
}

/// Where [`Notice`]s go.
pub type Notify = Arc<dyn Fn(&Notice) + Send + Sync>;

/// Makes the interrupt source of an apply (the process's signals, or a test's).
pub type SignalSource = Arc<dyn Fn() -> Box<dyn Signals> + Send + Sync>;

/// What one command's operations share: the locks it holds (the panic handler keeps a clone),
/// how it locks, where notices go, and where interrupts come from.
#[derive(Clone)]
pub struct Context {
    pub locks: HeldLocks,
    pub lock: LockSettings,
    pub notify: Notify,
    pub signals: SignalSource,
}

impl Context {
    /// Signals from the process (Ctrl-C, SIGTERM, SIGHUP).
    pub fn new(lock: LockSettings, notify: Notify) -> Self {
        Context { locks: HeldLocks::default(), lock, notify, signals: Arc::new(|| Box::new(Interrupts::new())) }
    }
}

/// Runs `f` holding the state lock of `backend` for `operation` (its name in the lock), and
/// releases the lock however `f` ends. A lock that cannot be taken is a diagnostic naming its
/// holder (and `kiln force-unlock ID` when it is stale).
pub async fn run<T, E, F, Fut>(ctx: &Context, backend: &Arc<dyn StateBackend>, operation: &str, f: F) -> Result<T, E>
where
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<Diagnostic>,
{
    let lock = crate::lock::acquire(backend, operation, ctx.lock, &ctx.locks, &ctx.notify).await.map_err(lock_error)?;
    let id = lock.id().to_string();
    let session = Session { backend: backend.clone(), lost: lock.lost(), ctx: ctx.clone() };
    let r = f(session).await;
    if let Err(e) = lock.release().await {
        (ctx.notify)(&Notice::LockNotReleased { id, error: e.to_string() });
    }
    r
}

fn lock_error(e: LockError) -> Diagnostic {
    let d = Diagnostic::error("E-STATE-LOCK", format!("cannot lock the state: {e}"));
    match e {
        LockError::Held { stale: true, .. } => {
            d.hint("the holder is gone: run the `kiln force-unlock` command above if no other kiln run uses this state")
        }
        LockError::Held { .. } => d.hint("another kiln run is using this state: wait for it, or pass --lock-timeout to wait longer"),
        _ => d.hint("check that the state backend is reachable and writable"),
    }
}

/// The state lock held, for the closure of [`run`].
#[derive(Clone)]
pub struct Session {
    backend: Arc<dyn StateBackend>,
    lost: watch::Receiver<Option<String>>,
    ctx: Context,
}

/// What [`Session::apply`] leaves.
#[derive(Debug)]
pub struct Applied<T> {
    /// What the core returned.
    pub outcome: T,
    /// The final state, as stored.
    pub state: State,
    /// Why the lock was lost during the run, if it was: someone else may have changed state.
    pub lost: Option<String>,
}

/// What an apply run returns, so [`Session::apply`] has a state to save when the journal
/// writer is gone.
pub trait Outcome {
    fn state(&self) -> &State;
}

impl Outcome for kiln_core::ApplyOutcome {
    fn state(&self) -> &State {
        &self.state
    }
}

/// What an apply run is handed: the state it starts from, where it sends its changes (the
/// journal's group commit) and its cancel level.
pub struct ApplyRun {
    pub state: State,
    pub sink: Arc<dyn StateSink>,
    pub cancel: Cancel,
}

impl Session {
    pub fn backend(&self) -> &Arc<dyn StateBackend> {
        &self.backend
    }

    /// Why the lock was lost, once it was.
    pub fn lost(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// The stored state; no state yet is the empty state (no lineage).
    pub async fn read_state(&self) -> Result<State, Diagnostic> {
        read_state(self.backend.as_ref()).await
    }

    /// Runs `fut` (work that changes nothing, such as planning) unless an interrupt comes
    /// first: `None`.
    pub async fn unless_interrupted<T>(&self, fut: impl Future<Output = T>) -> Option<T> {
        let mut signals = (self.ctx.signals)();
        crate::interrupt::unless_interrupted(signals.as_mut(), fut).await
    }

    /// Writes `state`, changed in memory from the state as read (serial unchanged), as the next
    /// serial; a state without lineage is given one. Returns what was stored.
    pub async fn commit(&self, mut state: State) -> Result<State, Diagnostic> {
        state.serial = next_serial(state.serial, 1)?;
        if state.lineage.is_empty() {
            state.lineage = State::new().lineage;
        }
        self.backend.write(&state).await.map_err(|e| {
            Diagnostic::error("E-STATE-WRITE", format!("cannot write the state: {e}"))
                .hint("nothing was changed: the state is as it was before this command")
        })?;
        Ok(state)
    }

    /// Applies: `run` (the core) gets `state`, a journal sink and the cancel level (interrupts,
    /// and the lock's loss); then the final snapshot, which is what the journal holds, is
    /// written with the serial past every journal commit. A state without lineage is created
    /// first. Refuses, before anything runs, a serial too near the largest to record the work.
    pub async fn apply<T, F, Fut>(&self, mut state: State, run: F) -> Result<Applied<T>, Diagnostic>
    where
        T: Outcome,
        F: FnOnce(ApplyRun) -> Fut,
        Fut: Future<Output = T>,
    {
        if state.lineage.is_empty() {
            state = State::new();
            self.backend.write(&state).await.map_err(|e| {
                Diagnostic::error("E-STATE-WRITE", format!("cannot create the state: {e}"))
                    .hint("check that the state backend is reachable and writable; nothing was changed")
            })?;
        }
        // Every journal append advances the serial by one.
        next_serial(state.serial, 1 << 32)?;
        let (sink, writer) = JournalSink::start(self.backend.clone(), state.clone());
        let levels = CancelLevels::start((self.ctx.signals)(), self.lost.clone(), self.ctx.notify.clone());
        let outcome = run(ApplyRun { state: state.clone(), sink: sink.clone(), cancel: Cancel(levels.receiver()) }).await;
        drop(levels);
        // The final snapshot is what the journal holds (see JournalSink): it includes any
        // operation that completed after it was abandoned.
        sink.close();
        drop(sink);
        let closed = writer.await.unwrap_or_else(|_| Closed { state: outcome.state().clone(), commits: 0 });
        let mut new_state = closed.state;
        new_state.serial = next_serial(state.serial, closed.commits.saturating_add(1))?;
        new_state.lineage = state.lineage.clone();
        self.backend.write(&new_state).await.map_err(|e| {
            Diagnostic::error("E-STATE-WRITE", format!("cannot save the final state: {e}"))
                .hint(format!("every completed operation is in {}.journal; the next kiln command folds it in", self.backend.describe()))
        })?;
        Ok(Applied { outcome, state: new_state, lost: self.lost() })
    }
}

/// The stored state of `backend`; none yet is the empty state. Unreadable state is left
/// untouched, with how to recover.
pub async fn read_state(backend: &dyn StateBackend) -> Result<State, Diagnostic> {
    match backend.read().await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Ok(State::default()),
        Err(e @ StateError::Missing { .. }) => Err(Diagnostic::error("E-STATE-READ", e.to_string())
            .hint("the state file was left untouched; restore the missing state (or its backup) before running kiln again")),
        Err(e @ StateError::NewerFormat { .. }) => Err(Diagnostic::error("E-STATE-READ", e.to_string())
            .hint("the state file was left untouched; use a kiln at least as new as the one that wrote it")),
        Err(e) => Err(Diagnostic::error("E-STATE-READ", e.to_string())
            .hint("the state file was left untouched; restore it from its .backup file or fix it by hand")),
    }
}

/// `serial` plus `by`, refused past the largest serial: a serial never wraps or goes down.
pub fn next_serial(serial: u64, by: u64) -> Result<u64, Diagnostic> {
    serial.checked_add(by).ok_or_else(|| {
        Diagnostic::error(
            "E-STATE-SERIAL",
            format!("the state's serial `{serial}` cannot advance further: it is at the largest serial kiln can write ({})", u64::MAX),
        )
        .hint("nothing was changed; the state file's serial was edited by hand or damaged: put back a copy with a sensible serial")
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::testing::put;

    fn local(dir: &std::path::Path) -> Arc<dyn StateBackend> {
        Arc::new(kiln_state::LocalBackend::new(dir.join("state.json")))
    }

    /// A context whose interrupts come from the returned sender.
    fn context() -> (Context, tokio::sync::mpsc::UnboundedSender<()>, Arc<Mutex<Vec<Notice>>>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let rx = Arc::new(Mutex::new(Some(rx)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let ctx = Context {
            locks: HeldLocks::default(),
            lock: LockSettings::default(),
            notify: Arc::new(move |n: &Notice| s.lock().unwrap().push(n.clone())),
            // The first caller gets the channel; later ones a source that never fires.
            signals: Arc::new(move || match rx.lock().unwrap().take() {
                Some(rx) => Box::new(rx) as Box<dyn Signals>,
                None => {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<()>();
                    std::mem::forget(tx);
                    Box::new(rx)
                }
            }),
        };
        (ctx, tx, seen)
    }

    #[derive(Debug)]
    struct Done(State);

    impl Outcome for Done {
        fn state(&self) -> &State {
            &self.0
        }
    }

    /// The lock is held while the closure runs and released after, on success and on error.
    #[tokio::test]
    async fn the_lock_is_held_while_running_and_released_on_every_path() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let (ctx, _tx, _) = context();
        let r: Result<String, Diagnostic> = run(&ctx, &b, "plan", |s| async move {
            let info = s.backend().lock_info().await.unwrap().expect("locked while running");
            Ok(info.operation)
        })
        .await;
        assert_eq!(r.unwrap(), "plan");
        assert_eq!(b.lock_info().await.unwrap(), None);
        let r: Result<(), Diagnostic> = run(&ctx, &b, "apply", |_| async { Err(Diagnostic::error("E-X", "failed")) }).await;
        assert_eq!(r.unwrap_err().code, "E-X");
        assert_eq!(b.lock_info().await.unwrap(), None, "released after an error too");
        assert!(ctx.locks.ids().is_empty());
    }

    #[tokio::test]
    async fn a_held_lock_is_a_diagnostic_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let (ctx, _tx, _) = context();
        let other = kiln_state::LockInfo::new("apply");
        b.lock(&other).await.unwrap();
        let r: Result<(), Diagnostic> = run(&ctx, &b, "apply", |_| async { panic!("must not run without the lock") }).await;
        let d = r.unwrap_err();
        assert_eq!(d.code, "E-STATE-LOCK");
        assert!(d.summary.contains(&other.id) && d.hint.is_some(), "{d:?}");
    }

    /// An edit is written as the next serial, a new state is given a lineage.
    #[tokio::test]
    async fn commit_advances_the_serial_and_gives_a_new_state_a_lineage() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let (ctx, _tx, _) = context();
        let stored: Result<State, Diagnostic> = run(&ctx, &b, "import", |s| async move {
            let mut state = s.read_state().await?;
            assert!(state.lineage.is_empty());
            state.apply_mutation(&put("a"));
            s.commit(state).await
        })
        .await;
        let stored = stored.unwrap();
        assert!(!stored.lineage.is_empty());
        let back = b.read().await.unwrap().unwrap();
        assert_eq!(back, stored);
        let again: Result<State, Diagnostic> = run(&ctx, &b, "state rm", |s| async move {
            let mut state = s.read_state().await?;
            state.resources.clear();
            s.commit(state).await
        })
        .await;
        let again = again.unwrap();
        assert_eq!((again.serial, again.lineage.as_str()), (stored.serial + 1, stored.lineage.as_str()));
    }

    #[test]
    fn the_serial_never_wraps() {
        assert_eq!(next_serial(3, 1).unwrap(), 4);
        let d = next_serial(u64::MAX - 1, 2).unwrap_err();
        assert_eq!(d.code, "E-STATE-SERIAL");
        assert!(d.hint.is_some());
    }

    /// A state too near the largest serial to record an apply's journal is refused before
    /// anything runs, and left as it was.
    #[tokio::test]
    async fn apply_refuses_a_serial_that_cannot_advance_before_running() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let mut near = State::new();
        near.serial = u64::MAX - 5;
        b.write(&near).await.unwrap();
        let (ctx, _tx, _) = context();
        let r: Result<Applied<Done>, Diagnostic> = run(&ctx, &b, "apply", |s| async move {
            let state = s.read_state().await?;
            s.apply(state, |_: ApplyRun| async { panic!("must not run") }).await
        })
        .await;
        assert_eq!(r.unwrap_err().code, "E-STATE-SERIAL");
        assert_eq!(b.read().await.unwrap(), Some(near));
        assert_eq!(b.lock_info().await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_unreadable_state_is_a_diagnostic_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.json"), "{ not json").unwrap();
        let b = local(dir.path());
        let d = read_state(b.as_ref()).await.unwrap_err();
        assert_eq!(d.code, "E-STATE-READ");
        assert!(d.hint.as_deref().unwrap().contains("untouched"));
        assert_eq!(std::fs::read_to_string(dir.path().join("state.json")).unwrap(), "{ not json");
    }

    /// An apply's changes go through the journal; the final snapshot holds all of them, past
    /// every journal commit's serial, in the state's lineage.
    #[tokio::test]
    async fn apply_persists_the_journal_and_the_final_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let (ctx, _tx, _) = context();
        let applied: Result<Applied<Done>, Diagnostic> = run(&ctx, &b, "apply", |s| async move {
            let state = s.read_state().await?;
            s.apply(state, |r: ApplyRun| async move {
                r.sink.persist(vec![put("a")]).await.unwrap();
                r.sink.persist(vec![put("b")]).await.unwrap();
                // The core's own copy is not what is saved: the journal is.
                Done(r.state)
            })
            .await
        })
        .await;
        let applied = applied.unwrap();
        assert_eq!(applied.state.resources.len(), 2);
        assert!(applied.lost.is_none());
        let stored = b.read().await.unwrap().unwrap();
        assert_eq!(stored, applied.state);
        // Created at serial 0, two journal commits (1 and 2), the snapshot past them.
        assert_eq!(stored.serial, 3);
        assert_eq!(b.lock_info().await.unwrap(), None);
    }

    /// An interrupt reaches the core as its cancel levels, and told to people; what completed
    /// is saved and the state stays readable.
    #[tokio::test]
    async fn interrupts_reach_the_core_and_completed_work_is_saved() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let (ctx, tx, seen) = context();
        let applied: Result<Applied<Done>, Diagnostic> = run(&ctx, &b, "apply", |s| async move {
            let state = s.read_state().await?;
            s.apply(state, |r: ApplyRun| async move {
                r.sink.persist(vec![put("a")]).await.unwrap();
                tx.send(()).unwrap();
                let mut c = r.cancel.0.clone();
                tokio::time::timeout(Duration::from_secs(60), c.wait_for(|l| *l >= 1)).await.unwrap().unwrap();
                // A result that completed while stopping is still recorded.
                r.sink.record(vec![put("b")]);
                Done(r.state)
            })
            .await
        })
        .await;
        let applied = applied.unwrap();
        assert_eq!(*seen.lock().unwrap(), [Notice::Interrupted { level: 1 }]);
        let stored = b.read().await.unwrap().unwrap();
        assert_eq!(stored.resources.len(), 2);
        assert_eq!(stored, applied.state);
        assert_eq!(b.lock_info().await.unwrap(), None);
    }

    /// A lock broken during an apply stops new work (level 1) and is reported with the result.
    #[tokio::test]
    async fn a_lock_lost_during_apply_stops_new_work() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let (mut ctx, _tx, seen) = context();
        ctx.lock.lease = Duration::from_millis(300);
        let applied: Result<Applied<Done>, Diagnostic> = run(&ctx, &b, "apply", |s| async move {
            let state = s.read_state().await?;
            let backend = s.backend().clone();
            s.apply(state, |r: ApplyRun| async move {
                let id = backend.lock_info().await.unwrap().unwrap().id;
                backend.force_unlock(&id).await.unwrap();
                let mut c = r.cancel.0.clone();
                tokio::time::timeout(Duration::from_secs(60), c.wait_for(|l| *l >= 1)).await.unwrap().unwrap();
                Done(r.state)
            })
            .await
        })
        .await;
        let applied = applied.unwrap();
        assert!(applied.lost.unwrap().contains("removed by someone else"));
        assert!(matches!(seen.lock().unwrap().as_slice(), [Notice::StoppingForLostLock { .. }]));
        assert!(b.read().await.unwrap().is_some(), "state saved");
    }
}
