//! Root variable values, in Terraform's precedence (later wins): `KILN_VAR_name` environment
//! variables, `kiln.kilnvars`, `*.auto.kilnvars` in name order, then `--var-file` and `--var`
//! flags in the order given. Files hold `name = value` attributes with constant expressions.
//!
//! [`RootVars`] answers "what is `var.x` before planning", for the blocks read before anything
//! is planned (`backend`, `encryption`): the one resolver both use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hcl_edit::structure::Structure;
use kiln_config::Config;
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

/// A root variable before planning.
#[derive(Clone)]
enum Resolved {
    Value(Value),
    /// Neither given nor defaulted.
    Missing,
    /// Its default cannot be evaluated, or its value does not convert to its type.
    Invalid(Diagnostic),
}

/// The root module's variables as the blocks read before planning (`backend`, `encryption`) see
/// them, and as the core's planner gives them to the root module: the value given (files, flags,
/// environment: [`load_variables`]), else the declared default, converted to the declared type
/// (a `number` given as `"05"` in `KILN_VAR_n` is 5), null refused where `nullable = false`,
/// marked sensitive where declared. `path.module` and `path.root` are the root module's
/// directory, `path.cwd` the working directory the command runs in (the core's `cwd`).
/// Variable `validation` blocks are the planner's alone.
#[derive(Clone)]
pub struct RootVars {
    vars: BTreeMap<String, Resolved>,
    root: PathBuf,
    cwd: PathBuf,
}

/// A block read before planning, for the resolver's messages.
#[derive(Debug, Clone, Copy)]
pub struct EarlyBlock {
    /// How messages name it: `backend`, `` `encryption` block``.
    pub what: &'static str,
    /// The code of a reference it cannot use.
    pub code: &'static str,
    /// Why it cannot use them.
    pub why: &'static str,
    /// What to do instead.
    pub hint: &'static str,
}

impl EarlyBlock {
    /// `kiln { backend "..." { } }`.
    pub const BACKEND: EarlyBlock = EarlyBlock {
        what: "backend",
        code: "E-BACKEND-REF",
        why: "it is chosen before anything is planned",
        hint: "backend settings may use variables (var.NAME) and functions only; pass what they need with --var or KILN_VAR_NAME",
    };
    /// `kiln { encryption { } }`.
    pub const ENCRYPTION: EarlyBlock = EarlyBlock {
        what: "`encryption` block",
        code: "E-ENCRYPTION-REF",
        why: "state must be decrypted before anything else is known",
        hint: "only variables (`var.NAME`) are known when state is decrypted: pass the key as a variable, or use `key_provider \"env\"` or `key_provider \"file\"`",
    };
}

impl RootVars {
    /// The root variables of `config` with the values `given`; `cwd` is `path.cwd`.
    pub fn new(config: &Config, given: &BTreeMap<String, Value>, cwd: impl Into<PathBuf>) -> RootVars {
        let mut out = RootVars { vars: BTreeMap::new(), root: config.root.module.dir.clone(), cwd: cwd.into() };
        for (name, decl) in &config.root.module.variables {
            let raw = match given.get(name) {
                Some(v) => v.clone(),
                None => match &decl.default {
                    None => {
                        out.vars.insert(name.clone(), Resolved::Missing);
                        continue;
                    }
                    Some(d) => match kiln_eval::eval(d, &DefaultScope(&out)) {
                        Ok(v) => v,
                        Err(ds) => {
                            let d = ds.into_vec().into_iter().next().unwrap_or_else(|| {
                                Diagnostic::error("E-VAR-DEFAULT", format!("the default of `var.{name}` cannot be evaluated"))
                            });
                            out.vars.insert(name.clone(), Resolved::Invalid(d.address(format!("var.{name}"))));
                            continue;
                        }
                    },
                },
            };
            // The core's planner's own rule: the declared type, null only where allowed, the
            // mark. Its error points at the declaration; the evaluator adds the reference.
            let resolved = match decl.accept(raw) {
                (v, None) => Resolved::Value(v),
                (_, Some(d)) => Resolved::Invalid(d),
            };
            out.vars.insert(name.clone(), resolved);
        }
        out
    }

    /// The value of `var.name`, when it has one.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self.vars.get(name) {
            Some(Resolved::Value(v)) => Some(v),
            _ => None,
        }
    }

    /// The root module's directory (`path.module`, `path.root`): relative paths in the blocks
    /// are relative to it.
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// The scope of `block`: these variables and `path.*`, nothing else.
    pub fn scope(&self, block: EarlyBlock) -> RootScope<'_> {
        RootScope { vars: self, block }
    }

    fn path(&self, p: &str) -> Result<Value, Diagnostic> {
        match p {
            "module" | "root" => Ok(Value::from(self.root.display().to_string())),
            "cwd" => Ok(Value::from(self.cwd.display().to_string())),
            other => Err(Diagnostic::error("E-REF-PATH", format!("unknown `path.{other}`")).hint("use path.module, path.root or path.cwd")),
        }
    }
}

