//! `kiln show`, `kiln output` and `kiln graph`: reading state, plans and the graph.

use crate::{render, view_plan};
use kiln_value::Value;
use std::path::{Path, PathBuf};

use super::*;

/// Every object in state: the resources, then deposed objects with their keys.
fn objects(state: &kiln_state::State) -> impl Iterator<Item = (&kiln_addrs::InstanceAddr, Option<&str>, &kiln_state::ResourceState)> {
    let resources = state.resources.iter().map(|(a, r)| (a, None, r));
    resources.chain(state.deposed.values().map(|d| (&d.address, Some(d.key.as_str()), &d.resource)))
}

pub(crate) async fn show(dir: &Path, json: bool, plan_file: Option<PathBuf>) -> R {
    if let Some(p) = plan_file {
        let (config, diags) = kiln_config::load(dir);
        // The configuration says how saved plans are encrypted.
        let config = config.ok_or_else(|| {
            format!(
                "Error: cannot load the configuration in `{}` to read the plan: {} error(s); run `kiln validate`",
                dir.display(),
                diags.len()
            )
        })?;
        let plan = read_plan(&config, dir, &p)?;
        if json {
            println!("{}", super::plan::plan_json(&plan));
        } else {
            print!("{}", view_plan::for_stdout(&plan));
        }
        return Ok(ExitStatus::Success);
    }
    let state = current_state(dir).await?;
    if json {
        let resources: Vec<serde_json::Value> = objects(&state)
            .map(|(a, deposed, r)| {
                let attrs: serde_json::Map<String, serde_json::Value> = r
                    .attributes
                    .as_map()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), if r.sensitive.contains(k) { serde_json::json!({"sensitive": true}) } else { v.to_json() })).collect())
                    .unwrap_or_default();
                let mut j = serde_json::json!({"address": a.to_string(), "provider": r.provider, "kind": r.kind, "values": attrs, "sensitive_values": r.sensitive});
                if let Some(key) = deposed {
                    j["deposed"] = serde_json::json!(key);
                }
                j
            })
            .collect();
        let outputs: serde_json::Map<String, serde_json::Value> = state
            .outputs
            .iter()
            .map(|(k, o)| (k.clone(), serde_json::json!({"sensitive": o.sensitive, "value": if o.sensitive { serde_json::Value::Null } else { o.value.to_json() }})))
            .collect();
        println!("{}", serde_json::json!({"serial": state.serial, "lineage": state.lineage, "resources": resources, "outputs": outputs}));
        return Ok(ExitStatus::Success);
    }
    if objects(&state).next().is_none() {
        println!("The state is empty. No resources are managed yet.");
    }
    for (a, deposed, r) in objects(&state) {
        let what = deposed.map_or_else(String::new, |k| format!(" (deposed object {k}, to be destroyed)"));
        println!("# {a}{what}:\nresource \"{}\" \"{}\" {{", r.kind, a.resource.name);
        for (k, v) in r.attributes.as_map().into_iter().flatten() {
            let v = if r.sensitive.contains(k) { "(sensitive value)".into() } else { v.to_string() };
            println!("    {k} = {v}");
        }
        println!("}}\n");
    }
    print_outputs(&state);
    Ok(ExitStatus::Success)
}

pub(crate) async fn output(dir: &Path, json: bool, raw: bool, name: Option<String>) -> R {
    let state = current_state(dir).await?;
    match name {
        Some(n) => {
            let o = state.outputs.get(&n).ok_or_else(|| {
                format!(
                    "Error: output `{n}` not found\n  = help: outputs in state: {}",
                    state.outputs.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
            if json && o.sensitive && !raw {
                println!("{}", serde_json::json!({"sensitive": true, "value": null}));
                eprintln!("(the output is sensitive: use `kiln output --raw {n}` to print it)");
            } else if json {
                println!("{}", o.value.to_json());
            } else if raw {
                match &o.value {
                    Value::String(s) => println!("{s}"),
                    v => println!("{}", v.to_json()),
                }
            } else if o.sensitive {
                println!("<sensitive>");
                eprintln!("(the output is sensitive: use `kiln output --raw {n}` to print it)");
            } else {
                println!("{}", o.value);
            }
        }
        None if json => {
            let m: serde_json::Map<String, serde_json::Value> = state
                .outputs
                .iter()
                .map(|(k, o)| (k.clone(), serde_json::json!({"sensitive": o.sensitive, "value": if o.sensitive { serde_json::Value::Null } else { o.value.to_json() }})))
                .collect();
            println!("{}", serde_json::Value::Object(m));
        }
        None => {
            for (k, o) in &state.outputs {
                println!("{k} = {}", if o.sensitive { "<sensitive>".to_string() } else { o.value.to_string() });
            }
        }
    }
    Ok(ExitStatus::Success)
}

pub(crate) fn graph(dir: &Path) -> R {
    let (config, diags) = kiln_config::load(dir);
    let config = config.expect("config");
    if diags.has_errors() {
        return Err(render::diagnostics(&config.sources, &diags).into());
    }
    let (g, diags) = kiln_core::build_graph(&config, &registry());
    if diags.has_errors() {
        return Err(render::diagnostics(&config.sources, &diags).into());
    }
    print!("{}", g.deps.to_dot(ToString::to_string));
    Ok(ExitStatus::Success)
}
