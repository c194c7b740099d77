//! Data gravity (issue 14) in the planner: the `data` blocks of the jobs on a placed cluster
//! become its need (where each bucket is, by its provider's offerings; how many GB), the
//! decision weighs the egress, the request's digest covers the data so a changed size decides
//! again, and the blocks are checked with errors at their attributes. Against the mock
//! provider answering the shipped catalog's AWS rows in us-east-1 and us-east-2.

// Not every helper of the mock is used here.
#[allow(dead_code)]
mod mock;

use std::collections::BTreeMap;

use kiln_diag::Diagnostics;
use kiln_plan::Placement;
use kiln_provider::offerings::Offerings;
use kiln_state::State;
use kiln_value::Decimal;
use mock::{Fixture, Mock};

/// The mock as an AWS account in two regions; the first is where its buckets are.
fn aws() -> Mock {
    Mock {
        offerings: Some(Offerings::Catalog { cloud: "aws".into(), regions: Some(vec!["us-east-1".into(), "us-east-2".into()]) }),
        ..Mock::default()
    }
}

/// A placed spot T4:1 cluster (us-east-2 $0.2022/h beats us-east-1 $0.2069/h), a bucket on the
/// mock (us-east-1), and whatever `extra` declares.
fn config(extra: &str) -> String {
    format!(
        r#"provider "mock" {{}}

resource "bucket" "corpus" {{
  provider = mock
  name     = "corpus"
}}

resource "cluster" "train" {{
  name         = "train"
  accelerators = "T4:1"
  spot         = true
  placement {{}}
}}
{extra}"#
    )
}

