//! Where Slurm's commands run: on this machine (a `bash` process), or on a login node over SSH
//! (`kiln_remote`'s pool: one multiplexed connection per provider instance, host keys checked
//! strictly). Either way every operation is one bash script sent on stdin (`bash -s -- ARGS`),
//! so user text never goes through a shell's parsing of a command line, and one operation is
//! one round trip.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

pub use kiln_remote::Output;
use kiln_remote::{Host, HostKey, Options, Ssh};

/// The pool's name for the login node (its ssh_config alias is `kiln-slurm-login`).
const LOGIN: &str = "slurm-login";

/// The login node of `provider "slurm" { login { ... } }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    /// A full key or a `SHA256:` fingerprint; [`HostKey::UserKnownHosts`] when not given (the
    /// user's known_hosts decide, still strictly).
    pub host_key: HostKey,
    pub connect_timeout: u64,
}

impl Login {
    /// `user@host:port`, for messages.
    pub fn endpoint(&self) -> String {
        let user = self.user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
        format!("{user}{}:{}", self.host, self.port)
    }

    /// The login node as a host of a [`kiln_remote::Ssh`] pool.
    pub fn remote_host(&self) -> Host {
        Host {
            name: LOGIN.to_string(),
            label: format!("login node {}", self.endpoint()),
            address: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            identity_file: self.identity_file.clone(),
            proxy_jump: None,
            host_key: self.host_key.clone(),
        }
    }
}

/// Why a script could not run at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

enum Target {
    Local { dir: PathBuf },
    Ssh { login: Login, ssh: Box<Ssh> },
}

/// Runs scripts where Slurm's commands are, counting them by operation.
pub struct Runner {
    target: Target,
    calls: Mutex<BTreeMap<String, u64>>,
}

impl Runner {
    /// Scripts run with bash on this machine, in `dir`.
    pub fn local(dir: PathBuf) -> Runner {
        Runner { target: Target::Local { dir }, calls: Mutex::new(BTreeMap::new()) }
    }

    /// Scripts run on the login node. Writes the SSH configuration into a private directory;
    /// connects on first use. Slurm's scripts are safe to repeat, so one whose connection
    /// dropped runs once more over a new one.
    pub fn ssh(login: Login) -> std::io::Result<Runner> {
        let ssh = Ssh::new(vec![login.remote_host()], Options { connect_timeout: login.connect_timeout, retry_dropped: true })?;
        Ok(Runner { target: Target::Ssh { login, ssh: Box::new(ssh) }, calls: Mutex::new(BTreeMap::new()) })
    }

    /// Whether scripts run over SSH.
    pub fn is_remote(&self) -> bool {
        matches!(self.target, Target::Ssh { .. })
    }

    /// Where scripts run: `this machine` or `login node user@host:port`.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Local { .. } => "this machine".to_string(),
            Target::Ssh { login, .. } => format!("login node {}", login.endpoint()),
        }
    }

    /// Scripts run so far, by operation.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn count(&self, op: &str) {
        *self.calls.lock().unwrap_or_else(|e| e.into_inner()).entry(op.to_string()).or_default() += 1;
    }

    /// The directory relative paths start from: kiln's working directory, or the login user's
    /// home on the login node.
    pub async fn base_dir(&self) -> Result<String, RunError> {
        match &self.target {
            Target::Local { dir } => Ok(dir.display().to_string()),
            Target::Ssh { ssh, .. } => ssh.home(LOGIN).await.map_err(|e| RunError(e.message().to_string())),
        }
    }

    /// How an interactive `ssh` reaches the login node (`kiln ssh`), its key pinned as this
    /// runner's connections pin it; `None` when Slurm's commands run on this machine.
    pub async fn route(&self) -> Result<Option<Vec<(Host, Option<String>)>>, RunError> {
        match &self.target {
            Target::Local { .. } => Ok(None),
            Target::Ssh { ssh, .. } => ssh.route(LOGIN).await.map(Some).map_err(|e| RunError(e.message().to_string())),
        }
    }

    /// Runs `script` with bash and `args` as its positional parameters; `op` names it in
    /// [`Runner::calls`].
    pub async fn run(&self, op: &str, script: &str, args: &[&str]) -> Result<Output, RunError> {
        self.count(op);
        match &self.target {
            Target::Local { dir } => kiln_remote::local::run(dir, script, args).await.map_err(RunError),
            Target::Ssh { ssh, .. } => ssh.run(LOGIN, op, script, args).await.map_err(|e| RunError(e.message().to_string())),
        }
    }

    /// [`Runner::run`], with `input` streamed on the script's stdin after it from the caller's
    /// slice, never copied or encoded (see [`kiln_remote::shell::with_input`]).
    pub async fn run_with_input(&self, op: &str, script: &str, args: &[&str], input: &[u8]) -> Result<Output, RunError> {
        self.count(op);
        match &self.target {
            Target::Local { dir } => kiln_remote::local::run_with_input(dir, script, args, input).await.map_err(RunError),
            Target::Ssh { ssh, .. } => {
                ssh.run_with_input(LOGIN, op, script, args, input).await.map_err(|e| RunError(e.message().to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_node_as_a_remote_host() {
        let login = Login {
            host: "login1.example.org".into(),
            port: 2222,
            user: Some("alice".into()),
            identity_file: Some(PathBuf::from("/k/id")),
            host_key: HostKey::Fingerprint("SHA256:Jx4uEpIeKykJTFgm7W/OU0OYWigni1CzJ4nllXC4Ph4".into()),
            connect_timeout: 7,
        };
        let h = login.remote_host();
        assert_eq!(h.alias(), "kiln-slurm-login");
        assert_eq!(h.label, "login node alice@login1.example.org:2222");
        assert_eq!((h.address.as_str(), h.port, h.host_key), ("login1.example.org", 2222, login.host_key.clone()));
    }

    #[tokio::test]
    async fn local_scripts_get_their_arguments_and_count() {
        let r = Runner::local(std::env::temp_dir());
        let out = r.run("echo", "printf '%s|' \"$@\"; echo err >&2; exit 3", &["a b", "it's"]).await.unwrap();
        assert_eq!(out.text(), "a b|it's|");
        assert_eq!(out.code, Some(3));
        assert_eq!(out.complaint(), "err");
        assert_eq!(r.calls().get("echo"), Some(&1));
    }
}
