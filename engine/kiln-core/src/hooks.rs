//! Progress reporting from the engine to whoever drives it (the CLI's human or JSON views).
//! Every method has a no-op default.

use std::time::Duration;

use kiln_addrs::InstanceAddr;
use kiln_plan::Action;

/// What an apply operation acts on: the object at an instance address, or one of its deposed
/// objects (shown as `ADDR (deposed object KEY)`).
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub addr: &'a InstanceAddr,
    pub deposed: Option<&'a str>,
}

impl std::fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.deposed {
            Some(key) => write!(f, "{} (deposed object {key})", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

pub trait Hook: Send + Sync {
    fn refresh_start(&self, _provider: &str, _count: usize) {}
    fn refresh_done(&self, _provider: &str, _count: usize, _elapsed: Duration) {}
    fn apply_start(&self, _what: Subject<'_>, _action: Action) {}
    fn apply_done(&self, _what: Subject<'_>, _action: Action, _error: Option<&str>, _elapsed: Duration) {}
    /// What a create of a placed object launched: the offering (the chosen one or a fallback,
    /// "aws g4dn.xlarge spot, us-east-2, 1 node") and its price per hour, as state records it.
    fn launched(&self, _what: Subject<'_>, _offering: &str, _hourly: Option<kiln_value::Decimal>) {}
    /// Remote API calls a provider made during a plan, by operation.
    fn api_calls(&self, _provider: &str, _calls: &std::collections::BTreeMap<String, u64>) {}
}

pub struct NoopHook;

impl Hook for NoopHook {}
