//! Reading files and turning hcl-edit's syntax tree into the configuration model.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::structure::{Block, Structure};
use hcl_edit::Span as _;
use kiln_addrs::Mode;
use kiln_diag::{edit_distance, Diagnostic, Diagnostics, FileId, Sources, Span};
use kiln_eval::Expr;
use kiln_value::Type;

use crate::model::*;
use crate::types::parse_type;

const EXT: &str = ".kiln.hcl";

/// The blocks a configuration file holds at its top level.
const TOP_LEVEL_BLOCKS: &[&str] = &["kiln", "variable", "locals", "output", "provider", "resource", "data", "module", "policy", "catalog"];

/// Loads the root module in `dir` and every local module it calls.
pub fn load(dir: &Path) -> (Option<Config>, Diagnostics) {
    let mut sources = Sources::new();
    let mut diags = Diagnostics::new();
    let root = load_node(dir, Vec::new(), &mut sources, &mut diags, &mut Vec::new());
    if root.module.resources.is_empty()
        && root.module.variables.is_empty()
        && root.module.outputs.is_empty()
        && root.module.module_calls.is_empty()
        && sources.iter().next().is_none()
        && !diags.has_errors()
    {
        diags.push(
            Diagnostic::error("E-CONFIG-EMPTY", format!("no `*{EXT}` files in `{}`", dir.display()))
                .hint("run kiln in a directory with configuration files, or create one with `kiln init`"),
        );
    }
    (Some(Config { root, sources }), diags)
}

fn load_node(dir: &Path, path: Vec<String>, sources: &mut Sources, diags: &mut Diagnostics, stack: &mut Vec<PathBuf>) -> ModuleNode {
    let mut module = load_module_dir(dir, sources, diags);
    if !path.is_empty() {
        crate::policy::root_only(&mut module, &path, diags);
    }
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    stack.push(canonical);
    let mut children = BTreeMap::new();
    for (name, call) in &module.module_calls {
        // Joined and cleaned lexically, like Terraform does with local module paths.
        let child_dir = clean_path(&dir.join(&call.source));
        let canon = child_dir.canonicalize().unwrap_or_else(|_| child_dir.clone());
        let address = path.iter().chain([name]).map(|m| format!("module.{m}")).collect::<Vec<_>>().join(".");
        if stack.contains(&canon) {
            diags.push(
                Diagnostic::error("E-MODULE-CYCLE", format!("module `{name}` calls itself through `{}`", call.source))
                    .at(call.source_span.clone(), "this source leads back to a module being loaded")
                    .address(&address)
                    .hint("a module cannot call itself, directly or through the modules it calls"),
            );
            continue;
        }
        if !child_dir.is_dir() {
            diags.push(
                Diagnostic::error(
                    "E-MODULE-SOURCE",
                    format!("module `{name}`: directory `{}` not found", display_path(&child_dir).display()),
                )
                .at(call.source_span.clone(), "source must be a local directory")
                .address(&address)
                .hint("use a path relative to this file's directory, starting with ./ or ../"),
            );
            continue;
        }
        let mut child_path = path.clone();
        child_path.push(name.clone());
        children.insert(name.clone(), load_node(&child_dir, child_path, sources, diags, stack));
    }
    stack.pop();
    ModuleNode { path, module, children }
}

/// Loads the `*.kiln.hcl` files of one directory, in name order.
pub fn load_module_dir(dir: &Path, sources: &mut Sources, diags: &mut Diagnostics) -> Module {
    let mut module = Module::new(dir.to_path_buf());
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(EXT)))
            .collect(),
        Err(e) => {
            diags.push(Diagnostic::error("E-CONFIG-DIR", format!("cannot read directory `{}`: {e}", dir.display())));
            return module;
        }
    };
    files.sort();
    for path in files {
        match read_config_file(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => {
                    let shown = display_path(&path);
                    let file = sources.add(shown, text);
                    parse_file(file, sources.text(file), &mut module, diags);
                }
                Err(e) => diags.push(not_utf8(&path, e, sources)),
            },
            Err(e) => diags.push(
                Diagnostic::error("E-CONFIG-READ", format!("cannot read `{}`: {e}", display_path(&path).display()))
                    .hint("configuration files must be regular files that kiln can read"),
            ),
        }
    }
    module
}

/// The bytes of a configuration file. Only regular files (or links to them) are read: a FIFO
/// would block the read until something writes to it, and a device may never end.
pub fn read_config_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "it is a directory" } else { "it is not a regular file (a FIFO, socket or device)" };
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, what));
    }
    std::fs::read(path)
}

