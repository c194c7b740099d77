//! `kiln ssh ADDRESS --node N [-- COMMAND]`: a shell (or COMMAND) on a node of a cluster or
//! job. The node's provider says how to reach it (`Provider::shell`: hosts, users, keys, jumps,
//! and a wrapper such as Slurm's `srun --jobid ... --pty`); kiln writes an ssh_config and a
//! known_hosts for exactly those hosts into `.kiln/ssh/` (private files) and runs the system
//! `ssh` as its child, host keys checked against the keys the provider pinned (or, where none
//! can be known ahead, as on aws, the key first seen kept: ssh's `accept-new`). A private key
//! the provider holds (an aws cluster's key pair) lives only while ssh runs, in a private
//! temporary directory removed when ssh exits; kiln ignores Ctrl-C, SIGTERM and SIGHUP
//! meanwhile (ssh gets them) and exits with ssh's exit status.

use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use kiln_addrs::InstanceAddr;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{ReadItem, ReadRequest, ShellAccess, ShellHost, ShellHostKey, ShellRequest};

use super::jobs::providers;
use super::{load, open, read_state, Ctx, Failure, R};
use crate::cli::VarArgs;

/// The kinds whose objects have nodes.
const NODE_KINDS: [&str; 3] = ["cluster", "job", "spot_pool"];

/// Where `kiln ssh` keeps its files, under the configuration's directory.
const SSH_DIR: &str = ".kiln/ssh";

