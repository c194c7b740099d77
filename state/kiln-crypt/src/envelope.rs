//! The stored form of an encrypted document: one line of compact JSON,
//!
//! ```text
//! {"kiln_encrypted":1,"method":"aes_gcm","key_id":"3f2a…","kdf":{"name":"pbkdf2_sha256","iterations":600000,"salt":"…"},"nonce":"…","ciphertext":"…"}
//! ```
//!
//! `kdf` is absent for raw keys. Every field but `ciphertext` is bound to the ciphertext as
//! associated data, so changing any of them makes decryption fail.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The envelope format this crate writes and reads.
pub const FORMAT: u32 = 1;

/// Every sealed document starts with exactly these bytes.
const PREFIX: &[u8] = b"{\"kiln_encrypted\":";

/// Whether `stored` is an encrypted kiln document (as opposed to plain JSON state or a plan).
/// Leading whitespace is ignored. Only the first bytes are looked at, so this is cheap on large
/// files.
pub fn detect(stored: &[u8]) -> bool {
    let start = stored.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(stored.len());
    stored[start..].starts_with(PREFIX)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub kiln_encrypted: u32,
    pub method: String,
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<Kdf>,
    pub nonce: String,
    pub ciphertext: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub(crate) struct Kdf {
    pub name: String,
    pub iterations: u32,
    pub salt: String,
}

impl Envelope {
    /// The associated data: every header field, each on its own line, in a fixed order.
    pub fn aad(&self) -> Vec<u8> {
        let (name, iterations, salt) = match &self.kdf {
            Some(k) => (k.name.as_str(), k.iterations, k.salt.as_str()),
            None => ("none", 0, ""),
        };
        format!(
            "kiln_encrypted:{}\nmethod:{}\nkey_id:{}\nkdf:{name}\niterations:{iterations}\nsalt:{salt}\nnonce:{}\n",
            self.kiln_encrypted, self.method, self.key_id, self.nonce
        )
        .into_bytes()
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}
