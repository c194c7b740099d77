//! The provider block: where Slurm's commands run and where job files go.
//!
//! ```hcl
//! provider "slurm" {
//!   root = ".kiln/slurm"          # job scripts and output; must be shared with the compute nodes
//!   login {                       # optional: without it, commands run on this machine
//!     host     = "login1.example.org"
//!     user     = "alice"
//!     identity_file = "~/.ssh/id_ed25519"
//!     host_key = "ssh-ed25519 AAAAC3Nza..."   # or "SHA256:..."; without it ~/.ssh/known_hosts
//!   }
//!   hourly_price   = 0.5          # USD per node-hour of an idle node, for the placement optimizer
//!   gpu_hour_price = 0.8          # USD per GPU-hour
//! }
//! ```

use std::path::Path;

use kiln_diag::Diagnostic;
use kiln_provider::offerings::OwnedPrice;
use kiln_remote::{local_path, HostKey};
use kiln_value::Value;

use crate::runner::Login;
use crate::util::{set, str_attr, u64_attr};

/// The parsed provider block.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmConfig {
    /// Directory for job files, as written (relative: to the working directory, or the login
    /// user's home over SSH).
    pub root: String,
    pub login: Option<Login>,
    /// The price of a node per hour, for placement (0 unless set).
    pub price: OwnedPrice,
}

fn config_error(summary: String) -> Diagnostic {
    Diagnostic::error("E-SLURM-CONFIG", summary)
}

/// A full public key line (`ssh-ed25519 AAAA...`, a trailing comment dropped) or a `SHA256:`
/// fingerprint; without one the user's known_hosts decide (still strictly).
fn host_key(s: Option<&str>) -> Result<HostKey, Diagnostic> {
    match HostKey::parse(s) {
        Ok(HostKey::Missing) => Ok(HostKey::UserKnownHosts),
        Ok(k) => Ok(k),
        Err(e) => Err(config_error(format!("login: `host_key`: {e}")).attribute("login.host_key").hint(
            "copy the line of /etc/ssh/ssh_host_ed25519_key.pub on the login node (\"ssh-ed25519 AAAA...\"), or its fingerprint (\"SHA256:...\")",
        )),
    }
}

/// Parses the evaluated provider block.
pub fn parse(config: &Value, working_dir: &Path) -> Result<SlurmConfig, Diagnostic> {
    let login = match set(config, "login") {
        None => None,
        Some(l) => {
            let host = str_attr(l, "host").filter(|h| !h.trim().is_empty()).ok_or_else(|| {
                config_error("login: `host` is empty".into())
                    .attribute("login.host")
                    .hint("set host = \"login1.example.org\" (the login node's address)")
            })?;
            let port = match set(l, "port") {
                None => 22,
                Some(p) => u64_attr(l, "port")
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| config_error(format!("login: `port` must be a TCP port, got {p}")).attribute("login.port"))?,
            };
            Some(Login {
                host: host.trim().to_string(),
                port,
                user: str_attr(l, "user").map(str::to_string),
                identity_file: str_attr(l, "identity_file").map(|p| local_path(working_dir, p)),
                host_key: host_key(str_attr(l, "host_key"))?,
                connect_timeout: u64_attr(l, "connect_timeout").unwrap_or(10).max(1),
            })
        }
    };
    Ok(SlurmConfig {
        root: str_attr(config, "root").unwrap_or(".kiln/slurm").trim_end_matches('/').to_string(),
        login,
        price: OwnedPrice::parse(config, "E-SLURM-CONFIG")?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn v(j: serde_json::Value) -> Value {
        Value::from_json(&j)
    }

    #[test]
    fn local_by_default() {
        let c = parse(&v(serde_json::json!({})), Path::new("/w")).unwrap();
        assert_eq!(c, SlurmConfig { root: ".kiln/slurm".into(), login: None, price: OwnedPrice::default() });
        let priced = parse(&v(serde_json::json!({ "hourly_price": 0.5, "gpu_hour_price": 2 })), Path::new("/w")).unwrap();
        assert_eq!(priced.price.machine(8).to_string(), "16.5");
        let e = parse(&v(serde_json::json!({ "gpu_hour_price": -2 })), Path::new("/w")).unwrap_err();
        assert_eq!((e.code, e.attribute.as_deref()), ("E-SLURM-CONFIG", Some("gpu_hour_price")));
    }

    #[test]
    fn login_block() {
        let c = parse(
            &v(serde_json::json!({ "root": "/scratch/kiln/", "login": {
                "host": "login1", "port": 2222, "user": "alice", "identity_file": "keys/id",
                "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG+aGv1ku/54A8fhpR9bEnfynvYVzGyeCqmcuE1oj9f5 root@login1",
            }})),
            Path::new("/w"),
        )
        .unwrap();
        let l = c.login.unwrap();
        assert_eq!(c.root, "/scratch/kiln");
        assert_eq!(l.endpoint(), "alice@login1:2222");
        assert_eq!(l.identity_file, Some(PathBuf::from("/w/keys/id")));
        assert_eq!(
            l.host_key,
            HostKey::Key {
                algorithm: "ssh-ed25519".into(),
                blob: "AAAAC3NzaC1lZDI1NTE5AAAAIG+aGv1ku/54A8fhpR9bEnfynvYVzGyeCqmcuE1oj9f5".into()
            }
        );
    }

    #[test]
    fn bad_host_key() {
        let e = parse(&v(serde_json::json!({ "login": { "host": "l", "host_key": "nonsense" } })), Path::new("/w")).unwrap_err();
        assert!(e.summary.contains("login: `host_key`"), "{}", e.summary);
        assert_eq!(e.attribute.as_deref(), Some("login.host_key"));
        assert!(e.hint.as_deref().unwrap_or_default().contains("ssh_host_ed25519_key.pub"), "{:?}", e.hint);
    }

    #[test]
    fn host_key_as_a_fingerprint() {
        let fp = "SHA256:Jx4uEpIeKykJTFgm7W/OU0OYWigni1CzJ4nllXC4Ph4";
        let c = parse(&v(serde_json::json!({ "login": { "host": "l", "host_key": fp } })), Path::new("/w")).unwrap();
        assert_eq!(c.login.unwrap().host_key, HostKey::Fingerprint(fp.into()));
    }

    #[test]
    fn without_host_key_the_users_known_hosts_decide() {
        let c = parse(&v(serde_json::json!({ "login": { "host": "l" } })), Path::new("/w")).unwrap();
        assert_eq!(c.login.unwrap().host_key, HostKey::UserKnownHosts);
    }
}
