//! The state lock of a writing command: taken with a bounded, jittered retry until a timeout,
//! its lease renewed in the background, loss of it (someone ran `kiln force-unlock`) reported on
//! a watch, and released on every path: by [`StateLock::release`], or after a panic by the
//! [`HeldLocks`] the command's context owns (the CLI's panic handler holds a clone of it).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kiln_state::{LockError, LockInfo, StateBackend};
use tokio::sync::{oneshot, watch};

use crate::operation::{Notice, Notify};

/// How a command takes and keeps state locks (resolved once per command by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockSettings {
    /// How long to keep retrying a lock someone else holds (`--lock-timeout`); zero: try once.
    pub timeout: Duration,
    /// The lease written with the lock; the holder renews it every third of it. A lock whose
    /// lease ran out is stale.
    pub lease: Duration,
}

impl Default for LockSettings {
    fn default() -> Self {
        LockSettings { timeout: Duration::ZERO, lease: Duration::from_secs(60) }
    }
}

/// The locks a command holds, so that whatever ends it (a panic included) can release them.
/// Cloning shares the set: the command's context owns one, the panic handler keeps a clone.
#[derive(Clone, Default)]
pub struct HeldLocks(Arc<Mutex<Vec<Held>>>);

/// A lock held: its backend and ID.
type Held = (Arc<dyn StateBackend>, String);

impl std::fmt::Debug for HeldLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.guard().iter().map(|(_, id)| id)).finish()
    }
}

impl HeldLocks {
    fn guard(&self) -> MutexGuard<'_, Vec<Held>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, backend: Arc<dyn StateBackend>, id: String) {
        self.guard().push((backend, id));
    }

    /// Forgets lock `id`; true if it was held.
    fn remove(&self, id: &str) -> bool {
        let mut held = self.guard();
        let before = held.len();
        held.retain(|(_, h)| h != id);
        held.len() != before
    }

    /// The IDs of the locks held now.
    pub fn ids(&self) -> Vec<String> {
        self.guard().iter().map(|(_, id)| id.clone()).collect()
    }

    /// Releases every lock still held (after a panic): the IDs released, and the errors of
    /// those that could not be.
    pub async fn release_all(&self) -> (Vec<String>, Vec<(String, LockError)>) {
        let held: Vec<_> = std::mem::take(&mut *self.guard());
        let (mut released, mut failed) = (Vec::new(), Vec::new());
        for (backend, id) in held {
            match backend.unlock(&id).await {
                Ok(()) => released.push(id),
                Err(e) => failed.push((id, e)),
            }
        }
        (released, failed)
    }
}

/// A state lock held by this command, its lease renewed in the background until released.
pub struct StateLock {
    id: String,
    backend: Arc<dyn StateBackend>,
    held: HeldLocks,
    renewer: Option<tokio::task::JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
    lost: watch::Receiver<Option<String>>,
}

impl std::fmt::Debug for StateLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateLock").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Dropped without `release` (a panic unwinding): stop renewing; the lock stays in the
        // `HeldLocks` for the panic handler to release.
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

/// Takes the state lock of `backend` for `operation`, retrying a live lock held by someone else
/// with a jittered backoff (100 ms doubling to 500 ms) until `settings.timeout` runs out, then
/// renews its lease every third of `settings.lease`. A stale lock is reported at once (its
/// holder never releases it; the error names `kiln force-unlock ID`), once read again: a holder
/// that released it and exited while it was being read is not one.
pub async fn acquire(
    backend: &Arc<dyn StateBackend>,
    operation: &str,
    settings: LockSettings,
    held: &HeldLocks,
    notify: &Notify,
) -> Result<StateLock, LockError> {
    let lease = settings.lease;
    let info = LockInfo::new(operation).with_lease(lease);
    let deadline = Instant::now() + settings.timeout;
    let mut wait = Duration::from_millis(100);
    loop {
        match backend.lock(&info).await {
            Ok(()) => break,
            Err(LockError::Held { stale: false, .. }) if Instant::now() + wait <= deadline => {
                tokio::time::sleep(wait + jitter()).await;
                wait = (wait * 2).min(Duration::from_millis(500));
            }
            // A holder that released the lock and exited just after it was read looks stale:
            // stale only if its lock is still there.
            Err(LockError::Held { stale: true, holder, .. }) if backend.lock_info().await?.is_none_or(|h| h.id != holder.id) => {}
            Err(e) => return Err(e),
        }
    }
    held.add(backend.clone(), info.id.clone());
    let (lost_tx, lost) = watch::channel(None);
    let (stop, mut stopped) = oneshot::channel::<()>();
    let (b, held_r, notify) = (backend.clone(), held.clone(), notify.clone());
    let mut renewed = info.clone();
    let renewer = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(lease / 3) => {}
                _ = &mut stopped => return,
            }
            renewed.renew(lease);
            match b.renew_lock(&renewed).await {
                Ok(()) => {}
                Err(e @ (LockError::NotHeld | LockError::Mismatch { .. })) => {
                    // Someone broke the lock (`kiln force-unlock`) and may be changing the
                    // state: this run must not start anything more, nor remove their lock.
                    let why = format!("the state lock `{}` was removed by someone else while this run held it ({e})", renewed.id);
                    held_r.remove(&renewed.id);
                    let _ = lost_tx.send(Some(why));
                    return;
                }
                Err(e) => notify(&Notice::LeaseNotRenewed { id: renewed.id.clone(), error: e.to_string() }),
            }
        }
    });
    Ok(StateLock { id: info.id, backend: backend.clone(), held: held.clone(), renewer: Some(renewer), stop: Some(stop), lost })
}

