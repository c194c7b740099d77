//! [`Encryptor`]: the AES-256-GCM [`Codec`] with a primary key, fallback keys for rotation and
//! an opt-in plaintext fallback for migrating unencrypted documents.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use kiln_state::{Codec, StateError};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::envelope::{b64, detect, unb64, Envelope, Kdf, FORMAT};
use crate::key::{Key, Material};

/// The only method so far.
pub const METHOD: &str = "aes_gcm";

/// The key derivation function for passphrases.
pub const KDF: &str = "pbkdf2_sha256";

/// PBKDF2-HMAC-SHA256 iterations used when sealing (OWASP's 2023 recommendation).
pub const DEFAULT_ITERATIONS: u32 = 600_000;

/// `open` refuses envelopes asking for more iterations than this (it would take minutes).
const MAX_ITERATIONS: u32 = 10_000_000;

const SALT_BYTES: usize = 16;

/// Settings of an [`Encryptor`] besides its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `open` returns unencrypted documents as they are instead of refusing them, so an
    /// unencrypted state can be migrated: read plain, written back encrypted.
    pub allow_plaintext: bool,
    /// PBKDF2 iterations for passphrase keys when sealing. Opening uses the count stored in
    /// each envelope. Keep the default; lower values are for tests.
    pub kdf_iterations: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options { allow_plaintext: false, kdf_iterations: DEFAULT_ITERATIONS }
    }
}

/// Encrypts documents with AES-256-GCM under a primary key; decrypts with the primary or any
/// fallback key (chosen by the key ID stored in the envelope).
///
/// Sealing draws a fresh random 96-bit nonce for every document. A passphrase is stretched
/// with PBKDF2 once per process and salt: sealing uses one random salt per encryptor (or the
/// salt of a document it already opened with the primary key), and every derived key is
/// cached, so a journal of many lines costs one derivation.
pub struct Encryptor {
    primary: Slot,
    fallbacks: Vec<Slot>,
    options: Options,
    /// The salt used when sealing with a passphrase primary key.
    seal_salt: OnceLock<[u8; SALT_BYTES]>,
}

/// The derivation parameters of a key: `None` for a raw key, (salt, iterations) for a passphrase.
type KdfKey = Option<(Vec<u8>, u32)>;

/// One key and the ciphers derived from it, by salt.
struct Slot {
    key: Key,
    derived: Mutex<HashMap<KdfKey, Arc<Derived>>>,
}

struct Derived {
    cipher: Aes256Gcm,
    key_id: String,
}

impl Slot {
    fn new(key: Key) -> Slot {
        Slot { key, derived: Mutex::new(HashMap::new()) }
    }

    /// The cipher for this key under `kdf` (salt, iterations), or `None` when the key's kind
    /// does not match (a raw key never has a salt; a passphrase always has one).
    fn derive(&self, kdf: Option<(&[u8], u32)>) -> Option<Arc<Derived>> {
        let cache_key = kdf.map(|(s, i)| (s.to_vec(), i));
        let mut cache = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = cache.get(&cache_key) {
            return Some(d.clone());
        }
        let key: Zeroizing<[u8; 32]> = match (&self.key.material, kdf) {
            (Material::Raw(k), None) => k.clone(),
            (Material::Passphrase(p), Some((salt, iterations))) => {
                let mut out = Zeroizing::new([0u8; 32]);
                pbkdf2::pbkdf2_hmac::<Sha256>(p.as_bytes(), salt, iterations, out.as_mut());
                out
            }
            _ => return None,
        };
        let bytes: &[u8; 32] = &key;
        let d = Arc::new(Derived { cipher: Aes256Gcm::new(bytes.into()), key_id: key_id(bytes) });
        cache.insert(cache_key, d.clone());
        Some(d)
    }
}

