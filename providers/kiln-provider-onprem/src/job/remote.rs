//! The scripts a job runs on its hosts, and the parsing of what they print.
//!
//! A node's directory `HOST_DIR/jobs/JOB_ID/` holds `token`, `started_at`, `cluster_id`,
//! `stop_grace`, `setup.sh`, `run.sh`, `env.sh`, the wrapper `node.sh`, and per rank
//! `node-R.pid`, `node-R.log` and, once it has finished, `node-R.exit` (written atomically
//! before the process ends). The wrapper runs in its own session (`setsid`), so its PID is also
//! its process group, which stop signals.

use std::collections::BTreeSet;

use kiln_hostinfo::procs::parse_stat;

use kiln_provider::portable::secret_env;

use crate::shell::{exports, write_file};

/// `$1` job dir, `$2` rank: records its PID, sources the environment, runs setup then run,
/// and records the exit code. The node records its own PID before it runs anything, so a kiln
/// killed at any point of a launch leaves no node running unrecorded; a node that cannot record
/// it (its directory was removed by a recovery meanwhile) runs nothing.
/// While it runs, it keeps the log's time index `node-R.idx` ([`kiln_provider::logs`]).
const NODE: &str = concat!(
    kiln_provider::log_indexer!(),
    r#"J=$1; R=$2
{ echo $$ > "$J/node-$R.pid.tmp" && mv -f "$J/node-$R.pid.tmp" "$J/node-$R.pid"; } || exit 111
kiln_log_index "$J/node-$R.log" "$J/node-$R.idx" & kiln_ix=$!
finish() {
  kill $kiln_ix 2>/dev/null; wait $kiln_ix 2>/dev/null; kiln_log_sample "$J/node-$R.log" "$J/node-$R.idx"
  printf '%s\n' "$1" > "$J/node-$R.exit.tmp" && mv -f "$J/node-$R.exit.tmp" "$J/node-$R.exit"; exit "$1"
}
. "$J/env.sh"
if [ -f "$J/secret_env.sh" ]; then . "$J/secret_env.sh" || finish 113; fi
bash "$J/setup.sh" || finish "$?"
bash "$J/run.sh"
finish "$?"
"#
);

/// After the files are written: `$1` job dir, `$2` rank, `$3` workdir (empty: the job dir),
/// `$4` checkpoint dir. Starts the node detached and prints its PID.
const START: &str = r#"mkdir -p "$4"
W=${3:-$J}
[ -d "$W" ] || { echo "the working directory $W does not exist on $(hostname)" >&2; exit 4; }
command -v setsid >/dev/null || { echo "setsid is missing on $(hostname) (util-linux)" >&2; exit 4; }
C=""
if [ -s "$J/cpus_per_node" ]; then
  command -v taskset >/dev/null || { echo "taskset is missing on $(hostname) (util-linux): the node must run on exactly $(cat "$J/cpus_per_node") CPUs" >&2; exit 4; }
  exec 8>"${J%/*}/.cpus.lock"
  command -v flock >/dev/null && flock 8
  C=$(choose_cpus "$J" "$R" "$(cat "$J/cpus_per_node")" 2>>"$J/node-$R.log") || { tail -n 1 "$J/node-$R.log" >&2; exit 4; }
  printf '%s\n' "$C" > "$J/node-$R.cpus"
  exec 8>&-
fi
cd "$W"
if [ -n "$C" ]; then
  setsid taskset -c "$C" bash "$J/node.sh" "$J" "$R" </dev/null >>"$J/node-$R.log" 2>&1 &
else
  setsid bash "$J/node.sh" "$J" "$R" </dev/null >>"$J/node-$R.log" 2>&1 &
