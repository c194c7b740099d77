//! kiln's state: what kiln created and remembers. The in-memory model ([`State`]), its on-disk
//! format ([`format`], versioned, with upgrades), the [`StateBackend`] trait with locking, the
//! local backend ([`LocalBackend`]), backends by name ([`BackendFactory`], the local one
//! [`LocalFactory`]), the [`Codec`] every stored document goes through, and the
//! [`conformance`] suite every backend must pass.

mod backend;
mod codec;
pub mod conformance;
mod error;
mod factory;
pub mod format;
mod local;
mod model;

pub use backend::{check_workspace_name, current_host, LockInfo, StateBackend, StateVersion, DEFAULT_WORKSPACE};
pub use codec::{Codec, Plain};
pub use error::{LockError, StateError};
pub use factory::{to_record, BackendFactory, BackendSpec, LocalFactory, LocalSpec, Record, Setting, Settings};
pub use format::{decode, encode};
pub use local::LocalBackend;
pub use model::*;