/// A short public fingerprint of a (derived) key: the first 8 bytes of a domain-separated
/// SHA-256, in hex. It identifies the key without revealing it.
fn key_id(key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"kiln key id v1\0");
    h.update(key);
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Encryptor {
    /// An encryptor that seals with `primary` and opens with `primary` or any of `fallbacks`.
    pub fn new(primary: Key, fallbacks: Vec<Key>, options: Options) -> Encryptor {
        Encryptor {
            primary: Slot::new(primary),
            fallbacks: fallbacks.into_iter().map(Slot::new).collect(),
            options,
            seal_salt: OnceLock::new(),
        }
    }

    /// The settings this encryptor was built with.
    pub fn options(&self) -> Options {
        self.options
    }

    /// Where the primary key comes from (`key_provider.passphrase.main`).
    pub fn primary_label(&self) -> &str {
        self.primary.key.label()
    }

    /// Where each fallback key comes from.
    pub fn fallback_labels(&self) -> Vec<&str> {
        self.fallbacks.iter().map(|s| s.key.label()).collect()
    }

    fn error(what: &str, message: impl Into<String>) -> StateError {
        StateError::Crypto { path: what.to_string(), message: message.into() }
    }

    fn configured_keys(&self) -> String {
        let mut s = format!("the primary key `{}`", self.primary.key.label());
        for f in &self.fallbacks {
            s.push_str(&format!(", the fallback key `{}`", f.key.label()));
        }
        s
    }

    fn open_envelope(&self, stored: &[u8], what: &str) -> Result<Vec<u8>, StateError> {
        let restore = "kiln did not change it: restore it from a backup or fix it by hand";
        let env: Envelope = serde_json::from_slice(stored)
            .map_err(|e| Self::error(what, format!("it looks encrypted but its envelope is malformed ({e}); {restore}")))?;
        if env.kiln_encrypted != FORMAT {
            return Err(Self::error(
                what,
                format!("it uses encryption format `{}` but this kiln understands format `{FORMAT}`: upgrade kiln", env.kiln_encrypted),
            ));
        }
        if env.method != METHOD {
            return Err(Self::error(
                what,
                format!("it was encrypted with method `{}` but this kiln supports only `{METHOD}`: upgrade kiln", env.method),
            ));
        }
        let salt = match &env.kdf {
            None => None,
            Some(Kdf { name, iterations, salt }) => {
                if name != KDF {
                    return Err(Self::error(
                        what,
                        format!("it uses key derivation `{name}` but this kiln supports only `{KDF}`: upgrade kiln"),
                    ));
                }
                if *iterations == 0 || *iterations > MAX_ITERATIONS {
                    return Err(Self::error(
                        what,
                        format!("its key derivation asks for {iterations} iterations, outside 1..={MAX_ITERATIONS}; {restore}"),
                    ));
                }
                let salt = unb64(salt).filter(|s| (8..=64).contains(&s.len()));
                Some((
                    salt.ok_or_else(|| Self::error(what, format!("its salt is not valid base64 of 8 to 64 bytes; {restore}")))?,
                    *iterations,
                ))
            }
        };
        let nonce = unb64(&env.nonce)
            .filter(|n| n.len() == 12)
            .ok_or_else(|| Self::error(what, format!("its nonce is not valid base64 of 12 bytes; {restore}")))?;
        let ciphertext =
            unb64(&env.ciphertext).ok_or_else(|| Self::error(what, format!("its ciphertext is not valid base64; {restore}")))?;
        let kdf = salt.as_ref().map(|(s, i)| (s.as_slice(), *i));
        for (i, slot) in std::iter::once(&self.primary).chain(&self.fallbacks).enumerate() {
            let Some(d) = slot.derive(kdf) else { continue };
            if d.key_id != env.key_id {
                continue;
            }
            let aad = env.aad();
            let plain = d.cipher.decrypt(Nonce::from_slice(&nonce), Payload { msg: &ciphertext, aad: &aad }).map_err(|_| {
                Self::error(
                    what,
                    format!(
                        "it does not authenticate with `{}` although it names that key (key ID `{}`): it was modified or damaged after it was written; {restore}",
                        slot.key.label(),
                        env.key_id
                    ),
                )
            })?;
            if i == 0 {
                if let Some((s, iterations)) = &salt {
                    // Reuse the salt of the state we just read for what we write back, so one
                    // derivation per process is enough.
                    if *iterations == self.options.kdf_iterations {
                        if let Ok(s) = <[u8; SALT_BYTES]>::try_from(s.as_slice()) {
                            let _ = self.seal_salt.set(s);
                        }
                    }
                }
            }
            return Ok(plain);
        }
        let kind = if env.kdf.is_some() { "a passphrase" } else { "a raw key" };
        Err(Self::error(
            what,
            format!(
                "it was encrypted with {kind} (key ID `{}`) that is none of the configured keys ({}), or it was modified: check the passphrase or key; if you rotated the key, keep the old one as a fallback (`fallback {{ keys = key_provider.TYPE.NAME }}` in the `encryption` block) until the state has been written with the new key; kiln did not change it",
                env.key_id,
                self.configured_keys()
            ),
        ))
    }
}

