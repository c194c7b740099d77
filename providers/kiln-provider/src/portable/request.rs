//! The request grammar, SkyPilot's, the same on every provider, parsed once:
//!
//! - `accelerators = "H100:8"`: `NAME[:COUNT]` per node (count 1 when left out), the name from
//!   the [`accelerators`](super::accelerators) table; or a list of acceptable alternatives,
//!   preferred first: `["H100:8", "A100-80GB:8"]`.
//! - `cpus = "8"`: exactly 8 CPUs per node; `cpus = "8+"`: at least 8.
//! - `memory = "64+"`: at least 64 GiB per node; `memory = "64"`: exactly 64 GiB.
//!
//! Parsing is pure (validate time, no IO). Each mistake has one message, a did-you-mean where
//! one can be guessed, and names its attribute so the engine points at the attribute's
//! file:line:col ([`RequestError::diagnostic`]).

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_schema::{Attribute, Body};
use kiln_value::{Type, Value};

use super::accelerators::{closest, lookup, Requested};
use crate::util::{set, str_attr, to_u64, u64_attr};

/// The attributes of the grammar.
pub const ATTRIBUTES: [&str; 3] = ["accelerators", "cpus", "memory"];

/// What one request describes, for the attributes' descriptions: a cluster's node or a pool's
/// instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Node,
    Instance,
}

/// The descriptions of the grammar's attributes in a kind's schema; a provider may say more
/// about one (`RequestDocs { cpus: "...", ..Per::Node.docs() }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestDocs {
    pub accelerators: &'static str,
    pub cpus: &'static str,
    pub memory: &'static str,
}

impl Per {
    pub fn docs(self) -> RequestDocs {
        match self {
            Per::Node => RequestDocs { accelerators: ACCELERATORS_DOC, cpus: CPUS_DOC, memory: MEMORY_DOC },
            Per::Instance => RequestDocs {
                accelerators: "GPUs per instance: `NAME[:COUNT]` such as \"H100:8\", or a list of acceptable alternatives, preferred first, such as [\"H100:8\", \"A100-80GB:8\"]",
                cpus: "CPUs per instance: exactly \"8\", or at least \"8+\"",
                memory: "Memory per instance in GiB: exactly \"64\", or at least \"64+\"",
            },
        }
    }
}

/// The schema of the grammar's attributes, written once for every provider's `cluster` and
/// `spot_pool`: `accelerators` takes a string or a list of strings (type `any`, checked at
/// validate), `cpus` and `memory` strings; all optional. `force_new` when changing a request
/// replaces the object.
pub fn attributes(docs: RequestDocs, force_new: bool) -> [(&'static str, Attribute); 3] {
    let f = |a: Attribute| if force_new { a.force_new() } else { a };
    [
        ("accelerators", f(Attribute::optional(Type::Any, docs.accelerators))),
        ("cpus", f(Attribute::optional(Type::String, docs.cpus))),
        ("memory", f(Attribute::optional(Type::String, docs.memory))),
    ]
}

/// `body` with the grammar's attributes ([`attributes`]).
pub fn request_attributes(body: Body, docs: RequestDocs, force_new: bool) -> Body {
    attributes(docs, force_new).into_iter().fold(body, |b, (name, a)| b.attr(name, a))
}

/// [`request_attributes`] inside a schema's builder chain:
/// `Body::new().attr(..).request(Per::Node.docs(), false).attr(..)`.
pub trait WithRequest {
    fn request(self, docs: RequestDocs, force_new: bool) -> Body;
}

impl WithRequest for Body {
    fn request(self, docs: RequestDocs, force_new: bool) -> Body {
        request_attributes(self, docs, force_new)
    }
}

/// The computed attribute recording how many CPUs each node gets; its absence marks a state
/// written before the grammar was shared (see [`unchanged`]).
pub const CPUS_PER_NODE: &str = "cpus_per_node";

/// What the request attributes take, for schemas.
pub const ACCELERATORS_DOC: &str =
    "GPUs per node: `NAME[:COUNT]` such as \"H100:8\", or a list of acceptable alternatives, preferred first, such as [\"H100:8\", \"A100-80GB:8\"]";
pub const CPUS_DOC: &str = "CPUs per node: exactly \"8\", or at least \"8+\"";
pub const MEMORY_DOC: &str = "Memory per node in GiB: exactly \"64\", or at least \"64+\"";

/// One alternative of `accelerators`: a table name and a count per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accelerator {
    pub name: Requested,
    pub count: u64,
}

