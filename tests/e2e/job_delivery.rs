//! Issue 13: what a job gets delivered. `secret_env` reaches the job's processes (each job writes
//! a SHA-256 of the value to its output) but never any file kiln writes in clear (state, its
//! backups, job records, scripts), nor plan or apply output; a changed secret plans a
//! replacement shown as `(sensitive value)`. `workdir` is a directory on this machine that a
//! remote provider uploads (less what `.kilnignore` excludes), with its digest as
//! `workdir_digest`: a changed file replaces the job, an unchanged one plans nothing, and a
//! state written before the digest existed plans no change.

use std::path::Path;
use std::time::Duration;

use crate::support::{wait_until, Project};

/// Safety bound for a job to finish; not a speed requirement.
const JOB_DONE: Duration = Duration::from_secs(120);

const SECRET: &str = "hf_e2e-S3cr3t-value-7Qz";
const OTHER: &str = "hf_e2e-other-secret-9Kp";

/// `sha256sum` of `s`, as the jobs compute it.
fn sha256(s: &str) -> String {
    use std::io::Write;
    let mut c = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(files_containing(&p, needle));
        } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())) {
            out.push(p.display().to_string());
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0)
}

fn local_config(out: &str) -> String {
    format!(
        r#"
variable "hf_token" {{
  type      = string
  sensitive = true
}}

resource "cluster" "c" {{
  nodes = 1
}}

resource "job" "j" {{
  cluster    = cluster.c
  run        = "printf %s \"$HF_TOKEN\" | sha256sum | cut -d' ' -f1 > {out}"
  secret_env = {{ HF_TOKEN = var.hf_token }}
}}
"#
    )
}

#[test]
fn local_secret_env_reaches_the_job_and_no_file_or_output_of_kiln() {
    let p = Project::empty();
    let out = p.path().join("out.txt");
    p.write("main.kiln.hcl", &local_config(&out.display().to_string()));
    let var = format!("hf_token={SECRET}");
    let plan = p.kiln(&["plan", "--var", &var]).ok();
    let apply = p.kiln(&["apply", "--auto-approve", "--var", &var]).ok();
    wait_until("the job wrote its output", JOB_DONE, || std::fs::read_to_string(&out).is_ok_and(|s| s.trim().len() == 64));
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), sha256(SECRET), "the job saw the value");
    for (what, text) in [("plan", plan.stdout() + &plan.stderr()), ("apply", apply.stdout() + &apply.stderr())] {
        assert!(!text.contains(SECRET), "{what} printed the secret:\n{text}");
    }
    assert!(plan.stdout().contains("(sensitive value)"), "{}", plan.stdout());
    let state = p.state_json();
    let job = state["resources"].as_array().unwrap().iter().find(|r| r["address"] == "job.j").unwrap().clone();
    let digest = job["attributes"]["secret_env"]["HF_TOKEN"].as_str().unwrap_or_default().to_string();
    assert!(digest.starts_with("sha256:"), "state keeps a salted digest: {job}");
    let job_dir = Path::new(job["attributes"]["log_dir"].as_str().unwrap()).to_path_buf();
    let secrets = job_dir.join("secret_env.sh");
    assert_eq!(mode(&secrets), 0o600, "the secrets file is private");
    assert_eq!(mode(&job_dir), 0o700, "in a private directory");
    assert_eq!(
        files_containing(&p.path().join(".kiln"), SECRET),
        [secrets.display().to_string()],
        "no file under .kiln but the 0600 secrets file holds the value (state, backups, job.json, scripts, logs do not)"
    );

    // Unchanged: no change planned.
    let same = p.kiln(&["plan", "--detailed-exitcode", "--var", &var]);
    assert_eq!(same.code(), 0, "{}\n{}", same.stdout(), same.stderr());

    // Changed: a replacement, the value never printed.
    let other = format!("hf_token={OTHER}");
    let changed = p.kiln(&["plan", "--var", &other]).ok();
    let text = changed.stdout() + &changed.stderr();
    assert!(text.contains("must be replaced") || text.contains("forces replacement"), "{text}");
    assert!(text.contains("secret_env") && text.contains("(sensitive value)"), "{text}");
    assert!(!text.contains(OTHER) && !text.contains(SECRET), "{text}");
    std::fs::remove_file(&out).unwrap();
    let apply = p.kiln(&["apply", "--auto-approve", "--var", &other]).ok();
    assert!(!(apply.stdout() + &apply.stderr()).contains(OTHER));
    wait_until("the new job wrote its output", JOB_DONE, || std::fs::read_to_string(&out).is_ok_and(|s| s.trim().len() == 64));
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), sha256(OTHER));
    assert_eq!(files_containing(&p.path().join(".kiln"), SECRET), Vec::<String>::new(), "the old job's directory is gone");
    let held = files_containing(&p.path().join(".kiln"), OTHER);
    assert!(held.len() == 1 && held[0].ends_with("/secret_env.sh"), "{held:?}");
    p.kiln(&["destroy", "--auto-approve", "--var", &other]).ok();
}

