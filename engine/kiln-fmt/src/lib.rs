//! kiln-fmt: the canonical layout of kiln HCL files (`*.kiln.hcl`), the same
//! layout `terraform fmt` produces.
//!
//! [`format_source`] is the whole public surface: it checks the source with
//! `hcl-edit`'s parser, then re-spaces its token stream with the algorithm of
//! HashiCorp's `hclwrite` (two-space indentation from bracket nesting, one
//! canonical spacing between any two token classes, `=` signs and trailing
//! comments aligned across consecutive lines). Only whitespace changes, plus
//! two things `terraform fmt` also does: bare identifier block labels become
//! quoted strings, and the file ends with exactly one newline.
//!
//! Left exactly as written: the bytes of every quoted template and heredoc,
//! comments (save trailing blanks), blank lines.
//!
//! Differences from `terraform fmt`, all on purpose:
//! * spaces inside `${ ... }` interpolations are not normalised (templates
//!   are kept byte for byte);
//! * `"${var.x}"` is not unwrapped to `var.x` (that can change the value's
//!   type), and legacy `type = "string"` is not rewritten;
//! * trailing whitespace inside comments is removed, and trailing blank
//!   lines at the end of the file are dropped;
//! * comments between block labels are kept (terraform drops them).

mod labels;
mod layout;
mod lexer;
#[cfg(test)]
mod properties;
mod width;

use thiserror::Error;

/// Why a source could not be formatted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FmtError {
    /// The source is not valid HCL.
    #[error("{line}:{column}: {message}")]
    Parse {
        /// One-based line of the error.
        line: usize,
        /// One-based column of the error.
        column: usize,
        /// What the parser expected or found.
        message: String,
    },
}

impl FmtError {
    fn from_parse(err: &hcl_edit::parser::Error) -> FmtError {
        let loc = err.location();
        FmtError::Parse { line: loc.line(), column: loc.column(), message: err.message().to_owned() }
    }
}

/// Formats HCL source text the way `terraform fmt` does.
///
/// Pure: no IO. Idempotent: `format_source(&format_source(x)?)? ==
/// format_source(x)?`. The result is empty for a source with nothing but
/// whitespace, and otherwise ends with exactly one newline.
pub fn format_source(src: &str) -> Result<String, FmtError> {
    let body = hcl_edit::parser::parse_body(src).map_err(|e| FmtError::from_parse(&e))?;
    let ident_labels = labels::ident_label_offsets(&body);

    let mut tokens = lexer::lex(src);
    for t in &mut tokens {
        if t.kind == lexer::Kind::Ident && ident_labels.contains(&t.start) {
            t.text = format!("\"{}\"", t.text);
            t.kind = lexer::Kind::Quoted;
        }
    }
    layout::layout(&mut tokens);
    let newline = match tokens.iter().rev().find(|t| t.kind == lexer::Kind::Newline) {
        Some(t) if t.text == "\r\n" => "\r\n",
        _ => "\n",
    };
    let mut out = layout::render(&tokens);
    let kept = out.trim_end_matches([' ', '\t', '\r', '\n']).len();
    out.truncate(kept);
    if !out.is_empty() {
        out.push_str(newline);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(s: &str) -> String {
        format_source(s).unwrap()
    }

    #[test]
    fn aligns_equals_in_a_group() {
        assert_eq!(fmt("a=1\nbbb =   2\n\ncc=3\n"), "a   = 1\nbbb = 2\n\ncc = 3\n");
    }

    #[test]
    fn indents_blocks_and_quotes_labels() {
        assert_eq!(
            fmt("resource   aws_instance \"x\"{\nami=\"y\"\n    tags {\n}\n}"),
            "resource \"aws_instance\" \"x\" {\n  ami = \"y\"\n  tags {\n  }\n}\n"
        );
    }

    #[test]
    fn empty_input_stays_empty() {
        assert_eq!(fmt(""), "");
        assert_eq!(fmt("\n\n  \n"), "");
    }

    #[test]
    fn parse_errors_carry_a_location() {
        let err = format_source("a = 1\nb = [1,\n").unwrap_err();
        let FmtError::Parse { line, column, message } = err;
        assert!(line >= 2, "line {line}");
        assert!(column >= 1);
        assert!(!message.is_empty());
    }

    #[test]
    fn templates_are_untouched() {
        let src = "x = \"${ a  +  b }  c\"\n";
        assert_eq!(fmt(src), src);
    }

    #[test]
    fn crlf_heredoc_content_is_untouched() {
        let src = "x=<<EOT\r\n  a  \r\nEOT\r\nyy=1\r\n";
        assert_eq!(fmt(src), "x  = <<EOT\r\n  a  \r\nEOT\r\nyy = 1\r\n");
    }

    #[test]
    fn comment_at_end_of_file_gets_a_newline() {
        assert_eq!(fmt("a=1 # done"), "a = 1 # done\n");
        assert_eq!(fmt("# only\n\n\n"), "# only\n");
    }

    #[test]
    fn aligns_trailing_comments_of_consecutive_lines() {
        assert_eq!(fmt("a = 1 # one\nlonger = \"x\" # two\n"), "a      = 1   # one\nlonger = \"x\" # two\n");
    }

    #[test]
    fn keeps_crlf_newlines() {
        assert_eq!(fmt("a=1\r\nbb=2\r\n"), "a  = 1\r\nbb = 2\r\n");
    }
}
