//! The AWS API server the tests run against: moto, wrapped by the project's own
//! `tests/harness/moto/kiln_moto.py` (spot interruptions and fault injection on top of moto).
//!
//! `server()` starts it once per test binary on a free loopback port, after making sure a venv
//! with the pinned `moto[server]` exists: `KILN_MOTO_VENV`, or `target/moto-venv` of the
//! workspace. Creating the venv takes about a minute the first time; a file lock keeps two test
//! binaries from installing at once. When python3, venv or pip fail, the test fails saying why:
//! these tests never skip. The server exits by itself within a second of the test binary
//! (its parent) exiting.
//!
//! Tests share the server and wipe it between cases: `exclusive()` serialises them and resets
//! moto (`POST /moto-api/reset`, which also drops injected faults).

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The pinned requirement, from the harness's requirements.txt.
const REQUIREMENTS: &str = "tests/harness/moto/requirements.txt";
const WRAPPER: &str = "tests/harness/moto/kiln_moto.py";

pub struct Moto {
    pub port: u16,
    _child: Mutex<Child>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn venv_dir() -> PathBuf {
    match std::env::var_os("KILN_MOTO_VENV") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace().join("target"), PathBuf::from).join("moto-venv"),
    }
}

fn pinned_version() -> String {
    let text = std::fs::read_to_string(workspace().join(REQUIREMENTS)).expect("tests/harness/moto/requirements.txt");
    let line = text.lines().find(|l| l.starts_with("moto")).expect("a moto line in requirements.txt");
    line.split("==").nth(1).expect("moto pinned with ==").trim().to_string()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("moto harness: cannot {what}: {e}; install python3 (with venv and pip)"));
    assert!(
        out.status.success(),
        "moto harness: {what} failed ({}):\n{}\n{}\nCI needs: python3, python3-venv, and access to PyPI",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn has_moto(dir: &Path, version: &str) -> bool {
    let check = format!("import moto, sys; sys.exit(0 if moto.__version__ == '{version}' else 1)");
    Command::new(dir.join("bin/python")).args(["-c", &check]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Creates the venv unless it already has the pinned moto.
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
        let req = workspace().join(REQUIREMENTS);
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
    let log = File::create(logs.join(format!("moto-{}.log", std::process::id()))).expect("moto log file");
    let child = Command::new(venv.join("bin/python"))
        .arg(workspace().join(WRAPPER))
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
        assert!(Instant::now() < deadline, "moto did not start within 60 s; see {}", logs.display());
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_file(&port_file);
    let moto = Moto { port, _child: Mutex::new(child) };
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

/// Serialises the tests that use the server; the server is reset when the guard is taken.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = LOCK.lock().await;
    let m = server();
    m.request("POST", "/moto-api/reset", "");
    guard
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One HTTP/1.1 request with a JSON body; the response body.
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

    /// Terminates an instance the way EC2 reclaims spot capacity.
    pub fn spot_interrupt(&self, instance_id: &str) {
        let body = serde_json::json!({ "instance_id": instance_id, "action": "terminate" });
        self.request("POST", "/_testbed/spot-interrupt", &body.to_string());
    }
}
