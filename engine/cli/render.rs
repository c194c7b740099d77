//! Rendering diagnostics for a terminal with miette: the summary and code, the file:line:column
//! of the primary span, the source lines with every label underlined, the resource address and
//! the hint. Colour only on a terminal and never when NO_COLOR is set.

use std::fmt;

use kiln_diag::{Diagnostic, Diagnostics, Label, Severity, Sources};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

/// `diags` rendered for people, with colour (ANSI escapes) when `colour` (the settings decide:
/// stderr a terminal, `NO_COLOR` unset).
pub fn diagnostics(sources: &Sources, diags: &Diagnostics, colour: bool) -> String {
    let theme = if colour { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_primary_span_start().with_wrap_lines(false).with_links(false);
    let mut out = String::new();
    for d in diags {
        let view = View::new(sources, d);
        if handler.render_report(&mut out, &view).is_err() {
            out.push_str(&format!("{}: {}\n", d.code, d.summary));
        }
        out.push('\n');
    }
    out
}

/// One diagnostic as miette sees it: labels in the primary label's file are drawn there;
/// labels in other files become related reports with their own source.
struct View {
    severity: Severity,
    code: &'static str,
    message: String,
    help: Option<String>,
    source: Option<Window>,
    labels: Vec<LabeledSpan>,
    related: Vec<View>,
}

impl View {
    fn new(sources: &Sources, d: &Diagnostic) -> View {
        let mut message = d.summary.clone();
        if let Some(detail) = &d.detail {
            message = format!("{message}: {detail}");
        }
        let help = match (&d.address, &d.hint) {
            (Some(a), Some(h)) => Some(format!("{h}\n(in {a})")),
            (Some(a), None) => Some(format!("in {a}")),
            (None, h) => h.clone(),
        };
        let mut view = View { severity: d.severity, code: d.code, message, help, source: None, labels: Vec::new(), related: Vec::new() };
        let Some(primary) = d.primary.as_ref().filter(|l| known(sources, l)) else { return view };
        let same_file: Vec<&Label> =
            std::iter::once(primary).chain(d.secondary.iter().filter(|l| known(sources, l) && l.span.file == primary.span.file)).collect();
        view.source = Some(Window::new(sources, &same_file));
        view.labels.push(LabeledSpan::new_primary_with_span(text(&primary.message), span(sources, primary)));
        for l in d.secondary.iter().filter(|l| known(sources, l)) {
            if l.span.file == primary.span.file {
                view.labels.push(LabeledSpan::new_with_span(text(&l.message), span(sources, l)));
            } else {
                view.related.push(View {
                    severity: Severity::Warning,
                    code: d.code,
                    message: format!("related: {}", l.message),
                    help: None,
                    source: Some(Window::new(sources, &[l])),
                    labels: vec![LabeledSpan::new_primary_with_span(text(&l.message), span(sources, l))],
                    related: Vec::new(),
                });
            }
        }
        view
    }
}

fn known(sources: &Sources, l: &Label) -> bool {
    (l.span.file.0 as usize) < sources.iter().count()
}

fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The lines of a file around some labels, as miette's source. miette finds a span's line by
/// scanning its source from the start, and the whole file used to be copied for each diagnostic:
/// 10,000 diagnostics in one file took quadratic time. A window holds only the labels' lines and
/// a few around them, and reports lines and offsets as in the whole file.
struct Window {
    name: String,
    text: String,
    /// Byte offset of the window's start in the file.
    offset: usize,
    /// Zero-based line of the window's start in the file.
    line: usize,
}

/// Lines shown around the labels (miette shows at most one before and after).
const CONTEXT_LINES: usize = 3;

impl Window {
    fn new(sources: &Sources, labels: &[&Label]) -> Window {
        let f = sources.get(labels[0].span.file);
        let text = &f.text;
        let lo = labels.iter().map(|l| l.span.range.start.min(text.len())).min().unwrap_or(0);
        let hi = labels.iter().map(|l| l.span.range.end.clamp(l.span.range.start.min(text.len()), text.len())).max().unwrap_or(0);
        let first = f.line_col(lo).line.saturating_sub(1 + CONTEXT_LINES);
        let last = f.line_col(hi).line + CONTEXT_LINES;
        let start = f.offset(first + 1, 1);
        let end = f.offset(last + 1, 1).max(start);
        Window { name: f.path.display().to_string(), text: text[start..end].to_string(), offset: start, line: first }
    }
}

impl SourceCode for Window {
    fn read_span<'a>(&'a self, span: &SourceSpan, before: usize, after: usize) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let local_start = span.offset().checked_sub(self.offset).ok_or(MietteError::OutOfBounds)?;
        let c = self.text.as_str().read_span(&SourceSpan::new(local_start.into(), span.len()), before, after)?;
        let at = SourceSpan::new((c.span().offset() + self.offset).into(), c.span().len());
        Ok(Box::new(MietteSpanContents::new_named(self.name.clone(), c.data(), at, c.line() + self.line, c.column(), c.line_count())))
    }
}

fn span(sources: &Sources, l: &Label) -> SourceSpan {
    let len = sources.text(l.span.file).len();
    let start = l.span.range.start.min(len);
    let end = l.span.range.end.clamp(start, len);
    SourceSpan::new(start.into(), end - start)
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for View {}

impl miette::Diagnostic for View {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        (!self.labels.is_empty()).then(|| Box::new(self.labels.iter().cloned()) as Box<dyn Iterator<Item = LabeledSpan>>)
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        (!self.related.is_empty()).then(|| {
            Box::new(self.related.iter().map(|r| r as &dyn miette::Diagnostic)) as Box<dyn Iterator<Item = &dyn miette::Diagnostic>>
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_diag::Span;

    /// 10,000 diagnostics in one file used to take quadratic time: each copied the whole file
    /// for miette, which then scanned it from the start. Each view now holds a few lines.
    #[test]
    fn views_hold_only_the_lines_around_their_labels() {
        let text: String = (0..100_000).map(|i| format!("resource \"record\" \"r{i}\" {{ bogus = 1 }}\n")).collect();
        let mut sources = Sources::new();
        let file = sources.add("main.kiln.hcl", text.clone());
        let at = text.find("\"r50000\"").unwrap();
        let d = Diagnostic::error("E-TEST", "here").at(Span::new(file, at..at + 8), "this one");
        let view = View::new(&sources, &d);
        let window = view.source.as_ref().unwrap();
        assert!(window.text.lines().count() <= 2 * CONTEXT_LINES + 1, "{}", window.text);
        let out = diagnostics(&sources, &Diagnostics::from(d), false);
        assert!(out.contains("main.kiln.hcl:50001:19"), "{out}");
        assert!(out.contains("50001 │ resource \"record\" \"r50000\""), "{out}");
    }

    #[test]
    fn labels_on_the_first_and_last_lines_render() {
        let mut sources = Sources::new();
        let file = sources.add("a.kiln.hcl", "x = 1\ny = 2".to_string());
        let d = Diagnostic::error("E-TEST", "both").at(Span::new(file, 0..1), "first").also(Span::new(file, 10..11), "last");
        let out = diagnostics(&sources, &Diagnostics::from(d), false);
        assert!(out.contains("a.kiln.hcl:1:1") && out.contains("first") && out.contains("last"), "{out}");
    }
}