#[test]
fn a_secret_env_key_that_is_not_a_variable_name_is_refused() {
    let p = Project::new(
        r#"
resource "cluster" "c" {
  nodes = 1
}

resource "job" "j" {
  cluster    = cluster.c
  run        = "true"
  secret_env = { "NOT-A-NAME" = "x" }
}
"#,
    );
    let r = p.kiln(&["validate"]);
    assert_ne!(r.code(), 0);
    assert!(r.stderr().contains("E-JOB-SECRET-ENV") && r.stderr().contains("NOT-A-NAME"), "{}", r.stderr());
}

#[cfg(feature = "onprem")]
mod onprem {
    use super::*;
    use crate::onprem::{harness, Host};

    fn root() -> String {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("{}/scratch/delivery-{}-{n}", harness().dir.display(), std::process::id())
    }

    fn config(h: &Host, root: &str) -> String {
        format!(
            r#"
variable "hf_token" {{
  type      = string
  sensitive = true
}}

provider "onprem" {{
  user          = "trainer"
  identity_file = "{identity}"
  root          = "{root}"

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
  provider   = onprem
  cluster    = cluster.c
  workdir    = "src"
  run        = "cat data.txt > out.txt; printf %s \"$HF_TOKEN\" | sha256sum | cut -d' ' -f1 >> out.txt; pwd >> out.txt; ls -a > files.txt"
  secret_env = {{ HF_TOKEN = var.hf_token }}
}}
"#,
            identity = h.dir_identity(),
            name = h.name,
            address = h.address,
            port = h.port,
            key = h.key,
        )
    }

    trait Identity {
        fn dir_identity(&self) -> String;
    }

    impl Identity for Host {
        fn dir_identity(&self) -> String {
            harness().dir.join("client_ed25519").display().to_string()
        }
    }

