//! The optimizer on the shipped catalog: choices, markets, constraints, fallbacks,
//! alternatives, notes and the errors of requests nothing satisfies.

mod common;

use common::{aws_data, clouds, d, need, owned, request, shipped};
use kiln_catalog::matching::admits;
use kiln_place::{decide, Avoid, Candidate, Data, Need, Origin, SpotMode};

#[test]
fn h100_8_takes_the_cheapest_of_lambda_runpod_and_aws() {
    let all = clouds(&["aws", "lambda", "runpod"]);
    let n = need("H100:8");
    let dec = decide(&n, &all).unwrap();
    // RunPod's 8x H100-SXM at $26.32/h beats Lambda's $31.92/h and AWS's p5.48xlarge at $55.04/h.
    assert_eq!((dec.chosen.cloud.as_str(), dec.chosen.instance_type.as_str()), ("runpod", "8x_H100-SXM_SECURE"));
    assert_eq!(dec.chosen.price_hourly, d("26.32"));
    assert!(!dec.chosen.spot);
    assert_eq!(dec.chosen.accelerators.as_deref(), Some("H100-SXM:8"));
    // Lambda lists its type in 17 regions at one price: one alternative says it.
    let lambda: Vec<_> = dec.alternatives.iter().filter(|a| a.offering.cloud == "lambda").collect();
    assert_eq!(lambda.len(), 1, "{:#?}", dec.alternatives);
    assert_eq!(lambda[0].reason, "+$5.60/h");
    let p5 = dec.alternatives.iter().find(|a| a.offering.instance_type == "p5.48xlarge").expect("AWS's p5 is an alternative");
    assert_eq!(p5.reason, "+$28.72/h");
    // The alternatives come cheapest first.
    let prices: Vec<_> = dec.alternatives.iter().map(|a| a.offering.price_hourly).collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    // Each of the three alone gives its own cheapest.
    for (cloud, ty, price) in
        [("lambda", "gpu_8x_h100_sxm5", "31.92"), ("aws", "p5.48xlarge", "55.04"), ("runpod", "8x_H100-SXM_SECURE", "26.32")]
    {
        let dec = decide(&n, &clouds(&[cloud])).unwrap();
        assert_eq!((dec.chosen.instance_type.as_str(), dec.chosen.price_hourly), (ty, d(price)), "{cloud}");
    }
}

#[test]
fn spot_always_never_and_auto() {
    let all = shipped();
    let mut n = need("H100:8");

    n.spot = SpotMode::Never;
    let never = decide(&n, &all).unwrap();
    assert_eq!((never.chosen.instance_type.as_str(), never.chosen.spot), ("8x_H100-SXM_SECURE", false));

    n.spot = SpotMode::Always;
    let always = decide(&n, &all).unwrap();
    // p5.48xlarge spot in us-east-1 at $14.246/h, with the zone the price is for.
    assert_eq!((always.chosen.instance_type.as_str(), always.chosen.region.as_deref()), ("p5.48xlarge", Some("us-east-1")));
    assert!(always.chosen.spot);
    assert_eq!(always.chosen.price_hourly, d("14.246"));
    assert_eq!(always.chosen.zone.as_deref(), Some("use1-az5"));
    assert!(always.alternatives.iter().all(|a| a.offering.spot), "spot = true lists spot prices only");
    assert!(always.notes.contains(&"17 offerings skipped: no spot price (spot = true)".to_string()), "{:?}", always.notes);

    n.spot = SpotMode::Auto;
    let auto = decide(&n, &all).unwrap();
    assert_eq!(auto.chosen, always.chosen, "auto takes the spot price where it is cheaper");
    let lambda = auto.alternatives.iter().find(|a| a.offering.cloud == "lambda").expect("Lambda is an alternative");
    assert!(!lambda.offering.spot);
    assert!(lambda.reason.ends_with("on-demand (no spot offered)"), "{}", lambda.reason);
    // After the spot fallbacks, the chosen type on-demand.
    let last = auto.fallbacks.last().expect("a fallback");
    assert_eq!((last.instance_type.as_str(), last.region.as_deref(), last.spot), ("p5.48xlarge", Some("us-east-1"), false));
    assert_eq!(last.price_hourly, d("55.04"));
    assert!(auto.notes.is_empty(), "auto skips nothing for want of a spot price: {:?}", auto.notes);
}

