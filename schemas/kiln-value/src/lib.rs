//! The value model every stage of kiln shares: configuration values, provider attributes, state
//! and plans. Numbers are exact decimals (0.1 + 0.2 is 0.3); `Unknown` stands for a value known
//! only after apply and flows through expressions; `Sensitive` marks a value that must never be
//! printed, and the mark follows the value through every operation.
//!
//! Lists, tuples and sets are all `List`; maps and objects are both `Map`. Type constraints
//! (`list(string)`, `object({...})`) live in [`Type`] and are applied by [`convert`].

mod convert;
mod redact;
mod serde_impl;
mod types;

pub use convert::parse_number;
pub use convert::{convert, ConvertError};
pub use redact::{Matcher, Secrets, REDACTED};
pub use rust_decimal::Decimal;
pub use serde_impl::{from_json_slice, from_json_str};
pub use types::{ObjectAttr, Type};

use std::collections::BTreeMap;
use std::fmt;

pub type Map = BTreeMap<String, Value>;

/// The deepest nesting of lists and maps a value may have (a `Sensitive` mark counts as no level).
/// The evaluator and every decoder (`jsondecode`, `yamldecode`, state and plan files) refuse
/// deeper values with a diagnostic, and everything kiln writes within it reads back.
pub const MAX_DEPTH: usize = 256;

#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(Decimal),
    String(String),
    List(Vec<Value>),
    Map(Map),
    /// Known only after apply.
    Unknown,
    /// A value that must never reach output or logs.
    Sensitive(Box<Value>),
}

impl Value {
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    pub fn number(n: impl Into<Decimal>) -> Value {
        Value::Number(n.into())
    }

    pub fn sensitive(self) -> Value {
        match self {
            Value::Sensitive(_) => self,
            v => Value::Sensitive(Box::new(v)),
        }
    }

    /// Wraps in `Sensitive` when `yes`.
    pub fn mark_if(self, yes: bool) -> Value {
        if yes {
            self.sensitive()
        } else {
            self
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.unmarked(), Value::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self.unmarked(), Value::Unknown)
    }

    /// True when the value itself is sensitive (not looking inside collections).
    pub fn is_sensitive(&self) -> bool {
        matches!(self, Value::Sensitive(_))
    }