/// What a block read before planning may refer to (see [`RootVars`]).
pub struct RootScope<'a> {
    vars: &'a RootVars,
    block: EarlyBlock,
}

impl Scope for RootScope<'_> {
    fn resolve(&self, r: &Ref) -> Result<Value, Diagnostic> {
        let what = self.block.what;
        match r {
            Ref::Var(n) => match self.vars.vars.get(n) {
                Some(Resolved::Value(v)) => Ok(v.clone()),
                Some(Resolved::Invalid(d)) => Err(d.clone()),
                Some(Resolved::Missing) => Err(Diagnostic::error(
                    "E-VAR-MISSING",
                    format!("`var.{n}` has no value, and the {what} needs it before anything is planned"),
                )
                .hint(format!(
                    "pass --var {n}=VALUE, set KILN_VAR_{n}, put it in kiln.kilnvars or a *.auto.kilnvars file, or give the variable a default"
                ))),
                None => Err(Diagnostic::error("E-REF-UNDECLARED", format!("variable `{n}` is not declared"))
                    .hint(format!("declare `variable \"{n}\" {{ }}` in the root module, or fix the name"))),
            },
            Ref::Path(p) => self.vars.path(p),
            other => Err(Diagnostic::error(self.block.code, format!("the {what} cannot use `{other}`: {}", self.block.why)).hint(self.block.hint)),
        }
    }

    fn base_dir(&self) -> &Path {
        &self.vars.root
    }
}

/// Variable defaults: constants, functions and `path.*`.
struct DefaultScope<'a>(&'a RootVars);

impl Scope for DefaultScope<'_> {
    fn resolve(&self, r: &Ref) -> Result<Value, Diagnostic> {
        match r {
            Ref::Path(p) => self.0.path(p),
            other => Err(Diagnostic::error("E-VAR-DEFAULT-REF", format!("`{other}` cannot be used in a variable default"))
                .hint("variable defaults are constants")),
        }
    }

    fn base_dir(&self) -> &Path {
        &self.0.root
    }
}

#[cfg(test)]
mod tests {
    //! The `backend` and `encryption` blocks read root variables through one resolver: the same
    //! `path.cwd`, the same sensitivity, the same type conversion as the core's planner.

    use super::*;
    use crate::encryption::state_codec_with;
    use crate::testing::config;
    use crate::Backends;

    fn given(vars: &[(&str, &str)]) -> BTreeMap<String, Value> {
        vars.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect()
    }

    /// The local backend's state file, or the errors.
    fn backend_path(c: &Config, vars: &RootVars) -> String {
        match Backends::new().config(c, vars) {
            Ok(b) => b.local_path().expect("local").display().to_string(),
            Err(e) => format!("{e:?}"),
        }
    }

    /// The key file an `encryption` block's `key_provider "file"` read (it does not exist), or
    /// the errors.
    fn encryption_path(c: &Config, vars: &RootVars) -> String {
        let (_, d) = state_codec_with(c, vars, &|_| None, 1_000);
        let text = format!("{d:?}");
        text.split("cannot read the key file `").nth(1).and_then(|r| r.split('`').next()).map_or(text.clone(), str::to_string)
    }

    const BOTH: &str = "kiln {\n  backend \"local\" {\n    path = \"${EXPR}/x\"\n  }\n  encryption {\n    key_provider \"file\" { path = \"${EXPR}/x\" }\n    method \"aes_gcm\" {}\n  }\n}\n";

    #[test]
    fn path_cwd_and_path_module_are_the_same_in_both_blocks() {
        let elsewhere = tempfile::tempdir().unwrap();
        for (expr, want) in [("path.cwd", None), ("path.module", Some(())), ("path.root", Some(()))] {
            let (dir, c) = config(&BOTH.replace("EXPR", expr));
            let vars = RootVars::new(&c, &BTreeMap::new(), elsewhere.path());
            let expected = match want {
                None => elsewhere.path().join("x"),
                Some(()) => dir.path().join("x"),
            };
            assert_eq!(backend_path(&c, &vars), expected.display().to_string(), "{expr} in the backend block");
            assert_eq!(encryption_path(&c, &vars), expected.display().to_string(), "{expr} in the encryption block");
        }
    }