#[test]
fn max_price_below_everything_names_the_cheapest_price() {
    let all = shipped();
    let mut n = need("H100:8");
    n.max_price = Some(d("10"));
    let err = decide(&n, &all).unwrap_err();
    assert!(err.summary.contains("max_price $10.00/h"), "{}", err.summary);
    assert!(err.summary.contains("8x_H100-SXM_SECURE (runpod, $26.32/h)"), "{}", err.summary);
    assert_eq!(err.hints[0], "raise max_price to at least $26.32 (per node-hour)");
    assert_eq!(err.closest[0].price_hourly, Some(d("26.32")));
    assert_eq!(err.diagnostic().code, "E-PLACEMENT");
    assert!(err.to_string().contains("hint: raise max_price"), "{err}");

    // With room for a spot price, the error says spot would fit.
    n.max_price = Some(d("20"));
    let err = decide(&n, &all).unwrap_err();
    assert!(
        err.hints.iter().any(|h| h.contains("spot = \"auto\"") && h.contains("p5.48xlarge") && h.contains("$14.25/h")),
        "{:?}",
        err.hints
    );
    n.spot = SpotMode::Auto;
    let dec = decide(&n, &all).unwrap();
    assert!(dec.chosen.price_hourly <= d("20"));
    assert!(dec.fallbacks.iter().all(|f| f.price_hourly <= d("20")), "the on-demand version above max_price is no fallback");
    assert!(dec.notes.iter().any(|x| x.ends_with("skipped: above max_price $20.00/h")), "{:?}", dec.notes);
}

#[test]
fn regions_filter_and_runpod_rows_pass_any() {
    let all = shipped();
    let mut n = need("H100:8");
    n.regions = Some(vec!["eu-west-1".into()]);
    // Neither Lambda nor AWS lists H100:8 in eu-west-1; RunPod's rows have no region.
    let dec = decide(&n, &all).unwrap();
    assert_eq!(dec.chosen.cloud, "runpod");
    assert!(
        dec.alternatives.iter().all(|a| a.offering.region.is_none() || a.reason.contains("placement.regions")),
        "{:#?}",
        dec.alternatives
    );

    n.regions = Some(vec!["us-west-2".into()]);
    n.exclude = vec!["runpod".into()];
    let dec = decide(&n, &all).unwrap();
    assert_eq!((dec.chosen.cloud.as_str(), dec.chosen.region.as_deref()), ("lambda", Some("us-west-2")));
    assert!(dec.alternatives.iter().all(|a| a.offering.cloud != "runpod" || a.reason.contains("excluded")));

    // A region nobody offers H100:8 in, with RunPod excluded: the error says where it is.
    n.regions = Some(vec!["eu-west-1".into()]);
    let err = decide(&n, &all).unwrap_err();
    assert!(err.summary.starts_with("H100:8 is offered, but not where placement allows:"), "{}", err.summary);
    assert!(err.hints.iter().any(|h| h == "remove \"runpod\" from placement.exclude"), "{:?}", err.hints);
}

