//! What instances launch into and with: the default image and subnet (resolved at plan time),
//! and the security group and key pair kiln creates when the block names none. Everything kiln
//! creates carries `kiln:address` and `kiln:token`, which is how delete and recover know it is
//! kiln's to remove.

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, KeyType, LocationType, ResourceType, Tag, TagSpecification, UserIdGroupPair,
};
use aws_sdk_ec2::Client;

use crate::error::AwsError;
use crate::util::{TAG_ADDRESS, TAG_TOKEN};

/// Name pattern of the default image: Amazon Linux 2023, standard (not minimal), x86_64.
pub const DEFAULT_IMAGE_NAME: &str = "al2023-ami-2023.*-x86_64";

pub fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder().name(name).set_values(Some(values.iter().map(|v| v.to_string()).collect())).build()
}

pub fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// kiln's tags plus the user's, for one resource type.
pub fn tag_spec(kind: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder().resource_type(kind).set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect())).build()
}

/// The newest Amazon-owned image matching [`DEFAULT_IMAGE_NAME`] (ties: the greatest name).
pub async fn default_image(ec2: &Client) -> Result<Option<String>, AwsError> {
    let out = ec2
        .describe_images()
        .owners("amazon")
        .filters(filter("name", &[DEFAULT_IMAGE_NAME]))
        .filters(filter("architecture", &["x86_64"]))
        .filters(filter("state", &["available"]))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let best = out.images().iter().filter(|i| i.image_id().is_some()).max_by(|a, b| {
        (a.creation_date().unwrap_or_default(), a.name().unwrap_or_default())
            .cmp(&(b.creation_date().unwrap_or_default(), b.name().unwrap_or_default()))
    });
    Ok(best.and_then(|i| i.image_id()).map(str::to_string))
}

/// The root device name of an image (where `disk_gb` applies).
pub async fn root_device(ec2: &Client, image: &str) -> Result<String, AwsError> {
    let out = ec2.describe_images().image_ids(image).send().await.map_err(AwsError::from_sdk)?;
    Ok(out.images().first().and_then(|i| i.root_device_name()).unwrap_or("/dev/xvda").to_string())
}

/// Zones offering the instance type.
async fn zones_offering(ec2: &Client, instance_type: &str) -> Result<Vec<String>, AwsError> {
    let out = ec2
        .describe_instance_type_offerings()
        .location_type(LocationType::AvailabilityZone)
        .filters(filter("instance-type", &[instance_type]))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(out.instance_type_offerings().iter().filter_map(|o| o.location().map(str::to_string)).collect())
}

/// The default subnets (of the default VPC) in zones offering the type, by zone name:
/// `(subnet, zone)` pairs.
pub async fn default_subnets(ec2: &Client, instance_type: &str) -> Result<Vec<(String, String)>, AwsError> {
    let zones = zones_offering(ec2, instance_type).await?;
    let out = ec2.describe_subnets().filters(filter("default-for-az", &["true"])).send().await.map_err(AwsError::from_sdk)?;
    let mut subnets: Vec<(String, String)> = out
        .subnets()
        .iter()
        .filter_map(|s| Some((s.subnet_id()?.to_string(), s.availability_zone()?.to_string())))
        .filter(|(_, z)| zones.is_empty() || zones.contains(z))
        .collect();
    subnets.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(subnets)
}

/// The default subnet in the first zone, by name, offering the type.
pub async fn default_subnet(ec2: &Client, instance_type: &str) -> Result<Option<(String, String)>, AwsError> {
    Ok(default_subnets(ec2, instance_type).await?.into_iter().next())
}

/// `(vpc, zone)` of a subnet.
pub async fn subnet_info(ec2: &Client, subnet: &str) -> Result<(String, String), AwsError> {
    let out = ec2.describe_subnets().subnet_ids(subnet).send().await.map_err(AwsError::from_sdk)?;
    let s = out
        .subnets()
        .first()
        .ok_or_else(|| AwsError { code: Some("InvalidSubnetID.NotFound".into()), message: format!("no subnet {subnet}") })?;
    Ok((s.vpc_id().unwrap_or_default().to_string(), s.availability_zone().unwrap_or_default().to_string()))
}

