//! The decision benchmark (issue 14): varied requests against the whole shipped catalog, each
//! decision timed alone; prints one JSON line with the median and spread, in microseconds.
//!
//! ```sh
//! cargo run --release -p kiln-place --example bench_decide -- --requests 1000 --rounds 5
//! ```
//!
//! The requests are the same on every run (a fixed-seed generator): accelerator names the
//! catalog has (mostly with a count it offers, sometimes one it does not), CPU-only requests,
//! `cpus`/`memory` bounds, every spot mode, `max_price`, `regions`, `exclude`, data to move
//! and 1 to 4 nodes; some are infeasible and take the error path, as real ones do.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::time::Instant;

use kiln_catalog::Catalog;
use kiln_place::{decide, Candidate, Data, Need, Origin, SpotMode};
use kiln_provider::portable::request::Request;
use kiln_value::{Decimal, Map, Value};

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

fn requests(n: usize) -> Vec<Need> {
    let catalog = Catalog::shipped();
    let offered: Vec<(String, u64)> = catalog
        .rows
        .iter()
        .filter_map(|o| o.accelerator.as_ref().map(|a| (a.name.clone(), a.count)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let regions: Vec<String> = catalog.rows.iter().filter_map(|o| o.region.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut rng = Rng(0x006b_696c_6e2d_3134);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut m = Map::new();
        if !rng.chance(20) {
            let (name, count) = rng.pick(&offered).clone();
            let count = if rng.chance(85) { count } else { *rng.pick(&[1u64, 2, 4, 8]) };
            m.insert("accelerators".into(), Value::from(format!("{name}:{count}")));
        }
        if rng.chance(30) {
            m.insert("cpus".into(), Value::from(format!("{}+", rng.pick(&[2, 4, 8, 16, 32, 64]))));
        }
        if rng.chance(30) {
            m.insert("memory".into(), Value::from(format!("{}+", rng.pick(&[8, 16, 32, 64, 128, 256]))));
        }
        let request = Request::parse(&Value::Map(m)).expect("generated requests parse");
        let mut need = Need::new(request);
        need.nodes = 1 + rng.below(4) as u64;
        need.spot = *rng.pick(&[SpotMode::Never, SpotMode::Always, SpotMode::Auto]);
        if rng.chance(25) {
            need.max_price = Some(Decimal::from(*rng.pick(&[1u32, 5, 20, 40])));
        }
        if rng.chance(20) {
            need.regions = Some((0..1 + rng.below(3)).map(|_| rng.pick(&regions).clone()).collect());
        }
        if rng.chance(10) {
            need.exclude = vec![rng.pick(&["runpod", "lambda", "aws", "us-east-1"]).to_string()];
        }
        if rng.chance(20) {
            let region = rng.pick(&regions).clone();
            need.data = vec![Data {
                name: "bucket.corpus".into(),
                origin: Origin::Cloud { cloud: "aws".into(), region: Some(region) },
                size_gb: Decimal::from(100 * (1 + rng.below(50))),
            }];
        }
        out.push(need);
    }
    out
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let n = arg("--requests", 1000);
    let rounds = arg("--rounds", 5).max(1);
    let catalog = Catalog::shipped();
    let candidates: Vec<Candidate<'_>> = catalog.rows.iter().map(|o| Candidate::new(&o.cloud, o)).collect();
    let needs = requests(n);
    // One untimed pass: the catalog and egress table are parsed, caches warm.
    let feasible = needs.iter().filter(|need| decide(need, &candidates).is_ok()).count();
    let mut times = Vec::with_capacity(n * rounds);
    for _ in 0..rounds {
        for need in &needs {
            let t = Instant::now();
            let d = decide(need, &candidates);
            times.push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(d).ok();
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let median = at(0.5);
    println!(
        "{{\"bench\":\"placement-decisions\",\"requests\":{n},\"rounds\":{rounds},\"candidates\":{},\"feasible\":{feasible},\"median_us\":{median:.1},\"p90_us\":{:.1},\"max_us\":{:.1},\"mean_us\":{mean:.1},\"target_us\":1000,\"met\":{}}}",
        candidates.len(),
        at(0.9),
        at(1.0),
        median < 1000.0
    );
}
