//! The request grammar on `cluster` and `spot_pool` (accelerator names from the one table,
//! alternatives in order), and states written before it, which plan no change.

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

#[tokio::test]
async fn accelerator_names_come_from_the_one_table() {
    let _g = exclusive().await;
    let p = provider().await;
    let candidates = |v: serde_json::Value| {
        let p = &p;
        async move { strs(&planned(p, "cluster.c", &config(p, "cluster", j!({ "accelerators": v })), None).await, "instance_type_candidates") }
    };
    assert_eq!(candidates(j!("A100:8")).await, ["p4d.24xlarge"], "A100 is the 40 GB part");
    assert_eq!(candidates(j!("a100-80gb:8")).await, ["p4de.24xlarge"]);
    assert_eq!(candidates(j!(["H100:8", "A100-80GB:8"])).await, ["p5.48xlarge", "p4de.24xlarge"], "alternatives in order");
    assert_eq!(candidates(j!("A10:1")).await[0], "g5.xlarge", "A10 matches A10G");

    // A state written before, whose request changes to the name its type has now, keeps it.
    let (address, _, state) = written_before().remove(0);
    let prior = json(state);
    let cfg = config(&p, "cluster", j!({ "accelerators": "A100-80GB:8" }));
    let r = plan(&p, address, &cfg, Some(&prior)).await;
    assert_eq!(changed(&prior, &r.planned), ["accelerators"], "planned {}", r.planned);
}

#[tokio::test]
async fn malformed_requests_name_their_attribute_and_suggest() {
    let p = provider().await;
    for (kind, base) in [("cluster", j!({})), ("spot_pool", j!({ "capacity": 1 }))] {
        for (bad, hint) in
            [("H100x8", "did you mean \"H100:8\"?"), ("8xH100", "did you mean \"H100:8\"?"), ("H1000:8", "did you mean \"H100:8\"?")]
        {
            let mut cfg = base.clone();
            cfg["accelerators"] = j!(bad);
            let d = kiln_provider::Provider::validate(&p, kiln_provider::ValidateRequest { kind, config: &config(&p, kind, cfg) });
            let e = d.errors().next().unwrap_or_else(|| panic!("{kind}: {bad} accepted"));
            assert_eq!((e.attribute.as_deref(), e.hint.as_deref()), (Some("accelerators"), Some(hint)), "{kind} {bad}: {}", e.summary);
        }
    }
}
