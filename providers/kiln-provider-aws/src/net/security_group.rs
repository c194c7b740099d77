//! `aws_security_group`: a security group with `ingress` rules, changed in place (rules removed
//! are revoked, rules added authorised). Rules are kept in one form: one per protocol and port
//! range, CIDR blocks sorted, sorted by protocol and ports, as DescribeSecurityGroups groups them.
//! Egress stays AWS's default (everything out).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, ResourceType, UserIdGroupPair};
use aws_sdk_ec2::Client;
use kiln_provider::async_trait;
use kiln_value::{Map, Value};

use super::{sdk_tags, NetKind, Object};
use crate::cluster::network::{filter, tag_spec};
use crate::error::AwsError;
use crate::util::{bool_attr, made_up_name, set, str_attr, str_list, u64_attr};
use crate::{Ctx, KindSchema};

pub(crate) struct SecurityGroup;

/// `(protocol, from, to)` → (CIDR blocks, self).
type Rules = BTreeMap<(String, i64, i64), (Vec<String>, bool)>;

fn rules_of(v: &Value) -> Rules {
    let mut out = Rules::new();
    for r in set(v, "ingress").and_then(Value::as_list).unwrap_or_default() {
        let protocol = str_attr(r, "protocol").unwrap_or("tcp").to_ascii_lowercase();
        let protocol = if protocol == "all" { "-1".to_string() } else { protocol };
        let port = |k: &str| if protocol == "-1" { 0 } else { u64_attr(r, k).map_or(0, |n| n as i64) };
        let e = out.entry((protocol.clone(), port("from_port"), port("to_port"))).or_default();
        e.0.extend(str_list(r, "cidr_blocks"));
        e.1 |= bool_attr(r, "self").unwrap_or(false);
    }
    for e in out.values_mut() {
        e.0.sort();
        e.0.dedup();
    }
    out
}

fn rules_value(rules: &Rules) -> Value {
    Value::List(
        rules
            .iter()
            .map(|((protocol, from, to), (cidrs, own))| {
                Value::Map(Map::from_iter([
                    ("protocol".to_string(), Value::from(protocol.as_str())),
                    ("from_port".to_string(), Value::from(*from)),
                    ("to_port".to_string(), Value::from(*to)),
                    ("cidr_blocks".to_string(), Value::List(cidrs.iter().map(|c| Value::from(c.as_str())).collect())),
                    ("self".to_string(), Value::Bool(*own)),
                ]))
            })
            .collect(),
    )
}

fn permissions(rules: &Rules, group: &str) -> Vec<IpPermission> {
    rules
        .iter()
        .map(|((protocol, from, to), (cidrs, own))| {
            let mut p = IpPermission::builder().ip_protocol(protocol);
            if protocol != "-1" {
                p = p.from_port(*from as i32).to_port(*to as i32);
            }
            for c in cidrs {
                p = p.ip_ranges(IpRange::builder().cidr_ip(c).build());
            }
            if *own {
                p = p.user_id_group_pairs(UserIdGroupPair::builder().group_id(group).build());
            }
            p.build()
        })
        .collect()
}

/// Rules of `a` not in `b`, rule by rule (a CIDR block or `self` at a time).
fn minus(a: &Rules, b: &Rules) -> Rules {
    let mut out = Rules::new();
    for (k, (cidrs, own)) in a {
        let (bc, bo) = b.get(k).cloned().unwrap_or_default();
        let left: Vec<String> = cidrs.iter().filter(|c| !bc.contains(c)).cloned().collect();
        let own = *own && !bo;
        if !left.is_empty() || own {
            out.insert(k.clone(), (left, own));
        }
    }
    out
}

async fn default_vpc(ec2: &Client) -> Result<String, AwsError> {
    let out = ec2.describe_vpcs().filters(filter("is-default", &["true"])).send().await.map_err(AwsError::from_sdk)?;
    out.vpcs().first().and_then(|v| v.vpc_id()).map(str::to_string).ok_or_else(|| AwsError {
        code: Some("NoDefaultVpc".into()),
        message: "the region has no default VPC: set `vpc_id` (such as aws_vpc.main.id)".into(),
    })
}

#[async_trait]
impl NetKind for SecurityGroup {
    const NAME: &'static str = "aws_security_group";
    fn schema() -> KindSchema {
        KindSchema::new("A security group and its ingress rules", crate::schema::security_group())
    }
    const ID_PREFIX: &'static str = "sg-";
    const ID_FILTER: &'static str = "group-id";

