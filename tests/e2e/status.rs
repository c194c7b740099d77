//! `kiln jobs` and `kiln status` (human and `--json`, checked against their JSON Schemas),
//! `kiln ssh` (a command run on an onprem node through the real sshd harness, and the errors of
//! a node that does not exist or of the `local` provider), and `kiln init`'s starters (issue 13).

use std::time::Duration;

use crate::plan_view::conforms;
use crate::support::{wait_until, Project};

/// The private key files (`id-*`) anywhere under `dir`.
fn private_keys_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            found.extend(private_keys_under(&path));
        } else if e.file_name().to_string_lossy().starts_with("id-") {
            found.push(path);
        }
    }
    found
}

fn json(p: &Project, args: &[&str]) -> serde_json::Value {
    let out = p.kiln(args).ok().stdout();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("`kiln {}` is not JSON ({e}): {out}", args.join(" ")))
}

/// A local 2-node job whose rank 1 fails with exit code 3, beside a cluster: `kiln jobs` and
/// `kiln status` show its status, exit codes and duration, and the cluster's nodes and GPUs,
/// in every format; the JSON conforms to its schema.
#[test]
fn jobs_and_status_read_clusters_and_jobs_in_every_format() {
    let p = Project::new(
        r#"
resource "cluster" "c" {
  nodes = 2
}

resource "job" "j" {
  cluster = cluster.c
  run     = "if [ \"$KILN_NODE_RANK\" = 1 ]; then exit 3; fi"
}
"#,
    );
    assert_eq!(p.kiln(&["jobs", "--json"]).ok().stdout(), "{\"format_version\":\"1.0\",\"jobs\":[]}\n", "no state, no jobs");
    assert_eq!(p.kiln(&["status"]).ok().stdout(), "No clusters or jobs.\n");
    p.kiln(&["apply", "--auto-approve"]).ok();
    let finished = || json(&p, &["jobs", "--json"])["jobs"][0]["status"] == "failed";
    wait_until("job.j has failed", Duration::from_secs(60), finished);

    let jobs = json(&p, &["jobs", "--json"]);
    conforms("jobs-view.schema.json", &jobs);
    let j = &jobs["jobs"][0];
    assert_eq!((j["address"].as_str(), j["provider"].as_str(), j["nodes"].as_u64()), (Some("job.j"), Some("local"), Some(2)));
    assert_eq!(j["exit_codes"], serde_json::json!([0, 3]), "{jobs}");
    assert!(j["job_id"].is_string() && j["started_at"].is_string() && j["finished_at"].is_string(), "{jobs}");
    assert!(j["duration_seconds"].is_u64(), "{jobs}");
    let human = p.kiln(&["jobs"]).ok().stdout();
    let row: Vec<&str> = human.lines().find(|l| l.starts_with("job.j ")).expect("a row for job.j").split_whitespace().collect();
    assert_eq!((row[1], *row.last().unwrap()), ("failed", "0"), "{human}");
    let md = p.kiln(&["jobs", "--format", "markdown"]).ok().stdout();
    assert!(md.starts_with("| Job | Status |") && md.contains("| `job.j` | failed |") && md.contains("| 0,3 |"), "{md}");

    let status = json(&p, &["status", "--json"]);
    conforms("status-view.schema.json", &status);
    let c = &status["clusters"][0];
    assert_eq!((c["address"].as_str(), c["kind"].as_str(), c["state"].as_str()), (Some("cluster.c"), Some("cluster"), Some("ready")));
    assert_eq!((c["nodes"].as_u64(), c["gpus_per_node"].as_u64(), c["gpus"].as_u64()), (Some(2), Some(0), Some(0)), "{status}");
    assert!(c.get("price_per_hour").is_none(), "prices come with issue 11, none is invented");
    assert!(c["created_at"].is_string() && c["uptime_seconds"].is_u64(), "a cluster made by this kiln has an uptime: {status}");
    let sj = &status["jobs"][0];
    assert_eq!(
        (sj["address"].as_str(), sj["status"].as_str(), sj["exit_codes"].clone()),
        (Some("job.j"), Some("failed"), j["exit_codes"].clone())
    );
    let human = p.kiln(&["status"]).ok().stdout();
    assert!(human.starts_with("Clusters:\n\n") && human.contains("\nJobs:\n\n"), "{human}");
    let row: Vec<&str> = human.lines().find(|l| l.starts_with("cluster.c ")).expect("a row for cluster.c").split_whitespace().collect();
    assert_eq!(row[..6], ["cluster.c", "local", "ready", "2", "0", "-"], "{human}");
    let (m, s) = row[6].split_once('m').unwrap_or_else(|| panic!("an uptime such as 0m03s: {human}"));
    assert!(m.parse::<u64>().is_ok() && s.len() == 3 && s.ends_with('s'), "an uptime such as 0m03s: {human}");
    p.kiln(&["destroy", "--auto-approve"]).ok();
}

