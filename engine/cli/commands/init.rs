//! `kiln init`: a starter configuration in an empty directory (`--template ml`, the default, or
//! `record`), the backend record and state migration.

use crate::cli::{Template, VarArgs};
use std::path::Path;
use std::sync::Arc;

use super::*;

/// The starters `kiln init` writes in a directory without configuration: file name and text.
fn starter(template: Template) -> &'static [(&'static str, &'static str)] {
    match template {
        Template::Ml => &[
            ("main.kiln.hcl", include_str!("../templates/ml/main.kiln.hcl")),
            ("train.py", include_str!("../../../examples/quickstart/train.py")),
        ],
        Template::Record => &[("main.kiln.hcl", include_str!("../templates/record.kiln.hcl"))],
    }
}

pub(crate) async fn init(cx: &Ctx, vars: &VarArgs, migrate_state: bool, reconfigure: bool, template: Option<Template>) -> R {
    let dir = cx.dir();
    let ops = &cx.ops;
    let has_config = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().ends_with(".kiln.hcl")))
        .unwrap_or(false);
    if has_config && template.is_some() {
        return Err(Diagnostic::error("E-INIT-EXISTS", format!("{} already holds a configuration (*.kiln.hcl)", dir.display()))
            .hint("`kiln init --template` writes a starter only into a directory without one: run it in a new directory, or `kiln init` here to prepare the backend")
            .into());
    }
    if !has_config {
        let template = template.unwrap_or(Template::Ml);
        let files = starter(template);
        if let Some((name, _)) = files.iter().find(|(name, _)| dir.join(name).exists()) {
            return Err(Diagnostic::error("E-INIT-EXISTS", format!("the starter would overwrite {name}"))
                .hint(format!("move {name} away, or run `kiln init` in a new directory"))
                .into());
        }
        for (name, text) in files {
            std::fs::write(dir.join(name), text).map_err(|e| {
                Diagnostic::error("E-INIT-WRITE", format!("cannot write {name}: {e}")).hint("check that the directory is writable")
            })?;
        }
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        match template {
            Template::Ml => cx.printer.note(format_args!(
                "Created {}: a bucket for checkpoints, a 2-node cluster and a training job, on this machine. Run `kiln plan` to see what it does, then `kiln apply --wait` to train. (`kiln init --template record` writes the smallest starter instead.)",
                names.join(" and ")
            )),
            Template::Record => cx.printer.note("Created main.kiln.hcl. Run `kiln plan` to see what it does."),
        }
    }
    std::fs::create_dir_all(dir.join(".kiln"))
        .map_err(|e| Diagnostic::error("E-INIT-WRITE", format!("cannot create .kiln: {e}")).hint("check that the directory is writable"))?;
    let l = load(cx, vars)?;
    let cfg = backend_config(&l)?;
    let recorded = recorded_backend(dir)?;
    // Never initialised, but local state is there: that is what a new remote backend replaces.
    let previous = recorded.clone().or_else(|| {
        let local = dir.join(kiln_state::LocalBackend::DEFAULT_PATH);
        local.exists().then_some(kiln_ops::BackendConfig::local(local))
    });
    match previous {
        Some(old) if identity(&old, dir) != identity(&cfg, dir) => {
            if reconfigure {
                cx.printer.note(format_args!(
                    "The backend changed from {} to {}; nothing was copied (--reconfigure).",
                    describe(&old),
                    describe(&cfg)
                ));
            } else if migrate_state {
                migrate(ops, &l, &old, &cfg).await?;
            } else {
                return Err(Diagnostic::error("E-BACKEND-CHANGED", format!("the backend changed from {} to {}", describe(&old), describe(&cfg)))
                    .hint("run `kiln init --migrate-state` to copy every workspace's state to the new backend, or `kiln init --reconfigure` to use the new backend as it is")
                    .into());
            }
        }
        _ if migrate_state => cx.printer.note("The backend did not change since the last init: there is nothing to migrate."),
        _ => {}
    }
    record_backend(dir, &cfg)?;
    cx.printer.note(format_args!("kiln is initialized in {} (backend \"{}\": {})", dir.display(), cfg.kind(), describe(&cfg)));
    Ok(ExitStatus::Success)
}

