//! Terraform's built-in pure functions: the registry, arity checks, the generic rules for unknown
//! and sensitive arguments, and the argument helpers every function family shares.
//!
//! [`call`] looks a function up, checks its arity, then applies the generic rules: an argument
//! that contains an unknown makes the result unknown (unless the function handles unknowns
//! itself, like `length`, `keys`, `coalesce` and `coalescelist`), and sensitive arguments are
//! unmarked before the call and mark the whole result (an unknown result keeps the mark).
//! Functions then work on plain values. `sensitive`, `nonsensitive` and `issensitive` see their
//! argument as it is. Error messages never show a sensitive argument.
//!
//! Error messages follow Terraform's wording: values in quotes, no trailing period. An error about
//! one argument carries its zero-based index in [`FuncError::arg`] and a message of the form
//! `Invalid value for "str" parameter: string required`.
//!
//! `try`, `can` and `templatefile` need the evaluator and are not here.

mod collection;
mod conversion;
mod date;
mod encoding;
mod file;
mod format;
mod hash;
mod json;
mod network;
mod numeric;
mod string;
mod yaml;

use std::fmt;
use std::path::PathBuf;

use kiln_value::{format_number, Decimal, Map, Type, Value};
use rust_decimal::prelude::ToPrimitive;

pub use file::{read_regular, read_regular_to_string};

/// What file functions need to know about the calling module.
pub struct FuncCtx {
    /// Directory of the module; relative paths in file functions resolve against it.
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FuncError {
    pub message: String,
    /// Zero-based index of the offending argument, if the error is about one.
    pub arg: Option<usize>,
}

impl fmt::Display for FuncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FuncError {}

pub(crate) type Result<T> = std::result::Result<T, FuncError>;

/// Calls the built-in function `name`.
pub fn call(name: &str, args: Vec<Value>, ctx: &FuncCtx) -> std::result::Result<Value, FuncError> {
    let spec = find(name).ok_or_else(|| unknown_function(name))?;
    spec.check_arity(args.len())?;
    if spec.own_marks {
        return spec.run(&args, ctx);
    }
    let sensitive = args.iter().any(Value::contains_sensitive);
    if !spec.own_unknowns && args.iter().any(Value::contains_unknown) {
        return Ok(Value::Unknown.mark_if(sensitive));
    }
    let secrets = if sensitive { secret_texts(&args) } else { Vec::new() };
    let plain: Vec<Value> = args.into_iter().map(|a| a.unmark_deep().0).collect();
    match spec.run(&plain, ctx) {
        Ok(v) => Ok(v.mark_if(sensitive)),
        Err(e) => Err(redact(e, &secrets)),
    }
}

/// Levels of lists and maps in `v`: a scalar is 0, `[]` is 1 (a `Sensitive` mark is no level).
/// Counted without recursion, so a value of any depth can be measured.
pub fn value_depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::List(l) => {
                deepest = deepest.max(d + 1);
                stack.extend(l.iter().map(|x| (x, d + 1)));
            }
            Value::Map(m) => {
                deepest = deepest.max(d + 1);
                stack.extend(m.values().map(|x| (x, d + 1)));
            }
            Value::Sensitive(x) => stack.push((x, d)),
            _ => {}
        }
    }
    deepest
}

/// True when `name` is a built-in function.
pub fn exists(name: &str) -> bool {
    find(name).is_some()
}

/// Every built-in function name, for "did you mean" suggestions.
pub fn names() -> impl Iterator<Item = &'static str> {
    FAMILIES.iter().flat_map(|f| f.iter()).map(|s| s.name)
}

const FAMILIES: &[&[Spec]] = &[
    string::FUNCS,
    format::FUNCS,
    collection::FUNCS,
    encoding::FUNCS,
    numeric::FUNCS,
    network::FUNCS,
    conversion::FUNCS,
    hash::FUNCS,
    file::FUNCS,
    date::FUNCS,
];

fn find(name: &str) -> Option<&'static Spec> {
    FAMILIES.iter().flat_map(|f| f.iter()).find(|s| s.name == name)
}

fn unknown_function(name: &str) -> FuncError {
    let best = names().map(|n| (kiln_diag::edit_distance(name, n), n)).filter(|(d, _)| *d < 3).min_by_key(|(d, _)| *d);
    let message = match best {
        Some((_, n)) => format!("There is no function named {}; did you mean {}?", quote(name), quote(n)),
        None => format!("There is no function named {}", quote(name)),
    };
    err(message)
}

