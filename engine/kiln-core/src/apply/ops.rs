//! Apply's operations: the per-provider concurrency limits, deletes in reverse dependency
//! order, and the tasks that create, update and delete objects, each handing its state changes
//! to the [`StateSink`] as it completes (a create's pending entry durable before it starts).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use kiln_addrs::InstanceAddr;
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_plan::Action;
use kiln_provider::{CreateRequest, DeleteRequest, Provider, UpdateRequest};
use kiln_schema::KindSchema;
use kiln_state::{DeposedObject, Mutation, PendingCreate, ResourceState, State};
use kiln_value::{Secrets, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::graph::{delete_order, DeleteItem, DeleteOrder};
use super::{Cancel, StateSink};
use crate::context::remark;
use crate::hooks::{Hook, Subject};

/// What runs operations: progress, the state sink, interruption and concurrency limits.
pub(crate) struct Ops {
    pub hook: Arc<dyn Hook>,
    pub sink: Arc<dyn StateSink>,
    pub cancel: Cancel,
    /// Overrides every provider's own concurrency limit when set.
    pub parallelism: Option<usize>,
    limits: HashMap<String, Option<Arc<Semaphore>>>,
}

pub(crate) struct OpResult {
    pub addr: InstanceAddr,
    /// Which of [`run_deletes`]' items it was (0 elsewhere).
    pub index: usize,
    pub mutations: Vec<Mutation>,
    pub value: Option<Value>,
    pub diagnostics: Diagnostics,
}

impl OpResult {
    /// An operation that was queued when an interrupt came, and never started.
    fn not_started(addr: InstanceAddr) -> Self {
        OpResult { addr, index: 0, mutations: Vec::new(), value: None, diagnostics: Diagnostics::new() }
    }
}

impl Ops {
    pub fn new(hook: Arc<dyn Hook>, sink: Arc<dyn StateSink>, cancel: Cancel, parallelism: Option<usize>) -> Self {
        Ops { hook, sink, cancel, parallelism, limits: HashMap::new() }
    }

    fn semaphore(&mut self, key: &str, p: &dyn Provider) -> Option<Arc<Semaphore>> {
        let parallelism = self.parallelism;
        self.limits
            .entry(key.to_string())
            .or_insert_with(|| parallelism.or(p.limits().concurrency).map(|n| Arc::new(Semaphore::new(n.max(1)))))
            .clone()
    }
}

pub(crate) async fn commit(state: &mut State, sink: &Arc<dyn StateSink>, muts: Vec<Mutation>, diags: &mut Diagnostics) {
    for m in &muts {
        state.apply_mutation(m);
    }
    if let Err(e) = sink.persist(muts).await {
        diags.push(
            Diagnostic::error("E-STATE-WRITE", format!("cannot save state: {e}"))
                .hint("check the disk and permissions; state is also written at the end of apply"),
        );
    }
}

/// A short random key for a deposed object.
pub(crate) fn deposed_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

pub(crate) fn resource_state(
    provider: &str,
    kind: &str,
    value: Value,
    sensitive: &[String],
    deps: Vec<InstanceAddr>,
    cbd: bool,
) -> ResourceState {
    let (attributes, _) = value.unmark_deep();
    ResourceState {
        provider: provider.to_string(),
        kind: kind.to_string(),
        attributes,
        sensitive: sensitive.to_vec(),
        dependencies: deps,
        tainted: false,
        create_before_destroy: cbd,
        billing: None,
        released: None,
    }
}
/// What a create's pending entry keeps of its planned value: plain values, with a job's
/// `secret_env` sealed (a salted digest per key, as the provider's state holds it). The entry
/// is written before the create runs and stays in state (and its backup) if kiln dies
/// meanwhile, so it never holds those values in clear; a provider's `recover` finds the object
/// by its token, and an object not found is gone (the next plan creates it from the
/// configuration's values). Other sensitive attributes stay as in a resource's state, whose
/// `sensitive_attributes` name them; `kiln state pull` counts any pending entry as sensitive.
pub(crate) fn pending_planned(planned: &Value, schema: &KindSchema) -> Value {
    use kiln_provider::portable::secret_env;
    let plain = planned.clone().unmark_deep().0;
    if schema.body.attributes.contains_key(secret_env::ATTR) {
        secret_env::seal(plain)
    } else {
        plain
    }
}

/// Deletes in reverse dependency order, concurrently where independent.
pub(crate) async fn run_deletes(
    deletes: Vec<DeleteItem>,
    providers: &HashMap<String, Arc<dyn Provider>>,
    ops: &mut Ops,
    state: &mut State,
    diags: &mut Diagnostics,
) -> bool {
    if deletes.is_empty() {
        return false;
    }
    let DeleteOrder { mut waiting, unblocks } = delete_order(&deletes);
    let mut ready: Vec<usize> = (0..deletes.len()).filter(|i| waiting[*i] == 0).collect();
    ready.sort_by(|a, b| deletes[*a].address.cmp(&deletes[*b].address));
    let mut tasks: JoinSet<OpResult> = JoinSet::new();
    let mut cancel = ops.cancel.clone();
    loop {
        while let Some(i) = ready.pop() {
            if cancel.level() >= 1 {
                continue;
            }
            let d = &deletes[i];
            let Some(p) = providers.get(&d.provider).cloned() else {
                diags.push(
                    Diagnostic::error("E-PROVIDER-MISSING", format!("provider `{}` is not configured", d.provider)).address(&d.address),
                );
                continue;
            };
            let sem = ops.semaphore(&d.provider, p.as_ref());
            let (hook, sink) = (ops.hook.clone(), ops.sink.clone());
            let (addr, kind, prior, done, exists) = (d.address.clone(), d.kind.clone(), d.prior.clone(), d.done.clone(), d.exists);
            let secrets = d.secrets.clone();
            let cancel_task = cancel.clone();
            tasks.spawn(async move {
                let _permit = match &sem {
                    Some(s) => Some(s.clone().acquire_owned().await.expect("semaphore open")),
                    None => None,
                };
                if cancel_task.level() >= 1 {
                    return OpResult { index: i, ..OpResult::not_started(addr) };
                }
                let key = match &done {
                    Mutation::RemoveDeposed { key } => Some(key.clone()),
                    _ => None,
                };
                let what = Subject { addr: &addr, deposed: key.as_deref() };
                hook.apply_start(what, Action::Delete);
                let started = Instant::now();
                let name = addr.to_string();
                let d = if exists {
                    crate::redact::diags(p.delete(DeleteRequest { address: &name, kind: &kind, prior: &prior }).await, &secrets)
                } else {
                    Diagnostics::new()
                };
                let mut mutations = Vec::new();
                if !d.has_errors() {
                    mutations.push(done);
                    sink.record(mutations.clone());
                }
                let err = d.errors().next().map(ToString::to_string);
                hook.apply_done(what, Action::Delete, err.as_deref(), started.elapsed());
                OpResult { addr, index: i, mutations, value: None, diagnostics: d.with_address(&name) }
            });
        }
        let Some(res) = next_result(&mut tasks, &mut cancel).await else { break };
        let Some(res) = res else { return true };
        let ok = !res.diagnostics.has_errors();
        for m in &res.mutations {
            state.apply_mutation(m);
        }
        diags.extend(res.diagnostics);
        if ok {
            for &b in &unblocks[res.index] {
                waiting[b] -= 1;
                if waiting[b] == 0 {
                    ready.push(b);
                }
            }
        }
    }
    cancel.level() >= 1
}

/// Waits for the next finished task. `None`: nothing left; `Some(None)`: abandoned (second Ctrl-C).
pub(crate) async fn next_result(tasks: &mut JoinSet<OpResult>, cancel: &mut Cancel) -> Option<Option<OpResult>> {
    loop {
        if tasks.is_empty() {
            return None;
        }
        if cancel.level() >= 2 {
            // Abandon: stop waiting. Operations are cancelled where they wait; one that already
            // finished has handed its changes to the sink, and a create cut short keeps its
            // durable pending entry for the next plan to resolve. A moment is given for the
            // cancelled ones to unwind, so none of them writes after the final snapshot.
            tasks.abort_all();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async { while tasks.join_next().await.is_some() {} }).await;
            tasks.detach_all();
            return Some(None);
        }
        tokio::select! {
            r = tasks.join_next() => match r {
                Some(Ok(r)) => return Some(Some(r)),
                Some(Err(e)) => {
                    tracing::error!("apply task failed: {e}");
                    continue;
                }
                None => return None,
            },
            changed = cancel.0.changed() => {
                if changed.is_err() {
                    // The sender is gone: no more interrupts can come.
                    let r = tasks.join_next().await;
                    return match r { Some(Ok(r)) => Some(Some(r)), _ => None };
                }
            }
        }
    }
}

