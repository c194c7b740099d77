//! The `slurm` provider end to end (issue 6): `examples/slurm` applied through the binary on a
//! real single-node Slurm cluster (munged, slurmctld and slurmd started by
//! `tests/harness/slurm/start.sh`, released when this test binary exits), and checked through
//! Slurm's own commands: the 2-task job runs and completes, plan is then empty, `kiln logs`
//! reads its output file, a script change replaces it (cancelling a job that still runs), and
//! destroy cancels a running job. These tests never skip: if Slurm cannot be started they fail
//! with the script's output.
//!
//! [`cluster`] starts the cluster; other modules planning a Slurm example call it first.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::{copy_dir, repo_root, wait_until, Project, Spawned};

/// Safety bound for waiting on a job to reach a point; not a speed requirement.
const BOUND: Duration = Duration::from_secs(120);

/// The Slurm cluster's directory, once it is up (started on first use).
pub fn cluster() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(std::env::var("KILN_SLURM_DIR").unwrap_or_else(|_| "/tmp/kiln-slurm".to_string()));
        let pid = std::process::id();
        let out = Command::new("bash")
            .arg(repo_root().join("tests/harness/slurm/start.sh"))
            .env("SLURM_DIR", &dir)
            .env("KILN_SLURM_HOLDER", pid.to_string())
            .output()
            .unwrap_or_else(|e| panic!("cannot run tests/harness/slurm/start.sh: {e}"));
        let stop = repo_root().join("tests/harness/slurm/stop.sh");
        let command = format!("SLURM_DIR='{}' bash '{}' --release {pid}", dir.display(), stop.display());
        kiln_testkit::when_this_process_exits(&command, "releases the Slurm cluster");
        assert!(
            out.status.success(),
            "the Slurm test cluster could not be started (tests/harness/slurm/start.sh needs root, and slurm-wlm and munge or apt-get):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// A Slurm command's output (to check what kiln did, independently of it).
fn slurm(args: &[&str]) -> String {
    cluster();
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The job's state in `squeue` (empty once Slurm forgot it).
fn squeue_state(job_id: &str) -> String {
    slurm(&["squeue", "-h", "--states=all", "-j", job_id, "-o", "%T"]).trim().to_string()
}

/// A copy of `examples/slurm`; on drop, `kiln destroy` runs and every job it submitted is
/// cancelled, so no job outlives its test, pass or fail.
struct SlurmProject {
    p: Project,
    jobs: std::cell::RefCell<Vec<String>>,
}

impl std::ops::Deref for SlurmProject {
    type Target = Project;
    fn deref(&self) -> &Project {
        &self.p
    }
}

impl SlurmProject {
    fn example() -> Self {
        cluster();
        let p = Project::empty();
        copy_dir(&repo_root().join("examples/slurm"), p.path(), &[]);
        SlurmProject { p, jobs: Default::default() }
    }

    /// Replaces `from` (which must occur) in `main.kiln.hcl`.
    fn edit(&self, from: &str, to: &str) {
        let text = self.read("main.kiln.hcl");
        assert!(text.contains(from), "main.kiln.hcl has no `{from}`:\n{text}");
        self.write("main.kiln.hcl", &text.replacen(from, to, 1));
    }

    /// The attributes of `address` in state, from `kiln show --json`.
    fn values(&self, address: &str) -> serde_json::Value {
        let out = self.kiln(&["show", "--json"]).ok().stdout();
        let show: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("show --json is not JSON ({e}): {out}"));
        let resources = show["resources"].as_array().cloned().unwrap_or_default();
        let r = resources.iter().find(|r| r["address"] == address).unwrap_or_else(|| panic!("{address} is not in state: {show}"));
        r["values"].clone()
    }

    /// The Slurm job ID of `job.hello` (remembered for cleanup).
    fn job_id(&self) -> String {
        let v = self.values("job.hello");
        let id = v["job_id"].as_str().unwrap_or_else(|| panic!("job.hello has no job_id: {v}")).to_string();
        self.jobs.borrow_mut().push(id.clone());
        id
    }
}

impl Drop for SlurmProject {
    fn drop(&mut self) {
        // Never panics: it may run while a failed test unwinds.
        let mut destroy = Spawned::start(self.p.command(&["destroy", "--auto-approve"]));
        let start = Instant::now();
        while destroy.running() && start.elapsed() < Duration::from_secs(150) {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(destroy);
        let jobs = self.jobs.borrow();
        if !jobs.is_empty() {
            let _ = Command::new("scancel").args(jobs.iter()).output();
        }
    }
}

#[test]
fn slurm_example_runs_a_two_task_job_logs_it_and_replaces_it_after_a_script_change() {
    let p = SlurmProject::example();
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    let id = p.job_id();
    let v = p.values("job.hello");
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["exit_code"], 0, "{v}");
    assert_eq!(v["tasks"], 2, "{v}");
    assert_eq!(p.output_json("status"), "succeeded");
    assert_eq!(p.output_json("job_id"), id.as_str());

    // Slurm ran it: the job completion log records it, with the 2 tasks asked for.
    let acct = slurm(&["sacct", "-c", "-n", "--parsable2", "-j", &id, "-o", "JobID,JobName,State,ExitCode"]);
    assert!(acct.lines().any(|l| l.starts_with(&format!("{id}|kiln-hello-")) && l.ends_with("|COMPLETED|0:0")), "{acct}");
    let rec = slurm(&["scontrol", "show", "job", "-o", &id]);
    assert!(rec.contains("NumTasks=2") && rec.contains("Partition=debug"), "{rec}");

    // Nothing left to do; the refresh read the job with one squeue call, and needed no sacct
    // call for a job whose end it had already seen.
    let r = p.kiln(&["plan", "--detailed-exitcode", "--verbose"]).code_is(0);
    let verbose = format!("{}{}", r.stdout(), r.stderr());
    assert!(verbose.contains("slurm: 2 API call(s): sinfo 1, squeue 1"), "{verbose}");

    // The output file, through kiln logs.
    let log = p.kiln(&["logs", "job.hello"]).ok().stdout();
    for line in [
        "setting up on ",
        "task 0 of 2 on node 0 of 1 (127.0.0.1), master 127.0.0.1:",
        "task 1 of 2 on node 0 of 1",
        "task 0 done",
        "task 1 done",
    ] {
        assert!(log.contains(line), "`{line}` in the log:\n{log}");
    }
    let r = p.kiln(&["logs", "job.hello", "--node", "1"]).code_is(1);
    assert!(r.stderr().contains("one output file"), "{}", r.stderr());

    // A script change plans a replacement showing the changed line, and runs the new script.
    p.edit("echo \"task $KILN_TASK_RANK done\"", "echo \"task $KILN_TASK_RANK finished\"");
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("# job.hello must be replaced (`run` forces replacement)"), "{plan}");
    let rows: Vec<&str> = plan.lines().map(str::trim).collect();
    for row in ["- echo \"task $KILN_TASK_RANK done\"", "+ echo \"task $KILN_TASK_RANK finished\"", "sleep 2"] {
        assert!(rows.contains(&row), "a `{row}` row:\n{plan}");
    }
    assert!(plan.contains("Plan: 1 to add, 0 to change, 1 to destroy."), "{plan}");
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    let new_id = p.job_id();
    assert_ne!(new_id, id, "a new Slurm job");
    let log = p.kiln(&["logs", "job.hello"]).ok().stdout();
    assert!(log.contains("task 0 finished") && log.contains("task 1 finished") && !log.contains("done"), "{log}");

    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert_eq!(p.state_list(), Vec::<String>::new());
    assert_eq!(squeue_state(&new_id), "COMPLETED", "a finished job stays as it was");
}

