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
    assert!(plan.contains("No changes.") && plan.contains("cluster.c (released when `job.j` finished)"), "{plan}");
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

/// Only a cluster is released: a checkpoint bucket deleted outside kiln after the job
/// succeeded is created again, as any gone object is.
#[test]
fn a_gone_checkpoint_bucket_of_a_finished_job_is_created_again_not_released() {
    let config = CONFIG.replace("resource \"job\"", "resource \"bucket\" \"ckpt\" {}\n\nresource \"job\"").replace(
        "  on_finish = \"destroy_capacity\"\n",
        "  on_finish = \"destroy_capacity\"\n  checkpoint {\n    bucket = bucket.ckpt\n  }\n",
    );
    let p = Project::new(&config);
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    assert_eq!(released(&p, "cluster.c")["by"], "job.j");
    std::fs::remove_dir_all(p.path().join(".kiln/buckets/ckpt")).unwrap();
    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("# bucket.ckpt has been deleted") && plan.contains("# bucket.ckpt will be created"), "{plan}");
    assert!(!plan.contains("bucket.ckpt will be released"), "{plan}");
    p.kiln(&["destroy", "--auto-approve"]).ok();
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

/// The `billing` record of `address` in the state file.
fn billing(p: &Project, address: &str) -> serde_json::Value {
    let state = p.state_json();
    let r = state["resources"].as_array().unwrap().iter().find(|r| r["address"] == address).cloned();
    r.unwrap_or_else(|| panic!("{address} is not in state: {state}"))["billing"].clone()
}

/// A billing record's `hourly` (a decimal string in the state file), as a number.
fn hourly(billing: &serde_json::Value) -> f64 {
    let h = &billing["hourly"];
    h.as_str().and_then(|s| s.parse().ok()).or_else(|| h.as_f64()).unwrap_or_else(|| panic!("no known hourly price: {billing}"))
}

/// `kiln cost --json`'s hourly rate of `address`.
fn cost_hourly(p: &Project, address: &str) -> f64 {
    let json = p.kiln(&["cost", "--json"]).ok().stdout();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("kiln cost --json is not JSON ({e}): {json}"));
    let lines = v["resources"].as_array().cloned().unwrap_or_default();
    let line = lines.iter().find(|l| l["address"] == address).unwrap_or_else(|| panic!("{address} in kiln cost: {v}"));
    line["hourly"].as_f64().unwrap_or_else(|| panic!("{address} has no known hourly rate: {v}"))
}

/// Issue 15 on aws against moto: the release really frees the capacity. `apply --wait` runs the
/// job on a 1-node cluster (the kiln agent started from each instance's user data, as EC2 would
/// at boot, against the harness's instance metadata) and releases the cluster when it succeeds:
/// EC2 shows its instance terminated and its security group and key pair gone, and state bills
/// it at $0 an hour. `kiln run` launches new instances for the job and releases them again;
/// `kiln destroy` then only forgets the released cluster. The crash window of a release (the
/// cluster deleted, kiln killed before recording it) plans and records the release, unless another
/// job still ran on the cluster: then it is created again.
#[cfg(feature = "aws")]
mod aws {
    use std::collections::BTreeSet;
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::{billing, cost_hourly, hourly, released};
    use crate::aws::aws_env;
    use crate::moto::{exclusive, server, tag, Inspect, Inventory};
    use crate::support::{wait_until, Project, Run, Spawned, RUN_TIMEOUT};

    const BODY: &str = r#"
variable "endpoint" {
  type = string
}

provider "aws" {
  region   = "us-east-1"
  endpoint = var.endpoint
}

resource "bucket" "ckpt" {
  provider      = aws
  force_destroy = true
}

resource "cluster" "c" {
  provider      = aws
  instance_type = "g5.xlarge"
  nodes         = 1
}

resource "job" "j" {
  provider  = aws
  cluster   = cluster.c
  run       = "echo trained"
  on_finish = "destroy_capacity"

  checkpoint {
    bucket = bucket.ckpt
  }
}
"#;

