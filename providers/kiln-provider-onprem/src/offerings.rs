//! What the `onprem` provider offers the placement optimizer (issue 14): each host's free
//! capacity now, one row per host, priced from the configuration.
//!
//! The hosts are read as a cluster's plan reads them (one scan per host: inventory and GPU
//! claims) and seen as the allocator sees them ([`crate::cluster::candidates`]): a GPU is free
//! when no cluster claims it on the host and no cluster this provider instance planned takes
//! it; CPUs and memory are the host's (clusters do not claim them). A row offers a host's free
//! GPUs of its first GPU model (8 GPUs with 4 claimed: 4), named by the one accelerator table
//! (nvidia-smi's "NVIDIA A100-SXM4-80GB" is an `A100-80GB`). Left out: hosts with
//! `allocate = false`, hosts whose GPUs are all claimed (busy: their price counts only while
//! they are free), and hosts that do not answer (a warning each).
//!
//! Price per hour: the host's `hourly_price` plus `gpu_hour_price` × the GPUs the row offers
//! (a host's settings over the provider's; 0 when neither says). `available` is 1: each row is
//! one host, named by `instance_type`.

use std::str::FromStr;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::offerings::{OfferedAccelerator, Offering, Offerings, OfferingsResponse, OwnedPrice};
use kiln_provider::portable::accelerators;
use kiln_value::Decimal;

use crate::alloc::Candidate;
use crate::gpus::HostGpu;
use crate::scan::scan_all;
use crate::{Ctx, NAME};

/// The free capacity of every host that has some.
pub async fn offerings(ctx: &Ctx) -> OfferingsResponse {
    let scans = scan_all(ctx).await;
    let planned = ctx.reservations.lock().await.clone();
    // No cluster excepted: every claim and every planned allocation counts as taken.
    let candidates = crate::cluster::candidates(&scans, &planned, "");
    let mut diagnostics = Diagnostics::new();
    for s in &scans {
        if let Err(e) = &s.result {
            let code = if matches!(e, crate::ssh::SshError::HostKey(_)) { "W-ONPREM-HOST-KEY" } else { "W-ONPREM-UNREACHABLE" };
            diagnostics.push(Diagnostic::warning(code, format!("{}; its capacity is not offered to placement", e.message())));
        }
    }
    let rows = candidates.iter().filter_map(|c| row(c, ctx.host(c.name).map(|h| h.price).unwrap_or_default())).collect();
    OfferingsResponse { offerings: Offerings::Owned(rows), diagnostics }
}

/// The row of one host, or `None` when it offers nothing now (see the module's rule).
pub fn row(c: &Candidate<'_>, price: OwnedPrice) -> Option<Offering> {
    if !c.allocate {
        return None;
    }
    let inv = c.inventory.as_ref().ok()?;
    let free: Vec<&HostGpu> = inv.gpus.iter().filter(|g| !c.taken.contains_key(&g.index)).collect();
    if !inv.gpus.is_empty() && free.is_empty() {
        return None;
    }
    let accelerator = free.first().map(|first| {
        let name = model_name(first);
        OfferedAccelerator {
            count: free.iter().filter(|g| model_name(g) == name).count() as u64,
            memory_gib: Some(first.memory_mib).filter(|m| *m > 0).map(|m| (Decimal::from(m) / Decimal::from(1024u64)).normalize()),
            name,
        }
    });
    let gpus = accelerator.as_ref().map_or(0, |a| a.count);
    Some(Offering {
        cloud: NAME.into(),
        instance_type: c.name.to_string(),
        accelerator,
        vcpus: inv.cpus,
        memory_gib: Decimal::from_str(&format!("{:.1}", inv.memory_gb)).unwrap_or_default().normalize(),
        region: None,
        zone: None,
        price_hourly: Some(price.machine(gpus)),
        spot_price_hourly: None,
        available: Some(1),
    })
}

/// The catalog's name of a GPU, or the device's own name where the table has none.
fn model_name(g: &HostGpu) -> String {
    accelerators::classify(&g.name, Some(g.memory_mib).filter(|m| *m > 0)).map_or_else(|| g.name.clone(), |m| m.name.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::inventory::Inventory;

    fn gpu(i: u32, name: &str) -> HostGpu {
        HostGpu { vendor: "nvidia", index: i, name: name.into(), memory_mib: 81920 }
    }

    fn inv(gpus: u32) -> Inventory {
        Inventory { cpus: 64, memory_gb: 503.5, gpus: (0..gpus).map(|i| gpu(i, "NVIDIA A100-SXM4-80GB")).collect(), ..Inventory::default() }
    }

    fn candidate<'a>(inv: &'a Result<Inventory, String>, labels: &'a BTreeMap<String, String>, taken: &[u32]) -> Candidate<'a> {
        Candidate {
            name: "gpu-01",
            address: "10.0.0.1",
            labels,
            allocate: true,
            inventory: inv.as_ref().map_err(Clone::clone),
            taken: taken.iter().map(|i| (*i, "cluster.other".to_string())).collect(),
        }
    }

    fn price(hourly: i64, gpu_hour: i64) -> OwnedPrice {
        OwnedPrice { hourly: Some(hourly.into()), gpu_hour: Some(gpu_hour.into()) }
    }

    #[test]
    fn a_host_offers_its_free_gpus_at_its_price() {
        let labels = BTreeMap::new();
        let host = Ok(inv(8));
        let r = row(&candidate(&host, &labels, &[0, 1, 2, 3]), price(1, 2)).unwrap();
        assert_eq!(r.accelerator, Some(OfferedAccelerator { name: "A100-80GB".into(), count: 4, memory_gib: Some(80.into()) }));
        assert_eq!((r.instance_type.as_str(), r.vcpus, r.memory_gib.to_string()), ("gpu-01", 64, "503.5".to_string()));
        assert_eq!((r.price_hourly, r.spot_price_hourly, r.available, r.region), (Some(9.into()), None, Some(1), None));
        assert_eq!(row(&candidate(&host, &labels, &[]), OwnedPrice::default()).unwrap().price_hourly, Some(Decimal::ZERO), "0 by default");
    }

    #[test]
    fn busy_unreachable_and_unallocatable_hosts_offer_nothing() {
        let labels = BTreeMap::new();
        let host = Ok(inv(2));
        assert_eq!(row(&candidate(&host, &labels, &[0, 1]), price(1, 1)), None, "every GPU claimed");
        let down = Err("unreachable".to_string());
        assert_eq!(row(&candidate(&down, &labels, &[]), price(1, 1)), None);
        let bastion = Candidate { allocate: false, ..candidate(&host, &labels, &[]) };
        assert_eq!(row(&bastion, price(1, 1)), None);
        let cpu_only = Ok(inv(0));
        let r = row(&candidate(&cpu_only, &labels, &[]), price(3, 5)).unwrap();
        assert_eq!((r.accelerator, r.price_hourly), (None, Some(3.into())), "a CPU host: no GPUs, its hourly price");
    }
}
