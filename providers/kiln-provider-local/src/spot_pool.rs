//! `spot_pool` is a portable kind the local machine cannot offer: every operation fails with a
//! message that says so and where spot capacity can be had.

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, UpdateRequest,
};

use crate::util::{error, read_error};
use crate::{Ctx, Kind, LazyProcs};

pub(crate) struct SpotPool;

fn unsupported(address: &str) -> Diagnostic {
    error("E-LOCAL-SPOT", address, format!("{address}: local machines have no spot market; use provider = aws"))
        .hint(format!("add `provider = aws` to {address} (and configure `provider \"aws\"`), or drop the pool and give the cluster its `accelerators` directly"))
}

#[async_trait]
impl Kind<Ctx, LazyProcs> for SpotPool {
    async fn plan(&self, _ctx: &Ctx, req: &PlanRequest<'_>) -> PlanResponse {
        PlanResponse { planned: req.proposed.clone(), requires_replace: Vec::new(), diagnostics: unsupported(req.address).into() }
    }
    async fn create(&self, _ctx: &Ctx, req: &CreateRequest<'_>) -> ApplyResponse {
        ApplyResponse::error(unsupported(req.address))
    }
    async fn update(&self, _ctx: &Ctx, req: &UpdateRequest<'_>) -> ApplyResponse {
        ApplyResponse::error(unsupported(req.address))
    }
    async fn delete(&self, _ctx: &Ctx, _req: &DeleteRequest<'_>) -> Diagnostics {
        // Nothing can exist, so there is nothing to delete.
        Diagnostics::new()
    }
    async fn read(&self, _ctx: &Ctx, items: &[&ReadItem<'_>], _procs: &LazyProcs) -> Vec<ReadResult> {
        items.iter().map(|_item| ReadResult::gone()).collect()
    }
    async fn recover(&self, _ctx: &Ctx, _req: &RecoverRequest<'_>) -> ReadResult {
        ReadResult::gone()
    }
    async fn import(&self, _ctx: &Ctx, req: &ImportRequest<'_>) -> ReadResult {
        read_error(unsupported(req.address))
    }
}
