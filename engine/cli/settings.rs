//! Settings resolved once per command, before it runs, from the global flags and the
//! environment (uv's `settings.rs` is the model): the directory, how state locks are taken, the
//! workspace override, quiet and colour, and the environment variables the configuration may
//! read (`KILN_VAR_*`, `TF_VAR_*`). Nothing below reads flags or the environment again.

use std::path::PathBuf;
use std::time::Duration;

use kiln_diag::Diagnostic;
use kiln_ops::lock::LockSettings;

use crate::exit::Failure;

/// The lease of state locks when `KILN_LOCK_LEASE` does not set one.
pub const DEFAULT_LOCK_LEASE: Duration = Duration::from_secs(60);

/// What every command of this process runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration's directory (`--chdir`, else the current one).
    pub dir: PathBuf,
    /// `--lock-timeout` and the lease (`KILN_LOCK_LEASE`, else 60 s).
    pub lock: LockSettings,
    /// `KILN_WORKSPACE` (trimmed; unset when empty): overrides `.kiln/environment`.
    pub workspace: Option<String>,
    /// `KILN_QUIET`: no progress lines.
    pub quiet: bool,
    /// ANSI colour on stdout and on stderr: each a terminal, and `NO_COLOR` unset.
    pub colour: Colour,
    /// Whether stdout and stderr are terminals (a progress bar needs one).
    pub terminals: Terminals,
    /// The environment, for the configuration's variables (`KILN_VAR_*`, `TF_VAR_*`).
    pub env: Vec<(String, String)>,
    /// `KILN_TEST_PANIC`, in debug builds only (the test suite's): where to crash on purpose.
    pub failpoint: Option<String>,
}

/// Where colour is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Colour {
    pub stdout: bool,
    pub stderr: bool,
}

/// The global flags settings are resolved from.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--lock-timeout`, as written.
    pub lock_timeout: String,
    /// `--no-color`.
    pub no_color: bool,
}

/// Whether stdout and stderr are terminals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terminals {
    pub stdout: bool,
    pub stderr: bool,
}

impl Terminals {
    pub fn detect() -> Terminals {
        use std::io::IsTerminal;
        Terminals { stdout: std::io::stdout().is_terminal(), stderr: std::io::stderr().is_terminal() }
    }
}

