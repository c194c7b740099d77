//! `kiln offers` and `kiln catalog` (issue 14): offerings matching a request, cheapest first,
//! from the shipped catalog in a directory without configuration and from the configured
//! providers in one with it (the user's catalog files and discounts included); `--json` checked
//! against `schemas/json/offers-view.schema.json`; `kiln catalog refresh aws` against moto.

use serde_json::Value;

use crate::plan_view::conforms;
use crate::support::Project;

const HEAD: &str =
    "cloud,instance_type,accelerator_name,accelerator_count,vcpus,memory_gib,region,availability_zone,price_hourly,spot_price_hourly\n";

/// `kiln offers ARGS --json` in `p`, checked against its schema.
fn offers_json(p: &Project, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["offers", "--json"];
    all.extend(args);
    let out = p.kiln(&all).ok().stdout();
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    conforms("offers-view.schema.json", &v);
    v.as_array().expect("an array").clone()
}

/// The prices of `rows` in order, unknown as `None`.
fn prices(rows: &[Value]) -> Vec<Option<f64>> {
    rows.iter().map(|r| r["price_hourly"].as_f64()).collect()
}

/// Known prices never fall, and unknown ones come last.
fn cheapest_first(rows: &[Value]) {
    let p = prices(rows);
    let known: Vec<f64> = p.iter().map_while(|x| *x).collect();
    assert!(p[known.len()..].iter().all(Option::is_none), "an unknown price before a known one: {p:?}");
    assert!(known.windows(2).all(|w| w[0] <= w[1]), "not cheapest first: {known:?}");
}

#[test]
fn h100_8_outside_a_configuration_lists_every_clouds_machines_cheapest_first() {
    let p = Project::empty();
    let out = p.kiln(&["offers", "H100:8"]).ok().stdout();
    let line = |ty: &str| out.lines().position(|l| l.contains(ty)).unwrap_or_else(|| panic!("no {ty} in:\n{out}"));
    let (runpod, lambda, aws) = (line("8x_H100-SXM_SECURE"), line("gpu_8x_h100_sxm5"), line("p5.48xlarge"));
    assert!(runpod < lambda && lambda < aws, "cheapest first (runpod, lambda, aws):\n{out}");
    assert!(out.lines().nth(lambda).unwrap().contains("+16 more"), "lambda's 17 regions on one line:\n{out}");
    assert!(out.contains("(no region)"), "{out}");
    assert!(out.contains("--all lists every row"), "{out}");
    assert!(!out.contains("A100") && !out.contains("p5.4xlarge"), "only 8 H100s per machine:\n{out}");
    assert!(out.contains("Prices from:") && out.contains("aws: shipped (skypilot-org/skypilot-catalog"), "{out}");

    let rows = offers_json(&p, &["H100:8"]);
    cheapest_first(&rows);
    for r in &rows {
        assert_eq!(r["accelerator_count"], 8, "{r}");
        assert_eq!(r["spot"], false);
        for key in ["provider", "instance_type", "region", "zone", "accelerator_name", "vcpus", "memory_gib", "price_hourly"] {
            assert!(r.get(key).is_some(), "{key} missing: {r}");
        }
    }
    let types: Vec<&str> = rows.iter().filter_map(|r| r["instance_type"].as_str()).collect();
    for ty in ["gpu_8x_h100_sxm5", "8x_H100-SXM_SECURE", "p5.48xlarge"] {
        assert!(types.contains(&ty), "{ty} missing from {types:?}");
    }
    assert_eq!(rows.len(), types.len());
    let all = p.kiln(&["offers", "H100:8", "--all"]).ok().stdout();
    assert_eq!(all.lines().filter(|l| l.contains("gpu_8x_h100_sxm5")).count(), 17, "--all lists every row:\n{all}");
}

#[test]
fn spot_prices_unknown_ones_last_never_free() {
    let p = Project::empty();
    let rows = offers_json(&p, &["H100:1", "--spot"]);
    cheapest_first(&rows);
    assert!(rows.iter().all(|r| r["spot"] == true));
    // p5.4xlarge has no spot price in the US regions and Lambda has no spot market: unknown.
    let unknown: Vec<&Value> = rows.iter().filter(|r| r["price_hourly"].is_null()).collect();
    assert!(unknown.iter().any(|r| r["instance_type"] == "p5.4xlarge" && r["region"] == "us-east-1"), "{unknown:#?}");
    assert!(rows.iter().all(|r| r["price_hourly"].as_f64() != Some(0.0)), "no price is 0");
    let out = p.kiln(&["offers", "H100:1", "--spot"]).ok().stdout();
    assert!(out.contains("unknown") && !out.contains(" 0.00 "), "{out}");
}

#[test]
fn a_cpu_only_request_lists_no_gpu_machine() {
    let p = Project::empty();
    let rows = offers_json(&p, &["--cpus", "4+", "--memory", "16+"]);
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(r["accelerator_name"].is_null() && r["accelerator_count"].is_null(), "a GPU machine: {r}");
        assert!(r["vcpus"].as_u64().unwrap() >= 4 && r["memory_gib"].as_f64().unwrap() >= 16.0, "{r}");
    }
    cheapest_first(&rows);
}

