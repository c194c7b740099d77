//! The crash suite (issue 10): `kiln apply` and `kiln destroy` killed with SIGKILL at many
//! points (at spread delays after start, and right after chosen progress lines), and stopped
//! with SIGINT once and twice, for records and for the local provider's buckets and jobs. After
//! every kill: state is readable, its serial never goes down, and the next apply (or destroy)
//! converges to "No changes" with no object twice and none orphaned: the real bucket
//! directories and job processes are counted, jobs by an environment marker each test gives its
//! job (`CRASH_MARK`), which the job's processes inherit whatever pid files say.
//!
//! Kill delays are spread over the run; where a kill lands in each run varies with the machine,
//! which is the point, and no assertion depends on it.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{wait_until, Project, Run, Spawned, RUN_TIMEOUT};

/// Safety bound for waiting on a background run to reach a point; not a speed requirement.
const BOUND: Duration = Duration::from_secs(120);

/// A project under crash testing, with the highest serial seen so far. Its drop destroys what is
/// left and kills any process still carrying its marker, so no job outlives a test.
struct Crash {
    p: Project,
    serial: u64,
    /// Runs that were really killed (still running when the signal came).
    kills: usize,
}

impl std::ops::Deref for Crash {
    type Target = Project;
    fn deref(&self) -> &Project {
        &self.p
    }
}

impl Drop for Crash {
    // The kill count goes to the test's captured stderr, for whoever reads a failure.
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        // Never panics: it may run while a failed test unwinds.
        eprintln!("crash suite: {} runs killed in {}", self.kills, std::thread::current().name().unwrap_or("?"));
        let mut destroy = Spawned::start(self.p.command(&["destroy", "--auto-approve"]));
        let start = Instant::now();
        while destroy.running() && start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(destroy);
        for g in marked_groups(&self.mark()) {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{g}")]).stderr(std::process::Stdio::null()).status();
        }
    }
}

impl Crash {
    fn new(config: &str) -> Self {
        let p = Project::empty();
        let mark = p.path().display().to_string();
        p.write("main.kiln.hcl", &config.replace("@MARK@", &mark));
        Crash { p, serial: 0, kills: 0 }
    }

    /// The value of `CRASH_MARK` in this project's jobs.
    fn mark(&self) -> String {
        format!("CRASH_MARK={}", self.p.path().display())
    }

    /// A kiln command with progress lines on stderr, and extra environment.
    fn loud(&self, args: &[&str], env: &[(&str, &str)]) -> Spawned {
        let mut c = self.p.command(args);
        c.env_remove("KILN_QUIET");
        c.envs(env.iter().copied());
        Spawned::start(c)
    }

    /// Records a run that was SIGKILLed (or finished first), then checks what any crash must
    /// leave: a readable state whose serial did not go down; then removes the dead run's lock.
    fn after_kill(&mut self, mut run: Spawned) {
        if run.running() {
            self.kills += 1;
            run.kill9();
        } else {
            run.wait(RUN_TIMEOUT);
        }
        self.check_state();
        self.unlock();
    }

    /// State is readable (`state list` works) and its serial never goes down.
    fn check_state(&mut self) {
        self.p.kiln(&["state", "list"]).ok();
        if self.p.state_path().exists() {
            let serial = self.p.state_json()["serial"].as_u64().expect("a serial");
            assert!(serial >= self.serial, "the serial went down from {} to {serial}", self.serial);
            self.serial = serial;
        }
    }

    /// A killed run leaves its lock; its holder is dead, so it is taken back by ID.
    fn unlock(&self) {
        let Ok(text) = std::fs::read_to_string(self.p.lock_path()) else { return };
        let lock: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("the lock file is not JSON ({e}): {text}"));
        let id = lock["id"].as_str().unwrap_or_else(|| panic!("the lock has no id: {lock}"));
        self.p.kiln(&["force-unlock", id]).ok();
    }

    /// Applies to the end, then a plan shows no changes and nothing is pending.
    fn converge(&mut self) {
        self.p.kiln(&["apply", "--auto-approve"]).ok();
        self.check_state();
        self.p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
        let pending = self.p.state_json().get("pending").and_then(|v| v.as_array().cloned()).unwrap_or_default();
        assert!(pending.is_empty(), "pending creates left in state: {pending:?}");
        let listed = self.p.state_list();
        let unique: BTreeSet<&String> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "an address twice in state: {listed:?}");
    }

    /// Destroys to the end: state is empty and nothing this project made is left.
    fn destroy_all(&mut self) {
        self.p.kiln(&["destroy", "--auto-approve"]).ok();
        self.check_state();
        assert_eq!(self.p.state_list(), Vec::<String>::new());
        assert_eq!(self.entries("buckets"), Vec::<String>::new(), "bucket directories left after destroy");
        assert_eq!(self.entries("jobs"), Vec::<String>::new(), "job directories left after destroy");
        settle(&self.mark(), 0);
        assert_eq!(marked_groups(&self.mark()), Vec::<u32>::new(), "job processes survive destroy");
    }

    /// Names in `.kiln/NAME/` (none when it does not exist).
    fn entries(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.p.path().join(".kiln").join(name))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Addresses in state of one kind.
    fn of_kind(&self, kind: &str) -> Vec<String> {
        self.p.state_list().into_iter().filter(|a| a.starts_with(&format!("{kind}."))).collect()
    }
}

