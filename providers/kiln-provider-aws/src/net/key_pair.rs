//! `aws_key_pair`: an EC2 key pair, imported from `public_key` or generated (ed25519), in which
//! case its private key is kept in state as a sensitive attribute (AWS shows it only once).

use aws_sdk_ec2::types::{Filter, KeyType, ResourceType};
use aws_sdk_ec2::Client;
use kiln_provider::async_trait;
use kiln_value::{Map, Value};

use super::{sdk_tags, NetKind, Object};
use crate::cluster::network::tag_spec;
use crate::error::AwsError;
use crate::util::{made_up_name, str_attr};
use crate::{Ctx, KindSchema};

pub(crate) struct KeyPair;

#[async_trait]
impl NetKind for KeyPair {
    const NAME: &'static str = "aws_key_pair";
    fn schema() -> KindSchema {
        KindSchema::new("An EC2 key pair, imported or generated", crate::schema::key_pair())
    }
    const ID_PREFIX: &'static str = "key-";
    const ID_FILTER: &'static str = "key-pair-id";
    const KEPT: &'static [&'static str] = &["private_key", "public_key"];

    async fn describe(ec2: &Client, filters: Vec<Filter>) -> Result<Vec<Object>, AwsError> {
        let out = ec2.describe_key_pairs().set_filters(Some(filters)).send().await.map_err(AwsError::from_sdk)?;
        Ok(out
            .key_pairs()
            .iter()
            .map(|k| Object {
                id: k.key_pair_id().unwrap_or_default().to_string(),
                tags: sdk_tags(k.tags()),
                attrs: Map::from_iter([
                    ("key_name".to_string(), Value::from(k.key_name().unwrap_or_default())),
                    ("fingerprint".to_string(), Value::from(k.key_fingerprint().unwrap_or_default())),
                ]),
            })
            .collect())
    }

    async fn create(ctx: &Ctx, address: &str, token: &str, planned: &Value, tags: &[(String, String)]) -> Result<(String, Map), AwsError> {
        let ec2 = &ctx.clients.ec2;
        let name = str_attr(planned, "key_name").map_or_else(|| made_up_name(address, "aws_key_pair", token, 255), str::to_string);
        let spec = tag_spec(ResourceType::KeyPair, tags);
        match str_attr(planned, "public_key").filter(|k| !k.is_empty()) {
            Some(public) => {
                let material = aws_sdk_ec2::primitives::Blob::new(public.as_bytes());
                let out = ec2.import_key_pair().key_name(&name).public_key_material(material).tag_specifications(spec).send().await;
                let out = out.map_err(AwsError::from_sdk)?;
                Ok((out.key_pair_id().unwrap_or_default().to_string(), Map::from_iter([("private_key".to_string(), Value::from(""))])))
            }
            None => {
                let out = ec2.create_key_pair().key_name(&name).key_type(KeyType::Ed25519).tag_specifications(spec).send().await;
                let out = out.map_err(AwsError::from_sdk)?;
                let private = Value::from(out.key_material().unwrap_or_default());
                Ok((out.key_pair_id().unwrap_or_default().to_string(), Map::from_iter([("private_key".to_string(), private)])))
            }
        }
    }

    /// By name as well as ID: not every EC2 implementation deletes by ID alone.
    async fn delete(ec2: &Client, id: &str) -> Result<(), AwsError> {
        for k in Self::describe(ec2, vec![crate::cluster::network::filter(Self::ID_FILTER, &[id])]).await? {
            let name = k.attrs.get("key_name").and_then(Value::as_str).unwrap_or_default().to_string();
            ec2.delete_key_pair().key_name(name).key_pair_id(id).send().await.map_err(AwsError::from_sdk)?;
        }
        Ok(())
    }
}
