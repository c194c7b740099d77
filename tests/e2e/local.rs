//! The `local` provider end to end (issue 3): buckets, clusters and training jobs that are real
//! processes on this machine. Every project that can start a job is a [`LocalProject`], whose
//! drop runs `kiln destroy --auto-approve` (and, should that fail, kills what is left of the
//! jobs it started), so no job process outlives its test, pass or fail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{copy_dir, job_events, repo_root, wait_until, Project, Spawned};

/// Safety bound for waiting on a job to reach a point; not a speed requirement.
const BOUND: Duration = Duration::from_secs(90);

/// A project whose jobs are stopped when it is dropped.
struct LocalProject {
    p: Project,
}

impl std::ops::Deref for LocalProject {
    type Target = Project;
    fn deref(&self) -> &Project {
        &self.p
    }
}

impl LocalProject {
    fn new(config: &str) -> Self {
        LocalProject { p: Project::new(config) }
    }

    /// A copy of `examples/quickstart`.
    fn quickstart() -> Self {
        let p = Project::empty();
        copy_dir(&repo_root().join("examples/quickstart"), p.path(), &[]);
        LocalProject { p }
    }

    /// Replaces `from` (which must occur) in `main.kiln.hcl`.
    fn edit(&self, from: &str, to: &str) {
        let text = self.read("main.kiln.hcl");
        assert!(text.contains(from), "main.kiln.hcl has no `{from}`:\n{text}");
        self.write("main.kiln.hcl", &text.replacen(from, to, 1));
    }

    /// `kiln show --json`, parsed.
    fn show(&self) -> serde_json::Value {
        let out = self.kiln(&["show", "--json"]).ok().stdout();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("show --json is not JSON ({e}): {out}"))
    }

    /// The attributes of `address` in state, from `kiln show --json`.
    fn values(&self, address: &str) -> serde_json::Value {
        let show = self.show();
        let resources = show["resources"].as_array().cloned().unwrap_or_default();
        let r = resources.iter().find(|r| r["address"] == address).unwrap_or_else(|| panic!("{address} is not in state: {show}"));
        r["values"].clone()
    }

    /// A job's `job_id` and process group IDs, as state records them.
    fn job(&self, address: &str) -> JobProcs {
        let v = self.values(address);
        let id = v["job_id"].as_str().unwrap_or_else(|| panic!("{address} has no job_id: {v}")).to_string();
        let pgids = v["pids"]
            .as_array()
            .unwrap_or_else(|| panic!("{address} has no pids: {v}"))
            .iter()
            .filter_map(|p| p.as_u64())
            .map(|p| p as u32)
            .collect();
        JobProcs { id, pgids }
    }

    /// The `STATUS` and `RESTARTS` columns of `kiln jobs` for `address`.
    fn jobs_row(&self, address: &str) -> (String, String) {
        let out = self.kiln(&["jobs"]).ok().stdout();
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(address))
            .unwrap_or_else(|| panic!("`kiln jobs` has no {address}:\n{out}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols[1].to_string(), cols.last().unwrap().to_string())
    }

    /// The directory `.kiln/jobs`, entries by name (empty when it does not exist).
    fn job_dirs(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path().join(".kiln/jobs"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Every job this project started, from the files under `.kiln/jobs/` (which survive a
    /// broken state): its ID and the process groups of its nodes.
    fn jobs_on_disk(&self) -> Vec<JobProcs> {
        let root = self.path().join(".kiln/jobs");
        let Ok(dirs) = std::fs::read_dir(&root) else { return Vec::new() };
        dirs.flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| {
                let id = e.file_name().to_string_lossy().into_owned();
                let pgids = std::fs::read_dir(e.path())
                    .map(|d| {
                        d.flatten()
                            .filter(|f| f.file_name().to_string_lossy().ends_with(".pid"))
                            .filter_map(|f| std::fs::read_to_string(f.path()).ok()?.trim().parse().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                JobProcs { id, pgids }
            })
            .collect()
    }
}

impl Drop for LocalProject {
    fn drop(&mut self) {
        // Never panics: it may run while a failed test unwinds.
        let before = self.jobs_on_disk();
        let mut destroy = Spawned::start(self.p.command(&["destroy", "--auto-approve"]));
        let start = Instant::now();
        while destroy.running() && start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(destroy); // kills it if it is still running
        for job in before.iter().chain(self.jobs_on_disk().iter()) {
            job.kill_leftovers();
        }
    }
}

/// A job's processes: the process groups of its nodes, and its KILN_JOB_ID.
#[derive(Debug, Clone)]
struct JobProcs {
    id: String,
    pgids: Vec<u32>,
}

impl JobProcs {
    /// Live (not zombie) processes of this job: members of its process groups, or carrying its
    /// KILN_JOB_ID in their environment (a child that left the group still counts).
    fn live(&self) -> Vec<u32> {
        let marker = format!("KILN_JOB_ID={}", self.id);
        procs()
            .into_iter()
            .filter(|p| !p.zombie && p.pid != std::process::id())
            .filter(|p| self.pgids.contains(&p.pgrp) || environ_has(p.pid, &marker))
            .map(|p| p.pid)
            .collect()
    }

    /// SIGKILL to the job's process groups, and to any process carrying its KILN_JOB_ID; only
    /// to processes whose environment proves they are this job's (a PID may have been reused).
    fn kill_leftovers(&self) {
        let marker = format!("KILN_JOB_ID={}", self.id);
        for p in procs().into_iter().filter(|p| !p.zombie && environ_has(p.pid, &marker)) {
            let target = if self.pgids.contains(&p.pgrp) { format!("-{}", p.pgrp) } else { p.pid.to_string() };
            let _ = Command::new("kill").args(["-KILL", "--", &target]).stderr(std::process::Stdio::null()).status();
        }
    }

    /// SIGKILL to every process group of the job, as a crash or the OOM killer would.
    fn kill_9(&self) {
        assert!(!self.live().is_empty(), "job {} has no live process to kill", self.id);
        for g in &self.pgids {
            let st = Command::new("kill").args(["-KILL", "--", &format!("-{g}")]).status().expect("run kill");
            assert!(st.success(), "kill -KILL -- -{g} failed");
        }
    }
}

struct Proc {
    pid: u32,
    pgrp: u32,
    zombie: bool,
}

/// The process table from `/proc/PID/stat`.
fn procs() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let mut f = stat.rsplit_once(')')?.1.split_whitespace();
            let state = f.next()?;
            let _ppid = f.next()?;
            let pgrp = f.next()?.parse().ok()?;
            Some(Proc { pid, pgrp, zombie: state == "Z" || state == "X" })
        })
        .collect()
}

fn environ_has(pid: u32, entry: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == entry.as_bytes()))
}

