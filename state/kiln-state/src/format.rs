//! The versioned on-disk JSON document of a state, and the JSON form of [`Mutation`] batches
//! (journal entries). These serde types are separate from the model in `model.rs`, so the model
//! can change without changing what is on disk.
//!
//! A document looks like:
//!
//! ```json
//! {
//!   "format_version": 2,
//!   "kiln_version": "0.1.0",
//!   "lineage": "…",
//!   "serial": 3,
//!   "resources": [{"address": "record.a[0]", "provider": "kiln", "kind": "record",
//!                  "attributes": {}, "sensitive_attributes": [], "dependencies": [],
//!                  "tainted": false, "create_before_destroy": false}],
//!   "pending": [{"address": "…", "provider": "…", "kind": "…", "token": "…",
//!                "planned": {}, "started_at": "…"}],
//!   "outputs": {"name": {"value": 1, "sensitive": false}},
//!   "deposed": [{"key": "1a2b3c4d", "resource": {"address": "…", … as in resources}}],
//!   "events": [{"address": "job.train", "events": [{"at": "2025-03-01T12:00:00Z",
//!               "kind": "detected", "category": "preemption", "detail": "…", "attempt": 0,
//!               "latency_ms": 850}]}]
//! }
//! ```
//!
//! [`encode`] is canonical: pretty-printed with two spaces and a final newline, resources sorted
//! by address, pending creates by address then token, deposed objects by address then key
//! (the array only when there are some), jobs' events by address, each job's oldest first (the
//! array only when there are some), outputs and attribute keys by name,
//! `sensitive_attributes` and `dependencies` sorted and deduplicated. `schemas/json/state.schema.json`
//! describes the document.
//!
//! [`decode`] reads the current format directly and older formats through [`upgrade`]; a newer
//! format is refused with [`StateError::NewerFormat`], malformed JSON with [`StateError::Corrupt`]
//! naming the line and column. Attribute values are plain JSON; an unknown value or a sensitive
//! mark found in the model (which should not happen in state) is kept losslessly with the
//! reserved `{"$kiln": ...}` objects of `kiln-value`.
//!
//! Formats: 1, the first; 2 added `events` (a job's recovery history) and the journal's
//! `add_event` and `clear_events` ops, so a kiln that knows only format 1 refuses the document
//! instead of dropping the history when it writes it back; 3 added a resource's `released`
//! (its job finished and released it). A state holding no released object is still written as
//! format 2 ([`BASE_FORMAT`]), which older kilns read; one that holds one is format 3, which they
//! refuse rather than take the released object for one deleted outside kiln.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;

use kiln_addrs::InstanceAddr;
use kiln_value::Value;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::{Billing, DeposedObject, JobEvent, Mutation, OutputState, PendingCreate, Released, ResourceState, State, StateError};

/// The document format this kiln writes, and the newest it reads.
pub const FORMAT_VERSION: u64 = 3;

/// The format a state without released objects is written in: the same document as format 3's
/// without `released`, readable by a kiln that knows format 2.
pub const BASE_FORMAT: u64 = 2;

/// This kiln's version, recorded in documents and locks.
pub const KILN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Encodes `state` as the canonical, pretty-printed document (ending with a newline).
pub fn encode(state: &State) -> Vec<u8> {
    // Roughly 300 bytes per resource in practice: avoids most regrowth.
    let mut out = Vec::with_capacity(512 + 320 * state.resources.len());
    let released = state.resources.values().chain(state.deposed.values().map(|d| &d.resource)).any(|r| r.released.is_some());
    let doc = DocOut {
        format_version: if released { FORMAT_VERSION } else { BASE_FORMAT },
        kiln_version: KILN_VERSION,
        lineage: &state.lineage,
        serial: state.serial,
        resources: ResourcesOut(&state.resources),
        pending: PendingsOut(&state.pending),
        outputs: OutputsOut(&state.outputs),
        deposed: DeposedsOut(&state.deposed),
        events: EventsOut(&state.events),
    };
    serde_json::to_writer_pretty(&mut out, &doc).expect("state encodes: all map keys are strings");
    out.push(b'\n');
    out
}

/// Decodes a document read from `path` (used in error messages: a file path or a URL),
/// upgrading it from an older format if needed.
pub fn decode(bytes: &[u8], path: &str) -> Result<State, StateError> {
    match kiln_value::from_json_slice::<DocIn>(bytes) {
        Ok(doc) if doc.format_version == FORMAT_VERSION || doc.format_version == BASE_FORMAT => doc.into_state(path),
        Ok(doc) => decode_version(bytes, doc.format_version, path),
        // A newer or older document may not fit today's types: find its version first.
        Err(e) => match kiln_value::from_json_slice::<VersionProbe>(bytes) {
            Ok(VersionProbe { format_version: Some(v) }) if v != FORMAT_VERSION && v != BASE_FORMAT => decode_version(bytes, v, path),
            _ => Err(corrupt(path, &e)),
        },
    }
}

