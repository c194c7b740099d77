//! Collection functions: alltrue, anytrue, chunklist, coalesce, coalescelist, compact, concat,
//! contains, distinct, element, flatten, index, keys, length, lookup, matchkeys, merge, one,
//! range, reverse, setintersection, setproduct, setsubtract, setunion, slice, sort, sum,
//! transpose, values and zipmap.
//!
//! Lists, tuples and sets are all `Value::List`; maps and objects are `Value::Map`, whose keys
//! iterate in lexical order as Terraform's do. Set results are deduplicated and ordered.

use kiln_value::{Decimal, Map, Value};

use super::{
    arg_err, arg_int, arg_list, arg_map, arg_number, arg_string, arg_string_list, err, make_set, number, quote, to_bool, to_num, to_str,
    unify, Result, Spec, NOT_NULL, WHOLE_NUMBER,
};

pub(super) const FUNCS: &[Spec] = &[
    Spec::new("alltrue", &["list"], |a| truth(a, true)),
    Spec::new("anytrue", &["list"], |a| truth(a, false)),
    Spec::new("chunklist", &["list", "size"], chunklist),
    Spec::new("coalesce", &[], coalesce).variadic("vals").own_unknowns(),
    Spec::new("coalescelist", &[], coalescelist).variadic("vals").own_unknowns(),
    Spec::new("compact", &["list"], compact),
    Spec::new("concat", &[], concat).variadic("seqs"),
    Spec::new("contains", &["list", "value"], |a| Ok(Value::Bool(position(a)?.is_some()))),
    Spec::new("distinct", &["list"], distinct),
    Spec::new("element", &["list", "index"], element),
    Spec::new("flatten", &["list"], |a| Ok(Value::List(flatten(seq(a, 0, "can only flatten lists, sets and tuples")?)))),
    Spec::new("index", &["list", "value"], index),
    Spec::new("keys", &["inputMap"], |a| map_parts(a, |k, _| Value::from(k.as_str()))).own_unknowns(),
    Spec::new("length", &["value"], length).own_unknowns(),
    Spec::new("lookup", &["inputMap", "key", "default"], lookup).optional(1),
    Spec::new("matchkeys", &["values", "keys", "searchset"], matchkeys),
    Spec::new("merge", &[], merge).variadic("maps"),
    Spec::new("one", &["list"], one),
    Spec::new("range", &[], range).variadic("params"),
    Spec::new("reverse", &["list"], reverse),
    Spec::new("setintersection", &["first_set"], |a| set_op(a, SetOp::Intersection)).variadic("other_sets"),
    Spec::new("setproduct", &[], setproduct).variadic("sets"),
    Spec::new("setsubtract", &["a", "b"], |a| set_op(a, SetOp::Subtract)),
    Spec::new("setunion", &["first_set"], |a| set_op(a, SetOp::Union)).variadic("other_sets"),
    Spec::new("slice", &["list", "start_index", "end_index"], slice),
    Spec::new("sort", &["list"], sort),
    Spec::new("sum", &["list"], sum),
    Spec::new("transpose", &["values"], transpose),
    Spec::new("values", &["mapping"], |a| map_parts(a, |_, v| v.clone())),
    Spec::new("zipmap", &["keys", "values"], zipmap),
];

/// Argument `i` as a sequence, with `message` when it is not one.
fn seq<'a>(a: &'a [Value], i: usize, message: &str) -> Result<&'a [Value]> {
    match &a[i] {
        Value::List(l) => Ok(l),
        Value::Null => Err(arg_err(i, NOT_NULL)),
        _ => Err(arg_err(i, message)),
    }
}

fn truth(a: &[Value], all: bool) -> Result<Value> {
    for (k, v) in arg_list(a, 0)?.iter().enumerate() {
        let b = if v.is_null() { false } else { to_bool(v).map_err(|m| arg_err(0, format!("element {k}: {m}")))? };
        if b != all {
            return Ok(Value::Bool(!all));
        }
    }
    Ok(Value::Bool(all))
}

