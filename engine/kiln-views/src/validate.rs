//! `kiln validate`'s views: whether the configuration is valid, and every diagnostic with
//! where it points (Terraform's `validate -json` shape: `valid`, `error_count`,
//! `warning_count`, `diagnostics[]` with `range.filename`/`start`/`end`).

use std::fmt::Write;

use kiln_diag::{Diagnostic, Diagnostics, Sources};
use serde::Serialize;

use crate::markdown::code;
use crate::FORMAT_VERSION;

/// `kiln validate --json` (schema: `schemas/json/validate-view.schema.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ValidateView {
    pub format_version: &'static str,
    pub valid: bool,
    pub error_count: usize,
    pub warning_count: usize,
    pub diagnostics: Vec<DiagnosticView>,
}

/// One diagnostic for machines.
#[derive(Debug, Clone, Serialize)]
pub struct DiagnosticView {
    /// `error` or `warning`.
    pub severity: &'static str,
    pub code: &'static str,
    pub summary: String,
    pub detail: Option<String>,
    /// The resource address it is about, when it is about one.
    pub address: Option<String>,
    pub hint: Option<String>,
    /// Where in the configuration it points; `null` when nowhere.
    pub range: Option<RangeView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RangeView {
    pub filename: String,
    pub start: PosView,
    pub end: PosView,
}

/// A position: one-based line and column (in characters), and the byte offset.
#[derive(Debug, Clone, Serialize)]
pub struct PosView {
    pub line: usize,
    pub column: usize,
    pub byte: usize,
}

impl DiagnosticView {
    pub fn new(sources: &Sources, d: &Diagnostic) -> DiagnosticView {
        let range = d.primary.as_ref().map(|l| {
            let f = sources.get(l.span.file);
            let (s, e) = (f.line_col(l.span.range.start), f.line_col(l.span.range.end));
            RangeView {
                filename: f.path.display().to_string(),
                start: PosView { line: s.line, column: s.column, byte: l.span.range.start },
                end: PosView { line: e.line, column: e.column, byte: l.span.range.end },
            }
        });
        DiagnosticView {
            severity: if d.is_error() { "error" } else { "warning" },
            code: d.code,
            summary: d.summary.clone(),
            detail: d.detail.clone(),
            address: d.address.clone(),
            hint: d.hint.clone(),
            range,
        }
    }

    /// `file:line:col`, or the address, or nothing.
    fn place(&self) -> Option<String> {
        match (&self.range, &self.address) {
            (Some(r), _) => Some(format!("{}:{}:{}", r.filename, r.start.line, r.start.column)),
            (None, Some(a)) => Some(a.clone()),
            (None, None) => None,
        }
    }
}

/// The outcome of validating a configuration.
pub struct Validation<'a> {
    pub sources: &'a Sources,
    pub diagnostics: &'a Diagnostics,
}

impl Validation<'_> {
    pub fn view(&self) -> ValidateView {
        let diagnostics: Vec<DiagnosticView> = self.diagnostics.iter().map(|d| DiagnosticView::new(self.sources, d)).collect();
        let error_count = diagnostics.iter().filter(|d| d.severity == "error").count();
        ValidateView {
            format_version: FORMAT_VERSION,
            valid: error_count == 0,
            error_count,
            warning_count: diagnostics.len() - error_count,
            diagnostics,
        }
    }
}

impl crate::View for Validation<'_> {
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self.view()).expect("a validation view serializes")
    }

    /// Plain lines (`Error: summary` / `  on file:line:col` / `  = help: hint`) and the verdict.
    /// (`kiln validate` shows errors with their source lines instead.)
    fn human(&self) -> String {
        let v = self.view();
        let mut out = String::new();
        for d in &v.diagnostics {
            let _ = writeln!(out, "{}: {}", if d.severity == "error" { "Error" } else { "Warning" }, d.summary);
            if let Some(p) = d.place() {
                let _ = writeln!(out, "  on {p}");
            }
            if let Some(h) = &d.hint {
                let _ = writeln!(out, "  = help: {h}");
            }
        }
        if v.valid {
            out.push_str("Success! The configuration is valid.\n");
        }
        out
    }

    /// A verdict line and the diagnostics as a list.
    fn markdown(&self) -> String {
        let v = self.view();
        let mut out = String::new();
        if v.valid {
            let _ = writeln!(out, "### kiln validate: the configuration is valid");
        } else {
            let _ = writeln!(out, "### kiln validate: {} error{}", v.error_count, if v.error_count == 1 { "" } else { "s" });
        }
        if !v.diagnostics.is_empty() {
            out.push('\n');
        }
        for d in &v.diagnostics {
            let sev = if d.severity == "error" { "Error" } else { "Warning" };
            let place = d.place().map(|p| format!(" at {}", code(&p))).unwrap_or_default();
            let _ = writeln!(out, "- **{sev}** {}{place}: {}", code(d.code), d.summary.replace('\n', " "));
            if let Some(h) = &d.hint {
                let _ = writeln!(out, "  - hint: {}", h.replace('\n', " "));
            }
        }
        out
    }
}
