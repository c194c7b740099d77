//! What ships to run `kiln watch` unattended (issue 15): the systemd unit and the container
//! entrypoint under `dist/`. Recovery itself is tested per provider (`local.rs`: `local_watch_*`).

use std::process::Command;

use crate::support::{bin, repo_root, run, Project};

/// `dist/systemd/kiln-watch@.service`, instantiated for a project's directory with this build's
/// binary, passes `systemd-analyze verify` (skipped, and said, where systemd is not installed).
#[test]
#[allow(clippy::print_stderr)] // the skip is said
fn the_systemd_unit_verifies_for_a_configuration_directory() {
    let Ok(found) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("the_systemd_unit_verifies_for_a_configuration_directory: skipped: systemd-analyze is not installed");
        return;
    };
    assert!(found.status.success());
    let p = Project::new("");
    let unit = std::fs::read_to_string(repo_root().join("dist/systemd/kiln-watch@.service")).expect("the unit");
    assert!(unit.contains("WorkingDirectory=%f") && unit.contains("ExecStart=/usr/local/bin/kiln watch"), "{unit}");
    let unit = unit.replace("/usr/local/bin/kiln", &bin().display().to_string());
    let escaped = run({
        let mut c = Command::new("systemd-escape");
        c.arg("-p").arg(p.path());
        c
    })
    .ok()
    .stdout();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("kiln-watch@{}.service", escaped.trim()));
    std::fs::write(&file, unit).unwrap();
    let r = run({
        let mut c = Command::new("systemd-analyze");
        c.arg("verify").arg(&file);
        c
    });
    assert_eq!((r.code(), r.stderr()), (0, String::new()), "systemd-analyze verify {}", file.display());
}

/// `dist/container/entrypoint.sh` runs `kiln watch` in `KILN_DIR` with the arguments given.
#[test]
fn the_container_entrypoint_runs_kiln_watch_in_kiln_dir() {
    let p = Project::new("resource \"record\" \"r\" {\n  input = \"x\"\n}\n");
    let path = format!("{}:{}", bin().parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let r = run({
        let mut c = Command::new("sh");
        c.arg(repo_root().join("dist/container/entrypoint.sh")).arg("--once").env("KILN_DIR", p.path()).env("PATH", path);
        c
    })
    .ok();
    assert!(r.stderr().contains("No job in state has a `recovery` block"), "{}", r.stderr());
}
