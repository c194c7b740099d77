//! Where Slurm's commands run: on this machine (a `bash` process), or on a login node over SSH
//! (the system OpenSSH client through the `openssh` crate: one multiplexed connection per
//! provider instance, host keys checked strictly). Either way every operation is one bash
//! script sent on stdin (`bash -s -- ARGS`), so user text never goes through a shell's parsing
//! of a command line, and one operation is one round trip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

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

/// The login node of `provider "slurm" { login { ... } }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    /// `TYPE BASE64` of the host's public key; `None` uses the user's known_hosts (still strictly).
    pub host_key: Option<String>,
    pub connect_timeout: u64,
}

impl Login {
    /// `user@host:port`, for messages.
    pub fn endpoint(&self) -> String {
        let user = self.user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
        format!("{user}{}:{}", self.host, self.port)
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

struct SshTarget {
    login: Login,
    /// Private directory with the generated ssh_config, known_hosts and the control socket.
    dir: tempfile::TempDir,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    home: tokio::sync::OnceCell<String>,
}

enum Target {
    Local { dir: PathBuf },
    Ssh(Box<SshTarget>),
}

/// Runs scripts where Slurm's commands are, counting them by operation.
pub struct Runner {
    target: Target,
    calls: Mutex<BTreeMap<String, u64>>,
}

/// The ssh_config block for `login`, named `kiln-slurm-login`.
pub fn ssh_config(login: &Login, known_hosts: Option<&Path>) -> String {
    let mut s = format!("Host kiln-slurm-login\n  HostName {}\n  Port {}\n", login.host, login.port);
    if let Some(u) = &login.user {
        s += &format!("  User {u}\n");
    }
    if let Some(k) = &login.identity_file {
        s += &format!("  IdentityFile \"{}\"\n  IdentitiesOnly yes\n", k.display());
    }
    if let Some(kh) = known_hosts {
        s += &format!("  HostKeyAlias kiln-slurm-login\n  UserKnownHostsFile \"{}\"\n  GlobalKnownHostsFile /dev/null\n", kh.display());
    }
    s += &format!(
        "  StrictHostKeyChecking yes\n  UpdateHostKeys no\n  BatchMode yes\n  ConnectTimeout {}\n  ServerAliveInterval 5\n  ServerAliveCountMax 3\n  LogLevel ERROR\n",
        login.connect_timeout
    );
    s
}

impl Runner {
    /// Scripts run with bash on this machine, in `dir`.
    pub fn local(dir: PathBuf) -> Runner {
        Runner { target: Target::Local { dir }, calls: Mutex::new(BTreeMap::new()) }
    }

    /// Scripts run on the login node. Writes the SSH configuration into a private directory;
    /// connects on first use.
    pub fn ssh(login: Login) -> std::io::Result<Runner> {
        let dir = tempfile::Builder::new().prefix("kiln-slurm-ssh-").tempdir()?;
        let known_hosts = match &login.host_key {
            Some(key) => {
                let kh = dir.path().join("known_hosts");
                std::fs::write(&kh, format!("kiln-slurm-login {key}\n"))?;
                Some(kh)
            }
            None => None,
        };
        std::fs::write(dir.path().join("ssh_config"), ssh_config(&login, known_hosts.as_deref()))?;
        let t = SshTarget { login, dir, session: tokio::sync::Mutex::new(None), home: tokio::sync::OnceCell::new() };
        Ok(Runner { target: Target::Ssh(Box::new(t)), calls: Mutex::new(BTreeMap::new()) })
    }

    /// Whether scripts run over SSH.
    pub fn is_remote(&self) -> bool {
        matches!(self.target, Target::Ssh(_))
    }

    /// Where scripts run: `this machine` or `login node user@host:port`.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Local { .. } => "this machine".to_string(),
            Target::Ssh(t) => format!("login node {}", t.login.endpoint()),
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
            Target::Ssh(t) => {
                let home = t
                    .home
                    .get_or_try_init(|| async {
                        let out = self.exec_ssh(t, "printf '%s' \"$HOME\"", &[]).await?;
                        Ok::<_, RunError>(out.text())
                    })
                    .await?;
                Ok(home.clone())
            }
        }
    }

    /// Runs `script` with bash and `args` as its positional parameters; `op` names it in
    /// [`Runner::calls`].
    pub async fn run(&self, op: &str, script: &str, args: &[&str]) -> Result<Output, RunError> {
        self.count(op);
        match &self.target {
            Target::Local { dir } => run_local(dir, script, args).await,
            Target::Ssh(t) => self.exec_ssh(t, script, args).await,
        }
    }

