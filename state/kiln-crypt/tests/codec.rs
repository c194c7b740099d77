//! The encryptor through the `Codec` contract backends rely on: round trips, wrong keys,
//! tampering, rotation, plaintext migration, and keys never leaking into messages.

use base64::Engine as _;
use kiln_crypt::{detect, Encryptor, Key, KeyError, NoEncryption, Options, DEFAULT_ITERATIONS};
use kiln_state::{Codec, StateError};

/// Sealing with the default 600,000 iterations takes a moment in debug builds: most tests use
/// fewer (the count is stored in every envelope, so opening works either way).
const FAST: Options = Options { allow_plaintext: false, kdf_iterations: 1_000 };

const PASS_A: &str = "correct horse battery staple";
const PASS_B: &str = "a different but long passphrase";

fn pass(p: &str, label: &str) -> Key {
    Key::passphrase(p, label).expect("long enough")
}

fn enc(primary: Key, fallbacks: Vec<Key>) -> Encryptor {
    Encryptor::new(primary, fallbacks, FAST)
}

fn json(stored: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stored).expect("an envelope is JSON")
}

fn crypto_message(r: Result<Vec<u8>, StateError>) -> String {
    match r {
        Err(StateError::Crypto { path, message }) => {
            assert_eq!(path, ".kiln/state.json");
            message
        }
        other => panic!("expected a Crypto error, got {other:?}"),
    }
}

/// Replaces one field of an envelope, keeping the order of the others (the envelope must
/// start with `kiln_encrypted`). Field names are unique across the envelope, `kdf` included.
fn with_field(stored: &[u8], path: &[&str], value: serde_json::Value) -> Vec<u8> {
    let v = json(stored);
    let old = path.iter().fold(&v, |cur, p| &cur[*p]);
    let name = path[path.len() - 1];
    let text = String::from_utf8(stored.to_vec()).unwrap();
    let from = format!("\"{name}\":{old}");
    assert_eq!(text.matches(&from).count(), 1, "{from} in {text}");
    text.replace(&from, &format!("\"{name}\":{value}")).into_bytes()
}

const STATE: &[u8] = br#"{"version":4,"serial":7,"lineage":"abc","resources":{"record.a":{"attributes":{"secret":"hunter2hunter2"}}}}"#;

#[test]
fn passphrase_round_trip_is_one_self_describing_line() {
    let e = enc(pass(PASS_A, "key_provider.passphrase.main"), vec![]);
    let sealed = e.seal(STATE).unwrap();
    assert!(!sealed.contains(&b'\n'), "sealed output must be one line");
    assert!(detect(&sealed));
    assert!(!detect(STATE));
    let v = json(&sealed);
    assert_eq!(v["kiln_encrypted"], 1);
    assert_eq!(v["method"], "aes_gcm");
    assert_eq!(v["kdf"]["name"], "pbkdf2_sha256");
    assert_eq!(v["kdf"]["iterations"], 1_000);
    assert_eq!(v["key_id"].as_str().unwrap().len(), 16);
    let nonce = base64::engine::general_purpose::STANDARD.decode(v["nonce"].as_str().unwrap()).unwrap();
    assert_eq!(nonce.len(), 12, "AES-GCM uses 96-bit nonces");
    assert!(!String::from_utf8_lossy(&sealed).contains("hunter2"), "the plaintext must not show through");
    assert_eq!(e.open(&sealed, ".kiln/state.json").unwrap(), STATE);
    assert_eq!(e.name(), "aes_gcm");
}

#[test]
fn a_second_encryptor_with_the_same_passphrase_opens_it() {
    let sealed = enc(pass(PASS_A, "a"), vec![]).seal(STATE).unwrap();
    assert_eq!(enc(pass(PASS_A, "b"), vec![]).open(&sealed, "x").unwrap(), STATE);
}

