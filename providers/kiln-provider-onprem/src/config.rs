//! The provider block: the fleet's hosts and how to reach them.
//!
//! ```hcl
//! provider "onprem" {
//!   root = ".kiln"                      # on every host, relative to the login user's home
//!   host "gpu-01" {
//!     address       = "10.0.0.11"
//!     user          = "trainer"
//!     identity_file = "~/.ssh/id_ed25519"
//!     host_key      = "ssh-ed25519 AAAAC3Nza..."   # or "SHA256:..."
//!     labels        = { rack = "a" }
//!     gpu_hour_price = 1.2                  # this host's own price, over the provider's
//!   }
//!   hourly_price   = 0.5                    # USD per host-hour, for the placement optimizer
//!   gpu_hour_price = 0.8                    # USD per GPU-hour
//! }
//! ```
//!
//! A host's name is its block label, or its `name` attribute (the engine does not hand block
//! labels to providers yet). Each host keeps kiln's files in `ROOT/hosts/NAME` unless it sets
//! its own `root`, so hosts sharing a home directory (NFS) never mix their files.
//!
//! `hourly_price` and `gpu_hour_price` price a host's free capacity for the placement optimizer
//! (see [`crate::offerings`]): a host's own settings over the provider's, 0 when neither says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::offerings::OwnedPrice;
use kiln_remote::local_path;
use kiln_value::Value;

use crate::hostkey::HostKey;
use crate::util::{bool_attr, set, str_attr, str_map, u64_attr};

/// One host of the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    /// Name of another configured host to jump through.
    pub proxy_jump: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub host_key: HostKey,
    /// This host's own directory for kiln's files, when set.
    pub root: Option<String>,
    /// Whether clusters may be allocated on it (false for bastions and login nodes).
    pub allocate: bool,
    /// Its price per hour: its own settings, else the provider's.
    pub price: OwnedPrice,
}

impl HostConfig {
    /// The alias the generated ssh_config and known_hosts know this host by.
    pub fn alias(&self) -> String {
        format!("kiln-{}", self.name)
    }

    /// `ADDRESS:PORT`, for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}

/// The whole provider configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    pub hosts: Vec<HostConfig>,
    /// Default directory on hosts (relative to the home directory unless absolute).
    pub root: String,
    pub connect_timeout: u64,
}

impl FleetConfig {
    pub fn host(&self, name: &str) -> Option<&HostConfig> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// A host's directory for kiln's files, as configured (maybe relative to its home).
    pub fn host_dir(&self, h: &HostConfig) -> String {
        match &h.root {
            Some(r) => r.clone(),
            None => format!("{}/hosts/{}", self.root.trim_end_matches('/'), h.name),
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.hosts.iter().map(|h| h.name.as_str()).collect()
    }
}

fn config_error(summary: String) -> Diagnostic {
    Diagnostic::error("E-ONPREM-CONFIG", summary)
}

fn port(v: &Value, what: &str) -> Result<u16, Diagnostic> {
    match set(v, "port") {
        None => Ok(22),
        Some(p) => u64_attr(v, "port")
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| config_error(format!("{what}: `port` must be a TCP port, got {p}"))),
    }
}

fn host_name(v: &Value, index: usize) -> Result<String, Diagnostic> {
    let name = str_attr(v, "name").unwrap_or_default();
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        return Ok(name.to_string());
    }
    let summary = if name.is_empty() { format!("host block #{} has no name", index + 1) } else { format!("invalid host name `{name}`") };
    Err(config_error(summary)
        .attribute(format!("host[{index}].name"))
        .hint("name every host: `name = \"gpu-01\"` inside its block (letters, digits, `-`, `_`, `.`)"))
}

fn parse_host(v: &Value, index: usize, defaults: &Value, price: OwnedPrice, working_dir: &Path) -> Result<HostConfig, Diagnostic> {
    let name = host_name(v, index)?;
    let what = format!("host `{name}`");
    let address = str_attr(v, "address").filter(|a| !a.trim().is_empty()).ok_or_else(|| {
        config_error(format!("{what} has no `address`"))
            .attribute(format!("host[{index}].address"))
            .hint("set address = \"10.0.0.11\" (an IP or a DNS name)")
    })?;
    let host_key = HostKey::parse(str_attr(v, "host_key")).map_err(|e| {
        config_error(format!("{what}: `host_key`: {e}"))
            .attribute(format!("host[{index}].host_key"))
            .hint("copy the line of /etc/ssh/ssh_host_ed25519_key.pub on the host")
    })?;
    let own = OwnedPrice::parse(v, "E-ONPREM-CONFIG").map_err(|d| {
        let at = format!("host[{index}].{}", d.attribute.as_deref().unwrap_or_default());
        Diagnostic { summary: format!("{what}: {}", d.summary), ..d }.attribute(at)
    })?;
    let pick = |k: &str| str_attr(v, k).or_else(|| str_attr(defaults, k));
    Ok(HostConfig {
        address: address.trim().to_string(),
        port: port(v, &what).map_err(|d| d.attribute(format!("host[{index}].port")))?,
        user: pick("user").map(str::to_string),
        identity_file: pick("identity_file").map(|p| local_path(working_dir, p)),
        proxy_jump: str_attr(v, "proxy_jump").map(str::to_string),
        labels: str_map(v, "labels").into_iter().collect(),
        host_key,
        root: str_attr(v, "root").map(str::to_string),
        allocate: bool_attr(v, "allocate").unwrap_or(true),
        price: own.or(price),
        name,
    })
}