/// Spreads `n` kill delays over `0..span`.
fn delays(n: usize, span: Duration) -> Vec<Duration> {
    (0..n).map(|i| span * i as u32 / n as u32).collect()
}

/// How long `args` takes when nothing kills it (kill delays are spread over this; it is no
/// assertion).
fn span(c: &Crash, args: &[&str]) -> Duration {
    let start = Instant::now();
    c.p.kiln(args).ok();
    start.elapsed()
}

/// Starts `args` and SIGKILLs it once `needle` is on its stderr, `extra` later (or when it ends).
fn kill_after_line(c: &mut Crash, args: &[&str], needle: &str, extra: Duration, env: &[(&str, &str)]) {
    let mut run = c.loud(args, env);
    let start = Instant::now();
    while run.running() && !run.stderr_so_far().contains(needle) {
        assert!(start.elapsed() < BOUND, "`{needle}` never came:\n{}", run.stderr_so_far());
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(extra);
    c.after_kill(run);
}

/// Starts `args` and SIGKILLs it after `delay`.
fn kill_after(c: &mut Crash, args: &[&str], delay: Duration) {
    let run = c.loud(args, &[]);
    std::thread::sleep(delay);
    c.after_kill(run);
}

/// Live process groups whose processes carry `entry` (`NAME=VALUE`) in their environment.
fn marked_groups(entry: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut groups: Vec<u32> = dir
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter(|e| std::fs::read(e.path().join("environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|x| x == entry.as_bytes())))
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let mut f = stat.rsplit_once(')')?.1.split_whitespace();
            let state = f.next()?;
            let _ppid = f.next()?;
            let pgrp: u32 = f.next()?.parse().ok()?;
            (state != "Z" && state != "X").then_some(pgrp)
        })
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// Gives processes that are on their way out (a held node whose kiln was killed reads
/// end-of-file and exits) a moment to go, up to a bound: waits until at most `n` marked groups
/// live. Processes that stay are what the caller's assertion then reports.
fn settle(entry: &str, n: usize) {
    let start = Instant::now();
    while marked_groups(entry).len() > n && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Records, each waiting `delay` in create, in two layers: `a` (count 6) and `b` (count 6,
/// each depending on an `a`), so a kill finds creates queued, running and done.
fn records(delay: &str) -> String {
    format!(
        "resource \"record\" \"a\" {{\n  count        = 6\n  input        = count.index\n  create_delay = \"{delay}\"\n}}\n\n\
         resource \"record\" \"b\" {{\n  count        = 6\n  input        = record.a[count.index].id\n  create_delay = \"{delay}\"\n}}\n"
    )
}

#[test]
fn sigkill_during_apply_of_records() {
    let mut c = Crash::new(&records("40ms"));
    let args = ["apply", "--auto-approve", "--parallelism", "3"];
    let whole = span(&c, &args);
    c.destroy_all();
    for d in delays(12, whole) {
        kill_after(&mut c, &args, d);
        // A second kill lands on what the first one left.
        kill_after(&mut c, &args, d / 2);
        c.converge();
        assert_eq!(c.state_list().len(), 12);
        c.destroy_all();
    }
}

#[test]
fn sigkill_during_destroy_of_records() {
    // Many records, so that a destroy lasts long enough to be killed part-way.
    let mut c = Crash::new("resource \"record\" \"r\" {\n  count = 300\n  input = count.index\n}\n");
    c.converge();
    let whole = span(&c, &["destroy", "--auto-approve"]);
    for d in delays(8, whole) {
        c.converge();
        kill_after(&mut c, &["destroy", "--auto-approve"], d);
        assert!(c.state_list().len() <= 300);
        c.destroy_all();
    }
}

/// Buckets between slow records: a kill lands before, during and after the buckets' creates.
const BUCKETS: &str = r#"
resource "record" "first" {
  input        = "first"
  create_delay = "150ms"
}

resource "bucket" "b" {
  count         = 10
  force_destroy = true
  depends_on    = [record.first]
}

resource "record" "middle" {
  input        = bucket.b[*].path
  create_delay = "150ms"
}

resource "bucket" "late" {
  depends_on = [record.middle]
}
"#;

/// The bucket directories on disk are exactly those state holds.
fn buckets_match_state(c: &Crash) {
    let on_disk = c.entries("buckets");
    let in_state = c.of_kind("bucket");
    assert_eq!(on_disk.len(), in_state.len(), "bucket directories {on_disk:?} but state has {in_state:?}");
}

/// After a killed destroy, no bucket directory is left that state does not hold (state may still
/// list a bucket already deleted: the next refresh drops it).
fn no_orphan_bucket(c: &Crash) {
    let on_disk = c.entries("buckets");
    let in_state = c.of_kind("bucket");
    assert!(on_disk.len() <= in_state.len(), "bucket directories {on_disk:?} but state has only {in_state:?}");
}

#[test]
fn sigkill_during_apply_and_destroy_of_buckets() {
    let mut c = Crash::new(BUCKETS);
    let apply = span(&c, &["apply", "--auto-approve"]);
    let destroy = span(&c, &["destroy", "--auto-approve"]);
    for (i, (a, d)) in delays(10, apply).into_iter().zip(delays(10, destroy)).enumerate() {
        kill_after(&mut c, &["apply", "--auto-approve"], a);
        if i % 3 == 2 {
            // Destroy right after the crash: what the killed apply made goes too.
            c.destroy_all();
        }
        c.converge();
        buckets_match_state(&c);
        assert_eq!(c.of_kind("bucket").len(), 11);
        kill_after(&mut c, &["destroy", "--auto-approve"], d);
        no_orphan_bucket(&c);
        c.destroy_all();
    }
    c.converge();
    for d in delays(4, Duration::from_millis(4)) {
        kill_after_line(&mut c, &["destroy", "--auto-approve"], "bucket.b[0]: Destroying...", d, &[]);
        no_orphan_bucket(&c);
        c.converge();
        buckets_match_state(&c);
    }
    c.destroy_all();
}

/// A bucket for checkpoints, a 2-node cluster and a job of two nodes that sleep (and would
/// ignore nothing: `sleep` dies on SIGTERM), marked with the project's path.
const JOB: &str = r#"
resource "bucket" "ckpt" {
  force_destroy = true
}

resource "cluster" "c" {
  nodes = 2
}

resource "job" "train" {
  cluster    = cluster.c
  run        = "sleep 300"
  stop_grace = 2
  env = {
    CRASH_MARK = "@MARK@"
  }
  checkpoint {
    bucket = bucket.ckpt
    path   = "run/"
  }
}
"#;

/// After convergence, the job runs exactly once: its two nodes, one directory, in state once.
fn one_job_running(c: &Crash) {
    assert_eq!(c.of_kind("job"), ["job.train"]);
    assert_eq!(c.entries("jobs").len(), 1, "job directories: {:?}", c.entries("jobs"));
    settle(&c.mark(), 2);
    let groups = marked_groups(&c.mark());
    assert_eq!(groups.len(), 2, "exactly the job's two nodes run, no duplicate, no orphan: {groups:?}");
}

/// Issue 10, defect 2, aimed: a node started but its pid file not yet written when kiln dies.
/// A test hook pauses the launch there (10 s, ended by the kill); the kill comes once the
/// first, then the second node's process exists.
#[test]
fn sigkill_between_starting_a_node_and_recording_it() {
    let mut c = Crash::new(JOB);
    for nodes_started in [1, 2, 1, 2] {
        let mut run = c.loud(&["apply", "--auto-approve"], &[("KILN_TEST_LAUNCH_PAUSE_MS", "10000")]);
        wait_until("the job's node processes start", BOUND, || marked_groups(&c.mark()).len() >= nodes_started || !run.running());
        assert!(run.running(), "the apply ended before the kill:\n{}", run.stderr_so_far());
        c.after_kill(run);
        c.converge();
        one_job_running(&c);
        c.destroy_all();
    }
    assert_eq!(c.kills, 4);
}

/// Issue 13: kiln killed while a job with `secret_env` is being created leaves the create's
/// pending entry in state: it holds the values sealed (salted digests), never in clear, in the
/// state, its backup or journal; `kiln state pull` counts it as sensitive; the next apply
/// creates the job with the configuration's values and converges.
#[test]
fn sigkill_during_the_create_of_a_job_with_secret_env_leaves_no_secret_in_state() {
    const SECRET: &str = "hf_crash_S3cr3t_value";
    let job = JOB.replace("  stop_grace = 2\n", &format!("  stop_grace = 2\n  secret_env = {{ HF_TOKEN = \"{SECRET}\" }}\n"));
    assert!(job.contains(SECRET));
    let mut c = Crash::new(&job);
    // Files of kiln's state (its own directory), not the jobs' 0600 secrets files.
    let state_files = |c: &Crash| -> Vec<(String, String)> {
        let dir = c.path().join(".kiln");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                out.push((
                    e.path().display().to_string(),
                    String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()).into_owned(),
                ));
            }
        }
        out
    };
    let mut run = c.loud(&["apply", "--auto-approve"], &[("KILN_TEST_LAUNCH_PAUSE_MS", "10000")]);
    wait_until("the job's first node process starts", BOUND, || !marked_groups(&c.mark()).is_empty() || !run.running());
    assert!(run.running(), "the apply ended before the kill:\n{}", run.stderr_so_far());
    c.after_kill(run);
    // The entry may still be in the journal: the state as kiln reads it.
    let pulled: serde_json::Value = serde_json::from_str(&c.kiln(&["state", "pull"]).ok().stdout()).expect("a state document");
    let pending = pulled["pending"].as_array().cloned().unwrap_or_default();
    let entry = pending.iter().find(|e| e["address"] == "job.train").unwrap_or_else(|| panic!("no pending entry: {pending:?}"));
    let digest = entry["planned"]["secret_env"]["HF_TOKEN"].as_str().unwrap_or_default();
    assert!(digest.starts_with("sha256:"), "the pending entry keeps a salted digest: {entry}");
    for (path, text) in state_files(&c) {
        assert!(!text.contains(SECRET), "{path} holds the secret in clear");
    }
    let mut pull = Command::new("script");
    pull.args(["-qec", &format!("{} state pull", crate::support::bin().display()), "/dev/null"]);
    pull.current_dir(c.path()).env("NO_COLOR", "1").env("KILN_QUIET", "1").stdin(std::process::Stdio::null());
    let out = crate::support::run(pull).code_is(1).stdout();
    assert!(out.contains("E-STATE-PULL-TERMINAL") && !out.contains(digest), "a pending entry counts as sensitive:\n{out}");
    c.converge();
    one_job_running(&c);
    for (path, text) in state_files(&c) {
        assert!(!text.contains(SECRET), "{path} holds the secret in clear");
    }
    c.destroy_all();
}

#[test]
fn sigkill_right_after_a_job_starts_creating() {
    let mut c = Crash::new(JOB);
    for (i, extra) in [0, 0, 1, 1, 2, 3, 5, 8, 13, 20, 40, 60].into_iter().enumerate() {
        kill_after_line(&mut c, &["apply", "--auto-approve"], "job.train: Creating...", Duration::from_millis(extra), &[]);
        // Half of the time the next command is destroy: whatever the killed create started
        // must not survive it (issue 10 saw it keep training after `kiln destroy`).
        if i % 2 == 0 {
            c.converge();
            one_job_running(&c);
        }
        c.destroy_all();
    }
}

#[test]
fn sigkill_during_apply_and_destroy_of_a_job() {
    let mut c = Crash::new(JOB);
    let apply = span(&c, &["apply", "--auto-approve"]);
    let destroy = span(&c, &["destroy", "--auto-approve"]);
    for (a, d) in delays(6, apply).into_iter().zip(delays(6, destroy)) {
        kill_after(&mut c, &["apply", "--auto-approve"], a);
        c.converge();
        one_job_running(&c);
        kill_after(&mut c, &["destroy", "--auto-approve"], d);
        let jobs = c.of_kind("job").len();
        assert!(jobs <= 1);
        if jobs == 0 {
            assert!(marked_groups(&c.mark()).is_empty(), "destroy forgot the job but its processes run");
        }
        c.destroy_all();
    }
    // Destroy killed while it stops the job's processes.
    for extra in [0, 1, 2, 5] {
        c.converge();
        kill_after_line(&mut c, &["destroy", "--auto-approve"], "job.train: Destroying...", Duration::from_millis(extra), &[]);
        c.destroy_all();
    }
}

/// A create_before_destroy replacement of a running job killed while the new job starts: after
/// the next apply exactly one job runs (the old one is destroyed whether the new one was adopted
/// or cleared), and destroy leaves nothing.
#[test]
fn sigkill_during_a_create_before_destroy_replacement_of_a_job() {
    let cbd = JOB.replace("  stop_grace = 2\n", "  stop_grace = 2\n  lifecycle {\n    create_before_destroy = true\n  }\n");
    let mut c = Crash::new(&cbd);
    c.converge();
    for (i, extra) in [0, 1, 2, 3, 5, 8, 13, 20].into_iter().enumerate() {
        let (from, to) = if i % 2 == 0 { ("sleep 300", "sleep 301") } else { ("sleep 301", "sleep 300") };
        let text = c.read("main.kiln.hcl");
        c.p.write("main.kiln.hcl", &text.replace(from, to));
        kill_after_line(&mut c, &["apply", "--auto-approve"], "job.train: Creating...", Duration::from_millis(extra), &[]);
        c.converge();
        one_job_running(&c);
    }
    c.destroy_all();
}

/// A chain of `n` records (each depends on the one before), each waiting `delay` in create.
fn chain(n: usize, delay: &str) -> String {
    let mut s = format!("resource \"record\" \"r0\" {{\n  input        = 0\n  create_delay = \"{delay}\"\n}}\n");
    for i in 1..n {
        s.push_str(&format!(
            "\nresource \"record\" \"r{i}\" {{\n  input        = record.r{}.id\n  create_delay = \"{delay}\"\n}}\n",
            i - 1
        ));
    }
    s
}

/// Every create whose completion an interrupted apply printed is in state.
fn completed_are_in_state(c: &Crash, r: &Run) {
    let err = r.stderr();
    let done: BTreeSet<String> =
        err.lines().filter(|l| l.contains(": Creation complete")).filter_map(|l| l.split(':').next()).map(str::to_string).collect();
    let listed: BTreeSet<String> = c.state_list().into_iter().collect();
    let missing: Vec<&String> = done.difference(&listed).collect();
    assert!(missing.is_empty(), "completed creates missing from state: {missing:?}\n{err}");
}

#[test]
fn sigint_once_during_apply_of_records_and_of_a_job() {
    let mut c = Crash::new(&chain(8, "200ms"));
    for needle in ["record.r0: Creation complete", "record.r2: Creating..."] {
        let mut run = c.loud(&["apply", "--auto-approve"], &[]);
        wait_until("the apply gets under way", BOUND, || run.stderr_so_far().contains(needle) || !run.running());
        run.signal("INT");
        let r = run.wait(RUN_TIMEOUT);
        assert!(!c.lock_path().exists(), "one SIGINT releases the lock");
        completed_are_in_state(&c, &r);
        c.check_state();
        c.converge();
        c.destroy_all();
    }
    let mut c = Crash::new(JOB);
    let mut run = c.loud(&["apply", "--auto-approve"], &[]);
    wait_until("the job starts creating", BOUND, || run.stderr_so_far().contains("job.train: Creating...") || !run.running());
    run.signal("INT");
    run.wait(RUN_TIMEOUT);
    c.check_state();
    c.converge();
    one_job_running(&c);
    c.destroy_all();
}

/// Issue 10, defect 1 (fixed with the apply command): a second SIGINT stops waiting, and every
/// completed create stays in state.
#[test]
fn sigint_twice_during_apply_of_records() {
    let mut c = Crash::new(&records("1500ms"));
    for gap in [50, 300] {
        let mut run = c.loud(&["apply", "--auto-approve", "--parallelism", "4"], &[]);
        wait_until("the first creates complete", BOUND, || run.stderr_so_far().contains("Creation complete") || !run.running());
        run.signal("INT");
        std::thread::sleep(Duration::from_millis(gap));
        if run.running() {
            run.signal("INT");
        }
        let r = run.wait(RUN_TIMEOUT);
        completed_are_in_state(&c, &r);
        c.check_state();
        c.unlock();
        c.converge();
        assert_eq!(c.state_list().len(), 12);
        c.destroy_all();
    }
}

/// The marker scan this suite relies on sees a marked process and stops seeing it once it ends.
#[test]
fn marked_processes_are_found() {
    let p = Project::empty();
    let entry = format!("CRASH_MARK={}", p.path().display());
    let mut child = Command::new("sleep").arg("30").env("CRASH_MARK", p.path()).spawn().expect("spawn sleep");
    // The new environment shows in /proc a moment after spawn returns (the kernel sets it up
    // after it lets the parent go on).
    wait_until("the marked process is seen", BOUND, || marked_groups(&entry).len() == 1);
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(marked_groups(&entry).is_empty());
}
