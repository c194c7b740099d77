//! The request grammar on `cluster` and `spot_pool` (accelerator names from the one table,
//! alternatives in order), and states written before it, which plan no change.

use kiln_value::Value;
use serde_json::json as j;

use crate::common::moto::exclusive;
use crate::common::*;

const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n(a test key)\n-----END OPENSSH PRIVATE KEY-----\n";

/// States as kiln wrote them before the grammar was shared (captured from that code against
/// moto; the cluster's type is the one its capacity fallback took). "A100" then matched both
/// A100 parts; now it is the 40 GB part (p4d), and p4de is A100-80GB.
fn written_before() -> Vec<(&'static str, serde_json::Value, serde_json::Value)> {
    let common = j!({"disk_gb":null,"image":"ami-0d27e0fb3bac4d724","instance_profile":null,"ssh_cidr":"","ssh_private_key":KEY,
        "tags":null});
    let with = |extra: serde_json::Value| {
        let mut v = common.clone();
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    vec![
        (
            "cluster.a100",
            j!({ "accelerators": "A100:8" }),
            with(j!({"accelerators":"A100:8","cpus":null,"gpus_per_node":8,"instance_ids":["i-63842c4c180e8e93e"],
                "instance_type":"p4de.24xlarge","instance_type_candidates":["p4d.24xlarge","p4de.24xlarge"],"key_name":"kiln-a100-0198f750",
                "lost":[],"memory":null,"nodes":1,"private_ips":["172.31.0.4"],"public_ips":["54.214.173.9"],
                "security_group_ids":["sg-c0414fa539c750738"],"spot":false,"state":"running","subnet_id":"subnet-5d5b0dccc91da1610","zone":"us-east-1a"})),
        ),
        (
            "cluster.cpu",
            j!({ "cpus": "8", "memory": "32+" }),
            with(
                j!({"accelerators":null,"cpus":"8","gpus_per_node":0,"instance_ids":["i-f65f35b55db22c519"],"instance_type":"m5a.2xlarge",
                "instance_type_candidates":["m5a.2xlarge","m5n.2xlarge","m5zn.2xlarge","m6a.2xlarge","m6in.2xlarge"],
                "key_name":"kiln-cpu-0198f751","lost":[],"memory":"32+","nodes":1,"private_ips":["172.31.0.5"],"public_ips":["54.214.10.63"],
                "security_group_ids":["sg-dc557346833a56b1b"],"spot":false,"state":"running","subnet_id":"subnet-5d5b0dccc91da1610","zone":"us-east-1a"}),
            ),
        ),
        (
            "spot_pool.a100",
            j!({ "accelerators": "A100:8", "capacity": 1 }),
            with(j!({"accelerators":"A100:8","allocation_strategy":"price-capacity-optimized","capacity":1,"cpus":null,
                "fleet_id":"fleet-2e9c3de0-b74c-4df3-0646-dade4efe8f98","gpus_per_node":8,"instance_ids":["i-91f04504693029243"],
                "instance_types":["p4d.24xlarge","p4de.24xlarge"],"key_name":"kiln-a100-0198f752","launch_template_id":"lt-9f32a55aa6b6ab788",
                "max_price":null,"memory":null,"on_demand_base":0,"on_demand_fallback":false,"on_demand_instances":0,"on_demand_target":0,
                "security_group_ids":["sg-3f0516bd0e5aa47bf"],"spot_instances":1,"state":"active",
                "subnet_ids":["subnet-5d5b0dccc91da1610","subnet-d54be86c584bd927c","subnet-0101b559030cd6da6","subnet-a7851ccfb9ad97f54"],
                "token":"0198f752-test-token"})),
        ),
    ]
}

#[tokio::test]
async fn states_written_before_plan_no_change() {
    let _g = exclusive().await;
    let p = provider().await;
    for (address, cfg, state) in written_before() {
        let prior = json(state);
        let r = plan(&p, address, &config(&p, kind_of(address), cfg), Some(&prior)).await;
        assert!(!r.diagnostics.has_errors(), "{address}: {:?}", r.diagnostics);
        assert_eq!(changed(&prior, &r.planned), Vec::<String>::new(), "{address}: planned {}", r.planned);
        assert!(r.requires_replace.is_empty(), "{address}");
    }
}
