//! The plan: a contract between `kiln plan` and `kiln apply`. A closed [`Action`] enum per
//! resource instance, the prior state's lineage and serial it was made against, drift found by
//! refresh (shown apart from the changes the configuration asks for), output changes, and the
//! inputs needed to check a saved plan is still valid (variables, configuration digest).
//!
//! Saved plan files are this type serialized (see `schemas/json/plan.schema.json`).

use std::collections::BTreeMap;

use kiln_addrs::InstanceAddr;
use kiln_value::Value;
use serde::{Deserialize, Serialize};

pub mod cost;
pub use cost::{Alternative, ChangeCost, Cost, PlacedOffering, Placement, PlanCost, PolicyResult, Total, Violation};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    NoOp,
    Create,
    Read,
    Update,
    /// Destroy then create (or create then destroy with `create_before_destroy`).
    Replace,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Normal,
    Destroy,
    /// `--refresh-only` (Terraform's `-refresh-only`): no object is created, changed or
    /// destroyed; applying records in state and outputs what refresh found.
    RefreshOnly,
}

/// Why an instance is deleted or replaced, when the attributes alone do not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Reason {
    /// Not in the configuration any more.
    NotInConfig,
    /// Its `count` or `for_each` no longer produces this key.
    KeyGone,
    /// A previous apply failed part-way.
    Tainted,
    /// `--replace ADDRESS` asked for it.
    Requested,
    /// These attributes force replacement.
    AttributesForceNew { attributes: Vec<String> },
    /// `kiln destroy`.
    DestroyMode,
    /// Its object disappeared outside kiln (found by refresh).
    Gone,
    /// The old object of a `create_before_destroy` replacement, left to destroy by an apply
    /// that was interrupted or whose destroy failed.
    Deposed,
    /// The placement optimizer moved it to another provider (its request changed, its provider
    /// is no longer allowed, or `--replan-placement` found a cheaper offering): the new object
    /// is created where `provider` says, the old one destroyed on `from`.
    PlacementMoved { from: String },
    /// The job `by` finished and asked to release its capacity (`on_finish =
    /// "destroy_capacity"`): a delete that keeps the object in state as released; on a no-op,
    /// the object stays released.
    Released { by: String },
    /// The object was released (by the job `released_by`) and is created again: the
    /// configuration changed it, or `needed_by` (a job created or replaced) needs it.
    Reacquired {
        released_by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        needed_by: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedChange {
    pub address: InstanceAddr,
    pub provider: String,
    pub kind: String,
    pub action: Action,
    /// State before (after refresh); `None` for creates.
    pub before: Option<Value>,
    /// Planned state, unknown where only apply can tell; `None` for deletes.
    pub after: Option<Value>,
    pub reason: Option<Reason>,
    pub create_before_destroy: bool,
    /// Top-level attributes whose values are sensitive.
    pub sensitive: Vec<String>,
    /// Instances this one depends on (recorded in state on apply).
    pub dependencies: Vec<InstanceAddr>,
    /// For the destroy of a deposed object: its key in state (the address holds another object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposed: Option<String>,
    /// Attributes whose expression is exactly a reference to a whole object (a resource, one
    /// of its instances, a module output), by attribute path (`cluster`, `checkpoint.bucket`,
    /// `step[1].bucket`): the reference as the configuration writes it (`cluster.train`). The
    /// human plan shows these as the reference rather than the object inlined; the values
    /// stay in `after`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub references: BTreeMap<String, String>,
    /// The object's hourly cost before and after (`None` where kiln did not price the change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<ChangeCost>,
}

/// A change found by refresh: the object differs from state outside kiln's control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub address: InstanceAddr,
    pub before: Value,
    /// `None`: the object is gone.
    pub after: Option<Value>,
    pub sensitive: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputChange {
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub sensitive: bool,
}

impl OutputChange {
    pub fn is_change(&self) -> bool {
        match (&self.before, &self.after) {
            (Some(a), Some(b)) => !a.unmarked_eq(b),
            (None, None) => false,
            _ => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub kiln_version: String,
    pub mode: Mode,
    /// Lineage and serial of the state the plan was made against (`None` if there was none).
    pub lineage: Option<String>,
    pub serial: Option<u64>,
    pub changes: Vec<PlannedChange>,
    pub drift: Vec<Drift>,
    pub outputs: BTreeMap<String, OutputChange>,
    /// Root variable values the plan was made with (sensitive ones marked).
    pub variables: BTreeMap<String, Value>,
    /// Digest of every configuration file, to refuse a saved plan after the config changed.
    pub config_digest: String,
    pub targets: Vec<String>,
    pub excludes: Vec<String>,
    pub refresh: bool,
    /// Creates an interrupted apply left pending, and what the provider found for each.
    pub pending: Vec<PendingResolution>,
    /// The hourly cost before and after (`None` in plans written before kiln priced them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<PlanCost>,
    /// The placement optimizer's decisions, one per placed instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<Placement>,
    /// Every policy's verdict; a plan with a violation is refused (exit code 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyResult>,
    /// The git commit the configuration was at (`HEAD`, with `-dirty` when files differ from it),
    /// shown to the reviewer of a saved plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
}

/// The outcome of looking up one pending create: adopted (the object exists and kiln now
/// manages it) or cleared (nothing was created).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingResolution {
    pub token: String,
    pub address: InstanceAddr,
    pub provider: String,
    pub kind: String,
    pub adopted: Option<Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace => {
                    s.add += 1;
                    s.destroy += 1;
                }
                Action::Delete => s.destroy += 1,
                Action::NoOp | Action::Read => {}
            }
        }
        s
    }

    /// True when applying would change resources or outputs (for a refresh-only plan: state,
    /// where refresh found objects changed or gone outside kiln).
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| !matches!(c.action, Action::NoOp | Action::Read))
            || self.outputs.values().any(OutputChange::is_change)
            || !self.pending.is_empty()
            || (self.mode == Mode::RefreshOnly && !self.drift.is_empty())
    }

    pub fn to_json(&self) -> Result<String, PlanFileError> {
        serde_json::to_string(self).map_err(|e| PlanFileError::Encode(e.to_string()))
    }

    pub fn from_json(text: &str) -> Result<Plan, PlanFileError> {
        #[derive(Deserialize)]
        struct Head {
            format_version: u32,
        }
        // Values nest up to kiln_value::MAX_DEPTH, deeper than serde_json reads by default.
        let head: Head = kiln_value::from_json_str(text).map_err(|e| PlanFileError::Corrupt(e.to_string()))?;
        if head.format_version > FORMAT_VERSION {
            return Err(PlanFileError::NewerFormat(head.format_version));
        }
        kiln_value::from_json_str(text).map_err(|e| PlanFileError::Corrupt(e.to_string()))
    }
}

