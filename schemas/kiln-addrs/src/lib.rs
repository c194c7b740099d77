//! Addresses: immutable values naming resources and their instances, such as
//! `module.net.record.a["x"]`. They parse (`FromStr`) and print (`Display`) the same syntax users
//! type on the command line (`--target`, `state mv`) and see in plans.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Managed,
    Data,
}

/// A resource as declared in configuration: module path, mode, kind and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceAddr {
    pub module: Vec<String>,
    pub mode: Mode,
    pub kind: String,
    pub name: String,
}

/// The key of one instance of a resource with `count` or `for_each`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InstanceKey {
    None,
    Int(u64),
    Str(String),
}

/// One instance of a resource: `record.a[3]`, `bucket.b["x"]`, `record.c`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceAddr {
    pub resource: ResourceAddr,
    pub key: InstanceKey,
}

impl ResourceAddr {
    pub fn managed(kind: impl Into<String>, name: impl Into<String>) -> Self {
        ResourceAddr { module: Vec::new(), mode: Mode::Managed, kind: kind.into(), name: name.into() }
    }

    pub fn instance(&self, key: InstanceKey) -> InstanceAddr {
        InstanceAddr { resource: self.clone(), key }
    }

    /// True when `self` is `other` or `other` lies inside module `self.module` and matches.
    pub fn in_module(&self, module: &[String]) -> bool {
        self.module.starts_with(module)
    }
}

impl InstanceAddr {
    /// Whether a `--target`/`--exclude` address selects this instance: an exact instance
    /// address, a whole resource (all its instances), or a module (everything in it).
    pub fn matches(&self, target: &Target) -> bool {
        match target {
            Target::Module(m) => self.resource.module.starts_with(m),
            Target::Resource(r) => &self.resource == r,
            Target::Instance(i) => self == i,
        }
    }
}

/// What a `--target` or `--exclude` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Module(Vec<String>),
    Resource(ResourceAddr),
    Instance(InstanceAddr),
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstanceKey::None => Ok(()),
            InstanceKey::Int(i) => write!(f, "[{i}]"),
            InstanceKey::Str(s) => write!(f, "[{}]", quote(s)),
        }
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_module(f: &mut fmt::Formatter<'_>, module: &[String]) -> fmt::Result {
    for m in module {
        write!(f, "module.{m}.")?;
    }
    Ok(())
}

impl fmt::Display for ResourceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_module(f, &self.module)?;
        if self.mode == Mode::Data {
            write!(f, "data.")?;
        }
        write!(f, "{}.{}", self.kind, self.name)
    }
}

impl fmt::Display for InstanceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.resource, self.key)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Module(m) => {
                let s: Vec<String> = m.iter().map(|m| format!("module.{m}")).collect();
                write!(f, "{}", s.join("."))
            }
            Target::Resource(r) => write!(f, "{r}"),
            Target::Instance(i) => write!(f, "{i}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address `{input}`: {reason}")]
pub struct AddrError {
    pub input: String,
    pub reason: String,
}

/// Splits `a.b["x.y"][0].c` into steps, keeping bracketed keys whole.
fn tokens(input: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    let mut ident = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '.' => {
                if ident.is_empty() && !matches!(out.last(), Some(Token::Key(_))) {
                    return Err("empty name between dots".into());
                }
                if !ident.is_empty() {
                    out.push(Token::Name(std::mem::take(&mut ident)));
                }
            }
            '[' => {
                if !ident.is_empty() {
                    out.push(Token::Name(std::mem::take(&mut ident)));
                }
                let mut inner = String::new();
                let mut quoted = false;
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' if !quoted && inner.is_empty() => quoted = true,
                        '"' if quoted => {
                            quoted = false;
                        }
                        '\\' if quoted => {
                            if let Some((_, n)) = chars.next() {
                                inner.push(match n {
                                    'n' => '\n',
                                    n => n,
                                });
                            }
                        }
                        ']' if !quoted => {
                            closed = true;
                            break;
                        }
                        c => inner.push(c),
                    }
                }
                if !closed {
                    return Err("unclosed `[`".into());
                }
                let key = if input.contains(&format!("[\"{inner}")) || inner.parse::<u64>().is_err() {
                    InstanceKey::Str(inner)
                } else {
                    InstanceKey::Int(inner.parse().unwrap_or_default())
                };
                out.push(Token::Key(key));
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' => ident.push(c),
            c => return Err(format!("unexpected character `{c}`")),
        }
    }
    if !ident.is_empty() {
        out.push(Token::Name(ident));
    }
    Ok(out)
}

