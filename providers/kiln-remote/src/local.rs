//! Scripts run with bash on this machine, the same way [`crate::Ssh`] runs them on a host:
//! the script on stdin (`bash -s -- ARGS`), so user text never goes through a shell's parsing
//! of a command line.

use std::path::Path;

use tokio::io::AsyncWriteExt;

use crate::Output;

/// Runs `script` with bash in `dir`, with `args` as its positional parameters. The error says
/// why bash could not run at all.
pub async fn run(dir: &Path, script: &str, args: &[&str]) -> Result<Output, String> {
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
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await.map_err(|e| format!("cannot send a script to bash: {e}"))?;
        drop(stdin);
    }
    let out = child.wait_with_output().await.map_err(|e| format!("bash failed: {e}"))?;
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
    async fn a_missing_directory_is_an_error() {
        let e = run(Path::new("/nonexistent/kiln-remote"), "true", &[]).await.unwrap_err();
        assert!(e.contains("/nonexistent/kiln-remote"), "{e}");
    }
}
