//! What a `cluster` block asks for, parsed from config, planned or prior state. Attributes
//! still unknown parse as `None`.

use kiln_diag::Diagnostic;
use kiln_provider::portable::request::{Request, RequestError};
use kiln_value::Value;

use super::catalog::{Needs, MAX_CANDIDATES};
use crate::util::{is_unknown, set, str_attr, str_list, str_map, u64_attr};

/// What `spot` asks for: `false`, `true`, or `"auto"` (spot, and on-demand when EC2 has no
/// spot capacity for any candidate type; the spot pool's `on_demand_fallback` and placement's
/// `spot = "auto"` mean the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Market {
    #[default]
    OnDemand,
    Spot,
    Auto,
}

impl Market {
    /// The markets a launch tries, in order (`true`: spot).
    pub fn tries(self) -> &'static [bool] {
        match self {
            Market::OnDemand => &[false],
            Market::Spot => &[true],
            Market::Auto => &[true, false],
        }
    }

    /// The market recorded in state (`market`) when a launch's is known before it runs.
    pub fn planned(self) -> Option<&'static str> {
        match self {
            Market::OnDemand => Some(ON_DEMAND),
            Market::Spot => Some(SPOT),
            Market::Auto => None,
        }
    }
}

/// Values of the computed `market`: what the cluster's instances run on.
pub(crate) const SPOT: &str = "spot";
pub(crate) const ON_DEMAND: &str = "on-demand";
/// Nodes of both markets: healed under `spot = "auto"` after an interruption.
pub(crate) const MIXED: &str = "mixed";

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spec {
    pub nodes: u64,
    pub instance_type: Option<String>,
    pub needs: Needs,
    pub market: Market,
    pub image: Option<String>,
    pub disk_gb: Option<u64>,
    pub subnet_id: Option<String>,
    pub security_group_ids: Option<Vec<String>>,
    pub key_name: Option<String>,
    /// IAM instance profile (name or ARN) of the instances: the kiln agent's credentials.
    pub instance_profile: Option<String>,
    /// Where SSH may come from; `None`: no SSH ingress (the default).
    pub ssh_cidr: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// A string attribute that is set and known.
fn known_str(v: &Value, name: &str) -> Option<String> {
    if is_unknown(v, name) {
        None
    } else {
        str_attr(v, name).map(str::to_string)
    }
}

/// A malformed setting: a request attribute's (the portable grammar's error, naming its
/// attribute) or another's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Problem {
    Setting(String),
    Request(RequestError),
    /// A setting's error that names its attribute and carries its own hint.
    Attribute {
        name: &'static str,
        message: String,
        hint: String,
    },
}

impl From<String> for Problem {
    fn from(s: String) -> Problem {
        Problem::Setting(s)
    }
}

impl From<&str> for Problem {
    fn from(s: &str) -> Problem {
        Problem::Setting(s.to_string())
    }
}

impl Problem {
    /// The diagnostic: a request's names its attribute and says what was meant; another takes `hint`.
    pub fn diagnostic(&self, code: &'static str, hint: &str) -> Diagnostic {
        match self {
            Problem::Setting(m) => Diagnostic::error(code, m.clone()).hint(hint),
            Problem::Request(e) => e.diagnostic(code),
            Problem::Attribute { name, message, hint } => Diagnostic::error(code, message.clone()).attribute(*name).hint(hint.clone()),
        }
    }
}

fn whole(v: &Value, name: &str, min: u64, errs: &mut Vec<Problem>) -> Option<u64> {
    set(v, name).filter(|x| !x.is_unknown())?;
    let n = u64_attr(v, name).filter(|n| *n >= min);
    if n.is_none() {
        errs.push(format!("`{name}` must be a whole number of at least {min}").into());
    }
    n
}

fn needs(v: &Value, market: Market, errs: &mut Vec<Problem>) -> Needs {
    let request = Request::parse(v).unwrap_or_else(|e| {
        errs.extend(e.into_iter().map(Problem::Request));
        Request::default()
    });
    // "auto" tries spot first: its candidates are types that offer spot.
    Needs { request, spot: market != Market::OnDemand }
}