/// A file that is not UTF-8: the diagnostic points at the first bad byte. The file is kept in
/// `sources` (bad bytes replaced) so the location can be shown; it is not parsed.
fn not_utf8(path: &Path, e: std::string::FromUtf8Error, sources: &mut Sources) -> Diagnostic {
    let at = e.utf8_error().valid_up_to();
    let bad = e.as_bytes()[at];
    let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
    let file = sources.add(display_path(path), text);
    // The prefix before the bad byte is unchanged by the replacement, so `at` is still its offset;
    // the replacement character is 3 bytes.
    Diagnostic::error(
        "E-CONFIG-UTF8",
        format!("`{}` is not valid UTF-8: byte 0x{bad:02x} cannot start or continue a character", display_path(path).display()),
    )
    .at(Span::new(file, at..at + '\u{FFFD}'.len_utf8()), "invalid UTF-8 here")
    .hint("configuration files must be UTF-8 text; re-save the file as UTF-8")
}

/// `a/./b/../c` as `a/c`, without touching the file system.
fn clean_path(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn display_path(p: &Path) -> PathBuf {
    std::env::current_dir().ok().and_then(|cwd| p.strip_prefix(&cwd).ok().map(Path::to_path_buf)).unwrap_or_else(|| p.to_path_buf())
}

/// Parses one file's text into `module`.
pub fn parse_file(file: FileId, text: &str, module: &mut Module, diags: &mut Diagnostics) {
    let (body, duplicates) = parse_body_recovering(text);
    for (key, range) in &duplicates {
        let mut d = Diagnostic::error("E-DUPLICATE", format!("attribute `{key}` is set twice"))
            .at(Span::new(file, range.clone()), "second value")
            .hint("remove one of them");
        if let Some(first) = body.as_ref().ok().and_then(|b| first_attr_before(b, range.start, key)) {
            d = d.also(Span::new(file, first), "first value");
        }
        diags.push(d);
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let loc = e.location();
            let mut start = loc.offset().min(text.len());
            // One character (not one byte) from the error position, which may fall inside one.
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let end = text[start..].chars().next().map_or(start, |c| start + c.len_utf8());
            diags.push(
                Diagnostic::error("E-SYNTAX", format!("syntax error: {}", e.message()))
                    .at(Span::new(file, start..end), e.message())
                    .hint("fix the HCL syntax at the marked position"),
            );
            return;
        }
    };
    let p = Parser { file, text };
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => diags.push(
                Diagnostic::error("E-TOPLEVEL-ATTR", format!("unexpected attribute `{}` at the top level", a.key.as_str()))
                    .or_at(p.span(&a.key))
                    .hint("put values in a `locals { ... }` block, or in a resource block"),
            ),
            Structure::Block(b) => p.block(b, module, diags),
        }
    }
}

/// An attribute set a second time in one body: its name and the span of that second key.
type Duplicate = (String, Range<usize>);

/// Parses a file. hcl-edit rejects an attribute set twice in one body as a syntax error, which
/// would hide every other problem of the file; each such attribute that fits on its line is
/// commented out instead (same length, so every span stays valid), returned as a duplicate, and
/// the file is parsed again.
fn parse_body_recovering(text: &str) -> (Result<hcl_edit::structure::Body, hcl_edit::parser::Error>, Vec<Duplicate>) {
    let mut work = std::borrow::Cow::Borrowed(text);
    let mut duplicates = Vec::new();
    loop {
        let err = match hcl_edit::parser::parse_body(&work) {
            Ok(b) => return (Ok(b), duplicates),
            Err(e) => e,
        };
        let off = err.location().offset();
        // The parser's offset may fall inside a character (or past the end) of odd input.
        let Some(rest) = work.get(off..) else { return (Err(err), duplicates) };
        let key = {
            let n = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')).unwrap_or(rest.len());
            &rest[..n]
        };
        let line_end = rest.find('\n').map_or(work.len(), |i| off + i);
        let one_line =
            hcl_edit::parser::parse_body(work[off..line_end].trim_end()).is_ok_and(|b| b.len() == 1 && b.get_attribute(key).is_some());
        if !err.message().contains("redefined attribute") || key.is_empty() || !one_line || duplicates.len() >= 1000 {
            return (Err(err), duplicates);
        }
        duplicates.push((key.to_string(), off..off + key.len()));
        let first = key.chars().next().map_or(1, char::len_utf8);
        let mut owned = work.into_owned();
        owned.replace_range(off..off + first, &format!("#{}", " ".repeat(first - 1)));
        work = std::borrow::Cow::Owned(owned);
    }
}

