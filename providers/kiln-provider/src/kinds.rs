//! The provider SDK: a provider written as a table of kinds.
//!
//! A provider implements [`Kind`] once per kind (and [`DataSource`] once per data source) over
//! its own context `C` (clients, settings) and a per-read batch `B` (something every kind of one
//! batched read shares, such as one listing of all instances), lists them in a [`Kinds`] table,
//! and implements [`KindProvider`]: its context, its table, its configuration schema. Every
//! [`Provider`] method then comes from the blanket implementation here: dispatch by kind, one
//! error for an unknown kind naming the kinds there are, reads grouped by kind sharing one batch,
//! and the provider's schema assembled from the kinds' own.
//!
//! Kind operations return [`Outcome`]s: `Err` is a plain failure (nothing to keep; the table
//! turns it into the response), so kind bodies use `?`. A response that carries more than a
//! failure is an `Ok`: a create that made something and then failed returns
//! `Ok(ApplyResponse { state: Some(..), diagnostics: errors })` so kiln never forgets the object;
//! warnings on success go in the `Ok` response's diagnostics.

pub mod legacy;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_schema::{Body, KindSchema, ProviderSchema};
use kiln_value::Value;

use crate::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, Limits, LogsRequest, LogsResponse, PlanRequest, PlanResponse,
    Provider, ReadDataRequest, ReadItem, ReadRequest, ReadResponse, ReadResult, RecoverRequest, UpdateRequest, ValidateRequest,
};

/// What a kind operation returns: its response, or the diagnostics of a plain failure.
pub type Outcome<T> = Result<T, Diagnostics>;