/// The `ckpt-*.json` files train.py wrote in `dir`, as (step, loss), by step.
fn checkpoints(dir: &Path) -> Vec<(u64, f64)> {
    let mut out: Vec<(u64, f64)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("ckpt-") && n.ends_with(".json")
        })
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).expect("read checkpoint");
            let v: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: not JSON ({err}): {text}", e.path().display()));
            let step = v["step"].as_u64().unwrap_or_else(|| panic!("{}: no step: {v}", e.path().display()));
            let loss = v["loss"].as_f64().unwrap_or_else(|| panic!("{}: no loss: {v}", e.path().display()));
            assert_eq!(v["weights"].as_array().map(Vec::len), Some(8), "{}: 8 weights", e.path().display());
            (step, loss)
        })
        .collect();
    out.sort_by_key(|c| c.0);
    out
}

/// The quickstart's checkpoint directory: its bucket's `path` in state, then `run-1/`.
fn quickstart_checkpoint_dir(p: &LocalProject) -> PathBuf {
    let bucket = p.values("bucket.checkpoints");
    PathBuf::from(bucket["path"].as_str().unwrap_or_else(|| panic!("bucket has no path: {bucket}"))).join("run-1")
}

#[test]
fn local_quickstart_end_to_end() {
    let p = LocalProject::quickstart();
    // As the README runs it: from elsewhere, with --chdir (relative) naming the directory.
    let mut apply = p.command(&["--chdir", p.path().file_name().unwrap().to_str().unwrap(), "apply", "--auto-approve", "--wait"]);
    apply.current_dir(p.path().parent().unwrap());
    crate::support::run(apply).ok();

    let out = p.kiln(&["output", "--json"]).ok().stdout();
    let outputs: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("output --json is not JSON ({e}): {out}"));
    let outputs = &outputs["outputs"];
    assert_eq!(outputs["status"]["value"], "succeeded", "{outputs}");
    let final_loss = outputs["final_loss"]["value"].as_f64().unwrap_or_else(|| panic!("final_loss is not a number: {outputs}"));
    assert!(final_loss > 0.0 && final_loss < std::f64::consts::LN_2, "below the loss of a coin flip: {final_loss}");

    // The loss decreases from checkpoint to checkpoint (every 10 steps of 100).
    let dir = quickstart_checkpoint_dir(&p);
    let ckpts = checkpoints(&dir);
    let steps: Vec<u64> = ckpts.iter().map(|c| c.0).collect();
    assert_eq!(steps, (1..=10).map(|i| i * 10).collect::<Vec<u64>>(), "a checkpoint every 10 steps in {}", dir.display());
    for w in ckpts.windows(2) {
        assert!(w[1].1 < w[0].1, "loss decreases from step {} to {}: {ckpts:?}", w[0].0, w[1].0);
    }
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).expect("result.json")).unwrap();
    assert_eq!(result["final_loss"].as_f64(), Some(final_loss), "the output is read from result.json");
    assert!((final_loss - ckpts.last().unwrap().1).abs() < 1e-5, "the final loss is step 100's: {ckpts:?} vs {final_loss}");

    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
    assert_eq!(p.jobs_row("job.train"), ("succeeded".to_string(), "0".to_string()));

    let log = p.kiln(&["logs", "job.train", "--node", "1"]).ok().stdout();
    assert!(log.contains("rank 1 step 100 loss"), "{log}");
    assert!(log.contains("rank 1: done, final loss"), "{log}");
    assert!(!log.contains("rank 0"), "only node 1's output: {log}");
    let all = p.kiln(&["logs", "job.train"]).ok().stdout();
    assert!(
        all.contains("[node 0] rank 0: done, final loss") && all.contains("[node 1] rank 1: done, final loss"),
        "every node by default, each line prefixed by its node (issue 13): {all}"
    );

    let job = p.job("job.train");
    assert_eq!(job.pgids.len(), 2, "one process group per node: {job:?}");
    let bucket_dir = dir.parent().unwrap().to_path_buf();
    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert_eq!(p.state_list(), Vec::<String>::new());
    assert!(!bucket_dir.exists(), "{} is gone", bucket_dir.display());
    assert_eq!(p.job_dirs(), Vec::<String>::new(), "no job directory left");
    assert_eq!(job.live(), Vec::<u32>::new(), "no process of the job is left");
}

