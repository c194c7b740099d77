//! `cluster`: `nodes` slots on this machine. Its computed attributes describe what the machine
//! really has (CPUs, memory) and which GPUs the cluster gets; a request the machine cannot
//! satisfy (`accelerators`, `cpus`, `memory`, for all nodes together) fails at plan time,
//! saying what was asked and what exists. Nothing exists outside state, so read re-describes
//! the machine and recover finds nothing.
//!
//! Requests follow the portable grammar ([`kiln_provider::portable::request`]). `cpus = "4"`
//! gives each node exactly 4 CPUs of its own: node `i` gets the CPUs `4i` to `4i+3` of those
//! kiln may use (`cpu_sets`, positions in that list; a job's node runs on them, set with
//! taskset) and `cpus_per_node` is 4; `cpus = "4+"` (or none) lets
//! the nodes share the machine: `cpus_per_node` is their share, at least 4, and `cpu_sets` is
//! empty. Memory is checked, for all nodes together, not enforced. `accelerators` alternatives
//! are tried in order; the first the machine has enough of is given.
//!
//! A state written before the grammar was shared (no `cpus_per_node`) keeps the meaning it was
//! written with while its requests are unchanged: `cpus` and `memory` are minimums, GPU names
//! match by words ("A100" matched an 80 GB A100), and nothing new is recorded, so it plans no
//! change.
//!
//! `created_at` is when the create ran; a plan keeps the prior's (none in a state written
//! before kiln recorded it: such a cluster shows no uptime, and plans no change).

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::portable::accelerators::matches_by_words;
use kiln_provider::portable::request::{self, Accelerator, Request, CPUS_PER_NODE};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, UpdateRequest,
};
use kiln_value::{Map, Value};

use crate::machine::{Gpu, Machine};
use crate::schema::CREATED_AT;
use crate::util::{attrs, error, now, num, tenths};
use crate::{Ctx, Kind, KindSchema, LazyProcs, Outcome};

pub(crate) struct Cluster;

const COMPUTED: [&str; 6] = ["cpus_total", "memory_gb", "gpus", "gpus_per_node", CPUS_PER_NODE, "cpu_sets"];
/// What only states written by this grammar record.
const NEW: [&str; 2] = [CPUS_PER_NODE, "cpu_sets"];

/// What a cluster block asks for.
struct Ask {
    nodes: u64,
    request: Request,
    /// Read with the meaning of a state written before the shared grammar (see the module).
    before: bool,
}

impl Ask {
    /// `None` while something is unknown; `Err` lists what is malformed.
    fn parse(v: &Value, before: bool) -> Result<Option<Ask>, Diagnostics> {
        if ["nodes"].iter().any(|k| v.get(k).is_some_and(Value::is_unknown)) || Request::is_unknown(v) {
            return Ok(None);
        }
        let (nodes, request) = request::nodes_and_request(v, "E-LOCAL-CLUSTER")?;
        Ok(Some(Ask { nodes, request, before }))
    }

    fn gpu_is(&self, a: &Accelerator, g: &Gpu) -> bool {
        if self.before {
            matches_by_words(&a.name.written, &g.name)
        } else {
            a.matches(&g.name, None)
        }
    }

    fn count(&self, a: &Accelerator, m: &Machine) -> u64 {
        m.gpus.iter().filter(|g| self.gpu_is(a, g)).count() as u64
    }

    /// The alternative the machine gives: the first it has enough of, else the first.
    fn chosen(&self, m: &Machine) -> Option<&Accelerator> {
        let alts = self.request.accelerators.as_deref()?;
        alts.iter().find(|a| self.count(a, m) >= a.count * self.nodes).or(alts.first())
    }

