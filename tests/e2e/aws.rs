//! The `aws` provider end to end (issue 4): the `kiln` binary against moto's AWS API server
//! (`moto.rs`), results checked through the AWS API itself (boto3), not kiln's state.
//!
//! - `examples/aws-spot-training/` applied, inspected, re-planned as no change, its pool's
//!   capacity changed in place, destroyed leaving nothing behind; a no-change plan reads every
//!   instance with one DescribeInstances call.
//! - Resilience: spot interruptions (cluster and pool) show on the next plan as lost capacity and
//!   the next apply restores it; InsufficientInstanceCapacity falls back to the next candidate
//!   type; throttling and 5xx answers are retried; `kill -9` of an apply mid-create, then
//!   force-unlock and re-apply, leaves exactly the nodes asked for (before and after launch).
//!
//! Every test that uses moto takes [`exclusive`] (serialised, moto reset). moto's state dies with
//! the server, so no test needs to clean up after itself.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use crate::moto::{exclusive, server, tag, Inspect, Inventory, Moto};
use crate::support::{copy_dir, force_unlock_id, repo_root, run, wait_until, Project, Run, Spawned};

/// Safety bound for waiting on a background apply to reach a point; not a speed requirement.
const BOUND: Duration = Duration::from_secs(120);

const EXAMPLE: &str = "examples/aws-spot-training";

/// A project whose `kiln` runs talk to the shared moto server: test credentials, no other AWS_*
/// setting of the caller, and `--var endpoint=...` on the commands that configure providers.
struct AwsProject {
    p: Project,
    moto: &'static Moto,
}

impl std::ops::Deref for AwsProject {
    type Target = Project;
    fn deref(&self) -> &Project {
        &self.p
    }
}

/// A configuration header: the endpoint variable and the provider block.
fn header() -> String {
    "variable \"endpoint\" {\n  type    = string\n  default = null\n}\n\nprovider \"aws\" {\n  region   = \"us-east-1\"\n  endpoint = var.endpoint\n}\n\n"
        .to_string()
}

impl AwsProject {
    /// `body` after [`header`].
    fn new(body: &str) -> Self {
        AwsProject { p: Project::new(&(header() + body)), moto: server() }
    }

    /// A copy of `examples/aws-spot-training`.
    fn example() -> Self {
        let p = Project::empty();
        copy_dir(&repo_root().join(EXAMPLE), p.path(), &[]);
        AwsProject { p, moto: server() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let endpoint = format!("endpoint={}", self.moto.endpoint());
        let mut all: Vec<&str> = args.to_vec();
        if matches!(args.first(), Some(&("plan" | "apply" | "destroy" | "validate" | "watch"))) {
            all.extend(["--var", &endpoint]);
        }
        let mut c = self.p.command(&all);
        aws_env(&mut c);
        c
    }

    fn kiln(&self, args: &[&str]) -> Run {
        run(self.command(args))
    }

    fn spawn(&self, args: &[&str]) -> Spawned {
        let mut c = self.command(args);
        c.env_remove("KILN_QUIET");
        Spawned::start(c)
    }

    fn inspect(&self) -> Inventory {
        self.moto.inspect()
    }

    /// The attributes of `address` in state, from `kiln show --json`.
    fn values(&self, address: &str) -> serde_json::Value {
        let out = self.kiln(&["show", "--json"]).ok().stdout();
        let show: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("show --json is not JSON ({e}): {out}"));
        let resources = show["resources"].as_array().cloned().unwrap_or_default();
        let r = resources.iter().find(|r| r["address"] == address).unwrap_or_else(|| panic!("{address} is not in state: {show}"));
        r["values"].clone()
    }

    fn output_strings(&self, name: &str) -> Vec<String> {
        strings(&self.output_json(name))
    }
}

/// Test credentials and nothing else of the caller's AWS settings (profiles, endpoints, regions).
pub fn aws_env(c: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("AWS_ACCESS_KEY_ID", "test").env("AWS_SECRET_ACCESS_KEY", "test").env("AWS_EC2_METADATA_DISABLED", "true");
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}")).iter().map(|x| x.as_str().expect("string").to_string()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn ids(items: &[&serde_json::Value]) -> Vec<String> {
    sorted(items.iter().map(|i| i["id"].as_str().expect("id").to_string()).collect())
}

