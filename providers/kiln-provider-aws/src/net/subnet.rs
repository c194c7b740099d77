//! `aws_subnet`: a subnet of a VPC in one zone; whether it gives instances public IPs changes in
//! place.

use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, ResourceType};
use aws_sdk_ec2::Client;
use kiln_provider::async_trait;
use kiln_value::{Map, Value};

use super::{sdk_tags, NetKind, Object};
use crate::cluster::network::tag_spec;
use crate::error::AwsError;
use crate::util::{bool_attr, str_attr};
use crate::{Ctx, KindSchema};

pub(crate) struct Subnet;

#[async_trait]
impl NetKind for Subnet {
    const NAME: &'static str = "aws_subnet";
    fn schema() -> KindSchema {
        KindSchema::new("A subnet of a VPC, in one availability zone", crate::schema::subnet())
    }
    const ID_PREFIX: &'static str = "subnet-";
    const ID_FILTER: &'static str = "subnet-id";

    async fn describe(ec2: &Client, filters: Vec<Filter>) -> Result<Vec<Object>, AwsError> {
        let out = ec2.describe_subnets().set_filters(Some(filters)).send().await.map_err(AwsError::from_sdk)?;
        Ok(out
            .subnets()
            .iter()
            .map(|s| Object {
                id: s.subnet_id().unwrap_or_default().to_string(),
                tags: sdk_tags(s.tags()),
                attrs: Map::from_iter([
                    ("vpc_id".to_string(), Value::from(s.vpc_id().unwrap_or_default())),
                    ("cidr_block".to_string(), Value::from(s.cidr_block().unwrap_or_default())),
                    ("availability_zone".to_string(), Value::from(s.availability_zone().unwrap_or_default())),
                    ("map_public_ip_on_launch".to_string(), Value::Bool(s.map_public_ip_on_launch().unwrap_or(false))),
                ]),
            })
            .collect())
    }

    async fn create(
        ctx: &Ctx,
        _address: &str,
        _token: &str,
        planned: &Value,
        tags: &[(String, String)],
    ) -> Result<(String, Map), AwsError> {
        let ec2 = &ctx.clients.ec2;
        let out = ec2
            .create_subnet()
            .vpc_id(str_attr(planned, "vpc_id").unwrap_or_default())
            .cidr_block(str_attr(planned, "cidr_block").unwrap_or_default())
            .set_availability_zone(str_attr(planned, "availability_zone").map(str::to_string))
            .tag_specifications(tag_spec(ResourceType::Subnet, tags))
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        let id = out.subnet().and_then(|s| s.subnet_id()).unwrap_or_default().to_string();
        if bool_attr(planned, "map_public_ip_on_launch") == Some(true) {
            set_public_ip(ec2, &id, true).await?;
        }
        Ok((id, Map::new()))
    }

    async fn update(ec2: &Client, id: &str, prior: &Value, planned: &Value) -> Result<(), AwsError> {
        let want = bool_attr(planned, "map_public_ip_on_launch").unwrap_or(false);
        if bool_attr(prior, "map_public_ip_on_launch").unwrap_or(false) != want {
            set_public_ip(ec2, id, want).await?;
        }
        Ok(())
    }

    async fn delete(ec2: &Client, id: &str) -> Result<(), AwsError> {
        ec2.delete_subnet().subnet_id(id).send().await.map(|_| ()).map_err(AwsError::from_sdk)
    }
}

async fn set_public_ip(ec2: &Client, id: &str, on: bool) -> Result<(), AwsError> {
    ec2.modify_subnet_attribute()
        .subnet_id(id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .map(|_| ())
        .map_err(AwsError::from_sdk)
}
