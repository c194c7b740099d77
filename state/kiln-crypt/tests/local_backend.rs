//! The encryptor inside the real local backend: every stored document (snapshot, backup, each
//! journal line) is an envelope, secrets never reach the disk in clear, a wrong key changes
//! nothing, rotation and plaintext migration work through `read` then `write`, and the state
//! backend conformance suite passes with AES-GCM in place of its test codec.

use std::sync::Arc;

use kiln_crypt::{detect, Encryptor, Key, NoEncryption, Options};
use kiln_state::conformance::{self, sample_state, TestCodec};
use kiln_state::{Codec, LocalBackend, Mutation, OutputState, Plain, StateBackend, StateError};
use kiln_value::Value;

const FAST: Options = Options { allow_plaintext: false, kdf_iterations: 1_000 };

fn encryptor(primary: &str, fallbacks: &[&str], allow_plaintext: bool) -> Arc<dyn Codec> {
    let key = |p: &str, l: &str| Key::passphrase(p, l).expect("long enough");
    Arc::new(Encryptor::new(
        key(primary, "key_provider.passphrase.main"),
        fallbacks.iter().map(|f| key(f, "key_provider.passphrase.old")).collect(),
        Options { allow_plaintext, ..FAST },
    ))
}

const NEW: &str = "the new passphrase, 2025";
const OLD: &str = "the old passphrase, 2024";

fn files(b: &LocalBackend) -> Vec<(String, Vec<u8>)> {
    [b.path(), b.backup_path(), b.journal_path()]
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok().map(|bytes| (p.display().to_string(), bytes)))
        .collect()
}

/// Every stored document is an envelope and no secret of the sample state shows through.
fn assert_all_sealed(b: &LocalBackend) {
    let files = files(b);
    assert!(!files.is_empty());
    for (path, bytes) in files {
        let text = String::from_utf8(bytes).expect("envelopes are text");
        for secret in ["hunter2", "s3cr3t", "données"] {
            assert!(!text.contains(secret), "`{secret}` in clear in {path}");
        }
        for line in text.lines().filter(|l| !l.is_empty()) {
            assert!(detect(line.as_bytes()), "{path}: a stored line is not an envelope: {line}");
        }
    }
}

fn key_id(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    v["key_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn snapshots_backups_and_journal_lines_are_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let a = LocalBackend::new(&path).with_codec(encryptor(NEW, &[], false));
    let s1 = sample_state("lineage-1", 1);
    a.write(&s1).await.unwrap();
    let s2 = State2::next(&s1);
    a.write(&s2).await.unwrap();
    let outputs = [("token".to_string(), OutputState { value: Value::from("s3cr3t-2"), sensitive: true })].into_iter().collect();
    a.append(&[Mutation::SetOutputs(outputs)]).await.unwrap();
    a.append(&[Mutation::Remove { address: "record.a[1]".parse().unwrap() }]).await.unwrap();
    assert!(b_journal_lines(&a) >= 3, "a header and two appends");
    assert_all_sealed(&a);

    // Another client (another process: a new encryptor, another salt) reads it all back.
    let b = LocalBackend::new(&path).with_codec(encryptor(NEW, &[], false));
    let read = b.read().await.unwrap().expect("a state");
    assert_eq!(read.serial, 4);
    assert_eq!(read.outputs["token"].value, Value::from("s3cr3t-2"));
    assert!(!read.resources.contains_key(&"record.a[1]".parse().unwrap()));
}

struct State2;

impl State2 {
    fn next(s: &kiln_state::State) -> kiln_state::State {
        kiln_state::State { serial: s.serial + 1, ..s.clone() }
    }
}

fn b_journal_lines(b: &LocalBackend) -> usize {
    std::fs::read_to_string(b.journal_path()).map(|t| t.lines().count()).unwrap_or(0)
}

#[tokio::test]
async fn a_wrong_key_is_an_error_and_overwrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let a = LocalBackend::new(&path).with_codec(encryptor(NEW, &[], false));
    let s1 = sample_state("lineage-1", 1);
    a.write(&s1).await.unwrap();
    a.append(&[Mutation::Remove { address: "record.a[1]".parse().unwrap() }]).await.unwrap();
    let before = files(&a);

    for (what, codec) in [
        ("a wrong passphrase", encryptor(OLD, &[], false)),
        ("a wrong passphrase that allows plaintext", encryptor(OLD, &[], true)),
        ("no encryption block", Arc::new(NoEncryption) as Arc<dyn Codec>),
    ] {
        let wrong = LocalBackend::new(&path).with_codec(codec);
        match wrong.read().await {
            Err(StateError::Crypto { path: p, message }) => {
                assert!(p.contains("state.json"), "{what}: {p}");
                assert!(!message.contains(NEW) && !message.contains(OLD), "{what}: a key in {message}");
                assert!(message.contains("kiln did not change it"), "{what}: {message}");
            }
            other => panic!("{what}: expected a Crypto error, got {other:?}"),
        }
        assert!(wrong.write(&State2::next(&State2::next(&s1))).await.is_err(), "{what}: the write must be refused");
        assert_eq!(files(&a), before, "{what}: nothing may change on disk");
    }
    assert_eq!(a.read().await.unwrap().unwrap().serial, 2);
}

