//! Choosing hosts for a cluster: pure. A request (`nodes`, and per node `accelerators`, `cpus`,
//! `memory` in the portable grammar, `labels`, optionally a list of allowed `hosts`) is matched
//! against each host's inventory and the GPUs other clusters hold. Every node is a different
//! host; a node asking for `NAME:COUNT` takes COUNT free GPUs of that kind on its host (names
//! from the one accelerator table; alternatives are tried in order, the first the fleet can give
//! every node wins). A host must have at least the CPUs and memory asked for: with
//! `cpus = "4"` the node is given exactly 4 of them (the cluster's `cpus_per_node`), with
//! `"4+"` the whole host. Hosts are tried in configuration order. When the fleet cannot give
//! every node, the error says what was asked and what each host has free.

use std::collections::BTreeMap;

use kiln_diag::Diagnostics;
use kiln_provider::portable::accelerators::matches_by_words;
use kiln_provider::portable::request::{self, Accelerator, Amount, Request};
use kiln_value::Value;

use crate::gpus::HostGpu;
use crate::inventory::{describe, Inventory};
use crate::util::{num, obj, set, str_attr, str_list, str_map, strings, u64_attr};

/// What a cluster block asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub nodes: u64,
    pub request: Request,
    pub labels: Vec<(String, String)>,
    /// Hosts it may use; empty means any.
    pub hosts: Vec<String>,
    /// Read with the meaning of a state written before the shared grammar: `cpus` and
    /// `memory` are minimums and GPU names match by words ("A100" matched an 80 GB A100).
    pub before: bool,
}

/// Attributes of a cluster block that make up the request.
pub const REQUEST: [&str; 6] = ["nodes", "accelerators", "cpus", "memory", "labels", "hosts"];

impl Ask {
    /// `None` while something is unknown; `Err` lists what is malformed, each naming its
    /// attribute. `before`: see [`Ask::before`].
    pub fn parse(v: &Value, before: bool) -> Result<Option<Ask>, Diagnostics> {
        if crate::util::any_unknown(v, &REQUEST) || Request::is_unknown(v) {
            return Ok(None);
        }
        let (nodes, request) = request::nodes_and_request(v, "E-ONPREM-CLUSTER")?;
        Ok(Some(Ask { nodes, request, labels: str_map(v, "labels"), hosts: str_list(v, "hosts"), before }))
    }

    /// One ask per `accelerators` alternative, in order (itself without alternatives).
    fn alternatives(&self) -> Vec<Ask> {
        match self.request.accelerators.as_deref() {
            Some(alts) if alts.len() > 1 => alts
                .iter()
                .map(|a| Ask { request: Request { accelerators: Some(vec![a.clone()]), ..self.request.clone() }, ..self.clone() })
                .collect(),
            _ => vec![self.clone()],
        }
    }

    fn accelerator(&self) -> Option<&Accelerator> {
        self.request.first_accelerator()
    }

    /// "2 nodes, each with 8 x A100, at least 16 CPUs, at least 64 GiB of memory, labels rack=a".
    pub fn describe(&self) -> String {
        let amount = |a: &Amount| if a.at_least || self.before { format!("at least {}", a.value) } else { a.value.to_string() };
        let mut each = Vec::new();
        if let Some(alts) = &self.request.accelerators {
            each.push(alts.iter().map(|a| format!("{} x {}", a.count, a.name.name())).collect::<Vec<_>>().join(" or "));
        }
        if let Some(c) = &self.request.cpus {
            each.push(format!("{} CPUs", amount(c)));
        }
        if let Some(m) = &self.request.memory {
            each.push(format!("{} GiB of memory", amount(m)));
        }
        if !self.labels.is_empty() {
            each.push(format!("labels {}", labels(&self.labels)));
        }
        let nodes = if self.nodes == 1 { "1 node".to_string() } else { format!("{} nodes", self.nodes) };
        let among = if self.hosts.is_empty() { String::new() } else { format!(" among {}", self.hosts.join(", ")) };
        match (each.is_empty(), self.nodes) {
            (true, _) => format!("{nodes}{among}"),
            (false, 1) => format!("1 node with {}{among}", each.join(", ")),
            (false, _) => format!("{nodes}{among}, each with {}", each.join(", ")),
        }
    }

