//! `kiln schema`: a reference of the providers' kinds built from their schemas (attributes with
//! type, required/optional/computed, default, forces replacement, sensitive, description; nested
//! blocks), and the markdown of `docs/providers/*.md`. The JSON follows Terraform's
//! `providers schema -json` (`provider_schemas`, `resource_schemas`, `data_source_schemas`,
//! `block.attributes`, `block.block_types`, `nesting_mode`), with kiln's type syntax as text.

use std::collections::BTreeMap;
use std::fmt::Write;

use kiln_schema::{Attribute, Block, Body, KindSchema, Nesting};
use serde::Serialize;

use crate::markdown::{cell, code};
use crate::FORMAT_VERSION;

/// What to show: one entry per provider, in order, each with the parts asked for.
pub struct Reference<'a> {
    pub providers: Vec<ProviderReference<'a>>,
}

/// One provider's part of a reference.
pub struct ProviderReference<'a> {
    pub name: &'a str,
    /// Its `provider` block's schema; `None` when not shown (a reference of one kind).
    pub config: Option<&'a Body>,
    pub resources: Vec<KindReference<'a>>,
    pub data_sources: Vec<KindReference<'a>>,
}

/// One kind (or data source) of a provider.
pub struct KindReference<'a> {
    pub name: &'a str,
    pub schema: &'a KindSchema,
    /// A portable kind (`bucket`, `cluster`, `job`, `spot_pool`): it means the same on every
    /// provider that has it.
    pub portable: bool,
}