fi
i=0
while [ ! -s "$J/node-$R.pid" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
cat "$J/node-$R.pid"
"#;

/// Bash: `choose_cpus JOB_DIR RANK N` prints the CPUs (a taskset list such as "2,3") a node of
/// a cluster with an exact `cpus` runs on: the first N of those the login may use that no
/// running node of another job on this host holds (each node records its own in
/// `node-R.cpus`; launches choose under a lock). CPUs are not claimed by the cluster: when the
/// other jobs' nodes hold too many, the node shares CPUs, and its log says so. Fails when the
/// host lets the login use fewer than N.
const CHOOSE_CPUS: &str = r#"choose_cpus() {
  n=$3; used=" "
  for f in "${1%/*}"/*/node-*.cpus; do
    [ -f "$f" ] || continue
    d=${f%/*}; r=${f##*/node-}; r=${r%.cpus}
    [ "${d##*/}" = "${1##*/}" ] && continue
    [ -f "$d/node-$r.exit" ] && continue
    p=$(cat "$d/node-$r.pid" 2>/dev/null)
    [ -n "$p" ] && ! alive "$p" && continue
    used="$used$(tr ',' ' ' < "$f") "
  done
  all=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status | tr ',' '\n' | awk -F- '{ e = NF > 1 ? $2 : $1; for (i = $1; i <= e; i++) print i }')
  have=$(printf '%s\n' $all | grep -c .)
  [ "$have" -ge "$n" ] || { echo "kiln: $(hostname) lets this login use $have CPUs; node $2 needs exactly $n" >&2; return 1; }
  pick=""; k=0
  for c in $all; do
    [ "$k" -lt "$n" ] || break
    case "$used" in *" $c "*) continue ;; esac
    pick="$pick${pick:+,}$c"; k=$((k+1))
  done
  if [ "$k" -lt "$n" ]; then
    echo "kiln: other jobs' nodes hold the CPUs of $(hostname); node $2 shares some of theirs" >&2
    pick=$(printf '%s\n' $all | head -n "$n" | paste -sd, -)
  fi
  echo "$pick"
}
"#;

/// Bash: `alive PGID` succeeds while a non-zombie process of the group exists.
const ALIVE: &str = r#"alive() { cat /proc/[0-9]*/stat 2>/dev/null | sed 's/^.*) //' | awk -v g="$1" '$3==g && $1!="Z" {f=1} END {exit !f}'; }
"#;

/// `$1` job dir, `$2` rank: `key=value` lines describing the node.
pub const STATUS: &str = r#"J=$1; R=$2
[ -d "$J" ] || { echo "dir=missing"; exit 0; }
echo "dir=present"
echo "token=$(cat "$J/token" 2>/dev/null)"
echo "started_at=$(cat "$J/started_at" 2>/dev/null)"
echo "port=$(sed -n "s/^export KILN_MASTER_PORT='\\(.*\\)'$/\\1/p" "$J/env.sh" 2>/dev/null)"
pid=$(cat "$J/node-$R.pid" 2>/dev/null)
echo "pid=$pid"
[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] && echo "stat=$(cat "/proc/$pid/stat" 2>/dev/null)"
if [ -f "$J/node-$R.exit" ]; then echo "exit=$(cat "$J/node-$R.exit")"; echo "exit_at=$(stat -c %Y "$J/node-$R.exit")"; fi
exit 0
"#;

/// Bash: `stop_node DIR RANK GRACE` sends TERM to the node's group, KILL after the grace;
/// fails when the group survives.
const STOP_NODE: &str = r#"stop_node() {
  pid=$(cat "$1/node-$2.pid" 2>/dev/null)
  [ -n "$pid" ] && alive "$pid" || return 0
  kill -TERM -- "-$pid" 2>/dev/null
  n=$(($3*10)); while [ $n -gt 0 ] && alive "$pid"; do sleep 0.1; n=$((n-1)); done
  if alive "$pid"; then kill -KILL -- "-$pid" 2>/dev/null; sleep 0.2; fi
  if alive "$pid"; then echo "process group $pid is still running" >&2; return 1; fi
}
"#;

/// `$1` job dir, `$2` rank, `$3` grace seconds: stops the node, then removes the directory.
/// Exit 5 when the group survives.
pub fn stop_script() -> String {
    format!(
        r#"{ALIVE}{STOP_NODE}J=$1
[ -d "$J" ] || exit 0
stop_node "$J" "$2" "$3" || exit 5
rm -rf -- "$J"
"#
    )
}

/// Sh: `finished DIR` succeeds when the job in DIR started nodes and every one recorded its
/// exit.
const FINISHED: &str = r#"finished() {
  n=0
  for p in "$1"/node-*.pid; do
    [ -f "$p" ] || continue
    r=${p##*/node-}; r=${r%.pid}
    [ -f "$1/node-$r.exit" ] || return 1
    n=1
  done
  [ "$n" = 1 ]
}
"#;