enum Token {
    Name(String),
    Key(InstanceKey),
}

impl FromStr for Target {
    type Err = AddrError;
    fn from_str(input: &str) -> Result<Self, AddrError> {
        let e = |reason: &str| AddrError { input: input.to_string(), reason: reason.to_string() };
        let toks = tokens(input.trim()).map_err(|r| e(&r))?;
        let mut it = toks.into_iter().peekable();
        let mut module = Vec::new();
        loop {
            match it.peek() {
                Some(Token::Name(n)) if n == "module" => {
                    it.next();
                    match it.next() {
                        Some(Token::Name(m)) => module.push(m),
                        _ => return Err(e("expected a module name after `module.`")),
                    }
                    if let Some(Token::Key(_)) = it.peek() {
                        return Err(e("module instance keys are not supported"));
                    }
                }
                _ => break,
            }
        }
        let Some(first) = it.next() else {
            return if module.is_empty() { Err(e("empty address")) } else { Ok(Target::Module(module)) };
        };
        let Token::Name(first) = first else { return Err(e("expected a resource kind")) };
        let (mode, kind) = if first == "data" {
            match it.next() {
                Some(Token::Name(k)) => (Mode::Data, k),
                _ => return Err(e("expected a data source kind after `data.`")),
            }
        } else {
            (Mode::Managed, first)
        };
        let name = match it.next() {
            Some(Token::Name(n)) => n,
            _ => return Err(e("expected KIND.NAME, for example `record.a`")),
        };
        let resource = ResourceAddr { module, mode, kind, name };
        match it.next() {
            None => Ok(Target::Resource(resource)),
            Some(Token::Key(key)) if it.next().is_none() => Ok(Target::Instance(InstanceAddr { resource, key })),
            _ => Err(e("unexpected text after the resource name")),
        }
    }
}

impl FromStr for InstanceAddr {
    type Err = AddrError;
    fn from_str(input: &str) -> Result<Self, AddrError> {
        match input.parse::<Target>()? {
            Target::Instance(i) => Ok(i),
            Target::Resource(r) => Ok(InstanceAddr { resource: r, key: InstanceKey::None }),
            Target::Module(_) => Err(AddrError { input: input.into(), reason: "a module is not a resource instance".into() }),
        }
    }
}

impl FromStr for ResourceAddr {
    type Err = AddrError;
    fn from_str(input: &str) -> Result<Self, AddrError> {
        match input.parse::<Target>()? {
            Target::Resource(r) => Ok(r),
            _ => Err(AddrError { input: input.into(), reason: "expected a resource address such as `record.a`".into() }),
        }
    }
}

impl serde::Serialize for InstanceAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for InstanceAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in ["record.a", "record.a[3]", "record.a[\"x.y\"]", "module.m.module.n.data.bucket.b[\"k\"]", "module.m.record.a"] {
            let t: Target = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        assert_eq!("module.m".parse::<Target>().unwrap(), Target::Module(vec!["m".into()]));
        assert!(matches!("record.a[\"3\"]".parse::<Target>().unwrap(), Target::Instance(InstanceAddr { key: InstanceKey::Str(_), .. })));
    }

    #[test]
    fn rejects_garbage() {
        assert!("record".parse::<Target>().is_err());
        assert!("record.a.b".parse::<Target>().is_err());
        assert!("record.a[".parse::<Target>().is_err());
    }

    #[test]
    fn matching() {
        let i: InstanceAddr = "module.m.record.a[1]".parse().unwrap();
        assert!(i.matches(&"module.m".parse().unwrap()));
        assert!(i.matches(&"module.m.record.a".parse().unwrap()));
        assert!(!i.matches(&"record.a".parse().unwrap()));
    }
}
