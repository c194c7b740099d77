//! SSH to the fleet's hosts through the system OpenSSH client (the `openssh` crate), one
//! ControlMaster connection per host per provider instance, reused by every operation: a refresh
//! of N hosts opens at most N connections however many resources it reads, and commands run
//! as channels over them (at most [`CHANNELS`] at once per host, under sshd's MaxSessions).
//!
//! Host keys are verified strictly. Each provider instance writes, into a private temporary
//! directory, an `ssh_config` naming every host `kiln-NAME` (HostKeyAlias, StrictHostKeyChecking
//! yes, BatchMode, no global known_hosts) and a `known_hosts` holding only the configured keys.
//! A key configured as a fingerprint is fetched with `ssh-keyscan` and accepted only when it
//! matches. An unknown or changed key fails with the fingerprint the host presented.
//!
//! Every command is a bash script sent on stdin (`bash -s -- ARGS`), so user text never has to
//! survive a remote shell's parsing of the command line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::config::{FleetConfig, HostConfig};
use crate::hostkey::{self, HostKey};

/// Commands in flight at once on one host's connection.
pub const CHANNELS: usize = 8;

/// How long a host that did not answer is reported unreachable without trying again.
const DOWN_FOR: Duration = Duration::from_secs(3);

/// Why a host could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshError {
    /// It did not answer: refused, timed out, or the connection dropped.
    Unreachable(String),
    /// Its host key is unknown or not the configured one. The message shows the fingerprints.
    HostKey(String),
    /// It answered but would not let kiln in, or the configuration cannot work.
    Login(String),
}

impl SshError {
    pub fn message(&self) -> &str {
        match self {
            SshError::Unreachable(m) | SshError::HostKey(m) | SshError::Login(m) => m,
        }
    }

    pub fn is_unreachable(&self) -> bool {
        matches!(self, SshError::Unreachable(_))
    }
}

/// What a remote script did.
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
}

/// An open connection and what was learned when opening it.
pub struct Conn {
    session: Session,
    /// The login user's home directory.
    pub home: String,
}

enum State {
    Empty,
    Up(Arc<Conn>),
    Down(SshError, Instant),
}

struct Slot {
    state: tokio::sync::Mutex<State>,
    channels: Semaphore,
}

/// The connection pool of one provider instance.
pub struct Ssh {
    // Dropped before `dir`: closing a session talks to its control socket inside `dir`.
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    timeout: u64,
    opened: AtomicUsize,
    /// Commands run, by operation.
    calls: Mutex<BTreeMap<String, u64>>,
    scanned: Mutex<HashSet<String>>,
    dir: tempfile::TempDir,
}

