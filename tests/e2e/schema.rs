//! `kiln schema [KIND] [--provider P]`: the reference of every kind's attributes, from the
//! providers' schemas, in every format; the generated `docs/` is its markdown.

use crate::plan_view::{conforms, parsed};
use crate::support::{repo_root, Project};

/// `always` and those of `features` (providers of the same name) this binary was built with.
fn with_features(always: &[&'static str], features: &[&'static str]) -> Vec<&'static str> {
    let built = |f: &str| {
        (f == "aws" && cfg!(feature = "aws")) || (f == "onprem" && cfg!(feature = "onprem")) || (f == "slurm" && cfg!(feature = "slurm"))
    };
    always.iter().chain(features.iter().filter(|f| built(f))).copied().collect()
}

#[test]
fn a_kind_several_providers_have_is_shown_for_each_and_needs_no_configuration() {
    let p = Project::empty();
    let out = p.kiln(&["schema", "job"]).ok().stdout();
    assert!(out.starts_with("resource \"job\" (provider "), "{out}");
    for provider in with_features(&["local"], &["aws", "onprem", "slurm"]) {
        assert!(out.contains(&format!("resource \"job\" (provider {provider})\n")), "{provider}: {out}");
    }
    assert!(out.contains("    run: string, required, forces replacement\n"), "{out}");
    assert!(out.contains("  Attributes (read-only):\n"), "{out}");
    assert!(!out.contains("provider \""), "a reference of one kind shows no provider block: {out}");

    let local = p.kiln(&["schema", "job", "--provider", "local"]).ok().stdout();
    assert_eq!(local.matches("resource \"job\"").count(), 1, "{local}");
    assert!(out.contains(&local), "the local part of the reference is the same alone");
}

#[test]
fn the_json_reference_conforms_to_its_schema_and_has_every_provider() {
    let p = Project::empty();
    let j = parsed(&p.kiln(&["schema", "--json"]).ok().stdout());
    conforms("schema-view.schema.json", &j);
    let providers = j["provider_schemas"].as_object().expect("providers");
    for name in with_features(&["kiln", "local"], &["aws", "onprem", "slurm"]) {
        assert!(providers[name]["provider"].is_object(), "{name}'s provider block");
    }
    let run = &j["provider_schemas"]["local"]["resource_schemas"]["job"]["block"]["attributes"]["run"];
    assert_eq!((run["type"].as_str(), run["required"].as_bool(), run["force_new"].as_bool()), (Some("string"), Some(true), Some(true)));
    assert_eq!(j["provider_schemas"]["local"]["resource_schemas"]["job"]["portable"], true);
    assert_eq!(j["provider_schemas"]["kiln"]["resource_schemas"]["record"]["state_only"], true);

    let one = parsed(&p.kiln(&["schema", "record", "--format", "json"]).ok().stdout());
    conforms("schema-view.schema.json", &one);
    assert_eq!(one["provider_schemas"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()), Some(vec!["kiln".to_string()]));
    assert!(one["provider_schemas"]["kiln"]["provider"].is_null());
}

#[test]
fn an_unknown_kind_or_provider_is_a_diagnostic_listing_what_exists() {
    let p = Project::empty();
    let r = p.kiln(&["schema", "jbo"]).code_is(1);
    let err = r.stderr();
    assert!(err.contains("E-KIND-UNKNOWN") && err.contains("no provider has a kind `jbo`"), "{err}");
    assert!(err.contains("local: ") && err.contains("machine (data source)"), "{err}");
    assert!(r.stdout().is_empty());

    let err = p.kiln(&["schema", "record", "--provider", "local"]).code_is(1).stderr();
    assert!(err.contains("provider `local` has no kind `record`") && err.contains("`record` is kiln's"), "{err}");

    let err = p.kiln(&["schema", "--provider", "nope"]).code_is(1).stderr();
    assert!(err.contains("E-PROVIDER-UNKNOWN") && err.contains("no provider `nope`"), "{err}");
}

/// docs/providers/NAME.md is `kiln schema --provider NAME --format markdown` after its
/// generated-file note (the unit test `docs_are_current` keeps docs/ in step with the schemas).
#[cfg(all(feature = "aws", feature = "onprem", feature = "slurm"))]
#[test]
fn the_docs_pages_are_the_markdown_reference() {
    let p = Project::empty();
    for name in ["kiln", "local", "aws", "onprem", "slurm"] {
        let md = p.kiln(&["schema", "--provider", name, "--format", "markdown"]).ok().stdout();
        let page = std::fs::read_to_string(repo_root().join(format!("docs/providers/{name}.md"))).expect("a docs page per provider");
        let body = page.split_once("-->\n\n").map(|(_, b)| b).expect("the generated-file note");
        assert_eq!(body, md, "docs/providers/{name}.md");
        assert!(md.starts_with(&format!("# Provider `{name}`\n")), "{md}");
    }
}