#[test]
fn slurm_replacing_and_destroying_running_jobs_cancels_them() {
    let p = SlurmProject::example();
    p.edit("sleep 2", "sleep 300");
    p.kiln(&["apply", "--auto-approve"]).ok();
    let first = p.job_id();
    wait_until("the first job runs", BOUND, || squeue_state(&first) == "RUNNING");
    // The node's state moved (idle → mixed) and the job runs: news from the refresh, nothing to
    // change (the job is not updated for its cluster's node states).
    // (Outputs may have changed too, depending on what the apply saw.)
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("Plan: 0 to add, 0 to change, 0 to destroy.") || plan.contains("No changes."), "{plan}");
    wait_until("kiln jobs shows it running", BOUND, || {
        p.kiln(&["jobs"]).ok().stdout().lines().any(|l| l.split_whitespace().take(2).eq(["job.hello", "running"]))
    });

    // A script change replaces the running job: the old one is cancelled.
    p.edit("echo \"task $KILN_TASK_RANK done\"", "echo \"task $KILN_TASK_RANK stopped\"");
    p.kiln(&["apply", "--auto-approve"]).ok();
    let second = p.job_id();
    assert_ne!(second, first);
    assert_eq!(squeue_state(&first), "CANCELLED");
    wait_until("the second job runs", BOUND, || squeue_state(&second) == "RUNNING");

    // Destroy cancels it too.
    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert_eq!(squeue_state(&second), "CANCELLED");
    assert_eq!(p.state_list(), Vec::<String>::new());
    assert!(!p.path().join(".kiln/slurm/jobs").read_dir().is_ok_and(|mut d| d.next().is_some()), "the jobs' files are removed");
}

/// Issue 15: a Slurm job with a `recovery` block that the harness cancels (Slurm's CANCELLED:
/// a failure, category `error`) is submitted again by `kiln watch`, with no one applying.
#[test]
fn slurm_watch_resubmits_a_cancelled_job() {
    let p = SlurmProject::example();
    p.edit("sleep 2", "sleep 300");
    p.edit(
        "  time_limit = \"10:00\"\n",
        "  time_limit = \"10:00\"\n\n  recovery {\n    on           = [\"error\"]\n    max_restarts = 2\n  }\n",
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    let first = p.job_id();
    wait_until("the first job runs", BOUND, || squeue_state(&first) == "RUNNING");
    slurm(&["scancel", &first]);
    wait_until("kiln sees the job failed", BOUND, || {
        p.kiln(&["jobs"]).ok().stdout().lines().any(|l| l.split_whitespace().take(2).eq(["job.hello", "failed"]))
    });

    let out = p.kiln(&["watch", "--once"]).ok();
    assert!(out.stderr().contains("job.hello: error"), "{}", out.stderr());
    let second = p.job_id();
    assert_ne!(second, first, "a new submission");
    assert_eq!(p.values("job.hello")["restarts"], 1);
    wait_until("the second job runs", BOUND, || squeue_state(&second) == "RUNNING");
    let events = crate::support::job_events(&p.kiln(&["jobs", "events", "job.hello", "--json"]).ok().stdout());
    assert_eq!(events, [("detected".into(), "error".into(), 0), ("relaunched".into(), "error".into(), 1)]);
}