#[test]
fn region_keeps_rows_without_a_region_marked_and_provider_filters_by_cloud() {
    let p = Project::empty();
    let rows = offers_json(&p, &["H100:8", "--region", "us-east-1"]);
    assert!(rows.iter().all(|r| r["region"] == "us-east-1" || r["region"].is_null()), "{rows:#?}");
    assert!(rows.iter().any(|r| r["provider"] == "runpod" && r["region"].is_null()), "RunPod's rows have no region: {rows:#?}");
    assert!(rows.iter().any(|r| r["provider"] == "aws") && rows.iter().any(|r| r["provider"] == "lambda"));
    let out = p.kiln(&["offers", "H100:8", "--region", "us-east-1"]).ok().stdout();
    let runpod = out.lines().find(|l| l.contains("8x_H100-SXM_SECURE")).unwrap_or_else(|| panic!("{out}"));
    assert!(runpod.ends_with("(no region)"), "{runpod}");

    let rows = offers_json(&p, &["H100:8", "--provider", "lambda"]);
    assert!(!rows.is_empty() && rows.iter().all(|r| r["provider"] == "lambda"));
    let r = p.kiln(&["offers", "H100:8", "--provider", "lamda"]).code_is(1);
    assert!(r.stderr().contains("did you mean `lambda`"), "{}", r.stderr());
}

#[test]
fn bad_requests_are_usage_errors() {
    let p = Project::empty();
    let r = p.kiln(&["offers", "H100x8"]).code_is(1);
    assert!(r.stderr().contains("E-CLI-USAGE") && r.stderr().contains("did you mean H100:8"), "{}", r.stderr());
    let r = p.kiln(&["offers", "--cpus", "lots"]).code_is(1);
    assert!(r.stderr().contains("--cpus") && r.stderr().contains("E-CLI-USAGE"), "{}", r.stderr());
    let r = p.kiln(&["offers", "--memory", "64GB+"]).code_is(1);
    assert!(r.stderr().contains("did you mean 64+"), "{}", r.stderr());
}

#[test]
fn a_broken_user_catalog_names_its_file_line_and_column() {
    let p = Project::new("catalog {\n  path = \"prices.csv\"\n}\n");
    p.write("prices.csv", &format!("# source: ours\n{HEAD}aws,p5.48xlarge,H100,8,192,2048,us-east-1,use1-az5,cheap,\n"));
    let r = p.kiln(&["offers", "H100:8"]).code_is(1);
    assert!(r.stderr().contains("prices.csv:3:52:") && r.stderr().contains("price_hourly"), "{}", r.stderr());
    p.write("main.kiln.hcl", "catalog {\n  path = \"missing.csv\"\n}\n");
    let r = p.kiln(&["catalog"]).code_is(1);
    assert!(r.stderr().contains("`missing.csv`") && r.stderr().contains("main.kiln.hcl:2"), "{}", r.stderr());
}

#[test]
fn catalog_lists_where_each_clouds_rows_come_from() {
    let p = Project::empty();
    let out = p.kiln(&["catalog"]).ok().stdout();
    for cloud in ["aws", "lambda", "runpod"] {
        assert!(out.contains(&format!("{cloud}: shipped (skypilot-org/skypilot-catalog")), "{out}");
    }
    assert_eq!(p.kiln(&["catalog", "sources"]).ok().stdout(), out);
    let p = Project::new("catalog {\n  path = [\"prices.csv\"]\n  discount {\n    cloud   = \"lambda\"\n    percent = 20\n  }\n}\n");
    p.write(
        "prices.csv",
        &format!("# source: our agreement\n# date: 2026-12-01\n{HEAD}lambda,gpu_8x_h100_sxm5,H100,8,208,1800,us-east-1,,20,\n"),
    );
    let out = p.kiln(&["catalog"]).ok().stdout();
    assert!(out.contains("lambda: user prices.csv (our agreement, 2026-12-01), 1 row"), "{out}");
    assert!(out.contains("discount lambda: 20% off"), "{out}");
}

/// AWS test credentials and no other AWS_* setting of the caller.
#[cfg(feature = "aws")]
fn aws_env(c: &mut std::process::Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("AWS_ACCESS_KEY_ID", "test").env("AWS_SECRET_ACCESS_KEY", "test").env("AWS_EC2_METADATA_DISABLED", "true");
}