/// The API calls `kiln plan --verbose` reports for `provider`, by operation.
fn api_calls(stderr: &str, provider: &str) -> BTreeMap<String, u64> {
    let prefix = format!("{provider}: ");
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&prefix) && l.contains("API call(s):"))
        .unwrap_or_else(|| panic!("no `{provider}: N API call(s): ...` line in:\n{stderr}"));
    line.split_once("API call(s):")
        .expect("calls")
        .1
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let (op, n) = s.trim().rsplit_once(' ').unwrap_or_else(|| panic!("`{s}` in {line}"));
            (op.to_string(), n.parse().unwrap_or_else(|_| panic!("`{s}` in {line}")))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The example

#[test]
fn the_example_applies_matches_the_api_replans_clean_and_destroys_to_nothing() {
    let _g = exclusive();
    let p = AwsProject::example();
    let plan = p.kiln(&["plan", "--detailed-exitcode"]).code_is(2).stdout();
    assert!(plan.contains("Plan: 3 to add, 0 to change, 0 to destroy."), "{plan}");
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.output_json("job_status"), "pending", "no agent runs on moto's instances");

    // Through the AWS API: the bucket, the fleet and its instances, with kiln's tags.
    let aws = p.inspect();
    let uri = p.output_json("checkpoints");
    let bucket_name = uri.as_str().and_then(|u| u.strip_prefix("s3://")).unwrap_or_else(|| panic!("checkpoints = {uri}"));
    let buckets = aws.buckets();
    assert_eq!(buckets.len(), 1, "{buckets:?}");
    let b = buckets[0];
    assert_eq!(b["name"], bucket_name);
    assert_eq!(tag(b, "kiln:address"), Some("bucket.checkpoints"), "{b}");
    assert!(tag(b, "kiln:token").is_some_and(|t| !t.is_empty()), "{b}");
    assert_eq!(tag(b, "project"), Some("kiln-spot-training"), "{b}");
    assert_eq!(b["versioning"], "Enabled");

    let fleets = aws.active_fleets();
    assert_eq!(fleets.len(), 1, "{fleets:?}");
    let f = fleets[0];
    assert_eq!(f["id"], p.output_json("fleet_id"));
    assert_eq!(f["type"], "maintain");
    assert_eq!(f["total"], 4, "the example's capacity: {f}");
    assert_eq!(tag(f, "kiln:address"), Some("spot_pool.workers"), "{f}");
    let token = tag(f, "kiln:token").expect("the fleet carries its create's token").to_string();

    let live = aws.live_of("spot_pool.workers");
    assert_eq!(live.len(), 4, "{:#}", aws.0["instances"]);
    assert_eq!(ids(&live), sorted(p.output_strings("instance_ids")), "state names exactly the instances EC2 runs");
    let types = p.output_strings("instance_types");
    for i in &live {
        assert_eq!(tag(i, "kiln:token"), Some(token.as_str()), "{i}");
        assert_eq!(tag(i, "project"), Some("kiln-spot-training"), "{i}");
        assert_eq!(i["lifecycle"], "spot", "{i}");
        assert!(types.iter().any(|t| i["type"] == t.as_str()), "{i} is one of {types:?}");
        let job = tag(i, "kiln:job").unwrap_or_else(|| panic!("every instance is given the job: {i}"));
        assert!(job.starts_with(&format!("s3://{bucket_name}/kiln/jobs/kiln-train-")), "{job}");
    }
    assert_eq!(aws.live_instances().len(), 4, "nothing else runs");

    // No change, and one DescribeInstances call for the whole refresh.
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
    let r = p.kiln(&["plan", "--verbose", "--detailed-exitcode"]).code_is(0);
    let calls = api_calls(&r.stderr(), "aws");
    assert!(calls.get("DescribeInstances").copied().unwrap_or(0) <= 1, "{calls:?}");
    assert!(calls.contains_key("DescribeFleets"), "the pool was refreshed: {calls:?}");

    // Destroy: no instance running, no fleet active, no bucket, nothing kiln made left over.
    p.kiln(&["destroy", "--auto-approve"]).ok();
    let aws = p.inspect();
    assert_eq!(aws.live_instances(), Vec::<&serde_json::Value>::new());
    assert_eq!(aws.active_fleets(), Vec::<&serde_json::Value>::new());
    assert_eq!(aws.buckets(), Vec::<&serde_json::Value>::new());
    assert_eq!(aws.launch_templates(), Vec::<&serde_json::Value>::new());
    let kilns = |v: Vec<&serde_json::Value>| v.into_iter().filter(|x| tag(x, "kiln:address").is_some()).count();
    assert_eq!(kilns(aws.security_groups()), 0, "{:#}", aws.0["security_groups"]);
    assert_eq!(kilns(aws.key_pairs()), 0, "{:#}", aws.0["key_pairs"]);
    assert_eq!(p.state_list(), Vec::<String>::new());
}

