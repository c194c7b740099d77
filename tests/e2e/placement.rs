//! Placement (issue 14) end to end: a cluster that opts in is placed by the optimizer among
//! the configured providers, on the shipped catalog, and launched on moto's AWS API where the
//! plan said; the decision and its price are recorded in state, a later plan keeps them, and
//! `kiln cost` reads them back. A cluster that does not opt in keeps its meaning.

use crate::moto::{exclusive, server, Inspect};
use crate::support::{insta_settings, run, Project, Run};

/// Three aws provider blocks, one per region, all pointed at moto.
const PROVIDERS: &str = r#"
variable "endpoint" {
  type    = string
  default = null
}

provider "aws" {
  region   = "us-east-1"
  endpoint = var.endpoint
}

provider "aws" {
  alias    = "ohio"
  region   = "us-east-2"
  endpoint = var.endpoint
}

provider "aws" {
  alias    = "oregon"
  region   = "us-west-2"
  endpoint = var.endpoint
}
"#;

fn kiln(p: &Project, args: &[&str]) -> Run {
    let endpoint = format!("endpoint={}", server().endpoint());
    let mut all: Vec<&str> = args.to_vec();
    if matches!(args.first(), Some(&("plan" | "apply" | "destroy" | "watch"))) {
        all.extend(["--var", &endpoint]);
    }
    let mut c = p.command(&all);
    crate::aws::aws_env(&mut c);
    run(c)
}

fn state_resource(p: &Project, address: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(p.path().join(".kiln/state.json")).expect("the local state file");
    let state: serde_json::Value = serde_json::from_str(&text).expect("state is JSON");
    state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["address"] == address)
        .cloned()
        .unwrap_or_else(|| panic!("{address} not in {state}"))
}