/// `spot`: true, false or "auto" (unset or still unknown: on-demand).
fn market(v: &Value, errs: &mut Vec<Problem>) -> Market {
    match set(v, "spot") {
        None => Market::OnDemand,
        Some(x) if x.is_unknown() => Market::OnDemand,
        Some(Value::Bool(true)) => Market::Spot,
        Some(Value::Bool(false)) => Market::OnDemand,
        Some(Value::String(s)) if s == "auto" => Market::Auto,
        Some(other) => {
            errs.push(Problem::Attribute {
                name: "spot",
                message: format!(
                    "`spot` must be true, false or \"auto\", got {}",
                    other.to_template_string().unwrap_or_else(|| other.type_name().to_string())
                ),
                hint: "spot = \"auto\" launches spot instances, and on-demand ones when EC2 has no spot capacity for any candidate type"
                    .into(),
            });
            Market::OnDemand
        }
    }
}

impl Spec {
    /// `Err` lists every malformed setting.
    pub fn parse(v: &Value) -> Result<Spec, Vec<Problem>> {
        let mut errs: Vec<Problem> = Vec::new();
        let nodes = whole(v, "nodes", 0, &mut errs).unwrap_or(1);
        let disk_gb = whole(v, "disk_gb", 1, &mut errs);
        let market = market(v, &mut errs);
        let needs = needs(v, market, &mut errs);
        let tags = str_map(v, "tags");
        if let Some((k, _)) = tags.iter().find(|(k, _)| k.starts_with("kiln:")) {
            errs.push(format!("tag `{k}`: tags starting with `kiln:` are kiln's own").into());
        }
        let security_group_ids = if is_unknown(v, "security_group_ids") || set(v, "security_group_ids").is_none() {
            None
        } else {
            Some(str_list(v, "security_group_ids"))
        };
        if let Some(c) = known_str(v, "ssh_cidr").filter(|s| !s.is_empty()) {
            if !is_cidr(&c) {
                errs.push(format!("ssh_cidr `{c}` is not a CIDR block such as \"203.0.113.7/32\" or \"2001:db8::/64\"").into());
            }
        }
        let spec = Spec {
            nodes,
            instance_type: known_str(v, "instance_type"),
            needs,
            market,
            image: known_str(v, "image"),
            disk_gb,
            subnet_id: known_str(v, "subnet_id"),
            security_group_ids,
            key_name: known_str(v, "key_name"),
            instance_profile: known_str(v, "instance_profile").filter(|s| !s.is_empty()),
            ssh_cidr: known_str(v, "ssh_cidr").filter(|s| !s.is_empty()),
            tags,
        };
        if errs.is_empty() {
            Ok(spec)
        } else {
            Err(errs)
        }
    }
}

/// `ADDRESS/PREFIX`, IPv4 or IPv6.
fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else { return false };
    let Ok(prefix) = prefix.parse::<u8>() else { return false };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => prefix <= 32,
        Ok(std::net::IpAddr::V6(_)) => prefix <= 128,
        Err(_) => false,
    }
}

/// Whether SSH from `cidr` is open to the whole internet.
pub(crate) fn world_open(cidr: &str) -> bool {
    matches!(cidr.split_once('/'), Some((ip, "0")) if ip.parse::<std::net::IpAddr>().is_ok())
}

/// The plan's warning for a world-open `ssh_cidr` (new or kept from state).
pub(crate) fn ssh_warning(address: &str, planned: &Value) -> kiln_diag::Diagnostics {
    match str_attr(planned, "ssh_cidr").filter(|c| world_open(c)) {
        Some(c) => kiln_diag::Diagnostic::warning("W-AWS-SSH-OPEN", format!("{address}: SSH (port 22) is open to the whole internet (ssh_cidr = \"{c}\")"))
            .address(address)
            .hint("set `ssh_cidr` to your own address block (such as \"203.0.113.7/32\"), or to \"\" for no SSH ingress (this replaces the object's security group and instances)")
            .into(),
        None => kiln_diag::Diagnostics::new(),
    }
}

