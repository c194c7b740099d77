//! `kiln logs` (issue 13): every node with a prefix, `--node`, `--tail`, `--since`, `--follow`
//! from the tail, and logs kept after destroy, with the `local` provider. Every project is a
//! [`Logs`], whose drop destroys what it started, so no job outlives its test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{run, wait_until, Project, Run, Spawned};

/// Safety bound for waiting on a job to reach a point; not a speed requirement.
const BOUND: Duration = Duration::from_secs(90);

struct Logs {
    p: Project,
}

impl std::ops::Deref for Logs {
    type Target = Project;
    fn deref(&self) -> &Project {
        &self.p
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        // Never panics: it may run while a failed test unwinds.
        let mut destroy = Spawned::start(self.p.command(&["destroy", "--auto-approve"]));
        let start = Instant::now();
        while destroy.running() && start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Logs {
    /// A cluster of `nodes` nodes and a job `job.j` running `run` on each.
    fn job(nodes: usize, run: &str) -> Logs {
        Logs {
            p: Project::new(&format!(
                "resource \"cluster\" \"c\" {{\n  nodes = {nodes}\n}}\n\nresource \"job\" \"j\" {{\n  cluster = cluster.c\n  run     = <<-EOT\n{run}\n  EOT\n}}\n"
            )),
        }
    }

    fn logs(&self, args: &[&str]) -> String {
        let mut all = vec!["logs", "job.j"];
        all.extend_from_slice(args);
        self.kiln(&all).ok().stdout()
    }

    /// `kiln ARGS` with `env`.
    fn kiln_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.command(args);
        c.envs(env.iter().copied());
        run(c)
    }

    fn job_id(&self) -> String {
        let show: serde_json::Value = serde_json::from_str(&self.kiln(&["show", "--json"]).ok().stdout()).unwrap();
        let r = show["resources"].as_array().unwrap().iter().find(|r| r["address"] == "job.j").cloned().expect("job.j in state");
        r["values"]["job_id"].as_str().unwrap().to_string()
    }

    fn job_dir(&self) -> PathBuf {
        self.path().join(".kiln/jobs").join(self.job_id())
    }
}

/// An archive's `expires_at - destroyed_at`.
fn kept_for(meta: &serde_json::Value) -> chrono::Duration {
    let t =
        |k: &str| chrono::DateTime::parse_from_rfc3339(meta[k].as_str().unwrap_or_default()).unwrap_or_else(|e| panic!("{k}: {e}: {meta}"));
    t("expires_at") - t("destroyed_at")
}

fn lines_of(out: &str, node: usize) -> Vec<String> {
    let prefix = format!("[node {node}] ");
    out.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_string).collect()
}

#[test]
fn logs_print_every_node_with_a_prefix_and_one_node_without() {
    let p = Logs::job(2, "    printf 'a%s\\nb%s\\n' $KILN_NODE_RANK $KILN_NODE_RANK\n    printf 'partial%s' $KILN_NODE_RANK");
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    assert_eq!(
        p.logs(&[]),
        "[node 0] a0\n[node 0] b0\n[node 0] partial0\n[node 1] a1\n[node 1] b1\n[node 1] partial1\n",
        "every node, each line prefixed; a last line without its newline is ended"
    );
    assert_eq!(p.logs(&["--node", "1"]), "a1\nb1\npartial1", "one node as it is");
}

#[test]
fn logs_tail_prints_the_last_lines_of_each_node() {
    // The last line is longer than the first window kiln reads back from the end.
    let p = Logs::job(2, "    seq 1 50000\n    head -c 200000 /dev/zero | tr '\\0' x; echo\n    echo \"end $KILN_NODE_RANK\"");
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    let long = "x".repeat(200_000);
    let out = p.logs(&["--tail", "3"]);
    for n in 0..2 {
        assert_eq!(lines_of(&out, n), ["50000".to_string(), long.clone(), format!("end {n}")], "node {n}");
    }
    assert_eq!(out.lines().count(), 6, "nothing else");
    assert_eq!(p.logs(&["--node", "0", "--tail", "1"]), "end 0\n");
    assert_eq!(p.logs(&["--node", "1", "--tail", "2"]), format!("{long}\nend 1\n"));
    assert_eq!(p.logs(&["--node", "1", "--tail", "0"]), "");
    let all = p.logs(&["--node", "1", "--tail", "1000000"]);
    assert!(all.starts_with("1\n2\n3\n") && all.ends_with("\nend 1\n"), "more lines than the log has: all of it");
}

