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

/// `script` made ready to read an input sent on stdin right after it (`Ssh::run_with_input`,
/// `local::run_with_input`): bash reads a script from a pipe one byte at a time and runs each
/// command once it has read it, so the script is wrapped in one group, read whole before any of
/// it runs, and followed by `exit`: the input's bytes are never read as commands, and commands
/// of the script read them from stdin. `$KILN_INPUT_SIZE` holds the input's size; [`receive`]
/// writes it to a file.
pub fn with_input(script: &str, size: usize) -> String {
    format!("KILN_INPUT_SIZE={size}\n{{\n{script}\n}}; exit $?\n")
}

/// A shell command (for a script run [`with_input`]) that writes the whole input to `path` (a
/// shell word: quoted, or a variable in double quotes), failing when it came short.
pub fn receive(path: &str) -> String {
    format!("{{ head -c \"$KILN_INPUT_SIZE\" > {path} && [ \"$(wc -c < {path})\" -eq \"$KILN_INPUT_SIZE\" ]; }}")
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

    /// The input after a script reaches its commands byte for byte, the script's own text never
    /// mixing with it; an input the script does not read is never run as commands.
    #[test]
    fn an_input_follows_its_script() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("got");
        let mut input: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        input.extend_from_slice(b"\ntouch ran\n");
        let script = format!("set -u\nif true; then\n  {} || exit 9\nfi\necho done", receive(&quote(&f.display().to_string())));
        for (script, want) in [(script, Some(0)), ("echo early; exit 4".to_string(), Some(4))] {
            let mut child = std::process::Command::new("bash")
                .arg("-s")
                .current_dir(dir.path())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let text = with_input(&script, input.len());
            let data = input.clone();
            let writer = std::thread::spawn(move || {
                let _ = stdin.write_all(text.as_bytes());
                let _ = stdin.write_all(&data);
            });
            let out = child.wait_with_output().unwrap();
            writer.join().unwrap();
            assert_eq!(out.status.code(), want);
        }
        assert_eq!(std::fs::read(&f).unwrap(), input);
        assert!(!dir.path().join("ran").exists(), "the input is never run");
    }

    #[test]
    fn files_as_base64() {
        assert_eq!(write_file("/d/f", b"hi"), "printf %s 'aGk=' | base64 -d > '/d/f'\n");
        assert_eq!(write_file("it's", b""), "printf %s '' | base64 -d > 'it'\\''s'\n");
    }
}
