//! A mock provider and state sink for kiln-core's tests (only here: every real provider is
//! tested against its real service by the conformance suite).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_core::{ProviderRegistry, StateSink};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, ConfigureRequest, CreateRequest, DeleteRequest, ImportRequest, Limits, PlanRequest, PlanResponse, Provider,
    ProviderFactory, ReadRequest, ReadResponse, ReadResult, RecoverRequest, UpdateRequest, ValidateRequest,
};
use kiln_schema::{Attribute, Body, KindSchema, ProviderSchema};
use kiln_state::Mutation;
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
        .attr("key", Attribute::computed(Type::String, "a generated secret").sensitive())
        .attr("id", Attribute::computed(Type::String, "id"));
    let config = Body::new().attr("region", Attribute::optional(Type::String, "region"));
    ProviderSchema { config, kinds: [("thing".to_string(), KindSchema::new("a thing", thing))].into(), data_kinds: Default::default() }
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
        PlanResponse { planned: req.proposed.clone(), requires_replace: Vec::new(), diagnostics: Diagnostics::new() }
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
        ReadResponse { results: req.items.iter().map(|i| ReadResult::found(i.state.clone())).collect() }
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
