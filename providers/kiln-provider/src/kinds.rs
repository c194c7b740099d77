//! The provider SDK: a provider written as a table of kinds.
//!
//! A provider implements [`Kind`] once per kind (and [`DataSource`] once per data source) over
//! its own context `C` (clients, settings) and a per-read batch `B` (something every kind of one
//! batched read shares, such as one listing of all instances), lists them in a [`Kinds`] table
//! (with its name and configuration schema), implements [`KindProvider`] (the table, how to
//! configure an instance, its context) and names its factory with [`KindFactory`]. Every
//! [`Provider`] and [`ProviderFactory`] method then comes from the blanket implementations here:
//! dispatch by kind, one error for an unknown kind naming the kinds there are, reads grouped by
//! kind sharing one batch, and the provider's schema assembled from the kinds' own.
//!
//! Kind operations return [`Outcome`]s: `Err` is a plain failure (nothing to keep; the table
//! turns it into the response), so kind bodies use `?`. A response that carries more than a
//! failure is an `Ok`: a create that made something and then failed returns
//! `Ok(ApplyResponse { state: Some(..), diagnostics: errors })` so kiln never forgets the object;
//! warnings on success go in the `Ok` response's diagnostics.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::offerings::{CatalogRefresh, OfferingsResponse};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_schema::{Body, KindSchema, ProviderSchema};
use kiln_value::Value;

use crate::{
    async_trait, ApplyResponse, ConfigureRequest, Contents, ContentsRequest, CreateRequest, DeleteRequest, ImportRequest, Limits,
    LogsRequest, LogsResponse, PlanRequest, PlanResponse, Provider, ProviderFactory, ReadDataRequest, ReadItem, ReadRequest, ReadResponse,
    ReadResult, RecoverRequest, ShellAccess, ShellRequest, ShellResponse, StoreRequest, StoreResponse, UpdateRequest, ValidateRequest,
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
    /// How to reach a node with `ssh` ([`Provider::shell`]); by default there is no shell.
    async fn shell(&self, _ctx: &C, req: &ShellRequest<'_>) -> Outcome<ShellAccess> {
        Err(crate::no_shell(req).into())
    }
    async fn logs(&self, _ctx: &C, req: &LogsRequest<'_>) -> Outcome<LogsResponse> {
        Err(Diagnostic::error("E-PROVIDER-LOGS", format!("{}: kind `{}` has no logs", req.address, req.kind)).into())
    }
    /// Files kiln keeps in a bucket ([`Provider::store`]); by default the kind cannot keep any.
    async fn store(&self, _ctx: &C, req: &StoreRequest<'_>) -> Outcome<StoreResponse> {
        Err(crate::no_store(req).into())
    }
    /// Whether a bucket holds objects ([`Provider::contents`]); by default unknown.
    async fn contents(&self, _ctx: &C, req: &ContentsRequest<'_>) -> Contents {
        Contents::unknown(req)
    }
}

/// One data source (`data "KIND" "NAME" { ... }`).
#[async_trait]
pub trait DataSource<C: Sync>: Send + Sync {
    fn name(&self) -> &'static str;
    fn schema(&self) -> KindSchema;
    async fn read(&self, ctx: &C, req: &ReadDataRequest<'_>) -> Outcome<ReadResult>;
}

/// A provider's kinds and data sources, its name and its configuration block's schema.
pub struct Kinds<C: 'static, B: 'static> {
    pub provider: &'static str,
    /// The `provider "NAME" { ... }` block's schema.
    pub config: fn() -> Body,
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

