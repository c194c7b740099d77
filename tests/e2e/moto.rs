//! The AWS API server the `aws` end-to-end tests run the binary against: moto, wrapped by the
//! project's `tests/harness/moto/kiln_moto.py` (spot interruptions and fault injection).
//!
//! The same harness as the aws provider's own tests (`providers/kiln-provider-aws/tests/aws/
//! common/moto.rs`), in its synchronous form for this suite (that module finds the workspace from
//! its crate's manifest directory and serialises with a tokio mutex, so it cannot be included
//! here as is). Both use the same venv, so it is installed once: `KILN_MOTO_VENV`, else
//! `$CARGO_TARGET_DIR/moto-venv`, else `target/moto-venv`, created with the pinned
//! `tests/harness/moto/requirements.txt` on first use (about a minute) under a file lock shared
//! with the provider's tests. The server starts once per test binary on a free loopback port and
//! exits within a second of the test binary. These tests never skip: when python3, venv, pip or
//! the server fail, the test fails saying why.
//!
//! [`exclusive`] serialises the tests that use the server and resets it (`POST /moto-api/reset`,
//! which also drops injected faults). [`Moto::inspect`] reads what the endpoint holds through the
//! AWS API itself (boto3, from the venv: moto depends on it), via `tests/e2e/aws_inspect.py`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::support::repo_root;

const REQUIREMENTS: &str = "tests/harness/moto/requirements.txt";
const WRAPPER: &str = "tests/harness/moto/kiln_moto.py";
const INSPECT: &str = "tests/e2e/aws_inspect.py";

pub struct Moto {
    pub port: u16,
    pub venv: PathBuf,
    _child: Mutex<Child>,
}

fn venv_dir() -> PathBuf {
    match std::env::var_os("KILN_MOTO_VENV") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from).join("moto-venv"),
    }
}

