//! A mock provider and state sink for kiln-core's tests (only here: every real provider is
//! tested against its real service by the conformance suite), and the [`Fixture`] that plans
//! and applies a configuration against them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_core::{ApplyOutcome, Cancel, NoopHook, ProviderRegistry, Providers, StateSink};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_plan::Plan;
use kiln_provider::{
    async_trait, ApplyResponse, ConfigureRequest, Contents, ContentsRequest, CreateRequest, DeleteRequest, ImportRequest, Limits,
    PlanRequest, PlanResponse, Provider, ProviderFactory, ReadRequest, ReadResponse, ReadResult, RecoverRequest, UpdateRequest,
    ValidateRequest,
};
use kiln_schema::{Attribute, Body, KindSchema, ProviderSchema};
use kiln_state::{Mutation, State};
use kiln_value::{Type, Value};

#[derive(Default)]
pub struct Mock {
    pub calls: Mutex<Vec<String>>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub limit: Option<usize>,
    /// Objects that exist "remotely", by token, for recover.
    pub created: Mutex<Vec<(String, Value)>>,
    /// Every delete fails while set.
    pub fail_deletes: AtomicBool,
    /// The `name` of every object deleted, in order.
    pub deleted: Mutex<Vec<String>>,
    /// How many times the factory configured a provider instance.
    pub configures: AtomicUsize,
    /// The address of every object the provider was asked to plan, in order.
    pub planned: Mutex<Vec<String>>,
    /// Attributes reads report besides (or instead of) what state holds: (address, name, value).
    pub reports: Mutex<Vec<(String, String, Value)>>,
    /// What it offers the placement optimizer (as `Provider::offerings`); `None`: nothing.
    pub offerings: Option<kiln_provider::offerings::Offerings>,
}

pub fn schema() -> ProviderSchema {
    let thing = Body::new()
        .attr("name", Attribute::required(Type::String, "name").force_new())
        .attr("size", Attribute::optional(Type::Number, "size"))
        .attr("fail", Attribute::optional(Type::Bool, "fail in create"))
        .attr("partial", Attribute::optional(Type::Bool, "fail in create, after making the object"))
        .attr("delay_ms", Attribute::optional(Type::Number, "sleep in create"))
        .attr("secret", Attribute::optional(Type::String, "a secret").sensitive())
        .attr("data", Attribute::optional(Type::Any, "anything, such as another object"))
        .attr("secret_env", Attribute::optional(Type::Map(Box::new(Type::String)), "secrets for a job's processes").sensitive())
        .attr("key", Attribute::computed(Type::String, "a generated secret").sensitive())
        .attr("id", Attribute::computed(Type::String, "id"));
    let config = Body::new().attr("region", Attribute::optional(Type::String, "region"));
    let job = Body::new()
        .attr("cluster", Attribute::optional(Type::Any, "the cluster it runs on"))
        .attr("run", Attribute::optional(Type::String, "script"))
        .attr("id", Attribute::computed(Type::String, "id"));
    // The portable kinds policies look at (with `provider = mock`): a cluster or pool's size,
    // GPUs and spot, an object's region, and the objects a bucket holds (`objects`).
    let portable = || {
        Body::new()
            .attr("name", Attribute::required(Type::String, "name").force_new())
            .attr("nodes", Attribute::optional(Type::Number, "nodes"))
            .attr("capacity", Attribute::optional(Type::Number, "instances"))
            .attr("accelerators", Attribute::optional(Type::Any, "GPUs per node"))
            .attr("spot", Attribute::optional(Type::Any, "spot"))
            .attr("on_demand_base", Attribute::optional(Type::Number, "on-demand instances"))
            .attr("on_demand_fallback", Attribute::optional(Type::Bool, "on-demand when spot is short"))
            .attr("region", Attribute::optional(Type::String, "region"))
            .attr("objects", Attribute::optional(Type::List(Box::new(Type::String)), "what a bucket holds; unset: the mock cannot tell"))
            .attr("id", Attribute::computed(Type::String, "id"))
    };
    let kinds = [
        ("thing".to_string(), KindSchema::new("a thing", thing)),
        ("bucket".to_string(), KindSchema::new("a bucket", portable())),
        ("cluster".to_string(), KindSchema::new("a cluster", portable())),
        ("spot_pool".to_string(), KindSchema::new("a spot pool", portable())),
        ("job".to_string(), KindSchema::new("a job", job)),
    ];
    ProviderSchema { config, kinds: kinds.into(), data_kinds: Default::default() }
}

