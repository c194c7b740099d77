//! Encryption at rest for kiln state and saved plans.
//!
//! [`Encryptor`] implements [`kiln_state::Codec`]: backends pass every document they store
//! (snapshots, backups, journal lines) and the CLI every saved plan through it. The method is
//! AES-256-GCM (authenticated: a wrong key or a changed byte is an error, never garbage) with
//! a fresh random 96-bit nonce per document.
//!
//! # Configuration
//!
//! The `encryption` block is read by `kiln-ops` (`encryption/block.rs`, with the same
//! root-variable scope as `backend`) into the plain values of this crate: [`Key`]s, [`Options`]
//! and an [`Encryptor`]. This crate does not depend on the configuration language.
//!
//! ```hcl
//! kiln {
//!   encryption {
//!     key_provider "passphrase" "main" { passphrase = var.state_passphrase }
//!     key_provider "passphrase" "old"  { passphrase = var.old_passphrase }
//!     method "aes_gcm" { keys = key_provider.passphrase.main }
//!     fallback { keys = key_provider.passphrase.old }
//!   }
//! }
//! ```
//!
//! - `key_provider "TYPE" "NAME" { }` declares a key; the name may be left out
//!   (`key_provider "passphrase" { }`, referred to as `key_provider.passphrase`). Types:
//!   - `passphrase`: `passphrase = EXPR`, at least 16 characters. Expressions may use variables
//!     (`var.*`) only, since state is decrypted before anything else is known; declare the
//!     variable `sensitive = true`. The key is derived with PBKDF2-HMAC-SHA256 (600,000
//!     iterations) and a random salt stored in each document.
//!   - `env`: `variable = "KILN_STATE_KEY"`, an environment variable holding a base64-encoded
//!     32-byte key (`openssl rand -base64 32`) or, if it does not decode to 32 bytes, a
//!     passphrase.
//!   - `file`: `path = "state.key"` (relative to the configuration directory), a file holding
//!     exactly 32 raw bytes, a base64-encoded 32-byte key, or a passphrase.
//! - `method "aes_gcm" { keys = key_provider.TYPE.NAME }`: the key documents are written with.
//!   `keys` may be left out when there is a single key provider.
//! - `fallback { keys = ..., allow_plaintext = BOOL }` (optional):
//!   - `keys`: one reference or a list of older keys, tried (by key ID) when reading. This is
//!     how a key is rotated: make the new key the method's key and the old one a fallback; the
//!     state is read with the old key and written with the new one; then drop the fallback.
//!   - `allow_plaintext = true`: unencrypted documents are read as they are (and written back
//!     encrypted). This is how an unencrypted state is migrated; without it, reading an
//!     unencrypted document is an error, so an attacker cannot swap in a plain state.
//!
//! The shortest form: `encryption { key_provider "passphrase" { passphrase = var.key } method "aes_gcm" {} }`.
//!
//! # Stored form
//!
//! One line of compact JSON (no `\n`, so a sealed journal record stays one line):
//! `{"kiln_encrypted":1,"method":"aes_gcm","key_id":"…","kdf":{"name":"pbkdf2_sha256","iterations":600000,"salt":"…"},"nonce":"…","ciphertext":"…"}`.
//! `key_id` is a public fingerprint of the key (`kdf` is absent for raw keys). Every header
//! field is authenticated as associated data. [`detect`] tells encrypted documents from
//! plain ones; [`NoEncryption`] is the codec for configurations without an `encryption` block
//! and refuses encrypted documents with a message saying to add the block.
//!
//! Keys never appear in `Debug` output, messages or diagnostics.

mod encryptor;
mod envelope;
mod key;

pub use encryptor::{Encryptor, NoEncryption, Options, DEFAULT_ITERATIONS, ENCRYPTED_WITHOUT_CONFIG, KDF, METHOD, PLAINTEXT_REFUSED};
pub use envelope::{detect, FORMAT};
pub use key::{Key, KeyError, MIN_PASSPHRASE_CHARS};