/// A create or update, planned with final values and checked against the reviewed plan.
pub(crate) struct Operation {
    pub addr: InstanceAddr,
    /// `Create` (a create, or the create of a replacement) or `Update`.
    pub op: Action,
    pub provider_key: String,
    pub provider: Arc<dyn Provider>,
    pub kind: String,
    pub schema: KindSchema,
    /// The final planned value, marked where sensitive.
    pub planned: Value,
    pub sensitive: Vec<String>,
    /// What the provider's errors must not quote.
    pub secrets: Secrets,
    pub dependencies: Vec<InstanceAddr>,
    pub create_before_destroy: bool,
    /// The object's attributes in state (an update's prior).
    pub prior: Option<Value>,
    /// A create_before_destroy replacement deposes the old object once the new one exists.
    pub deposing: Option<ResourceState>,
    /// What its price record will say.
    pub pricing: super::billing::Pricing,
}

impl Operation {
    /// Starts the operation: it waits for its provider's concurrency limit, then (unless an
    /// interrupt came meanwhile) makes a create's pending entry durable, calls the provider, and
    /// hands its state changes to the sink.
    pub fn spawn(self, ops: &mut Ops, tasks: &mut JoinSet<OpResult>) {
        let sem = ops.semaphore(&self.provider_key, self.provider.as_ref());
        let (hook, sink, cancel) = (ops.hook.clone(), ops.sink.clone(), ops.cancel.clone());
        tasks.spawn(async move {
            let _permit = match &sem {
                Some(s) => Some(s.clone().acquire_owned().await.expect("semaphore open")),
                None => None,
            };
            if cancel.level() >= 1 {
                return OpResult::not_started(self.addr);
            }
            self.run(hook.as_ref(), sink.as_ref()).await
        });
    }