/// Reads only the lineage and serial of a document, cheaply (nothing else is allocated). Does
/// not check the rest of the document beyond JSON syntax.
pub fn peek(bytes: &[u8], path: &str) -> Result<(String, u64), StateError> {
    #[derive(Deserialize)]
    struct Head {
        format_version: u64,
        lineage: String,
        serial: u64,
    }
    let head: Head = kiln_value::from_json_slice(bytes).map_err(|e| corrupt(path, &e))?;
    if head.format_version > FORMAT_VERSION {
        return Err(newer(path, head.format_version));
    }
    check_lineage(&head.lineage, path)?;
    Ok((head.lineage, head.serial))
}

/// A lineage names a history of states: an empty one is never written, so it is refused when
/// read (before anything acts on the state), never found out at apply.
fn check_lineage(lineage: &str, path: &str) -> Result<(), StateError> {
    if lineage.trim().is_empty() {
        return Err(StateError::Corrupt {
            path: path.to_string(),
            line: 0,
            column: 0,
            message: "its `lineage` is empty (kiln writes a UUID there)".into(),
        });
    }
    Ok(())
}

fn decode_version(bytes: &[u8], version: u64, path: &str) -> Result<State, StateError> {
    if version > FORMAT_VERSION {
        return Err(newer(path, version));
    }
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| corrupt(path, &e))?;
    let doc = upgrade(doc, version).map_err(|message| StateError::Corrupt { path: path.to_string(), line: 0, column: 0, message })?;
    let doc: DocIn = serde_json::from_value(doc).map_err(|e| StateError::Corrupt {
        path: path.to_string(),
        line: 0,
        column: 0,
        message: format!("after upgrading from format `{version}`: {e}"),
    })?;
    doc.into_state(path)
}

/// Upgrades a document written in format `version` to [`FORMAT_VERSION`], one format at a
/// time. Each new format adds an arm converting from the one before it (`1 => ...` for
/// format 2); the result is then decoded with today's types.
pub fn upgrade(mut doc: serde_json::Value, mut version: u64) -> Result<serde_json::Value, String> {
    while version < FORMAT_VERSION {
        doc = upgrade_one(doc, version)?;
        version += 1;
        doc["format_version"] = version.into();
    }
    Ok(doc)
}

/// Converts a document of format `from` to format `from + 1`.
fn upgrade_one(doc: serde_json::Value, from: u64) -> Result<serde_json::Value, String> {
    match from {
        1 => upgrade_v1_to_v2(doc),
        // Format 3 added an optional `released` to resources: a format-2 document is one.
        2 => Ok(doc),
        // Format 0 was never written: 1 is the first format.
        old => {
            Err(format!("state format `{old}` was never written by kiln (the first format is `1`): check that this is a kiln state file"))
        }
    }
}

/// Format 2 added `events`: a format-1 document has none, and is otherwise the same.
fn upgrade_v1_to_v2(doc: serde_json::Value) -> Result<serde_json::Value, String> {
    if doc.get("events").is_some() {
        return Err("it says format `1` but has `events`, which came with format `2`: check its `format_version`".into());
    }
    Ok(doc)
}

fn newer(path: &str, found: u64) -> StateError {
    StateError::NewerFormat { path: path.to_string(), found, supported: FORMAT_VERSION }
}

/// Turns a JSON error into [`StateError::Corrupt`] with its position.
pub(crate) fn corrupt(path: &str, e: &serde_json::Error) -> StateError {
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    StateError::Corrupt { path: path.to_string(), line, column, message }
}

#[derive(Deserialize)]
struct VersionProbe {
    #[serde(default)]
    format_version: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Encoding: borrowed views of the model, so nothing is copied.

#[derive(Serialize)]
struct DocOut<'a> {
    format_version: u64,
    kiln_version: &'a str,
    lineage: &'a str,
    serial: u64,
    resources: ResourcesOut<'a>,
    pending: PendingsOut<'a>,
    outputs: OutputsOut<'a>,
    #[serde(skip_serializing_if = "DeposedsOut::is_empty")]
    deposed: DeposedsOut<'a>,
    #[serde(skip_serializing_if = "EventsOut::is_empty")]
    events: EventsOut<'a>,
}

struct ResourcesOut<'a>(&'a BTreeMap<InstanceAddr, ResourceState>);

impl Serialize for ResourcesOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(a, r)| ResourceOut::new(a, r)))
    }
}

#[derive(Serialize)]
struct ResourceOut<'a> {
    address: &'a InstanceAddr,
    provider: &'a str,
    kind: &'a str,
    attributes: &'a Value,
    sensitive_attributes: SortedSet<'a, String>,
    dependencies: SortedSet<'a, InstanceAddr>,
    tainted: bool,
    create_before_destroy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    billing: Option<&'a Billing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    released: Option<&'a Released>,
}

impl<'a> ResourceOut<'a> {
    fn new(address: &'a InstanceAddr, r: &'a ResourceState) -> Self {
        ResourceOut {
            address,
            provider: &r.provider,
            kind: &r.kind,
            attributes: &r.attributes,
            sensitive_attributes: SortedSet(&r.sensitive),
            dependencies: SortedSet(&r.dependencies),
            tainted: r.tainted,
            create_before_destroy: r.create_before_destroy,
            billing: r.billing.as_ref(),
            released: r.released.as_ref(),
        }
    }
}

/// A list written sorted and without duplicates; copies (references) only when the model's
/// list is not already strictly sorted.
struct SortedSet<'a, T>(&'a [T]);