#[test]
fn default_options_use_600k_iterations() {
    assert_eq!(Options::default().kdf_iterations, DEFAULT_ITERATIONS);
    let e = Encryptor::new(pass(PASS_A, "main"), vec![], Options::default());
    let sealed = e.seal(b"{}").unwrap();
    assert_eq!(json(&sealed)["kdf"]["iterations"], 600_000);
    // A journal of many lines costs one derivation: the second seal reuses the cached key.
    let start = std::time::Instant::now();
    let first = e.seal(b"{}").unwrap();
    let one = start.elapsed();
    for i in 0..200 {
        let line = e.seal(format!("{{\"line\":{i}}}").as_bytes()).unwrap();
        assert_eq!(e.open(&line, "journal").unwrap(), format!("{{\"line\":{i}}}").as_bytes());
    }
    assert!(start.elapsed() < one * 50 + std::time::Duration::from_secs(2), "sealing 200 lines must not derive the key again each time");
    assert_eq!(e.open(&first, "x").unwrap(), b"{}");
}

#[test]
fn every_seal_has_a_fresh_nonce_and_one_salt_per_encryptor() {
    let e = enc(pass(PASS_A, "main"), vec![]);
    let a = json(&e.seal(STATE).unwrap());
    let b = json(&e.seal(STATE).unwrap());
    assert_ne!(a["nonce"], b["nonce"]);
    assert_ne!(a["ciphertext"], b["ciphertext"]);
    assert_eq!(a["kdf"]["salt"], b["kdf"]["salt"]);
    assert_eq!(a["key_id"], b["key_id"]);
    let other = json(&enc(pass(PASS_A, "main"), vec![]).seal(STATE).unwrap());
    assert_ne!(a["kdf"]["salt"], other["kdf"]["salt"], "salts are random per encryptor");
    assert_ne!(a["key_id"], other["key_id"], "the key ID fingerprints the derived key");
}

#[test]
fn opening_with_the_primary_key_adopts_the_documents_salt() {
    let sealed = enc(pass(PASS_A, "main"), vec![]).seal(STATE).unwrap();
    let e = enc(pass(PASS_A, "main"), vec![]);
    e.open(&sealed, "x").unwrap();
    let again = e.seal(STATE).unwrap();
    assert_eq!(json(&again)["kdf"]["salt"], json(&sealed)["kdf"]["salt"]);
    assert_eq!(json(&again)["key_id"], json(&sealed)["key_id"]);
}

#[test]
fn raw_keys_round_trip_without_a_kdf() {
    let key = [7u8; 32];
    let e = enc(Key::raw(key, "key_provider.env.ci"), vec![]);
    let sealed = e.seal(STATE).unwrap();
    let v = json(&sealed);
    assert!(v.get("kdf").is_none());
    assert_eq!(e.open(&sealed, "x").unwrap(), STATE);
    // A passphrase cannot open a raw-key document, and the reverse.
    let m = crypto_message(enc(pass(PASS_A, "p"), vec![]).open(&sealed, ".kiln/state.json"));
    assert!(m.contains("none of the configured keys"), "{m}");
}

#[test]
fn a_wrong_passphrase_is_a_clear_error() {
    let sealed = enc(pass(PASS_A, "key_provider.passphrase.main"), vec![]).seal(STATE).unwrap();
    let m = crypto_message(enc(pass(PASS_B, "key_provider.passphrase.main"), vec![]).open(&sealed, ".kiln/state.json"));
    assert!(m.contains("check the passphrase or key"), "{m}");
    assert!(m.contains("`key_provider.passphrase.main`"), "{m}");
    assert!(m.contains("fallback"), "the message explains rotation: {m}");
    assert!(m.contains("kiln did not change it"), "{m}");
    assert!(!m.contains(PASS_A) && !m.contains(PASS_B), "keys never appear in errors: {m}");
    let full = StateError::Crypto { path: ".kiln/state.json".into(), message: m }.to_string();
    assert!(full.starts_with("cannot decrypt or encrypt `.kiln/state.json`"), "{full}");
}

