//! Root variable values, in Terraform's precedence (later wins): `KILN_VAR_name` environment
//! variables, `kiln.kilnvars`, `*.auto.kilnvars` in name order, then `--var-file` and `--var`
//! flags in the order given. Files hold `name = value` attributes with constant expressions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hcl_edit::structure::Structure;
use kiln_diag::{Diagnostic, Diagnostics, Sources, Span};
use kiln_eval::{Expr, Ref, Scope};
use kiln_value::Value;

/// Variable inputs named on the command line, in order.
#[derive(Debug, Clone)]
pub enum VarSources {
    File(PathBuf),
    Flag(String),
}

struct ConstScope<'a>(&'a Path);

impl Scope for ConstScope<'_> {
    fn resolve(&self, r: &Ref) -> Result<Value, Diagnostic> {
        Err(Diagnostic::error("E-VARFILE-REF", format!("`{r}` cannot be used in a variables file"))
            .hint("variable values must be constants"))
    }
    fn base_dir(&self) -> &Path {
        self.0
    }
}

pub fn load_variables(
    dir: &Path,
    cli: &[VarSources],
    env: &[(String, String)],
    sources: &mut Sources,
) -> (BTreeMap<String, Value>, Diagnostics) {
    let mut out = BTreeMap::new();
    let mut diags = Diagnostics::new();
    for (k, v) in env {
        if let Some(name) = k.strip_prefix("KILN_VAR_") {
            out.insert(name.to_string(), parse_flag_value(v));
        }
    }
    let mut files = vec![dir.join("kiln.kilnvars")];
    let mut auto: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.to_string_lossy().ends_with(".auto.kilnvars")).collect())
        .unwrap_or_default();
    auto.sort();
    files.extend(auto);
    for f in files.into_iter().filter(|f| f.exists()) {
        load_file(&f, sources, &mut out, &mut diags);
    }
    for c in cli {
        match c {
            VarSources::File(f) => {
                if f.exists() {
                    load_file(f, sources, &mut out, &mut diags);
                } else {
                    diags.push(
                        Diagnostic::error("E-VARFILE-MISSING", format!("variables file `{}` not found", f.display()))
                            .hint("check the --var-file path"),
                    );
                }
            }
            VarSources::Flag(s) => match s.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    out.insert(k.trim().to_string(), parse_flag_value(v));
                }
                _ => diags.push(Diagnostic::error("E-VAR-FLAG", format!("invalid --var `{s}`")).hint("write --var NAME=VALUE")),
            },
        }
    }
    (out, diags)
}

/// A flag value is HCL when it looks like a list, object, number or bool; otherwise a string.
fn parse_flag_value(v: &str) -> Value {
    let t = v.trim_start();
    if t.starts_with('[') || t.starts_with('{') {
        if let Ok(e) = hcl_edit::parser::parse_expr(v) {
            let expr = Expr::with_source(kiln_diag::FileId(u32::MAX), e, v);
            if let Ok(val) = kiln_eval::eval(&expr, &ConstScope(Path::new("."))) {
                return val;
            }
        }
    }
    Value::String(v.to_string())
}

fn load_file(path: &Path, sources: &mut Sources, out: &mut BTreeMap<String, Value>, diags: &mut Diagnostics) {
    let text = match kiln_config::read_config_file(path)
        .and_then(|b| String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    {
        Ok(t) => t,
        Err(e) => {
            diags.push(Diagnostic::error("E-VARFILE-READ", format!("cannot read `{}`: {e}", path.display())));
            return;
        }
    };
    let file = sources.add(path.to_path_buf(), text);
    let body = match hcl_edit::parser::parse_body(sources.text(file)) {
        Ok(b) => b,
        Err(e) => {
            let off = e.location().offset();
            diags.push(
                Diagnostic::error("E-SYNTAX", format!("syntax error: {}", e.message())).at(Span::new(file, off..off + 1), e.message()),
            );
            return;
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                let expr = Expr::with_source(file, a.value.clone(), sources.text(file));
                match kiln_eval::eval(&expr, &ConstScope(dir)) {
                    Ok(v) => {
                        out.insert(a.key.as_str().to_string(), v);
                    }
                    Err(d) => diags.extend(d),
                }
            }
            Structure::Block(b) => {
                let span = hcl_edit::Span::span(&b.ident).map(|r| Span::new(file, r));
                diags.push(Diagnostic::error("E-VARFILE-BLOCK", "variables files hold `name = value` lines only").or_at(span));
            }
        }
    }
}