    /// The provider's schema: its configuration's and every kind's and data source's own.
    pub fn schema(&self) -> ProviderSchema {
        ProviderSchema {
            config: (self.config)(),
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
        out.unwrap_or_else(|diagnostics| LogsResponse {
            data: Vec::new(),
            next_offset: req.offset,
            finished: true,
            all_nodes: false,
            diagnostics,
        })
    }

    pub async fn shell(&self, ctx: &C, req: ShellRequest<'_>) -> ShellResponse {
        let out = match self.get(req.kind) {
            Ok(k) => k.shell(ctx, &req).await,
            Err(d) => Err(d.into()),
        };
        match out {
            Ok(access) => ShellResponse { access: Some(access), diagnostics: Diagnostics::new() },
            Err(diagnostics) => ShellResponse { access: None, diagnostics },
        }
    }

    pub async fn store(&self, ctx: &C, req: StoreRequest<'_>) -> StoreResponse {
        let out = match self.get(req.kind) {
            Ok(k) => k.store(ctx, &req).await,
            Err(d) => Err(d.into()),
        };
        out.unwrap_or_else(StoreResponse::refused)
    }

    pub async fn contents(&self, ctx: &C, req: ContentsRequest<'_>) -> Contents {
        match self.get(req.kind) {
            Ok(k) => k.contents(ctx, &req).await,
            Err(d) => Contents::Unknown { reason: d.summary },
        }
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
/// implementation below), and a [`KindFactory`] naming it gives its [`ProviderFactory`].
#[async_trait]
pub trait KindProvider: Send + Sync + Sized + 'static {
    /// What every kind's operations see (clients, settings, caches).
    type Ctx: Send + Sync + 'static;
    /// What the kinds of one batched read share; a fresh one per read.
    type Batch: Default + Send + Sync + 'static;

    /// The provider's name, configuration schema, kinds and data sources.
    const KINDS: &'static Kinds<Self::Ctx, Self::Batch>;

    /// One configured instance, from one `provider` block (or the default when there is none).
    async fn configure(req: ConfigureRequest) -> Result<Self, Diagnostics>;

    /// The provider's schema, assembled from its table.
    fn provider_schema() -> ProviderSchema {
        Self::KINDS.schema()
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
    async fn mutation<'a, T: Send + 'a>(&'a self, op: Mutation<'a, T>) -> T {
        op.await
    }

    /// What this instance offers placement ([`Provider::offerings`]); by default nothing.
    async fn offerings(&self) -> OfferingsResponse {
        OfferingsResponse::default()
    }

    /// Its catalog rows from its API ([`Provider::refresh_catalog`]); by default refused.
    async fn refresh_catalog(&self) -> CatalogRefresh {
        CatalogRefresh::refused()
    }

    /// The price per hour of one of its objects ([`Provider::hourly_price`]); by default `None`.
    fn hourly_price(&self, kind: &str, object: &Value) -> Option<Result<kiln_value::Decimal, String>> {
        let _ = (kind, object);
        None
    }
}

/// Names a [`KindProvider`]'s factory: `pub struct AwsFactory;` plus
/// `impl KindFactory for AwsFactory { type Provider = AwsProvider; }` is the whole factory
/// (blanket [`ProviderFactory`] below).
pub trait KindFactory: Send + Sync {
    type Provider: KindProvider;
}

#[async_trait]
impl<F: KindFactory> ProviderFactory for F {
    fn name(&self) -> &'static str {
        F::Provider::KINDS.provider
    }

    fn schema(&self) -> ProviderSchema {
        F::Provider::provider_schema()
    }

    async fn configure(&self, req: ConfigureRequest) -> Result<Arc<dyn Provider>, Diagnostics> {
        Ok(Arc::new(F::Provider::configure(req).await?))
    }
}

#[async_trait]
impl<P: KindProvider> Provider for P {
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
        P::KINDS.validate(req)
    }

    async fn plan(&self, req: PlanRequest<'_>) -> PlanResponse {
        P::KINDS.plan(self.ctx(), req).await
    }

    async fn create(&self, req: CreateRequest<'_>) -> ApplyResponse {
        self.mutation(Box::pin(P::KINDS.create(self.ctx(), req))).await
    }

    async fn update(&self, req: UpdateRequest<'_>) -> ApplyResponse {
        self.mutation(Box::pin(P::KINDS.update(self.ctx(), req))).await
    }

    async fn delete(&self, req: DeleteRequest<'_>) -> Diagnostics {
        self.mutation(Box::pin(P::KINDS.delete(self.ctx(), req))).await
    }

    async fn read(&self, req: ReadRequest<'_>) -> ReadResponse {
        P::KINDS.read(self.ctx(), req, &P::Batch::default()).await
    }

    async fn recover(&self, req: RecoverRequest<'_>) -> ReadResult {
        P::KINDS.recover(self.ctx(), req).await
    }

    async fn import(&self, req: ImportRequest<'_>) -> ReadResult {
        P::KINDS.import(self.ctx(), req).await
    }

    async fn logs(&self, req: LogsRequest<'_>) -> LogsResponse {
        P::KINDS.logs(self.ctx(), req).await
    }

    async fn shell(&self, req: ShellRequest<'_>) -> ShellResponse {
        P::KINDS.shell(self.ctx(), req).await
    }

    async fn store(&self, req: StoreRequest<'_>) -> StoreResponse {
        P::KINDS.store(self.ctx(), req).await
    }

    async fn read_data(&self, req: ReadDataRequest<'_>) -> ReadResult {
        P::KINDS.read_data(self.ctx(), req).await
    }

    async fn contents(&self, req: ContentsRequest<'_>) -> Contents {
        P::KINDS.contents(self.ctx(), req).await
    }

    async fn offerings(&self) -> OfferingsResponse {
        KindProvider::offerings(self).await
    }

    async fn refresh_catalog(&self) -> CatalogRefresh {
        KindProvider::refresh_catalog(self).await
    }

    fn hourly_price(&self, kind: &str, object: &Value) -> Option<Result<kiln_value::Decimal, String>> {
        KindProvider::hourly_price(self, kind, object)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use kiln_schema::Attribute;
    use kiln_value::{Map, Type};

    use super::*;

    /// What the test provider's kinds see: how many mutations ran through the hook.
    #[derive(Default)]
    struct Ctx {
        mutations: AtomicUsize,
    }

    /// Counts the kinds' reads of one batch.
    #[derive(Default)]
    struct Batch {
        reads: AtomicUsize,
    }

    /// `outcome` in the configuration picks what each operation does.
    struct Thing;
    /// Reads fail for the whole kind.
    struct Broken;
    struct Info;

    fn value(pairs: &[(&str, &str)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<Map>())
    }

    fn outcome(v: &Value) -> &str {
        v.get("outcome").and_then(Value::as_str).unwrap_or("ok")
    }

    #[async_trait]
    impl Kind<Ctx, Batch> for Thing {
        fn name(&self) -> &'static str {
            "thing"
        }
        fn schema(&self) -> KindSchema {
            KindSchema::new("A thing", Body::new().attr("outcome", Attribute::optional(Type::String, "What happens")))
        }
        async fn plan(&self, _ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
            if outcome(req.config) == "fail" {
                return Err(Diagnostic::error("E-TEST", "plan failed").into());
            }
            Ok(PlanResponse { planned: value(&[("planned", "yes")]), requires_replace: Vec::new(), diagnostics: Diagnostics::new() })
        }
        async fn create(&self, _ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
            match outcome(req.planned) {
                "fail" => Err(Diagnostic::error("E-TEST", "create failed").into()),
                // Made something, then failed: the state goes back with the error.
                "partial" => Ok(ApplyResponse {
                    state: Some(value(&[("id", "made")])),
                    diagnostics: Diagnostic::error("E-TEST", "tagging failed").into(),
                }),
                "warn" => Ok(ApplyResponse {
                    state: Some(value(&[("id", "made")])),
                    diagnostics: Diagnostic::warning("W-TEST", "careful").into(),
                }),
                _ => Ok(ApplyResponse::ok(value(&[("id", "made")]))),
            }
        }
        async fn update(&self, _ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
            Ok(ApplyResponse::ok(req.planned.clone()))
        }
        async fn delete(&self, _ctx: &Ctx, req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
            match outcome(req.prior) {
                "fail" => Err(Diagnostic::error("E-TEST", "delete failed").into()),
                "warn" => Ok(Diagnostic::warning("W-TEST", "left a log behind").into()),
                _ => Ok(Diagnostics::new()),
            }
        }
        async fn read(&self, _ctx: &Ctx, items: &[&ReadItem<'_>], batch: &Batch) -> Outcome<Vec<ReadResult>> {
            batch.reads.fetch_add(1, Ordering::SeqCst);
            Ok(items.iter().map(|i| ReadResult::found(i.state.clone())).collect())
        }
        async fn recover(&self, _ctx: &Ctx, _req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
            Ok(ReadResult::gone())
        }
    }

    #[async_trait]
    impl Kind<Ctx, Batch> for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn schema(&self) -> KindSchema {
            KindSchema::new("Cannot be read", Body::new()).state_only()
        }
        async fn plan(&self, _ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
            Ok(PlanResponse { planned: req.proposed.clone(), requires_replace: Vec::new(), diagnostics: Diagnostics::new() })
        }
        async fn create(&self, _ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
            Ok(ApplyResponse::ok(req.planned.clone()))
        }
        async fn update(&self, _ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
            Ok(ApplyResponse::ok(req.planned.clone()))
        }
        async fn delete(&self, _ctx: &Ctx, _req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
            Ok(Diagnostics::new())
        }
        async fn read(&self, _ctx: &Ctx, _items: &[&ReadItem<'_>], _batch: &Batch) -> Outcome<Vec<ReadResult>> {
            Err(Diagnostic::error("E-TEST-READ", "the listing failed").into())
        }
        async fn recover(&self, _ctx: &Ctx, _req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
            Ok(ReadResult::gone())
        }
    }

    #[async_trait]
    impl DataSource<Ctx> for Info {
        fn name(&self) -> &'static str {
            "info"
        }
        fn schema(&self) -> KindSchema {
            KindSchema::new("Facts", Body::new()).state_only()
        }
        async fn read(&self, _ctx: &Ctx, req: &ReadDataRequest<'_>) -> Outcome<ReadResult> {
            Ok(ReadResult::found(req.config.clone()))
        }
    }

    fn config() -> Body {
        Body::new().attr("endpoint", Attribute::optional(Type::String, "Where"))
    }

    static KINDS: Kinds<Ctx, Batch> = Kinds { provider: "test", config, kinds: &[&Thing, &Broken], data: &[&Info] };

    #[derive(Default)]
    struct TestProvider {
        ctx: Ctx,
    }

    #[async_trait]
    impl KindProvider for TestProvider {
        type Ctx = Ctx;
        type Batch = Batch;
        const KINDS: &'static Kinds<Ctx, Batch> = &KINDS;
        async fn configure(req: ConfigureRequest) -> Result<Self, Diagnostics> {
            match req.config.get("endpoint").and_then(Value::as_str) {
                Some("nowhere") => Err(Diagnostic::error("E-TEST-CONFIG", "no such endpoint").attribute("endpoint").into()),
                _ => Ok(TestProvider::default()),
            }
        }
        fn ctx(&self) -> &Ctx {
            &self.ctx
        }
        async fn mutation<'a, T: Send + 'a>(&'a self, op: Mutation<'a, T>) -> T {
            self.ctx.mutations.fetch_add(1, Ordering::SeqCst);
            op.await
        }
    }

    fn codes(d: &Diagnostics) -> Vec<&str> {
        d.iter().map(|d| d.code).collect()
    }

    fn create<'a>(kind: &'a str, planned: &'a Value) -> CreateRequest<'a> {
        CreateRequest { address: "thing.a", kind, planned, token: "t" }
    }

    struct TestFactory;

    impl KindFactory for TestFactory {
        type Provider = TestProvider;
    }

    #[tokio::test]
    async fn the_factory_comes_from_the_table_and_the_providers_configure() {
        assert_eq!(TestFactory.name(), "test");
        assert_eq!(TestFactory.schema(), TestProvider::provider_schema());
        let req = |endpoint: &str| ConfigureRequest { config: value(&[("endpoint", endpoint)]), working_dir: ".".into() };
        assert!(TestFactory.configure(req("here")).await.is_ok());
        let err = TestFactory.configure(req("nowhere")).await.err().expect("refused");
        assert_eq!(err.iter().next().and_then(|d| d.attribute.as_deref()), Some("endpoint"));
    }

    #[test]
    fn the_schema_is_assembled_from_the_table() {
        let s = Provider::schema(&TestProvider::default());
        assert_eq!(s.kinds.keys().collect::<Vec<_>>(), ["broken", "thing"]);
        assert_eq!(s.kinds["thing"], Thing.schema());
        assert!(s.kinds["broken"].state_only);
        assert_eq!(s.data_kinds.keys().collect::<Vec<_>>(), ["info"]);
        assert!(s.config.attributes.contains_key("endpoint"));
    }

    #[tokio::test]
    async fn an_unknown_kind_is_one_error_naming_the_kinds_there_are() {
        let p = TestProvider::default();
        let config = value(&[]);
        let d = Provider::validate(&p, ValidateRequest { kind: "thnig", config: &config });
        let e = d.iter().next().expect("an error");
        assert_eq!(e.code, "E-KIND-UNKNOWN");
        assert!(e.summary.contains("provider `test` has no kind `thnig`"), "{}", e.summary);
        assert_eq!(e.hint.as_deref(), Some("kinds of `test`: thing, broken"));
        let r = p.create(create("thnig", &config)).await;
        assert!(r.state.is_none());
        assert_eq!(codes(&r.diagnostics), ["E-KIND-UNKNOWN"]);
        let proposed = value(&[("x", "1")]);
        let r = p
            .plan(PlanRequest { address: "thnig.a", kind: "thnig", prior: None, replacing: None, config: &config, proposed: &proposed })
            .await;
        assert_eq!(r.planned, proposed);
        assert_eq!(codes(&r.diagnostics), ["E-KIND-UNKNOWN"]);
    }

    #[tokio::test]
    async fn a_failed_plan_keeps_the_proposed_value() {
        let p = TestProvider::default();
        let config = value(&[("outcome", "fail")]);
        let proposed = value(&[("outcome", "fail"), ("x", "1")]);
        let r = p
            .plan(PlanRequest { address: "thing.a", kind: "thing", prior: None, replacing: None, config: &config, proposed: &proposed })
            .await;
        assert_eq!(r.planned, proposed);
        assert_eq!(codes(&r.diagnostics), ["E-TEST"]);
    }

    #[tokio::test]
    async fn creates_keep_what_they_made_with_their_errors_and_warnings() {
        let p = TestProvider::default();
        let failed = p.create(create("thing", &value(&[("outcome", "fail")]))).await;
        assert!(failed.state.is_none());
        assert_eq!(codes(&failed.diagnostics), ["E-TEST"]);
        let partial = p.create(create("thing", &value(&[("outcome", "partial")]))).await;
        assert_eq!(partial.state, Some(value(&[("id", "made")])), "a made object is never forgotten");
        assert!(partial.diagnostics.has_errors());
        let warned = p.create(create("thing", &value(&[("outcome", "warn")]))).await;
        assert!(warned.state.is_some() && !warned.diagnostics.has_errors());
        assert_eq!(codes(&warned.diagnostics), ["W-TEST"]);
    }

    #[tokio::test]
    async fn deletes_return_their_warnings_or_their_failure() {
        let p = TestProvider::default();
        let delete = |prior: &'static str| {
            let prior = value(&[("outcome", prior)]);
            let p = &p;
            async move { p.delete(DeleteRequest { address: "thing.a", kind: "thing", prior: &prior }).await }
        };
        assert!(delete("ok").await.is_empty());
        assert_eq!(codes(&delete("warn").await), ["W-TEST"]);
        assert_eq!(codes(&delete("fail").await), ["E-TEST"]);
    }

