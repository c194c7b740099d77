//! Serde for `Value`: plain JSON for known values, numbers written exactly (serde_json's
//! `arbitrary_precision`: 12345678901234567890 and 0.1 survive a round trip). Unknowns and sensitive marks (which appear
//! only in saved plans) use reserved objects `{"$kiln":"unknown"}` and
//! `{"$kiln":"sensitive","value":...}` so a plan file round-trips exactly.

use rust_decimal::Decimal;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::{Map, Value};

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

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

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
        Decimal::from_str(&n.to_string())
            .map(Value::Number)
            .map_err(|_| E::custom(format!("number {n} is out of range")))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut l = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element()? {
            l.push(v);
        }
        Ok(Value::List(l))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = access.next_key::<String>()? {
            if k == NUMBER_TOKEN {
                let text: String = access.next_value()?;
                return Decimal::from_str(&text)
                    .or_else(|_| Decimal::from_scientific(&text))
                    .map(Value::Number)
                    .map_err(|_| de::Error::custom(format!("number {text} is out of range")));
            }
            let v: Value = access.next_value()?;
            m.insert(k, v);
        }
        match m.get(TAG).and_then(Value::as_str) {
            Some("unknown") if m.len() == 1 => Ok(Value::Unknown),
            Some("sensitive") if m.len() == 2 => Ok(Value::Sensitive(Box::new(m.remove("value").unwrap_or_default()))),
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
}
