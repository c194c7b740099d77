//! What an `onprem` object costs per hour (issue 14): the plan's cost line of a cluster that
//! was not placed by the optimizer, and so the price apply records and `kiln cost` shows.
//!
//! A `cluster` costs the hosts it holds, each at its price (a host's `hourly_price` and
//! `gpu_hour_price` over the provider's, 0 when neither says: see [`crate::config`]):
//! `hourly_price + gpu_hour_price × the GPUs its node claims there`, summed over the nodes of
//! its `allocation`.
//!
//! A cluster whose hosts are chosen at apply (its request depends on values known only then)
//! costs the dearest its request can take: its `nodes` on that many of the dearest distinct
//! hosts it may use (`allocate`, and its `hosts` and `labels` where known), each node with the
//! most GPUs an `accelerators` alternative asks for. What is not known yet makes the price
//! unknown, with the reason, where it decides the price: never $0 unless the prices are 0.
//!
//! A `fleet` is not priced: it describes hosts and holds none (a host's price counts in the
//! cluster that claims it).

use kiln_provider::offerings::requested;
use kiln_value::{Decimal, Value};

use crate::alloc::{placements, Placement};
use crate::config::{FleetConfig, HostConfig};
use crate::util::{str_list, str_map};

/// The price per hour of object `v` of `kind`; `None` for the kinds that hold no host.
pub fn hourly_price(fleet: &FleetConfig, kind: &str, v: &Value) -> Option<Result<Decimal, String>> {
    (kind == "cluster").then(|| cluster(fleet, v))
}

/// A cluster: its allocation's hosts, or the dearest its request can take.
fn cluster(fleet: &FleetConfig, v: &Value) -> Result<Decimal, String> {
    let allocation = placements(v);
    if allocation.is_empty() {
        dearest(fleet, v)
    } else {
        allocated(fleet, &allocation)
    }
}

/// Each node at its host's price with the GPUs it claims there.
fn allocated(fleet: &FleetConfig, allocation: &[Placement]) -> Result<Decimal, String> {
    let mut total = Decimal::ZERO;
    for p in allocation {
        let host = fleet.host(&p.host).ok_or_else(|| format!("its host `{}` is not in the provider block any more", p.host))?;
        total += host.price.machine(p.gpus.len() as u64);
    }
    Ok(total.normalize())
}