    #[tokio::test]
    async fn mutations_go_through_the_hook_and_nothing_else_does() {
        let p = TestProvider::default();
        let v = value(&[]);
        p.create(create("thing", &v)).await;
        p.update(UpdateRequest { address: "thing.a", kind: "thing", prior: &v, planned: &v }).await;
        p.delete(DeleteRequest { address: "thing.a", kind: "thing", prior: &v }).await;
        p.plan(PlanRequest { address: "thing.a", kind: "thing", prior: None, replacing: None, config: &v, proposed: &v }).await;
        p.read(ReadRequest { items: vec![ReadItem { address: "thing.a", kind: "thing", state: &v }] }).await;
        assert_eq!(p.ctx.mutations.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn reads_are_answered_in_order_one_batch_per_kind_and_a_failed_kind_fails_its_items() {
        let p = TestProvider::default();
        let (a, b) = (value(&[("id", "a")]), value(&[("id", "b")]));
        let items = vec![
            ReadItem { address: "thing.a", kind: "thing", state: &a },
            ReadItem { address: "broken.x", kind: "broken", state: &a },
            ReadItem { address: "thing.b", kind: "thing", state: &b },
            ReadItem { address: "nope.y", kind: "nope", state: &b },
        ];
        let batch = Batch::default();
        let r = KINDS.read(&p.ctx, ReadRequest { items }, &batch).await.results;
        assert_eq!(batch.reads.load(Ordering::SeqCst), 1, "both things in one read");
        assert_eq!(r[0].state, Some(a.clone()));
        assert_eq!(r[2].state, Some(b.clone()));
        assert_eq!(codes(&r[1].diagnostics), ["E-TEST-READ"]);
        assert_eq!(codes(&r[3].diagnostics), ["E-KIND-UNKNOWN"]);
    }

    #[tokio::test]
    async fn data_sources_dispatch_from_the_table() {
        let p = TestProvider::default();
        let config = value(&[("k", "v")]);
        let r = p.read_data(ReadDataRequest { kind: "info", config: &config }).await;
        assert_eq!(r.state, Some(config.clone()));
        let r = p.read_data(ReadDataRequest { kind: "infos", config: &config }).await;
        let e = r.diagnostics.iter().next().expect("an error");
        assert_eq!(e.code, "E-KIND-UNKNOWN");
        assert!(e.summary.contains("has no data source `infos`"), "{}", e.summary);
        assert_eq!(e.hint.as_deref(), Some("data sources of `test`: info"));
    }
}
