//! The state lock (retry, lease renewal, release after a panic) and interrupts.

use super::*;

/// How long `lock` keeps retrying a lock held by someone else (`--lock-timeout`).
pub(crate) static LOCK_TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// The lease of state locks: `KILN_LOCK_LEASE` (such as `30s`), else 60 s. The holder renews it
/// every third of that; a lock whose lease ran out is reported stale.
pub(crate) fn lock_lease() -> Duration {
    std::env::var("KILN_LOCK_LEASE")
        .ok()
        .and_then(|v| kiln_provider_builtin::parse_duration(&v))
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(60))
}

/// A state lock held by this process, its lease renewed in the background until [`unlock`].
pub(crate) struct StateLock {
    pub id: String,
    renewer: Option<tokio::task::JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

/// Takes the state lock, retrying with a bounded backoff until `--lock-timeout` runs out, and
/// starts renewing its lease.
pub(crate) async fn lock(backend: &Arc<dyn StateBackend>, op: &str) -> Result<StateLock, String> {
    let lease = lock_lease();
    let info = LockInfo::new(op).with_lease(lease);
    let deadline = std::time::Instant::now() + LOCK_TIMEOUT.get().copied().unwrap_or_default();
    let mut wait = Duration::from_millis(100);
    loop {
        match backend.lock(&info).await {
            Ok(()) => break,
            // A stale lock is never released by its holder: waiting for it would only use up
            // --lock-timeout. The error names the lock and the force-unlock command.
            Err(kiln_state::LockError::Held { stale: false, .. }) if std::time::Instant::now() + wait <= deadline => {
                // Jittered, so that many waiters do not poll in step; capped so that one of them
                // takes the lock soon after it is released.
                let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
                let jitter = Duration::from_millis(u64::from((nanos ^ std::process::id()) % 100));
                tokio::time::sleep(wait + jitter).await;
                wait = (wait * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(format!("Error: cannot lock the state: {e}")),
        }
    }
    held_locks().push((backend.clone(), info.id.clone()));
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let b = backend.clone();
    let mut renewed = info.clone();
    let renewer = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(lease / 3) => {}
                _ = &mut stopped => return,
            }
            renewed.renew(lease);
            if let Err(e) = b.renew_lock(&renewed).await {
                if matches!(e, kiln_state::LockError::NotHeld | kiln_state::LockError::Mismatch { .. }) {
                    // Someone broke the lock (`kiln force-unlock`) and may be changing the
                    // state: this run must not start anything more.
                    let why = format!("the state lock `{}` was removed by someone else while this run held it ({e})", renewed.id);
                    held_locks().retain(|(_, id)| *id != renewed.id);
                    let _ = LOCK_LOST.0.send(Some(why));
                    return;
                }
                eprintln!("Warning: could not renew the state lock's lease: {e}");
            }
        }
    });
    Ok(StateLock { id: info.id, renewer: Some(renewer), stop: Some(stop) })
}

/// A watch channel's two ends (the receiver kept so a send always lands).
pub(crate) type Watch<T> = (tokio::sync::watch::Sender<T>, tokio::sync::watch::Receiver<T>);

/// Set (once) when the lease renewal finds the lock gone: apply stops starting operations.
pub(crate) static LOCK_LOST: std::sync::LazyLock<Watch<Option<String>>> = std::sync::LazyLock::new(|| tokio::sync::watch::channel(None));

/// Why this process lost its state lock, once it has.
pub(crate) fn lock_lost() -> tokio::sync::watch::Receiver<Option<String>> {
    LOCK_LOST.1.clone()
}

/// The locks this process holds: released by [`unlock`], or by [`release_all_locks`] when a
/// command panics.
pub(crate) fn held_locks() -> std::sync::MutexGuard<'static, Vec<(Arc<dyn StateBackend>, String)>> {
    static HELD: std::sync::Mutex<Vec<(Arc<dyn StateBackend>, String)>> = std::sync::Mutex::new(Vec::new());
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Releases every lock still held (after a panic); true if there was one.
pub(crate) async fn release_all_locks() -> bool {
    let held: Vec<_> = std::mem::take(&mut *held_locks());
    for (backend, id) in &held {
        if let Err(e) = backend.unlock(id).await {
            eprintln!("Warning: could not release the state lock `{id}`: {e}");
        }
    }
    !held.is_empty()
}

/// Stops renewing the lease (waiting for a renewal in flight), then releases the lock.
pub(crate) async fn unlock(backend: &dyn StateBackend, mut lock: StateLock) {
    if let Some(stop) = lock.stop.take() {
        let _ = stop.send(());
    }
    if let Some(r) = lock.renewer.take() {
        let _ = r.await;
    }
    let was_held = {
        let mut held = held_locks();
        let before = held.len();
        held.retain(|(_, id)| *id != lock.id);
        held.len() != before
    };
    if !was_held {
        return; // lost to someone else: theirs now, not ours to remove
    }
    if let Err(e) = backend.unlock(&lock.id).await {
        eprintln!("Warning: could not release the state lock: {e}");
    }
}

/// Ctrl-C (SIGINT) and SIGTERM: both interrupt a run the same way (state saved, lock released).
pub(crate) struct Interrupts {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    pub fn new() -> Self {
        Interrupts {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// Waits for the next interrupt; `false` if signals cannot be received.
    pub async fn recv(&mut self) -> bool {
        #[cfg(unix)]
        if let Some(term) = &mut self.term {
            return tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                r = term.recv() => r.is_some(),
            };
        }
        tokio::signal::ctrl_c().await.is_ok()
    }
}