/// `kiln init --template ml` (and `kiln init` alone, which a new user runs) writes the ML starter,
/// which validates, is formatted and plans a bucket, a cluster and a job; `--template record`
/// writes the smallest one; a template over an existing configuration is refused.
#[test]
fn init_writes_an_ml_starter_that_validates_and_plans() {
    for args in [&["init", "--template", "ml"][..], &["init"][..]] {
        let p = Project::empty();
        let note = p.kiln(args).ok().stderr();
        assert!(note.contains("Created main.kiln.hcl and train.py") && note.contains("--template record"), "{note}");
        assert!(p.path().join("train.py").exists());
        p.kiln(&["validate"]).ok();
        p.kiln(&["fmt", "--check"]).ok();
        let plan = p.kiln(&["plan"]).ok().stdout();
        for a in ["bucket.checkpoints", "cluster.train", "job.train"] {
            assert!(plan.contains(&format!("# {a} will be created")), "{a}:\n{plan}");
        }
        assert!(plan.contains("Plan: 3 to add, 0 to change, 0 to destroy."), "{plan}");
        let again = p.kiln(&["init", "--template", "record"]).code_is(1).stderr();
        assert!(again.contains("E-INIT-EXISTS") && again.contains("already holds a configuration"), "{again}");
    }
    let p = Project::empty();
    p.kiln(&["init", "--template", "record"]).ok();
    assert!(!p.path().join("train.py").exists());
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("# record.hello will be created") && plan.contains("Plan: 1 to add"), "{plan}");
}

/// The nodes of the `local` provider are this machine: `kiln ssh` says so; a bucket has no
/// nodes; an address that is not in state is refused naming the clusters and jobs there are.
#[test]
fn ssh_to_a_local_node_or_an_unknown_address_is_refused() {
    let p = Project::new("resource \"cluster\" \"c\" {\n  nodes = 1\n}\n\nresource \"bucket\" \"b\" {}\n");
    p.kiln(&["apply", "--auto-approve"]).ok();
    let err = p.kiln(&["ssh", "cluster.c", "--", "true"]).code_is(1).stderr();
    assert!(err.contains("E-SSH-LOCAL") && err.contains("processes on this machine"), "{err}");
    let err = p.kiln(&["ssh", "bucket.b"]).code_is(1).stderr();
    assert!(err.contains("E-SSH-KIND") && err.contains("bucket.b is a `bucket`, which has no nodes"), "{err}");
    let err = p.kiln(&["ssh", "cluster.nope"]).code_is(1).stderr();
    assert!(err.contains("E-STATE-ADDRESS") && err.contains("cluster.c"), "{err}");
}

