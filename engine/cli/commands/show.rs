//! `kiln show`, `kiln output` and `kiln graph`: reading state, plans and the graph, printed in
//! the format asked for (views in `kiln-views`).

use crate::view_plan;
use kiln_diag::Diagnostic;
use kiln_value::Value;
use kiln_views::{Format, Output, Outputs};
use std::path::PathBuf;

use super::*;

pub(crate) async fn show(cx: &Ctx, format: Format, plan_file: Option<PathBuf>) -> R {
    let dir = cx.dir();
    if let Some(p) = plan_file {
        let (config, diags) = kiln_config::load(dir);
        // The configuration says how saved plans are encrypted.
        let Some(config) = config else {
            return Err(Failure::new(
                Diagnostic::error("E-SHOW-CONFIG", format!("cannot load the configuration in `{}` to read the plan", dir.display()))
                    .detail(format!("{} error(s) in the configuration", diags.len()))
                    .hint("run `kiln validate` to see them; the configuration says how saved plans are encrypted"),
            ));
        };
        let plan = read_plan(&with_config(cx, config), &p)?;
        if let (Format::Human, Some(commit)) = (format, &plan.git_commit) {
            // For the reviewer: which configuration the saved plan was made from.
            cx.printer.data(format_args!("Plan made from commit {commit}\n"));
        }
        view_plan::print(cx, &plan, format);
        return Ok(ExitStatus::Success);
    }
    let state = current_state(cx).await?;
    view_plan::print(cx, &state, format);
    Ok(ExitStatus::Success)
}

pub(crate) async fn output(cx: &Ctx, format: Format, raw: bool, name: Option<String>) -> R {
    let state = current_state(cx).await?;
    let Some(n) = name else {
        view_plan::print(cx, &Outputs(&state.outputs), format);
        return Ok(ExitStatus::Success);
    };
    let Some(o) = state.outputs.get(&n) else {
        let known = state.outputs.keys().cloned().collect::<Vec<_>>();
        let hint =
            if known.is_empty() { "the state has no outputs".to_string() } else { format!("outputs in state: {}", known.join(", ")) };
        return Err(Failure::new(Diagnostic::error("E-OUTPUT-UNKNOWN", format!("output `{n}` not found")).hint(hint)));
    };
    if raw {
        // The one explicit request for a value, sensitive or not.
        match &o.value {
            Value::String(s) if format != Format::Json => cx.printer.data(s),
            v => cx.printer.data(v.to_json()),
        }
        return Ok(ExitStatus::Success);
    }
    view_plan::print(cx, &Output { name: &n, output: o }, format);
    if o.sensitive || o.value.contains_sensitive() {
        cx.printer.note(format_args!("(the output is sensitive: use `kiln output --raw {n}` to print it)"));
    }
    Ok(ExitStatus::Success)
}

pub(crate) fn graph(cx: &Ctx) -> R {
    let dir = cx.dir();
    let (config, diags) = kiln_config::load(dir);
    let config = config.expect("config");
    if diags.has_errors() {
        return Err(Failure::in_sources(&config.sources, diags));
    }
    let (g, diags) = kiln_core::build_graph(&config, &registry());
    if diags.has_errors() {
        return Err(Failure::in_sources(&config.sources, diags));
    }
    cx.printer.data_raw(g.deps.to_dot(ToString::to_string));
    Ok(ExitStatus::Success)
}