#[test]
fn a100_1_on_aws_is_infeasible_and_names_p4d() {
    let err = decide(&need("A100:1"), &clouds(&["aws"])).unwrap_err();
    assert_eq!(err.summary, "A100:1 is not offered by any configured provider; A100:8 is: p4d.24xlarge (aws, us-east-2, $21.96/h)");
    assert_eq!(err.hints[0], "ask for accelerators = \"A100:8\" per node");
    assert_eq!(err.closest[0].reason, "A100:8 offered, A100:1 asked");
    // Through a provider filter over every cloud, the closest is Lambda's, left out by it.
    let mut n = need("A100:1");
    n.providers = Some(vec!["aws".into()]);
    let err = decide(&n, &shipped()).unwrap_err();
    assert!(err.summary.starts_with("A100:1 is offered, but not where placement allows: gpu_1x_a100 (lambda,"), "{}", err.summary);
    assert_eq!(err.hints, ["add \"lambda\" to placement.providers"]);
    assert_eq!(err.closest[0].reason, "provider not in placement.providers");
    // Lambda has it.
    let dec = decide(&need("A100:1"), &shipped()).unwrap();
    assert_eq!(dec.chosen.cloud, "lambda");
}

#[test]
fn a10_matches_aws_a10g() {
    let dec = decide(&need("A10:1"), &clouds(&["aws"])).unwrap();
    assert_eq!(dec.chosen.instance_type, "g5.xlarge");
    assert_eq!(dec.chosen.accelerators.as_deref(), Some("A10G:1"));
    // us-east-1 and us-east-2 price it alike: the region order decides.
    assert_eq!(dec.chosen.region.as_deref(), Some("us-east-1"));
    // Against Lambda's A10 too, the cheaper AWS row wins.
    let dec = decide(&need("A10:1"), &shipped()).unwrap();
    assert_eq!(dec.chosen.instance_type, "g5.xlarge");
    assert!(dec.alternatives.iter().any(|a| a.offering.instance_type == "gpu_1x_a10"));
}

#[test]
fn cpu_only_requests_never_get_a_gpu() {
    let all = shipped();
    for (cpus, mem) in [(Some("4+"), None), (None, Some("16+")), (Some("2+"), Some("8+")), (Some("96+"), None)] {
        let n = Need::new(request("", cpus, mem));
        let dec = decide(&n, &all).unwrap();
        let every = std::iter::once(&dec.chosen).chain(&dec.fallbacks).chain(dec.alternatives.iter().map(|a| &a.offering));
        for p in every {
            assert_eq!(p.accelerators, None, "{cpus:?} {mem:?}: {} has GPUs", p.instance_type);
        }
    }
    // Only GPU machines offered: no CPU-only placement.
    let err = decide(&Need::new(request("", Some("4+"), None)), &clouds(&["runpod"])).unwrap_err();
    assert_eq!(err.summary, "no configured provider offers a CPU-only machine with cpus = \"4+\"");
}

#[test]
fn owned_hardware_counts_free_machines() {
    let host = owned("dgx-h100", Some(("H100", 8)), 224, 2048, 1, Some("0"));
    let mut all = shipped();
    all.push(Candidate::new("onprem", &host));
    let mut n = need("H100:8");
    let dec = decide(&n, &all).unwrap();
    assert_eq!((dec.chosen.provider.as_str(), dec.chosen.price_hourly), ("onprem", d("0")), "free owned hardware wins");

    n.nodes = 2;
    let dec = decide(&n, &all).unwrap();
    assert_eq!(dec.chosen.cloud, "runpod", "one free machine cannot hold 2 nodes");
    assert_eq!(dec.chosen.nodes, 2);
    assert!(dec.notes.contains(&"1 offering skipped: fewer than 2 free machines".to_string()), "{:?}", dec.notes);

    let only = [Candidate::new("onprem", &host)];
    let err = decide(&n, &only).unwrap_err();
    assert!(err.summary.starts_with("no owned hardware has 2 free machines for H100:8"), "{}", err.summary);
    assert_eq!(err.hints, ["lower nodes to 1, or free machines"]);
}

