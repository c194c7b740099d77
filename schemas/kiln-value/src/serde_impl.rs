//! Serde for `Value`: plain JSON for known values, numbers written exactly (serde_json's
//! `arbitrary_precision`: 12345678901234567890 and 0.1 survive a round trip). Unknowns and sensitive marks (which appear
//! only in saved plans) use reserved objects `{"$kiln":"unknown"}` and
//! `{"$kiln":"sensitive","value":...}` so a plan file round-trips exactly.
//!
//! Depth: a value may nest up to [`MAX_DEPTH`] lists and maps (a sensitive mark's wrapper
//! object counts as no level). Deserializing refuses a deeper value with an error (never a
//! stack overflow), and [`from_json_slice`] reads documents holding values up to that depth
//! (serde_json alone stops at 128 levels of the whole document). Such a read needs well under
//! 1 MiB of stack, so it is safe on Tokio's 2 MiB worker threads.

use rust_decimal::Decimal;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::{Map, Value, MAX_DEPTH};

const TAG: &str = "$kiln";

pub(crate) fn number_to_json(n: Decimal) -> serde_json::Value {
    let text = n.normalize().to_string();
    serde_json::Number::from_str(&text).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

pub(crate) fn number_from_json(n: &serde_json::Number) -> Decimal {
    let text = n.to_string();
    Decimal::from_str(&text).or_else(|_| Decimal::from_scientific(&text)).unwrap_or_default()
}

/// The key serde_json uses to hand an exact number to a visitor (`arbitrary_precision`).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => number_to_json(*n).serialize(s),
            Value::String(v) => s.serialize_str(v),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Value::Unknown => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(TAG, "unknown")?;
                map.end()
            }
            Value::Sensitive(v) => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry(TAG, "sensitive")?;
                map.serialize_entry("value", v)?;
                map.end()
            }
        }
    }
}

/// Reads a JSON document whose values nest up to [`MAX_DEPTH`] levels. serde_json's own
/// recursion limit (128 levels for the whole document) is lifted; what bounds the recursion is
/// the depth check of [`Value`]'s deserializer, and the fixed shape of the other types (a type
/// that ignores unknown fields skips them without recursion).
pub fn from_json_slice<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = T::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// [`from_json_slice`] for text.
pub fn from_json_str<T: serde::de::DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    from_json_slice(text.as_bytes())
}

impl Value {
    /// True when the value nests more than `limit` lists and maps (sensitive marks count as no
    /// level). Iterative: safe on any value, however deep.
    pub fn deeper_than(&self, limit: usize) -> bool {
        let mut stack: Vec<(&Value, usize)> = vec![(self, 0)];
        while let Some((v, d)) = stack.pop() {
            match v {
                Value::List(l) => {
                    if d + 1 > limit {
                        return true;
                    }
                    stack.extend(l.iter().map(|x| (x, d + 1)));
                }
                Value::Map(m) => {
                    if d + 1 > limit {
                        return true;
                    }
                    stack.extend(m.values().map(|x| (x, d + 1)));
                }
                Value::Sensitive(inner) => stack.push((inner, d)),
                _ => {}
            }
        }
        false
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor { depth: 0 })
    }
}

/// The error for a value nested deeper than [`MAX_DEPTH`].
fn too_deep<E: de::Error>() -> E {
    E::custom(format!("a value nests more than {MAX_DEPTH} levels of lists and maps, the most kiln reads or writes"))
}

/// Deserializes a value enclosed in `depth` lists and maps.
#[derive(Clone, Copy)]
struct ValueVisitor {
    depth: usize,
}

