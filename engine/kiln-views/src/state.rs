//! The state's views (`kiln show`): every object with its attribute values, deposed objects
//! with their keys, and the outputs.

use std::collections::BTreeMap;
use std::fmt::Write;

use kiln_addrs::InstanceAddr;
use kiln_state::{ResourceState, State};
use serde::Serialize;
use serde_json::Value as Json;

use crate::markdown::{cell, code};
use crate::outputs::{block, table, OutputValue};
use crate::redact::{redact, shown};
use crate::FORMAT_VERSION;

/// `kiln show --json` (schema: `schemas/json/state-view.schema.json`).
#[derive(Debug, Clone, Serialize)]
pub struct StateView {
    pub format_version: &'static str,
    pub lineage: String,
    pub serial: u64,
    pub resources: Vec<ResourceView>,
    pub outputs: BTreeMap<String, OutputValue>,
}

/// One object in state, shaped as Terraform's state resources.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceView {
    #[serde(flatten)]
    pub at: crate::plan::Located,
    pub provider: String,
    /// Attribute values; sensitive ones are `null` here and `true` in `sensitive_values`.
    pub values: Json,
    /// Mirrors `values`: `true` where a value is sensitive.
    pub sensitive_values: Json,
    /// The key of a deposed object (the old object of a create_before_destroy replacement).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deposed: Option<String>,
    /// A create or update failed part-way: the next plan replaces it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tainted: bool,
    /// When and by which job it was released (`on_finish = "destroy_capacity"`): it does not
    /// exist; its values are what it had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<kiln_state::Released>,
}

/// Every object in state: the resources, then deposed objects with their keys.
pub fn objects(state: &State) -> impl Iterator<Item = (&InstanceAddr, Option<&str>, &ResourceState)> {
    let resources = state.resources.iter().map(|(a, r)| (a, None, r));
    resources.chain(state.deposed.values().map(|d| (&d.address, Some(d.key.as_str()), &d.resource)))
}

impl StateView {
    pub fn new(state: &State) -> StateView {
        let resources = objects(state)
            .map(|(a, deposed, r)| {
                let v = redact(Some(&r.attributes), &r.sensitive);
                ResourceView {
                    at: crate::plan::Located::new(a, &r.kind),
                    provider: r.provider.clone(),
                    values: v.value,
                    sensitive_values: v.sensitive,
                    deposed: deposed.map(str::to_string),
                    tainted: r.tainted,
                    released: r.released.clone(),
                }
            })
            .collect();
        StateView {
            format_version: FORMAT_VERSION,
            lineage: state.lineage.clone(),
            serial: state.serial,
            resources,
            outputs: state.outputs.iter().map(|(k, o)| (k.clone(), OutputValue::new(o))).collect(),
        }
    }
}

impl crate::View for State {
    fn json(&self) -> Json {
        serde_json::to_value(StateView::new(self)).expect("a state view serializes")
    }

    /// One HCL-like block per object, then the outputs.
    fn human(&self) -> String {
        let mut out = String::new();
        if objects(self).next().is_none() {
            out.push_str("The state is empty. No resources are managed yet.\n");
        }
        for (a, deposed, r) in objects(self) {
            let what = match (deposed, &r.released) {
                (Some(k), _) => format!(" (deposed object {k}, to be destroyed)"),
                (None, Some(rel)) => format!(" (released by {} at {})", rel.by, rel.at),
                (None, None) => String::new(),
            };
            let _ = writeln!(out, "# {a}{what}:\nresource \"{}\" \"{}\" {{", r.kind, a.resource.name);
            for (k, v) in r.attributes.as_map().into_iter().flatten() {
                let _ = writeln!(out, "    {k} = {}", shown(v, r.sensitive.contains(k)));
            }
            out.push_str("}\n\n");
        }
        out + &block(&self.outputs)
    }

    /// A table of the objects (address, kind, provider) and one of the outputs.
    fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### kiln state: {} object{}\n", objects(self).count(), if objects(self).count() == 1 { "" } else { "s" });
        if objects(self).next().is_some() {
            out.push_str("| Address | Kind | Provider |\n| --- | --- | --- |\n");
            for (a, deposed, r) in objects(self) {
                let addr = match deposed {
                    Some(k) => format!("{} (deposed {k})", code(&a.to_string())),
                    None => code(&a.to_string()),
                };
                let _ = writeln!(out, "| {addr} | {} | {} |", cell(&r.kind), cell(&r.provider));
            }
        }
        if !self.outputs.is_empty() {
            out.push_str("\n**Outputs**\n\n");
            out.push_str(&table(&self.outputs));
        }
        out
    }
}
