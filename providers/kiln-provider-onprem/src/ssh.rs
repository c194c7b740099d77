//! The fleet's connection pool: [`kiln_remote::Ssh`] over the configured hosts (one
//! multiplexed connection per host, host keys checked strictly, a key given in full or as a
//! `SHA256:` fingerprint; see that crate), addressed by [`HostConfig`]. A host whose connection
//! drops mid-command is reported unreachable: the command is not repeated.

use std::collections::BTreeMap;

pub use kiln_remote::{Output, SshError};

use crate::config::{FleetConfig, HostConfig};

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

    /// The login user's home directory on `h`.
    pub async fn home(&self, h: &HostConfig) -> Result<String, SshError> {
        self.0.home(&h.name).await
    }
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
