//! [`Codec`]: how state bytes are protected at rest. Every backend passes each document it
//! stores (snapshots, backups, journal records, and saved plans in the CLI) through
//! [`Codec::seal`] before storing it and [`Codec::open`] after reading it. [`Plain`] stores
//! bytes as they are; the encryption crate provides authenticated encryption.

use std::fmt::Debug;

use crate::StateError;

/// Turns plaintext documents into stored bytes and back.
///
/// Rules every implementation keeps (backends rely on them):
/// - `seal` output never contains a `\n` byte, so a sealed journal record stays one line;
/// - `open(seal(x)) == x`;
/// - `open` of bytes that were tampered with, or sealed with a key it does not hold, is an
///   error ([`StateError::Crypto`]) naming `what` and saying what to do; it never returns
///   garbage, so callers never overwrite state they could not read.
pub trait Codec: Send + Sync + Debug {
    /// Protects `plain` for storage.
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, StateError>;
    /// Recovers the plaintext of `stored`. `what` names the document for messages (a path or URL).
    fn open(&self, stored: &[u8], what: &str) -> Result<Vec<u8>, StateError>;
    /// Short name for messages and `kiln show`: `plain`, `aes_gcm`, ...
    fn name(&self) -> &str;
}

/// No protection: bytes are stored as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Codec for Plain {
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, StateError> {
        Ok(plain.to_vec())
    }

    fn open(&self, stored: &[u8], _what: &str) -> Result<Vec<u8>, StateError> {
        Ok(stored.to_vec())
    }

    fn name(&self) -> &str {
        "plain"
    }
}