impl<T: Ord + Serialize> Serialize for SortedSet<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.windows(2).all(|w| w[0] < w[1]) {
            s.collect_seq(self.0)
        } else {
            let mut v: Vec<&T> = self.0.iter().collect();
            v.sort();
            v.dedup();
            s.collect_seq(v)
        }
    }
}

struct PendingsOut<'a>(&'a BTreeMap<String, PendingCreate>);

impl Serialize for PendingsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v: Vec<&PendingCreate> = self.0.values().collect();
        v.sort_by(|a, b| (&a.address, &a.token).cmp(&(&b.address, &b.token)));
        s.collect_seq(v.into_iter().map(PendingOut::new))
    }
}

#[derive(Serialize)]
struct PendingOut<'a> {
    address: &'a InstanceAddr,
    provider: &'a str,
    kind: &'a str,
    token: &'a str,
    planned: &'a Value,
    started_at: &'a str,
}

impl<'a> PendingOut<'a> {
    fn new(p: &'a PendingCreate) -> Self {
        PendingOut {
            address: &p.address,
            provider: &p.provider,
            kind: &p.kind,
            token: &p.token,
            planned: &p.planned,
            started_at: &p.started_at,
        }
    }
}

struct DeposedsOut<'a>(&'a BTreeMap<String, DeposedObject>);

impl DeposedsOut<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for DeposedsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v: Vec<&DeposedObject> = self.0.values().collect();
        v.sort_by(|a, b| (&a.address, &a.key).cmp(&(&b.address, &b.key)));
        s.collect_seq(v.into_iter().map(DeposedOut::new))
    }
}

#[derive(Serialize)]
struct DeposedOut<'a> {
    key: &'a str,
    resource: ResourceOut<'a>,
}

impl<'a> DeposedOut<'a> {
    fn new(d: &'a DeposedObject) -> Self {
        DeposedOut { key: &d.key, resource: ResourceOut::new(&d.address, &d.resource) }
    }
}

/// Jobs' events by address (the map's order); an address with none is left out.
struct EventsOut<'a>(&'a BTreeMap<InstanceAddr, Vec<JobEvent>>);

impl EventsOut<'_> {
    fn is_empty(&self) -> bool {
        self.0.values().all(Vec::is_empty)
    }
}

impl Serialize for EventsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .filter(|(_, events)| !events.is_empty())
                .map(|(address, events)| JobEventsOut { address, events: events.iter().map(EventOut::new).collect() }),
        )
    }
}

#[derive(Serialize)]
struct JobEventsOut<'a> {
    address: &'a InstanceAddr,
    events: Vec<EventOut<'a>>,
}

#[derive(Serialize)]
struct EventOut<'a> {
    at: &'a str,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    detail: &'a str,
    attempt: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
}

impl<'a> EventOut<'a> {
    fn new(e: &'a JobEvent) -> Self {
        EventOut {
            at: &e.at,
            kind: &e.kind,
            category: e.category.as_deref(),
            detail: &e.detail,
            attempt: e.attempt,
            latency_ms: e.latency_ms,
        }
    }
}

struct OutputsOut<'a>(&'a BTreeMap<String, OutputState>);

impl Serialize for OutputsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, o)| (k, OutputOut { value: &o.value, sensitive: o.sensitive })))
    }
}

#[derive(Serialize)]
struct OutputOut<'a> {
    value: &'a Value,
    sensitive: bool,
}

// ---------------------------------------------------------------------------------------------
// Decoding: owned types moved into the model as they are read.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocIn {
    format_version: u64,
    #[allow(dead_code)] // required, informative only
    kiln_version: String,
    lineage: String,
    serial: u64,
    // Required: kiln always writes them, and a document without them (cut short, or edited)
    // read as "nothing" would make apply forget the objects it holds.
    resources: ResourcesIn,
    pending: PendingsIn,
    outputs: BTreeMap<String, OutputIn>,
    // Written only when there are some.
    #[serde(default)]
    deposed: Vec<DeposedIn>,
    #[serde(default)]
    events: EventsIn,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeposedIn {
    key: String,
    resource: ResourceIn,
}

impl DeposedIn {
    fn into_model(self) -> DeposedObject {
        let (address, resource) = self.resource.into_model();
        DeposedObject { key: self.key, address, resource }
    }
}

impl DocIn {
    fn into_state(self, path: &str) -> Result<State, StateError> {
        check_lineage(&self.lineage, path)?;
        Ok(State {
            lineage: self.lineage,
            serial: self.serial,
            resources: self.resources.0,
            pending: self.pending.0,
            outputs: outputs_into_model(self.outputs),
            deposed: self.deposed.into_iter().map(|d| (d.key.clone(), d.into_model())).collect(),
            events: self.events.0,
        })
    }
}

