//! `cluster`: a partition jobs are submitted to, with an optional reservation, account and
//! QoS. Nothing is created in Slurm: plan checks the partition exists and can hold the request
//! (`nodes`, `accelerators` against the nodes' GRES) and describes it; read re-describes every
//! cluster of a refresh from one `sinfo` + `scontrol show partition` round trip; a partition
//! that disappeared makes the cluster gone (the next plan then says it does not exist).
//!
//! Requests follow the portable grammar ([`kiln_provider::portable::request`]): `accelerators`
//! names a GPU of the one table, matched against the partition's GRES types ("a100",
//! "nvidia_h100_80gb_hbm3"), or a site's own GRES type ("kilngpu") matched as written;
//! alternatives are tried in order. `cpus` and `memory` select nodes with at least that much;
//! `cpus = "8"` gives each node of a job exactly 8 CPUs (`cpus_per_node`), `"8+"` at least 8
//! (`cpus_per_node` is then the fewest CPUs a fitting node has). A cluster without `cpus` records
//! no `cpus_per_node`.
//!
//! A partition records no creation time: `created_at` is when kiln's create took it as a
//! cluster; a plan keeps the prior's (none in a state written before kiln recorded it, which
//! plans no change).

use std::collections::BTreeMap;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, UpdateRequest,
};
use kiln_value::{Map, Value};

use kiln_provider::portable::request::{Accelerator, Request, CPUS_PER_NODE};

use crate::parse::{self, SinfoNode};
use crate::util::{attrs, error, num, opt_str, set, str_attr, to_u64};
use crate::{Ctx, Kind, KindSchema, Outcome};

pub(crate) struct Cluster;

const CONFIG: [&str; 8] = ["partition", "reservation", "account", "qos", "nodes", "accelerators", "cpus", "memory"];

/// One partition as Slurm describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Partition {
    pub name: String,
    pub default: bool,
    /// `up`, `down`, `drain`, `inactive`.
    pub state: String,
    pub max_time: String,
    pub nodes: Vec<SinfoNode>,
}

/// Every partition: `sinfo` per node, then `scontrol show partition` (one round trip).
const DESCRIBE: &str = r#"set -o pipefail
sinfo -h -N -o "$1" || exit $?
echo '@@kiln-partitions@@'
scontrol show partition -o || exit $?
"#;

/// Parses [`DESCRIBE`]'s output.
pub(crate) fn partitions(text: &str) -> Vec<Partition> {
    let (nodes, parts) = text.split_once("@@kiln-partitions@@").unwrap_or((text, ""));
    let nodes = parse::sinfo_nodes(nodes);
    parse::scontrol_records(parts)
        .into_iter()
        .filter_map(|r| {
            let name = r.get("PartitionName")?.clone();
            Some(Partition {
                default: r.get("Default").is_some_and(|d| d == "YES"),
                state: r.get("State").map_or("unknown".to_string(), |s| s.to_lowercase()),
                max_time: r.get("MaxTime").cloned().unwrap_or_default(),
                nodes: nodes.iter().filter(|n| n.partition == name).cloned().collect(),
                name,
            })
        })
        .collect()
}

pub(crate) async fn describe(ctx: &Ctx, address: &str) -> Result<Vec<Partition>, Diagnostic> {
    let out =
        ctx.run(address, "sinfo", "reading the partitions (sinfo, scontrol show partition)", DESCRIBE, &[parse::SINFO_FORMAT]).await?;
    Ok(partitions(&out.text()))
}

/// What a cluster block asks for.
#[derive(Debug, Clone, PartialEq)]
struct Ask {
    partition: Option<String>,
    nodes: u64,
    request: Request,
}

impl Ask {
    /// The first mistake (validate lists them all, see [`validate`]).
    fn parse(address: &str, v: &Value) -> Result<Ask, Diagnostic> {
        let nodes = match set(v, "nodes") {
            None => 1,
            Some(n) => to_u64(n).filter(|n| *n >= 1).ok_or_else(|| {
                error("E-SLURM-CLUSTER", address, format!("{address}: `nodes` must be a whole number of at least 1, got {n}"))
                    .attribute("nodes")
            })?,
        };
        let request = Request::parse(v).map_err(|e| {
            let d = e[0].diagnostic("E-SLURM-CLUSTER");
            if address.is_empty() {
                d
            } else {
                d.address(address)
            }
        })?;
        Ok(Ask { partition: str_attr(v, "partition").map(str::to_string), nodes, request })
    }