/// A job on the cluster reading `gb` GB of `bucket` (on the mock, named: the mock's registry
/// has no `local` for a following job's default; the e2e tests have jobs that follow).
fn job(name: &str, bucket: &str, gb: &str) -> String {
    format!(
        "\nresource \"job\" \"{name}\" {{\n  provider = mock\n  cluster  = cluster.train\n  data {{\n    bucket  = {bucket}\n    size_gb = {gb}\n  }}\n}}\n"
    )
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A plan's one placement.
trait OnePlacement {
    fn await_placement(self) -> Placement;
}

impl OnePlacement for kiln_plan::Plan {
    fn await_placement(self) -> Placement {
        assert_eq!(self.placements.len(), 1, "{:?}", self.placements);
        self.placements.into_iter().next().unwrap()
    }
}

/// The text a diagnostic's primary label covers, and its `file:line:col`.
fn located(f: &Fixture, d: &kiln_diag::Diagnostic) -> (String, String) {
    let config = f.config();
    let l = d.primary.as_ref().unwrap_or_else(|| panic!("{d:?} has a location"));
    let text = std::fs::read_to_string(f.dir.path().join("main.kiln.hcl")).unwrap()[l.span.range.clone()].to_string();
    let loc = config.sources.location(l.span.file, l.span.range.start);
    (text, loc.rsplit('/').next().unwrap().to_string())
}

fn errors(d: &Diagnostics) -> Vec<&kiln_diag::Diagnostic> {
    d.errors().collect()
}

#[tokio::test]
async fn a_jobs_data_makes_the_bucket_region_win_and_its_size_is_part_of_the_request() {
    let f = Fixture::with_mock(&config(""), aws());
    let none = f.plan(&State::default()).await.await_placement();
    assert_eq!(none.chosen.region.as_deref(), Some("us-east-2"), "without data the cheaper region wins");
    assert_eq!(none.chosen.egress_usd, None);

    f.rewrite(&config(&job("prep", "bucket.corpus", "800")));
    let p = f.plan(&State::default()).await.await_placement();
    // us-east-1: $0.2069 × 24 = $4.97; us-east-2: $0.2022 × 24 + 800 GB × $0.02 = $20.85.
    assert_eq!((p.chosen.region.as_deref(), p.chosen.egress_usd), (Some("us-east-1"), Some(Decimal::ZERO)));
    let east2 = p.alternatives.iter().find(|a| a.offering.region.as_deref() == Some("us-east-2")).expect("us-east-2 is listed");
    assert_eq!((east2.offering.egress_usd, east2.reason.as_str()), (Some(d("16")), "-$0.0047/h, +$16.00 egress"));
    assert!(p.request.ends_with("data = 800 GB of bucket.corpus (aws us-east-1)"), "{}", p.request);
    assert_ne!(p.request_digest, none.request_digest, "the data is part of the request");

    // Another size is another request; the same size written otherwise is the same one.
    f.rewrite(&config(&job("prep", "bucket.corpus", "801")));
    let other = f.plan(&State::default()).await.await_placement();
    assert_ne!(other.request_digest, p.request_digest);
    f.rewrite(&config(&job("prep", "bucket.corpus", "800.0")));
    assert_eq!(f.plan(&State::default()).await.await_placement().request_digest, p.request_digest);
}

#[tokio::test]
async fn the_data_of_every_job_and_block_on_the_cluster_is_summed() {
    let eval = "\nresource \"job\" \"eval\" {\n  provider = mock\n  cluster  = cluster.train\n  data {\n    bucket  = bucket.corpus\n    size_gb = 100\n  }\n  data {\n    bucket  = bucket.corpus\n    size_gb = var.extra_gb\n  }\n}\nvariable \"extra_gb\" {\n  default = 50\n}\n";
    let f = Fixture::with_mock(&config(&format!("{}{eval}", job("prep", "bucket.corpus", "800"))), aws());
    let plan = f.plan(&State::default()).await;
    // The bucket keeps its provider and is planned as itself.
    let bucket = plan.changes.iter().find(|c| c.address.to_string() == "bucket.corpus").unwrap();
    assert_eq!(bucket.provider, "mock");
    let job = plan.changes.iter().find(|c| c.address.to_string() == "job.prep").unwrap();
    assert!(job.after.as_ref().unwrap().get("data").is_none(), "the provider never sees the data block: {:?}", job.after);
    let p = plan.await_placement();
    let east2 = p.alternatives.iter().find(|a| a.offering.region.as_deref() == Some("us-east-2")).expect("us-east-2 is listed");
    // (800 + 100 + 50) GB × $0.02.
    assert_eq!(east2.offering.egress_usd, Some(d("19")));
    assert_eq!(p.request.matches("of bucket.corpus (aws us-east-1)").count(), 3, "{}", p.request);

    // A variable's value is part of the request too.
    let (plan, diags) =
        f.plan_vars(&State::default(), BTreeMap::from([("extra_gb".to_string(), kiln_value::Value::Number(Decimal::from(60)))])).await;
    assert!(!diags.has_errors(), "{diags:?}");
    assert_ne!(plan.unwrap().await_placement().request_digest, p.request_digest);
}

#[tokio::test]
async fn a_recorded_decision_stands_until_the_size_changes() {
    let f = Fixture::with_mock(&config(&job("prep", "bucket.corpus", "800")), aws());
    let state = f.converge(&State::default()).await;
    let again = f.plan(&state).await.await_placement();
    assert!(again.kept, "{again:?}");
    assert_eq!(again.chosen.region.as_deref(), Some("us-east-1"));

    // 1 GB costs $0.02 to move: the cheaper region wins again.
    f.rewrite(&config(&job("prep", "bucket.corpus", "1")));
    let p = f.plan(&state).await.await_placement();
    assert!(!p.kept, "a changed size decides again: {p:?}");
    assert_eq!((p.chosen.region.as_deref(), p.chosen.egress_usd), (Some("us-east-2"), Some(d("0.02"))));
}

#[tokio::test]
async fn data_on_the_owned_hardware_it_is_placed_on_does_not_move() {
    // The mock as owned hardware: its bucket is on it, so placing there moves nothing.
    let owned = Mock {
        offerings: Some(Offerings::Owned(vec![kiln_provider::offerings::Offering {
            cloud: "mock".into(),
            instance_type: "box1".into(),
            accelerator: Some(kiln_provider::offerings::OfferedAccelerator { name: "T4".into(), count: 1, memory_gib: None }),
            vcpus: 8,
            memory_gib: 32.into(),
            region: None,
            zone: None,
            price_hourly: Some(d("0.5")),
            spot_price_hourly: Some(d("0.5")),
            available: Some(1),
        }])),
        ..Mock::default()
    };
    let f = Fixture::with_mock(&config(&job("prep", "bucket.corpus", "800")), owned);
    let p = f.plan(&State::default()).await.await_placement();
    assert_eq!((p.chosen.provider.as_str(), p.chosen.egress_usd), ("mock", Some(Decimal::ZERO)), "the data does not move");
    assert!(p.request.ends_with("data = 800 GB of bucket.corpus (mock)"), "{}", p.request);
}

#[tokio::test]
async fn data_blocks_are_checked_at_their_attributes() {
    let f = Fixture::with_mock(&config(&job("prep", "bucket.corpus", "0")), aws());
    let (_, diags) = f.plan_mode(&State::default(), kiln_plan::Mode::Normal).await;
    let e = errors(&diags);
    assert_eq!(e.len(), 1, "{diags:?}");
    assert!(e[0].summary.contains("`data.size_gb` must be a number of GB above 0, got 0"), "{}", e[0].summary);
    let (text, loc) = located(&f, e[0]);
    assert_eq!(text, "0");
    assert_eq!(loc, "main.kiln.hcl:20:15");
    assert_eq!(e[0].address.as_deref(), Some("job.prep"));

    // Known only at plan: checked when the cluster is placed.
    let f =
        Fixture::with_mock(&config(&format!("{}variable \"gb\" {{\n  default = -5\n}}\n", job("prep", "bucket.corpus", "var.gb"))), aws());
    let (_, diags) = f.plan_mode(&State::default(), kiln_plan::Mode::Normal).await;
    let e = errors(&diags);
    assert!(e.iter().any(|e| e.summary.contains("above 0, got -5") && located(&f, e).0 == "var.gb"), "{diags:?}");

    // Not known at plan: refused, never guessed.
    let f = Fixture::with_mock(&config(&job("prep", "bucket.corpus", "length(bucket.corpus.id)")), aws());
    let (_, diags) = f.plan_mode(&State::default(), kiln_plan::Mode::Normal).await;
    assert!(errors(&diags).iter().any(|e| e.summary.contains("`data.size_gb` must be known at plan time")), "{diags:?}");

    // Not a bucket.
    let f = Fixture::with_mock(&config(&job("prep", "cluster.train", "800")), aws());
    let (_, diags) = f.plan_mode(&State::default(), kiln_plan::Mode::Normal).await;
    let e = errors(&diags);
    let wrong = e.iter().find(|e| e.summary.contains("`data.bucket` must refer to a bucket")).unwrap_or_else(|| panic!("{diags:?}"));
    assert!(wrong.summary.contains("`cluster.train` is not one"), "{}", wrong.summary);
    assert_eq!(located(&f, wrong), ("cluster.train".to_string(), "main.kiln.hcl:19:15".to_string()));

    // An attribute a data block does not take, with what it may have meant.
    let typo = "\nresource \"job\" \"prep\" {\n  provider = mock\n  cluster = cluster.train\n  data {\n    bucket = bucket.corpus\n    size   = 3\n  }\n}\n";
    let f = Fixture::with_mock(&config(typo), aws());
    let (_, diags) = f.plan_mode(&State::default(), kiln_plan::Mode::Normal).await;
    let e = errors(&diags);
    assert!(e.iter().any(|e| e.summary == "unsupported attribute `data.size`"), "{diags:?}");
    assert!(e.iter().any(|e| e.summary == "missing `data.size_gb`"), "{diags:?}");
    assert!(e.iter().any(|e| e.hint.as_deref().is_some_and(|h| h.contains("size_gb"))), "{diags:?}");
}
