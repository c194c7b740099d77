//! `fleet` (resource) and `inventory` (data source): the provider's hosts as they are now, one
//! object per host with its hardware (see [`crate::inventory`]), whether it answered, and the
//! GPUs clusters hold. A fleet lives only in kiln's state; every refresh describes the hosts
//! again, so a host that stops answering shows as `reachable = false` in the plan. A host whose
//! key is unknown or changed is an error; one that does not answer is a warning.

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::kinds::DataSource;
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadDataRequest, ReadItem,
    ReadResult, RecoverRequest, UpdateRequest,
};
use kiln_value::Value;

use crate::scan::{scan_all, HostScan};
use crate::ssh::SshError;
use crate::util::{attrs, error, num, str_list, str_map, strings};
use crate::{Batch, Ctx, Kind, KindSchema, Outcome};

pub(crate) struct Fleet;

/// Whether the fleet (or inventory) selects host `s` by its `names` and `labels`.
fn selected(config: &Value, s: &HostScan) -> bool {
    let names = str_list(config, "names");
    let labels = str_map(config, "labels");
    (names.is_empty() || names.contains(&s.host.name)) && labels.iter().all(|(k, v)| s.host.labels.get(k) == Some(v))
}

fn problems(scans: &[&HostScan]) -> Diagnostics {
    scans
        .iter()
        .filter_map(|s| match &s.result {
            Err(SshError::HostKey(m)) => Some(
                Diagnostic::error("E-ONPREM-HOST-KEY", m.clone())
                    .hint("check the key on the host itself (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) and set `host_key` to it"),
            ),
            Err(e) => Some(Diagnostic::warning("W-ONPREM-UNREACHABLE", e.message().to_string())),
            Ok(_) => None,
        })
        .collect()
}

/// `config` with the computed attributes describing the selected hosts.
fn describe(config: &Value, scans: &[HostScan]) -> (Value, Diagnostics) {
    let chosen: Vec<&HostScan> = scans.iter().filter(|s| selected(config, s)).collect();
    let up = chosen.iter().filter_map(|s| s.result.as_ref().ok());
    let gpu_count: usize = up.clone().map(|(inv, _)| inv.gpus.len()).sum();
    let gpus_free: usize = up.map(|(inv, claims)| inv.gpus.iter().filter(|g| !claims.gpus.contains_key(&g.index)).count()).sum();
    let mut m = attrs(config);
    m.extend([
        ("hosts".to_string(), Value::List(chosen.iter().map(|s| s.to_value()).collect())),
        ("unreachable".to_string(), strings(chosen.iter().filter(|s| s.result.is_err()).map(|s| s.host.name.as_str()))),
        ("gpu_count".to_string(), num(gpu_count as u64)),
        ("gpus_free".to_string(), num(gpus_free as u64)),
    ]);
    (Value::Map(m), problems(&chosen))
}

/// The `inventory` data source.
/// The `inventory` data source: the fleet's hosts and their hardware, read over SSH.
pub(crate) struct Inventory;

#[async_trait]
impl DataSource<Ctx> for Inventory {
    fn name(&self) -> &'static str {
        "inventory"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("The fleet's hosts and their hardware, read over SSH", crate::schema::fleet()).state_only()
    }

    async fn read(&self, ctx: &Ctx, req: &ReadDataRequest<'_>) -> Outcome<ReadResult> {
        let (state, diagnostics) = describe(req.config, &scan_all(ctx).await);
        Ok(ReadResult { state: Some(state), diagnostics })
    }
}

async fn applied(ctx: &Ctx, address: &str, config: &Value) -> ApplyResponse {
    let (state, diagnostics) = describe(config, &scan_all(ctx).await);
    ApplyResponse { state: Some(state), diagnostics: diagnostics.with_address(address) }
}

#[async_trait]
impl Kind<Ctx, Batch> for Fleet {
    fn name(&self) -> &'static str {
        "fleet"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("The fleet's hosts and their hardware, refreshed over SSH", crate::schema::fleet()).state_only()
    }

    async fn plan(&self, _ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        Ok(PlanResponse { planned: req.proposed.clone(), requires_replace: Vec::new(), diagnostics: Diagnostics::new() })
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(applied(ctx, req.address, req.planned).await)
    }

    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(applied(ctx, req.address, req.planned).await)
    }

    async fn delete(&self, _ctx: &Ctx, _req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        // A fleet is a description of hosts kiln does not own: nothing to remove.
        Ok(Diagnostics::new())
    }

    /// Every item at once, each in its own task over the shared host connections.
    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], batch: &Batch) -> Outcome<Vec<ReadResult>> {
        Ok(futures_util::future::join_all(items.iter().map(|item| async move {
            let (state, diagnostics) = describe(item.state, batch.scans(ctx).await);
            ReadResult { state: Some(state), diagnostics: diagnostics.with_address(item.address) }
        }))
        .await)
    }

    async fn recover(&self, _ctx: &Ctx, _req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(ReadResult::gone())
    }

    async fn import(&self, _ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        Err(error("E-ONPREM-IMPORT", req.address, "a fleet exists only in kiln's state: declare it instead of importing it").into())
    }
}