fn outputs_into_model(outputs: BTreeMap<String, OutputIn>) -> BTreeMap<String, OutputState> {
    outputs.into_iter().map(|(k, o)| (k, OutputState { value: o.value, sensitive: o.sensitive })).collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceIn {
    address: InstanceAddr,
    provider: String,
    kind: String,
    attributes: Value,
    #[serde(default)]
    sensitive_attributes: Vec<String>,
    #[serde(default)]
    dependencies: Vec<InstanceAddr>,
    #[serde(default)]
    tainted: bool,
    #[serde(default)]
    create_before_destroy: bool,
    #[serde(default)]
    billing: Option<Billing>,
    #[serde(default)]
    released: Option<Released>,
}

impl ResourceIn {
    fn into_model(self) -> (InstanceAddr, ResourceState) {
        (
            self.address,
            ResourceState {
                provider: self.provider,
                kind: self.kind,
                attributes: self.attributes,
                sensitive: self.sensitive_attributes,
                dependencies: self.dependencies,
                tainted: self.tainted,
                create_before_destroy: self.create_before_destroy,
                billing: self.billing,
                released: self.released,
            },
        )
    }
}

/// The `resources` array, read straight into the model's map; a repeated address is an error
/// reported at its position.
#[derive(Default)]
struct ResourcesIn(BTreeMap<InstanceAddr, ResourceState>);

impl<'de> Deserialize<'de> for ResourcesIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ResourcesIn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of resources")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ResourcesIn, A::Error> {
                // kiln writes resources sorted: collect them and build the map in bulk (linear
                // for sorted input) instead of inserting one by one.
                let mut v: Vec<(InstanceAddr, ResourceState)> = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                let mut sorted = true;
                while let Some(r) = seq.next_element::<ResourceIn>()? {
                    let (address, r) = r.into_model();
                    if let Some((last, _)) = v.last() {
                        if *last == address {
                            return Err(de::Error::custom(format!("resource `{address}` appears twice")));
                        }
                        sorted &= *last < address;
                    }
                    v.push((address, r));
                }
                if sorted {
                    return Ok(ResourcesIn(v.into_iter().collect()));
                }
                let mut map = BTreeMap::new();
                for (address, r) in v {
                    match map.entry(address) {
                        Entry::Vacant(e) => {
                            e.insert(r);
                        }
                        Entry::Occupied(o) => return Err(de::Error::custom(format!("resource `{}` appears twice", o.key()))),
                    }
                }
                Ok(ResourcesIn(map))
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingIn {
    address: InstanceAddr,
    provider: String,
    kind: String,
    token: String,
    planned: Value,
    started_at: String,
}

impl PendingIn {
    fn into_model(self) -> PendingCreate {
        PendingCreate {
            address: self.address,
            provider: self.provider,
            kind: self.kind,
            token: self.token,
            planned: self.planned,
            started_at: self.started_at,
        }
    }
}

/// The `pending` array, read into the model's map keyed by token.
#[derive(Default)]
struct PendingsIn(BTreeMap<String, PendingCreate>);

impl<'de> Deserialize<'de> for PendingsIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PendingsIn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of pending creates")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PendingsIn, A::Error> {
                let mut map = BTreeMap::new();
                while let Some(p) = seq.next_element::<PendingIn>()? {
                    let p = p.into_model();
                    match map.entry(p.token.clone()) {
                        Entry::Vacant(v) => {
                            v.insert(p);
                        }
                        Entry::Occupied(o) => return Err(de::Error::custom(format!("pending token `{}` appears twice", o.key()))),
                    }
                }
                Ok(PendingsIn(map))
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn {
    at: String,
    kind: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    attempt: u64,
    #[serde(default)]
    latency_ms: Option<u64>,
}

impl EventIn {
    fn into_model(self) -> JobEvent {
        JobEvent {
            at: self.at,
            kind: self.kind,
            category: self.category,
            detail: self.detail,
            attempt: self.attempt,
            latency_ms: self.latency_ms,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobEventsIn {
    address: InstanceAddr,
    events: Vec<EventIn>,
}

/// The `events` array, read into the model's map by address; a repeated address is an error,
/// an address with no events is left out (as [`EventsOut`] writes it).
#[derive(Default)]
struct EventsIn(BTreeMap<InstanceAddr, Vec<JobEvent>>);

impl<'de> Deserialize<'de> for EventsIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = BTreeMap::new();
        for JobEventsIn { address, events } in Vec::<JobEventsIn>::deserialize(d)? {
            match map.entry(address) {
                Entry::Vacant(e) => {
                    e.insert(events.into_iter().map(EventIn::into_model).collect::<Vec<_>>());
                }
                Entry::Occupied(o) => return Err(de::Error::custom(format!("the events of `{}` appear twice", o.key()))),
            }
        }
        map.retain(|_, events| !events.is_empty());
        Ok(EventsIn(map))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputIn {
    value: Value,
    #[serde(default)]
    sensitive: bool,
}

// ---------------------------------------------------------------------------------------------
// Mutations: one batch is a JSON array of `{"op": ...}` objects, reusing the resource and
// pending shapes of the document, and the events' shape.

/// Serializes a batch of mutations as a JSON array (the payload of one journal entry).
pub struct MutationsOut<'a>(pub &'a [Mutation]);

impl Serialize for MutationsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|m| match m {
            Mutation::Put { address, resource } => MutationOut::Put { resource: ResourceOut::new(address, resource) },
            Mutation::Remove { address } => MutationOut::Remove { address },
            Mutation::PutPending(p) => MutationOut::PutPending { pending: PendingOut::new(p) },
            Mutation::ClearPending { token } => MutationOut::ClearPending { token },
            Mutation::SetOutputs(o) => MutationOut::SetOutputs { outputs: OutputsOut(o) },
            Mutation::PutDeposed(d) => MutationOut::PutDeposed { deposed: DeposedOut::new(d) },
            Mutation::RemoveDeposed { key } => MutationOut::RemoveDeposed { key },
            Mutation::AddEvent { address, event } => MutationOut::AddEvent { address, event: EventOut::new(event) },
            Mutation::ClearEvents { address } => MutationOut::ClearEvents { address },
        }))
    }
}

