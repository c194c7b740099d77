//! kiln's state: what kiln created and remembers. The in-memory model ([`State`]), its on-disk
//! format ([`format`], versioned, with upgrades), the [`StateBackend`] trait with locking, the
//! local backend ([`LocalBackend`]) and the [`conformance`] suite every backend must pass.

mod backend;
pub mod conformance;
mod error;
pub mod format;
mod local;
mod model;

pub use backend::{current_host, LockInfo, StateBackend};
pub use error::{LockError, StateError};
pub use format::{decode, encode};
pub use local::LocalBackend;
pub use model::*;
