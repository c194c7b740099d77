//! The engine boundary for provider diagnostics: a provider sees plain values (its code formats
//! messages with `as_str()` and `{}`), so whatever it says about an object is redacted here with
//! the printed forms of the object's sensitive values ([`kiln_value::Secrets`]) before it reaches
//! progress lines, errors or logs. Every call into a provider that gets marked values passes its
//! diagnostics through [`diags`].

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_value::{Secrets, Value};

/// The secrets of every value a provider was given.
pub(crate) fn secrets<'a>(values: impl IntoIterator<Item = &'a Value>) -> Secrets {
    let mut s = Secrets::default();
    for v in values {
        s.add(v);
    }
    s
}

/// The secrets of a value in state: its marked parts and the attributes state recorded as
/// sensitive (`names`), whose values state keeps without marks.
pub(crate) fn secrets_named(v: Option<&Value>, names: &[String]) -> Secrets {
    let mut s = Secrets::default();
    if let Some(v) = v {
        s.add(v);
        for n in names {
            if let Some(x) = v.get(n) {
                s.add(&x.clone().sensitive());
            }
        }
    }
    s
}

/// `d` with every text that quotes one of the matcher's secrets redacted.
fn redact_with(mut d: Diagnostic, m: &kiln_value::Matcher<'_>) -> Diagnostic {
    d.summary = m.redact(&d.summary);
    d.detail = d.detail.map(|t| m.redact(&t));
    d.hint = d.hint.map(|t| m.redact(&t));
    for l in d.primary.iter_mut().chain(d.secondary.iter_mut()) {
        l.message = m.redact(&l.message);
    }
    d
}

/// Every diagnostic of `d` redacted (one matcher for all of them).
pub(crate) fn diags(d: Diagnostics, secrets: &Secrets) -> Diagnostics {
    if secrets.is_empty() || d.is_empty() {
        return d;
    }
    let m = secrets.matcher();
    d.into_iter().map(|x| redact_with(x, &m)).collect()
}