/// `kiln ssh cluster.x --node 0 -- echo hi` on an onprem cluster of the sshd harness prints
/// `hi`, the host key checked against the configured one; a job's node is its host too; a
/// node the cluster does not have is an error naming how many it has; `.kiln/ssh` is private.
#[cfg(feature = "onprem")]
#[test]
fn ssh_runs_a_command_on_an_onprem_node() {
    use std::os::unix::fs::PermissionsExt;
    let h = crate::onprem::harness();
    let host = &h.hosts[0];
    let p = Project::new(&format!(
        r#"
provider "onprem" {{
  user          = "trainer"
  identity_file = "{id}"
  root          = "{root}"

  host {{
    name     = "{name}"
    address  = "{address}"
    port     = {port}
    host_key = "{key}"
  }}
}}

resource "cluster" "x" {{
  provider = onprem
  nodes    = 1
}}

resource "job" "j" {{
  provider = onprem
  cluster  = cluster.x
  run      = "sleep 60"
}}
"#,
        id = h.dir.join("client_ed25519").display(),
        root = h.dir.join(format!("scratch/ssh-{}", std::process::id())).display(),
        name = host.name,
        address = host.address,
        port = host.port,
        key = host.key,
    ));
    p.kiln(&["apply", "--auto-approve"]).ok();
    let status = json(&p, &["status", "--json"]);
    conforms("status-view.schema.json", &status);
    let c = &status["clusters"][0];
    assert_eq!((c["provider"].as_str(), c["nodes"].as_u64()), (Some("onprem"), Some(1)), "{status}");
    assert_eq!(c["node_addresses"], serde_json::json!([host.address]), "{status}");
    assert_eq!(status["jobs"][0]["address"], "job.j", "{status}");
    let run = p.kiln(&["ssh", "cluster.x", "--node", "0", "--", "echo", "hi"]);
    assert_eq!((run.code(), run.stdout()), (0, "hi\n".to_string()), "{}", run.stderr());
    let run = p.kiln(&["ssh", "job.j", "--", "whoami"]);
    assert_eq!(run.stdout(), "trainer\n", "{}", run.stderr());
    assert!(run.stderr().contains(&format!("node 0 of job.j runs on host `{}`", host.name)), "{}", run.stderr());
    let code = p.kiln(&["ssh", "cluster.x", "--", "exit 7"]).code();
    assert_eq!(code, 7, "ssh's exit status is kiln's");
    assert_eq!(private_keys_under(&p.path().join(".kiln")), Vec::<std::path::PathBuf>::new(), "no private key is left under .kiln");
    let err = p.kiln(&["ssh", "cluster.x", "--node", "3", "--", "true"]).code_is(1).stderr();
    assert!(err.contains("E-SSH-NODE") && err.contains("there is no node 3 (it has 1)"), "{err}");
    let mode = std::fs::metadata(p.path().join(".kiln/ssh")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    // The host key given as its fingerprint: its key is fetched, checked, then pinned for ssh.
    let pubkey = h.dir.join(&host.name).join("ssh_host_ed25519_key.pub");
    let out = std::process::Command::new("ssh-keygen").arg("-lf").arg(&pubkey).output().expect("run ssh-keygen");
    let fingerprint = String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).expect("a fingerprint").to_string();
    let config = p.read("main.kiln.hcl");
    p.write("main.kiln.hcl", &config.replace(&host.key, &fingerprint));
    let run = p.kiln(&["ssh", "cluster.x", "--", "echo", "pinned"]);
    assert_eq!(run.stdout(), "pinned\n", "{}", run.stderr());
    let known = std::fs::read_to_string(p.path().join(".kiln/ssh/cluster_x-0/known_hosts")).unwrap();
    assert_eq!(known.trim(), format!("kiln-{} {}", host.name, host.key), "the key that matches the fingerprint");
    p.write("main.kiln.hcl", &config.replace(&host.key, "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    let err = p.kiln(&["ssh", "cluster.x", "--", "echo", "never"]);
    assert!(!err.stdout().contains("never") && err.stderr().contains("none of which is the configured host_key"), "{}", err.stderr());
    p.write("main.kiln.hcl", &config);
    p.kiln(&["destroy", "--auto-approve"]).ok();
}

/// On Slurm (this machine's single-node harness, commands run here), `kiln ssh job.j -- CMD`
/// runs CMD as a step of the running job (`srun --jobid ... --overlap`), so it sees the job's
/// own SLURM_JOB_ID; a partition has no node to open without a login node, and says so.
#[cfg(feature = "slurm")]
#[test]
fn ssh_runs_a_command_in_a_running_slurm_job() {
    crate::slurm::cluster();
    let p = Project::new(
        r#"
provider "slurm" {}

resource "cluster" "debug" {
  provider  = slurm
  partition = "debug"
}

resource "job" "j" {
  provider   = slurm
  cluster    = cluster.debug
  time_limit = "3:00"
  run        = "sleep 120"
}
"#,
    );
    p.kiln(&["apply", "--auto-approve"]).ok();
    let running = || json(&p, &["jobs", "--json"])["jobs"][0]["status"] == "running";
    wait_until("job.j runs", Duration::from_secs(120), running);
    let id = json(&p, &["jobs", "--json"])["jobs"][0]["job_id"].as_str().expect("a job_id").to_string();
    let run = p.kiln(&["ssh", "job.j", "--node", "0", "--", "printenv", "SLURM_JOB_ID"]);
    let partition = p.kiln(&["ssh", "cluster.debug"]);
    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert_eq!((run.code(), run.stdout().trim()), (0, id.as_str()), "{}", run.stderr());
    let err = partition.code_is(1).stderr();
    assert!(err.contains("E-SSH-LOCAL") && err.contains("no `login` block"), "{err}");
}

/// On aws (moto), a cluster made with kiln's own security group and no `ssh_cidr` lets no SSH
/// in: `kiln ssh` says so and how to allow it (`ssh_cidr`, or an ingress rule for tcp 22),
/// instead of an ssh that times out; a node it does not have is refused. With `ssh_cidr`, ssh
/// (a stand-in on PATH: moto's instances run nowhere) gets the cluster's private key in a
/// private temporary directory, removed when it exits, its exit status kiln's; a key an earlier
/// kiln left under `.kiln/ssh/` is removed.
#[cfg(feature = "aws")]
#[test]
fn ssh_to_an_aws_node_needs_ssh_ingress_and_leaves_no_key_behind() {
    use std::os::unix::fs::PermissionsExt;
    let _g = crate::moto::exclusive();
    let endpoint = format!("endpoint={}", crate::moto::server().endpoint());
    let config = r#"
variable "endpoint" {
  type    = string
  default = null
}

provider "aws" {
  region   = "us-east-1"
  endpoint = var.endpoint
}

resource "cluster" "c" {
  provider      = aws
  nodes         = 1
  instance_type = "t3.micro"
}
"#;
    let p = Project::new(config);
    let bin = p.path().join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    // ssh -F CONFIG HOST ...: says where its identity file is, whether it is there and private.
    let fake = "#!/bin/sh\nkey=$(sed -n 's/^  IdentityFile \"\\(.*\\)\"$/\\1/p' \"$2\")\necho \"key=$key\"\n\
                [ -f \"$key\" ] && echo \"modes=$(stat -c %a \"$key\") $(stat -c %a \"$(dirname \"$key\")\")\"\nexit 5\n";
    std::fs::write(bin.join("ssh"), fake).unwrap();
    std::fs::set_permissions(bin.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let kiln = |args: &[&str]| {
        // Before any `--` (what follows it is the remote command).
        let mut all = vec![args[0], "--var", endpoint.as_str()];
        all.extend(&args[1..]);
        let mut c = p.command(&all);
        crate::aws::aws_env(&mut c);
        c.env("PATH", &path);
        crate::support::run(c)
    };
    kiln(&["apply", "--auto-approve"]).ok();
    let err = kiln(&["ssh", "cluster.c"]).code_is(1).stderr();
    assert!(err.contains("E-SSH-AWS-PORT") && err.contains("let no SSH (tcp 22) in") && err.contains("ssh_cidr"), "{err}");
    let err = kiln(&["ssh", "cluster.c", "--node", "1"]).code_is(1).stderr();
    assert!(err.contains("E-SSH-NODE") && err.contains("there is no node 1 (it has 1)"), "{err}");
    p.write("main.kiln.hcl", &config.replace("  nodes         = 1\n", "  nodes         = 1\n  ssh_cidr      = \"203.0.113.7/32\"\n"));
    kiln(&["apply", "--auto-approve"]).ok();
    let old = p.path().join(".kiln/ssh/cluster_c-0");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("id-i-0123"), "a key an earlier kiln left").unwrap();
    let run = kiln(&["ssh", "cluster.c", "--", "echo", "hi"]);
    let out = run.stdout();
    assert_eq!(run.code(), 5, "ssh's exit status is kiln's: {out}{}", run.stderr());
    let key = out.lines().find_map(|l| l.strip_prefix("key=")).unwrap_or_else(|| panic!("{out}"));
    assert!(out.contains("modes=600 700"), "ssh read the key from a private file in a private directory: {out}");
    assert!(!key.is_empty() && !std::path::Path::new(key).starts_with(p.path()), "{key}");
    assert!(!std::path::Path::new(key).exists() && !std::path::Path::new(key).parent().unwrap().exists(), "{key} is removed");
    assert_eq!(private_keys_under(&p.path().join(".kiln")), Vec::<std::path::PathBuf>::new(), "no private key is left under .kiln");
    kiln(&["destroy", "--auto-approve"]).ok();
}

/// Slurm through a login node (a harness sshd host on this machine, logging in as `trainer`):
/// `kiln ssh job.j` reaches the running job's node with srun from the login node, and
/// `kiln ssh cluster.debug` opens the login node itself, saying so.
#[cfg(all(feature = "slurm", feature = "onprem"))]
#[test]
fn ssh_reaches_a_slurm_job_through_the_login_node() {
    crate::slurm::cluster();
    let h = crate::onprem::harness();
    let host = &h.hosts[1];
    let p = Project::new(&format!(
        r#"
provider "slurm" {{
  login {{
    host          = "{address}"
    port          = {port}
    user          = "trainer"
    identity_file = "{id}"
    host_key      = "{key}"
  }}
}}

resource "cluster" "debug" {{
  provider  = slurm
  partition = "debug"
}}

resource "job" "j" {{
  provider   = slurm
  cluster    = cluster.debug
  time_limit = "3:00"
  run        = "sleep 120"
}}
"#,
        address = host.address,
        port = host.port,
        id = h.dir.join("client_ed25519").display(),
        key = host.key,
    ));
    p.kiln(&["apply", "--auto-approve"]).ok();
    let running = || json(&p, &["jobs", "--json"])["jobs"][0]["status"] == "running";
    wait_until("job.j runs", Duration::from_secs(120), running);
    let id = json(&p, &["jobs", "--json"])["jobs"][0]["job_id"].as_str().expect("a job_id").to_string();
    let step = p.kiln(&["ssh", "job.j", "--", "printenv", "SLURM_JOB_ID"]);
    let login = p.kiln(&["ssh", "cluster.debug", "--", "whoami"]);
    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert_eq!((step.code(), step.stdout().trim()), (0, id.as_str()), "{}", step.stderr());
    assert_eq!(login.stdout(), "trainer\n", "{}", login.stderr());
    assert!(login.stderr().contains("this shell is on the login node"), "{}", login.stderr());
}

/// An aws cluster and spot pool whose state was written before kiln recorded `created_at` (the
/// attribute taken out of a state this kiln wrote): the plan has no change, for them or for a
/// record holding the whole cluster, and reports nothing changed outside kiln, though refresh
/// now reads the launch time; `kiln status` shows their
/// uptime (the cluster's: its first instance's launch time, as its create recorded it).
#[cfg(feature = "aws")]
#[test]
fn an_aws_state_written_before_created_at_plans_no_change_and_status_shows_uptime() {
    let _g = crate::moto::exclusive();
    let endpoint = format!("endpoint={}", crate::moto::server().endpoint());
    let p = Project::new(
        r#"
variable "endpoint" {
  type    = string
  default = null
}

provider "aws" {
  region   = "us-east-1"
  endpoint = var.endpoint
}

resource "cluster" "c" {
  provider      = aws
  instance_type = "t3.micro"
}

resource "spot_pool" "p" {
  provider       = aws
  instance_types = ["t3.micro"]
  capacity       = 1
}

resource "record" "r" {
  input = cluster.c
}
"#,
    );
    let kiln = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--var", endpoint.as_str()]);
        let mut c = p.command(&all);
        crate::aws::aws_env(&mut c);
        crate::support::run(c)
    };
    kiln(&["apply", "--auto-approve"]).ok();
    let mut state = p.state_json();
    let mut recorded = Vec::new();
    for r in state["resources"].as_array_mut().unwrap().iter_mut().filter(|r| r["kind"] != "record") {
        let at = r["attributes"].as_object_mut().unwrap().remove("created_at");
        recorded.push(at.and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| panic!("{} records created_at", r["address"])));
    }
    // The record's copy of the cluster too, as the older kiln wrote it.
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("created_at");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut state);
    std::fs::write(p.state_path(), serde_json::to_string_pretty(&state).unwrap()).unwrap();

    let plan = kiln(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), 0, "an older state plans no change:\n{}\n{}", plan.stdout(), plan.stderr());
    assert!(!plan.stdout().contains("changed outside of kiln") && !plan.stdout().contains("created_at"), "no drift: {}", plan.stdout());
    assert!(plan.stdout().contains("No changes"), "nor does what refers to the cluster change: {}", plan.stdout());

    let status = kiln(&["status", "--json"]).ok().stdout();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap_or_else(|e| panic!("{e}: {status}"));
    conforms("status-view.schema.json", &status);
    let clusters = status["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2, "{status}");
    for c in clusters {
        assert!(c["created_at"].is_string() && c["uptime_seconds"].is_u64(), "refresh reads when it came up: {c}");
    }

    let i =
        state["resources"].as_array().unwrap().iter().filter(|r| r["kind"] != "record").position(|r| r["address"] == "cluster.c").unwrap();
    let c = clusters.iter().find(|c| c["address"] == "cluster.c").unwrap();
    assert_eq!(c["created_at"].as_str(), Some(recorded[i].as_str()), "the cluster's launch time, as its create recorded it");
    kiln(&["destroy", "--auto-approve"]).ok();
}
