//! Operations around the engine core: everything with side effects that kiln-core must not do.
//! Loading variable values (files, flags, environment), choosing and locking the state backend,
//! persisting state changes during apply with group commits, and turning Ctrl-C into the core's
//! cancellation levels.

mod backend;
mod sink;
mod vars;

pub use backend::{open_backend, BackendError};
pub use sink::JournalSink;
pub use vars::{load_variables, VarSources};