#[tokio::test]
async fn rotation_reads_with_the_old_key_and_writes_with_the_new() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let old = LocalBackend::new(&path).with_codec(encryptor(OLD, &[], false));
    let s1 = sample_state("lineage-1", 1);
    old.write(&s1).await.unwrap();
    let old_id = key_id(&path);

    let rotating = LocalBackend::new(&path).with_codec(encryptor(NEW, &[OLD], false));
    let read = rotating.read().await.unwrap().expect("read with the fallback key");
    assert_eq!(read, s1);
    rotating.write(&State2::next(&read)).await.unwrap();
    assert_ne!(key_id(&path), old_id, "the snapshot is now sealed with the new key");
    assert_eq!(key_id(rotating.backup_path()), old_id, "the backup is the previous snapshot as it was");
    assert_all_sealed(&rotating);

    let new_only = LocalBackend::new(&path).with_codec(encryptor(NEW, &[], false));
    assert_eq!(new_only.read().await.unwrap().unwrap().serial, 2, "after rotation the new key alone reads the state");
    assert!(matches!(old.read().await, Err(StateError::Crypto { .. })), "the old key alone no longer does");
}

#[tokio::test]
async fn an_unencrypted_state_is_migrated_only_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let plain = LocalBackend::new(&path).with_codec(Arc::new(Plain));
    let s1 = sample_state("lineage-1", 1);
    plain.write(&s1).await.unwrap();
    plain.append(&[Mutation::Remove { address: "record.a[1]".parse().unwrap() }]).await.unwrap();
    let before = files(&plain);

    let strict = LocalBackend::new(&path).with_codec(encryptor(NEW, &[], false));
    match strict.read().await {
        Err(StateError::Crypto { message, .. }) => assert!(message.contains("allow_plaintext = true"), "{message}"),
        other => panic!("expected a Crypto error, got {other:?}"),
    }
    assert!(strict.write(&State2::next(&State2::next(&s1))).await.is_err());
    assert_eq!(files(&plain), before, "a refused migration changes nothing");

    let migrating = LocalBackend::new(&path).with_codec(encryptor(NEW, &[], true));
    let read = migrating.read().await.unwrap().expect("a plain state is read when allowed");
    assert_eq!(read.serial, 2);
    migrating.write(&State2::next(&read)).await.unwrap();
    assert!(detect(&std::fs::read(&path).unwrap()), "written back encrypted");
    assert_eq!(strict.read().await.unwrap().unwrap().serial, 3, "and from now on the strict configuration reads it");
}

/// Maps the suite's codecs onto real ones: its sealing test key becomes the AES-GCM encryptor,
/// its other key an encryptor with another passphrase, `Plain` the no-encryption codec.
fn real_codec(given: Arc<dyn Codec>, sealing: &Arc<dyn Codec>, other: &Arc<dyn Codec>) -> Arc<dyn Codec> {
    if given.name() == "plain" {
        return Arc::new(NoEncryption);
    }
    let probe = given.seal(b"").expect("test codec seals");
    if probe == TestCodec(0x5a).seal(b"").unwrap() {
        sealing.clone()
    } else {
        other.clone()
    }
}

#[tokio::test]
async fn the_backend_conformance_suite_passes_with_aes_gcm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let sealing = encryptor(NEW, &[], false);
    let other = encryptor(OLD, &[], false);
    conformance::run(&|workspace, codec| {
        Box::new(LocalBackend::new(&path).with_workspace(workspace).with_codec(real_codec(codec, &sealing, &other)))
            as Box<dyn StateBackend>
    })
    .await;
    let default = LocalBackend::new(&path).with_codec(sealing.clone());
    assert_all_sealed_lines(&default);
}

/// Like [`assert_all_sealed`] without the secrets check (the suite writes its own states).
fn assert_all_sealed_lines(b: &LocalBackend) {
    for (path, bytes) in files(b) {
        for line in String::from_utf8(bytes).unwrap().lines().filter(|l| !l.is_empty()) {
            assert!(detect(line.as_bytes()), "{path}: {line}");
        }
    }
}

/// An `append` by a client holding the wrong key must not destroy journal lines it cannot
/// open. (The CLI always reads, which fails, before appending; this guards the backend itself.)
#[tokio::test]
async fn an_append_with_the_wrong_key_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let a = LocalBackend::new(&path).with_codec(encryptor(NEW, &[], false));
    a.write(&sample_state("lineage-1", 1)).await.unwrap();
    a.append(&[Mutation::Remove { address: "record.a[1]".parse().unwrap() }]).await.unwrap();
    for codec in [encryptor(OLD, &[], false), Arc::new(NoEncryption) as Arc<dyn Codec>] {
        let wrong = LocalBackend::new(&path).with_codec(codec);
        let _ = wrong.append(&[Mutation::Remove { address: "record.a[0]".parse().unwrap() }]).await;
        assert_eq!(a.read().await.unwrap().unwrap().serial, 2, "the append made with the right key must survive");
    }
}
