//! Property tests of the state reader and the journal reader with generated and mutated
//! documents: no input may panic, overflow the stack, hang or allocate without bound, and a
//! state the reader accepts is one kiln can write and read back unchanged. A few hundred cases
//! each, in the normal test run.

use kiln_state::conformance::sample_state;
use kiln_state::format::decode_mutations;
use kiln_state::{decode, encode, LocalBackend, Mutation, StateBackend};
use kiln_testkit::fuzz::config;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Edit {
    /// Overwrite a byte.
    Byte(u16, u8),
    /// Insert a piece of JSON (or not quite JSON).
    Insert(u16, &'static str),
    /// Remove up to n bytes.
    Delete(u16, u8),
    /// Cut the document here.
    Truncate(u16),
    /// Repeat a slice.
    Duplicate(u16, u16),
}

const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "null",
    "true",
    "0",
    "-1",
    "18446744073709551615",
    "18446744073709551616",
    "1e400",
    "0.1",
    "\"\"",
    "\"x\"",
    "{\"$sensitive\":1}",
    "\"resources\"",
    "\"lineage\"",
    "\"serial\"",
    "\"format_version\"",
    "\\u0000",
    "\\ud800",
    "\n",
    "\0",
    "é",
    "[[[[[[[[[[",
    "]]]]]]]]]]",
    "{\"a\":{\"a\":{\"a\":",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<u16>(), any::<u8>()).prop_map(|(a, b)| Edit::Byte(a, b)),
        (any::<u16>(), prop::sample::select(PIECES)).prop_map(|(a, p)| Edit::Insert(a, p)),
        (any::<u16>(), any::<u8>()).prop_map(|(a, n)| Edit::Delete(a, n)),
        any::<u16>().prop_map(Edit::Truncate),
        (any::<u16>(), any::<u16>()).prop_map(|(a, n)| Edit::Duplicate(a, n)),
    ]
}

fn at(bytes: &[u8], a: u16) -> usize {
    (a as usize * bytes.len()) / (u16::MAX as usize + 1)
}

fn mutate(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        match *e {
            Edit::Byte(a, x) if !b.is_empty() => {
                let i = at(&b, a);
                b[i] = x;
            }
            Edit::Byte(..) => {}
            Edit::Insert(a, p) => {
                let i = at(&b, a);
                b.splice(i..i, p.bytes());
            }
            Edit::Delete(a, n) => {
                let i = at(&b, a);
                let j = (i + n as usize).min(b.len());
                b.drain(i..j);
            }
            Edit::Truncate(a) => {
                let i = at(&b, a);
                b.truncate(i);
            }
            Edit::Duplicate(a, n) => {
                let i = at(&b, a);
                let j = (i + n as usize % 512).min(b.len());
                let piece = b[i..j].to_vec();
                b.splice(j..j, piece);
            }
        }
    }
    b
}

/// Reads `bytes` as a state document; what it accepts must survive a write and a read.
fn read_state(bytes: &[u8]) {
    if let Ok(s) = decode(bytes, "state.json") {
        let again = decode(&encode(&s), "state.json").expect("what kiln reads, it writes readably");
        assert_eq!(again, s);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A local backend holding the sample state and a journal of a few appends.
fn backend_with_journal(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, LocalBackend) {
    let dir = tempfile::tempdir().unwrap();
    let b = LocalBackend::new(dir.path().join(".kiln/state.json"));
    let s = sample_state("fuzz", 1);
    rt.block_on(async {
        b.write(&s).await.unwrap();
        let first = s.resources.keys().next().unwrap().clone();
        let resource = s.resources[&first].clone();
        b.append(&[Mutation::Remove { address: first.clone() }]).await.unwrap();
        b.append(&[Mutation::Put { address: first, resource }]).await.unwrap();
        b.append(&[Mutation::SetOutputs(Default::default())]).await.unwrap();
    });
    (dir, b)
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn mutated_state_documents_are_read_or_refused(edits in prop::collection::vec(edit(), 1..8)) {
        let good = encode(&sample_state("fuzz", 7));
        read_state(&mutate(good, &edits));
    }

    #[test]
    fn arbitrary_bytes_are_refused_as_state(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        read_state(&bytes);
        let _ = decode_mutations(&bytes);
    }

    #[test]
    fn mutated_journal_lines_are_decoded_or_refused(edits in prop::collection::vec(edit(), 1..6)) {
        let s = sample_state("fuzz", 1);
        let (address, resource) = s.resources.iter().next().map(|(a, r)| (a.clone(), r.clone())).unwrap();
        let line = kiln_state::format::encode_mutations(&[Mutation::Put { address, resource }, Mutation::SetOutputs(s.outputs.clone())]);
        let _ = decode_mutations(&mutate(line, &edits));
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// The whole read path of the local backend (state, then journal replay) on a mutated journal.
    #[test]
    fn a_mutated_journal_is_read_or_refused(edits in prop::collection::vec(edit(), 1..6)) {
        let rt = runtime();
        let (_dir, b) = backend_with_journal(&rt);
        let journal = std::fs::read(b.journal_path()).unwrap();
        std::fs::write(b.journal_path(), mutate(journal, &edits)).unwrap();
        if let Ok(Some(s)) = rt.block_on(b.read()) {
            assert_eq!(decode(&encode(&s), "state.json").unwrap(), s);
        }
    }
}

/// Documents nested far deeper than any value kiln writes: refused, without a stack overflow.
#[test]
fn deeply_nested_documents_are_refused() {
    let good = String::from_utf8(encode(&sample_state("fuzz", 1))).unwrap();
    for n in [300, 100_000] {
        let deep = format!("{}{}", "[".repeat(n), "]".repeat(n));
        let doc = good.replacen("\"a0\"", &deep, 1);
        assert_ne!(doc, good);
        assert!(decode(doc.as_bytes(), "state.json").is_err(), "depth {n}");
        let objects = format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert!(decode(good.replacen("\"a0\"", &objects, 1).as_bytes(), "state.json").is_err(), "depth {n}");
        assert!(decode_mutations(format!("{{\"mutations\":{deep}}}").as_bytes()).is_err());
    }
}
