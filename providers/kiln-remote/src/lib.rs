//! Remote execution for the providers that reach machines over SSH (`onprem`, `slurm`, and
//! the SSH-reached clouds to come):
//!
//! - [`shell`]: shell text built safely (single-quoted words, small files embedded as base64,
//!   `export` lines), so user values never mix with kiln's scripts, and scripts made ready for
//!   an input streamed after them on stdin (`with_input`, `receive`: uploads of any size);
//! - [`hostkey`]: what a `host_key` attribute may hold (a public key line such as
//!   `ssh-ed25519 AAAA...`, or a `SHA256:` fingerprint) and OpenSSH fingerprints;
//! - [`ssh`]: one connection pool over the system OpenSSH client, one multiplexed connection per
//!   host, host keys checked strictly; every command is a bash script sent on stdin;
//! - [`local`]: the same scripts run with bash on this machine.

pub mod hostkey;
pub mod local;
pub mod shell;
pub mod ssh;

pub use hostkey::{fingerprint, HostKey};
pub use shell::{b64, exports, quote, valid_name, write_file};
pub use ssh::{local_path, Host, Options, Ssh, SshError, CHANNELS};

/// What a script did.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The last lines of stderr (or stdout when stderr is empty), for messages.
    pub fn complaint(&self) -> String {
        let text = if self.stderr.trim().is_empty() { self.text() } else { self.stderr.clone() };
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(4)..].join("; ");
        if tail.is_empty() {
            format!("exit code {}", self.code.map_or("none (killed by a signal)".to_string(), |c| c.to_string()))
        } else {
            tail
        }
    }
}