/// A security group letting all traffic in between its members, and SSH from `ssh_cidr` when
/// one is given (none by default).
pub async fn create_security_group(
    ec2: &Client,
    name: &str,
    vpc: &str,
    ssh_cidr: Option<&str>,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    let out = ec2
        .create_security_group()
        .group_name(name)
        .description(if ssh_cidr.is_some() {
            "kiln cluster: SSH in, all traffic between nodes"
        } else {
            "kiln cluster: all traffic between nodes"
        })
        .vpc_id(vpc)
        .tag_specifications(tag_spec(ResourceType::SecurityGroup, tags))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let id = out.group_id().unwrap_or_default().to_string();
    let ssh = ssh_cidr.map(|cidr| {
        let p = IpPermission::builder().ip_protocol("tcp").from_port(22).to_port(22);
        if cidr.contains(':') {
            p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).build()).build()
        } else {
            p.ip_ranges(IpRange::builder().cidr_ip(cidr).build()).build()
        }
    });
    let peers = IpPermission::builder().ip_protocol("-1").user_id_group_pairs(UserIdGroupPair::builder().group_id(&id).build()).build();
    ec2.authorize_security_group_ingress()
        .group_id(&id)
        .set_ip_permissions(Some(ssh.into_iter().chain([peers]).collect()))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(id)
}

/// A new ed25519 key pair: its private key.
pub async fn create_key_pair(ec2: &Client, name: &str, tags: &[(String, String)]) -> Result<String, AwsError> {
    let out = ec2
        .create_key_pair()
        .key_name(name)
        .key_type(KeyType::Ed25519)
        .tag_specifications(tag_spec(ResourceType::KeyPair, tags))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(out.key_material().unwrap_or_default().to_string())
}

fn tagged(tags: &[aws_sdk_ec2::types::Tag], key: &str, value: &str) -> bool {
    tags.iter().any(|t| t.key() == Some(key) && t.value() == Some(value))
}

/// Deletes those of the groups that kiln created for `address` (by their tags).
pub async fn delete_own_security_groups(ec2: &Client, address: &str, ids: &[String]) -> Result<(), AwsError> {
    if ids.is_empty() {
        return Ok(());
    }
    let out = ec2.describe_security_groups().filters(filter("group-id", &ids.iter().map(String::as_str).collect::<Vec<_>>())).send().await;
    let out = out.map_err(AwsError::from_sdk)?;
    for g in out.security_groups().iter().filter(|g| tagged(g.tags(), TAG_ADDRESS, address)) {
        ec2.delete_security_group().group_id(g.group_id().unwrap_or_default()).send().await.map_err(AwsError::from_sdk)?;
    }
    Ok(())
}

/// Deletes the key pair if kiln created it for `address`.
pub async fn delete_own_key_pair(ec2: &Client, address: &str, name: &str) -> Result<(), AwsError> {
    let out = ec2.describe_key_pairs().filters(filter("key-name", &[name])).send().await.map_err(AwsError::from_sdk)?;
    if out.key_pairs().iter().any(|k| tagged(k.tags(), TAG_ADDRESS, address)) {
        ec2.delete_key_pair().key_name(name).send().await.map_err(AwsError::from_sdk)?;
    }
    Ok(())
}

/// Deletes the security groups and key pairs a create with `token` made (an interrupted create
/// that launched nothing leaves only these).
pub async fn delete_by_token(ec2: &Client, token: &str) -> Result<usize, AwsError> {
    let by_token = filter(&format!("tag:{TAG_TOKEN}"), &[token]);
    let groups = ec2.describe_security_groups().filters(by_token.clone()).send().await.map_err(AwsError::from_sdk)?;
    let keys = ec2.describe_key_pairs().filters(by_token).send().await.map_err(AwsError::from_sdk)?;
    for g in groups.security_groups() {
        ec2.delete_security_group().group_id(g.group_id().unwrap_or_default()).send().await.map_err(AwsError::from_sdk)?;
    }
    for k in keys.key_pairs() {
        ec2.delete_key_pair().key_name(k.key_name().unwrap_or_default()).send().await.map_err(AwsError::from_sdk)?;
    }
    Ok(groups.security_groups().len() + keys.key_pairs().len())
}
