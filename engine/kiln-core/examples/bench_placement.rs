//! The placement plan benchmark (issue 14): how much placement adds to a plan. 1,000 `cluster`
//! blocks with varied requests are planned twice over, in-process:
//!
//! - **placed**: each has a `placement` block and no `provider`, so the planner places it among
//!   the configured providers (here one, `benchaws`) before its provider plans it;
//! - **plain**: the same clusters and requests with `provider = benchaws` and no placement.
//!
//! Each is planned `--rounds` times (interleaved, after one untimed warm-up of each) on empty
//! state; the example prints one JSON line with the median times of `kiln_core::plan` (wall
//! clock, and the CPU time of the process's threads, steadier on a shared machine), the same
//! with the configuration's load, and their ratios (target: the placed plan within 2x of the
//! plain one). It allocates with mimalloc, as the CLI does.
//!
//! ```sh
//! cargo run --release -p kiln-core --example bench_placement -- --clusters 1000 --rounds 7
//! ```
//!
//! `benchaws` is a **benchmark provider**, not a real one: it serves `cluster` with the
//! portable request attributes (`accelerators`, `cpus`, `memory`, `nodes`, `spot`,
//! `instance_type`), plans instantly without IO (the planned state is the proposed one), and
//! its `offerings()` answers `Offerings::Catalog { cloud: "aws", regions: None }`, so every
//! decision runs over the whole shipped AWS catalog. It measures the engine's placement
//! overhead (request evaluation, the decision, the chosen provider's body), not a cloud's API.
//!
//! The requests are the same on every run (a fixed-seed generator over the catalog's AWS
//! rows): an accelerator with the count an AWS type has (sometimes a list of two), or CPU-only
//! with `cpus`/`memory` bounds; `spot` never, always or auto where the row has those prices;
//! 1 to 4 nodes; a `regions` list in some placement blocks. Each is checked feasible against
//! the AWS rows, so both plans add every cluster and the placed one has 1,000 placements.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use kiln_catalog::Catalog;
use kiln_core::{NoopHook, PlacementOptions, ProviderRegistry, Providers};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::offerings::{Offering, Offerings, OfferingsResponse};
use kiln_provider::portable::request::Request;
use kiln_provider::{
    async_trait, ApplyResponse, ConfigureRequest, CreateRequest, DeleteRequest, ImportRequest, Provider, ProviderFactory, ReadRequest,
    ReadResponse, ReadResult, RecoverRequest, UpdateRequest,
};
use kiln_schema::{Attribute, Body, KindSchema, ProviderSchema};
use kiln_state::State;
use kiln_value::{Map, Type, Value};

/// The CLI's allocator (`engine/cli/main.rs`): plans allocate many small values.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The benchmark provider's name.
const NAME: &str = "benchaws";

/// The benchmark provider's schema: `cluster` with the portable request attributes.
fn schema() -> ProviderSchema {
    let cluster = Body::new()
        .attr("accelerators", Attribute::optional(Type::Any, "GPUs per node"))
        .attr("cpus", Attribute::optional(Type::Any, "vCPUs per node"))
        .attr("memory", Attribute::optional(Type::Any, "memory per node"))
        .attr("nodes", Attribute::optional(Type::Number, "nodes"))
        .attr("spot", Attribute::optional(Type::Any, "spot"))
        .attr("instance_type", Attribute::optional(Type::String, "the instance type placement chose"))
        .attr("id", Attribute::computed(Type::String, "id"));
    ProviderSchema {
        config: Body::new(),
        kinds: [("cluster".to_string(), KindSchema::new("a benchmark cluster", cluster))].into(),
        data_kinds: Default::default(),
    }
}

/// The benchmark provider: plans without IO, offers the shipped AWS catalog, applies nothing.
struct Bench;

fn refused() -> Diagnostic {
    Diagnostic::error("E-BENCH", "the benchmark provider only plans")
}

