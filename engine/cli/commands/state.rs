//! `kiln state list|show|rm|mv|versions|pull|push`, `kiln import` and `kiln force-unlock`.

use crate::cli::{StateCommand, VarArgs};
use kiln_addrs::InstanceAddr;

use super::*;

pub(crate) async fn state_cmd(cx: &Ctx, cmd: StateCommand) -> R {
    let ops = &cx.ops;
    let l = load_config(cx);
    let backend = open(&l)?;
    match cmd {
        StateCommand::List => {
            for a in read_state(backend.as_ref()).await?.resources.keys() {
                cx.printer.data(format_args!("{a}"));
            }
            Ok(ExitStatus::Success)
        }
        StateCommand::Show { address } => {
            let a = parse_address(&address)?;
            let state = read_state(backend.as_ref()).await?;
            let r = state.resources.get(&a).ok_or_else(|| not_in_state(&a))?;
            cx.printer.data(format_args!("# {a}:\nresource \"{}\" \"{}\" {{", r.kind, a.resource.name));
            for (k, v) in r.attributes.as_map().into_iter().flatten() {
                cx.printer.data(format_args!("    {k} = {}", kiln_views::shown(v, r.sensitive.contains(k))));
            }
            cx.printer.data("}");
            Ok(ExitStatus::Success)
        }
        StateCommand::Rm { addresses } => {
            let addresses: Vec<InstanceAddr> = addresses.iter().map(|a| parse_address(a)).collect::<Result<_, _>>()?;
            kiln_ops::operation::run(ops, &backend, "state rm", |s| async move {
                let mut state = s.read_state().await?;
                for a in &addresses {
                    if state.resources.remove(a).is_none() {
                        return Err(not_in_state(a).into());
                    }
                    // Forgotten with the object: `kiln watch` must not finish a restart of it.
                    state.apply_mutation(&kiln_state::Mutation::ClearEvents { address: a.clone() });
                }
                s.commit(state).await?;
                for a in &addresses {
                    cx.printer.data(format_args!("Removed {a}"));
                }
                Ok(ExitStatus::Success)
            })
            .await
        }
        StateCommand::Mv { from, to } => {
            let (f, t) = (parse_address(&from)?, parse_address(&to)?);
            kiln_ops::operation::run(ops, &backend, "state mv", |s| async move {
                let mut state = s.read_state().await?;
                if state.resources.contains_key(&t) {
                    return Err(Diagnostic::error("E-STATE-ADDRESS", format!("`{t}` already exists in state"))
                        .address(&t)
                        .hint(format!("move it away first (`kiln state mv {t} NEW_ADDRESS`), or pick another address"))
                        .into());
                }
                let r = state.resources.remove(&f).ok_or_else(|| not_in_state(&f))?;
                if r.kind != t.resource.kind {
                    return Err(Diagnostic::error(
                        "E-STATE-MV-KIND",
                        format!("cannot move a `{}` to a `{}` address", r.kind, t.resource.kind),
                    )
                    .address(&f)
                    .hint(format!("the new address must be of the same kind: `{}.NAME`", r.kind))
                    .into());
                }
                state.resources.insert(t.clone(), r);
                // A job's recovery events go with it.
                if let Some(events) = state.events.remove(&f) {
                    state.events.insert(t.clone(), events);
                }
                s.commit(state).await?;
                cx.printer.data(format_args!("Moved {f} to {t}"));
                Ok(ExitStatus::Success)
            })
            .await
        }
        StateCommand::Versions => {
            let versions = backend.versions().await.map_err(|e| {
                Diagnostic::error("E-STATE-VERSIONS", format!("cannot list versions: {e}"))
                    .hint("check that the state backend is reachable")
            })?;
            if versions.is_empty() {
                cx.printer.data(format_args!("No stored versions of {}.", backend.describe()));
                return Ok(ExitStatus::Success);
            }
            cx.printer.data(format_args!("Versions of {}, newest first:", backend.describe()));
            for v in versions {
                let serial = v.serial.map_or("?".to_string(), |s| s.to_string());
                let stored = v.stored.as_deref().unwrap_or("-");
                let mark = if v.current { "  (current)" } else { "" };
                cx.printer.data(format_args!("{}  serial {serial}  {stored}  {} bytes{mark}", v.id, v.size));
            }
            Ok(ExitStatus::Success)
        }
        StateCommand::Pull => {
            let state = read_state(backend.as_ref()).await?;
            // No state yet: nothing, as Terraform prints.
            if !state.lineage.is_empty() {
                guard_pulled_output(&state)?;
                cx.printer.data_bytes(&kiln_state::encode(&state));
            }
            Ok(ExitStatus::Success)
        }
        StateCommand::Push { path, force } => {
            let pushed = read_pushed(&path)?;
            kiln_ops::operation::run(ops, &backend, "state push", |s| async move {
                let stored = s.read_state().await?;
                let state = pushable(&stored, pushed, force)?;
                s.backend().write(&state).await.map_err(|e| {
                    Diagnostic::error("E-STATE-WRITE", format!("cannot write the state: {e}"))
                        .hint("nothing was changed: the state is as it was before this command")
                })?;
                cx.printer.progress(format_args!(
                    "Pushed serial {} of lineage {} to {}.",
                    state.serial,
                    state.lineage,
                    s.backend().describe()
                ));
                Ok(ExitStatus::Success)
            })
            .await
        }
    }
}