#[test]
fn changing_the_pool_capacity_is_an_in_place_update() {
    let _g = exclusive();
    let p = AwsProject::example();
    p.kiln(&["apply", "--auto-approve"]).ok();
    let fleet_id = p.output_json("fleet_id");

    let plan = p.kiln(&["plan", "--detailed-exitcode", "--var", "workers=6"]).code_is(2).stdout();
    assert!(plan.contains("spot_pool.workers will be updated in place"), "{plan}");
    assert!(plan.contains("~ capacity") && plan.contains("4 -> 6"), "{plan}");
    assert!(plan.contains("job.train must be replaced"), "the job restarts on the new set of nodes: {plan}");
    assert!(plan.contains("Plan: 1 to add, 1 to change, 1 to destroy."), "{plan}");
    p.kiln(&["apply", "--auto-approve", "--var", "workers=6"]).ok();

    let aws = p.inspect();
    let fleets = aws.active_fleets();
    assert_eq!(fleets.len(), 1, "{fleets:?}");
    assert_eq!(fleets[0]["id"], fleet_id, "the same fleet, modified");
    assert_eq!(fleets[0]["total"], 6, "target capacity through the API: {}", fleets[0]);
    assert_eq!(aws.live_of("spot_pool.workers").len(), 6);
    assert_eq!(ids(&aws.live_of("spot_pool.workers")), sorted(p.output_strings("instance_ids")));
    p.kiln(&["plan", "--detailed-exitcode", "--var", "workers=6"]).code_is(0);

    // And back down.
    p.kiln(&["apply", "--auto-approve"]).ok();
    let aws = p.inspect();
    assert_eq!(aws.active_fleets()[0]["total"], 4);
    assert_eq!(aws.live_of("spot_pool.workers").len(), 4);
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

#[test]
fn a_refresh_of_clusters_and_pools_reads_instances_with_one_call() {
    let _g = exclusive();
    let p = AwsProject::new(
        "resource \"cluster\" \"a\" {\n  provider      = aws\n  instance_type = \"t3.micro\"\n  nodes         = 2\n}\n\n\
         resource \"spot_pool\" \"p\" {\n  provider       = aws\n  instance_types = [\"t3.micro\"]\n  capacity       = 2\n}\n",
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.inspect().live_instances().len(), 4);
    let r = p.kiln(&["plan", "--verbose", "--detailed-exitcode"]).code_is(0);
    let calls = api_calls(&r.stderr(), "aws");
    assert!(calls.get("DescribeInstances").copied().unwrap_or(0) <= 1, "{calls:?}");
}

#[test]
fn validate_needs_no_aws_account() {
    let p = Project::empty();
    copy_dir(&repo_root().join(EXAMPLE), p.path(), &[]);
    let mut c = p.command(&["validate"]);
    aws_env(&mut c);
    c.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY");
    let r = run(c);
    assert_eq!(r.code(), 0, "validate of the aws example without credentials or endpoint:\n{}", r.stderr());
}

// ---------------------------------------------------------------------------------------------
// Resilience

#[test]
fn a_spot_interruption_shows_as_lost_capacity_and_the_next_apply_restores_it() {
    let _g = exclusive();
    let p = AwsProject::new(
        "resource \"cluster\" \"train\" {\n  provider      = aws\n  instance_type = \"g5.xlarge\"\n  nodes         = 2\n  spot          = true\n}\n",
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    let before = strings(&p.values("cluster.train")["instance_ids"]);
    assert_eq!(before.len(), 2);
    p.moto.spot_interrupt(&before[1]);

    let plan = p.kiln(&["plan", "--detailed-exitcode"]).code_is(2).stdout();
    assert!(plan.contains("Server.SpotInstanceTermination"), "the lost node and why: {plan}");
    assert!(plan.contains("\"running\" -> \"degraded\""), "{plan}");
    assert!(plan.contains("cluster.train will be updated in place"), "{plan}");
    assert!(plan.contains("Plan: 0 to add, 1 to change, 0 to destroy."), "{plan}");
    p.kiln(&["apply", "--auto-approve"]).ok();

    let aws = p.inspect();
    let live = aws.live_of("cluster.train");
    assert_eq!(live.len(), 2, "{:#}", aws.0["instances"]);
    let ranks: BTreeSet<&str> = live.iter().filter_map(|i| tag(i, "kiln:node")).collect();
    assert_eq!(ranks, BTreeSet::from(["0", "1"]));
    let node0 = live.iter().find(|i| tag(i, "kiln:node") == Some("0")).unwrap();
    assert_eq!(node0["id"], before[0].as_str(), "the surviving node is kept");
    let node1 = live.iter().find(|i| tag(i, "kiln:node") == Some("1")).unwrap();
    assert_ne!(node1["id"], before[1].as_str(), "a replacement");
    assert_eq!(node1["lifecycle"], "spot");
    let gone = aws.instance(&before[1]);
    assert_eq!(gone["state"], "terminated");
    assert_eq!(gone["reason"], "Server.SpotInstanceTermination");
    let after = p.values("cluster.train");
    assert_eq!(after["state"], "running");
    assert_eq!(after["lost"], serde_json::json!([]));
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

/// Issue 15: a job with a `recovery` block whose spot node is reclaimed is started again by
/// `kiln watch` as a preemption: only the lost node is launched again (the healthy one kept), the
/// job replaced, with no one applying.
#[test]
fn kiln_watch_restarts_a_preempted_job_on_a_replacement_for_the_lost_node_only() {
    let _g = exclusive();
    let p = AwsProject::new(
        "resource \"bucket\" \"ckpt\" {\n  provider      = aws\n  force_destroy = true\n}\n\n\
         resource \"cluster\" \"train\" {\n  provider      = aws\n  instance_type = \"g5.xlarge\"\n  nodes         = 2\n  spot          = true\n}\n\n\
         resource \"job\" \"train\" {\n  provider = aws\n  cluster  = cluster.train\n  run      = \"python3 train.py\"\n\n  \
         checkpoint {\n    bucket = bucket.ckpt\n  }\n\n  recovery {\n    max_restarts = 3\n  }\n}\n",
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    let before = strings(&p.values("cluster.train")["instance_ids"]);
    p.moto.spot_interrupt(&before[1]);

    let out = p.kiln(&["watch", "--once"]).ok();
    assert!(out.stderr().contains("job.train: preemption"), "{}", out.stderr());
    let live = p.inspect().live_of("cluster.train").into_iter().map(|i| i["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(live.contains(&before[0]), "the healthy node is kept: {live:?}");
    assert!(!live.contains(&before[1]), "the reclaimed one is replaced: {live:?}");
    assert_eq!(p.values("job.train")["restarts"], 1);
    let json = p.kiln(&["jobs", "events", "job.train", "--json"]).ok().stdout();
    let events = crate::support::job_events(&json);
    assert_eq!(events, [("detected".into(), "preemption".into(), 0), ("relaunched".into(), "preemption".into(), 1)]);
    // The lost job's `finished_at` (when its loss became observable) gives the detection latency.
    let detected: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(detected[0]["latency_ms"].is_u64(), "{json}");
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

/// What state records of `address`'s price (`billing`).
fn billing(p: &Project, address: &str) -> serde_json::Value {
    let state = p.state_json();
    let r = state["resources"].as_array().into_iter().flatten().find(|r| r["address"] == address);
    r.unwrap_or_else(|| panic!("{address} not in {state}"))["billing"].clone()
}

/// Issue 15: `spot = "auto"` within one job. A spot node reclaimed (notice, then terminate) while
/// spot capacity is short: `kiln watch` replaces it on-demand, keeps the healthy spot node and
/// relaunches the job; state says `mixed` and prices the cluster as it may run, never $0. Spot
/// back, the running cluster plans no change; at the job's next restart (the other spot node
/// reclaimed) both nodes go back to spot.
#[test]
fn kiln_watch_heals_an_auto_cluster_on_demand_while_spot_is_short_and_back_on_spot_at_the_next_restart() {
    let _g = exclusive();
    let p = AwsProject::new(
        "resource \"bucket\" \"ckpt\" {\n  provider      = aws\n  force_destroy = true\n}\n\n\
         resource \"cluster\" \"train\" {\n  provider      = aws\n  instance_type = \"g5.xlarge\"\n  nodes         = 2\n  spot          = \"auto\"\n}\n\n\
         resource \"job\" \"train\" {\n  provider = aws\n  cluster  = cluster.train\n  run      = \"python3 train.py\"\n\n  \
         checkpoint {\n    bucket = bucket.ckpt\n  }\n\n  recovery {\n    max_restarts = 3\n  }\n}\n",
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.values("cluster.train")["market"], "spot");
    let first = strings(&p.values("cluster.train")["instance_ids"]);
    let interrupt = |id: &str| {
        p.moto.spot_notice(id);
        p.moto.spot_interrupt(id);
    };
    let lifecycles = |ids: &[String]| -> Vec<serde_json::Value> {
        let aws = p.inspect();
        ids.iter().map(|id| aws.instance(id)["lifecycle"].clone()).collect()
    };
    let hourly = || billing(&p, "cluster.train")["hourly"].clone();

    p.moto.fault("RunInstances", "MarketType=spot", "InsufficientInstanceCapacity", 400, 1000);
    interrupt(&first[1]);
    let out = p.kiln(&["watch", "--once"]).ok();
    assert!(out.stderr().contains("job.train: preemption"), "{}", out.stderr());
    let cluster = p.values("cluster.train");
    let ids = strings(&cluster["instance_ids"]);
    assert_eq!(ids[0], first[0], "the healthy spot node is kept");
    assert_ne!(ids[1], first[1]);
    assert_eq!(lifecycles(&ids), [serde_json::json!("spot"), serde_json::Value::Null], "the lost node came back on-demand");
    assert_eq!(cluster["market"], "mixed");
    assert_eq!(p.values("job.train")["restarts"], 1);
    // g5.xlarge in us-east-1: $1.006 on-demand, $0.4591 spot. The plan could not tell which
    // market the replacement would get: the cluster is priced as it may run, both on-demand.
    assert_eq!(hourly(), "2.012", "{}", billing(&p, "cluster.train"));

    // Spot is back: nothing stops the running job to move it.
    p.moto.clear_faults();
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
    assert_eq!(strings(&p.values("cluster.train")["instance_ids"]), ids);

    // The job's next restart: node 0 reclaimed in its turn; both nodes go back to spot.
    interrupt(&ids[0]);
    p.kiln(&["watch", "--once"]).ok();
    let cluster = p.values("cluster.train");
    let back = strings(&cluster["instance_ids"]);
    assert!(!back.contains(&ids[0]) && !back.contains(&ids[1]), "{back:?} {ids:?}");
    assert_eq!(lifecycles(&back), [serde_json::json!("spot"), serde_json::json!("spot")]);
    assert_eq!(p.inspect().instance(&ids[1])["state"], "terminated", "the on-demand node is gone");
    assert_eq!(cluster["market"], "spot");
    assert_eq!(p.values("job.train")["restarts"], 2);
    assert!(hourly().is_string(), "a price, never null or $0: {}", billing(&p, "cluster.train"));
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

#[test]
fn a_spot_interruption_in_the_example_pool_is_filled_on_demand() {
    let _g = exclusive();
    let p = AwsProject::example();
    p.kiln(&["apply", "--auto-approve"]).ok();
    let before = p.output_strings("instance_ids");
    p.moto.spot_interrupt(&before[0]);

    let plan = p.kiln(&["plan", "--detailed-exitcode"]).code_is(2).stdout();
    assert!(plan.contains("\"active\" -> \"filling\""), "lost capacity shows: {plan}");
    assert!(plan.contains("~ on_demand_target") && plan.contains("0 -> 1"), "the shortfall goes on-demand: {plan}");
    assert!(plan.contains("\"pending\" -> \"lost\""), "the job lost a node: {plan}");
    assert!(plan.contains("Plan: 1 to add, 1 to change, 1 to destroy."), "the job restarts on the healed pool: {plan}");
    p.kiln(&["apply", "--auto-approve"]).ok();

    let aws = p.inspect();
    let live = aws.live_of("spot_pool.workers");
    assert_eq!(live.len(), 4, "capacity restored: {:#}", aws.0["instances"]);
    assert!(!ids(&live).contains(&before[0]));
    assert_eq!(live.iter().filter(|i| i["lifecycle"].is_null()).count(), 1, "one on-demand instance fills the gap");
    assert_eq!(ids(&live), sorted(p.output_strings("instance_ids")));
    assert_eq!(p.output_json("pool_state"), "active");
}

#[test]
fn insufficient_capacity_for_the_first_candidate_falls_back_to_the_next() {
    let _g = exclusive();
    let p = AwsProject::new("resource \"cluster\" \"train\" {\n  provider     = aws\n  accelerators = [\"A100:8\", \"A100-80GB:8\"]\n}\n");
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("\"p4d.24xlarge\""), "the first candidate: {plan}");
    p.moto.fault("RunInstances", "p4d.24xlarge", "InsufficientInstanceCapacity", 400, 1);
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.moto.faults_left(), 0, "the first candidate was tried");

    let aws = p.inspect();
    let live = aws.live_of("cluster.train");
    assert_eq!(live.len(), 1, "{:#}", aws.0["instances"]);
    assert_eq!(live[0]["type"], "p4de.24xlarge", "the next candidate, of the second alternative");
    assert_eq!(p.values("cluster.train")["instance_type"], "p4de.24xlarge");
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

#[test]
fn throttling_and_server_errors_are_retried() {
    let _g = exclusive();
    let p = AwsProject::new(
        "resource \"cluster\" \"train\" {\n  provider      = aws\n  instance_type = \"t3.micro\"\n  nodes         = 2\n}\n",
    );
    p.moto.fault("DescribeInstanceTypes", "", "Throttling", 400, 1);
    p.moto.fault("RunInstances", "", "RequestLimitExceeded", 503, 1);
    p.moto.fault("RunInstances", "", "Unavailable", 503, 1);
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.moto.faults_left(), 0, "every injected error was hit");
    assert_eq!(p.inspect().live_of("cluster.train").len(), 2, "launched once, after the retries");

    // The refresh's batched read is retried too.
    p.moto.fault("DescribeInstances", "", "RequestLimitExceeded", 503, 2);
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
    assert_eq!(p.moto.faults_left(), 0);
}

fn journal_has_pending(p: &Project) -> bool {
    std::fs::read_to_string(p.journal_path()).is_ok_and(|j| j.contains("put_pending"))
}

const FOUR_NODES: &str =
    "resource \"cluster\" \"train\" {\n  provider      = aws\n  instance_type = \"t3.micro\"\n  nodes         = 4\n}\n";

/// Starts `kiln apply` of [`FOUR_NODES`] with the next 4 calls of `action` (whose body contains
/// `matching`) throttled, and `kill -9`s it once its create is pending and the first of those
/// calls has been refused: the kill lands while the create retries that call. The injected
/// faults are dropped afterwards.
fn kill_9_while_retrying(p: &AwsProject, action: &str, matching: &str) {
    p.moto.fault(action, matching, "RequestLimitExceeded", 503, 4);
    let mut apply = p.spawn(&["apply", "--auto-approve"]);
    wait_until(&format!("the create is pending and has called {action}"), BOUND, || {
        (journal_has_pending(p) && p.moto.faults_left() < 4) || !apply.running()
    });
    assert!(apply.running(), "the apply finished before it could be killed:\n{}", apply.stderr_so_far());
    let killed = apply.kill9();
    assert_eq!(killed.code(), -1, "killed by a signal");
    p.moto.clear_faults();
    assert!(journal_has_pending(p), "the pending create is durable");
}

/// The next apply refuses the dead apply's lock and names the command that removes it; then
/// force-unlock and apply again.
fn force_unlock_and_reapply(p: &AwsProject) {
    let r = p.kiln(&["apply", "--auto-approve"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("stale"), "{err}");
    let id = force_unlock_id(&err).unwrap_or_else(|| panic!("no `kiln force-unlock ID` hint in: {err}"));
    p.kiln(&["force-unlock", &id]).ok();
    p.kiln(&["apply", "--auto-approve"]).ok();
}

/// After a re-apply: exactly the four nodes, ranks 0-3, the ones state names, one security
/// group and key pair for the cluster, nothing pending, nothing left to do. Their IDs.
fn exactly_four_nodes(p: &AwsProject) -> Vec<String> {
    let aws = p.inspect();
    let live = aws.live_of("cluster.train");
    assert_eq!(live.len(), 4, "no duplicates: {:#}", aws.0["instances"]);
    assert_eq!(aws.live_instances().len(), 4, "nothing else runs: {:#}", aws.0["instances"]);
    let ranks: BTreeSet<&str> = live.iter().filter_map(|i| tag(i, "kiln:node")).collect();
    assert_eq!(ranks, BTreeSet::from(["0", "1", "2", "3"]));
    assert_eq!(ids(&live), sorted(strings(&p.values("cluster.train")["instance_ids"])));
    let own = |v: Vec<&serde_json::Value>| v.into_iter().filter(|x| tag(x, "kiln:address") == Some("cluster.train")).count();
    assert_eq!(own(aws.security_groups()), 1, "{:#}", aws.0["security_groups"]);
    assert_eq!(own(aws.key_pairs()), 1, "{:#}", aws.0["key_pairs"]);
    assert!(p.state_json().get("pending").and_then(|v| v.as_array()).is_none_or(Vec::is_empty), "no pending creates left");
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
    ids(&live)
}

#[test]
fn kill_9_after_the_instances_launch_then_reapply_adopts_them() {
    let _g = exclusive();
    let p = AwsProject::new(FOUR_NODES);
    // The create's wait for its launched instances is throttled: the kill lands after
    // RunInstances, before the create's answer reaches state.
    kill_9_while_retrying(&p, "DescribeInstances", "instance-id");
    let launched = ids(&p.inspect().live_of("cluster.train"));
    assert_eq!(launched.len(), 4, "the killed create had launched the nodes");
    force_unlock_and_reapply(&p);
    assert_eq!(exactly_four_nodes(&p), launched, "the re-apply adopted the nodes the killed apply launched");
}

#[test]
fn kill_9_before_the_instances_launch_then_reapply_creates_them_once() {
    let _g = exclusive();
    let p = AwsProject::new(FOUR_NODES);
    // RunInstances is throttled: the kill lands once the security group and key pair exist,
    // before any instance does.
    kill_9_while_retrying(&p, "RunInstances", "");
    let aws = p.inspect();
    assert_eq!(aws.live_instances().len(), 0, "{:#}", aws.0["instances"]);
    let made = aws.security_groups().into_iter().filter(|g| tag(g, "kiln:address") == Some("cluster.train")).count();
    assert_eq!(made, 1, "the killed create had made its security group: {:#}", aws.0["security_groups"]);
    force_unlock_and_reapply(&p);
    exactly_four_nodes(&p); // the killed create's security group and key pair were cleaned up
}

/// The state document as the previous release (commit 74722dc, `format_version` 1) wrote it,
/// from a state this release wrote: only the fields that release knew, in its shape.
fn as_previous_release_wrote(state: &serde_json::Value, edit: impl Fn(&str, &mut serde_json::Value)) -> String {
    let pick = |from: &serde_json::Value, keys: &[&str]| -> serde_json::Value {
        serde_json::Value::Object(keys.iter().filter_map(|k| from.get(*k).map(|v| (k.to_string(), v.clone()))).collect())
    };
    let resources: Vec<serde_json::Value> = state["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| {
            let mut r = pick(
                r,
                &["address", "provider", "kind", "attributes", "sensitive_attributes", "dependencies", "tainted", "create_before_destroy"],
            );
            let address = r["address"].as_str().unwrap_or_default().to_string();
            edit(&address, &mut r["attributes"]);
            r
        })
        .collect();
    let doc = serde_json::json!({
        "format_version": 1,
        "kiln_version": "0.1.0",
        "lineage": state["lineage"],
        "serial": state["serial"],
        "resources": resources,
        "pending": [],
        "outputs": state.get("outputs").cloned().unwrap_or(serde_json::json!({})),
    });
    serde_json::to_string_pretty(&doc).unwrap() + "\n"
}

/// Issue 10 (defect 10): before this release, clusters and spot pools opened SSH to 0.0.0.0/0
/// unless told otherwise, and state stored it. New ones get no SSH ingress, but an upgrade of
/// kiln never plans a replacement by itself: a state the previous release wrote, for objects
/// its default made, plans no change (with a warning about the world-open block).
#[test]
fn an_upgrade_plans_no_change_for_objects_made_with_the_old_ssh_default() {
    let _g = exclusive();
    let body = "resource \"cluster\" \"c\" {\n  provider      = aws\n  instance_type = \"t3.micro\"\n}\n\nresource \"spot_pool\" \"p\" {\n  provider       = aws\n  instance_types = [\"t3.micro\"]\n  capacity       = 1\n}\n";
    // What the previous release made from `body`: SSH open to the world.
    let old_default = body.replace("  provider ", "  ssh_cidr = \"0.0.0.0/0\"\n  provider ");
    let p = AwsProject::new(&old_default);
    p.kiln(&["apply", "--auto-approve"]).ok();
    let state = p.state_json();
    for addr in ["cluster.c", "spot_pool.p"] {
        let r = state["resources"].as_array().unwrap().iter().find(|r| r["address"] == addr).unwrap_or_else(|| panic!("{addr}: {state}"));
        assert_eq!(r["attributes"]["ssh_cidr"], "0.0.0.0/0", "{r}");
    }
    std::fs::write(p.state_path(), as_previous_release_wrote(&state, |_, _| {})).unwrap();
    // The user's configuration, unchanged by the upgrade, never named ssh_cidr.
    p.write("main.kiln.hcl", &(header() + body));
    let r = p.kiln(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code(), 0, "an upgrade plans no change:\n{}\n{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains("No changes"), "{}", r.stdout());
    assert!(r.stderr().contains("SSH (port 22) is open to the whole internet"), "a world-open block warns: {}", r.stderr());

    // A new object gets no SSH ingress, and no warning.
    let fresh = AwsProject::new(body);
    let r = fresh.kiln(&["plan"]).ok();
    assert!(!r.stderr().contains("open to the whole internet"), "{}", r.stderr());
    let out = r.stdout();
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(" ssh_cidr ")).map(str::trim).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines.iter().all(|l| l.ends_with("= \"\"")), "no SSH ingress unless asked: {lines:?}");
}

/// Issue 10 (defect 10): the pool's generated private key is sensitive by the schema, and its
/// mark follows the whole-resource reference `cluster = spot_pool.workers` into the job: neither
/// `kiln show` nor `show --json` prints it, and state records the job's `cluster` as sensitive.
#[test]
fn the_pools_private_key_never_shows_through_the_jobs_cluster() {
    let _g = exclusive();
    let p = AwsProject::example();
    p.kiln(&["apply", "--auto-approve"]).ok();
    let state = p.state_json();
    let res = |addr: &str| {
        state["resources"].as_array().unwrap().iter().find(|r| r["address"] == addr).cloned().unwrap_or_else(|| panic!("{addr}"))
    };
    let key = res("spot_pool.workers")["attributes"]["ssh_private_key"].as_str().unwrap_or_default().to_string();
    assert!(key.len() > 40, "kiln made a key pair: {key}");
    let secret = key.lines().nth(1).expect("a PEM body line").to_string();
    let job = res("job.train");
    assert!(job["sensitive_attributes"].as_array().unwrap().iter().any(|s| s == "cluster"), "{job}");
    for args in [
        &["show"][..],
        &["show", "--json"],
        &["state", "show", "job.train"],
        &["state", "show", "spot_pool.workers"],
        &["output"],
        &["output", "--json"],
    ] {
        let r = p.kiln(args).ok();
        assert!(!r.stdout().contains(&secret) && !r.stderr().contains(&secret), "{args:?} prints the private key:\n{}", r.stdout());
    }
    let show: serde_json::Value = serde_json::from_str(&p.kiln(&["show", "--json"]).ok().stdout()).unwrap();
    let train = show["resources"].as_array().unwrap().iter().find(|r| r["address"] == "job.train").cloned().unwrap();
    assert_eq!(
        (&train["values"]["cluster"], &train["sensitive_values"]["cluster"]),
        (&serde_json::json!(null), &serde_json::json!(true)),
        "{train}"
    );
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}