#[test]
fn a_node_may_take_part_of_a_free_owned_machine() {
    // Free owned capacity: 8 GPUs, 224 CPUs, 2 TiB on one host; a node asking for 2 of its GPUs
    // and fewer CPUs and less memory than it has takes part of it (priced as the whole row).
    let host = owned("dgx-h100", Some(("H100", 8)), 224, 2048, 1, Some("0"));
    let only = [Candidate::new("onprem", &host)];
    let dec = decide(&Need::new(request("H100:2", Some("16"), Some("64"))), &only).unwrap();
    assert_eq!((dec.chosen.provider.as_str(), dec.chosen.instance_type.as_str()), ("onprem", "dgx-h100"));
    let err = decide(&Need::new(request("H100:16", None, None)), &only).unwrap_err();
    assert!(err.summary.contains("H100:16"), "more GPUs than the host has: {}", err.summary);
}

#[test]
fn unknown_prices_are_skipped_and_noted() {
    // An owned machine with no price configured and a copy of RunPod's row without prices:
    // both would be the cheapest if unknown were $0.
    let unpriced = owned("dgx-h100", Some(("H100", 8)), 224, 2048, 4, None);
    let mut runpod = kiln_catalog::Catalog::shipped().cloud("runpod").find(|o| o.instance_type == "8x_H100-SXM_SECURE").unwrap().clone();
    runpod.price_hourly = None;
    runpod.spot_price_hourly = None;
    let mut all = clouds(&["aws", "lambda"]);
    all.push(Candidate::new("onprem", &unpriced));
    all.push(Candidate::new("runpod", &runpod));
    let dec = decide(&need("H100:8"), &all).unwrap();
    assert_eq!(dec.chosen.cloud, "lambda");
    assert!(dec.notes.contains(&"2 offerings skipped: price unknown".to_string()), "{:?}", dec.notes);
    assert!(dec.alternatives.iter().all(|a| a.offering.provider != "onprem"), "an unknown price is never listed as a price");

    // The shipped p5.4xlarge rows in the US have no spot price: spot = true skips them.
    let mut n = need("H100:1");
    n.spot = SpotMode::Always;
    n.regions = Some(vec!["us-east-1".into(), "us-east-2".into(), "us-west-2".into()]);
    let err = decide(&n, &clouds(&["aws"])).unwrap_err();
    assert!(err.summary.starts_with("no offering of H100:1 has a spot price; on-demand: p5.4xlarge"), "{}", err.summary);

    let only = [Candidate::new("onprem", &unpriced)];
    let err = decide(&need("H100:8"), &only).unwrap_err();
    assert!(err.summary.contains("unknown price"), "{}", err.summary);
    assert!(err.hints[0].contains("never takes an unknown price as free"), "{:?}", err.hints);
}

#[test]
fn egress_joins_the_price_as_one_days_run() {
    let all = shipped();
    let mut n = need("H100:8");
    n.data = vec![aws_data("bucket.corpus", "us-east-1", "800")];
    // RunPod: $26.32 × 24 + $72 egress = $703.68 < AWS us-east-1: $55.04 × 24 = $1,320.96.
    let dec = decide(&n, &all).unwrap();
    assert_eq!((dec.chosen.cloud.as_str(), dec.chosen.egress_usd), ("runpod", Some(d("72"))));
    // 10 TB: $900 to move to RunPod tips it to AWS in the bucket's region.
    n.data[0].size_gb = d("10000");
    let dec = decide(&n, &all).unwrap();
    assert_eq!((dec.chosen.instance_type.as_str(), dec.chosen.region.as_deref()), ("p5.48xlarge", Some("us-east-1")));
    assert_eq!(dec.chosen.egress_usd, Some(d("0")));
    let runpod = dec.alternatives.iter().find(|a| a.offering.cloud == "runpod").unwrap();
    assert_eq!(runpod.reason, "-$28.72/h, +$900.00 egress");
    let east2 =
        dec.alternatives.iter().find(|a| a.offering.region.as_deref() == Some("us-east-2") && a.offering.instance_type == "p5.48xlarge");
    assert_eq!(east2.map(|a| a.reason.as_str()), Some("+$200.00 egress"));

    // Data in a cloud the table does not price: every move is unknown, never free; the
    // decision ranks by price and says so.
    n.data = vec![Data {
        name: "bucket.gcs".into(),
        origin: Origin::Cloud { cloud: "gcp".into(), region: Some("us-central1".into()) },
        size_gb: d("800"),
    }];
    let dec = decide(&n, &all).unwrap();
    assert_eq!((dec.chosen.cloud.as_str(), dec.chosen.egress_usd), ("runpod", None));
    assert!(dec.notes.iter().any(|x| x.contains("egress unknown") && x.contains("\"gcp\"")), "{:?}", dec.notes);
}

