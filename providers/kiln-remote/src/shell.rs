//! Building remote shell text safely: single-quoting values and embedding file contents as
//! base64 (which needs no quoting), so user scripts and values never mix with kiln's scripts.

use base64::Engine;

/// `s` as one single-quoted shell word.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A shell command that writes `content` to `path` (relative to the current directory or
/// absolute), byte for byte.
pub fn write_file(path: &str, content: &[u8]) -> String {
    format!("printf %s {} | base64 -d > {}\n", quote(&b64(content)), quote(path))
}

/// Standard base64 of `bytes`.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `export K='V'` lines for an environment (names a shell cannot take are left out).
pub fn exports(env: &[(String, String)]) -> String {
    env.iter().filter(|(k, _)| valid_name(k)).map(|(k, v)| format!("export {k}={}\n", quote(v))).collect()
}

/// A name a shell accepts as a variable.
pub fn valid_name(k: &str) -> bool {
    let mut c = k.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn env_lines() {
        let env =
            vec![("A".to_string(), "x y".to_string()), ("1BAD".to_string(), "z".to_string()), ("_b2".to_string(), "it's".to_string())];
        assert_eq!(exports(&env), "export A='x y'\nexport _b2='it'\\''s'\n");
        assert!(valid_name("KILN_NODE_RANK") && !valid_name("A-B") && !valid_name(""));
    }

    #[test]
    fn files_as_base64() {
        assert_eq!(write_file("/d/f", b"hi"), "printf %s 'aGk=' | base64 -d > '/d/f'\n");
        assert_eq!(write_file("it's", b""), "printf %s '' | base64 -d > 'it'\\''s'\n");
    }
}
