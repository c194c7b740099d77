//! `cluster`: a partition jobs are submitted to, with an optional reservation, account and
//! QoS. Nothing is created in Slurm: plan checks the partition exists and can hold the request
//! (`nodes`, `accelerators` against the nodes' GRES) and describes it; read re-describes every
//! cluster of a refresh from one `sinfo` + `scontrol show partition` round trip; a partition
//! that disappeared makes the cluster gone (the next plan then says it does not exist).

use std::collections::BTreeMap;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, UpdateRequest,
};
use kiln_value::{Map, Value};

use crate::parse::{self, SinfoNode};
use crate::util::{attrs, error, num, opt_str, problem, set, str_attr, to_u64};
use crate::{Ctx, Kind, KindSchema, Outcome};

pub(crate) struct Cluster;

const CONFIG: [&str; 6] = ["partition", "reservation", "account", "qos", "nodes", "accelerators"];

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

async fn describe(ctx: &Ctx, address: &str) -> Result<Vec<Partition>, Diagnostic> {
    let out =
        ctx.run(address, "sinfo", "reading the partitions (sinfo, scontrol show partition)", DESCRIBE, &[parse::SINFO_FORMAT]).await?;
    Ok(partitions(&out.text()))
}

/// `NAME[:COUNT]` of `accelerators`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Accelerators {
    pub name: String,
    pub count: u64,
}

pub(crate) fn parse_accelerators(s: &str) -> Result<Accelerators, String> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n.trim(), c.trim().parse::<u64>().map_err(|_| format!("`{c}` is not a GPU count"))?),
        None => (s.trim(), 1),
    };
    if name.is_empty() || count == 0 {
        return Err(format!("`{s}` is not `NAME[:COUNT]` with a count of at least 1, such as \"A100:8\""));
    }
    Ok(Accelerators { name: name.to_string(), count })
}

/// What a cluster block asks for.
#[derive(Debug, Clone, PartialEq)]
struct Ask {
    partition: Option<String>,
    nodes: u64,
    accelerators: Option<Accelerators>,
}

impl Ask {
    fn parse(address: &str, v: &Value) -> Result<Ask, Diagnostic> {
        let nodes = match set(v, "nodes") {
            None => 1,
            Some(n) => to_u64(n).filter(|n| *n >= 1).ok_or_else(|| {
                error("E-SLURM-CLUSTER", address, format!("{address}: `nodes` must be a whole number of at least 1, got {n}"))
            })?,
        };
        let accelerators = str_attr(v, "accelerators")
            .map(parse_accelerators)
            .transpose()
            .map_err(|e| problem("E-SLURM-CLUSTER", address, format!("`accelerators`: {e}")))?;
        Ok(Ask { partition: str_attr(v, "partition").map(str::to_string), nodes, accelerators })
    }
}

/// The GRES type of the partition matching `name` (case-insensitive; `A100` also matches
/// `a100_80g`), as Slurm spells it.
fn gpu_type(p: &Partition, name: &str) -> Option<String> {
    let want = name.to_lowercase();
    let types: Vec<String> =
        p.nodes.iter().flat_map(|n| n.gres.iter()).filter(|g| g.name == "gpu").filter_map(|g| g.kind.clone()).collect();
    types.iter().find(|t| t.to_lowercase() == want).or_else(|| types.iter().find(|t| t.to_lowercase().starts_with(&want))).cloned()
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
    let (per_node, kind) = match &ask.accelerators {
        None => (0, None),
        Some(a) => {
            let kind = gpu_type(p, &a.name);
            let fits = match &kind {
                Some(k) => p.nodes.iter().filter(|n| parse::gpu_count(&n.gres, Some(k)) >= a.count).count() as u64,
                None => 0,
            };
            if kind.is_none() || fits < ask.nodes {
                let gres: Vec<String> = gres_list(p);
                return Err(error(
                    "E-SLURM-CAPACITY",
                    address,
                    format!(
                        "{address} asks for {} nodes with {} x {} GPUs; partition `{}` has {fits} such nodes (its GRES: {})",
                        ask.nodes,
                        a.count,
                        a.name,
                        p.name,
                        if gres.is_empty() { "none".to_string() } else { gres.join(", ") }
                    ),
                )
                .hint("name a GPU type the partition's GRES lists, lower the count or `nodes`, or pick another partition"));
            }
            (a.count, kind)
        }
    };
    Ok(describe_partition(p, per_node, kind))
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

async fn plan(ctx: &Ctx, req: &PlanRequest<'_>) -> Result<PlanResponse, Diagnostic> {
    let mut planned = attrs(req.proposed);
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
        planned.extend(resolve(req.address, &ask, &parts)?);
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
        Ask::parse("", config).err().map(Diagnostics::from).unwrap_or_default()
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        Ok(plan(ctx, req).await?)
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(apply(ctx, req.address, req.planned).await?))
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
        Ask { partition: partition.map(str::to_string), nodes, accelerators: acc.map(|a| parse_accelerators(a).unwrap()) }
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
    fn accelerator_syntax() {
        assert_eq!(parse_accelerators("A100:8").unwrap(), Accelerators { name: "A100".into(), count: 8 });
        assert_eq!(parse_accelerators("h100").unwrap().count, 1);
        assert!(parse_accelerators("A100:x").is_err());
        assert!(parse_accelerators(":2").is_err());
    }
}