pub async fn ssh(cx: &Ctx, vars: &VarArgs, address: &str, node: usize, command: &[String]) -> R {
    let dir = cx.dir();
    let addr: InstanceAddr = address.parse().map_err(|e: kiln_addrs::AddrError| {
        Diagnostic::error("E-ADDR-INVALID", e.to_string()).hint("a cluster's or job's address looks like cluster.train or job.train[0]")
    })?;
    let l = load(cx, vars)?;
    let backend = open(&l)?;
    let state = read_state(backend.as_ref()).await?;
    let Some(r) = state.resources.get(&addr) else {
        let nodes: Vec<String> =
            state.resources.iter().filter(|(_, r)| NODE_KINDS.contains(&r.kind.as_str())).map(|(a, _)| a.to_string()).collect();
        return Err(Diagnostic::error("E-STATE-ADDRESS", format!("`{addr}` is not in state"))
            .address(&addr)
            .hint(if nodes.is_empty() {
                "there is no cluster or job in state: `kiln apply` creates them".to_string()
            } else {
                format!("clusters and jobs in state: {}", nodes.join(", "))
            })
            .into());
    };
    if !NODE_KINDS.contains(&r.kind.as_str()) {
        return Err(Diagnostic::error("E-SSH-KIND", format!("{addr} is a `{}`, which has no nodes", r.kind))
            .address(&addr)
            .hint("kiln ssh opens a node of a cluster, spot_pool or job")
            .into());
    }
    if r.provider == "local" || r.provider.starts_with("local.") {
        return Err(Diagnostic::error("E-SSH-LOCAL", format!("{addr}: the nodes of the `local` provider are processes on this machine"))
            .address(&addr)
            .hint("there is no other machine to reach: open a shell here (`kiln logs` shows what the nodes print)")
            .into());
    }
    let p = providers(dir, &l, &state).await?;
    let provider = super::jobs::provider_of(&p, &addr, r)?;
    let name = addr.to_string();
    let fail = |d: Diagnostics| Failure::in_sources(&l.config.sources, d);
    // As it is now (a job's status, a node moved to another host), not as the last apply saw it.
    let read = provider.read(ReadRequest { items: vec![ReadItem { address: &name, kind: &r.kind, state: &r.attributes }] }).await;
    let Some(now) = read.results.into_iter().next() else { return Err(fail(Diagnostics::new())) };
    if now.diagnostics.has_errors() {
        return Err(fail(now.diagnostics));
    }
    let Some(current) = now.state else {
        return Err(Diagnostic::error("E-SSH-GONE", format!("{name}: its provider no longer finds it"))
            .address(&addr)
            .hint("run `kiln plan` to see what kiln would do about it")
            .into());
    };
    let resp = provider.shell(ShellRequest { address: &name, kind: &r.kind, state: &current, node }).await;
    let Some(access) = resp.access else {
        let mut d = resp.diagnostics;
        if d.is_empty() {
            d.push(Diagnostic::error("E-SSH-UNSUPPORTED", format!("{name}: its provider gave no way to reach node {node}")).address(&addr));
        }
        return Err(fail(d));
    };
    if !resp.diagnostics.is_empty() {
        cx.printer.diagnostics(&l.config.sources, &resp.diagnostics);
    }
    if let Some(note) = &access.note {
        cx.printer.note(note);
    }
    // From here until ssh exits, an interrupt is ssh's (the terminal sends it to both): kiln
    // outlives it to remove the key it wrote.
    let _ssh_has_interrupts = kiln_ops::interrupt::Interrupts::new();
    let keys = match access.hosts.iter().any(|h| h.private_key.is_some()) {
        true => Some(KeyDir::new().map_err(|e| {
            Diagnostic::error("E-SSH-FILES", format!("cannot make a private temporary directory for the node's key: {e}"))
                .hint("check that the temporary directory (TMPDIR, else /tmp) is writable by you")
        })?),
        false => None,
    };
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let cmd = command_for(&dir.join(SSH_DIR), keys.as_ref().map(KeyDir::path), &name, node, &access, command, tty).map_err(|e| {
        Diagnostic::error("E-SSH-FILES", format!("cannot write kiln's ssh files under {SSH_DIR}: {e}"))
            .hint("check that .kiln is writable by you")
    })?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let status = match tokio::process::Command::from(cmd).spawn() {
        Ok(mut child) => child.wait().await,
        Err(e) => Err(e),
    };
    drop(keys);
    let status = status.map_err(|e| {
        Diagnostic::error("E-SSH-EXEC", format!("cannot run `{program}`: {e}"))
            .hint("install the OpenSSH client (`ssh`) and make sure it is on PATH")
    })?;
    // ssh's exit status becomes kiln's (128 + the signal that ended it, as shells report).
    std::process::exit(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// A private temporary directory (0700) for the private keys ssh reads, removed with what it
/// holds when dropped.
struct KeyDir(PathBuf);

impl KeyDir {
    fn new() -> std::io::Result<KeyDir> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let mut last = None;
        for attempt in 0..16u32 {
            let path = std::env::temp_dir().join(format!("kiln-ssh-{}-{nanos:x}-{attempt}", std::process::id()));
            // Not recursive: a directory that exists already (someone else's) is never taken.
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(KeyDir(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the private keys earlier kilns left in `.kiln/ssh/*/id-*` (they kept them there).
fn remove_old_keys(ssh_dir: &Path) {
    let Ok(targets) = std::fs::read_dir(ssh_dir) else { return };
    for target in targets.flatten() {
        let Ok(files) = std::fs::read_dir(target.path()) else { continue };
        for f in files.flatten() {
            if f.file_name().to_string_lossy().starts_with("id-") {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
}

/// `s` quoted for a POSIX shell (the remote login shell reads ssh's command line).
fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A file only its owner may read, written whole.
fn private_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A directory only its owner may enter.
fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

fn cfg_path(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

/// The ssh_config and known_hosts text for `hosts` and the private keys to write; `files` is the
/// directory of this target's files (ssh_config, known_hosts), `keys` the temporary one for
/// private keys, `first_use` the known_hosts kept across runs for keys learned on first use.
fn ssh_files(hosts: &[ShellHost], files: &Path, keys_dir: Option<&Path>, first_use: &Path) -> (String, String, Vec<(PathBuf, String)>) {
    let known_hosts = files.join("known_hosts");
    let (mut config, mut pinned, mut keys) = (String::new(), String::new(), Vec::new());
    for h in hosts {
        let alias = format!("kiln-{}", h.name);
        let _ = write!(config, "Host {alias}\n  HostName {}\n  Port {}\n", h.address, h.port);
        if let Some(u) = &h.user {
            let _ = writeln!(config, "  User {u}");
        }
        let identity = match (&h.private_key, keys_dir, &h.identity_file) {
            (Some(key), Some(dir), _) => {
                let path = dir.join(format!("id-{}", h.name));
                keys.push((path.clone(), key.clone()));
                Some(path)
            }
            (_, _, file) => file.clone(),
        };
        if let Some(k) = identity {
            let _ = write!(config, "  IdentityFile {}\n  IdentitiesOnly yes\n", cfg_path(&k));
        }
        if let Some(j) = &h.proxy_jump {
            let _ = writeln!(config, "  ProxyJump kiln-{j}");
        }
        let strict = match &h.host_key {
            ShellHostKey::Pinned(key) => {
                let _ = writeln!(pinned, "{alias} {key}");
                let _ = write!(
                    config,
                    "  HostKeyAlias {alias}\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n",
                    cfg_path(&known_hosts)
                );
                "yes"
            }
            ShellHostKey::FirstUse => {
                let _ = write!(
                    config,
                    "  HostKeyAlias {alias}\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n",
                    cfg_path(first_use)
                );
                "accept-new"
            }
            ShellHostKey::UserKnownHosts => "yes",
        };
        let _ = write!(config, "  StrictHostKeyChecking {strict}\n  UpdateHostKeys no\n  CheckHostIP no\n  LogLevel ERROR\n\n");
    }
    (config, pinned, keys)
}

/// The `ssh` command (or, with no host, the wrapper run here) that reaches the node, its files
/// written under `ssh_dir` and its private keys in `keys` (kept only while ssh runs).
fn command_for(
    ssh_dir: &Path,
    keys_dir: Option<&Path>,
    address: &str,
    node: usize,
    access: &ShellAccess,
    command: &[String],
    tty: bool,
) -> std::io::Result<std::process::Command> {
    let mut words: Vec<String> = access.wrapper.clone();
    if !words.is_empty() && command.is_empty() {
        words.extend(["bash".to_string(), "-l".to_string()]);
    }
    let Some(target) = access.hosts.last() else {
        // Nothing to connect to: the wrapper runs where the provider's tools are, this machine.
        let mut words = words.into_iter().chain(command.iter().cloned());
        let program = words.next().unwrap_or_else(|| "bash".to_string());
        let mut c = std::process::Command::new(program);
        c.args(words);
        return Ok(c);
    };
    private_dir(ssh_dir)?;
    remove_old_keys(ssh_dir);
    let slug: String = format!("{address}-{node}").chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let files = ssh_dir.join(slug);
    private_dir(&files)?;
    let first_use = ssh_dir.join("known_hosts");
    let (config, pinned, keys) = ssh_files(&access.hosts, &files, keys_dir, &first_use);
    for (path, key) in keys {
        let key = if key.ends_with('\n') { key } else { format!("{key}\n") };
        private_file(&path, &key)?;
    }
    private_file(&files.join("known_hosts"), &pinned)?;
    private_file(&files.join("ssh_config"), &config)?;
    let mut c = std::process::Command::new("ssh");
    c.arg("-F").arg(files.join("ssh_config"));
    if tty && (!access.wrapper.is_empty() || command.is_empty()) {
        c.arg("-t");
    }
    c.arg(format!("kiln-{}", target.name));
    if !words.is_empty() {
        // Ours, quoted for the remote shell; the user's words pass as ssh passes them.
        c.arg(words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" "));
    }
    c.args(command);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, key: ShellHostKey) -> ShellHost {
        ShellHost {
            name: name.into(),
            address: "10.0.0.1".into(),
            port: 2222,
            user: Some("trainer".into()),
            identity_file: None,
            private_key: None,
            proxy_jump: None,
            host_key: key,
        }
    }

    fn args(c: &std::process::Command) -> Vec<String> {
        c.get_args().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn the_config_pins_each_hosts_key_and_the_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let bastion = host("bastion", ShellHostKey::Pinned("ssh-ed25519 AAAAkey1".into()));
        let node = ShellHost {
            proxy_jump: Some("bastion".into()),
            private_key: Some("-----BEGIN KEY-----".into()),
            ..host("gpu-1", ShellHostKey::Pinned("ssh-ed25519 AAAAkey2".into()))
        };
        let access = ShellAccess { hosts: vec![bastion, node], wrapper: vec![], note: None };
        let ssh_dir = d.path().join(".kiln/ssh");
        let files = ssh_dir.join("cluster_a_0_-1");
        // A key an earlier kiln left next to the config.
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("id-gpu-1"), "old key").unwrap();
        let keys = d.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        let c = command_for(&ssh_dir, Some(&keys), "cluster.a[0]", 1, &access, &["echo".into(), "hi".into()], false).unwrap();
        assert_eq!(args(&c), ["-F", &files.join("ssh_config").display().to_string(), "kiln-gpu-1", "echo", "hi"]);
        let config = std::fs::read_to_string(files.join("ssh_config")).unwrap();
        let identity = format!("  IdentityFile \"{}\"\n", keys.join("id-gpu-1").display());
        assert!(config.contains(&format!("Host kiln-gpu-1\n  HostName 10.0.0.1\n  Port 2222\n  User trainer\n{identity}")), "{config}");
        assert!(config.contains("  ProxyJump kiln-bastion\n  HostKeyAlias kiln-gpu-1\n"), "{config}");
        assert_eq!(config.matches("StrictHostKeyChecking yes").count(), 2, "{config}");
        assert_eq!(
            std::fs::read_to_string(files.join("known_hosts")).unwrap(),
            "kiln-bastion ssh-ed25519 AAAAkey1\nkiln-gpu-1 ssh-ed25519 AAAAkey2\n"
        );
        assert_eq!(std::fs::read_to_string(keys.join("id-gpu-1")).unwrap(), "-----BEGIN KEY-----\n");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for f in [files.join("ssh_config"), files.join("known_hosts"), keys.join("id-gpu-1")] {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
        assert_eq!(mode(&ssh_dir), 0o700);
        let left: Vec<_> = std::fs::read_dir(&files).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(!left.iter().any(|f| f.starts_with("id-")), "the old key is removed: {left:?}");
    }

    #[test]
    fn the_key_directory_is_private_and_removed_with_its_keys() {
        use std::os::unix::fs::PermissionsExt;
        let keys = KeyDir::new().unwrap();
        let path = keys.path().to_path_buf();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o700);
        private_file(&path.join("id-x"), "secret\n").unwrap();
        let other = KeyDir::new().unwrap();
        assert_ne!(other.path(), path);
        drop(keys);
        assert!(!path.exists());
    }

    #[test]
    fn a_wrapper_is_quoted_and_opens_a_login_shell_without_a_command() {
        let d = tempfile::tempdir().unwrap();
        let access = ShellAccess {
            hosts: vec![host("login", ShellHostKey::UserKnownHosts)],
            wrapper: vec!["srun".into(), "--jobid".into(), "42".into(), "--pty".into()],
            note: None,
        };
        let c = command_for(d.path(), None, "job.t", 0, &access, &[], true).unwrap();
        assert_eq!(args(&c)[2..], ["-t", "kiln-login", "srun --jobid 42 --pty bash -l"]);
        let config = std::fs::read_to_string(d.path().join("job_t-0/ssh_config")).unwrap();
        assert!(!config.contains("UserKnownHostsFile") && config.contains("StrictHostKeyChecking yes"), "{config}");
        let first = ShellAccess { hosts: vec![host("i-1", ShellHostKey::FirstUse)], wrapper: vec![], note: None };
        command_for(d.path(), None, "cluster.aws", 0, &first, &[], false).unwrap();
        let config = std::fs::read_to_string(d.path().join("cluster_aws-0/ssh_config")).unwrap();
        assert!(
            config.contains("StrictHostKeyChecking accept-new") && config.contains(&d.path().join("known_hosts").display().to_string()),
            "{config}"
        );
        let here = ShellAccess { hosts: vec![], wrapper: vec!["srun".into(), "--pty".into()], note: None };
        let c = command_for(d.path(), None, "job.t", 0, &here, &["hostname".into()], false).unwrap();
        assert_eq!(
            (c.get_program().to_string_lossy().into_owned(), args(&c)),
            ("srun".to_string(), vec!["--pty".to_string(), "hostname".to_string()])
        );
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("--jobid=4"), "--jobid=4");
    }
}