#[test]
fn the_egress_of_several_data_sources_is_summed() {
    let aws = clouds(&["aws"]);
    let mut n = need("H100:8");
    // 800 GB in us-east-1 and 500 GB in us-west-2: p5.48xlarge costs $55.04/h in both.
    n.data = vec![aws_data("bucket.corpus", "us-east-1", "800"), aws_data("bucket.eval", "us-west-2", "500")];
    let dec = decide(&n, &aws).unwrap();
    // us-east-1: $0 + 500 × $0.02 = $10; us-west-2: 800 × $0.02 = $16; elsewhere $26.
    assert_eq!((dec.chosen.region.as_deref(), dec.chosen.egress_usd), (Some("us-east-1"), Some(d("10"))));
    let west = dec.alternatives.iter().find(|a| a.offering.region.as_deref() == Some("us-west-2")).expect("us-west-2 is listed");
    assert_eq!((west.offering.egress_usd, west.reason.as_str()), (Some(d("16")), "+$6.00 egress"));
    let east2 = dec.alternatives.iter().find(|a| a.offering.region.as_deref() == Some("us-east-2")).expect("us-east-2 is listed");
    assert_eq!(east2.offering.egress_usd, Some(d("26")));

    // Moving to another cloud pays each bucket's internet price: (800 + 500) × $0.09.
    let all = shipped();
    let dec = decide(&n, &all).unwrap();
    assert_eq!((dec.chosen.cloud.as_str(), dec.chosen.egress_usd), ("runpod", Some(d("117"))));

    // One source without a price makes the sum unknown, never a smaller known one.
    n.data.push(Data {
        name: "bucket.gcs".into(),
        origin: Origin::Cloud { cloud: "gcp".into(), region: Some("us-central1".into()) },
        size_gb: d("1"),
    });
    let dec = decide(&n, &aws).unwrap();
    assert_eq!(dec.chosen.egress_usd, None);
    let note = dec.notes.iter().find(|x| x.contains("egress unknown")).expect("a note says the egress is unknown");
    assert!(note.contains("\"gcp\" (bucket.gcs)") && !note.contains("bucket.corpus"), "{note}");
}

#[test]
fn data_on_owned_hardware_or_this_machine() {
    let box8 = owned("box8", Some(("H100", 8)), 96, 1024, 1, Some("40"));
    let mut cands = clouds(&["runpod"]);
    cands.push(Candidate::new("onprem", &box8));
    let mut n = need("H100:8");
    // On the fleet itself the data does not move; kiln knows no price for moving it off, so
    // the fleet ranks first although RunPod is cheaper, and the notes say why.
    n.data = vec![Data { name: "bucket.scans".into(), origin: Origin::Owned { provider: "onprem".into() }, size_gb: d("800") }];
    let dec = decide(&n, &cands).unwrap();
    assert_eq!((dec.chosen.provider.as_str(), dec.chosen.egress_usd), ("onprem", Some(d("0"))));
    let runpod = dec.alternatives.iter().find(|a| a.offering.cloud == "runpod").expect("RunPod is listed");
    assert_eq!((runpod.offering.egress_usd, runpod.reason.as_str()), (None, "-$13.68/h, egress unknown"));
    assert!(dec.notes.iter().any(|x| x.contains("bucket.scans is on `onprem`")), "{:?}", dec.notes);

    // On this machine: free everywhere, said in a note, and the price decides.
    n.data = vec![Data { name: "bucket.corpus".into(), origin: Origin::ThisMachine, size_gb: d("800") }];
    let dec = decide(&n, &cands).unwrap();
    assert_eq!((dec.chosen.cloud.as_str(), dec.chosen.egress_usd), ("runpod", Some(d("0"))));
    assert!(
        dec.notes.iter().any(|x| x.contains("bucket.corpus is on this machine") && x.contains("800 GB") && x.contains("counts as free")),
        "{:?}",
        dec.notes
    );
    assert!(!dec.notes.iter().any(|x| x.contains("egress unknown")), "{:?}", dec.notes);
}

