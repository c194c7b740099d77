//! The in-memory state model. Independent of any file format: `format.rs` maps it to and from
//! the versioned JSON document.

use std::collections::BTreeMap;

use kiln_addrs::InstanceAddr;
use kiln_value::Value;

/// Everything kiln knows it manages, for one workspace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    /// Identifies one history of states; a saved plan or a lock is only valid within it.
    pub lineage: String,
    /// Incremented on every persisted change.
    pub serial: u64,
    pub resources: BTreeMap<InstanceAddr, ResourceState>,
    /// Creates that started and whose outcome is unknown: each names the token handed to the
    /// provider, so the next plan can adopt what was created or clean it up.
    pub pending: BTreeMap<String, PendingCreate>,
    pub outputs: BTreeMap<String, OutputState>,
    /// Old objects of `create_before_destroy` replacements, by key: their address holds the
    /// new object, and they wait to be destroyed (the apply that replaced them was interrupted,
    /// or their destroy failed). Every plan destroys them.
    pub deposed: BTreeMap<String, DeposedObject>,
    /// What happened to each job (preemptions, relaunches, ...), oldest first and at most
    /// [`MAX_EVENTS_PER_JOB`] per address. Kept after the job's resource is removed, so a
    /// destroyed job's history stays readable.
    pub events: BTreeMap<InstanceAddr, Vec<JobEvent>>,
}

/// How many events state keeps per job: a job restarted for weeks must not grow state without
/// bound, so [`Mutation::AddEvent`] drops the oldest beyond this.
pub const MAX_EVENTS_PER_JOB: usize = 200;

/// One thing that happened to a job, recorded by `kiln watch` or apply.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobEvent {
    /// RFC 3339 time kiln recorded it.
    pub at: String,
    /// What happened: "detected", "relaunched", "paused", "gave_up", "resumed", "succeeded", ...
    pub kind: String,
    /// The recovery category when there is one: "preemption", "host_failure", "no_capacity", "error".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Human-readable detail (no secrets: callers pass redacted text).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The job's restart count (attempt number, from 0) the event belongs to.
    #[serde(default)]
    pub attempt: u64,
    /// Milliseconds from when the event was observable to when kiln recorded it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceState {
    /// Provider configuration address, such as `kiln`, `local` or `aws.west`.
    pub provider: String,
    pub kind: String,
    /// Attribute values as the provider returned them (a map, no unknowns).
    pub attributes: Value,
    /// Top-level attribute names whose values are sensitive.
    pub sensitive: Vec<String>,
    /// Instance addresses this one depended on when it was last applied (for destroy order).
    pub dependencies: Vec<InstanceAddr>,
    /// A create or update that failed part-way: the next plan replaces it.
    pub tainted: bool,
    pub create_before_destroy: bool,
    /// What the object costs, as recorded at apply (never re-priced from a later catalog).
    pub billing: Option<Billing>,
    /// The object was deleted when the job it served finished (`on_finish = "destroy_capacity"`):
    /// its attributes are what it had, kept so a later plan can tell whether its configuration
    /// changed. Nothing is read, billed or deleted for it; a plan creates it again when its
    /// configuration changes or a job that needs it is created or replaced.
    pub released: Option<Released>,
}

/// When and for which job an object was released.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Released {
    /// RFC 3339 time of the release.
    pub at: String,
    /// The job whose finish released it.
    pub by: InstanceAddr,
}

impl ResourceState {
    /// The state of this object once released by the job `by` at `now`: the same attributes,
    /// its spend so far closed, and nothing more billed (a known $0 an hour, not an unknown price).
    pub fn released(&self, by: &InstanceAddr, now: chrono::DateTime<chrono::Utc>) -> ResourceState {
        let billing = self.billing.as_ref().map(|b| Billing {
            hourly: Some(kiln_value::Decimal::ZERO),
            since: now.to_rfc3339(),
            spent_before: b.spent(now).unwrap_or(b.spent_before),
            offering: b.offering.clone(),
            placement: b.placement.clone(),
            fallbacks: b.fallbacks.clone(),
            request_digest: b.request_digest.clone(),
        });
        ResourceState { billing, released: Some(Released { at: now.to_rfc3339(), by: by.clone() }), tainted: false, ..self.clone() }
    }
}

