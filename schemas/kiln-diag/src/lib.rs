//! Diagnostics: the one shape every user-facing problem in config, evaluation, validation and
//! planning takes. A diagnostic carries a stable code, a summary, a detail, a primary label (file
//! + byte span) with secondary labels, the resource address and a hint saying how to fix it.
//!
//! This crate only describes problems; rendering (colours, source excerpts, JSON) lives in the CLI.
//! Functions return values *and* diagnostics so warnings and partial results travel together.

mod source;

pub use source::{FileId, LineCol, SourceFile, Sources};

use std::fmt;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// A place in a source file: which file and which bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub range: Range<usize>,
}

impl Span {
    pub fn new(file: FileId, range: Range<usize>) -> Self {
        Span { file, range }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable identifier, for example `E-REF-UNDECLARED`; documented, never reused.
    pub code: &'static str,
    pub summary: String,
    pub detail: Option<String>,
    pub primary: Option<Label>,
    pub secondary: Vec<Label>,
    /// Resource (or other object) address the problem belongs to, such as `record.a[0]`.
    pub address: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
    /// The attribute of the block being checked that the problem is about (`create_delay`):
    /// providers know values, not spans, and the engine points the diagnostic at this
    /// attribute's expression.
    pub attribute: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, summary: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            summary: summary.into(),
            detail: None,
            primary: None,
            secondary: Vec::new(),
            address: None,
            hint: None,
            attribute: None,
        }
    }

    pub fn warning(code: &'static str, summary: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, summary) }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn at(mut self, span: Span, message: impl Into<String>) -> Self {
        self.primary = Some(Label { span, message: message.into() });
        self
    }

    /// Sets the primary span if none is set yet (used by callers that know the source when the
    /// code that found the problem did not).
    pub fn or_at(mut self, span: Option<Span>) -> Self {
        if self.primary.is_none() {
            if let Some(span) = span {
                self.primary = Some(Label { span, message: String::new() });
            }
        }
        self
    }

    pub fn also(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label { span, message: message.into() });
        self
    }

    pub fn address(mut self, address: impl fmt::Display) -> Self {
        self.address = Some(address.to_string());
        self
    }

    pub fn or_address(mut self, address: impl fmt::Display) -> Self {
        if self.address.is_none() {
            self.address = Some(address.to_string());
        }
        self
    }

    /// Names the attribute the problem is about (see [`Diagnostic::attribute`]).
    pub fn attribute(mut self, name: impl Into<String>) -> Self {
        self.attribute = Some(name.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.summary)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

/// An ordered collection of diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Diagnostics(Vec::new())
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: impl IntoIterator<Item = Diagnostic>) {
        self.0.extend(other);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }

    /// Sets `address` on every diagnostic that has none.
    pub fn with_address(mut self, address: &str) -> Self {
        for d in &mut self.0 {
            if d.address.is_none() {
                d.address = Some(address.to_string());
            }
        }
        self
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<T: IntoIterator<Item = Diagnostic>>(iter: T) -> Self {
        Diagnostics(iter.into_iter().collect())
    }
}

/// Edit distance (Levenshtein) between two names, for did-you-mean hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod distance_tests {
    #[test]
    fn edit_distance() {
        assert_eq!(super::edit_distance("H1000", "H100"), 1);
        assert_eq!(super::edit_distance("kitten", "sitting"), 3);
        assert_eq!(super::edit_distance("", "abc"), 3);
        assert_eq!(super::edit_distance("same", "same"), 0);
    }
}