/// `"path"`, quoted for ssh_config.
fn cfg_path(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

fn host_block(h: &HostConfig, known_hosts: &Path, timeout: u64) -> String {
    let mut s = format!("Host {}\n  HostName {}\n  Port {}\n", h.alias(), h.address, h.port);
    if let Some(u) = &h.user {
        s += &format!("  User {u}\n");
    }
    if let Some(k) = &h.identity_file {
        s += &format!("  IdentityFile {}\n  IdentitiesOnly yes\n", cfg_path(k));
    }
    if let Some(j) = &h.proxy_jump {
        s += &format!("  ProxyJump kiln-{j}\n");
    }
    s += &format!(
        "  HostKeyAlias {}\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  UpdateHostKeys no\n  CheckHostIP no\n  BatchMode yes\n  ConnectTimeout {timeout}\n  ServerAliveInterval 5\n  ServerAliveCountMax 3\n  LogLevel ERROR\n",
        h.alias(),
        cfg_path(known_hosts)
    );
    s
}

/// The generated ssh_config for a fleet.
pub fn ssh_config(fleet: &FleetConfig, known_hosts: &Path) -> String {
    fleet.hosts.iter().map(|h| host_block(h, known_hosts, fleet.connect_timeout)).collect::<Vec<_>>().join("\n")
}

/// known_hosts lines for the hosts whose full key is configured.
pub fn known_hosts(fleet: &FleetConfig) -> String {
    fleet
        .hosts
        .iter()
        .filter_map(|h| match &h.host_key {
            HostKey::Key { algorithm, blob } => Some(hostkey::known_hosts_line(&h.alias(), algorithm, blob)),
            _ => None,
        })
        .collect()
}

impl Ssh {
    /// Writes the ssh_config and known_hosts of `fleet` into a new private directory.
    pub fn new(fleet: &FleetConfig) -> std::io::Result<Ssh> {
        let dir = tempfile::Builder::new().prefix("kiln-ssh-").tempdir()?;
        let kh = dir.path().join("known_hosts");
        std::fs::write(&kh, known_hosts(fleet))?;
        std::fs::write(dir.path().join("ssh_config"), ssh_config(fleet, &kh))?;
        Ok(Ssh {
            slots: Mutex::new(HashMap::new()),
            timeout: fleet.connect_timeout,
            opened: AtomicUsize::new(0),
            calls: Mutex::new(BTreeMap::new()),
            scanned: Mutex::new(HashSet::new()),
            dir,
        })
    }

    /// SSH connections this instance has opened so far.
    pub fn connections_opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }

    /// Connections opened and commands run so far, by operation (`ssh.connect`, `host.scan`,
    /// `job.launch`, ...).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        let mut out = self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
        out.insert("ssh.connect".into(), self.connections_opened() as u64);
        out
    }

    fn count(&self, op: &str) {
        *self.calls.lock().unwrap_or_else(|e| e.into_inner()).entry(op.to_string()).or_default() += 1;
    }

    fn config_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ssh_config")
    }

    fn slot(&self, host: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(Slot { state: tokio::sync::Mutex::new(State::Empty), channels: Semaphore::new(CHANNELS) }))
            .clone()
    }

    /// The open connection to `h`, opening it when there is none (or it died).
    pub async fn conn(&self, h: &HostConfig) -> Result<Arc<Conn>, SshError> {
        let slot = self.slot(&h.name);
        let mut state = slot.state.lock().await;
        match &*state {
            State::Up(c) if c.session.check().await.is_ok() => return Ok(c.clone()),
            State::Down(e, at) if !e.is_unreachable() || at.elapsed() < DOWN_FOR => return Err(e.clone()),
            _ => {}
        }
        match self.connect(h).await {
            Ok(c) => {
                let c = Arc::new(c);
                *state = State::Up(c.clone());
                Ok(c)
            }
            Err(e) => {
                *state = State::Down(e.clone(), Instant::now());
                Err(e)
            }
        }
    }

    async fn mark_down(&self, h: &HostConfig, e: SshError) {
        *self.slot(&h.name).state.lock().await = State::Down(e, Instant::now());
    }

    async fn connect(&self, h: &HostConfig) -> Result<Conn, SshError> {
        self.check_key(h).await?;
        let mut b = SessionBuilder::default();
        b.config_file(self.config_file())
            .known_hosts_check(KnownHosts::Strict)
            .control_directory(self.dir.path())
            .connect_timeout(Duration::from_secs(self.timeout))
            .server_alive_interval(Duration::from_secs(5));
        let session = match b.connect_mux(h.alias()).await {
            Ok(s) => s,
            Err(e) => return Err(self.classify(h, &connect_text(&e)).await),
        };
        self.opened.fetch_add(1, Ordering::SeqCst);
        let out =
            exec(&session, "printf '%s' \"$HOME\"", &[]).await.map_err(|e| SshError::Unreachable(format!("host `{}`: {e}", h.name)))?;
        Ok(Conn { session, home: out.text() })
    }

    /// Runs `script` with bash on host `h`, with `args` as its positional parameters; `op`
    /// names it in [`Ssh::calls`].
    pub async fn run(&self, h: &HostConfig, op: &str, script: &str, args: &[&str]) -> Result<Output, SshError> {
        let conn = self.conn(h).await?;
        self.count(op);
        let slot = self.slot(&h.name);
        let _permit = slot.channels.acquire().await.map_err(|e| SshError::Login(e.to_string()))?;
        match exec(&conn.session, script, args).await {
            Ok(o) => Ok(o),
            Err(e) if conn.session.check().await.is_err() => {
                let err = SshError::Unreachable(format!("host `{}` ({}) stopped answering: {e}", h.name, h.endpoint()));
                self.mark_down(h, err.clone()).await;
                Err(err)
            }
            Err(e) => Err(SshError::Login(format!("host `{}`: cannot run a command: {e}", h.name))),
        }
    }

    /// The login user's home directory on `h`.
    pub async fn home(&self, h: &HostConfig) -> Result<String, SshError> {
        Ok(self.conn(h).await?.home.clone())
    }

    /// Before connecting: refuse a host without a key (showing what it presents), and fetch and
    /// check a key configured as a fingerprint.
    async fn check_key(&self, h: &HostConfig) -> Result<(), SshError> {
        match &h.host_key {
            HostKey::Key { .. } => Ok(()),
            HostKey::Missing => Err(self.unknown_key(h).await),
            HostKey::Fingerprint(fp) => self.scan_key(h, fp).await,
        }
    }

    async fn unknown_key(&self, h: &HostConfig) -> SshError {
        match self.probe(h).await {
            Ok(presented) => SshError::HostKey(format!(
                "host `{}` ({}) has no host_key configured; it presents {presented}. kiln never accepts an unknown host key",
                h.name,
                h.endpoint()
            )),
            Err(e) => e,
        }
    }

    /// Fetches the host's keys with ssh-keyscan and adds the one matching `fp` to known_hosts.
    async fn scan_key(&self, h: &HostConfig, fp: &str) -> Result<(), SshError> {
        if self.scanned.lock().unwrap_or_else(|e| e.into_inner()).contains(&h.name) {
            return Ok(());
        }
        if h.proxy_jump.is_some() {
            return Err(SshError::Login(format!(
                "host `{}` is reached through proxy_jump, where ssh-keyscan cannot go: give its full public key as host_key, not a fingerprint",
                h.name
            )));
        }
        let keys = keyscan(h, self.timeout).await?;
        let matching = keys.iter().find(|(_, blob)| hostkey::fingerprint(blob).ok().as_deref() == Some(fp));
        let Some((algorithm, blob)) = matching else {
            let presented: Vec<String> =
                keys.iter().filter_map(|(a, b)| hostkey::fingerprint(b).ok().map(|f| format!("{f} ({a})"))).collect();
            return Err(SshError::HostKey(format!(
                "host `{}` ({}) presents {}, none of which is the configured host_key {fp}: kiln refused to connect",
                h.name,
                h.endpoint(),
                if presented.is_empty() { "no key".to_string() } else { presented.join(", ") }
            )));
        };
        let line = hostkey::known_hosts_line(&h.alias(), algorithm, blob);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("known_hosts"))
            .map_err(|e| SshError::Login(e.to_string()))?;
        std::io::Write::write_all(&mut f, line.as_bytes()).map_err(|e| SshError::Login(e.to_string()))?;
        self.scanned.lock().unwrap_or_else(|e| e.into_inner()).insert(h.name.clone());
        Ok(())
    }

    /// Turns ssh's complaint about a failed connection into an error; a host-key failure shows
    /// the fingerprint the host presented next to the configured one.
    async fn classify(&self, h: &HostConfig, text: &str) -> SshError {
        let text = text.trim();
        if hostkey::is_host_key_failure(text) {
            let presented = match hostkey::presented_fingerprint(text) {
                Some(fp) => fp,
                None => self.probe(h).await.unwrap_or_else(|e| format!("a key kiln could not read ({})", e.message())),
            };
            let expected = h.host_key.fingerprint().unwrap_or_else(|| "none".into());
            return SshError::HostKey(format!(
                "host key of `{}` ({}) does not match: the host presents {presented}, the configured host_key is {expected}. kiln refused to connect",
                h.name,
                h.endpoint()
            ));
        }
        if text.contains("Permission denied") {
            return SshError::Login(format!("host `{}` ({}) refused the login: {text}", h.name, h.endpoint()));
        }
        SshError::Unreachable(format!("host `{}` ({}) is unreachable: {}", h.name, h.endpoint(), last_line(text)))
    }

    /// `SHA256:... (TYPE)` of the key `h` presents, read from a verbose ssh attempt that strict
    /// checking refuses (so nothing is ever accepted).
    async fn probe(&self, h: &HostConfig) -> Result<String, SshError> {
        let out = tokio::process::Command::new("ssh")
            .arg("-F")
            .arg(self.config_file())
            .args(["-o", "LogLevel=DEBUG1", "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "StrictHostKeyChecking=yes"])
            .arg(h.alias())
            .arg("true")
            .stdin(std::process::Stdio::null())
            .output();
        let out = tokio::time::timeout(Duration::from_secs(self.timeout + 5), out)
            .await
            .map_err(|_| SshError::Unreachable(format!("host `{}` ({}) did not answer", h.name, h.endpoint())))?
            .map_err(|e| SshError::Login(format!("cannot run ssh: {e}")))?;
        let text = String::from_utf8_lossy(&out.stderr);
        let last = text.lines().rfind(|l| l.contains("Server host key:")).unwrap_or_default();
        match (hostkey::presented_fingerprint(last), hostkey::presented_type(last)) {
            (Some(fp), Some(t)) => Ok(format!("{fp} ({t})")),
            (Some(fp), None) => Ok(fp),
            _ => Err(SshError::Unreachable(format!("host `{}` ({}) is unreachable: {}", h.name, h.endpoint(), last_line(&text)))),
        }
    }
}

fn last_line(text: &str) -> &str {
    text.lines().rev().find(|l| !l.trim().is_empty() && !l.starts_with("debug")).unwrap_or(text).trim()
}

fn connect_text(e: &openssh::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(s) => s.to_string(),
        None => e.to_string(),
    }
}