/// Where `kiln state pull` may write the state: it holds every value in clear, sensitive ones
/// included (a pushed document must be complete), and kiln's rule is that secrets never reach
/// a screen or a file others can read. As Terraform, the document goes to stdout, so
/// `kiln state pull > state.json` and `kiln state pull | jq` work as Terraform users expect;
/// what stdout is decides the rest:
///
/// - a regular file (the shell's `>` made it with the umask, usually 0644): kiln makes it mode
///   0600 (fchmod on stdout) before writing, as its own state files are. A file kiln may not
///   change the mode of (someone else's) gets the state only when it holds no sensitive value.
/// - a terminal: refused when the state holds a sensitive value (a screen is read over
///   shoulders, kept in scrollback and terminal logs), with how to redirect it; a state without
///   one prints as in Terraform.
/// - a pipe, socket or device: written as it is; the reader is a program the user chose
///   (`| jq`, `| aws s3 cp - ...`), and piping on purpose is also how to see it on a screen.
fn guard_pulled_output(state: &State) -> Result<(), Failure> {
    use std::io::IsTerminal;
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;
    let sensitive = holds_sensitive(state);
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        if sensitive {
            return Err(Diagnostic::error(
                "E-STATE-PULL-TERMINAL",
                "the state holds sensitive values: `kiln state pull` does not print them on a terminal",
            )
            .hint("redirect it to a file, which kiln makes readable by you only (mode 0600): `kiln state pull > state.json`; or pipe it to a program: `kiln state pull | jq .resources`")
            .into());
        }
        return Ok(());
    }
    // A duplicate of fd 1: its metadata and mode are the open file's (fstat, fchmod).
    let Ok(file) = stdout.as_fd().try_clone_to_owned().map(std::fs::File::from) else {
        return Ok(());
    };
    let Ok(meta) = file.metadata() else {
        return Ok(());
    };
    if !meta.is_file() || meta.permissions().mode() & 0o077 == 0 {
        return Ok(());
    }
    match file.set_permissions(std::fs::Permissions::from_mode(0o600)) {
        Ok(()) => Ok(()),
        Err(_) if !sensitive => Ok(()),
        Err(e) => Err(Diagnostic::error(
            "E-STATE-PULL-FILE",
            format!(
                "the state holds sensitive values, and stdout is a file others can read (mode {:o}) whose mode kiln cannot change: {e}",
                meta.permissions().mode() & 0o777
            ),
        )
        .hint("redirect to a new file of yours (`kiln state pull > state.json`, made mode 0600), or make this one private first (`chmod 600 FILE`)")
        .into()),
    }
}