#[cfg(feature = "aws")]
#[test]
fn with_configuration_the_configured_clouds_rows_with_the_users_prices_and_discounts() {
    let p = Project::new(
        "provider \"aws\" {\n  region = \"us-east-1\"\n}\n\ncatalog {\n  path = \"prices.csv\"\n  discount {\n    cloud         = \"aws\"\n    percent       = 50\n    instance_type = \"p5.48xlarge\"\n  }\n}\n",
    );
    let run = |args: &[&str]| {
        let mut all = vec!["offers", "--json"];
        all.extend(args);
        let mut c = p.command(&all);
        aws_env(&mut c);
        let out = crate::support::run(c).ok().stdout();
        let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
        conforms("offers-view.schema.json", &v);
        v.as_array().unwrap().clone()
    };
    // Shipped: p5.48xlarge is 55.04 in us-east-1; the provider's region only; half off.
    p.write("prices.csv", HEAD);
    let rows = run(&["H100:8"]);
    assert!(rows.iter().all(|r| r["provider"] == "aws" && r["region"] == "us-east-1"), "the configured provider's region only: {rows:#?}");
    let p5: Vec<&Value> = rows.iter().filter(|r| r["instance_type"] == "p5.48xlarge").collect();
    assert_eq!(p5.len(), 1);
    assert_eq!(p5[0]["price_hourly"].as_f64(), Some(27.52), "{rows:#?}");

    // The user's row replaces the shipped one (same zone), then the discount applies; a new
    // type is added, cheaper than everything, so it comes first.
    p.write(
        "prices.csv",
        &format!("{HEAD}aws,p5.48xlarge,H100,8,192,2048,us-east-1,use1-az5,40,\naws,p5.negotiated,H100,8,192,2048,us-east-1,,10,\n"),
    );
    let rows = run(&["H100:8"]);
    cheapest_first(&rows);
    assert_eq!(rows[0]["instance_type"], "p5.negotiated");
    assert_eq!(rows[0]["price_hourly"].as_f64(), Some(10.0), "the discount is for p5.48xlarge only");
    let p5: Vec<&Value> = rows.iter().filter(|r| r["instance_type"] == "p5.48xlarge").collect();
    assert_eq!((p5.len(), p5[0]["price_hourly"].as_f64()), (1, Some(20.0)));
    // Lambda and RunPod have no provider here: not offered.
    assert!(rows.iter().all(|r| r["cloud"] == "aws"));
}

#[cfg(feature = "aws")]
#[test]
fn catalog_refresh_aws_against_moto_writes_the_regions_rows_with_prices_from_the_shipped_catalog() {
    use crate::moto::{exclusive, server};

    let _guard = exclusive();
    let moto = server();
    let p = Project::new(
        "variable \"endpoint\" {\n  type = string\n}\n\nprovider \"aws\" {\n  region   = \"us-east-1\"\n  endpoint = var.endpoint\n}\n",
    );
    let kiln = |args: &[&str]| {
        let endpoint = format!("endpoint={}", moto.endpoint());
        let mut all = args.to_vec();
        all.extend(["--var", &endpoint]);
        let mut c = p.command(&all);
        aws_env(&mut c);
        crate::support::run(c)
    };
    let out = kiln(&["catalog", "refresh", "aws"]).ok().stdout();
    assert!(out.starts_with("Wrote ") && out.contains(" aws rows in 1 region to .kiln/catalog/aws.csv"), "{out}");
    let text = p.read(".kiln/catalog/aws.csv");
    assert!(text.starts_with("# source: EC2 API"), "{text}");
    assert!(text.lines().nth(1).is_some_and(|l| l.starts_with("# date: ")), "{text}");
    let rows: Vec<Vec<&str>> = text.lines().skip(3).map(|l| l.split(',').collect()).collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r[0] == "aws" && r[6] == "us-east-1"), "the provider's region");
    assert!(rows.iter().all(|r| r[8] != "0" && r[9] != "0"), "no price is 0");
    // g5.xlarge's on-demand price is the shipped catalog's (the API gives none).
    let g5 = rows.iter().find(|r| r[1] == "g5.xlarge").unwrap_or_else(|| panic!("no g5.xlarge in:\n{text}"));
    assert_eq!(g5[8], "1.006", "{g5:?}");
    let unpriced = rows.iter().filter(|r| r[8].is_empty()).count();
    assert!(out.contains(&format!("; {unpriced} without an on-demand price")), "{out}");

    // The refreshed rows are the catalog's aws rows in us-east-1 now; other regions keep theirs.
    let sources = kiln(&["catalog", "sources"]).ok().stdout();
    assert!(sources.contains("aws: refreshed .kiln/catalog/aws.csv (EC2 API"), "{sources}");
    let e = Project::empty();
    std::fs::create_dir_all(e.path().join(".kiln/catalog")).unwrap();
    std::fs::write(e.path().join(".kiln/catalog/aws.csv"), &text).unwrap();
    let offered = offers_json(&e, &["A10G:1", "--provider", "aws"]);
    let east: Vec<&Value> = offered.iter().filter(|r| r["region"] == "us-east-1").collect();
    assert!(!east.is_empty() && east.iter().all(|r| r["zone"].as_str().is_some_and(|z| z.starts_with("us-east-1"))), "{east:#?}");
    assert!(offered.iter().any(|r| r["region"] == "us-west-2"), "the shipped rows of other regions stay");
}
