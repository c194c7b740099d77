//! State backends through the binary, for each of local files, S3 (moto's server, see `moto.rs`)
//! and PostgreSQL (`tests/harness/postgres/start.sh`, a throwaway cluster the tests start):
//!
//! - basics: apply, clean re-plan, workspaces, `kiln state versions`;
//! - fault injection: an apply killed with SIGKILL after each of its first provider calls and
//!   during its final state write; each time a new apply (after `kiln force-unlock` of the dead
//!   holder's lock) converges with no lost resource, and the state stays readable with a serial
//!   that only grows;
//! - contention: 20 `kiln apply` processes started at once on one state: the ones that do not
//!   get the lock fail fast naming its holder and change nothing, and with `--lock-timeout` all
//!   20 apply one after another with no update lost;
//! - leases: a lock held on another machine is waited for while its lease is live and reported
//!   stale (with the `kiln force-unlock` command) once it ended; a running apply renews its lease;
//! - SIGTERM releases the lock after saving state; `kiln init --migrate-state` moves state
//!   local → s3 → postgres (every workspace, verified) and refuses a foreign destination; backend
//!   settings use variables;
//! - a state deleted out of band (the S3 object beside its versions, the PostgreSQL row beside
//!   its history) is refused with how to restore it, and restored as told plans no create.
//!
//! S3 tests hold `moto::exclusive()` (other tests reset the server); each test uses its own
//! bucket or schema.

// The S3 tests are the `s3` feature's and the PostgreSQL tests the `postgres` feature's (on by default).
#![cfg_attr(not(all(feature = "s3", feature = "postgres")), allow(dead_code, unused_mut))]

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::moto;
use crate::support::{force_unlock_id, repo_root, run, wait_until, Project, Run, Spawned};

/// Safety bound for waiting on a background run; not a speed requirement.
const BOUND: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Local,
    S3,
    Postgres,
}

/// One storage for a test: the `kiln { backend ... }` block and the environment it needs.
struct Store {
    block: String,
    env: Vec<(&'static str, String)>,
    _moto: Option<std::sync::MutexGuard<'static, ()>>,
}

fn unique(name: &str) -> String {
    format!("{name}-{}", &uuid_like()[..10])
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_nanos();
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}{:04x}{:x}", t, std::process::id() & 0xffff, n).chars().rev().collect()
}

/// The test PostgreSQL cluster's URL (started once per test binary).
fn pg_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let script = repo_root().join("tests/harness/postgres/start.sh");
        let out = Command::new("bash").arg(&script).output().expect("run tests/harness/postgres/start.sh");
        assert!(out.status.success(), "postgres harness failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string()
    })
}

/// A versioned bucket on the moto server, through its S3 REST API.
fn s3_bucket(m: &moto::Moto, name: &str) {
    m.request("PUT", &format!("/{name}"), "");
    m.request(
        "PUT",
        &format!("/{name}?versioning"),
        r#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>"#,
    );
}

fn store(kind: Kind, name: &str) -> Store {
    match kind {
        Kind::Local => Store { block: String::new(), env: vec![], _moto: None },
        Kind::S3 => {
            let guard = moto::exclusive();
            let m = moto::server();
            let bucket = unique(name);
            s3_bucket(m, &bucket);
            Store {
                block: format!(
                    "kiln {{\n  backend \"s3\" {{\n    bucket   = \"{bucket}\"\n    key      = \"team/kiln.json\"\n    region   = \"us-east-1\"\n    endpoint = \"{}\"\n  }}\n}}\n\n",
                    m.endpoint()
                ),
                env: vec![("AWS_ACCESS_KEY_ID", "test".into()), ("AWS_SECRET_ACCESS_KEY", "test".into())],
                _moto: Some(guard),
            }
        }
        Kind::Postgres => Store { block: pg_block(&unique(name).replace('-', "_")), env: vec![], _moto: None },
    }
}

fn pg_block(schema: &str) -> String {
    format!("kiln {{\n  backend \"postgres\" {{\n    conn_str = \"{}\"\n    schema   = \"{schema}\"\n  }}\n}}\n\n", pg_url())
}

impl Store {
    fn project(&self, body: &str) -> Project {
        Project::new(&format!("{}{body}", self.block))
    }

    fn write(&self, p: &Project, body: &str) {
        p.write("main.kiln.hcl", &format!("{}{body}", self.block));
    }

