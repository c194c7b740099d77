//! Property-style tests over the fixtures in `testdata/`: the formatter keeps
//! every token (and so every comment), and the layout depends only on tokens
//! and line breaks — never on the horizontal whitespace of the input.

use std::fs;
use std::path::Path;

use crate::format_source;
use crate::lexer::{lex, Kind, Token};

/// `(name, in.kiln.hcl, out.kiln.hcl)` for every fixture scenario.
fn fixtures() -> Vec<(String, String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut out = Vec::new();
    for entry in fs::read_dir(root).expect("testdata directory") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let read = |f: &str| fs::read_to_string(dir.join(f)).expect("fixture file");
        out.push((name, read("in.kiln.hcl"), read("out.kiln.hcl")));
    }
    assert!(out.len() >= 8, "expected the fixture scenarios, found {}", out.len());
    out
}

/// Small deterministic xorshift generator: no dependency, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }

    fn blanks(&mut self, min: usize, max: usize) -> String {
        let n = min + self.below((max - min + 1) as u64);
        (0..n).map(|_| if self.below(4) == 0 { '\t' } else { ' ' }).collect()
    }
}

/// Rewrites the horizontal whitespace of `src`: random indentation, random
/// (non-zero) gaps where there was a gap, random trailing blanks. Line breaks
/// and tokens are untouched.
fn perturb(src: &str, rng: &mut Rng) -> String {
    let tokens = lex(src);
    let mut out = String::new();
    let mut line_start = true;
    for (i, t) in tokens.iter().enumerate() {
        let prev: Option<&Token> = i.checked_sub(1).map(|j| &tokens[j]);
        let gap_in_source = prev.is_some_and(|p| t.start > p.start + p.text.len());
        if line_start {
            if t.kind != Kind::Newline {
                out.push_str(&rng.blanks(0, 6));
            }
        } else if t.kind == Kind::Newline {
            if prev.is_some_and(|p| p.kind != Kind::Heredoc) {
                out.push_str(&rng.blanks(0, 2));
            }
        } else if gap_in_source {
            out.push_str(&rng.blanks(1, 4));
        }
        out.push_str(&t.text);
        line_start = t.ends_line();
    }
    out
}

#[test]
fn horizontal_whitespace_of_the_input_does_not_matter() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (name, _, expected) in fixtures() {
        for round in 0..8 {
            let messy = perturb(&expected, &mut rng);
            let got = format_source(&messy).unwrap_or_else(|e| panic!("{name} round {round}: {e}\n--- input:\n{messy}"));
            assert!(got == expected, "{name} round {round}: layout depends on whitespace\n--- input:\n{messy}\n--- got:\n{got}");
        }
    }
}

#[test]
fn formatting_keeps_every_token_and_comment() {
    for (name, input, _) in fixtures() {
        let output = format_source(&input).expect("fixture formats");
        let before = lex(&input);
        let after = lex(&output);
        // Newlines at the very end may be dropped; nothing else may.
        let strip = |ts: Vec<Token>| {
            let mut v: Vec<Token> = ts;
            while v.last().is_some_and(|t| t.kind == Kind::Newline) {
                v.pop();
            }
            v
        };
        let (before, after) = (strip(before), strip(after));
        assert_eq!(before.len(), after.len(), "{name}: token count changed");
        for (b, a) in before.iter().zip(&after) {
            let same = b.text == a.text || (b.kind == Kind::Ident && a.kind == Kind::Quoted && a.text == format!("\"{}\"", b.text));
            assert!(same, "{name}: token {:?} became {:?}", b.text, a.text);
        }
    }
}