    fn wants_gpu(&self, g: &HostGpu) -> bool {
        self.accelerator().is_none_or(|a| {
            if self.before {
                matches_by_words(&a.name.written, &g.name)
            } else {
                a.matches(&g.name, Some(g.memory_mib).filter(|m| *m > 0))
            }
        })
    }

    /// The CPUs each node gets: exactly `cpus`, or (`"N+"`, or none) all of the smallest host's.
    pub fn cpus_per_node(&self, host_cpus: impl Iterator<Item = u64>) -> u64 {
        match self.request.cpus.filter(|c| !c.at_least) {
            Some(c) => c.value.ceil() as u64,
            None => host_cpus.min().unwrap_or(0),
        }
    }
}

fn labels(l: &[(String, String)]) -> String {
    l.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// A host as the allocator sees it.
pub struct Candidate<'a> {
    pub name: &'a str,
    pub address: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub allocate: bool,
    /// The inventory, or why there is none (unreachable, host key refused).
    pub inventory: Result<&'a Inventory, String>,
    /// GPU index → the address of the cluster holding it (other clusters only).
    pub taken: BTreeMap<u32, String>,
}

/// One node of a cluster: a host and the GPUs it gets there.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub host: String,
    pub address: String,
    pub gpus: Vec<HostGpu>,
}

impl Placement {
    pub fn to_value(&self) -> Value {
        obj([
            ("host", Value::from(self.host.as_str())),
            ("address", Value::from(self.address.as_str())),
            ("gpus", Value::List(self.gpus.iter().map(HostGpu::to_value).collect())),
        ])
    }

    /// Reads one entry of a cluster's `allocation`.
    pub fn from_value(v: &Value) -> Option<Placement> {
        let gpus = set(v, "gpus").and_then(Value::as_list).unwrap_or_default().iter().filter_map(gpu_from_value).collect();
        Some(Placement { host: str_attr(v, "host")?.to_string(), address: str_attr(v, "address")?.to_string(), gpus })
    }

    pub fn indices(&self) -> Vec<u32> {
        self.gpus.iter().map(|g| g.index).collect()
    }
}

fn gpu_from_value(v: &Value) -> Option<HostGpu> {
    let vendor = if str_attr(v, "vendor") == Some("amd") { "amd" } else { "nvidia" };
    Some(HostGpu {
        vendor,
        index: u32::try_from(u64_attr(v, "index")?).ok()?,
        name: str_attr(v, "name").unwrap_or_default().to_string(),
        memory_mib: u64_attr(v, "memory_mib").unwrap_or(0),
    })
}

/// A cluster's `allocation` attribute.
pub fn placements(v: &Value) -> Vec<Placement> {
    set(v, "allocation").and_then(Value::as_list).unwrap_or_default().iter().filter_map(Placement::from_value).collect()
}

/// The computed attributes describing an allocation.
pub fn computed(ps: &[Placement]) -> Vec<(&'static str, Value)> {
    vec![
        ("allocation", Value::List(ps.iter().map(Placement::to_value).collect())),
        ("node_ips", strings(ps.iter().map(|p| p.address.as_str()))),
        ("gpus_per_node", num(ps.first().map_or(0, |p| p.gpus.len() as u64))),
    ]
}

