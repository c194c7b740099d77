//! What a variable's value is once given: the one rule the core's planner and the resolver of
//! root variables before planning (`kiln_ops::vars::RootVars`) share.

use kiln_diag::Diagnostic;
use kiln_value::{convert, Value};

use crate::Variable;

impl Variable {
    /// The value a module sees for this variable when `raw` is given (or defaulted): converted
    /// to the declared type (a `number` given as `"05"` is 5), null refused where
    /// `nullable = false` (`E-VAR-NULL`), marked sensitive where declared. A value that does not
    /// convert is `E-VAR-TYPE`, whose message never quotes a sensitive value.
    ///
    /// Returns the value to go on with (null when null is refused, unknown when the type is
    /// wrong) and the error, if any. The error's primary label is the declaration; a caller
    /// that knows the reference may add it as a second label.
    pub fn accept(&self, raw: Value) -> (Value, Option<Diagnostic>) {
        let name = &self.name;
        let addr = format!("var.{name}");
        let (value, error) = match convert(raw, &self.ty) {
            Ok(v) if v.is_null() && !self.nullable => {
                let d = Diagnostic::error("E-VAR-NULL", format!("variable `{name}` must not be null"))
                    .at(self.span.clone(), "declared nullable = false")
                    .address(&addr)
                    .hint(format!("pass a value for `{name}`"));
                (v, Some(d))
            }
            Ok(v) => (v, None),
            Err(e) => {
                // The conversion error quotes the value: not for a sensitive variable.
                let why = if self.sensitive { format!("the (sensitive) value is not a {}", self.ty) } else { e.to_string() };
                let d = Diagnostic::error("E-VAR-TYPE", format!("invalid value for variable `{name}`: {why}"))
                    .at(self.span.clone(), "declared here")
                    .address(&addr)
                    .hint(format!("the variable's type is {}", self.ty));
                (Value::Unknown, Some(d))
            }
        };
        (value.mark_if(self.sensitive), error)
    }
}

#[cfg(test)]
mod tests {
    use kiln_diag::{FileId, Span};
    use kiln_value::Type;

    use super::*;

    fn var(ty: Type, sensitive: bool, nullable: bool) -> Variable {
        Variable {
            name: "v".into(),
            ty,
            default: None,
            description: None,
            sensitive,
            nullable,
            validations: Vec::new(),
            span: Span::new(FileId(0), 3..9),
        }
    }

    #[test]
    fn a_value_converts_to_the_declared_type() {
        let (v, d) = var(Type::Number, false, true).accept(Value::from("05"));
        assert_eq!(v, Value::from(5i64));
        assert!(d.is_none(), "{d:?}");
        // `any` keeps the value as given.
        assert_eq!(var(Type::Any, false, true).accept(Value::from("05")).0, Value::from("05"));
    }

    #[test]
    fn null_is_refused_only_where_not_nullable() {
        let (v, d) = var(Type::String, false, false).accept(Value::Null);
        assert!(v.is_null());
        let d = d.expect("an error");
        assert_eq!(d.code, "E-VAR-NULL");
        assert_eq!(d.address.as_deref(), Some("var.v"));
        assert_eq!(d.primary.as_ref().map(|l| l.span.range.clone()), Some(3..9), "the declaration");
        assert!(d.hint.is_some());
        let (v, d) = var(Type::String, false, true).accept(Value::Null);
        assert!(v.is_null() && d.is_none(), "{d:?}");
    }

    #[test]
    fn a_sensitive_variable_is_marked() {
        let (v, d) = var(Type::Number, true, true).accept(Value::from("05"));
        assert!(d.is_none(), "{d:?}");
        assert!(v.contains_sensitive());
        assert_eq!(v.unmarked(), &Value::from(5i64));
        let (v, _) = var(Type::Number, false, true).accept(Value::from("05"));
        assert!(!v.contains_sensitive());
    }

    #[test]
    fn a_type_error_never_quotes_a_sensitive_value() {
        let (v, d) = var(Type::Number, true, true).accept(Value::from("hunter2"));
        let d = d.expect("an error");
        assert_eq!(d.code, "E-VAR-TYPE");
        assert_eq!(d.primary.as_ref().map(|l| l.span.range.clone()), Some(3..9), "the declaration");
        let text = format!("{d:?}");
        assert!(!text.contains("hunter2") && text.contains("(sensitive)"), "{text}");
        assert!(v.contains_sensitive(), "the unknown stays marked");
        // Not sensitive: the message may say what was given.
        let (_, d) = var(Type::Number, false, true).accept(Value::from("five"));
        assert_eq!(d.expect("an error").code, "E-VAR-TYPE");
    }
}