    async fn exec_ssh(&self, t: &SshTarget, script: &str, args: &[&str]) -> Result<Output, RunError> {
        let session = session(t).await?;
        match exec(&session, script, args).await {
            Ok(o) => Ok(o),
            Err(e) => {
                // A dropped connection is opened again once.
                if session.check().await.is_err() {
                    *t.session.lock().await = None;
                    let session = self::session(t).await?;
                    return exec(&session, script, args)
                        .await
                        .map_err(|e| RunError(format!("login node {}: cannot run a command: {e}", t.login.endpoint())));
                }
                Err(RunError(format!("login node {}: cannot run a command: {e}", t.login.endpoint())))
            }
        }
    }
}

async fn session(t: &SshTarget) -> Result<Arc<Session>, RunError> {
    let mut slot = t.session.lock().await;
    if let Some(s) = slot.as_ref() {
        if s.check().await.is_ok() {
            return Ok(s.clone());
        }
    }
    let mut b = SessionBuilder::default();
    b.config_file(t.dir.path().join("ssh_config"))
        .known_hosts_check(KnownHosts::Strict)
        .control_directory(t.dir.path())
        .connect_timeout(Duration::from_secs(t.login.connect_timeout))
        .server_alive_interval(Duration::from_secs(5));
    let s = b.connect_mux("kiln-slurm-login").await.map_err(|e| connect_error(&t.login, &e))?;
    let s = Arc::new(s);
    *slot = Some(s.clone());
    Ok(s)
}

fn connect_error(login: &Login, e: &openssh::Error) -> RunError {
    use std::error::Error as _;
    let text = e.source().map_or_else(|| e.to_string(), |s| s.to_string());
    let text = text.trim();
    if text.contains("Host key verification failed")
        || text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || text.contains("No ED25519 host key is known")
        || text.contains("host key")
    {
        let known = if login.host_key.is_some() { "the `host_key` of the `login` block" } else { "~/.ssh/known_hosts" };
        return RunError(format!(
            "the host key of login node {} is not the one in {known}: kiln refused to connect ({text})",
            login.endpoint()
        ));
    }
    RunError(format!("cannot connect to login node {}: {text}", login.endpoint()))
}

/// `bash -s -- ARGS` over the session, with `script` on stdin.
async fn exec(session: &Session, script: &str, args: &[&str]) -> Result<Output, openssh::Error> {
    let mut cmd = session.command("bash");
    cmd.arg("-s").arg("--").args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().await?;
    if let Some(mut stdin) = child.stdin().take() {
        stdin.write_all(script.as_bytes()).await.map_err(openssh::Error::ChildIo)?;
        stdin.shutdown().await.map_err(openssh::Error::ChildIo)?;
    }
    let out = child.wait_with_output().await?;
    Ok(Output { code: out.status.code(), stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() })
}

async fn run_local(dir: &Path, script: &str, args: &[&str]) -> Result<Output, RunError> {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-s")
        .arg("--")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| RunError(format!("cannot run bash in {}: {e}", dir.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await.map_err(|e| RunError(format!("cannot send a script to bash: {e}")))?;
        drop(stdin);
    }
    let out = child.wait_with_output().await.map_err(|e| RunError(format!("bash failed: {e}")))?;
    Ok(Output { code: out.status.code(), stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Login {
        Login {
            host: "login1.example.org".into(),
            port: 2222,
            user: Some("alice".into()),
            identity_file: Some(PathBuf::from("/k/id")),
            host_key: Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG+aGv1ku/54A8fhpR9bEnfynvYVzGyeCqmcuE1oj9f5".into()),
            connect_timeout: 7,
        }
    }

    #[test]
    fn config_pins_the_host_key() {
        let cfg = ssh_config(&login(), Some(Path::new("/tmp/kh")));
        assert!(cfg.starts_with("Host kiln-slurm-login\n  HostName login1.example.org\n  Port 2222\n  User alice\n"), "{cfg}");
        assert!(cfg.contains("UserKnownHostsFile \"/tmp/kh\"\n  GlobalKnownHostsFile /dev/null\n"), "{cfg}");
        assert!(cfg.contains("StrictHostKeyChecking yes"), "{cfg}");
        assert!(cfg.contains("ConnectTimeout 7"), "{cfg}");
        let without = ssh_config(&Login { host_key: None, ..login() }, None);
        assert!(!without.contains("UserKnownHostsFile") && without.contains("StrictHostKeyChecking yes"), "{without}");
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