/// `$1` host directory, `$2` cluster ID, `$3` optionally `keep-finished`: stops every node of
/// every job started on this host for that cluster (with each job's own grace) and removes their
/// directories. For a host that comes back after its cluster moved away from it: the jobs there
/// were replaced elsewhere. With `keep-finished` (the cluster's delete), the directory of a job
/// whose every node exited stays: that job is still in state (a job that finished with
/// `on_finish = "destroy_capacity"` outlives its cluster) and reads its status, exit codes and
/// logs there until its own delete removes it.
pub fn orphans_script() -> String {
    format!(
        r#"{ALIVE}{STOP_NODE}{FINISHED}for J in "$1"/jobs/*/; do
  J=${{J%/}}
  [ "$(cat "$J/cluster_id" 2>/dev/null)" = "$2" ] || continue
  g=$(cat "$J/stop_grace" 2>/dev/null); g=${{g:-10}}
  ok=1
  for p in "$J"/node-*.pid; do
    [ -f "$p" ] || continue
    r=${{p##*/node-}}; r=${{r%.pid}}
    stop_node "$J" "$r" "$g" || ok=0
  done
  [ "$ok" = 1 ] || continue
  [ "${{3:-}}" = keep-finished ] && finished "$J" && continue
  rm -rf -- "$J"
done
"#
    )
}

/// `$1` job dir, `$2` rank, `$3` offset, `$4` most bytes, `$5` a seek (empty, `end`, or
/// `since:EPOCH`), `$6` [`kiln_provider::logs::AWK_OFFSET_SINCE`]: a header line
/// `size=N done=0|1` (with a seek, ` at=N`, or ` at=none` for a log without a time index),
/// then without a seek the log's bytes from the offset.
pub fn logs_script() -> String {
    format!(
        r#"{ALIVE}J=$1; R=$2; f="$J/node-$R.log"
[ -d "$J" ] || {{ echo "missing"; exit 0; }}
size=$(stat -c %s "$f" 2>/dev/null || echo 0)
pid=$(cat "$J/node-$R.pid" 2>/dev/null)
if [ -f "$J/node-$R.exit" ]; then done=1; elif [ -n "$pid" ] && ! alive "$pid"; then done=1; else done=0; fi
case "${{5:-}}" in
  end) echo "size=$size done=$done at=$size"; exit 0 ;;
  since:*)
    if [ -f "$J/node-$R.idx" ]; then at=$(awk -v t="${{5#since:}}" "$6" "$J/node-$R.idx"); elif [ "$size" = 0 ]; then at=0; else at=none; fi
    echo "size=$size done=$done at=$at"; exit 0 ;;
esac
echo "size=$size done=$done"
[ -f "$f" ] && tail -c +$(( $3 + 1 )) "$f" | head -c "$4"
exit 0
"#
    )
}

/// Lists TCP sockets (for a free master port).
pub const PORTS: &str = "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null\n";

/// Files a node's directory gets before it starts.
pub struct NodeFiles<'a> {
    pub token: &'a str,
    pub started_at: &'a str,
    pub cluster_id: &'a str,
    pub stop_grace: u64,
    pub setup: &'a str,
    pub run: &'a str,
    pub env: &'a [(String, String)],
    /// The CPUs the node runs on exactly (`cpus_per_node` of a cluster with an exact `cpus`);
    /// `None`: its whole host.
    pub cpus: Option<u64>,
    /// The job's `secret_env` values: `secret_env.sh` (0600), sourced by the node.
    pub secrets: &'a [(String, String)],
    /// Whether the launch unpacks the job's workdir, a tar archive sent on its stdin after the
    /// script ([`kiln_remote::shell::with_input`]), to `workdir` in the node's directory (one
    /// node per host carries it: the host's nodes share that directory).
    pub workdir: bool,
}

