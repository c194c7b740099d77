//! `kiln schema [KIND] [--provider P]`: the providers' schemas as a reference, and the
//! reference under `docs/` generated from the same schemas (`docs`, kept in step by the
//! `docs_are_current` test: `KILN_UPDATE_DOCS=1 cargo test -p kiln --bin kiln docs_are_current`
//! rewrites it).

use kiln_core::ProviderRegistry;
use kiln_diag::Diagnostic;
use kiln_provider::PORTABLE_KINDS;
use kiln_views::schema::{KindReference, ProviderReference};
use kiln_views::{Format, Reference};

use super::{Ctx, ExitStatus, R};

/// The providers that are cargo features of the binary: a build without one lacks it.
const FEATURE_PROVIDERS: [&str; 3] = ["aws", "onprem", "slurm"];

pub fn schema(cx: &Ctx, kind: Option<&str>, provider: Option<&str>, format: Format) -> R {
    let registry = super::registry();
    let reference = select(&registry, kind, provider)?;
    cx.printer.data_raw(kiln_views::render(&reference, format, cx.settings.colour.stdout));
    Ok(ExitStatus::Success)
}

/// The part of the registry's schemas asked for: every provider (or `provider`), and every kind
/// and data source of it (or those named `kind`; then without the providers' configuration).
fn select<'a>(r: &'a ProviderRegistry, kind: Option<&str>, provider: Option<&str>) -> Result<Reference<'a>, Diagnostic> {
    let names: Vec<&str> = r.names().collect();
    if let Some(p) = provider {
        if !names.contains(&p) {
            let close = names.iter().find(|n| kiln_diag::edit_distance(p, n) <= 2.max(p.len() / 3));
            let mean = close.map(|n| format!("did you mean `{n}`? ")).unwrap_or_default();
            let mut hint = format!("{mean}the providers built into this kiln are {}", names.join(", "));
            if FEATURE_PROVIDERS.contains(&p) {
                hint = format!("this kiln was built without the `{p}` feature; {hint}");
            }
            return Err(Diagnostic::error("E-PROVIDER-UNKNOWN", format!("no provider `{p}` in this kiln")).hint(hint));
        }
    }
    let mut providers = Vec::new();
    for name in names.iter().copied().filter(|n| provider.is_none_or(|p| p == *n)) {
        let Some(s) = r.schema(name) else { continue };
        let entries = |kinds: &'a std::collections::BTreeMap<String, _>| -> Vec<KindReference<'a>> {
            kinds
                .iter()
                .filter(|(k, _)| kind.is_none_or(|want| want == k.as_str()))
                .map(|(k, schema)| KindReference { name: k.as_str(), schema, portable: PORTABLE_KINDS.contains(&k.as_str()) })
                .collect()
        };
        let p = ProviderReference {
            name,
            config: if kind.is_none() { Some(&s.config) } else { None },
            resources: entries(&s.kinds),
            data_sources: entries(&s.data_kinds),
        };
        if kind.is_none() || !p.resources.is_empty() || !p.data_sources.is_empty() {
            providers.push(p);
        }
    }
    if providers.is_empty() {
        let kind = kind.unwrap_or_default();
        return Err(unknown_kind(r, kind, provider));
    }
    Ok(Reference { providers })
}

