//! Rendering diagnostics for a terminal: `Error: summary`, then `--> file:line:column`, the
//! source line with the span underlined, the address and the hint. Colour only on a terminal
//! and never when NO_COLOR is set.

use std::fmt::Write;

use kiln_diag::{Diagnostic, Diagnostics, Severity, Sources};
use owo_colors::OwoColorize;

pub fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

pub fn diagnostics(sources: &Sources, diags: &Diagnostics) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&diagnostic(sources, d));
        out.push('\n');
    }
    out
}

pub fn diagnostic(sources: &Sources, d: &Diagnostic) -> String {
    let c = colour();
    let mut out = String::new();
    let head = match d.severity {
        Severity::Error => "Error",
        Severity::Warning => "Warning",
    };
    let head = if c {
        match d.severity {
            Severity::Error => head.red().bold().to_string(),
            Severity::Warning => head.yellow().bold().to_string(),
        }
    } else {
        head.to_string()
    };
    let _ = writeln!(out, "{head}[{}]: {}", d.code, d.summary);
    let labels = d.primary.iter().map(|l| (l, true)).chain(d.secondary.iter().map(|l| (l, false)));
    for (l, primary) in labels {
        if l.span.file.0 as usize >= sources.iter().count() {
            continue;
        }
        let f = sources.get(l.span.file);
        let lc = f.line_col(l.span.range.start);
        let _ = writeln!(out, "  --> {}:{}:{}", f.path.display(), lc.line, lc.column);
        let line = f.text.lines().nth(lc.line - 1).unwrap_or("");
        let num = lc.line.to_string();
        let pad = " ".repeat(num.len());
        let end_col = if f.line_col(l.span.range.end).line == lc.line { f.line_col(l.span.range.end).column } else { line.chars().count() + 1 };
        let width = end_col.saturating_sub(lc.column).max(1);
        let marker = if primary { "^" } else { "-" }.repeat(width);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{num} | {line}");
        let underline = format!("{}{} {}", " ".repeat(lc.column - 1), marker, l.message);
        let underline = if c && primary { underline.red().to_string() } else { underline };
        let _ = writeln!(out, "{pad} | {}", underline.trim_end());
    }
    if let Some(a) = &d.address {
        let _ = writeln!(out, "  = in: {a}");
    }
    if let Some(detail) = &d.detail {
        let _ = writeln!(out, "  = {detail}");
    }
    if let Some(h) = &d.hint {
        let _ = writeln!(out, "  = help: {h}");
    }
    out
}