impl Codec for Encryptor {
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, StateError> {
        let kdf = match self.primary.key.material {
            Material::Raw(_) => None,
            Material::Passphrase(_) => {
                let salt = self.seal_salt.get_or_init(|| {
                    let mut s = [0u8; SALT_BYTES];
                    OsRng.fill_bytes(&mut s);
                    s
                });
                Some((salt.as_slice(), self.options.kdf_iterations))
            }
        };
        let d = self.primary.derive(kdf).ok_or_else(|| Self::error("(document being encrypted)", "the primary key cannot be derived"))?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut env = Envelope {
            kiln_encrypted: FORMAT,
            method: METHOD.to_string(),
            key_id: d.key_id.clone(),
            kdf: kdf.map(|(salt, iterations)| Kdf { name: KDF.to_string(), iterations, salt: b64(salt) }),
            nonce: b64(&nonce),
            ciphertext: String::new(),
        };
        let aad = env.aad();
        let ciphertext = d.cipher.encrypt(&nonce, Payload { msg: plain, aad: &aad }).map_err(|_| {
            Self::error("(document being encrypted)", "AES-GCM refused to encrypt it (documents over 64 GiB cannot be encrypted)")
        })?;
        env.ciphertext = b64(&ciphertext);
        serde_json::to_vec(&env).map_err(|e| Self::error("(document being encrypted)", e.to_string()))
    }

    fn open(&self, stored: &[u8], what: &str) -> Result<Vec<u8>, StateError> {
        if detect(stored) {
            return self.open_envelope(stored, what);
        }
        // An empty document holds nothing to protect or decrypt.
        if stored.iter().all(u8::is_ascii_whitespace) || self.options.allow_plaintext {
            return Ok(stored.to_vec());
        }
        Err(Self::error(what, PLAINTEXT_REFUSED))
    }

    fn name(&self) -> &str {
        METHOD
    }
}

/// The message for an unencrypted document read while encryption is configured.
pub const PLAINTEXT_REFUSED: &str = "it is not encrypted, but the `encryption` block says state is encrypted: to encrypt an existing unencrypted state, add `fallback { allow_plaintext = true }` to the `encryption` block so kiln reads it as it is and writes it back encrypted, then remove that fallback; kiln did not change it";

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("method", &METHOD)
            .field("primary", &self.primary.key)
            .field("fallbacks", &self.fallbacks.iter().map(|s| &s.key).collect::<Vec<_>>())
            .field("options", &self.options)
            .finish()
    }
}

/// The codec for a configuration without an `encryption` block: stores documents as they are,
/// and refuses to open an encrypted one (instead of failing later on unreadable JSON) with a
/// message saying to add the `encryption` block.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEncryption;

/// The message for an encrypted document read without an `encryption` block.
pub const ENCRYPTED_WITHOUT_CONFIG: &str = "it is encrypted, but this configuration has no `encryption` block: add the `encryption` block (with the key it was encrypted with) to the `kiln` block; kiln did not change it";

impl Codec for NoEncryption {
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, StateError> {
        Ok(plain.to_vec())
    }

    fn open(&self, stored: &[u8], what: &str) -> Result<Vec<u8>, StateError> {
        if detect(stored) {
            return Err(StateError::Crypto { path: what.to_string(), message: ENCRYPTED_WITHOUT_CONFIG.to_string() });
        }
        Ok(stored.to_vec())
    }

    fn name(&self) -> &str {
        "plain"
    }
}