#[test]
fn tampered_ciphertext_is_refused() {
    let e = enc(pass(PASS_A, "main"), vec![]);
    let sealed = e.seal(STATE).unwrap();
    let v = json(&sealed);
    let mut ct = base64::engine::general_purpose::STANDARD.decode(v["ciphertext"].as_str().unwrap()).unwrap();
    ct[3] ^= 1;
    let bad = with_field(&sealed, &["ciphertext"], base64::engine::general_purpose::STANDARD.encode(&ct).into());
    let m = crypto_message(e.open(&bad, ".kiln/state.json"));
    assert!(m.contains("modified or damaged"), "{m}");
    assert!(m.contains("restore it from a backup"), "{m}");
    // Truncated ciphertext (the tag cut off).
    let short = with_field(&sealed, &["ciphertext"], base64::engine::general_purpose::STANDARD.encode(&ct[..4]).into());
    assert!(crypto_message(e.open(&short, ".kiln/state.json")).contains("modified or damaged"));
}

#[test]
fn tampered_nonce_is_refused() {
    let e = enc(pass(PASS_A, "main"), vec![]);
    let sealed = e.seal(STATE).unwrap();
    let bad = with_field(&sealed, &["nonce"], base64::engine::general_purpose::STANDARD.encode([0u8; 12]).into());
    assert!(crypto_message(e.open(&bad, ".kiln/state.json")).contains("modified or damaged"));
    let wrong_len = with_field(&sealed, &["nonce"], base64::engine::general_purpose::STANDARD.encode([0u8; 8]).into());
    assert!(crypto_message(e.open(&wrong_len, ".kiln/state.json")).contains("nonce"));
}

#[test]
fn tampered_headers_are_refused() {
    let e = enc(pass(PASS_A, "main"), vec![]);
    let sealed = e.seal(STATE).unwrap();
    let cases: Vec<(&[&str], serde_json::Value, &str)> = vec![
        (&["key_id"], "0000000000000000".into(), "none of the configured keys"),
        (&["kdf", "iterations"], 1_001.into(), "none of the configured keys"),
        (&["kdf", "iterations"], 0.into(), "iterations"),
        (&["kdf", "iterations"], 4_000_000_000u32.into(), "iterations"),
        (&["kdf", "salt"], base64::engine::general_purpose::STANDARD.encode([1u8; 16]).into(), "none of the configured keys"),
        (&["kdf", "salt"], "***".into(), "salt"),
        (&["kdf", "name"], "scrypt".into(), "key derivation `scrypt`"),
        (&["method"], "chacha".into(), "method `chacha`"),
        (&["kiln_encrypted"], 2.into(), "format `2`"),
        (&["ciphertext"], "not base64!".into(), "ciphertext"),
    ];
    for (path, value, expect) in cases {
        let bad = with_field(&sealed, path, value);
        let m = crypto_message(e.open(&bad, ".kiln/state.json"));
        assert!(m.contains(expect), "{path:?}: {m}");
    }
    // Removing the KDF turns a passphrase document into one for a raw key: still refused.
    let text = String::from_utf8(sealed.clone()).unwrap();
    let start = text.find(",\"kdf\":{").unwrap();
    let kdf = &text[start..=start + text[start..].find('}').unwrap()];
    assert!(crypto_message(e.open(text.replace(kdf, "").as_bytes(), ".kiln/state.json")).contains("none of the configured keys"));
    // Cut in the middle of the envelope.
    let m = crypto_message(e.open(&sealed[..sealed.len() / 2], ".kiln/state.json"));
    assert!(m.contains("malformed"), "{m}");
}