#[test]
fn a_placed_cluster_goes_to_the_cheapest_region_and_stays_there() {
    let _g = exclusive();
    // Spot T4:1 in the shipped catalog: us-east-2 $0.2022, us-east-1 $0.2069, us-west-2 $0.2422.
    let p = Project::new(&format!(
        "{PROVIDERS}\nresource \"cluster\" \"train\" {{\n  accelerators = \"T4:1\"\n  spot         = true\n  placement {{}}\n}}\n"
    ));
    let plan = kiln(&p, &["plan", "-no-color"]).ok();
    let out = plan.stdout();
    assert!(out.contains("Placement:"), "{out}");
    let chosen = out.lines().find(|l| l.trim_end().ends_with("chosen")).unwrap_or_else(|| panic!("no chosen row:\n{out}"));
    assert!(chosen.contains("aws.ohio") && chosen.contains("us-east-2") && chosen.contains("g4dn.xlarge (spot)"), "{chosen}");
    assert!(chosen.contains("$0.2022"), "{chosen}");
    // The cost line counts the dearest it may launch: its last fallback, g4dn.16xlarge.
    assert!(out.contains("Cost: $0.00/h → $1.03/h (+$1.03/h)"), "{out}");
    let json = crate::plan_view::parsed(&kiln(&p, &["plan", "--json"]).ok().stdout());
    crate::plan_view::conforms("plan-view.schema.json", &json);
    assert_eq!(json["placements"][0]["chosen"]["provider"], "aws.ohio", "{json}");
    assert_eq!(json["cost"]["after"]["usd"], "1.0255", "{json}");
    assert_eq!(json["resource_changes"][0]["cost"]["after"], serde_json::json!({"kind": "hourly", "usd": "1.0255"}));

    kiln(&p, &["apply", "--auto-approve"]).ok();
    // Launched where the plan said, through the AWS API itself.
    let ohio = server().inspect_region("us-east-2");
    let live = ohio.live_of("cluster.train");
    assert_eq!(live.len(), 1, "{:#}", ohio.0);
    assert_eq!(live[0]["type"], "g4dn.xlarge");
    assert_eq!(live[0]["lifecycle"], "spot");
    assert!(server().inspect_region("us-east-1").live_of("cluster.train").is_empty());

    let r = state_resource(&p, "cluster.train");
    assert_eq!(r["provider"], "aws.ohio", "{r}");
    assert_eq!(r["billing"]["hourly"], "0.2022", "{r}");
    assert_eq!(r["billing"]["placement"]["instance_type"], "g4dn.xlarge", "{r}");

    // The same request plans no change, and says it kept the decision.
    let again = kiln(&p, &["plan", "-no-color"]).code_is(0).stdout();
    assert!(again.contains("No changes"), "{again}");
    assert!(again.contains("kept: request unchanged"), "{again}");

    let cost = kiln(&p, &["cost", "--json"]).ok().stdout();
    let cost: serde_json::Value = serde_json::from_str(&cost).expect("cost --json is JSON");
    assert_eq!(cost["resources"][0]["address"], "cluster.train");
    assert_eq!(cost["resources"][0]["hourly"], 0.2022);
    assert!(cost["resources"][0]["offering"].as_str().unwrap().contains("aws.ohio g4dn.xlarge spot, us-east-2"), "{cost}");
    assert_eq!(cost["providers"][0]["provider"], "aws.ohio");

    // Prices move (a negotiated spot price in us-west-2): the running cluster stays where it is
    // until a re-plan is asked for, which shows the move and what it saves.
    p.write(
        "prices.csv",
        "cloud,instance_type,accelerator_name,accelerator_count,vcpus,memory_gib,region,availability_zone,price_hourly,spot_price_hourly\naws,g4dn.xlarge,T4,1,4,16,us-west-2,usw2-az3,0.526,0.1\n",
    );
    let config = std::fs::read_to_string(p.path().join("main.kiln.hcl")).unwrap();
    p.write("main.kiln.hcl", &format!("{config}\ncatalog {{\n  path = \"prices.csv\"\n}}\n"));
    let kept = kiln(&p, &["plan", "-no-color"]).code_is(0).stdout();
    assert!(kept.contains("No changes"), "{kept}");
    let replan = kiln(&p, &["plan", "-no-color", "--replan-placement"]).ok().stdout();
    assert!(replan.contains("will be moved from `aws.ohio` to `aws.oregon` by placement"), "{replan}");
    assert!(replan.contains("moves from aws.ohio g4dn.xlarge ($0.2022/h): saves $0.1022 per hour"), "{replan}");
    kiln(&p, &["apply", "--auto-approve", "--replan-placement"]).ok();
    assert_eq!(server().inspect_region("us-west-2").live_of("cluster.train").len(), 1);
    assert!(server().inspect_region("us-east-2").live_of("cluster.train").is_empty(), "the old cluster is destroyed where it ran");
    assert_eq!(state_resource(&p, "cluster.train")["provider"], "aws.oregon");

    kiln(&p, &["destroy", "--auto-approve"]).ok();
    assert!(server().inspect_region("us-west-2").live_of("cluster.train").is_empty());
}

