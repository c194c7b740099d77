//! `kiln fmt`: canonical layout of configuration files.

use std::path::{Path, PathBuf};

use super::*;

pub(crate) fn fmt(dir: &Path, check: bool, diff: bool, recursive: bool, paths: Vec<PathBuf>) -> R {
    let roots = if paths.is_empty() { vec![dir.to_path_buf()] } else { paths };
    let mut files = Vec::new();
    for r in roots {
        collect_hcl(&r, recursive, &mut files);
    }
    let mut changed = false;
    let mut failed = false;
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("Error: cannot read `{}`: {e}", f.display()))?;
        match kiln_fmt::format_source(&text) {
            Ok(out) if out != text => {
                changed = true;
                println!("{}", f.strip_prefix(dir).unwrap_or(&f).display());
                if diff {
                    print!(
                        "{}",
                        similar::TextDiff::from_lines(&text, &out)
                            .unified_diff()
                            .header(&f.display().to_string(), &f.display().to_string())
                    );
                }
                if !check {
                    std::fs::write(&f, out).map_err(|e| format!("Error: cannot write `{}`: {e}", f.display()))?;
                }
            }
            Ok(_) => {}
            Err(e) => {
                failed = true;
                eprintln!("Error: {}: {e}", f.display());
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