    struct Destroy<'a>(&'a Project, String);

    impl Drop for Destroy<'_> {
        fn drop(&mut self) {
            let _ = self.0.kiln(&["destroy", "--auto-approve", "--var", &self.1]);
        }
    }

    /// The job's `workdir` on its host, from state's placement.
    fn remote_workdir(p: &Project) -> std::path::PathBuf {
        let state = p.state_json();
        let job = state["resources"].as_array().unwrap().iter().find(|r| r["address"] == "job.j").unwrap().clone();
        let dir = job["attributes"]["placement"][0]["dir"].as_str().unwrap_or_else(|| panic!("no placement: {job}")).to_string();
        Path::new(&dir).join("workdir")
    }

    fn job_attr(p: &Project, name: &str) -> serde_json::Value {
        let state = p.state_json();
        let job = state["resources"].as_array().unwrap().iter().find(|r| r["address"] == "job.j").unwrap().clone();
        job["attributes"][name].clone()
    }

    #[test]
    fn onprem_uploads_the_workdir_less_kilnignore_and_delivers_secret_env() {
        let h = harness();
        let host = &h.hosts[0];
        let root = root();
        let p = Project::new(&config(host, &root));
        p.write("src/data.txt", "from this machine\n");
        p.write("src/.kilnignore", "*.ckpt\n");
        p.write("src/big.ckpt", "excluded");
        // kiln's own secrets are never uploaded, whatever .kilnignore says; planning names them.
        p.write("src/local.auto.kilnvars", "hf_token = \"never uploaded\"\n");
        let var = format!("hf_token={SECRET}");
        let _destroy = Destroy(&p, var.clone());
        let plan = p.kiln(&["plan", "--var", &var]).ok();
        assert!(plan.stdout().contains("workdir_digest") && plan.stdout().contains("sha256:"), "known at plan:\n{}", plan.stdout());
        let said = plan.stdout() + &plan.stderr();
        assert!(said.contains("W-JOB-WORKDIR-WITHHELD") && said.contains("local.auto.kilnvars"), "{said}");
        let apply = p.kiln(&["apply", "--auto-approve", "--var", &var]).ok();
        let remote = remote_workdir(&p);
        let out = remote.join("out.txt");
        wait_until("the job wrote its output", JOB_DONE, || std::fs::read_to_string(&out).is_ok_and(|s| s.lines().count() >= 3));
        let got = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines[0], "from this machine", "{got}");
        assert_eq!(lines[1], sha256(SECRET), "the job saw the secret");
        assert_eq!(Path::new(lines[2]), remote, "the scripts run in the uploaded workdir");
        let files = std::fs::read_to_string(remote.join("files.txt")).unwrap_or_default();
        assert!(files.contains("data.txt") && !files.contains("big.ckpt"), ".kilnignore excluded big.ckpt:\n{files}");
        assert!(!files.contains("kilnvars"), "a variable file was uploaded:\n{files}");
        let node_dir = remote.parent().unwrap();
        assert_eq!(mode(&node_dir.join("secret_env.sh")), 0o600);
        for (what, text) in [("plan", plan.stdout() + &plan.stderr()), ("apply", apply.stdout() + &apply.stderr())] {
            assert!(!text.contains(SECRET), "{what} printed the secret:\n{text}");
        }
        assert_eq!(files_containing(&p.path().join(".kiln"), SECRET), Vec::<String>::new());
        // On the host, only the 0600 file holds it.
        let on_host: Vec<String> = files_containing(node_dir, SECRET);
        assert_eq!(on_host, [node_dir.join("secret_env.sh").display().to_string()], "{on_host:?}");

        // Unchanged: nothing to do; an excluded file changing is nothing either.
        p.write("src/big.ckpt", "still excluded");
        let same = p.kiln(&["plan", "--detailed-exitcode", "--var", &var]);
        assert_eq!(same.code(), 0, "{}\n{}", same.stdout(), same.stderr());

        // A state written before `workdir_digest` existed plans no change.
        let digest = job_attr(&p, "workdir_digest");
        assert!(digest.as_str().is_some_and(|d| d.starts_with("sha256:")), "{digest}");
        let state_path = p.state_path();
        let text = std::fs::read_to_string(&state_path).unwrap();
        let mut state: serde_json::Value = serde_json::from_str(&text).unwrap();
        for r in state["resources"].as_array_mut().unwrap() {
            if r["address"] == "job.j" {
                r["attributes"].as_object_mut().unwrap().remove("workdir_digest");
            }
        }
        std::fs::write(&state_path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
        let old = p.kiln(&["plan", "--detailed-exitcode", "--var", &var]);
        assert_eq!(old.code(), 0, "an old state plans no change:\n{}\n{}", old.stdout(), old.stderr());
        std::fs::write(&state_path, text).unwrap();

        // A changed file: a replacement, shown by the digest.
        p.write("src/data.txt", "changed\n");
        let changed = p.kiln(&["plan", "--var", &var]).ok();
        let t = changed.stdout();
        assert!(t.contains("workdir_digest") && t.contains("1 to add") && t.contains("1 to destroy"), "{t}");

        // Edited after `plan --out`: the saved plan's apply refuses to upload what was not reviewed.
        let saved = p.path().join("job.plan");
        p.kiln(&["plan", "--var", &var, "--out", saved.to_str().unwrap()]).ok();
        p.write("src/data.txt", "edited after the plan\n");
        let stale = p.kiln(&["apply", saved.to_str().unwrap()]);
        let said = stale.stdout() + &stale.stderr();
        assert_ne!(stale.code(), 0, "{said}");
        // The final plan at apply digests the workdir again and differs (the provider's upload
        // also refuses a workdir changed after that: workdir.rs's the_upload_is_the_planned_workdir).
        let refused = (said.contains("E-APPLY-INCONSISTENT") && said.contains("workdir_digest"))
            || (said.contains("E-ONPREM-JOB-WORKDIR") && said.contains("changed since the plan"));
        assert!(refused && said.contains("kiln plan"), "{said}");
        assert_eq!(files_containing(Path::new(&root), "edited after the plan"), Vec::<String>::new(), "uploaded unreviewed");
    }

    /// A relative `workdir` that is not a directory here keeps the meaning it had before kiln
    /// uploaded it (a directory on the hosts), with a warning: most often it is a typo.
    #[test]
    fn an_onprem_workdir_that_is_not_here_is_a_directory_on_the_hosts_with_a_warning() {
        let h = harness();
        let p = Project::new(&config(&h.hosts[0], &root()).replace("workdir    = \"src\"", "workdir    = \"srcc\""));
        p.write("src/data.txt", "x");
        let r = p.kiln(&["plan", "--var", "hf_token=x"]).ok();
        let all = r.stdout() + &r.stderr();
        assert!(all.contains("W-ONPREM-JOB-WORKDIR") && all.contains("\"srcc\"") && all.contains("on the hosts"), "{all}");
        assert!(!all.contains("workdir_digest") || !all.contains("sha256:"), "nothing to upload: {all}");
    }

    #[test]
    fn an_onprem_workdir_over_the_limit_is_a_diagnostic_naming_kilnignore() {
        let h = harness();
        let host = &h.hosts[0];
        let p = Project::new(&config(host, &root()));
        p.write("src/data.txt", "x");
        let f = std::fs::File::create(p.path().join("src/huge.bin")).unwrap();
        f.set_len((100 << 20) + 1).unwrap();
        let r = p.kiln(&["plan", "--var", "hf_token=x"]);
        assert_ne!(r.code(), 0);
        let err = r.stderr();
        assert!(err.contains("E-ONPREM-JOB-WORKDIR") && err.contains(".kilnignore") && err.contains("100 MiB"), "{err}");
    }
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use crate::moto::{exclusive, server};

    const CONFIG: &str = r#"
