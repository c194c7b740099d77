//! `kiln fmt`: canonical layout of configuration files.

use std::path::{Path, PathBuf};

use super::*;

pub(crate) fn fmt(cx: &Ctx, check: bool, diff: bool, recursive: bool, paths: Vec<PathBuf>) -> R {
    let dir = cx.dir();
    let roots = if paths.is_empty() { vec![dir.to_path_buf()] } else { paths };
    let mut files = Vec::new();
    for r in roots {
        collect_hcl(&r, recursive, &mut files);
    }
    let mut changed = false;
    let mut failed = false;
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| {
            Diagnostic::error("E-FMT-READ", format!("cannot read `{}`", f.display()))
                .detail(e.to_string())
                .hint("check that the file exists and is readable")
        })?;
        match kiln_fmt::format_source(&text) {
            Ok(out) if out != text => {
                changed = true;
                cx.printer.data(f.strip_prefix(dir).unwrap_or(&f).display());
                if diff {
                    cx.printer.data_raw(format_args!(
                        "{}",
                        similar::TextDiff::from_lines(&text, &out)
                            .unified_diff()
                            .header(&f.display().to_string(), &f.display().to_string())
                    ));
                }
                if !check {
                    std::fs::write(&f, out).map_err(|e| {
                        Diagnostic::error("E-FMT-WRITE", format!("cannot write `{}`", f.display()))
                            .detail(e.to_string())
                            .hint("check that the file is writable; it was left as it was")
                    })?;
                }
            }
            Ok(_) => {}
            Err(e) => {
                failed = true;
                let (sources, d) = syntax_error(f.strip_prefix(dir).unwrap_or(&f), text, &e);
                cx.printer.diagnostics(&sources, &d.into());
            }
        }
    }
    Ok(if failed {
        ExitStatus::Error
    } else if check && changed {
        ExitStatus::Unformatted
    } else {
        ExitStatus::Success
    })
}

/// A file `kiln fmt` cannot parse, as a diagnostic at the parser's line and column; its summary
/// reads `path:line:col: message`, as compilers write it, so editors and terminals link it.
fn syntax_error(path: &Path, text: String, e: &kiln_fmt::FmtError) -> (kiln_diag::Sources, Diagnostic) {
    let kiln_fmt::FmtError::Parse { line, column, message } = e;
    let mut sources = kiln_diag::Sources::new();
    let file = sources.add(path, text);
    let at = sources.get(file).offset(*line, *column);
    let end = (at + 1).min(sources.text(file).len()).max(at);
    let d = Diagnostic::error("E-FMT-SYNTAX", format!("{}:{line}:{column}: {message}", path.display()))
        .at(kiln_diag::Span::new(file, at..end), "not valid HCL")
        .hint("fix the syntax (`kiln validate` reports every error); the file was left as it was");
    (sources, d)
}

pub(crate) fn collect_hcl(p: &Path, recursive: bool, out: &mut Vec<PathBuf>) {
    if p.is_file() {
        out.push(p.to_path_buf());
        return;
    }
    let Ok(rd) = std::fs::read_dir(p) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        let name = e.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if e.is_dir() {
            if recursive && !name.starts_with('.') && name != "target" {
                collect_hcl(&e, recursive, out);
            }
        } else if name.ends_with(".kiln.hcl") || name.ends_with(".kilnvars") {
            out.push(e);
        }
    }
}
