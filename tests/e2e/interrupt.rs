//! `kiln apply` interrupted: killed with SIGKILL mid-apply, or stopped with one SIGINT. State
//! must stay readable, hold only completed work, and the next apply must finish the rest.

use std::time::Duration;

use crate::support::{force_unlock_id, wait_until, Project, RUN_TIMEOUT};

/// Safety bound for waiting on a background apply to reach a point; not a speed requirement.
const BOUND: Duration = Duration::from_secs(120);

fn slow_records(count: usize, delay: &str) -> String {
    format!("resource \"record\" \"r\" {{\n  count        = {count}\n  input        = count.index\n  create_delay = \"{delay}\"\n}}\n")
}

/// `n` records in a chain, each depending on the previous one, so at most one create runs at a
/// time and an interrupt leaves the later ones unstarted.
fn slow_chain(n: usize, delay: &str) -> String {
    let mut s = format!("resource \"record\" \"r0\" {{\n  input        = 0\n  create_delay = \"{delay}\"\n}}\n");
    for i in 1..n {
        s.push_str(&format!(
            "\nresource \"record\" \"r{i}\" {{\n  input        = record.r{}.id\n  create_delay = \"{delay}\"\n}}\n",
            i - 1
        ));
    }
    s
}

/// The `pending` entries of the state file (absent counts as none).
fn pending(p: &Project) -> Vec<serde_json::Value> {
    p.state_json().get("pending").and_then(|v| v.as_array().cloned()).unwrap_or_default()
}

#[test]
fn kill_9_mid_apply_then_apply_again_converges() {
    let p = Project::new(&slow_records(200, "300ms"));
    let mut first = p.spawn(&["apply", "--auto-approve", "--parallelism", "10"]);
    // Creates have started once the journal exists; let them run for about a second.
    wait_until("the first apply journals a create", BOUND, || p.journal_path().exists() || !first.running());
    assert!(first.running(), "the apply finished before it could be killed:\n{}", first.stderr_so_far());
    std::thread::sleep(Duration::from_millis(1000));
    let killed = first.kill9();
    assert_eq!(killed.code(), -1, "killed by a signal");
    assert!(p.lock_path().exists(), "a killed apply leaves its lock behind");

    // The lock of the dead process is reported as stale, with the command that removes it.
    let r = p.kiln(&["apply", "--auto-approve", "--parallelism", "10"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("stale"), "{err}");
    assert!(err.contains(&format!("pid `{}`", first.pid())), "names the dead holder: {err}");
    let id = force_unlock_id(&err).unwrap_or_else(|| panic!("no `kiln force-unlock ID` hint in: {err}"));
    let lock: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.lock_path()).unwrap()).unwrap();
    assert_eq!(lock["id"], id.as_str(), "the hint names the lock's own ID");
    p.kiln(&["force-unlock", &id]).ok();
    assert!(!p.lock_path().exists());

    p.kiln(&["apply", "--auto-approve", "--parallelism", "10"]).ok();
    let mut listed = p.state_list();
    listed.sort();
    let mut expected: Vec<String> = (0..200).map(|i| format!("record.r[{i}]")).collect();
    expected.sort();
    assert_eq!(listed, expected, "exactly the 200 instances, none twice");
    assert_eq!(pending(&p), Vec::<serde_json::Value>::new(), "no pending creates left in state");
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

#[test]
fn force_unlock_with_a_wrong_id_is_refused() {
    let p = Project::new(&slow_records(1, "1ms"));
    p.kiln(&["apply", "--auto-approve"]).ok();
    let info = serde_json::json!({"id": "the-real-id", "operation": "apply", "who": "x@y", "host": "y", "pid": 1, "created": "2026-01-01T00:00:00Z", "version": "0.1.0"});
    std::fs::write(p.lock_path(), info.to_string()).unwrap();
    let r = p.kiln(&["force-unlock", "not-the-id"]).code_is(1);
    assert!(r.stderr().contains("the-real-id"), "{}", r.stderr());
    assert!(p.lock_path().exists(), "the lock stays");
}

/// Starts a slow apply and sends one SIGINT once its first create is under way.
fn interrupt_once(p: &Project, args: &[&str]) -> crate::support::Run {
    let mut c = p.command(args);
    c.env_remove("KILN_QUIET"); // progress lines tell which creates completed
    let mut apply = crate::support::Spawned::start(c);
    wait_until("the apply journals a create", BOUND, || p.journal_path().exists() || !apply.running());
    assert!(apply.running(), "the apply finished before it could be interrupted:\n{}", apply.stderr_so_far());
    // A moment for the signal handler, installed as apply starts, to be surely in place.
    std::thread::sleep(Duration::from_millis(100));
    apply.signal("INT");
    apply.wait(RUN_TIMEOUT)
}

#[test]
fn one_sigint_stops_new_work_and_saves_completed_work() {
    const N: usize = 12;
    let p = Project::new(&slow_chain(N, "250ms"));
    let r = interrupt_once(&p, &["apply", "--auto-approve"]);
    assert_eq!(r.code(), 1, "an interrupted apply exits 1:\n{}", r.stderr());
    let err = r.stderr();
    assert!(err.contains("Interrupt received"), "{err}");
    assert!(!p.lock_path().exists(), "the lock is released");

    // State is readable and holds exactly the creates that completed, nothing half-done.
    let listed = p.state_list();
    let completed = err.lines().filter(|l| l.contains("Creation complete")).count();
    assert_eq!(listed.len(), completed, "state holds the completed creates:\n{err}");
    assert!(listed.len() < N, "the interrupt came before the end of the chain, so some work was left: {listed:?}");
    assert_eq!(pending(&p), Vec::<serde_json::Value>::new());
    for r in p.state_json()["resources"].as_array().unwrap() {
        assert!(r["attributes"]["id"].is_string(), "only complete objects in state: {r}");
    }

    // Not locked: plan works, and the next apply finishes the rest.
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains(&format!("Plan: {} to add, 0 to change, 0 to destroy.", N - listed.len())), "{plan}");
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.state_list().len(), N);
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

