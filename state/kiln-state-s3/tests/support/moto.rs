//! moto's S3 server for these tests: the project's `tests/harness/moto/kiln_moto.py` in the venv
//! the aws provider's tests use (`KILN_MOTO_VENV`, else `$CARGO_TARGET_DIR/moto-venv`, else
//! `target/moto-venv`), created with the pinned requirements on first use under the same file
//! lock. Started once per test binary on a free loopback port; it exits with the test binary.
//! Tests never share a bucket, so they need no reset and run in parallel. These tests never skip:
//! when python3, venv, pip or the server fail, they fail saying why.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

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
        "moto harness: {what} failed ({}):\n{}\n{}\nneeded: python3, python3-venv, and access to PyPI",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn has_moto(dir: &Path, version: &str) -> bool {
    let check = format!("import moto, sys; sys.exit(0 if moto.__version__ == '{version}' else 1)");
    Command::new(dir.join("bin/python")).args(["-c", &check]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

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
    let port_file = logs.join(format!("state-s3-port-{}", std::process::id()));
    let _ = std::fs::remove_file(&port_file);
    let log_path = logs.join(format!("state-s3-moto-{}.log", std::process::id()));
    let log = File::create(&log_path).expect("moto log file");
    let mut child = Command::new(venv.join("bin/python"))
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
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the moto server exited ({status}) before listening; see {}", log_path.display());
        }
        assert!(Instant::now() < deadline, "moto did not start within 60 s; see {}", log_path.display());
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_file(&port_file);
    Moto { port, _child: Mutex::new(child) }
}

/// The shared server, started on first use.
pub fn server() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start)
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