/// The printed forms of every sensitive primitive inside `args`, for redacting error messages.
fn secret_texts(args: &[Value]) -> Vec<String> {
    fn walk(v: &Value, inside: bool, out: &mut Vec<String>) {
        match v {
            Value::Sensitive(inner) => walk(inner, true, out),
            Value::List(l) => l.iter().for_each(|v| walk(v, inside, out)),
            Value::Map(m) => m.values().for_each(|v| walk(v, inside, out)),
            Value::String(s) if inside && !s.is_empty() => out.push(s.clone()),
            Value::Number(n) if inside => out.push(format_number(*n)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    args.iter().for_each(|a| walk(a, false, &mut out));
    out
}

/// Hides sensitive values in an error message: quoted anywhere, and unquoted when long enough not
/// to be mistaken for ordinary words or numbers.
fn redact(mut e: FuncError, secrets: &[String]) -> FuncError {
    for s in secrets {
        e.message = e.message.replace(&quote(s), "(sensitive value)");
        if s.chars().count() >= 4 {
            e.message = e.message.replace(s.as_str(), "(sensitive value)");
        }
    }
    e
}

// ---------------------------------------------------------------------------------------------
// Function specs

type PlainFn = fn(&[Value]) -> Result<Value>;
type CtxFn = fn(&[Value], &FuncCtx) -> Result<Value>;

#[derive(Clone, Copy)]
enum Imp {
    Plain(PlainFn),
    Ctx(CtxFn),
}

/// One function: its name, parameter names, arity and implementation.
pub(crate) struct Spec {
    name: &'static str,
    params: &'static [&'static str],
    /// How many trailing `params` may be left out.
    optional: usize,
    /// Name of the parameter that takes any number of further arguments.
    variadic: Option<&'static str>,
    imp: Imp,
    /// The function sees unknown arguments instead of the generic unknown result.
    own_unknowns: bool,
    /// The function sees marked and unknown arguments as they are (sensitive, nonsensitive).
    own_marks: bool,
}

impl Spec {
    pub(crate) const fn new(name: &'static str, params: &'static [&'static str], f: PlainFn) -> Spec {
        Spec { name, params, optional: 0, variadic: None, imp: Imp::Plain(f), own_unknowns: false, own_marks: false }
    }

    pub(crate) const fn with_ctx(name: &'static str, params: &'static [&'static str], f: CtxFn) -> Spec {
        Spec { imp: Imp::Ctx(f), ..Spec::new(name, params, |_| Ok(Value::Null)) }
    }

    pub(crate) const fn optional(self, n: usize) -> Spec {
        Spec { optional: n, ..self }
    }

    pub(crate) const fn variadic(self, name: &'static str) -> Spec {
        Spec { variadic: Some(name), ..self }
    }

    pub(crate) const fn own_unknowns(self) -> Spec {
        Spec { own_unknowns: true, ..self }
    }

    pub(crate) const fn own_marks(self) -> Spec {
        Spec { own_marks: true, own_unknowns: true, ..self }
    }

    fn param_name(&self, i: usize) -> &'static str {
        self.params.get(i).copied().or(self.variadic).unwrap_or("?")
    }

    fn signature(&self) -> String {
        let required = self.params.len() - self.optional;
        let mut parts: Vec<String> =
            self.params.iter().enumerate().map(|(i, p)| if i < required { p.to_string() } else { format!("[{p}]") }).collect();
        if let Some(v) = self.variadic {
            parts.push(format!("{v}..."));
        }
        parts.join(", ")
    }

    fn check_arity(&self, n: usize) -> Result<()> {
        let min = self.params.len() - self.optional;
        let max = if self.variadic.is_some() { usize::MAX } else { self.params.len() };
        let expects = if self.variadic.is_some() {
            format!("at least {min} argument(s) ({})", self.signature())
        } else if max == 0 {
            "no arguments".to_string()
        } else if min == max {
            format!("{min} argument(s) ({})", self.signature())
        } else {
            format!("{min} to {max} argument(s) ({})", self.signature())
        };
        if n < min {
            let message = format!("Function {} expects {expects}; missing value for {}", quote(self.name), quote(self.params[n]));
            return Err(err(message));
        }
        if n > max {
            let message = format!("Function {} expects {expects}, got {n}", quote(self.name));
            return Err(FuncError { message, arg: Some(max) });
        }
        Ok(())
    }

    fn run(&self, args: &[Value], ctx: &FuncCtx) -> Result<Value> {
        let out = match self.imp {
            Imp::Plain(f) => f(args),
            Imp::Ctx(f) => f(args, ctx),
        };
        out.map_err(|mut e| {
            if let Some(i) = e.arg {
                e.message = format!("Invalid value for {} parameter: {}", quote(self.param_name(i)), e.message);
            }
            e
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// An error not tied to one argument.
pub(crate) fn err(message: impl Into<String>) -> FuncError {
    FuncError { message: message.into(), arg: None }
}

/// An error about argument `i`.
pub(crate) fn arg_err(i: usize, message: impl Into<String>) -> FuncError {
    FuncError { message: message.into(), arg: Some(i) }
}

/// A string in double quotes with JSON escapes, as values appear in messages.
pub(crate) fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

pub(crate) const NOT_NULL: &str = "argument must not be null";
pub(crate) const WHOLE_NUMBER: &str = "value must be a whole number, between -9223372036854775808 and 9223372036854775807";

/// Terraform's automatic conversion to string: numbers and bools convert, collections do not.
pub(crate) fn to_str(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::Null => Err(NOT_NULL.into()),
        Value::Map(_) | Value::List(_) => Err("string required".into()),
        other => other.to_template_string().ok_or_else(|| "string required".into()),
    }
}

/// Terraform's automatic conversion to number: numeric strings convert.
pub(crate) fn to_num(v: &Value) -> std::result::Result<Decimal, String> {
    match v {
        Value::Number(n) => Ok(*n),
        Value::String(s) => kiln_value::parse_number(s).ok_or_else(|| "a number is required".into()),
        Value::Null => Err(NOT_NULL.into()),
        _ => Err("number required".into()),
    }
}

/// Terraform's automatic conversion to bool: only the strings "true" and "false" convert.
pub(crate) fn to_bool(v: &Value) -> std::result::Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        Value::String(_) => Err("a bool is required".into()),
        Value::Null => Err(NOT_NULL.into()),
        _ => Err("bool required".into()),
    }
}

/// A whole number that fits an i64.
pub(crate) fn to_int(n: Decimal) -> Option<i64> {
    if n.fract().is_zero() {
        n.to_i64()
    } else {
        None
    }
}

pub(crate) fn arg_string(args: &[Value], i: usize) -> Result<String> {
    to_str(&args[i]).map_err(|m| arg_err(i, m))
}

pub(crate) fn arg_number(args: &[Value], i: usize) -> Result<Decimal> {
    to_num(&args[i]).map_err(|m| arg_err(i, m))
}

pub(crate) fn arg_int(args: &[Value], i: usize) -> Result<i64> {
    to_int(arg_number(args, i)?).ok_or_else(|| arg_err(i, WHOLE_NUMBER))
}

pub(crate) fn arg_list(args: &[Value], i: usize) -> Result<&[Value]> {
    match &args[i] {
        Value::List(l) => Ok(l),
        Value::Null => Err(arg_err(i, NOT_NULL)),
        other => Err(arg_err(i, format!("list required, got {}", other.type_name()))),
    }
}

pub(crate) fn arg_map(args: &[Value], i: usize) -> Result<&Map> {
    match &args[i] {
        Value::Map(m) => Ok(m),
        Value::Null => Err(arg_err(i, NOT_NULL)),
        other => Err(arg_err(i, format!("map required, got {}", other.type_name()))),
    }
}

/// Argument `i` as a list of strings, converting each element.
pub(crate) fn arg_string_list(args: &[Value], i: usize) -> Result<Vec<String>> {
    arg_list(args, i)?.iter().enumerate().map(|(k, v)| to_str(v).map_err(|m| arg_err(i, format!("element {k}: {m}")))).collect()
}

pub(crate) fn number(n: Decimal) -> Value {
    Value::Number(n.normalize())
}

/// A number computed in floating point; infinities and NaN are errors.
pub(crate) fn from_f64(f: f64) -> Result<Value> {
    if !f.is_finite() {
        return Err(err(format!("the result {f} cannot be represented as a number")));
    }
    parse_decimal(&f.to_string()).map(number).ok_or_else(|| err(format!("the result {f} is out of the supported number range")))
}

/// Parses a decimal literal exactly (`-12.5e3`, `.5`, `1.`), rounding beyond 28 significant
/// digits. `None` when the text is not such a literal or the number is out of range.
pub(crate) fn parse_decimal(s: &str) -> Option<Decimal> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = format!("{int}{frac}").trim_start_matches('0').to_string();
    let mut scale = frac.len() as i64 - exp;
    if digits.is_empty() {
        return Some(Decimal::ZERO);
    }
    let mut digits = digits.into_bytes();
    // Keep at most 28 significant digits, rounding half to even.
    if digits.len() > 28 {
        let drop = digits.len() - 28;
        let tail = &digits[28..];
        let half = tail[0] > b'5' || tail[0] == b'5' && (tail[1..].iter().any(|d| *d != b'0') || digits[27] % 2 == 1);
        digits.truncate(28);
        scale -= drop as i64;
        if half {
            let mut m: i128 = std::str::from_utf8(&digits).ok()?.parse().ok()?;
            m += 1;
            digits = m.to_string().into_bytes();
        }
    }
    let mut m: i128 = std::str::from_utf8(&digits).ok()?.parse().ok()?;
    while scale < 0 {
        m = m.checked_mul(10)?;
        scale += 1;
    }
    if scale > 28 {
        // Round away the digits beyond 28 decimal places, half to even.
        let drop = (scale - 28) as u32;
        if drop > 38 {
            return Some(Decimal::ZERO);
        }
        let div = 10i128.pow(drop);
        let (q, r) = (m / div, m % div);
        m = if r > div - r || r == div - r && q % 2 == 1 { q + 1 } else { q };
        scale = 28;
    }
    let out = Decimal::try_from_i128_with_scale(m, scale as u32).ok()?;
    Some(if neg { -out } else { out })
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Number,
    String,
    List,
    Map,
}

fn kind(v: &Value) -> Option<Kind> {
    match v {
        Value::Bool(_) => Some(Kind::Bool),
        Value::Number(_) => Some(Kind::Number),
        Value::String(_) => Some(Kind::String),
        Value::List(_) => Some(Kind::List),
        Value::Map(_) => Some(Kind::Map),
        _ => None,
    }
}

/// Gives values one common type the way Terraform unifies types: a mix of strings, numbers and
/// bools becomes strings; a mix of primitives and collections, or of lists and maps, fails.
pub(crate) fn unify(items: Vec<Value>) -> std::result::Result<Vec<Value>, ()> {
    let kinds: Vec<Kind> = items.iter().filter_map(kind).collect();
    let Some(first) = kinds.first().copied() else { return Ok(items) };
    if kinds.iter().all(|k| *k == first) {
        return Ok(items);
    }
    if !kinds.iter().all(|k| matches!(k, Kind::Bool | Kind::Number | Kind::String)) {
        return Err(());
    }
    Ok(items
        .into_iter()
        .map(|v| match v.to_template_string() {
            Some(s) if kind(&v).is_some() => Value::String(s),
            _ => v,
        })
        .collect())
}

/// Deduplicates and orders elements the way Terraform orders a set.
pub(crate) fn make_set(items: Vec<Value>) -> Vec<Value> {
    match kiln_value::convert(Value::List(items), &Type::Set(Box::new(Type::Any))) {
        Ok(Value::List(l)) => l,
        _ => Vec::new(),
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// A value from JSON text.
    pub fn v(json: &str) -> Value {
        super::json::decode(json).unwrap_or_else(|e| panic!("bad test JSON {json}: {e}"))
    }

    pub fn s(x: &str) -> Value {
        Value::from(x)
    }

    pub fn n(x: &str) -> Value {
        Value::Number(parse_decimal(x).unwrap())
    }

    pub fn ctx() -> FuncCtx {
        FuncCtx { base_dir: PathBuf::from(".") }
    }

    pub fn ok(name: &str, args: Vec<Value>) -> Value {
        call(name, args, &ctx()).unwrap_or_else(|e| panic!("{name} failed: {}", e.message))
    }

    pub fn fails(name: &str, args: Vec<Value>) -> String {
        match call(name, args, &ctx()) {
            Ok(v) => panic!("{name} should fail, gave {v}"),
            Err(e) => e.message,
        }
    }

    /// Calls and renders the result as JSON text.
    pub fn js(name: &str, args: Vec<Value>) -> String {
        super::json::encode(&ok(name, args))
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn unknown_names_suggest_the_closest() {
        assert_eq!(fails("uper", vec![]), r#"There is no function named "uper"; did you mean "upper"?"#);
        assert_eq!(fails("frobnicate", vec![]), r#"There is no function named "frobnicate""#);
        assert!(exists("cidrsubnet") && !exists("try"));
        assert!(names().count() > 100);
        let mut all: Vec<_> = names().collect();
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!(before, all.len(), "duplicate function names");
    }

    #[test]
    fn arity_messages_name_the_parameters() {
        assert_eq!(
            fails("cidrsubnet", vec![s("10.0.0.0/8"), n("8")]),
            r#"Function "cidrsubnet" expects 3 argument(s) (prefix, newbits, netnum); missing value for "netnum""#
        );
        let e = call("upper", vec![s("a"), s("b")], &ctx()).unwrap_err();
        assert_eq!(e.message, r#"Function "upper" expects 1 argument(s) (str), got 2"#);
        assert_eq!(e.arg, Some(1));
        assert_eq!(
            fails("lookup", vec![v("{}")]),
            r#"Function "lookup" expects 2 to 3 argument(s) (inputMap, key, [default]); missing value for "key""#
        );
        assert_eq!(
            fails("format", vec![]),
            r#"Function "format" expects at least 1 argument(s) (format, args...); missing value for "format""#
        );
        assert_eq!(fails("timestamp", vec![s("x")]), r#"Function "timestamp" expects no arguments, got 1"#);
    }

    #[test]
    fn unknown_arguments_give_unknown_results() {
        assert_eq!(ok("upper", vec![Value::Unknown]), Value::Unknown);
        assert_eq!(ok("join", vec![s(","), Value::List(vec![s("a"), Value::Unknown])]), Value::Unknown);
        // Unknown and sensitive: the unknown result keeps the mark.
        assert_eq!(ok("upper", vec![Value::Unknown.sensitive()]), Value::Unknown.sensitive());
        // length of a known list with unknown elements is known.
        assert_eq!(ok("length", vec![Value::List(vec![Value::Unknown, Value::Unknown])]), n("2"));
        assert_eq!(ok("length", vec![Value::Unknown]), Value::Unknown);
    }

    #[test]
    fn sensitive_arguments_mark_the_result() {
        let secret = Value::List(vec![s("a"), s("b").sensitive()]);
        assert_eq!(ok("join", vec![s("-"), secret]), s("a-b").sensitive());
        assert_eq!(ok("upper", vec![s("x")]), s("X"));
        // Error messages never show a sensitive value.
        let e = fails("tonumber", vec![s("hunter2").sensitive()]);
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("(sensitive value)"), "{e}");
        let e = fails("cidrhost", vec![s("10.0.0.0/99").sensitive(), n("1")]);
        assert!(!e.contains("10.0.0.0/99"), "{e}");
    }

    #[test]
    fn argument_errors_name_the_parameter() {
        let e = call("upper", vec![v("[1]")], &ctx()).unwrap_err();
        assert_eq!(e.message, r#"Invalid value for "str" parameter: string required"#);
        assert_eq!(e.arg, Some(0));
        let e = call("join", vec![s(","), s("a"), v("[1]")], &ctx()).unwrap_err();
        assert_eq!(e.arg, Some(1));
        assert!(e.message.starts_with(r#"Invalid value for "lists" parameter"#), "{}", e.message);
    }

    #[test]
    fn automatic_conversions() {
        assert_eq!(ok("upper", vec![n("5")]), s("5"));
        assert_eq!(ok("upper", vec![Value::Bool(true)]), s("TRUE"));
        assert_eq!(ok("abs", vec![s("-1.5")]), n("1.5"));
        assert!(fails("abs", vec![s("x")]).ends_with("a number is required"));
        assert!(fails("upper", vec![Value::Null]).ends_with("argument must not be null"));
    }

    #[test]
    fn exact_decimal_parsing() {
        let d = |x: &str| parse_decimal(x).map(format_number);
        assert_eq!(d("0.1").as_deref(), Some("0.1"));
        assert_eq!(d("-12.5e3").as_deref(), Some("-12500"));
        assert_eq!(d(".5").as_deref(), Some("0.5"));
        assert_eq!(d("1.").as_deref(), Some("1"));
        assert_eq!(d("1e-3").as_deref(), Some("0.001"));
        assert_eq!(d("12345678901234567890123456789012").as_deref(), None);
        assert_eq!(d("1.23456789012345678901234567891").as_deref(), Some("1.234567890123456789012345679"));
        assert_eq!(d("abc"), None);
        assert_eq!(d("1e"), None);
        assert_eq!(d(""), None);
        assert_eq!(d("."), None);
    }

    #[test]
    fn unify_mixed_primitives_to_strings() {
        assert_eq!(unify(vec![n("1"), s("a"), Value::Bool(true)]), Ok(vec![s("1"), s("a"), s("true")]));
        assert_eq!(unify(vec![n("1"), n("2")]), Ok(vec![n("1"), n("2")]));
        assert!(unify(vec![n("1"), v("[1]")]).is_err());
        assert_eq!(make_set(vec![s("b"), s("a"), s("b")]), vec![s("a"), s("b")]);
    }
}