#[async_trait]
impl Provider for Bench {
    fn schema(&self) -> ProviderSchema {
        schema()
    }
    async fn offerings(&self) -> OfferingsResponse {
        OfferingsResponse { offerings: Offerings::Catalog { cloud: "aws".into(), regions: None }, diagnostics: Diagnostics::new() }
    }
    async fn create(&self, _req: CreateRequest<'_>) -> ApplyResponse {
        ApplyResponse::error(refused())
    }
    async fn update(&self, _req: UpdateRequest<'_>) -> ApplyResponse {
        ApplyResponse::error(refused())
    }
    async fn delete(&self, _req: DeleteRequest<'_>) -> Diagnostics {
        refused().into()
    }
    async fn read(&self, req: ReadRequest<'_>) -> ReadResponse {
        ReadResponse { results: req.items.iter().map(|i| ReadResult::found(i.state.clone())).collect() }
    }
    async fn recover(&self, _req: RecoverRequest<'_>) -> ReadResult {
        ReadResult::gone()
    }
    async fn import(&self, _req: ImportRequest<'_>) -> ReadResult {
        ReadResult::gone()
    }
}

struct Factory;

#[async_trait]
impl ProviderFactory for Factory {
    fn name(&self) -> &'static str {
        NAME
    }
    fn schema(&self) -> ProviderSchema {
        schema()
    }
    async fn configure(&self, _req: ConfigureRequest) -> Result<Arc<dyn Provider>, Diagnostics> {
        Ok(Arc::new(Bench))
    }
}

/// xorshift64*: a fixed sequence without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// One cluster's request: its attributes as HCL lines, the same value placement reads, and
/// the `placement` block's body.
struct Cluster {
    attrs: Vec<(String, String)>,
    value: Map,
    regions: Option<Vec<String>>,
}

/// An HCL string literal (catalog names have no quotes or escapes).
fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

/// Requests drawn from the AWS rows of the shipped catalog, each feasible there.
fn clusters(n: usize) -> Vec<Cluster> {
    let rows: Vec<&Offering> = Catalog::shipped().cloud("aws").collect();
    let gpus: Vec<&Offering> = rows.iter().copied().filter(|o| o.accelerator.is_some()).collect();
    let cpus: Vec<&Offering> = rows.iter().copied().filter(|o| o.accelerator.is_none()).collect();
    let candidates: Vec<kiln_place::Candidate<'_>> = rows.iter().map(|o| kiln_place::Candidate::new(NAME, o)).collect();
    let mut rng = Rng(0x006b_696c_6e2d_3134);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut c = Cluster { attrs: Vec::new(), value: Map::new(), regions: None };
        let set = |c: &mut Cluster, name: &str, hcl: String, v: Value| {
            c.attrs.push((name.to_string(), hcl));
            c.value.insert(name.into(), v);
        };
        let row = if cpus.is_empty() || rng.chance(80) { *rng.pick(&gpus) } else { *rng.pick(&cpus) };
        match &row.accelerator {
            Some(a) if rng.chance(15) => {
                let other = rng.pick(&gpus).accelerator.as_ref().map(|b| format!("{}:{}", b.name, b.count)).unwrap_or_default();
                let list = [format!("{}:{}", a.name, a.count), other];
                let hcl = format!("[{}]", list.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(", "));
                set(&mut c, "accelerators", hcl, Value::List(list.iter().map(|s| Value::from(s.as_str())).collect()));
            }
            Some(a) => {
                let s = format!("{}:{}", a.name, a.count);
                set(&mut c, "accelerators", quoted(&s), Value::from(s.as_str()));
            }
            None => {
                let s = format!("{}+", row.vcpus);
                set(&mut c, "cpus", quoted(&s), Value::from(s.as_str()));
                if rng.chance(50) {
                    let s = format!("{}+", row.memory_gib.trunc());
                    set(&mut c, "memory", quoted(&s), Value::from(s.as_str()));
                }
            }
        }
        // 0: never (or unset), 1: always, 2: auto; a market the row has a price in.
        let spot = match (row.price_hourly.is_some(), row.spot_price_hourly.is_some()) {
            (true, true) => *rng.pick(&[0u8, 1, 2]),
            (true, false) => *rng.pick(&[0u8, 2]),
            (false, true) => 1,
            (false, false) => continue,
        };
        match spot {
            1 => set(&mut c, "spot", "true".into(), Value::Bool(true)),
            2 => set(&mut c, "spot", quoted("auto"), Value::from("auto")),
            _ if rng.chance(50) => set(&mut c, "spot", "false".into(), Value::Bool(false)),
            _ => {}
        }
        let nodes = 1 + rng.below(4);
        if nodes > 1 || rng.chance(50) {
            set(&mut c, "nodes", nodes.to_string(), Value::from(nodes));
        }
        if rng.chance(20) {
            c.regions = row.region.clone().map(|r| vec![r]);
        }
        if feasible(&c, nodes as u64, spot, &candidates) {
            out.push(c);
        }
    }
    out
}

