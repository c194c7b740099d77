//! Values computed so far in a walk, and the [`Scope`] the evaluator reads them through.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use kiln_addrs::{Mode, ResourceAddr};
use kiln_diag::Diagnostic;
use kiln_diag::Diagnostics;
use kiln_eval::{Ref, Scope};
use kiln_value::{Map, Secrets, Value};

/// The instances of one resource as references see them.
#[derive(Debug, Clone)]
pub(crate) enum Expansion {
    Single(Value),
    Count(Vec<Value>),
    ForEach(BTreeMap<String, Value>),
}

impl Expansion {
    fn to_value(&self) -> Value {
        match self {
            Expansion::Single(v) => v.clone(),
            Expansion::Count(l) => Value::List(l.clone()),
            Expansion::ForEach(m) => Value::Map(m.clone().into_iter().collect()),
        }
    }
}

type Key = (Vec<String>, String);

#[derive(Default)]
pub(crate) struct Values {
    pub vars: HashMap<Key, Value>,
    pub locals: HashMap<Key, Value>,
    pub outputs: HashMap<Key, Value>,
    pub resources: HashMap<ResourceAddr, Expansion>,
    pub root_dir: PathBuf,
    pub cwd: PathBuf,
    /// `kiln.workspace`.
    pub workspace: String,
    /// The sensitive settings of each configured provider, by provider key: what the provider
    /// says, and the values it copies into objects, never show them.
    pub provider_secrets: HashMap<String, Secrets>,
}

impl Values {
    /// `d` redacted with every sensitive value this walk knows (variables, locals, outputs,
    /// objects, providers' settings): the last line of defence for any message that quotes
    /// one. Secrets shorter than 4 characters are left to the error paths that know them.
    pub(crate) fn redact(&self, d: Diagnostics) -> Diagnostics {
        if d.is_empty() {
            return d;
        }
        let objects: Vec<Value> = self.resources.values().map(Expansion::to_value).collect();
        let mut s = Secrets::of_all(self.vars.values().chain(self.locals.values()).chain(self.outputs.values()).chain(&objects));
        for p in self.provider_secrets.values() {
            s.extend(p);
        }
        crate::redact::diags(d, &s.at_least(4))
    }
}

/// `count.index` / `each.*` of the instance being evaluated.
#[derive(Debug, Clone)]
pub(crate) enum Repetition {
    None,
    Count(usize),
    Each { key: String, value: Value },
}

pub(crate) struct ModuleScope<'a> {
    pub values: &'a Values,
    pub module: &'a [String],
    pub dir: &'a Path,
    pub rep: Repetition,
}

impl Scope for ModuleScope<'_> {
    fn resolve(&self, r: &Ref) -> Result<Value, Diagnostic> {
        let key = |n: &str| (self.module.to_vec(), n.to_string());
        let unavailable = |what: String| {
            Diagnostic::error("E-REF-UNAVAILABLE", format!("`{what}` has no value here"))
                .hint("it may have failed or been excluded by --target/--exclude")
        };
        match r {
            Ref::Var(n) => self.values.vars.get(&key(n)).cloned().ok_or_else(|| unavailable(format!("var.{n}"))),
            Ref::Local(n) => self.values.locals.get(&key(n)).cloned().ok_or_else(|| unavailable(format!("local.{n}"))),
            Ref::Module(m, out) => {
                let mut child = self.module.to_vec();
                child.push(m.clone());
                match out {
                    Some(o) => Ok(Value::Map(
                        [(o.clone(), self.values.outputs.get(&(child.clone(), o.clone())).cloned().unwrap_or(Value::Unknown))].into(),
                    )),
                    None => {
                        let m: Map = self
                            .values
                            .outputs
                            .iter()
                            .filter(|((p, _), _)| *p == child)
                            .map(|((_, n), v)| (n.clone(), v.clone()))
                            .collect();
                        Ok(Value::Map(m))
                    }
                }
                .map(|v| wrap_module(v, out.as_deref()))
            }
            Ref::Resource { kind, name } | Ref::Data { kind, name } => {
                let mode = if matches!(r, Ref::Data { .. }) { Mode::Data } else { Mode::Managed };
                let addr = ResourceAddr { module: self.module.to_vec(), mode, kind: kind.clone(), name: name.clone() };
                self.values.resources.get(&addr).map(Expansion::to_value).ok_or_else(|| unavailable(addr.to_string()))
            }
            Ref::CountIndex => match &self.rep {
                Repetition::Count(i) => Ok(Value::from(*i)),
                _ => Err(Diagnostic::error("E-REF-COUNT", "`count.index` is only available in a resource with `count`")
                    .hint("add `count = N` to the resource, or remove the reference")),
            },
            Ref::EachKey | Ref::EachValue => match &self.rep {
                Repetition::Each { key, value } => Ok(if matches!(r, Ref::EachKey) { Value::from(key.as_str()) } else { value.clone() }),
                _ => Err(Diagnostic::error("E-REF-EACH", format!("`{r}` is only available in a resource with `for_each`"))
                    .hint("add `for_each = ...` to the resource, or remove the reference")),
            },
            Ref::Path(p) => match p.as_str() {
                "module" => Ok(Value::from(self.dir.display().to_string())),
                "root" => Ok(Value::from(self.values.root_dir.display().to_string())),
                "cwd" => Ok(Value::from(self.values.cwd.display().to_string())),
                other => {
                    Err(Diagnostic::error("E-REF-PATH", format!("unknown `path.{other}`")).hint("use path.module, path.root or path.cwd"))
                }
            },
            Ref::Workspace => Ok(Value::from(self.values.workspace.as_str())),
            Ref::SelfRef => Err(Diagnostic::error("E-REF-SELF", "`self` is not available here")),
        }
    }

    fn base_dir(&self) -> &Path {
        self.dir
    }
}

/// `module.m.out` resolves the Ref with the output already chosen; the evaluator then applies
/// the remaining traversal, so hand back the bare output value.
fn wrap_module(v: Value, out: Option<&str>) -> Value {
    match out {
        Some(o) => v.get(o).cloned().unwrap_or(Value::Unknown),
        None => v,
    }
}
