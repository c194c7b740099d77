//! The portable conformance cases: what `bucket`, `cluster`, `spot_pool` and `job` mean on every
//! provider that implements them, checked against the provider's real test service (where
//! [`crate::conformance`] checks the operations of the contract, these check the vocabulary).
//!
//! - [`schema_shape`]: the portable attributes, with the portable types and flags;
//! - [`request_grammar`]: `accelerators = "H100:8"` is accepted, `"H100x8"` and `"8xH100"` are
//!   errors at validate on the `accelerators` attribute;
//! - [`environment`]: a job of two ranks sees the whole portable KILN_* set on every rank, and
//!   rank 1 opens a TCP connection to KILN_MASTER_ADDR:KILN_MASTER_PORT that rank 0, listening on
//!   every interface, accepts: the job succeeds only if that exchange happened;
//! - [`checkpoint_round_trip`]: a job writes a file into KILN_CHECKPOINT_DIR (a local directory)
//!   and a second job with the same `checkpoint` block reads it back;
//! - [`status_vocabulary`]: every status a job reports is one of [`JobStatus`]'s.
//!
//! Jobs are driven as the engine drives them (plan, create with a token, refresh until a final
//! status within [`Setup::wait`], delete) and are deleted before a case fails, so a failing case
//! leaves no job running. The job scripts need `sh` and `python3` where the jobs run.

use std::time::{Duration, Instant};

use kiln_schema::{Attribute, Body};
use kiln_value::{Type, Value};
use serde_json::json;

use super::job::{self, JobStatus};
use crate::{async_trait, testing, CreateRequest, LogsRequest, Provider, ValidateRequest};

