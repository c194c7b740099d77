//! The CI examples in `examples/ci/` (issue 14) run as written: both files are parsed, their
//! shell steps (GitHub's `run:`, GitLab's `before_script:` + `script:`) run through bash, in
//! order, in a temporary copy of the repository's `examples/ci/` with `kiln` on PATH being the
//! binary under test, against the example's own configuration on the `local` provider.
//!
//! Left out, because they need the forge or the network: `uses:` steps (checkout, artifact
//! upload), and the shell steps or script items that install kiln (`cargo install`), post the
//! comment (`gh pr comment`, GitLab's notes API through `curl`) or download the reviewed plan
//! (`gh run download`, GitLab's artifacts API through `curl`, `apt-get install jq`). The test
//! checks that exactly those were left out, and hands the plan job's `plan.kiln` to the apply job
//! itself, in a fresh checkout at the same path (as CI runners check out every job), as the
//! artifact would be.

use std::path::PathBuf;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::{copy_dir, repo_root, run, Run};

/// The example's directory, relative to the repository (the workflows' working directory).
const DIR: &str = "examples/ci";

/// What marks a step the test does not run (see the module's documentation).
const FORGE: [&str; 4] = ["cargo install", "gh ", "curl ", "apt-get"];

fn load(file: &str) -> Yaml {
    let path = repo_root().join(DIR).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "{file}: one document");
    docs.remove(0)
}

/// A checkout: a temporary root holding a copy of `examples/ci/` at its place in the
/// repository, and a directory with `kiln` (the binary under test) for PATH.
struct Checkout {
    root: tempfile::TempDir,
    bin: tempfile::TempDir,
}

impl Checkout {
    fn new() -> Checkout {
        let root = tempfile::tempdir().expect("tempdir");
        copy_dir(&repo_root().join(DIR), &root.path().join(DIR), &[]);
        let bin = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(crate::support::bin(), bin.path().join("kiln")).expect("link kiln");
        Checkout { root, bin }
    }

    fn dir(&self) -> PathBuf {
        self.root.path().join(DIR)
    }