    fn command(&self, p: &Project, args: &[&str]) -> Command {
        let mut c = p.command(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn kiln(&self, p: &Project, args: &[&str]) -> Run {
        run(self.command(p, args))
    }

    /// In the background, with progress lines (`addr: Creation complete ...`) on stderr.
    fn spawn_loud(&self, p: &Project, args: &[&str]) -> Spawned {
        let mut c = self.command(p, args);
        c.env_remove("KILN_QUIET");
        Spawned::start(c)
    }

    /// `kiln show --json`: serial, lineage, resources.
    fn show(&self, p: &Project) -> serde_json::Value {
        let out = self.kiln(p, &["show", "--json"]).ok().stdout();
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("show --json is not JSON ({e}): {out}"))
    }

    fn state_list(&self, p: &Project) -> BTreeSet<String> {
        self.kiln(p, &["state", "list"]).ok().stdout().lines().map(str::to_string).collect()
    }

    /// Applies until it succeeds, breaking (once) the stale lock a killed run left.
    fn converge(&self, p: &Project) {
        let r = self.kiln(p, &["apply", "--auto-approve"]);
        if r.code() == 0 {
            return;
        }
        let err = r.stderr();
        assert!(err.contains("stale"), "only a stale lock may stop the apply after a kill:\n{err}");
        let id = force_unlock_id(&err).unwrap_or_else(|| panic!("no `kiln force-unlock ID` hint in: {err}"));
        self.kiln(p, &["force-unlock", &id]).ok();
        self.kiln(p, &["apply", "--auto-approve"]).ok();
    }
}

fn serial(show: &serde_json::Value) -> u64 {
    show["serial"].as_u64().unwrap_or_else(|| panic!("no serial in {show}"))
}

/// `n` records in a chain (`prefix0` ← `prefix1` ← ...), each create taking `delay`.
fn chain(prefix: &str, n: usize, delay: &str) -> String {
    let mut s = format!("resource \"record\" \"{prefix}0\" {{\n  input        = 0\n  create_delay = \"{delay}\"\n}}\n");
    for i in 1..n {
        s.push_str(&format!(
            "\nresource \"record\" \"{prefix}{i}\" {{\n  input        = record.{prefix}{}.id\n  create_delay = \"{delay}\"\n}}\n",
            i - 1
        ));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Basics.

fn basics(kind: Kind) {
    let st = store(kind, "basics");
    let body = "resource \"record\" \"a\" {\n  count = 3\n  input = count.index\n}\n";
    let p = st.project(body);
    st.kiln(&p, &["apply", "--auto-approve"]).ok();
    st.kiln(&p, &["plan", "--detailed-exitcode"]).code_is(0);
    let first = st.show(&p);
    assert_eq!(first["resources"].as_array().map(Vec::len), Some(3), "{first}");

    // A second workspace: its own state, same configuration.
    st.kiln(&p, &["workspace", "new", "staging"]).ok();
    assert_eq!(st.kiln(&p, &["workspace", "show"]).ok().stdout().trim(), "staging");
    assert!(st.state_list(&p).is_empty(), "a new workspace starts empty");
    st.kiln(&p, &["apply", "--auto-approve"]).ok();
    let staging = st.show(&p);
    assert_ne!(staging["lineage"], first["lineage"], "each workspace has its own lineage");
    let list = st.kiln(&p, &["workspace", "list"]).ok().stdout();
    assert_eq!(list.lines().collect::<Vec<_>>(), ["  default", "* staging"], "{list}");
    st.kiln(&p, &["workspace", "select", "default"]).ok();
    assert_eq!(st.show(&p)["lineage"], first["lineage"]);
    let err = st.kiln(&p, &["workspace", "delete", "staging"]).code_is(1).stderr();
    assert!(err.contains("still manages 3 resource(s)") && err.contains("--force"), "{err}");
    st.kiln(&p, &["workspace", "delete", "staging", "--force"]).ok();
    assert_eq!(st.kiln(&p, &["workspace", "list"]).ok().stdout().trim(), "* default");
    let err = st.kiln(&p, &["workspace", "select", "nope"]).code_is(1).stderr();
    assert!(err.contains("does not exist") && err.contains("kiln workspace new nope"), "{err}");

    // Versions: the current one and at least the one before it.
    let body2 = "resource \"record\" \"a\" {\n  count = 3\n  input = \"v2-${count.index}\"\n}\n";
    st.write(&p, body2);
    st.kiln(&p, &["apply", "--auto-approve"]).ok();
    let versions = st.kiln(&p, &["state", "versions"]).ok().stdout();
    let lines: Vec<&str> = versions.lines().skip(1).collect();
    assert!(lines.len() >= 2, "{versions}");
    assert!(lines[0].ends_with("(current)"), "{versions}");
}

#[test]
fn basics_local() {
    basics(Kind::Local);
}

/// `kiln.workspace` names the selected workspace in expressions, at plan and at apply.
#[test]
fn expressions_see_the_workspace() {
    let p = Project::new(
        "resource \"record\" \"r\" {\n  input = \"data-${kiln.workspace}\"\n}\n\noutput \"ws\" {\n  value = record.r.input\n}\n",
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.output_json("ws"), "data-default");
    p.kiln(&["workspace", "new", "staging"]).ok();
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("\"data-staging\""), "{plan}");
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.output_json("ws"), "data-staging");
    let mut c = p.command(&["output", "--raw", "ws"]);
    c.env("KILN_WORKSPACE", "default");
    assert_eq!(run(c).ok().stdout(), "data-default\n", "KILN_WORKSPACE selects the workspace");
}

#[test]
#[cfg(feature = "s3")]
fn basics_s3() {
    basics(Kind::S3);
}

#[test]
#[cfg(feature = "postgres")]
fn basics_postgres() {
    basics(Kind::Postgres);
}

// ---------------------------------------------------------------------------------------------
// Fault injection.

fn completions(stderr: &str) -> usize {
    stderr.matches("Creation complete").count()
}

fn fault_injection(kind: Kind) {
    let st = store(kind, "faults");
    let mut body = String::new();
    let mut expected: BTreeSet<String> = BTreeSet::new();
    let p = st.project("");
    let mut last_serial = 0;
    // Cycles 1..=3 kill after the k-th provider call (create) of the apply; cycle 4 right after
    // the last one, when the final state write is under way.
    for cycle in 1..=4usize {
        let prefix = format!("c{cycle}_");
        body.push_str(&chain(&prefix, 4, "150ms"));
        st.write(&p, &body);
        let kill_after = cycle.min(4);
        let mut apply = st.spawn_loud(&p, &["apply", "--auto-approve"]);
        wait_until(&format!("{kill_after} create(s) completed"), BOUND, || {
            completions(&apply.stderr_so_far()) >= kill_after || !apply.running()
        });
        if !apply.running() {
            // Only the last cycle may lose the race: its kill aims at the final write, which
            // can finish within the 20 ms polling interval.
            assert_eq!(cycle, 4, "the apply finished before it could be killed:\n{}", apply.stderr_so_far());
        }
        let killed = if apply.running() { apply.kill9() } else { apply.wait(BOUND) };
        assert!(killed.code() == -1 || cycle == 4, "killed by SIGKILL");

        // Readable, serial never goes back, nothing unknown in it.
        let after_kill = st.show(&p);
        assert!(serial(&after_kill) >= last_serial, "serial went back from {last_serial}: {after_kill}");
        last_serial = serial(&after_kill);
        let listed = st.state_list(&p);
        let new: BTreeSet<String> = (0..4).map(|i| format!("record.{prefix}{i}")).collect();
        assert!(listed.is_subset(&expected.union(&new).cloned().collect()), "unexpected resources after the kill: {listed:?}");
        assert!(expected.is_subset(&listed), "resources of earlier cycles were lost: {listed:?}");
        let done = completions(&killed.stderr());
        assert!(listed.intersection(&new).count() >= done.saturating_sub(1), "completed creates lost: {done} done, state {listed:?}");

        st.converge(&p);
        let had_work = listed != expected.union(&new).cloned().collect();
        expected.extend(new);
        assert_eq!(st.state_list(&p), expected, "after cycle {cycle}: every resource, once");
        let converged = st.show(&p);
        if had_work {
            assert!(serial(&converged) > last_serial, "cycle {cycle}: the recovering apply advances the serial");
        } else {
            assert!(serial(&converged) >= last_serial, "cycle {cycle}: the serial never goes back");
        }
        last_serial = serial(&converged);
        st.kiln(&p, &["plan", "--detailed-exitcode"]).code_is(0);
    }
}

#[test]
fn fault_injection_local() {
    fault_injection(Kind::Local);
}

#[test]
#[cfg(feature = "s3")]
fn fault_injection_s3() {
    fault_injection(Kind::S3);
}

#[test]
#[cfg(feature = "postgres")]
fn fault_injection_postgres() {
    fault_injection(Kind::Postgres);
}

// ---------------------------------------------------------------------------------------------
// Contention.

const CONTENDERS: usize = 20;

fn contention(kind: Kind) {
    let st = store(kind, "contention");
    let body = format!(
        "resource \"record\" \"r\" {{\n  for_each     = toset([for i in range({CONTENDERS}) : tostring(i)])\n  input        = each.key\n  create_delay = \"100ms\"\n}}\n"
    );
    let p = st.project(&body);
    st.kiln(&p, &["apply", "--auto-approve", "--target", "record.r[\"0\"]"]).ok(); // the state exists
    let target = |i: usize| format!("record.r[\"{i}\"]");

    // Fail fast: whoever does not get the lock names its holder and changes nothing.
    let mut procs: Vec<Spawned> = (1..=CONTENDERS)
        .map(|i| Spawned::start(st.command(&p, &["apply", "--auto-approve", "--target", &target(i % CONTENDERS)])))
        .collect();
    let runs: Vec<Run> = procs.iter_mut().map(|s| s.wait(BOUND)).collect();
    let mut applied: BTreeSet<String> = BTreeSet::from([target(0)]);
    for (i, r) in (1..=CONTENDERS).zip(&runs) {
        match r.code() {
            0 => {
                applied.insert(target(i % CONTENDERS));
            }
            1 => {
                let err = r.stderr();
                assert!(
                    err.contains("is locked by") && err.contains("pid `") && err.contains("lock ID"),
                    "a loser names the holder:\n{err}"
                );
            }
            c => panic!("unexpected exit {c}:\n{}", r.stderr()),
        }
    }
    let winners = runs.iter().filter(|r| r.code() == 0).count();
    assert!(winners >= 1, "someone got the lock");
    assert!(winners < CONTENDERS, "20 applies started at once cannot all have had the lock in turn without waiting");
    assert_eq!(st.state_list(&p), applied, "exactly the winners' changes are in state");

    // Waiting: all of them apply, one after another, and no update is lost.
    let mut procs: Vec<Spawned> = (0..CONTENDERS)
        .map(|i| Spawned::start(st.command(&p, &["apply", "--auto-approve", "--lock-timeout", "120s", "--target", &target(i)])))
        .collect();
    for s in &mut procs {
        s.wait(BOUND).ok();
    }
    let all: BTreeSet<String> = (0..CONTENDERS).map(target).collect();
    assert_eq!(st.state_list(&p), all, "every waiting apply's change is in state");
    st.kiln(&p, &["plan", "--detailed-exitcode"]).code_is(0);
}

#[test]
fn contention_local() {
    contention(Kind::Local);
}

#[test]
#[cfg(feature = "s3")]
fn contention_s3() {
    contention(Kind::S3);
}

#[test]
#[cfg(feature = "postgres")]
fn contention_postgres() {
    contention(Kind::Postgres);
}

// ---------------------------------------------------------------------------------------------
// Signals, migration, variables.

#[test]
fn sigterm_saves_state_and_releases_the_lock() {
    for kind in [Kind::Postgres, Kind::Local] {
        let st = store(kind, "term");
        let p = st.project(&chain("t", 6, "300ms"));
        let mut apply = st.spawn_loud(&p, &["apply", "--auto-approve"]);
        wait_until("a create completed", BOUND, || completions(&apply.stderr_so_far()) >= 1 || !apply.running());
        assert!(apply.running(), "finished too early:\n{}", apply.stderr_so_far());
        apply.signal("TERM");
        let r = apply.wait(BOUND).code_is(1);
        assert!(r.stderr().contains("Apply interrupted: state was saved"), "{}", r.stderr());
        let saved = st.state_list(&p);
        assert!(!saved.is_empty() && saved.len() < 6, "{kind:?}: completed creates are saved: {saved:?}");
        // No force-unlock needed: the lock was released.
        st.kiln(&p, &["apply", "--auto-approve"]).ok();
        assert_eq!(st.state_list(&p).len(), 6);
    }
}

/// Puts a lock in `p`'s backend, as a kiln on another machine would hold it.
fn foreign_lock(p: &Project, expires_in_secs: i64) -> kiln_state::LockInfo {
    let (config, _) = kiln_config::load(p.path());
    let config = config.expect("config");
    // The backends the binary registers (`commands::registry::backends`).
    let mut backends = kiln_ops::Backends::new();
    #[cfg(feature = "s3")]
    backends.register(std::sync::Arc::new(kiln_state_s3::S3Factory));
    #[cfg(feature = "postgres")]
    backends.register(std::sync::Arc::new(kiln_state_postgres::PgFactory));
    let cfg = backends.config(&config, &kiln_ops::RootVars::new(&config, &Default::default(), p.path())).expect("backend");
    // With moto's credentials, which the test's kiln processes take from their environment.
    let mut record = serde_json::to_value(&cfg).expect("record");
    if cfg.kind() == "s3" {
        record["access_key"] = "test".into();
        record["secret_key"] = "test".into();
    }
    let cfg = backends.read_record(record.to_string().as_bytes()).expect("the record reads back");
    let mut info = kiln_state::LockInfo::new("apply");
    info.host = "build-agent-7".into();
    info.who = "ci@build-agent-7".into();
    info.expires = Some((chrono::Utc::now() + chrono::Duration::seconds(expires_in_secs)).to_rfc3339());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let backend = cfg.open(kiln_state::DEFAULT_WORKSPACE, std::sync::Arc::new(kiln_state::Plain));
    rt.block_on(backend.lock(&info)).expect("lock from elsewhere");
    info
}

fn leases(kind: Kind) {
    let st = store(kind, "leases");
    let p = st.project("resource \"record\" \"a\" {\n  input = 1\n}\n");
    st.kiln(&p, &["apply", "--auto-approve"]).ok();
    st.write(&p, "resource \"record\" \"a\" {\n  input = 2\n}\n");

    // A live lease held elsewhere: not stale; --lock-timeout waits, then gives up naming it.
    let live = foreign_lock(&p, 3600);
    let r = st.kiln(&p, &["apply", "--auto-approve", "--lock-timeout", "1s"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("ci@build-agent-7") && err.contains(&live.id) && err.contains("wait for that run"), "{err}");
    assert!(!err.contains("stale"), "{err}");
    // force-unlock does not break a live lease (issue 10, defect 8) unless told --force.
    let err = st.kiln(&p, &["force-unlock", &live.id]).code_is(1).stderr();
    assert!(err.contains("lease is renewed until") && err.contains(&format!("kiln force-unlock --force {}", live.id)), "{err}");
    st.kiln(&p, &["force-unlock", "--force", &live.id]).ok();

    // A lease that ended: stale, and force-unlock lets the next apply through.
    let gone = foreign_lock(&p, -30);
    let err = st.kiln(&p, &["apply", "--auto-approve"]).code_is(1).stderr();
    assert!(err.contains("lease ended") && err.contains("stale") && err.contains(&format!("kiln force-unlock {}", gone.id)), "{err}");
    st.kiln(&p, &["force-unlock", &gone.id]).ok();
    st.kiln(&p, &["apply", "--auto-approve"]).ok();
    st.kiln(&p, &["plan", "--detailed-exitcode"]).code_is(0);
}

#[test]
fn leases_local() {
    leases(Kind::Local);
}

#[test]
#[cfg(feature = "s3")]
fn leases_s3() {
    leases(Kind::S3);
}

#[test]
#[cfg(feature = "postgres")]
fn leases_postgres() {
    leases(Kind::Postgres);
}

#[test]
fn the_lock_lease_is_renewed_while_an_apply_runs() {
    let st = store(Kind::Local, "lease");
    let p = st.project(&chain("l", 8, "300ms"));
    let mut c = st.command(&p, &["apply", "--auto-approve"]);
    c.env("KILN_LOCK_LEASE", "900ms");
    let mut apply = Spawned::start(c);
    let expiry = || -> Option<String> {
        let text = std::fs::read_to_string(p.lock_path()).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["expires"].as_str().map(str::to_string)
    };
    wait_until("the lock is taken", BOUND, || expiry().is_some() || !apply.running());
    let first = expiry().expect("the lock records its lease");
    wait_until("the lease is renewed", BOUND, || expiry().is_some_and(|e| e > first) || !apply.running());
    assert!(expiry().is_some_and(|e| e > first), "the lease was not renewed during a 2.4 s apply with a 0.9 s lease");
    apply.wait(BOUND).ok();
    assert!(!p.lock_path().exists(), "released at the end");
}

#[test]
#[cfg(all(feature = "s3", feature = "postgres"))]
fn migrate_state_local_to_s3_to_postgres() {
    let body = "resource \"record\" \"a\" {\n  count = 2\n  input = count.index\n}\n";
    let local = store(Kind::Local, "mig");
    let p = local.project(body);
    local.kiln(&p, &["init"]).ok();
    local.kiln(&p, &["apply", "--auto-approve"]).ok();
    let lineage = local.show(&p)["lineage"].clone();
    local.kiln(&p, &["workspace", "new", "staging"]).ok();
    local.kiln(&p, &["apply", "--auto-approve"]).ok();
    let staging_lineage = local.show(&p)["lineage"].clone();
    local.kiln(&p, &["workspace", "select", "default"]).ok();

    // To S3: commands refuse until init, init refuses without --migrate-state.
    let s3 = store(Kind::S3, "mig");
    s3.write(&p, body);
    let err = s3.kiln(&p, &["plan"]).code_is(1).stderr();
    assert!(err.contains("backend changed since `kiln init`") && err.contains("--migrate-state"), "{err}");
    let err = s3.kiln(&p, &["init"]).code_is(1).stderr();
    assert!(err.contains("--migrate-state") && err.contains("--reconfigure"), "{err}");
    let out = s3.kiln(&p, &["init", "--migrate-state"]).ok().stderr();
    assert!(out.contains("Copied workspace `default`") && out.contains("Copied workspace `staging`"), "{out}");
    s3.kiln(&p, &["plan", "--detailed-exitcode"]).code_is(0);
    assert_eq!(s3.show(&p)["lineage"], lineage, "the same state, moved");

    // To PostgreSQL, from S3 (whose store, and moto's guard, are still held).
    let pg = Store { block: pg_block(&unique("mig").replace('-', "_")), env: s3.env.clone(), _moto: None };
    pg.write(&p, body);
    let out = pg.kiln(&p, &["init", "--migrate-state"]).ok().stderr();
    assert!(out.contains("Copied workspace `default`") && out.contains("Copied workspace `staging`"), "{out}");
    pg.kiln(&p, &["plan", "--detailed-exitcode"]).code_is(0);
    assert_eq!(pg.show(&p)["lineage"], lineage);
    let mut c = pg.command(&p, &["show", "--json"]);
    c.env("KILN_WORKSPACE", "staging");
    let staging: serde_json::Value = serde_json::from_str(run(c).ok().stdout().trim()).expect("json");
    assert_eq!(staging["lineage"], staging_lineage, "every workspace moved");
    drop(s3);

    // A destination holding another, non-empty state is refused, and nothing switches.
    let other_schema = unique("other").replace('-', "_");
    let other = Store { block: pg_block(&other_schema), env: vec![], _moto: None };
    let q = other.project(body);
    other.kiln(&q, &["apply", "--auto-approve"]).ok();
    let record = p.read(".kiln/backend.json");
    other.write(&p, body);
    let err = other.kiln(&p, &["init", "--migrate-state"]).code_is(1).stderr();
    assert!(err.contains("refusing to overwrite workspace `default`") && err.contains("another state"), "{err}");
    assert_eq!(p.read(".kiln/backend.json"), record, "the backend was not switched");
}

/// `.kiln/backend.json` as the previous kiln wrote it (its backends an enum tagged by `type`, now
/// a registry of factories): the same backend, so commands run and `kiln init` sees no change.
#[test]
fn a_backend_record_the_previous_kiln_wrote_still_compares_equal() {
    let st = store(Kind::Local, "record");
    let p = st.project("resource \"record\" \"a\" {\n  input = 1\n}\n");
    let previous = format!("{{\n  \"type\": \"local\",\n  \"path\": {:?}\n}}\n", p.path().join(".kiln/state.json").display().to_string());
    check_previous_record(&st, &p, &previous);
    if cfg!(feature = "postgres") {
        let schema = unique("record").replace('-', "_");
        let st = Store { block: pg_block(&schema), env: vec![], _moto: None };
        let p = st.project("resource \"record\" \"a\" {\n  input = 1\n}\n");
        let previous = format!("{{\n  \"type\": \"postgres\",\n  \"conn_str\": {:?},\n  \"schema\": {schema:?}\n}}\n", pg_url());
        check_previous_record(&st, &p, &previous);
    }
}

fn check_previous_record(st: &Store, p: &Project, previous: &str) {
    st.kiln(p, &["init"]).ok();
    st.kiln(p, &["apply", "--auto-approve"]).ok();
    let written: serde_json::Value = serde_json::from_str(&p.read(".kiln/backend.json")).expect("json");
    assert_eq!(written, serde_json::from_str::<serde_json::Value>(previous).expect("json"), "the record's form is unchanged");
    p.write(".kiln/backend.json", previous);
    st.kiln(p, &["plan", "--detailed-exitcode"]).code_is(0);
    let out = st.kiln(p, &["init", "--migrate-state"]).ok().stderr();
    assert!(out.contains("did not change"), "{out}");
}

#[test]
fn backend_settings_use_variables() {
    let p = Project::new(
        "variable \"state_dir\" {\n  default = \"st\"\n}\n\nkiln {\n  backend \"local\" {\n    path = \"${var.state_dir}/kiln.json\"\n  }\n}\n\nresource \"record\" \"a\" {\n  input = 1\n}\n",
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert!(p.path().join("st/kiln.json").exists(), "the default is used");
    p.kiln(&["apply", "--auto-approve", "--var", "state_dir=flag"]).ok();
    assert!(p.path().join("flag/kiln.json").exists(), "--var is used");
    let mut c = p.command(&["apply", "--auto-approve"]);
    c.env("KILN_VAR_state_dir", "env");
    run(c).ok();
    assert!(p.path().join("env/kiln.json").exists(), "KILN_VAR_ is used");

    p.write(
        "main.kiln.hcl",
        "kiln {\n  backend \"local\" {\n    path = record.a.id\n  }\n}\n\nresource \"record\" \"a\" {\n  input = 1\n}\n",
    );
    let err = p.kiln(&["plan"]).code_is(1).stderr();
    assert!(err.contains("the backend cannot use `record.a`") && err.contains("main.kiln.hcl:3:"), "{err}");
    p.write("main.kiln.hcl", "kiln {\n  backend \"s3\" {\n    bucket = \"b\"\n    nope   = 1\n  }\n}\n");
    let err = p.kiln(&["plan"]).code_is(1).stderr();
    if cfg!(feature = "s3") {
        assert!(err.contains("backend \"s3\" has no setting `nope`") && err.contains("main.kiln.hcl:4:"), "{err}");
    } else {
        assert!(err.contains("backend type `s3` is not built into this kiln") && err.contains("main.kiln.hcl:2:"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// A state deleted out of band (issue 10, defect 4, for the remote backends).

/// Python with boto3 (moto's venv) against moto's S3, running `code` with `s3` a client.
fn boto(code: &str) -> String {
    let m = moto::server();
    let script = format!(
        "import boto3, json\ns3 = boto3.client('s3', endpoint_url={:?}, region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n{code}\n",
        m.endpoint()
    );
    let out = Command::new(m.python()).arg("-c").arg(script).env("PYTHONDONTWRITEBYTECODE", "1").output().expect("run python");
    assert!(out.status.success(), "python failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The S3 state object deleted while the bucket keeps its versions: plan and apply refuse
/// (nothing is created again, nothing is written over the history, the lock is released), the
/// message says which version to copy back, and once it is copied back nothing changed.
#[test]
#[cfg(feature = "s3")]
fn a_state_deleted_out_of_band_is_refused_s3() {
    let st = store(Kind::S3, "deleted");
    let bucket = st.block.split("bucket   = \"").nth(1).and_then(|r| r.split('"').next()).expect("bucket").to_string();
    let p = st.project("resource \"record\" \"a\" {\n  count = 2\n  input = count.index\n}\n");
    st.kiln(&p, &["apply", "--auto-approve"]).ok();
    let before = st.show(&p);
    boto(&format!("s3.delete_object(Bucket={bucket:?}, Key='team/kiln.json')"));
    let keys = || boto(&format!("print(json.dumps(sorted(o['Key'] for o in s3.list_objects_v2(Bucket={bucket:?}).get('Contents', []))))"));
    let mut err = String::new();
    for args in [&["plan"][..], &["apply", "--auto-approve"]] {
        err = st.kiln(&p, args).code_is(1).stderr();
        for want in ["does not exist", "aws s3api copy-object", "kiln state versions", "team/kiln.json?versionId="] {
            assert!(err.contains(want), "`kiln {}`: no `{want}` in:\n{err}", args.join(" "));
        }
        assert_eq!(keys().trim(), "[]", "nothing was written and the lock was released");
    }
    // Copied back as the message says: the same state, no changes.
    let source = err.split("--copy-source '").nth(1).and_then(|r| r.split('\'').next()).expect("--copy-source in the message");
    boto(&format!("s3.copy_object(Bucket={bucket:?}, Key='team/kiln.json', CopySource={source:?})"));
    st.kiln(&p, &["plan", "--detailed-exitcode"]).code_is(0);
    assert_eq!(st.show(&p), before);
}

/// The workspace's PostgreSQL `states` row deleted while its history remains: plan and apply
/// refuse, and the statement in the message restores a state that plans no create.
#[test]
#[cfg(feature = "postgres")]
fn a_state_deleted_out_of_band_is_refused_postgres() {
    let schema = unique("deleted").replace('-', "_");
    let st = Store { block: pg_block(&schema), env: vec![], _moto: None };
    let p = st.project("resource \"record\" \"a\" {\n  count = 2\n  input = count.index\n}\n");
    st.kiln(&p, &["apply", "--auto-approve"]).ok();
    st.write(&p, "resource \"record\" \"a\" {\n  count = 2\n  input = \"v2-${count.index}\"\n}\n");
    st.kiln(&p, &["apply", "--auto-approve"]).ok();
    let psql = |sql: &str| {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.flatten().map(|e| e.path().join("bin/psql")).find(|p| p.exists()))
            .expect("psql from Debian's postgresql package (installed by tests/harness/postgres/start.sh)");
        let out = Command::new(bin).arg(pg_url()).args(["-v", "ON_ERROR_STOP=1", "-qtAc", sql]).output().expect("run psql");
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    };
    psql(&format!("DELETE FROM \"{schema}\".states WHERE workspace = 'default'"));
    let mut err = String::new();
    for args in [&["plan"][..], &["apply", "--auto-approve"]] {
        err = st.kiln(&p, args).code_is(1).stderr();
        assert!(err.contains("INSERT INTO") && err.contains("kiln state versions"), "`kiln {}`:\n{err}", args.join(" "));
    }
    let restore = err.split('`').find(|s| s.starts_with("INSERT INTO")).expect("the INSERT in the message");
    psql(restore);
    let plan = st.kiln(&p, &["plan"]).ok().stdout();
    assert!(plan.contains("Plan: 0 to add") || plan.contains("No changes"), "the restored state still tracks both records:\n{plan}");
}

// ---------------------------------------------------------------------------------------------
// Readable S3 backend errors (issue 13): met before S3 answers, they read as one short line
// with what to do, never the SDK's Debug dump of its error tree (about 1 KB before).

/// `kiln plan` against an S3 backend with `env` set on top of an environment with no AWS
/// variables, an empty HOME and no instance metadata; its stderr.
#[cfg(feature = "s3")]
fn s3_backend_failure(endpoint: &str, env: &[(&str, &str)]) -> String {
    let p = Project::new(&format!(
        "kiln {{\n  backend \"s3\" {{\n    bucket   = \"b\"\n    key      = \"k.json\"\n    region   = \"us-east-1\"\n    endpoint = \"{endpoint}\"\n  }}\n}}\n\nresource \"record\" \"a\" {{\n  input = 1\n}}\n"
    ));
    let home = tempfile::tempdir().expect("tempdir");
    let mut c = p.command(&["plan"]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", home.path()).env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        c.env(k, v);
    }
    let err = run(c).code_is(1).stderr();
    for dump in ["{", "Some(", "DispatchFailure", "CredentialsNotLoaded", "ConnectorError"] {
        assert!(!err.contains(dump), "a Debug dump (`{dump}`):\n{err}");
    }
    assert!(err.len() < 700, "{} bytes:\n{err}", err.len());
    assert!(!err.contains("check that the path exists"), "a local file's hint:\n{err}");
    err
}

/// A port nobody listens on.
#[cfg(feature = "s3")]
fn closed_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://127.0.0.1:{}", l.local_addr().expect("addr").port())
}

#[test]
#[cfg(feature = "s3")]
fn s3_backend_without_credentials_says_so_in_one_line() {
    let err = s3_backend_failure(&closed_endpoint(), &[]);
    assert!(err.contains("no AWS credentials found"), "{err}");
    for needle in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "`access_key`"] {
        assert!(err.contains(needle), "the hint names `{needle}`:\n{err}");
    }
}

#[test]
#[cfg(feature = "s3")]
fn s3_backend_unreachable_says_so_in_one_line() {
    let endpoint = closed_endpoint();
    let err = s3_backend_failure(&endpoint, &[("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")]);
    assert!(err.contains("cannot reach S3") && err.contains(&format!("`{endpoint}`")), "{err}");
    assert!(err.contains("Connection refused"), "the cause:\n{err}");
}