impl<'de> de::DeserializeSeed<'de> for ValueVisitor {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Decimal::from_str(&n.to_string()).map(Value::Number).map_err(|_| E::custom(format!("number {n} is out of range")))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = ValueVisitor { depth: self.depth + 1 };
        if inner.depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let mut l = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element_seed(inner)? {
            l.push(v);
        }
        Ok(Value::List(l))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        // A sensitive mark's wrapper object is no level: its `value` keeps this depth. Entries
        // of an ordinary map one level deeper; a container among them at a depth past the limit
        // is refused as it starts, and the map itself once it is known not to be a wrapper.
        let inner = ValueVisitor { depth: self.depth + 1 };
        // One level past the limit may still be a mark's wrapper around a scalar; two may not.
        if inner.depth > MAX_DEPTH + 1 {
            return Err(too_deep());
        }
        let mut m = Map::new();
        let mut marked = false;
        while let Some(k) = access.next_key::<String>()? {
            if k == NUMBER_TOKEN {
                let text: String = access.next_value()?;
                return Decimal::from_str(&text)
                    .or_else(|_| Decimal::from_scientific(&text))
                    .map(Value::Number)
                    .map_err(|_| de::Error::custom(format!("number {text} is out of range")));
            }
            let seed = if marked && k == "value" { self } else { inner };
            let v: Value = access.next_value_seed(seed)?;
            if k == TAG && v.as_str() == Some("sensitive") {
                marked = true;
            }
            m.insert(k, v);
        }
        match m.get(TAG).and_then(Value::as_str) {
            Some("unknown") if m.len() == 1 => Ok(Value::Unknown),
            Some("sensitive") if m.len() == 2 && m.contains_key("value") => {
                Ok(Value::Sensitive(Box::new(m.remove("value").unwrap_or_default())))
            }
            _ if inner.depth > MAX_DEPTH || (marked && m.get("value").is_some_and(|v| v.deeper_than(MAX_DEPTH - inner.depth))) => {
                Err(too_deep())
            }
            _ => Ok(Value::Map(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_unknown_and_marks() {
        let v = Value::List(vec![
            Value::Unknown,
            Value::from("s").sensitive(),
            Value::Number(Decimal::from_str("0.1").unwrap()),
            Value::from(12i64),
            Value::Number(Decimal::from_str("123456789012345678900").unwrap()),
        ]);
        let j = serde_json::to_string(&v).unwrap();
        assert_eq!(j, r#"[{"$kiln":"unknown"},{"$kiln":"sensitive","value":"s"},0.1,12,123456789012345678900]"#);
        let back: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(back, v);
    }

    /// `[[...[leaf]...]]`: `depth` lists around `leaf`.
    fn nested(depth: usize, leaf: Value) -> Value {
        (0..depth).fold(leaf, |v, _| Value::List(vec![v]))
    }

    /// Runs `f` on a thread with Tokio's worker stack size (2 MiB), where state is read.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new().stack_size(2 << 20).spawn(f).unwrap().join().unwrap()
    }

    #[test]
    fn max_depth_values_round_trip_inside_a_document_on_a_small_stack() {
        on_small_stack(|| {
            for leaf in [Value::from(1i64), Value::from("s").sensitive(), Value::Unknown] {
                let v = nested(MAX_DEPTH, leaf);
                assert!(!v.deeper_than(MAX_DEPTH));
                assert!(v.deeper_than(MAX_DEPTH - 1));
                // Embedded a few levels down, as state and plan documents hold values.
                let doc = serde_json::json!({"resources": [{"attributes": serde_json::to_value(&v).unwrap()}]});
                let text = serde_json::to_string(&doc).unwrap();
                let back: serde_json::Value = from_json_str(&text).unwrap();
                let back: Value = from_json_str(&back["resources"][0]["attributes"].to_string()).unwrap();
                assert_eq!(back, v);
                #[derive(serde::Deserialize)]
                struct Doc {
                    resources: Vec<Res>,
                }
                #[derive(serde::Deserialize)]
                struct Res {
                    attributes: Value,
                }
                let typed: Doc = from_json_str(&text).unwrap();
                assert_eq!(typed.resources[0].attributes, v);
                // serde_json's own limit would have refused it.
                assert!(serde_json::from_str::<Doc>(&text).is_err());
            }
        });
    }

    #[test]
    fn deeper_values_are_refused_with_an_error_not_a_stack_overflow() {
        on_small_stack(|| {
            let v = nested(MAX_DEPTH + 1, Value::Null);
            assert!(v.deeper_than(MAX_DEPTH));
            let text = serde_json::to_string(&v).unwrap();
            let e = from_json_str::<Value>(&text).unwrap_err();
            assert!(e.to_string().contains(&format!("more than {MAX_DEPTH} levels")), "{e}");
            assert!(e.is_data(), "a value error, not a syntax error: {e}");
            // Maps count as lists do.
            let mut m = Value::Null;
            for _ in 0..=MAX_DEPTH {
                m = Value::Map([("k".to_string(), m)].into());
            }
            assert!(from_json_str::<Value>(&serde_json::to_string(&m).unwrap()).is_err());
            // A hostile document: 200,000 brackets.
            let hostile = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
            assert!(from_json_str::<Value>(&hostile).is_err());
            let hostile = format!("{{\"a\": {}}}", "{\"a\": ".repeat(200_000));
            assert!(from_json_str::<Value>(&hostile).is_err());
        });
    }

    #[test]
    fn a_sensitive_mark_is_no_level() {
        let v = nested(MAX_DEPTH - 1, Value::List(vec![Value::from(1i64)]).sensitive());
        assert!(!v.deeper_than(MAX_DEPTH));
        let back: Value = from_json_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back, v);
        // An ordinary map that happens to hold `$kiln` and `value` keys is a level.
        let fake = nested(
            MAX_DEPTH - 1,
            Value::Map(
                [
                    ("$kiln".to_string(), Value::from("sensitive")),
                    ("value".to_string(), Value::List(vec![])),
                    ("x".to_string(), Value::Null),
                ]
                .into(),
            ),
        );
        assert!(fake.deeper_than(MAX_DEPTH));
        assert!(from_json_str::<Value>(&serde_json::to_string(&fake).unwrap()).is_err());
    }
}