fn chunklist(a: &[Value]) -> Result<Value> {
    let list = arg_list(a, 0)?;
    let size = arg_int(a, 1)?;
    if size < 0 {
        return Err(arg_err(1, "the size argument must be positive"));
    }
    if list.is_empty() {
        return Ok(Value::List(Vec::new()));
    }
    if size == 0 {
        return Ok(Value::List(vec![Value::List(list.to_vec())]));
    }
    Ok(Value::List(list.chunks(size as usize).map(|c| Value::List(c.to_vec())).collect()))
}

/// The first argument that is not null or an empty string; an unknown reached first makes the
/// result unknown.
fn coalesce(a: &[Value]) -> Result<Value> {
    if a.is_empty() {
        return Err(err("at least one argument is required"));
    }
    let vals = unify(a.to_vec()).map_err(|_| err("all arguments must have the same type"))?;
    for v in vals {
        match &v {
            Value::Unknown => return Ok(Value::Unknown),
            Value::Null => continue,
            Value::String(s) if s.is_empty() => continue,
            _ => return Ok(v),
        }
    }
    Err(err("no non-null, non-empty-string arguments"))
}

fn coalescelist(a: &[Value]) -> Result<Value> {
    if a.is_empty() {
        return Err(err("at least one argument is required"));
    }
    for (i, v) in a.iter().enumerate() {
        match v {
            Value::Unknown => return Ok(Value::Unknown),
            Value::Null => continue,
            Value::List(l) if l.is_empty() => continue,
            Value::List(_) => return Ok(v.clone()),
            _ => return Err(arg_err(i, "coalescelist arguments must be lists or tuples")),
        }
    }
    Err(err("no non-null arguments"))
}

fn compact(a: &[Value]) -> Result<Value> {
    let mut out = Vec::new();
    for (k, v) in arg_list(a, 0)?.iter().enumerate() {
        if v.is_null() {
            continue;
        }
        let s = to_str(v).map_err(|m| arg_err(0, format!("element {k}: {m}")))?;
        if !s.is_empty() {
            out.push(Value::String(s));
        }
    }
    Ok(Value::List(out))
}

fn concat(a: &[Value]) -> Result<Value> {
    if a.is_empty() {
        return Err(err("at least one argument is required"));
    }
    let mut out = Vec::new();
    for (i, v) in a.iter().enumerate() {
        match v {
            Value::List(l) => out.extend(l.iter().cloned()),
            other => return Err(arg_err(i, format!("all arguments must be lists or tuples; got {}", other.type_name()))),
        }
    }
    Ok(Value::List(out))
}

/// Where `value` first occurs in the list argument (strict equality, as Terraform compares).
fn position(a: &[Value]) -> Result<Option<usize>> {
    let list = seq(a, 0, "argument must be list, tuple, or set")?;
    Ok(list.iter().position(|v| v.unmarked_eq(&a[1])))
}

fn index(a: &[Value]) -> Result<Value> {
    if seq(a, 0, "argument must be a list or tuple")?.is_empty() {
        return Err(err("cannot search an empty list"));
    }
    position(a)?.map(Value::from).ok_or_else(|| err("item not found"))
}

fn distinct(a: &[Value]) -> Result<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in arg_list(a, 0)? {
        if !out.iter().any(|o| o.unmarked_eq(v)) {
            out.push(v.clone());
        }
    }
    Ok(Value::List(out))
}

fn element(a: &[Value]) -> Result<Value> {
    let list = seq(a, 0, "cannot read elements from this value")?;
    let n = arg_number(a, 1)?;
    if n.is_sign_negative() && !n.is_zero() {
        return Err(err("cannot use element function with a negative index"));
    }
    let i = super::to_int(n).ok_or_else(|| arg_err(1, format!("invalid index: {WHOLE_NUMBER}")))?;
    if list.is_empty() {
        return Err(err("cannot use element function with an empty list"));
    }
    Ok(list[i as usize % list.len()].clone())
}