/// `kind` is nobody's (or not `provider`'s): the kinds there are.
fn unknown_kind(r: &ProviderRegistry, kind: &str, provider: Option<&str>) -> Diagnostic {
    let list = |name: &str| -> String {
        let Some(s) = r.schema(name) else { return String::new() };
        let mut all: Vec<&str> = s.kinds.keys().map(String::as_str).collect();
        let data: Vec<String> = s.data_kinds.keys().map(|d| format!("{d} (data source)")).collect();
        all.extend(data.iter().map(String::as_str));
        if all.is_empty() {
            "no kinds".to_string()
        } else {
            all.join(", ")
        }
    };
    match provider {
        Some(p) => {
            let elsewhere: Vec<&str> =
                r.names().filter(|n| r.schema(n).is_some_and(|s| s.kinds.contains_key(kind) || s.data_kinds.contains_key(kind))).collect();
            let also = if elsewhere.is_empty() { String::new() } else { format!("; `{kind}` is {}'s", elsewhere.join("'s and ")) };
            Diagnostic::error("E-KIND-UNKNOWN", format!("provider `{p}` has no kind `{kind}`")).hint(format!("`{p}` has {}{also}", list(p)))
        }
        None => {
            let all: Vec<String> = r.names().map(|n| format!("{n}: {}", list(n))).collect();
            let kinds = r.names().filter_map(|n| r.schema(n)).flat_map(|s| s.kinds.keys().chain(s.data_kinds.keys()));
            let close = kinds
                .min_by_key(|k| kiln_diag::edit_distance(kind, k))
                .filter(|k| kiln_diag::edit_distance(kind, k) <= 2.max(kind.len() / 3));
            let mean = close.map(|k| format!("did you mean `{k}`? ")).unwrap_or_default();
            Diagnostic::error("E-KIND-UNKNOWN", format!("no provider has a kind `{kind}`"))
                .hint(format!("{mean}the kinds of the providers built into this kiln are {}", all.join("; ")))
        }
    }
}

/// How to bring `docs/` in step with the schemas.
#[cfg(test)]
const UPDATE_DOCS: &str = "KILN_UPDATE_DOCS=1 cargo test -p kiln --bin kiln docs_are_current";

