//! Reads the `encryption` block of the `kiln` block into an [`Encryptor`] (syntax in the
//! `kiln_crypt` crate documentation; keys, codecs and the stored form live there). Every problem
//! is a diagnostic with the span of the offending block or attribute and a hint; values of keys
//! never appear in them.

use std::path::Path;

use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::Span as _;
use kiln_config::{Attr, Body, Encryption, NestedBlock};
use kiln_diag::{Diagnostic, Diagnostics, Span};
use kiln_eval::Expr;
use kiln_value::Value;

use kiln_crypt::{Encryptor, Key, Options, METHOD};

/// What building an encryptor needs from its surroundings.
pub trait Context {
    /// Evaluates an attribute expression. Only values known before planning (variables) can be
    /// in scope: the state must be decrypted before anything else is known.
    fn eval(&self, expr: &Expr) -> Result<Value, Diagnostics>;
    /// An environment variable (for `key_provider "env"`).
    fn env_var(&self, name: &str) -> Option<String>;
    /// The configuration directory: `key_provider "file"` paths are relative to it.
    fn base_dir(&self) -> &Path;
}

const PROVIDER_TYPES: [&str; 3] = ["passphrase", "env", "file"];

const SHAPE: &str = "the `encryption` block holds `key_provider \"TYPE\" \"NAME\" { }` blocks, one `method \"aes_gcm\" { keys = key_provider.TYPE.NAME }` block and an optional `fallback { keys = ..., allow_plaintext = ... }` block";

struct Provider<'a> {
    ty: String,
    name: Option<String>,
    block: &'a NestedBlock,
    used: bool,
}

impl Provider<'_> {
    /// `key_provider.passphrase.main`, or `key_provider.passphrase` for an unnamed provider.
    fn address(&self) -> String {
        match &self.name {
            Some(n) => format!("key_provider.{}.{n}", self.ty),
            None => format!("key_provider.{}", self.ty),
        }
    }
}

/// A reference to a key provider written in `keys`, with its span.
struct KeyRef {
    ty: String,
    name: Option<String>,
    span: Span,
}