/// Names must be unique and `proxy_jump` must name another host. `blocks[i]` is the index of
/// the `host` block `hosts[i]` came from (errors name it: `host[3].proxy_jump`).
fn check_links(hosts: &[HostConfig], blocks: &[usize]) -> Diagnostics {
    let mut out = Diagnostics::new();
    for (i, h) in hosts.iter().enumerate() {
        let at = |attr: &str| format!("host[{}].{attr}", blocks[i]);
        if hosts[..i].iter().any(|o| o.name == h.name) {
            out.push(
                config_error(format!("host `{}` is declared twice", h.name)).attribute(at("name")).hint("give every host its own name"),
            );
        }
        match &h.proxy_jump {
            Some(j) if j == &h.name => {
                out.push(config_error(format!("host `{}` jumps through itself", h.name)).attribute(at("proxy_jump")))
            }
            Some(j) if !hosts.iter().any(|o| &o.name == j) => out.push(
                config_error(format!("host `{}`: proxy_jump names `{j}`, which is not a host of this provider", h.name))
                    .attribute(at("proxy_jump"))
                    .hint("declare the jump host as a `host` block too (with its host_key and `allocate = false`), and name it here"),
            ),
            _ => {}
        }
    }
    out
}

/// Parses the evaluated provider block.
pub fn parse(config: &Value, working_dir: &Path) -> Result<FleetConfig, Diagnostics> {
    let blocks = set(config, "host").and_then(Value::as_list).unwrap_or_default();
    let mut diags = Diagnostics::new();
    let price = OwnedPrice::parse(config, "E-ONPREM-CONFIG").unwrap_or_else(|d| {
        diags.push(d);
        OwnedPrice::default()
    });
    let mut hosts = Vec::new();
    let mut parsed = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        match parse_host(b, i, config, price, working_dir) {
            Ok(h) => {
                hosts.push(h);
                parsed.push(i);
            }
            Err(d) => diags.push(d),
        }
    }
    diags.extend(check_links(&hosts, &parsed));
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(FleetConfig {
        hosts,
        root: str_attr(config, "root").unwrap_or(".kiln").to_string(),
        connect_timeout: u64_attr(config, "connect_timeout").unwrap_or(10).max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(j: serde_json::Value) -> Value {
        Value::from_json(&j)
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG+aGv1ku/54A8fhpR9bEnfynvYVzGyeCqmcuE1oj9f5";

    #[test]
    fn hosts_with_defaults() {
        let c = v(serde_json::json!({
            "user": "trainer",
            "host": [
                { "name": "gpu-01", "address": "10.0.0.11", "host_key": KEY, "labels": { "rack": "a" } },
                { "name": "gpu-02", "address": "10.0.0.12", "port": 2222, "user": "root", "proxy_jump": "gpu-01", "root": "/scratch/kiln" },
            ],
        }));
        let f = parse(&c, Path::new("/w")).unwrap();
        assert_eq!(f.hosts[0].user.as_deref(), Some("trainer"));
        assert_eq!(f.hosts[0].labels.get("rack").map(String::as_str), Some("a"));
        assert_eq!(f.hosts[1].port, 2222);
        assert_eq!(f.hosts[1].host_key, HostKey::Missing);
        assert_eq!(f.host_dir(&f.hosts[0]), ".kiln/hosts/gpu-01");
        assert_eq!(f.host_dir(&f.hosts[1]), "/scratch/kiln");
        assert_eq!(f.hosts[0].price, OwnedPrice::default(), "no price: 0");
    }

    #[test]
    fn a_host_price_overrides_the_provider_price() {
        let c = v(serde_json::json!({
            "hourly_price": 0.5, "gpu_hour_price": 2,
            "host": [
                { "name": "a", "address": "x", "gpu_hour_price": 1.25 },
                { "name": "b", "address": "y" },
                { "name": "c", "address": "z", "hourly_price": "cheap" },
            ],
        }));
        let e = parse(&c, Path::new("/w")).unwrap_err();
        let d = e.iter().next().unwrap();
        assert!(d.summary.starts_with("host `c`: `hourly_price` must be a number"), "{}", d.summary);
        assert_eq!(d.attribute.as_deref(), Some("host[2].hourly_price"));
        let mut c = c;
        if let Value::Map(m) = &mut c {
            if let Some(Value::List(hosts)) = m.get_mut("host") {
                hosts.pop();
            }
        }
        let f = parse(&c, Path::new("/w")).unwrap();
        assert_eq!(f.hosts[0].price.machine(8).to_string(), "10.5");
        assert_eq!(f.hosts[1].price.machine(8).to_string(), "16.5");
    }

    #[test]
    fn errors_name_the_host() {
        let c = v(serde_json::json!({ "host": [
            { "name": "a", "address": "x", "host_key": "nonsense" },
            { "address": "y" },
            { "name": "b", "address": "z", "proxy_jump": "nowhere" },
        ]}));
        let msgs: Vec<String> = parse(&c, Path::new("/w")).unwrap_err().iter().map(|d| d.summary.clone()).collect();
        assert!(msgs[0].starts_with("host `a`: `host_key`"), "{msgs:?}");
        assert_eq!(msgs[1], "host block #2 has no name");
        assert_eq!(msgs[2], "host `b`: proxy_jump names `nowhere`, which is not a host of this provider");
        // Each names the attribute, by the index of its block (the engine finds it).
        let attrs: Vec<Option<String>> = parse(&c, Path::new("/w")).unwrap_err().iter().map(|d| d.attribute.clone()).collect();
        assert_eq!(attrs, [Some("host[0].host_key".into()), Some("host[1].name".into()), Some("host[2].proxy_jump".into())]);
    }
}