/// `kiln schema --json` (schema: `schemas/json/schema-view.schema.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SchemaView {
    pub format_version: &'static str,
    pub provider_schemas: BTreeMap<String, ProviderSchemaView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProviderSchemaView {
    /// The `provider` block; `null` when a reference of one kind leaves it out.
    pub provider: Option<BlockView>,
    pub resource_schemas: BTreeMap<String, KindView>,
    pub data_source_schemas: BTreeMap<String, KindView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindView {
    pub description: &'static str,
    pub portable: bool,
    /// Objects of this kind live only in kiln's state (like `record`).
    pub state_only: bool,
    pub block: BlockView,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlockView {
    pub attributes: BTreeMap<String, AttributeView>,
    pub block_types: BTreeMap<String, BlockTypeView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttributeView {
    /// In kiln's type syntax: `string`, `list(string)`, `map(number)`, `any`, ...
    #[serde(rename = "type")]
    pub ty: String,
    pub description: &'static str,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    /// Changing it destroys and recreates the object.
    pub force_new: bool,
    /// The value used when the configuration leaves it out; `null` when none.
    pub default: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlockTypeView {
    /// `single` (at most one block, an object) or `list` (any number, a list of objects).
    pub nesting_mode: &'static str,
    pub description: &'static str,
    pub min_items: usize,
    pub max_items: Option<usize>,
    pub force_new: bool,
    pub block: BlockView,
}

fn attribute_view(a: &Attribute) -> AttributeView {
    AttributeView {
        ty: a.ty.to_string(),
        description: a.description,
        required: a.required,
        optional: a.optional,
        computed: a.computed,
        sensitive: a.sensitive,
        force_new: a.force_new,
        default: a.default.as_ref().map(|d| if a.sensitive { serde_json::Value::Null } else { d.to_json() }),
    }
}

fn block_view(b: &Body) -> BlockView {
    BlockView {
        attributes: b.attributes.iter().map(|(n, a)| (n.clone(), attribute_view(a))).collect(),
        block_types: b
            .blocks
            .iter()
            .map(|(n, blk)| {
                let v = BlockTypeView {
                    nesting_mode: match blk.nesting {
                        Nesting::Single => "single",
                        Nesting::List => "list",
                    },
                    description: blk.description,
                    min_items: blk.min_items,
                    max_items: blk.max_items,
                    force_new: blk.force_new,
                    block: block_view(&blk.body),
                };
                (n.clone(), v)
            })
            .collect(),
    }
}

fn kind_view(k: &KindReference) -> KindView {
    KindView { description: k.schema.description, portable: k.portable, state_only: k.schema.state_only, block: block_view(&k.schema.body) }
}

impl Reference<'_> {
    pub fn view(&self) -> SchemaView {
        let provider_schemas = self
            .providers
            .iter()
            .map(|p| {
                let v = ProviderSchemaView {
                    provider: p.config.map(block_view),
                    resource_schemas: p.resources.iter().map(|k| (k.name.to_string(), kind_view(k))).collect(),
                    data_source_schemas: p.data_sources.iter().map(|k| (k.name.to_string(), kind_view(k))).collect(),
                };
                (p.name.to_string(), v)
            })
            .collect();
        SchemaView { format_version: FORMAT_VERSION, provider_schemas }
    }
}

const PORTABLE: &str = "A portable kind: it means the same on every provider that has it; `provider = NAME` chooses one.";

/// What an argument is: `required`, `optional, default 10`, `forces replacement`, `sensitive`.
fn notes(a: &Attribute) -> String {
    let mut n: Vec<String> = Vec::new();
    if a.required {
        n.push("required".into());
    } else if a.optional && a.computed {
        n.push("optional (computed when left out)".into());
    } else if a.optional {
        n.push("optional".into());
    }
    if let Some(d) = &a.default {
        n.push(if a.sensitive { "default (sensitive value)".into() } else { format!("default {d}") });
    }
    if a.force_new {
        n.push("forces replacement".into());
    }
    if a.sensitive {
        n.push("sensitive".into());
    }
    n.join(", ")
}

/// How many blocks: `at most one`, `exactly one`, `any number`, `1 to 4`, ...
fn count(b: &Block) -> String {
    let (min, max) = match b.nesting {
        Nesting::Single => (b.min_items.min(1), Some(1)),
        Nesting::List => (b.min_items, b.max_items),
    };
    let mut s = match (min, max) {
        (0, Some(1)) => "at most one".to_string(),
        (1, Some(1)) => "exactly one".to_string(),
        (0, None) => "any number".to_string(),
        (n, None) => format!("at least {n}"),
        (0, Some(m)) => format!("at most {m}"),
        (n, Some(m)) if n == m => format!("exactly {n}"),
        (n, Some(m)) => format!("{n} to {m}"),
    };
    if b.force_new {
        s.push_str(", forces replacement");
    }
    s
}

/// How many blocks a body takes, as a sentence: "At most one `checkpoint` block.", "Any
/// number of `host` blocks; changing them forces replacement."
fn how_many(b: &Block, name: &str) -> String {
    let (min, max) = match b.nesting {
        Nesting::Single => (b.min_items.min(1), Some(1)),
        Nesting::List => (b.min_items, b.max_items),
    };
    let name = code(name);
    let mut s = match (min, max) {
        (0, Some(1)) => format!("At most one {name} block"),
        (1, Some(1)) => format!("Exactly one {name} block"),
        (0, None) => format!("Any number of {name} blocks"),
        (n, None) => format!("At least {n} {name} blocks"),
        (0, Some(m)) => format!("At most {m} {name} blocks"),
        (n, Some(m)) if n == m => format!("Exactly {n} {name} blocks"),
        (n, Some(m)) => format!("From {n} to {m} {name} blocks"),
    };
    if b.force_new {
        s.push_str(if max == Some(1) { "; changing it forces replacement" } else { "; changing them forces replacement" });
    }
    s.push('.');
    s
}

/// Named attributes of a body.
type Named<'a> = Vec<(&'a String, &'a Attribute)>;

/// A body's arguments (what a configuration may set) and its read-only attributes.
fn split(b: &Body) -> (Named<'_>, Named<'_>) {
    b.attributes.iter().partition(|(_, a)| a.required || a.optional)
}

fn human_body(out: &mut String, b: &Body, indent: usize) {
    let pad = " ".repeat(indent);
    let (args, attrs) = split(b);
    if b.attributes.is_empty() && b.blocks.is_empty() {
        let _ = writeln!(out, "{pad}(no arguments)");
    }
    if !args.is_empty() {
        let _ = writeln!(out, "{pad}Arguments:");
        for (n, a) in &args {
            let _ = writeln!(out, "{pad}  {n}: {}, {}", a.ty, notes(a));
            if !a.description.is_empty() {
                let _ = writeln!(out, "{pad}    {}", a.description);
            }
        }
    }
    if !attrs.is_empty() {
        let _ = writeln!(out, "{pad}Attributes (read-only):");
        for (n, a) in &attrs {
            let extra = if a.sensitive { ", sensitive" } else { "" };
            let _ = writeln!(out, "{pad}  {n}: {}{extra}", a.ty);
            if !a.description.is_empty() {
                let _ = writeln!(out, "{pad}    {}", a.description);
            }
        }
    }
    for (n, blk) in &b.blocks {
        let _ = writeln!(out, "{pad}Block {n} ({}):", count(blk));
        if !blk.description.is_empty() {
            let _ = writeln!(out, "{pad}  {}", blk.description);
        }
        human_body(out, &blk.body, indent + 2);
    }
}

fn human_kind(out: &mut String, what: &str, provider: &str, k: &KindReference) {
    let _ = writeln!(out, "{what} \"{}\" (provider {provider})", k.name);
    if !k.schema.description.is_empty() {
        let _ = writeln!(out, "  {}", k.schema.description);
    }
    if k.portable {
        let _ = writeln!(out, "  {PORTABLE}");
    }
    human_body(out, &k.schema.body, 2);
}

fn md_body(out: &mut String, b: &Body, heading: usize, path: &str) {
    let (args, attrs) = split(b);
    if b.attributes.is_empty() && b.blocks.is_empty() {
        out.push_str("No arguments.\n\n");
    }
    if !args.is_empty() {
        out.push_str("| Argument | Type | Notes | Description |\n|---|---|---|---|\n");
        for (n, a) in &args {
            let _ = writeln!(out, "| {} | {} | {} | {} |", code(n), code(&a.ty.to_string()), cell(&notes(a)), cell(a.description));
        }
        out.push('\n');
    }
    if !attrs.is_empty() {
        out.push_str("| Attribute (read-only) | Type | Description |\n|---|---|---|\n");
        for (n, a) in &attrs {
            let desc = if a.sensitive { format!("{} (sensitive)", a.description) } else { a.description.to_string() };
            let _ = writeln!(out, "| {} | {} | {} |", code(n), code(&a.ty.to_string()), cell(desc.trim()));
        }
        out.push('\n');
    }
    for (n, blk) in &b.blocks {
        let full = if path.is_empty() { n.clone() } else { format!("{path}.{n}") };
        let _ = writeln!(out, "{} Block {}\n", "#".repeat(heading.min(6)), code(&full));
        if !blk.description.is_empty() {
            let _ = writeln!(out, "{}\n", blk.description);
        }
        let _ = writeln!(out, "{}\n", how_many(blk, n));
        md_body(out, &blk.body, heading + 1, &full);
    }
}

fn md_kind(out: &mut String, k: &KindReference) {
    let _ = writeln!(out, "### {}\n", code(k.name));
    if !k.schema.description.is_empty() {
        let _ = writeln!(out, "{}\n", k.schema.description);
    }
    if k.portable {
        let _ = writeln!(out, "{PORTABLE}\n");
    }
    md_body(out, &k.schema.body, 4, "");
}

impl crate::View for Reference<'_> {
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self.view()).expect("a schema view serializes")
    }

    /// Each provider's configuration (when shown), kinds and data sources: every argument with
    /// its type and notes, then read-only attributes, then nested blocks, indented.
    fn human(&self) -> String {
        let mut out = String::new();
        for p in &self.providers {
            if let Some(config) = p.config {
                if !out.is_empty() {
                    out.push('\n');
                }
                let _ = writeln!(out, "provider \"{}\"", p.name);
                human_body(&mut out, config, 2);
            }
            for (what, kinds) in [("resource", &p.resources), ("data", &p.data_sources)] {
                for k in kinds {
                    if !out.is_empty() {
                        out.push('\n');
                    }
                    human_kind(&mut out, what, p.name, k);
                }
            }
        }
        out
    }

    /// One `# Provider` section per provider: its configuration, `## Resource kinds` and
    /// `## Data sources`, a `###` heading and tables per kind (the text of `docs/providers/`).
    fn markdown(&self) -> String {
        let mut out = String::new();
        for p in &self.providers {
            if !out.is_empty() {
                out.push('\n');
            }
            let _ = writeln!(out, "# Provider {}\n", code(p.name));
            if let Some(config) = p.config {
                let _ = writeln!(out, "## Provider configuration\n\nThe `provider \"{}\"` block.\n", p.name);
                md_body(&mut out, config, 3, "");
            }
            for (title, kinds) in [("Resource kinds", &p.resources), ("Data sources", &p.data_sources)] {
                if kinds.is_empty() {
                    continue;
                }
                let _ = writeln!(out, "## {title}\n");
                for k in kinds {
                    md_kind(&mut out, k);
                }
            }
        }
        while out.ends_with("\n\n") {
            out.pop();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::View;
    use kiln_value::Type;

    fn schema() -> KindSchema {
        let inner = Body::new().attr("uri", Attribute::required(Type::String, "Where | it goes"));
        let body = Body::new()
            .attr("run", Attribute::required(Type::String, "The command").force_new())
            .attr("grace", Attribute::optional(Type::Number, "Seconds").default(10i64))
            .attr("token", Attribute::optional(Type::String, "A secret").sensitive().default("hunter2"))
            .attr("nodes", Attribute::optional_computed(Type::Number, "How many"))
            .attr("id", Attribute::computed(Type::String, "Its ID"))
            .block(
                "checkpoint",
                Block { nesting: Nesting::Single, body: inner, min_items: 0, max_items: Some(1), force_new: true, description: "Saves" },
            );
        KindSchema::new("A job", body)
    }

    fn reference(s: &KindSchema) -> Reference<'_> {
        Reference {
            providers: vec![ProviderReference {
                name: "p",
                config: None,
                resources: vec![KindReference { name: "job", schema: s, portable: true }],
                data_sources: vec![],
            }],
        }
    }

    #[test]
    fn every_argument_shows_its_type_and_notes_and_a_sensitive_default_is_never_shown() {
        let s = schema();
        let r = reference(&s);
        let h = r.human();
        assert!(h.starts_with("resource \"job\" (provider p)\n  A job\n"), "{h}");
        assert!(h.contains("    run: string, required, forces replacement\n      The command\n"), "{h}");
        assert!(h.contains("    grace: number, optional, default 10\n"), "{h}");
        assert!(h.contains("    nodes: number, optional (computed when left out)\n"), "{h}");
        assert!(h.contains("  Attributes (read-only):\n    id: string\n      Its ID\n"), "{h}");
        assert!(
            h.contains("  Block checkpoint (at most one, forces replacement):\n    Saves\n    Arguments:\n      uri: string, required\n"),
            "{h}"
        );
        let md = r.markdown();
        assert!(md.contains("| `run` | `string` | required, forces replacement | The command |"), "{md}");
        assert!(
            md.contains("#### Block `checkpoint`\n\nSaves\n\nAt most one `checkpoint` block; changing it forces replacement.\n"),
            "{md}"
        );
        assert!(md.contains("| `uri` | `string` | required | Where \\| it goes |"), "{md}");
        let j = r.json();
        assert_eq!(j["provider_schemas"]["p"]["resource_schemas"]["job"]["block"]["attributes"]["grace"]["default"], 10);
        assert_eq!(j["provider_schemas"]["p"]["resource_schemas"]["job"]["block"]["block_types"]["checkpoint"]["nesting_mode"], "single");
        for text in [h, md, j.to_string()] {
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