    /// Whether a node has the CPUs and memory asked for.
    fn node_fits(&self, n: &SinfoNode) -> bool {
        self.request.cpus.is_none_or(|c| c.fits_in(n.cpus as f64))
            && self.request.memory.is_none_or(|m| m.fits_in(n.memory_mb as f64 / 1024.0))
    }
}

/// Every mistake of a cluster block, each naming its attribute.
fn validate(config: &Value) -> Diagnostics {
    let mut d = Request::validate(config, "E-SLURM-CLUSTER");
    if let Err(e) = Ask::parse("", config).map(|_| ()) {
        if e.attribute.as_deref() == Some("nodes") {
            d.push(e);
        }
    }
    d
}

/// The GRES type of the partition that `a` names (see the module), as Slurm spells it.
fn gpu_type(p: &Partition, a: &Accelerator) -> Option<String> {
    let types: Vec<String> =
        p.nodes.iter().flat_map(|n| n.gres.iter()).filter(|g| g.name == "gpu").filter_map(|g| g.kind.clone()).collect();
    types.iter().find(|t| a.matches(t, None)).cloned()
}

/// The partition `ask` names (or the default one), checked against the request; the computed
/// attributes describing it.
fn resolve(address: &str, ask: &Ask, parts: &[Partition]) -> Result<Map, Diagnostic> {
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    let p = match &ask.partition {
        Some(name) => parts.iter().find(|p| &p.name == name).ok_or_else(|| {
            error("E-SLURM-PARTITION", address, format!("{address}: Slurm has no partition `{name}`"))
                .hint(format!("partitions: {}", names.join(", ")))
        })?,
        None => parts.iter().find(|p| p.default).ok_or_else(|| {
            error("E-SLURM-PARTITION", address, format!("{address}: no `partition` given and Slurm has no default partition"))
                .hint(format!("set partition to one of: {}", names.join(", ")))
        })?,
    };
    let total = p.nodes.len() as u64;
    if ask.nodes > total {
        return Err(error(
            "E-SLURM-CAPACITY",
            address,
            format!("{address} asks for {} nodes; partition `{}` has {total}", ask.nodes, p.name),
        )
        .hint("lower `nodes`, or pick a larger partition"));
    }
    let sized: Vec<&SinfoNode> = p.nodes.iter().filter(|n| ask.node_fits(n)).collect();
    if (sized.len() as u64) < ask.nodes {
        let sizes: Vec<String> = p.nodes.iter().map(|n| format!("{} ({} CPUs, {} GiB)", n.node, n.cpus, n.memory_mb / 1024)).collect();
        return Err(error(
            "E-SLURM-CAPACITY",
            address,
            format!(
                "{address} asks for {} nodes with {}; partition `{}` has {} such nodes: {}",
                ask.nodes,
                Request { accelerators: None, ..ask.request.clone() }.describe(),
                p.name,
                sized.len(),
                sizes.join(", ")
            ),
        )
        .hint("ask for fewer CPUs or less memory (or fewer `nodes`), or pick another partition"));
    }
    let (per_node, kind, fitting) = match ask.request.accelerators.as_deref() {
        None => (0, None, sized),
        Some(alts) => {
            let fits = |a: &Accelerator| -> (Option<String>, Vec<&SinfoNode>) {
                let kind = gpu_type(p, a);
                let nodes = match &kind {
                    Some(k) => sized.iter().copied().filter(|n| parse::gpu_count(&n.gres, Some(k)) >= a.count).collect(),
                    None => Vec::new(),
                };
                (kind, nodes)
            };
            let tried: Vec<(&Accelerator, Option<String>, Vec<&SinfoNode>)> = alts
                .iter()
                .map(|a| {
                    let (k, n) = fits(a);
                    (a, k, n)
                })
                .collect();
            match tried.iter().find(|(_, k, n)| k.is_some() && n.len() as u64 >= ask.nodes) {
                Some((a, k, n)) => (a.count, k.clone(), n.clone()),
                None => {
                    let gres: Vec<String> = gres_list(p);
                    let what = alts.iter().map(|a| format!("{} x {}", a.count, a.name.name())).collect::<Vec<_>>().join(" or ");
                    let fits = tried.iter().map(|(_, _, n)| n.len()).max().unwrap_or(0);
                    return Err(error(
                        "E-SLURM-CAPACITY",
                        address,
                        format!(
                            "{address} asks for {} nodes with {what} GPUs; partition `{}` has {fits} such nodes (its GRES: {})",
                            ask.nodes,
                            p.name,
                            if gres.is_empty() { "none".to_string() } else { gres.join(", ") }
                        ),
                    )
                    .hint("name a GPU type the partition's GRES lists, lower the count or `nodes`, or pick another partition"));
                }
            }
        }
    };
    let mut m = describe_partition(p, per_node, kind);
    if let Some(c) = ask.request.cpus {
        let cpus = if c.at_least { fitting.iter().map(|n| n.cpus).min().unwrap_or(0) } else { c.value.ceil() as u64 };
        m.insert(CPUS_PER_NODE.to_string(), num(cpus));
    }
    Ok(m)
}