    #[test]
    fn values_convert_to_the_declared_type_in_both_blocks() {
        // A number given as a string (as KILN_VAR_n=05 gives it): 5, as the planner sees it.
        let text = "variable \"n\" {\n  type = number\n}\n".to_string() + &BOTH.replace("EXPR", "var.n");
        let (dir, c) = config(&text);
        let vars = RootVars::new(&c, &given(&[("n", "05")]), dir.path());
        assert_eq!(vars.get("n"), Some(&Value::from(5i64)));
        assert_eq!(backend_path(&c, &vars), dir.path().join("5/x").display().to_string());
        assert_eq!(encryption_path(&c, &vars), dir.path().join("5/x").display().to_string());
        // A default converts too; a value that does not is an error naming the variable.
        let (dir, c) =
            config("variable \"s\" {\n  type    = string\n  default = 5\n}\nkiln {\n  backend \"local\" {\n    path = var.s\n  }\n}\n");
        assert_eq!(backend_path(&c, &RootVars::new(&c, &BTreeMap::new(), dir.path())), dir.path().join("5").display().to_string());
        let (dir, c) = config(&text);
        let vars = RootVars::new(&c, &given(&[("n", "five")]), dir.path());
        for got in [backend_path(&c, &vars), encryption_path(&c, &vars)] {
            assert!(got.contains("E-VAR-TYPE") && got.contains("invalid value for variable `n`"), "{got}");
        }
    }

    #[test]
    fn a_sensitive_variable_stays_sensitive_in_both_blocks() {
        let text = "variable \"pw\" {\n  sensitive = true\n}\n".to_string() + &BOTH.replace("EXPR", "tonumber(var.pw)");
        let (dir, c) = config(&text);
        let vars = RootVars::new(&c, &given(&[("pw", "hunter2")]), dir.path());
        assert!(vars.get("pw").is_some_and(Value::contains_sensitive));
        for got in [backend_path(&c, &vars), encryption_path(&c, &vars)] {
            assert!(got.contains("E-FUNC") && !got.contains("hunter2") && got.contains("(sensitive value)"), "{got}");
        }
        // Nor does a type error quote it.
        let (dir, c) = config("variable \"pw\" {\n  type      = number\n  sensitive = true\n}\nkiln {\n  backend \"local\" {\n    path = \"${var.pw}\"\n  }\n}\n");
        let got = backend_path(&c, &RootVars::new(&c, &given(&[("pw", "hunter2")]), dir.path()));
        assert!(got.contains("E-VAR-TYPE") && !got.contains("hunter2"), "{got}");
    }

    #[test]
    fn a_refused_value_points_at_the_declaration_as_the_planner_does_and_at_the_reference() {
        let text = "variable \"n\" {\n  type = number\n}\nkiln {\n  backend \"local\" {\n    path = \"${var.n}\"\n  }\n}\n";
        let (dir, c) = config(text);
        let Err(ds) = Backends::new().config(&c, &RootVars::new(&c, &given(&[("n", "five")]), dir.path())) else { panic!("an error") };
        let d = ds.into_vec().into_iter().find(|d| d.code == "E-VAR-TYPE").expect("E-VAR-TYPE");
        let at = |l: &kiln_diag::Label| &text[l.span.range.clone()];
        let primary = d.primary.as_ref().expect("a primary label");
        assert!(at(primary).starts_with("variable \"n\""), "{:?}", at(primary));
        assert_eq!(primary.message, "declared here");
        let reference = d.secondary.iter().find(|l| l.message == "referenced here").expect("the reference");
        assert!(at(reference).contains("var.n"), "{:?}", at(reference));
        assert_eq!(d.address.as_deref(), Some("var.n"));
    }

    #[test]
    fn missing_undeclared_and_null_variables_are_the_same_errors_in_both_blocks() {
        let text = "variable \"set\" {\n  default  = null\n  nullable = false\n}\nvariable \"unset\" {}\n".to_string();
        for (expr, code) in [("var.unset", "E-VAR-MISSING"), ("var.nope", "E-REF-UNDECLARED"), ("var.set", "E-VAR-NULL")] {
            let (dir, c) = config(&(text.clone() + &BOTH.replace("EXPR", expr)));
            let vars = RootVars::new(&c, &BTreeMap::new(), dir.path());
            for got in [backend_path(&c, &vars), encryption_path(&c, &vars)] {
                assert!(got.contains(code), "{expr}: {got}");
            }
        }
        // A variable nobody reads needs no value.
        let (dir, c) = config(&(text + "kiln {\n  backend \"local\" {}\n}\n"));
        assert_eq!(
            backend_path(&c, &RootVars::new(&c, &BTreeMap::new(), dir.path())),
            dir.path().join(".kiln/state.json").display().to_string()
        );
    }

    #[test]
    fn defaults_may_use_path_but_not_other_references() {
        let (dir, c) = config(
            "variable \"d\" {\n  default = \"${path.module}/st\"\n}\nvariable \"e\" {\n  default = local.x\n}\nlocals {\n  x = 1\n}\n",
        );
        let vars = RootVars::new(&c, &BTreeMap::new(), dir.path());
        assert_eq!(vars.get("d"), Some(&Value::from(format!("{}/st", dir.path().display()))));
        let Some(Resolved::Invalid(d)) = vars.vars.get("e") else { panic!("an error") };
        assert_eq!(d.code, "E-VAR-DEFAULT-REF");
    }
}