fn status_of(state: &Value) -> String {
    state.get("status").map(Value::unmarked).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// What a provider's tests give the cases: how to make a cluster and a bucket on their test
/// service, and how long a job may take there.
#[async_trait]
pub trait Setup: Send + Sync {
    /// The configuration of a `cluster` with `nodes` nodes, as written (JSON).
    fn cluster_config(&self, nodes: usize) -> serde_json::Value;

    /// The configuration of a `spot_pool` of one instance, as written, when the provider can
    /// make one (its request attributes are then checked like a cluster's).
    fn spot_pool_config(&self) -> Option<serde_json::Value> {
        None
    }

    /// What a job's `cluster` refers to: a cluster of `nodes` nodes, created and able to run
    /// jobs. The default plans and creates `cluster_config(nodes)` at `cluster.ADDRESS`.
    async fn cluster(&self, p: &dyn Provider, address: &str, nodes: usize) -> Value {
        testing::create(p, &format!("cluster.{address}"), &testing::config(p, "cluster", self.cluster_config(nodes))).await
    }

    /// What a `checkpoint` block's `bucket` refers to: a bucket every node of a job reaches.
    async fn bucket(&self, p: &dyn Provider) -> Value;

    /// How the environment case gets two ranks: the cluster's nodes and the job's extra
    /// attributes. Two nodes unless the test service has one node only (Slurm's: two tasks).
    fn two_ranks(&self) -> (usize, serde_json::Value) {
        (2, json!({}))
    }

    /// The longest a job may take from create to a final status on this service (a bound
    /// against hanging, not a speed check).
    fn wait(&self) -> Duration;
}

// ---------------------------------------------------------------------------------------------
// Schema shape

#[derive(Clone, Copy, PartialEq, Debug)]
enum Role {
    Required,
    Optional,
    OptionalComputed,
    Computed,
    /// Required or optional, not computed: the user's to set.
    Input,
}

fn role_of(a: &Attribute) -> Role {
    match (a.required, a.optional, a.computed) {
        (true, _, _) => Role::Required,
        (false, true, true) => Role::OptionalComputed,
        (false, true, false) => Role::Optional,
        _ => Role::Computed,
    }
}

fn role_matches(want: Role, got: Role) -> bool {
    want == got || (want == Role::Input && matches!(got, Role::Required | Role::Optional))
}

/// The portable attributes of each kind: name, type, role.
fn portable_attributes(kind: &str) -> Vec<(&'static str, Type, Role)> {
    use Role::*;
    match kind {
        "cluster" => vec![
            ("nodes", Type::Number, Optional),
            ("accelerators", Type::Any, Optional),
            ("cpus", Type::String, Optional),
            ("memory", Type::String, Optional),
        ],
        "bucket" => {
            vec![("name", Type::String, OptionalComputed), ("uri", Type::String, Computed), ("force_destroy", Type::Bool, Optional)]
        }
        "spot_pool" => {
            vec![("capacity", Type::Number, Input), ("accelerators", Type::Any, Optional), ("on_demand_fallback", Type::Bool, Optional)]
        }
        _ => Vec::new(),
    }
}

fn check_attributes(kind: &str, body: &Body, want: &[(&str, Type, Role)], problems: &mut Vec<String>) {
    for (name, ty, role) in want {
        match body.attributes.get(*name) {
            None => problems.push(format!("{kind}: no attribute `{name}` ({ty:?}, {role:?})")),
            Some(a) => {
                if a.ty != *ty {
                    problems.push(format!("{kind}.{name}: type {:?}, the portable type is {ty:?}", a.ty));
                }
                if !role_matches(*role, role_of(a)) {
                    problems.push(format!("{kind}.{name}: {:?}, portably {role:?}", role_of(a)));
                }
            }
        }
    }
}

/// The provider's portable kinds have the portable attributes with the portable types and
/// flags: `job` the portable job schema ([`job::schema_problems`]: the common attributes and the
/// `checkpoint` block), `cluster` the request attributes and `nodes` (one by default), `bucket`
/// and `spot_pool` theirs (required, optional, computed). Kinds the provider does not publish
/// are skipped; it must publish `job` and `cluster`.
pub fn schema_shape(p: &dyn Provider) {
    let schema = p.schema();
    let mut problems = Vec::new();
    for kind in ["job", "cluster"] {
        if !schema.kinds.contains_key(kind) {
            problems.push(format!("the provider publishes no `{kind}`"));
        }
    }
    for kind in ["bucket", "cluster", "spot_pool"] {
        let Some(k) = schema.kinds.get(kind) else { continue };
        check_attributes(kind, &k.body, &portable_attributes(kind), &mut problems);
    }
    if let Some(k) = schema.kinds.get("job") {
        problems.extend(job::schema_problems(&k.body).into_iter().map(|p| format!("job: {p}")));
    }
    if let Some(nodes) = schema.kinds.get("cluster").and_then(|k| k.body.attributes.get("nodes")) {
        if nodes.default.as_ref().is_none_or(|d| d.to_json() != json!(1)) {
            problems.push(format!("cluster.nodes: default {:?}, portably 1", nodes.default));
        }
    }
    assert!(problems.is_empty(), "the schema differs from the portable one:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------------------------
// Request grammar

fn with(mut config: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    config[key] = value;
    config
}

/// `validate` accepts `accelerators = "H100:8"` and the list of alternatives
/// `["H100:8", "A100-80GB:8"]` (with `cpus = "4+"`, `memory = "8+"` where the kind has them) and
/// rejects the malformed `"H100x8"` and `"8xH100"` with an error on the
/// `accelerators` attribute whose message or hint suggests `H100:8`; for `cluster` and, where
/// the provider makes one, `spot_pool`.
pub fn request_grammar(p: &dyn Provider, s: &dyn Setup) {
    let schema = p.schema();
    let mut kinds = vec![("cluster", s.cluster_config(1))];
    kinds.extend(s.spot_pool_config().map(|c| ("spot_pool", c)));
    let mut problems = Vec::new();
    for (kind, base) in kinds {
        let attrs = &schema.kinds[kind].body.attributes;
        let mut good = with(base.clone(), "accelerators", json!("H100:8"));
        for (k, v) in [("cpus", "4+"), ("memory", "8+")] {
            if attrs.contains_key(k) {
                good = with(good, k, json!(v));
            }
        }
        let alternatives = with(good.clone(), "accelerators", json!(["H100:8", "A100-80GB:8"]));
        for good in [good, alternatives] {
            let d = p.validate(ValidateRequest { kind, config: &testing::config(p, kind, good.clone()) });
            if d.has_errors() {
                problems.push(format!("{kind}: {good} rejected: {:?}", d.errors().map(|e| &e.summary).collect::<Vec<_>>()));
            }
        }
        for bad in ["H100x8", "8xH100"] {
            let config = testing::config(p, kind, with(base.clone(), "accelerators", json!(bad)));
            let d = p.validate(ValidateRequest { kind, config: &config });
            let Some(e) = d.errors().next() else {
                problems.push(format!("{kind}: accelerators = \"{bad}\" accepted at validate"));
                continue;
            };
            if e.attribute.as_deref() != Some("accelerators") {
                problems
                    .push(format!("{kind}: the error for \"{bad}\" names attribute {:?}, not `accelerators`: {}", e.attribute, e.summary));
            }
            let text = format!("{} {}", e.summary, e.hint.as_deref().unwrap_or_default());
            if !text.contains("H100:8") {
                problems.push(format!("{kind}: the error for \"{bad}\" does not suggest \"H100:8\": {text}"));
            }
        }
    }
    assert!(problems.is_empty(), "the request grammar differs from the portable one:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------------------------
// Driving jobs

/// A job that [`Jobs`] deletes before the case ends, pass or fail.
struct Jobs<'a> {
    p: &'a dyn Provider,
    wait: Duration,
    made: Vec<(String, Value)>,
}

impl<'a> Jobs<'a> {
    fn new(p: &'a dyn Provider, s: &dyn Setup) -> Self {
        Jobs { p, wait: s.wait(), made: Vec::new() }
    }

    /// The job's status, which must be one of the vocabulary's.
    fn note(&self, address: &str, state: &Value) -> Result<JobStatus, String> {
        let status = status_of(state);
        JobStatus::parse(&status).ok_or_else(|| format!("{address} reports status {status:?}, not one of {}", JobStatus::DESCRIPTION))
    }

    /// Plans and creates `job.NAME`.
    async fn start(&mut self, address: &str, config: serde_json::Value) -> Result<Value, String> {
        let config = testing::config(self.p, "job", config);
        let plan = testing::plan(self.p, address, &config, None).await;
        if plan.diagnostics.has_errors() {
            return Err(format!("{address}: plan failed: {:?}", plan.diagnostics));
        }
        let token = testing::token();
        let created = self.p.create(CreateRequest { address, kind: "job", planned: &plan.planned, token: &token }).await;
        let Some(state) = created.state else { return Err(format!("{address}: create failed: {:?}", created.diagnostics)) };
        self.made.push((address.to_string(), state.clone()));
        if created.diagnostics.has_errors() {
            return Err(format!("{address}: create failed: {:?}", created.diagnostics));
        }
        self.note(address, &state)?;
        Ok(state)
    }

    /// Refreshes until the job reports a final status; every status seen must be portable.
    async fn finish(&mut self, address: &str, state: &Value) -> Result<Value, String> {
        let deadline = Instant::now() + self.wait;
        loop {
            let r = self.p.read(crate::ReadRequest { items: vec![crate::ReadItem { address, kind: "job", state }] }).await;
            let r = r.results.into_iter().next().ok_or_else(|| format!("{address}: read answered nothing"))?;
            if r.diagnostics.has_errors() {
                return Err(format!("{address}: read failed: {:?}", r.diagnostics));
            }
            let now = r.state.ok_or_else(|| format!("{address}: the job is gone before it finished"))?;
            if let Some(m) = self.made.iter_mut().find(|(a, _)| a == address) {
                m.1 = now.clone();
            }
            if self.note(address, &now)?.is_terminal() {
                return Ok(now);
            }
            if Instant::now() > deadline {
                return Err(format!("{address}: no final status within {:?}; last state {now}", self.wait));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every node's log (nodes `0..nodes`), through `logs`.
    async fn logs(&self, address: &str, state: &Value, nodes: usize) -> String {
        let mut out = String::new();
        for node in 0..nodes {
            let mut offset = 0;
            for _ in 0..1000 {
                let r = self.p.logs(LogsRequest { address, kind: "job", state, node, offset, seek: None }).await;
                if r.diagnostics.has_errors() {
                    out += &format!("(node {node}'s log: {:?})\n", r.diagnostics.errors().map(|e| &e.summary).collect::<Vec<_>>());
                    break;
                }
                out += &String::from_utf8_lossy(&r.data);
                if r.data.is_empty() || r.next_offset == offset {
                    break;
                }
                offset = r.next_offset;
            }
        }
        out
    }

    /// Deletes every job made, then returns `result` or panics with it.
    async fn end(self, result: Result<(), String>) {
        let mut problems = Vec::new();
        for (address, state) in &self.made {
            let d = testing::delete(self.p, address, state).await;
            if d.has_errors() {
                problems.push(format!("{address}: delete failed: {d:?}"));
            }
        }
        if let Err(e) = result {
            problems.insert(0, e);
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

fn job_config(cluster: &Value, run: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut j = json!({ "cluster": cluster.to_json(), "run": run });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        j[k] = v;
    }
    j
}

fn expect(cond: bool, problem: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(problem())
    }
}

// ---------------------------------------------------------------------------------------------
// Environment

/// Each rank checks its environment and prints what is wrong; rank 0 listens on
/// KILN_MASTER_PORT on every interface and waits for rank 1's line, which rank 1 sends after
/// connecting to KILN_MASTER_ADDR:KILN_MASTER_PORT (retrying until CONFORMANCE_WAIT seconds
/// have passed), and answers it. Exits 0 only if everything held.
const RENDEZVOUS: &str = r#"python3 - <<'KILN_CONFORMANCE_PY'
import os, socket, sys, time
env = os.environ
rank = int(env.get("KILN_TASK_RANK") or env.get("KILN_NODE_RANK") or "-1")
problems = []
def say(m):
    print("kiln-conformance rank %d: %s" % (rank, m), flush=True)
missing = [k for k in env["CONFORMANCE_VARS"].split() if not env.get(k)]
if missing:
    problems.append("missing " + " ".join(missing))
nodes = int(env["CONFORMANCE_NODES"])
ips = env.get("KILN_NODE_IPS", "").split(",")
if env.get("KILN_NUM_NODES") != str(nodes):
    problems.append("KILN_NUM_NODES=%r, the job has %d nodes" % (env.get("KILN_NUM_NODES"), nodes))
if len(ips) != nodes:
    problems.append("KILN_NODE_IPS=%r lists %d addresses for %d nodes" % (env.get("KILN_NODE_IPS"), len(ips), nodes))
if env.get("KILN_MASTER_ADDR") != ips[0]:
    problems.append("KILN_MASTER_ADDR=%r is not the first of KILN_NODE_IPS" % env.get("KILN_MASTER_ADDR"))
if env.get("KILN_NUM_TASKS") not in (None, "2"):
    problems.append("KILN_NUM_TASKS=%r for a job of 2 ranks" % env.get("KILN_NUM_TASKS"))
if not os.path.isdir(env.get("KILN_CHECKPOINT_DIR", "")):
    problems.append("KILN_CHECKPOINT_DIR=%r is not a directory" % env.get("KILN_CHECKPOINT_DIR"))
limit = float(env["CONFORMANCE_WAIT"])
addr, port, job = env.get("KILN_MASTER_ADDR", ""), int(env.get("KILN_MASTER_PORT") or 0), env.get("KILN_JOB_ID", "")
hello = "hello from rank 1 of %s" % job
if rank == 0:
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(4)
        s.settimeout(limit)
        say("listening on 0.0.0.0:%d" % port)
        c, peer = s.accept()
        c.settimeout(30)
        line = c.makefile("r").readline().strip()
        say("accepted %s, received %r" % (peer[0], line))
        if line == hello:
            c.sendall(b"ack\n")
            say("rendezvous ok")
        else:
            problems.append("rank 1 sent %r, expected %r" % (line, hello))
        c.close()
    except Exception as e:
        problems.append("no connection from rank 1 on port %d: %s" % (port, e))
elif rank == 1:
    deadline, c, err = time.time() + limit, None, None
    while c is None and time.time() < deadline:
        try:
            c = socket.create_connection((addr, port), timeout=5)
        except OSError as e:
            err = e
            time.sleep(0.2)
    if c is None:
        problems.append("cannot connect to %s:%d: %s" % (addr, port, err))
    else:
        c.settimeout(30)
        c.sendall((hello + "\n").encode())
        reply = c.makefile("r").readline().strip()
        say("connected to %s:%d, rank 0 answered %r" % (addr, port, reply))
        if reply != "ack":
            problems.append("rank 0 answered %r" % reply)
for p in problems:
    say("PROBLEM " + p)
say("done, %d problems" % len(problems))
sys.exit(1 if problems else 0)
KILN_CONFORMANCE_PY
"#;

/// A job of two ranks (two nodes, or two tasks where [`Setup::two_ranks`] says so) with a
/// checkpoint block: every rank sees the portable environment (every variable of
/// [`job::ENV`] set, KILN_NUM_NODES and KILN_NODE_IPS agreeing with the job's nodes,
/// KILN_MASTER_ADDR the first of them, KILN_CHECKPOINT_DIR a directory), and rank 1 reaches
/// rank 0 at KILN_MASTER_ADDR:KILN_MASTER_PORT: the job succeeds only if that exchange happened.
pub async fn environment(p: &dyn Provider, s: &dyn Setup) {
    let (nodes, extra) = s.two_ranks();
    let cluster = s.cluster(p, "conformance_env", nodes).await;
    let bucket = s.bucket(p).await;
    // The ranks give up waiting for each other in half the case's wait, so the job ends (and
    // its logs say why) before the case stops waiting for it.
    let wait = (s.wait().as_secs() / 2).max(5);
    let mut attrs = json!({
        "env": {
            "CONFORMANCE_VARS": job::ENV.join(" "),
            "CONFORMANCE_NODES": nodes.to_string(),
            "CONFORMANCE_WAIT": wait.to_string(),
        },
        "checkpoint": { "bucket": bucket.to_json(), "path": format!("conformance-env-{}/", testing::token()) },
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        attrs[k] = v;
    }
    let mut jobs = Jobs::new(p, s);
    let address = "job.conformance_env";
    let result = async {
        let created = jobs.start(address, job_config(&cluster, RENDEZVOUS, attrs)).await?;
        let done = jobs.finish(address, &created).await?;
        let log = jobs.logs(address, &done, nodes).await;
        let status = status_of(&done);
        let mut problems: Vec<String> =
            log.lines().filter_map(|l| l.split_once(" PROBLEM ").map(|(who, what)| format!("{who} {what}"))).collect();
        if !log.contains("kiln-conformance rank 0: rendezvous ok") {
            problems.push("rank 0 never accepted rank 1's connection".to_string());
        }
        if !log.contains("kiln-conformance rank 1: connected to") {
            problems.push("rank 1 never connected to KILN_MASTER_ADDR:KILN_MASTER_PORT".to_string());
        }
        expect(problems.is_empty() && status == "succeeded", || {
            format!(
                "{address}: {status}; {}\nlogs:\n{log}",
                if problems.is_empty() { "no problem logged".into() } else { problems.join("; ") }
            )
        })
    }
    .await;
    jobs.end(result).await;
}

// ---------------------------------------------------------------------------------------------
// Checkpoint directory

/// Job 1 finds KILN_CHECKPOINT_DIR to be a local directory, writes a file there and exits;
/// job 2, with the same `checkpoint` block, finds the file there with what job 1 wrote.
pub async fn checkpoint_round_trip(p: &dyn Provider, s: &dyn Setup) {
    let cluster = s.cluster(p, "conformance_ckpt", 1).await;
    let bucket = s.bucket(p).await;
    let mark = format!("written by job 1 ({})", testing::token());
    let attrs = json!({
        "env": { "CONFORMANCE_MARK": mark },
        "checkpoint": { "bucket": bucket.to_json(), "path": format!("conformance-ckpt-{}/", testing::token()) },
    });
    let is_dir = r#"[ -n "$KILN_CHECKPOINT_DIR" ] && [ -d "$KILN_CHECKPOINT_DIR" ] || { echo "kiln-conformance: KILN_CHECKPOINT_DIR='$KILN_CHECKPOINT_DIR' is not a directory"; exit 1; }"#;
    let write = format!(
        "{is_dir}\nprintf '%s\\n' \"$CONFORMANCE_MARK\" > \"$KILN_CHECKPOINT_DIR/conformance.txt\"\necho kiln-conformance: wrote\n"
    );
    let read = format!(
        "{is_dir}\ngot=$(cat \"$KILN_CHECKPOINT_DIR/conformance.txt\" 2>&1)\n\
         [ \"$got\" = \"$CONFORMANCE_MARK\" ] || {{ echo \"kiln-conformance: read '$got'\"; exit 1; }}\necho kiln-conformance: read back\n"
    );
    let mut jobs = Jobs::new(p, s);
    let result = async {
        for (address, run) in [("job.conformance_save", &write), ("job.conformance_resume", &read)] {
            let created = jobs.start(address, job_config(&cluster, run, attrs.clone())).await?;
            let done = jobs.finish(address, &created).await?;
            let status = status_of(&done);
            let log = jobs.logs(address, &done, 1).await;
            expect(status == "succeeded", || format!("{address}: {status}, log:\n{log}"))?;
        }
        Ok(())
    }
    .await;
    jobs.end(result).await;
}

// ---------------------------------------------------------------------------------------------
// Status vocabulary

/// A job that fails and one that succeeds: every status they report, from create to the end,
/// is one of [`JobStatus`]'s, and they end `failed` and `succeeded`.
pub async fn status_vocabulary(p: &dyn Provider, s: &dyn Setup) {
    let cluster = s.cluster(p, "conformance_status", 1).await;
    let bucket = s.bucket(p).await;
    let attrs = json!({ "checkpoint": { "bucket": bucket.to_json(), "path": format!("conformance-status-{}/", testing::token()) } });
    let mut jobs = Jobs::new(p, s);
    let result = async {
        for (address, run, want) in
            [("job.conformance_fail", "sleep 1; exit 3", "failed"), ("job.conformance_ok", "sleep 1; exit 0", "succeeded")]
        {
            let created = jobs.start(address, job_config(&cluster, run, attrs.clone())).await?;
            let done = jobs.finish(address, &created).await?;
            let status = status_of(&done);
            expect(status == want, || format!("{address} ended {status}, expected {want}: {done}"))?;
        }
        Ok(())
    }
    .await;
    jobs.end(result).await;
}
