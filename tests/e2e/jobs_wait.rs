//! `apply --wait`, `kiln run` and signals around jobs (issue 13), with the `local` provider: jobs
//! are shell scripts on this machine that end quickly or wait for a file the test writes. Every
//! project is a [`Jobs`], whose drop destroys what it started (and kills what a failed destroy
//! left), so no job outlives its test.

use std::time::{Duration, Instant};

use crate::support::{wait_until, Project, Run, Spawned, RUN_TIMEOUT};

/// Safety bound for waiting on a background run to reach a point; not a speed requirement.
const BOUND: Duration = Duration::from_secs(90);

struct Jobs {
    p: Project,
}

impl std::ops::Deref for Jobs {
    type Target = Project;
    fn deref(&self) -> &Project {
        &self.p
    }
}

impl Jobs {
    fn new(config: &str) -> Self {
        Jobs { p: Project::new(config) }
    }

    /// `kiln ARGS` in the background with progress lines on stderr and `env`.
    fn spawn_loud(&self, args: &[&str], env: &[(&str, &str)]) -> Spawned {
        let mut c = self.command(args);
        c.env_remove("KILN_QUIET");
        c.envs(env.iter().copied());
        Spawned::start(c)
    }

    /// A job's attributes in state.
    fn values(&self, address: &str) -> serde_json::Value {
        let out = self.kiln(&["show", "--json"]).ok().stdout();
        let show: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("show --json is not JSON ({e}): {out}"));
        let resources = show["resources"].as_array().cloned().unwrap_or_default();
        resources.into_iter().find(|r| r["address"] == address).unwrap_or_else(|| panic!("{address} is not in state: {show}"))["values"]
            .clone()
    }

    /// The process groups of every job this project started, from `.kiln/jobs/ID/node-N.pid`,
    /// with the job's ID.
    fn groups_on_disk(&self) -> Vec<(String, u32)> {
        let Ok(dirs) = std::fs::read_dir(self.path().join(".kiln/jobs")) else { return Vec::new() };
        let mut out = Vec::new();
        for d in dirs.flatten().filter(|d| d.path().is_dir()) {
            let id = d.file_name().to_string_lossy().into_owned();
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                if f.file_name().to_string_lossy().ends_with(".pid") {
                    if let Some(g) = std::fs::read_to_string(f.path()).ok().and_then(|t| t.trim().parse().ok()) {
                        out.push((id.clone(), g));
                    }
                }
            }
        }
        out
    }

    /// Whether a process of the job `id` is alive in process group `g`.
    fn alive(id: &str, g: u32) -> bool {
        std::fs::read(format!("/proc/{g}/environ"))
            .map(|e| e.split(|b| *b == 0).any(|v| v == format!("KILN_JOB_ID={id}").as_bytes()))
            .unwrap_or(false)
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        // Never panics: it may run while a failed test unwinds.
        let groups = self.groups_on_disk();
        let mut destroy = Spawned::start(self.p.command(&["destroy", "--auto-approve"]));
        let start = Instant::now();
        while destroy.running() && start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(destroy);
        for (id, g) in groups.into_iter().chain(self.groups_on_disk()) {
            if Jobs::alive(&id, g) {
                let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{g}")]).status();
            }
        }
    }
}

/// A one-node job `j` running `run` (a shell script) on cluster `c` of `nodes` nodes.
fn job(nodes: usize, run: &str) -> String {
    format!("resource \"cluster\" \"c\" {{\n  nodes = {nodes}\n}}\n\nresource \"job\" \"j\" {{\n  cluster = cluster.c\n  run     = <<-EOT\n{run}\n  EOT\n}}\n")
}

/// Waits until the background run's stderr holds `text` (or the run ended).
#[track_caller]
fn until_stderr(run: &mut Spawned, text: &str) {
    wait_until(&format!("stderr has `{text}`"), BOUND, || run.stderr_so_far().contains(text) || !run.running());
    assert!(run.running(), "ended before printing `{text}`:\n{}", run.stderr_so_far());
}