/// Up to 100 ms, so that many waiters do not poll in step.
fn jitter() -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(u64::from((nanos ^ std::process::id()) % 100))
}

impl StateLock {
    /// The lock's ID (as `kiln force-unlock` takes it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Why this lock was lost, once it was (the renewal found it removed).
    pub fn lost(&self) -> watch::Receiver<Option<String>> {
        self.lost.clone()
    }

    /// Stops renewing the lease (waiting for a renewal in flight), then releases the lock,
    /// unless it was lost: then it is someone else's, not ours to remove (`Ok`).
    pub async fn release(mut self) -> Result<(), LockError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(r) = self.renewer.take() {
            let _ = r.await;
        }
        if !self.held.remove(&self.id) {
            return Ok(());
        }
        self.backend.unlock(&self.id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(dir: &std::path::Path) -> Arc<dyn StateBackend> {
        Arc::new(kiln_state::LocalBackend::new(dir.join("state.json")))
    }

    fn quiet() -> Notify {
        Arc::new(|_: &Notice| {})
    }

    async fn holder(b: &Arc<dyn StateBackend>) -> Option<String> {
        b.lock_info().await.unwrap().map(|i| i.id)
    }

    #[tokio::test]
    async fn a_lock_is_taken_held_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let held = HeldLocks::default();
        let lock = acquire(&b, "apply", LockSettings::default(), &held, &quiet()).await.unwrap();
        assert_eq!(holder(&b).await.as_deref(), Some(lock.id()));
        assert_eq!(held.ids(), [lock.id().to_string()]);
        let info = b.lock_info().await.unwrap().unwrap();
        assert_eq!(info.operation, "apply");
        assert!(info.expires.is_some(), "the lock is written with a lease");
        lock.release().await.unwrap();
        assert_eq!(holder(&b).await, None);
        assert!(held.ids().is_empty());
    }