#[test]
fn a_preference_order_outranks_price() {
    let mut n = need("H100:8");
    n.providers = Some(vec!["aws".into(), "runpod".into()]);
    let dec = decide(&n, &shipped()).unwrap();
    assert_eq!(dec.chosen.cloud, "runpod", "without prefer_order, providers only allows");
    assert!(dec.alternatives.iter().all(|a| a.offering.cloud != "lambda" || a.reason.contains("placement.providers")));
    n.prefer_order = true;
    let dec = decide(&n, &shipped()).unwrap();
    assert_eq!(dec.chosen.cloud, "aws");
    let runpod = dec.alternatives.iter().find(|a| a.offering.cloud == "runpod").unwrap();
    assert_eq!(runpod.reason, "runpod is later in placement.providers, -$28.72/h");
}

#[test]
fn fallbacks_stay_with_the_provider_region_and_market() {
    let aws = clouds(&["aws"]);
    let mut n = need("L4:1");
    n.regions = Some(vec!["us-east-1".into()]);
    let dec = decide(&n, &aws).unwrap();
    assert_eq!(dec.chosen.instance_type, "g6.xlarge");
    let types: Vec<_> = dec.fallbacks.iter().map(|f| f.instance_type.as_str()).collect();
    assert_eq!(types, ["g6.2xlarge", "g6.4xlarge", "g6.8xlarge", "g6.16xlarge"]);
    assert!(dec.fallbacks.iter().all(|f| f.region.as_deref() == Some("us-east-1") && !f.spot));

    n.spot = SpotMode::Auto;
    let dec = decide(&n, &aws).unwrap();
    assert!(dec.chosen.spot);
    let fb: Vec<_> = dec.fallbacks.iter().map(|f| (f.instance_type.as_str(), f.spot)).collect();
    assert_eq!(fb.len(), 5, "{fb:?}");
    assert!(fb[..4].iter().all(|(_, spot)| *spot));
    assert_eq!(fb[4], ("g6.xlarge", false));
    // Fallbacks are not listed again as alternatives.
    for a in &dec.alternatives {
        assert!(!dec.fallbacks.contains(&a.offering), "{} is a fallback", a.offering.instance_type);
    }
}

#[test]
fn ties_are_broken_the_same_way_whatever_the_candidates_order() {
    let mut n = need("H100:8");
    n.exclude = vec!["runpod".into()];
    let all = shipped();
    let dec = decide(&n, &all).unwrap();
    assert_eq!((dec.chosen.cloud.as_str(), dec.chosen.region.as_deref()), ("lambda", Some("asia-northeast-1")));
    let reversed: Vec<_> = all.iter().rev().cloned().collect();
    assert_eq!(decide(&n, &reversed).unwrap(), dec);

    // The cheapest wins whichever accelerator alternative it satisfies.
    let pref = Need::new(request("H100:8;A100-80GB:8", None, None));
    let dec = decide(&pref, &all).unwrap();
    assert_eq!(dec.chosen.instance_type, "gpu_8x_a100_80gb_sxm4", "A100-80GB:8 on Lambda ($22.32/h) is cheaper than any H100:8");
    // An earlier alternative wins on a tie, before the instance type's name.
    let a100 = owned("z-host", Some(("A100-80GB", 8)), 128, 1024, 1, Some("10"));
    let h100 = owned("a-host", Some(("H100", 8)), 128, 1024, 1, Some("10"));
    let hosts = [Candidate::new("onprem", &h100), Candidate::new("onprem", &a100)];
    let dec = decide(&Need::new(request("A100-80GB:8;H100:8", None, None)), &hosts).unwrap();
    assert_eq!(dec.chosen.instance_type, "z-host");
    assert_eq!(dec.fallbacks[0].instance_type, "a-host");
    let dec = decide(&Need::new(request("H100:8;A100-80GB:8", None, None)), &hosts).unwrap();
    assert_eq!(dec.chosen.instance_type, "a-host");
}