/// Item 1: a failed job fails `apply --wait` with an error naming the job, the node that failed,
/// its exit code and its last log lines (not the whole log).
#[test]
fn a_failed_job_fails_apply_wait_with_its_node_exit_code_and_last_log_lines() {
    let p = Jobs::new(&job(
        2,
        r#"    if [ "$KILN_NODE_RANK" = 1 ]; then
      for i in $(seq 1 30); do echo "step $i of node 1"; done
      echo "CUDA out of memory"
      exit 3
    fi
    echo "node 0 is fine""#,
    ));
    let r = p.kiln(&["apply", "--auto-approve", "--wait"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("E-JOB-FAILED"), "{err}");
    assert!(err.contains("job `job.j` failed: node 1 exited with code 3"), "{err}");
    assert!(err.contains("CUDA out of memory") && err.contains("step 30 of node 1") && err.contains("step 12 of node 1"), "{err}");
    assert!(!err.contains("step 11 of node 1"), "only the last 20 lines: {err}");
    assert!(!err.contains("node 0 is fine"), "node 0 did not fail: {err}");
    assert!(err.contains("kiln logs job.j"), "says where the whole log is: {err}");
    // The error is the last thing said.
    let failed_at = err.find("E-JOB-FAILED").unwrap();
    assert!(!err[failed_at..].contains("Apply complete"), "{err}");
    assert!(!p.lock_path().exists());
    assert_eq!(p.values("job.j")["status"], "failed", "state was refreshed with the result");
}

/// Item 1: a job that was lost (its processes killed) fails `apply --wait` too, saying so.
#[test]
fn a_lost_job_fails_apply_wait() {
    let p = Jobs::new(&job(1, "    echo started\n    while true; do sleep 0.1; done"));
    let mut apply = p.spawn_loud(&["apply", "--auto-approve", "--wait"], &[]);
    until_stderr(&mut apply, "job.j: running");
    for (id, g) in p.groups_on_disk() {
        if Jobs::alive(&id, g) {
            std::process::Command::new("kill").args(["-KILL", "--", &format!("-{g}")]).status().unwrap();
        }
    }
    let r = apply.wait(RUN_TIMEOUT).code_is(1);
    let err = r.stderr();
    assert!(err.contains("E-JOB-LOST") && err.contains("job `job.j` was lost"), "{err}");
    assert!(!p.lock_path().exists());
}

/// Item 2: the state lock is released while `apply --wait` waits: `kiln plan` works meanwhile,
/// and the wait still ends with the job's result refreshed into state.
#[test]
fn apply_wait_releases_the_state_lock_while_waiting() {
    let p = Jobs::new(&job(1, "    while [ ! -e go ]; do sleep 0.1; done\n    echo done"));
    let mut apply = p.spawn_loud(&["apply", "--auto-approve", "--wait"], &[]);
    until_stderr(&mut apply, "Waiting for jobs to finish");
    assert!(!p.lock_path().exists(), "no lock while waiting");
    let plan = p.kiln(&["plan"]).ok();
    assert!(plan.stdout().contains("No changes"), "{}", plan.stdout());
    assert!(apply.running(), "still waiting");
    p.write("go", "");
    let r = apply.wait(RUN_TIMEOUT).ok();
    assert!(r.stderr().contains("job.j: succeeded"), "{}", r.stderr());
    assert_eq!(p.values("job.j")["status"], "succeeded", "the refresh after the wait took the lock again");
    assert!(!p.lock_path().exists());
}

/// Item 3: while waiting, a periodic "Still running..." line with the elapsed time and the job's
/// last log line (every KILN_WAIT_PROGRESS_INTERVAL).
#[test]
fn apply_wait_says_periodically_that_a_job_is_still_running_with_its_last_line() {
    let p = Jobs::new(&job(1, "    echo \"epoch 1 loss 0.5\"\n    while [ ! -e go ]; do sleep 0.1; done"));
    let mut apply = p.spawn_loud(&["apply", "--auto-approve", "--wait"], &[("KILN_WAIT_PROGRESS_INTERVAL", "1s")]);
    until_stderr(&mut apply, "last output: epoch 1 loss 0.5");
    let err = apply.stderr_so_far();
    let still = err.lines().find(|l| l.starts_with("job.j: Still running... [")).unwrap_or_else(|| panic!("{err}"));
    let re = regex::Regex::new(r"^job\.j: Still running\.\.\. \[(\d+h)?(\d+m)?\d+s elapsed\]; last output: epoch 1 loss 0\.5$").unwrap();
    assert!(re.is_match(still), "{still}");
    p.write("go", "");
    apply.wait(RUN_TIMEOUT).ok();
    let help = p.kiln(&["--help"]).ok().stdout();
    assert!(help.contains("KILN_WAIT_PROGRESS_INTERVAL"), "documented in --help: {help}");
}

/// Item 4: `apply --wait --logs` streams every node's output, each line prefixed by job and node
/// (a last line without a newline included).
#[test]
fn apply_wait_logs_streams_every_nodes_output_prefixed_by_node() {
    let p = Jobs::new(&job(2, "    echo \"hello from $KILN_NODE_RANK\"\n    echo \"second line\"\n    printf 'no newline'"));
    let r = p.kiln(&["apply", "--auto-approve", "--wait", "--logs"]).ok();
    let out = r.stdout();
    for node in 0..2 {
        for line in [format!("hello from {node}"), "second line".to_string(), "no newline".to_string()] {
            let want = format!("job.j[node {node}] | {line}\n");
            assert_eq!(out.matches(&want).count(), 1, "once: {want:?} in:\n{out}");
        }
    }
    // Without --logs, nothing of the jobs' output is printed.
    p.kiln(&["apply", "--auto-approve", "--replace", "job.j"]).ok();
    let quiet = p.kiln(&["apply", "--auto-approve", "--wait"]).ok().stdout();
    assert!(!quiet.contains("hello from"), "{quiet}");
}

/// Item 5: `kiln run ADDRESS` replaces the job as requested (only it), streams its output and
/// waits; a failed run fails; an address that is not a job is refused; without a terminal it
/// asks for --auto-approve.
#[test]
fn kiln_run_runs_a_job_again_and_streams_its_output() {
    let p = Jobs::new(&job(1, "    echo \"run at $KILN_JOB_ID\"\n    [ ! -e fail ]"));
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    let first = p.values("job.j")["job_id"].as_str().unwrap().to_string();
    let cluster = p.values("cluster.c")["id"].clone();

    let r = p.kiln(&["run", "job.j", "--auto-approve"]).ok();
    let second = p.values("job.j")["job_id"].as_str().unwrap().to_string();
    assert_ne!(first, second, "a new job");
    let out = r.stdout();
    assert!(out.contains("as requested"), "the plan is printed: {out}");
    assert!(out.contains("Plan: 1 to add, 0 to change, 1 to destroy."), "only the job: {out}");
    assert!(out.contains(&format!("job.j[node 0] | run at {second}\n")), "streamed: {out}");
    assert_eq!(p.values("cluster.c")["id"], cluster, "the cluster is untouched");
    assert_eq!(p.values("job.j")["status"], "succeeded");

    p.write("fail", "");
    let r = p.kiln(&["run", "job.j", "--auto-approve"]).code_is(1);
    assert!(r.stderr().contains("E-JOB-FAILED") && r.stderr().contains("node 0 exited with code 1"), "{}", r.stderr());

    let r = p.kiln(&["run", "cluster.c", "--auto-approve"]).code_is(1);
    assert!(r.stderr().contains("E-RUN-NOT-JOB") && r.stderr().contains("`cluster.c` is not a job"), "{}", r.stderr());
    let r = p.kiln(&["run", "job.other", "--auto-approve"]).code_is(1);
    assert!(r.stderr().contains("E-RUN-UNKNOWN"), "{}", r.stderr());
    let r = p.kiln(&["run", "job.j"]).code_is(1);
    assert!(r.stderr().contains("E-APPLY-CONFIRM"), "{}", r.stderr());
    assert!(!p.lock_path().exists());
}

fn signalled(p: &Project, signal: &str, wait_for: &str, args: &[&str]) -> Run {
    let mut c = p.command(args);
    c.env_remove("KILN_QUIET");
    let mut run = Spawned::start(c);
    until_stderr(&mut run, wait_for);
    // A moment for the signal handler, installed as apply starts, to be surely in place.
    std::thread::sleep(Duration::from_millis(100));
    run.signal(signal);
    run.wait(RUN_TIMEOUT)
}

/// Item 6: SIGHUP (a closed terminal) and SIGTERM stop an apply as Ctrl-C does: completed work
/// saved, the lock released, state readable.
#[test]
fn sighup_and_sigterm_mid_apply_save_state_and_release_the_lock() {
    let mut chain = String::from("resource \"record\" \"r0\" {\n  input        = 0\n  create_delay = \"300ms\"\n}\n");
    for i in 1..12 {
        chain.push_str(&format!(
            "\nresource \"record\" \"r{i}\" {{\n  input        = record.r{}.id\n  create_delay = \"300ms\"\n}}\n",
            i - 1
        ));
    }
    for signal in ["HUP", "TERM"] {
        let p = Project::new(&chain);
        let r = signalled(&p, signal, "Creation complete", &["apply", "--auto-approve"]);
        assert_eq!(r.code(), 1, "SIG{signal}: {}", r.stderr());
        assert!(r.stderr().contains("Interrupt received"), "SIG{signal}: {}", r.stderr());
        assert!(!p.lock_path().exists(), "SIG{signal}: the lock is released");
        let listed = p.state_list();
        assert!(!listed.is_empty() && listed.len() < 12, "SIG{signal}: completed work saved, the rest left: {listed:?}");
        p.kiln(&["apply", "--auto-approve"]).ok();
        assert_eq!(p.state_list().len(), 12);
    }
}

/// Item 6: a signal while `apply --wait` waits stops the waiting (the job keeps running) and
/// leaves no lock.
#[test]
fn sighup_while_waiting_stops_waiting_and_leaves_no_lock() {
    let p = Jobs::new(&job(1, "    while [ ! -e go ]; do sleep 0.1; done"));
    let r = signalled(&p, "HUP", "Waiting for jobs to finish", &["apply", "--auto-approve", "--wait"]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(r.stderr().contains("stopped waiting; the jobs keep running"), "{}", r.stderr());
    assert!(!p.lock_path().exists());
    assert_eq!(p.values("job.j")["status"], "running");
    p.write("go", "");
}

/// Item 7: destroying (or replacing) a running job warns first, with --auto-approve on stderr.
#[test]
fn destroying_or_replacing_a_running_job_warns_first() {
    let p = Jobs::new(&job(1, "    while [ ! -e go ]; do sleep 0.1; done"));
    p.kiln(&["apply", "--auto-approve"]).ok();
    wait_until("the job runs", BOUND, || p.kiln(&["jobs"]).stdout().contains("running"));
    let r = p.kiln(&["apply", "--auto-approve", "--replace", "job.j"]).ok();
    let re = regex::Regex::new(r"Warning: job\.j is running \(started \d+[smhd] ago\): replacing it stops it and starts it again").unwrap();
    assert!(re.is_match(&r.stderr()), "{}", r.stderr());
    let r = p.kiln(&["destroy", "--auto-approve"]).ok();
    let re = regex::Regex::new(r"Warning: job\.j is running \(started \d+[smhd] ago\): destroying it stops it").unwrap();
    assert!(re.is_match(&r.stderr()), "{}", r.stderr());

    // A job that has ended is destroyed without a word.
    let p = Jobs::new(&job(1, "    true"));
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    let r = p.kiln(&["destroy", "--auto-approve"]).ok();
    assert!(!r.stderr().contains("Warning"), "{}", r.stderr());
}

/// Item 2: when someone else holds the lock as the wait ends, the jobs' result still stands and
/// the refresh that could not be made is said, with what to run later.
#[test]
fn a_lock_held_when_the_wait_ends_leaves_the_refresh_to_a_later_command() {
    let p = Jobs::new(&job(1, "    while [ ! -e go ]; do sleep 0.1; done"));
    let mut apply = p.spawn_loud(&["apply", "--auto-approve", "--wait"], &[]);
    until_stderr(&mut apply, "Waiting for jobs to finish");
    // Another run (this live test process) takes the lock.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap();
    let info = serde_json::json!({"id": "other-run", "operation": "apply", "who": "x@y", "host": host, "pid": std::process::id(),
        "created": "2026-01-01T00:00:00Z", "version": "0.1.0"});
    std::fs::write(p.lock_path(), info.to_string()).unwrap();
    p.write("go", "");
    let r = apply.wait(RUN_TIMEOUT).ok();
    let err = r.stderr();
    assert!(err.contains("job.j: succeeded"), "{err}");
    assert!(err.contains("not refreshed") && err.contains("kiln apply --refresh-only"), "{err}");
    assert_eq!(std::fs::read_to_string(p.lock_path()).unwrap(), info.to_string(), "the other run's lock is untouched");
    std::fs::remove_file(p.lock_path()).unwrap();
    assert_eq!(p.values("job.j")["status"], "running", "not refreshed yet");
}

/// Item 6: a signal that comes while nothing listens for one, here at the confirmation prompt
/// (the plan made, the lock held), ends kiln with the lock released. It used to kill the process
/// with the lock left behind (SIGHUP: a closed terminal). The prompt needs a terminal: `script`
/// gives kiln one.
#[test]
fn sighup_at_the_confirmation_prompt_releases_the_lock() {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    let p = Project::new("resource \"record\" \"r\" {\n  input = 1\n}\n");
    let command = format!("{} apply", crate::support::bin().display());
    let mut script = std::process::Command::new("script")
        .args(["-qfc", &command, "/dev/null"])
        .current_dir(p.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped()) // held open: no answer comes
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run script (util-linux) to give kiln a terminal");
    let mut out = script.stdout.take().unwrap();
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let said = |what: &str| text.lock().unwrap().contains(what);
    wait_until("kiln asks for confirmation", BOUND, || said("Enter a value") || script.try_wait().unwrap().is_some());
    let lock: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.lock_path()).expect("locked at the prompt")).unwrap();
    let kiln = lock["pid"].as_u64().unwrap();
    std::process::Command::new("kill").args(["-HUP", &kiln.to_string()]).status().unwrap();
    wait_until("kiln ends", BOUND, || said("Interrupted") || !std::path::Path::new(&format!("/proc/{kiln}")).exists());
    wait_until("kiln's process is gone", BOUND, || !std::path::Path::new(&format!("/proc/{kiln}/exe")).exists());
    let _ = script.kill();
    let _ = script.wait();
    reader.join().unwrap();
    let text = text.lock().unwrap().clone();
    assert!(text.contains("Interrupted (SIGHUP)") && text.contains("the state lock it held was released"), "{text}");
    assert!(!p.lock_path().exists(), "no stale lock");
    assert!(p.kiln(&["plan"]).ok().stdout().contains("Plan: 1 to add"), "state readable, nothing applied");
}