/// Builds the encryptor the block describes, with the PBKDF2 iteration count used when sealing
/// (tests use a low one; everything else the default). Returns `None` exactly when there are
/// errors; warnings may come with an encryptor.
pub fn build_with(block: &Encryption, ctx: &dyn Context, kdf_iterations: u32) -> (Option<Encryptor>, Diagnostics) {
    let mut diags = Diagnostics::new();
    let body = &block.body;
    unknown_attrs(body, &[], "encryption", SHAPE, &mut diags);
    let mut providers: Vec<Provider> = Vec::new();
    let mut method: Option<&NestedBlock> = None;
    let mut fallback: Option<&NestedBlock> = None;
    for nb in &body.blocks {
        match nb.ident.as_str() {
            "key_provider" => {
                let (ty, name) = match nb.labels.as_slice() {
                    [ty] => (ty.clone(), None),
                    [ty, name] => (ty.clone(), Some(name.clone())),
                    _ => {
                        diags.push(
                            Diagnostic::error("E-BLOCK-LABELS", "a `key_provider` block needs a type and optionally a name")
                                .at(nb.span.clone(), "here")
                                .hint("write `key_provider \"passphrase\" \"main\" { passphrase = var.state_passphrase }`"),
                        );
                        continue;
                    }
                };
                if !PROVIDER_TYPES.contains(&ty.as_str()) {
                    diags.push(
                        Diagnostic::error("E-ENCRYPTION-KEY-PROVIDER", format!("unknown key provider `{ty}`"))
                            .at(nb.span.clone(), "here")
                            .hint(
                            "key providers are `passphrase` (passphrase = ...), `env` (variable = \"NAME\") and `file` (path = \"...\")",
                        ),
                    );
                    continue;
                }
                if let Some(prev) = providers.iter().find(|p| p.ty == ty && p.name == name) {
                    diags.push(
                        Diagnostic::error("E-DUPLICATE", format!("key provider `{}` is declared twice", prev.address()))
                            .at(nb.span.clone(), "second block")
                            .also(prev.block.span.clone(), "first block")
                            .hint("give each `key_provider` block of a type its own name"),
                    );
                    continue;
                }
                providers.push(Provider { ty, name, block: nb, used: false });
            }
            "method" | "fallback" => {
                let slot = if nb.ident == "method" { &mut method } else { &mut fallback };
                if let Some(prev) = slot {
                    diags.push(
                        Diagnostic::error("E-DUPLICATE", format!("more than one `{}` block in `encryption`", nb.ident))
                            .at(nb.span.clone(), "second block")
                            .also(prev.span.clone(), "first block")
                            .hint("keep one; list several fallback keys as `keys = [key_provider.A.B, key_provider.C.D]`"),
                    );
                    continue;
                }
                *slot = Some(nb);
            }
            other => diags.push(
                Diagnostic::error("E-UNKNOWN-BLOCK", format!("unknown block `{other}` in `encryption`"))
                    .at(nb.span.clone(), "here")
                    .hint(SHAPE),
            ),
        }
    }

    // The method and its key.
    let mut primary_ref: Option<KeyRef> = None;
    match method {
        None => diags.push(
            Diagnostic::error("E-ENCRYPTION-METHOD", "the `encryption` block has no `method` block")
                .at(block.span.clone(), "here")
                .hint("add `method \"aes_gcm\" { keys = key_provider.TYPE.NAME }` to the `encryption` block"),
        ),
        Some(m) => {
            match m.labels.as_slice() {
                [name] if name == METHOD => {}
                [name] => diags.push(
                    Diagnostic::error("E-ENCRYPTION-METHOD", format!("unknown encryption method `{name}`"))
                        .at(m.span.clone(), "here")
                        .hint("the supported method is `aes_gcm` (AES-256-GCM): write `method \"aes_gcm\" { }`"),
                ),
                _ => diags.push(
                    Diagnostic::error("E-BLOCK-LABELS", "a `method` block needs one label, the method")
                        .at(m.span.clone(), "here")
                        .hint("write `method \"aes_gcm\" { keys = key_provider.TYPE.NAME }`"),
                ),
            }
            unknown_attrs(&m.body, &["keys"], "method", "a `method` block holds `keys = key_provider.TYPE.NAME`", &mut diags);
            match m.body.attr("keys") {
                Some(a) => {
                    let refs = key_refs(a, &mut diags);
                    match refs.len() {
                        0 => {}
                        1 => primary_ref = refs.into_iter().next(),
                        _ => diags.push(
                            Diagnostic::error("E-ENCRYPTION-KEYS", "`method` takes exactly one key")
                                .at(a.expr.span().unwrap_or(a.name_span.clone()), "here")
                                .hint("state is encrypted with one key; put older keys in `fallback { keys = [...] }`"),
                        ),
                    }
                }
                None => match providers.as_slice() {
                    [only] => primary_ref = Some(KeyRef { ty: only.ty.clone(), name: only.name.clone(), span: m.span.clone() }),
                    [] => diags.push(
                        Diagnostic::error("E-ENCRYPTION-NO-KEY", "the `encryption` block declares no key")
                            .at(block.span.clone(), "here")
                            .hint(
                            "add `key_provider \"passphrase\" { passphrase = var.state_passphrase }` (or an `env` or `file` key provider)",
                        ),
                    ),
                    _ => diags.push(
                        Diagnostic::error("E-ENCRYPTION-KEYS", "`method` must say which key provider it uses")
                            .at(m.span.clone(), "here")
                            .hint(format!(
                                "there are several key providers: write `keys = {}` (or another one) in the `method` block",
                                providers[0].address()
                            )),
                    ),
                },
            }
        }
    }

    // The fallback: older keys, and whether unencrypted documents may be read.
    let mut fallback_refs = Vec::new();
    let mut allow_plaintext = false;
    if let Some(fb) = fallback {
        if !fb.labels.is_empty() {
            diags.push(
                Diagnostic::error("E-BLOCK-LABELS", "a `fallback` block takes no labels")
                    .at(fb.span.clone(), "here")
                    .hint("write `fallback { keys = key_provider.TYPE.NAME }`"),
            );
        }
        unknown_attrs(
            &fb.body,
            &["keys", "allow_plaintext"],
            "fallback",
            "a `fallback` block holds `keys` and `allow_plaintext`",
            &mut diags,
        );
        if let Some(a) = fb.body.attr("keys") {
            fallback_refs = key_refs(a, &mut diags);
        }
        if let Some(a) = fb.body.attr("allow_plaintext") {
            let span = a.expr.span().unwrap_or(a.name_span.clone());
            match ctx.eval(&a.expr) {
                Ok(v) => match v.as_bool() {
                    Some(b) => allow_plaintext = b,
                    None => diags.push(
                        Diagnostic::error("E-ENCRYPTION-TYPE", format!("`allow_plaintext` must be a bool, not {}", v.type_name()))
                            .at(span, "here")
                            .hint("write `allow_plaintext = true` while migrating an unencrypted state, then remove it"),
                    ),
                },
                Err(d) => diags.extend(d),
            }
        }
        if fb.body.attr("keys").is_none() && fb.body.attr("allow_plaintext").is_none() {
            diags.push(
                Diagnostic::warning("W-ENCRYPTION-EMPTY-FALLBACK", "the `fallback` block is empty").at(fb.span.clone(), "here").hint(
                    "set `keys = key_provider.TYPE.NAME` (the old key when rotating) or `allow_plaintext = true`, or remove the block",
                ),
            );
        }
    }

    // Resolve the referenced providers into keys.
    let mut resolve = |r: &KeyRef, diags: &mut Diagnostics| -> Option<Key> {
        let found = providers.iter_mut().find(|p| p.ty == r.ty && p.name == r.name);
        let Some(p) = found else {
            let wanted = match &r.name {
                Some(n) => format!("key_provider.{}.{n}", r.ty),
                None => format!("key_provider.{}", r.ty),
            };
            diags.push(Diagnostic::error("E-ENCRYPTION-KEYS", format!("`{wanted}` is not declared")).at(r.span.clone(), "here").hint(
                format!(
                    "declare `key_provider \"{}\" {} {{ ... }}` in the `encryption` block",
                    r.ty,
                    r.name.as_deref().map(|n| format!("\"{n}\"")).unwrap_or_default()
                ),
            ));
            return None;
        };
        p.used = true;
        provider_key(p, ctx, diags)
    };
    let primary = primary_ref.as_ref().and_then(|r| resolve(r, &mut diags));
    let mut fallbacks = Vec::new();
    for r in &fallback_refs {
        if let Some(k) = resolve(r, &mut diags) {
            fallbacks.push(k);
        }
    }
    for p in providers.iter().filter(|p| !p.used) {
        diags.push(
            Diagnostic::warning("W-ENCRYPTION-UNUSED", format!("key provider `{}` is not used", p.address()))
                .at(p.block.span.clone(), "here")
                .hint("use it in `method { keys = ... }` or `fallback { keys = ... }`, or remove it"),
        );
    }
    if diags.has_errors() {
        return (None, diags);
    }
    match primary {
        Some(primary) => (Some(Encryptor::new(primary, fallbacks, Options { allow_plaintext, kdf_iterations })), diags),
        None => (None, diags),
    }
}

