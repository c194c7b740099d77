//! The explicit network kinds: conformance, objects checked through the EC2 API, in-place changes
//! of tags, rules and subnet settings, import by ID, and a cluster launched into them.

use kiln_provider::conformance::{self, Case};
use kiln_provider::{ImportRequest, Provider};
use serde_json::json as j;

use crate::common::moto::exclusive;
use crate::common::*;

#[tokio::test]
async fn conformance_suite() {
    let _g = exclusive().await;
    let p = provider().await;
    let vpc = create(&p, "aws_vpc.base", &config(&p, "aws_vpc", j!({ "cidr_block": "10.9.0.0/16" }))).await;
    let vpc_id = str_of(&vpc, "id").to_string();
    let cases = [
        Case {
            kind: "aws_vpc",
            config: json(j!({ "cidr_block": "10.1.0.0/16" })),
            update: Some(json(j!({ "cidr_block": "10.1.0.0/16", "tags": { "team": "ml" } }))),
            import_id: None,
        },
        Case {
            kind: "aws_subnet",
            config: json(j!({ "vpc_id": vpc_id, "cidr_block": "10.9.1.0/24" })),
            update: Some(json(j!({ "vpc_id": vpc_id, "cidr_block": "10.9.1.0/24", "map_public_ip_on_launch": true }))),
            import_id: None,
        },
        Case {
            kind: "aws_security_group",
            config: json(
                j!({ "vpc_id": vpc_id, "ingress": [{ "protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["10.0.0.0/8"] }] }),
            ),
            update: Some(json(j!({ "vpc_id": vpc_id, "ingress": [
                { "protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": [], "self": true },
                { "protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["192.168.0.0/16"], "self": false },
            ] }))),
            import_id: None,
        },
        Case { kind: "aws_key_pair", config: json(j!({})), update: Some(json(j!({ "tags": { "owner": "me" } }))), import_id: None },
    ];
    conformance::run(&p, &cases).await;
    assert!(!delete(&p, "aws_vpc.base", &vpc).await.has_errors());
}

#[tokio::test]
async fn a_cluster_launches_into_explicit_network_objects() {
    let _g = exclusive().await;
    let p = provider().await;
    let vpc = create(&p, "aws_vpc.main", &config(&p, "aws_vpc", j!({ "cidr_block": "10.2.0.0/16", "tags": { "team": "ml" } }))).await;
    let vpc_id = str_of(&vpc, "id").to_string();
    let subnet = create(
        &p,
        "aws_subnet.a",
        &config(&p, "aws_subnet", j!({ "vpc_id": vpc_id, "cidr_block": "10.2.1.0/24", "availability_zone": "us-east-1b" })),
    )
    .await;
    let sg_cfg = config(
        &p,
        "aws_security_group",
        j!({ "vpc_id": vpc_id, "ingress": [
        { "protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["10.0.0.0/8"] },
        { "protocol": "all", "self": true },
        { "protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["1.2.3.4/32"] },
    ] }),
    );
    // The plan shows the rules the way EC2 keeps them: merged per port range, sorted.
    let planned_sg = planned(&p, "aws_security_group.nodes", &sg_cfg, None).await;
    let canonical = j!([
        { "protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": [], "self": true },
        { "protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["1.2.3.4/32", "10.0.0.0/8"], "self": false },
    ]);
    assert_eq!(planned_sg.get("ingress").unwrap().to_json(), canonical);
    let sg = create(&p, "aws_security_group.nodes", &sg_cfg).await;
    let key = create(&p, "aws_key_pair.me", &config(&p, "aws_key_pair", j!({}))).await;
    assert!(str_of(&key, "private_key").contains("PRIVATE KEY"), "a generated key's private half is kept");

    // Through the EC2 API.
    let ec2 = aws().await.ec2;
    let g = ec2.describe_security_groups().group_ids(str_of(&sg, "id")).send().await.unwrap();
    let g = &g.security_groups()[0];
    assert_eq!(g.vpc_id(), Some(vpc_id.as_str()));
    assert!(g.tags().iter().any(|t| t.key() == Some("kiln:address") && t.value() == Some("aws_security_group.nodes")));
    let s = ec2.describe_subnets().subnet_ids(str_of(&subnet, "id")).send().await.unwrap();
    assert_eq!(s.subnets()[0].availability_zone(), Some("us-east-1b"));

    // A refresh sees what was planned: no drift.
    for (addr, st) in [("aws_vpc.main", &vpc), ("aws_subnet.a", &subnet), ("aws_security_group.nodes", &sg), ("aws_key_pair.me", &key)] {
        let now = read(&p, addr, st).await.expect("exists");
        assert_eq!(changed(st, &now), Vec::<String>::new(), "{addr}: {st} vs {now}");
    }

    let cluster = create(
        &p,
        "cluster.train",
        &config(
            &p,
            "cluster",
            j!({
                "instance_type": "t3.micro", "nodes": 2, "subnet_id": str_of(&subnet, "id"),
                "security_group_ids": [str_of(&sg, "id")], "key_name": str_of(&key, "key_name"),
            }),
        ),
    )
    .await;
    let out = ec2.describe_instances().set_instance_ids(Some(strs(&cluster, "instance_ids"))).send().await.unwrap();
    for i in out.reservations().iter().flat_map(|r| r.instances()) {
        assert_eq!(i.subnet_id(), Some(str_of(&subnet, "id")));
        assert_eq!(i.key_name(), Some(str_of(&key, "key_name")));
        assert!(i.security_groups().iter().any(|g| g.group_id() == Some(str_of(&sg, "id"))));
    }

    // Rules and tags change in place.
    let sg2_cfg = config(
        &p,
        "aws_security_group",
        j!({ "vpc_id": vpc_id, "tags": { "tier": "train" }, "ingress": [
        { "protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["10.0.0.0/8"] },
        { "protocol": "tcp", "from_port": 29500, "to_port": 29510, "cidr_blocks": ["10.2.0.0/16"] },
    ] }),
    );
    let r = plan(&p, "aws_security_group.nodes", &sg2_cfg, Some(&sg)).await;
    assert!(r.requires_replace.is_empty());
    let sg2 = update(&p, "aws_security_group.nodes", &sg, &sg2_cfg).await;
    let g = ec2.describe_security_groups().group_ids(str_of(&sg, "id")).send().await.unwrap();
    let perms = g.security_groups()[0].ip_permissions();
    let ports: Vec<(Option<i32>, Vec<&str>)> =
        perms.iter().map(|p| (p.from_port(), p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect())).collect();
    assert!(ports.contains(&(Some(22), vec!["10.0.0.0/8"])), "{ports:?}");
    assert!(ports.contains(&(Some(29500), vec!["10.2.0.0/16"])), "{ports:?}");
    assert_eq!(ports.len(), 2, "the self rule and 1.2.3.4/32 were revoked: {ports:?}");
    assert_eq!(str_of(sg2.get("tags").unwrap(), "tier"), "train");

    // Import by ID gives the same attributes.
    let imported = p.import(ImportRequest { address: "aws_vpc.again", kind: "aws_vpc", id: &vpc_id }).await;
    let imported = imported.state.expect("imported");
    assert_eq!(str_of(&imported, "cidr_block"), "10.2.0.0/16");
    assert_eq!(imported.get("tags").unwrap().to_json(), j!({ "team": "ml" }));
    let bad = p.import(ImportRequest { address: "aws_vpc.again", kind: "aws_vpc", id: "sg-123" }).await;
    assert!(bad.diagnostics.iter().any(|d| d.hint.as_deref().is_some_and(|h| h.contains("vpc-"))), "{:?}", bad.diagnostics);

    assert!(!delete(&p, "cluster.train", &cluster).await.has_errors());
    for (addr, st) in [("aws_key_pair.me", &key), ("aws_security_group.nodes", &sg2), ("aws_subnet.a", &subnet), ("aws_vpc.main", &vpc)] {
        let d = delete(&p, addr, st).await;
        assert!(!d.has_errors(), "{addr}: {d:?}");
        assert!(read(&p, addr, st).await.is_none(), "{addr} still exists");
    }
}