/// Whether any value in `state` is sensitive: a resource's (or a deposed object's) sensitive
/// attribute, a sensitive output, a value still marked, or a pending create (its planned value
/// is stored plain, without the list of its sensitive attributes: it may hold some).
fn holds_sensitive(state: &State) -> bool {
    let resource = |r: &kiln_state::ResourceState| !r.sensitive.is_empty() || r.attributes.contains_sensitive();
    state.resources.values().any(resource)
        || state.deposed.values().any(|d| resource(&d.resource))
        || state.outputs.values().any(|o| o.sensitive || o.value.contains_sensitive())
        || !state.pending.is_empty()
}

/// The state `kiln state push` was given: a state document (JSON, as `kiln state pull` prints
/// it) in a file, or on stdin for `-`.
fn read_pushed(path: &Path) -> Result<State, Failure> {
    let (bytes, name) = if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b).map_err(|e| {
            Diagnostic::error("E-STATE-PUSH-READ", "cannot read the state from stdin")
                .detail(e.to_string())
                .hint("pipe a state document in, such as `kiln state pull` printed")
        })?;
        (b, "stdin".to_string())
    } else {
        let b = std::fs::read(path).map_err(|e| {
            Diagnostic::error("E-STATE-PUSH-READ", format!("cannot read `{}`", path.display()))
                .detail(e.to_string())
                .hint("name a state file, such as `kiln state pull > state.json` wrote, or `-` for stdin")
        })?;
        (b, path.display().to_string())
    };
    kiln_state::decode(&bytes, &name).map_err(|e| {
        Diagnostic::error("E-STATE-PUSH-READ", format!("`{name}` is not a kiln state document"))
            .detail(e.to_string())
            .hint("push a document `kiln state pull` printed (JSON, decrypted); the stored state was left as it was")
            .into()
    })
}

/// Terraform's rules for `state push`: the pushed state must continue the stored one (same
/// lineage, a newer serial). With `force` it replaces it anyway, written as the next serial of
/// the stored lineage: a backend never lets a serial go down or a lineage change in place, and
/// the replaced state stays in the backup as every write leaves it.
fn pushable(stored: &State, mut pushed: State, force: bool) -> Result<State, Diagnostic> {
    let refusal = if stored.lineage.is_empty() {
        None
    } else if pushed.lineage != stored.lineage {
        Some(Diagnostic::error(
            "E-STATE-PUSH-LINEAGE",
            format!(
                "the pushed state's lineage `{}` differs from the stored state's `{}`: it is another state's history",
                pushed.lineage, stored.lineage
            ),
        )
        .hint("check that you push to the right workspace and backend; `kiln state push --force` replaces the stored state anyway (kept in the backup)"))
    } else if pushed.serial <= stored.serial {
        Some(Diagnostic::error(
            "E-STATE-PUSH-SERIAL",
            format!(
                "the pushed state's serial {} is not newer than the stored state's {}: it would undo later changes",
                pushed.serial, stored.serial
            ),
        )
        .hint("pull the state again and edit that copy, or `kiln state push --force` to replace the stored state anyway (kept in the backup)"))
    } else {
        None
    };
    match refusal {
        None => Ok(pushed),
        Some(d) if !force => Err(d),
        Some(_) => {
            pushed.lineage = stored.lineage.clone();
            pushed.serial = kiln_ops::operation::next_serial(stored.serial, 1)?;
            Ok(pushed)
        }
    }
}

fn parse_address(a: &str) -> Result<InstanceAddr, Diagnostic> {
    a.parse().map_err(|e: kiln_addrs::AddrError| {
        Diagnostic::error("E-ADDR-INVALID", e.to_string())
            .hint("addresses look like record.a, record.a[0], record.a[\"key\"] or module.m.record.a")
    })
}

fn not_in_state(a: &InstanceAddr) -> Diagnostic {
    Diagnostic::error("E-STATE-ADDRESS", format!("`{a}` is not in state")).address(a).hint("`kiln state list` shows what is")
}

