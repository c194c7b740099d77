//! `spot_pool` is a portable kind the local machine cannot offer: every operation fails with a
//! message that says so and where spot capacity can be had.

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, UpdateRequest,
};

use crate::util::error;
use crate::{Ctx, Kind, KindSchema, LazyProcs, Outcome};

pub(crate) struct SpotPool;

fn unsupported(address: &str) -> Diagnostic {
    error("E-LOCAL-SPOT", address, format!("{address}: local machines have no spot market; use provider = aws"))
        .hint(format!("add `provider = aws` to {address} (and configure `provider \"aws\"`), or drop the pool and give the cluster its `accelerators` directly"))
}

#[async_trait]
impl Kind<Ctx, LazyProcs> for SpotPool {
    fn name(&self) -> &'static str {
        "spot_pool"
    }
    fn schema(&self) -> KindSchema {
        KindSchema::new("Not available locally: this machine has no spot market", crate::schema::spot_pool())
    }
    async fn plan(&self, _ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        Err(unsupported(req.address).into())
    }
    async fn create(&self, _ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        Err(unsupported(req.address).into())
    }
    async fn update(&self, _ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        Err(unsupported(req.address).into())
    }
    async fn delete(&self, _ctx: &Ctx, _req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        // Nothing can exist, so there is nothing to delete.
        Ok(Diagnostics::new())
    }
    async fn read(&self, _ctx: &Ctx, items: &[&ReadItem<'_>], _procs: &LazyProcs) -> Outcome<Vec<ReadResult>> {
        Ok(items.iter().map(|_item| ReadResult::gone()).collect())
    }
    async fn recover(&self, _ctx: &Ctx, _req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(ReadResult::gone())
    }
    async fn import(&self, _ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        Err(unsupported(req.address).into())
    }
}
