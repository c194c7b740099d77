//! `cluster`: `nodes` slots on this machine. Its computed attributes describe what the machine
//! really has (CPUs, memory) and which GPUs the cluster gets; a request the machine cannot
//! satisfy (`accelerators`, `cpus`, `memory`, for all nodes together) fails at plan time,
//! saying what was asked and what exists. Nothing exists outside state, so read re-describes
//! the machine and recover finds nothing.

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, UpdateRequest,
};
use kiln_value::{Map, Value};

use crate::machine::{Gpu, Machine};
use crate::request::{gpu_matches, parse_accelerators, parse_minimum, Accelerators};
use crate::util::{attrs, error, num, set, str_attr, tenths, to_u64};
use crate::{Ctx, Kind, KindSchema, LazyProcs, Outcome};

pub(crate) struct Cluster;

const COMPUTED: [&str; 4] = ["cpus_total", "memory_gb", "gpus", "gpus_per_node"];

/// What a cluster block asks for.
struct Ask {
    nodes: u64,
    accelerators: Option<Accelerators>,
    cpus: Option<f64>,
    memory: Option<f64>,
}

impl Ask {
    /// `None` while something is unknown; `Err` lists what is malformed.
    fn parse(v: &Value) -> Result<Option<Ask>, Vec<String>> {
        if ["nodes", "accelerators", "cpus", "memory"].iter().any(|k| v.get(k).is_some_and(Value::is_unknown)) {
            return Ok(None);
        }
        let mut errs = Vec::new();
        let nodes = match set(v, "nodes") {
            None => 1,
            Some(n) => to_u64(n).filter(|n| *n >= 1).unwrap_or_else(|| {
                errs.push(format!("`nodes` must be a whole number of at least 1, got {n}"));
                1
            }),
        };
        let mut field = |name: &str, parse: &dyn Fn(&str) -> Result<f64, String>| {
            str_attr(v, name).and_then(|s| parse(s).map_err(|e| errs.push(format!("`{name}`: {e}"))).ok())
        };
        let cpus = field("cpus", &parse_minimum);
        let memory = field("memory", &parse_minimum);
        let accelerators =
            str_attr(v, "accelerators").and_then(|s| parse_accelerators(s).map_err(|e| errs.push(format!("`accelerators`: {e}"))).ok());
        if errs.is_empty() {
            Ok(Some(Ask { nodes, accelerators, cpus, memory }))
        } else {
            Err(errs)
        }
    }

    /// GPUs of the requested type (all of them without `accelerators`).
    fn matching<'m>(&self, m: &'m Machine) -> Vec<&'m Gpu> {
        m.gpus.iter().filter(|g| self.accelerators.as_ref().is_none_or(|a| gpu_matches(&a.name, &g.name))).collect()
    }

    fn gpus_per_node(&self, m: &Machine) -> u64 {
        match &self.accelerators {
            Some(a) => a.count,
            None => self.matching(m).len() as u64 / self.nodes,
        }
    }

    /// The computed attributes: the machine, and the GPUs this cluster gets.
    fn computed(&self, m: &Machine) -> Map {
        let per = self.gpus_per_node(m);
        let gpus: Vec<Value> = self.matching(m).into_iter().take((per * self.nodes) as usize).map(Gpu::to_value).collect();
        [
            ("cpus_total".to_string(), num(m.cpus)),
            ("memory_gb".to_string(), tenths(m.memory_gb)),
            ("gpus".to_string(), Value::List(gpus)),
            ("gpus_per_node".to_string(), num(per)),
        ]
        .into()
    }

    /// " on 2 nodes (16 in all)", or nothing for one node.
    fn on_nodes(&self, per_node: f64, unit: &str) -> String {
        if self.nodes == 1 {
            String::new()
        } else {
            format!(" on {} nodes ({}{unit} in all)", self.nodes, per_node * self.nodes as f64)
        }
    }

    /// What the machine cannot give, one message each.
    fn shortfalls(&self, address: &str, m: &Machine) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(a) = &self.accelerators {
            let have = self.matching(m).len() as u64;
            if have < a.count * self.nodes {
                let none = if have == 0 && !m.gpus.is_empty() { format!(", none of them {}", a.name) } else { String::new() };
                out.push(format!(
                    "{address} asks for {} x {} per node{}, this machine has {}{none}",
                    a.count,
                    a.name,
                    self.on_nodes(a.count as f64, ""),
                    m.describe_gpus()
                ));
            }
        }
        if let Some(c) = self.cpus.filter(|c| c * self.nodes as f64 > m.cpus as f64) {
            out.push(format!("{address} asks for {c} CPUs per node{}, this machine has {} CPUs", self.on_nodes(c, ""), m.cpus));
        }
        if let Some(g) = self.memory.filter(|g| g * self.nodes as f64 > m.memory_gb) {
            out.push(format!(
                "{address} asks for {g} GiB of memory per node{}, this machine has {} GiB",
                self.on_nodes(g, " GiB"),
                m.memory_gb
            ));
        }
        out
    }
}