#[test]
fn an_infeasible_request_names_the_closest_offerings() {
    let _g = exclusive();
    let p = Project::new(&format!("{PROVIDERS}\nresource \"cluster\" \"train\" {{\n  accelerators = \"A100:1\"\n  placement {{}}\n}}\n"));
    let r = kiln(&p, &["plan", "-no-color"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("A100:8") && err.contains("p4d.24xlarge"), "{err}");
    assert!(err.contains("main.kiln.hcl"), "the error points at the block: {err}");
}

#[test]
fn without_placement_a_cluster_keeps_its_provider_whatever_clouds_are_configured() {
    let _g = exclusive();
    let p = Project::new(&format!("{PROVIDERS}\nresource \"cluster\" \"train\" {{\n  nodes = 1\n}}\n"));
    let out = kiln(&p, &["plan", "--json"]).ok().stdout();
    let plan: serde_json::Value = serde_json::from_str(&out).expect("plan --json");
    assert_eq!(plan["resource_changes"][0]["provider"], "local", "{plan}");
}

#[test]
fn placement_never_uses_the_local_provider() {
    let p = Project::new("resource \"cluster\" \"train\" {\n  nodes = 1\n  placement {}\n}\n");
    let err = p.kiln(&["plan", "-no-color"]).code_is(1).stderr();
    assert!(err.contains("E-PLACEMENT-NO-PROVIDER") || err.contains("no configured provider can place"), "{err}");
    assert!(err.contains("never `local`"), "{err}");
}

#[test]
fn a_preference_order_wins_over_price() {
    let _g = exclusive();
    // us-west-2 is the dearest spot region for T4:1, but it comes first.
    let p = Project::new(&format!(
        "{PROVIDERS}\nresource \"cluster\" \"train\" {{\n  accelerators = \"T4:1\"\n  spot         = true\n  placement {{\n    prefer = [\"aws.oregon\", \"aws.ohio\"]\n  }}\n}}\n"
    ));
    let out = kiln(&p, &["plan", "-no-color"]).ok().stdout();
    let chosen = out.lines().find(|l| l.trim_end().ends_with("chosen")).unwrap_or_else(|| panic!("no chosen row:\n{out}"));
    assert!(chosen.contains("aws.oregon"), "{chosen}");
    assert!(!out.contains("| aws  "), "the unlisted provider is not a candidate: {out}");
}

/// A placed spot T4:1 cluster and a job on it whose data is `gb` GB in an S3 bucket of the
/// us-east-1 provider, and 5 GB in a bucket on this machine.
fn with_data(gb: &str) -> String {
    format!(
        r#"{PROVIDERS}
resource "bucket" "corpus" {{
  provider = aws
}}

resource "bucket" "scratch" {{}}

resource "cluster" "train" {{
  accelerators = "T4:1"
  spot         = true
  placement {{}}
}}

resource "job" "train" {{
  cluster = cluster.train
  run     = "python train.py"
  checkpoint {{
    bucket = bucket.corpus
  }}
  data {{
    bucket  = bucket.corpus
    size_gb = {gb}
  }}
  data {{
    bucket  = bucket.scratch
    size_gb = 5
  }}
}}
"#
    )
}

/// The `Placement:` section of a human plan.
fn placement_section(out: &str) -> String {
    let start = out.find("Placement:").unwrap_or_else(|| panic!("no Placement section:\n{out}"));
    let rest = &out[start..];
    rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
}

#[test]
fn a_jobs_data_keeps_the_cluster_in_its_buckets_region() {
    let _g = exclusive();
    // Spot T4:1: us-east-2 $0.2022/h is $0.11 a day cheaper than us-east-1 $0.2069/h, but moving
    // the job's 800 GB there from us-east-1 costs $16 (AWS: $0.02/GB between regions).
    let p = Project::new(&with_data("800"));
    let out = kiln(&p, &["plan", "-no-color"]).ok().stdout();
    let chosen = out.lines().find(|l| l.trim_end().ends_with("chosen")).unwrap_or_else(|| panic!("no chosen row:\n{out}"));
    assert!(chosen.contains("aws ") && chosen.contains("us-east-1") && chosen.contains("$0.2069  $0.00"), "{chosen}");
    let ohio = out.lines().find(|l| l.contains("aws.ohio")).unwrap_or_else(|| panic!("no aws.ohio row:\n{out}"));
    assert!(ohio.contains("$0.2022  $16.00") && ohio.ends_with("-$0.0047/h, +$16.00 egress"), "{ohio}");
    assert!(out.contains("data = 800 GB of bucket.corpus (aws us-east-1), data = 5 GB of bucket.scratch (this machine)"), "{out}");
    assert!(out.contains("note: bucket.scratch is on this machine: moving its 5 GB counts as free"), "{out}");
    insta_settings(&p).bind(|| insta::assert_snapshot!("placement-data-gravity", placement_section(&out)));
    let json = crate::plan_view::parsed(&kiln(&p, &["plan", "--json"]).ok().stdout());
    crate::plan_view::conforms("plan-view.schema.json", &json);
    assert_eq!(json["placements"][0]["chosen"]["egress_usd"], "0", "{json}");
    let provider =
        |a: &str| json["resource_changes"].as_array().unwrap().iter().find(|c| c["address"] == a).map(|c| c["provider"].clone()).unwrap();
    // The job follows its cluster; the buckets it reads stay where they are.
    assert_eq!(
        (provider("job.train"), provider("bucket.corpus"), provider("bucket.scratch")),
        ("aws".into(), "aws".into(), "local".into())
    );

    kiln(&p, &["apply", "--auto-approve", "--target", "cluster.train"]).ok();
    assert_eq!(server().inspect_region("us-east-1").live_of("cluster.train").len(), 1);
    let kept = kiln(&p, &["plan", "-no-color"]).ok().stdout();
    assert!(kept.contains("kept: request unchanged"), "{kept}");

    // 1 GB costs $0.02 to move: another request, decided again, and the cheaper region wins.
    p.write("main.kiln.hcl", &with_data("1"));
    let moved = kiln(&p, &["plan", "-no-color"]).ok().stdout();
    assert!(!moved.contains("kept: request unchanged"), "{moved}");
    assert!(moved.contains("will be moved from `aws` to `aws.ohio` by placement"), "{moved}");
    let chosen = moved.lines().find(|l| l.trim_end().ends_with("chosen")).unwrap_or_else(|| panic!("no chosen row:\n{moved}"));
    assert!(chosen.contains("aws.ohio") && chosen.contains("$0.2022  $0.02"), "{chosen}");

    kiln(&p, &["destroy", "--auto-approve"]).ok();
    assert!(server().inspect_region("us-east-1").live_of("cluster.train").is_empty());
}

/// Apply runs what the plan lists: a placed aws cluster's plan lists the chosen offering and
/// its fallbacks in the same region and market (the cluster's `instance_type_candidates`), the
/// cost line counts the dearest; when EC2 has no capacity for the chosen type, apply launches
/// the first fallback that has, says so, and state records it with its price.
#[test]
fn a_placed_cluster_launches_a_listed_fallback_when_the_chosen_type_has_no_capacity() {
    let _g = exclusive();
    // Spot T4:1 in us-east-2: g4dn.xlarge $0.2022, then g4dn.2xlarge $0.2649, ... 16xlarge $1.0255.
    let p = Project::new(&format!(
        "{PROVIDERS}\nresource \"cluster\" \"train\" {{\n  accelerators = \"T4:1\"\n  spot         = true\n  placement {{\n    providers = [\"aws.ohio\"]\n  }}\n}}\n"
    ));
    let out = kiln(&p, &["plan", "-no-color"]).ok().stdout();
    let fallback = out.lines().find(|l| l.contains("fallback")).unwrap_or_else(|| panic!("no fallback row:\n{out}"));
    assert!(fallback.contains("g4dn.2xlarge (spot)") && fallback.contains("$0.2649"), "{fallback}");
    assert!(out.contains("Cost: $0.00/h → $1.03/h (+$1.03/h)"), "the dearest it may launch: {out}");
    let json = crate::plan_view::parsed(&kiln(&p, &["plan", "--json"]).ok().stdout());
    let fallbacks: Vec<&str> =
        json["placements"][0]["fallbacks"].as_array().into_iter().flatten().filter_map(|f| f["instance_type"].as_str()).collect();
    assert_eq!(fallbacks, ["g4dn.2xlarge", "g4dn.4xlarge", "g4dn.8xlarge", "g4dn.16xlarge"], "{json}");

    server().fault("RunInstances", "InstanceType=g4dn.xlarge", "InsufficientInstanceCapacity", 400, 1);
    let endpoint = format!("endpoint={}", server().endpoint());
    let mut loud = p.command(&["apply", "--auto-approve", "--var", &endpoint]);
    loud.env_remove("KILN_QUIET"); // progress lines on stderr
    crate::aws::aws_env(&mut loud);
    let applied = run(loud).ok();
    assert_eq!(server().faults_left(), 0, "the chosen type was tried first");
    let err = applied.stderr();
    assert!(err.contains("cluster.train: Launched aws.ohio g4dn.2xlarge spot, us-east-2, 1 node at $0.2649/h"), "{err}");
    let ohio = server().inspect_region("us-east-2");
    let live = ohio.live_of("cluster.train");
    assert_eq!(live.len(), 1, "{:#}", ohio.0);
    assert_eq!(live[0]["type"], "g4dn.2xlarge");
    let r = state_resource(&p, "cluster.train");
    assert_eq!(r["attributes"]["instance_type"], "g4dn.2xlarge", "{r}");
    assert_eq!(r["billing"]["hourly"], "0.2649", "{r}");
    assert_eq!(r["billing"]["placement"]["instance_type"], "g4dn.2xlarge", "{r}");

    let again = kiln(&p, &["plan", "-no-color"]).code_is(0).stdout();
    assert!(again.contains("No changes"), "the fallback it runs is kept: {again}");
    kiln(&p, &["destroy", "--auto-approve"]).ok();
    assert!(server().inspect_region("us-east-2").live_of("cluster.train").is_empty());
}

/// A placed spot T4:1 cluster (`regions` limits where it may go), a job on it that writes
/// checkpoints to `bucket.ckpt`, which has no `provider`.
fn with_checkpoints(regions: &str) -> String {
    format!(
        r#"{PROVIDERS}
resource "bucket" "ckpt" {{}}

resource "cluster" "train" {{
  accelerators = "T4:1"
  spot         = true
  placement {{
    regions = {regions}
  }}
}}

resource "job" "train" {{
  cluster = cluster.train
  run     = "python train.py"
  checkpoint {{
    bucket = bucket.ckpt
  }}
}}
"#
    )
}

/// Jobs and buckets follow their cluster: a bucket without `provider` that the jobs of one
/// placed cluster use is created where the cluster goes, after its decision. Once it exists it
/// stays there: a later move of the cluster does not move (destroy) its data.
#[test]
fn a_bucket_the_jobs_use_follows_their_cluster_when_created_and_stays_when_it_moves() {
    let _g = exclusive();
    let p = Project::new(&with_checkpoints(r#"["us-east-1", "us-east-2", "us-west-2"]"#));
    let json = crate::plan_view::parsed(&kiln(&p, &["plan", "--json"]).ok().stdout());
    let provider = |json: &serde_json::Value, a: &str| {
        json["resource_changes"].as_array().unwrap().iter().find(|c| c["address"] == a).map(|c| c["provider"].clone())
    };
    // Spot T4:1 is cheapest in us-east-2 (`aws.ohio`).
    assert_eq!(provider(&json, "cluster.train"), Some("aws.ohio".into()), "{json}");
    assert_eq!(provider(&json, "job.train"), Some("aws.ohio".into()), "{json}");
    assert_eq!(provider(&json, "bucket.ckpt"), Some("aws.ohio".into()), "the bucket follows the cluster: {json}");

    kiln(&p, &["apply", "--auto-approve", "--target", "bucket.ckpt"]).ok();
    let bucket = state_resource(&p, "bucket.ckpt");
    assert_eq!(bucket["provider"], "aws.ohio", "{bucket}");
    let name = bucket["attributes"]["name"].as_str().expect("the bucket's name").to_string();
    assert!(server().inspect().buckets().iter().any(|b| b["name"] == name.as_str()), "created on moto's S3");
    assert_eq!(state_resource(&p, "cluster.train")["provider"], "aws.ohio", "the cluster it depends on was applied first");

    // The cluster moves to us-east-1; the bucket, holding checkpoints, stays where it is.
    p.write("main.kiln.hcl", &with_checkpoints(r#"["us-east-1"]"#));
    let out = kiln(&p, &["plan", "-no-color"]).ok().stdout();
    assert!(out.contains("will be moved from `aws.ohio` to `aws` by placement"), "{out}");
    assert!(!out.contains("bucket.ckpt will be") && !out.contains("bucket.ckpt must be"), "the bucket is not touched: {out}");
    let json = crate::plan_view::parsed(&kiln(&p, &["plan", "--json"]).ok().stdout());
    let ckpt = json["resource_changes"].as_array().unwrap().iter().find(|c| c["address"] == "bucket.ckpt").cloned();
    let ckpt = ckpt.unwrap_or_else(|| panic!("{json}"));
    assert_eq!((ckpt["action"].as_str(), ckpt["provider"].as_str()), (Some("no-op"), Some("aws.ohio")), "{ckpt}");

    kiln(&p, &["destroy", "--auto-approve"]).ok();
    assert!(!server().inspect().buckets().iter().any(|b| b["name"] == name.as_str()), "destroyed where it is");
}

/// [`with_checkpoints`] with a bucket `kiln destroy` may empty and the job's `recovery.strategy`.
fn preemptible(regions: &str, strategy: &str) -> Project {
    let hcl = with_checkpoints(regions)
        .replace("resource \"bucket\" \"ckpt\" {}", "resource \"bucket\" \"ckpt\" {\n  force_destroy = true\n}")
        .replace("  checkpoint {", &format!("  recovery {{\n    strategy = \"{strategy}\"\n  }}\n  checkpoint {{"));
    Project::new(&hcl)
}

/// Applies `p`, takes its cluster's instance back in us-east-2 as spot does, and runs one round
/// of `kiln watch`; its stderr.
fn preempted_in_ohio(p: &Project) -> String {
    kiln(p, &["apply", "--auto-approve"]).ok();
    // Spot T4:1: us-east-2 $0.2022, us-east-1 $0.2069, us-west-2 $0.2422.
    assert_eq!(state_resource(p, "cluster.train")["provider"], "aws.ohio");
    let live = server().inspect_region("us-east-2");
    let first = live.live_of("cluster.train")[0]["id"].as_str().expect("an instance").to_string();
    let reclaim = serde_json::json!({ "instance_id": first, "action": "terminate", "region": "us-east-2" });
    server().request("POST", "/_testbed/spot-interrupt", &reclaim.to_string());
    let err = kiln(p, &["watch", "--once"]).ok().stderr();
    assert!(err.contains("job.train: preemption"), "{err}");
    err
}

/// Issue 15: `recovery.strategy = "next_region"`. A preempted job whose cluster opts into
/// placement starts again on a cluster placed anew outside the region spot took it back in (the
/// next cheapest: us-east-1), and a later plan keeps it there.
#[test]
fn a_preempted_job_with_strategy_next_region_starts_again_in_the_next_cheapest_region() {
    let _g = exclusive();
    let p = preemptible(r#"["us-east-1", "us-east-2", "us-west-2"]"#, "next_region");
    let err = preempted_in_ohio(&p);
    assert!(err.contains("recovery.strategy = \"next_region\"") && err.contains("leaving us-east-2"), "{err}");
    let cluster = state_resource(&p, "cluster.train");
    assert_eq!(cluster["provider"], "aws", "placed again outside us-east-2: {cluster}");
    assert_eq!(cluster["billing"]["placement"]["region"], "us-east-1", "{cluster}");
    let job = state_resource(&p, "job.train");
    assert_eq!((job["provider"].as_str(), job["attributes"]["restarts"].as_i64()), (Some("aws"), Some(1)), "{job}");
    assert_eq!(server().inspect_region("us-east-1").live_of("cluster.train").len(), 1);
    assert!(server().inspect_region("us-east-2").live_of("cluster.train").is_empty());
    // Nothing moves it back: the decision is kept while the request is unchanged.
    kiln(&p, &["plan", "--detailed-exitcode"]).code_is(0);
    kiln(&p, &["destroy", "--auto-approve"]).ok();
}

/// `recovery.strategy = "next_offering"`: the next cheapest offering of the request, which with
/// the placement held to us-east-2 is another instance type there.
#[test]
fn a_preempted_job_with_strategy_next_offering_starts_again_on_the_next_cheapest_offering() {
    let _g = exclusive();
    let p = preemptible(r#"["us-east-2"]"#, "next_offering");
    let err = preempted_in_ohio(&p);
    assert!(err.contains("leaving g4dn.xlarge in us-east-2 (aws.ohio)"), "{err}");
    let cluster = state_resource(&p, "cluster.train");
    assert_eq!((cluster["provider"].as_str(), cluster["billing"]["placement"]["region"].as_str()), (Some("aws.ohio"), Some("us-east-2")));
    assert_ne!(cluster["billing"]["placement"]["instance_type"], "g4dn.xlarge", "{cluster}");
    assert_eq!(state_resource(&p, "job.train")["attributes"]["restarts"], 1);
    assert_eq!(server().inspect_region("us-east-2").live_of("cluster.train").len(), 1);
    kiln(&p, &["plan", "--detailed-exitcode"]).code_is(0);
    kiln(&p, &["destroy", "--auto-approve"]).ok();
}
