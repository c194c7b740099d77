//! Rendering diagnostics for a terminal with miette: the summary and code, the file:line:column
//! of the primary span, the source lines with every label underlined, the resource address and
//! the hint. Colour only on a terminal and never when NO_COLOR is set.

use std::fmt;

use kiln_diag::{Diagnostic, Diagnostics, Label, Severity, Sources};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

pub fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

pub fn diagnostics(sources: &Sources, diags: &Diagnostics) -> String {
    let theme = if colour() { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
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
    source: Option<NamedSource<String>>,
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
        view.source = Some(named(sources, primary));
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
                    source: Some(named(sources, l)),
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

fn named(sources: &Sources, l: &Label) -> NamedSource<String> {
    let f = sources.get(l.span.file);
    NamedSource::new(f.path.display().to_string(), f.text.clone())
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
        (!self.related.is_empty()).then(|| Box::new(self.related.iter().map(|r| r as &dyn miette::Diagnostic)) as Box<dyn Iterator<Item = &dyn miette::Diagnostic>>)
    }
}