/// Item 2: with the lock free while waiting, another run may destroy the job waited for: the
/// wait ends, saying so, instead of waiting for a job that no longer exists.
#[test]
fn a_job_destroyed_by_another_run_while_waiting_ends_the_wait() {
    let p = Jobs::new(&job(1, "    while [ ! -e go ]; do sleep 0.1; done"));
    let mut apply = p.spawn_loud(&["apply", "--auto-approve", "--wait"], &[]);
    until_stderr(&mut apply, "job.j: running");
    p.kiln(&["destroy", "--auto-approve", "--target", "job.j"]).ok();
    let r = apply.wait(RUN_TIMEOUT).code_is(1);
    let err = r.stderr();
    assert!(err.contains("E-JOB-GONE") && err.contains("job `job.j` is gone"), "{err}");
    assert!(!p.lock_path().exists());
}

/// The refresh after the wait is a refresh-only plan: when the configuration changed while
/// waiting (the lock is free: a teammate applied a version with one more resource), the jobs'
/// end state and the outputs are still recorded, nothing else is changed (the other run's
/// resource stays), and the command says there are changes to apply.
#[test]
fn a_configuration_changed_while_waiting_still_gets_the_jobs_results_recorded() {
    let base = format!("{}\noutput \"job_status\" {{\n  value = job.j.status\n}}\n", job(1, "    while [ ! -e go ]; do sleep 0.1; done"));
    let p = Jobs::new(&base);
    let mut apply = p.spawn_loud(&["apply", "--auto-approve", "--wait"], &[]);
    until_stderr(&mut apply, "Waiting for jobs to finish");
    p.write("main.kiln.hcl", &format!("{base}\nresource \"record\" \"extra\" {{\n  input = 1\n}}\n"));
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert!(apply.running(), "still waiting");
    p.write("go", "");
    let r = apply.wait(RUN_TIMEOUT).ok();
    let err = r.stderr();
    assert!(err.contains("job.j: succeeded"), "{err}");
    assert!(err.contains("changes to apply") && err.contains("kiln plan"), "{err}");
    assert_eq!(p.values("job.j")["status"], "succeeded", "the job's end state was recorded");
    p.values("record.extra");
    let outputs = p.kiln(&["output", "--json"]).ok().stdout();
    let outputs: serde_json::Value = serde_json::from_str(&outputs).unwrap_or_else(|e| panic!("{e}: {outputs}"));
    assert_eq!(outputs["outputs"]["job_status"]["value"], "succeeded", "{outputs}");
    assert!(!p.lock_path().exists());
}
