//! Fixture tests: every `testdata/<scenario>/in.kiln.hcl` must format to its
//! `out.kiln.hcl`, formatting must be idempotent, and every expected output
//! must be a fixed point of the formatter. An ignored test compares the
//! fixtures with a real `terraform fmt` when one is installed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kiln_fmt::format_source;

/// Scenarios the brief requires; a missing directory fails the suite.
const REQUIRED: &[&str] = &[
    "alignment_groups",
    "nested_blocks",
    "comments",
    "heredocs",
    "multiline_collections",
    "for_and_conditionals",
    "blank_lines",
    "already_formatted",
    "templates",
    "block_headers",
    "operators",
    "brackets",
    "kiln_divergences",
];

struct Fixture {
    name: String,
    dir: PathBuf,
    input: String,
    expected: String,
}

fn fixtures() -> Vec<Fixture> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut out = Vec::new();
    for entry in fs::read_dir(&root).expect("testdata directory") {
        let dir = entry.expect("testdata entry").path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{name}/{f}: {e}"));
        let (input, expected) = (read("in.kiln.hcl"), read("out.kiln.hcl"));
        out.push(Fixture { name, dir, input, expected });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    for required in REQUIRED {
        assert!(out.iter().any(|f| f.name == *required), "missing fixture scenario {required}");
    }
    out
}

/// First differing line, for readable failures.
fn first_difference(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.split('\n').collect(), actual.split('\n').collect());
    for i in 0..e.len().max(a.len()) {
        let (el, al) = (e.get(i), a.get(i));
        if el != al {
            return format!("line {}:\n  expected: {:?}\n  actual:   {:?}", i + 1, el, al);
        }
    }
    "no line differs (line endings?)".to_owned()
}

fn format(name: &str, what: &str, src: &str) -> String {
    format_source(src).unwrap_or_else(|e| panic!("{name}: formatting {what} failed: {e}"))
}

#[test]
fn every_fixture_formats_to_its_expected_output() {
    let mut failures = Vec::new();
    for f in fixtures() {
        let actual = format(&f.name, "input", &f.input);
        if actual != f.expected {
            failures.push(format!("{}: {}", f.name, first_difference(&f.expected, &actual)));
        }
    }
    assert!(failures.is_empty(), "fixtures differ:\n{}", failures.join("\n"));
}

#[test]
fn formatting_every_fixture_input_is_idempotent() {
    for f in fixtures() {
        let once = format(&f.name, "input", &f.input);
        let twice = format(&f.name, "its own output", &once);
        assert!(once == twice, "{}: not idempotent: {}", f.name, first_difference(&once, &twice));
    }
}

#[test]
fn every_expected_output_is_a_fixed_point() {
    for f in fixtures() {
        let again = format(&f.name, "expected output", &f.expected);
        assert!(again == f.expected, "{}: formatting out.kiln.hcl changes it: {}", f.name, first_difference(&f.expected, &again));
    }
}

#[test]
fn expected_outputs_follow_the_basic_rules() {
    for f in fixtures() {
        let out = &f.expected;
        assert!(out.ends_with('\n') && !out.ends_with("\n\n"), "{}: must end with one newline", f.name);
        assert!(!out.contains('\t') || f.name == "heredocs", "{}: tab in output", f.name);
        // Trailing whitespace is allowed only inside heredoc bodies.
        if f.name != "heredocs" {
            for (i, line) in out.lines().enumerate() {
                assert!(!line.ends_with([' ', '\t']), "{}: trailing whitespace on line {}", f.name, i + 1);
            }
        }
    }
}

/// Normalises what kiln fmt deliberately does differently from terraform fmt
/// in every file: trailing blanks on lines and blank lines at the end.
fn normalise(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(|l| l.trim_end_matches([' ', '\t'])).collect();
    let mut out = lines.join("\n");
    out.truncate(out.trim_end_matches('\n').len());
    out
}

#[test]
#[ignore = "needs a `terraform` binary on PATH; run with --ignored"]
fn fixtures_match_terraform_fmt() {
    let mut failures = Vec::new();
    for f in fixtures() {
        if f.dir.join("DIVERGES_FROM_TERRAFORM").exists() {
            continue;
        }
        let mut child = Command::new("terraform")
            .args(["fmt", "-"])
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("terraform on PATH");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(f.input.as_bytes()).expect("write to terraform");
        }
        let output = child.wait_with_output().expect("terraform output");
        assert!(output.status.success(), "{}: terraform fmt failed", f.name);
        let theirs = normalise(&String::from_utf8_lossy(&output.stdout));
        let ours = normalise(&f.expected);
        if theirs != ours {
            failures.push(format!("{}: {}", f.name, first_difference(&theirs, &ours)));
        }
    }
    assert!(failures.is_empty(), "differs from terraform fmt:\n{}", failures.join("\n"));
}