fn unknown_attrs(body: &Body, allowed: &[&str], block: &str, hint: &str, diags: &mut Diagnostics) {
    for a in body.attrs.iter().filter(|a| !allowed.contains(&a.name.as_str())) {
        diags.push(
            Diagnostic::error("E-UNKNOWN-ATTR", format!("unknown attribute `{}` in `{block}`", a.name))
                .at(a.name_span.clone(), "here")
                .hint(hint),
        );
    }
}

/// `keys = key_provider.T.N` or `keys = [key_provider.T.N, ...]`.
fn key_refs(a: &Attr, diags: &mut Diagnostics) -> Vec<KeyRef> {
    let file = a.expr.file;
    let span_of = |e: &Expression| e.span().map(|r| Span::new(file, r)).unwrap_or(a.name_span.clone());
    let items: Vec<&Expression> = match &*a.expr.node {
        Expression::Array(items) => items.iter().collect(),
        e => vec![e],
    };
    let mut out = Vec::new();
    for e in items {
        match key_ref(e) {
            Some((ty, name)) => out.push(KeyRef { ty, name, span: span_of(e) }),
            None => diags.push(
                Diagnostic::error("E-ENCRYPTION-KEYS", "`keys` must name key providers")
                    .at(span_of(e), "not a key provider reference")
                    .hint("write `keys = key_provider.TYPE.NAME`, for example `keys = key_provider.passphrase.main`"),
            ),
        }
    }
    out
}

