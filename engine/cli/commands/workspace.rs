//! `kiln workspace new|select|list|show|delete`: several states (staging, prod, ...) for one
//! configuration in one backend. The selected workspace is stored in `.kiln/environment` (as
//! Terraform's `.terraform/environment`); `KILN_WORKSPACE` overrides it. Where each backend keeps
//! a workspace's state: local `.kiln/workspaces/NAME/state.json`, s3 `env:/NAME/<key>`,
//! postgres one row per workspace.

use kiln_state::{check_workspace_name, State, DEFAULT_WORKSPACE};

use super::*;
use crate::cli::WorkspaceCommand;

/// The file naming the selected workspace.
pub(crate) const ENV_FILE: &str = ".kiln/environment";

/// The selected workspace: `KILN_WORKSPACE` (in the settings), else `.kiln/environment`, else
/// `default`.
pub(crate) fn current(settings: &Settings) -> Result<String, Failure> {
    let (name, from) = match &settings.workspace {
        Some(v) => (v.clone(), "the KILN_WORKSPACE environment variable".to_string()),
        None => match std::fs::read_to_string(settings.dir.join(ENV_FILE)) {
            Ok(s) if !s.trim().is_empty() => (s.trim().to_string(), format!("`{ENV_FILE}`")),
            Ok(_) => (DEFAULT_WORKSPACE.to_string(), String::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (DEFAULT_WORKSPACE.to_string(), String::new()),
            Err(e) => {
                return Err(Diagnostic::error("E-WORKSPACE-READ", format!("cannot read `{ENV_FILE}`"))
                    .detail(e.to_string())
                    .hint("check its permissions, or delete it to use the default workspace")
                    .into())
            }
        },
    };
    check_workspace_name(&name)
        .map_err(|e| Diagnostic::error("E-WORKSPACE-NAME", e.to_string()).hint(format!("it comes from {from}; fix or remove it")))?;
    Ok(name)
}

/// A workspace name given on the command line, checked.
fn valid_name(name: &str) -> Result<(), Failure> {
    check_workspace_name(name)
        .map_err(|e| Diagnostic::error("E-WORKSPACE-NAME", e.to_string()).hint("`kiln workspace list` shows the workspaces").into())
}

fn select(cx: &Ctx, name: &str) -> Result<(), Failure> {
    let dir = cx.dir();
    let io = |what: String, e: std::io::Error| {
        Failure::from(
            Diagnostic::error("E-WORKSPACE-WRITE", what)
                .detail(e.to_string())
                .hint("check that the directory is writable; the selected workspace is unchanged"),
        )
    };
    std::fs::create_dir_all(dir.join(".kiln")).map_err(|e| io("cannot create `.kiln`".into(), e))?;
    std::fs::write(dir.join(ENV_FILE), format!("{name}\n")).map_err(|e| io(format!("cannot write `{ENV_FILE}`"), e))?;
    if cx.settings.workspace.as_deref().is_some_and(|v| v != name) {
        cx.printer.warning("KILN_WORKSPACE is set and overrides the selected workspace while it is set");
    }
    Ok(())
}

fn exists(name: &str) -> Failure {
    Diagnostic::error("E-WORKSPACE-EXISTS", format!("workspace `{name}` already exists"))
        .hint(format!("`kiln workspace select {name}` switches to it"))
        .into()
}

async fn names(l: &Loaded) -> Result<Vec<String>, Failure> {
    let b = open_workspace(l, DEFAULT_WORKSPACE)?;
    let mut names = b.workspaces().await.map_err(|e| {
        Diagnostic::error("E-WORKSPACE-LIST", "cannot list workspaces")
            .detail(e.to_string())
            .hint(format!("check that {} is reachable", b.describe()))
    })?;
    names.push(DEFAULT_WORKSPACE.to_string());
    names.sort();
    names.dedup();
    Ok(names)
}

/// Creates workspace `name` with an empty state, so that it is listed.
async fn create(cx: &Ctx, l: &Loaded, name: &str) -> Result<(), Failure> {
    let b = open_workspace(l, name)?;
    kiln_ops::operation::run(&cx.ops, &b, "workspace new", |_| async {
        match b.read().await {
            Ok(None) => b.write(&State::new()).await.map_err(|e| {
                Diagnostic::error("E-WORKSPACE-CREATE", format!("cannot create workspace `{name}`"))
                    .detail(e.to_string())
                    .hint(format!("check that {} is reachable and writable", b.describe()))
                    .into()
            }),
            Ok(Some(_)) => Err(exists(name)),
            Err(e) => Err(Diagnostic::error("E-STATE-READ", e.to_string()).hint("the state was left untouched").into()),
        }
    })
    .await
}

pub(crate) async fn workspace_cmd(cx: &Ctx, cmd: WorkspaceCommand) -> R {
    let l = load_config(cx);
    let cur = l.workspace()?;
    match cmd {
        WorkspaceCommand::Show => {
            cx.printer.data(&cur);
            Ok(ExitStatus::Success)
        }
        WorkspaceCommand::List => {
            let mut all = names(&l).await?;
            all.push(cur.clone());
            all.sort();
            all.dedup();
            for n in all {
                cx.printer.data(format_args!("{} {n}", if n == cur { "*" } else { " " }));
            }
            Ok(ExitStatus::Success)
        }
        WorkspaceCommand::New { name } => {
            valid_name(&name)?;
            if names(&l).await?.contains(&name) {
                return Err(exists(&name));
            }
            create(cx, &l, &name).await?;
            select(cx, &name)?;
            cx.printer.data(format_args!("Created and switched to workspace \"{name}\"."));
            Ok(ExitStatus::Success)
        }
        WorkspaceCommand::Select { name, or_create } => {
            valid_name(&name)?;
            let all = names(&l).await?;
            if !all.contains(&name) {
                if !or_create {
                    return Err(Diagnostic::error("E-WORKSPACE-MISSING", format!("workspace `{name}` does not exist"))
                        .detail(format!("workspaces: {}", all.join(", ")))
                        .hint(format!("`kiln workspace new {name}` creates it, or pass --or-create"))
                        .into());
                }
                create(cx, &l, &name).await?;
            }
            select(cx, &name)?;
            cx.printer.data(format_args!("Switched to workspace \"{name}\"."));
            Ok(ExitStatus::Success)
        }
        WorkspaceCommand::Delete { name, force } => {
            valid_name(&name)?;
            if name == DEFAULT_WORKSPACE {
                return Err(Diagnostic::error("E-WORKSPACE-DEFAULT", "the `default` workspace cannot be deleted")
                    .hint("`kiln destroy` in it removes what it manages")
                    .into());
            }
            if name == cur {
                return Err(Diagnostic::error("E-WORKSPACE-SELECTED", format!("workspace `{name}` is selected and cannot be deleted"))
                    .hint("`kiln workspace select default` first")
                    .into());
            }
            if !names(&l).await?.contains(&name) {
                return Err(Diagnostic::error("E-WORKSPACE-MISSING", format!("workspace `{name}` does not exist"))
                    .hint("`kiln workspace list` shows the workspaces")
                    .into());
            }
            let b = open_workspace(&l, &name)?;
            kiln_ops::operation::run(&cx.ops, &b, "workspace delete", |_| async {
                let state = read_state(b.as_ref()).await?;
                if !state.resources.is_empty() && !force {
                    return Err(Diagnostic::error(
                        "E-WORKSPACE-NOT-EMPTY",
                        format!("workspace `{name}` still manages {} resource(s)", state.resources.len()),
                    )
                    .hint(format!(
                        "destroy them first (`KILN_WORKSPACE={name} kiln destroy`), or pass --force to delete its state and leave them unmanaged"
                    ))
                    .into());
                }
                b.delete_state().await.map_err(|e| {
                    Failure::from(
                        Diagnostic::error("E-WORKSPACE-DELETE", format!("cannot delete workspace `{name}`"))
                            .detail(e.to_string())
                            .hint(format!("check that {} is reachable and writable", b.describe())),
                    )
                })
            })
            .await?;
            cx.printer.data(format_args!("Deleted workspace \"{name}\"."));
            Ok(ExitStatus::Success)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Flags, Terminals};

    fn settings(dir: &Path, env: &[(&str, &str)]) -> Settings {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::resolve(&Flags { lock_timeout: "0s".into(), no_color: false }, env, dir.to_path_buf(), Terminals::default()).unwrap()
    }

    #[test]
    fn kiln_workspace_wins_over_the_selected_file_which_wins_over_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(current(&settings(dir.path(), &[])).unwrap(), DEFAULT_WORKSPACE);
        std::fs::create_dir_all(dir.path().join(".kiln")).unwrap();
        std::fs::write(dir.path().join(ENV_FILE), "staging\n").unwrap();
        assert_eq!(current(&settings(dir.path(), &[])).unwrap(), "staging");
        assert_eq!(current(&settings(dir.path(), &[("KILN_WORKSPACE", "prod")])).unwrap(), "prod");
        // An empty KILN_WORKSPACE is unset.
        assert_eq!(current(&settings(dir.path(), &[("KILN_WORKSPACE", " ")])).unwrap(), "staging");
    }

    #[test]
    fn an_invalid_name_is_a_diagnostic_naming_where_it_comes_from() {
        let dir = tempfile::tempdir().unwrap();
        let f = current(&settings(dir.path(), &[("KILN_WORKSPACE", "no/slashes")])).unwrap_err();
        let d = f.diagnostics().iter().next().unwrap().clone();
        assert_eq!(d.code, "E-WORKSPACE-NAME");
        assert!(d.hint.as_deref().is_some_and(|h| h.contains("KILN_WORKSPACE")), "{:?}", d.hint);
        std::fs::create_dir_all(dir.path().join(".kiln")).unwrap();
        std::fs::write(dir.path().join(ENV_FILE), "bad name\n").unwrap();
        let f = current(&settings(dir.path(), &[])).unwrap_err();
        let d = f.diagnostics().iter().next().unwrap().clone();
        assert!(d.hint.as_deref().is_some_and(|h| h.contains(ENV_FILE)), "{:?}", d.hint);
    }
}