    /// True when the value or anything inside it is unknown.
    pub fn contains_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::Sensitive(v) => v.contains_unknown(),
            Value::List(l) => l.iter().any(Value::contains_unknown),
            Value::Map(m) => m.values().any(Value::contains_unknown),
            _ => false,
        }
    }

    /// True when the value or anything inside it is sensitive.
    pub fn contains_sensitive(&self) -> bool {
        match self {
            Value::Sensitive(_) => true,
            Value::List(l) => l.iter().any(Value::contains_sensitive),
            Value::Map(m) => m.values().any(Value::contains_sensitive),
            _ => false,
        }
    }

    /// The value under a top-level sensitive mark.
    pub fn unmarked(&self) -> &Value {
        match self {
            Value::Sensitive(v) => v.unmarked(),
            v => v,
        }
    }

    /// Removes the top-level mark, saying whether there was one.
    pub fn unmark(self) -> (Value, bool) {
        match self {
            Value::Sensitive(v) => (v.unmark().0, true),
            v => (v, false),
        }
    }

    /// Removes every mark, deep, saying whether there was any.
    pub fn unmark_deep(self) -> (Value, bool) {
        match self {
            Value::Sensitive(v) => (v.unmark_deep().0, true),
            Value::List(l) => {
                let mut any = false;
                let l = l
                    .into_iter()
                    .map(|v| {
                        let (v, s) = v.unmark_deep();
                        any |= s;
                        v
                    })
                    .collect();
                (Value::List(l), any)
            }
            Value::Map(m) => {
                let mut any = false;
                let m = m
                    .into_iter()
                    .map(|(k, v)| {
                        let (v, s) = v.unmark_deep();
                        any |= s;
                        (k, v)
                    })
                    .collect();
                (Value::Map(m), any)
            }
            v => (v, false),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self.unmarked() {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.unmarked() {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<Decimal> {
        match self.unmarked() {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self.unmarked() {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match self.unmarked() {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Attribute lookup on a map value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// A short name of the value's type, for error messages: `string`, `number`, `list`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "object",
            Value::Unknown => "unknown",
            Value::Sensitive(v) => v.type_name(),
        }
    }

    /// Converts to the string form Terraform uses when a primitive is interpolated:
    /// numbers without trailing zeros, bools as `true`/`false`. `None` for collections and null.
    pub fn to_template_string(&self) -> Option<String> {
        match self.unmarked() {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(format_number(*n)),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Plain JSON, with unknowns as `null` and marks removed. For data that leaves kiln
    /// (`jsonencode`, state attributes): callers check unknowns and marks first.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null | Value::Unknown => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_impl::number_to_json(*n),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::List(l) => serde_json::Value::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Value::Sensitive(v) => v.to_json(),
        }
    }

    pub fn from_json(j: &serde_json::Value) -> Value {
        match j {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(serde_impl::number_from_json(n)),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(a) => Value::List(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::Map(o.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect()),
        }
    }

    /// Value equality where unknowns make a "maybe" (`None`) unless the known parts already differ.
    pub fn known_eq(&self, other: &Value) -> Option<bool> {
        // As Terraform compares: what is known already may tell them apart (a known object with
        // unknown attributes is not null; lists of other lengths, maps of other keys, or one
        // known pair of elements that differ are not equal).
        let all = |pairs: &mut dyn Iterator<Item = (&Value, &Value)>| {
            let mut unknown = false;
            for (x, y) in pairs {
                match x.known_eq(y) {
                    Some(false) => return Some(false),
                    None => unknown = true,
                    Some(true) => {}
                }
            }
            if unknown {
                None
            } else {
                Some(true)
            }
        };
        match (self.unmarked(), other.unmarked()) {
            (Value::Unknown, _) | (_, Value::Unknown) => None,
            (Value::List(a), Value::List(b)) if a.len() != b.len() => Some(false),
            (Value::List(a), Value::List(b)) => all(&mut a.iter().zip(b)),
            (Value::Map(a), Value::Map(b)) if a.len() != b.len() || a.keys().zip(b.keys()).any(|(x, y)| x != y) => Some(false),
            (Value::Map(a), Value::Map(b)) => all(&mut a.values().zip(b.values())),
            (a, b) => Some(a == b),
        }
    }

    /// Equality that ignores sensitive marks.
    pub fn unmarked_eq(&self, other: &Value) -> bool {
        match (self.unmarked(), other.unmarked()) {
            (Value::List(a), Value::List(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.unmarked_eq(y)),
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && va.unmarked_eq(vb))
            }
            (a, b) => a == b,
        }
    }
}

/// Formats a number the way Terraform prints it: integers without a decimal point, other values
/// without trailing zeros.
pub fn format_number(n: Decimal) -> String {
    n.normalize().to_string()
}

impl fmt::Display for Value {
    /// HCL-like rendering for humans; sensitive values are redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => write!(f, "{}", format_number(*n)),
            Value::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Value::List(l) => {
                write!(f, "[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
            Value::Map(m) => {
                write!(f, "{{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k} = {v}")?;
                }
                write!(f, "}}")
            }
            Value::Unknown => write!(f, "(known after apply)"),
            Value::Sensitive(_) => write!(f, "(sensitive value)"),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Number(n.into())
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Value::Number((n as u64).into())
    }
}

impl From<Decimal> for Value {
    fn from(n: Decimal) -> Self {
        Value::Number(n)
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Map(m)
    }
}

impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Self {
        Value::List(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn decimals_are_exact() {
        let a = Decimal::from_str("0.1").unwrap() + Decimal::from_str("0.2").unwrap();
        assert_eq!(format_number(a), "0.3");
        assert_eq!(format_number(Decimal::from_str("2.50").unwrap()), "2.5");
        assert_eq!(format_number(Decimal::from(10)), "10");
    }

    #[test]
    fn equality_with_unknown_parts_is_known_where_the_known_parts_tell() {
        let obj = |v: Value| Value::Map([("id".to_string(), v), ("size".to_string(), Value::from(3i64))].into());
        assert_eq!(obj(Value::Unknown).known_eq(&Value::Null), Some(false), "a known object is not null");
        assert_eq!(Value::Unknown.known_eq(&Value::Null), None);
        assert_eq!(obj(Value::Unknown).known_eq(&obj(Value::from("x"))), None);
        let other_size = Value::Map([("id".to_string(), Value::Unknown), ("size".to_string(), Value::from(4i64))].into());
        assert_eq!(obj(Value::Unknown).known_eq(&other_size), Some(false), "a known attribute differs");
        let list = |xs: Vec<Value>| Value::List(xs);
        assert_eq!(list(vec![Value::Unknown]).known_eq(&list(vec![Value::from(1i64), Value::from(2i64)])), Some(false));
        assert_eq!(list(vec![Value::Unknown, Value::from(2i64)]).known_eq(&list(vec![Value::from(1i64), Value::from(2i64)])), None);
        assert_eq!(obj(Value::from("x")).known_eq(&obj(Value::from("x").sensitive())), Some(true), "marks aside");
    }

    #[test]
    fn sensitive_is_redacted() {
        let v = Value::Map([("a".to_string(), Value::from("secret").sensitive())].into());
        assert_eq!(v.to_string(), "{a = (sensitive value)}");
        assert!(v.contains_sensitive());
        assert_eq!(v.unmark_deep(), (Value::Map([("a".to_string(), Value::from("secret"))].into()), true));
    }
}