/// Deserializes a batch written by [`MutationsOut`].
pub struct MutationsIn(pub Vec<Mutation>);

impl<'de> Deserialize<'de> for MutationsIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<MutationIn>::deserialize(d)?;
        Ok(MutationsIn(
            v.into_iter()
                .map(|m| match m {
                    MutationIn::Put { resource } => {
                        let (address, resource) = resource.into_model();
                        Mutation::Put { address, resource }
                    }
                    MutationIn::Remove { address } => Mutation::Remove { address },
                    MutationIn::PutPending { pending } => Mutation::PutPending(pending.into_model()),
                    MutationIn::ClearPending { token } => Mutation::ClearPending { token },
                    MutationIn::SetOutputs { outputs } => Mutation::SetOutputs(outputs_into_model(outputs)),
                    MutationIn::PutDeposed { deposed } => Mutation::PutDeposed(deposed.into_model()),
                    MutationIn::RemoveDeposed { key } => Mutation::RemoveDeposed { key },
                    MutationIn::AddEvent { address, event } => Mutation::AddEvent { address, event: event.into_model() },
                    MutationIn::ClearEvents { address } => Mutation::ClearEvents { address },
                })
                .collect(),
        ))
    }
}

/// A batch of mutations as compact JSON (no newline inside, so it fits on a journal line).
pub fn encode_mutations(mutations: &[Mutation]) -> Vec<u8> {
    serde_json::to_vec(&MutationsOut(mutations)).expect("mutations encode: all map keys are strings")
}

/// The inverse of [`encode_mutations`].
pub fn decode_mutations(bytes: &[u8]) -> Result<Vec<Mutation>, serde_json::Error> {
    kiln_value::from_json_slice::<MutationsIn>(bytes).map(|m| m.0)
}

/// `serial` advanced by `by` journal entries, refused past `u64::MAX` (it never wraps: a
/// serial that went down would let a stale writer overwrite newer state).
pub fn advance_serial(serial: u64, by: u64, path: &str) -> Result<u64, StateError> {
    serial.checked_add(by).ok_or_else(|| StateError::Corrupt {
        path: path.to_string(),
        line: 0,
        column: 0,
        message: format!("its serial `{serial}` cannot advance by {by}: it would pass the largest serial, {}", u64::MAX),
    })
}

