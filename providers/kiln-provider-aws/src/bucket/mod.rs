//! `bucket`: an S3 bucket. A bucket named in config keeps that name; otherwise kiln makes one
//! up at create, `kiln-SLUG-XXXXXXXX` (the address's slug and the first 8 characters of the
//! create's token), because S3 names are global: two projects with a `bucket.checkpoints` must
//! not collide, and a replacement gets a fresh name. The name is therefore known after apply.
//!
//! Create refuses a bucket that already exists unless it carries this create's token (then it
//! is adopted), tags it `kiln:address` and `kiln:token` first, then writes public access block,
//! default encryption, versioning and the `kiln-expire` lifecycle rule. Recover looks at the one
//! name the create would have used and adopts the bucket when its `kiln:token` tag matches (or,
//! for a made-up name, which embeds the token, when it has no token tag yet). Delete refuses a
//! bucket holding any object version unless `force_destroy` is true, deleting nothing; with
//! it, every version and delete marker goes first.

pub(crate) mod s3;
pub(crate) mod spec;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, StoreOp, StoreRequest, StoreResponse, UpdateRequest,
};
use kiln_value::Value;

use crate::error::AwsError;
use crate::util::{error, made_up_name, str_attr, TAG_ADDRESS, TAG_TOKEN};
use crate::{AllInstances, Ctx, Kind, KindSchema, Outcome};
use spec::Spec;

pub(crate) struct Bucket;

fn invalid(errs: Vec<String>) -> Diagnostics {
    errs.into_iter().map(|e| Diagnostic::error("E-AWS-BUCKET", e).hint("see the `bucket` kind of provider `aws`")).collect()
}

fn parse(address: &str, v: &Value) -> Result<Spec, Diagnostics> {
    Spec::parse(v).map_err(|e| invalid(e).with_address(address))
}

/// kiln's tags and the user's.
fn all_tags(address: &str, token: &str, spec: &Spec) -> Vec<(String, String)> {
    let mut tags = vec![(TAG_ADDRESS.to_string(), address.to_string()), (TAG_TOKEN.to_string(), token.to_string())];
    tags.extend(spec.tags.iter().cloned());
    tags
}

fn token_of(tags: &[(String, String)]) -> Option<&str> {
    tags.iter().find(|(k, _)| k == TAG_TOKEN).map(|(_, v)| v.as_str())
}

fn not_empty(address: &str, name: &str, keys: &[String]) -> Diagnostic {
    let shown = keys.iter().take(5).map(String::as_str).collect::<Vec<_>>().join(", ");
    let more = if keys.len() > 5 { ", and more" } else { "" };
    error("E-AWS-BUCKET-NOT-EMPTY", address, format!("{address} is not empty: s3://{name} holds {shown}{more}; nothing was deleted")).hint(
        format!("to delete it with every object version, set `force_destroy = true` on {address} and run `kiln apply` before destroying"),
    )
}

/// Writes tags and settings; the state whatever happens, so a bucket that exists is never lost.
async fn converge(ctx: &Ctx, address: &str, name: &str, token: &str, spec: &Spec, was_versioned: bool) -> ApplyResponse {
    let s3 = &ctx.clients.s3;
    let named = Spec { name: Some(name.to_string()), ..spec.clone() };
    let state = named.state(&ctx.clients.region);
    let written = match s3::put_tags(s3, name, &all_tags(address, token, spec)).await {
        Ok(()) => s3::configure(s3, name, spec, was_versioned).await,
        Err(e) => Err(e),
    };
    match written {
        Ok(()) => ApplyResponse::ok(state),
        Err(e) => ApplyResponse { state: Some(state), diagnostics: e.diagnostic(address, &format!("configure bucket {name}")).into() },
    }
}

async fn create(ctx: &Ctx, req: &CreateRequest<'_>) -> Result<ApplyResponse, Diagnostic> {
    let spec = parse(req.address, req.planned).map_err(|d| d.into_vec().remove(0))?;
    let name = spec.name.clone().unwrap_or_else(|| made_up_name(req.address, "bucket", req.token, 63));
    let s3 = &ctx.clients.s3;
    let doing = format!("create bucket {name}");
    if s3::exists(s3, &name).await.map_err(|e| e.diagnostic(req.address, &doing))? {
        let tags = s3::tags(s3, &name).await.map_err(|e| e.diagnostic(req.address, &doing))?;
        if token_of(&tags) != Some(req.token) {
            return Err(error("E-AWS-BUCKET-EXISTS", req.address, format!("{}: bucket {name} already exists", req.address))
                .hint(format!("choose another `name`, or manage the existing bucket with `kiln import {} {name}`", req.address)));
        }
    } else {
        s3::create(s3, &name, &ctx.clients.region).await.map_err(|e| e.diagnostic(req.address, &doing))?;
    }
    Ok(converge(ctx, req.address, &name, req.token, &spec, false).await)
}

/// The bucket's state as S3 has it, or `None` when it is gone.
async fn read_one(ctx: &Ctx, address: &str, name: &str, prior: &Spec) -> Result<Option<Value>, Diagnostic> {
    let s3 = &ctx.clients.s3;
    let doing = format!("read bucket {name}");
    if !s3::exists(s3, name).await.map_err(|e| e.diagnostic(address, &doing))? {
        return Ok(None);
    }
    let (spec, _) = s3::read(s3, name, prior).await.map_err(|e| e.diagnostic(address, &doing))?;
    Ok(Some(spec.state(&ctx.clients.region)))
}