#[test]
fn local_a_replaced_bucket_that_cannot_be_destroyed_stays_in_state_as_deposed() {
    // create_before_destroy: the new bucket is made, then the old one's destroy fails (it holds
    // a file). The old bucket must not be forgotten: it stays in state as a deposed object that
    // every plan destroys until it is gone.
    let cfg = |name: &str| {
        format!("resource \"bucket\" \"data\" {{\n  name = \"{name}\"\n  lifecycle {{\n    create_before_destroy = true\n  }}\n}}\n")
    };
    let p = LocalProject::new(&cfg("v1"));
    p.kiln(&["apply", "--auto-approve"]).ok();
    let v1 = PathBuf::from(p.values("bucket.data")["path"].as_str().expect("bucket path").to_string());
    std::fs::write(v1.join("weights.bin"), "precious").unwrap();

    p.write("main.kiln.hcl", &cfg("v2"));
    let err = p.kiln(&["apply", "--auto-approve"]).code_is(1).stderr();
    assert!(err.contains("not empty") && err.contains("weights.bin"), "{err}");
    assert_eq!(p.values("bucket.data")["name"], "v2", "the new bucket holds the address");
    let state = p.state_json();
    let deposed = state["deposed"].as_array().expect("a deposed object in state");
    assert_eq!(deposed.len(), 1, "{state}");
    assert_eq!(deposed[0]["resource"]["attributes"]["name"], "v1", "{state}");
    let key = deposed[0]["key"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read_to_string(v1.join("weights.bin")).unwrap(), "precious", "nothing was lost");
    let shown = p.kiln(&["show"]).ok().stdout();
    assert!(shown.contains(&format!("# bucket.data (deposed object {key}, to be destroyed):")), "{shown}");
    let listed = p.show()["resources"].as_array().cloned().unwrap();
    assert!(listed.iter().any(|r| r["deposed"] == key.as_str() && r["values"]["name"] == "v1"), "{listed:?}");

    // Every plan destroys it, and says which object it is.
    let plan = p.kiln(&["plan", "--detailed-exitcode"]).code_is(2).stdout();
    assert!(
        plan.contains(&format!(
            "# bucket.data (deposed object {key}) will be destroyed (the old object of a create_before_destroy replacement)"
        )),
        "{plan}"
    );
    assert!(plan.contains("Plan: 0 to add, 0 to change, 1 to destroy."), "{plan}");
    let json: serde_json::Value = serde_json::from_str(&p.kiln(&["plan", "--json"]).ok().stdout()).unwrap();
    let change =
        &json["resource_changes"].as_array().unwrap().iter().find(|c| c["deposed"] == key.as_str()).cloned().expect("deposed change");
    assert_eq!((change["address"].as_str(), change["action"].as_str()), (Some("bucket.data"), Some("delete")), "{change}");

    // Once it can be destroyed, the next apply does, and leaves the new bucket alone.
    std::fs::remove_file(v1.join("weights.bin")).unwrap();
    let err = p.kiln_loud(&["apply", "--auto-approve"]).ok().stderr();
    assert!(err.contains(&format!("bucket.data (deposed object {key}): Destruction complete")), "{err}");
    assert!(!v1.exists(), "{} is gone", v1.display());
    assert!(p.state_json().get("deposed").is_none(), "no deposed object is left");
    assert_eq!(p.values("bucket.data")["name"], "v2");
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

#[test]
fn local_destroy_refuses_a_non_empty_bucket_without_force_destroy() {
    let p = LocalProject::new("resource \"bucket\" \"data\" {}\n");
    p.kiln(&["apply", "--auto-approve"]).ok();
    let path = PathBuf::from(p.values("bucket.data")["path"].as_str().expect("bucket path").to_string());
    assert!(path.is_dir(), "{}", path.display());
    std::fs::write(path.join("weights.bin"), "precious").unwrap();

    let r = p.kiln(&["destroy", "--auto-approve"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("bucket.data"), "names the bucket: {err}");
    assert!(err.contains("not empty"), "{err}");
    assert!(err.contains("weights.bin"), "names what it holds: {err}");
    assert!(err.contains("force_destroy = true"), "says how to fix it: {err}");
    assert_eq!(std::fs::read_to_string(path.join("weights.bin")).unwrap(), "precious", "nothing was deleted");
    assert_eq!(p.state_list(), vec!["bucket.data".to_string()]);

    p.write("main.kiln.hcl", "resource \"bucket\" \"data\" {\n  force_destroy = true\n}\n");
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("Plan: 0 to add, 1 to change, 0 to destroy."), "{plan}");
    p.kiln(&["apply", "--auto-approve"]).ok();
    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert!(!path.exists(), "{} is gone", path.display());
    assert_eq!(p.state_list(), Vec::<String>::new());
}

#[test]
fn local_lost_job_is_replaced_and_resumes_from_its_last_checkpoint() {
    let p = LocalProject::quickstart();
    // Long enough never to finish within the test, a checkpoint every 5 steps.
    p.edit("TRAIN_STEPS = \"100\"", "TRAIN_STEPS      = \"100000\"\n    TRAIN_STEP_SLEEP = \"0.1\"\n    CHECKPOINT_EVERY = \"5\"");
    p.kiln(&["apply", "--auto-approve"]).ok();
    let dir = quickstart_checkpoint_dir(&p);
    wait_until("the job writes its second checkpoint", BOUND, || dir.join("ckpt-000010.json").exists());
    assert_eq!(p.jobs_row("job.train").0, "running");

    let old = p.job("job.train");
    let mut follow = p.spawn(&["logs", "job.train", "--follow"]);
    wait_until("`logs --follow` prints the running job's output", BOUND, || {
        follow.stdout_so_far().contains("rank 0 step 10 ") || !follow.running()
    });
    assert!(follow.running(), "--follow returned while the job runs:\n{}", follow.stderr_so_far());
    old.kill_9();
    wait_until("the killed processes are gone", BOUND, || old.live().is_empty());
    // A lost job has finished as far as --follow is concerned.
    follow.wait(Duration::from_secs(60)).ok();
    let last = checkpoints(&dir).last().expect("a checkpoint").0;

    assert_eq!(p.jobs_row("job.train"), ("lost".to_string(), "0".to_string()));
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("~ status = \"running\" -> \"lost\""), "the refresh notices the loss:\n{plan}");
    assert!(plan.contains("# job.train must be replaced (`status` forces replacement)"), "{plan}");
    assert!(plan.contains("-/+ resource \"job\" \"train\""), "{plan}");
    assert!(plan.contains("Plan: 1 to add, 0 to change, 1 to destroy."), "{plan}");
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(2);

    p.kiln(&["apply", "--auto-approve"]).ok();
    let new = p.job("job.train");
    assert_ne!(new.id, old.id, "a new job");
    assert_eq!(p.values("job.train")["restarts"], 1);
    assert_eq!(p.jobs_row("job.train"), ("running".to_string(), "1".to_string()));
    assert_eq!(p.job_dirs(), vec![new.id.clone()], "the lost job's directory is gone, nothing else is left");

    // Both nodes resume from the checkpoint the lost job wrote last, then train on.
    for node in ["0", "1"] {
        let resumed = format!("rank {node}: resuming from checkpoint at step {last} ");
        wait_until(&format!("node {node} logs `{resumed}`"), BOUND, || {
            p.kiln(&["logs", "job.train", "--node", node]).ok().stdout().contains(&resumed)
        });
        let log = p.kiln(&["logs", "job.train", "--node", node]).ok().stdout();
        assert!(!log.contains("starting,"), "node {node} does not start over:\n{log}");
    }
    let next = dir.join(format!("ckpt-{:06}.json", last + 5));
    wait_until("the new job writes the next checkpoint", BOUND, || next.exists());

    // Destroy stops the running job.
    assert!(!new.live().is_empty(), "the new job runs");
    let bucket_dir = dir.parent().unwrap().to_path_buf();
    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert_eq!(new.live(), Vec::<u32>::new(), "destroy stopped every process of the job");
    assert_eq!(p.job_dirs(), Vec::<String>::new());
    assert!(!bucket_dir.exists());
}

