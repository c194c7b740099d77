//! Which attributes of a resource's configuration are exactly a reference to a whole object
//! (`cluster = cluster.train`): the plan records them so people see the reference rather than
//! the object inlined ([`kiln_plan::PlannedChange::references`]).

use std::collections::BTreeMap;

use kiln_config::Body;
use kiln_schema::{Body as SchemaBody, Nesting};
use kiln_value::Value;

/// The whole-object references of `body` (a resource's, checked against `schema`), by attribute
/// path (`cluster`, `checkpoint.bucket`, `step[1].bucket`), where `value` (the planned object)
/// holds an object there (or, for a resource, a collection of them or a value not known yet). A
/// module output that is not an object (a string, a list of names) is shown as the value.
pub(crate) fn references(body: &Body, schema: &SchemaBody, value: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    collect(body, schema, value, "", &mut out);
    out
}

fn collect(body: &Body, schema: &SchemaBody, value: &Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    for a in &body.attrs {
        let Some(text) = kiln_eval::whole_reference(&a.expr) else { continue };
        let v = value.get(&a.name).map(Value::unmarked);
        // A resource is an object (a list or map of them with count or for_each), known or
        // not; a module output is shown as a reference only where it is an object.
        let whole = match v {
            Some(Value::Map(_)) => true,
            Some(Value::List(_) | Value::Unknown) => !text.starts_with("module."),
            _ => false,
        };
        if whole {
            out.insert(format!("{prefix}{}", a.name), text);
        }
    }
    for (name, bs) in &schema.blocks {
        let Some(v) = value.get(name) else { continue };
        for (i, b) in body.blocks.iter().filter(|b| &b.ident == name).enumerate() {
            let (at, inner) = match bs.nesting {
                Nesting::Single => (format!("{prefix}{name}."), v),
                Nesting::List => match v.as_list().and_then(|l| l.get(i)) {
                    Some(inner) => (format!("{prefix}{name}[{i}]."), inner),
                    None => continue,
                },
            };
            collect(&b.body, &bs.body, inner, &at, out);
        }
    }
}
