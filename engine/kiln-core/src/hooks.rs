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
    /// Remote API calls a provider made during a plan, by operation.
    fn api_calls(&self, _provider: &str, _calls: &std::collections::BTreeMap<String, u64>) {}
}

pub struct NoopHook;

impl Hook for NoopHook {}
