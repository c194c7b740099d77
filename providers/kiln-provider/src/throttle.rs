//! [`Throttle`]: how many create, update and delete operations one provider instance of an API
//! provider runs at once. It starts at the provider's limit, halves whenever an operation met
//! throttling (what counts as throttling is the provider's to say: `aws` counts the attempts
//! AWS answered with RequestLimitExceeded, Throttling, SlowDown, ..., which the SDK retried
//! with jittered exponential backoff; an HTTP API would look for a 429), and grows back by one
//! after as many unthrottled operations as the current limit: additive increase,
//! multiplicative decrease, so that an apply of hundreds of resources backs off as a whole
//! instead of every operation retrying on its own.

use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};

#[derive(Debug)]
pub struct Throttle {
    sem: Semaphore,
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    limit: usize,
    /// Permits to retire as operations finish (the limit fell below what was in use).
    debt: usize,
    /// Unthrottled operations since the limit last changed.
    streak: usize,
}

/// One running operation's slot; [`Throttle::done`] gives it back (dropping it does too).
pub struct Slot<'a>(Option<SemaphorePermit<'a>>);

impl Throttle {
    pub fn new(max: usize) -> Throttle {
        let max = max.max(1);
        Throttle { sem: Semaphore::new(max), max, state: Mutex::new(State { limit: max, debt: 0, streak: 0 }) }
    }

    /// Operations allowed at once right now.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// Runs `op` in a slot; `throttled` says, once it ended, whether it met throttling (from
    /// its outcome, or from what the provider counted while it ran).
    pub async fn run<T>(&self, op: impl std::future::Future<Output = T>, throttled: impl FnOnce(&T) -> bool) -> T {
        let slot = self.acquire().await;
        let out = op.await;
        let was = throttled(&out);
        self.done(slot, was);
        out
    }

    pub async fn acquire(&self) -> Slot<'_> {
        Slot(self.sem.acquire().await.ok())
    }

    /// Gives the slot back, saying whether its operation was throttled.
    pub fn done(&self, mut slot: Slot<'_>, throttled: bool) {
        let permit = slot.0.take();
        let mut s = self.lock();
        if throttled {
            let new = (s.limit / 2).max(1);
            s.debt += s.limit - new;
            s.limit = new;
            s.streak = 0;
            // Idle permits above the new limit retire now, the others as their operations end.
            let idle = s.debt.min(self.sem.available_permits());
            if let Ok(p) = self.sem.try_acquire_many(idle as u32) {
                p.forget();
                s.debt -= idle;
            }
        } else if s.limit < self.max {
            s.streak += 1;
            if s.streak >= s.limit {
                s.streak = 0;
                s.limit += 1;
                if s.debt > 0 {
                    s.debt -= 1; // keep a permit that was due to retire
                } else {
                    self.sem.add_permits(1);
                }
            }
        }
        if let Some(p) = permit {
            if s.debt > 0 {
                s.debt -= 1;
                p.forget();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn halves_when_throttled_and_grows_back_one_at_a_time() {
        let t = Throttle::new(16);
        let s = t.acquire().await;
        t.done(s, true);
        assert_eq!(t.limit(), 8);
        assert_eq!(t.sem.available_permits(), 8, "the permits above the new limit are retired");
        for _ in 0..3 {
            let s = t.acquire().await;
            t.done(s, true);
        }
        assert_eq!(t.limit(), 1, "never below one");
        for _ in 0..1 {
            let s = t.acquire().await;
            t.done(s, false);
        }
        assert_eq!(t.limit(), 2);
        for _ in 0..2 {
            let s = t.acquire().await;
            t.done(s, false);
        }
        assert_eq!(t.limit(), 3);
        assert_eq!(t.sem.available_permits(), 3);
    }

    /// An API whose errors carry an HTTP status: 429 is throttling.
    #[derive(Debug, PartialEq)]
    struct HttpError(u16);

    fn http_throttled<T>(r: &Result<T, HttpError>) -> bool {
        matches!(r, Err(HttpError(429)))
    }

    #[tokio::test]
    async fn the_provider_classifies_outcomes() {
        let t = Throttle::new(8);
        assert_eq!(t.run(async { Err::<(), _>(HttpError(500)) }, http_throttled).await, Err(HttpError(500)));
        assert_eq!(t.limit(), 8, "an error that is not throttling changes nothing");
        assert_eq!(t.run(async { Err::<(), _>(HttpError(429)) }, http_throttled).await, Err(HttpError(429)));
        assert_eq!(t.limit(), 4);
        for _ in 0..4 {
            assert_eq!(t.run(async { Ok::<_, HttpError>(1) }, http_throttled).await, Ok(1));
        }
        assert_eq!(t.limit(), 5);
        assert_eq!(t.sem.available_permits(), 5, "every slot came back");
        // Or from what the provider counted while the operation ran, whatever it returned.
        let counted = std::sync::atomic::AtomicU64::new(0);
        t.run(async { counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) }, |_| {
            counted.load(std::sync::atomic::Ordering::SeqCst) > 0
        })
        .await;
        assert_eq!(t.limit(), 2);
    }

    #[tokio::test]
    async fn permits_in_use_retire_as_they_come_back() {
        let t = Throttle::new(4);
        let a = t.acquire().await;
        let b = t.acquire().await;
        let c = t.acquire().await;
        let d = t.acquire().await;
        t.done(a, true); // limit 2: two of the four slots in use must go
        assert_eq!(t.sem.available_permits(), 0);
        t.done(b, false);
        assert_eq!(t.sem.available_permits(), 0);
        t.done(c, false);
        t.done(d, false);
        assert_eq!(t.limit(), 3, "two unthrottled operations at limit 2 raise it by one");
        assert_eq!(t.sem.available_permits(), 3);
    }
}
