//! Hiding sensitive values in text that quotes them: the one rule every error path uses when a
//! message may contain a value (a provider's validation, an evaluator error inside a template).
//!
//! [`Secrets::of`] collects the printed forms of every marked primitive inside a value;
//! [`Secrets::redact`] replaces them with [`REDACTED`]: quoted forms anywhere, long forms (4
//! characters or more) anywhere, and short forms only as whole words, so a secret `7` does not
//! turn every `7` inside a longer number into a redaction but is still hidden when it is quoted.

use std::collections::HashSet;

use crate::{format_number, Value};

/// What a sensitive value prints as.
pub const REDACTED: &str = "(sensitive value)";

/// The printed forms of sensitive values, to hide them in messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// The printed forms of every primitive under a sensitive mark in `v`.
    pub fn of(v: &Value) -> Secrets {
        let mut s = Secrets::default();
        s.add(v);
        s
    }

    /// The secrets of many values, sorted once.
    pub fn of_all<'a>(values: impl IntoIterator<Item = &'a Value>) -> Secrets {
        let mut s = Secrets::default();
        for v in values {
            collect(v, false, &mut s.0);
        }
        s.tidy();
        s
    }

    /// Longest first, so a secret containing another is replaced whole; no duplicates.
    fn tidy(&mut self) {
        self.0.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.0.dedup();
    }

    /// Adds the printed forms of `v`'s sensitive primitives.
    pub fn add(&mut self, v: &Value) {
        collect(v, false, &mut self.0);
        self.tidy();
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds another set's secrets.
    pub fn extend(&mut self, other: &Secrets) {
        self.0.extend(other.0.iter().cloned());
        self.tidy();
    }

    /// Only the secrets of `n` characters or more.
    pub fn at_least(mut self, n: usize) -> Secrets {
        self.0.retain(|s| s.chars().count() >= n);
        self
    }

    /// `v` with every string or number that is one of these secrets (or, for a secret of 4
    /// characters or more, contains one) marked sensitive: for values a provider copied from a
    /// sensitive setting of its own configuration into an object's attributes.
    pub fn mark(&self, v: Value) -> Value {
        if self.0.is_empty() {
            return v;
        }
        let hit = |t: &str| self.0.iter().any(|s| t == s || (s.chars().count() >= 4 && t.contains(s.as_str())));
        match v {
            Value::String(s) if hit(&s) => Value::String(s).sensitive(),
            Value::Number(n) if hit(&format_number(n)) => Value::Number(n).sensitive(),
            Value::List(l) => Value::List(l.into_iter().map(|x| self.mark(x)).collect()),
            Value::Map(m) => Value::Map(m.into_iter().map(|(k, x)| (k, self.mark(x))).collect()),
            v => v,
        }
    }

    /// `text` with every occurrence of a secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        self.matcher().redact(text)
    }

    /// A matcher to redact many texts: built once, it finds every long secret in one pass over
    /// a text (10,000 diagnostics and 10,000 secrets stay fast).
    pub fn matcher(&self) -> Matcher<'_> {
        let mut m = Matcher { prefixes: HashSet::new(), patterns: HashSet::new(), lengths: Vec::new(), short: Vec::new() };
        for s in &self.0 {
            if s.chars().count() < 4 {
                m.short.push(s.as_str());
                continue;
            }
            // Quoted forms (as messages and JSON print strings) go whole; JSON-escaped forms too.
            let json = serde_json::Value::String(s.clone()).to_string();
            let escaped = json[1..json.len() - 1].to_string();
            for p in [format!("\"{s}\""), format!("`{s}`"), format!("'{s}'"), json.clone(), s.clone(), escaped] {
                m.prefixes.insert(p.as_bytes()[..4].try_into().expect("4 bytes"));
                m.lengths.push(p.len());
                m.patterns.insert(p);
            }
        }
        m.lengths.sort_unstable_by(|a, b| b.cmp(a));
        m.lengths.dedup();
        m
    }
}

/// Redacts texts with one set of [`Secrets`] (see [`Secrets::matcher`]).
pub struct Matcher<'a> {
    /// The first 4 bytes of every pattern: a quick filter before the lookups.
    prefixes: HashSet<[u8; 4]>,
    /// Every long secret, bare, quoted and JSON-escaped (4 bytes or more).
    patterns: HashSet<String>,
    /// The patterns' lengths in bytes, longest first.
    lengths: Vec<usize>,
    /// Secrets shorter than 4 characters: replaced quoted, or as whole words.
    short: Vec<&'a str>,
}