impl Accelerator {
    /// Whether a device (as nvidia-smi, rocm-smi, Slurm or EC2 name it) is of this request's kind.
    pub fn matches(&self, device: &str, memory_mib: Option<u64>) -> bool {
        self.name.matches(device, memory_mib)
    }
}

impl std::fmt::Display for Accelerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name.name(), self.count)
    }
}

/// A CPU or memory amount: exactly `value`, or at least it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amount {
    pub value: f64,
    pub at_least: bool,
}

impl Amount {
    /// Whether a node (instance type, host) with `have` satisfies it.
    pub fn admits(&self, have: f64) -> bool {
        if self.at_least {
            have + 1e-9 >= self.value
        } else {
            (have - self.value).abs() < 1e-9
        }
    }

    /// Whether `have` is enough to carve this amount out of (a host or machine giving a node
    /// exactly `value`, or at least it).
    pub fn fits_in(&self, have: f64) -> bool {
        have + 1e-9 >= self.value
    }
}

impl std::fmt::Display for Amount {
    /// As a user writes it: "8", "8+", "0.5+".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.value, if self.at_least { "+" } else { "" })
    }
}

/// A mistake in one request attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub attribute: &'static str,
    pub message: String,
    /// The value the user probably meant, as they would write it (`"H100:8"`).
    pub suggestion: Option<String>,
}

impl RequestError {
    fn new(attribute: &'static str, message: String, suggestion: Option<String>) -> RequestError {
        RequestError { attribute, message, suggestion }
    }

    /// The diagnostic: `code`, the message, the attribute (the engine adds its file:line:col)
    /// and a hint that is the did-you-mean when there is one.
    pub fn diagnostic(&self, code: &'static str) -> Diagnostic {
        let hint = match &self.suggestion {
            Some(s) => format!("did you mean {s}?"),
            None => match self.attribute {
                "accelerators" => {
                    "write `NAME[:COUNT]`, such as \"H100:8\", or a list of alternatives such as [\"H100:8\", \"A100-80GB:8\"]".into()
                }
                a => format!(
                    "write a number such as \"8\" (exactly) or \"8+\" (at least), in {}",
                    if a == "memory" { "GiB" } else { "CPUs" }
                ),
            },
        };
        Diagnostic::error(code, format!("`{}`: {}", self.attribute, self.message)).attribute(self.attribute).hint(hint)
    }
}

/// Diagnostics for a list of request errors.
pub fn diagnostics(errs: &[RequestError], code: &'static str) -> Diagnostics {
    errs.iter().map(|e| e.diagnostic(code)).collect()
}

fn quoted(name: &str, count: u64) -> String {
    if count == 1 {
        format!("\"{name}\"")
    } else {
        format!("\"{name}:{count}\"")
    }
}

/// A known name close to `s`, as a user would write it.
fn suggest_name(s: &str) -> Option<&'static str> {
    lookup(s).map(|m| m.name).or_else(|| closest(s))
}

