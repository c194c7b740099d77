//! `kiln state list|show|rm|mv|versions`, `kiln import` and `kiln force-unlock`.

use crate::cli::{StateCommand, VarArgs};
use crate::render;
use kiln_addrs::InstanceAddr;
use kiln_state::State;
use kiln_value::Value;
use std::path::Path;

use super::*;

pub(crate) async fn state_cmd(dir: &Path, cmd: StateCommand) -> R {
    let (config, _) = kiln_config::load(dir);
    let config = config.expect("config");
    let backend = open(&config, dir)?;
    match cmd {
        StateCommand::List => {
            for a in read_state(backend.as_ref()).await?.resources.keys() {
                println!("{a}");
            }
            Ok(ExitStatus::Success)
        }
        StateCommand::Show { address } => {
            let a: InstanceAddr = address.parse().map_err(|e| format!("Error: {e}"))?;
            let state = read_state(backend.as_ref()).await?;
            let r = state
                .resources
                .get(&a)
                .ok_or_else(|| format!("Error: `{a}` is not in state\n  = help: `kiln state list` shows what is"))?;
            println!("# {a}:\nresource \"{}\" \"{}\" {{", r.kind, a.resource.name);
            for (k, v) in r.attributes.as_map().into_iter().flatten() {
                println!("    {k} = {}", if r.sensitive.contains(k) { "(sensitive value)".into() } else { v.to_string() });
            }
            println!("}}");
            Ok(ExitStatus::Success)
        }
        StateCommand::Rm { addresses } => {
            let lock = lock(&backend, "state rm").await?;
            let r = async {
                let mut state = read_state(backend.as_ref()).await?;
                for a in &addresses {
                    let a: InstanceAddr = a.parse().map_err(|e| format!("Error: {e}"))?;
                    if state.resources.remove(&a).is_none() {
                        return Err(format!("Error: `{a}` is not in state"));
                    }
                    println!("Removed {a}");
                }
                state.serial = next_serial(state.serial, 1)?;
                backend.write(&state).await.map_err(|e| format!("Error: {e}"))?;
                Ok(ExitStatus::Success)
            }
            .await;
            unlock(backend.as_ref(), lock).await;
            r.map_err(Failure::from)
        }
        StateCommand::Mv { from, to } => {
            let lock = lock(&backend, "state mv").await?;
            let r = async {
                let mut state = read_state(backend.as_ref()).await?;
                let f: InstanceAddr = from.parse().map_err(|e| format!("Error: {e}"))?;
                let t: InstanceAddr = to.parse().map_err(|e| format!("Error: {e}"))?;
                if state.resources.contains_key(&t) {
                    return Err(format!("Error: `{t}` already exists in state"));
                }
                let r = state.resources.remove(&f).ok_or_else(|| format!("Error: `{f}` is not in state"))?;
                if r.kind != t.resource.kind {
                    return Err(format!("Error: cannot move a `{}` to a `{}` address", r.kind, t.resource.kind));
                }
                state.resources.insert(t.clone(), r);
                state.serial = next_serial(state.serial, 1)?;
                backend.write(&state).await.map_err(|e| format!("Error: {e}"))?;
                println!("Moved {f} to {t}");
                Ok(ExitStatus::Success)
            }
            .await;
            unlock(backend.as_ref(), lock).await;
            r.map_err(Failure::from)
        }
        StateCommand::Versions => {
            let versions = backend.versions().await.map_err(|e| format!("Error: cannot list versions: {e}"))?;
            if versions.is_empty() {
                println!("No stored versions of {}.", backend.describe());
                return Ok(ExitStatus::Success);
            }
            println!("Versions of {}, newest first:", backend.describe());
            for v in versions {
                let serial = v.serial.map_or("?".to_string(), |s| s.to_string());
                let stored = v.stored.as_deref().unwrap_or("-");
                let mark = if v.current { "  (current)" } else { "" };
                println!("{}  serial {serial}  {stored}  {} bytes{mark}", v.id, v.size);
            }
            Ok(ExitStatus::Success)
        }
    }
}

pub(crate) async fn import(dir: &Path, vars: &VarArgs, address: &str, id: &str) -> R {
    let l = load(dir, vars)?;
    let a: InstanceAddr = address.parse().map_err(|e| format!("Error: {e}"))?;
    let backend = open(&l.config, dir)?;
    let lock = lock(&backend, "import").await?;
    let r = async {
        let mut state = read_state(backend.as_ref()).await?;
        if state.resources.contains_key(&a) {
            return Err(format!("Error: `{a}` is already managed by kiln\n  = help: `kiln state rm {a}` first to import it again"));
        }
        let reg = registry();
        let pname = match reg.resolve(&a.resource.kind, false) {
            Ok(r) => r.key().to_string(),
            Err(d) => return Err(render::diagnostics(&l.config.sources, &d.address(a.to_string()).into())),
        };
        let factory = reg.get(&pname).ok_or_else(|| format!("Error: no provider for kind `{}`", a.resource.kind))?;
        let p = factory
            .configure(kiln_provider::ConfigureRequest { config: Value::Map(Default::default()), working_dir: dir.to_path_buf() })
            .await
            .map_err(|d| render::diagnostics(&l.config.sources, &d))?;
        let name = a.to_string();
        let res = p.import(kiln_provider::ImportRequest { address: &name, kind: &a.resource.kind, id }).await;
        if res.diagnostics.has_errors() {
            return Err(render::diagnostics(&l.config.sources, &res.diagnostics));
        }
        let v = res.state.ok_or_else(|| format!("Error: no `{}` with ID `{id}` exists", a.resource.kind))?;
        if state.lineage.is_empty() {
            state = State::new();
        }
        state.resources.insert(
            a.clone(),
            kiln_state::ResourceState {
                provider: pname,
                kind: a.resource.kind.clone(),
                attributes: v,
                sensitive: vec![],
                dependencies: vec![],
                tainted: false,
                create_before_destroy: false,
            },
        );
        state.serial = next_serial(state.serial, 1)?;
        backend.write(&state).await.map_err(|e| format!("Error: {e}"))?;
        println!("Import successful: {a} is now managed by kiln.");
        Ok(ExitStatus::Success)
    }
    .await;
    unlock(backend.as_ref(), lock).await;
    r.map_err(Failure::from)
}

/// Removes a lock by its ID. A holder that may still be running (its process exists on this
/// host, or its lease has not ended) keeps its lock unless `force` is given: breaking it would
/// let two runs change the state at once.
pub(crate) async fn force_unlock(dir: &Path, id: &str, force: bool) -> R {
    let (config, _) = kiln_config::load(dir);
    let backend = open(&config.expect("config"), dir)?;
    if !force {
        if let Some(h) = backend.lock_info().await.map_err(|e| format!("Error: {e}"))? {
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
                return Err(format!(
                    "Error: refusing to break the lock `{id}` of {}: held by `{}` for `{}` since `{}`, and {why}; breaking it would let two runs change the state at once\n  = help: wait for that run to finish (or stop it with Ctrl-C); if you are sure it no longer uses this state, run `kiln force-unlock --force {id}`",
                    backend.describe(),
                    h.who,
                    h.operation,
                    h.created,
                ).into());
            }
        }
    }
    backend.force_unlock(id).await.map_err(|e| format!("Error: {e}"))?;
    println!("kiln state has been successfully unlocked.");
    Ok(ExitStatus::Success)
}