#[test]
fn nothing_close_names_what_is_offered() {
    let err = decide(&need("MI300X:8"), &shipped()).unwrap_err();
    assert_eq!(err.summary, "no configured provider offers MI300X:8");
    assert!(err.hints[0].contains("H100") && err.hints[0].contains("kiln offers"), "{:?}", err.hints);
    let err = decide(&need("H100:8"), &[]).unwrap_err();
    assert!(err.summary.contains("none offers machines"), "{}", err.summary);
    // A size nobody has: the error names the closest and what to ask for.
    let err = decide(&Need::new(request("H100:8", Some("400+"), None)), &shipped()).unwrap_err();
    assert!(err.summary.starts_with("H100:8 with cpus = \"400+\" is offered, but not with that cpus:"), "{}", err.summary);
    assert!(err.hints[0].starts_with("ask for cpus = "), "{:?}", err.hints);
}

#[test]
fn every_choice_satisfies_its_request() {
    let all = shipped();
    let d = decide(&Need::new(request("H100:8", Some("200+"), Some("1800+"))), &all).unwrap();
    let row = all.iter().find(|c| c.offering.instance_type == d.chosen.instance_type && c.offering.region == d.chosen.region).unwrap();
    assert!(admits(&Need::new(request("H100:8", Some("200+"), Some("1800+"))).request, row.offering).is_ok());
    assert_eq!(d.chosen.instance_type, "gpu_8x_h100_sxm5");
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "local provider is never a placement candidate")]
fn the_local_provider_is_never_a_candidate() {
    let row = owned("this-machine", None, 4, 16, 1, Some("0"));
    let _ = decide(&need(""), &[Candidate::new("local", &row)]);
}

/// A restart's `recovery.strategy` leaves the offering (next_offering) or the region
/// (next_region) spot took the job back in: the next cheapest elsewhere; the error, when nothing
/// else is left, says how to keep it where it was.
#[test]
fn a_restart_leaves_the_offering_or_the_region_it_was_preempted_in() {
    let mut n = need("T4:1");
    n.spot = SpotMode::Always;
    let aws = clouds(&["aws"]);
    let first = decide(&n, &aws).unwrap().chosen;
    assert_eq!((first.instance_type.as_str(), first.region.as_deref()), ("g4dn.xlarge", Some("us-east-2")));

    n.avoid = vec![Avoid { provider: Some("aws".into()), instance_type: Some("g4dn.xlarge".into()), region: Some("us-east-2".into()) }];
    let next = decide(&n, &aws).unwrap();
    assert_ne!((next.chosen.instance_type.as_str(), next.chosen.region.as_deref()), ("g4dn.xlarge", Some("us-east-2")));
    assert!(next.chosen.price_hourly >= first.price_hourly);

    n.avoid = vec![Avoid { provider: None, instance_type: None, region: Some("us-east-2".into()) }];
    let elsewhere = decide(&n, &aws).unwrap().chosen;
    assert_eq!((elsewhere.instance_type.as_str(), elsewhere.region.as_deref()), ("g4dn.xlarge", Some("us-east-1")));

    n.regions = Some(vec!["us-east-2".into()]);
    let err = decide(&n, &aws).unwrap_err();
    assert!(err.hints.iter().any(|h| h.contains("recovery.strategy = \"same_pool\"")), "{:?}", err.hints);
}