/// Parses one alternative, `NAME[:COUNT]`.
pub fn parse_accelerator(s: &str) -> Result<Accelerator, RequestError> {
    let err = |m: String, sug: Option<String>| RequestError::new("accelerators", m, sug);
    let t = s.trim();
    if t.is_empty() {
        return Err(err("the GPU name is empty".into(), None));
    }
    let (name, count) = match t.split_once(':') {
        Some((n, c)) => (n.trim(), Some(c.trim())),
        None => (t, None),
    };
    let count = match count {
        None => 1,
        Some("") => {
            let sug = suggest_name(name).map(|n| quoted(n, 1));
            return Err(err(format!("\"{t}\" has no GPU count after the `:`"), sug));
        }
        Some(c) => match c.parse::<u64>() {
            Ok(0) => return Err(err(format!("\"{t}\": the GPU count must be at least 1"), suggest_name(name).map(|n| quoted(n, 1)))),
            Ok(n) => n,
            Err(_) => return Err(err(format!("\"{t}\": `{c}` is not a whole number of GPUs"), None)),
        },
    };
    if name.is_empty() {
        return Err(err(format!("\"{t}\" has no GPU name before the `:`"), None));
    }
    if let Some(e) = misread(t, name, count) {
        return Err(e);
    }
    match Requested::new(name) {
        Ok(name) => Ok(Accelerator { name, count }),
        Err(near) => Err(err(format!("unknown accelerator \"{name}\""), Some(quoted(near, count)))),
    }
}

/// A name outside the table that is a table name with a count written the wrong way ("H100x8",
/// "8xH100", "H100 8").
fn misread(whole: &str, name: &str, count: u64) -> Option<RequestError> {
    if lookup(name).is_some() {
        return None;
    }
    let err = |m: String, sug: Option<String>| RequestError::new("accelerators", m, sug);
    // NAME then a separator and a count, or a count, a separator and NAME.
    let split = |s: &str| -> Option<(String, u64)> {
        let lower = s.to_ascii_lowercase();
        let trailing = lower.trim_end_matches(|c: char| c.is_ascii_digit());
        if trailing.len() < lower.len() {
            let n: u64 = lower[trailing.len()..].parse().ok()?;
            let base = trailing.trim_end_matches(['x', '*', ' ', '-', '_', '/', ','].as_slice());
            if base.len() < trailing.len() || trailing.ends_with(' ') {
                return lookup(base).map(|m| (m.name.to_string(), n));
            }
        }
        let digits: String = lower.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            let rest = lower[digits.len()..].trim_start_matches(['x', '*', ' ', '-', '_', '/', ','].as_slice());
            return lookup(rest).map(|m| (m.name.to_string(), digits.parse().unwrap_or(1)));
        }
        None
    };
    if count == 1 && !whole.contains(':') {
        if let Some((n, c)) = split(name).filter(|(_, c)| *c >= 1) {
            return Some(err(format!("\"{whole}\" is not `NAME[:COUNT]`"), Some(quoted(&n, c))));
        }
    }
    None
}

/// Parses `accelerators`: a string, or a list of strings (alternatives, preferred first).
/// `Ok(None)` when unset or unknown.
pub fn parse_accelerators(v: Option<&Value>) -> Result<Option<Vec<Accelerator>>, RequestError> {
    let err = |m: &str| RequestError::new("accelerators", m.to_string(), None);
    match v.map(Value::unmarked) {
        None | Some(Value::Null) | Some(Value::Unknown) => Ok(None),
        Some(Value::String(s)) => parse_accelerator(s).map(|a| Some(vec![a])),
        Some(Value::List(items)) => {
            if items.iter().any(Value::is_unknown) {
                return Ok(None);
            }
            if items.is_empty() {
                return Err(err("the list of alternatives is empty"));
            }
            let mut out = Vec::new();
            for i in items {
                match i.unmarked() {
                    Value::String(s) => out.push(parse_accelerator(s)?),
                    other => {
                        return Err(err(&format!("the alternatives must be strings such as \"H100:8\", found a {}", other.type_name())))
                    }
                }
            }
            Ok(Some(out))
        }
        Some(other) => Err(err(&format!("must be a string such as \"H100:8\" or a list of them, found a {}", other.type_name()))),
    }
}

