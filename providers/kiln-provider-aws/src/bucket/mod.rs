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
    RecoverRequest, UpdateRequest,
};
use kiln_value::Value;

use crate::error::AwsError;
use crate::util::{error, made_up_name, read_error, str_attr, TAG_ADDRESS, TAG_TOKEN};
use crate::{AllInstances, Ctx, Kind};
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
    fn validate(&self, config: &Value) -> Diagnostics {
        Spec::parse(config).err().map(invalid).unwrap_or_default()
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> PlanResponse {
        match parse(req.address, req.proposed) {
            Ok(spec) => {
                let region = req.prior.and_then(|p| str_attr(p, "region")).unwrap_or(&ctx.clients.region);
                PlanResponse { planned: spec.state(region), requires_replace: Vec::new(), diagnostics: Diagnostics::new() }
            }
            Err(diagnostics) => PlanResponse { planned: req.proposed.clone(), requires_replace: Vec::new(), diagnostics },
        }
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> ApplyResponse {
        create(ctx, req).await.unwrap_or_else(ApplyResponse::error)
    }

    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> ApplyResponse {
        let (spec, prior) = match (parse(req.address, req.planned), parse(req.address, req.prior)) {
            (Ok(s), Ok(p)) => (s, p),
            (Err(d), _) | (_, Err(d)) => return ApplyResponse { state: None, diagnostics: d },
        };
        let Some(name) = prior.name.clone() else {
            return ApplyResponse::error(error("E-AWS-BUCKET", req.address, "the bucket in state has no name"));
        };
        let token = match s3::tags(&ctx.clients.s3, &name).await {
            Ok(tags) => token_of(&tags).unwrap_or_default().to_string(),
            Err(e) => return ApplyResponse::error(e.diagnostic(req.address, &format!("read tags of bucket {name}"))),
        };
        converge(ctx, req.address, &name, &token, &spec, prior.versioning).await
    }

    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Diagnostics {
        let Some(name) = str_attr(req.prior, "name") else { return Diagnostics::new() };
        let s3 = &ctx.clients.s3;
        let fail = |e: AwsError| -> Diagnostics { e.diagnostic(req.address, &format!("delete bucket {name}")).into() };
        match s3::exists(s3, name).await {
            Ok(false) => return Diagnostics::new(),
            Ok(true) => {}
            Err(e) => return fail(e),
        }
        let force = crate::util::bool_attr(req.prior, "force_destroy") == Some(true);
        let emptied = if force {
            s3::empty(s3, name).await.map(|_| ())
        } else {
            match s3::some_keys(s3, name, 6).await {
                Ok(keys) if !keys.is_empty() => return not_empty(req.address, name, &keys).into(),
                other => other.map(|_| ()),
            }
        };
        match emptied {
            Ok(()) => s3::delete(s3, name).await.err().map(fail).unwrap_or_default(),
            Err(e) => fail(e),
        }
    }

    /// Buckets are read one after another, their five settings at once.
    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], _all: &crate::cluster::instances::AllInstances) -> Vec<ReadResult> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(read_item(ctx, item).await);
        }
        out
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> ReadResult {
        match recover(ctx, req).await {
            Ok(Some(v)) => ReadResult::found(v),
            Ok(None) => ReadResult::gone(),
            Err(d) => read_error(d),
        }
    }

    async fn import(&self, ctx: &Ctx, req: &ImportRequest<'_>) -> ReadResult {
        let defaults = Spec::parse(&Value::Null).expect("defaults parse");
        let prior = Spec { tags_set: false, ..defaults };
        match read_one(ctx, req.address, req.id, &prior).await {
            Ok(Some(v)) => ReadResult::found(v),
            Ok(None) => read_error(
                error("E-AWS-IMPORT", req.address, format!("no bucket named {} in {}", req.id, ctx.clients.region))
                    .hint("import a bucket by its name, in the provider's region"),
            ),
            Err(d) => read_error(d),
        }
    }
}
