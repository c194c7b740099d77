//! The explicit network kinds, for users who want them in their configuration rather than made
//! by `cluster` and `spot_pool`: `aws_vpc`, `aws_subnet`, `aws_security_group`, `aws_key_pair`.
//!
//! They share one implementation ([`Net`]): each kind ([`NetKind`]) says how to describe, create,
//! change in place and delete its objects; the rest is common. Objects carry `kiln:address`,
//! `kiln:token` and the user's `tags` (changed in place with CreateTags/DeleteTags); refresh
//! describes every object of a kind with one call; an interrupted create is found again by its
//! token tag; `kiln import` takes the object's ID.

mod key_pair;
mod security_group;
mod subnet;
mod vpc;

use aws_sdk_ec2::Client;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, UpdateRequest,
};
use kiln_value::{Map, Value};

use crate::cluster::instances::AllInstances;
use crate::cluster::network::{filter, tag};
use crate::error::AwsError;
use crate::util::{attrs, read_error, str_attr, str_map, TAG_ADDRESS, TAG_TOKEN};
use crate::{Ctx, Kind, KindSchema, Outcome};

pub(crate) use key_pair::KeyPair;
pub(crate) use security_group::SecurityGroup;
pub(crate) use subnet::Subnet;
pub(crate) use vpc::Vpc;

/// One object as EC2 describes it: its ID, tags, and the kind's attributes.
pub(crate) struct Object {
    pub id: String,
    pub tags: Vec<(String, String)>,
    pub attrs: Map,
}

impl Object {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The user's tags: all but kiln's own and `Name`, unless the user set `Name`.
    fn user_tags(&self, prior_user: &[(String, String)]) -> Vec<(String, String)> {
        self.tags
            .iter()
            .filter(|(k, _)| !k.starts_with("kiln:") && (k != "Name" || prior_user.iter().any(|(p, _)| p == "Name")))
            .cloned()
            .collect()
    }
}

pub(crate) fn sdk_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Vec<(String, String)> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

/// What differs between the network kinds.
#[async_trait]
pub(crate) trait NetKind: Send + Sync {
    /// The kind's name, such as `aws_vpc`.
    const NAME: &'static str;
    /// The kind's schema.
    fn schema() -> KindSchema;
    /// The ID's prefix, for checking `kiln import` IDs (`vpc-`).
    const ID_PREFIX: &'static str;
    /// Objects matching the filters (an ID filter, or a tag filter).
    async fn describe(ec2: &Client, filters: Vec<aws_sdk_ec2::types::Filter>) -> Result<Vec<Object>, AwsError>;
    /// The EC2 filter selecting objects by ID.
    const ID_FILTER: &'static str;
    /// Creates the object with these tags; its ID and the attributes only create knows (a
    /// generated private key).
    async fn create(ctx: &Ctx, address: &str, token: &str, planned: &Value, tags: &[(String, String)]) -> Result<(String, Map), AwsError>;
    /// Applies in-place changes other than tags.
    async fn update(_ec2: &Client, _id: &str, _prior: &Value, _planned: &Value) -> Result<(), AwsError> {
        Ok(())
    }
    async fn delete(ec2: &Client, id: &str) -> Result<(), AwsError>;
    /// Attributes kept from state because AWS never shows them again (a private key).
    const KEPT: &'static [&'static str] = &[];
    /// Puts planned attributes in the form describe answers with, so that a refresh shows no
    /// change (security group rules merged and sorted).
    fn normalize(_planned: &mut Map) {}
}

/// The [`Kind`] of a [`NetKind`].
pub(crate) struct Net<K>(pub K);

fn state(planned: &Value, o: &Object, prior: Option<&Value>) -> Value {
    let prior_user = prior.or(Some(planned)).map(|p| str_map(p, "tags")).unwrap_or_default();
    let mut v = attrs(planned);
    for (k, x) in &o.attrs {
        v.insert(k.clone(), x.clone());
    }
    v.insert("id".into(), Value::from(o.id.as_str()));
    let user = o.user_tags(&prior_user);
    v.insert(
        "tags".into(),
        if user.is_empty() && planned.get("tags").is_none_or(Value::is_null) { Value::Null } else { tags_value(&user) },
    );
    Value::Map(v)
}

