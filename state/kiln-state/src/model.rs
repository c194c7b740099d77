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
        }
    }
}

/// One change to state, persisted as it happens (journal entries of the local backend).
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    Put { address: InstanceAddr, resource: ResourceState },
    Remove { address: InstanceAddr },
    PutPending(PendingCreate),
    ClearPending { token: String },
    SetOutputs(BTreeMap<String, OutputState>),
    PutDeposed(DeposedObject),
    RemoveDeposed { key: String },
}
