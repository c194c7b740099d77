//! Type constraint expressions of `variable` blocks (`list(string)`, `object({...})`), read
//! from the syntax tree without evaluating them.

use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::Span as _;
use kiln_diag::{Diagnostic, FileId, Span};
use kiln_value::{ObjectAttr, Type, Value};

fn bad(file: FileId, e: &Expression, what: &str) -> Diagnostic {
    Diagnostic::error("E-TYPE-SYNTAX", format!("invalid type constraint: {what}"))
        .or_at(e.span().map(|r| Span::new(file, r)))
        .hint("write string, number, bool, any, list(T), set(T), map(T), tuple([T, ...]) or object({ name = T, ... })")
}

pub fn parse_type(file: FileId, e: &Expression) -> Result<Type, Diagnostic> {
    match e {
        Expression::Variable(v) => match v.as_str() {
            "string" => Ok(Type::String),
            "number" => Ok(Type::Number),
            "bool" => Ok(Type::Bool),
            "any" => Ok(Type::Any),
            "list" | "map" | "set" => Ok(wrap(v.as_str(), Type::Any)),
            other => Err(bad(file, e, &format!("unknown type `{other}`")).hint(unknown_type_hint(other))),
        },
        // Legacy quoted forms.
        Expression::String(s) => match s.as_str() {
            "string" => Ok(Type::String),
            "list" => Ok(Type::List(Box::new(Type::Any))),
            "map" => Ok(Type::Map(Box::new(Type::Any))),
            other => Err(bad(file, e, &format!("unknown type \"{other}\""))),
        },
        Expression::FuncCall(f) => {
            let name = f.name.name.as_str();
            let args: Vec<&Expression> = f.args.iter().collect();
            match (name, args.as_slice()) {
                ("list" | "set" | "map", [inner]) => Ok(wrap(name, parse_type(file, inner)?)),
                ("list" | "set" | "map", _) => Err(bad(file, e, &format!("`{name}(...)` takes one element type, such as {name}(string)"))),
                ("tuple", [Expression::Array(a)]) => Ok(Type::Tuple(a.iter().map(|t| parse_type(file, t)).collect::<Result<_, _>>()?)),
                ("object", [Expression::Object(o)]) => {
                    let mut attrs = std::collections::BTreeMap::new();
                    for (k, v) in o.iter() {
                        let key = match k {
                            ObjectKey::Ident(i) => i.as_str().to_string(),
                            ObjectKey::Expression(Expression::String(s)) => s.as_str().to_string(),
                            ObjectKey::Expression(x) => return Err(bad(file, x, "object attribute names must be identifiers")),
                        };
                        attrs.insert(key, object_attr(file, v.expr())?);
                    }
                    Ok(Type::Object(attrs))
                }
                ("tuple", _) => Err(bad(file, e, "`tuple(...)` takes a list of types, such as tuple([string, number])")),
                ("object", _) => Err(bad(file, e, "`object(...)` takes an object of types, such as object({ name = string })")),
                ("optional", _) => Err(bad(file, e, "`optional(...)` is only allowed for an attribute of object({ ... })")),
                _ => Err(bad(file, e, &format!("`{name}(...)` is not a type")).hint(unknown_type_hint(name))),
            }
        }
        _ => Err(bad(file, e, "expected a type")),
    }
}

const TYPE_NAMES: &[&str] = &["string", "number", "bool", "any", "list", "set", "map", "tuple", "object"];

fn unknown_type_hint(name: &str) -> String {
    let s = crate::load::suggest(name, TYPE_NAMES);
    if s.starts_with("did you mean") {
        s
    } else {
        "write string, number, bool, any, list(T), set(T), map(T), tuple([T, ...]) or object({ name = T, ... })".to_string()
    }
}

fn object_attr(file: FileId, e: &Expression) -> Result<ObjectAttr, Diagnostic> {
    if let Expression::FuncCall(f) = e {
        if f.name.name.as_str() == "optional" {
            let args: Vec<&Expression> = f.args.iter().collect();
            let (ty, default) = match args.as_slice() {
                [t] => (parse_type(file, t)?, None),
                [t, d] => (parse_type(file, t)?, Some(literal(file, d)?)),
                _ => return Err(bad(file, e, "optional(TYPE) or optional(TYPE, DEFAULT)")),
            };
            return Ok(ObjectAttr { ty, optional: true, default });
        }
    }
    Ok(ObjectAttr { ty: parse_type(file, e)?, optional: false, default: None })
}

/// Defaults inside a type are constants: evaluate them with an empty scope.
fn literal(file: FileId, e: &Expression) -> Result<Value, Diagnostic> {
    struct NoScope;
    impl kiln_eval::Scope for NoScope {
        fn resolve(&self, r: &kiln_eval::Ref) -> Result<Value, Diagnostic> {
            Err(Diagnostic::error("E-TYPE-DEFAULT", format!("`{r}` cannot be used in a type default"))
                .hint("defaults in types must be constants"))
        }
        fn base_dir(&self) -> &std::path::Path {
            std::path::Path::new(".")
        }
    }
    let expr = kiln_eval::Expr::new(file, e.clone());
    kiln_eval::eval(&expr, &NoScope).map_err(|d| d.into_iter().next().unwrap_or_else(|| bad(file, e, "invalid default")))
}

fn wrap(name: &str, t: Type) -> Type {
    match name {
        "list" => Type::List(Box::new(t)),
        "set" => Type::Set(Box::new(t)),
        _ => Type::Map(Box::new(t)),
    }
}