fn tags_value(tags: &[(String, String)]) -> Value {
    Value::Map(tags.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect())
}

fn describe_err<K: NetKind>(address: &str, e: AwsError) -> Diagnostic {
    e.diagnostic(address, &format!("describe the {}", K::NAME))
}

async fn describe_ids<K: NetKind>(ec2: &Client, ids: &[&str]) -> Result<Vec<Object>, AwsError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    K::describe(ec2, vec![filter(K::ID_FILTER, ids)]).await
}

#[async_trait]
impl<K: NetKind + 'static> Kind<Ctx, AllInstances> for Net<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn schema(&self) -> KindSchema {
        K::schema()
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        match str_map(config, "tags").iter().find(|(k, _)| k.starts_with("kiln:")) {
            Some((k, _)) => Diagnostic::error("E-AWS-TAGS", format!("tag `{k}`: tags starting with `kiln:` are kiln's own")).into(),
            None => Diagnostics::new(),
        }
    }

    async fn plan(&self, _ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        let mut planned = attrs(req.proposed);
        K::normalize(&mut planned);
        Ok(PlanResponse { planned: Value::Map(planned), requires_replace: Vec::new(), diagnostics: Diagnostics::new() })
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        let mut tags = vec![(TAG_ADDRESS.to_string(), req.address.to_string()), (TAG_TOKEN.to_string(), req.token.to_string())];
        let user = str_map(req.planned, "tags");
        if !user.iter().any(|(k, _)| k == "Name") {
            tags.push(("Name".into(), req.address.to_string()));
        }
        tags.extend(user);
        let ec2 = &ctx.clients.ec2;
        let (id, extra) = K::create(ctx, req.address, req.token, req.planned, &tags)
            .await
            .map_err(|e| e.diagnostic(req.address, &format!("create the {}", K::NAME)))?;
        let found = describe_ids::<K>(ec2, &[&id]).await.map_err(|e| describe_err::<K>(req.address, e))?;
        let Some(mut o) = found.into_iter().next() else {
            let e = AwsError { code: None, message: format!("`{id}` vanished after its create") };
            return Err(describe_err::<K>(req.address, e).into());
        };
        o.attrs.extend(extra);
        Ok(ApplyResponse::ok(state(req.planned, &o, None)))
    }

    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        let ec2 = &ctx.clients.ec2;
        let id = str_attr(req.prior, "id").unwrap_or_default().to_string();
        K::update(ec2, &id, req.prior, req.planned).await.map_err(|e| e.diagnostic(req.address, &format!("update the {}", K::NAME)))?;
        let (old, new) = (str_map(req.prior, "tags"), str_map(req.planned, "tags"));
        let gone: Vec<aws_sdk_ec2::types::Tag> = old
            .iter()
            .filter(|(k, _)| !new.iter().any(|(n, _)| n == k))
            .map(|(k, _)| aws_sdk_ec2::types::Tag::builder().key(k).build())
            .collect();
        let set: Vec<aws_sdk_ec2::types::Tag> = new.iter().filter(|t| !old.contains(t)).map(|(k, v)| tag(k, v)).collect();
        if !gone.is_empty() {
            ec2.delete_tags()
                .resources(&id)
                .set_tags(Some(gone))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(e).diagnostic(req.address, "remove tags"))?;
        }
        if !set.is_empty() {
            ec2.create_tags()
                .resources(&id)
                .set_tags(Some(set))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(e).diagnostic(req.address, "set tags"))?;
        }
        let found = describe_ids::<K>(ec2, &[&id]).await.map_err(|e| describe_err::<K>(req.address, e))?;
        let Some(o) = found.into_iter().next() else {
            return Err(describe_err::<K>(req.address, AwsError { code: None, message: format!("`{id}` is gone") }).into());
        };
        Ok(ApplyResponse::ok(keep::<K>(state(req.planned, &o, Some(req.prior)), req.prior)))
    }

    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        let Some(id) = str_attr(req.prior, "id") else { return Ok(Diagnostics::new()) };
        match K::delete(&ctx.clients.ec2, id).await {
            Ok(()) => Ok(Diagnostics::new()),
            Err(e) if e.code.as_deref().is_some_and(|c| c.ends_with(".NotFound")) => Ok(Diagnostics::new()),
            Err(e) => Err(e.diagnostic(req.address, &format!("delete the {}", K::NAME)).into()),
        }
    }

    /// One Describe call for every object of the kind.
    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], _all: &AllInstances) -> Outcome<Vec<ReadResult>> {
        let ids: Vec<&str> = items.iter().filter_map(|i| str_attr(i.state, "id")).collect();
        Ok(match describe_ids::<K>(&ctx.clients.ec2, &ids).await {
            Ok(found) => items
                .iter()
                .map(|i| match found.iter().find(|o| Some(o.id.as_str()) == str_attr(i.state, "id")) {
                    Some(o) => ReadResult::found(keep::<K>(state(i.state, o, Some(i.state)), i.state)),
                    None => ReadResult::gone(),
                })
                .collect(),
            // One missing ID fails the whole call: read them one by one then.
            Err(e) if e.code.as_deref().is_some_and(|c| c.ends_with(".NotFound")) => {
                let mut out = Vec::new();
                for i in items {
                    let id = str_attr(i.state, "id").unwrap_or_default();
                    out.push(match describe_ids::<K>(&ctx.clients.ec2, &[id]).await {
                        Ok(f) => f
                            .first()
                            .map_or_else(ReadResult::gone, |o| ReadResult::found(keep::<K>(state(i.state, o, Some(i.state)), i.state))),
                        Err(e) if e.code.as_deref().is_some_and(|c| c.ends_with(".NotFound")) => ReadResult::gone(),
                        Err(e) => read_error(describe_err::<K>(i.address, e)),
                    });
                }
                out
            }
            Err(e) => items
                .iter()
                .map(|i| ReadResult { state: Some(i.state.clone()), diagnostics: describe_err::<K>(i.address, e.clone()).into() })
                .collect(),
        })
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        let found = K::describe(&ctx.clients.ec2, vec![filter(&format!("tag:{TAG_TOKEN}"), &[req.token])])
            .await
            .map_err(|e| describe_err::<K>(req.address, e))?;
        Ok(match found.iter().find(|o| o.tag(TAG_ADDRESS) == Some(req.address)) {
            // A generated private key cannot be read back: the object is useless without it.
            Some(o) if !K::KEPT.is_empty() => {
                K::delete(&ctx.clients.ec2, &o.id)
                    .await
                    .map_err(|e| e.diagnostic(req.address, &format!("delete the half-made {}", K::NAME)))?;
                ReadResult::gone()
            }
            Some(o) => ReadResult::found(state(req.planned, o, None)),
            None => ReadResult::gone(),
        })
    }

    async fn import(&self, ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        if !req.id.starts_with(K::ID_PREFIX) {
            return Err(Diagnostic::error("E-AWS-IMPORT", format!("{}: `{}` is not an ID of a {}", req.address, req.id, K::NAME))
                .address(req.address)
                .hint(format!("{} IDs start with `{}`", K::NAME, K::ID_PREFIX))
                .into());
        }
        let found = describe_ids::<K>(&ctx.clients.ec2, &[req.id]).await.map_err(|e| describe_err::<K>(req.address, e))?;
        match found.first() {
            Some(o) => Ok(ReadResult::found(state(&Value::Map(Map::new()), o, None))),
            None => {
                Err(Diagnostic::error("E-AWS-IMPORT", format!("{}: no {} `{}`", req.address, K::NAME, req.id)).address(req.address).into())
            }
        }
    }
}

/// `v` with the attributes AWS never shows again taken from `prior`.
fn keep<K: NetKind>(mut v: Value, prior: &Value) -> Value {
    if let Value::Map(m) = &mut v {
        for k in K::KEPT {
            if let Some(x) = prior.get(k) {
                m.insert((*k).to_string(), x.clone());
            }
        }
    }
    v
}