async fn keyscan(h: &HostConfig, timeout: u64) -> Result<Vec<(String, String)>, SshError> {
    let out = tokio::process::Command::new("ssh-keyscan")
        .args(["-T", &timeout.to_string(), "-p", &h.port.to_string(), &h.address])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| SshError::Login(format!("cannot run ssh-keyscan: {e}")))?;
    let keys = hostkey::parse_keyscan(&String::from_utf8_lossy(&out.stdout));
    if keys.is_empty() {
        return Err(SshError::Unreachable(format!("host `{}` ({}) is unreachable: ssh-keyscan got no key", h.name, h.endpoint())));
    }
    Ok(keys)
}

/// `bash -s -- ARGS` with `script` on stdin.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_every_host_and_pins_keys() {
        let fleet = crate::config::parse(
            &kiln_value::Value::from_json(&serde_json::json!({ "host": [
                { "name": "a", "address": "10.0.0.1", "user": "t", "identity_file": "/k/id", "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG+aGv1ku/54A8fhpR9bEnfynvYVzGyeCqmcuE1oj9f5" },
                { "name": "b", "address": "10.0.0.2", "port": 2222, "proxy_jump": "a" },
            ]})),
            Path::new("/w"),
        )
        .unwrap();
        let cfg = ssh_config(&fleet, Path::new("/tmp/kh"));
        assert!(cfg.contains("Host kiln-a\n  HostName 10.0.0.1\n  Port 22\n  User t\n  IdentityFile \"/k/id\"\n"), "{cfg}");
        assert!(cfg.contains("Host kiln-b\n  HostName 10.0.0.2\n  Port 2222\n  ProxyJump kiln-a\n  HostKeyAlias kiln-b\n"), "{cfg}");
        assert!(cfg.contains("StrictHostKeyChecking yes"));
        assert_eq!(known_hosts(&fleet), "kiln-a ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG+aGv1ku/54A8fhpR9bEnfynvYVzGyeCqmcuE1oj9f5\n");
    }
}