/// Why a saved plan can no longer be applied ([`Plan::check_current`]): what changed since it
/// was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// The state is another state than the one the plan was made against (another lineage, or
    /// a state where there was none, or none where there was one).
    #[error("the state changed since the plan was made: the plan was made against {}, the state is {}", lineage_text(.planned), lineage_text(.current))]
    Lineage { planned: Option<String>, current: Option<String> },
    /// The same state, written since (by an apply, an import, `state rm`, ...).
    #[error("the state changed since the plan was made (plan made against serial {}, state is at serial {})", serial_text(.planned), serial_text(.current))]
    Serial { planned: Option<u64>, current: Option<u64> },
    /// A configuration file changed.
    #[error("the configuration changed since the plan was made")]
    Config,
}

fn lineage_text(l: &Option<String>) -> String {
    l.as_ref().map_or("no state".into(), |l| format!("lineage `{l}`"))
}

fn serial_text(s: &Option<u64>) -> String {
    s.map_or("none".into(), |s| s.to_string())
}

impl Plan {
    /// Whether this (saved) plan still applies to the state it meets and the configuration it
    /// is applied with: the same lineage and serial (`None` for no state) and the same
    /// configuration digest; else what changed, the state first.
    pub fn check_current(&self, lineage: Option<&str>, serial: Option<u64>, config_digest: &str) -> Result<(), Stale> {
        if self.lineage.as_deref() != lineage {
            // No state then and no state now compare equal above; a state on one side only is
            // a change of lineage, as is a different one.
            return Err(Stale::Lineage { planned: self.lineage.clone(), current: lineage.map(str::to_string) });
        }
        if self.serial != serial {
            return Err(Stale::Serial { planned: self.serial, current: serial });
        }
        if self.config_digest != config_digest {
            return Err(Stale::Config);
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("the plan file is not a kiln plan or is damaged: {0}")]
    Corrupt(String),
    #[error("the plan file has format version {0}, newer than this kiln supports; upgrade kiln")]
    NewerFormat(u32),
    #[error("cannot encode the plan: {0}")]
    Encode(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Plan {
        let change = PlannedChange {
            address: "record.a[0]".parse().unwrap(),
            provider: "kiln".into(),
            kind: "record".into(),
            action: Action::Replace,
            before: Some(Value::Map([("input".to_string(), Value::from("a"))].into())),
            after: Some(Value::Map([("input".to_string(), Value::from("b")), ("id".to_string(), Value::Unknown)].into())),
            reason: Some(Reason::AttributesForceNew { attributes: vec!["input".into()] }),
            create_before_destroy: false,
            sensitive: vec![],
            dependencies: vec!["record.b".parse().unwrap()],
            deposed: None,
            references: [("data".to_string(), "record.b".to_string())].into(),
            cost: Some(ChangeCost { before: Some(Cost::None), after: Some(Cost::Unknown { reason: "r".into() }) }),
        };
        let offering = PlacedOffering {
            provider: "aws.ohio".into(),
            cloud: "aws".into(),
            instance_type: "g4dn.xlarge".into(),
            region: Some("us-east-2".into()),
            zone: Some("use2-az3".into()),
            spot: true,
            accelerators: Some("T4:1".into()),
            vcpus: 4,
            memory_gib: 16.into(),
            price_hourly: kiln_value::Decimal::new(2022, 4),
            nodes: 2,
            egress_usd: Some(1.into()),
        };
        Plan {
            format_version: FORMAT_VERSION,
            kiln_version: "0.1.0".into(),
            mode: Mode::Normal,
            lineage: Some("l".into()),
            serial: Some(3),
            changes: vec![change],
            drift: vec![Drift { address: "record.c".parse().unwrap(), before: Value::Null, after: None, sensitive: vec![] }],
            outputs: [("o".to_string(), OutputChange { before: None, after: Some(Value::from("x").sensitive()), sensitive: true })].into(),
            variables: BTreeMap::new(),
            config_digest: "d".into(),
            targets: vec![],
            excludes: vec![],
            refresh: true,
            pending: vec![PendingResolution {
                token: "t".into(),
                address: "record.z".parse().unwrap(),
                provider: "kiln".into(),
                kind: "record".into(),
                adopted: None,
            }],
            cost: Some(PlanCost { before: Total::default(), after: Total { usd: 1.into(), unknown: vec!["record.a[0]".into()] } }),
            placements: vec![Placement {
                address: "cluster.c".parse().unwrap(),
                request: "accelerators = \"T4:1\"".into(),
                chosen: offering.clone(),
                fallbacks: vec![offering.clone()],
                alternatives: vec![Alternative { offering: offering.clone(), reason: "+$1.00/h".into() }],
                notes: vec!["n".into()],
                kept: false,
                moved_from: Some(offering),
                request_digest: "d".into(),
            }],
            policies: vec![PolicyResult {
                name: "budget".into(),
                location: "main.kiln.hcl:1:1".into(),
                violations: vec![Violation { address: Some("cluster.c".into()), message: "m".into() }],
            }],
            git_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        }
    }

    #[test]
    fn saved_plan_round_trips_exactly() {
        let p = sample();
        let back = Plan::from_json(&p.to_json().unwrap()).unwrap();
        assert_eq!(back, p);
        assert_eq!(p.summary(), Summary { add: 1, change: 0, destroy: 1 });
    }

    #[test]
    fn a_plan_applies_to_the_state_and_configuration_it_was_made_from() {
        let p = sample();
        assert_eq!(p.check_current(Some("l"), Some(3), "d"), Ok(()));
        let none = Plan { lineage: None, serial: None, ..sample() };
        assert_eq!(none.check_current(None, None, "d"), Ok(()), "no state then, none now");
    }

    #[test]
    fn a_stale_plan_names_what_changed() {
        let p = sample();
        let e = p.check_current(Some("l"), Some(4), "d").unwrap_err();
        assert_eq!(e, Stale::Serial { planned: Some(3), current: Some(4) });
        assert!(e.to_string().contains("plan made against serial 3, state is at serial 4"), "{e}");
        let e = p.check_current(Some("other"), Some(3), "d").unwrap_err();
        assert_eq!(e, Stale::Lineage { planned: Some("l".into()), current: Some("other".into()) });
        assert!(e.to_string().contains("lineage `other`"), "{e}");
        let e = p.check_current(None, None, "d").unwrap_err();
        assert!(matches!(e, Stale::Lineage { current: None, .. }), "a state that went away: {e}");
        let fresh = Plan { lineage: None, serial: None, ..sample() };
        assert!(matches!(fresh.check_current(Some("l"), Some(1), "d"), Err(Stale::Lineage { planned: None, .. })));
        assert_eq!(p.check_current(Some("l"), Some(3), "e"), Err(Stale::Config));
        // The state is checked first: both changed names the state.
        assert!(matches!(p.check_current(Some("l"), Some(9), "e"), Err(Stale::Serial { .. })));
    }

    #[test]
    fn newer_format_is_refused() {
        let text = p_with_version(99);
        assert!(matches!(Plan::from_json(&text), Err(PlanFileError::NewerFormat(99))));
    }

    fn p_with_version(v: u32) -> String {
        let mut j: serde_json::Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
        j["format_version"] = v.into();
        j.to_string()
    }

    /// The JSON Schema in schemas/json/ names exactly the fields the plan file has.
    #[test]
    fn schema_matches_the_format() {
        let schema: serde_json::Value = serde_json::from_str(include_str!("../../../schemas/json/plan.schema.json")).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let required = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v["required"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
            k.sort();
            k
        };
        // The sample sets every optional field: the document has every property and no other.
        let within = |small: &[String], big: &[String]| small.iter().all(|k| big.contains(k));
        assert!(within(&required(&schema), &keys(&doc)));
        assert_eq!(keys(&doc), keys(&schema["properties"]));
        for (field, def) in [("changes", "change"), ("drift", "drift"), ("pending", "pending")] {
            let (doc_keys, def) = (keys(&doc[field][0]), &schema["$defs"][def]);
            assert!(within(&required(def), &doc_keys) && within(&doc_keys, &keys(&def["properties"])), "{field}: {doc_keys:?}");
        }
        assert_eq!(keys(&doc["placements"][0]), keys(&schema["properties"]["placements"]["items"]["properties"]));
        assert_eq!(keys(&doc["placements"][0]["chosen"]), keys(&schema["$defs"]["offering"]["properties"]));
        assert_eq!(keys(&doc["outputs"]["o"]), required(&schema["$defs"]["output"]));
    }
}
