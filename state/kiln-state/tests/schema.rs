//! Checks `schemas/json/state.schema.json` against what kiln writes: the round-trip fixtures and
//! freshly encoded states must be valid, and broken documents must not be.
//!
//! The validator here is deliberately small: it implements exactly the JSON Schema 2020-12
//! keywords the state schema uses and fails on any other keyword, so the schema cannot grow a
//! constraint that goes unchecked.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/json/state.schema.json")
}

fn schema() -> Value {
    let text = std::fs::read_to_string(schema_path()).expect("schema file exists");
    serde_json::from_str(&text).expect("schema is valid JSON")
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type `{other}` in schema"),
    }
}

fn validate(root: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => return errors.push(format!("{at}: not allowed")),
            _ => panic!("schema at {at} is neither an object nor a boolean"),
        }
    };
    for (keyword, arg) in schema {
        match keyword.as_str() {
            "$schema" | "$id" | "title" | "description" | "$defs" | "format" => {}
            "$ref" => {
                let name = arg.as_str().and_then(|r| r.strip_prefix("#/$defs/")).expect("only local $defs refs");
                let target = &root["$defs"][name];
                assert!(!target.is_null(), "dangling $ref `{arg}`");
                validate(root, target, v, at, errors);
            }
            "type" => {
                let ok = match arg {
                    Value::String(t) => type_matches(t, v),
                    Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), v)),
                    _ => panic!("bad type keyword"),
                };
                if !ok {
                    errors.push(format!("{at}: expected type {arg}, got {v}"));
                }
            }
            "enum" => {
                if !arg.as_array().unwrap().contains(v) {
                    errors.push(format!("{at}: expected one of {arg}, got {v}"));
                }
            }
            "const" => {
                if v != arg {
                    errors.push(format!("{at}: expected {arg}, got {v}"));
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for name in arg.as_array().unwrap() {
                        if !o.contains_key(name.as_str().unwrap()) {
                            errors.push(format!("{at}: missing required `{name}`"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (k, s) in arg.as_object().unwrap() {
                        if let Some(child) = o.get(k) {
                            validate(root, s, child, &format!("{at}/{k}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let declared = schema.get("properties").and_then(Value::as_object);
                    for (k, child) in o {
                        if !declared.is_some_and(|d| d.contains_key(k)) {
                            validate(root, arg, child, &format!("{at}/{k}"), errors);
                        }
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, child) in a.iter().enumerate() {
                        validate(root, arg, child, &format!("{at}/{i}"), errors);
                    }
                }
            }
            "uniqueItems" => {
                if let (Some(a), Some(true)) = (v.as_array(), arg.as_bool()) {
                    for (i, x) in a.iter().enumerate() {
                        if a[..i].contains(x) {
                            errors.push(format!("{at}: duplicate item {x}"));
                        }
                    }
                }
            }
            "minLength" => {
                if let Some(s) = v.as_str() {
                    if (s.chars().count() as u64) < arg.as_u64().unwrap() {
                        errors.push(format!("{at}: shorter than {arg}"));
                    }
                }
            }
            "minimum" => {
                if let Some(n) = v.as_f64() {
                    if n < arg.as_f64().unwrap() {
                        errors.push(format!("{at}: below {arg}"));
                    }
                }
            }
            other => panic!("keyword `{other}` at {at} is not supported by this test's validator: extend it"),
        }
    }
}

fn errors_of(doc: &Value) -> Vec<String> {
    let root = schema();
    let mut errors = Vec::new();
    validate(&root, &root, doc, "", &mut errors);
    errors
}

#[test]
fn schema_parses_and_lists_the_top_level_required_fields() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["required"], json!(["format_version", "kiln_version", "lineage", "serial", "resources", "pending", "outputs"]));
    let formats = json!([kiln_state::format::BASE_FORMAT, kiln_state::format::FORMAT_VERSION]);
    assert_eq!(s["properties"]["format_version"]["enum"], formats);
    let props: Vec<&String> = s["properties"].as_object().unwrap().keys().collect();
    for field in ["format_version", "kiln_version", "lineage", "serial", "resources", "pending", "outputs"] {
        assert!(props.iter().any(|p| *p == field), "schema lacks top-level `{field}`");
    }
}

#[test]
fn fixtures_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/roundtrip");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(errors_of(&doc), Vec::<String>::new(), "{} does not match the schema", path.display());
        n += 1;
    }
    assert!(n >= 3);
}

#[test]
fn encoded_states_are_valid() {
    for state in [kiln_state::State::new(), kiln_state::conformance::sample_state("l", 7)] {
        let doc: Value = serde_json::from_slice(&kiln_state::encode(&state)).unwrap();
        assert_eq!(errors_of(&doc), Vec::<String>::new());
    }
}

#[test]
fn broken_documents_are_invalid() {
    let good: Value = serde_json::from_slice(&kiln_state::encode(&kiln_state::conformance::sample_state("l", 7))).unwrap();
    type Break = fn(&mut Value);
    let cases: Vec<(&str, Break)> = vec![
        ("missing lineage", |d| drop(d.as_object_mut().unwrap().remove("lineage"))),
        ("missing resources", |d| drop(d.as_object_mut().unwrap().remove("resources"))),
        ("newer format", |d| d["format_version"] = json!(kiln_state::format::FORMAT_VERSION + 1)),
        ("negative serial", |d| d["serial"] = json!(-1)),
        ("string serial", |d| d["serial"] = json!("7")),
        ("unknown top-level field", |d| d["extra"] = json!(1)),
        ("resource without kind", |d| drop(d["resources"][0].as_object_mut().unwrap().remove("kind"))),
        ("tainted as a string", |d| d["resources"][0]["tainted"] = json!("no")),
        ("duplicate sensitive name", |d| d["resources"][0]["sensitive_attributes"] = json!(["a", "a"])),
        ("pending without token", |d| drop(d["pending"][0].as_object_mut().unwrap().remove("token"))),
        ("output without value", |d| d["outputs"]["endpoint"] = json!({"sensitive": false})),
        ("event without kind", |d| drop(d["events"][0]["events"][0].as_object_mut().unwrap().remove("kind"))),
        ("negative latency", |d| d["events"][0]["events"][0]["latency_ms"] = json!(-1)),
    ];
    for (what, break_it) in cases {
        let mut doc = good.clone();
        break_it(&mut doc);
        assert!(!errors_of(&doc).is_empty(), "{what}: the schema should reject it");
    }
}
