//! Property tests of configuration loading with generated input: arbitrary token soup, mutations
//! of the example configurations, and deeply nested syntax. No input may panic, overflow the
//! stack or hang; every diagnostic's span lies within its file. Bounded: a few hundred cases each.

use std::path::{Path, PathBuf};

use kiln_diag::{Diagnostics, Sources};
use kiln_testkit::fuzz::{config, pos};
use proptest::prelude::*;

/// Parses `text` as one configuration file, checking the diagnostics' spans.
fn parse(text: &str) -> Diagnostics {
    let mut sources = Sources::new();
    let file = sources.add("main.kiln.hcl", text.to_string());
    let mut module = kiln_config::Module::new(PathBuf::from("."));
    let mut diags = Diagnostics::new();
    kiln_config::parse_file(file, sources.text(file), &mut module, &mut diags);
    for d in diags.iter() {
        for l in d.primary.iter().chain(&d.secondary) {
            assert!(l.span.range.start <= l.span.range.end && l.span.range.end <= text.len(), "{d:?} in {text:?}");
            assert!(text.is_char_boundary(l.span.range.start) && text.is_char_boundary(l.span.range.end), "{d:?} in {text:?}");
        }
    }
    diags
}

/// Pieces of HCL (and of things that are not quite HCL) that generated text is made of.
const TOKENS: &[&str] = &[
    "resource",
    "data",
    "locals",
    "variable",
    "output",
    "module",
    "provider",
    "kiln",
    "lifecycle",
    "dynamic",
    "\"record\"",
    "\"a\"",
    "\"job\"",
    "record",
    "local",
    "var",
    "count",
    "for_each",
    "each",
    "depends_on",
    "source",
    "default",
    "type",
    "x",
    "a.b",
    "[*]",
    ".*",
    "[0]",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\"",
    "${",
    "%{",
    "}",
    "~}",
    "<<EOT\n",
    "<<-EOT\n",
    "EOT\n",
    "=",
    "==",
    "!=",
    "=>",
    ":",
    "?",
    ",",
    ".",
    "...",
    "+",
    "-",
    "*",
    "/",
    "%",
    "!",
    "&&",
    "||",
    "<",
    ">=",
    "for",
    "in",
    "if",
    "else",
    "endif",
    "endfor",
    "null",
    "true",
    "1",
    "0.1",
    "1e400",
    "99999999999999999999999999999",
    "-0",
    "\\",
    "\\u{1F600}",
    "#",
    "//",
    "/*",
    "*/",
    " ",
    "\n",
    "\t",
    "\r\n",
    "\u{0}",
    "é",
    "😀",
    "jsondecode(",
    "format(",
    "templatefile(",
    "range(",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..120).prop_map(|t| t.concat())
}

/// Every configuration file of the examples: the seeds that mutations start from.
fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut out = Vec::new();
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().ends_with(".kiln.hcl") {
                out.push(std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out.sort();
    assert!(!out.is_empty());
    out
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(u16, &'static str),
    Delete(u16, u8),
    Duplicate(u16, u16),
    Byte(u16, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<u16>(), prop::sample::select(TOKENS)).prop_map(|(a, t)| Edit::Insert(a, t)),
        (any::<u16>(), any::<u8>()).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<u16>(), any::<u16>()).prop_map(|(a, n)| Edit::Duplicate(a, n)),
        (any::<u16>(), any::<u8>()).prop_map(|(a, b)| Edit::Byte(a, b)),
    ]
}

fn mutate(mut text: String, edits: &[Edit]) -> String {
    for e in edits {
        match *e {
            Edit::Insert(a, t) => {
                let i = pos(&text, a);
                text.insert_str(i, t);
            }
            Edit::Delete(a, n) => {
                let i = pos(&text, a);
                let mut j = (i + n as usize).min(text.len());
                while !text.is_char_boundary(j) {
                    j += 1;
                }
                text.replace_range(i..j, "");
            }
            Edit::Duplicate(a, n) => {
                let i = pos(&text, a);
                let mut j = (i + (n as usize % 400)).min(text.len());
                while !text.is_char_boundary(j) {
                    j += 1;
                }
                let piece = text[i..j].to_string();
                text.insert_str(j, &piece);
            }
            Edit::Byte(a, b) => {
                // An ASCII byte (config files are text; invalid UTF-8 is refused before parsing).
                let i = pos(&text, a);
                let c = char::from(b % 128);
                let mut j = i + 1;
                while j < text.len() && !text.is_char_boundary(j) {
                    j += 1;
                }
                if i < text.len() {
                    text.replace_range(i..j.min(text.len()), &c.to_string());
                }
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn arbitrary_token_soup_never_panics(text in soup()) {
        parse(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        parse(&text);
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn mutated_examples_never_panic(seed in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..12)) {
        let corpus = corpus();
        let text = mutate(corpus[seed.index(corpus.len())].clone(), &edits);
        parse(&text);
    }
}

/// Nesting far beyond any real configuration: a diagnostic, not a stack overflow.
#[test]
fn deeply_nested_syntax_is_an_error_not_a_crash() {
    let n = 100_000;
    let shapes = [
        format!("locals {{\n  a = {}{}\n}}\n", "[".repeat(n), "]".repeat(n)),
        format!("locals {{\n  a = {}1{}\n}}\n", "(".repeat(n), ")".repeat(n)),
        format!("locals {{\n  a = {}1{}\n}}\n", "{a = ".repeat(n), "}".repeat(n)),
        format!("locals {{\n  a = {}\n}}\n", "\"${".repeat(n)),
        format!("locals {{\n  a = {}true\n}}\n", "!".repeat(n)),
        format!("locals {{\n  a = {}1\n}}\n", "-".repeat(n)),
        format!("locals {{\n  a = 1{}\n}}\n", " + 1".repeat(n)),
        format!("locals {{\n  a = x{}\n}}\n", "[0]".repeat(n)),
        format!("locals {{\n  a = x{}\n}}\n", ".b".repeat(n)),
        format!("locals {{\n  a = {}1{}\n}}\n", "true ? ".repeat(n), " : 2".repeat(n)),
        format!("locals {{\n  a = {}\n}}\n", "[for x in ".repeat(n)),
        format!("{}\n", "resource \"a\" \"b\" {\n".repeat(n)),
        format!("a {{\n{}\n}}\n", "b {\n".repeat(n)),
        format!("locals {{\n  a = \"{}\"\n}}\n", "%{ if true }".repeat(n)),
    ];
    for text in shapes {
        // Long traversals are flat (not nested) and fine; every nesting beyond the parser's
        // limits is a syntax error.
        let flat = text.contains("x[0][0]") || text.contains("x.b.b");
        assert_eq!(parse(&text).has_errors(), !flat, "{:?}", &text[..40]);
    }
}