    async fn run(self, hook: &dyn Hook, sink: &dyn StateSink) -> OpResult {
        let Operation { addr, op, provider_key, provider: p, kind, schema, planned, sensitive, secrets, dependencies, .. } = self;
        let name = addr.to_string();
        let what = Subject { addr: &addr, deposed: None };
        hook.apply_start(what, op);
        let t0 = Instant::now();
        let mut mutations = Vec::new();
        let resp = if op == Action::Create && schema.state_only {
            // Nothing outside kiln's state is created: no pending entry to make durable.
            p.create(CreateRequest { address: &name, kind: &kind, planned: &planned, token: "" }).await
        } else if op == Action::Create {
            let token = uuid::Uuid::new_v4().to_string();
            let pending = Mutation::PutPending(PendingCreate {
                address: addr.clone(),
                provider: provider_key.clone(),
                kind: kind.clone(),
                token: token.clone(),
                planned: pending_planned(&planned, &schema),
                started_at: chrono::Utc::now().to_rfc3339(),
            });
            if let Err(e) = sink.persist(vec![pending.clone()]).await {
                let d: Diagnostics =
                    Diagnostic::error("E-STATE-WRITE", format!("cannot save the pending entry: {e}")).address(&addr).into();
                hook.apply_done(what, op, Some("state write failed"), t0.elapsed());
                return OpResult { addr, index: 0, mutations, value: None, diagnostics: d };
            }
            mutations.push(pending);
            let r = p.create(CreateRequest { address: &name, kind: &kind, planned: &planned, token: &token }).await;
            mutations.push(Mutation::ClearPending { token });
            r
        } else {
            let prior = self.prior.unwrap_or(Value::Null);
            p.update(UpdateRequest { address: &name, kind: &kind, prior: &prior, planned: &planned }).await
        };
        let mut resp = resp;
        resp.diagnostics = crate::redact::diags(std::mem::take(&mut resp.diagnostics), &secrets);
        let mut value = None;
        if let Some(new) = resp.state {
            let mut rs = resource_state(&provider_key, &kind, new.clone(), &sensitive, dependencies, self.create_before_destroy);
            rs.tainted = resp.diagnostics.has_errors();
            rs.billing = self.pricing.record(&new, chrono::Utc::now());
            if let Some(b) = rs.billing.as_ref().filter(|b| op == Action::Create && !b.offering.is_empty()) {
                hook.launched(what, &b.offering, b.hourly);
            }
            let depose = |resource| Mutation::PutDeposed(DeposedObject { key: deposed_key(), address: addr.clone(), resource });
            match self.deposing {
                // The old object stays; the broken new one is destroyed after the creates.
                Some(_) if rs.tainted => mutations.push(depose(rs)),
                old => {
                    mutations.extend(old.map(depose));
                    mutations.push(Mutation::Put { address: addr.clone(), resource: rs });
                    // References to it see the marks its plan had (a provider returns plain values).
                    value = Some(remark(new, &schema, &sensitive));
                }
            }
        }
        // Queued behind the pending entry: durable no later than anything a dependent writes.
        sink.record(mutations.iter().filter(|m| !matches!(m, Mutation::PutPending(_))).cloned().collect());
        let err = resp.diagnostics.errors().next().map(ToString::to_string);
        hook.apply_done(what, op, err.as_deref(), t0.elapsed());
        OpResult { addr, index: 0, mutations, value, diagnostics: resp.diagnostics.with_address(&name) }
    }
}
