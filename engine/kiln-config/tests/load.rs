//! Loading configuration directories: files that are not regular files or not UTF-8 get a
//! diagnostic naming the path (and the line and column of the first bad byte), never a hang.

use kiln_diag::Diagnostics;

fn load(files: &[(&str, &[u8])]) -> (tempfile::TempDir, kiln_config::Config, Diagnostics) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let (config, d) = kiln_config::load(dir.path());
    (dir, config.unwrap(), d)
}

#[test]
fn invalid_utf8_is_reported_at_its_line_and_column() {
    let (_dir, config, d) = load(&[("main.kiln.hcl", b"locals {\n  a = \"caf\xe9\"\n}\n")]);
    let e = d.iter().find(|e| e.code == "E-CONFIG-UTF8").unwrap_or_else(|| panic!("{d:?}"));
    assert!(e.summary.contains("main.kiln.hcl` is not valid UTF-8: byte 0xe9"), "{}", e.summary);
    let l = e.primary.as_ref().expect("a location");
    let lc = config.sources.get(l.span.file).line_col(l.span.range.start);
    assert_eq!((lc.line, lc.column), (2, 11));
    assert!(config.sources.location(l.span.file, l.span.range.start).ends_with("main.kiln.hcl:2:11"));
}

#[test]
fn a_fifo_named_like_a_configuration_file_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.kiln.hcl"), "locals {\n  a = 1\n}\n").unwrap();
    let fifo = dir.path().join("b.kiln.hcl");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (_, d) = kiln_config::load(dir.path());
    let e = d.iter().find(|e| e.code == "E-CONFIG-READ").unwrap_or_else(|| panic!("{d:?}"));
    assert!(e.summary.contains("b.kiln.hcl") && e.summary.contains("not a regular file"), "{}", e.summary);
}

#[test]
fn a_syntax_error_inside_a_multibyte_character_is_reported_not_a_panic() {
    // hcl-edit reports this error at byte 4, inside `ꬓ` (bytes 2 to 5): found by the fuzz suite.
    let (_dir, config, d) = load(&[("main.kiln.hcl", "n{ꬓ".as_bytes())]);
    let e = d.iter().find(|e| e.code == "E-SYNTAX").unwrap_or_else(|| panic!("{d:?}"));
    let l = e.primary.as_ref().expect("a location");
    assert!(config.sources.text(l.span.file).is_char_boundary(l.span.range.start));
    assert!(config.sources.location(l.span.file, l.span.range.start).ends_with("main.kiln.hcl:1:3"));
}
