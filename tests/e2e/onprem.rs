//! The `onprem` provider end to end (issue 6): `examples/onprem-fleet` applied through the binary
//! against real sshd processes on loopback (`tests/harness/sshd/start.sh`, started on first use
//! and stopped when this test binary exits), its hosts given as variables in a
//! `hosts.auto.kilnvars` file as the example's header tells users to. Checked: the 2-node job
//! ran on both hosts with the right ranks and IPs (`kiln logs`, and the harness's own
//! per-host environment), plan is then empty, a changed host key is refused with the
//! fingerprint the host presents, and destroy leaves nothing on the hosts. These tests never
//! skip: if sshd cannot be started they fail with the script's output.
//!
//! [`var_flags`] gives other modules (examples.rs) `--var` flags for the example.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{copy_dir, repo_root, Project, Spawned};

/// Hosts the harness starts: host1 and host2 for the example; host3 (taken down by one test,
/// used by no other), host4 and host1 again for the host-down test; host5 (taken down by the
/// `kiln watch` test, used by no other), host4 and host1 again for that test.
const HOSTS: u16 = 5;

/// One sshd host, as start.sh lists it in hosts.tsv.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: u16,
    /// `ssh-ed25519 AAAA...`
    pub key: String,
}

pub struct Harness {
    pub dir: PathBuf,
    pub hosts: Vec<Host>,
}

/// A base port with BASE+1..=BASE+HOSTS free on every host address.
fn free_base() -> u16 {
    let start = 30000 + (std::process::id() % 1000) as u16 * 10;
    (0..1000u16)
        .map(|i| 30000 + (start - 30000 + i * 10) % 20000)
        .find(|base| (1..=HOSTS).all(|i| std::net::TcpListener::bind((format!("127.0.1.{i}").as_str(), base + i)).is_ok()))
        .expect("no free ports for the sshd hosts")
}

/// The sshd hosts, started on first use and stopped (their directory removed) once this test
/// process has exited.
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let dir = PathBuf::from(format!("/tmp/kiln-e2e-sshd-{}", std::process::id()));
        let sshd = repo_root().join("tests/harness/sshd");
        let out = Command::new("bash")
            .arg(sshd.join("start.sh"))
            .env("SSH_DIR", &dir)
            .env("SSH_HOSTS", HOSTS.to_string())
            .env("SSH_BASE_PORT", free_base().to_string())
            .output()
            .unwrap_or_else(|e| panic!("cannot run tests/harness/sshd/start.sh: {e}"));
        let command = format!("SSH_DIR='{}' bash '{}' --purge", dir.display(), sshd.join("stop.sh").display());
        kiln_testkit::when_this_process_exits(&command, "stops the sshd hosts");
        assert!(
            out.status.success(),
            "the SSH test hosts could not be started (tests/harness/sshd/start.sh needs root and openssh-server):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let tsv = std::fs::read_to_string(dir.join("hosts.tsv")).expect("start.sh wrote hosts.tsv");
        let hosts = tsv
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Host { name: f[0].into(), address: f[1].into(), port: f[2].parse().expect("port"), key: format!("{} {}", f[4], f[5]) }
            })
            .collect();
        Harness { dir, hosts }
    })
}

impl Harness {
    /// A fresh directory for kiln's files on the hosts (they share this machine's disk).
    fn scratch(&self) -> String {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("{}/scratch/root-{n}", self.dir.display())
    }