fn flatten(list: &[Value]) -> Vec<Value> {
    list.iter()
        .flat_map(|v| match v {
            Value::List(inner) => flatten(inner),
            other => vec![other.clone()],
        })
        .collect()
}

/// Keys or values of a map argument, in key order. An unknown map gives an unknown result.
fn map_parts(a: &[Value], part: fn(&String, &Value) -> Value) -> Result<Value> {
    match &a[0] {
        Value::Unknown => Ok(Value::Unknown),
        Value::Map(m) => Ok(Value::List(m.iter().map(|(k, v)| part(k, v)).collect())),
        Value::Null => Err(arg_err(0, NOT_NULL)),
        _ => Err(arg_err(0, "must have map or object type")),
    }
}

fn length(a: &[Value]) -> Result<Value> {
    match &a[0] {
        Value::Unknown => Ok(Value::Unknown),
        Value::String(s) => Ok(Value::from(s.chars().count())),
        Value::List(l) => Ok(Value::from(l.len())),
        Value::Map(m) => Ok(Value::from(m.len())),
        Value::Null => Err(arg_err(0, NOT_NULL)),
        _ => Err(arg_err(0, "argument must be a string, a collection type, or a structural type")),
    }
}

fn lookup(a: &[Value]) -> Result<Value> {
    let m = match &a[0] {
        Value::Map(m) => m,
        Value::Null => return Err(arg_err(0, NOT_NULL)),
        _ => return Err(arg_err(0, "lookup() requires a map as the first argument")),
    };
    let key = arg_string(a, 1)?;
    match (m.get(&key), a.get(2)) {
        (Some(v), _) => Ok(v.clone()),
        (None, Some(default)) => Ok(default.clone()),
        (None, None) => Err(err(format!("lookup failed to find key {}", quote(&key)))),
    }
}

fn matchkeys(a: &[Value]) -> Result<Value> {
    let values = arg_list(a, 0)?;
    let keys = arg_list(a, 1)?;
    let search = arg_list(a, 2)?;
    if values.len() != keys.len() {
        return Err(err("length of keys and values should be equal"));
    }
    let both =
        unify(keys.iter().chain(search).cloned().collect()).map_err(|_| arg_err(2, "keys and searchset must be of the same type"))?;
    let (keys, search) = both.split_at(keys.len());
    Ok(Value::List(values.iter().zip(keys).filter(|(_, k)| search.iter().any(|s| s.unmarked_eq(k))).map(|(v, _)| v.clone()).collect()))
}

