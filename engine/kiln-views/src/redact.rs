//! The one redaction rule of every view. For machines, [`redact`] splits a value into what may
//! be printed (`value`: unknown and sensitive parts are `null`) and two mirrors that say where
//! those `null`s come from (`unknown`, `sensitive`: `true` where unknown or sensitive), as
//! Terraform's JSON plan does with `after_unknown` and `after_sensitive`: user data is never
//! confused with a marker. For people, [`shown`] prints [`SENSITIVE`] in place of a secret.

use kiln_value::Value;
use serde_json::{Map, Value as Json};

/// What a sensitive value prints as for people: in plans, `show`, `output` and errors.
pub const SENSITIVE: &str = kiln_value::REDACTED;

/// A value ready for a machine view: known, non-sensitive parts in `value`, and the mirrors.
#[derive(Debug, Clone, PartialEq)]
pub struct Redacted {
    /// The value with every unknown and sensitive part replaced by `null`.
    pub value: Json,
    /// `true` where the value is unknown (known after apply); objects and arrays mirror the
    /// value's shape where something inside is unknown; `false` elsewhere (absent object keys
    /// mean `false`).
    pub unknown: Json,
    /// `true` where the value is sensitive, shaped as `unknown`.
    pub sensitive: Json,
}

/// Splits `v` for a machine view. `sensitive_attrs` names top-level attributes (of a map
/// value) that are sensitive as a whole, as a change or a state object records them.
/// An absent value (`None`: before a create, after a delete) is `null` with `false` mirrors.
pub fn redact(v: Option<&Value>, sensitive_attrs: &[String]) -> Redacted {
    let Some(v) = v else {
        return Redacted { value: Json::Null, unknown: Json::Bool(false), sensitive: Json::Bool(false) };
    };
    match v {
        Value::Map(m) if !sensitive_attrs.is_empty() => {
            let mut value = Map::new();
            let mut unknown = Map::new();
            let mut sensitive = Map::new();
            for (k, x) in m {
                let r = redact_value(x);
                if sensitive_attrs.contains(k) {
                    value.insert(k.clone(), Json::Null);
                    sensitive.insert(k.clone(), Json::Bool(true));
                } else {
                    value.insert(k.clone(), r.value);
                    if r.sensitive != Json::Bool(false) {
                        sensitive.insert(k.clone(), r.sensitive);
                    }
                }
                if r.unknown != Json::Bool(false) {
                    unknown.insert(k.clone(), r.unknown);
                }
            }
            Redacted { value: Json::Object(value), unknown: Json::Object(unknown), sensitive: Json::Object(sensitive) }
        }
        v => {
            let mut r = redact_value(v);
            // A map at the top always has object mirrors, as Terraform's `after_unknown: {}`.
            if matches!(v, Value::Map(_)) {
                for m in [&mut r.unknown, &mut r.sensitive] {
                    if *m == Json::Bool(false) {
                        *m = Json::Object(Map::new());
                    }
                }
            }
            r
        }
    }
}

fn redact_value(v: &Value) -> Redacted {
    match v {
        Value::Unknown => Redacted { value: Json::Null, unknown: Json::Bool(true), sensitive: Json::Bool(false) },
        Value::Sensitive(inner) => {
            let r = redact_value(inner);
            Redacted { value: Json::Null, unknown: r.unknown, sensitive: Json::Bool(true) }
        }
        Value::List(l) => {
            let parts: Vec<Redacted> = l.iter().map(redact_value).collect();
            let mirror = |f: fn(&Redacted) -> &Json| {
                if parts.iter().all(|p| *f(p) == Json::Bool(false)) {
                    Json::Bool(false)
                } else {
                    Json::Array(parts.iter().map(|p| f(p).clone()).collect())
                }
            };
            let unknown = mirror(|p| &p.unknown);
            let sensitive = mirror(|p| &p.sensitive);
            Redacted { value: Json::Array(parts.into_iter().map(|p| p.value).collect()), unknown, sensitive }
        }
        Value::Map(m) => {
            let mut value = Map::new();
            let mut unknown = Map::new();
            let mut sensitive = Map::new();
            for (k, x) in m {
                let r = redact_value(x);
                value.insert(k.clone(), r.value);
                if r.unknown != Json::Bool(false) {
                    unknown.insert(k.clone(), r.unknown);
                }
                if r.sensitive != Json::Bool(false) {
                    sensitive.insert(k.clone(), r.sensitive);
                }
            }
            let obj = |m: Map<String, Json>| if m.is_empty() { Json::Bool(false) } else { Json::Object(m) };
            Redacted { value: Json::Object(value), unknown: obj(unknown), sensitive: obj(sensitive) }
        }
        v => Redacted { value: v.to_json(), unknown: Json::Bool(false), sensitive: Json::Bool(false) },
    }
}