/// Where `kiln init` records the backend it initialised (settings included: like Terraform's
/// `.terraform/terraform.tfstate`, it may hold credentials, so it is private to its owner).
pub(crate) const BACKEND_RECORD: &str = ".kiln/backend.json";

fn recorded_backend(dir: &Path) -> Result<Option<kiln_ops::BackendConfig>, Failure> {
    let path = dir.join(BACKEND_RECORD);
    match std::fs::read(&path) {
        Ok(b) => backends().read_record(&b).map(Some).map_err(|e| {
            Diagnostic::error("E-BACKEND-RECORD", format!("`{BACKEND_RECORD}` is unreadable ({e})"))
                .hint("delete it and run `kiln init` again")
                .into()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Diagnostic::error("E-BACKEND-RECORD", format!("cannot read `{BACKEND_RECORD}`: {e}"))
            .hint("check the permissions of .kiln, or delete the file and run `kiln init` again")
            .into()),
    }
}

fn record_backend(dir: &Path, cfg: &kiln_ops::BackendConfig) -> Result<(), Failure> {
    let path = dir.join(BACKEND_RECORD);
    let mut text = serde_json::to_vec_pretty(cfg)
        .map_err(|e| Diagnostic::error("E-BACKEND-RECORD", format!("cannot encode the backend record: {e}")).hint("please report this"))?;
    text.push(b'\n');
    let tmp = path.with_extension("json.tmp");
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let r = o
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &text).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, &path));
    r.map_err(|e| {
        Diagnostic::error("E-BACKEND-RECORD", format!("cannot write `{BACKEND_RECORD}`: {e}")).hint("check that .kiln is writable").into()
    })
}

/// What identifies a backend's storage, without secrets; local paths relative to `dir`.
fn identity(cfg: &kiln_ops::BackendConfig, dir: &Path) -> serde_json::Value {
    match cfg.local_path() {
        Some(path) => serde_json::json!({"type": "local", "path": path.strip_prefix(dir).unwrap_or(&path)}),
        None => cfg.identity(),
    }
}

fn describe(cfg: &kiln_ops::BackendConfig) -> String {
    let d = cfg.open(kiln_state::DEFAULT_WORKSPACE, Arc::new(kiln_state::Plain)).describe();
    format!("{} `{d}`", cfg.kind())
}

/// Refuses to use a backend other than the one `kiln init` recorded (if it recorded one).
pub(crate) fn check_initialised(dir: &Path, cfg: &kiln_ops::BackendConfig) -> Result<(), Failure> {
    match recorded_backend(dir)? {
        Some(old) if identity(&old, dir) != identity(cfg, dir) => Err(Diagnostic::error(
            "E-BACKEND-CHANGED",
            format!("the backend changed since `kiln init`: it was {} and is now {}", describe(&old), describe(cfg)),
        )
        .hint("run `kiln init --migrate-state` to copy the state to the new backend, or `kiln init --reconfigure` to use the new backend as it is")
        .into()),
        _ => Ok(()),
    }
}

/// Copies every workspace's state from `from` to `to` ([`kiln_ops::migrate`]: each under both
/// locks, verified by reading it back; a destination holding another state is refused). The
/// source is left as it was.
async fn migrate(
    ops: &kiln_ops::operation::Context,
    l: &Loaded,
    from: &kiln_ops::BackendConfig,
    to: &kiln_ops::BackendConfig,
) -> Result<(), Failure> {
    let codec = codec(l)?;
    let (c1, c2) = (codec.clone(), codec);
    let open_from = move |ws: &str| -> Arc<dyn kiln_state::StateBackend> { Arc::from(from.open(ws, c1.clone())) };
    let open_to = move |ws: &str| -> Arc<dyn kiln_state::StateBackend> { Arc::from(to.open(ws, c2.clone())) };
    let copied = kiln_ops::migrate::migrate(ops, &open_from, &open_to).await?;
    l.printer.note(format_args!(
        "Migrated {copied} workspace(s) from {} to {}. The old state was left in place: delete it once you no longer need it.",
        describe(from),
        describe(to)
    ));
    Ok(())
}