    /// Runs `script` with bash as the CI runners do (`-e`, `pipefail`) in `cwd` (relative to the
    /// root), with `env`.
    fn bash(&self, cwd: &str, script: &str, env: &[(String, String)]) -> Run {
        let mut c = Command::new("bash");
        c.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script]).current_dir(self.root.path().join(cwd));
        let path = format!("{}:{}", self.bin.path().display(), std::env::var("PATH").unwrap_or_default());
        c.env("PATH", path).env("NO_COLOR", "1").env("KILN_QUIET", "1");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("KILN_") && k != "KILN_QUIET" {
                c.env_remove(k);
            }
        }
        c.envs(env.iter().map(|(k, v)| (k, v)));
        run(c)
    }

    /// The apply job's checkout: the same path (CI runners check out every job at the same
    /// place), fresh (nothing the plan job left, `.kiln/` included), holding the plan job's
    /// saved plan and comment as the artifact download does.
    fn merged(self) -> Checkout {
        let artifact: Vec<(&str, Vec<u8>)> = ["plan.kiln", "plan.md"]
            .into_iter()
            .map(|f| (f, std::fs::read(self.dir().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"))))
            .collect();
        std::fs::remove_dir_all(self.dir()).expect("remove the plan job's checkout");
        copy_dir(&repo_root().join(DIR), &self.dir(), &[]);
        for (f, bytes) in artifact {
            std::fs::write(self.dir().join(f), bytes).expect("write the artifact");
        }
        self
    }

    /// The addresses in this checkout's state.
    fn state_list(&self) -> String {
        let mut c = Command::new(crate::support::bin());
        c.args(["state", "list"]).current_dir(self.dir()).env("KILN_QUIET", "1");
        run(c).ok().stdout()
    }
}

fn forge(script: &str) -> bool {
    FORGE.iter().any(|m| script.contains(m))
}

/// The outcome of running one CI job's shell steps.
struct JobRun {
    /// Each step run (its name) and how it ended; the job stops at the first that fails.
    ran: Vec<(String, Run)>,
    /// The names of the steps left out.
    skipped: Vec<String>,
    /// What GitHub steps wrote to `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY`.
    output: String,
    summary: String,
}

impl JobRun {
    fn last(&self) -> &Run {
        &self.ran.last().expect("a step ran").1
    }

    fn ran(&self) -> Vec<&str> {
        self.ran.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// Runs the `run:` steps of GitHub job `job` in `co`, as GitHub runs them (bash `-e`,
/// `pipefail`, in the job's default working directory), until one fails.
fn github_job(co: &Checkout, workflow: &Yaml, job: &str) -> JobRun {
    let j = &workflow["jobs"][job];
    assert!(!j.is_badvalue(), "the workflow has no job `{job}`");
    let cwd = j["defaults"]["run"]["working-directory"].as_str().unwrap_or(".");
    assert_eq!(cwd, DIR, "{job} runs in the example's directory");
    let files = tempfile::tempdir().expect("tempdir");
    let (output, summary) = (files.path().join("output"), files.path().join("summary"));
    let env = vec![
        ("GITHUB_OUTPUT".to_string(), output.display().to_string()),
        ("GITHUB_STEP_SUMMARY".to_string(), summary.display().to_string()),
        ("GITHUB_WORKSPACE".to_string(), co.root.path().display().to_string()),
    ];
    let mut r = JobRun { ran: vec![], skipped: vec![], output: String::new(), summary: String::new() };
    for step in j["steps"].as_vec().expect("steps") {
        let name = step["name"].as_str().or(step["uses"].as_str()).unwrap_or("(unnamed)").to_string();
        let Some(script) = step["run"].as_str() else {
            r.skipped.push(name);
            continue;
        };
        if forge(script) {
            r.skipped.push(name);
            continue;
        }
        let run = co.bash(step["working-directory"].as_str().unwrap_or(cwd), script, &env);
        let failed = run.code() != 0;
        r.ran.push((name, run));
        if failed {
            break;
        }
    }
    r.output = std::fs::read_to_string(&output).unwrap_or_default();
    r.summary = std::fs::read_to_string(&summary).unwrap_or_default();
    r
}

/// Runs GitLab job `job` in `co`: its `before_script` and `script` (from the job or what it
/// `extends`) as one bash script in the project's directory with the file's `variables`, items
/// that reach the forge left out.
fn gitlab_job(co: &Checkout, ci: &Yaml, job: &str) -> JobRun {
    let j = &ci[job];
    assert!(!j.is_badvalue(), "the file has no job `{job}`");
    let base = j["extends"].as_str().map(|e| &ci[e]);
    let key = |k: &str| match (&j[k], base) {
        (Yaml::BadValue, Some(b)) => b[k].as_vec().cloned().unwrap_or_default(),
        (v, _) => v.as_vec().cloned().unwrap_or_default(),
    };
    let mut env = vec![("CI_PROJECT_DIR".to_string(), co.root.path().display().to_string())];
    for (k, v) in ci["variables"].as_hash().into_iter().flatten() {
        env.push((k.as_str().expect("a variable's name").to_string(), v.as_str().expect("a variable's value").to_string()));
    }
    let mut r = JobRun { ran: vec![], skipped: vec![], output: String::new(), summary: String::new() };
    let mut script = String::new();
    for item in key("before_script").iter().chain(&key("script")) {
        let line = item.as_str().expect("a script item is a string");
        if forge(line) {
            r.skipped.push(line.trim().to_string());
        } else {
            script.push_str(line);
            script.push('\n');
        }
    }
    let run = co.bash(".", &script, &env);
    r.ran.push((job.to_string(), run));
    r
}

#[track_caller]
fn step_ok(r: &JobRun) {
    let (name, run) = r.ran.last().expect("a step ran");
    assert_eq!(run.code(), 0, "step `{name}` failed:\nstdout:\n{}\nstderr:\n{}", run.stdout(), run.stderr());
}

/// A policy the example's resources break (they are on `local`).
const AWS_ONLY: &str = "\npolicy \"clouds\" {\n  allowed_providers = [\"aws\"]\n}\n";

#[test]
fn the_github_workflow_plans_comments_and_applies_the_reviewed_plan() {
    let wf = load("github/kiln-plan.yml");
    assert!(!wf["on"]["pull_request"].is_badvalue() && !wf["on"]["push"].is_badvalue(), "runs on pull requests and pushes");

    // The pull request: init, plan (exit 2, changes; the step passes), the comment's markdown.
    let pr = Checkout::new();
    let r = github_job(&pr, &wf, "plan");
    step_ok(&r);
    assert_eq!(r.ran(), ["Initialise", "Plan"]);
    assert_eq!(
        r.skipped,
        ["actions/checkout@v4", "Install kiln", "Post the plan on the pull request", "Keep the saved plan for the merge"]
    );
    assert!(r.output.contains("exitcode=2\n"), "kiln plan --detailed-exitcode exits 2 on changes: {}", r.output);
    let md = std::fs::read_to_string(pr.dir().join("plan.md")).expect("plan.md");
    assert!(md.starts_with("### kiln plan: 2 to add, 0 to change, 0 to destroy\n"), "{md}");
    assert!(md.contains("| create | `bucket.datasets` | bucket | local |") && md.contains("**Policies:** ✅"), "{md}");
    assert_eq!(r.summary, md, "the job summary shows the plan too");
    assert!(pr.dir().join("plan.kiln").is_file());

    // The merge: a fresh checkout with the artifact; apply exactly that plan.
    let main = pr.merged();
    assert!(!main.dir().join(".kiln").exists());
    let r = github_job(&main, &wf, "apply");
    step_ok(&r);
    assert_eq!(r.ran(), ["Initialise", "Apply the reviewed plan"]);
    assert_eq!(r.skipped, ["actions/checkout@v4", "Install kiln", "Download the reviewed plan"]);
    let state = main.state_list();
    assert!(state.contains("bucket.datasets") && state.contains("cluster.train"), "{state}");
    // A second run of the same plan: state moved since it was made, so kiln refuses it.
    let again = github_job(&main, &wf, "apply");
    assert_ne!(again.last().code(), 0, "a stale plan is refused");
    assert!(again.last().stderr().contains("plan"), "{}", again.last().stderr());

    // A pull request that breaks a policy: the plan step fails with exit 3, the comment names it.
    let bad = Checkout::new();
    let config = bad.dir().join("main.kiln.hcl");
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap() + AWS_ONLY).unwrap();
    let r = github_job(&bad, &wf, "plan");
    assert_eq!(r.ran(), ["Initialise", "Plan"]);
    assert_eq!(r.last().code(), 3, "{}", r.last().stderr());
    assert!(r.output.contains("exitcode=3\n"), "{}", r.output);
    let md = std::fs::read_to_string(bad.dir().join("plan.md")).expect("plan.md");
    assert!(md.contains("**Policies:** ❌ 1 of 2 failed") && md.contains("**clouds** failed"), "{md}");
}

#[test]
fn the_gitlab_jobs_plan_comment_and_apply_the_reviewed_plan() {
    let ci = load("gitlab/.gitlab-ci.yml");
    let stages: Vec<&str> = ci["stages"].as_vec().expect("stages").iter().filter_map(Yaml::as_str).collect();
    assert_eq!(stages, ["plan", "apply"]);

    let mr = Checkout::new();
    let r = gitlab_job(&mr, &ci, "kiln-plan");
    step_ok(&r);
    assert_eq!(r.skipped.len(), 2, "{:?}", r.skipped);
    assert!(r.skipped[0].starts_with("cargo install") && r.skipped[1].starts_with("curl "), "{:?}", r.skipped);
    assert!(r.skipped[1].contains("/notes"), "the note on the merge request: {:?}", r.skipped);
    let md = std::fs::read_to_string(mr.dir().join("plan.md")).expect("plan.md");
    assert!(md.starts_with("### kiln plan: 2 to add, 0 to change, 0 to destroy\n"), "{md}");
    let artifacts: Vec<&str> = ci["kiln-plan"]["artifacts"]["paths"].as_vec().expect("artifacts").iter().filter_map(Yaml::as_str).collect();
    assert_eq!(artifacts, ["$KILN_DIR/plan.kiln", "$KILN_DIR/plan.md"]);

    let main = mr.merged();
    let r = gitlab_job(&main, &ci, "kiln-apply");
    step_ok(&r);
    assert_eq!(r.skipped.len(), 3, "{:?}", r.skipped);
    assert!(r.skipped[1].starts_with("apt-get") && r.skipped[2].contains("/jobs/artifacts/"), "{:?}", r.skipped);
    assert!(r.skipped[2].contains("merge_requests"), "the merge request this push merged: {:?}", r.skipped);
    let state = main.state_list();
    assert!(state.contains("bucket.datasets") && state.contains("cluster.train"), "{state}");

    let bad = Checkout::new();
    let config = bad.dir().join("main.kiln.hcl");
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap() + AWS_ONLY).unwrap();
    let r = gitlab_job(&bad, &ci, "kiln-plan");
    assert_eq!(r.last().code(), 3, "a policy violation fails the job: {}", r.last().stderr());
    let md = std::fs::read_to_string(bad.dir().join("plan.md")).expect("plan.md");
    assert!(md.contains("**clouds** failed"), "{md}");
}
