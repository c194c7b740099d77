//! Output values: `kiln output [--json] [NAME]` and the `Outputs:` block after `show` and
//! `apply`. A sensitive output (declared so, or holding a sensitive value) is `null` in JSON,
//! with `sensitive: true`, and [`SENSITIVE`] for people; `--raw` (the CLI) is the one way to
//! print it.

use std::collections::BTreeMap;
use std::fmt::Write;

use kiln_state::OutputState;
use serde::Serialize;

use crate::markdown::code;
use crate::redact::{shown, whole, SENSITIVE};
use crate::FORMAT_VERSION;

/// One output's value for machines.
#[derive(Debug, Clone, Serialize)]
pub struct OutputValue {
    /// Declared sensitive, or holding a sensitive value: `value` is then `null`.
    pub sensitive: bool,
    pub value: serde_json::Value,
}

impl OutputValue {
    pub fn new(o: &OutputState) -> OutputValue {
        let sensitive = o.sensitive || o.value.contains_sensitive();
        OutputValue { sensitive, value: whole(&o.value, sensitive) }
    }
}

/// `kiln output --json`: every output (schema: `schemas/json/output-view.schema.json`).
#[derive(Debug, Clone, Serialize)]
pub struct OutputsView {
    pub format_version: &'static str,
    pub outputs: BTreeMap<String, OutputValue>,
}

/// `kiln output --json NAME`: one output (schema: `schemas/json/output-view.schema.json`).
#[derive(Debug, Clone, Serialize)]
pub struct OutputView {
    pub format_version: &'static str,
    pub name: String,
    pub sensitive: bool,
    pub value: serde_json::Value,
}

/// Every output of a state.
pub struct Outputs<'a>(pub &'a BTreeMap<String, OutputState>);

/// One output of a state, by name.
pub struct Output<'a> {
    pub name: &'a str,
    pub output: &'a OutputState,
}

fn human_value(o: &OutputState) -> String {
    shown(&o.value, o.sensitive)
}

impl crate::View for Outputs<'_> {
    fn json(&self) -> serde_json::Value {
        let v =
            OutputsView { format_version: FORMAT_VERSION, outputs: self.0.iter().map(|(k, o)| (k.clone(), OutputValue::new(o))).collect() };
        serde_json::to_value(v).expect("an outputs view serializes")
    }

    /// `name = value` lines.
    fn human(&self) -> String {
        self.0.iter().map(|(k, o)| format!("{k} = {}\n", human_value(o))).collect()
    }

    fn markdown(&self) -> String {
        table(self.0)
    }
}

impl crate::View for Output<'_> {
    fn json(&self) -> serde_json::Value {
        let v = OutputValue::new(self.output);
        let view = OutputView { format_version: FORMAT_VERSION, name: self.name.to_string(), sensitive: v.sensitive, value: v.value };
        serde_json::to_value(view).expect("an output view serializes")
    }

    fn human(&self) -> String {
        format!("{}\n", human_value(self.output))
    }

    fn markdown(&self) -> String {
        table(&BTreeMap::from([(self.name.to_string(), self.output.clone())]))
    }
}

/// Outputs as a markdown table.
pub fn table(outputs: &BTreeMap<String, OutputState>) -> String {
    let mut out = String::from("| Output | Value |\n| --- | --- |\n");
    for (k, o) in outputs {
        let v = human_value(o);
        let v = if v == SENSITIVE { v } else { code(&v) };
        let _ = writeln!(out, "| {} | {v} |", code(k));
    }
    out
}

/// The `Outputs:` block printed after the resources of `show` and after `apply`; empty when
/// there are none.
pub fn block(outputs: &BTreeMap<String, OutputState>) -> String {
    if outputs.is_empty() {
        return String::new();
    }
    format!("\nOutputs:\n\n{}", crate::View::human(&Outputs(outputs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::View;
    use kiln_value::Value;
    use serde_json::json;

    fn outputs() -> BTreeMap<String, OutputState> {
        BTreeMap::from([
            ("plain".to_string(), OutputState { value: Value::string("a"), sensitive: false }),
            ("token".to_string(), OutputState { value: Value::string("hunter2"), sensitive: true }),
            ("nested".to_string(), OutputState { value: Value::List(vec![Value::string("hunter2").sensitive()]), sensitive: false }),
            (
                "marker".to_string(),
                OutputState { value: Value::Map([("sensitive".to_string(), Value::Bool(true))].into()), sensitive: false },
            ),
        ])
    }

    #[test]
    fn every_format_hides_secrets_with_one_marker() {
        let o = outputs();
        let j = Outputs(&o).json();
        assert_eq!(j["format_version"], "1.0");
        assert_eq!(j["outputs"]["token"], json!({"sensitive": true, "value": null}));
        assert_eq!(j["outputs"]["nested"], json!({"sensitive": true, "value": null}));
        assert_eq!(j["outputs"]["marker"], json!({"sensitive": false, "value": {"sensitive": true}}), "user data is data");
        let human = Outputs(&o).human();
        assert!(human.contains("token = (sensitive value)\n") && human.contains("plain = \"a\"\n"), "{human}");
        let md = Outputs(&o).markdown();
        assert!(md.contains("| `token` | (sensitive value) |") && md.contains("| `plain` | `\"a\"` |"), "{md}");
        for text in [j.to_string(), human, md, block(&o)] {
            assert!(!text.contains("hunter2"), "{text}");
        }
        let one = Output { name: "token", output: &o["token"] };
        assert_eq!(one.json(), json!({"format_version": "1.0", "name": "token", "sensitive": true, "value": null}));
        assert_eq!(one.human(), "(sensitive value)\n");
    }
}
