//! The dispatch before `Kind` methods returned `Result`s: kept only while providers move to
//! [`super::Kind`]; removed once none uses it.
//!
//! Dispatch from a provider to its kinds. A provider implements [`Kind`] once per kind over its
//! own context `C` (clients, settings) and a per-read batch `B` (something every kind of one
//! batched read shares, such as one listing of all instances), lists them in a [`Kinds`] table,
//! and forwards each [`crate::Provider`] method to the table, which answers unknown kinds with
//! one error naming the kinds there are.

use std::collections::BTreeMap;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_value::Value;

use crate::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, LogsRequest, LogsResponse, PlanRequest, PlanResponse,
    ReadItem, ReadRequest, ReadResponse, ReadResult, RecoverRequest, UpdateRequest, ValidateRequest,
};

/// One kind's operations.
#[async_trait]
pub trait Kind<C: Sync, B: Sync>: Send + Sync {
    fn validate(&self, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }
    async fn plan(&self, ctx: &C, req: &PlanRequest<'_>) -> PlanResponse;
    async fn create(&self, ctx: &C, req: &CreateRequest<'_>) -> ApplyResponse;
    async fn update(&self, ctx: &C, req: &UpdateRequest<'_>) -> ApplyResponse;
    async fn delete(&self, ctx: &C, req: &DeleteRequest<'_>) -> Diagnostics;
    /// Every item of this kind in one read request, answered in order.
    async fn read(&self, ctx: &C, items: &[&ReadItem<'_>], batch: &B) -> Vec<ReadResult>;
    async fn recover(&self, ctx: &C, req: &RecoverRequest<'_>) -> ReadResult;
    async fn import(&self, _ctx: &C, req: &ImportRequest<'_>) -> ReadResult {
        ReadResult {
            state: None,
            diagnostics: Diagnostic::error("E-IMPORT-UNSUPPORTED", format!("{}: importing a `{}` is not supported", req.address, req.kind))
                .address(req.address)
                .hint("declare the resource and run `kiln apply`")
                .into(),
        }
    }
    async fn logs(&self, _ctx: &C, req: &LogsRequest<'_>) -> LogsResponse {
        let d = Diagnostic::error("E-PROVIDER-LOGS", format!("{}: kind `{}` has no logs", req.address, req.kind));
        LogsResponse { data: Vec::new(), next_offset: req.offset, finished: true, diagnostics: d.into() }
    }
}

/// A provider's kinds by name.
pub struct Kinds<C: 'static, B: 'static> {
    pub provider: &'static str,
    pub kinds: &'static [(&'static str, &'static (dyn Kind<C, B> + 'static))],
}

impl<C: Sync, B: Sync> Kinds<C, B> {
    fn get(&self, name: &str) -> Result<&'static dyn Kind<C, B>, Diagnostic> {
        self.kinds.iter().find(|(n, _)| *n == name).map(|(_, k)| *k).ok_or_else(|| {
            let names: Vec<&str> = self.kinds.iter().map(|(n, _)| *n).collect();
            Diagnostic::error("E-KIND-UNKNOWN", format!("provider `{}` has no kind `{name}`", self.provider)).hint(format!(
                "kinds of `{}`: {}",
                self.provider,
                names.join(", ")
            ))
        })
    }

    pub fn validate(&self, req: ValidateRequest<'_>) -> Diagnostics {
        self.get(req.kind).map_or_else(Diagnostics::from, |k| k.validate(req.config))
    }

    pub async fn plan(&self, ctx: &C, req: PlanRequest<'_>) -> PlanResponse {
        match self.get(req.kind) {
            Ok(k) => k.plan(ctx, &req).await,
            Err(d) => PlanResponse { planned: req.proposed.clone(), requires_replace: Vec::new(), diagnostics: d.into() },
        }
    }

    pub async fn create(&self, ctx: &C, req: CreateRequest<'_>) -> ApplyResponse {
        match self.get(req.kind) {
            Ok(k) => k.create(ctx, &req).await,
            Err(d) => ApplyResponse::error(d),
        }
    }

    pub async fn update(&self, ctx: &C, req: UpdateRequest<'_>) -> ApplyResponse {
        match self.get(req.kind) {
            Ok(k) => k.update(ctx, &req).await,
            Err(d) => ApplyResponse::error(d),
        }
    }

    pub async fn delete(&self, ctx: &C, req: DeleteRequest<'_>) -> Diagnostics {
        match self.get(req.kind) {
            Ok(k) => k.delete(ctx, &req).await,
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
                Err(d) => items.iter().map(|_| ReadResult { state: None, diagnostics: d.clone().into() }).collect(),
            };
            for (i, r) in idx.into_iter().zip(out) {
                results[i] = Some(r);
            }
        }
        ReadResponse { results: results.into_iter().map(|r| r.unwrap_or_else(ReadResult::gone)).collect() }
    }

    pub async fn recover(&self, ctx: &C, req: RecoverRequest<'_>) -> ReadResult {
        match self.get(req.kind) {
            Ok(k) => k.recover(ctx, &req).await,
            Err(d) => ReadResult { state: None, diagnostics: d.into() },
        }
    }

    pub async fn import(&self, ctx: &C, req: ImportRequest<'_>) -> ReadResult {
        match self.get(req.kind) {
            Ok(k) => k.import(ctx, &req).await,
            Err(d) => ReadResult { state: None, diagnostics: d.into() },
        }
    }

    pub async fn logs(&self, ctx: &C, req: LogsRequest<'_>) -> LogsResponse {
        match self.get(req.kind) {
            Ok(k) => k.logs(ctx, &req).await,
            Err(d) => LogsResponse { data: Vec::new(), next_offset: req.offset, finished: true, diagnostics: d.into() },
        }
    }
}
