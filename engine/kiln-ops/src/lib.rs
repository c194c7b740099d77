//! Operations around the engine core: everything with side effects that kiln-core must not do.
//! Loading variable values (files, flags, environment) and resolving the root variables before
//! planning ([`RootVars`], for the `backend` and `encryption` blocks), choosing the state backend
//! from its block against the backends the binary registers ([`Backends`]),
//! persisting state changes during apply with group commits, and turning Ctrl-C into the core's
//! cancellation levels. A job's logs: reading them, and archiving a destroyed job's ([`logs`]);
//! waiting for jobs to end ([`jobs`]). The catalog a command reads: shipped, refreshed and the
//! user's ([`catalog`]).

mod backend;
pub mod catalog;
pub mod encryption;
pub mod import;
pub mod interrupt;
pub mod jobs;
pub mod lock;
pub mod logs;
pub mod migrate;
pub mod operation;
mod sink;
#[cfg(test)]
mod testing;
mod vars;

pub use backend::{BackendConfig, Backends};
pub use sink::{Closed, JournalSink};
pub use vars::{load_variables, EarlyBlock, RootScope, RootVars, VarSources};