    /// The kiln agents started from instances' user data (local processes, one directory each);
    /// killed by the pid each wrote when dropped.
    struct Agents {
        dir: tempfile::TempDir,
        booted: BTreeSet<String>,
    }

    impl Agents {
        fn new() -> Self {
            Agents { dir: tempfile::tempdir().unwrap(), booted: BTreeSet::new() }
        }

        fn path(&self, id: &str) -> PathBuf {
            self.dir.path().join(id)
        }

        /// Runs instance `id`'s user data (read back through the AWS API with boto3, and
        /// unpacked as cloud-init does) as the instance would at boot; its agent reports every
        /// second.
        fn boot(&mut self, id: &str) {
            let moto = server();
            let read = "import base64, gzip, sys, boto3\n\
                ec2 = boto3.client('ec2', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
                v = ec2.describe_instance_attribute(InstanceId=sys.argv[2], Attribute='userData')['UserData']['Value']\n\
                sys.stdout.write(gzip.decompress(base64.b64decode(v)).decode())\n";
            let out = Command::new(moto.python()).args(["-c", read, &moto.endpoint(), id]).output().expect("run python");
            assert!(out.status.success(), "user data of {id}: {}", String::from_utf8_lossy(&out.stderr));
            let script = String::from_utf8(out.stdout).unwrap();
            assert!(script.contains("kiln agent"), "{script}");
            let status = Command::new("sh")
                .args(["-c", &script])
                .env("KILN_IMDS", format!("{}/_testbed/imds/us-east-1/{id}", moto.endpoint()))
                .env("KILN_AGENT_DIR", self.path(id))
                .env("KILN_AGENT_INTERVAL", "1")
                .status()
                .unwrap();
            assert!(status.success());
            self.booted.insert(id.to_string());
        }
    }

