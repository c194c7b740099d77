//! Progress reporting from the engine to whoever drives it (the CLI's human or JSON views).
//! Every method has a no-op default.

use std::time::Duration;

use kiln_addrs::InstanceAddr;
use kiln_plan::Action;

pub trait Hook: Send + Sync {
    fn refresh_start(&self, _provider: &str, _count: usize) {}
    fn refresh_done(&self, _provider: &str, _count: usize, _elapsed: Duration) {}
    fn apply_start(&self, _addr: &InstanceAddr, _action: Action) {}
    fn apply_done(&self, _addr: &InstanceAddr, _action: Action, _error: Option<&str>, _elapsed: Duration) {}
    /// An operation that had to wait for its provider's concurrency limit.
    fn provider_call(&self, _provider: &str) {}
}

pub struct NoopHook;

impl Hook for NoopHook {}
