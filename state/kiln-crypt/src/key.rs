//! Key material: a raw 256-bit key or a passphrase, never printed. `Debug` shows only where the
//! key came from; the bytes are wiped from memory when dropped.

use std::fmt;

use base64::Engine as _;
use zeroize::Zeroizing;

/// Passphrases shorter than this are refused: they are too easy to guess offline.
pub const MIN_PASSPHRASE_CHARS: usize = 16;

/// Secret key material plus a non-secret label naming where it came from (for messages).
#[derive(Clone)]
pub struct Key {
    pub(crate) material: Material,
    label: String,
}

#[derive(Clone)]
pub(crate) enum Material {
    /// A 256-bit key used as it is.
    Raw(Zeroizing<[u8; 32]>),
    /// A passphrase; the key is derived from it with PBKDF2-HMAC-SHA256 and a salt.
    Passphrase(Zeroizing<String>),
}

/// Why some text could not be used as a key. Never contains the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// A passphrase shorter than [`MIN_PASSPHRASE_CHARS`]; holds its length in characters.
    TooShort(usize),
    /// Raw bytes that are neither a 32-byte key nor UTF-8 text.
    NotText,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::TooShort(n) => write!(
                f,
                "the passphrase is {n} character(s) long; at least {MIN_PASSPHRASE_CHARS} are required (or use a base64-encoded 32-byte key, for example from `openssl rand -base64 32`)"
            ),
            KeyError::NotText => f.write_str(
                "the key is neither exactly 32 raw bytes, nor a base64-encoded 32-byte key, nor a UTF-8 passphrase",
            ),
        }
    }
}

impl Key {
    /// A 256-bit key used directly (no key derivation).
    pub fn raw(bytes: [u8; 32], label: impl Into<String>) -> Key {
        Key { material: Material::Raw(Zeroizing::new(bytes)), label: label.into() }
    }

    /// A passphrase of at least [`MIN_PASSPHRASE_CHARS`] characters.
    pub fn passphrase(passphrase: &str, label: impl Into<String>) -> Result<Key, KeyError> {
        let n = passphrase.chars().count();
        if n < MIN_PASSPHRASE_CHARS {
            return Err(KeyError::TooShort(n));
        }
        Ok(Key { material: Material::Passphrase(Zeroizing::new(passphrase.to_string())), label: label.into() })
    }

    /// Text from an environment variable or a key file: a base64-encoded 32-byte key when it
    /// decodes to exactly 32 bytes, otherwise a passphrase. Surrounding whitespace is ignored.
    pub fn from_text(text: &str, label: impl Into<String>) -> Result<Key, KeyError> {
        let t = text.trim();
        let decoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(t).unwrap_or_default());
        if let Ok(bytes) = <[u8; 32]>::try_from(decoded.as_slice()) {
            return Ok(Key::raw(bytes, label));
        }
        Key::passphrase(t, label)
    }

    /// The contents of a key file: exactly 32 raw bytes, or text as in [`Key::from_text`].
    pub fn from_file_bytes(bytes: &[u8], label: impl Into<String>) -> Result<Key, KeyError> {
        if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
            // 32 bytes of printable text is more likely a passphrase than a raw key.
            if std::str::from_utf8(bytes).map_or(true, |s| s.chars().any(|c| c.is_control())) {
                return Ok(Key::raw(raw, label));
            }
        }
        let text = std::str::from_utf8(bytes).map_err(|_| KeyError::NotText)?;
        Key::from_text(text, label)
    }

    /// Where the key came from, such as `key_provider.passphrase.main`. Not secret.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// True for passphrases (whose key is derived with a salt), false for raw keys.
    pub fn is_passphrase(&self) -> bool {
        matches!(self.material, Material::Passphrase(_))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_passphrase() { "passphrase" } else { "raw" };
        f.debug_struct("Key").field("label", &self.label).field("kind", &kind).field("material", &"[redacted]").finish()
    }
}