/// Whether the optimizer finds an offering for the request among the AWS rows.
fn feasible(c: &Cluster, nodes: u64, spot: u8, candidates: &[kiln_place::Candidate<'_>]) -> bool {
    let Ok(request) = Request::parse(&Value::Map(c.value.clone())) else { return false };
    let mut need = kiln_place::Need::new(request);
    need.nodes = nodes;
    need.spot = [kiln_place::SpotMode::Never, kiln_place::SpotMode::Always, kiln_place::SpotMode::Auto][spot as usize];
    need.regions = c.regions.clone();
    kiln_place::decide(&need, candidates).is_ok()
}

/// A configuration of the clusters: `placed` with `placement` blocks, else `provider = benchaws`.
fn config_text(clusters: &[Cluster], placed: bool) -> String {
    let mut s = format!("provider \"{NAME}\" {{}}\n");
    for (i, c) in clusters.iter().enumerate() {
        s += &format!("\nresource \"cluster\" \"c{i}\" {{\n");
        if !placed {
            s += &format!("  provider = {NAME}\n");
        }
        for (k, v) in &c.attrs {
            s += &format!("  {k} = {v}\n");
        }
        if placed {
            match &c.regions {
                Some(r) => {
                    s += &format!("  placement {{\n    regions = [{}]\n  }}\n", r.iter().map(|x| quoted(x)).collect::<Vec<_>>().join(", "))
                }
                None => s += "  placement {}\n",
            }
        }
        s += "}\n";
    }
    s
}

/// Loads the configuration in `dir`; exits on errors.
fn load(dir: &Path) -> kiln_config::Config {
    let (config, d) = kiln_config::load(dir);
    match config {
        Some(c) if !d.has_errors() => c,
        _ => {
            eprintln!("bench_placement: the generated configuration in {} has errors: {d:?}", dir.display());
            std::process::exit(1)
        }
    }
}

/// The CPU time of every thread of this process so far, in seconds (`/proc/self/task/*/schedstat`;
/// 0 off Linux). On a shared machine it varies less than the wall time.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|x| x.parse::<u64>().ok()))
        .sum();
    ns as f64 / 1e9
}

/// One plan on empty state: its wall and CPU time in seconds; exits on errors or a plan that
/// does not add every cluster (and place each, when `placed`).
async fn plan_once(config: &kiln_config::Config, registry: &ProviderRegistry, dir: &Path, n: usize, placed: bool) -> (f64, f64) {
    let state = State::new();
    let providers = Providers::new();
    let cpu = cpu_seconds();
    let t = Instant::now();
    let (plan, d) = kiln_core::plan(kiln_core::PlanRequest {
        config,
        state: &state,
        registry,
        providers: &providers,
        variables: Default::default(),
        mode: kiln_plan::Mode::Normal,
        refresh: true,
        workspace: "default".into(),
        targets: Vec::new(),
        excludes: Vec::new(),
        replace: Vec::new(),
        hook: &NoopHook,
        cwd: dir.to_path_buf(),
        placement: PlacementOptions::default(),
    })
    .await;
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let Some(plan) = plan.filter(|_| !d.has_errors()) else {
        eprintln!("bench_placement: the {} plan failed: {d:?}", if placed { "placed" } else { "plain" });
        std::process::exit(1)
    };
    let adds = plan.changes.iter().filter(|c| c.action == kiln_plan::Action::Create).count();
    let placements = plan.placements.len();
    if adds != n || placements != if placed { n } else { 0 } {
        eprintln!(
            "bench_placement: the {} plan adds {adds} and places {placements} of {n} clusters",
            if placed { "placed" } else { "plain" }
        );
        std::process::exit(1)
    }
    std::hint::black_box(plan);
    (secs, cpu)
}

