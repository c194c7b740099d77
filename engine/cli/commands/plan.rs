//! `kiln plan`: the plan in the format asked for (views in `kiln-views`), and `--out`.

use crate::cli::PlanArgs;
use crate::view_plan;
use kiln_plan::Mode;
use kiln_value::Value;
use std::path::{Path, PathBuf};

use super::*;

pub(crate) async fn plan_cmd(cx: &Ctx, args: &PlanArgs, mode: Mode, out: Option<PathBuf>, detailed: bool, format: kiln_views::Format) -> R {
    let dir = cx.dir();
    let ops = &cx.ops;
    let l = load(cx, &args.vars)?;
    let backend = open(&l)?;
    let l = &l;
    let (mut plan, history) = kiln_ops::operation::run(ops, &backend, "plan", |s| async move {
        let state = s.read_state().await?;
        let plan = make_plan(&s, dir, l, &state, &kiln_core::Providers::new(), args, mode).await?;
        let history = super::watch::history(&state, &plan);
        Ok::<_, Failure>((plan, history))
    })
    .await?;
    // For the reviewer: the commit the configuration is at (None outside git, silently).
    plan.git_commit = super::git::commit(dir).await;
    view_plan::print(cx, &plan, format);
    for line in history {
        cx.printer.note(line);
    }
    let broken = plan.policies.iter().any(|p| !p.passed());
    if let Some(path) = out {
        let text =
            plan.to_json().map_err(|e| Diagnostic::error("E-PLAN-SAVE", e.to_string()).hint("nothing was written; please report this"))?;
        let codec = codec(l)?;
        if codec.name() == "plain" && plan.variables.values().any(Value::contains_sensitive) {
            cx.printer
                .warning(format_args!("the saved plan holds sensitive variable values in plain text; keep {} private", path.display()));
        }
        let bytes = codec
            .seal(text.as_bytes())
            .map_err(|e| Diagnostic::error("E-PLAN-SAVE", e.to_string()).hint("check the `encryption` block's key; nothing was written"))?;
        write_private(&path, &bytes).map_err(|e| {
            Diagnostic::error("E-PLAN-SAVE", format!("cannot write `{}`: {e}", path.display()))
                .hint("check that the directory exists and is writable")
        })?;
        if broken {
            // Kept for review (a CI artifact); apply refuses it.
            cx.printer
                .note(format_args!("\nSaved the plan to {} for review: it breaks a policy, so kiln apply refuses it.", path.display()));
        } else {
            cx.printer.note(format_args!(
                "\nSaved the plan to {}. Apply exactly this plan with: kiln apply {}",
                path.display(),
                path.display()
            ));
        }
    }
    // A broken policy wins over --detailed-exitcode's 2: CI must not read it as "changes present".
    if let Some(code) = refuse_policies(l, &plan, "kiln apply refuses this plan") {
        return Ok(code);
    }
    Ok(if detailed && plan.has_changes() { ExitStatus::Changes } else { ExitStatus::Success })
}

/// Writes a saved plan readable by its owner only (mode 0600, as state and its backup): it holds
/// variable values and planned attributes, secrets included. An existing file is made private too.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}