variable "endpoint" {
  type    = string
  default = null
}

variable "hf_token" {
  type      = string
  sensitive = true
}

provider "aws" {
  region   = "us-east-1"
  endpoint = var.endpoint
}

resource "bucket" "b" {
  provider      = aws
  force_destroy = true
}

resource "cluster" "c" {
  provider      = aws
  instance_type = "t3.micro"
  nodes         = 1
}

resource "job" "j" {
  provider   = aws
  cluster    = cluster.c
  workdir    = "src"
  run        = "python3 train.py"
  secret_env = { HF_TOKEN = var.hf_token }

  checkpoint {
    bucket = bucket.b
  }
}
"#;

    fn kiln(p: &Project, args: &[&str], token: &str) -> crate::support::Run {
        let endpoint = format!("endpoint={}", server().endpoint());
        let var = format!("hf_token={token}");
        let mut all = args.to_vec();
        all.extend(["--var", &endpoint, "--var", &var]);
        let mut c = p.command(&all);
        crate::aws::aws_env(&mut c);
        crate::support::run(c)
    }

    /// Through the binary against moto: a `workdir` relative to the configuration is digested at
    /// plan and uploaded through the bucket, `secret_env` goes to the SSM parameter; neither the
    /// output nor any file under .kiln holds the value; a changed file or secret replaces the
    /// job, and an unchanged configuration plans nothing.
    #[test]
    fn aws_workdir_and_secret_env_through_the_binary() {
        let _g = exclusive();
        let p = Project::new(CONFIG);
        p.write("src/train.py", "print('hi')\n");
        let plan = kiln(&p, &["plan"], SECRET).ok();
        assert!(plan.stdout().contains("workdir_digest") && plan.stdout().contains("sha256:"), "{}", plan.stdout());
        let apply = kiln(&p, &["apply", "--auto-approve"], SECRET).ok();
        for (what, text) in [("plan", plan.stdout() + &plan.stderr()), ("apply", apply.stdout() + &apply.stderr())] {
            assert!(!text.contains(SECRET), "{what} printed the secret:\n{text}");
        }
        assert_eq!(files_containing(&p.path().join(".kiln"), SECRET), Vec::<String>::new());
        let same = kiln(&p, &["plan", "--detailed-exitcode"], SECRET);
        assert_eq!(same.code(), 0, "{}\n{}", same.stdout(), same.stderr());

        let other = kiln(&p, &["plan"], OTHER).ok();
        assert!(other.stdout().contains("secret_env") && other.stdout().contains("must be replaced"), "{}", other.stdout());
        assert!(!(other.stdout() + &other.stderr()).contains(OTHER));
        p.write("src/train.py", "print('changed')\n");
        let changed = kiln(&p, &["plan"], SECRET).ok();
        assert!(changed.stdout().contains("workdir_digest") && changed.stdout().contains("must be replaced"), "{}", changed.stdout());
        kiln(&p, &["destroy", "--auto-approve"], SECRET).ok();
    }
}