impl Matcher<'_> {
    pub fn redact(&self, text: &str) -> String {
        let mut out = if self.patterns.is_empty() { text.to_string() } else { self.redact_long(text) };
        for s in &self.short {
            for q in [format!("\"{s}\""), format!("`{s}`"), format!("'{s}'")] {
                if out.contains(&q) {
                    out = out.replace(&q, REDACTED);
                }
            }
            out = replace_words(&out, s);
        }
        out
    }

    fn redact_long(&self, text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        let mut copied = 0;
        while i + 4 <= bytes.len() {
            if text.is_char_boundary(i) && self.prefixes.contains(&<[u8; 4]>::try_from(&bytes[i..i + 4]).expect("4 bytes")) {
                let rest = &text[i..];
                let found = self
                    .lengths
                    .iter()
                    .copied()
                    .find(|&l| l <= rest.len() && rest.is_char_boundary(l) && self.patterns.contains(&rest[..l]));
                if let Some(l) = found {
                    out.push_str(&text[copied..i]);
                    out.push_str(REDACTED);
                    i += l;
                    copied = i;
                    continue;
                }
            }
            i += 1;
        }
        out.push_str(&text[copied..]);
        out
    }
}

/// Pushes the printed forms of the primitives under a sensitive mark in `v`.
fn collect(v: &Value, inside: bool, out: &mut Vec<String>) {
    match v {
        Value::Sensitive(inner) => collect(inner, true, out),
        Value::List(l) => l.iter().for_each(|v| collect(v, inside, out)),
        Value::Map(m) => m.values().for_each(|v| collect(v, inside, out)),
        Value::String(s) if inside && !s.trim().is_empty() => out.push(s.clone()),
        Value::Number(n) if inside => out.push(format_number(*n)),
        _ => {}
    }
}

/// Replaces `word` where it is not part of a longer word or number.
fn replace_words(text: &str, word: &str) -> String {
    let inner = |c: char| c.is_alphanumeric() || c == '_' || c == '.' || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev: Option<char> = None;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back().or(prev);
        let after = rest[i + word.len()..].chars().next();
        // A trailing '.' ends a sentence: it does not make the word longer.
        let after_inner = after.is_some_and(|c| inner(c) && (c != '.' || rest[i + word.len() + 1..].starts_with(char::is_alphanumeric)));
        let whole = !before.is_some_and(inner) && !after_inner;
        out.push_str(&rest[..i]);
        out.push_str(if whole { REDACTED } else { word });
        prev = word.chars().next_back();
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(v: Value) -> Secrets {
        Secrets::of(&Value::Map([("a".to_string(), v), ("b".to_string(), Value::from("visible"))].into()))
    }

    #[test]
    fn long_secrets_are_hidden_anywhere() {
        let s = secrets(Value::from("hunter2-s3cr3t").sensitive());
        assert_eq!(s.redact("bad name hunter2-s3cr3t, or `hunter2-s3cr3t`"), "bad name (sensitive value), or (sensitive value)");
        assert_eq!(s.redact("visible stays"), "visible stays");
    }

    #[test]
    fn short_secrets_are_hidden_as_words_only() {
        let s = secrets(Value::from(7i64).sensitive());
        assert_eq!(
            s.redact("nodes = 7, but 17 or 7.5 or v7 stay; ends with 7."),
            "nodes = (sensitive value), but 17 or 7.5 or v7 stay; ends with (sensitive value)."
        );
        assert_eq!(s.redact("got \"7\""), "got (sensitive value)");
    }

    #[test]
    fn one_matcher_finds_any_of_many_secrets_in_one_pass() {
        let ids: Vec<Value> = (0..10_000).map(|i| Value::from(format!("secret-id-{i:05}")).sensitive()).collect();
        let s = Secrets::of_all(&ids);
        let m = s.matcher();
        assert_eq!(
            m.redact("a secret-id-00042 and \"secret-id-09999\", not secret-i"),
            "a (sensitive value) and (sensitive value), not secret-i"
        );
        // A secret inside a longer one: the longer goes whole.
        let s = Secrets::of_all(&[Value::from("abcd").sensitive(), Value::from("abcdefgh").sensitive()]);
        assert_eq!(s.redact("x abcdefgh y abcd z"), "x (sensitive value) y (sensitive value) z");
        assert_eq!(s.redact("ünïcödé abcd"), "ünïcödé (sensitive value)");
    }

    #[test]
    fn values_holding_a_secret_are_marked() {
        let s = Secrets::of(&Value::from("eu-secret-1").sensitive());
        let v = Value::Map(
            [
                ("region".to_string(), Value::from("eu-secret-1")),
                ("arn".to_string(), Value::from("arn:eu-secret-1:x")),
                ("n".to_string(), Value::from("other")),
            ]
            .into(),
        );
        let m = s.mark(v);
        assert!(m.get("region").unwrap().is_sensitive() && m.get("arn").unwrap().is_sensitive());
        assert!(!m.get("n").unwrap().is_sensitive());
        assert!(Secrets::of(&Value::from("ab").sensitive()).at_least(4).is_empty());
    }

    #[test]
    fn secrets_inside_structures_and_json_escapes() {
        let v = Value::List(vec![Value::from("a\"quoted\"secret").sensitive(), Value::from("plain")]);
        let s = Secrets::of(&v);
        assert_eq!(s.redact(r#"{"x":"a\"quoted\"secret"}"#), "{\"x\":(sensitive value)}");
        assert_eq!(s.redact("plain"), "plain");
        assert!(Secrets::of(&Value::from("no marks")).is_empty());
    }
}
