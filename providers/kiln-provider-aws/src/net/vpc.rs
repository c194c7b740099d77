//! `aws_vpc`: a VPC with a CIDR block.

use aws_sdk_ec2::types::{Filter, ResourceType};
use aws_sdk_ec2::Client;
use kiln_provider::async_trait;
use kiln_value::{Map, Value};

use super::{sdk_tags, NetKind, Object};
use crate::cluster::network::tag_spec;
use crate::error::AwsError;
use crate::util::str_attr;
use crate::{Ctx, KindSchema};

pub(crate) struct Vpc;

#[async_trait]
impl NetKind for Vpc {
    const NAME: &'static str = "aws_vpc";
    fn schema() -> KindSchema {
        KindSchema::new("A VPC", crate::schema::vpc())
    }
    const ID_PREFIX: &'static str = "vpc-";
    const ID_FILTER: &'static str = "vpc-id";

    async fn describe(ec2: &Client, filters: Vec<Filter>) -> Result<Vec<Object>, AwsError> {
        let out = ec2.describe_vpcs().set_filters(Some(filters)).send().await.map_err(AwsError::from_sdk)?;
        Ok(out
            .vpcs()
            .iter()
            .map(|v| Object {
                id: v.vpc_id().unwrap_or_default().to_string(),
                tags: sdk_tags(v.tags()),
                attrs: Map::from_iter([
                    ("cidr_block".to_string(), Value::from(v.cidr_block().unwrap_or_default())),
                    ("is_default".to_string(), Value::Bool(v.is_default().unwrap_or(false))),
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
        let cidr = str_attr(planned, "cidr_block").unwrap_or_default();
        let out = ctx
            .clients
            .ec2
            .create_vpc()
            .cidr_block(cidr)
            .tag_specifications(tag_spec(ResourceType::Vpc, tags))
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        Ok((out.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_string(), Map::new()))
    }

    async fn delete(ec2: &Client, id: &str) -> Result<(), AwsError> {
        ec2.delete_vpc().vpc_id(id).send().await.map(|_| ()).map_err(AwsError::from_sdk)
    }
}