fn merge(a: &[Value]) -> Result<Value> {
    let mut out = Map::new();
    let mut all_null = !a.is_empty();
    for (i, v) in a.iter().enumerate() {
        match v {
            Value::Null => {}
            Value::Map(m) => {
                all_null = false;
                out.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            other => {
                let m = format!("arguments must be maps or objects, got {}", quote(other.type_name()));
                return Err(arg_err(i, m));
            }
        }
    }
    Ok(if all_null { Value::Null } else { Value::Map(out) })
}

fn one(a: &[Value]) -> Result<Value> {
    match &a[0] {
        Value::List(l) if l.len() <= 1 => Ok(l.first().cloned().unwrap_or(Value::Null)),
        Value::Null => Err(arg_err(0, NOT_NULL)),
        _ => Err(arg_err(0, "must be a list, set, or tuple value with either zero or one elements")),
    }
}

fn range(a: &[Value]) -> Result<Value> {
    let nums = (0..a.len()).map(|i| arg_number(a, i)).collect::<Result<Vec<Decimal>>>()?;
    let one = Decimal::ONE;
    let (start, end, step) = match nums[..] {
        [end] => (Decimal::ZERO, end, if end.is_sign_negative() && !end.is_zero() { -one } else { one }),
        [start, end] => (start, end, if end < start { -one } else { one }),
        [start, end, step] => (start, end, step),
        _ => return Err(err("must have one, two, or three arguments")),
    };
    if step.is_zero() {
        return Err(arg_err(2, "step must not be zero"));
    }
    let down = step.is_sign_negative();
    if down && end > start {
        return Err(arg_err(1, "end must be less than start when step is negative"));
    }
    if !down && end < start {
        return Err(arg_err(1, "end must be greater than start when step is positive"));
    }
    let mut out = Vec::new();
    let mut n = start;
    while if down { n > end } else { n < end } {
        if out.len() >= 1024 {
            return Err(err(
                "more than 1024 values were generated; either decrease the difference between start and end or use a smaller step",
            ));
        }
        out.push(number(n));
        n += step;
    }
    Ok(Value::List(out))
}

fn reverse(a: &[Value]) -> Result<Value> {
    match &a[0] {
        Value::List(l) => Ok(Value::List(l.iter().rev().cloned().collect())),
        Value::Null => Err(arg_err(0, NOT_NULL)),
        other => Err(arg_err(0, format!("can only reverse list or tuple values, not {}", other.type_name()))),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Intersection,
    Subtract,
}

/// The elements of every set argument, converted to one element type.
fn set_args(a: &[Value]) -> Result<Vec<Vec<Value>>> {
    let lists = (0..a.len()).map(|i| seq(a, i, "a set or a list is required")).collect::<Result<Vec<_>>>()?;
    let all: Vec<Value> = lists.iter().flat_map(|l| l.iter().cloned()).collect();
    let mut all = unify(all).map_err(|_| err("given sets must all have the same element type"))?.into_iter();
    Ok(lists.iter().map(|l| all.by_ref().take(l.len()).collect()).collect())
}

fn set_op(a: &[Value], op: SetOp) -> Result<Value> {
    let mut sets = set_args(a)?.into_iter();
    let first = sets.next().unwrap_or_default();
    let rest: Vec<Vec<Value>> = sets.collect();
    let has = |set: &Vec<Value>, v: &Value| set.iter().any(|x| x.unmarked_eq(v));
    let out: Vec<Value> = match op {
        SetOp::Union => first.into_iter().chain(rest.into_iter().flatten()).collect(),
        SetOp::Intersection => first.into_iter().filter(|v| rest.iter().all(|s| has(s, v))).collect(),
        SetOp::Subtract => first.into_iter().filter(|v| !rest.iter().any(|s| has(s, v))).collect(),
    };
    Ok(Value::List(make_set(out)))
}

/// The most elements `setproduct` builds: the product of a few lists grows without bound.
const MAX_PRODUCT: usize = 1_000_000;

fn setproduct(a: &[Value]) -> Result<Value> {
    if a.len() < 2 {
        return Err(err("at least two arguments are required"));
    }
    let lists = (0..a.len()).map(|i| seq(a, i, "a set or a list is required")).collect::<Result<Vec<_>>>()?;
    let size = lists.iter().try_fold(1usize, |n, l| n.checked_mul(l.len())).filter(|n| *n <= MAX_PRODUCT);
    if size.is_none() {
        return Err(err(format!("the product has more than {MAX_PRODUCT} elements, the limit")));
    }
    let mut product: Vec<Vec<Value>> = vec![Vec::new()];
    for list in lists {
        let elems = unify(list.to_vec()).map_err(|_| err("all elements must be of the same type"))?;
        product = product
            .into_iter()
            .flat_map(|prefix| {
                elems.iter().map(move |e| {
                    let mut row = prefix.clone();
                    row.push(e.clone());
                    row
                })
            })
            .collect();
    }
    Ok(Value::List(product.into_iter().map(Value::List).collect()))
}

fn slice(a: &[Value]) -> Result<Value> {
    let list = seq(a, 0, "must be a list or tuple value")?;
    let index = |i: usize, what: &str| -> Result<usize> {
        let n = arg_number(a, i)?;
        let n = super::to_int(n).ok_or_else(|| arg_err(i, format!("invalid {what} index: {WHOLE_NUMBER}")))?;
        if n < 0 {
            return Err(arg_err(i, format!("{what} index must not be less than zero")));
        }
        if n as usize > list.len() {
            return Err(arg_err(i, format!("{what} index must not be greater than the length of the list")));
        }
        Ok(n as usize)
    };
    let (start, end) = (index(1, "start")?, index(2, "end")?);
    if start > end {
        return Err(arg_err(1, "start index must not be greater than end index"));
    }
    Ok(Value::List(list[start..end].to_vec()))
}

fn sort(a: &[Value]) -> Result<Value> {
    for (k, v) in arg_list(a, 0)?.iter().enumerate() {
        if v.is_null() {
            return Err(arg_err(0, format!("given list element {k} is null; a null value cannot be sorted")));
        }
    }
    let mut items = arg_string_list(a, 0)?;
    items.sort();
    Ok(Value::List(items.into_iter().map(Value::String).collect()))
}

fn sum(a: &[Value]) -> Result<Value> {
    let list = seq(a, 0, "cannot sum noniterable")?;
    if list.is_empty() {
        return Err(arg_err(0, "cannot sum an empty list"));
    }
    let mut total = Decimal::ZERO;
    for v in list {
        let n = to_num(v).map_err(|_| arg_err(0, "argument must be list, set, or tuple of number values"))?;
        total = total.checked_add(n).ok_or_else(|| err("the sum is out of the supported number range"))?;
    }
    Ok(number(total))
}

fn transpose(a: &[Value]) -> Result<Value> {
    let mut out: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for (key, list) in arg_map(a, 0)? {
        let Value::List(items) = list else { return Err(arg_err(0, "input must be map of lists of strings")) };
        for item in items {
            let s = to_str(item).map_err(|_| arg_err(0, "input must be map of lists of strings"))?;
            out.entry(s).or_default().push(Value::from(key.as_str()));
        }
    }
    Ok(Value::Map(out.into_iter().map(|(k, v)| (k, Value::List(v))).collect()))
}

fn zipmap(a: &[Value]) -> Result<Value> {
    let keys = arg_list(a, 0)?;
    let values = arg_list(a, 1)?;
    if keys.len() != values.len() {
        return Err(err(format!("number of keys ({}) does not match number of values ({})", keys.len(), values.len())));
    }
    let mut out = Map::new();
    for (k, (key, value)) in keys.iter().zip(values).enumerate() {
        if key.is_null() {
            return Err(arg_err(0, format!("keys list has null value at index {k}")));
        }
        let key = to_str(key).map_err(|m| arg_err(0, format!("element {k}: {m}")))?;
        out.insert(key, value.clone());
    }
    Ok(Value::Map(out))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use kiln_value::Value;

    #[test]
    fn truth_functions() {
        assert_eq!(ok("alltrue", vec![v(r#"["true", true]"#)]), Value::Bool(true));
        assert_eq!(ok("alltrue", vec![v("[true, false]")]), Value::Bool(false));
        assert_eq!(ok("alltrue", vec![v("[]")]), Value::Bool(true));
        assert_eq!(ok("alltrue", vec![v("[true, null]")]), Value::Bool(false));
        assert_eq!(ok("anytrue", vec![v(r#"["true", false]"#)]), Value::Bool(true));
        assert_eq!(ok("anytrue", vec![v("[null, false]")]), Value::Bool(false));
        assert_eq!(ok("anytrue", vec![v("[]")]), Value::Bool(false));
        assert!(fails("alltrue", vec![v(r#"["yes"]"#)]).ends_with("element 0: a bool is required"));
    }

    #[test]
    fn chunking_and_slicing() {
        assert_eq!(js("chunklist", vec![v(r#"["a","b","c","d","e"]"#), n("2")]), r#"[["a","b"],["c","d"],["e"]]"#);
        assert_eq!(js("chunklist", vec![v(r#"["a","b","c","d","e"]"#), n("1")]), r#"[["a"],["b"],["c"],["d"],["e"]]"#);
        assert_eq!(js("chunklist", vec![v("[1,2]"), n("0")]), "[[1,2]]");
        assert_eq!(js("chunklist", vec![v("[]"), n("3")]), "[]");
        assert!(fails("chunklist", vec![v("[1]"), n("-1")]).ends_with("the size argument must be positive"));
        assert_eq!(js("slice", vec![v(r#"["a","b","c","d"]"#), n("1"), n("3")]), r#"["b","c"]"#);
        assert_eq!(js("slice", vec![v("[1,2]"), n("2"), n("2")]), "[]");
        assert!(fails("slice", vec![v("[1,2]"), n("1"), n("3")]).ends_with("end index must not be greater than the length of the list"));
        assert!(fails("slice", vec![v("[1,2]"), n("2"), n("1")]).ends_with("start index must not be greater than end index"));
        assert!(fails("slice", vec![v("[1,2]"), n("-1"), n("1")]).ends_with("start index must not be less than zero"));
    }

    #[test]
    fn coalescing() {
        assert_eq!(ok("coalesce", vec![s("a"), s("b")]), s("a"));
        assert_eq!(ok("coalesce", vec![s(""), s("b")]), s("b"));
        assert_eq!(ok("coalesce", vec![n("1"), n("2")]), n("1"));
        assert_eq!(ok("coalesce", vec![Value::Null, n("2"), s("x")]), s("2"));
        assert_eq!(ok("coalesce", vec![s("a"), Value::Unknown]), s("a"));
        assert_eq!(ok("coalesce", vec![Value::Null, Value::Unknown, s("a")]), Value::Unknown);
        assert_eq!(fails("coalesce", vec![Value::Null, s("")]), "no non-null, non-empty-string arguments");
        assert_eq!(fails("coalesce", vec![n("1"), v("[1]")]), "all arguments must have the same type");
        assert_eq!(js("coalescelist", vec![v(r#"["a", "b"]"#), v(r#"["c", "d"]"#)]), r#"["a","b"]"#);
        assert_eq!(js("coalescelist", vec![v("[]"), v(r#"["c", "d"]"#)]), r#"["c","d"]"#);
        assert_eq!(ok("coalescelist", vec![v("[]"), Value::Unknown]), Value::Unknown);
        assert_eq!(fails("coalescelist", vec![v("[]")]), "no non-null arguments");
        assert!(fails("coalescelist", vec![s("x")]).ends_with("coalescelist arguments must be lists or tuples"));
    }

    #[test]
    fn compact_concat_distinct_flatten() {
        assert_eq!(js("compact", vec![v(r#"["a", "", "b", null, "c", 1]"#)]), r#"["a","b","c","1"]"#);
        assert_eq!(js("concat", vec![v(r#"["a", ""]"#), v(r#"["b", "c"]"#)]), r#"["a","","b","c"]"#);
        assert!(fails("concat", vec![v("[1]"), s("x")]).ends_with("all arguments must be lists or tuples; got string"));
        assert_eq!(js("distinct", vec![v(r#"["a", "b", "a", "c", "d", "b"]"#)]), r#"["a","b","c","d"]"#);
        assert_eq!(js("flatten", vec![v(r#"[["a", "b"], [], ["c"]]"#)]), r#"["a","b","c"]"#);
        assert_eq!(js("flatten", vec![v(r#"[[["a", "b"], []], ["c"], {"k": 1}]"#)]), r#"["a","b","c",{"k":1}]"#);
    }

    #[test]
    fn contains_index_element() {
        assert_eq!(ok("contains", vec![v(r#"["a", "b", "c"]"#), s("a")]), Value::Bool(true));
        assert_eq!(ok("contains", vec![v(r#"["a", "b", "c"]"#), s("d")]), Value::Bool(false));
        assert_eq!(ok("contains", vec![v(r#"["1"]"#), n("1")]), Value::Bool(false));
        assert_eq!(ok("index", vec![v(r#"["a", "b", "c"]"#), s("b")]), n("1"));
        assert_eq!(fails("index", vec![v(r#"["a"]"#), s("z")]), "item not found");
        assert_eq!(fails("index", vec![v("[]"), s("z")]), "cannot search an empty list");
        assert_eq!(ok("element", vec![v(r#"["a", "b", "c"]"#), n("1")]), s("b"));
        assert_eq!(ok("element", vec![v(r#"["a", "b", "c"]"#), n("3")]), s("a"));
        assert_eq!(fails("element", vec![v("[1]"), n("-1")]), "cannot use element function with a negative index");
        assert_eq!(fails("element", vec![v("[]"), n("0")]), "cannot use element function with an empty list");
    }

    #[test]
    fn maps() {
        let m = v(r#"{"a": 1, "c": 2, "d": 3}"#);
        assert_eq!(js("keys", vec![m.clone()]), r#"["a","c","d"]"#);
        assert_eq!(js("values", vec![m.clone()]), "[1,2,3]");
        let partly = Value::Map([("a".to_string(), Value::Unknown)].into());
        assert_eq!(js("keys", vec![partly.clone()]), r#"["a"]"#);
        assert_eq!(ok("values", vec![partly]), Value::Unknown);
        assert_eq!(ok("lookup", vec![v(r#"{"a":"ay","b":"bee"}"#), s("a"), s("what?")]), s("ay"));
        assert_eq!(ok("lookup", vec![v(r#"{"a":"ay","b":"bee"}"#), s("c"), s("what?")]), s("what?"));
        assert_eq!(fails("lookup", vec![v(r#"{"a":"ay"}"#), s("c")]), r#"lookup failed to find key "c""#);
        assert_eq!(js("merge", vec![v(r#"{"a":"b","c":"d"}"#), v(r#"{"e":"f","c":"z"}"#)]), r#"{"a":"b","c":"z","e":"f"}"#);
        assert_eq!(js("merge", vec![v(r#"{"a":"b"}"#), v(r#"{"e":[1]}"#), Value::Null]), r#"{"a":"b","e":[1]}"#);
        assert_eq!(js("merge", vec![]), "{}");
        assert!(fails("merge", vec![v("[1]")]).ends_with(r#"arguments must be maps or objects, got "list""#));
        assert_eq!(js("transpose", vec![v(r#"{"a": ["1", "2"], "b": ["2", "3"]}"#)]), r#"{"1":["a"],"2":["a","b"],"3":["b"]}"#);
        assert_eq!(js("zipmap", vec![v(r#"["a", "b"]"#), v(r#"[1, 2]"#)]), r#"{"a":1,"b":2}"#);
        assert_eq!(fails("zipmap", vec![v(r#"["a"]"#), v("[1,2]")]), "number of keys (1) does not match number of values (2)");
    }

    #[test]
    fn length_counts() {
        assert_eq!(ok("length", vec![v("[]")]), n("0"));
        assert_eq!(ok("length", vec![v(r#"["a", "b"]"#)]), n("2"));
        assert_eq!(ok("length", vec![v(r#"{"a": "b"}"#)]), n("1"));
        assert_eq!(ok("length", vec![s("hello")]), n("5"));
        assert_eq!(ok("length", vec![s("👾🕹️")]), n("3"));
        assert!(fails("length", vec![n("5")]).ends_with("argument must be a string, a collection type, or a structural type"));
    }

    #[test]
    fn matchkeys_and_one() {
        assert_eq!(
            js("matchkeys", vec![v(r#"["i-123", "i-abc", "i-def"]"#), v(r#"["us-west", "us-east", "us-east"]"#), v(r#"["us-east"]"#)]),
            r#"["i-abc","i-def"]"#
        );
        assert_eq!(js("matchkeys", vec![v(r#"["a","b"]"#), v("[1, 2]"), v(r#"["2"]"#)]), r#"["b"]"#);
        assert!(fails("matchkeys", vec![v("[1]"), v("[]"), v("[]")]).contains("length of keys and values should be equal"));
        assert_eq!(ok("one", vec![v("[]")]), Value::Null);
        assert_eq!(ok("one", vec![v(r#"["hello"]"#)]), s("hello"));
        assert!(fails("one", vec![v(r#"["hello", "goodbye"]"#)]).ends_with("with either zero or one elements"));
    }

    #[test]
    fn ranges() {
        assert_eq!(js("range", vec![n("3")]), "[0,1,2]");
        assert_eq!(js("range", vec![n("1"), n("4")]), "[1,2,3]");
        assert_eq!(js("range", vec![n("1"), n("8"), n("2")]), "[1,3,5,7]");
        assert_eq!(js("range", vec![n("1"), n("4"), n("0.5")]), "[1,1.5,2,2.5,3,3.5]");
        assert_eq!(js("range", vec![n("4"), n("1")]), "[4,3,2]");
        assert_eq!(js("range", vec![n("10"), n("5"), n("-2")]), "[10,8,6]");
        assert_eq!(js("range", vec![n("-3")]), "[0,-1,-2]");
        assert_eq!(js("range", vec![n("0")]), "[]");
        assert_eq!(js("range", vec![n("0.1"), n("0.4"), n("0.1")]), "[0.1,0.2,0.3]");
        assert!(fails("range", vec![n("1"), n("4"), n("-1")]).ends_with("end must be less than start when step is negative"));
        assert!(fails("range", vec![n("1"), n("4"), n("0")]).ends_with("step must not be zero"));
        assert!(fails("range", vec![n("2000")]).starts_with("more than 1024 values were generated"));
        assert_eq!(fails("range", vec![]), "must have one, two, or three arguments");
    }

    #[test]
    fn reverse_sort_sum() {
        assert_eq!(js("reverse", vec![v("[1, 2, 3]")]), "[3,2,1]");
        assert_eq!(js("sort", vec![v(r#"["e", "d", "a", "x"]"#)]), r#"["a","d","e","x"]"#);
        assert_eq!(js("sort", vec![v("[10, 9, 1]")]), r#"["1","10","9"]"#);
        assert!(fails("sort", vec![v(r#"["a", null]"#)]).contains("given list element 1 is null"));
        assert_eq!(ok("sum", vec![v("[10, 13, 6, 4.5]")]), n("33.5"));
        assert_eq!(ok("sum", vec![v(r#"[0.1, "0.2"]"#)]), n("0.3"));
        assert!(fails("sum", vec![v("[]")]).ends_with("cannot sum an empty list"));
        assert!(fails("sum", vec![v(r#"["x"]"#)]).ends_with("argument must be list, set, or tuple of number values"));
    }

    #[test]
    fn set_functions() {
        assert_eq!(js("setintersection", vec![v(r#"["a", "b"]"#), v(r#"["b", "c"]"#), v(r#"["b", "d"]"#)]), r#"["b"]"#);
        assert_eq!(js("setunion", vec![v(r#"["a", "b"]"#), v(r#"["b", "c"]"#), v(r#"["d"]"#)]), r#"["a","b","c","d"]"#);
        assert_eq!(js("setsubtract", vec![v(r#"["a", "b", "c"]"#), v(r#"["a", "c"]"#)]), r#"["b"]"#);
        assert_eq!(js("setunion", vec![v(r#"["b"]"#), v("[1]")]), r#"["1","b"]"#);
        assert_eq!(js("setunion", vec![v("[3, 1]"), v("[2, 10]")]), "[1,2,3,10]");
        assert_eq!(
            js("setproduct", vec![v(r#"["development", "staging", "production"]"#), v(r#"["app1", "app2"]"#)]),
            r#"[["development","app1"],["development","app2"],["staging","app1"],["staging","app2"],["production","app1"],["production","app2"]]"#
        );
        assert_eq!(js("setproduct", vec![v(r#"["a"]"#), v("[]")]), "[]");
        assert_eq!(fails("setproduct", vec![v("[1]")]), "at least two arguments are required");
        // 1000^3 rows would exhaust memory: refused before any is built.
        let big = Value::List((0..1000).map(|i| Value::from(i as i64)).collect());
        assert!(fails("setproduct", vec![big.clone(), big.clone(), big]).contains("more than 1000000 elements"));
    }
}