/// Parses `cpus` or `memory`: `"8"` (exactly) or `"8+"` (at least), more than 0.
pub fn parse_amount(attribute: &'static str, s: &str) -> Result<Amount, RequestError> {
    let t = s.trim();
    let (num, at_least) = match t.strip_suffix('+') {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    let unit = |n: &str| n.to_ascii_lowercase().trim_end_matches("gib").trim_end_matches("gb").trim_end_matches('g').trim().to_string();
    let value: f64 = match num.parse() {
        Ok(v) => v,
        Err(_) => {
            let sug = (attribute == "memory")
                .then(|| unit(num))
                .filter(|n| n.parse::<f64>().is_ok_and(|v| v > 0.0))
                .map(|n| format!("\"{n}{}\"", if at_least { "+" } else { "" }));
            return Err(RequestError::new(attribute, format!("\"{s}\" is not a number such as \"8\" or \"8+\""), sug));
        }
    };
    if !(value.is_finite() && value > 0.0) {
        return Err(RequestError::new(attribute, format!("\"{s}\" must be more than 0"), None));
    }
    Ok(Amount { value, at_least })
}

/// A block's requests, parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Acceptable alternatives, preferred first; `None`: no GPUs asked for.
    pub accelerators: Option<Vec<Accelerator>>,
    pub cpus: Option<Amount>,
    pub memory: Option<Amount>,
}

impl Request {
    /// Parses the grammar's attributes of `v` (config, planned or prior state), every mistake
    /// listed. An unset or unknown attribute parses as `None`.
    pub fn parse(v: &Value) -> Result<Request, Vec<RequestError>> {
        let mut errs = Vec::new();
        let accelerators = parse_accelerators(v.get("accelerators")).map_err(|e| errs.push(e)).ok().flatten();
        let mut amount = |a: &'static str| match v.get(a).map(Value::unmarked) {
            Some(Value::String(s)) => parse_amount(a, s).map_err(|e| errs.push(e)).ok(),
            Some(Value::Number(n)) => parse_amount(a, &n.to_string()).map_err(|e| errs.push(e)).ok(),
            _ => None,
        };
        let cpus = amount("cpus");
        let memory = amount("memory");
        if errs.is_empty() {
            Ok(Request { accelerators, cpus, memory })
        } else {
            Err(errs)
        }
    }

    /// Whether any attribute of the grammar in `v` is unknown (its value comes from elsewhere).
    pub fn is_unknown(v: &Value) -> bool {
        ATTRIBUTES.iter().any(|k| v.get(k).is_some_and(Value::contains_unknown))
    }

    /// Validate-time checks: the diagnostics of every mistake, each naming its attribute.
    pub fn validate(config: &Value, code: &'static str) -> Diagnostics {
        Request::parse(config).err().map(|e| diagnostics(&e, code)).unwrap_or_default()
    }

    /// The first alternative (the preferred one).
    pub fn first_accelerator(&self) -> Option<&Accelerator> {
        self.accelerators.as_ref().and_then(|a| a.first())
    }

    /// The request as a user would write it, for messages:
    /// `accelerators = "H100:8", cpus = "8+"`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.accelerators.as_deref() {
            Some([a]) => parts.push(format!("accelerators = \"{a}\"")),
            Some(alts) => {
                parts.push(format!("accelerators = [{}]", alts.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ")))
            }
            None => {}
        }
        if let Some(c) = &self.cpus {
            parts.push(format!("cpus = \"{c}\""));
        }
        if let Some(m) = &self.memory {
            parts.push(format!("memory = \"{m}\""));
        }
        parts.join(", ")
    }
}

/// A cluster's `nodes` and request, as `cluster` blocks write them: `nodes` a whole number of
/// at least 1 (1 when unset), every mistake listed under `code`, each naming its attribute.
/// Unknown values are the caller's to check first ([`Request::is_unknown`]).
pub fn nodes_and_request(v: &Value, code: &'static str) -> Result<(u64, Request), Diagnostics> {
    let mut diags = Diagnostics::new();
    let nodes = match set(v, "nodes") {
        None => 1,
        Some(n) => to_u64(n).filter(|n| *n >= 1).unwrap_or_else(|| {
            diags.push(
                Diagnostic::error(code, format!("`nodes` must be a whole number of at least 1, got {n}"))
                    .attribute("nodes")
                    .hint("write nodes = 2"),
            );
            1
        }),
    };
    match Request::parse(v) {
        Ok(request) if diags.is_empty() => Ok((nodes, request)),
        Ok(_) => Err(diags),
        Err(errs) => {
            diags.extend(diagnostics(&errs, code));
            Err(diags)
        }
    }
}