#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum MutationOut<'a> {
    Put { resource: ResourceOut<'a> },
    Remove { address: &'a InstanceAddr },
    PutPending { pending: PendingOut<'a> },
    ClearPending { token: &'a str },
    SetOutputs { outputs: OutputsOut<'a> },
    PutDeposed { deposed: DeposedOut<'a> },
    RemoveDeposed { key: &'a str },
    AddEvent { address: &'a InstanceAddr, event: EventOut<'a> },
    ClearEvents { address: &'a InstanceAddr },
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum MutationIn {
    Put { resource: ResourceIn },
    Remove { address: InstanceAddr },
    PutPending { pending: PendingIn },
    ClearPending { token: String },
    SetOutputs { outputs: BTreeMap<String, OutputIn> },
    PutDeposed { deposed: DeposedIn },
    RemoveDeposed { key: String },
    AddEvent { address: InstanceAddr, event: EventIn },
    ClearEvents { address: InstanceAddr },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/roundtrip")
    }

    /// Fixtures name the kiln that wrote them; the model does not keep it, so compare with the
    /// fixture's `kiln_version` set to this kiln's.
    fn with_current_version(text: &str) -> String {
        text.lines()
            .map(|l| if l.starts_with("  \"kiln_version\": ") { format!("  \"kiln_version\": \"{KILN_VERSION}\",") } else { l.to_string() })
            .map(|l| l + "\n")
            .collect()
    }

    #[test]
    fn fixtures_round_trip_byte_for_byte() {
        let mut n = 0;
        for entry in std::fs::read_dir(roundtrip_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let state = decode(text.as_bytes(), &path.display().to_string()).unwrap();
            let again = String::from_utf8(encode(&state)).unwrap();
            assert_eq!(again, with_current_version(&text), "{} does not re-encode identically", path.display());
            assert_eq!(decode(again.as_bytes(), "again").unwrap(), state);
            n += 1;
        }
        assert!(n >= 3, "expected round-trip fixtures in {}", roundtrip_dir().display());
    }

    #[test]
    fn a_state_is_format_2_until_it_holds_a_released_object() {
        let path = roundtrip_dir().join("released.json");
        let mut state = decode(&std::fs::read(&path).unwrap(), "released.json").unwrap();
        let addr: InstanceAddr = "cluster.train".parse().unwrap();
        assert_eq!(state.resources[&addr].released.as_ref().map(|r| r.by.to_string()), Some("job.pretrain".into()));
        let head = |s: &State| String::from_utf8(encode(s)).unwrap().lines().nth(1).unwrap().to_string();
        assert_eq!(head(&state), "  \"format_version\": 3,");
        state.resources.get_mut(&addr).unwrap().released = None;
        assert_eq!(head(&state), "  \"format_version\": 2,", "what a kiln that knows format 2 reads");
        // A format-2 document with `released` (kiln writes none) is read as it is.
        let text = std::fs::read_to_string(&path).unwrap().replace("\"format_version\": 3", "\"format_version\": 2");
        assert!(decode(text.as_bytes(), "x").is_ok(), "read as written: the field is optional");
    }

    #[test]
    fn newer_format_is_refused() {
        let doc = br#"{"format_version": 7, "kiln_version": "9.0.0", "lineage": "l", "serial": 1, "resources": [], "shiny": {}}"#;
        match decode(doc, "s.json") {
            Err(e @ StateError::NewerFormat { found: 7, supported: FORMAT_VERSION, .. }) => {
                let m = e.to_string();
                assert!(m.contains("upgrade kiln"), "{m}");
                assert!(m.contains("`s.json`"), "{m}");
            }
            other => panic!("expected NewerFormat, got {other:?}"),
        }
        assert!(matches!(peek(doc, "s.json"), Err(StateError::NewerFormat { found: 7, .. })));
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let doc = b"{\n  \"format_version\": 2,\n  \"lineage\": oops\n}\n";
        match decode(doc, "s.json") {
            Err(e @ StateError::Corrupt { line: 3, .. }) => {
                let m = e.to_string();
                assert!(m.contains("at line 3, column"), "{m}");
                assert!(!m.ends_with('.'), "{m}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn format_zero_goes_through_the_upgrade_hook() {
        let doc = br#"{"format_version": 0, "lineage": "l", "serial": 1}"#;
        match decode(doc, "s.json") {
            Err(StateError::Corrupt { line: 0, message, .. }) => {
                assert!(message.contains("never written"), "{message}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn duplicates_and_unknown_fields_are_refused() {
        let r = r#"{"address": "record.a", "provider": "kiln", "kind": "record", "attributes": {}}"#;
        let doc = format!(r#"{{"format_version": 2, "kiln_version": "0", "lineage": "l", "serial": 1, "resources": [{r}, {r}]}}"#);
        match decode(doc.as_bytes(), "s.json") {
            Err(StateError::Corrupt { message, .. }) => {
                assert!(message.contains("`record.a` appears twice"), "{message}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let doc = r#"{"format_version": 2, "kiln_version": "0", "lineage": "l", "serial": 1, "resourcez": []}"#;
        assert!(matches!(decode(doc.as_bytes(), "s.json"), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn minimal_document_needs_its_collections() {
        let doc =
            br#"{"format_version": 2, "kiln_version": "0", "lineage": "l", "serial": 4, "resources": [], "pending": [], "outputs": {}}"#;
        let s = decode(doc, "s.json").unwrap();
        assert_eq!(s, State { lineage: "l".into(), serial: 4, ..State::default() });
        assert_eq!(peek(doc, "s.json").unwrap(), ("l".to_string(), 4));
    }

    /// A document cut down to its head must not read as an empty state (apply would then
    /// create everything again and forget the objects it held).
    #[test]
    fn a_missing_collection_is_refused_not_read_as_empty() {
        let full =
            r#"{"format_version": 2, "kiln_version": "0", "lineage": "l", "serial": 4, "resources": [], "pending": [], "outputs": {}}"#;
        for field in ["resources", "pending", "outputs", "lineage", "serial", "kiln_version"] {
            let mut doc: serde_json::Value = serde_json::from_str(full).unwrap();
            doc.as_object_mut().unwrap().remove(field);
            match decode(doc.to_string().as_bytes(), "s.json") {
                Err(e @ StateError::Corrupt { .. }) => assert!(e.to_string().contains(&format!("`{field}`")), "{field}: {e}"),
                other => panic!("without `{field}`: expected Corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn an_empty_lineage_is_refused_when_read() {
        let doc =
            br#"{"format_version": 2, "kiln_version": "0", "lineage": "", "serial": 4, "resources": [], "pending": [], "outputs": {}}"#;
        for e in [decode(doc, "s.json").unwrap_err(), peek(doc, "s.json").unwrap_err()] {
            assert!(matches!(e, StateError::Corrupt { .. }), "{e:?}");
            assert!(e.to_string().contains("`lineage` is empty"), "{e}");
            assert!(e.to_string().contains("`s.json`"), "{e}");
        }
    }

    #[test]
    fn the_serial_never_wraps() {
        assert_eq!(advance_serial(3, 2, "s").unwrap(), 5);
        assert_eq!(advance_serial(u64::MAX - 1, 1, "s").unwrap(), u64::MAX);
        let e = advance_serial(u64::MAX, 1, "s.json").unwrap_err();
        assert!(e.to_string().contains(&u64::MAX.to_string()), "{e}");
    }

    /// A value as deep as kiln allows is written and read back, inside a state document and
    /// inside a journal entry, on a thread with Tokio's 2 MiB stack; deeper is refused.
    #[test]
    fn values_of_the_maximum_depth_round_trip_in_documents() {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let deep = |n: usize| (1..n).fold(Value::List(vec![]), |v, _| Value::List(vec![v]));
                let a: InstanceAddr = "record.x".parse().unwrap();
                let mut s = State { lineage: "l".into(), serial: 1, ..State::default() };
                // The attributes object is one level: `input` holds the rest.
                let attrs = Value::Map([("input".to_string(), deep(kiln_value::MAX_DEPTH - 1))].into());
                s.resources.insert(
                    a.clone(),
                    ResourceState {
                        provider: "kiln".into(),
                        kind: "record".into(),
                        attributes: attrs.clone(),
                        sensitive: vec![],
                        dependencies: vec![],
                        tainted: false,
                        create_before_destroy: false,
                        billing: None,
                        released: None,
                    },
                );
                s.outputs.insert("o".into(), OutputState { value: deep(kiln_value::MAX_DEPTH), sensitive: false });
                assert_eq!(decode(&encode(&s), "s.json").unwrap(), s);
                assert_eq!(peek(&encode(&s), "s.json").unwrap(), ("l".to_string(), 1));
                let put = vec![Mutation::Put { address: a.clone(), resource: s.resources[&a].clone() }];
                assert_eq!(decode_mutations(&encode_mutations(&put)).unwrap(), put);
                // One level more is an error naming the limit, not a crash.
                s.outputs.insert("o".into(), OutputState { value: deep(kiln_value::MAX_DEPTH + 1), sensitive: false });
                let e = decode(&encode(&s), "s.json").unwrap_err();
                assert!(e.to_string().contains("256 levels"), "{e}");
                // A hostile file nested far deeper.
                let hostile = format!(
                    r#"{{"format_version": 2, "kiln_version": "0", "lineage": "l", "serial": 1, "resources": [], "pending": [], "outputs": {{"o": {{"value": {}{}}}}}}}"#,
                    "[".repeat(100_000),
                    "]".repeat(100_000)
                );
                assert!(matches!(decode(hostile.as_bytes(), "s.json"), Err(StateError::Corrupt { .. })));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn lists_are_written_sorted_and_unique() {
        let a: InstanceAddr = "record.a".parse().unwrap();
        let mut s = State { lineage: "l".into(), serial: 1, ..State::default() };
        s.resources.insert(
            a.clone(),
            ResourceState {
                provider: "kiln".into(),
                kind: "record".into(),
                attributes: Value::Map(Default::default()),
                sensitive: vec!["b".into(), "a".into(), "b".into()],
                dependencies: vec!["record.z[10]".parse().unwrap(), "record.z[9]".parse().unwrap()],
                tainted: false,
                create_before_destroy: false,
                billing: None,
                released: None,
            },
        );
        let back = decode(&encode(&s), "x").unwrap();
        assert_eq!(back.resources[&a].sensitive, vec!["a".to_string(), "b".to_string()]);
        let deps: Vec<String> = back.resources[&a].dependencies.iter().map(|d| d.to_string()).collect();
        assert_eq!(deps, ["record.z[9]", "record.z[10]"]);
    }

    #[test]
    fn mutations_round_trip() {
        let state = crate::conformance::sample_state("l", 1);
        let (address, resource) = state.resources.iter().next().unwrap();
        let pending = state.pending.values().next().unwrap().clone();
        let ms = vec![
            Mutation::Put { address: address.clone(), resource: resource.clone() },
            Mutation::Remove { address: address.clone() },
            Mutation::PutPending(pending.clone()),
            Mutation::ClearPending { token: pending.token.clone() },
            Mutation::SetOutputs(state.outputs.clone()),
            Mutation::AddEvent { address: address.clone(), event: event("detected", Some("preemption"), Some(900)) },
            Mutation::AddEvent { address: address.clone(), event: JobEvent { detail: String::new(), ..event("resumed", None, None) } },
            Mutation::ClearEvents { address: address.clone() },
        ];
        let bytes = encode_mutations(&ms);
        assert!(!bytes.contains(&b'\n'));
        assert_eq!(decode_mutations(&bytes).unwrap(), ms);
    }

    fn event(kind: &str, category: Option<&str>, latency_ms: Option<u64>) -> JobEvent {
        JobEvent {
            at: "2025-03-01T12:00:00Z".into(),
            kind: kind.into(),
            category: category.map(str::to_string),
            detail: format!("{kind}: \"node 1\"\n✓"),
            attempt: 3,
            latency_ms,
        }
    }

    #[test]
    fn events_round_trip_sorted_by_address_and_in_their_order() {
        let mut s = State { lineage: "l".into(), serial: 2, ..State::default() };
        let (train, gone): (InstanceAddr, InstanceAddr) = ("job.train".parse().unwrap(), "module.m.job.old[\"x\"]".parse().unwrap());
        s.events.insert(
            train.clone(),
            vec![event("relaunched", Some("host_failure"), None), event("detected", Some("preemption"), Some(1250))],
        );
        s.events.insert(gone.clone(), vec![JobEvent { detail: String::new(), attempt: 0, ..event("gave_up", None, None) }]);
        s.events.insert("job.empty".parse().unwrap(), vec![]);
        let bytes = encode(&s);
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let addresses: Vec<&str> = doc["events"].as_array().unwrap().iter().map(|j| j["address"].as_str().unwrap()).collect();
        assert_eq!(addresses, ["job.train", "module.m.job.old[\"x\"]"], "sorted by address, a job with none left out");
        assert_eq!(doc["events"][0]["events"][0]["kind"], "relaunched", "a job's events keep their order");
        assert_eq!(
            doc["events"][1]["events"][0],
            serde_json::json!({"at": "2025-03-01T12:00:00Z", "kind": "gave_up", "attempt": 0}),
            "what is missing is not written"
        );
        let back = decode(&bytes, "s.json").unwrap();
        s.events.retain(|_, e| !e.is_empty());
        assert_eq!(back, s);
        // No events: no `events` array.
        let none = encode(&State { lineage: "l".into(), ..State::default() });
        assert!(!String::from_utf8(none).unwrap().contains("\"events\""));
    }

    #[test]
    fn a_format_1_document_reads_with_no_events() {
        let dir = roundtrip_dir();
        let text = std::fs::read_to_string(dir.join("full.json")).unwrap().replace("\"format_version\": 2,", "\"format_version\": 1,");
        let state = decode(text.as_bytes(), "v1.json").unwrap();
        assert!(state.events.is_empty());
        assert_eq!(state, decode(&std::fs::read(dir.join("full.json")).unwrap(), "v2.json").unwrap());
        assert!(String::from_utf8(encode(&state)).unwrap().contains("\"format_version\": 2,"), "written back as format 2");
        let bare =
            br#"{"format_version": 1, "kiln_version": "0", "lineage": "l", "serial": 4, "resources": [], "pending": [], "outputs": {}}"#;
        assert_eq!(decode(bare, "v1.json").unwrap(), State { lineage: "l".into(), serial: 4, ..State::default() });
        // Format 1 had no events: a document claiming both is not quietly accepted.
        let mixed =
            br#"{"format_version": 1, "kiln_version": "0", "lineage": "l", "serial": 4, "resources": [], "pending": [], "outputs": {},
            "events": [{"address": "job.a", "events": [{"at": "t", "kind": "detected"}]}]}"#;
        let e = decode(mixed, "v1.json").unwrap_err();
        assert!(e.to_string().contains("`events`"), "{e}");
    }

    /// A kiln that knows only format 1 refuses a format-2 document (its `NewerFormat` check),
    /// and an older kiln's decoder refuses ops and fields it does not know, naming them.
    #[test]
    fn unknown_ops_and_event_fields_are_errors_naming_them() {
        let e = decode_mutations(
            br#"[{"op": "add_event", "address": "job.a", "event": {"at": "t", "kind": "detected"}}, {"op": "launch_rockets"}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("launch_rockets"), "{e}");
        let e =
            decode_mutations(br#"[{"op": "add_event", "address": "job.a", "event": {"at": "t", "kind": "detected", "colour": "red"}}]"#)
                .unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let head =
            r#""format_version": 2, "kiln_version": "0", "lineage": "l", "serial": 1, "resources": [], "pending": [], "outputs": {}"#;
        let doc = format!(r#"{{{head}, "events": [{{"address": "job.a", "events": [{{"at": "t", "kind": "k", "severity": 1}}]}}]}}"#);
        let e = decode(doc.as_bytes(), "s.json").unwrap_err();
        assert!(e.to_string().contains("severity"), "{e}");
        let one = r#"{"address": "job.a", "events": [{"at": "t", "kind": "k"}]}"#;
        let doc = format!(r#"{{{head}, "events": [{one}, {one}]}}"#);
        let e = decode(doc.as_bytes(), "s.json").unwrap_err();
        assert!(e.to_string().contains("the events of `job.a` appear twice"), "{e}");
    }

    /// 10,000 resources: correctness everywhere, and the time budget in release builds.
    #[test]
    fn ten_thousand_resources() {
        let mut s = State { lineage: "l".into(), serial: 1, ..State::default() };
        for i in 0..10_000u64 {
            let attrs: kiln_value::Map = [
                ("id".to_string(), Value::from(format!("rec-{i:08}"))),
                ("name".to_string(), Value::from(format!("name {i}"))),
                ("size".to_string(), Value::from(i as i64)),
                ("ratio".to_string(), Value::Number("0.25".parse().unwrap())),
                ("enabled".to_string(), Value::from(i % 2 == 0)),
                ("tags".to_string(), Value::List(vec![Value::from("a"), Value::from("b")])),
                ("labels".to_string(), Value::Map([("team".to_string(), Value::from("ml"))].into())),
            ]
            .into();
            s.resources.insert(
                format!("module.m.record.r[{i}]").parse().unwrap(),
                ResourceState {
                    provider: "kiln".into(),
                    kind: "record".into(),
                    attributes: Value::Map(attrs),
                    sensitive: vec!["name".into()],
                    dependencies: vec!["record.base".parse().unwrap()],
                    tainted: false,
                    create_before_destroy: false,
                    billing: None,
                    released: None,
                },
            );
        }
        let bytes = encode(&s);
        let back = decode(&bytes, "big").unwrap();
        assert_eq!(back, s);
        // Speed is measured by bench/, never asserted in tests (shared, noisy machines).
    }
}