/// One kind's operations.
#[async_trait]
pub trait Kind<C: Sync, B: Sync>: Send + Sync {
    /// The kind's name as configurations write it (`bucket`, `aws_vpc`): written only here.
    fn name(&self) -> &'static str;
    /// The kind's schema; the provider's is assembled from its kinds'.
    fn schema(&self) -> KindSchema;
    /// Checks a configuration beyond its schema (no IO): findings, not a failure.
    fn validate(&self, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }
    /// `Err`: the planned value is the proposed one.
    async fn plan(&self, ctx: &C, req: &PlanRequest<'_>) -> Outcome<PlanResponse>;
    /// `Err`: nothing was made. Something made and then failed: `Ok` with its state and errors.
    async fn create(&self, ctx: &C, req: &CreateRequest<'_>) -> Outcome<ApplyResponse>;
    async fn update(&self, ctx: &C, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse>;
    /// `Ok`: deleted, with warnings if any.
    async fn delete(&self, ctx: &C, req: &DeleteRequest<'_>) -> Outcome<Diagnostics>;
    /// Every item of this kind in one read request, answered in order. `Err`: every item failed.
    async fn read(&self, ctx: &C, items: &[&ReadItem<'_>], batch: &B) -> Outcome<Vec<ReadResult>>;
    async fn recover(&self, ctx: &C, req: &RecoverRequest<'_>) -> Outcome<ReadResult>;
    async fn import(&self, _ctx: &C, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        Err(Diagnostic::error("E-IMPORT-UNSUPPORTED", format!("{}: importing a `{}` is not supported", req.address, req.kind))
            .address(req.address)
            .hint("declare the resource and run `kiln apply`")
            .into())
    }
    async fn logs(&self, _ctx: &C, req: &LogsRequest<'_>) -> Outcome<LogsResponse> {
        Err(Diagnostic::error("E-PROVIDER-LOGS", format!("{}: kind `{}` has no logs", req.address, req.kind)).into())
    }
}

/// One data source (`data "KIND" "NAME" { ... }`).
#[async_trait]
pub trait DataSource<C: Sync>: Send + Sync {
    fn name(&self) -> &'static str;
    fn schema(&self) -> KindSchema;
    async fn read(&self, ctx: &C, req: &ReadDataRequest<'_>) -> Outcome<ReadResult>;
}

/// A provider's kinds and data sources.
pub struct Kinds<C: 'static, B: 'static> {
    pub provider: &'static str,
    pub kinds: &'static [&'static (dyn Kind<C, B> + 'static)],
    pub data: &'static [&'static (dyn DataSource<C> + 'static)],
}

/// "provider `P` has no WHAT `NAME`", with the names there are.
fn unknown(provider: &str, what: &str, name: &str, names: Vec<&str>) -> Diagnostic {
    let plural = if what == "kind" { "kinds" } else { "data sources" };
    Diagnostic::error("E-KIND-UNKNOWN", format!("provider `{provider}` has no {what} `{name}`"))
        .hint(format!("{plural} of `{provider}`: {}", names.join(", ")))
}

impl<C: Sync, B: Sync> Kinds<C, B> {
    fn get(&self, name: &str) -> Result<&'static dyn Kind<C, B>, Diagnostic> {
        self.kinds
            .iter()
            .find(|k| k.name() == name)
            .copied()
            .ok_or_else(|| unknown(self.provider, "kind", name, self.kinds.iter().map(|k| k.name()).collect()))
    }

    fn data_source(&self, name: &str) -> Result<&'static dyn DataSource<C>, Diagnostic> {
        self.data
            .iter()
            .find(|k| k.name() == name)
            .copied()
            .ok_or_else(|| unknown(self.provider, "data source", name, self.data.iter().map(|k| k.name()).collect()))
    }

    /// The provider's schema: `config` and every kind's and data source's own.
    pub fn schema(&self, config: Body) -> ProviderSchema {
        ProviderSchema {
            config,
            kinds: self.kinds.iter().map(|k| (k.name().to_string(), k.schema())).collect(),
            data_kinds: self.data.iter().map(|k| (k.name().to_string(), k.schema())).collect(),
        }
    }

    pub fn validate(&self, req: ValidateRequest<'_>) -> Diagnostics {
        self.get(req.kind).map_or_else(Diagnostics::from, |k| k.validate(req.config))
    }

    pub async fn plan(&self, ctx: &C, req: PlanRequest<'_>) -> PlanResponse {
        let out = match self.get(req.kind) {
            Ok(k) => k.plan(ctx, &req).await,
            Err(d) => Err(d.into()),
        };
        out.unwrap_or_else(|diagnostics| PlanResponse { planned: req.proposed.clone(), requires_replace: Vec::new(), diagnostics })
    }

    pub async fn create(&self, ctx: &C, req: CreateRequest<'_>) -> ApplyResponse {
        let out = match self.get(req.kind) {
            Ok(k) => k.create(ctx, &req).await,
            Err(d) => Err(d.into()),
        };
        out.unwrap_or_else(|diagnostics| ApplyResponse { state: None, diagnostics })
    }

    pub async fn update(&self, ctx: &C, req: UpdateRequest<'_>) -> ApplyResponse {
        let out = match self.get(req.kind) {
            Ok(k) => k.update(ctx, &req).await,
            Err(d) => Err(d.into()),
        };
        out.unwrap_or_else(|diagnostics| ApplyResponse { state: None, diagnostics })
    }

    pub async fn delete(&self, ctx: &C, req: DeleteRequest<'_>) -> Diagnostics {
        match self.get(req.kind) {
            Ok(k) => k.delete(ctx, &req).await.unwrap_or_else(|d| d),
            Err(d) => d.into(),
        }
    }

    /// Groups the items by kind; each kind reads its group in one batch, all sharing `batch`.
    pub async fn read(&self, ctx: &C, req: ReadRequest<'_>, batch: &B) -> ReadResponse {
        let mut results: Vec<Option<ReadResult>> = req.items.iter().map(|_| None).collect();
        let mut by_kind: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, item) in req.items.iter().enumerate() {
            by_kind.entry(item.kind).or_default().push(i);
        }
        for (name, idx) in by_kind {
            let items: Vec<&ReadItem<'_>> = idx.iter().map(|i| &req.items[*i]).collect();
            let out = match self.get(name) {
                Ok(k) => k.read(ctx, &items, batch).await,
                Err(d) => Err(d.into()),
            };
            let out = out.unwrap_or_else(|d| items.iter().map(|_| ReadResult { state: None, diagnostics: d.clone() }).collect());
            for (i, r) in idx.into_iter().zip(out) {
                results[i] = Some(r);
            }
        }
        ReadResponse { results: results.into_iter().map(|r| r.unwrap_or_else(ReadResult::gone)).collect() }
    }

    pub async fn recover(&self, ctx: &C, req: RecoverRequest<'_>) -> ReadResult {
        let out = match self.get(req.kind) {
            Ok(k) => k.recover(ctx, &req).await,
            Err(d) => Err(d.into()),
        };
        out.unwrap_or_else(|diagnostics| ReadResult { state: None, diagnostics })
    }

    pub async fn import(&self, ctx: &C, req: ImportRequest<'_>) -> ReadResult {
        let out = match self.get(req.kind) {
            Ok(k) => k.import(ctx, &req).await,
            Err(d) => Err(d.into()),
        };
        out.unwrap_or_else(|diagnostics| ReadResult { state: None, diagnostics })
    }

    pub async fn logs(&self, ctx: &C, req: LogsRequest<'_>) -> LogsResponse {
        let out = match self.get(req.kind) {
            Ok(k) => k.logs(ctx, &req).await,
            Err(d) => Err(d.into()),
        };
        out.unwrap_or_else(|diagnostics| LogsResponse { data: Vec::new(), next_offset: req.offset, finished: true, diagnostics })
    }

    pub async fn read_data(&self, ctx: &C, req: ReadDataRequest<'_>) -> ReadResult {
        let out = match self.data_source(req.kind) {
            Ok(k) => k.read(ctx, &req).await,
            Err(d) => Err(d.into()),
        };
        out.unwrap_or_else(|diagnostics| ReadResult { state: None, diagnostics })
    }
}

/// A create, update or delete in flight, as [`KindProvider::mutation`] sees it.
pub type Mutation<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A provider that is its kinds table: implementing this gives [`Provider`] (blanket
/// implementation below). The provider keeps its factory, its context and its kinds.
#[async_trait]
pub trait KindProvider: Send + Sync {
    /// What every kind's operations see (clients, settings, caches).
    type Ctx: Send + Sync + 'static;
    /// What the kinds of one batched read share; a fresh one per read.
    type Batch: Default + Send + Sync + 'static;

    fn kinds() -> &'static Kinds<Self::Ctx, Self::Batch>
    where
        Self: Sized;

    /// The `provider "NAME" { ... }` block's schema.
    fn config_schema() -> Body
    where
        Self: Sized;

    /// The provider's schema, assembled from its table (its factory publishes the same).
    fn provider_schema() -> ProviderSchema
    where
        Self: Sized,
    {
        Self::kinds().schema(Self::config_schema())
    }

    fn ctx(&self) -> &Self::Ctx;

    fn limits(&self) -> Limits {
        Limits { concurrency: Some(64) }
    }

    /// Remote API calls made so far, by operation.
    fn api_calls(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }

    /// Runs one create, update or delete: the place for a throttle. The default just runs it.
    async fn mutation<'a, T: Send + 'a>(&'a self, op: Mutation<'a, T>) -> T
    where
        Self: Sized,
    {
        op.await
    }
}

#[async_trait]
impl<P: KindProvider + Sized> Provider for P {
    fn schema(&self) -> ProviderSchema {
        P::provider_schema()
    }

    fn limits(&self) -> Limits {
        KindProvider::limits(self)
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        KindProvider::api_calls(self)
    }

    fn validate(&self, req: ValidateRequest<'_>) -> Diagnostics {
        P::kinds().validate(req)
    }

    async fn plan(&self, req: PlanRequest<'_>) -> PlanResponse {
        P::kinds().plan(self.ctx(), req).await
    }

    async fn create(&self, req: CreateRequest<'_>) -> ApplyResponse {
        self.mutation(Box::pin(P::kinds().create(self.ctx(), req))).await
    }

    async fn update(&self, req: UpdateRequest<'_>) -> ApplyResponse {
        self.mutation(Box::pin(P::kinds().update(self.ctx(), req))).await
    }

    async fn delete(&self, req: DeleteRequest<'_>) -> Diagnostics {
        self.mutation(Box::pin(P::kinds().delete(self.ctx(), req))).await
    }

    async fn read(&self, req: ReadRequest<'_>) -> ReadResponse {
        P::kinds().read(self.ctx(), req, &P::Batch::default()).await
    }

    async fn recover(&self, req: RecoverRequest<'_>) -> ReadResult {
        P::kinds().recover(self.ctx(), req).await
    }

    async fn import(&self, req: ImportRequest<'_>) -> ReadResult {
        P::kinds().import(self.ctx(), req).await
    }

    async fn logs(&self, req: LogsRequest<'_>) -> LogsResponse {
        P::kinds().logs(self.ctx(), req).await
    }

    async fn read_data(&self, req: ReadDataRequest<'_>) -> ReadResult {
        P::kinds().read_data(self.ctx(), req).await
    }
}
