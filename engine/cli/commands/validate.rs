//! `kiln validate`: every diagnostic of the configuration, without reaching a provider's API.

use crate::cli::VarArgs;
use crate::render;
use kiln_config::Config;
use kiln_diag::Diagnostic;
use kiln_state::State;
use std::path::Path;

use super::*;

pub(crate) async fn validate(dir: &Path, vars: &VarArgs, json: bool) -> R {
    let l = load(dir, vars)?;
    let state = State::default();
    let reg = registry();
    let providers = kiln_core::Providers::new();
    let base = providers_request(&l, &state, &reg, &providers, dir);
    let diags = kiln_core::validate(kiln_core::ValidateRequest {
        config: base.config,
        registry: base.registry,
        providers: base.providers,
        variables: base.variables,
        workspace: base.workspace,
        cwd: base.cwd,
    })
    .await;
    if json {
        let items: Vec<serde_json::Value> = diags.iter().map(|d| diag_json(&l.config, d)).collect();
        println!("{}", serde_json::json!({"valid": !diags.has_errors(), "diagnostics": items}));
        return Ok(if diags.has_errors() { ExitStatus::Error } else { ExitStatus::Success });
    }
    if diags.has_errors() {
        return Err(render::diagnostics(&l.config.sources, &diags).into());
    }
    warn(&l.config, &diags);
    println!("Success! The configuration is valid.");
    Ok(ExitStatus::Success)
}

pub(crate) fn diag_json(config: &Config, d: &Diagnostic) -> serde_json::Value {
    let range = d.primary.as_ref().map(|l| {
        let f = config.sources.get(l.span.file);
        let s = f.line_col(l.span.range.start);
        let e = f.line_col(l.span.range.end);
        serde_json::json!({"filename": f.path, "start": {"line": s.line, "column": s.column, "byte": l.span.range.start}, "end": {"line": e.line, "column": e.column, "byte": l.span.range.end}})
    });
    serde_json::json!({"severity": if d.is_error() {"error"} else {"warning"}, "code": d.code, "summary": d.summary, "detail": d.detail, "address": d.address, "hint": d.hint, "range": range})
}