#[test]
fn logs_since_prints_only_what_was_written_since() {
    let p = Logs::job(
        1,
        "    echo early\n    while [ ! -e go ]; do sleep 0.1; done\n    echo late\n    while [ ! -e done ]; do sleep 0.1; done",
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    let idx = p.job_dir().join("node-0.idx");
    // The node's time index has recorded the log with `early` in it (6 bytes).
    wait_until("the time index records `early`", BOUND, || {
        std::fs::read_to_string(&idx).is_ok_and(|t| t.lines().any(|l| l.ends_with(" 6")))
    });
    let mark = chrono::Utc::now();
    // `late` is written in a later second than the mark.
    while chrono::Utc::now().timestamp() == mark.timestamp() {
        std::thread::sleep(Duration::from_millis(20));
    }
    p.write("go", "");
    wait_until("the job prints `late`", BOUND, || p.logs(&[]).contains("late"));
    let since = mark.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(p.logs(&["--since", &since]), "late\n", "only the output written since {since}");
    assert_eq!(p.logs(&["--since", "1h"]), "early\nlate\n", "everything was written within the hour");
    assert_eq!(p.logs(&["--since", "1h", "--tail", "1"]), "late\n", "both limits apply");

    let bad = p.kiln(&["logs", "job.j", "--since", "yesterday"]).code_is(1);
    assert!(bad.stderr().contains("E-LOGS-SINCE-INVALID") && bad.stderr().contains("10m"), "{}", bad.stderr());

    // A job without a time index (started by an earlier kiln) says so instead of printing all.
    std::fs::remove_file(&idx).unwrap();
    p.write("done", "");
    wait_until("the job finishes", BOUND, || p.kiln(&["jobs"]).ok().stdout().contains("succeeded"));
    std::fs::remove_file(&idx).ok();
    let r = p.kiln(&["logs", "job.j", "--since", "10m"]).code_is(1);
    assert!(r.stderr().contains("E-LOGS-SINCE") && r.stderr().contains("no time index"), "{}", r.stderr());
    assert_eq!(r.stdout(), "", "nothing printed");
}

#[test]
fn logs_follow_starts_at_the_tail_and_ends_with_the_job() {
    let p = Logs::job(2, "    seq 1 30\n    while [ ! -e go ]; do sleep 0.1; done\n    echo \"after $KILN_NODE_RANK\"");
    p.kiln(&["apply", "--auto-approve"]).ok();
    wait_until("both nodes print 30 lines", BOUND, || {
        let out = p.logs(&[]);
        (0..2).all(|n| lines_of(&out, n).len() == 30)
    });
    let mut follow = p.spawn(&["logs", "job.j", "--follow"]);
    let mut tail2 = p.spawn(&["logs", "job.j", "--follow", "--tail", "2", "--node", "1"]);
    wait_until("--follow prints the tail of both nodes", BOUND, || {
        let out = follow.stdout_so_far();
        (0..2).all(|n| lines_of(&out, n).len() >= 10) || !follow.running()
    });
    wait_until("--follow --tail 2 prints node 1's last lines", BOUND, || tail2.stdout_so_far().contains("30\n") || !tail2.running());
    assert!(follow.running(), "--follow returned while the job runs: {}", follow.stderr_so_far());
    p.write("go", "");
    let out = follow.wait(BOUND).ok().stdout();
    let want: Vec<String> = (21..=30).map(|i| i.to_string()).collect();
    for n in 0..2 {
        let mut lines = want.clone();
        lines.push(format!("after {n}"));
        assert_eq!(lines_of(&out, n), lines, "node {n}: the last 10 lines, then what came after:\n{out}");
    }
    assert_eq!(tail2.wait(BOUND).ok().stdout(), "29\n30\nafter 1\n");
}

#[test]
fn logs_outlive_destroy_in_the_configuration_directory() {
    let p = Logs::job(2, "    echo \"hello from $KILN_NODE_RANK\"");
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    let before = p.logs(&[]);
    assert_eq!(before, "[node 0] hello from 0\n[node 1] hello from 1\n");
    let job_id = p.job_id();
    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert!(p.state_list().is_empty());

    let r = p.kiln(&["logs", "job.j"]).ok();
    assert_eq!(r.stdout(), before, "the same logs, read from the archive");
    assert!(r.stderr().contains("destroyed") && r.stderr().contains(&job_id), "says whose logs these are: {}", r.stderr());
    let archive = p.path().join(".kiln/logs").join(&job_id);
    assert!(archive.join("job.json").is_file(), "kept under .kiln/logs/JOB_ID");
    assert_eq!(p.logs(&["--node", "1", "--tail", "1"]), "hello from 1\n");
    // Another workspace's job.j is another job.
    let other = p.kiln_env(&["logs", "job.j"], &[("KILN_WORKSPACE", "other")]).code_is(1);
    assert!(other.stderr().contains("not in state"), "{}", other.stderr());
    let no_node = p.kiln(&["logs", "job.j", "--node", "2"]).code_is(1);
    assert!(no_node.stderr().contains("there is no node 2"), "{}", no_node.stderr());
    let since = p.kiln(&["logs", "job.j", "--since", "1h"]).code_is(1);
    assert!(since.stderr().contains("E-LOGS-SINCE"), "{}", since.stderr());

    // Kept 7 days by default; expired archives are pruned.
    let meta = std::fs::read_to_string(archive.join("job.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(kept_for(&v), chrono::Duration::days(7), "{v}");
    v["expires_at"] = "2000-01-01T00:00:00Z".into();
    std::fs::write(archive.join("job.json"), v.to_string()).unwrap();
    let gone = p.kiln(&["logs", "job.j"]).code_is(1);
    assert!(gone.stderr().contains("not in state"), "{}", gone.stderr());
    assert!(!archive.exists(), "the expired archive is removed");
}

#[test]
fn logs_archive_keeps_the_end_of_a_long_log() {
    let p = Logs::job(1, "    seq 1 1000");
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    // 3893 bytes; an archive of at most 100 keeps the whole lines of the last 100.
    p.kiln_env(&["destroy", "--auto-approve"], &[("KILN_TEST_LOG_ARCHIVE_MAX", "100")]).ok();
    let out = p.logs(&[]);
    let want: String = (977..=1000).map(|i| format!("{i}\n")).collect();
    assert_eq!(out, format!("[kiln: the first 3793 bytes of this log were not kept after destroy]\n{want}"));
}

#[test]
fn logs_retention_zero_keeps_nothing() {
    let p = Logs::job(1, "    echo hello");
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    p.kiln_env(&["destroy", "--auto-approve"], &[("KILN_LOG_RETENTION", "0")]).ok();
    let r = p.kiln(&["logs", "job.j"]).code_is(1);
    assert!(r.stderr().contains("not in state"), "{}", r.stderr());
    assert!(!p.path().join(".kiln/logs").exists() || std::fs::read_dir(p.path().join(".kiln/logs")).unwrap().next().is_none());
}

#[test]
fn logs_outlive_destroy_in_the_jobs_checkpoint_bucket() {
    let p = Logs {
        p: Project::new(
            r#"resource "bucket" "b" {
  force_destroy = true
}

resource "cluster" "c" {}

resource "job" "j" {
  cluster = cluster.c
  run     = "echo replaced-and-kept"

  checkpoint {
    bucket = bucket.b
    path   = "run/"
  }
}
"#,
        ),
    };
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    let job_id = p.job_id();
    let show: serde_json::Value = serde_json::from_str(&p.kiln(&["show", "--json"]).ok().stdout()).unwrap();
    let bucket = show["resources"].as_array().unwrap().iter().find(|r| r["address"] == "bucket.b").unwrap()["values"]["path"]
        .as_str()
        .map(PathBuf::from)
        .unwrap();
    p.kiln_env(&["destroy", "--auto-approve", "--target", "job.j"], &[("KILN_LOG_RETENTION", "2h")]).ok();
    let archive: &Path = &bucket.join("kiln-logs").join(&job_id);
    assert!(archive.join("node-0.log").is_file(), "kept in the bucket, which outlives the job");
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(archive.join("job.json")).unwrap()).unwrap();
    assert_eq!(kept_for(&meta), chrono::Duration::hours(2), "KILN_LOG_RETENTION: {meta}");
    assert!(!p.path().join(".kiln/logs").join(&job_id).exists());
    let r = p.kiln(&["logs", "job.j"]).ok();
    assert_eq!(r.stdout(), "replaced-and-kept\n");
    assert!(r.stderr().contains(&job_id), "{}", r.stderr());

    // Destroyed with its bucket, a job's logs go to .kiln/logs; the newest archive is shown.
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    let second = p.job_id();
    assert_ne!(second, job_id);
    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert!(!bucket.exists(), "the bucket is gone");
    assert!(p.path().join(".kiln/logs").join(&second).join("node-0.log").is_file());
    let r = p.kiln(&["logs", "job.j"]).ok();
    assert_eq!(r.stdout(), "replaced-and-kept\n");
    assert!(r.stderr().contains(&second), "the newest archive: {}", r.stderr());
}

/// boto3 against moto (which refuses anonymous requests to kiln's private buckets): `op` is
/// `get` (the object's text) or `put` (writes `body`).
#[cfg(all(feature = "aws", feature = "s3"))]
fn s3(m: &kiln_testkit::moto::Moto, op: &str, bucket: &str, key: &str, body: &str) -> String {
    let script = "import boto3, sys\n\
s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
if sys.argv[2] == 'get':\n    sys.stdout.write(s3.get_object(Bucket=sys.argv[3], Key=sys.argv[4])['Body'].read().decode())\n\
else:\n    s3.put_object(Bucket=sys.argv[3], Key=sys.argv[4], Body=sys.argv[5].encode())\n";
    let out =
        std::process::Command::new(m.python()).args(["-c", script, &m.endpoint(), op, bucket, key, body]).output().expect("run python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// An aws job's logs outlive its destroy in its S3 checkpoint bucket (`kiln-logs/JOB_ID/`), so
/// whoever shares the state reads them: a fresh checkout with only the configuration and the
/// S3 state backend prints them for the job's `log_retention`, and an expired archive is deleted
/// from the bucket.
#[cfg(all(feature = "aws", feature = "s3"))]
#[test]
fn logs_outlive_destroy_in_an_s3_bucket_for_whoever_shares_the_state() {
    let _g = crate::moto::exclusive();
    let m = crate::moto::server();
    let state_bucket = "kiln-e2e-logs-state";
    m.request("PUT", &format!("/{state_bucket}"), "");
    let config = format!(
        r#"kiln {{
  backend "s3" {{
    bucket   = "{state_bucket}"
    key      = "team/kiln.json"
    region   = "us-east-1"
    endpoint = "{endpoint}"
  }}
}}

variable "endpoint" {{
  type    = string
  default = null
}}

provider "aws" {{
  region   = "us-east-1"
  endpoint = var.endpoint
}}

resource "bucket" "b" {{
  provider      = aws
  force_destroy = true
}}

resource "cluster" "c" {{
  provider      = aws
  instance_type = "t3.micro"
  nodes         = 2
}}

resource "job" "j" {{
  provider      = aws
  cluster       = cluster.c
  run           = "echo hello"
  log_retention = "2d"

  checkpoint {{
    bucket = bucket.b
  }}
}}
"#,
        endpoint = m.endpoint()
    );
    let kiln = |p: &Project, args: &[&str]| {
        let mut c = p.command(args);
        crate::aws::aws_env(&mut c);
        c.env("KILN_VAR_endpoint", m.endpoint());
        run(c)
    };
    let mine = Project::new(&config);
    kiln(&mine, &["apply", "--auto-approve"]).ok();
    kiln(&mine, &["plan", "--detailed-exitcode"]).code_is(0);
    let show: serde_json::Value = serde_json::from_str(&kiln(&mine, &["show", "--json"]).ok().stdout()).unwrap();
    let values = |addr: &str| show["resources"].as_array().unwrap().iter().find(|r| r["address"] == addr).unwrap()["values"].clone();
    let (job, bucket) = (values("job.j"), values("bucket.b"));
    let job_id = job["job_id"].as_str().unwrap().to_string();
    let bucket = bucket["name"].as_str().unwrap().to_string();
    // What the nodes' agents upload (no agent runs on moto's instances): each node's log.
    let prefix = job["uri"].as_str().unwrap().strip_prefix(&format!("s3://{bucket}/")).unwrap().to_string();
    for n in 0..2 {
        s3(m, "put", &bucket, &format!("{prefix}/logs/node-{n}.log"), &format!("hello from {n}\n"));
    }
    let before = kiln(&mine, &["logs", "job.j"]).ok().stdout();
    assert_eq!(before, "[node 0] hello from 0\n[node 1] hello from 1\n");

    kiln(&mine, &["destroy", "--auto-approve", "--target", "job.j"]).ok();
    let listed = m.request("GET", &format!("/{bucket}?list-type=2&prefix=kiln-logs/"), "");
    for key in ["job.json", "node-0.log", "node-1.log"] {
        assert!(listed.contains(&format!("kiln-logs/{job_id}/{key}")), "kept in the bucket: {listed}");
    }
    assert!(!mine.path().join(".kiln/logs").exists(), "not on this machine");

    // A teammate's fresh checkout: the configuration and the shared state, nothing else.
    let theirs = Project::new(&config);
    let r = kiln(&theirs, &["logs", "job.j"]).ok();
    assert_eq!(r.stdout(), before, "the same logs, read from the bucket");
    assert!(r.stderr().contains(&job_id) && r.stderr().contains(&format!("s3://{bucket}/kiln-logs")), "{}", r.stderr());
    assert_eq!(kiln(&theirs, &["logs", "job.j", "--node", "1", "--tail", "1"]).ok().stdout(), "hello from 1\n");

    // Expired: deleted from the bucket when read.
    let meta = s3(m, "get", &bucket, &format!("kiln-logs/{job_id}/job.json"), "");
    let mut v: serde_json::Value = serde_json::from_str(&meta).unwrap_or_else(|e| panic!("{e}: {meta}"));
    assert_eq!(kept_for(&v), chrono::Duration::days(2), "the job's log_retention: {v}");
    v["expires_at"] = "2000-01-01T00:00:00Z".into();
    s3(m, "put", &bucket, &format!("kiln-logs/{job_id}/job.json"), &v.to_string());
    let gone = kiln(&theirs, &["logs", "job.j"]).code_is(1);
    assert!(gone.stderr().contains("not in state"), "{}", gone.stderr());
    let listed = m.request("GET", &format!("/{bucket}?list-type=2&prefix=kiln-logs/"), "");
    assert!(!listed.contains("<Key>"), "the expired archive is deleted: {listed}");
    kiln(&mine, &["destroy", "--auto-approve"]).ok();
}

/// A job with `log_retention` (and a `run` that prints `kept`).
fn retained(retention: Option<&str>) -> String {
    let attr = retention.map_or(String::new(), |r| format!("  log_retention = \"{r}\"\n"));
    format!("resource \"cluster\" \"c\" {{}}\n\nresource \"job\" \"j\" {{\n  cluster = cluster.c\n  run     = \"echo kept\"\n{attr}}}\n")
}

/// `log_retention` (issue 13): how long a job's logs are kept after an apply destroys or
/// replaces it. A state written before the attribute existed plans no change; setting it is an
/// update in place, never a replacement; `KILN_LOG_RETENTION` overrides it; a value that is not
/// a duration is refused at plan, at the attribute.
#[test]
fn log_retention_is_a_job_attribute_set_in_place_and_overridden_by_the_environment() {
    let p = Logs { p: Project::new(&retained(None)) };
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    // The state as a kiln before `log_retention` wrote it: no such key.
    let mut state = p.state_json();
    for r in state["resources"].as_array_mut().unwrap() {
        r["attributes"].as_object_mut().unwrap().remove("log_retention");
    }
    std::fs::write(p.state_path(), serde_json::to_string_pretty(&state).unwrap()).unwrap();
    let same = p.kiln(&["plan", "--detailed-exitcode"]);
    assert_eq!(same.code(), 0, "an upgrade plans no change:\n{}{}", same.stdout(), same.stderr());

    p.write("main.kiln.hcl", &retained(Some("14d")));
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("log_retention") && plan.contains("1 to change") && !plan.contains("must be replaced"), "{plan}");
    let first = p.job_id();
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.job_id(), first, "updated in place");
    p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);

    // Replaced: the old job's logs are kept for its log_retention.
    p.kiln(&["apply", "--auto-approve", "--wait", "--replace", "job.j"]).ok();
    let meta = |id: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p.path().join(".kiln/logs").join(id).join("job.json")).unwrap()).unwrap()
    };
    assert_eq!(kept_for(&meta(&first)), chrono::Duration::days(14));
    // KILN_LOG_RETENTION wins over the attribute.
    let second = p.job_id();
    p.kiln_env(&["destroy", "--auto-approve"], &[("KILN_LOG_RETENTION", "3h")]).ok();
    assert_eq!(kept_for(&meta(&second)), chrono::Duration::hours(3));
    assert_eq!(p.logs(&[]), "kept\n");

    p.write("main.kiln.hcl", &retained(Some("two weeks")));
    let bad = p.kiln(&["plan"]).code_is(1).stderr();
    assert!(bad.contains("E-JOB-LOG-RETENTION") && bad.contains("main.kiln.hcl:"), "{bad}");
}
