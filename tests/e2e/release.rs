//! `on_finish = "destroy_capacity"` (issue 15) with the `local` provider: a job that succeeds
//! releases its cluster (the plan shows the release; apply, `apply --wait`, `kiln run` and
//! `kiln watch` perform it), state keeps the cluster as released, the next plan leaves it
//! released, and a job that needs it again creates it again. Destroy forgets a released cluster
//! without deleting anything.

use std::time::Duration;

use crate::support::{wait_until, Project};

const CONFIG: &str = r#"
resource "cluster" "c" {
  nodes = 1
}

resource "job" "j" {
  cluster   = cluster.c
  run       = "echo trained"
  on_finish = "destroy_capacity"
}
"#;

/// The `released` record of `address` in the state file (`null`: not released).
fn released(p: &Project, address: &str) -> serde_json::Value {
    let state = p.state_json();
    let r = state["resources"].as_array().unwrap().iter().find(|r| r["address"] == address).cloned();
    r.unwrap_or_else(|| panic!("{address} is not in state: {state}"))["released"].clone()
}

/// Waits until `kiln jobs --json` says job.j succeeded.
fn until_succeeded(p: &Project) {
    wait_until("job.j succeeded", Duration::from_secs(60), || {
        let out = p.kiln(&["jobs", "--json"]).ok().stdout();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["jobs"][0]["status"] == "succeeded"
    });
}

#[test]
fn a_succeeded_job_releases_its_cluster_until_a_job_needs_it_again() {
    let p = Project::new(CONFIG);
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert!(released(&p, "cluster.c").is_null(), "running while the job runs");
    until_succeeded(&p);

    // A plain plan shows the release; its apply performs it and keeps the cluster as released.
    let plan = p.kiln(&["plan", "--detailed-exitcode"]).code_is(2).stdout();
    assert!(
        plan.contains("# cluster.c will be released (`job.j` finished; on_finish = \"destroy_capacity\")"),
        "the release is shown: {plan}"
    );
    assert!(plan.contains("Plan: 0 to add, 0 to change, 1 to destroy."), "{plan}");
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(released(&p, "cluster.c")["by"], "job.j", "state keeps it as released");
    assert!(p.state_list().contains(&"cluster.c".to_string()), "not forgotten");

    // Released stays released: no change, said so; status shows it.
    let plan = p.kiln(&["plan", "--detailed-exitcode"]).code_is(0).stdout();
    assert!(plan.contains("No changes.") && plan.contains("cluster.c (`job.j` finished and releases its capacity)"), "{plan}");
    let status = p.kiln(&["status", "--json"]).ok().stdout();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["clusters"][0]["state"], "released", "{status}");
    let show = p.kiln(&["show", "--json"]).ok().stdout();
    assert!(show.contains("\"released\""), "show --json says it: {show}");

    // Running the job again creates the cluster again, and `kiln run` releases it at the end.
    let run = p.kiln(&["run", "job.j", "--auto-approve"]).ok();
    let out = run.stdout();
    assert!(
        out.contains("# cluster.c will be created again (released when `job.j` finished; `job.j` needs it)"),
        "the cluster comes back for the job: {out}"
    );
    assert!(out.contains("Plan: 2 to add, 0 to change, 1 to destroy."), "{out}");
    assert!(out.contains("| trained"), "the job ran: {out}");
    assert!(run.stderr().contains("job.j succeeded: releasing cluster.c"), "{}", run.stderr());
    assert_eq!(released(&p, "cluster.c")["by"], "job.j", "released again after the run");

    // kiln watch releases it too.
    p.kiln(&["apply", "--auto-approve", "--replace", "job.j"]).ok();
    assert!(released(&p, "cluster.c").is_null());
    until_succeeded(&p);
    let watch = p.kiln(&["watch", "--once"]).ok();
    assert!(watch.stderr().contains("releasing cluster.c"), "{}", watch.stderr());
    assert_eq!(released(&p, "cluster.c")["by"], "job.j");

    // Destroy forgets the released cluster (nothing to delete) and destroys the job.
    let destroy = p.kiln(&["destroy", "--auto-approve"]).ok().stdout();
    assert!(destroy.contains("Destroy complete!"), "{destroy}");
    assert!(p.state_list().is_empty(), "{:?}", p.state_list());
}

#[test]
fn a_job_keeps_its_cluster_by_default_and_on_finish_is_checked() {
    let p = Project::new(&CONFIG.replace("  on_finish = \"destroy_capacity\"\n", ""));
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
    assert!(released(&p, "cluster.c").is_null());

    // Setting it later is an update in place of the job, not a replacement.
    p.write("main.kiln.hcl", CONFIG);
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("# job.j will be updated in place"), "{plan}");

    p.write("main.kiln.hcl", &CONFIG.replace("destroy_capacity", "destroy"));
    let r = p.kiln(&["plan"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("E-JOB-ON-FINISH") && err.contains("main.kiln.hcl:9:15"), "at the attribute: {err}");
    p.write("main.kiln.hcl", &CONFIG.replace("  on_finish = \"destroy_capacity\"\n", ""));
    p.kiln(&["destroy", "--auto-approve"]).ok();
}
