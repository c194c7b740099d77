//! `kiln inventory`: every host of every `fleet` resource in state, as its provider reads it
//! now (one batched read per provider), as a table.

use kiln_value::Value;

use super::jobs::{providers, read_kind};
use super::{load, open, read_state, Ctx, ExitStatus, R};
use crate::cli::VarArgs;

pub async fn inventory(cx: &Ctx, vars: &VarArgs) -> R {
    let dir = cx.dir();
    let l = load(cx, vars)?;
    let backend = open(&l)?;
    let state = read_state(backend.as_ref()).await?;
    let p = providers(dir, &l, &state).await?;
    let fleets = read_kind(&p, &state, "fleet").await;
    if fleets.is_empty() {
        cx.printer.data(format_args!("No fleets in state: declare a `fleet` resource (provider \"onprem\") and run `kiln apply`."));
        return Ok(ExitStatus::Success);
    }
    cx.printer.data(format_args!(
        "{:<24} {:<14} {:<22} {:<11} {:>5} {:>8} {:>9}  {:<24} {:<18} HELD BY",
        "FLEET", "HOST", "ADDRESS", "REACHABLE", "CPUS", "MEM GB", "GPUS", "GPU", "OS"
    ));
    for (addr, v) in &fleets {
        let Some(v) = v else {
            cx.printer.data(format_args!("{:<24} (gone: run `kiln plan`)", addr.to_string()));
            continue;
        };
        for h in v.get("hosts").and_then(Value::as_list).unwrap_or_default() {
            let s = |k: &str| h.get(k).map(|x| x.to_template_string().unwrap_or_default()).unwrap_or_default();
            let reachable = h.get("reachable").and_then(Value::as_bool).unwrap_or(false);
            let gpu = h
                .get("gpus")
                .and_then(Value::as_list)
                .and_then(|g| g.first())
                .map_or_else(String::new, |g| g.get("name").map(|n| n.to_template_string().unwrap_or_default()).unwrap_or_default());
            let held: Vec<String> =
                h.get("held_by").and_then(Value::as_list).unwrap_or_default().iter().filter_map(Value::to_template_string).collect();
            let gpus = if reachable { format!("{}/{}", s("gpus_free"), s("gpu_count")) } else { String::new() };
            let reach = if reachable { "yes".to_string() } else { format!("NO: {}", s("error")) };
            cx.printer.data(format_args!(
                "{:<24} {:<14} {:<22} {:<11} {:>5} {:>8} {:>9}  {:<24} {:<18} {}",
                addr.to_string(),
                s("name"),
                s("address"),
                reach,
                s("cpus"),
                s("memory_gb"),
                gpus,
                gpu,
                s("os"),
                held.join(",")
            ));
        }
    }
    Ok(ExitStatus::Success)
}