fn key_ref(e: &Expression) -> Option<(String, Option<String>)> {
    let Expression::Traversal(t) = e else { return None };
    let Expression::Variable(root) = &t.expr else { return None };
    if root.as_str() != "key_provider" {
        return None;
    }
    let names: Vec<&str> = t
        .operators
        .iter()
        .map(|o| match o.value() {
            TraversalOperator::GetAttr(a) => Some(a.as_str()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    match names.as_slice() {
        [ty] => Some((ty.to_string(), None)),
        [ty, name] => Some((ty.to_string(), Some(name.to_string()))),
        _ => None,
    }
}

/// The key a provider block gives.
fn provider_key(p: &Provider, ctx: &dyn Context, diags: &mut Diagnostics) -> Option<Key> {
    let body = &p.block.body;
    let label = p.address();
    let (attr_name, hint) = match p.ty.as_str() {
        "passphrase" => {
            ("passphrase", "write `passphrase = var.state_passphrase` and pass it with --var, KILN_VAR_state_passphrase or a kilnvars file")
        }
        "env" => ("variable", "write `variable = \"KILN_STATE_KEY\"`, the name of an environment variable holding the key"),
        _ => ("path", "write `path = \"state.key\"`, a file holding a base64-encoded 32-byte key or a passphrase"),
    };
    unknown_attrs(body, &[attr_name], &format!("key_provider \"{}\"", p.ty), hint, diags);
    for nb in &body.blocks {
        diags.push(
            Diagnostic::error("E-UNKNOWN-BLOCK", format!("unknown block `{}` in `{label}`", nb.ident))
                .at(nb.span.clone(), "here")
                .hint(hint),
        );
    }
    let Some(a) = body.attr(attr_name) else {
        diags.push(
            Diagnostic::error("E-ENCRYPTION-KEY-MISSING", format!("`{label}` has no `{attr_name}`"))
                .at(p.block.span.clone(), "here")
                .hint(hint),
        );
        return None;
    };
    let span = a.expr.span().unwrap_or(a.name_span.clone());
    let value = match ctx.eval(&a.expr) {
        Ok(v) => v,
        Err(d) => {
            diags.extend(d.with_address(&label));
            return None;
        }
    };
    if value.contains_unknown() {
        diags.push(
            Diagnostic::error("E-ENCRYPTION-UNKNOWN", format!("`{attr_name}` of `{label}` is not known before planning"))
                .at(span, "here")
                .hint("use variables only: state must be decrypted before anything else is evaluated"),
        );
        return None;
    }
    let Some(text) = value.as_str() else {
        let what = if value.is_null() { "null".to_string() } else { value.unmarked().type_name().to_string() };
        diags.push(
            Diagnostic::error("E-ENCRYPTION-TYPE", format!("`{attr_name}` of `{label}` must be a string, not {what}"))
                .at(span, "here")
                .hint(hint),
        );
        return None;
    };
    let bad = |diags: &mut Diagnostics, message: String, span: Span| {
        diags.push(
            Diagnostic::error("E-ENCRYPTION-KEY", format!("`{label}` cannot be used as a key")).detail(message).at(span, "here").hint(hint),
        );
    };
    match p.ty.as_str() {
        "passphrase" => match Key::passphrase(text, &label) {
            Ok(k) => Some(k),
            Err(e) => {
                bad(diags, e.to_string(), span);
                None
            }
        },
        "env" => match ctx.env_var(text) {
            None => {
                diags.push(
                    Diagnostic::error("E-ENCRYPTION-KEY", format!("environment variable `{text}` is not set"))
                        .at(span, format!("`{label}` reads it"))
                        .hint(format!("export {text} with the key (for example `export {text}=$(openssl rand -base64 32)` for a new key)")),
                );
                None
            }
            Some(v) => match Key::from_text(&v, &label) {
                Ok(k) => Some(k),
                Err(e) => {
                    bad(diags, format!("environment variable `{text}`: {e}"), span);
                    None
                }
            },
        },
        _ => {
            let path = ctx.base_dir().join(text);
            match std::fs::read(&path) {
                Err(e) => {
                    diags.push(
                        Diagnostic::error("E-ENCRYPTION-KEY", format!("cannot read the key file `{}`: {e}", path.display()))
                            .at(span, format!("`{label}` reads it"))
                            .hint("check the path (relative to the configuration directory) and its permissions"),
                    );
                    None
                }
                Ok(bytes) => {
                    let bytes = zeroize::Zeroizing::new(bytes);
                    match Key::from_file_bytes(&bytes, &label) {
                        Ok(k) => Some(k),
                        Err(e) => {
                            bad(diags, format!("key file `{}`: {e}", path.display()), span);
                            None
                        }
                    }
                }
            }
        }
    }
}