fn gres_list(p: &Partition) -> Vec<String> {
    let mut out: Vec<String> = p
        .nodes
        .iter()
        .flat_map(|n| n.gres.iter())
        .map(|g| match &g.kind {
            Some(k) => format!("{}:{k}:{}", g.name, g.count),
            None => format!("{}:{}", g.name, g.count),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The computed attributes.
fn describe_partition(p: &Partition, gpus_per_node: u64, gpu_type: Option<String>) -> Map {
    let node_states: Map = p.nodes.iter().map(|n| (n.node.clone(), Value::from(n.state.as_str()))).collect();
    let names: Vec<Value> = p.nodes.iter().map(|n| Value::from(n.node.as_str())).collect();
    [
        ("partition", Value::from(p.name.as_str())),
        ("state", Value::from(p.state.as_str())),
        ("node_names", Value::List(names)),
        ("node_states", Value::Map(node_states)),
        ("total_nodes", num(p.nodes.len() as u64)),
        ("total_cpus", num(p.nodes.iter().map(|n| n.cpus).sum())),
        ("total_gpus", num(p.nodes.iter().map(|n| parse::gpu_count(&n.gres, None)).sum())),
        ("gres", Value::List(gres_list(p).into_iter().map(Value::from).collect())),
        ("max_time", Value::from(p.max_time.as_str())),
        ("gpus_per_node", num(gpus_per_node)),
        ("gpu_type", opt_str(gpu_type.as_deref())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The attributes the user set in `v` (for comparing a prior with a new configuration).
fn asked(v: &Value) -> BTreeMap<&'static str, Value> {
    CONFIG.iter().map(|k| (*k, set(v, k).cloned().unwrap_or(Value::Null))).collect()
}

/// `base` with the partition described.
fn state(ctx_parts: &[Partition], address: &str, base: &Value) -> Result<Value, Diagnostic> {
    let ask = Ask::parse(address, base)?;
    let mut m = attrs(base);
    m.extend(resolve(address, &ask, ctx_parts)?);
    Ok(Value::Map(m))
}

const CREATED_AT: &str = "created_at";

/// `created_at` in a plan: the prior's, or none when the prior has none; unknown for a create.
fn plan_created_at(planned: &mut Map, prior: Option<&Value>) {
    match prior.map(|p| p.get(CREATED_AT).filter(|v| v.as_str().is_some())) {
        Some(Some(t)) => planned.insert(CREATED_AT.into(), t.clone()),
        Some(None) => planned.remove(CREATED_AT),
        None => planned.insert(CREATED_AT.into(), Value::Unknown),
    };
}

async fn plan(ctx: &Ctx, req: &PlanRequest<'_>) -> Result<PlanResponse, Diagnostic> {
    let mut planned = attrs(req.proposed);
    plan_created_at(&mut planned, req.prior);
    if CONFIG.iter().any(|k| req.config.get(k).is_some_and(Value::contains_unknown)) {
        for k in [
            "state",
            "node_names",
            "node_states",
            "total_nodes",
            "total_cpus",
            "total_gpus",
            "gres",
            "max_time",
            "gpus_per_node",
            "gpu_type",
            CPUS_PER_NODE,
        ] {
            planned.insert(k.to_string(), Value::Unknown);
        }
        if req.config.get("partition").is_none_or(Value::is_null) {
            planned.insert("partition".into(), Value::Unknown);
        }
        return Ok(PlanResponse { planned: Value::Map(planned), requires_replace: Vec::new(), diagnostics: Diagnostics::new() });
    }
    // An unchanged cluster keeps what the refresh described: node states move all the time and
    // are not a change to apply.
    let unchanged = req.prior.is_some_and(|p| {
        let mut before = asked(p);
        let mut after = asked(req.config);
        if after["partition"].is_null() {
            before.remove("partition");
            after.remove("partition");
        }
        before == after
    });
    if !unchanged {
        let ask = Ask::parse(req.address, req.config)?;
        let parts = describe(ctx, req.address).await?;
        planned.remove(CPUS_PER_NODE);
        planned.extend(resolve(req.address, &ask, &parts)?);
    } else if req.prior.is_some_and(|p| p.get(CPUS_PER_NODE).is_none_or(Value::is_null)) {
        planned.remove(CPUS_PER_NODE);
    }
    Ok(PlanResponse { planned: Value::Map(planned), requires_replace: Vec::new(), diagnostics: Diagnostics::new() })
}

/// The planned value, described again if the plan could not know it.
async fn apply(ctx: &Ctx, address: &str, planned: &Value) -> Result<Value, Diagnostic> {
    if !planned.contains_unknown() {
        return Ok(planned.clone());
    }
    let parts = describe(ctx, address).await?;
    state(&parts, address, planned)
}

#[async_trait]
impl Kind<Ctx, ()> for Cluster {
    fn name(&self) -> &'static str {
        "cluster"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("A Slurm partition (with optional reservation, account and QoS) jobs are submitted to", crate::schema::cluster())
            .state_only()
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        if CONFIG.iter().any(|k| config.get(k).is_some_and(Value::contains_unknown)) {
            return Diagnostics::new();
        }
        validate(config)
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        Ok(plan(ctx, req).await?)
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        let mut planned = attrs(req.planned);
        planned.insert(CREATED_AT.into(), kiln_provider::util::now().into());
        Ok(ApplyResponse::ok(apply(ctx, req.address, &Value::Map(planned)).await?))
    }

    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(apply(ctx, req.address, req.planned).await?))
    }

    async fn delete(&self, _ctx: &Ctx, _req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        Ok(Diagnostics::new())
    }

    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], _batch: &()) -> Outcome<Vec<ReadResult>> {
        let first = items.first().map_or("cluster", |i| i.address);
        let parts = describe(ctx, first).await?;
        Ok(items
            .iter()
            .map(|item| {
                let name = str_attr(item.state, "partition");
                if !parts.iter().any(|p| Some(p.name.as_str()) == name) {
                    return ReadResult::gone();
                }
                // Describe what is there, without re-judging the request (a node going down
                // is news, not an error).
                let p = parts.iter().find(|p| Some(p.name.as_str()) == name).expect("checked above");
                let per = crate::util::u64_attr(item.state, "gpus_per_node").unwrap_or(0);
                let kind = str_attr(item.state, "gpu_type").map(str::to_string);
                let mut m = attrs(item.state);
                m.extend(describe_partition(p, per, kind));
                ReadResult::found(Value::Map(m))
            })
            .collect())
    }

    async fn recover(&self, _ctx: &Ctx, _req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(ReadResult::gone())
    }

    /// Imports a partition by name.
    async fn shell(&self, ctx: &Ctx, req: &kiln_provider::ShellRequest<'_>) -> Outcome<kiln_provider::ShellAccess> {
        Ok(crate::access::shell(ctx, req).await?)
    }

    async fn import(&self, ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        let parts = describe(ctx, req.address).await?;
        let base = Value::Map(
            [
                ("partition", Value::from(req.id)),
                ("nodes", num(1)),
                ("reservation", Value::Null),
                ("account", Value::Null),
                ("qos", Value::Null),
                ("accelerators", Value::Null),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        );
        let v = state(&parts, req.address, &base).map_err(|d| d.hint("import a cluster by its partition's name, such as `debug`"))?;
        Ok(ReadResult::found(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn gpu_cluster() -> Vec<Partition> {
        let text = format!("{}@@kiln-partitions@@\n{}", testdata("sinfo-nodes-gpu.txt"), testdata("scontrol-show-partition-gpu.txt"));
        partitions(&text)
    }

    fn ask(partition: Option<&str>, nodes: u64, acc: Option<&str>) -> Ask {
        let v = serde_json::json!({ "partition": partition, "nodes": nodes, "accelerators": acc });
        Ask::parse("cluster.c", &Value::from_json(&v)).unwrap()
    }

    fn ask_json(v: serde_json::Value) -> Ask {
        Ask::parse("cluster.c", &Value::from_json(&v)).unwrap()
    }

    #[test]
    fn recorded_single_node_cluster() {
        let text = format!("{}@@kiln-partitions@@\n{}", testdata("sinfo-nodes.txt"), testdata("scontrol-show-partition.txt"));
        let parts = partitions(&text);
        assert_eq!(parts.len(), 1);
        let m = resolve("cluster.c", &ask(None, 1, Some("kilngpu:1")), &parts).unwrap();
        assert_eq!(m["partition"], Value::from("debug"));
        assert_eq!(m["state"], Value::from("up"));
        assert_eq!(m["total_cpus"], num(8));
        assert_eq!(m["total_gpus"], num(2));
        assert_eq!(m["gpu_type"], Value::from("kilngpu"));
        assert_eq!(m["node_states"].get("vm"), Some(&Value::from("idle")));
    }

    #[test]
    fn gpu_partition_request() {
        let parts = gpu_cluster();
        let m = resolve("cluster.c", &ask(Some("gpu"), 3, Some("A100:8")), &parts).unwrap();
        assert_eq!(m["gpu_type"], Value::from("a100"));
        assert_eq!(m["gpus_per_node"], num(8));
        assert_eq!(m["total_gpus"], num(32));
        assert_eq!(m["total_nodes"], num(4));
        assert_eq!(m["max_time"], Value::from("2-00:00:00"));
        assert_eq!(m["gres"], Value::List(vec![Value::from("gpu:a100:8")]));
    }

    #[test]
    fn requests_the_partition_cannot_hold_fail() {
        let parts = gpu_cluster();
        let e = resolve("cluster.c", &ask(Some("gpu"), 5, None), &parts).unwrap_err();
        assert_eq!(e.summary, "cluster.c asks for 5 nodes; partition `gpu` has 4");
        let e = resolve("cluster.c", &ask(Some("gpu"), 1, Some("H100:8")), &parts).unwrap_err();
        assert_eq!(e.summary, "cluster.c asks for 1 nodes with 8 x H100 GPUs; partition `gpu` has 0 such nodes (its GRES: gpu:a100:8)");
        let e = resolve("cluster.c", &ask(Some("gpu"), 1, Some("A100:16")), &parts).unwrap_err();
        assert!(e.summary.contains("has 0 such nodes"), "{}", e.summary);
        let e = resolve("cluster.c", &ask(Some("nope"), 1, None), &parts).unwrap_err();
        assert_eq!(e.summary, "cluster.c: Slurm has no partition `nope`");
        assert_eq!(e.hint.as_deref(), Some("partitions: gpu"));
        let e = resolve("cluster.c", &ask(None, 1, None), &parts).unwrap_err();
        assert!(e.summary.contains("no default partition"), "{}", e.summary);
    }

    #[test]
    fn accelerator_names_cpus_and_memory() {
        let parts = gpu_cluster();
        let a = |acc: serde_json::Value| ask_json(serde_json::json!({ "partition": "gpu", "accelerators": acc }));
        // "a100" (the GRES type) is the 40 GB part of the table; alternatives in order.
        assert_eq!(resolve("cluster.c", &a(serde_json::json!("a100:4")), &parts).unwrap()["gpu_type"], Value::from("a100"));
        assert!(resolve("cluster.c", &a(serde_json::json!("A100-80GB:8")), &parts).is_err());
        let m = resolve("cluster.c", &a(serde_json::json!(["H100:8", "A100:2"])), &parts).unwrap();
        assert_eq!((m["gpu_type"].clone(), m["gpus_per_node"].clone()), (Value::from("a100"), num(2)));
        let e = resolve("cluster.c", &a(serde_json::json!(["H100:8", "A100-80GB:8"])), &parts).unwrap_err();
        assert!(e.summary.contains("with 8 x H100 or 8 x A100-80GB GPUs"), "{}", e.summary);

        let node = &parts[0].nodes[0];
        let (cpus, gib) = (node.cpus, node.memory_mb / 1024);
        let exact = ask_json(serde_json::json!({ "partition": "gpu", "cpus": "2" }));
        assert_eq!(resolve("cluster.c", &exact, &parts).unwrap()[CPUS_PER_NODE], num(2));
        let at_least = ask_json(serde_json::json!({ "partition": "gpu", "cpus": "2+" }));
        assert_eq!(resolve("cluster.c", &at_least, &parts).unwrap()[CPUS_PER_NODE], num(cpus));
        assert!(!resolve("cluster.c", &ask(Some("gpu"), 1, None), &parts).unwrap().contains_key(CPUS_PER_NODE));
        let big = ask_json(serde_json::json!({ "partition": "gpu", "cpus": format!("{}", cpus + 1), "memory": format!("{gib}+") }));
        let e = resolve("cluster.c", &big, &parts).unwrap_err();
        assert!(e.summary.contains("has 0 such nodes"), "{}", e.summary);
    }

    #[test]
    fn malformed_requests_name_their_attribute() {
        let d = validate(&Value::from_json(&serde_json::json!({ "accelerators": "8xA100", "cpus": "many", "nodes": 0 })));
        let attrs: Vec<Option<&str>> = d.errors().map(|e| e.attribute.as_deref()).collect();
        assert_eq!(attrs, [Some("accelerators"), Some("cpus"), Some("nodes")]);
        assert_eq!(d.errors().next().and_then(|e| e.hint.as_deref()), Some("did you mean \"A100:8\"?"));
    }
}