/// A whole value for a machine view that has no mirrors (an output): `null` when it is
/// sensitive anywhere (`sensitive` says so) or unknown anywhere.
pub fn whole(v: &Value, sensitive: bool) -> Json {
    if sensitive || v.contains_sensitive() || v.contains_unknown() {
        Json::Null
    } else {
        v.to_json()
    }
}

/// A value for people: [`SENSITIVE`] when it is sensitive as a whole, else its HCL-like text,
/// in which each sensitive part inside prints as [`SENSITIVE`] too (`Value`'s `Display`).
pub fn shown(v: &Value, sensitive: bool) -> String {
    if sensitive || v.is_sensitive() {
        SENSITIVE.to_string()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn user_data_shaped_like_a_marker_is_data() {
        // A user's own value `{unknown = true}` is neither unknown nor sensitive.
        let v = map(&[("unknown", Value::Bool(true))]);
        let r = redact(Some(&map(&[("input", v.clone()), ("id", Value::Unknown)])), &[]);
        assert_eq!(r.value, json!({"input": {"unknown": true}, "id": null}));
        assert_eq!(r.unknown, json!({"id": true}));
        assert_eq!(r.sensitive, json!({}));
        let s = map(&[("sensitive", Value::Bool(true))]);
        let r = redact(Some(&map(&[("input", s)])), &[]);
        assert_eq!(r.value, json!({"input": {"sensitive": true}}));
        assert_eq!(r.sensitive, json!({}));
    }

    #[test]
    fn sensitive_parts_are_null_and_mirrored() {
        let v = map(&[
            ("token", Value::string("hunter2").sensitive()),
            ("list", Value::List(vec![Value::string("a"), Value::string("b").sensitive()])),
            ("plain", Value::string("x")),
            ("attr", Value::string("secret-by-schema")),
        ]);
        let r = redact(Some(&v), &["attr".to_string()]);
        assert_eq!(r.value, json!({"token": null, "list": ["a", null], "plain": "x", "attr": null}));
        assert_eq!(r.sensitive, json!({"token": true, "list": [false, true], "attr": true}));
        assert_eq!(r.unknown, json!({}));
        assert!(!r.value.to_string().contains("hunter2") && !r.value.to_string().contains("secret-by-schema"));
    }

    #[test]
    fn unknown_inside_sensitive_is_both() {
        let r = redact(Some(&map(&[("x", Value::Unknown.sensitive())])), &[]);
        assert_eq!((r.value, r.unknown, r.sensitive), (json!({"x": null}), json!({"x": true}), json!({"x": true})));
    }

    #[test]
    fn absent_and_scalar_values() {
        assert_eq!(redact(None, &[]), Redacted { value: Json::Null, unknown: json!(false), sensitive: json!(false) });
        let r = redact(Some(&Value::string("s").sensitive()), &[]);
        assert_eq!((r.value, r.sensitive), (Json::Null, json!(true)));
    }

    #[test]
    fn people_see_one_marker() {
        assert_eq!(shown(&Value::string("hunter2"), true), "(sensitive value)");
        assert_eq!(
            shown(&Value::List(vec![Value::string("a"), Value::string("hunter2").sensitive()]), false),
            "[\"a\", (sensitive value)]"
        );
        assert_eq!(shown(&Value::string("a"), false), "\"a\"");
        assert_eq!(whole(&Value::string("a"), true), Json::Null);
        assert_eq!(whole(&map(&[("unknown", Value::Bool(true))]), false), json!({"unknown": true}));
    }
}
