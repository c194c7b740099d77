//! What a `slurm` object costs per hour (issue 14): the plan's cost line of a cluster that was
//! not placed by the optimizer, and so the price apply records and `kiln cost` shows.
//!
//! A `cluster` costs its `nodes` at the provider's `hourly_price` plus `gpu_hour_price` × the
//! GPUs each node gets (`gpus_per_node`), the price placement gives the same partition's nodes;
//! 0 when neither is set. Where the plan cannot tell yet (a request known only at apply), the
//! most GPUs an `accelerators` alternative asks for; unknown, with the reason, where what is not
//! known decides the price (never $0 unless the prices are 0). Jobs are not priced: the nodes
//! they run on are their cluster's.

use kiln_provider::offerings::{requested, OwnedPrice};
use kiln_value::{Decimal, Value};

use crate::util::to_u64;

/// The price per hour of object `v` of `kind`; `None` for the kinds that hold no nodes.
pub fn hourly_price(price: OwnedPrice, kind: &str, v: &Value) -> Option<Result<Decimal, String>> {
    (kind == "cluster").then(|| {
        let (nodes, asked) = requested(v);
        let gpus = v.get("gpus_per_node").map(Value::unmarked).and_then(to_u64).or(asked);
        price.machines(nodes, gpus)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(j: serde_json::Value) -> Value {
        Value::from_json(&j)
    }

    fn price(hourly: i64, gpu_hour: i64) -> OwnedPrice {
        OwnedPrice { hourly: Some(hourly.into()), gpu_hour: Some(gpu_hour.into()) }
    }

    #[test]
    fn a_cluster_costs_its_nodes_with_their_gpus() {
        let c = v(serde_json::json!({ "nodes": 2, "accelerators": "A100:4", "gpus_per_node": 4 }));
        assert_eq!(hourly_price(price(1, 2), "cluster", &c), Some(Ok(Decimal::from(18))));
        assert_eq!(hourly_price(OwnedPrice::default(), "cluster", &c), Some(Ok(Decimal::ZERO)), "0 unless set");
        assert_eq!(hourly_price(price(1, 2), "job", &c), None);
    }

    #[test]
    fn a_request_known_at_apply_costs_the_most_it_can_take_or_is_unknown() {
        let mut later = v(serde_json::json!({ "nodes": 3, "accelerators": ["A100:8", "A100:4"] }));
        if let Value::Map(m) = &mut later {
            m.insert("gpus_per_node".into(), Value::Unknown);
        }
        assert_eq!(hourly_price(price(1, 2), "cluster", &later), Some(Ok(Decimal::from(51))), "3 × (1 + 2 × 8)");
        if let Value::Map(m) = &mut later {
            m.insert("accelerators".into(), Value::Unknown);
        }
        let e = hourly_price(price(1, 2), "cluster", &later).unwrap().unwrap_err();
        assert!(e.contains("GPUs are chosen at apply"), "{e}");
        assert_eq!(hourly_price(price(1, 0), "cluster", &later), Some(Ok(Decimal::from(3))), "GPUs free of charge");
    }
}