/// The process's peak resident memory so far, in MiB (`VmHWM`; `None` off Linux).
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len().is_multiple_of(2) {
        (xs[m - 1] + xs[m]) / 2.0
    } else {
        xs[m]
    }
}

fn main() {
    let n = arg("--clusters", 1000).max(1);
    let rounds = arg("--rounds", 7).max(1);
    let clusters = clusters(n);
    let distinct = clusters.iter().map(|c| (c.attrs.clone(), c.regions.clone())).collect::<BTreeSet<_>>().len();
    let root = tempfile::tempdir().expect("a temporary directory");
    let dirs = [("plain", false), ("placed", true)].map(|(name, placed)| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).expect("a case directory");
        std::fs::write(dir.join("main.kiln.hcl"), config_text(&clusters, placed)).expect("the configuration");
        (dir, placed)
    });
    let mut registry = ProviderRegistry::new();
    registry.register(Arc::new(Factory));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");

    // Warm-up: one untimed load and plan of each (the catalog parsed, caches warm); the peak
    // memory after each is the process's high-water mark by then.
    let mut peaks = Vec::new();
    for (dir, placed) in &dirs {
        let config = load(dir);
        rt.block_on(plan_once(&config, &registry, dir, n, *placed));
        peaks.push(peak_mib());
    }
    // Timed rounds, the two cases interleaved so that load on a shared machine hits both.
    let (mut load_s, mut plan_s, mut cpu_s) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for _ in 0..rounds {
        for (i, (dir, placed)) in dirs.iter().enumerate() {
            let t = Instant::now();
            let config = load(dir);
            load_s[i].push(t.elapsed().as_secs_f64());
            let (wall, cpu) = rt.block_on(plan_once(&config, &registry, dir, n, *placed));
            plan_s[i].push(wall);
            cpu_s[i].push(cpu);
        }
    }
    let ms = |xs: &Vec<f64>| median(xs.clone()) * 1e3;
    let (plain, placed) = (ms(&plan_s[0]), ms(&plan_s[1]));
    let (plain_total, placed_total) = (plain + ms(&load_s[0]), placed + ms(&load_s[1]));
    let ratio = placed / plain;
    let (plain_cpu, placed_cpu) = (ms(&cpu_s[0]), ms(&cpu_s[1]));
    let mib = |p: Option<f64>| p.map(|x| format!("{x:.1}")).unwrap_or_else(|| "null".into());
    println!(
        "{{\"bench\":\"placement-plan\",\"provider\":\"{NAME} (benchmark provider: the shipped aws catalog, no IO)\",\"clusters\":{n},\"distinct_requests\":{distinct},\"offerings\":{},\"rounds\":{rounds},\"plain_plan_ms\":{plain:.1},\"placed_plan_ms\":{placed:.1},\"ratio\":{ratio:.2},\"plain_plan_cpu_ms\":{plain_cpu:.1},\"placed_plan_cpu_ms\":{placed_cpu:.1},\"cpu_ratio\":{:.2},\"plain_load_plan_ms\":{plain_total:.1},\"placed_load_plan_ms\":{placed_total:.1},\"ratio_with_load\":{:.2},\"plain_plan_runs_ms\":{:?},\"placed_plan_runs_ms\":{:?},\"peak_mib_after_plain\":{},\"peak_mib_after_placed\":{},\"target_ratio\":2,\"met\":{}}}",
        Catalog::shipped().cloud("aws").count(),
        placed_cpu / plain_cpu,
        placed_total / plain_total,
        plan_s[0].iter().map(|s| (s * 1e4).round() / 10.0).collect::<Vec<_>>(),
        plan_s[1].iter().map(|s| (s * 1e4).round() / 10.0).collect::<Vec<_>>(),
        mib(peaks[0]),
        mib(peaks[1]),
        ratio <= 2.0
    );
}