    /// Takes host `name` down: its sshd and the connections it serves end (stop.sh HOST).
    fn stop_host(&self, name: &str) {
        let out = Command::new("bash")
            .arg(repo_root().join("tests/harness/sshd/stop.sh"))
            .arg(name)
            .env("SSH_DIR", &self.dir)
            .output()
            .expect("run stop.sh");
        assert!(out.status.success(), "stop.sh {name} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `SHA256:...` of host `i`'s key, as `ssh-keygen -lf` prints it (not kiln's computation).
    fn fingerprint(&self, i: usize) -> String {
        let pubkey = self.dir.join(&self.hosts[i].name).join("ssh_host_ed25519_key.pub");
        let out = Command::new("ssh-keygen").arg("-lf").arg(&pubkey).output().expect("run ssh-keygen");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace().nth(1).unwrap_or_else(|| panic!("ssh-keygen -lf {}: {text}", pubkey.display())).to_string()
    }
}

/// The example's `hosts` value (HCL) for `hosts`.
fn hosts_value(hosts: &[Host]) -> String {
    let items: Vec<String> = hosts
        .iter()
        .map(|h| format!("{{ name = \"{}\", address = \"{}\", port = {}, host_key = \"{}\" }}", h.name, h.address, h.port, h.key))
        .collect();
    format!("[{}]", items.join(", "))
}

fn identity_file(h: &Harness) -> String {
    h.dir.join("client_ed25519").display().to_string()
}

/// `--var` flags that point the example at the harness's hosts, with a fresh remote root.
pub fn var_flags() -> Vec<String> {
    let h = harness();
    [
        format!("hosts={}", hosts_value(&h.hosts[..2])),
        format!("identity_file={}", identity_file(h)),
        "user=trainer".to_string(),
        format!("root={}", h.scratch()),
    ]
    .into_iter()
    .flat_map(|v| ["--var".to_string(), v])
    .collect()
}

/// A copy of `examples/onprem-fleet` with a `hosts.auto.kilnvars` for the harness; on drop,
/// `kiln destroy` runs, so no job outlives its test, pass or fail.
struct OnpremProject {
    p: Project,
    root: String,
}

impl std::ops::Deref for OnpremProject {
    type Target = Project;
    fn deref(&self) -> &Project {
        &self.p
    }
}

impl OnpremProject {
    /// The example over harness hosts 1 and 2.
    fn example() -> Self {
        Self::over(&harness().hosts[..2])
    }

    /// The example over `hosts` (the first two are the ones it declares).
    fn over(hosts: &[Host]) -> Self {
        let h = harness();
        let p = Project::empty();
        copy_dir(&repo_root().join("examples/onprem-fleet"), p.path(), &[]);
        let root = h.scratch();
        p.write(
            "hosts.auto.kilnvars",
            &format!(
                "user          = \"trainer\"\nidentity_file = \"{}\"\nroot          = \"{root}\"\nhosts         = {}\n",
                identity_file(h),
                hosts_value(hosts)
            ),
        );
        OnpremProject { p, root }
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

    /// Files kiln left in its directory on the hosts (claims and job directories).
    fn remote_files(&self) -> Vec<String> {
        fn walk(d: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(Path::new(&self.root), &mut out);
        out
    }
}

impl Drop for OnpremProject {
    fn drop(&mut self) {
        // Never panics: it may run while a failed test unwinds.
        let mut destroy = Spawned::start(self.p.command(&["destroy", "--auto-approve"]));
        let start = std::time::Instant::now();
        while destroy.running() && start.elapsed() < std::time::Duration::from_secs(120) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[test]
fn onprem_example_runs_a_two_node_job_on_both_hosts_replans_clean_and_destroys() {
    let h = harness();
    let p = OnpremProject::example();
    // Which machine each rank really ran on: the harness's sshd sets KILN_HARNESS_HOST in every
    // session it serves, and the job inherits it.
    p.edit("echo \"rank $KILN_NODE_RANK", "echo \"harness host $KILN_HARNESS_HOST\"\n    echo \"rank $KILN_NODE_RANK");

    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("Plan: 3 to add, 0 to change, 0 to destroy."), "{plan}");
    // One set of configured providers for the whole command (issue 12): `--verbose` reports
    // each plan's provider calls, counted per provider instance since it was configured. The
    // refresh after `--wait` reports the apply's cluster claims and still one SSH connection per
    // host: plan, apply, polling and refresh shared one `onprem` instance and its SSH pool.
    let r = p.kiln(&["apply", "--auto-approve", "--wait", "--verbose"]).ok();
    let err = r.stderr();
    let reports: Vec<&str> = err.lines().filter(|l| l.starts_with("onprem: ") && l.contains("API call(s)")).collect();
    assert_eq!(reports.len(), 2, "the plan's and the refresh's reports:\n{err}");
    assert!(!reports[0].contains("cluster.claim"), "{}", reports[0]);
    assert!(reports[1].contains("cluster.claim") && reports[1].contains("ssh.connect 2"), "{}", reports[1]);

    let job = p.values("job.hello");
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["exit_codes"], serde_json::json!([0, 0]), "{job}");
    let ips = format!("{},{}", h.hosts[0].address, h.hosts[1].address);
    assert_eq!(p.output_json("node_ips"), serde_json::json!([h.hosts[0].address, h.hosts[1].address]));
    assert_eq!(p.output_json("status"), "succeeded");
    let port = job["master_port"].as_u64().unwrap_or_else(|| panic!("no master_port: {job}"));
    let inventory = p.output_json("hosts");
    assert_eq!(inventory.as_array().map(Vec::len), Some(2), "{inventory}");
    assert!(inventory[0].as_str().is_some_and(|l| l.starts_with("host1: ") && l.ends_with(" 0 GPUs")), "{inventory}");

    for (rank, host) in h.hosts[..2].iter().enumerate() {
        let log = p.kiln(&["logs", "job.hello", "--node", &rank.to_string()]).ok().stdout();
        for line in [
            format!("harness host {}", host.name),
            format!("rank {rank} of 2 on "),
            format!("node IPs {ips}, master {}:{port}", h.hosts[0].address),
        ] {
            assert!(log.contains(&line), "rank {rank}: `{line}` in the log:\n{log}");
        }
    }
    // Issue 13: every node with its prefix by default; --tail and --since (the hosts' time index).
    let all = p.kiln(&["logs", "job.hello"]).ok().stdout();
    for rank in 0..2 {
        assert!(all.lines().any(|l| l.starts_with(&format!("[node {rank}] rank {rank} of 2 on "))), "{all}");
    }
    let one = p.kiln(&["logs", "job.hello", "--node", "1"]).ok().stdout();
    let last = p.kiln(&["logs", "job.hello", "--node", "1", "--tail", "1"]).ok().stdout();
    assert!(last.lines().count() == 1 && one.ends_with(&last), "the last line of\n{one}\nnot {last}");
    assert_eq!(p.kiln(&["logs", "job.hello", "--since", "1h"]).ok().stdout(), all, "all written within the hour");
    assert_eq!(p.kiln(&["logs", "job.hello", "--since", "2999-01-01T00:00:00Z"]).ok().stdout(), "", "nothing written after");

    // Nothing to do: the refreshed fleet, cluster and finished job match the configuration.
    let r = p.kiln(&["plan", "--detailed-exitcode"]).code_is(0);
    assert!(r.stdout().contains("No changes."), "{}", r.stdout());

    // `kiln inventory`: one row per host, read now.
    let inv = p.kiln(&["inventory"]).ok().stdout();
    let header = inv.lines().next().unwrap_or_default();
    for col in ["FLEET", "HOST", "ADDRESS", "REACHABLE", "CPUS", "MEM GB", "GPUS", "OS", "HELD BY"] {
        assert!(header.contains(col), "`{col}` in the header: {inv}");
    }
    let rows: Vec<&str> = inv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{inv}");
    for (row, host) in rows.iter().zip(&h.hosts[..2]) {
        assert!(row.contains(&host.name) && row.contains(&host.address) && row.contains(" yes "), "{row}");
    }

    // A host presenting another key than the configured one is refused, naming both keys.
    let mut wrong = h.hosts.clone();
    wrong[1].key = h.hosts[0].key.clone();
    let r = p.kiln(&["plan", "--var", &format!("hosts={}", hosts_value(&wrong))]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("host key of host `host2`"), "{err}");
    assert!(err.contains(&format!("the host presents {}", h.fingerprint(1))), "{err}");
    assert!(err.contains(&format!("the configured host_key is {}", h.fingerprint(0))), "{err}");
    assert!(err.contains("ssh-keygen -lf"), "the hint says how to check the key: {err}");

    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert_eq!(p.state_list(), Vec::<String>::new());
    assert_eq!(p.remote_files(), Vec::<String>::new(), "destroy removed the job's directories and the cluster's claims");
}

/// The example over `hosts`, the first two the cluster's and the third free in its fleet (a third
/// host block), its job saying which harness host runs it and then sleeping: for a host-down test.
fn host_down_project(hosts: &[Host; 3]) -> OnpremProject {
    let p = OnpremProject::over(hosts);
    p.edit(
        "    host_key = var.hosts[1].host_key\n  }\n",
        "    host_key = var.hosts[1].host_key\n  }\n\n  host {\n    name     = var.hosts[2].name\n    address  = var.hosts[2].address\n    port     = var.hosts[2].port\n    host_key = var.hosts[2].host_key\n  }\n",
    );
    p.edit("echo \"rank $KILN_NODE_RANK", "echo \"harness host $KILN_HARNESS_HOST\"\n    echo \"rank $KILN_NODE_RANK");
    p.edit(
        "master $KILN_MASTER_ADDR:$KILN_MASTER_PORT\"\n",
        "master $KILN_MASTER_ADDR:$KILN_MASTER_PORT\"\n    echo ready\n    sleep 300\n",
    );
    p
}

/// Issue 6: a host going down mid-job. The plan shows it (the host unreachable, the cluster's
/// node moving to a free host in place, the lost job replaced), and the next apply runs the
/// job again on the remaining hosts, with ranks and IPs of the new allocation.
#[test]
fn onprem_a_host_down_mid_job_is_shown_and_the_next_apply_reschedules_the_job() {
    let h = harness();
    // host3 and host4 are the cluster's; host1 is free in this project's fleet.
    let hosts = [h.hosts[2].clone(), h.hosts[3].clone(), h.hosts[0].clone()];
    let p = host_down_project(&hosts);
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.output_json("node_ips"), serde_json::json!(["127.0.1.3", "127.0.1.4"]));
    crate::support::wait_until("both nodes run", std::time::Duration::from_secs(120), || {
        (0..2).all(|n| p.kiln(&["logs", "job.hello", "--node", &n.to_string()]).stdout().contains("ready"))
    });
    let before = p.values("job.hello");
    let pgid = before["pids"][0].as_u64().unwrap_or_else(|| panic!("no pid of node 0: {before}"));

    // host3 goes away with its processes (the loopback hosts share this process table).
    h.stop_host("host3");
    Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status().expect("kill");

    let r = p.kiln(&["plan"]).ok();
    let (plan, err) = (r.stdout(), r.stderr());
    let inv = p.kiln(&["inventory"]).ok().stdout();
    let row = inv.lines().find(|l| l.contains("host3")).unwrap_or_else(|| panic!("host3 in the inventory: {inv}"));
    assert!(row.contains("NO: "), "the inventory shows host3 unreachable: {row}");
    assert!(plan.contains("cluster.pair will be updated in place"), "{plan}");
    assert!(plan.contains("job.hello must be replaced"), "{plan}");
    assert!(plan.contains("Plan: 1 to add, 1 to change, 1 to destroy."), "{plan}");
    assert!(err.contains("host `host3` does not answer; its node moves to host `host1`"), "{err}");

    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.output_json("node_ips"), serde_json::json!(["127.0.1.1", "127.0.1.4"]));
    let job = p.values("job.hello");
    assert_eq!(job["node_ips"], serde_json::json!(["127.0.1.1", "127.0.1.4"]), "{job}");
    for (rank, host) in ["host1", "host4"].iter().enumerate() {
        let node = rank.to_string();
        crate::support::wait_until("the new job runs", std::time::Duration::from_secs(120), || {
            p.kiln(&["logs", "job.hello", "--node", &node]).stdout().contains("ready")
        });
        let log = p.kiln(&["logs", "job.hello", "--node", &node]).ok().stdout();
        assert!(log.contains(&format!("harness host {host}\nrank {rank} of 2 on ")), "{log}");
        assert!(log.contains("node IPs 127.0.1.1,127.0.1.4, master 127.0.1.1:"), "{log}");
    }
    assert_eq!(p.values("job.hello")["status"], "running");
    p.kiln(&["destroy", "--auto-approve"]).ok();
    assert_eq!(p.state_list(), Vec::<String>::new());
}

/// Issue 15: a job with a `recovery` block whose host stops answering is started again by
/// `kiln watch`, its node moved to a free host of the fleet (the cluster updated in place, the
/// healthy host kept), with no one applying.
#[test]
fn onprem_watch_moves_a_lost_hosts_node_to_a_free_host_and_restarts_the_job() {
    let h = harness();
    let hosts = [h.hosts[4].clone(), h.hosts[3].clone(), h.hosts[0].clone()];
    let p = host_down_project(&hosts);
    p.edit("  cluster  = cluster.pair\n", "  cluster  = cluster.pair\n\n  recovery {\n    max_restarts = 2\n  }\n");
    p.kiln(&["apply", "--auto-approve"]).ok();
    assert_eq!(p.values("job.hello")["node_ips"], serde_json::json!(["127.0.1.5", "127.0.1.4"]));
    crate::support::wait_until("both nodes run", std::time::Duration::from_secs(120), || {
        (0..2).all(|n| p.kiln(&["logs", "job.hello", "--node", &n.to_string()]).stdout().contains("ready"))
    });
    let pgid = p.values("job.hello")["pids"][0].as_u64().expect("node 0's process group");

    h.stop_host("host5");
    Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status().expect("kill");
    let out = p.kiln(&["watch", "--once"]).ok();
    assert!(out.stderr().contains("job.hello: host_failure"), "{}", out.stderr());
    assert!(out.stderr().contains("host `host5` does not answer; its node moves to host `host1`"), "{}", out.stderr());

    let job = p.values("job.hello");
    assert_eq!(job["node_ips"], serde_json::json!(["127.0.1.1", "127.0.1.4"]), "{job}");
    assert_eq!(job["restarts"], 1, "{job}");
    crate::support::wait_until("the restarted job runs on host1 and host4", std::time::Duration::from_secs(120), || {
        (0..2).all(|n| p.kiln(&["logs", "job.hello", "--node", &n.to_string()]).stdout().contains("ready"))
    });
    let log = p.kiln(&["logs", "job.hello", "--node", "0"]).ok().stdout();
    assert!(log.contains("harness host host1\nrank 0 of 2 on "), "{log}");
    let events = crate::support::job_events(&p.kiln(&["jobs", "events", "job.hello", "--json"]).ok().stdout());
    assert_eq!(events, [("detected".into(), "host_failure".into(), 0), ("relaunched".into(), "host_failure".into(), 1)]);
    p.kiln(&["destroy", "--auto-approve"]).ok();
}

/// Issue 13: an onprem job's logs outlive its destroy in `kiln-logs/` of its checkpoint bucket
/// (a directory on a host, written over SSH, private to the login user), so another checkout
/// with the same configuration and state reads them, and nothing is kept under `.kiln/logs`.
#[test]
fn onprem_logs_outlive_destroy_in_the_jobs_bucket_on_its_host() {
    let p = OnpremProject::example();
    p.edit(
        "resource \"fleet\" \"all\" {",
        "resource \"bucket\" \"b\" {\n  provider      = onprem\n  shared        = true\n  force_destroy = true\n}\n\nresource \"fleet\" \"all\" {",
    );
    p.edit("  cluster  = cluster.pair\n", "  cluster  = cluster.pair\n\n  checkpoint {\n    bucket = bucket.b\n  }\n\n");
    p.kiln(&["apply", "--auto-approve", "--wait"]).ok();
    let before = p.kiln(&["logs", "job.hello"]).ok().stdout();
    assert!(before.contains("[node 0] rank 0 of 2") && before.contains("[node 1] rank 1 of 2"), "{before}");
    let job_id = p.values("job.hello")["job_id"].as_str().unwrap().to_string();
    let bucket = PathBuf::from(p.values("bucket.b")["path"].as_str().unwrap());

    p.kiln(&["destroy", "--auto-approve", "--target", "job.hello"]).ok();
    let archive = bucket.join("kiln-logs").join(&job_id);
    assert!(archive.join("job.json").is_file(), "kept in the bucket on its host: {}", archive.display());
    let mode = |f: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(archive.join(f)).unwrap().permissions().mode() & 0o777
    };
    assert_eq!((mode("node-0.log"), mode("job.json")), (0o600, 0o600), "private to the login user");
    assert!(!p.path().join(".kiln/logs").exists(), "not on this machine");

    // Another checkout: the configuration, its variables and the state, nothing else.
    let other = Project::empty();
    for f in ["main.kiln.hcl", "hosts.auto.kilnvars"] {
        other.write(f, &p.read(f));
    }
    std::fs::create_dir_all(other.state_path().parent().unwrap()).unwrap();
    std::fs::copy(p.state_path(), other.state_path()).unwrap();
    let r = other.kiln(&["logs", "job.hello"]).ok();
    assert_eq!(r.stdout(), before, "the same logs, read from the bucket over SSH");
    assert!(r.stderr().contains(&job_id) && r.stderr().contains("kiln-logs"), "{}", r.stderr());
    assert_eq!(
        other.kiln(&["logs", "job.hello", "--node", "1", "--tail", "1"]).ok().stdout(),
        before.lines().last().unwrap().trim_start_matches("[node 1] ").to_string() + "\n"
    );
}

/// Issue 14: a cluster on owned hardware that the optimizer did not place is priced at its
/// hosts' configured prices (a host's own `hourly_price` over the provider's; the harness's
/// hosts have no GPUs, so `gpu_hour_price` adds nothing), in the plan's cost lines, and apply
/// records that price for `kiln cost`.
#[test]
fn onprem_a_cluster_costs_its_hosts_prices_in_the_plan_and_in_kiln_cost() {
    let p = OnpremProject::example();
    p.edit("  root          = var.root\n", "  root          = var.root\n  hourly_price   = 1.5\n  gpu_hour_price = 4\n");
    p.edit("    host_key = var.hosts[1].host_key\n  }\n", "    host_key = var.hosts[1].host_key\n    hourly_price = 2.25\n  }\n");

    let plan = p.kiln(&["plan"]).ok().stdout();
    assert!(plan.contains("+ cluster.pair  $3.75/h"), "host1 at the provider's $1.50, host2 at its own $2.25:\n{plan}");
    assert!(plan.contains("Cost: $0.00/h → $3.75/h (+$3.75/h)"), "{plan}");

    p.kiln(&["apply", "--auto-approve"]).ok();
    let json = p.kiln(&["cost", "--json"]).ok().stdout();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("kiln cost --json is not JSON ({e}): {json}"));
    let lines = v["resources"].as_array().cloned().unwrap_or_default();
    let cluster = lines.iter().find(|l| l["address"] == "cluster.pair").unwrap_or_else(|| panic!("cluster.pair in kiln cost: {v}"));
    assert_eq!(cluster["hourly"], 3.75, "the price the plan showed, recorded at apply: {v}");
    let human = p.kiln(&["cost"]).ok().stdout();
    assert!(human.contains("$3.75"), "{human}");
}