/// The key span of the attribute named `key` in the body that encloses byte `offset`.
fn first_attr_before(body: &hcl_edit::structure::Body, offset: usize, key: &str) -> Option<Range<usize>> {
    for b in body.blocks() {
        if b.span().is_some_and(|r| r.contains(&offset)) {
            return first_attr_before(&b.body, offset, key);
        }
    }
    body.attributes().find(|a| a.key.as_str() == key).and_then(|a| a.key.span())
}

pub(crate) struct Parser<'t> {
    pub(crate) file: FileId,
    /// The file's text: expressions keep it for Terraform's exact `<<-` heredoc handling.
    text: &'t str,
}

impl Parser<'_> {
    pub(crate) fn span(&self, x: &impl hcl_edit::Span) -> Option<Span> {
        x.span().map(|r| Span::new(self.file, r))
    }

    /// Span of a block's header (ident and labels), for "declared here" labels.
    pub(crate) fn header_span(&self, b: &Block) -> Span {
        let start = b.ident.span().map_or(0, |r| r.start);
        let end = b.labels.last().and_then(|l| l.span()).or_else(|| b.ident.span()).map_or(start, |r| r.end);
        Span::new(self.file, start..end)
    }

    fn expr(&self, e: &Expression) -> Expr {
        Expr::with_source(self.file, e.clone(), self.text)
    }

    /// Reports labels on a block that takes none (`locals`, `kiln`).
    pub(crate) fn no_labels(&self, b: &Block, diags: &mut Diagnostics) {
        if let Some(first) = b.labels.first() {
            let ident = b.ident.as_str();
            let start = first.span().map_or(0, |r| r.start);
            let end = b.labels.last().and_then(|l| l.span()).map_or(start, |r| r.end);
            diags.push(
                Diagnostic::error("E-BLOCK-LABELS", format!("a `{ident}` block takes no labels, found {}", b.labels.len()))
                    .at(Span::new(self.file, start..end), "unexpected label")
                    .hint(format!("write `{ident} {{ ... }}`")),
            );
        }
    }

    pub(crate) fn labels(&self, b: &Block, want: &[&str], diags: &mut Diagnostics) -> Option<Vec<String>> {
        let labels: Vec<String> = b.labels.iter().map(|l| l.as_str().to_string()).collect();
        if labels.len() != want.len() {
            let ident = b.ident.as_str();
            let example = want.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" ");
            diags.push(
                Diagnostic::error(
                    "E-BLOCK-LABELS",
                    format!("{} `{ident}` block needs {} label(s), found {}", article(ident), want.len(), labels.len()),
                )
                .at(self.header_span(b), "here")
                .hint(format!("write `{ident} {example} {{ ... }}`")),
            );
            return None;
        }
        for l in &labels {
            if !valid_name(l) {
                diags.push(
                    Diagnostic::error("E-NAME", format!("invalid name `{l}`"))
                        .at(self.header_span(b), "here")
                        .hint("names start with a letter or underscore and contain letters, digits, underscores and dashes"),
                );
                return None;
            }
        }
        Some(labels)
    }

    fn block(&self, b: &Block, module: &mut Module, diags: &mut Diagnostics) {
        match b.ident.as_str() {
            "kiln" | "terraform" => {
                self.no_labels(b, diags);
                self.kiln_block(b, module, diags)
            }
            "variable" => {
                if let Some(l) = self.labels(b, &["NAME"], diags) {
                    let v = self.variable(&l[0], b, diags);
                    self.insert_unique(&mut module.variables, l[0].clone(), v, |v| &v.span, "variable", diags);
                }
            }
            "locals" => {
                self.no_labels(b, diags);
                for a in b.body.attributes() {
                    let name = a.key.as_str().to_string();
                    let span = self.span(&a.key).unwrap_or_else(|| self.header_span(b));
                    let local = Local { name: name.clone(), expr: self.expr(&a.value), span };
                    self.insert_unique(&mut module.locals, name, local, |l| &l.span, "local value", diags);
                }
                for nb in b.body.blocks() {
                    diags.push(
                        Diagnostic::error("E-LOCALS-BLOCK", "`locals` holds attributes only").at(self.header_span(nb), "unexpected block"),
                    );
                }
            }
            "output" => {
                if let Some(l) = self.labels(b, &["NAME"], diags) {
                    if let Some(o) = self.output(&l[0], b, diags) {
                        self.insert_unique(&mut module.outputs, l[0].clone(), o, |o| &o.span, "output", diags);
                    }
                }
            }
            "provider" => {
                if let Some(l) = self.labels(b, &["NAME"], diags) {
                    let mut body = self.body(&b.body, diags);
                    let alias = take_string(&mut body, "alias", diags);
                    let pb = ProviderBlock { name: l[0].clone(), alias, body, span: self.header_span(b) };
                    if let Some(prev) = module.providers.iter().find(|p| p.key() == pb.key()) {
                        diags.push(
                            Diagnostic::error("E-DUPLICATE", format!("provider `{}` is configured twice", pb.key()))
                                .at(pb.span.clone(), "second configuration")
                                .also(prev.span.clone(), "first configuration")
                                .hint("give one of them an `alias = \"...\"` and select it with `provider = NAME.ALIAS`"),
                        );
                    } else {
                        module.providers.push(pb);
                    }
                }
            }
            "resource" | "data" => {
                if let Some(l) = self.labels(b, &["KIND", "NAME"], diags) {
                    let mode = if b.ident.as_str() == "data" { Mode::Data } else { Mode::Managed };
                    let r = self.resource(mode, &l[0], &l[1], b, diags);
                    if let Err(r) = module.add_resource(r) {
                        let prev = module.resource(r.mode, &r.kind, &r.name).expect("the duplicate is indexed");
                        diags.push(
                            Diagnostic::error("E-DUPLICATE", format!("{} `{}.{}` is declared twice", b.ident.as_str(), r.kind, r.name))
                                .at(r.span.clone(), "second declaration")
                                .also(prev.span.clone(), "first declaration")
                                .hint("rename one of them"),
                        );
                    }
                }
            }
            "module" => {
                if let Some(l) = self.labels(b, &["NAME"], diags) {
                    if let Some(m) = self.module_call(&l[0], b, diags) {
                        self.insert_unique(&mut module.module_calls, l[0].clone(), m, |m| &m.span, "module", diags);
                    }
                }
            }
            "policy" => {
                if let Some(l) = self.labels(b, &["NAME"], diags) {
                    let p = self.policy(&l[0], b, diags);
                    self.insert_unique(&mut module.policies, l[0].clone(), p, |p| &p.span, "policy", diags);
                }
            }
            "catalog" => {
                self.no_labels(b, diags);
                self.catalog(b, module, diags);
            }
            other => diags.push(
                Diagnostic::error("E-UNKNOWN-BLOCK", format!("unknown block type `{other}`"))
                    .at(self.header_span(b), "not a kiln block")
                    .hint(suggest(other, TOP_LEVEL_BLOCKS)),
            ),
        }
    }

    pub(crate) fn insert_unique<T>(
        &self,
        map: &mut BTreeMap<String, T>,
        name: String,
        item: T,
        span: impl Fn(&T) -> &Span,
        what: &str,
        diags: &mut Diagnostics,
    ) {
        if let Some(prev) = map.get(&name) {
            diags.push(
                Diagnostic::error("E-DUPLICATE", format!("{what} `{name}` is declared twice"))
                    .at(span(&item).clone(), "second declaration")
                    .also(span(prev).clone(), "first declaration")
                    .hint("rename or remove one of them"),
            );
        } else {
            map.insert(name, item);
        }
    }

    pub(crate) fn body(&self, body: &hcl_edit::structure::Body, diags: &mut Diagnostics) -> Body {
        let mut out = Body::default();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => {
                    let name = a.key.as_str().to_string();
                    let name_span = self.span(&a.key).unwrap_or(Span::new(self.file, 0..0));
                    if let Some(prev) = out.attr(&name) {
                        diags.push(
                            Diagnostic::error("E-DUPLICATE", format!("attribute `{name}` is set twice"))
                                .at(name_span, "second value")
                                .also(prev.name_span.clone(), "first value")
                                .hint("remove one of them"),
                        );
                        continue;
                    }
                    out.attrs.push(Attr { name, expr: self.expr(&a.value), name_span });
                }
                Structure::Block(b) => out.blocks.push(NestedBlock {
                    ident: b.ident.as_str().to_string(),
                    labels: b.labels.iter().map(|l| l.as_str().to_string()).collect(),
                    body: self.body(&b.body, diags),
                    span: self.header_span(b),
                }),
            }
        }
        out
    }

    fn kiln_block(&self, b: &Block, module: &mut Module, diags: &mut Diagnostics) {
        let span = self.header_span(b);
        if let Some(prev) = &module.settings {
            diags.push(
                Diagnostic::error("E-DUPLICATE", "more than one `kiln` block")
                    .at(span, "second block")
                    .also(prev.span.clone(), "first block")
                    .hint("merge them into one"),
            );
            return;
        }
        let mut body = self.body(&b.body, diags);
        let required_version = body.attr("required_version").and_then(|a| {
            let span = a.expr.span().unwrap_or(a.name_span.clone());
            match literal_string(&a.expr) {
                Some(v) => Some((v, span)),
                None => {
                    diags.push(
                        Diagnostic::error("E-LITERAL", "`required_version` must be a literal string")
                            .at(span, "here")
                            .hint("write required_version = \">= 0.1\""),
                    );
                    None
                }
            }
        });
        body.attrs.retain(|a| a.name != "required_version");
        let mut backend = None;
        let mut encryption: Option<Encryption> = None;
        for nb in std::mem::take(&mut body.blocks) {
            match (nb.ident.as_str(), nb.labels.as_slice()) {
                ("encryption", []) => match &encryption {
                    Some(prev) => diags.push(
                        Diagnostic::error("E-DUPLICATE", "more than one `encryption` block in `kiln`")
                            .at(nb.span, "second block")
                            .also(prev.span.clone(), "first block")
                            .hint("merge them into one"),
                    ),
                    None => encryption = Some(Encryption { body: nb.body, span: nb.span }),
                },
                ("encryption", _) => diags.push(
                    Diagnostic::error("E-BLOCK-LABELS", "an `encryption` block takes no labels")
                        .at(nb.span, "here")
                        .hint("write `encryption { key_provider \"passphrase\" { passphrase = var.key } method \"aes_gcm\" {} }`"),
                ),
                ("backend", [kind]) => backend = Some(Backend { kind: kind.clone(), body: nb.body, span: nb.span }),
                ("backend", _) => diags.push(
                    Diagnostic::error("E-BLOCK-LABELS", "a `backend` block needs one label, its type")
                        .at(nb.span, "here")
                        .hint("write `backend \"local\" { path = \".kiln/state.json\" }`"),
                ),
                ("required_providers", _) => {}
                (other, _) => diags.push(
                    Diagnostic::error("E-UNKNOWN-BLOCK", format!("unknown block `{other}` in `kiln`"))
                        .at(nb.span, "here")
                        .hint("the `kiln` block holds `required_version`, one `backend` block and one `encryption` block"),
                ),
            }
        }
        for a in &body.attrs {
            diags.push(
                Diagnostic::error("E-UNKNOWN-ATTR", format!("unknown attribute `{}` in `kiln`", a.name))
                    .at(a.name_span.clone(), "here")
                    .hint("the `kiln` block holds `required_version`, one `backend` block and one `encryption` block"),
            );
        }
        module.settings = Some(KilnBlock { required_version, backend, encryption, span });
    }

    fn variable(&self, name: &str, b: &Block, diags: &mut Diagnostics) -> Variable {
        let body = self.body(&b.body, diags);
        let mut v = Variable {
            name: name.to_string(),
            ty: Type::Any,
            default: None,
            description: None,
            sensitive: false,
            nullable: true,
            validations: Vec::new(),
            span: self.header_span(b),
        };
        for a in &body.attrs {
            match a.name.as_str() {
                "type" => match parse_type(self.file, &a.expr.node) {
                    Ok(t) => v.ty = t,
                    Err(d) => diags.push(d.address(format!("var.{name}"))),
                },
                "default" => v.default = Some(a.expr.clone()),
                "description" => v.description = self.literal_text(a, diags),
                "sensitive" => v.sensitive = self.literal_bool(a, diags),
                "nullable" => v.nullable = self.literal_bool(a, diags),
                other => diags.push(self.unknown_attr(a, other, "variable", &["type", "default", "description", "sensitive", "nullable"])),
            }
        }
        for nb in &body.blocks {
            if nb.ident == "validation" {
                match (nb.body.attr("condition"), nb.body.attr("error_message")) {
                    (Some(c), Some(m)) => {
                        v.validations.push(Validation { condition: c.expr.clone(), error_message: m.expr.clone(), span: nb.span.clone() })
                    }
                    _ => diags.push(
                        Diagnostic::error("E-VALIDATION", "a `validation` block needs `condition` and `error_message`")
                            .at(nb.span.clone(), "here")
                            .address(format!("var.{name}")),
                    ),
                }
            } else {
                diags.push(
                    Diagnostic::error("E-UNKNOWN-BLOCK", format!("unknown block `{}` in a variable", nb.ident))
                        .at(nb.span.clone(), "here")
                        .address(format!("var.{name}"))
                        .hint(suggest(&nb.ident, &["validation"])),
                );
            }
        }
        v
    }

    fn output(&self, name: &str, b: &Block, diags: &mut Diagnostics) -> Option<Output> {
        let body = self.body(&b.body, diags);
        let span = self.header_span(b);
        let Some(value) = body.attr("value") else {
            diags.push(
                Diagnostic::error("E-OUTPUT-VALUE", format!("output `{name}` has no `value`"))
                    .at(span, "here")
                    .hint("add `value = EXPRESSION`"),
            );
            return None;
        };
        let mut o =
            Output { name: name.to_string(), value: value.expr.clone(), sensitive: false, description: None, depends_on: Vec::new(), span };
        for a in &body.attrs {
            match a.name.as_str() {
                "value" => {}
                "sensitive" => o.sensitive = self.literal_bool(a, diags),
                "description" => o.description = self.literal_text(a, diags),
                "depends_on" => o.depends_on = self.depends_on(a, &format!("output.{name}"), diags),
                other => diags.push(self.unknown_attr(a, other, "output", &["value", "sensitive", "description", "depends_on"])),
            }
        }
        for nb in &body.blocks {
            diags.push(
                Diagnostic::error("E-UNKNOWN-BLOCK", format!("unexpected block `{}` in an output", nb.ident))
                    .at(nb.span.clone(), "here")
                    .address(format!("output.{name}"))
                    .hint("an output holds value, sensitive, description and depends_on"),
            );
        }
        Some(o)
    }

    fn resource(&self, mode: Mode, kind: &str, name: &str, b: &Block, diags: &mut Diagnostics) -> Resource {
        let mut body = self.body(&b.body, diags);
        let mut r = Resource {
            mode,
            kind: kind.to_string(),
            name: name.to_string(),
            count: None,
            for_each: None,
            provider: None,
            depends_on: Vec::new(),
            lifecycle: Lifecycle::default(),
            body: Body::default(),
            span: self.header_span(b),
        };
        let addr = if mode == Mode::Data { format!("data.{kind}.{name}") } else { format!("{kind}.{name}") };
        let mut rest = Vec::new();
        for a in std::mem::take(&mut body.attrs) {
            match a.name.as_str() {
                "count" => r.count = Some(a.expr),
                "for_each" => r.for_each = Some(a.expr),
                "depends_on" => r.depends_on = self.depends_on(&a, &addr, diags),
                "provider" => r.provider = self.provider_ref(&a, diags),
                _ => rest.push(a),
            }
        }
        if let (Some(c), Some(f)) = (&r.count, &r.for_each) {
            diags.push(
                Diagnostic::error("E-COUNT-FOREACH", "`count` and `for_each` cannot be used together")
                    .or_at(c.span())
                    .also(f.span().unwrap_or(r.span.clone()), "for_each here")
                    .address(&addr)
                    .hint("keep one of them"),
            );
        }
        let mut blocks = Vec::new();
        let mut lifecycle_span: Option<Span> = None;
        for nb in std::mem::take(&mut body.blocks) {
            if nb.ident == "lifecycle" {
                if let Some(first) = &lifecycle_span {
                    diags.push(
                        Diagnostic::error("E-DUPLICATE", "more than one `lifecycle` block")
                            .at(nb.span.clone(), "second block")
                            .also(first.clone(), "first block")
                            .address(&addr)
                            .hint("merge them into one"),
                    );
                    continue;
                }
                lifecycle_span = Some(nb.span.clone());
                r.lifecycle = self.lifecycle(&nb, &addr, diags);
            } else {
                blocks.push(nb);
            }
        }
        r.body = Body { attrs: rest, blocks };
        r
    }

    fn lifecycle(&self, nb: &NestedBlock, addr: &str, diags: &mut Diagnostics) -> Lifecycle {
        let mut l = Lifecycle::default();
        for a in &nb.body.attrs {
            match a.name.as_str() {
                "prevent_destroy" => l.prevent_destroy = self.literal_bool(a, diags),
                "create_before_destroy" => l.create_before_destroy = self.literal_bool(a, diags),
                "ignore_changes" => match &*a.expr.node {
                    Expression::Variable(v) if v.as_str() == "all" => l.ignore_all_changes = true,
                    Expression::Array(items) => {
                        for i in items.iter() {
                            match i {
                                Expression::Variable(v) => l.ignore_changes.push(v.as_str().to_string()),
                                Expression::String(s) => l.ignore_changes.push(s.as_str().to_string()),
                                other => diags.push(
                                    Diagnostic::error("E-IGNORE-CHANGES", "ignore_changes lists attribute names")
                                        .or_at(self.span(other))
                                        .address(addr)
                                        .hint("write ignore_changes = [tags, input] or ignore_changes = all"),
                                ),
                            }
                        }
                    }
                    _ => diags.push(
                        Diagnostic::error("E-IGNORE-CHANGES", "ignore_changes must be a list of attribute names or `all`")
                            .or_at(a.expr.span())
                            .address(addr)
                            .hint("write ignore_changes = [tags, input] or ignore_changes = all"),
                    ),
                },
                other => diags.push(
                    self.unknown_attr(a, other, "lifecycle", &["prevent_destroy", "create_before_destroy", "ignore_changes"]).address(addr),
                ),
            }
        }
        for b in &nb.body.blocks {
            diags.push(
                Diagnostic::error("E-UNKNOWN-BLOCK", format!("`{}` blocks in `lifecycle` are not supported", b.ident))
                    .at(b.span.clone(), "here")
                    .address(addr)
                    .hint("`lifecycle` holds prevent_destroy, create_before_destroy and ignore_changes"),
            );
        }
        l
    }

    fn module_call(&self, name: &str, b: &Block, diags: &mut Diagnostics) -> Option<ModuleCall> {
        let body = self.body(&b.body, diags);
        let span = self.header_span(b);
        let Some(src) = body.attr("source") else {
            diags.push(
                Diagnostic::error("E-MODULE-SOURCE", format!("module `{name}` has no `source`"))
                    .at(span, "here")
                    .hint("add `source = \"./modules/NAME\"`"),
            );
            return None;
        };
        let Some(source) = literal_string(&src.expr) else {
            diags.push(
                Diagnostic::error("E-MODULE-SOURCE", "a module `source` must be a literal string")
                    .or_at(src.expr.span())
                    .hint("write a path such as \"./modules/net\""),
            );
            return None;
        };
        let mut call = ModuleCall {
            name: name.to_string(),
            source,
            source_span: src.expr.span().unwrap_or(src.name_span.clone()),
            inputs: BTreeMap::new(),
            depends_on: Vec::new(),
            span,
        };
        for a in body.attrs.iter().cloned() {
            match a.name.as_str() {
                "source" => {}
                "depends_on" => call.depends_on = self.depends_on(&a, &format!("module.{name}"), diags),
                "count" | "for_each" | "providers" | "version" => diags.push(
                    Diagnostic::error("E-MODULE-META", format!("`{}` on module calls is not supported yet", a.name))
                        .at(a.name_span.clone(), "here")
                        .address(format!("module.{name}"))
                        .hint("call the module once per instance instead"),
                ),
                _ => {
                    call.inputs.insert(a.name.clone(), a);
                }
            }
        }
        for nb in &body.blocks {
            diags.push(
                Diagnostic::error("E-UNKNOWN-BLOCK", format!("unexpected block `{}` in a module call", nb.ident))
                    .at(nb.span.clone(), "here")
                    .address(format!("module.{name}"))
                    .hint("a module call takes `source`, `depends_on` and input attributes"),
            );
        }
        Some(call)
    }

    fn depends_on(&self, a: &Attr, addr: &str, diags: &mut Diagnostics) -> Vec<DependsOn> {
        let Expression::Array(items) = &*a.expr.node else {
            diags.push(
                Diagnostic::error("E-DEPENDS-ON", "depends_on must be a list of references")
                    .or_at(a.expr.span())
                    .address(addr)
                    .hint("write depends_on = [record.a, module.m]"),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for i in items.iter() {
            match traversal_text(i) {
                Some(t) => out.push(DependsOn { target: t, span: self.span(i).unwrap_or(a.name_span.clone()) }),
                None => diags.push(
                    Diagnostic::error("E-DEPENDS-ON", "depends_on entries must be references such as record.a")
                        .or_at(self.span(i))
                        .address(addr)
                        .hint(if matches!(i, Expression::String(_) | Expression::StringTemplate(_)) {
                            "write the address without quotes"
                        } else {
                            "depends_on lists whole resources (record.a), data sources (data.kind.name) or modules (module.m)"
                        }),
                ),
            }
        }
        out
    }

    fn provider_ref(&self, a: &Attr, diags: &mut Diagnostics) -> Option<ProviderRef> {
        let span = a.expr.span().unwrap_or(a.name_span.clone());
        let text = traversal_text(&a.expr.node).or_else(|| literal_string(&a.expr));
        match text.as_deref().map(|t| t.split('.').collect::<Vec<_>>()) {
            Some(parts) if parts.len() == 1 => Some(ProviderRef { name: parts[0].to_string(), alias: None, span }),
            Some(parts) if parts.len() == 2 => Some(ProviderRef { name: parts[0].to_string(), alias: Some(parts[1].to_string()), span }),
            _ => {
                diags.push(
                    Diagnostic::error("E-PROVIDER-REF", "`provider` must name a provider, such as `local` or `aws.west`")
                        .at(span, "here")
                        .hint("write provider = NAME or provider = NAME.ALIAS, without quotes"),
                );
                None
            }
        }
    }

    /// A literal string attribute such as `description`; reports anything else.
    pub(crate) fn literal_text(&self, a: &Attr, diags: &mut Diagnostics) -> Option<String> {
        let s = literal_string(&a.expr);
        if s.is_none() {
            diags.push(
                Diagnostic::error("E-LITERAL", format!("`{}` must be a literal string", a.name))
                    .or_at(a.expr.span())
                    .hint("write a quoted string; references and functions are not allowed here"),
            );
        }
        s
    }

    fn literal_bool(&self, a: &Attr, diags: &mut Diagnostics) -> bool {
        match &*a.expr.node {
            Expression::Bool(b) => *b.value(),
            _ => {
                diags.push(
                    Diagnostic::error("E-LITERAL", format!("`{}` must be true or false", a.name))
                        .or_at(a.expr.span())
                        .hint("write a literal true or false; expressions are not allowed here"),
                );
                false
            }
        }
    }

    pub(crate) fn unknown_attr(&self, a: &Attr, name: &str, block: &str, known: &[&str]) -> Diagnostic {
        Diagnostic::error("E-UNKNOWN-ATTR", format!("unknown attribute `{name}` in a `{block}` block"))
            .at(a.name_span.clone(), "here")
            .hint(suggest(name, known))
    }
}

fn take_string(body: &mut Body, name: &str, diags: &mut Diagnostics) -> Option<String> {
    let i = body.attrs.iter().position(|a| a.name == name)?;
    let a = body.attrs.remove(i);
    let s = literal_string(&a.expr);
    if s.is_none() {
        diags.push(
            Diagnostic::error("E-LITERAL", format!("`{name}` must be a literal string"))
                .or_at(a.expr.span())
                .hint("write a quoted string; references and functions are not allowed here"),
        );
    }
    s
}

/// The text of a plain literal string expression.
pub(crate) fn literal_string(e: &Expr) -> Option<String> {
    match &*e.node {
        Expression::String(s) => Some(s.value().clone()),
        Expression::StringTemplate(t) => {
            let mut out = String::new();
            for el in t.iter() {
                out.push_str(el.as_literal()?.value());
            }
            Some(out)
        }
        _ => None,
    }
}

/// `record.a`, `module.m`, `aws.west` as text, for meta-arguments that name things.
fn traversal_text(e: &Expression) -> Option<String> {
    match e {
        Expression::Variable(v) => Some(v.as_str().to_string()),
        Expression::Traversal(t) => {
            let mut s = traversal_text(&t.expr)?;
            for op in &t.operators {
                match op.value() {
                    TraversalOperator::GetAttr(a) => {
                        s.push('.');
                        s.push_str(a.as_str());
                    }
                    _ => return None,
                }
            }
            Some(s)
        }
        _ => None,
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_alphabetic() || f == '_') && c.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// "did you mean ...?" for a misspelt keyword.
pub fn suggest(word: &str, known: &[&str]) -> String {
    let best = known.iter().min_by_key(|k| edit_distance(word, k)).filter(|k| edit_distance(word, k) <= 2.max(word.len() / 3));
    match best {
        Some(k) => format!("did you mean `{k}`?"),
        None => format!("expected one of: {}", known.join(", ")),
    }
}