#[test]
fn the_header_is_authenticated_even_with_a_matching_key_id() {
    // Swap the nonces of two envelopes sealed with the same key: each nonce is valid, but the
    // ciphertext does not authenticate under the other's nonce.
    let e = enc(pass(PASS_A, "main"), vec![]);
    let a = e.seal(STATE).unwrap();
    let b = e.seal(STATE).unwrap();
    let bad = with_field(&a, &["nonce"], json(&b)["nonce"].clone());
    assert!(crypto_message(e.open(&bad, ".kiln/state.json")).contains("modified or damaged"));
}

#[test]
fn rotation_reads_with_the_fallback_and_writes_with_the_primary() {
    let old = enc(pass(PASS_A, "key_provider.passphrase.old"), vec![]);
    let sealed_old = old.seal(STATE).unwrap();

    // Without the fallback, the new key alone cannot read the old state.
    let new_only = enc(pass(PASS_B, "key_provider.passphrase.main"), vec![]);
    assert!(crypto_message(new_only.open(&sealed_old, ".kiln/state.json")).contains("check the passphrase"));

    let rotating = enc(pass(PASS_B, "key_provider.passphrase.main"), vec![pass(PASS_A, "key_provider.passphrase.old")]);
    assert_eq!(rotating.fallback_labels(), ["key_provider.passphrase.old"]);
    let plain = rotating.open(&sealed_old, ".kiln/state.json").unwrap();
    assert_eq!(plain, STATE);
    let resealed = rotating.seal(&plain).unwrap();
    assert_ne!(json(&resealed)["key_id"], json(&sealed_old)["key_id"]);
    assert_ne!(json(&resealed)["kdf"]["salt"], json(&sealed_old)["kdf"]["salt"], "a fallback's salt is not adopted");

    // After rotation the new key alone reads it, and the old key no longer does.
    assert_eq!(new_only.open(&resealed, "x").unwrap(), STATE);
    let m = crypto_message(old.open(&resealed, ".kiln/state.json"));
    assert!(m.contains("`key_provider.passphrase.old`"), "{m}");
}

#[test]
fn several_fallbacks_are_tried_by_key_id() {
    let keys = ["first long passphrase!", "second long passphrase", "third long passphrase!"];
    let sealed: Vec<Vec<u8>> = keys.iter().map(|k| enc(pass(k, "k"), vec![]).seal(k.as_bytes()).unwrap()).collect();
    let e = enc(pass("the newest passphrase..", "main"), keys.iter().map(|k| pass(k, "old")).collect());
    for (k, s) in keys.iter().zip(&sealed) {
        assert_eq!(e.open(s, "x").unwrap(), k.as_bytes());
    }
}

#[test]
fn plaintext_is_refused_unless_allowed() {
    let strict = enc(pass(PASS_A, "main"), vec![]);
    let m = crypto_message(strict.open(STATE, ".kiln/state.json"));
    assert!(m.contains("is not encrypted"), "{m}");
    assert!(m.contains("fallback { allow_plaintext = true }"), "{m}");

    let migrating = Encryptor::new(pass(PASS_A, "main"), vec![], Options { allow_plaintext: true, ..FAST });
    assert_eq!(migrating.open(STATE, "x").unwrap(), STATE);
    // ... and writes it back encrypted, which the strict encryptor then reads.
    let sealed = migrating.seal(STATE).unwrap();
    assert!(detect(&sealed));
    assert_eq!(strict.open(&sealed, "x").unwrap(), STATE);
    // Allowing plaintext does not weaken authentication of encrypted documents.
    let bad = with_field(&sealed, &["nonce"], base64::engine::general_purpose::STANDARD.encode([9u8; 12]).into());
    assert!(crypto_message(migrating.open(&bad, ".kiln/state.json")).contains("modified or damaged"));
    // Empty documents have nothing to decrypt.
    assert_eq!(strict.open(b"", "x").unwrap(), b"");
}

