//! Interrupts and the core's cancel levels. Ctrl-C (SIGINT), SIGTERM and SIGHUP (a closed
//! terminal or SSH session) all interrupt a run the same way: the first asks the core to start
//! nothing new (level 1) and wait for what is in flight, the second to abandon it (level 2; a create cut short keeps its pending entry). A
//! state lock lost while the run holds it counts as a first interrupt. What people are told goes
//! through the [`Notify`] callback; nothing here prints. An interrupt that comes while nothing
//! listens for one (between operations, at a prompt, in a command that does not handle them) is
//! [`unheeded`]'s: the command ends, releasing any state lock it holds, where the signal's
//! default would have killed the process with the lock held.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

use crate::operation::{Notice, Notify};

/// Where interrupts come from: the process's signals ([`Interrupts`]), or a test's channel.
pub trait Signals: Send + 'static {
    /// Waits for the next interrupt; `false` when no more can come.
    fn recv(&mut self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;
}

/// How many [`Interrupts`] exist now: while there are none, an interrupt is [`unheeded`]'s.
static LISTENING: AtomicUsize = AtomicUsize::new(0);

/// Ctrl-C (SIGINT), SIGTERM and SIGHUP.
pub struct Interrupts {
    /// SIGINT as a stream (one that comes between two waits is not lost).
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Default for Interrupts {
    fn default() -> Self {
        Self::new()
    }
}

impl Interrupts {
    /// Starts listening (from here on, these signals no longer end the process).
    pub fn new() -> Self {
        #[cfg(unix)]
        use tokio::signal::unix::{signal, SignalKind};
        LISTENING.fetch_add(1, Ordering::SeqCst);
        Interrupts {
            #[cfg(unix)]
            int: signal(SignalKind::interrupt()).ok(),
            #[cfg(unix)]
            term: signal(SignalKind::terminate()).ok(),
            #[cfg(unix)]
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// Waits for the next interrupt; `false` if signals cannot be received.
    pub async fn next(&mut self) -> bool {
        #[cfg(unix)]
        if let (Some(int), Some(term), Some(hup)) = (&mut self.int, &mut self.term, &mut self.hup) {
            return tokio::select! {
                r = int.recv() => r.is_some(),
                r = term.recv() => r.is_some(),
                r = hup.recv() => r.is_some(),
            };
        }
        tokio::signal::ctrl_c().await.is_ok()
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        LISTENING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits for an interrupt (SIGINT, SIGTERM or SIGHUP) that no [`Interrupts`] listens for, and
/// answers its name. Listening starts when this is called, so a command calls it first and races
/// its work against it: an unheeded interrupt ends the command (its caller releases the state
/// locks it holds) instead of killing the process with a lock held.
pub fn unheeded() -> Pin<Box<dyn Future<Output = &'static str> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
            (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
        {
            return Box::pin(async move {
                loop {
                    let name = tokio::select! {
                        _ = int.recv() => "SIGINT",
                        _ = term.recv() => "SIGTERM",
                        _ = hup.recv() => "SIGHUP",
                    };
                    if LISTENING.load(Ordering::SeqCst) == 0 {
                        return name;
                    }
                }
            });
        }
    }
    Box::pin(std::future::pending())
}

impl Signals for Interrupts {
    fn recv(&mut self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(self.next())
    }
}

impl Signals for tokio::sync::mpsc::UnboundedReceiver<()> {
    fn recv(&mut self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(async move { tokio::sync::mpsc::UnboundedReceiver::recv(self).await.is_some() })
    }
}

/// Runs `fut` unless an interrupt comes first (`None`): for work that changes nothing, such as
/// planning, which a single Ctrl-C simply stops.
pub async fn unless_interrupted<T>(signals: &mut dyn Signals, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        r = fut => Some(r),
        _ = signals.recv() => None,
    }
}

/// The cancel level of a run, driven in the background from interrupts and the loss of the
/// state lock; it stops when dropped.
pub struct CancelLevels {
    level: watch::Receiver<u8>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CancelLevels {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CancelLevels {
    /// Starts driving the level from `signals` and `lost` (the state lock's loss, see
    /// [`crate::lock::StateLock::lost`]), telling people through `notify`.
    pub fn start(mut signals: Box<dyn Signals>, mut lost: watch::Receiver<Option<String>>, notify: Notify) -> Self {
        let (tx, level) = watch::channel(0u8);
        let task = tokio::spawn(async move {
            let mut at = 0u8;
            let mut lost_seen = false;
            while at < 2 {
                tokio::select! {
                    ok = signals.recv() => {
                        if !ok {
                            return;
                        }
                        at += 1;
                        notify(&Notice::Interrupted { level: at });
                        let _ = tx.send(at);
                    }
                    why = lost.wait_for(Option::is_some), if !lost_seen => {
                        lost_seen = true;
                        let why = why.ok().and_then(|w| w.clone()).unwrap_or_default();
                        notify(&Notice::StoppingForLostLock { why });
                        if at == 0 {
                            at = 1;
                            let _ = tx.send(at);
                        }
                    }
                }
            }
            // Later interrupts change nothing, and are not unheeded while the run ends.
            while signals.recv().await {}
        });
        CancelLevels { level, task }
    }

    /// The level now: 0 run on, 1 start nothing new, 2 abandon what is in flight.
    pub fn level(&self) -> u8 {
        *self.level.borrow()
    }

    /// The watch the core reads (`kiln_core::Cancel(..)`).
    pub fn receiver(&self) -> watch::Receiver<u8> {
        self.level.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    fn recorder() -> (Notify, Arc<Mutex<Vec<Notice>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (Arc::new(move |n: &Notice| s.lock().unwrap().push(n.clone())), seen)
    }

    async fn reach(levels: &CancelLevels, level: u8) {
        let mut rx = levels.receiver();
        tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|l| *l >= level)).await.expect("level reached").unwrap();
    }

    #[tokio::test]
    async fn a_first_interrupt_stops_new_work_and_a_second_abandons() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (_lost_tx, lost) = watch::channel(None);
        let (notify, seen) = recorder();
        let levels = CancelLevels::start(Box::new(rx), lost, notify);
        assert_eq!(levels.level(), 0);
        tx.send(()).unwrap();
        reach(&levels, 1).await;
        assert_eq!(levels.level(), 1);
        tx.send(()).unwrap();
        reach(&levels, 2).await;
        assert_eq!(*seen.lock().unwrap(), [Notice::Interrupted { level: 1 }, Notice::Interrupted { level: 2 }]);
    }

    #[tokio::test]
    async fn a_lost_lock_counts_as_a_first_interrupt() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (lost_tx, lost) = watch::channel(None);
        let (notify, seen) = recorder();
        let levels = CancelLevels::start(Box::new(rx), lost, notify);
        lost_tx.send(Some("gone".into())).unwrap();
        reach(&levels, 1).await;
        // A Ctrl-C after it is the second interrupt.
        tx.send(()).unwrap();
        reach(&levels, 2).await;
        assert_eq!(*seen.lock().unwrap(), [Notice::StoppingForLostLock { why: "gone".into() }, Notice::Interrupted { level: 2 }]);
    }

    #[tokio::test]
    async fn planning_stops_on_an_interrupt() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        assert_eq!(unless_interrupted(&mut rx, async { 7 }).await, Some(7));
        tx.send(()).unwrap();
        assert_eq!(unless_interrupted(&mut rx, std::future::pending::<u8>()).await, None);
    }
}
