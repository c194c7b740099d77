//! The AWS API server kiln's tests run against: moto, wrapped by the project's own
//! `tests/harness/moto/kiln_moto.py` (spot interruptions, fault injection and instance metadata on
//! top of moto).
//!
//! [`server`] starts it once per test process on a free loopback port, after making sure a venv
//! with the pinned `moto[server]` exists: `KILN_MOTO_VENV`, else `$CARGO_TARGET_DIR/moto-venv`,
//! else `target/moto-venv` of the workspace, created from `tests/harness/moto/requirements.txt`
//! on first use (about a minute) under a file lock, so concurrent test binaries install it once.
//! The server exits by itself within a second of the test process (its parent) exiting. These
//! tests never skip: when python3, venv, pip or the server fail, the test fails saying why.
//!
//! The API is synchronous (plain blocking IO on loopback); async tests call it directly. How tests
//! share the server (serialising and [`Moto::reset`] between cases, or one bucket per test) is up
//! to each suite.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::workspace_root;

/// The pinned requirements, relative to the workspace root.
const REQUIREMENTS: &str = "tests/harness/moto/requirements.txt";
/// The server wrapper, relative to the workspace root.
const WRAPPER: &str = "tests/harness/moto/kiln_moto.py";
/// How long the server may take to report its port.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server, owned by this test process.
pub struct Moto {
    /// The loopback port it listens on.
    pub port: u16,
    /// The venv it runs from (its `bin/python` also has boto3, a moto dependency).
    pub venv: PathBuf,
    _child: Mutex<Child>,
}

/// The shared server, started on first use.
pub fn server() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start)
}

impl Moto {
    /// `http://127.0.0.1:<port>`, for a client's endpoint override.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The venv's python interpreter (with moto and boto3).
    pub fn python(&self) -> PathBuf {
        self.venv.join("bin/python")
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

    /// Wipes every service's state (`POST /moto-api/reset`), injected faults included.
    pub fn reset(&self) {
        self.request("POST", "/moto-api/reset", "");
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

    /// Gives a spot instance EC2's two-minute interruption notice (it runs on).
    pub fn spot_notice(&self, instance_id: &str) {
        let body = serde_json::json!({ "instance_id": instance_id, "action": "notice" });
        self.request("POST", "/_testbed/spot-interrupt", &body.to_string());
    }
}

fn venv_dir() -> PathBuf {
    match std::env::var_os("KILN_MOTO_VENV") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from).join("moto-venv"),
    }
}

fn pinned_version() -> String {
    let text = std::fs::read_to_string(workspace_root().join(REQUIREMENTS)).expect("tests/harness/moto/requirements.txt");
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

/// Creates the venv unless it already has the pinned moto: built aside, then moved in place,
/// under a lock file next to it.
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
        let req = workspace_root().join(REQUIREMENTS);
        run(Command::new(partial.join("bin/python")).args(["-m", "pip", "install", "-q", "-r"]).arg(&req), "pip install moto[server]");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&partial, &dir).expect("move the venv in place");
    }
    dir
}

/// The test binary's name without cargo's hash, to tell the logs apart.
fn process_name() -> String {
    let exe = std::env::current_exe().ok().and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()));
    let exe = exe.unwrap_or_else(|| "test".to_string());
    match exe.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_string(),
        _ => exe,
    }
}

fn start() -> Moto {
    let venv = ensure_venv();
    let logs = venv.with_extension("logs");
    std::fs::create_dir_all(&logs).expect("moto log dir");
    remove_old_logs(&logs);
    let pid = std::process::id();
    let port_file = logs.join(format!("port-{pid}"));
    let _ = std::fs::remove_file(&port_file);
    let log_path = logs.join(format!("moto-{}-{pid}.log", process_name()));
    let log = File::create(&log_path).expect("moto log file");
    let mut child = Command::new(venv.join("bin/python"))
        .arg(workspace_root().join(WRAPPER))
        .args(["--host", "127.0.0.1", "--port", "0", "--port-file"])
        .arg(&port_file)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start the moto server");
    let deadline = Instant::now() + START_TIMEOUT;
    let port = loop {
        if let Some(p) = std::fs::read_to_string(&port_file).ok().and_then(|s| s.trim().parse::<u16>().ok()) {
            break p;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the moto server exited ({status}) before listening; see {}", log_path.display());
        }
        assert!(Instant::now() < deadline, "moto did not start within {START_TIMEOUT:?}; see {}", log_path.display());
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_file(&port_file);
    let moto = Moto { port, venv, _child: Mutex::new(child) };
    assert!(moto.request("GET", "/_testbed/health", "").contains("true"), "moto health check failed; see {}", log_path.display());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_cargo_hash_from_test_binary_names() {
        let name = process_name();
        assert!(!name.is_empty());
        assert!(name.starts_with("kiln_testkit"), "{name}");
    }

    /// The real server: started once, shared, its fault endpoints round-trip and reset clears them.
    #[test]
    fn server_starts_once_and_injects_faults() {
        let m = server();
        assert!(std::ptr::eq(m, server()), "one server per process");
        assert!(m.endpoint().ends_with(&format!(":{}", m.port)));
        m.reset();
        assert_eq!(m.faults_left(), 0);
        m.fault("RunInstances", "", "Throttling", 400, 2);
        m.fault("DescribeInstances", "", "Unavailable", 503, 1);
        assert_eq!(m.faults_left(), 3);
        m.clear_faults();
        assert_eq!(m.faults_left(), 0);
        m.fault("RunInstances", "", "Throttling", 400, 1);
        m.reset();
        assert_eq!(m.faults_left(), 0, "reset drops injected faults");
    }
}
