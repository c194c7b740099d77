//! Slurm through a login node: the same cluster, reached over SSH (a real sshd on loopback,
//! started by `tests/harness/sshd/start.sh`, logging in as its user `trainer`), with the login
//! node's host key checked strictly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kiln_provider::Provider;
use kiln_provider_slurm::SlurmProvider;
use serde_json::json;

use crate::common::{config, create, json, log, plan, read_until, status, str_of, Jobs};
use crate::harness::{harness, slurm};

struct Login {
    dir: PathBuf,
    address: String,
    port: u16,
    user: String,
    key: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start_login() -> Login {
    let dir = PathBuf::from(format!("/tmp/kiln-slurm-sshd-{}", std::process::id()));
    let port = (0..2000u16)
        .map(|i| 30000 + (std::process::id() as u16 % 1000) * 10 + i * 7 % 20000)
        .find(|p| std::net::TcpListener::bind(("127.0.1.1", p + 1)).is_ok())
        .expect("a free port");
    let script = repo_root().join("tests/harness/sshd/start.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("SSH_DIR", &dir)
        .env("SSH_HOSTS", "1")
        .env("SSH_BASE_PORT", port.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stop = repo_root().join("tests/harness/sshd/stop.sh");
    kiln_testkit::when_this_process_exits(&format!("SSH_DIR='{}' bash '{}' --purge", dir.display(), stop.display()), "stops sshd");
    assert!(
        out.status.success(),
        "the login node (sshd) could not be started by tests/harness/sshd/start.sh:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let hosts = std::fs::read_to_string(dir.join("hosts.tsv")).expect("hosts.tsv");
    let f: Vec<&str> = hosts.lines().next().expect("one host").split('\t').collect();
    Login { address: f[1].into(), port: f[2].parse().expect("port"), user: f[3].into(), key: format!("{} {}", f[4], f[5]), dir }
}

fn login() -> &'static Login {
    static L: OnceLock<Login> = OnceLock::new();
    L.get_or_init(start_login)
}

fn provider_with_key(key: &str) -> SlurmProvider {
    harness();
    let l = login();
    let c = json(json!({
        "root": format!(".kiln/slurm-test-{}", std::process::id()),
        "login": {
            "host": l.address, "port": l.port, "user": l.user, "host_key": key, "connect_timeout": 5,
            "identity_file": l.dir.join("client_ed25519").display().to_string(),
        },
    }));
    SlurmProvider::configure(&c, Path::new("/")).unwrap_or_else(|d| panic!("configure failed: {d:?}"))
}

#[tokio::test]
async fn a_job_submitted_through_the_login_node_runs_as_its_user() {
    let p = provider_with_key(&login().key);
    assert!(p.target().starts_with("login node trainer@127.0.1.1:"), "{}", p.target());
    let cluster = create(&p, "cluster.debug", &config(&p, "cluster", json!({ "partition": "debug" }))).await;
    let job = create(
        &p,
        "job.remote",
        &config(&p, "job", json!({ "cluster": cluster.to_json(), "tasks": 2, "run": "echo \"$(id -un) task $KILN_TASK_RANK in $PWD\"" })),
    )
    .await;
    let mut jobs = Jobs::default();
    jobs.add(&job);
    let dir = str_of(&job, "job_dir");
    assert!(dir.starts_with("/home/trainer/.kiln/slurm-test-"), "relative to the login user's home: {dir}");
    let done = read_until(&p, "job.remote", &job, |s| !matches!(status(s), "pending" | "running")).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    let mut lines: Vec<String> = log(&p, "job.remote", &done).await.lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["trainer task 0 in /home/trainer", "trainer task 1 in /home/trainer"]);
    let rec = slurm(&["scontrol", "show", "job", "-o", str_of(&job, "job_id")]);
    assert!(rec.contains("UserId=trainer("), "{rec}");
    assert!(!p.delete(kiln_provider::DeleteRequest { address: "job.remote", kind: "job", prior: &done }).await.has_errors());
    assert!(!Path::new(dir).exists());
    assert!(p.api_calls().get("squeue").copied().unwrap_or(0) >= 1);
}

#[tokio::test]
async fn a_login_node_with_another_host_key_is_refused() {
    // A valid key, but not the login node's.
    let p = provider_with_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG+aGv1ku/54A8fhpR9bEnfynvYVzGyeCqmcuE1oj9f5");
    let r = plan(&p, "cluster.debug", &config(&p, "cluster", json!({ "partition": "debug" })), None).await;
    let e = r.diagnostics.errors().next().expect("refused").clone();
    assert!(e.summary.contains("host key of login node trainer@127.0.1.1:"), "{}", e.summary);
    assert!(e.summary.contains("kiln refused to connect"), "{}", e.summary);
    assert!(e.hint.as_deref().unwrap_or_default().contains("host_key"), "{:?}", e.hint);
}

/// `SHA256:...` of a `TYPE BASE64` key line, as `ssh-keygen -lf` prints it.
fn fingerprint(key: &str) -> String {
    kiln_remote::fingerprint(key.split_whitespace().nth(1).expect("key blob")).expect("fingerprint")
}

#[tokio::test]
async fn a_login_node_given_by_its_fingerprint_is_reached() {
    let p = provider_with_key(&fingerprint(&login().key));
    let r = plan(&p, "cluster.debug", &config(&p, "cluster", json!({ "partition": "debug" })), None).await;
    assert!(!r.diagnostics.has_errors(), "{:?}", r.diagnostics);
}

#[tokio::test]
async fn a_login_node_with_another_fingerprint_is_refused() {
    let other = fingerprint("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG+aGv1ku/54A8fhpR9bEnfynvYVzGyeCqmcuE1oj9f5");
    let p = provider_with_key(&other);
    let r = plan(&p, "cluster.debug", &config(&p, "cluster", json!({ "partition": "debug" })), None).await;
    let e = r.diagnostics.errors().next().expect("refused").clone();
    assert!(e.summary.contains("login node trainer@127.0.1.1:"), "{}", e.summary);
    assert!(e.summary.contains(&fingerprint(&login().key)), "the key the login node presents: {}", e.summary);
    assert!(e.summary.contains(&other) && e.summary.contains("kiln refused to connect"), "{}", e.summary);
    assert!(e.hint.as_deref().unwrap_or_default().contains("host_key"), "{:?}", e.hint);
}

/// Issue 13: through the login node, a `workdir` on this machine is uploaded to the job's
/// directory on the cluster's file system (less what its `.kilnignore` excludes) and the tasks
/// run there; `secret_env` reaches them from a 0600 file there, and state holds only a digest.
#[tokio::test]
async fn the_workdir_is_uploaded_through_the_login_node_and_secret_env_reaches_the_tasks() {
    use std::os::unix::fs::PermissionsExt;
    let p = provider_with_key(&login().key);
    let cluster = create(&p, "cluster.debug", &config(&p, "cluster", json!({ "partition": "debug" }))).await;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("data.txt"), "uploaded").unwrap();
    std::fs::write(src.path().join(".kilnignore"), "*.bin\n").unwrap();
    std::fs::write(src.path().join("big.bin"), "excluded").unwrap();
    let secret = "hf_slurm-S3cr3t";
    let run = "echo \"$(cat data.txt) $(printf %s \"$HF_TOKEN\" | sha256sum | cut -c1-64) [$(ls | tr '\\n' ' ')] in $PWD\"";
    let mut cfg =
        config(&p, "job", json!({ "cluster": cluster.to_json(), "tasks": 1, "run": run, "workdir": src.path().display().to_string() }));
    if let kiln_value::Value::Map(m) = &mut cfg {
        let env: kiln_value::Map = [("HF_TOKEN".to_string(), kiln_value::Value::from(secret))].into_iter().collect();
        m.insert("secret_env".into(), kiln_value::Value::Map(env).sensitive());
    }
    let job = create(&p, "job.up", &cfg).await;
    let mut jobs = Jobs::default();
    jobs.add(&job);
    assert!(str_of(&job, "workdir_digest").starts_with("sha256:"), "{job}");
    assert!(!job.to_json().to_string().contains("S3cr3t"), "state holds a digest only: {job}");
    let dir = str_of(&job, "job_dir").to_string();
    let done = read_until(&p, "job.up", &job, |s| !matches!(status(s), "pending" | "running")).await;
    let out = log(&p, "job.up", &done).await;
    assert_eq!(status(&done), "succeeded", "{done}\n{out}");
    let sum = Command::new("sh").arg("-c").arg(format!("printf %s '{secret}' | sha256sum | cut -c1-64")).output().unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout).trim().to_string();
    assert_eq!(out.trim(), format!("uploaded {sum} [data.txt ] in {dir}/workdir"));
    let mode = std::fs::metadata(format!("{dir}/secret_env.sh")).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    assert_eq!(mode, 0o600);
    assert!(!p.delete(kiln_provider::DeleteRequest { address: "job.up", kind: "job", prior: &done }).await.has_errors());
}
