//! SSH to hosts through the system OpenSSH client (the `openssh` crate), one ControlMaster
//! connection per host per [`Ssh`] pool, reused by every operation: a refresh of N hosts opens
//! at most N connections however many resources it reads, and commands run as channels over
//! them (at most [`CHANNELS`] at once per host, under sshd's MaxSessions).
//!
//! Host keys are verified strictly. Each pool writes, into a private temporary directory, an
//! `ssh_config` naming every host `kiln-NAME` (HostKeyAlias, StrictHostKeyChecking yes,
//! BatchMode, no global known_hosts) and a `known_hosts` holding only the configured keys. A
//! host key may be given as a full public key line (`ssh-ed25519 AAAA...`) or as a `SHA256:`
//! fingerprint: a fingerprint's key is fetched with `ssh-keyscan` and accepted only when it
//! matches. A host without a key is refused showing the fingerprint it presents, unless its
//! provider chose [`HostKey::UserKnownHosts`] (the user's own known_hosts decide, strictly). An
//! unknown or changed key fails with the fingerprint the host presented.
//!
//! Every command is a bash script sent on stdin (`bash -s -- ARGS`), so user text never has to
//! survive a remote shell's parsing of the command line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::hostkey::{self, HostKey};
use crate::Output;

/// Commands in flight at once on one host's connection.
pub const CHANNELS: usize = 8;

/// How long a host that did not answer is reported unreachable without trying again.
const DOWN_FOR: Duration = Duration::from_secs(3);

/// One host a pool reaches.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// Unique in its pool; the generated ssh_config knows the host as `kiln-NAME`.
    pub name: String,
    /// How messages name it: "host `gpu-01` (10.0.0.11:22)", "login node alice@login1:22".
    pub label: String,
    pub address: String,
    pub port: u16,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    /// Name of another host of the same pool to jump through.
    pub proxy_jump: Option<String>,
    pub host_key: HostKey,
}

impl Host {
    /// The alias the generated ssh_config and known_hosts know this host by.
    pub fn alias(&self) -> String {
        format!("kiln-{}", self.name)
    }
}

/// How a pool connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Seconds to wait for a host to answer (ssh's ConnectTimeout, ssh-keyscan's -T).
    pub connect_timeout: u64,
    /// Whether a command whose connection dropped is run once more over a new connection
    /// (only for scripts that are safe to repeat); otherwise the host is reported unreachable.
    pub retry_dropped: bool,
}

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

impl std::fmt::Display for SshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
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
    hosts: HashMap<String, Host>,
    options: Options,
    opened: AtomicUsize,
    /// Commands run, by operation.
    calls: Mutex<BTreeMap<String, u64>>,
    scanned: Mutex<HashSet<String>>,
    dir: tempfile::TempDir,
}

/// A path on the machine kiln runs on, as a provider block gives it (an `identity_file`): `~/x`
/// from `$HOME`, a relative path from `working_dir`.
pub fn local_path(working_dir: &Path, p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        working_dir.join(p)
    }
}