/// `kiln import ADDRESS ID` (see [`kiln_ops::import`]): the provider is configured from its
/// `provider` block.
pub(crate) async fn import(cx: &Ctx, vars: &VarArgs, address: &str, id: &str) -> R {
    let dir = cx.dir();
    let ops = &cx.ops;
    let l = load(cx, vars)?;
    let a = parse_address(address)?;
    let backend = open(&l)?;
    let (l, a) = (&l, &a);
    kiln_ops::operation::run(ops, &backend, "import", |s| async move {
        let reg = registry();
        let providers = kiln_core::Providers::new();
        let req = kiln_ops::import::Import {
            config: &l.config,
            registry: &reg,
            providers: &providers,
            variables: l.vars.clone(),
            workspace: l.workspace().unwrap_or_else(|_| kiln_state::DEFAULT_WORKSPACE.to_string()),
            cwd: dir.to_path_buf(),
            address: a,
            id,
        };
        kiln_ops::import::import(&s, req).await.map_err(|d| Failure::in_sources(&l.config.sources, d))?;
        cx.printer.data(format_args!("Import successful: {a} is now managed by kiln."));
        Ok(ExitStatus::Success)
    })
    .await
}

/// Removes a lock by its ID. A holder that may still be running (its process exists on this
/// host, or its lease has not ended) keeps its lock unless `force` is given: breaking it would
/// let two runs change the state at once.
pub(crate) async fn force_unlock(cx: &Ctx, id: &str, force: bool) -> R {
    let l = load_config(cx);
    let backend = open(&l)?;
    if !force {
        let holder = backend.lock_info().await.map_err(|e| {
            Diagnostic::error("E-STATE-LOCK", format!("cannot read the state lock: {e}")).hint("check that the state backend is reachable")
        })?;
        if let Some(h) = holder {
            if h.id == id && h.holder_may_be_alive() {
                let why = if h.host == kiln_state::current_host() {
                    format!("its process (pid `{}`) is still running on this host", h.pid)
                } else {
                    format!(
                        "its lease is renewed until `{}`, so its holder on `{}` is still running",
                        h.expires.as_deref().unwrap_or_default(),
                        h.host
                    )
                };
                return Err(Diagnostic::error(
                    "E-FORCE-UNLOCK-LIVE",
                    format!(
                        "refusing to break the lock `{id}` of {}: held by `{}` for `{}` since `{}`, and {why}; breaking it would let two runs change the state at once",
                        backend.describe(),
                        h.who,
                        h.operation,
                        h.created,
                    ),
                )
                .hint(format!("wait for that run to finish (or stop it with Ctrl-C); if you are sure it no longer uses this state, run `kiln force-unlock --force {id}`"))
                .into());
            }
        }
    }
    backend.force_unlock(id).await.map_err(|e| {
        let hint = match e {
            kiln_state::LockError::NotHeld => "there is nothing to unlock".to_string(),
            kiln_state::LockError::Mismatch { .. } => "pass the lock ID the error of the locked command showed".to_string(),
            _ => "check that the state backend is reachable and writable".to_string(),
        };
        Diagnostic::error("E-FORCE-UNLOCK", format!("cannot unlock the state: {e}")).hint(hint)
    })?;
    cx.printer.data("kiln state has been successfully unlocked.");
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pending entry is written before its create, its planned value plain (unmarked): the
    /// attributes the create was given, sensitive ones included (`secret_env` sealed), so any
    /// pending entry counts as sensitive for `kiln state pull`.
    #[test]
    fn a_pending_entry_counts_as_sensitive() {
        let mut state = State::new();
        assert!(!holds_sensitive(&state));
        let planned = kiln_value::Value::Map([("password".to_string(), kiln_value::Value::from("hunter2"))].into_iter().collect());
        let pending = kiln_state::PendingCreate {
            address: "thing.a".parse().unwrap(),
            provider: "mock".into(),
            kind: "thing".into(),
            token: "t".into(),
            planned,
            started_at: "2026-01-01T00:00:00Z".into(),
        };
        state.pending.insert(pending.token.clone(), pending);
        assert!(holds_sensitive(&state));
    }
}
