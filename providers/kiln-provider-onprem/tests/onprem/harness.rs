//! The real SSH hosts the tests run against: `tests/harness/sshd/start.sh` starts them once
//! per test binary (six sshd processes on 127.0.1.1-6, free ports, a directory of this
//! process's own), and a watcher process stops them (and deletes the directory) when this test
//! binary exits, however it exits. If sshd cannot be started the tests fail, saying why.
//!
//! Hosts 1 and 2 have eight A100s (a fake `nvidia-smi` replaying a recorded output), host 3
//! two MI210s (a fake `rocm-smi`), hosts 4, 5 and 6 no GPU. Hosts 5 and 6 are each taken down
//! by one test (and host 6 brought back) and must not be used by any other.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const HOSTS: usize = 6;

/// One host as start.sh describes it in hosts.tsv.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// `ssh-ed25519 AAAA...`
    pub key: String,
}

pub struct Harness {
    pub dir: PathBuf,
    pub hosts: Vec<Host>,
}

impl Harness {
    pub fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap_or_else(|| panic!("no harness host {name}"))
    }

    pub fn identity_file(&self) -> PathBuf {
        self.dir.join("client_ed25519")
    }

    /// A fresh directory every host can write (they share this machine's disk).
    pub fn scratch(&self, what: &str) -> String {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("{}/scratch/{what}-{n}", self.dir.display())
    }

    /// Takes `name` down: its sshd and the connections it serves end (stop.sh HOST).
    pub fn stop_host(&self, name: &str) {
        let out = script("stop.sh").arg(name).env("SSH_DIR", &self.dir).output().expect("run stop.sh");
        assert!(out.status.success(), "stop.sh {name} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Brings `name` back after [`Harness::stop_host`]: its sshd starts again with the same
    /// address, port, key and directory (as start.sh starts it), and answers.
    pub fn start_host(&self, name: &str) {
        let d = self.dir.join(name);
        let out = Command::new("/usr/sbin/sshd")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .output()
            .expect("run sshd");
        assert!(out.status.success(), "sshd for {name} did not start: {}", String::from_utf8_lossy(&out.stderr));
        let h = self.host(name);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect((h.address.as_str(), h.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "{name} does not accept connections again");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn script(name: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg(repo_root().join("tests/harness/sshd").join(name));
    c
}

/// A base port with BASE+1..=BASE+HOSTS free on every host address.
fn free_base() -> u16 {
    let start = 20000 + (std::process::id() % 2000) as u16 * 10;
    (0..2000u16)
        .map(|i| 20000 + (start - 20000 + i * 10) % 40000)
        .find(|base| (1..=HOSTS as u16).all(|i| std::net::TcpListener::bind((format!("127.0.1.{i}").as_str(), base + i)).is_ok()))
        .expect("no free ports for the sshd hosts")
}

/// Stops the hosts and removes `dir` once this process has exited.
fn stop_when_done(dir: &Path) {
    let stop = repo_root().join("tests/harness/sshd/stop.sh");
    let command = format!("SSH_DIR='{}' bash '{}' --purge", dir.display(), stop.display());
    kiln_testkit::when_this_process_exits(&command, "stops the sshd hosts");
}

fn parse_hosts(dir: &Path) -> Vec<Host> {
    let text = std::fs::read_to_string(dir.join("hosts.tsv")).expect("start.sh wrote hosts.tsv");
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Host {
                name: f[0].into(),
                address: f[1].into(),
                port: f[2].parse().expect("port"),
                user: f[3].into(),
                key: format!("{} {}", f[4], f[5]),
            }
        })
        .collect()
}

/// `name` on `host`'s PATH prints `output`, whatever its arguments.
fn fake_tool(dir: &Path, host: &str, name: &str, output: &str) {
    let path = dir.join(host).join("bin").join(name);
    std::fs::write(&path, format!("#!/bin/sh\ncat <<'KILN_FAKE_EOF'\n{output}KILN_FAKE_EOF\n")).expect("write fake tool");
    Command::new("chmod").arg("0755").arg(&path).status().expect("chmod");
}

fn testdata(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn start() -> Harness {
    let dir = PathBuf::from(format!("/tmp/kiln-sshd-{}", std::process::id()));
    let out = script("start.sh")
        .env("SSH_DIR", &dir)
        .env("SSH_HOSTS", HOSTS.to_string())
        .env("SSH_BASE_PORT", free_base().to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/harness/sshd/start.sh: {e}"));
    stop_when_done(&dir);
    assert!(
        out.status.success(),
        "the SSH test hosts could not be started (tests/harness/sshd/start.sh needs root and openssh-server):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let a100 = testdata("../kiln-hostinfo/testdata/nvidia-smi/8x-a100-sxm4-80gb.csv");
    fake_tool(&dir, "host1", "nvidia-smi", &a100);
    fake_tool(&dir, "host2", "nvidia-smi", &a100);
    fake_tool(&dir, "host3", "rocm-smi", &testdata("../kiln-hostinfo/testdata/rocm-smi/2x-mi210-warning.txt"));
    Harness { hosts: parse_hosts(&dir), dir }
}

/// The hosts, started on first use.
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(start)
}
