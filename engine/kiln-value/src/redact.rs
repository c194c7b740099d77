//! Hiding sensitive values in text that quotes them: the one rule every error path uses when a
//! message may contain a value (a provider's validation, an evaluator error inside a template).
//!
//! [`Secrets::of`] collects the printed forms of every marked primitive inside a value;
//! [`Secrets::redact`] replaces them with [`REDACTED`]: quoted forms anywhere, long forms (4
//! characters or more) anywhere, and short forms only as whole words, so a secret `7` does not
//! turn every `7` inside a longer number into a redaction but is still hidden when it is quoted.

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
        let mut out = text.to_string();
        for s in &self.0 {
            // Quoted forms, as messages and JSON print strings.
            for q in [format!("\"{s}\""), format!("`{s}`"), format!("'{s}'"), serde_json::Value::String(s.clone()).to_string()] {
                if out.contains(&q) {
                    out = out.replace(&q, REDACTED);
                }
            }
            if s.chars().count() >= 4 {
                // JSON-escaped forms too (a secret with quotes or newlines inside a JSON message).
                let escaped = serde_json::Value::String(s.clone()).to_string();
                let escaped = &escaped[1..escaped.len() - 1];
                out = out.replace(s.as_str(), REDACTED);
                if escaped != s {
                    out = out.replace(escaped, REDACTED);
                }
            } else {
                out = replace_words(&out, s);
            }
        }
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
        assert_eq!(s.redact("nodes = 7, but 17 or 7.5 or v7 stay; ends with 7."), "nodes = (sensitive value), but 17 or 7.5 or v7 stay; ends with (sensitive value).");
        assert_eq!(s.redact("got \"7\""), "got (sensitive value)");
    }

    #[test]
    fn values_holding_a_secret_are_marked() {
        let s = Secrets::of(&Value::from("eu-secret-1").sensitive());
        let v = Value::Map([("region".to_string(), Value::from("eu-secret-1")), ("arn".to_string(), Value::from("arn:eu-secret-1:x")), ("n".to_string(), Value::from("other"))].into());
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