fn invalid(errs: Vec<String>) -> Diagnostics {
    errs.into_iter()
        .map(|e| Diagnostic::error("E-LOCAL-CLUSTER", e).hint("write accelerators = \"H100:8\", cpus = \"4+\", memory = \"16+\""))
        .collect()
}

fn capacity(address: &str, msg: String) -> Diagnostic {
    error("E-LOCAL-CAPACITY", address, msg)
        .hint("ask for less (or fewer `nodes`), or run this cluster where the capacity exists, such as `provider = aws`")
}

/// The planned (or new) state: `v`'s attributes with the computed ones for this machine;
/// unknown computed attributes while the request is unknown.
fn described(ctx: &Ctx, address: &str, v: &Value, check: bool) -> Result<Value, Diagnostics> {
    let mut m = attrs(v);
    match Ask::parse(v) {
        Ok(Some(ask)) => {
            let short: Diagnostics = ask.shortfalls(address, ctx.machine()).into_iter().map(|s| capacity(address, s)).collect();
            if check && short.has_errors() {
                return Err(short);
            }
            m.extend(ask.computed(ctx.machine()));
        }
        Ok(None) => m.extend(COMPUTED.iter().map(|k| (k.to_string(), Value::Unknown))),
        Err(errs) => return Err(invalid(errs).with_address(address)),
    }
    Ok(Value::Map(m))
}

#[async_trait]
impl Kind<Ctx, LazyProcs> for Cluster {
    fn name(&self) -> &'static str {
        "cluster"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("Node slots on this machine, with its CPUs, memory and GPUs", crate::schema::cluster()).state_only()
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        Ask::parse(config).err().map(invalid).unwrap_or_default()
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        let planned = described(ctx, req.address, req.proposed, true)?;
        Ok(PlanResponse { planned, requires_replace: Vec::new(), diagnostics: Diagnostics::new() })
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(described(ctx, req.address, req.planned, true)?))
    }

    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(described(ctx, req.address, req.planned, true)?))
    }

    async fn delete(&self, _ctx: &Ctx, _req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        Ok(Diagnostics::new())
    }

    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], _procs: &LazyProcs) -> Outcome<Vec<ReadResult>> {
        Ok(items
            .iter()
            .map(|item| match described(ctx, item.address, item.state, false) {
                Ok(v) => ReadResult::found(v),
                Err(d) => ReadResult { state: Some(item.state.clone()), diagnostics: d },
            })
            .collect())
    }

    async fn recover(&self, _ctx: &Ctx, _req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        // A cluster is a description: an interrupted create left nothing on the machine.
        Ok(ReadResult::gone())
    }

    async fn import(&self, _ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        Err(error("E-LOCAL-IMPORT", req.address, "local clusters cannot be imported: they exist only in kiln's state")
            .hint("declare the cluster and run `kiln apply`")
            .into())
    }
}