/// "8 of 8 A100 free" / "4 GPUs (2 free)", with who holds the rest.
fn free_gpus(ask: &Ask, inv: &Inventory, taken: &BTreeMap<u32, String>) -> String {
    let matching: Vec<&HostGpu> = inv.gpus.iter().filter(|g| ask.wants_gpu(g)).collect();
    let free = matching.iter().filter(|g| !taken.contains_key(&g.index)).count();
    let mut holders: Vec<&str> = matching.iter().filter_map(|g| taken.get(&g.index).map(String::as_str)).collect();
    holders.dedup();
    let held = if holders.is_empty() { String::new() } else { format!(" (held by {})", holders.join(", ")) };
    match ask.accelerator() {
        Some(a) if matching.is_empty() => format!("no {} ({})", a.name.name(), describe(inv.gpus.iter())),
        Some(a) => format!("{free} of {} {} free{held}", matching.len(), a.name.name()),
        None => format!("{} GPUs, {free} free{held}", matching.len()),
    }
}

/// What the host has free, for messages.
fn summary(ask: &Ask, c: &Candidate<'_>) -> String {
    match &c.inventory {
        Ok(inv) => format!("{}, {} CPUs, {} GiB", free_gpus(ask, inv, &c.taken), inv.cpus, inv.memory_gb),
        Err(e) => e.clone(),
    }
}

/// The GPU indices the host would give one node, or why it cannot take one.
pub fn verdict(ask: &Ask, c: &Candidate<'_>) -> Result<Vec<HostGpu>, String> {
    if !c.allocate {
        return Err("not for allocation (allocate = false)".into());
    }
    let inv = c.inventory.as_ref().map_err(Clone::clone)?;
    if let Some((k, v)) = ask.labels.iter().find(|(k, v)| c.labels.get(k) != Some(v)) {
        return Err(format!("label {k} is {}, not {v}", c.labels.get(k).map_or("unset", String::as_str)));
    }
    if let Some(n) = ask.request.cpus.filter(|n| !n.fits_in(inv.cpus as f64)) {
        return Err(format!("{} CPUs, fewer than {}", inv.cpus, n.value));
    }
    if let Some(m) = ask.request.memory.filter(|m| !m.fits_in(inv.memory_gb)) {
        return Err(format!("{} GiB of memory, less than {}", inv.memory_gb, m.value));
    }
    let Some(a) = ask.accelerator() else { return Ok(Vec::new()) };
    let free: Vec<HostGpu> = inv.gpus.iter().filter(|g| ask.wants_gpu(g) && !c.taken.contains_key(&g.index)).cloned().collect();
    if (free.len() as u64) < a.count {
        return Err(free_gpus(ask, inv, &c.taken));
    }
    Ok(free.into_iter().take(a.count as usize).collect())
}