/// The price an object was launched or last changed at, and what it cost before that: `kiln
/// cost`'s spend so far is `spent_before` plus `hourly` for the hours since `since`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Billing {
    /// USD per hour of the whole object since `since`; `None`: unknown (never counted as 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<kiln_value::Decimal>,
    /// RFC 3339 time the price started to count.
    pub since: String,
    /// USD spent at earlier prices, before `since`.
    #[serde(default)]
    pub spent_before: kiln_value::Decimal,
    /// What the price is for ("aws p5.48xlarge spot, us-east-1, 2 nodes").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub offering: String,
    /// The placement optimizer's choice when it placed the object (a `kiln_plan::PlacedOffering`
    /// as a value): a later plan keeps it while the request is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Value>,
    /// The fallbacks the decision listed (kept with it: they are part of what was launched).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<Value>,
    /// Digest of the request the placement was made for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_digest: String,
}

impl Billing {
    /// USD spent at this price from `since` to `now` (`None`: the price is unknown).
    pub fn spent_since(&self, now: chrono::DateTime<chrono::Utc>) -> Option<kiln_value::Decimal> {
        let since = chrono::DateTime::parse_from_rfc3339(&self.since).ok()?;
        let secs = (now - since.with_timezone(&chrono::Utc)).num_seconds().max(0);
        Some(self.hourly? * kiln_value::Decimal::from(secs) / kiln_value::Decimal::from(3600))
    }

    /// USD spent so far, at this and earlier prices (`None`: the price is unknown).
    pub fn spent(&self, now: chrono::DateTime<chrono::Utc>) -> Option<kiln_value::Decimal> {
        Some(self.spent_before + self.spent_since(now)?)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingCreate {
    pub address: InstanceAddr,
    pub provider: String,
    pub kind: String,
    /// Idempotency token handed to the provider's create.
    pub token: String,
    /// The planned attributes the create was called with.
    pub planned: Value,
    /// RFC 3339 time the create started.
    pub started_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeposedObject {
    /// Short random identifier, shown in plans.
    pub key: String,
    pub address: InstanceAddr,
    pub resource: ResourceState,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputState {
    pub value: Value,
    pub sensitive: bool,
}

impl State {
    /// A new, empty state with a fresh lineage.
    pub fn new() -> Self {
        State { lineage: uuid::Uuid::new_v4().to_string(), ..State::default() }
    }

    /// Applies one change in place. Used both when the engine changes state during apply and
    /// when a backend replays its journal.
    pub fn apply_mutation(&mut self, m: &Mutation) {
        match m {
            Mutation::Put { address, resource } => {
                self.resources.insert(address.clone(), resource.clone());
            }
            Mutation::Remove { address } => {
                // Its events stay: a destroyed job's history is still read.
                self.resources.remove(address);
            }
            Mutation::PutPending(p) => {
                self.pending.insert(p.token.clone(), p.clone());
            }
            Mutation::ClearPending { token } => {
                self.pending.remove(token);
            }
            Mutation::SetOutputs(outputs) => self.outputs = outputs.clone(),
            Mutation::PutDeposed(d) => {
                self.deposed.insert(d.key.clone(), d.clone());
            }
            Mutation::RemoveDeposed { key } => {
                self.deposed.remove(key);
            }
            Mutation::AddEvent { address, event } => {
                let events = self.events.entry(address.clone()).or_default();
                events.push(event.clone());
                let over = events.len().saturating_sub(MAX_EVENTS_PER_JOB);
                events.drain(..over);
            }
            Mutation::ClearEvents { address } => {
                self.events.remove(address);
            }
        }
    }
}

/// One change to state, persisted as it happens (journal entries of the local backend).
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    Put {
        address: InstanceAddr,
        resource: ResourceState,
    },
    Remove {
        address: InstanceAddr,
    },
    PutPending(PendingCreate),
    ClearPending {
        token: String,
    },
    SetOutputs(BTreeMap<String, OutputState>),
    PutDeposed(DeposedObject),
    RemoveDeposed {
        key: String,
    },
    /// Records an event of the job at `address` (which need not exist any more).
    AddEvent {
        address: InstanceAddr,
        event: JobEvent,
    },
    /// Forgets every event of `address` (`kiln state rm`-style cleanup; `Remove` keeps them).
    ClearEvents {
        address: InstanceAddr,
    },
}
