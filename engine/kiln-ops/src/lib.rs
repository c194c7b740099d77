//! Operations around the engine core: everything with side effects that kiln-core must not do.
//! Loading variable values (files, flags, environment), choosing the state backend (local, S3,
//! PostgreSQL) from settings that may use variables,
//! persisting state changes during apply with group commits, and turning Ctrl-C into the core's
//! cancellation levels.

mod backend;
pub mod encryption;
pub mod import;
pub mod interrupt;
pub mod lock;
pub mod migrate;
pub mod operation;
mod sink;
mod vars;

pub use backend::{backend_config, open_backend, BackendConfig};
pub use sink::{Closed, JournalSink};
pub use vars::{load_variables, VarSources};