    #[tokio::test]
    async fn a_held_lock_is_refused_without_a_timeout_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let held = HeldLocks::default();
        let first = acquire(&b, "apply", LockSettings::default(), &held, &quiet()).await.unwrap();
        let err = acquire(&b, "plan", LockSettings::default(), &held, &quiet()).await.unwrap_err();
        match &err {
            LockError::Held { holder, stale: false, .. } => assert_eq!(holder.id, first.id()),
            other => panic!("expected a live Held, got {other:?}"),
        }
        assert_eq!(held.ids(), [first.id().to_string()], "a refused lock is not recorded as held");
        first.release().await.unwrap();
    }

    /// A waiter with a timeout takes the lock once its holder releases it.
    #[tokio::test]
    async fn a_waiter_takes_the_lock_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let held = HeldLocks::default();
        let first = acquire(&b, "apply", LockSettings::default(), &held, &quiet()).await.unwrap();
        let (b2, held2) = (b.clone(), held.clone());
        let waiter = tokio::spawn(async move {
            let settings = LockSettings { timeout: Duration::from_secs(120), ..LockSettings::default() };
            acquire(&b2, "apply", settings, &held2, &quiet()).await
        });
        // The waiter is retrying (or has not started): either way it must end up with the lock.
        tokio::task::yield_now().await;
        first.release().await.unwrap();
        let second = waiter.await.unwrap().unwrap();
        assert_eq!(holder(&b).await.as_deref(), Some(second.id()));
        second.release().await.unwrap();
    }

    /// A stale lock (its lease ended) is reported at once, not waited for.
    #[tokio::test]
    async fn a_stale_lock_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let mut gone = LockInfo::new("apply");
        gone.host = "elsewhere".into();
        gone.expires = Some("2000-01-01T00:00:00Z".into());
        b.lock(&gone).await.unwrap();
        let settings = LockSettings { timeout: Duration::from_secs(3600), ..LockSettings::default() };
        let err = acquire(&b, "apply", settings, &HeldLocks::default(), &quiet()).await.unwrap_err();
        assert!(matches!(err, LockError::Held { stale: true, .. }), "{err:?}");
        assert!(err.to_string().contains(&format!("kiln force-unlock {}", gone.id)), "{err}");
    }

    /// A local backend whose first `lock` answers what a waiter saw when the holder released the
    /// lock and exited between the waiter's read of the lock and its check of the holder's
    /// process: a lock held by a process that is gone (the CI failure of
    /// `backends::contention_s3`, whose waiting applies gave up on such a lock).
    struct ReleasedWhileRead {
        inner: Arc<dyn StateBackend>,
        first: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl StateBackend for ReleasedWhileRead {
        async fn read(&self) -> Result<Option<kiln_state::State>, kiln_state::StateError> {
            self.inner.read().await
        }
        async fn write(&self, state: &kiln_state::State) -> Result<(), kiln_state::StateError> {
            self.inner.write(state).await
        }
        async fn append(&self, mutations: &[kiln_state::Mutation]) -> Result<(), kiln_state::StateError> {
            self.inner.append(mutations).await
        }
        async fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
            if self.first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                let mut gone = LockInfo::new("apply");
                gone.pid = u32::MAX;
                return Err(LockError::Held { stale: true, holder: gone, path: self.describe() });
            }
            self.inner.lock(info).await
        }
        async fn unlock(&self, id: &str) -> Result<(), LockError> {
            self.inner.unlock(id).await
        }
        async fn force_unlock(&self, id: &str) -> Result<(), LockError> {
            self.inner.force_unlock(id).await
        }
        async fn lock_info(&self) -> Result<Option<LockInfo>, LockError> {
            self.inner.lock_info().await
        }
        async fn renew_lock(&self, info: &LockInfo) -> Result<(), LockError> {
            self.inner.renew_lock(info).await
        }
        async fn versions(&self) -> Result<Vec<kiln_state::StateVersion>, kiln_state::StateError> {
            self.inner.versions().await
        }
        async fn workspaces(&self) -> Result<Vec<String>, kiln_state::StateError> {
            self.inner.workspaces().await
        }
        async fn delete_state(&self) -> Result<(), kiln_state::StateError> {
            self.inner.delete_state().await
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
    }

    /// A lock that looked stale but is no longer there was released meanwhile: it is taken,
    /// not reported as stale.
    #[tokio::test]
    async fn a_lock_released_while_it_was_read_is_taken_not_reported_stale() {
        let dir = tempfile::tempdir().unwrap();
        let b: Arc<dyn StateBackend> =
            Arc::new(ReleasedWhileRead { inner: local(dir.path()), first: std::sync::atomic::AtomicBool::new(true) });
        let settings = LockSettings { timeout: Duration::from_secs(120), ..LockSettings::default() };
        let lock = acquire(&b, "apply", settings, &HeldLocks::default(), &quiet()).await.unwrap();
        assert_eq!(holder(&b).await.as_deref(), Some(lock.id()));
        lock.release().await.unwrap();
    }

    /// The holder renews its lease in the background.
    #[tokio::test]
    async fn the_lease_is_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let settings = LockSettings { lease: Duration::from_millis(300), ..LockSettings::default() };
        let lock = acquire(&b, "apply", settings, &HeldLocks::default(), &quiet()).await.unwrap();
        let first = b.lock_info().await.unwrap().unwrap().expires;
        let mut renewed = false;
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if b.lock_info().await.unwrap().unwrap().expires != first {
                renewed = true;
                break;
            }
        }
        assert!(renewed, "the lease was never renewed");
        lock.release().await.unwrap();
        assert_eq!(holder(&b).await, None);
    }

    /// A lock broken by someone else is reported on its watch, and releasing it later leaves
    /// the new holder's lock alone.
    #[tokio::test]
    async fn a_lost_lock_is_reported_and_not_removed_from_its_new_holder() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let held = HeldLocks::default();
        let settings = LockSettings { lease: Duration::from_millis(300), ..LockSettings::default() };
        let lock = acquire(&b, "apply", settings, &held, &quiet()).await.unwrap();
        b.force_unlock(lock.id()).await.unwrap();
        let other = acquire(&b, "apply", LockSettings::default(), &HeldLocks::default(), &quiet()).await.unwrap();
        let mut lost = lock.lost();
        let why = tokio::time::timeout(Duration::from_secs(60), lost.wait_for(Option::is_some)).await.unwrap().unwrap().clone();
        assert!(why.unwrap().contains("removed by someone else"));
        assert!(held.ids().is_empty(), "a lost lock is no longer ours");
        lock.release().await.unwrap();
        assert_eq!(holder(&b).await.as_deref(), Some(other.id()), "the new holder keeps its lock");
        other.release().await.unwrap();
    }

    /// What a panic leaves (a lock dropped without release) the held set releases.
    #[tokio::test]
    async fn release_all_releases_what_a_panic_left() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let held = HeldLocks::default();
        let for_panic_handler = held.clone();
        let lock = acquire(&b, "apply", LockSettings::default(), &held, &quiet()).await.unwrap();
        let id = lock.id().to_string();
        drop(lock); // unwinding drops it
        assert_eq!(holder(&b).await.as_deref(), Some(id.as_str()), "dropping alone does not release");
        let (released, failed) = for_panic_handler.release_all().await;
        assert_eq!(released, [id]);
        assert!(failed.is_empty());
        assert_eq!(holder(&b).await, None);
        assert!(held.ids().is_empty());
    }
}
