//! Type conversion functions: tobool, tolist, tomap, tonumber, toset, tostring, and the
//! sensitivity functions sensitive, nonsensitive and issensitive (which see marks and unknowns
//! as they are instead of the generic rules).

use kiln_value::Value;

use super::{arg_err, make_set, quote, unify, Result, Spec};

pub(super) const FUNCS: &[Spec] = &[
    Spec::new("tobool", &["v"], tobool),
    Spec::new("tolist", &["v"], |a| to_seq(a, "list").map(Value::List)),
    Spec::new("tomap", &["v"], tomap),
    Spec::new("tonumber", &["v"], tonumber),
    Spec::new("toset", &["v"], |a| to_seq(a, "set").map(|l| Value::List(make_set(l)))),
    Spec::new("tostring", &["v"], tostring),
    Spec::new("sensitive", &["value"], |a| Ok(a[0].clone().sensitive())).own_marks(),
    Spec::new("nonsensitive", &["value"], |a| Ok(a[0].clone().unmark().0)).own_marks(),
    Spec::new("issensitive", &["value"], |a| Ok(Value::Bool(a[0].is_sensitive()))).own_marks(),
];

fn cannot(from: &Value, to: &str) -> super::FuncError {
    arg_err(0, format!("cannot convert {} to {to}", from.type_name()))
}

fn tobool(a: &[Value]) -> Result<Value> {
    match &a[0] {
        Value::Null | Value::Bool(_) => Ok(a[0].clone()),
        Value::String(s) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
        Value::String(s) => {
            Err(arg_err(0, format!("cannot convert {} to bool; only the strings \"true\" or \"false\" are allowed", quote(s))))
        }
        other => Err(cannot(other, "bool")),
    }
}

fn tonumber(a: &[Value]) -> Result<Value> {
    match &a[0] {
        Value::Null | Value::Number(_) => Ok(a[0].clone()),
        Value::String(s) => kiln_value::parse_number(s).map(Value::Number).ok_or_else(|| {
            arg_err(0, format!("cannot convert {} to number; given string must be a decimal representation of a number", quote(s)))
        }),
        other => Err(cannot(other, "number")),
    }
}

fn tostring(a: &[Value]) -> Result<Value> {
    match &a[0] {
        Value::Null => Ok(Value::Null),
        Value::List(_) | Value::Map(_) => Err(cannot(&a[0], "string")),
        other => Ok(Value::String(other.to_template_string().unwrap_or_default())),
    }
}

/// The elements of a sequence argument converted to one element type.
fn to_seq(a: &[Value], what: &str) -> Result<Vec<Value>> {
    match &a[0] {
        Value::List(l) => unify(l.clone()).map_err(|_| cannot(&a[0], &format!("{what} of any single type"))),
        other => Err(cannot(other, &format!("{what} of any single type"))),
    }
}

fn tomap(a: &[Value]) -> Result<Value> {
    match &a[0] {
        Value::Map(m) => {
            let values = unify(m.values().cloned().collect()).map_err(|_| cannot(&a[0], "map of any single type"))?;
            Ok(Value::Map(m.keys().cloned().zip(values).collect()))
        }
        other => Err(cannot(other, "map of any single type")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use kiln_value::Value;

    #[test]
    fn primitives() {
        assert_eq!(ok("tobool", vec![Value::Bool(true)]), Value::Bool(true));
        assert_eq!(ok("tobool", vec![s("false")]), Value::Bool(false));
        assert_eq!(ok("tobool", vec![Value::Null]), Value::Null);
        assert!(fails("tobool", vec![s("no")]).ends_with(r#"cannot convert "no" to bool; only the strings "true" or "false" are allowed"#));
        assert!(fails("tobool", vec![n("1")]).ends_with("cannot convert number to bool"));
        assert_eq!(ok("tonumber", vec![s("1")]), n("1"));
        assert_eq!(ok("tonumber", vec![s("-1.5e2")]), n("-150"));
        assert_eq!(ok("tonumber", vec![Value::Null]), Value::Null);
        assert!(fails("tonumber", vec![s("no")])
            .ends_with(r#"cannot convert "no" to number; given string must be a decimal representation of a number"#));
        assert_eq!(ok("tostring", vec![s("hello")]), s("hello"));
        assert_eq!(ok("tostring", vec![n("1.50")]), s("1.5"));
        assert_eq!(ok("tostring", vec![Value::Bool(true)]), s("true"));
        assert_eq!(ok("tostring", vec![Value::Null]), Value::Null);
        assert!(fails("tostring", vec![v("[]")]).ends_with("cannot convert list to string"));
    }

    #[test]
    fn collections() {
        assert_eq!(js("tolist", vec![v(r#"["a", "b", "c"]"#)]), r#"["a","b","c"]"#);
        assert_eq!(js("tolist", vec![v(r#"["a", "b", 3]"#)]), r#"["a","b","3"]"#);
        assert!(fails("tolist", vec![v(r#"["a", [1]]"#)]).ends_with("cannot convert list to list of any single type"));
        assert!(fails("tolist", vec![v("{}")]).ends_with("cannot convert object to list of any single type"));
        assert_eq!(js("toset", vec![v(r#"["c", "b", "b"]"#)]), r#"["b","c"]"#);
        assert_eq!(js("toset", vec![v(r#"["a", "b", 3]"#)]), r#"["3","a","b"]"#);
        assert_eq!(js("tomap", vec![v(r#"{"a": "foo", "b": true}"#)]), r#"{"a":"foo","b":"true"}"#);
        assert!(fails("tomap", vec![v("[1]")]).ends_with("cannot convert list to map of any single type"));
    }

    #[test]
    fn sensitivity() {
        let secret = s("x").sensitive();
        assert_eq!(ok("sensitive", vec![s("x")]), secret);
        assert_eq!(ok("nonsensitive", vec![secret.clone()]), s("x"));
        assert_eq!(ok("issensitive", vec![secret]), Value::Bool(true));
        assert_eq!(ok("issensitive", vec![s("x")]), Value::Bool(false));
        assert_eq!(ok("sensitive", vec![Value::Unknown]), Value::Unknown.sensitive());
    }
}
