//! One round trip per host that returns everything refresh and allocation need: the host's
//! inventory and the GPU claims on it. Hosts are scanned in parallel; a host that does not
//! answer (or whose key is refused) gives its error instead.

use futures_util::future::join_all;
use kiln_value::Value;

use crate::claims::{self, HostClaims};
use crate::config::HostConfig;
use crate::inventory::{self, Inventory};
use crate::ssh::SshError;
use crate::util::{num, obj, strings};
use crate::Ctx;

/// What one host said.
#[derive(Debug, Clone)]
pub struct HostScan {
    pub host: HostConfig,
    pub result: Result<(Inventory, HostClaims), SshError>,
}

impl HostScan {
    pub fn inventory(&self) -> Result<&Inventory, String> {
        self.result.as_ref().map(|(i, _)| i).map_err(|e| e.message().to_string())
    }

    pub fn claims(&self) -> Option<&HostClaims> {
        self.result.as_ref().ok().map(|(_, c)| c)
    }

    /// The host's object in `fleet.hosts` and `inventory.hosts` (hardware fields null when the
    /// host did not answer).
    pub fn to_value(&self) -> Value {
        let h = &self.host;
        let labels: kiln_value::Map = h.labels.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        let mut m = obj([
            ("name", Value::from(h.name.as_str())),
            ("address", Value::from(h.address.as_str())),
            ("port", num(h.port.into())),
            ("labels", Value::Map(labels)),
            ("allocate", Value::from(h.allocate)),
            ("reachable", Value::from(self.result.is_ok())),
            ("error", self.result.as_ref().err().map_or(Value::Null, |e| Value::from(e.message()))),
        ]);
        let Value::Map(map) = &mut m else { return m };
        let Ok((inv, claims)) = &self.result else {
            // Same shape either way, so that expressions over `hosts` work while one is down.
            let unknown = Inventory::default().fields().into_iter().map(|(k, _)| k).chain(["gpus_free", "held_by"]);
            map.extend(unknown.map(|k| (k.to_string(), Value::Null)));
            return m;
        };
        map.extend(inv.fields().into_iter().map(|(k, v)| (k.to_string(), v)));
        let free = inv.gpus.iter().filter(|g| !claims.gpus.contains_key(&g.index)).count();
        map.insert("gpus_free".into(), num(free as u64));
        let mut holders: Vec<&str> = claims.gpus.values().map(|c| c.address.as_str()).collect();
        holders.sort();
        holders.dedup();
        map.insert("held_by".into(), strings(holders));
        m
    }
}

async fn scan_one(ctx: &Ctx, h: &HostConfig) -> HostScan {
    let dir = match ctx.host_dir(h).await {
        Ok(d) => d,
        Err(e) => return HostScan { host: h.clone(), result: Err(e) },
    };
    let script = format!("{}{}", inventory::script(), claims::LIST);
    let result = match ctx.ssh.run(h, "host.scan", &script, &[&dir]).await {
        Ok(out) if inventory::complete(&out.text()) => {
            let text = out.text();
            Ok((inventory::parse(&text), claims::parse(claims::section(&text))))
        }
        Ok(out) => Err(SshError::Unreachable(format!("host `{}`: the inventory script stopped early: {}", h.name, out.stderr.trim()))),
        Err(e) => Err(e),
    };
    HostScan { host: h.clone(), result }
}

/// Scans `hosts` in parallel, in order.
pub async fn scan(ctx: &Ctx, hosts: &[&HostConfig]) -> Vec<HostScan> {
    join_all(hosts.iter().map(|h| scan_one(ctx, h))).await
}

/// Scans every host of the fleet.
pub async fn scan_all(ctx: &Ctx) -> Vec<HostScan> {
    let hosts: Vec<&HostConfig> = ctx.fleet.hosts.iter().collect();
    scan(ctx, &hosts).await
}