#[test]
fn one_sigint_stops_queued_instances_of_a_counted_resource() {
    const N: usize = 20;
    let p = Project::new(&slow_records(N, "300ms"));
    let r = interrupt_once(&p, &["apply", "--auto-approve", "--parallelism", "2"]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let err = r.stderr();
    let after_interrupt = err.split("Interrupt received").nth(1).unwrap_or("");
    assert!(!after_interrupt.contains("Creating..."), "no create starts after the interrupt:\n{err}");
    assert!(p.state_list().len() < N, "the interrupt left work undone");
}

/// Issue 10, defect 1: a second Ctrl-C abandons the creates in flight at once, and the state
/// keeps every create that completed. (It used to wait for them, print "Creation complete" for
/// each, then write a final state without them.)
#[test]
fn two_sigints_stop_waiting_and_keep_every_completed_create() {
    const N: usize = 4;
    let p = Project::new(&slow_chain(N, "3s"));
    let mut c = p.command(&["apply", "--auto-approve"]);
    c.env_remove("KILN_QUIET");
    let mut apply = crate::support::Spawned::start(c);
    // The first create completed (records journal their result) and the second is under way.
    wait_until("the apply journals a create", BOUND, || p.journal_path().exists() || !apply.running());
    assert!(apply.running(), "the apply finished before it could be interrupted:\n{}", apply.stderr_so_far());
    std::thread::sleep(Duration::from_millis(100));
    apply.signal("INT");
    wait_until("the first interrupt is acknowledged", BOUND, || apply.stderr_so_far().contains("Interrupt received") || !apply.running());
    apply.signal("INT");
    let r = apply.wait(RUN_TIMEOUT);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let err = r.stderr();
    assert!(err.contains("Second interrupt"), "{err}");
    let (before, after) = err.split_once("Second interrupt").unwrap();
    assert!(!after.contains("Creation complete"), "nothing is waited for after the second interrupt:\n{err}");
    assert!(!p.lock_path().exists(), "the lock is released");

    // Every create reported complete is in state, and nothing else.
    let mut completed: Vec<String> =
        before.lines().filter(|l| l.contains("Creation complete")).map(|l| l.split(':').next().unwrap().trim().to_string()).collect();
    completed.sort();
    let mut listed = p.state_list();
    listed.sort();
    assert!(!completed.is_empty(), "the first create completed before the interrupts:\n{err}");
    assert_eq!(listed, completed, "state holds exactly the completed creates:\n{err}");
    assert_eq!(pending(&p), Vec::<serde_json::Value>::new(), "records leave no pending entries");

    // The next apply converges.
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.state_list().len(), N);
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
}

/// Issue 10, defect 8: `kiln force-unlock` refuses to break the lock of a run that is still
/// going (unless `--force`), and a run whose lock was broken stops before its next operation
/// and says why.
#[test]
fn force_unlock_of_a_live_holder_is_refused_and_a_broken_lock_stops_the_run() {
    const N: usize = 10;
    let p = Project::new(&slow_chain(N, "1s"));
    let mut c = p.command(&["apply", "--auto-approve"]);
    c.env_remove("KILN_QUIET").env("KILN_LOCK_LEASE", "3s");
    let mut apply = crate::support::Spawned::start(c);
    wait_until("the apply journals a create", BOUND, || p.journal_path().exists() || !apply.running());
    assert!(apply.running(), "the apply finished too soon:\n{}", apply.stderr_so_far());
    let lock: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.lock_path()).unwrap()).unwrap();
    let id = lock["id"].as_str().unwrap().to_string();

    let r = p.kiln(&["force-unlock", &id]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("still running") && err.contains(&format!("pid `{}`", apply.pid())), "{err}");
    assert!(err.contains(&format!("kiln force-unlock --force {id}")), "{err}");
    assert!(p.lock_path().exists(), "the lock stays");

    p.kiln(&["force-unlock", "--force", &id]).ok();
    let r = apply.wait(RUN_TIMEOUT);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let err = r.stderr();
    assert!(err.contains("removed by someone else"), "{err}");
    let listed = p.state_list();
    assert!(listed.len() < N, "the run stopped before the end of the chain: {listed:?}\n{err}");
    assert!(!p.lock_path().exists(), "the broken run does not touch a lock that is no longer its own");
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.state_list().len(), N);
}

/// Issue 10, defect 11: `--lock-timeout` does not wait out its time on a holder known to be
/// dead: the stale lock is reported at once with the command that removes it.
#[test]
fn lock_timeout_does_not_wait_for_a_dead_holder() {
    let p = Project::new(&slow_records(1, "1ms"));
    p.kiln(&["apply", "--auto-approve"]).ok();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap();
    let info = serde_json::json!({"id": "dead-id", "operation": "apply", "who": "x@y", "host": host, "pid": dead, "created": "2026-01-01T00:00:00Z", "version": "0.1.0"});
    std::fs::write(p.lock_path(), info.to_string()).unwrap();
    // An hour of --lock-timeout: the run would outlast RUN_TIMEOUT if it waited.
    let r = p.kiln(&["--lock-timeout", "1h", "plan"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("stale") && err.contains("kiln force-unlock dead-id"), "{err}");
    // A dead holder's lock is broken without --force.
    p.kiln(&["force-unlock", "dead-id"]).ok();
    p.kiln(&["plan"]).ok();
}
