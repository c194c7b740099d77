//! Helpers: a temporary project directory, ways to run the built binary in it (to completion or
//! in the background), fixtures, and insta settings that hide ids, temp paths and times.

#![allow(dead_code)] // not every test module uses every helper

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Safety bound for one kiln run: far above any honest run, only there so a hang fails the test
/// instead of blocking the suite.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(config: &str) -> Self {
        let p = Project::empty();
        p.write("main.kiln.hcl", config);
        p
    }

    pub fn empty() -> Self {
        Project { dir: tempfile::tempdir().expect("tempdir") }
    }

    /// A copy of `tests/e2e/fixtures/<name>` (without its `before/` directory, see
    /// [`Project::fixture_applied`]).
    pub fn fixture(name: &str) -> Self {
        let p = Project::empty();
        copy_dir(&fixture_dir(name), p.path(), &["before"]);
        p
    }

    /// A fixture whose `before/main.kiln.hcl` is applied first, so that its `main.kiln.hcl` is
    /// planned against real prior state. Fixtures without `before/` start from empty state.
    pub fn fixture_applied(name: &str) -> Self {
        let p = Project::fixture(name);
        let before = fixture_dir(name).join("before/main.kiln.hcl");
        if before.exists() {
            let final_config = std::fs::read_to_string(p.path().join("main.kiln.hcl")).expect("fixture main.kiln.hcl");
            p.write("main.kiln.hcl", &std::fs::read_to_string(before).expect("read before"));
            p.kiln(&["apply", "--auto-approve"]).ok();
            p.write("main.kiln.hcl", &final_config);
        }
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(path, text).expect("write");
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).expect("read")
    }

    /// A `kiln` command in this project: no colour, no progress lines, and none of the caller's
    /// `KILN_*` variables leaking in.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args).current_dir(self.path()).env("NO_COLOR", "1").env("KILN_QUIET", "1");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("KILN_") && k != "KILN_QUIET" {
                c.env_remove(k);
            }
        }
        c
    }

    /// Runs `kiln ARGS` to completion.
    pub fn kiln(&self, args: &[&str]) -> Run {
        run(self.command(args))
    }

    /// Runs `kiln ARGS` to completion with progress lines (`addr: Creating...`) on stderr.
    pub fn kiln_loud(&self, args: &[&str]) -> Run {
        let mut c = self.command(args);
        c.env_remove("KILN_QUIET");
        run(c)
    }

    /// Starts `kiln ARGS` in the background.
    pub fn spawn(&self, args: &[&str]) -> Spawned {
        Spawned::start(self.command(args))
    }

    pub fn state_path(&self) -> PathBuf {
        self.path().join(".kiln/state.json")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.path().join(".kiln/state.json.lock")
    }

    pub fn journal_path(&self) -> PathBuf {
        self.path().join(".kiln/state.json.journal")
    }

    /// The state file, parsed.
    pub fn state_json(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.state_path()).expect("read state");
        serde_json::from_str(&text).expect("state is JSON")
    }

    /// `kiln state list`, one address per element.
    pub fn state_list(&self) -> Vec<String> {
        self.kiln(&["state", "list"]).ok().stdout().lines().map(str::to_string).collect()
    }

    /// The value of `kiln output --json NAME` (the view's `value`).
    pub fn output_json(&self, name: &str) -> serde_json::Value {
        let out = self.kiln(&["output", "--json", name]).ok().stdout();
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("output {name} is not JSON ({e}): {out}"));
        assert_eq!(v["name"], name, "{v}");
        v["value"].clone()
    }
}

/// `kiln jobs events ADDRESS --json`'s output as (kind, category, attempt) per event, oldest
/// first (`-` for an event without a category).
pub fn job_events(json: &str) -> Vec<(String, String, u64)> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("events --json is not JSON ({e}): {json}"));
    let kind = |e: &serde_json::Value, k: &str| e[k].as_str().unwrap_or("-").to_string();
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|e| (kind(e, "kind"), kind(e, "category"), e["attempt"].as_u64().unwrap_or_else(|| panic!("no attempt: {e}"))))
        .collect()
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kiln"))
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture_dir(name: &str) -> PathBuf {
    repo_root().join("tests/e2e/fixtures").join(name)
}

/// Copies `from` into `to` recursively, leaving out entries named in `skip` (at the top level)
/// and any `.kiln` directory.
pub fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let e = e.expect("dir entry");
        let name = e.file_name();
        if skip.iter().any(|s| name == *s) || name == ".kiln" {
            continue;
        }
        let target = to.join(&name);
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &target, &[]);
        } else {
            std::fs::copy(e.path(), &target).expect("copy file");
        }
    }
}

/// The outcome of a finished kiln run.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Run {
    /// The exit code; -1 when the process died of a signal.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code(), 0, "kiln failed:\nstdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr());
        self
    }
    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn code_is(self, code: i32) -> Self {
        assert_eq!(self.code(), code, "unexpected exit code:\nstdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr());
        self
    }
}

