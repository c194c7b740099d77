//! The layering ARCHITECTURE.md states, checked on every crate's manifest: the top-level folders
//! are layers, and a crate depends only on crates of its own folder or of a layer below:
//!
//! ```text
//! engine/ (and the `kiln` package at the root)  →  providers/, state/  →  schemas/
//! ```
//!
//! `providers/` and `state/` do not depend on each other. Test code may also use `tests/testkit`
//! (dev-dependencies only). A crate that gains a dependency breaking this fails here, naming it.
//! Concrete providers and state backends are the binary's alone to depend on (its registry).

use std::path::{Path, PathBuf};

use crate::support::repo_root;

/// A folder's layer: higher may depend on lower.
fn layer(folder: &str) -> Option<u8> {
    match folder {
        "schemas" => Some(0),
        "providers" | "state" => Some(1),
        "engine" => Some(2),
        _ => None,
    }
}

/// The top-level folder of a path inside the repository.
fn folder_of(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or_else(|_| panic!("{} is outside the repository", path.display()));
    rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default()
}

/// Every `path = "..."` dependency of a manifest: (section, name, resolved directory).
fn path_deps(manifest: &Path) -> Vec<(String, String, PathBuf)> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let dir = manifest.parent().unwrap();
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        if !section.ends_with("dependencies") || section.starts_with("workspace") {
            continue;
        }
        let Some((name, rest)) = line.split_once('=') else { continue };
        let Some(at) = rest.find("path = \"") else { continue };
        let path = &rest[at + 8..];
        let path = &path[..path.find('"').expect("closing quote")];
        let resolved = std::path::absolute(dir.join(path)).unwrap();
        let resolved = resolved.components().fold(PathBuf::new(), |mut p, c| {
            if c == std::path::Component::ParentDir {
                p.pop();
            } else {
                p.push(c);
            }
            p
        });
        out.push((section.clone(), name.trim().to_string(), resolved));
    }
    out
}

fn manifests(root: &Path) -> Vec<PathBuf> {
    let mut found = vec![root.join("Cargo.toml")];
    for top in ["engine", "providers", "state", "schemas", "tests"] {
        for e in std::fs::read_dir(root.join(top)).unwrap().flatten() {
            let m = e.path().join("Cargo.toml");
            if m.exists() {
                found.push(m);
            }
        }
    }
    found
}

#[test]
fn no_crate_depends_on_a_layer_above_its_own() {
    let root = repo_root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for manifest in manifests(&root) {
        // The root package is the binary, whose code is engine/cli.
        let from = if manifest.parent().unwrap() == root { "engine".to_string() } else { folder_of(&root, &manifest) };
        for (section, name, dep) in path_deps(&manifest) {
            checked += 1;
            let to = folder_of(&root, &dep);
            let dev = section.contains("dev-dependencies");
            let ok = match (layer(&from), layer(&to)) {
                _ if dev && dep.ends_with("tests/testkit") => true,
                _ if from == to => true,
                (Some(a), Some(b)) => b < a,
                // tests/testkit: a dev-only harness above every layer.
                (None, _) if from == "tests" => true,
                _ => false,
            };
            if !ok {
                let shown = manifest.strip_prefix(&root).unwrap().display().to_string();
                broken.push(format!("{shown}: [{section}] {name} is in {to}/, not below {from}/"));
            }
        }
    }
    assert!(checked > 40, "the manifests were read ({checked} path dependencies)");
    assert!(broken.is_empty(), "dependencies that break the layering in ARCHITECTURE.md:\n{}", broken.join("\n"));
}

/// Concrete providers and state backends are wired by the binary alone (`commands::registry`):
/// no crate but the root package depends on one (tests may, as dev-dependencies), so the engine
/// (`kiln-core`, `kiln-ops`) reaches them only through the `ProviderFactory` and `BackendFactory`
/// traits and a build without a backend's feature compiles none of its crate.
#[test]
fn only_the_binary_depends_on_concrete_providers_and_backends() {
    let root = repo_root();
    let concrete = |dep: &Path| {
        let name = dep.file_name().unwrap().to_string_lossy().into_owned();
        (name.starts_with("kiln-provider-") && folder_of(&root, dep) == "providers")
            || (name.starts_with("kiln-state-") && folder_of(&root, dep) == "state")
    };
    let mut broken = Vec::new();
    let mut wired = Vec::new();
    for manifest in manifests(&root) {
        for (section, name, dep) in path_deps(&manifest) {
            if !concrete(&dep) || section.contains("dev-dependencies") {
                continue;
            }
            if manifest.parent().unwrap() == root {
                wired.push(name);
            } else {
                broken.push(format!("{}: [{section}] {name}", manifest.strip_prefix(&root).unwrap().display()));
            }
        }
    }
    assert!(wired.iter().any(|n| n == "kiln-state-s3") && wired.iter().any(|n| n == "kiln-state-postgres"), "{wired:?}");
    assert!(broken.is_empty(), "only the binary wires concrete providers and backends in:\n{}", broken.join("\n"));
}
