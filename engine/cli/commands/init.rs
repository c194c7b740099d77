//! `kiln init` and `kiln validate`.

use std::path::Path;
use kiln_config::Config;
use kiln_diag::Diagnostic;
use kiln_plan::Mode;
use kiln_state::State;
use crate::cli::{PlanArgs, VarArgs};
use crate::render;

use super::*;

pub(crate) fn init(dir: &Path) -> R {
    let has_config = std::fs::read_dir(dir).map(|rd| rd.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().ends_with(".kiln.hcl"))).unwrap_or(false);
    if !has_config {
        let text = "kiln {\n  backend \"local\" {\n    path = \".kiln/state.json\"\n  }\n}\n\nresource \"record\" \"hello\" {\n  input = \"hello from kiln\"\n}\n\noutput \"hello\" {\n  value = record.hello.output\n}\n";
        std::fs::write(dir.join("main.kiln.hcl"), text).map_err(|e| format!("Error: cannot write main.kiln.hcl: {e}"))?;
        eprintln!("Created main.kiln.hcl. Run `kiln plan` to see what it does.");
    }
    std::fs::create_dir_all(dir.join(".kiln")).map_err(|e| format!("Error: cannot create .kiln: {e}"))?;
    eprintln!("kiln is initialized in {}", dir.display());
    Ok(OK)
}

pub(crate) async fn validate(dir: &Path, vars: &VarArgs, json: bool) -> R {
    let l = load(dir, vars)?;
    let state = State::default();
    let reg = registry();
    let (_, diags) = kiln_core::plan(plan_request(&l, &state, &reg, &PlanArgs { refresh: false, ..PlanArgs::default() }, Mode::Normal, dir)).await;
    if json {
        let items: Vec<serde_json::Value> = diags.iter().map(|d| diag_json(&l.config, d)).collect();
        println!("{}", serde_json::json!({"valid": !diags.has_errors(), "diagnostics": items}));
        return Ok(if diags.has_errors() { ERROR } else { OK });
    }
    if diags.has_errors() {
        return Err(render::diagnostics(&l.config.sources, &diags));
    }
    warn(&l.config, &diags);
    println!("Success! The configuration is valid.");
    Ok(OK)
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
