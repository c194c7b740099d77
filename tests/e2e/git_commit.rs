//! The git commit a plan was made from (issue 14): in a git work tree, `kiln plan` records
//! `HEAD` (with `-dirty` when files under the configuration's directory differ from it), and
//! `kiln show PLANFILE` says "Plan made from commit X" in every format; outside git, nothing is
//! recorded and nothing fails.

use std::path::Path;
use std::process::Command;

use crate::plan_view::{conforms, parsed};
use crate::support::Project;

const CONFIG: &str = "resource \"record\" \"a\" {\n  input = \"x\"\n}\n";

/// `git ARGS` in `dir`, isolated from the user's and the system's git configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=kiln", "-c", "user.email=kiln@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// A repository whose configuration is in `infra/`, committed; its HEAD.
fn repository(p: &Project) -> String {
    p.write("README.md", "# the project\n");
    p.write("infra/main.kiln.hcl", CONFIG);
    git(p.path(), &["init", "--quiet"]);
    git(p.path(), &["add", "."]);
    git(p.path(), &["commit", "--quiet", "-m", "infra"]);
    git(p.path(), &["rev-parse", "HEAD"])
}

/// `kiln plan --out=plan.kiln` in `infra/`, then the saved plan's commit as `show --json` reads it.
fn planned_commit(p: &Project) -> serde_json::Value {
    p.kiln(&["--chdir=infra", "plan", "--out=plan.kiln"]).ok();
    let v = parsed(&p.kiln(&["--chdir=infra", "show", "--json", "plan.kiln"]).ok().stdout());
    conforms("plan-view.schema.json", &v);
    v["git_commit"].clone()
}

#[test]
fn a_saved_plan_shows_the_commit_it_was_made_from() {
    let p = Project::empty();
    let head = repository(&p);
    // kiln's own files (state, the saved plan) and a CI job's plan.md are not changes.
    p.write("infra/plan.md", "written by the shell before kiln runs\n");
    assert_eq!(planned_commit(&p), serde_json::json!(head));

    let human = p.kiln(&["--chdir=infra", "show", "plan.kiln"]).ok().stdout();
    assert!(human.starts_with(&format!("Plan made from commit {head}\n\n")), "{human}");
    assert!(human.contains("Plan: 1 to add, 0 to change, 0 to destroy."), "{human}");
    let md = p.kiln(&["--chdir=infra", "show", "--format", "markdown", "plan.kiln"]).ok().stdout();
    assert!(md.contains(&format!("\nPlan made from commit `{head}`.\n")), "{md}");
    let md = p.kiln(&["--chdir=infra", "plan", "--format", "markdown"]).ok().stdout();
    assert!(md.contains(&format!("Plan made from commit `{head}`.")), "plan's own markdown too: {md}");

    // A change outside the configuration's directory does not make it dirty.
    p.write("README.md", "# the project, edited\n");
    assert_eq!(planned_commit(&p), serde_json::json!(head));
    // A changed configuration file does, and so does a new one.
    p.write("infra/main.kiln.hcl", &format!("{CONFIG}# edited\n"));
    assert_eq!(planned_commit(&p), serde_json::json!(format!("{head}-dirty")));
    git(p.path(), &["commit", "--quiet", "-am", "edit"]);
    let head = git(p.path(), &["rev-parse", "HEAD"]);
    assert_eq!(planned_commit(&p), serde_json::json!(head));
    p.write("infra/extra.kiln.hcl", "resource \"record\" \"b\" {\n  input = \"y\"\n}\n");
    assert_eq!(planned_commit(&p), serde_json::json!(format!("{head}-dirty")));
}

#[test]
fn outside_git_a_plan_has_no_commit_and_nothing_fails() {
    let p = Project::new(CONFIG);
    p.kiln(&["plan", "--out=plan.kiln"]).ok();
    let v = parsed(&p.kiln(&["show", "--json", "plan.kiln"]).ok().stdout());
    assert!(v.get("git_commit").is_none(), "{v}");
    let human = p.kiln(&["show", "plan.kiln"]).ok().stdout();
    assert!(!human.contains("made from commit"), "{human}");

    // A repository without a commit yet: no HEAD, no commit, no error.
    git(p.path(), &["init", "--quiet"]);
    let r = p.kiln(&["plan", "--out=plan.kiln"]).ok();
    assert!(!r.stderr().contains("git"), "{}", r.stderr());
    let v = parsed(&p.kiln(&["show", "--json", "plan.kiln"]).ok().stdout());
    assert!(v.get("git_commit").is_none(), "{v}");
}