/// Places every node of `ask` (its first `accelerators` alternative the fleet can give every
/// node), or says why the fleet cannot.
pub fn place(address: &str, ask: &Ask, candidates: &[Candidate<'_>]) -> Result<Vec<Placement>, String> {
    let mut why = Vec::new();
    for alt in ask.alternatives() {
        match place_one(address, &alt, candidates) {
            Ok(ps) => return Ok(ps),
            Err(e) => why.push(e),
        }
    }
    Err(why.join("\nOtherwise, "))
}

fn place_one(address: &str, ask: &Ask, candidates: &[Candidate<'_>]) -> Result<Vec<Placement>, String> {
    let allowed: Vec<&Candidate<'_>> =
        candidates.iter().filter(|c| ask.hosts.is_empty() || ask.hosts.iter().any(|h| h == c.name)).collect();
    if let Some(h) = ask.hosts.iter().find(|h| !candidates.iter().any(|c| c.name == h.as_str())) {
        return Err(format!("{address} names host `{h}`, which is not a host of this provider"));
    }
    let mut out = Vec::new();
    for c in &allowed {
        if out.len() as u64 == ask.nodes {
            break;
        }
        if let Ok(gpus) = verdict(ask, c) {
            out.push(Placement { host: c.name.to_string(), address: c.address.to_string(), gpus });
        }
    }
    if out.len() as u64 == ask.nodes {
        return Ok(out);
    }
    let fit = if out.is_empty() { "no host can take one".to_string() } else { format!("only {} can take one", plural(out.len(), "host")) };
    let hosts: Vec<String> = allowed.iter().map(|c| host_line(ask, c)).collect();
    Err(format!(
        "{address} asks for {}; {fit}. The fleet has: {}",
        ask.describe(),
        if hosts.is_empty() { "no hosts".into() } else { hosts.join("; ") }
    ))
}

fn host_line(ask: &Ask, c: &Candidate<'_>) -> String {
    match verdict(ask, c) {
        Ok(_) => format!("{}: {}", c.name, summary(ask, c)),
        Err(why) if c.inventory.is_err() || !c.allocate => format!("{}: {why}", c.name),
        Err(why) => {
            let have = summary(ask, c);
            if have.starts_with(&why) {
                format!("{}: {have}", c.name)
            } else {
                format!("{}: {have}; {why}", c.name)
            }
        }
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(i: u32, name: &str) -> HostGpu {
        HostGpu { vendor: "nvidia", index: i, name: name.into(), memory_mib: 81920 }
    }

    fn inv(gpus: u32, name: &str) -> Inventory {
        Inventory { cpus: 64, memory_gb: 512.0, gpus: (0..gpus).map(|i| gpu(i, name)).collect(), ..Inventory::default() }
    }

    fn ask(j: serde_json::Value) -> Ask {
        Ask::parse(&Value::from_json(&j), false).unwrap().unwrap()
    }

    fn ask_before(j: serde_json::Value) -> Ask {
        Ask::parse(&Value::from_json(&j), true).unwrap().unwrap()
    }

    struct Host {
        name: &'static str,
        inv: Result<Inventory, String>,
        labels: BTreeMap<String, String>,
        taken: BTreeMap<u32, String>,
    }

    fn host(name: &'static str, inv: Result<Inventory, String>) -> Host {
        Host { name, inv, labels: BTreeMap::new(), taken: BTreeMap::new() }
    }

    fn cands(hosts: &[Host]) -> Vec<Candidate<'_>> {
        hosts
            .iter()
            .map(|h| Candidate {
                name: h.name,
                address: "10.0.0.1",
                labels: &h.labels,
                allocate: true,
                inventory: h.inv.as_ref().map_err(Clone::clone),
                taken: h.taken.clone(),
            })
            .collect()
    }

    const A100: &str = "NVIDIA A100-SXM4-80GB";

    #[test]
    fn places_nodes_on_distinct_hosts_with_free_gpus() {
        let mut h1 = host("h1", Ok(inv(8, A100)));
        h1.taken = (0..4).map(|i| (i, "cluster.other".to_string())).collect();
        let hosts = [h1, host("h2", Ok(inv(8, A100)))];
        let p = place("cluster.c", &ask(serde_json::json!({ "nodes": 2, "accelerators": "A100-80GB:4" })), &cands(&hosts)).unwrap();
        assert_eq!(p.iter().map(|p| p.host.as_str()).collect::<Vec<_>>(), vec!["h1", "h2"]);
        assert_eq!(p[0].indices(), vec![4, 5, 6, 7]);
        assert_eq!(p[1].indices(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn unsatisfiable_says_what_was_asked_and_what_is_free() {
        let mut h1 = host("h1", Ok(inv(8, A100)));
        h1.taken = (0..8).map(|i| (i, "cluster.other".to_string())).collect();
        let hosts = [h1, host("h2", Ok(inv(2, "Tesla T4"))), host("h3", Err("unreachable: connection refused".into()))];
        let e = place("cluster.big", &ask(serde_json::json!({ "nodes": 2, "accelerators": "A100-80GB:8" })), &cands(&hosts)).unwrap_err();
        assert_eq!(
            e,
            "cluster.big asks for 2 nodes, each with 8 x A100-80GB; no host can take one. The fleet has: \
             h1: 0 of 8 A100-80GB free (held by cluster.other), 64 CPUs, 512 GiB; \
             h2: no A100-80GB (2 x Tesla T4), 64 CPUs, 512 GiB; h3: unreachable: connection refused"
        );
    }

    #[test]
    fn cpus_memory_and_labels_are_requirements() {
        let mut h1 = host("h1", Ok(inv(0, A100)));
        h1.labels.insert("rack".into(), "b".into());
        let hosts = [h1];
        let e = place("cluster.c", &ask(serde_json::json!({ "cpus": "128+", "labels": { "rack": "a" } })), &cands(&hosts)).unwrap_err();
        assert!(e.ends_with("h1: 0 GPUs, 0 free, 64 CPUs, 512 GiB; label rack is b, not a"), "{e}");
        let ok = place("cluster.c", &ask(serde_json::json!({ "cpus": "16", "memory": "256+" })), &cands(&hosts)).unwrap();
        assert!(ok[0].gpus.is_empty());
    }

    #[test]
    fn names_come_from_the_table_and_alternatives_are_tried_in_order() {
        let hosts = [host("h1", Ok(inv(8, A100))), host("h2", Ok(inv(2, "Tesla T4")))];
        let e = place("cluster.c", &ask(serde_json::json!({ "accelerators": "A100:1" })), &cands(&hosts)).unwrap_err();
        assert!(e.contains("h1: no A100 (8 x NVIDIA A100-SXM4-80GB)"), "A100 is the 40 GB part: {e}");
        let p = place("cluster.c", &ask(serde_json::json!({ "accelerators": ["H100:1", "T4:2", "A100-80GB:1"] })), &cands(&hosts)).unwrap();
        assert_eq!((p[0].host.as_str(), p[0].gpus.len()), ("h2", 2), "the first alternative the fleet has");
        // A state written before the table keeps matching by words.
        let p = place("cluster.c", &ask_before(serde_json::json!({ "accelerators": "A100:1" })), &cands(&hosts)).unwrap();
        assert_eq!(p[0].host, "h1");
    }

    #[test]
    fn cpus_exactly_or_the_whole_host() {
        assert_eq!(ask(serde_json::json!({ "cpus": "4" })).cpus_per_node([64, 32].into_iter()), 4);
        assert_eq!(ask(serde_json::json!({ "cpus": "4+" })).cpus_per_node([64, 32].into_iter()), 32);
        assert_eq!(ask(serde_json::json!({})).cpus_per_node([64].into_iter()), 64);
        assert_eq!(ask(serde_json::json!({ "cpus": "16", "memory": "64+" })).describe(), "1 node with 16 CPUs, at least 64 GiB of memory");
        assert_eq!(ask_before(serde_json::json!({ "cpus": "16" })).describe(), "1 node with at least 16 CPUs");
    }

    #[test]
    fn allowed_hosts_only() {
        let hosts = [host("h1", Ok(inv(8, A100))), host("h2", Ok(inv(8, A100)))];
        let p = place("cluster.c", &ask(serde_json::json!({ "hosts": ["h2"] })), &cands(&hosts)).unwrap();
        assert_eq!(p[0].host, "h2");
        let e = place("cluster.c", &ask(serde_json::json!({ "hosts": ["h9"] })), &cands(&hosts)).unwrap_err();
        assert_eq!(e, "cluster.c names host `h9`, which is not a host of this provider");
    }

    #[test]
    fn descriptions() {
        assert_eq!(ask(serde_json::json!({})).describe(), "1 node");
        assert_eq!(
            ask(serde_json::json!({ "nodes": 2, "accelerators": "H100:8", "cpus": "16+", "labels": { "rack": "a" } })).describe(),
            "2 nodes, each with 8 x H100, at least 16 CPUs, labels rack=a"
        );
    }

    #[test]
    fn allocation_round_trips() {
        let p = Placement { host: "h1".into(), address: "10.0.0.1".into(), gpus: vec![gpu(3, A100)] };
        assert_eq!(Placement::from_value(&p.to_value()), Some(p));
    }
}