/// `"path"`, quoted for ssh_config.
fn cfg_path(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

fn host_block(h: &Host, known_hosts: &Path, timeout: u64) -> String {
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
    if h.host_key != HostKey::UserKnownHosts {
        s += &format!("  HostKeyAlias {}\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n", h.alias(), cfg_path(known_hosts));
    }
    s += &format!(
        "  StrictHostKeyChecking yes\n  UpdateHostKeys no\n  CheckHostIP no\n  BatchMode yes\n  ConnectTimeout {timeout}\n  ServerAliveInterval 5\n  ServerAliveCountMax 3\n  LogLevel ERROR\n"
    );
    s
}

/// The generated ssh_config for `hosts`.
pub fn ssh_config(hosts: &[Host], known_hosts: &Path, connect_timeout: u64) -> String {
    hosts.iter().map(|h| host_block(h, known_hosts, connect_timeout)).collect::<Vec<_>>().join("\n")
}

/// known_hosts lines for the hosts whose full key is configured.
pub fn known_hosts(hosts: &[Host]) -> String {
    hosts
        .iter()
        .filter_map(|h| match &h.host_key {
            HostKey::Key { algorithm, blob } => Some(hostkey::known_hosts_line(&h.alias(), algorithm, blob)),
            _ => None,
        })
        .collect()
}

impl Ssh {
    /// Writes the ssh_config and known_hosts of `hosts` into a new private directory; connects
    /// to a host on first use.
    pub fn new(hosts: Vec<Host>, options: Options) -> std::io::Result<Ssh> {
        let dir = tempfile::Builder::new().prefix("kiln-ssh-").tempdir()?;
        let kh = dir.path().join("known_hosts");
        std::fs::write(&kh, known_hosts(&hosts))?;
        std::fs::write(dir.path().join("ssh_config"), ssh_config(&hosts, &kh, options.connect_timeout))?;
        Ok(Ssh {
            slots: Mutex::new(HashMap::new()),
            hosts: hosts.into_iter().map(|h| (h.name.clone(), h)).collect(),
            options,
            opened: AtomicUsize::new(0),
            calls: Mutex::new(BTreeMap::new()),
            scanned: Mutex::new(HashSet::new()),
            dir,
        })
    }

    /// SSH connections this pool has opened so far.
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

    fn config_file(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    fn host(&self, name: &str) -> Result<&Host, SshError> {
        self.hosts.get(name).ok_or_else(|| SshError::Login(format!("host `{name}` is not configured")))
    }

    fn slot(&self, host: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(Slot { state: tokio::sync::Mutex::new(State::Empty), channels: Semaphore::new(CHANNELS) }))
            .clone()
    }

    /// The open connection to host `name`, opening it when there is none (or it died).
    pub async fn conn(&self, name: &str) -> Result<Arc<Conn>, SshError> {
        let h = self.host(name)?;
        let slot = self.slot(name);
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

    async fn mark_down(&self, h: &Host, e: SshError) {
        *self.slot(&h.name).state.lock().await = State::Down(e, Instant::now());
    }

    async fn connect(&self, h: &Host) -> Result<Conn, SshError> {
        self.check_key(h).await?;
        let mut b = SessionBuilder::default();
        b.config_file(self.config_file())
            .known_hosts_check(KnownHosts::Strict)
            .control_directory(self.dir.path())
            .connect_timeout(Duration::from_secs(self.options.connect_timeout))
            .server_alive_interval(Duration::from_secs(5));
        let session = match b.connect_mux(h.alias()).await {
            Ok(s) => s,
            Err(e) => return Err(self.classify(h, &connect_text(&e)).await),
        };
        self.opened.fetch_add(1, Ordering::SeqCst);
        let out =
            exec(&session, "printf '%s' \"$HOME\"", &[], &[]).await.map_err(|e| SshError::Unreachable(format!("{}: {e}", h.label)))?;
        Ok(Conn { session, home: out.text() })
    }

    /// Runs `script` with bash on host `name`, with `args` as its positional parameters; `op`
    /// names it in [`Ssh::calls`].
    pub async fn run(&self, name: &str, op: &str, script: &str, args: &[&str]) -> Result<Output, SshError> {
        self.run_input(name, op, script, args, &[]).await
    }

    /// [`Ssh::run`], with `input` streamed on stdin after the script (see
    /// [`crate::shell::with_input`]): the script's commands read it from stdin
    /// (`$KILN_INPUT_SIZE` bytes, [`crate::shell::receive`]). The input is written from the
    /// caller's slice, never copied or encoded, so an upload costs no memory beyond the data.
    pub async fn run_with_input(&self, name: &str, op: &str, script: &str, args: &[&str], input: &[u8]) -> Result<Output, SshError> {
        self.run_input(name, op, &crate::shell::with_input(script, input.len()), args, input).await
    }

    async fn run_input(&self, name: &str, op: &str, script: &str, args: &[&str], input: &[u8]) -> Result<Output, SshError> {
        let h = self.host(name)?;
        let conn = self.conn(name).await?;
        self.count(op);
        let slot = self.slot(name);
        let _permit = slot.channels.acquire().await.map_err(|e| SshError::Login(e.to_string()))?;
        match exec(&conn.session, script, args, input).await {
            Ok(o) => Ok(o),
            Err(_) if self.options.retry_dropped && conn.session.check().await.is_err() => {
                // The connection dropped: opened again once, and the script run again.
                let conn = self.conn(name).await?;
                exec(&conn.session, script, args, input)
                    .await
                    .map_err(|e| SshError::Login(format!("{}: cannot run a command: {e}", h.label)))
            }
            Err(e) if conn.session.check().await.is_err() => {
                let err = SshError::Unreachable(format!("{} stopped answering: {e}", h.label));
                self.mark_down(h, err.clone()).await;
                Err(err)
            }
            Err(e) => Err(SshError::Login(format!("{}: cannot run a command: {e}", h.label))),
        }
    }

    /// The login user's home directory on host `name`.
    pub async fn home(&self, name: &str) -> Result<String, SshError> {
        Ok(self.conn(name).await?.home.clone())
    }

    /// The way to host `name` for an interactive `ssh` outside this pool (`kiln ssh`): the
    /// hosts it jumps through, then the host itself, each with the one key `ssh` may accept
    /// (`ALGORITHM BASE64`; a fingerprint's key fetched with ssh-keyscan and checked, as a
    /// connection would; `None` where the user's known_hosts decide). A host without a key is
    /// refused as a connection is, showing the key it presents.
    pub async fn route(&self, name: &str) -> Result<Vec<(Host, Option<String>)>, SshError> {
        let mut chain = Vec::new();
        let mut next = Some(name.to_string());
        while let Some(n) = next {
            if chain.iter().any(|(h, _): &(Host, Option<String>)| h.name == n) {
                return Err(SshError::Login(format!("host `{n}` is reached through itself (proxy_jump loop)")));
            }
            let h = self.host(&n)?.clone();
            self.check_key(&h).await?;
            let key = match &h.host_key {
                HostKey::Key { algorithm, blob } => Some(format!("{algorithm} {blob}")),
                HostKey::UserKnownHosts | HostKey::Missing => None,
                HostKey::Fingerprint(_) => {
                    let text = std::fs::read_to_string(self.dir.path().join("known_hosts")).map_err(|e| SshError::Login(e.to_string()))?;
                    let alias = h.alias();
                    text.lines().find_map(|l| l.strip_prefix(&alias).and_then(|r| r.strip_prefix(' ')).map(str::to_string))
                }
            };
            next = h.proxy_jump.clone();
            chain.push((h, key));
        }
        chain.reverse();
        Ok(chain)
    }

    /// Before connecting: refuse a host without a key (showing what it presents), and fetch and
    /// check a key configured as a fingerprint.
    async fn check_key(&self, h: &Host) -> Result<(), SshError> {
        match &h.host_key {
            HostKey::Key { .. } | HostKey::UserKnownHosts => Ok(()),
            HostKey::Missing => Err(self.unknown_key(h).await),
            HostKey::Fingerprint(fp) => self.scan_key(h, fp).await,
        }
    }

    async fn unknown_key(&self, h: &Host) -> SshError {
        match self.probe(h).await {
            Ok(presented) => SshError::HostKey(format!(
                "{} has no host_key configured; it presents {presented}. kiln never accepts an unknown host key",
                h.label
            )),
            Err(e) => e,
        }
    }

    /// Fetches the host's keys with ssh-keyscan and adds the one matching `fp` to known_hosts.
    async fn scan_key(&self, h: &Host, fp: &str) -> Result<(), SshError> {
        if self.scanned.lock().unwrap_or_else(|e| e.into_inner()).contains(&h.name) {
            return Ok(());
        }
        if h.proxy_jump.is_some() {
            return Err(SshError::Login(format!(
                "{} is reached through proxy_jump, where ssh-keyscan cannot go: give its full public key as host_key, not a fingerprint",
                h.label
            )));
        }
        let keys = keyscan(h, self.options.connect_timeout).await?;
        let matching = keys.iter().find(|(_, blob)| hostkey::fingerprint(blob).ok().as_deref() == Some(fp));
        let Some((algorithm, blob)) = matching else {
            let presented: Vec<String> =
                keys.iter().filter_map(|(a, b)| hostkey::fingerprint(b).ok().map(|f| format!("{f} ({a})"))).collect();
            return Err(SshError::HostKey(format!(
                "{} presents {}, none of which is the configured host_key {fp}: kiln refused to connect",
                h.label,
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
    /// the fingerprint the host presented next to the expected one.
    async fn classify(&self, h: &Host, text: &str) -> SshError {
        let text = text.trim();
        if hostkey::is_host_key_failure(text) {
            let presented = match hostkey::presented_fingerprint(text) {
                Some(fp) => fp,
                None => self.probe(h).await.unwrap_or_else(|e| format!("a key kiln could not read ({})", e.message())),
            };
            return SshError::HostKey(format!(
                "the host key of {} does not match: the host presents {presented}, {}. kiln refused to connect",
                h.label,
                h.host_key.expected()
            ));
        }
        if text.contains("Permission denied") {
            return SshError::Login(format!("{} refused the login: {text}", h.label));
        }
        SshError::Unreachable(format!("{} is unreachable: {}", h.label, last_line(text)))
    }

    /// `SHA256:... (TYPE)` of the key `h` presents, read from a verbose ssh attempt that strict
    /// checking refuses (so nothing is ever accepted).
    async fn probe(&self, h: &Host) -> Result<String, SshError> {
        let out = tokio::process::Command::new("ssh")
            .arg("-F")
            .arg(self.config_file())
            .args(["-o", "LogLevel=DEBUG1", "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "StrictHostKeyChecking=yes"])
            .arg(h.alias())
            .arg("true")
            .stdin(std::process::Stdio::null())
            .output();
        let out = tokio::time::timeout(Duration::from_secs(self.options.connect_timeout + 5), out)
            .await
            .map_err(|_| SshError::Unreachable(format!("{} did not answer", h.label)))?
            .map_err(|e| SshError::Login(format!("cannot run ssh: {e}")))?;
        let text = String::from_utf8_lossy(&out.stderr);
        let last = text.lines().rfind(|l| l.contains("Server host key:")).unwrap_or_default();
        match (hostkey::presented_fingerprint(last), hostkey::presented_type(last)) {
            (Some(fp), Some(t)) => Ok(format!("{fp} ({t})")),
            (Some(fp), None) => Ok(fp),
            _ => Err(SshError::Unreachable(format!("{} is unreachable: {}", h.label, last_line(&text)))),
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

async fn keyscan(h: &Host, timeout: u64) -> Result<Vec<(String, String)>, SshError> {
    let out = tokio::process::Command::new("ssh-keyscan")
        .args(["-T", &timeout.to_string(), "-p", &h.port.to_string(), &h.address])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| SshError::Login(format!("cannot run ssh-keyscan: {e}")))?;
    let keys = hostkey::parse_keyscan(&String::from_utf8_lossy(&out.stdout));
    if keys.is_empty() {
        return Err(SshError::Unreachable(format!("{} is unreachable: ssh-keyscan got no key", h.label)));
    }
    Ok(keys)
}

/// `bash -s -- ARGS` with `script` on stdin, then `input` (written while the output is read:
/// a script may print before it reads its input, or exit without reading all of it, its exit
/// code saying how it went).
async fn exec(session: &Session, script: &str, args: &[&str], input: &[u8]) -> Result<Output, openssh::Error> {
    let mut cmd = session.command("bash");
    cmd.arg("-s").arg("--").args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().await?;
    let stdin = child.stdin().take();
    let send = async {
        if let Some(mut stdin) = stdin {
            stdin.write_all(script.as_bytes()).await.map_err(openssh::Error::ChildIo)?;
            if !input.is_empty() {
                let _ = stdin.write_all(input).await;
            }
            let _ = stdin.shutdown().await;
        }
        Ok::<(), openssh::Error>(())
    };
    let (sent, out) = tokio::join!(send, child.wait_with_output());
    let out = out?;
    sent?;
    Ok(Output { code: out.status.code(), stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIG+aGv1ku/54A8fhpR9bEnfynvYVzGyeCqmcuE1oj9f5";
    const FP: &str = "SHA256:Jx4uEpIeKykJTFgm7W/OU0OYWigni1CzJ4nllXC4Ph4";

    fn host(name: &str, host_key: HostKey) -> Host {
        Host {
            name: name.into(),
            label: format!("host `{name}`"),
            address: "10.0.0.1".into(),
            port: 22,
            user: None,
            identity_file: None,
            proxy_jump: None,
            host_key,
        }
    }

    #[test]
    fn config_names_every_host_and_pins_keys() {
        let a = Host {
            user: Some("t".into()),
            identity_file: Some("/k/id".into()),
            ..host("a", HostKey::parse(Some(&format!("ssh-ed25519 {KEY} root@a"))).unwrap())
        };
        let b = Host { address: "10.0.0.2".into(), port: 2222, proxy_jump: Some("a".into()), ..host("b", HostKey::Fingerprint(FP.into())) };
        let cfg = ssh_config(&[a.clone(), b.clone()], Path::new("/tmp/kh"), 7);
        assert!(
            cfg.contains("Host kiln-a\n  HostName 10.0.0.1\n  Port 22\n  User t\n  IdentityFile \"/k/id\"\n  IdentitiesOnly yes\n"),
            "{cfg}"
        );
        assert!(cfg.contains("Host kiln-b\n  HostName 10.0.0.2\n  Port 2222\n  ProxyJump kiln-a\n  HostKeyAlias kiln-b\n"), "{cfg}");
        assert!(cfg.contains("UserKnownHostsFile \"/tmp/kh\"\n  GlobalKnownHostsFile /dev/null\n"), "{cfg}");
        assert_eq!(cfg.matches("StrictHostKeyChecking yes").count(), 2, "{cfg}");
        assert!(cfg.contains("ConnectTimeout 7"), "{cfg}");
        // Only full keys are written ahead; a fingerprint's key is added once ssh-keyscan found it.
        assert_eq!(known_hosts(&[a, b]), format!("kiln-a ssh-ed25519 {KEY}\n"));
    }

    #[test]
    fn local_paths() {
        assert_eq!(local_path(Path::new("/w"), "keys/id"), PathBuf::from("/w/keys/id"));
        assert_eq!(local_path(Path::new("/w"), "/k/id"), PathBuf::from("/k/id"));
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(local_path(Path::new("/w"), "~/.ssh/id"), PathBuf::from(home).join(".ssh/id"));
        }
    }

    #[test]
    fn without_a_key_the_users_known_hosts_decide_strictly() {
        let h = host("slurm-login", HostKey::UserKnownHosts);
        let cfg = ssh_config(std::slice::from_ref(&h), Path::new("/tmp/kh"), 10);
        assert!(!cfg.contains("UserKnownHostsFile") && !cfg.contains("HostKeyAlias"), "{cfg}");
        assert!(cfg.contains("StrictHostKeyChecking yes") && cfg.contains("BatchMode yes"), "{cfg}");
        assert_eq!(known_hosts(&[h]), "");
    }

    #[tokio::test]
    async fn an_unknown_host_name_is_an_error() {
        let ssh = Ssh::new(vec![host("a", HostKey::Missing)], Options { connect_timeout: 1, retry_dropped: false }).unwrap();
        let e = ssh.run("nope", "op", "true", &[]).await.unwrap_err();
        assert_eq!(e, SshError::Login("host `nope` is not configured".into()));
        assert_eq!(ssh.calls().get("op"), None);
        assert_eq!(ssh.connections_opened(), 0);
    }
}