    /// GPUs of the requested type (all of them without `accelerators`).
    fn matching<'m>(&self, m: &'m Machine) -> Vec<&'m Gpu> {
        let chosen = self.chosen(m);
        m.gpus.iter().filter(|g| chosen.is_none_or(|a| self.gpu_is(a, g))).collect()
    }

    fn gpus_per_node(&self, m: &Machine) -> u64 {
        match self.chosen(m) {
            Some(a) => a.count,
            None => self.matching(m).len() as u64 / self.nodes,
        }
    }

    /// CPUs each node gets, and their affinity sets (empty when the nodes share the machine).
    fn cpus(&self, m: &Machine) -> (u64, Vec<Value>) {
        match self.request.cpus.filter(|c| !c.at_least) {
            Some(c) => {
                let n = c.value.ceil() as u64;
                let sets = (0..self.nodes).map(|i| Value::from(format!("{}-{}", i * n, (i + 1) * n - 1))).collect();
                (n, sets)
            }
            None => ((m.cpus / self.nodes).max(1), Vec::new()),
        }
    }

    /// The computed attributes: the machine, and the GPUs this cluster gets.
    fn computed(&self, m: &Machine) -> Map {
        let per = self.gpus_per_node(m);
        let gpus: Vec<Value> = self.matching(m).into_iter().take((per * self.nodes) as usize).map(Gpu::to_value).collect();
        let mut out: Map = [
            ("cpus_total".to_string(), num(m.cpus)),
            ("memory_gb".to_string(), tenths(m.memory_gb)),
            ("gpus".to_string(), Value::List(gpus)),
            ("gpus_per_node".to_string(), num(per)),
        ]
        .into();
        if !self.before {
            let (cpus, sets) = self.cpus(m);
            out.insert(CPUS_PER_NODE.into(), num(cpus));
            out.insert("cpu_sets".into(), Value::List(sets));
        }
        out
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
        if let Some(a) = self.chosen(m) {
            let have = self.count(a, m);
            if have < a.count * self.nodes {
                let alts = self.request.accelerators.as_deref().unwrap_or_default();
                let named: Vec<&str> = alts.iter().map(|a| a.name.name()).collect();
                let none = if have == 0 && !m.gpus.is_empty() { format!(", none of them {}", named.join(" or ")) } else { String::new() };
                let what = alts.iter().map(|a| format!("{} x {}", a.count, a.name.name())).collect::<Vec<_>>().join(" or ");
                out.push(format!(
                    "{address} asks for {what} per node{}, this machine has {}{none}",
                    self.on_nodes(a.count as f64, ""),
                    m.describe_gpus()
                ));
            }
        }
        if let Some(c) = self.request.cpus.map(|c| c.value).filter(|c| c * self.nodes as f64 > m.cpus as f64) {
            out.push(format!("{address} asks for {c} CPUs per node{}, this machine has {} CPUs", self.on_nodes(c, ""), m.cpus));
        }
        if let Some(g) = self.request.memory.map(|g| g.value).filter(|g| g * self.nodes as f64 > m.memory_gb) {
            out.push(format!(
                "{address} asks for {g} GiB of memory per node{}, this machine has {} GiB",
                self.on_nodes(g, " GiB"),
                m.memory_gb
            ));
        }
        out
    }
}

fn capacity(address: &str, msg: String) -> Diagnostic {
    error("E-LOCAL-CAPACITY", address, msg)
        .hint("ask for less (or fewer `nodes`), or run this cluster where the capacity exists, such as `provider = aws`")
}

/// Whether `v` (a planned value or a state) was written before the shared grammar.
fn written_before(v: &Value) -> bool {
    v.get(CPUS_PER_NODE).is_none_or(Value::is_null)
}

/// The planned (or new) state: `v`'s attributes with the computed ones for this machine;
/// unknown computed attributes while the request is unknown. `before`: see [`Ask::before`].
fn described(ctx: &Ctx, address: &str, v: &Value, check: bool, before: bool) -> Result<Value, Diagnostics> {
    let mut m = attrs(v);
    match Ask::parse(v, before) {
        Ok(Some(ask)) => {
            let short: Diagnostics = ask.shortfalls(address, ctx.machine()).into_iter().map(|s| capacity(address, s)).collect();
            if check && short.has_errors() {
                return Err(short);
            }
            m.extend(ask.computed(ctx.machine()));
        }
        Ok(None) => m.extend(COMPUTED.iter().map(|k| (k.to_string(), Value::Unknown))),
        Err(errs) => return Err(errs.with_address(address)),
    }
    if before {
        for k in NEW {
            m.remove(k);
        }
    }
    Ok(Value::Map(m))
}

/// A plan keeps a prior's meaning when the prior was written before the grammar and the
/// request is unchanged.
fn plan_before(req: &PlanRequest<'_>) -> bool {
    req.prior.is_some_and(|p| written_before(p) && request::unchanged(p, req.proposed))
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
        Ask::parse(config, false).err().unwrap_or_default()
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        let mut planned = described(ctx, req.address, req.proposed, true, plan_before(req))?;
        if let (Value::Map(m), Some(prior)) = (&mut planned, req.prior) {
            // An update keeps when the cluster was made (a prior without it: still none).
            match prior.get(CREATED_AT) {
                Some(t) => m.insert(CREATED_AT.into(), t.clone()),
                None => m.remove(CREATED_AT),
            };
        }
        Ok(PlanResponse { planned, requires_replace: Vec::new(), diagnostics: Diagnostics::new() })
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        let mut made = described(ctx, req.address, req.planned, true, written_before(req.planned))?;
        if let Value::Map(m) = &mut made {
            m.insert(CREATED_AT.into(), Value::from(now()));
        }
        Ok(ApplyResponse::ok(made))
    }

    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(described(ctx, req.address, req.planned, true, written_before(req.planned))?))
    }

    async fn delete(&self, _ctx: &Ctx, _req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        Ok(Diagnostics::new())
    }

    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], _procs: &LazyProcs) -> Outcome<Vec<ReadResult>> {
        Ok(items
            .iter()
            .map(|item| match described(ctx, item.address, item.state, false, written_before(item.state)) {
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