#[test]
fn no_encryption_refuses_encrypted_documents() {
    let sealed = enc(pass(PASS_A, "main"), vec![]).seal(STATE).unwrap();
    let m = crypto_message(NoEncryption.open(&sealed, ".kiln/state.json"));
    assert!(m.contains("add the `encryption` block"), "{m}");
    // Pretty-printed or indented plain JSON is plain; leading whitespace before an envelope is not.
    assert_eq!(NoEncryption.open(b"{\n  \"version\": 4\n}", "x").unwrap(), b"{\n  \"version\": 4\n}");
    let mut indented = b"  ".to_vec();
    indented.extend(&sealed);
    assert!(detect(&indented));
    assert_eq!(NoEncryption.seal(STATE).unwrap(), STATE);
    assert_eq!(NoEncryption.name(), "plain");
}

#[test]
fn keys_never_appear_in_debug_output() {
    let raw = [0xABu8; 32];
    let e = Encryptor::new(pass(PASS_A, "key_provider.passphrase.main"), vec![Key::raw(raw, "key_provider.file.old")], FAST);
    e.seal(STATE).unwrap();
    for text in [format!("{e:?}"), format!("{e:#?}"), format!("{:?}", pass(PASS_A, "x")), format!("{:?}", Key::raw(raw, "y"))] {
        assert!(!text.contains(PASS_A), "{text}");
        assert!(!text.to_lowercase().contains("abab"), "{text}");
        assert!(!text.contains("171, 171"), "{text}");
        assert!(!text.contains(&base64::engine::general_purpose::STANDARD.encode(raw)), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }
    let debug = format!("{e:?}");
    assert!(debug.contains("key_provider.passphrase.main") && debug.contains("key_provider.file.old"), "{debug}");
}

#[test]
fn key_text_is_a_base64_key_or_a_passphrase() {
    let raw = [42u8; 32];
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let k = Key::from_text(&format!("  {b64}\n"), "env").unwrap();
    assert!(!k.is_passphrase());
    // The same key given raw and as base64 text opens the same documents.
    let sealed = enc(Key::raw(raw, "a"), vec![]).seal(STATE).unwrap();
    assert_eq!(enc(k, vec![]).open(&sealed, "x").unwrap(), STATE);
    assert!(Key::from_text("a long enough passphrase", "env").unwrap().is_passphrase());
    assert_eq!(Key::from_text("short", "env").unwrap_err(), KeyError::TooShort(5));
    assert_eq!(Key::passphrase("ünïcödé-16-chars", "p").map(|k| k.is_passphrase()), Ok(true));
    assert_eq!(Key::passphrase("fifteen chars!!", "p").unwrap_err(), KeyError::TooShort(15));
    // Key files: 32 raw bytes, base64 text, or a passphrase; invalid UTF-8 of another length is refused.
    let mut bin = [0u8; 32];
    bin[0] = 0xff;
    assert!(!Key::from_file_bytes(&bin, "f").unwrap().is_passphrase());
    assert!(!Key::from_file_bytes(format!("{b64}\n").as_bytes(), "f").unwrap().is_passphrase());
    assert!(Key::from_file_bytes(b"this file holds a passphrase\n", "f").unwrap().is_passphrase());
    assert_eq!(Key::from_file_bytes(&[0xff; 20], "f").unwrap_err(), KeyError::NotText);
    assert!(!KeyError::TooShort(3).to_string().is_empty());
}

#[test]
fn errors_never_panic_on_garbage() {
    let e = Encryptor::new(pass(PASS_A, "main"), vec![], Options { allow_plaintext: false, ..FAST });
    let inputs: Vec<&[u8]> = vec![
        b"{\"kiln_encrypted\":",
        b"{\"kiln_encrypted\":1}",
        b"{\"kiln_encrypted\":\"x\",\"method\":1}",
        b"{\"kiln_encrypted\":1,\"method\":\"aes_gcm\",\"key_id\":\"x\",\"nonce\":\"\",\"ciphertext\":\"\"}",
        &[0xff, 0xfe, 0x00],
    ];
    for i in inputs {
        assert!(matches!(e.open(i, "x"), Err(StateError::Crypto { .. })), "{i:?}");
    }
}