impl Settings {
    /// Resolves the settings of a command running in `dir`. An invalid `--lock-timeout` is a
    /// diagnostic; an invalid `KILN_LOCK_LEASE` leaves the default lease (as before).
    pub fn resolve(flags: &Flags, env: Vec<(String, String)>, dir: PathBuf, terminals: Terminals) -> Result<Settings, Failure> {
        let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let timeout = kiln_provider_builtin::parse_duration(&flags.lock_timeout).ok_or_else(|| {
            Failure::new(
                Diagnostic::error("E-CLI-LOCK-TIMEOUT", format!("invalid --lock-timeout `{}`", flags.lock_timeout))
                    .hint("write a duration such as 30s or 5m (units: ms, s, m, h)"),
            )
        })?;
        let lease =
            var("KILN_LOCK_LEASE").and_then(kiln_provider_builtin::parse_duration).filter(|d| !d.is_zero()).unwrap_or(DEFAULT_LOCK_LEASE);
        let workspace = var("KILN_WORKSPACE").map(str::trim).filter(|w| !w.is_empty()).map(str::to_string);
        let quiet = var("KILN_QUIET").is_some();
        let no_colour = flags.no_color || var("NO_COLOR").is_some();
        let colour = Colour { stdout: !no_colour && terminals.stdout, stderr: !no_colour && terminals.stderr };
        let failpoint = var("KILN_TEST_PANIC").filter(|_| cfg!(debug_assertions)).map(str::to_string);
        Ok(Settings { dir, lock: LockSettings { timeout, lease }, workspace, quiet, colour, terminals, env, failpoint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn resolve(timeout: &str, pairs: &[(&str, &str)], terminals: Terminals) -> Result<Settings, Failure> {
        Settings::resolve(&Flags { lock_timeout: timeout.into(), no_color: false }, env(pairs), PathBuf::from("/p"), terminals)
    }

    #[test]
    fn defaults_without_flags_or_environment() {
        let s = resolve("0s", &[], Terminals::default()).unwrap();
        assert_eq!(s.dir, PathBuf::from("/p"));
        assert_eq!(s.lock, LockSettings { timeout: Duration::ZERO, lease: DEFAULT_LOCK_LEASE });
        assert_eq!(s.workspace, None);
        assert!(!s.quiet);
        assert_eq!(s.colour, Colour::default());
    }

    #[test]
    fn lock_timeout_and_lease_from_flag_and_environment() {
        let s = resolve("5m", &[("KILN_LOCK_LEASE", "900ms")], Terminals::default()).unwrap();
        assert_eq!(s.lock, LockSettings { timeout: Duration::from_secs(300), lease: Duration::from_millis(900) });
        // A zero or unreadable lease keeps the default, as before.
        for bad in ["0s", "soon", ""] {
            let s = resolve("0s", &[("KILN_LOCK_LEASE", bad)], Terminals::default()).unwrap();
            assert_eq!(s.lock.lease, DEFAULT_LOCK_LEASE, "{bad:?}");
        }
    }

    #[test]
    fn an_invalid_lock_timeout_is_a_diagnostic_with_a_hint() {
        let f = resolve("forever", &[], Terminals::default()).unwrap_err();
        let d = f.diagnostics().iter().next().expect("a diagnostic").clone();
        assert_eq!(d.code, "E-CLI-LOCK-TIMEOUT");
        assert!(d.summary.contains("--lock-timeout `forever`"), "{}", d.summary);
        assert!(d.hint.as_deref().is_some_and(|h| h.contains("30s")), "{:?}", d.hint);
    }

    #[test]
    fn workspace_from_the_environment_trimmed_and_empty_is_unset() {
        assert_eq!(resolve("0s", &[("KILN_WORKSPACE", " staging\n")], Terminals::default()).unwrap().workspace.as_deref(), Some("staging"));
        assert_eq!(resolve("0s", &[("KILN_WORKSPACE", "  ")], Terminals::default()).unwrap().workspace, None);
    }

    #[test]
    fn colour_only_on_terminals_and_never_with_no_color() {
        let both = Terminals { stdout: true, stderr: true };
        assert_eq!(resolve("0s", &[], both).unwrap().colour, Colour { stdout: true, stderr: true });
        assert_eq!(resolve("0s", &[], Terminals { stdout: false, stderr: true }).unwrap().colour, Colour { stdout: false, stderr: true });
        assert_eq!(resolve("0s", &[("NO_COLOR", "1")], both).unwrap().colour, Colour::default());
        // NO_COLOR counts when set, even empty (as before: `var_os(..).is_some()`).
        assert_eq!(resolve("0s", &[("NO_COLOR", "")], both).unwrap().colour, Colour::default());
        let flag = Flags { lock_timeout: "0s".into(), no_color: true };
        assert_eq!(Settings::resolve(&flag, env(&[]), PathBuf::from("/p"), both).unwrap().colour, Colour::default());
    }

    #[test]
    fn the_test_failpoint_only_in_debug_builds() {
        let s = resolve("0s", &[("KILN_TEST_PANIC", "plan")], Terminals::default()).unwrap();
        assert_eq!(s.failpoint.as_deref(), cfg!(debug_assertions).then_some("plan"));
        assert_eq!(resolve("0s", &[], Terminals::default()).unwrap().failpoint, None);
    }

    #[test]
    fn quiet_when_kiln_quiet_is_set() {
        assert!(resolve("0s", &[("KILN_QUIET", "1")], Terminals::default()).unwrap().quiet);
    }
}