#[test]
fn local_destroying_a_lost_job_leaves_nothing_behind() {
    let p = LocalProject::quickstart();
    p.edit("TRAIN_STEPS = \"100\"", "TRAIN_STEPS = \"100000\"");
    p.kiln(&["apply", "--auto-approve"]).ok();
    let job = p.job("job.train");
    job.kill_9();
    wait_until("the killed processes are gone", BOUND, || job.live().is_empty());
    assert_eq!(p.jobs_row("job.train").0, "lost");

    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert_eq!(p.state_list(), Vec::<String>::new());
    let left = p.job_dirs();

    // A job created after the destroy is a new job, not a restart of the destroyed one.
    p.kiln(&["apply", "--auto-approve"]).ok();
    let restarts = p.values("job.train")["restarts"].clone();
    assert_eq!(left, Vec::<String>::new(), "destroy leaves nothing under .kiln/jobs");
    assert_eq!(restarts, 0, "a fresh job has not been restarted");
}

#[test]
fn local_cluster_asking_for_missing_gpus_fails_at_plan_time() {
    let p = LocalProject::quickstart();
    p.edit("# accelerators = \"H100:8\"", "accelerators = \"H100:8\"");
    let r = p.kiln(&["plan"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("cluster.train asks for 8 x H100 per node"), "says what was asked: {err}");
    assert!(err.contains("this machine has"), "says what exists: {err}");
    if Command::new("nvidia-smi").output().is_err() {
        assert!(err.contains("this machine has 0 GPUs") || err.contains("this machine has no GPUs"), "{err}");
    }
    assert!(!r.stdout().contains("Plan:"), "{}", r.stdout());

    // apply fails the same way before creating anything.
    let r = p.kiln(&["apply", "--auto-approve"]).code_is(1);
    assert!(r.stderr().contains("cluster.train asks for 8 x H100 per node"), "{}", r.stderr());
    assert_eq!(p.state_list(), Vec::<String>::new());
    assert_eq!(p.job_dirs(), Vec::<String>::new(), "no job was started");
}

#[test]
fn local_spot_pool_fails_at_plan_time() {
    let p = LocalProject::new("resource \"spot_pool\" \"gpus\" {\n  accelerators = \"H100:8\"\n  capacity     = 4\n}\n");
    let r = p.kiln(&["plan"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("spot_pool.gpus"), "names the resource: {err}");
    assert!(err.contains("no spot market"), "says why: {err}");
    assert!(err.contains("provider = aws"), "says what to do: {err}");
    assert!(!r.stdout().contains("Plan:"), "{}", r.stdout());
}

const THREE_LINES: &str = r#"resource "cluster" "c" {}

resource "job" "j" {
  cluster = cluster.c
  run     = <<-EOT
    echo one
    echo two
    echo three
  EOT
}
"#;

#[test]
fn local_changing_the_run_script_plans_a_replacement_with_a_line_diff() {
    let p = LocalProject::new(THREE_LINES);
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    let old = p.job("job.j");
    p.edit("echo two", "echo TWO");

    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("# job.j must be replaced (`run` forces replacement)"), "{plan}");
    assert!(plan.contains("-/+ resource \"job\" \"j\""), "{plan}");
    let rows: Vec<&str> = plan.lines().map(str::trim).collect();
    for row in ["echo one", "- echo two", "+ echo TWO", "echo three"] {
        assert!(rows.contains(&row), "a `{row}` row:\n{plan}");
    }
    assert!(!plan.contains("- echo one") && !plan.contains("- echo three"), "unchanged lines are context:\n{plan}");
    assert!(plan.contains("Plan: 1 to add, 0 to change, 1 to destroy."), "{plan}");

    let json: serde_json::Value = serde_json::from_str(&p.kiln(&["plan", "--json"]).ok().stdout()).expect("plan --json");
    let change = json["resource_changes"].as_array().unwrap().iter().find(|c| c["address"] == "job.j").cloned().expect("job.j in plan");
    assert_eq!(change["action"], "replace", "{change}");
    assert_eq!(change["reason"]["attributes"], serde_json::json!(["run"]), "{change}");

    // Applied, the new script runs.
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    assert_ne!(p.job("job.j").id, old.id);
    let log = p.kiln(&["logs", "job.j"]).ok().stdout();
    assert_eq!(log, "one\nTWO\nthree\n");
}

#[test]
fn local_logs_prints_a_log_longer_than_one_read() {
    // Providers read logs 1 MiB at a time: `kiln logs` reads on until the end.
    let p = LocalProject::new(
        r#"resource "cluster" "c" {}

resource "job" "j" {
  cluster = cluster.c
  run     = "head -c 2500000 /dev/zero | tr '\\0' x; echo; echo end"
}
"#,
    );
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    let log = p.kiln(&["logs", "job.j"]).ok().stdout();
    assert_eq!(log.len(), 2_500_005, "the whole log");
    assert!(log.ends_with("x\nend\n"));
    assert_eq!(p.kiln(&["logs", "job.j", "--follow"]).ok().stdout(), log);
}

#[test]
fn local_logs_follow_prints_a_running_job_and_returns_when_it_finishes() {
    let p = LocalProject::new(
        r#"resource "cluster" "c" {}

resource "job" "j" {
  cluster = cluster.c
  run     = <<-EOT
    echo "waiting for go"
    while [ ! -e go ]; do sleep 0.1; done
    echo "got go, done"
  EOT
}
"#,
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    let mut follow = p.spawn(&["logs", "job.j", "--follow"]);
    wait_until("`logs --follow` prints the running job's output", BOUND, || {
        follow.stdout_so_far().contains("waiting for go") || !follow.running()
    });
    assert!(follow.running(), "--follow returned while the job runs:\n{}\n{}", follow.stdout_so_far(), follow.stderr_so_far());
    assert_eq!(p.jobs_row("job.j").0, "running");

    p.write("go", "");
    let r = follow.wait(Duration::from_secs(60)).ok();
    assert_eq!(r.stdout(), "waiting for go\ngot go, done\n");
    assert_eq!(p.jobs_row("job.j").0, "succeeded");

    // On a finished job, --follow prints everything and returns.
    assert_eq!(p.kiln(&["logs", "job.j", "--follow"]).ok().stdout(), "waiting for go\ngot go, done\n");
}

#[test]
fn local_destroy_kills_a_job_that_ignores_sigterm_after_its_grace() {
    let p = LocalProject::new(
        r#"resource "cluster" "c" {}

resource "job" "j" {
  cluster    = cluster.c
  stop_grace = 1
  run        = <<-EOT
    trap '' TERM
    echo started
    while true; do sleep 0.1; done
  EOT
}
"#,
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    wait_until("the job starts", BOUND, || p.kiln(&["logs", "job.j"]).ok().stdout().contains("started"));
    let job = p.job("job.j");
    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert_eq!(job.live(), Vec::<u32>::new(), "SIGKILL followed the ignored SIGTERM");
    assert_eq!(p.state_list(), Vec::<String>::new());
}

#[test]
fn local_job_nodes_get_the_kiln_environment() {
    let p = LocalProject::new(
        r#"resource "bucket" "ckpt" {
  force_destroy = true
}

resource "cluster" "c" {
  nodes = 2
}

resource "job" "j" {
  cluster = cluster.c
  env     = { EXTRA = "x" }
  run     = "env | grep -E '^(KILN_|EXTRA=)' | sort"

  checkpoint {
    bucket = bucket.ckpt
    path   = "run-1/"
  }
}
"#,
    );
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    let v = p.values("job.j");
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["exit_codes"], serde_json::json!([0, 0]));
    let bucket = PathBuf::from(p.values("bucket.ckpt")["path"].as_str().unwrap());
    let job_id = v["job_id"].as_str().unwrap().to_string();
    let mut ports = BTreeSet::new();
    for rank in 0..2 {
        let log = p.kiln(&["logs", "job.j", "--node", &rank.to_string()]).ok().stdout();
        let env: std::collections::BTreeMap<&str, &str> = log.lines().filter_map(|l| l.split_once('=')).collect();
        assert_eq!(env.get("KILN_NODE_RANK"), Some(&rank.to_string().as_str()), "{log}");
        assert_eq!(env.get("KILN_NUM_NODES"), Some(&"2"), "{log}");
        assert_eq!(env.get("KILN_NODE_IPS"), Some(&"127.0.0.1,127.0.0.1"), "{log}");
        assert_eq!(env.get("KILN_MASTER_ADDR"), Some(&"127.0.0.1"), "{log}");
        assert_eq!(env.get("KILN_JOB_ID"), Some(&job_id.as_str()), "{log}");
        assert_eq!(env.get("EXTRA"), Some(&"x"), "{log}");
        let ckpt = env.get("KILN_CHECKPOINT_DIR").unwrap_or_else(|| panic!("no KILN_CHECKPOINT_DIR: {log}"));
        assert_eq!(Path::new(ckpt).canonicalize().unwrap(), bucket.join("run-1").canonicalize().unwrap(), "{log}");
        assert!(env.contains_key("KILN_NUM_GPUS_PER_NODE"), "{log}");
        ports.insert(env.get("KILN_MASTER_PORT").copied().unwrap_or_else(|| panic!("no KILN_MASTER_PORT: {log}")).to_string());
    }
    assert_eq!(ports.len(), 1, "one master port for all nodes: {ports:?}");
    let r = p.kiln(&["logs", "job.j", "--node", "2"]).code_is(1);
    assert!(r.stderr().contains("no node 2"), "{}", r.stderr());
}

#[test]
fn local_failed_job_fails_apply_wait() {
    let p = LocalProject::new(
        r#"resource "cluster" "c" {}

resource "job" "j" {
  cluster = cluster.c
  run     = "echo trying; exit 3"
}

output "status" {
  value = job.j.status
}
"#,
    );
    let r = p.kiln(&["apply", "--auto-approve", "--wait"]).code_is(1);
    assert!(r.stderr().contains("job.j: failed"), "says which job failed: {}", r.stderr());
    assert_eq!(p.output_json("status"), "failed");
    let v = p.values("job.j");
    assert_eq!(v["status"], "failed");
    assert_eq!(v["exit_codes"], serde_json::json!([3]));
    assert!(v["finished_at"].is_string(), "{v}");
    assert_eq!(p.jobs_row("job.j").0, "failed");
    assert_eq!(p.kiln(&["logs", "job.j"]).ok().stdout(), "trying\n");
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

#[test]
fn local_a_node_failure_leaves_no_node_of_the_job_running() {
    // Node 1 fails at once; node 0 would run until told to stop (as a node blocked on a
    // collective whose peer died would).
    let p = LocalProject::new(
        r#"resource "cluster" "c" {
  nodes = 2
}

resource "job" "j" {
  cluster = cluster.c
  run     = <<-EOT
    if [ "$KILN_NODE_RANK" = 1 ]; then echo failing; exit 3; fi
    while [ ! -e go ]; do sleep 0.1; done
  EOT
}
"#,
    );
    // Whichever way a fix goes (stop the other nodes, or report `running` until every node has
    // ended), `apply --wait` must not return while a node of the job still runs. Node 0 is
    // let go only if the job still reports `running` once node 1 has failed.
    let node1_failed = || p.jobs_on_disk().iter().any(|j| p.path().join(".kiln/jobs").join(&j.id).join("node-1.exit").exists());
    let mut apply = p.spawn(&["apply", "--auto-approve", "--wait"]);
    let mut released = false;
    wait_until("`apply --wait` returns", BOUND, || {
        if !apply.running() {
            return true;
        }
        let listed_running = || p.kiln(&["jobs"]).stdout().lines().any(|l| l.split_whitespace().take(2).eq(["job.j", "running"]));
        if !released && node1_failed() && listed_running() {
            p.write("go", "");
            released = true;
        }
        false
    });
    let running = p.job("job.j").live();
    let v = p.values("job.j");
    p.write("go", ""); // lets node 0 end, whatever the outcome
    let r = apply.wait(Duration::from_secs(5));
    assert_eq!(r.code(), 1, "the job failed:\n{}", r.stderr());
    assert_eq!(v["status"], "failed");
    assert_eq!(running, Vec::<u32>::new(), "a failed job has no node left running (state says exit_codes = {})", v["exit_codes"]);
}

#[test]
fn a_malformed_request_is_an_error_at_its_attribute_with_a_suggestion() {
    let p =
        Project::new("resource \"cluster\" \"train\" {\n  nodes        = 2\n  accelerators = \"H100x8\"\n  cpus         = \"lots\"\n}\n");
    let r = p.kiln(&["plan"]);
    assert_ne!(r.code(), 0, "{}", r.stdout());
    let err = r.stderr();
    assert!(err.contains("main.kiln.hcl:3:18"), "points at the value of `accelerators`: {err}");
    assert!(err.contains("did you mean \"H100:8\"?"), "{err}");
    assert!(err.contains("main.kiln.hcl:4:18"), "points at the value of `cpus`: {err}");

    p.write("main.kiln.hcl", "resource \"cluster\" \"train\" {\n  accelerators = [\"H100:8\", \"H1000:8\"]\n}\n");
    let err = p.kiln(&["plan"]).stderr();
    assert!(err.contains("main.kiln.hcl:2:18") && err.contains("did you mean \"H100:8\"?"), "{err}");
}

/// Issue 15: a bad `recovery` block is an error at the attribute inside the block, with a hint.
#[test]
fn a_bad_recovery_block_is_an_error_at_its_attribute() {
    let p = Project::new(
        "resource \"cluster\" \"c\" {}\n\nresource \"job\" \"j\" {\n  cluster = cluster.c\n  run     = \"true\"\n\n  recovery {\n    on            = [\"oom\"]\n    strategy      = \"next_cloud\"\n    give_up_after = \"soon\"\n  }\n}\n",
    );
    let err = p.kiln(&["validate"]).code_is(1).stderr();
    assert!(err.contains("main.kiln.hcl:8:21") && err.contains("`oom` is not a failure category"), "at `on`'s value: {err}");
    assert!(
        err.contains("main.kiln.hcl:9:21") && err.contains("`next_cloud` is not a recovery strategy") && err.contains("\"next_region\""),
        "at `strategy`: {err}"
    );
    assert!(err.contains("main.kiln.hcl:10:21") && err.contains("recovery.give_up_after"), "at `give_up_after`: {err}");
}

// ---------------------------------------------------------------------------------------------
// `kiln watch` (issue 15): recovery of local jobs

/// The quickstart training `steps` steps, `sleep` seconds each, a checkpoint every 5, with
/// `recovery` (the block's body) on its job.
fn recovered_quickstart(steps: u32, sleep: &str, recovery: &str) -> LocalProject {
    let p = LocalProject::quickstart();
    p.edit(
        "TRAIN_STEPS = \"100\"",
        &format!("TRAIN_STEPS      = \"{steps}\"\n    TRAIN_STEP_SLEEP = \"{sleep}\"\n    CHECKPOINT_EVERY = \"5\""),
    );
    p.edit("  checkpoint {", &format!("  recovery {{\n{recovery}\n  }}\n\n  checkpoint {{"));
    p
}

/// `kiln jobs events ADDRESS --json`, as (kind, category, attempt).
fn events(p: &LocalProject, address: &str) -> Vec<(String, String, u64)> {
    job_events(&p.kiln(&["jobs", "events", address, "--json"]).ok().stdout())
}

/// The job's `restarts` in state; `None` while it is not there (between the destroy and the
/// create of its replacement).
fn restarts(p: &LocalProject, address: &str) -> Option<u64> {
    let show = p.show();
    show["resources"].as_array()?.iter().find(|r| r["address"] == address)?["values"]["restarts"].as_u64()
}

/// Applies, waits for the job's first checkpoint, then SIGKILLs every process of the job (it is
/// `lost`).
fn apply_then_lose_the_job(p: &LocalProject) {
    p.kiln(&["apply", "--auto-approve"]).ok();
    let dir = quickstart_checkpoint_dir(p);
    wait_until("the job writes a checkpoint", BOUND, || dir.join("ckpt-000005.json").exists());
    let job = p.job("job.train");
    job.kill_9();
    wait_until("the killed processes are gone", BOUND, || job.live().is_empty());
}

fn final_loss(p: &LocalProject) -> f64 {
    let path = quickstart_checkpoint_dir(p).join("result.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["final_loss"].as_f64().unwrap_or_else(|| panic!("no final_loss: {text}"))
}

#[test]
fn local_watch_restarts_a_killed_job_from_its_checkpoint_and_it_ends_as_an_uninterrupted_run() {
    let reference = recovered_quickstart(40, "0", "    max_restarts = 2");
    reference.kiln(&["apply", "--auto-approve", "--wait"]).ok();

    let p = recovered_quickstart(40, "0.2", "    max_restarts = 2");
    p.kiln(&["apply", "--auto-approve"]).ok();
    let mut watch = p.spawn(&["watch", "--interval", "1s"]);
    let dir = quickstart_checkpoint_dir(&p);
    wait_until("the job writes its second checkpoint", BOUND, || dir.join("ckpt-000010.json").exists());
    let old = p.job("job.train");
    old.kill_9();
    wait_until("kiln watch starts the job again", BOUND, || restarts(&p, "job.train") == Some(1) || !watch.running());
    assert!(watch.running(), "kiln watch stopped:\n{}", watch.stderr_so_far());
    let new = p.job("job.train");
    assert_ne!(new.id, old.id, "a new job");
    wait_until("the restarted job finishes", BOUND, || dir.join("result.json").exists());
    let log = p.kiln(&["logs", "job.train", "--node", "0"]).ok().stdout();
    assert!(log.contains("rank 0: resuming from checkpoint at step "), "it resumes, not starts over:\n{log}");
    assert_eq!(final_loss(&p), final_loss(&reference), "the result of an uninterrupted run");
    // Every attempt's logs are kept: the first run's, and the restart's (the job now).
    let first = p.kiln(&["logs", "job.train", "--attempt", "0", "--node", "0"]).ok();
    assert!(first.stdout().contains("rank 0: starting,") && !first.stdout().contains("resuming"), "{}", first.stdout());
    assert!(first.stderr().contains("these are the logs of its attempt 0"), "{}", first.stderr());
    let second = p.kiln(&["logs", "job.train", "--attempt", "1", "--node", "0"]).ok().stdout();
    assert!(second.starts_with(&log), "attempt 1 is the job now:\n{second}");
    let none = p.kiln(&["logs", "job.train", "--attempt", "7"]).code_is(1).stderr();
    assert!(none.contains("no logs of attempt 7 of job.train are kept (it is at attempt 1 now)"), "{none}");

    let seen = events(&p, "job.train");
    assert_eq!(
        seen,
        [("detected".to_string(), "host_failure".to_string(), 0), ("relaunched".to_string(), "host_failure".to_string(), 1)],
        "{seen:?}"
    );
    let table = p.kiln(&["jobs", "events", "job.train"]).ok().stdout();
    assert!(table.contains("relaunched") && table.contains("resumes from its last checkpoint"), "{table}");
    watch.signal("INT");
    let stopped = watch.wait(BOUND);
    assert_eq!(stopped.code(), 0, "Ctrl-C stops kiln watch cleanly:\n{}", stopped.stderr());
    wait_until("the job succeeds", BOUND, || p.jobs_row("job.train").0 == "succeeded");
    assert_eq!(p.jobs_row("job.train").1, "1", "`kiln jobs` shows the restart");
    let jobs: serde_json::Value = serde_json::from_str(&p.kiln(&["jobs", "--json"]).ok().stdout()).unwrap();
    assert!(jobs["jobs"][0]["time_lost_seconds"].is_u64(), "and the time it lost: {jobs}");
    let plan = p.kiln(&["plan"]).ok().stderr();
    assert!(
        plan.contains("job.train: attempt 1, restarted 1 time by kiln watch; last event: relaunched (host_failure) at "),
        "the plan shows the job's recovery:\n{plan}"
    );
}

#[test]
fn local_watch_restarts_errors_it_is_told_to_then_gives_up_and_leaves_others_alone() {
    // Fails at step 3 every time: `error` restarts it once, then watch gives up.
    let notify = "    notify {\n      command = \"echo \\\"$KILN_EVENT $KILN_EVENT_JOB $KILN_EVENT_CATEGORY $KILN_EVENT_ATTEMPT\\\" >> events.log\"\n    }";
    let p = recovered_quickstart(40, "0", &format!("    on           = [\"error\"]\n    max_restarts = 1\n{notify}"));
    p.edit("TRAIN_STEPS      = \"40\"", "TRAIN_STEPS      = \"40\"\n    TRAIN_FAIL_AT_STEP = \"3\"");
    p.kiln(&["apply", "--auto-approve", "--wait"]).code_is(1);
    p.kiln(&["watch", "--once"]).ok();
    assert_eq!(p.values("job.train")["restarts"], 1);
    wait_until("the restarted job fails again", BOUND, || p.jobs_row("job.train").0 == "failed");
    let out = p.kiln(&["watch", "--once"]).ok();
    assert!(out.stderr().contains("gave up"), "{}", out.stderr());
    assert_eq!(p.values("job.train")["restarts"], 1, "no restart past max_restarts");
    p.kiln(&["watch", "--once"]).ok();
    let kinds: Vec<String> = events(&p, "job.train").into_iter().map(|e| e.0).collect();
    assert_eq!(kinds, ["detected", "relaunched", "gave_up"], "an event is recorded once, however often watch looks");
    assert_eq!(
        p.read("events.log"),
        "detected job.train error 0\nrelaunched job.train error 1\ngave_up job.train error 1\n",
        "notify.command runs once per event, with the event in its environment"
    );

    // Without "error" in `on`, a failure is recorded and the job is left failed.
    let q = recovered_quickstart(40, "0", "    max_restarts = 3");
    q.edit("TRAIN_STEPS      = \"40\"", "TRAIN_STEPS      = \"40\"\n    TRAIN_FAIL_AT_STEP = \"3\"");
    q.kiln(&["apply", "--auto-approve", "--wait"]).code_is(1);
    q.kiln(&["watch", "--once"]).ok();
    assert_eq!(q.values("job.train")["restarts"], 0);
    assert_eq!(events(&q, "job.train"), [("not_restarted".to_string(), "error".to_string(), 0)]);
}

#[test]
fn local_watch_pauses_recovery_while_the_configuration_differs_from_what_was_applied() {
    let p = recovered_quickstart(100000, "0.1", "    max_restarts = 2");
    apply_then_lose_the_job(&p);
    // An edit nobody applied: watch must not apply it.
    p.edit("force_destroy = true", "force_destroy = false");
    let out = p.kiln(&["watch", "--once"]).ok();
    assert!(out.stderr().contains("recovery paused") && out.stderr().contains("the configuration differs"), "{}", out.stderr());
    assert_eq!(p.jobs_row("job.train").0, "lost", "the job is not restarted");
    assert_eq!(events(&p, "job.train"), [("paused".to_string(), "host_failure".to_string(), 0)]);

    // Once the configuration is what was applied again, the next round restarts the job.
    p.edit("force_destroy = false", "force_destroy = true");
    p.kiln(&["watch", "--once"]).ok();
    assert_eq!(p.values("job.train")["restarts"], 1);
    assert_eq!(p.jobs_row("job.train").0, "running");

    // A job people destroy stays destroyed: watch does not take it for a restart left undone.
    p.kiln(&["destroy", "--auto-approve", "--target", "job.train"]).ok();
    p.kiln(&["watch", "--once"]).ok();
    assert!(!p.state_list().contains(&"job.train".to_string()), "{:?}", p.state_list());
    assert_eq!(events(&p, "job.train").last().map(|e| e.0.as_str()), Some("destroyed"));
}

#[test]
fn local_watch_killed_mid_restart_is_taken_up_by_the_next_with_one_job() {
    let p = recovered_quickstart(100000, "0.1", "    max_restarts = 5");
    apply_then_lose_the_job(&p);
    let mut watch = p.spawn(&["watch", "--interval", "1s"]);
    wait_until("kiln watch starts the restart", BOUND, || watch.stderr_so_far().contains("starting it again") || !watch.running());
    // Killed somewhere in the restart's apply (where varies with the machine): it leaves its lock.
    watch.kill9();

    let out = p.kiln(&["watch", "--once"]).ok();
    let running = || p.jobs_on_disk().iter().filter(|j| !j.live().is_empty()).count();
    wait_until("one job runs", BOUND, || running() == 1);
    assert_eq!(p.jobs_row("job.train").0, "running", "{}", out.stderr());
    p.kiln(&["watch", "--once"]).ok();
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
    assert_eq!(running(), 1, "no duplicate job");
    assert_eq!(p.job_dirs().len(), 1, "nothing left of the killed restart: {:?}", p.job_dirs());
    let kinds: Vec<String> = events(&p, "job.train").into_iter().map(|e| e.0).collect();
    assert_eq!(kinds.first().map(String::as_str), Some("detected"), "{kinds:?}");
    assert!(kinds.contains(&"relaunched".to_string()), "{kinds:?}");
}

#[test]
fn local_watch_restarts_pass_the_policies_a_plan_does() {
    let p = recovered_quickstart(100000, "0.1", "    max_restarts = 5");
    // Policies see the restart's plan: one may cap restarts below the recovery block's.
    p.write(
        "policy.kiln.hcl",
        "policy \"restarts\" {\n  rule {\n    condition = try(change.after.restarts, 0) < 1\n    message   = \"${change.address}: restarted jobs need a person\"\n  }\n}\n",
    );
    apply_then_lose_the_job(&p);
    let out = p.kiln(&["watch", "--once"]).ok();
    assert!(out.stderr().contains("restarted jobs need a person"), "{}", out.stderr());
    assert_eq!(p.jobs_row("job.train").0, "lost", "not restarted");
    let seen = events(&p, "job.train");
    assert_eq!(seen.last().map(|e| e.0.as_str()), Some("paused"), "{seen:?}");
}
