//! `kiln fmt`: `--check`, rewriting, idempotence, comments.

use crate::support::Project;

const UNFORMATTED: &str = r#"// leading line comment
variable "gpus" {
type = number   # trailing comment
default = 8
}

locals {
  tags = {
  project = "kiln"
   run_name = "pretrain"
  }
  sizes = [1,2,3]
}

/* block comment */
resource "record"   "node" {
  for_each = {a=1}
    input = local.tags
  lifecycle {
  prevent_destroy = false
  }
}
"#;

const FORMATTED: &str = r#"// leading line comment
variable "gpus" {
  type    = number # trailing comment
  default = 8
}

locals {
  tags = {
    project  = "kiln"
    run_name = "pretrain"
  }
  sizes = [1, 2, 3]
}

/* block comment */
resource "record" "node" {
  for_each = { a = 1 }
  input    = local.tags
  lifecycle {
    prevent_destroy = false
  }
}
"#;

#[test]
fn check_exits_3_and_leaves_the_file_alone() {
    let p = Project::new(UNFORMATTED);
    let r = p.kiln(&["fmt", "--check"]).code_is(3);
    assert!(r.stdout().contains("main.kiln.hcl"), "lists the file: {}", r.stdout());
    assert_eq!(p.read("main.kiln.hcl"), UNFORMATTED);
}

#[test]
fn check_exits_0_on_a_formatted_file() {
    let p = Project::new(FORMATTED);
    let r = p.kiln(&["fmt", "--check"]).ok();
    assert_eq!(r.stdout(), "");
}

#[test]
fn fmt_rewrites_keeping_comments() {
    let p = Project::new(UNFORMATTED);
    p.kiln(&["fmt"]).ok();
    let out = p.read("main.kiln.hcl");
    assert_eq!(out, FORMATTED);
    for c in ["// leading line comment", "# trailing comment", "/* block comment */"] {
        assert!(out.contains(c), "comment `{c}` lost:\n{out}");
    }
    // Formatting never changes meaning.
    p.kiln(&["validate"]).ok();
}

#[test]
fn fmt_is_idempotent() {
    let p = Project::new(UNFORMATTED);
    p.kiln(&["fmt"]).ok();
    let once = p.read("main.kiln.hcl");
    let r = p.kiln(&["fmt"]).ok();
    assert_eq!(r.stdout(), "", "a second run lists no changed file");
    assert_eq!(p.read("main.kiln.hcl"), once);
    p.kiln(&["fmt", "--check"]).ok();
}

#[test]
fn diff_shows_the_change_without_writing_under_check() {
    let p = Project::new(UNFORMATTED);
    let r = p.kiln(&["fmt", "--check", "--diff"]).code_is(3);
    let out = r.stdout();
    assert!(out.contains("-type = number   # trailing comment") && out.contains("+  type    = number # trailing comment"), "{out}");
    assert_eq!(p.read("main.kiln.hcl"), UNFORMATTED);
}

#[test]
fn recursive_formats_module_directories() {
    let p = Project::new(FORMATTED);
    p.write("modules/m/main.kiln.hcl", UNFORMATTED);
    p.kiln(&["fmt", "--check"]).ok(); // without --recursive the module is not looked at
    p.kiln(&["fmt", "--recursive", "--check"]).code_is(3);
    p.kiln(&["fmt", "--recursive"]).ok();
    assert_eq!(p.read("modules/m/main.kiln.hcl"), FORMATTED);
}

#[test]
fn syntax_error_exits_1_and_writes_nothing() {
    let broken = "resource \"record\" \"a\" {\n  input = \n";
    let p = Project::new(broken);
    let r = p.kiln(&["fmt"]).code_is(1);
    // A diagnostic at the parser's file:line:col, with a hint.
    assert!(r.stderr().contains("E-FMT-SYNTAX") && r.stderr().contains("main.kiln.hcl:2:11"), "{}", r.stderr());
    assert!(r.stderr().contains("help:"), "{}", r.stderr());
    assert_eq!(p.read("main.kiln.hcl"), broken);
}

/// Issue 13: a syntax error reads `path:line:col: message` (as compilers write it), so editors
/// and terminals link it, for each file given, with its path as given.
#[test]
fn syntax_errors_read_path_line_col_message() {
    let p = Project::new("resource \"record\" \"a\" {\n  input = = 1\n}\n");
    p.write("sub/other.kiln.hcl", "x = 1\ny = = 2\n");
    let r = p.kiln(&["fmt"]).code_is(1);
    let line = r.stderr().lines().find(|l| l.contains("main.kiln.hcl:2:11:")).map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("no path:line:col line:\n{}", r.stderr()));
    assert!(line.trim_start_matches([' ', '×']).starts_with("main.kiln.hcl:2:11: invalid expression"), "{line}");
    let r = p.kiln(&["fmt", "sub/other.kiln.hcl"]).code_is(1);
    assert!(r.stderr().contains("sub/other.kiln.hcl:2:5: invalid expression"), "{}", r.stderr());
}