/// Config-only checks: an instance type and resource requests exclude each other.
pub(crate) fn conflicts(config: &Value) -> Option<String> {
    let requested: Vec<&str> = ["accelerators", "cpus", "memory"].into_iter().filter(|k| set(config, k).is_some()).collect();
    (set(config, "instance_type").is_some() && !requested.is_empty())
        .then(|| format!("set either `instance_type` or resource requests ({}), not both", requested.join(", ")))
}

/// `instance_type_candidates` as the configuration gives it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Candidates {
    /// Not set: kiln computes the list (the request's candidates, or `instance_type` alone).
    Computed,
    /// Set, but not known until apply.
    Unknown,
    /// What a create tries, in order: `instance_type` first, then the others as listed.
    Given(Vec<String>),
}

const CANDIDATES: &str = "instance_type_candidates";

/// Reads a configured `instance_type_candidates`: the types a create tries after
/// `instance_type` when AWS has no capacity for it (it may be listed first, as placement
/// writes it, or left out). Errors name the attribute.
pub(crate) fn candidates(config: &Value) -> Result<Candidates, Problem> {
    let bad = |message: String, hint: &str| Problem::Attribute { name: CANDIDATES, message, hint: hint.to_string() };
    let Some(list) = set(config, CANDIDATES) else { return Ok(Candidates::Computed) };
    if set(config, "instance_type").is_none() {
        return Err(bad(
            "`instance_type_candidates` lists the types a create tries after `instance_type`, which is not set".into(),
            "set `instance_type` to the first choice, or leave `instance_type_candidates` out and ask with accelerators, cpus and memory: kiln then lists the candidates itself",
        ));
    }
    if list.contains_unknown() || config.get("instance_type").is_some_and(Value::contains_unknown) {
        return Ok(Candidates::Unknown);
    }
    let first = str_attr(config, "instance_type").unwrap_or_default().to_string();
    let mut tried = vec![first.clone()];
    for item in list.as_list().unwrap_or_default() {
        let t = item.unmarked().as_str().unwrap_or_default();
        if t.is_empty() {
            return Err(bad("`instance_type_candidates` has an empty instance type".into(), "write EC2 type names such as \"g5.xlarge\""));
        }
        if tried[1..].iter().any(|x| x == t) {
            return Err(bad(format!("`instance_type_candidates` lists `{t}` twice"), "list each type once, in the order to try them"));
        }
        if t != first {
            tried.push(t.to_string());
        }
    }
    if tried.len() > MAX_CANDIDATES {
        return Err(bad(
            format!("`instance_type_candidates` makes {} types to try with `instance_type`; at most {MAX_CANDIDATES}", tried.len()),
            "keep the types you would accept most, in order",
        ));
    }
    Ok(Candidates::Given(tried))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::map;

    #[test]
    fn parses_requests_and_defaults() {
        let v = Value::Map(map([("accelerators", "A100:8".into()), ("nodes", 2i64.into()), ("instance_type", Value::Unknown)]));
        let s = Spec::parse(&v).unwrap();
        assert_eq!(s.nodes, 2);
        assert_eq!(s.needs.request.first_accelerator().unwrap().count, 8);
        assert_eq!(s.instance_type, None);
        assert_eq!(s.ssh_cidr, None, "no SSH ingress unless asked");
    }

    #[test]
    fn lists_every_error() {
        let v =
            Value::Map(map([("cpus", "many".into()), ("nodes", Value::from(-1i64)), ("tags", Value::Map(map([("kiln:x", "y".into())])))]));
        assert_eq!(Spec::parse(&v).unwrap_err().len(), 3);
    }

    #[test]
    fn type_and_requests_conflict() {
        let v = Value::Map(map([("instance_type", "c5.large".into()), ("cpus", "2+".into())]));
        assert!(conflicts(&v).unwrap().contains("cpus"));
    }
}
