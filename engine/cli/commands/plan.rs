//! `kiln plan`, and the machine-readable plan JSON (also used by `kiln show --json PLAN`).

use crate::cli::PlanArgs;
use crate::view_plan;
use kiln_plan::{Mode, Plan};
use kiln_value::Value;
use std::path::{Path, PathBuf};

use super::*;

pub(crate) async fn plan_cmd(dir: &Path, args: &PlanArgs, out: Option<PathBuf>, detailed: bool, json: bool) -> R {
    let l = load(dir, &args.vars)?;
    let backend = open(&l.config, dir)?;
    let lock = lock(&backend, "plan").await?;
    let state = read_state(backend.as_ref()).await;
    let result = match state {
        Ok(state) => make_plan(dir, &l, &state, args, Mode::Normal).await,
        Err(e) => Err(e),
    };
    unlock(backend.as_ref(), lock).await;
    let plan = result?;
    if json {
        println!("{}", plan_json(&plan));
    } else {
        print!("{}", view_plan::for_stdout(&plan));
    }
    if let Some(path) = out {
        let text = plan.to_json().map_err(|e| format!("Error: {e}"))?;
        let codec = codec(&l.config, dir)?;
        if codec.name() == "plain" && plan.variables.values().any(Value::contains_sensitive) {
            eprintln!("Warning: the saved plan holds sensitive variable values in plain text; keep {} private", path.display());
        }
        let bytes = codec.seal(text.as_bytes()).map_err(|e| format!("Error: {e}"))?;
        write_private(&path, &bytes).map_err(|e| format!("Error: cannot write `{}`: {e}", path.display()))?;
        eprintln!("\nSaved the plan to {}. Apply exactly this plan with: kiln apply {}", path.display(), path.display());
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

/// Plan JSON for machines: sensitive values replaced by `"(sensitive value)"` markers.
pub(crate) fn plan_json(plan: &Plan) -> String {
    fn redact(v: &Value) -> serde_json::Value {
        match v {
            Value::Sensitive(_) => serde_json::json!({"sensitive": true}),
            Value::Unknown => serde_json::json!({"unknown": true}),
            Value::List(l) => serde_json::Value::Array(l.iter().map(redact).collect()),
            Value::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), redact(v))).collect()),
            v => v.to_json(),
        }
    }
    let changes: Vec<serde_json::Value> = plan
        .changes
        .iter()
        .map(|c| {
            let hide = |v: &Option<Value>| {
                v.as_ref().map(|v| match v {
                    Value::Map(m) => serde_json::Value::Object(
                        m.iter().map(|(k, x)| (k.clone(), if c.sensitive.contains(k) { serde_json::json!({"sensitive": true}) } else { redact(x) })).collect(),
                    ),
                    v => redact(v),
                })
            };
            let mut j = serde_json::json!({"address": c.address.to_string(), "provider": c.provider, "kind": c.kind, "action": c.action, "reason": c.reason, "before": hide(&c.before), "after": hide(&c.after)});
            if let Some(key) = &c.deposed {
                j["deposed"] = serde_json::json!(key);
            }
            j
        })
        .collect();
    let s = plan.summary();
    let outputs: serde_json::Map<String, serde_json::Value> = plan
        .outputs
        .iter()
        .map(|(k, o)| {
            let v = |x: &Option<Value>| x.as_ref().map(|x| if o.sensitive { serde_json::json!({"sensitive": true}) } else { redact(x) });
            (k.clone(), serde_json::json!({"before": v(&o.before), "after": v(&o.after), "sensitive": o.sensitive}))
        })
        .collect();
    let drift: Vec<serde_json::Value> =
        plan.drift.iter().map(|d| serde_json::json!({"address": d.address.to_string(), "deleted": d.after.is_none()})).collect();
    serde_json::json!({
        "format_version": plan.format_version,
        "kiln_version": plan.kiln_version,
        "mode": plan.mode,
        "resource_changes": changes,
        "resource_drift": drift,
        "output_changes": outputs,
        "summary": {"add": s.add, "change": s.change, "destroy": s.destroy},
        "has_changes": plan.has_changes(),
    })
    .to_string()
}
