//! Scripts run with bash on this machine, the same way [`crate::Ssh`] runs them on a host:
//! the script on stdin (`bash -s -- ARGS`), so user text never goes through a shell's parsing
//! of a command line.

use std::path::Path;

use tokio::io::AsyncWriteExt;

use crate::Output;

/// Runs `script` with bash in `dir`, with `args` as its positional parameters. The error says
/// why bash could not run at all.
pub async fn run(dir: &Path, script: &str, args: &[&str]) -> Result<Output, String> {
    exec(dir, script, args, &[]).await
}

/// [`run`], with `input` sent on stdin after the script (see [`crate::shell::with_input`]):
/// the script's commands read it from stdin, `$KILN_INPUT_SIZE` bytes; nothing copies it.
pub async fn run_with_input(dir: &Path, script: &str, args: &[&str], input: &[u8]) -> Result<Output, String> {
    exec(dir, &crate::shell::with_input(script, input.len()), args, input).await
}

async fn exec(dir: &Path, script: &str, args: &[&str], input: &[u8]) -> Result<Output, String> {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-s")
        .arg("--")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run bash in {}: {e}", dir.display()))?;
    let stdin = child.stdin.take();
    // Written while the output is read: a script may print before it reads its input, and may
    // exit without reading all of it (its exit code says how it went).
    let send = async {
        if let Some(mut stdin) = stdin {
            stdin.write_all(script.as_bytes()).await.map_err(|e| format!("cannot send a script to bash: {e}"))?;
            if !input.is_empty() {
                let _ = stdin.write_all(input).await;
            }
        }
        Ok::<(), String>(())
    };
    let (sent, out) = tokio::join!(send, child.wait_with_output());
    let out = out.map_err(|e| format!("bash failed: {e}"))?;
    sent?;
    Ok(Output { code: out.status.code(), stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scripts_get_their_arguments_and_exit_code() {
        let out = run(&std::env::temp_dir(), "printf '%s|' \"$@\"; echo err >&2; exit 3", &["a b", "it's"]).await.unwrap();
        assert_eq!(out.text(), "a b|it's|");
        assert_eq!(out.code, Some(3));
        assert!(!out.ok());
        assert_eq!(out.complaint(), "err");
    }

    #[tokio::test]
    async fn an_input_reaches_the_script_whole() {
        let dir = tempfile::tempdir().unwrap();
        let input: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let script = format!("{} || exit 9\nprintf '%s' \"$1\"", crate::shell::receive("\"$2\""));
        let out = run_with_input(dir.path(), &script, &["ok", "got"], &input).await.unwrap();
        assert_eq!((out.code, out.text()), (Some(0), "ok".to_string()), "{}", out.stderr);
        assert!(std::fs::read(dir.path().join("got")).unwrap() == input);
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_error() {
        let e = run(Path::new("/nonexistent/kiln-remote"), "true", &[]).await.unwrap_err();
        assert!(e.contains("/nonexistent/kiln-remote"), "{e}");
    }
}