/// Runs `c` to completion (bounded by [`RUN_TIMEOUT`]), capturing its output through files so
/// that a chatty process never blocks on a full pipe.
pub fn run(c: Command) -> Run {
    let mut s = Spawned::start(c);
    s.wait(RUN_TIMEOUT)
}

/// A kiln process running in the background. Killed on drop if still running.
pub struct Spawned {
    pub child: Child,
    stdout: File,
    stderr: File,
    done: Option<ExitStatus>,
}

impl Spawned {
    pub fn start(mut c: Command) -> Self {
        let stdout = tempfile::tempfile().expect("stdout file");
        let stderr = tempfile::tempfile().expect("stderr file");
        c.stdin(Stdio::null())
            .stdout(Stdio::from(stdout.try_clone().expect("clone")))
            .stderr(Stdio::from(stderr.try_clone().expect("clone")));
        let child = c.spawn().expect("spawn kiln");
        Spawned { child, stdout, stderr, done: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (reaps it if it has exited).
    pub fn running(&mut self) -> bool {
        if self.done.is_some() {
            return false;
        }
        match self.child.try_wait().expect("try_wait") {
            Some(s) => {
                self.done = Some(s);
                false
            }
            None => true,
        }
    }

    /// Sends `signal` (a name such as `INT` or `KILL`) with the system's `kill`.
    pub fn signal(&self, signal: &str) {
        let st = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status().expect("run kill");
        assert!(st.success(), "kill -{signal} {} failed", self.pid());
    }

    /// SIGKILL, then reap the process so that its pid is gone from this host.
    pub fn kill9(&mut self) -> Run {
        self.signal("KILL");
        self.wait(RUN_TIMEOUT)
    }

    /// Waits for the process to exit; kills it and panics after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Run {
        let start = Instant::now();
        while self.running() {
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("kiln did not finish within {timeout:?}:\nstderr:\n{}", self.stderr_so_far());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Run { status: self.done.expect("exited"), stdout: read_all(&mut self.stdout), stderr: read_all(&mut self.stderr) }
    }

    pub fn stderr_so_far(&mut self) -> String {
        String::from_utf8_lossy(&read_all(&mut self.stderr)).into_owned()
    }

    pub fn stdout_so_far(&mut self) -> String {
        String::from_utf8_lossy(&read_all(&mut self.stdout)).into_owned()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.done.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the process wrote to `f` so far. Read at offsets, never moving the file's offset: the
/// process writes at that offset too (the file is shared), and moving it back made its next
/// write overwrite earlier output.
fn read_all(f: &mut File) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match f.read_at(&mut chunk, buf.len() as u64).expect("read output") {
            0 => return buf,
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Polls `cond` every 20 ms; panics with `what` after `timeout` (a safety bound, not a speed
/// requirement).
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `kiln force-unlock ID` a lock message asks for, if any.
pub fn force_unlock_id(message: &str) -> Option<String> {
    let re = regex::Regex::new(r"kiln force-unlock ([0-9A-Za-z-]+)").expect("regex");
    re.captures(message).map(|c| c[1].to_string())
}

/// insta settings for kiln output: uuids become `[ID]`, RFC 3339 times `[TIME]`, durations
/// `[DURATION]`, the kiln version in JSON `[VERSION]` and the project's temp path `[TEMP]`.
pub fn insta_settings(p: &Project) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(true);
    s.set_omit_expression(true);
    let temp = regex::escape(&p.path().display().to_string());
    s.add_filter(&temp, "[TEMP]");
    if let Ok(canon) = p.path().canonicalize() {
        s.add_filter(&regex::escape(&canon.display().to_string()), "[TEMP]");
    }
    s.add_filter(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[ID]");
    s.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", "[TIME]");
    s.add_filter(r"after \d+(\.\d+)?s", "after [DURATION]");
    s.add_filter(r#""kiln_version": "[^"]*""#, r#""kiln_version": "[VERSION]""#);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading a running process's output while it writes loses nothing: the reader and the
    /// process share one open file, and a read that moved its offset made the process's next
    /// write land over what it had written (the CI failure of
    /// `interrupt::two_sigints_stop_waiting_and_keep_every_completed_create`).
    #[test]
    fn output_read_while_the_process_writes_keeps_every_line() {
        let mut c = Command::new("sh");
        c.args(["-c", "i=0; while [ $i -lt 2000 ]; do echo line $i >&2; i=$((i+1)); done"]);
        let mut s = Spawned::start(c);
        while s.running() {
            s.stderr_so_far();
        }
        let err = s.wait(RUN_TIMEOUT).stderr();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2000, "every line is kept:\n{err}");
        assert!(lines.iter().enumerate().all(|(i, l)| *l == format!("line {i}")), "in order:\n{err}");
    }
}
