//! The fleet's connection pool: [`kiln_remote::Ssh`] over the configured hosts (one
//! multiplexed connection per host, host keys checked strictly, a key given in full or as a
//! `SHA256:` fingerprint; see that crate), addressed by [`HostConfig`]. A host whose connection
//! drops mid-command is reported unreachable: the command is not repeated.

use std::collections::BTreeMap;

pub use kiln_remote::{Output, SshError};

use kiln_diag::Diagnostic;
use kiln_provider::{ShellAccess, ShellHost, ShellHostKey, ShellRequest};
use kiln_value::Value;

use crate::config::{FleetConfig, HostConfig};
use crate::util::{error, set, str_attr, u64_attr};
use crate::Ctx;

/// A host of the fleet as a host of the pool: named `kiln-NAME` in the generated ssh_config.
pub fn remote_host(h: &HostConfig) -> kiln_remote::Host {
    kiln_remote::Host {
        name: h.name.clone(),
        label: format!("host `{}` ({})", h.name, h.endpoint()),
        address: h.address.clone(),
        port: h.port,
        user: h.user.clone(),
        identity_file: h.identity_file.clone(),
        proxy_jump: h.proxy_jump.clone(),
        host_key: h.host_key.clone(),
    }
}

/// The connection pool of one provider instance.
pub struct Ssh(kiln_remote::Ssh);

impl Ssh {
    /// Writes the ssh_config and known_hosts of `fleet` into a new private directory.
    pub fn new(fleet: &FleetConfig) -> std::io::Result<Ssh> {
        let options = kiln_remote::Options { connect_timeout: fleet.connect_timeout, retry_dropped: false };
        kiln_remote::Ssh::new(fleet.hosts.iter().map(remote_host).collect(), options).map(Ssh)
    }

    /// SSH connections this instance has opened so far.
    pub fn connections_opened(&self) -> usize {
        self.0.connections_opened()
    }

    /// Connections opened and commands run so far, by operation (`ssh.connect`, `host.scan`,
    /// `job.launch`, ...).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.0.calls()
    }

    /// Runs `script` with bash on host `h`, with `args` as its positional parameters; `op`
    /// names it in [`Ssh::calls`].
    pub async fn run(&self, h: &HostConfig, op: &str, script: &str, args: &[&str]) -> Result<Output, SshError> {
        self.0.run(&h.name, op, script, args).await
    }

    /// [`Ssh::run`], with `input` streamed on the script's stdin after it, not copied (see
    /// [`kiln_remote::Ssh::run_with_input`]).
    pub async fn run_with_input(&self, h: &HostConfig, op: &str, script: &str, args: &[&str], input: &[u8]) -> Result<Output, SshError> {
        self.0.run_with_input(&h.name, op, script, args, input).await
    }

    /// The login user's home directory on `h`.
    pub async fn home(&self, h: &HostConfig) -> Result<String, SshError> {
        self.0.home(&h.name).await
    }

    /// The hosts an interactive `ssh` goes through to `h` (jump hosts first), with their keys.
    pub async fn route(&self, h: &HostConfig) -> Result<Vec<ShellHost>, SshError> {
        Ok(self.0.route(&h.name).await?.into_iter().map(|(h, key)| shell_host(h, key)).collect())
    }
}

/// A host of the pool as `kiln ssh` reaches it.
pub fn shell_host(h: kiln_remote::Host, host_key: Option<String>) -> ShellHost {
    ShellHost {
        name: h.name,
        address: h.address,
        port: h.port,
        user: h.user,
        identity_file: h.identity_file,
        private_key: None,
        proxy_jump: h.proxy_jump,
        host_key: host_key.map_or(ShellHostKey::UserKnownHosts, ShellHostKey::Pinned),
    }
}

/// The host of node `node` of a cluster (its `allocation`) or a job (its `placement`).
fn node_host(state: &Value, node: usize) -> Option<(String, Option<String>)> {
    let job = set(state, "placement")
        .and_then(Value::as_list)
        .and_then(|l| l.iter().enumerate().find(|(i, p)| u64_attr(p, "rank").map_or(*i, |r| r as usize) == node).map(|(_, p)| p));
    if let Some(p) = job {
        return Some((str_attr(p, "host")?.to_string(), str_attr(p, "dir").map(str::to_string)));
    }
    let p = set(state, "allocation").and_then(Value::as_list)?.get(node)?;
    Some((str_attr(p, "host")?.to_string(), None))
}

/// `kiln ssh` to node `req.node` of a cluster or job: its host of the fleet, through the
/// host's `proxy_jump`s, each host's key pinned as every connection of the provider pins it.
pub async fn shell(ctx: &Ctx, req: &ShellRequest<'_>) -> Result<ShellAccess, Diagnostic> {
    let nodes = set(req.state, "placement").or_else(|| set(req.state, "allocation")).and_then(Value::as_list).map_or(0, |l| l.len());
    let Some((host, dir)) = node_host(req.state, req.node) else {
        return Err(error("E-SSH-NODE", req.address, format!("{}: there is no node {} (it has {nodes})", req.address, req.node))
            .hint(format!("give --node a rank from 0 to {}", nodes.saturating_sub(1))));
    };
    let h = ctx.host(&host).ok_or_else(|| {
        error(
            "E-SSH-HOST",
            req.address,
            format!("{}: node {} is on host `{host}`, which is not in the provider block", req.address, req.node),
        )
        .hint("add the host back to the provider block")
    })?;
    let hosts = ctx.ssh.route(h).await.map_err(|e| error("E-SSH-HOST", req.address, format!("{}: {}", req.address, e.message())))?;
    let note = dir.map(|d| format!("node {} of {} runs on host `{host}`, in {d}", req.node, req.address));
    Ok(ShellAccess { hosts, wrapper: Vec::new(), note })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

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
        let hosts: Vec<kiln_remote::Host> = fleet.hosts.iter().map(remote_host).collect();
        assert_eq!(hosts[1].label, "host `b` (10.0.0.2:2222)");
        let cfg = kiln_remote::ssh::ssh_config(&hosts, Path::new("/tmp/kh"), fleet.connect_timeout);
        assert!(cfg.contains("Host kiln-a\n  HostName 10.0.0.1\n  Port 22\n  User t\n  IdentityFile \"/k/id\"\n"), "{cfg}");
        assert!(cfg.contains("Host kiln-b\n  HostName 10.0.0.2\n  Port 2222\n  ProxyJump kiln-a\n  HostKeyAlias kiln-b\n"), "{cfg}");
        assert!(cfg.contains("StrictHostKeyChecking yes"));
        assert_eq!(
            kiln_remote::ssh::known_hosts(&hosts),
            "kiln-a ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG+aGv1ku/54A8fhpR9bEnfynvYVzGyeCqmcuE1oj9f5\n"
        );
    }
}