pub struct Factory(pub Arc<Mock>);

#[async_trait]
impl ProviderFactory for Factory {
    fn name(&self) -> &'static str {
        "mock"
    }
    fn schema(&self) -> ProviderSchema {
        schema()
    }
    async fn configure(&self, _req: ConfigureRequest) -> Result<Arc<dyn Provider>, Diagnostics> {
        self.0.configures.fetch_add(1, Ordering::SeqCst);
        Ok(self.0.clone())
    }
}

impl Mock {
    fn log(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Provider for Mock {
    fn schema(&self) -> ProviderSchema {
        schema()
    }
    fn limits(&self) -> Limits {
        Limits { concurrency: self.limit }
    }
    /// Like real providers, quotes the value it rejects (the engine redacts sensitive ones).
    fn validate(&self, req: ValidateRequest<'_>) -> Diagnostics {
        match req.config.get("name").and_then(Value::as_str) {
            Some(n) if n.starts_with("invalid-") => {
                Diagnostic::error("E-MOCK-NAME", format!("invalid name `{n}`")).hint(format!("{n} starts with invalid-")).into()
            }
            _ => Diagnostics::new(),
        }
    }
    async fn plan(&self, req: PlanRequest<'_>) -> PlanResponse {
        self.planned.lock().unwrap().push(req.address.to_string());
        let mut planned = req.proposed.clone();
        // As a provider that reports an attribute older states lack plans none for them.
        if let (Some(prior), Value::Map(m)) = (req.prior, &mut planned) {
            for (_, k, _) in self.reports.lock().unwrap().iter().filter(|(a, _, _)| a == req.address) {
                if prior.get(k).is_none() {
                    m.remove(k);
                }
            }
        }
        PlanResponse { planned, requires_replace: Vec::new(), diagnostics: Diagnostics::new() }
    }
    async fn create(&self, req: CreateRequest<'_>) -> ApplyResponse {
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(n, Ordering::SeqCst);
        self.log(format!("create {}", req.address));
        if let Some(ms) = req.planned.get("delay_ms").and_then(Value::as_number) {
            tokio::time::sleep(Duration::from_millis(ms.to_string().parse().unwrap())).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if req.planned.get("fail").and_then(Value::as_bool) == Some(true) {
            return ApplyResponse::error(Diagnostic::error("E-MOCK", "create failed on purpose"));
        }
        // Real providers build plain values: marks are the engine's business.
        let mut m = req.planned.clone().unmark_deep().0.as_map().cloned().unwrap();
        m.insert("id".into(), Value::from(format!("id-{}", req.address)));
        m.insert("key".into(), Value::from(format!("generated-key-of-{}", req.address)));
        let v = Value::Map(m);
        self.created.lock().unwrap().push((req.token.to_string(), v.clone()));
        if req.planned.get("partial").and_then(Value::as_bool) == Some(true) {
            return ApplyResponse { state: Some(v), diagnostics: Diagnostic::error("E-MOCK", "create failed half-way").into() };
        }
        ApplyResponse::ok(v)
    }
    async fn update(&self, req: UpdateRequest<'_>) -> ApplyResponse {
        self.log(format!("update {}", req.address));
        let mut m = req.planned.as_map().cloned().unwrap();
        m.insert("id".into(), req.prior.get("id").cloned().unwrap());
        ApplyResponse::ok(Value::Map(m))
    }
    async fn delete(&self, req: DeleteRequest<'_>) -> Diagnostics {
        self.log(format!("delete {}", req.address));
        if self.fail_deletes.load(Ordering::SeqCst) {
            // Quoting the object's secret, as a careless provider might.
            let secret = req.prior.get("secret").and_then(Value::as_str).unwrap_or_default();
            return Diagnostic::error("E-MOCK", format!("delete failed on purpose (secret {secret})")).into();
        }
        let name = req.prior.get("name").and_then(Value::as_str).unwrap_or_default();
        self.deleted.lock().unwrap().push(name.to_string());
        Diagnostics::new()
    }
    async fn read(&self, req: ReadRequest<'_>) -> ReadResponse {
        self.log(format!("read {}", req.items.len()));
        let reports = self.reports.lock().unwrap().clone();
        let read = |address: &str, state: &Value| {
            let mut m = state.as_map().cloned().unwrap_or_default();
            m.extend(reports.iter().filter(|(a, _, _)| a == address).map(|(_, k, v)| (k.clone(), v.clone())));
            Value::Map(m)
        };
        ReadResponse { results: req.items.iter().map(|i| ReadResult::found(read(i.address, i.state))).collect() }
    }
    async fn recover(&self, req: RecoverRequest<'_>) -> ReadResult {
        match self.created.lock().unwrap().iter().find(|(t, _)| t == req.token) {
            Some((_, v)) => ReadResult::found(v.clone()),
            None => ReadResult::gone(),
        }
    }
    async fn import(&self, _req: ImportRequest<'_>) -> ReadResult {
        ReadResult::gone()
    }
    async fn offerings(&self) -> kiln_provider::offerings::OfferingsResponse {
        kiln_provider::offerings::OfferingsResponse { offerings: self.offerings.clone().unwrap_or_default(), ..Default::default() }
    }
    /// A bucket holds the `objects` its state lists; without the attribute the mock cannot tell.
    async fn contents(&self, req: ContentsRequest<'_>) -> Contents {
        self.log(format!("contents {}", req.address));
        match req.state.get("objects").and_then(Value::as_list) {
            Some([]) => Contents::Empty,
            Some(l) => Contents::Holds { examples: l.iter().filter_map(Value::as_str).map(str::to_string).collect() },
            None => Contents::Unknown { reason: "the mock cannot tell".to_string() },
        }
    }
}

pub fn registry(mock: &Arc<Mock>) -> ProviderRegistry {
    let mut r = ProviderRegistry::new();
    r.register(Arc::new(Factory(mock.clone())));
    r
}

/// Records every batch of mutations in order.
#[derive(Default)]
pub struct Sink(Mutex<Vec<Vec<Mutation>>>);

impl Sink {
    pub fn batches(&self) -> Vec<Vec<Mutation>> {
        self.0.lock().unwrap().clone()
    }

    pub fn mutations(&self) -> Vec<Mutation> {
        self.batches().concat()
    }
}

#[async_trait]
impl StateSink for Sink {
    async fn persist(&self, m: Vec<Mutation>) -> Result<(), String> {
        self.0.lock().unwrap().push(m);
        Ok(())
    }

    fn record(&self, m: Vec<Mutation>) {
        self.0.lock().unwrap().push(m);
    }
}

/// A configuration in a temporary directory planned and applied against one [`Mock`]: the
/// fixture of every test here. Each call builds a fresh [`kiln_core::Providers`] unless the test
/// passes its own (`plan_with`, `apply_with`).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub mock: Arc<Mock>,
}

impl Fixture {
    pub fn new(src: &str) -> Self {
        Self::with_mock(src, Mock::default())
    }

    pub fn with_mock(src: &str, mock: Mock) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.kiln.hcl"), src).unwrap();
        Fixture { dir, mock: Arc::new(mock) }
    }

    /// Replaces the configuration.
    pub fn rewrite(&self, src: &str) {
        std::fs::write(self.dir.path().join("main.kiln.hcl"), src).unwrap();
    }

    /// The configuration; panics on errors.
    pub fn config(&self) -> kiln_config::Config {
        let (config, d) = kiln_config::load(self.dir.path());
        assert!(!d.has_errors(), "{d:?}");
        config.unwrap()
    }

    /// The plan and the diagnostics, as the core returns them.
    pub async fn try_plan(
        &self,
        state: &State,
        mode: kiln_plan::Mode,
        variables: BTreeMap<String, Value>,
        providers: &Providers,
    ) -> (Option<Plan>, Diagnostics) {
        let config = self.config();
        let reg = registry(&self.mock);
        kiln_core::plan(kiln_core::PlanRequest {
            config: &config,
            state,
            registry: &reg,
            providers,
            variables,
            mode,
            refresh: true,
            workspace: "default".into(),
            targets: Vec::new(),
            excludes: Vec::new(),
            replace: Vec::new(),
            hook: &NoopHook,
            cwd: self.dir.path().to_path_buf(),
            placement: Default::default(),
        })
        .await
    }

    pub async fn plan_mode(&self, state: &State, mode: kiln_plan::Mode) -> (Option<Plan>, Diagnostics) {
        self.try_plan(state, mode, BTreeMap::new(), &Providers::new()).await
    }

    pub async fn plan_vars(&self, state: &State, variables: BTreeMap<String, Value>) -> (Option<Plan>, Diagnostics) {
        self.try_plan(state, kiln_plan::Mode::Normal, variables, &Providers::new()).await
    }

    /// A plan made with the command's `providers`; panics on errors.
    pub async fn plan_with(&self, state: &State, mode: kiln_plan::Mode, providers: &Providers) -> Plan {
        let (p, d) = self.try_plan(state, mode, BTreeMap::new(), providers).await;
        assert!(!d.has_errors(), "{d:?}");
        p.unwrap()
    }

    /// A normal plan; panics on errors.
    pub async fn plan(&self, state: &State) -> Plan {
        self.plan_with(state, kiln_plan::Mode::Normal, &Providers::new()).await
    }

    pub async fn apply_with(&self, state: &State, plan: &Plan, providers: &Providers, sink: Arc<Sink>) -> ApplyOutcome {
        let config = self.config();
        let reg = registry(&self.mock);
        kiln_core::apply(kiln_core::ApplyRequest {
            config: &config,
            state: state.clone(),
            registry: &reg,
            providers,
            plan,
            hook: Arc::new(NoopHook),
            sink,
            cancel: Cancel::never(),
            cwd: self.dir.path().to_path_buf(),
            parallelism: None,
            workspace: "default".into(),
        })
        .await
    }

    /// Applies `plan`, recording what is persisted in `sink`.
    pub async fn apply_into(&self, state: &State, plan: &Plan, sink: Arc<Sink>) -> ApplyOutcome {
        self.apply_with(state, plan, &Providers::new(), sink).await
    }

    pub async fn apply(&self, state: &State, plan: &Plan) -> ApplyOutcome {
        self.apply_into(state, plan, Arc::new(Sink::default())).await
    }

    /// Plans and applies; panics on errors.
    pub async fn converge(&self, state: &State) -> State {
        let p = self.plan(state).await;
        let out = self.apply(state, &p).await;
        assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
        out.state
    }

    /// How many times the mock's factory configured a provider.
    pub fn configures(&self) -> usize {
        self.mock.configures.load(Ordering::SeqCst)
    }

    /// Forgets the calls, plans and configurations counted so far.
    pub fn reset(&self) {
        self.mock.configures.store(0, Ordering::SeqCst);
        self.mock.calls.lock().unwrap().clear();
        self.mock.planned.lock().unwrap().clear();
    }
}
