//! Building shell text safely: single-quoting values and embedding file contents as base64
//! (which needs no quoting), so user scripts and values never mix with kiln's scripts.

use base64::Engine;

/// `s` as one single-quoted shell word.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A shell command that writes `content` to `path`, byte for byte.
pub(crate) fn write_file(path: &str, content: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(content);
    format!("printf %s {} | base64 -d > {}\n", quote(&b64), quote(path))
}

/// `export K='V'` lines for an environment (names a shell cannot take are left out).
pub(crate) fn exports(env: &[(String, String)]) -> String {
    env.iter().filter(|(k, _)| valid_name(k)).map(|(k, v)| format!("export {k}={}\n", quote(v))).collect()
}

/// A name a shell accepts as a variable.
pub(crate) fn valid_name(k: &str) -> bool {
    let mut c = k.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_env() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        let env = vec![("A".to_string(), "x y".to_string()), ("1BAD".to_string(), "z".to_string())];
        assert_eq!(exports(&env), "export A='x y'\n");
        assert_eq!(write_file("/d/f", b"hi"), "printf %s 'aGk=' | base64 -d > '/d/f'\n");
    }
}