/// The generated reference under `docs/`: `README.md` (an index) and `providers/NAME.md` per
/// provider (the text of `kiln schema --provider NAME --format markdown`), as paths relative to
/// `docs/` and their text.
#[cfg(test)]
fn docs(r: &ProviderRegistry) -> Result<Vec<(String, String)>, Diagnostic> {
    use kiln_views::View;
    let note = format!(
        "<!-- Generated from the providers' schemas: do not edit. Regenerate with `{UPDATE_DOCS}` (with the default features). -->\n\n"
    );
    let mut files = Vec::new();
    let mut index = format!(
        "{note}# kiln reference\n\n\
         Every kind, data source and provider block of the providers built into kiln, with their \
         arguments and attributes, generated from the providers' schemas. `kiln schema [KIND] \
         [--provider NAME]` prints the same reference for the kiln you run (`--format markdown`, \
         or `--json`).\n\n\
         The portable kinds (`{}`) mean the same on every provider that has them; a block without \
         `provider =` uses `local`.\n\n\
         | Provider | Kinds | Data sources |\n|---|---|---|\n",
        PORTABLE_KINDS.join("`, `")
    );
    for name in r.names() {
        let reference = select(r, None, Some(name))?;
        let page = format!("providers/{name}.md");
        files.push((page.clone(), format!("{note}{}", reference.markdown())));
        let links = |kinds: &[KindReference]| -> String {
            kinds.iter().map(|k| format!("[`{0}`]({page}#{0})", k.name)).collect::<Vec<_>>().join(", ")
        };
        let p = &reference.providers[0];
        index.push_str(&format!("| [`{name}`]({page}) | {} | {} |\n", links(&p.resources), links(&p.data_sources)));
    }
    files.insert(0, ("README.md".to_string(), index));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_several_providers_have_is_shown_for_each_or_for_the_one_asked_for() {
        let r = crate::commands::registry();
        let all = select(&r, Some("job"), None).expect("job exists");
        let names: Vec<&str> = all.providers.iter().map(|p| p.name).collect();
        assert!(names.contains(&"local") && names.len() == r.names().filter(|n| r.schema(n).unwrap().kinds.contains_key("job")).count());
        assert!(all.providers.iter().all(|p| p.config.is_none() && p.resources.len() == 1 && p.resources[0].portable));
        let one = select(&r, Some("job"), Some("local")).expect("local has job");
        assert_eq!(one.providers.len(), 1);
        let whole = select(&r, None, Some("local")).expect("local");
        assert!(whole.providers[0].config.is_some() && !whole.providers[0].data_sources.is_empty());
    }

    #[test]
    fn an_unknown_kind_or_provider_lists_what_exists() {
        let r = crate::commands::registry();
        let e = select(&r, Some("jbo"), None).err().expect("no kind jbo");
        assert_eq!(e.code, "E-KIND-UNKNOWN");
        let hint = e.hint.clone().unwrap_or_default();
        assert!(hint.starts_with("did you mean `job`? ") && hint.contains("local: ") && hint.contains("machine (data source)"), "{hint}");
        let e = select(&r, Some("record"), Some("local")).err().expect("local has no record");
        assert!(e.hint.clone().unwrap_or_default().contains("`record` is kiln's"), "{:?}", e.hint);
        let e = select(&r, None, Some("nope")).err().expect("no provider nope");
        assert_eq!(e.code, "E-PROVIDER-UNKNOWN");
        assert!(e.hint.clone().unwrap_or_default().contains("kiln, local"), "{:?}", e.hint);
    }

    /// The reference has no blank description: every kind, data source, provider block
    /// argument, attribute and nested block of every provider built in says what it is.
    #[test]
    fn every_kind_attribute_and_block_has_a_description() {
        fn walk(j: &serde_json::Value, path: &str, out: &mut Vec<String>) {
            for (n, a) in j["attributes"].as_object().into_iter().flatten() {
                if a["description"].as_str().unwrap_or_default().trim().is_empty() {
                    out.push(format!("{path}.{n}"));
                }
            }
            for (n, b) in j["block_types"].as_object().into_iter().flatten() {
                if b["description"].as_str().unwrap_or_default().trim().is_empty() {
                    out.push(format!("{path}.{n} (block)"));
                }
                walk(&b["block"], &format!("{path}.{n}"), out);
            }
        }
        use kiln_views::View;
        let r = crate::commands::registry();
        let j = select(&r, None, None).expect("every provider").json();
        let mut missing = Vec::new();
        for (p, s) in j["provider_schemas"].as_object().expect("providers") {
            walk(&s["provider"], &format!("provider {p}"), &mut missing);
            for (section, what) in [("resource_schemas", "resource"), ("data_source_schemas", "data")] {
                for (k, ks) in s[section].as_object().expect("kinds") {
                    if ks["description"].as_str().unwrap_or_default().trim().is_empty() {
                        missing.push(format!("{what} {k} ({p})"));
                    }
                    walk(&ks["block"], &format!("{what} {k} ({p})"), &mut missing);
                }
            }
        }
        assert!(missing.is_empty(), "without a description in the schema (kiln schema and docs/ show it blank):\n{}", missing.join("\n"));
    }

    /// `docs/` is what the schemas generate; `KILN_UPDATE_DOCS=1` rewrites it.
    #[test]
    #[allow(clippy::print_stderr)]
    fn docs_are_current() {
        if !cfg!(all(feature = "aws", feature = "onprem", feature = "slurm")) {
            eprintln!("docs_are_current: skipped: docs/ is generated with every provider (the default features aws, onprem, slurm)");
            return;
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        let update = std::env::var_os("KILN_UPDATE_DOCS").is_some();
        let files = docs(&crate::commands::registry()).expect("every provider has a reference");
        let mut stale = Vec::new();
        for (path, text) in &files {
            let file = root.join(path);
            let old = std::fs::read_to_string(&file).unwrap_or_default();
            if &old == text {
                continue;
            }
            if update {
                std::fs::create_dir_all(file.parent().expect("a folder")).expect("create docs/");
                std::fs::write(&file, text).expect("write docs/");
            } else {
                let diff = similar::TextDiff::from_lines(&old, text);
                stale.push(diff.unified_diff().context_radius(2).header(&format!("docs/{path}"), "generated").to_string());
            }
        }
        // A page no provider generates any more (a provider gone or renamed).
        let generated: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        for entry in std::fs::read_dir(root.join("providers")).into_iter().flatten().flatten() {
            let path = format!("providers/{}", entry.file_name().to_string_lossy());
            if !generated.contains(&path.as_str()) {
                if update {
                    std::fs::remove_file(entry.path()).expect("remove a stale page");
                } else {
                    stale.push(format!("docs/{path}: no provider generates it"));
                }
            }
        }
        assert!(
            stale.is_empty(),
            "docs/ is not what the providers' schemas generate:\n{}\nregenerate it with `{UPDATE_DOCS}`",
            stale.join("\n")
        );
    }
}