/// The launch script of one node: writes its files, then [`START`]. The job's directory is
/// private to its owner (0700) and its files 0600 (`env.sh` holds the job's `env`, sensitive
/// values included, which the node needs); the job itself runs with the login's umask.
pub fn launch_script(f: &NodeFiles<'_>) -> String {
    let cpus = f.cpus.map(|n| n.to_string());
    let mut s =
        String::from("set -u\nJ=$1; R=$2\n__kiln_umask=$(umask); umask 077\nmkdir -p \"$J\" && chmod 700 \"$J\" && cd \"$J\" || exit 3\n");
    for (name, content) in [
        ("token", f.token.as_bytes()),
        ("started_at", f.started_at.as_bytes()),
        ("cluster_id", f.cluster_id.as_bytes()),
        ("stop_grace", f.stop_grace.to_string().as_bytes()),
        ("setup.sh", f.setup.as_bytes()),
        ("run.sh", f.run.as_bytes()),
        ("env.sh", exports(f.env).as_bytes()),
        ("node.sh", NODE.as_bytes()),
    ] {
        s += &write_file(name, content);
    }
    if let Some(n) = &cpus {
        s += &write_file("cpus_per_node", n.as_bytes());
    }
    if !f.secrets.is_empty() {
        s += &write_file(secret_env::FILE, secret_env::exports(f.secrets).as_bytes());
    }
    if f.workdir {
        // Received into a file first, so a short upload is an error, never a partial workdir;
        // unpacked aside and renamed, so a directory there is always whole.
        s += &format!(
            "if [ ! -d workdir ]; then\n  rm -rf \"workdir.$R\" \"workdir.$R.tar\" && mkdir \"workdir.$R\" && {} && tar -xf \"workdir.$R.tar\" -C \"workdir.$R\" \\\n    || {{ rm -f \"workdir.$R.tar\"; echo \"cannot unpack the job's workdir on $(hostname) (tar)\" >&2; exit 4; }}\n  rm -f \"workdir.$R.tar\"\n  mv -T \"workdir.$R\" workdir 2>/dev/null || rm -rf \"workdir.$R\"\nfi\n",
            crate::shell::receive("\"workdir.$R.tar\"")
        );
    }
    s + "umask \"$__kiln_umask\"\n" + ALIVE + CHOOSE_CPUS + START
}

/// What STATUS printed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeReport {
    pub present: bool,
    pub token: String,
    pub started_at: String,
    /// KILN_MASTER_PORT the node was started with.
    pub port: Option<u16>,
    pub pid: Option<u32>,
    /// The PID leads its own group and is not a zombie.
    pub alive: bool,
    /// Exit code and the epoch second it was written.
    pub exit: Option<(i32, u64)>,
}

/// Parses STATUS output.
pub fn parse_status(text: &str) -> NodeReport {
    let mut r = NodeReport::default();
    let mut code = None;
    let mut at = 0;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        match k {
            "dir" => r.present = v == "present",
            "token" => r.token = v.to_string(),
            "started_at" => r.started_at = v.to_string(),
            "port" => r.port = v.trim().parse().ok(),
            "pid" => r.pid = v.trim().parse().ok(),
            "stat" => r.alive = parse_stat(v).is_some_and(|p| Some(p.pid) == r.pid && p.pgrp == p.pid && !p.zombie),
            "exit" => code = v.trim().parse().ok(),
            "exit_at" => at = v.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    r.exit = code.map(|c| (c, at));
    r
}

/// Ports in LISTEN state in `/proc/net/tcp{,6}` text.
pub fn parse_listening(text: &str) -> BTreeSet<u16> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (local, state) = (f.get(1)?, f.get(3)?);
            (*state == "0A").then(|| u16::from_str_radix(local.rsplit(':').next()?, 16).ok()).flatten()
        })
        .collect()
}

/// A port from 29500 up (offset by the job ID, so concurrent jobs rarely collide) that nothing
/// listens on.
pub fn choose_port(job_id: &str, used: &BTreeSet<u16>) -> u16 {
    let offset = job_id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into())) % 500;
    (0..2000u32).map(|i| (29500 + (offset + i) % 2000) as u16).find(|p| !used.contains(p)).unwrap_or(29500)
}