    impl Drop for Agents {
        fn drop(&mut self) {
            for id in &self.booted {
                let pid_file = self.path(id).join("agent.pid");
                let deadline = Instant::now() + Duration::from_secs(10);
                while !pid_file.exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<u32>().ok()) {
                    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                }
            }
        }
    }

    fn project() -> Project {
        let p = Project::new(BODY);
        p.write("moto.auto.kilnvars", &format!("endpoint = \"{}\"\n", server().endpoint()));
        p
    }

    fn kiln(p: &Project, args: &[&str]) -> Run {
        let mut c = p.command(args);
        aws_env(&mut c);
        crate::support::run(c)
    }

    fn ids(v: Vec<&serde_json::Value>) -> Vec<String> {
        v.into_iter().map(|i| i["id"].as_str().expect("id").to_string()).collect()
    }

    /// What a run of [`run_with_agents`] saw.
    struct Ran {
        run: Run,
        /// The instances of cluster.c it booted agents on.
        booted: Vec<String>,
        /// cluster.c's billing in state once the apply had recorded the cluster running.
        billing: serde_json::Value,
    }

    /// Runs `kiln ARGS` (an apply that waits for job.j) in the background and, once state holds
    /// cluster.c running (not released), boots an agent on each of its live instances, so the
    /// job runs and the command sees it succeed.
    fn run_with_agents(p: &Project, args: &[&str], agents: &mut Agents) -> Ran {
        let mut c = p.command(args);
        aws_env(&mut c);
        let mut s = Spawned::start(c);
        let start = Instant::now();
        let (mut booted, mut seen) = (Vec::new(), serde_json::Value::Null);
        while s.running() {
            assert!(start.elapsed() < RUN_TIMEOUT, "kiln {args:?} did not finish:\n{}", s.stderr_so_far());
            let recorded = std::fs::read_to_string(p.state_path())
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|st| st["resources"].as_array()?.iter().find(|r| r["address"] == "cluster.c").cloned())
                .filter(|r| r["released"].is_null());
            if let Some(r) = recorded {
                for id in ids(server().inspect().live_of("cluster.c")) {
                    if !agents.booted.contains(&id) {
                        seen = r["billing"].clone();
                        agents.boot(&id);
                        booted.push(id);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ran { run: s.wait(RUN_TIMEOUT), booted, billing: seen }
    }

    /// The security groups and key pairs kiln made for cluster.c that EC2 still holds.
    fn network_of_cluster(aws: &Inventory) -> usize {
        let own = |v: Vec<&serde_json::Value>| v.into_iter().filter(|x| tag(x, "kiln:address") == Some("cluster.c")).count();
        own(aws.security_groups()) + own(aws.key_pairs())
    }

    /// After a release: every instance in `launched` terminated, nothing of cluster.c left in EC2,
    /// state keeping it as released by job.j at $0 an hour.
    fn capacity_freed(p: &Project, launched: &[String]) {
        let aws = server().inspect();
        for id in launched {
            assert_eq!(aws.instance(id)["state"], "terminated", "the released cluster's instance {id}: {:#}", aws.0["instances"]);
        }
        assert_eq!(aws.live_instances(), Vec::<&serde_json::Value>::new(), "nothing runs");
        assert_eq!(network_of_cluster(&aws), 0, "its security group and key pair are gone: {:#}", aws.0);
        assert_eq!(released(p, "cluster.c")["by"], "job.j");
        let b = billing(p, "cluster.c");
        assert_eq!(hourly(&b), 0.0, "a released cluster bills nothing: {b}");
        assert_eq!(cost_hourly(p, "cluster.c"), 0.0);
    }

    #[test]
    fn aws_a_released_cluster_is_terminated_in_ec2_bills_nothing_and_kiln_run_launches_and_releases_it_again() {
        let _g = exclusive();
        let p = project();
        let mut agents = Agents::new();

        let first = run_with_agents(&p, &["apply", "--auto-approve", "--wait"], &mut agents);
        let first_run = first.run.ok();
        assert_eq!(first.booted.len(), 1, "one node: {:?}", first.booted);
        assert!(hourly(&first.billing) > 0.0, "billed while it ran: {}", first.billing);
        assert!(first_run.stderr().contains("job.j succeeded: releasing cluster.c"), "{}", first_run.stderr());
        capacity_freed(&p, &first.booted);
        let b = billing(&p, "cluster.c");
        assert_eq!(b["offering"], first.billing["offering"], "what it ran as is kept: {b}");
        kiln(&p, &["plan", "--detailed-exitcode"]).code_is(0);
        let status: serde_json::Value = serde_json::from_str(&kiln(&p, &["status", "--json"]).ok().stdout()).unwrap();
        assert_eq!(status["clusters"][0]["state"], "released", "{status}");

        // The job again: a new instance for it, released when it succeeds.
        let second = run_with_agents(&p, &["run", "job.j", "--auto-approve"], &mut agents);
        let second_run = second.run.ok();
        let out = second_run.stdout();
        assert!(out.contains("# cluster.c will be created again (released when `job.j` finished; `job.j` needs it)"), "{out}");
        assert!(out.contains("Plan: 2 to add, 0 to change, 1 to destroy."), "{out}");
        assert!(second_run.stderr().contains("job.j succeeded: releasing cluster.c"), "{}", second_run.stderr());
        assert_eq!(second.booted.len(), 1, "a new node: {:?}", second.booted);
        assert!(!first.booted.contains(&second.booted[0]), "launched anew: {:?} then {:?}", first.booted, second.booted);
        assert!(hourly(&second.billing) > 0.0, "billed again while it ran: {}", second.billing);
        let launched: Vec<String> = first.booted.iter().chain(&second.booted).cloned().collect();
        capacity_freed(&p, &launched);
        let jobs: serde_json::Value = serde_json::from_str(&kiln(&p, &["jobs", "--json"]).ok().stdout()).unwrap();
        assert_eq!(jobs["jobs"][0]["status"], "succeeded", "{jobs}");

        // Destroy forgets the released cluster and deletes the rest.
        let destroy = kiln(&p, &["destroy", "--auto-approve"]).ok();
        assert!(destroy.stdout().contains("Destroy complete!"), "{}", destroy.stdout());
        assert!(!destroy.stderr().contains("rror"), "{}", destroy.stderr());
        assert_eq!(p.kiln(&["state", "list"]).ok().stdout(), "");
        let aws = server().inspect();
        assert_eq!(aws.live_instances(), Vec::<&serde_json::Value>::new());
        assert_eq!(aws.buckets(), Vec::<&serde_json::Value>::new());
        assert_eq!(network_of_cluster(&aws), 0);
    }

    /// The attributes state records for `address`.
    fn attributes(p: &Project, address: &str) -> serde_json::Value {
        let state = p.state_json();
        let r = state["resources"].as_array().unwrap().iter().find(|r| r["address"] == address).cloned();
        r.unwrap_or_else(|| panic!("{address} is not in state: {state}"))["attributes"].clone()
    }

    /// `address`'s status as `kiln jobs --json` reads it now.
    fn job_status(p: &Project, address: &str) -> String {
        let out = kiln(p, &["jobs", "--json"]).ok().stdout();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("kiln jobs --json is not JSON ({e}): {out}"));
        let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
        let job = jobs.iter().find(|j| j["address"] == address).unwrap_or_else(|| panic!("{address} in kiln jobs: {v}"));
        job["status"].as_str().unwrap_or_default().to_string()
    }

    /// Boots an agent on each live instance of cluster.c that has none yet; their IDs.
    fn boot_cluster(agents: &mut Agents) -> Vec<String> {
        let fresh: Vec<String> =
            ids(server().inspect().live_of("cluster.c")).into_iter().filter(|id| !agents.booted.contains(id)).collect();
        for id in &fresh {
            agents.boot(id);
        }
        fresh
    }

    /// What the release's delete of cluster.c does (the provider's cluster delete: its instances
    /// terminated, the security group and key pair kiln made for it deleted), done in EC2 behind
    /// kiln's back: what an apply killed after that delete and before recording the release
    /// leaves. The IDs of the instances terminated.
    fn delete_behind_kilns_back(p: &Project) -> Vec<String> {
        let c = attributes(p, "cluster.c");
        let delete = "import json, sys, boto3\n\
            ec2 = boto3.client('ec2', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
            c = json.loads(sys.argv[2])\n\
            ec2.terminate_instances(InstanceIds=c['instance_ids'])\n\
            for sg in c.get('security_group_ids') or []:\n    ec2.delete_security_group(GroupId=sg)\n\
            if c.get('key_name'):\n    ec2.delete_key_pair(KeyName=c['key_name'])\n";
        let moto = server();
        let out = Command::new(moto.python()).args(["-c", delete, &moto.endpoint(), &c.to_string()]).output().expect("run python");
        assert!(out.status.success(), "delete cluster.c in EC2: {}", String::from_utf8_lossy(&out.stderr));
        let aws = moto.inspect();
        assert_eq!(aws.live_of("cluster.c"), Vec::<&serde_json::Value>::new(), "terminated");
        assert_eq!(network_of_cluster(&aws), 0, "its network deleted: {:#}", aws.0);
        c["instance_ids"].as_array().expect("instance_ids").iter().map(|i| i.as_str().expect("id").to_string()).collect()
    }

    /// The EC2 calls of a cluster's delete: while set, each fails (403), so an apply that made
    /// one would fail or leave fewer hits than [`DELETE_HITS`].
    const DELETES: [&str; 3] = ["TerminateInstances", "DeleteSecurityGroup", "DeleteKeyPair"];
    const DELETE_HITS: u64 = 100;

    /// Issue 15, the crash window of a release: the job's cluster deleted (by the release) and
    /// kiln killed before it recorded the release. The next plan, which finds the cluster gone
    /// while the job that asked for the release succeeded, plans the release (not a new cluster
    /// and the finished job run again); its apply records it without deleting anything.
    #[test]
    fn aws_a_cluster_a_release_deleted_without_recording_it_is_planned_and_recorded_as_released_not_created_again() {
        let _g = exclusive();
        let p = project();
        let mut agents = Agents::new();
        kiln(&p, &["apply", "--auto-approve"]).ok();
        let launched = boot_cluster(&mut agents);
        assert_eq!(launched.len(), 1, "one node: {launched:?}");
        wait_until("job.j succeeded", RUN_TIMEOUT, || job_status(&p, "job.j") == "succeeded");
        assert!(released(&p, "cluster.c").is_null(), "no release applied yet");
        let job = attributes(&p, "job.j");
        assert_eq!(delete_behind_kilns_back(&p), launched);
        let instances = server().inspect().instances().len();

        let plan = kiln(&p, &["plan", "--detailed-exitcode"]).code_is(2).stdout();
        assert!(
            plan.contains("# cluster.c will be released (`job.j` finished; on_finish = \"destroy_capacity\")"),
            "the release, not a new cluster: {plan}"
        );
        assert!(plan.contains("Plan: 0 to add, 0 to change, 1 to destroy."), "{plan}");
        for not in ["will be created", "must be replaced", "# job.j will", "# job.j must"] {
            assert!(!plan.contains(not), "`{not}` in the plan: {plan}");
        }

        // Recorded without a delete: every EC2 delete call would fail meanwhile.
        for action in DELETES {
            server().fault(action, "", "UnauthorizedOperation", 403, u32::try_from(DELETE_HITS).unwrap());
        }
        let apply = kiln(&p, &["apply", "--auto-approve"]).ok();
        assert!(apply.stdout().contains("Apply complete!"), "{}", apply.stdout());
        assert_eq!(server().faults_left(), 3 * DELETE_HITS, "no delete reached EC2");
        server().clear_faults();
        capacity_freed(&p, &launched);
        assert_eq!(server().inspect().instances().len(), instances, "nothing launched");
        let after = attributes(&p, "job.j");
        assert_eq!(after["job_id"], job["job_id"], "the finished job was not replaced: {after}");
        assert_eq!(job_status(&p, "job.j"), "succeeded");
        kiln(&p, &["plan", "--detailed-exitcode"]).code_is(0);

        let destroy = kiln(&p, &["destroy", "--auto-approve"]).ok();
        assert!(destroy.stdout().contains("Destroy complete!"), "{}", destroy.stdout());
        assert_eq!(p.kiln(&["state", "list"]).ok().stdout(), "");
        let aws = server().inspect();
        assert_eq!(aws.live_instances(), Vec::<&serde_json::Value>::new());
        assert_eq!(aws.buckets(), Vec::<&serde_json::Value>::new());
        assert_eq!(network_of_cluster(&aws), 0);
    }

    /// The guard of the test above: a cluster found gone while another job (without `on_finish`)
    /// still ran on it was not released: it is created again as before that change, with every
    /// job on it replaced (the one that succeeded too: its `cluster` changes).
    #[test]
    fn aws_a_gone_cluster_another_job_ran_on_is_created_again_for_it() {
        let _g = exclusive();
        let p = project();
        let mut agents = Agents::new();
        kiln(&p, &["apply", "--auto-approve"]).ok();
        let launched = boot_cluster(&mut agents);
        wait_until("job.j succeeded", RUN_TIMEOUT, || job_status(&p, "job.j") == "succeeded");
        let job = attributes(&p, "job.j");

        // job.k on the same cluster (its instance's agent runs it next), until the agents' directory
        // goes with the test.
        let k = format!(
            "{BODY}\nresource \"job\" \"k\" {{\n  provider = aws\n  cluster  = cluster.c\n  run      = \"while [ -d {} ]; do sleep 1; done\"\n\n  checkpoint {{\n    bucket = bucket.ckpt\n  }}\n}}\n",
            agents.dir.path().display()
        );
        p.write("main.kiln.hcl", &k);
        let plan = kiln(&p, &["plan"]).ok().stdout();
        assert!(plan.contains("Plan: 1 to add, 0 to change, 0 to destroy."), "job.k keeps the cluster: {plan}");
        kiln(&p, &["apply", "--auto-approve"]).ok();
        wait_until("job.k running", RUN_TIMEOUT, || job_status(&p, "job.k") == "running");
        let k_id = attributes(&p, "job.k")["job_id"].clone();
        assert_eq!(delete_behind_kilns_back(&p), launched);

        let plan = kiln(&p, &["plan", "--detailed-exitcode"]).code_is(2).stdout();
        assert!(!plan.contains("released"), "job.k ran on it: {plan}");
        assert!(plan.contains("# cluster.c has been deleted") && plan.contains("# cluster.c will be created\n"), "{plan}");
        assert!(plan.contains("# job.k must be replaced") && plan.contains("# job.j must be replaced"), "{plan}");
        assert!(plan.contains("Plan: 3 to add, 0 to change, 2 to destroy."), "{plan}");
        kiln(&p, &["apply", "--auto-approve"]).ok();
        assert!(released(&p, "cluster.c").is_null());
        let live = ids(server().inspect().live_of("cluster.c"));
        assert_eq!(live.len(), 1, "a new node: {live:?}");
        assert!(!launched.contains(&live[0]), "{launched:?} then {live:?}");
        assert!(hourly(&billing(&p, "cluster.c")) > 0.0);
        assert_ne!(attributes(&p, "job.j")["job_id"], job["job_id"], "job.j replaced");
        assert_ne!(attributes(&p, "job.k")["job_id"], k_id, "job.k replaced");

        kiln(&p, &["destroy", "--auto-approve"]).ok();
        assert_eq!(p.kiln(&["state", "list"]).ok().stdout(), "");
        let aws = server().inspect();
        assert_eq!(aws.live_instances(), Vec::<&serde_json::Value>::new());
        assert_eq!(network_of_cluster(&aws), 0);
    }
}

/// Issue 15 on onprem against real sshd hosts: the release frees the cluster's claim on its host
/// (the `claims/member-CLUSTER_ID` file the provider reads to know who holds the host, see the
/// provider's `claims.rs`) and stops its billing; the job replaced claims the host again under a
/// new cluster ID, and `kiln watch` frees it again once that job succeeds.
#[cfg(feature = "onprem")]
mod onprem {
    use std::path::PathBuf;

    use super::{billing, cost_hourly, hourly, released, until_succeeded};
    use crate::onprem::harness;
    use crate::support::Project;

    /// A project whose cluster takes harness host1 (always up), with kiln's files on it under
    /// a root of its own; the root.
    fn project() -> (Project, PathBuf) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let h = harness();
        let host = &h.hosts[0];
        let root =
            h.dir.join("scratch").join(format!("release-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
        let config = format!(
            r#"
provider "onprem" {{
  user          = "trainer"
  identity_file = "{identity}"
  root          = "{root}"
  hourly_price  = 1.5

  host {{
    name     = "{name}"
    address  = "{address}"
    port     = {port}
    host_key = "{key}"
  }}
}}

resource "cluster" "c" {{
  provider = onprem
  nodes    = 1
}}

resource "job" "j" {{
  provider  = onprem
  cluster   = cluster.c
  run       = "echo trained"
  on_finish = "destroy_capacity"
}}
"#,
            identity = h.dir.join("client_ed25519").display(),
            root = root.display(),
            name = host.name,
            address = host.address,
            port = host.port,
            key = host.key,
        );
        (Project::new(&config), root)
    }

    /// The claims on host1 (file name → the claim's JSON), read from the host's kiln directory.
    fn claims(root: &std::path::Path) -> Vec<(String, serde_json::Value)> {
        let dir = root.join("hosts").join(&harness().hosts[0].name).join("claims");
        let mut out: Vec<(String, serde_json::Value)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                (e.file_name().to_string_lossy().into_owned(), serde_json::from_str(text.trim()).unwrap_or(serde_json::Value::Null))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every file under `dir`.
    fn files(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(files(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }

    /// The cluster ID state holds for cluster.c.
    fn cluster_id(p: &Project) -> String {
        let state = p.state_json();
        let r = state["resources"].as_array().unwrap().iter().find(|r| r["address"] == "cluster.c").cloned().expect("cluster.c");
        r["attributes"]["cluster_id"].as_str().unwrap_or_else(|| panic!("no cluster_id: {r}")).to_string()
    }

    /// host1 is claimed by cluster.c under its ID in state, and by nothing else; that ID.
    fn claimed(p: &Project, root: &std::path::Path) -> String {
        let id = cluster_id(p);
        let c = claims(root);
        assert_eq!(c.len(), 1, "one member claim, no GPU claims (the harness's hosts have none): {c:?}");
        assert_eq!(c[0].0, format!("member-{id}"), "{c:?}");
        assert_eq!((c[0].1["address"].as_str(), c[0].1["cluster_id"].as_str()), (Some("cluster.c"), Some(id.as_str())), "{c:?}");
        assert!(hourly(&billing(p, "cluster.c")) > 0.0, "billed while it holds the host");
        id
    }

    /// host1 is held by no cluster, and state bills the released cluster nothing.
    fn freed(p: &Project, root: &std::path::Path) {
        assert_eq!(claims(root), Vec::new(), "the release removed the cluster's claim on host1");
        assert_eq!(released(p, "cluster.c")["by"], "job.j");
        assert_eq!(hourly(&billing(p, "cluster.c")), 0.0);
        assert_eq!(cost_hourly(p, "cluster.c"), 0.0);
    }

    #[test]
    fn onprem_a_release_frees_the_hosts_claim_and_the_job_replaced_claims_it_again() {
        let (p, root) = project();
        p.kiln(&["apply", "--auto-approve"]).ok();
        let first = claimed(&p, &root);
        assert_eq!(cost_hourly(&p, "cluster.c"), 1.5, "the provider's hourly_price for host1");
        until_succeeded(&p);

        let plan = p.kiln(&["plan"]).ok().stdout();
        assert!(plan.contains("# cluster.c will be released"), "{plan}");
        p.kiln(&["apply", "--auto-approve"]).ok();
        freed(&p, &root);
        // The job outlives its capacity: its result is still read from the host.
        p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
        assert!(p.kiln(&["logs", "job.j"]).ok().stdout().contains("trained"));

        // The job replaced: the cluster is created again and claims host1 under a new ID.
        p.kiln(&["apply", "--auto-approve", "--replace", "job.j"]).ok();
        assert!(released(&p, "cluster.c").is_null());
        let second = claimed(&p, &root);
        assert_ne!(second, first, "a new cluster");
        until_succeeded(&p);
        let log = p.kiln(&["logs", "job.j"]).ok().stdout();
        assert!(log.contains("trained"), "the job ran on the host claimed again: {log}");

        let watch = p.kiln(&["watch", "--once"]).ok();
        assert!(watch.stderr().contains("releasing cluster.c"), "{}", watch.stderr());
        freed(&p, &root);

        let destroy = p.kiln(&["destroy", "--auto-approve"]).ok();
        assert!(destroy.stdout().contains("Destroy complete!"), "{}", destroy.stdout());
        assert_eq!(p.kiln(&["state", "list"]).ok().stdout(), "");
        assert_eq!(files(&root), Vec::<PathBuf>::new(), "destroy removed the job's directories");
    }
}
