//! `kiln workspace new|select|list|show|delete`: several states (staging, prod, ...) for one
//! configuration in one backend. The selected workspace is stored in `.kiln/environment` (as
//! Terraform's `.terraform/environment`); `KILN_WORKSPACE` overrides it. Where each backend keeps
//! a workspace's state: local `.kiln/workspaces/NAME/state.json`, s3 `env:/NAME/<key>`,
//! postgres one row per workspace.

use std::path::Path;

use kiln_state::{check_workspace_name, State, DEFAULT_WORKSPACE};

use super::*;
use crate::cli::WorkspaceCommand;

/// The file naming the selected workspace.
pub(crate) const ENV_FILE: &str = ".kiln/environment";

/// The selected workspace: `KILN_WORKSPACE`, else `.kiln/environment`, else `default`.
pub(crate) fn current(dir: &Path) -> Result<String, String> {
    let (name, from) = match std::env::var("KILN_WORKSPACE") {
        Ok(v) if !v.trim().is_empty() => (v.trim().to_string(), "the KILN_WORKSPACE environment variable".to_string()),
        _ => match std::fs::read_to_string(dir.join(ENV_FILE)) {
            Ok(s) if !s.trim().is_empty() => (s.trim().to_string(), format!("`{ENV_FILE}`")),
            Ok(_) => (DEFAULT_WORKSPACE.to_string(), String::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (DEFAULT_WORKSPACE.to_string(), String::new()),
            Err(e) => {
                return Err(format!(
                    "Error: cannot read `{ENV_FILE}`: {e}\n  = help: check its permissions, or delete it to use the default workspace"
                ))
            }
        },
    };
    check_workspace_name(&name).map_err(|e| format!("Error: {e}\n  = help: it comes from {from}; fix or remove it"))?;
    Ok(name)
}

fn select(dir: &Path, name: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir.join(".kiln")).map_err(|e| format!("Error: cannot create .kiln: {e}"))?;
    std::fs::write(dir.join(ENV_FILE), format!("{name}\n")).map_err(|e| format!("Error: cannot write `{ENV_FILE}`: {e}"))?;
    if std::env::var("KILN_WORKSPACE").is_ok_and(|v| !v.trim().is_empty() && v.trim() != name) {
        eprintln!("Warning: KILN_WORKSPACE is set and overrides the selected workspace while it is set");
    }
    Ok(())
}

async fn names(config: &Config, dir: &Path) -> Result<Vec<String>, String> {
    let b = open_workspace(config, dir, DEFAULT_WORKSPACE)?;
    let mut names = b.workspaces().await.map_err(|e| format!("Error: cannot list workspaces: {e}"))?;
    names.push(DEFAULT_WORKSPACE.to_string());
    names.sort();
    names.dedup();
    Ok(names)
}

/// Creates workspace `name` with an empty state, so that it is listed.
async fn create(ops: &kiln_ops::operation::Context, config: &Config, dir: &Path, name: &str) -> Result<(), Failure> {
    let b = open_workspace(config, dir, name)?;
    kiln_ops::operation::run(ops, &b, "workspace new", |_| async {
        match b.read().await {
            Ok(None) => b.write(&State::new()).await.map_err(|e| format!("Error: cannot create workspace `{name}`: {e}").into()),
            Ok(Some(_)) => Err(format!("Error: workspace `{name}` already exists\n  = help: `kiln workspace select {name}` switches to it").into()),
            Err(e) => Err(format!("Error: {e}").into()),
        }
    })
    .await
}

pub(crate) async fn workspace_cmd(ops: &kiln_ops::operation::Context, dir: &Path, cmd: WorkspaceCommand) -> R {
    let (config, _) = kiln_config::load(dir);
    let config = config.expect("config");
    let cur = current(dir)?;
    match cmd {
        WorkspaceCommand::Show => {
            println!("{cur}");
            Ok(ExitStatus::Success)
        }
        WorkspaceCommand::List => {
            let mut all = names(&config, dir).await?;
            all.push(cur.clone());
            all.sort();
            all.dedup();
            for n in all {
                println!("{} {n}", if n == cur { "*" } else { " " });
            }
            Ok(ExitStatus::Success)
        }
        WorkspaceCommand::New { name } => {
            check_workspace_name(&name).map_err(|e| format!("Error: {e}"))?;
            if names(&config, dir).await?.contains(&name) {
                return Err(
                    format!("Error: workspace `{name}` already exists\n  = help: `kiln workspace select {name}` switches to it").into()
                );
            }
            create(ops, &config, dir, &name).await?;
            select(dir, &name)?;
            println!("Created and switched to workspace \"{name}\".");
            Ok(ExitStatus::Success)
        }
        WorkspaceCommand::Select { name, or_create } => {
            check_workspace_name(&name).map_err(|e| format!("Error: {e}"))?;
            let all = names(&config, dir).await?;
            if !all.contains(&name) {
                if !or_create {
                    return Err(format!(
                        "Error: workspace `{name}` does not exist (workspaces: {})\n  = help: `kiln workspace new {name}` creates it, or pass --or-create",
                        all.join(", ")
                    ).into());
                }
                create(ops, &config, dir, &name).await?;
            }
            select(dir, &name)?;
            println!("Switched to workspace \"{name}\".");
            Ok(ExitStatus::Success)
        }
        WorkspaceCommand::Delete { name, force } => {
            check_workspace_name(&name).map_err(|e| format!("Error: {e}"))?;
            if name == DEFAULT_WORKSPACE {
                return Err(
                    "Error: the `default` workspace cannot be deleted\n  = help: `kiln destroy` in it removes what it manages".into()
                );
            }
            if name == cur {
                return Err(format!(
                    "Error: workspace `{name}` is selected and cannot be deleted\n  = help: `kiln workspace select default` first"
                )
                .into());
            }
            if !names(&config, dir).await?.contains(&name) {
                return Err(
                    format!("Error: workspace `{name}` does not exist\n  = help: `kiln workspace list` shows the workspaces").into()
                );
            }
            let b = open_workspace(&config, dir, &name)?;
            kiln_ops::operation::run(ops, &b, "workspace delete", |_| async {
                let state = read_state(b.as_ref()).await?;
                if !state.resources.is_empty() && !force {
                    return Err(format!(
                        "Error: workspace `{name}` still manages {} resource(s)\n  = help: destroy them first (`KILN_WORKSPACE={name} kiln destroy`), or pass --force to delete its state and leave them unmanaged",
                        state.resources.len()
                    )
                    .into());
                }
                b.delete_state().await.map_err(|e| Failure::from(format!("Error: cannot delete workspace `{name}`: {e}")))
            })
            .await?;
            println!("Deleted workspace \"{name}\".");
            Ok(ExitStatus::Success)
        }
    }
}
