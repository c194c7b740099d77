//! Conversion of a value to a type constraint, with Terraform's automatic conversions:
//! numbers and bools to strings, numeric strings to numbers, `"true"`/`"false"` to bools,
//! lists to sets (deduplicated), and object attribute defaults.

use rust_decimal::Decimal;
use std::str::FromStr;

use crate::{format_number, Type, Value};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}{message}")]
pub struct ConvertError {
    /// Where inside the value, such as `.tags["a"]` or `[2]`; empty at the top.
    pub path: String,
    pub message: String,
}

fn err(path: &str, message: String) -> ConvertError {
    let path = if path.is_empty() { String::new() } else { format!("at {path}: ") };
    ConvertError { path, message }
}

/// Converts `v` to `ty`. Unknown values stay unknown; sensitive marks are kept.
pub fn convert(v: Value, ty: &Type) -> Result<Value, ConvertError> {
    convert_at(v, ty, "")
}

fn convert_at(v: Value, ty: &Type, path: &str) -> Result<Value, ConvertError> {
    if let Value::Sensitive(inner) = v {
        return Ok(convert_at(*inner, ty, path)?.sensitive());
    }
    if matches!(v, Value::Unknown | Value::Null) || *ty == Type::Any {
        return Ok(v);
    }
    match ty {
        Type::Any => Ok(v),
        Type::String => match &v {
            Value::String(_) => Ok(v),
            Value::Number(n) => Ok(Value::String(format_number(*n))),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(err(path, format!("string required, got {}", v.type_name()))),
        },
        Type::Number => match &v {
            Value::Number(_) => Ok(v),
            Value::String(s) => {
                parse_number(s).map(Value::Number).ok_or_else(|| err(path, format!("a number is required, and \"{s}\" is not a number")))
            }
            _ => Err(err(path, format!("number required, got {}", v.type_name()))),
        },
        Type::Bool => match &v {
            Value::Bool(_) => Ok(v),
            Value::String(s) if s == "true" => Ok(Value::Bool(true)),
            Value::String(s) if s == "false" => Ok(Value::Bool(false)),
            _ => Err(err(path, format!("bool required, got {}", describe(&v)))),
        },
        Type::List(elem) | Type::Set(elem) => {
            let items = match v {
                Value::List(l) => l,
                other => return Err(err(path, format!("list required, got {}", other.type_name()))),
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(convert_at(item, elem, &format!("{path}[{i}]"))?);
            }
            if matches!(ty, Type::Set(_)) {
                out = set_of(out);
            }
            Ok(Value::List(out))
        }
        Type::Tuple(elems) => {
            let items = match v {
                Value::List(l) => l,
                other => return Err(err(path, format!("tuple required, got {}", other.type_name()))),
            };
            if items.len() != elems.len() {
                return Err(err(path, format!("tuple of {} elements required, got {}", elems.len(), items.len())));
            }
            let out = items
                .into_iter()
                .zip(elems)
                .enumerate()
                .map(|(i, (item, t))| convert_at(item, t, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?;
            Ok(Value::List(out))
        }
        Type::Map(elem) => {
            let m = match v {
                Value::Map(m) => m,
                other => return Err(err(path, format!("map required, got {}", other.type_name()))),
            };
            let mut out = crate::Map::new();
            for (k, item) in m {
                let p = format!("{path}[\"{k}\"]");
                out.insert(k, convert_at(item, elem, &p)?);
            }
            Ok(Value::Map(out))
        }
        Type::Object(attrs) => {
            let mut m = match v {
                Value::Map(m) => m,
                other => return Err(err(path, format!("object required, got {}", other.type_name()))),
            };
            let mut out = crate::Map::new();
            for (name, attr) in attrs {
                let p = format!("{path}.{name}");
                match m.remove(name) {
                    Some(item) if !item.is_null() => {
                        out.insert(name.clone(), convert_at(item, &attr.ty, &p)?);
                    }
                    _ if attr.optional => {
                        let d = attr.default.clone().unwrap_or(Value::Null);
                        out.insert(name.clone(), convert_at(d, &attr.ty, &p)?);
                    }
                    _ => return Err(err(path, format!("attribute \"{name}\" is required"))),
                }
            }
            if let Some(extra) = m.keys().next() {
                return Err(err(path, format!("unexpected attribute \"{extra}\"; the type allows only {}", ty)));
            }
            Ok(Value::Map(out))
        }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("string \"{s}\""),
        v => v.type_name().to_string(),
    }
}

/// Deduplicates and orders the elements the way Terraform orders a set of strings.
pub(crate) fn set_of(mut items: Vec<Value>) -> Vec<Value> {
    let mut seen: Vec<Value> = Vec::with_capacity(items.len());
    items.sort_by(|a, b| match (a.unmarked(), b.unmarked()) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    });
    for i in items {
        if !seen.iter().any(|s| s.unmarked_eq(&i)) {
            seen.push(i);
        }
    }
    seen
}

/// Parses a number the way HCL does: decimal with optional exponent, leading sign allowed.
pub fn parse_number(s: &str) -> Option<Decimal> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Decimal::from_str(s).ok().or_else(|| Decimal::from_scientific(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers_convert_both_ways() {
        assert_eq!(convert(Value::from("12.50"), &Type::Number).unwrap().to_string(), "12.5");
        assert_eq!(convert(Value::from(3i64), &Type::String).unwrap(), Value::from("3"));
        assert!(convert(Value::from("x"), &Type::Number).is_err());
    }

    #[test]
    fn object_optional_defaults() {
        let ty = Type::Object(
            [
                ("a".to_string(), crate::types::ObjectAttr { ty: Type::String, optional: false, default: None }),
                ("b".to_string(), crate::types::ObjectAttr { ty: Type::Number, optional: true, default: Some(Value::from(1i64)) }),
            ]
            .into(),
        );
        let v = Value::Map([("a".to_string(), Value::from("x"))].into());
        assert_eq!(convert(v, &ty).unwrap().to_string(), "{a = \"x\", b = 1}");
        assert!(convert(Value::Map(Default::default()), &ty).is_err());
    }
}