async fn read_item(ctx: &Ctx, item: &ReadItem<'_>) -> ReadResult {
    let Some(name) = str_attr(item.state, "name") else { return ReadResult::gone() };
    let prior = Spec::parse(item.state).unwrap_or_else(|_| Spec::parse(&Value::Null).expect("defaults parse"));
    match read_one(ctx, item.address, name, &prior).await {
        Ok(Some(v)) => ReadResult::found(v),
        Ok(None) => ReadResult::gone(),
        Err(d) => ReadResult { state: Some(item.state.clone()), diagnostics: d.into() },
    }
}

async fn recover(ctx: &Ctx, req: &RecoverRequest<'_>) -> Result<Option<Value>, Diagnostic> {
    let spec = parse(req.address, req.planned).map_err(|d| d.into_vec().remove(0))?;
    let made_up = made_up_name(req.address, "bucket", req.token, 63);
    let name = spec.name.clone().unwrap_or_else(|| made_up.clone());
    let s3 = &ctx.clients.s3;
    let doing = format!("look for bucket {name}");
    if !s3::exists(s3, &name).await.map_err(|e| e.diagnostic(req.address, &doing))? {
        return Ok(None);
    }
    let tags = s3::tags(s3, &name).await.map_err(|e| e.diagnostic(req.address, &doing))?;
    let ours = match token_of(&tags) {
        Some(t) => t == req.token,
        None => name == made_up,
    };
    if !ours {
        return Ok(None);
    }
    let named = Spec { name: Some(name.clone()), ..spec };
    // Finish what the interrupted create started, so the adopted bucket matches its plan.
    let done = converge(ctx, req.address, &name, req.token, &named, false).await;
    let first_error = done.diagnostics.errors().next().cloned();
    match first_error {
        Some(d) => Err(d),
        None => Ok(done.state),
    }
}

#[async_trait]
impl Kind<Ctx, AllInstances> for Bucket {
    fn name(&self) -> &'static str {
        "bucket"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("An S3 bucket for data and checkpoints", crate::schema::bucket())
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        Spec::parse(config).err().map(invalid).unwrap_or_default()
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        let spec = parse(req.address, req.proposed)?;
        let region = req.prior.and_then(|p| str_attr(p, "region")).unwrap_or(&ctx.clients.region);
        Ok(PlanResponse { planned: spec.state(region), requires_replace: Vec::new(), diagnostics: Diagnostics::new() })
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(create(ctx, req).await?)
    }

    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        let (spec, prior) = (parse(req.address, req.planned)?, parse(req.address, req.prior)?);
        let Some(name) = prior.name.clone() else {
            return Err(error("E-AWS-BUCKET", req.address, "the bucket in state has no name").into());
        };
        let tags = s3::tags(&ctx.clients.s3, &name).await.map_err(|e| e.diagnostic(req.address, &format!("read tags of bucket {name}")))?;
        let token = token_of(&tags).unwrap_or_default().to_string();
        Ok(converge(ctx, req.address, &name, &token, &spec, prior.versioning).await)
    }

    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        let Some(name) = str_attr(req.prior, "name") else { return Ok(Diagnostics::new()) };
        let s3 = &ctx.clients.s3;
        let fail = |e: AwsError| -> Diagnostics { e.diagnostic(req.address, &format!("delete bucket {name}")).into() };
        if !s3::exists(s3, name).await.map_err(fail)? {
            return Ok(Diagnostics::new());
        }
        let force = crate::util::bool_attr(req.prior, "force_destroy") == Some(true);
        if force {
            s3::empty(s3, name).await.map_err(fail)?;
        } else {
            let keys = s3::some_keys(s3, name, 6).await.map_err(fail)?;
            if !keys.is_empty() {
                return Err(not_empty(req.address, name, &keys).into());
            }
        }
        s3::delete(s3, name).await.map_err(fail)?;
        Ok(Diagnostics::new())
    }

    /// Buckets are read one after another, their five settings at once.
    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], _all: &AllInstances) -> Outcome<Vec<ReadResult>> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(read_item(ctx, item).await);
        }
        Ok(out)
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(recover(ctx, req).await?.map_or_else(ReadResult::gone, ReadResult::found))
    }

    /// kiln's own files (destroyed jobs' logs) as objects of the bucket.
    async fn store(&self, ctx: &Ctx, req: &StoreRequest<'_>) -> Outcome<StoreResponse> {
        let Some(name) = str_attr(req.state, "name") else {
            return Err(error("E-AWS-BUCKET", req.address, format!("{}: the bucket in state has no name", req.address)).into());
        };
        let s3 = &ctx.clients.s3;
        let fail = |doing: String| move |e: AwsError| -> Diagnostics { e.diagnostic(req.address, &doing).into() };
        let mut out = StoreResponse::default();
        match req.op {
            StoreOp::Put { key, data } => s3::put_object(s3, name, key, data).await.map_err(fail(format!("write s3://{name}/{key}")))?,
            StoreOp::Get { key, offset, len } => {
                (out.data, out.size) = s3::get_range(s3, name, key, offset, len).await.map_err(fail(format!("read s3://{name}/{key}")))?
            }
            StoreOp::List { prefix } => {
                out.keys = s3::list_keys(s3, name, prefix).await.map_err(fail(format!("list s3://{name}/{prefix}")))?
            }
            StoreOp::Delete { keys } => s3::delete_keys(s3, name, keys).await.map_err(fail(format!("delete objects of s3://{name}")))?,
        }
        Ok(out)
    }

    async fn import(&self, ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        let defaults = Spec::parse(&Value::Null).expect("defaults parse");
        let prior = Spec { tags_set: false, ..defaults };
        match read_one(ctx, req.address, req.id, &prior).await? {
            Some(v) => Ok(ReadResult::found(v)),
            None => Err(error("E-AWS-IMPORT", req.address, format!("no bucket named {} in {}", req.id, ctx.clients.region))
                .hint("import a bucket by its name, in the provider's region")
                .into()),
        }
    }
}
