//! The git commit a plan is made from, shown to the reviewer of a saved plan: `git rev-parse
//! HEAD` in the configuration's directory, with `-dirty` when `git status --porcelain` lists
//! changes under it. Git runs as a child process with a short timeout; no git, a directory
//! outside a work tree, a repository without commits or a git that does not answer in time
//! give `None`, silently: git never fails a plan.

use std::path::Path;
use std::time::Duration;

/// How long each git command may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// `HEAD`'s commit for `dir`, `COMMIT-dirty` when files under `dir` differ from it; `None` when
/// that cannot be told.
///
/// Dirty means a tracked file under `dir` is modified, added, deleted or renamed, or an
/// untracked `*.kiln.hcl` file is there (it is configuration). Other untracked files (`.kiln/`
/// state, the saved plan and the markdown a CI job writes beside them) do not count.
pub(crate) async fn commit(dir: &Path) -> Option<String> {
    let head = git(dir, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).await?;
    let head = String::from_utf8(head).ok()?.trim().to_string();
    if head.len() < 40 || !head.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let status = git(dir, &["status", "--porcelain=v1", "-z", "--untracked-files=all", "--", "."]).await?;
    Some(if dirty(&status) { format!("{head}-dirty") } else { head })
}

/// Whether `git status --porcelain=v1 -z` output lists a change that counts (see [`commit`]).
fn dirty(status: &[u8]) -> bool {
    status.split(|b| *b == 0).filter(|e| !e.is_empty()).any(|e| !e.starts_with(b"?? ") || e.ends_with(b".kiln.hcl"))
}

/// `git ARGS` in `dir`: its stdout when it exits 0 within [`TIMEOUT`], else `None` (the child is
/// killed when it takes longer).
async fn git(dir: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let child = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        // `git status` refreshes the index unless told not to: a plan never writes to the repository.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let out = tokio::time::timeout(TIMEOUT, child.wait_with_output()).await.ok()?.ok()?;
    out.status.success().then_some(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::dirty;

    #[test]
    fn untracked_files_other_than_configuration_are_not_changes() {
        assert!(!dirty(b""));
        assert!(!dirty(b"?? .kiln/state.json\0?? plan.md\0?? plan.kiln\0"));
        assert!(dirty(b"?? extra.kiln.hcl\0"));
        assert!(dirty(b" M main.kiln.hcl\0"));
        assert!(dirty(b"R  new.kiln.hcl\0old.kiln.hcl\0"));
        assert!(dirty(b"D  train.py\0"));
    }
}