/// The dearest allocation the request of `v` can get (see the module).
fn dearest(fleet: &FleetConfig, v: &Value) -> Result<Decimal, String> {
    let known = |k: &str| !v.get(k).is_some_and(Value::contains_unknown);
    let names = known("hosts").then(|| str_list(v, "hosts"));
    let labels = known("labels").then(|| str_map(v, "labels"));
    let may = |h: &&HostConfig| {
        h.allocate
            && names.as_ref().is_none_or(|n| n.is_empty() || n.contains(&h.name))
            && labels.as_ref().is_none_or(|l| l.iter().all(|(k, x)| h.labels.get(k) == Some(x)))
    };
    let (nodes, gpus) = requested(v);
    let mut each = fleet.hosts.iter().filter(may).map(|h| h.price.machine_of(gpus)).collect::<Result<Vec<Decimal>, String>>()?;
    if each.is_empty() {
        return Err("no host of the provider block may take it".into());
    }
    each.sort_by(|a, b| b.cmp(a));
    match nodes {
        Some(n) if n as usize > each.len() => Err(format!("it asks for {n} nodes and only {} hosts may take one", each.len())),
        Some(n) => Ok(each.iter().take(n as usize).sum::<Decimal>().normalize()),
        None if each.iter().all(Decimal::is_zero) => Ok(Decimal::ZERO),
        None => Err("its number of nodes is chosen at apply".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn v(j: serde_json::Value) -> Value {
        Value::from_json(&j)
    }

    /// Provider: $1 a host-hour and $2 a GPU-hour; `b` its own $3 a GPU-hour; `c` its own $10
    /// a host-hour and label rack=c; `jump` not for allocation.
    fn fleet() -> FleetConfig {
        crate::config::parse(
            &v(serde_json::json!({
                "hourly_price": 1, "gpu_hour_price": 2,
                "host": [
                    { "name": "a", "address": "10.0.0.1" },
                    { "name": "b", "address": "10.0.0.2", "gpu_hour_price": 3 },
                    { "name": "c", "address": "10.0.0.3", "hourly_price": 10, "labels": { "rack": "c" } },
                    { "name": "jump", "address": "10.0.0.9", "hourly_price": 100, "allocate": false },
                ],
            })),
            Path::new("/w"),
        )
        .unwrap()
    }

    fn node(host: &str, gpus: u32) -> serde_json::Value {
        let gpus: Vec<_> =
            (0..gpus).map(|i| serde_json::json!({ "index": i, "name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920 })).collect();
        serde_json::json!({ "host": host, "address": "x", "gpus": gpus })
    }

    fn price(v: Value) -> Result<Decimal, String> {
        hourly_price(&fleet(), "cluster", &v).unwrap()
    }

    #[test]
    fn an_allocation_costs_its_hosts_with_the_gpus_claimed_at_host_over_provider_prices() {
        let c = v(serde_json::json!({ "nodes": 3, "allocation": [node("a", 4), node("b", 2), node("c", 0)] }));
        // a: 1 + 2×4 (the provider's); b: 1 + 3×2 (its own GPU price); c: 10 (its own, no GPUs).
        assert_eq!(price(c), Ok(Decimal::from(9 + 7 + 10)));
        let free = crate::config::parse(&v(serde_json::json!({ "host": [{ "name": "a", "address": "x" }] })), Path::new("/w")).unwrap();
        let on_a = v(serde_json::json!({ "allocation": [node("a", 8)] }));
        assert_eq!(hourly_price(&free, "cluster", &on_a), Some(Ok(Decimal::ZERO)), "no price configured: 0, the documented default");
        let gone = v(serde_json::json!({ "allocation": [node("old", 1)] }));
        assert!(price(gone).unwrap_err().contains("`old` is not in the provider block"));
    }

    #[test]
    fn hosts_chosen_at_apply_cost_the_dearest_the_request_can_take() {
        let unknown_alloc = |mut j: serde_json::Value| {
            let mut m = v(std::mem::take(&mut j));
            if let Value::Map(map) = &mut m {
                map.insert("allocation".into(), Value::Unknown);
            }
            m
        };
        // 8 GPUs a node: a 17, b 25, c 26 (jump is not for allocation); 2 nodes: c and b.
        assert_eq!(price(unknown_alloc(serde_json::json!({ "nodes": 2, "accelerators": ["A100:8", "H100:4"] }))), Ok(Decimal::from(51)));
        assert_eq!(price(unknown_alloc(serde_json::json!({ "hosts": ["a", "b"], "accelerators": "A100:1" }))), Ok(Decimal::from(4)));
        assert_eq!(price(unknown_alloc(serde_json::json!({ "labels": { "rack": "c" } }))), Ok(Decimal::from(10)), "no GPUs asked");
        let e = price(unknown_alloc(serde_json::json!({ "nodes": 4 }))).unwrap_err();
        assert_eq!(e, "it asks for 4 nodes and only 3 hosts may take one");

        let mut gpus_later = unknown_alloc(serde_json::json!({ "nodes": 1 }));
        if let Value::Map(m) = &mut gpus_later {
            m.insert("accelerators".into(), Value::Unknown);
        }
        assert!(price(gpus_later.clone()).unwrap_err().contains("GPUs are chosen at apply"), "never $0 for what is not known");
        let cpu_only =
            crate::config::parse(&v(serde_json::json!({ "hourly_price": 2, "host": [{ "name": "a", "address": "x" }] })), Path::new("/w"))
                .unwrap();
        assert_eq!(hourly_price(&cpu_only, "cluster", &gpus_later), Some(Ok(Decimal::from(2))), "GPUs free of charge");
        assert_eq!(hourly_price(&fleet(), "fleet", &v(serde_json::json!({}))), None, "a fleet holds no host");
    }
}