    async fn describe(ec2: &Client, filters: Vec<Filter>) -> Result<Vec<Object>, AwsError> {
        let out = ec2.describe_security_groups().set_filters(Some(filters)).send().await.map_err(AwsError::from_sdk)?;
        Ok(out
            .security_groups()
            .iter()
            .map(|g| {
                let id = g.group_id().unwrap_or_default().to_string();
                let mut rules = Rules::new();
                for p in g.ip_permissions() {
                    let protocol = p.ip_protocol().unwrap_or("-1").to_string();
                    let port = |n: Option<i32>| if protocol == "-1" { 0 } else { i64::from(n.unwrap_or(0)) };
                    let e = rules.entry((protocol.clone(), port(p.from_port()), port(p.to_port()))).or_default();
                    e.0.extend(p.ip_ranges().iter().filter_map(|r| r.cidr_ip().map(str::to_string)));
                    e.1 |= p.user_id_group_pairs().iter().any(|u| u.group_id() == Some(id.as_str()));
                }
                for e in rules.values_mut() {
                    e.0.sort();
                    e.0.dedup();
                }
                Object {
                    tags: sdk_tags(g.tags()),
                    attrs: Map::from_iter([
                        ("name".to_string(), Value::from(g.group_name().unwrap_or_default())),
                        ("description".to_string(), Value::from(g.description().unwrap_or_default())),
                        ("vpc_id".to_string(), Value::from(g.vpc_id().unwrap_or_default())),
                        ("ingress".to_string(), rules_value(&rules)),
                    ]),
                    id,
                }
            })
            .collect())
    }

    async fn create(ctx: &Ctx, address: &str, token: &str, planned: &Value, tags: &[(String, String)]) -> Result<(String, Map), AwsError> {
        let ec2 = &ctx.clients.ec2;
        let vpc = match str_attr(planned, "vpc_id") {
            Some(v) => v.to_string(),
            None => default_vpc(ec2).await?,
        };
        let name = str_attr(planned, "name").map_or_else(|| made_up_name(address, "aws_security_group", token, 255), str::to_string);
        let out = ec2
            .create_security_group()
            .group_name(name)
            .description(str_attr(planned, "description").unwrap_or("Managed by kiln"))
            .vpc_id(vpc)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, tags))
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        let id = out.group_id().unwrap_or_default().to_string();
        let rules = rules_of(planned);
        if !rules.is_empty() {
            let r = ec2.authorize_security_group_ingress().group_id(&id).set_ip_permissions(Some(permissions(&rules, &id))).send().await;
            if let Err(e) = r {
                let _ = ec2.delete_security_group().group_id(&id).send().await;
                return Err(AwsError::from_sdk(e));
            }
        }
        Ok((id, Map::new()))
    }

    async fn update(ec2: &Client, id: &str, prior: &Value, planned: &Value) -> Result<(), AwsError> {
        let (old, new) = (rules_of(prior), rules_of(planned));
        let (revoke, add) = (minus(&old, &new), minus(&new, &old));
        if !revoke.is_empty() {
            let r = ec2.revoke_security_group_ingress().group_id(id).set_ip_permissions(Some(permissions(&revoke, id))).send().await;
            r.map_err(AwsError::from_sdk)?;
        }
        if !add.is_empty() {
            let r = ec2.authorize_security_group_ingress().group_id(id).set_ip_permissions(Some(permissions(&add, id))).send().await;
            r.map_err(AwsError::from_sdk)?;
        }
        Ok(())
    }

    async fn delete(ec2: &Client, id: &str) -> Result<(), AwsError> {
        ec2.delete_security_group().group_id(id).send().await.map(|_| ()).map_err(AwsError::from_sdk)
    }

    fn normalize(planned: &mut Map) {
        if planned.get("ingress").is_some_and(|i| !i.contains_unknown()) {
            let rules = rules_of(&Value::Map(planned.clone()));
            planned.insert("ingress".into(), rules_value(&rules));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: &str, from: i64, to: i64, cidrs: &[&str], own: bool) -> Value {
        Value::Map(Map::from_iter([
            ("protocol".to_string(), Value::from(protocol)),
            ("from_port".to_string(), Value::from(from)),
            ("to_port".to_string(), Value::from(to)),
            ("cidr_blocks".to_string(), Value::List(cidrs.iter().map(|c| Value::from(*c)).collect())),
            ("self".to_string(), Value::Bool(own)),
        ]))
    }

    fn group(rules: Vec<Value>) -> Value {
        Value::Map(Map::from_iter([("ingress".to_string(), Value::List(rules))]))
    }

    #[test]
    fn rules_are_merged_per_port_range_and_sorted() {
        let g = group(vec![
            rule("TCP", 22, 22, &["10.0.0.0/8"], false),
            rule("all", 5, 9, &[], true),
            rule("tcp", 22, 22, &["1.2.3.4/32"], false),
        ]);
        let r = rules_of(&g);
        assert_eq!(r.len(), 2);
        assert_eq!(r[&("tcp".into(), 22, 22)], (vec!["1.2.3.4/32".to_string(), "10.0.0.0/8".to_string()], false));
        assert_eq!(r[&("-1".into(), 0, 0)], (vec![], true), "all protocols have no ports");
    }

    #[test]
    fn differences_are_per_block() {
        let old = rules_of(&group(vec![rule("tcp", 22, 22, &["a", "b"], true)]));
        let new = rules_of(&group(vec![rule("tcp", 22, 22, &["b", "c"], false)]));
        assert_eq!(minus(&old, &new)[&("tcp".into(), 22, 22)], (vec!["a".to_string()], true));
        assert_eq!(minus(&new, &old)[&("tcp".into(), 22, 22)], (vec!["c".to_string()], false));
    }
}