/// The CPUs each node of `cluster` (a cluster object, as a job sees it) runs on exactly: its
/// `cpus_per_node` when its `cpus` is exact (`"4"`). `None` with `"4+"`, without `cpus`, or for
/// a cluster written before `cpus_per_node` was recorded, whose nodes use their whole host.
pub fn exact_cpus_per_node(cluster: &Value) -> Option<u64> {
    let exact = str_attr(cluster, "cpus").is_some_and(|s| parse_amount("cpus", s).is_ok_and(|a| !a.at_least));
    u64_attr(cluster, CPUS_PER_NODE).filter(|n| exact && *n >= 1)
}

/// Whether `prior` (state) and `proposed` hold the same request text: the request did not change.
pub fn unchanged(prior: &Value, proposed: &Value) -> bool {
    ATTRIBUTES.iter().all(|k| {
        let a = prior.get(k).map(Value::unmarked).unwrap_or(&Value::Null);
        let b = proposed.get(k).map(Value::unmarked).unwrap_or(&Value::Null);
        a.known_eq(b) == Some(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(s: &str) -> Result<Accelerator, RequestError> {
        parse_accelerator(s)
    }

    fn suggestion(s: &str) -> Option<String> {
        acc(s).unwrap_err().suggestion
    }

    #[test]
    fn accelerators_name_and_count() {
        let a = acc("H100:8").unwrap();
        assert_eq!((a.name.name(), a.count), ("H100", 8));
        let a = acc("a100").unwrap();
        assert_eq!((a.name.name(), a.count), ("A100", 1));
        assert_eq!(acc(" a100-80gb : 4 ").unwrap().to_string(), "A100-80GB:4");
    }

    #[test]
    fn malformed_accelerators_suggest_what_was_meant() {
        assert_eq!(suggestion("H100x8").as_deref(), Some("\"H100:8\""));
        assert_eq!(suggestion("8xH100").as_deref(), Some("\"H100:8\""));
        assert_eq!(suggestion("8x H100").as_deref(), Some("\"H100:8\""));
        assert_eq!(suggestion("H100 8").as_deref(), Some("\"H100:8\""));
        assert_eq!(suggestion("h100*2").as_deref(), Some("\"H100:2\""));
        assert_eq!(suggestion("H100:").as_deref(), Some("\"H100\""));
        assert_eq!(suggestion("H1000").as_deref(), Some("\"H100\""));
        assert_eq!(suggestion("H1000:8").as_deref(), Some("\"H100:8\""));
        assert_eq!(suggestion("T4:0").as_deref(), Some("\"T4\""));
        assert!(acc("H100:x").is_err());
        // A name no table name is close to is a site's own (a Slurm GRES type).
        assert_eq!(acc("kilngpu:2").unwrap().name.name(), "kilngpu");
        assert!(acc(":2").is_err());
        assert!(acc("").is_err());
        let e = acc("H100x8").unwrap_err();
        assert_eq!(e.message, "\"H100x8\" is not `NAME[:COUNT]`");
        let d = e.diagnostic("E-TEST");
        assert_eq!(d.attribute.as_deref(), Some("accelerators"));
        assert_eq!(d.hint.as_deref(), Some("did you mean \"H100:8\"?"));
    }

    #[test]
    fn accelerators_take_a_list_of_alternatives() {
        let list = Value::List(vec!["H100:8".into(), "A100-80GB:8".into()]);
        let alts = parse_accelerators(Some(&list)).unwrap().unwrap();
        assert_eq!(alts.iter().map(ToString::to_string).collect::<Vec<_>>(), ["H100:8", "A100-80GB:8"]);
        assert!(parse_accelerators(Some(&Value::List(vec![]))).is_err());
        assert!(parse_accelerators(Some(&Value::List(vec!["H100:8".into(), "H100x8".into()]))).is_err());
        assert!(parse_accelerators(Some(&Value::from(8i64))).is_err());
        assert_eq!(parse_accelerators(Some(&Value::Unknown)), Ok(None));
        assert_eq!(parse_accelerators(Some(&Value::List(vec![Value::Unknown]))), Ok(None));
        assert_eq!(parse_accelerators(None), Ok(None));
    }

    #[test]
    fn amounts_exactly_or_at_least() {
        let exact = parse_amount("cpus", "8").unwrap();
        assert!(exact.admits(8.0) && !exact.admits(16.0) && exact.fits_in(16.0));
        assert_eq!(exact.to_string(), "8");
        let min = parse_amount("memory", " 64+ ").unwrap();
        assert!(min.admits(64.0) && min.admits(128.0) && !min.admits(32.0));
        assert_eq!(min.to_string(), "64+");
        assert_eq!(parse_amount("cpus", "0.5+").unwrap().value, 0.5);
        assert!(parse_amount("cpus", "lots").is_err());
        assert!(parse_amount("cpus", "0+").is_err());
        assert_eq!(parse_amount("memory", "64GB+").unwrap_err().suggestion.as_deref(), Some("\"64+\""));
        assert_eq!(parse_amount("memory", "16G").unwrap_err().suggestion.as_deref(), Some("\"16\""));
    }

    #[test]
    fn a_request_lists_every_mistake_by_attribute() {
        let v = Value::Map(
            [("accelerators".to_string(), "8xH100".into()), ("cpus".to_string(), "many".into()), ("memory".to_string(), "64+".into())]
                .into(),
        );
        let errs = Request::parse(&v).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.attribute).collect::<Vec<_>>(), ["accelerators", "cpus"]);
        let ok = Value::Map([("accelerators".to_string(), "H100:8".into()), ("cpus".to_string(), "8+".into())].into());
        let r = Request::parse(&ok).unwrap();
        assert_eq!(r.describe(), "accelerators = \"H100:8\", cpus = \"8+\"");
        assert!(unchanged(&ok, &ok));
        assert!(!unchanged(&ok, &v));
    }

    #[test]
    fn a_clusters_nodes_and_exact_cpus() {
        let v = |j: serde_json::Value| Value::from_json(&j);
        assert_eq!(nodes_and_request(&v(serde_json::json!({ "cpus": "2" })), "E-T").unwrap().0, 1);
        let errs = nodes_and_request(&v(serde_json::json!({ "nodes": 0, "cpus": "x" })), "E-T").unwrap_err();
        let attrs: Vec<_> = errs.iter().map(|d| (d.code, d.attribute.as_deref())).collect();
        assert_eq!(attrs, [("E-T", Some("nodes")), ("E-T", Some("cpus"))]);
        assert_eq!(exact_cpus_per_node(&v(serde_json::json!({ "cpus": "4", "cpus_per_node": 4 }))), Some(4));
        assert_eq!(exact_cpus_per_node(&v(serde_json::json!({ "cpus": "4+", "cpus_per_node": 64 }))), None);
        assert_eq!(exact_cpus_per_node(&v(serde_json::json!({ "cpus_per_node": 64 }))), None);
        // Written before issue 11: no cpus_per_node, nothing pinned.
        assert_eq!(exact_cpus_per_node(&v(serde_json::json!({ "cpus": "4" }))), None);
    }

    #[test]
    fn the_request_attributes_are_written_once() {
        let body = request_attributes(Body::new(), Per::Instance.docs(), true);
        let a = &body.attributes["accelerators"];
        assert_eq!((a.ty.clone(), a.optional, a.computed, a.force_new), (Type::Any, true, false, true));
        assert!(body.attributes["cpus"].description.contains("per instance"));
        let body = request_attributes(Body::new(), RequestDocs { cpus: "mine", ..Per::Node.docs() }, false);
        assert_eq!((body.attributes["cpus"].description, body.attributes["cpus"].force_new), ("mine", false));
        assert_eq!(body.attributes["memory"].ty, Type::String);
    }
}
