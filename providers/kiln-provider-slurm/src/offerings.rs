//! What the `slurm` provider offers the placement optimizer (issue 14): the idle nodes of each
//! partition that is up, read with the same `sinfo` + `scontrol show partition` round trip the
//! cluster kind describes partitions with.
//!
//! One row per partition and node shape (CPUs, memory, GPU GRES type and count: a partition
//! of identical nodes is one row), `instance_type` the partition's name, `available` the
//! number of such nodes idle now (`idle`, or `idle~`: powered down by power saving, started on
//! demand). Nodes that are mixed, allocated, drained or down offer nothing: a row is whole
//! nodes. The GPU is the GRES type as the one accelerator table names it (`a100` is an
//! `A100`), or as Slurm spells it for a site's own type (`kilngpu`), or `gpu` for untyped GPU
//! GRES (which no accelerator request matches, and a CPU-only request does not take).
//!
//! Price per node-hour: the provider's `hourly_price` plus `gpu_hour_price` × the node's GPUs,
//! 0 when not set.

use std::collections::BTreeMap;

use kiln_provider::offerings::{OfferedAccelerator, Offering, Offerings, OfferingsResponse, OwnedPrice};
use kiln_provider::portable::accelerators;
use kiln_value::Decimal;

use crate::cluster::{describe, Partition};
use crate::parse::SinfoNode;
use crate::{Ctx, NAME};

/// The idle nodes of every partition that is up.
pub async fn offerings(ctx: &Ctx) -> OfferingsResponse {
    match describe(ctx, NAME).await {
        Ok(parts) => OfferingsResponse { offerings: Offerings::Owned(rows(&parts, ctx.config.price)), diagnostics: Default::default() },
        // Not about an object: the message names the provider.
        Err(d) => {
            OfferingsResponse { offerings: Offerings::Owned(Vec::new()), diagnostics: kiln_diag::Diagnostic { address: None, ..d }.into() }
        }
    }
}

/// Whether a node (`sinfo %T`, lower case) can start a job of its own now.
fn idle(n: &SinfoNode) -> bool {
    matches!(n.state.as_str(), "idle" | "idle~")
}

/// A node's GPUs: its first GPU GRES's type, and every GPU of that type.
fn accelerator(n: &SinfoNode) -> Option<OfferedAccelerator> {
    let first = n.gres.iter().find(|g| g.name == "gpu" && g.count > 0)?;
    let name = match &first.kind {
        Some(k) => accelerators::classify(k, None).map_or_else(|| k.clone(), |m| m.name.to_string()),
        None => "gpu".to_string(),
    };
    let count = n.gres.iter().filter(|g| g.name == "gpu" && g.kind == first.kind).map(|g| g.count).sum();
    Some(OfferedAccelerator { name, count, memory_gib: None })
}

/// A node's shape: CPUs, memory (MB), and GPU name and count.
type Shape = (u64, u64, Option<(String, u64)>);

/// The rows (see the module's rule), by partition in Slurm's order, then by shape.
pub(crate) fn rows(parts: &[Partition], price: OwnedPrice) -> Vec<Offering> {
    let mut out = Vec::new();
    for p in parts.iter().filter(|p| p.state == "up") {
        let mut shapes: BTreeMap<Shape, u64> = BTreeMap::new();
        for n in p.nodes.iter().filter(|n| idle(n)) {
            let gpu = accelerator(n).map(|a| (a.name, a.count));
            *shapes.entry((n.cpus, n.memory_mb, gpu)).or_default() += 1;
        }
        for ((cpus, memory_mb, gpu), count) in shapes {
            let gpus = gpu.as_ref().map_or(0, |(_, c)| *c);
            out.push(Offering {
                cloud: NAME.into(),
                instance_type: p.name.clone(),
                accelerator: gpu.map(|(name, count)| OfferedAccelerator { name, count, memory_gib: None }),
                vcpus: cpus,
                memory_gib: (Decimal::from(memory_mb) / Decimal::from(1024u64)).round_dp(1).normalize(),
                region: None,
                zone: None,
                price_hourly: Some(price.machine(gpus)),
                spot_price_hourly: None,
                available: Some(count),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::partitions;

    fn parts() -> Vec<Partition> {
        let sinfo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/sinfo-nodes-gpu.txt")).unwrap();
        let extra = "gpu|gpu05|idle~|64|515000|gpu:a100:8(S:0-1)|up\ngpu|gpu06|idle|32|257000|gpu:a100:4(S:0)|up\ncpu|cpu02|mixed|128|257000|(null)|up\noff|off01|idle|8|1000|(null)|down\n";
        let scontrol = "PartitionName=gpu Default=NO State=UP MaxTime=2-00:00:00\nPartitionName=cpu Default=YES State=UP MaxTime=UNLIMITED\nPartitionName=off State=DOWN MaxTime=UNLIMITED\n";
        partitions(&format!("{sinfo}{extra}@@kiln-partitions@@\n{scontrol}"))
    }

    #[test]
    fn idle_nodes_of_partitions_that_are_up_by_shape() {
        let price = OwnedPrice { hourly: Some(Decimal::new(5, 1)), gpu_hour: Some(Decimal::from(2)) };
        let rows = rows(&parts(), price);
        let summary: Vec<_> = rows
            .iter()
            .map(|r| {
                let gpu = r.accelerator.as_ref().map(|a| (a.name.as_str(), a.count));
                (r.instance_type.as_str(), r.vcpus, gpu, r.available, r.price_hourly.unwrap().to_string())
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("gpu", 32, Some(("A100", 4)), Some(1), "8.5".to_string()),
                ("gpu", 64, Some(("A100", 8)), Some(2), "16.5".to_string()),
                ("cpu", 128, None, Some(1), "0.5".to_string()),
            ],
            "gpu03 and gpu05 (powered down) are idle; mixed, allocated and down nodes and the down partition offer nothing"
        );
        assert_eq!(rows[1].memory_gib.to_string(), "502.9");
        assert!(rows.iter().all(|r| r.region.is_none() && r.spot_price_hourly.is_none() && r.cloud == "slurm"));
        assert!(super::rows(&parts(), OwnedPrice::default()).iter().all(|r| r.price_hourly == Some(Decimal::ZERO)), "0 unless set");
    }
}