/// The header of LOGS output: `(size, done)`, and the data after it; `None` when the job
/// directory is missing.
pub fn parse_logs(out: &[u8]) -> Option<(u64, bool, &[u8])> {
    let nl = out.iter().position(|b| *b == b'\n')?;
    let head = std::str::from_utf8(&out[..nl]).ok()?;
    let mut size = None;
    let mut done = false;
    for kv in head.split_whitespace() {
        match kv.split_once('=') {
            Some(("size", v)) => size = v.parse().ok(),
            Some(("done", v)) => done = v == "1",
            _ => {}
        }
    }
    Some((size?, done, &out[nl + 1..]))
}

/// The position a seek of LOGS answered (`at=N` in its header): `Some(None)` for a log without
/// a time index; `None` when the header has none.
pub fn parse_seek(out: &[u8]) -> Option<Option<u64>> {
    let nl = out.iter().position(|b| *b == b'\n')?;
    let at = std::str::from_utf8(&out[..nl]).ok()?.split_whitespace().find_map(|kv| kv.strip_prefix("at="))?;
    Some(at.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let text = "dir=present\ntoken=abc\nstarted_at=2024-01-01T00:00:00Z\npid=4242\nstat=4242 (bash) S 1 4242 4242 0 -1\n";
        let r = parse_status(text);
        assert!(r.present && r.alive);
        assert_eq!((r.pid, r.token.as_str(), r.exit), (Some(4242), "abc", None));
        let done = parse_status("dir=present\npid=7\nstat=7 (bash) Z 1 7 7\nexit=3\nexit_at=1700000000\n");
        assert!(!done.alive);
        assert_eq!(done.exit, Some((3, 1_700_000_000)));
        assert!(!parse_status("dir=missing\n").present);
        assert!(!parse_status("dir=present\npid=9\nstat=9 (python3) S 1 8 8\n").alive, "not its own group leader");
    }

    #[test]
    fn listening_ports_and_choice() {
        let tcp = "  sl  local_address rem_address   st\n   0: 0100007F:735C 00000000:0000 0A 0\n   1: 0100007F:8AE2 0100007F:1F90 01 0\n";
        assert_eq!(parse_listening(tcp), [0x735C].into_iter().collect());
        let p = choose_port("train-1234", &BTreeSet::new());
        assert!((29500..31500).contains(&p));
        assert_ne!(choose_port("train-1234", &[p].into_iter().collect()), p);
    }

    #[test]
    fn log_header() {
        assert_eq!(parse_logs(b"size=12 done=1\nhello"), Some((12, true, &b"hello"[..])));
        assert_eq!(parse_logs(b"missing\n"), None);
        assert_eq!(parse_seek(b"size=12 done=0 at=7\n"), Some(Some(7)));
        assert_eq!(parse_seek(b"size=12 done=0 at=none\n"), Some(None));
        assert_eq!(parse_seek(b"size=12 done=1\nhello"), None);
    }

    /// Issue 10, defect 2 (on-prem): a node that cannot record its PID runs nothing.
    #[test]
    fn a_node_that_cannot_record_its_pid_runs_nothing() {
        let j = std::env::temp_dir().join(format!("kiln-onprem-node-{}", std::process::id()));
        std::fs::create_dir_all(&j).unwrap();
        let ran = j.join("ran");
        std::fs::write(j.join("env.sh"), "").unwrap();
        std::fs::write(j.join("setup.sh"), "").unwrap();
        std::fs::write(j.join("run.sh"), format!("touch '{}'", ran.display())).unwrap();
        // A directory where the PID's temporary file goes makes the write fail.
        std::fs::create_dir_all(j.join("node-0.pid.tmp")).unwrap();
        let st = std::process::Command::new("bash").args(["-c", NODE, "node", &j.display().to_string(), "0"]).status().unwrap();
        let ran_it = ran.exists();
        std::fs::remove_dir(j.join("node-0.pid.tmp")).unwrap();
        let ok = std::process::Command::new("bash").args(["-c", NODE, "node", &j.display().to_string(), "0"]).status().unwrap();
        let recorded = std::fs::read_to_string(j.join("node-0.pid")).unwrap_or_default();
        let ran_after = ran.exists();
        std::fs::remove_dir_all(&j).unwrap();
        assert_eq!(st.code(), Some(111));
        assert!(!ran_it, "the user's command never ran");
        assert!(ok.success() && ran_after && !recorded.trim().is_empty(), "with its PID recorded, the node runs");
    }

    /// Issue 10 (defect 11): a node's directory on its host, where `env.sh` holds the job's
    /// sensitive environment, is private (0700, files 0600); the job keeps the login's umask.
    #[test]
    fn a_nodes_files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("kiln-onprem-private-{}", std::process::id()));
        let j = root.join("job");
        let env = vec![("TOKEN".to_string(), "hunter2-s3cr3t".to_string())];
        let files = NodeFiles {
            token: "t",
            started_at: "now",
            cluster_id: "c-1",
            stop_grace: 3,
            setup: "",
            run: "umask > umask.out",
            env: &env,
            cpus: None,
            secrets: &[],
            workdir: false,
        };
        let out = std::process::Command::new("bash")
            .args([
                "-c",
                &format!("umask 022; {}", launch_script(&files)),
                "launch",
                &j.display().to_string(),
                "0",
                "",
                &root.join("ckpt").display().to_string(),
            ])
            .output()
            .unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        let start = std::time::Instant::now();
        while !j.join("node-0.exit").exists() && start.elapsed() < std::time::Duration::from_secs(60) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let (dir_mode, env_mode, run_mode) = (mode(&j), mode(&j.join("env.sh")), mode(&j.join("run.sh")));
        let job_umask = std::fs::read_to_string(j.join("umask.out")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&root);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!((dir_mode, env_mode, run_mode), (0o700, 0o600, 0o600));
        assert_eq!(job_umask.trim(), "0022", "the job runs with the login's umask");
    }

    /// Issue 13: the job's secrets in a 0600 `secret_env.sh` the node sources, its workdir
    /// unpacked from the launch script into `workdir`, where the scripts run.
    #[test]
    fn secrets_and_the_workdir_reach_the_node() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("kiln-onprem-delivery-{}", std::process::id()));
        let src = root.join("src");
        std::fs::create_dir_all(src.join("lib")).unwrap();
        std::fs::write(src.join("lib/data.txt"), "from the workdir\n").unwrap();
        let tar = kiln_provider::portable::workdir::Workdir::scan(&src).unwrap().tar().unwrap();
        let j = root.join("job");
        let secrets = vec![("HF_TOKEN".to_string(), "hf_s3cr3t 'quoted'".to_string())];
        let files = NodeFiles {
            token: "t",
            started_at: "now",
            cluster_id: "c-1",
            stop_grace: 3,
            setup: "",
            run: "cat lib/data.txt > out.txt; printf %s \"$HF_TOKEN\" >> out.txt",
            env: &[],
            cpus: None,
            secrets: &secrets,
            workdir: true,
        };
        let script = launch_script(&files);
        assert!(!script.contains("hf_s3cr3t"), "the value is not in the script's text");
        let args = [j.display().to_string(), "0".into(), j.join("workdir").display().to_string(), root.join("ckpt").display().to_string()];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let out = rt.block_on(kiln_remote::local::run_with_input(&root, &script, &args, &tar)).unwrap();
        let start = std::time::Instant::now();
        while !j.join("node-0.exit").exists() && start.elapsed() < std::time::Duration::from_secs(60) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let got = std::fs::read_to_string(j.join("workdir/out.txt")).unwrap_or_default();
        let mode = std::fs::metadata(j.join("secret_env.sh")).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        let _ = std::fs::remove_dir_all(&root);
        assert!(out.ok(), "{}", out.stderr);
        assert_eq!(got, "from the workdir\nhf_s3cr3t 'quoted'");
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn launch_writes_every_file_then_starts() {
        let env = vec![("KILN_NODE_RANK".to_string(), "0".to_string())];
        let files = NodeFiles {
            token: "t",
            started_at: "now",
            cluster_id: "c-1",
            stop_grace: 3,
            setup: "",
            run: "echo 'hi'",
            env: &env,
            cpus: None,
            secrets: &[],
            workdir: false,
        };
        let s = launch_script(&files);
        for f in ["token", "started_at", "cluster_id", "stop_grace", "setup.sh", "run.sh", "env.sh", "node.sh"] {
            assert!(s.contains(&format!("base64 -d > '{f}'")), "{f}");
        }
        assert!(s.ends_with(START) && !s.contains("cpus_per_node'"), "no CPU set without an exact `cpus`");
    }
}