fn pinned_version() -> String {
    let text = std::fs::read_to_string(repo_root().join(REQUIREMENTS)).expect("tests/harness/moto/requirements.txt");
    let line = text.lines().find(|l| l.starts_with("moto")).expect("a moto line in requirements.txt");
    line.split("==").nth(1).expect("moto pinned with ==").trim().to_string()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("moto harness: cannot {what}: {e}; install python3 (with venv and pip)"));
    assert!(
        out.status.success(),
        "moto harness: {what} failed ({}):\n{}\n{}\nneeded: python3, python3-venv, and access to PyPI",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn has_moto(dir: &Path, version: &str) -> bool {
    let check = format!("import moto, boto3, sys; sys.exit(0 if moto.__version__ == '{version}' else 1)");
    Command::new(dir.join("bin/python")).args(["-c", &check]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Creates the venv unless it already has the pinned moto (the provider tests' procedure: a
/// partial venv moved in place, under the same lock file).
fn ensure_venv() -> PathBuf {
    let dir = venv_dir();
    let version = pinned_version();
    if has_moto(&dir, &version) {
        return dir;
    }
    std::fs::create_dir_all(dir.parent().expect("venv parent")).expect("venv parent dir");
    let lock = File::create(dir.with_extension("lock")).expect("venv lock file");
    lock.lock().expect("lock the venv");
    if !has_moto(&dir, &version) {
        let partial = dir.with_extension(format!("partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&partial);
        run(Command::new("python3").arg("-m").arg("venv").arg(&partial), "create a venv with `python3 -m venv`");
        let req = repo_root().join(REQUIREMENTS);
        run(Command::new(partial.join("bin/python")).args(["-m", "pip", "install", "-q", "-r"]).arg(&req), "pip install moto[server]");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&partial, &dir).expect("move the venv in place");
    }
    dir
}

fn start() -> Moto {
    let venv = ensure_venv();
    let logs = venv.with_extension("logs");
    std::fs::create_dir_all(&logs).expect("moto log dir");
    remove_old_logs(&logs);
    let port_file = logs.join(format!("port-{}", std::process::id()));
    let _ = std::fs::remove_file(&port_file);
    let log_path = logs.join(format!("moto-{}.log", std::process::id()));
    let log = File::create(&log_path).expect("moto log file");
    let mut child = Command::new(venv.join("bin/python"))
        .arg(repo_root().join(WRAPPER))
        .args(["--host", "127.0.0.1", "--port", "0", "--port-file"])
        .arg(&port_file)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start the moto server");
    let deadline = Instant::now() + Duration::from_secs(60);
    let port = loop {
        if let Some(p) = std::fs::read_to_string(&port_file).ok().and_then(|s| s.trim().parse::<u16>().ok()) {
            break p;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the moto server exited ({status}) before listening; see {}", log_path.display());
        }
        assert!(Instant::now() < deadline, "moto did not start within 60 s; see {}", log_path.display());
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_file(&port_file);
    let moto = Moto { port, venv, _child: Mutex::new(child) };
    assert!(moto.request("GET", "/_testbed/health", "").contains("true"), "moto health check failed");
    moto
}

/// Logs of earlier runs, a day old or more.
fn remove_old_logs(dir: &Path) {
    let day = Duration::from_secs(24 * 3600);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > day)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The shared server, started on first use.
pub fn server() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start)
}

/// Serialises the tests that use the server; the server is reset when the guard is taken. A
/// test that failed while holding the guard does not stop the others.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    server().request("POST", "/moto-api/reset", "");
    guard
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One HTTP/1.1 request with a JSON body; the response body. Panics unless the answer is 200.
    pub fn request(&self, method: &str, path: &str, body: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).and_then(|()| s.write_all(body.as_bytes())).expect("send to moto");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read from moto");
        let (status, rest) = out.split_once("\r\n").unwrap_or((&out, ""));
        assert!(status.contains(" 200 "), "moto {method} {path}: {status}\n{rest}");
        rest.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string()
    }

    /// The next `count` calls of `action` whose body contains `matching` fail with `code`.
    pub fn fault(&self, action: &str, matching: &str, code: &str, status: u16, count: u32) {
        let body = serde_json::json!({ "action": action, "match": matching, "code": code, "status": status, "count": count });
        self.request("POST", "/_testbed/faults", &body.to_string());
    }

    /// Hits left on the injected faults.
    pub fn faults_left(&self) -> u64 {
        let v: serde_json::Value = serde_json::from_str(&self.request("GET", "/_testbed/faults", "")).expect("faults json");
        v["faults"].as_array().map_or(0, |a| a.iter().map(|f| f["count"].as_u64().unwrap_or(0)).sum())
    }

    /// Drops every injected fault.
    pub fn clear_faults(&self) {
        self.request("DELETE", "/_testbed/faults", "");
    }

    /// Terminates an instance the way EC2 reclaims spot capacity.
    pub fn spot_interrupt(&self, instance_id: &str) {
        let body = serde_json::json!({ "instance_id": instance_id, "action": "terminate" });
        self.request("POST", "/_testbed/spot-interrupt", &body.to_string());
    }

    /// What the endpoint holds, read through the AWS API with boto3 (see `aws_inspect.py`).
    pub fn inspect(&self) -> Inventory {
        let out = Command::new(self.venv.join("bin/python"))
            .arg(repo_root().join(INSPECT))
            .arg(self.endpoint())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("run aws_inspect.py");
        assert!(out.status.success(), "aws_inspect.py failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("aws_inspect.py prints JSON");
        Inventory(v)
    }
}

/// What [`Moto::inspect`] found.
#[derive(Debug, Clone)]
pub struct Inventory(pub serde_json::Value);

fn list<'a>(v: &'a serde_json::Value, key: &str) -> Vec<&'a serde_json::Value> {
    v[key].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

pub fn tag<'a>(item: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    item["tags"][key].as_str()
}

impl Inventory {
    /// Every instance, terminated ones too.
    pub fn instances(&self) -> Vec<&serde_json::Value> {
        list(&self.0, "instances")
    }

    /// Instances pending or running.
    pub fn live_instances(&self) -> Vec<&serde_json::Value> {
        self.instances().into_iter().filter(|i| matches!(i["state"].as_str(), Some("pending" | "running"))).collect()
    }

    /// Live instances whose `kiln:address` tag is `address`.
    pub fn live_of(&self, address: &str) -> Vec<&serde_json::Value> {
        self.live_instances().into_iter().filter(|i| tag(i, "kiln:address") == Some(address)).collect()
    }

    pub fn instance(&self, id: &str) -> &serde_json::Value {
        self.instances().into_iter().find(|i| i["id"] == id).unwrap_or_else(|| panic!("no instance {id} in {:#}", self.0["instances"]))
    }

    pub fn fleets(&self) -> Vec<&serde_json::Value> {
        list(&self.0, "fleets")
    }

    /// Fleets that are not deleted.
    pub fn active_fleets(&self) -> Vec<&serde_json::Value> {
        self.fleets().into_iter().filter(|f| !f["state"].as_str().unwrap_or_default().starts_with("deleted")).collect()
    }

    pub fn buckets(&self) -> Vec<&serde_json::Value> {
        list(&self.0, "buckets")
    }

    pub fn launch_templates(&self) -> Vec<&serde_json::Value> {
        list(&self.0, "launch_templates")
    }

    /// Security groups other than the VPCs' default ones.
    pub fn security_groups(&self) -> Vec<&serde_json::Value> {
        list(&self.0, "security_groups")
    }

    pub fn key_pairs(&self) -> Vec<&serde_json::Value> {
        list(&self.0, "key_pairs")
    }
}
