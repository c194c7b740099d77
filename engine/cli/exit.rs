//! What a command returns: `R = Result<ExitStatus, Failure>`. An [`ExitStatus`] is one of
//! Terraform's exit codes (and 3 for a plan that breaks a policy); a [`Failure`] carries the diagnostics of an error that stopped the
//! command, with the source files their spans point into, and is rendered once, by the printer
//! (as every other diagnostic: code, summary, file:line:col, hint).

use kiln_diag::{Diagnostic, Diagnostics, Sources};

/// The result of a command.
pub type R = Result<ExitStatus, Failure>;

/// How a command ended, as Terraform reports it to the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: done.
    Success,
    /// 1: errors, already reported (a failed apply, an invalid configuration in `validate`).
    Error,
    /// 2: `plan --detailed-exitcode` found changes.
    Changes,
    /// 3: `fmt --check` found files to reformat.
    Unformatted,
    /// 3: the plan breaks a policy (`kiln plan`, over `--detailed-exitcode`'s 2; `kiln apply`
    /// refuses it and applies nothing).
    PolicyViolated,
    /// 101: a panic (a bug); the state locks this process held were released.
    Panic,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Error => 1,
            ExitStatus::Changes => 2,
            ExitStatus::Unformatted | ExitStatus::PolicyViolated => 3,
            ExitStatus::Panic => 101,
        }
    }
}

/// An error that stopped a command (exit code 1): its diagnostics and the source files their
/// spans point into, so they render with file:line:col.
#[derive(Debug, Clone)]
pub struct Failure {
    diags: Diagnostics,
    sources: Sources,
}

impl Failure {
    /// Diagnostics without source spans (or whose spans need no file text).
    pub fn new(diags: impl Into<Diagnostics>) -> Failure {
        Failure { diags: diags.into(), sources: Sources::default() }
    }

    /// Diagnostics whose spans point into `sources` (usually `config.sources`).
    pub fn in_sources(sources: &Sources, diags: impl Into<Diagnostics>) -> Failure {
        Failure { diags: diags.into(), sources: sources.clone() }
    }

    /// The diagnostics.
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diags
    }

    /// The failure as people read it (miette, see `render`).
    pub fn render(&self, colour: bool) -> String {
        crate::render::diagnostics(&self.sources, &self.diags, colour)
    }
}

/// A command-line usage error (clap's: an unknown flag, a missing argument, a bad value) as a
/// diagnostic, E-CLI-USAGE: clap's message as the summary, its tips and the usage line as the
/// hint.
pub fn usage_diagnostic(e: &clap::Error) -> Diagnostic {
    let text = e.render().to_string();
    let mut lines = text.lines();
    let summary = lines.next().unwrap_or_default().trim_start_matches("error:").trim().to_string();
    let mut detail = Vec::new();
    let mut hint = Vec::new();
    let mut in_detail = true;
    for line in lines {
        if line.trim().is_empty() {
            in_detail = false;
        } else if in_detail && line.starts_with(' ') && !line.trim_start().starts_with("tip:") {
            detail.push(line.trim().to_string());
        } else {
            in_detail = false;
            hint.push(line.trim().trim_start_matches("tip:").trim().to_string());
        }
    }
    let mut d = Diagnostic::error("E-CLI-USAGE", summary);
    if !detail.is_empty() {
        d = d.detail(detail.join(" "));
    }
    if !hint.is_empty() {
        d = d.hint(hint.join("\n"));
    }
    d
}

/// Prints a usage error on stderr as every diagnostic renders; the settings are not resolved yet
/// when the command line fails.
pub fn usage_error(e: &clap::Error, no_color: bool) {
    crate::printer::Printer::before_settings(no_color).failure(&Failure::new(usage_diagnostic(e)));
}

impl From<Diagnostic> for Failure {
    fn from(d: Diagnostic) -> Failure {
        Failure::new(d)
    }
}

impl From<Diagnostics> for Failure {
    fn from(d: Diagnostics) -> Failure {
        Failure::new(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_diag::Span;

    #[test]
    fn exit_codes_are_terraforms() {
        let codes: Vec<i32> = [
            ExitStatus::Success,
            ExitStatus::Error,
            ExitStatus::Changes,
            ExitStatus::Unformatted,
            ExitStatus::PolicyViolated,
            ExitStatus::Panic,
        ]
        .map(ExitStatus::code)
        .to_vec();
        assert_eq!(codes, [0, 1, 2, 3, 3, 101]);
    }

    #[test]
    fn a_failure_renders_its_diagnostics_with_file_line_col_and_hint() {
        let mut sources = Sources::new();
        let file = sources.add("main.kiln.hcl", "x = 1\ny = nope\n".to_string());
        let d = Diagnostic::error("E-TEST", "bad value").at(Span::new(file, 10..14), "here").hint("write a number");
        let f = Failure::in_sources(&sources, d);
        let out = f.render(false);
        assert!(out.contains("E-TEST") && out.contains("bad value"), "{out}");
        assert!(out.contains("main.kiln.hcl:2:5"), "{out}");
        assert!(out.contains("write a number"), "{out}");
        assert_eq!(f.diagnostics().len(), 1);
    }

    #[test]
    fn usage_errors_are_diagnostics_with_clap_message_and_tips() {
        use clap::{Arg, Command};
        let cmd =
            || Command::new("kiln").subcommand(Command::new("plan").arg(Arg::new("format").long("format").value_parser(["human", "json"])));
        let e = cmd().try_get_matches_from(["kiln", "plan", "--no-such"]).unwrap_err();
        let d = usage_diagnostic(&e);
        assert_eq!(d.code, "E-CLI-USAGE");
        assert_eq!(d.summary, "unexpected argument '--no-such' found");
        let hint = d.hint.clone().unwrap();
        assert!(hint.contains("Usage: kiln plan") && hint.contains("--help"), "{hint}");
        assert!(!hint.contains("error:"), "{hint}");
        let e = cmd().try_get_matches_from(["kiln", "plan", "--format", "xml"]).unwrap_err();
        let d = usage_diagnostic(&e);
        assert_eq!(d.summary, "invalid value 'xml' for '--format <format>'");
        assert_eq!(d.detail.as_deref(), Some("[possible values: human, json]"));
    }
}
