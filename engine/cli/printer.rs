//! The one owner of stdout and stderr. Data (plans, state, outputs, lists) goes to stdout;
//! progress, warnings and diagnostics to stderr. Quiet (`KILN_QUIET`) and colour are decided
//! once, in the settings. A closed pipe (`kiln state list | head`) is not an error: what cannot
//! be written is dropped.

use std::fmt::Display;
use std::io::Write;

use kiln_diag::{Diagnostics, Sources};

use crate::exit::Failure;
use crate::render;
use crate::settings::{Colour, Settings, Terminals};

/// Cheap to clone; shared by a command and its progress hooks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Printer {
    quiet: bool,
    colour: Colour,
    terminals: Terminals,
}

impl Printer {
    pub fn new(settings: &Settings) -> Printer {
        Printer { quiet: settings.quiet, colour: settings.colour, terminals: settings.terminals }
    }

    /// A printer for what fails before the settings are resolved (the command line itself):
    /// colour as the settings would decide it (a terminal, `NO_COLOR` and `--no-color` unset).
    pub fn before_settings(no_color: bool) -> Printer {
        let terminals = Terminals::detect();
        let off = no_color || std::env::var_os("NO_COLOR").is_some();
        Printer { quiet: false, colour: Colour { stdout: !off && terminals.stdout, stderr: !off && terminals.stderr }, terminals }
    }

    /// Whether apply shows a progress bar: stderr is a terminal and `KILN_QUIET` is unset.
    pub fn progress_bar(&self) -> bool {
        !self.quiet && self.terminals.stderr
    }

    /// A line of data on stdout.
    pub fn data(&self, line: impl Display) {
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }

    /// Data on stdout as it is (no newline added).
    pub fn data_raw(&self, text: impl Display) {
        let _ = write!(std::io::stdout().lock(), "{text}");
    }

    /// Bytes on stdout as they are, flushed (a job's log as it streams).
    pub fn data_bytes(&self, bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }

    /// A line for people on stderr, always shown (notices, prompts, summaries of failures).
    pub fn note(&self, line: impl Display) {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    /// Text on stderr as it is (no newline added), always shown.
    pub fn note_raw(&self, text: impl Display) {
        let _ = write!(std::io::stderr().lock(), "{text}");
    }

    /// A progress line on stderr, left out with `KILN_QUIET`.
    pub fn progress(&self, line: impl Display) {
        if !self.quiet {
            self.note(line);
        }
    }

    /// `Warning: ...` on stderr.
    pub fn warning(&self, text: impl Display) {
        self.note(format_args!("Warning: {text}"));
    }

    /// Diagnostics (errors and warnings) on stderr, rendered with their sources.
    pub fn diagnostics(&self, sources: &Sources, diags: &Diagnostics) {
        if !diags.is_empty() {
            self.note_raw(render::diagnostics(sources, diags, self.colour.stderr));
        }
    }

    /// The failure that ended a command, on stderr.
    pub fn failure(&self, f: &Failure) {
        self.note(f.render(self.colour.stderr).trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Flags;

    fn printer(env: &[(&str, &str)], terminals: Terminals) -> Printer {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Printer::new(&Settings::resolve(&Flags { lock_timeout: "0s".into(), no_color: false }, env, "/p".into(), terminals).unwrap())
    }

    #[test]
    fn a_progress_bar_only_on_a_terminal_and_never_quiet() {
        let tty = Terminals { stdout: false, stderr: true };
        assert!(printer(&[], tty).progress_bar());
        assert!(!printer(&[("KILN_QUIET", "1")], tty).progress_bar());
        assert!(!printer(&[], Terminals::default()).progress_bar());
    }

    #[test]
    fn quiet_and_colour_come_from_the_settings() {
        let p = printer(&[("KILN_QUIET", "1"), ("NO_COLOR", "1")], Terminals { stdout: true, stderr: true });
        assert!(p.quiet);
        assert_eq!(p.colour, Colour::default());
    }
}
