//! `kiln validate`: every diagnostic of the configuration, without reaching a provider's API,
//! in the format asked for (views in `kiln-views`).

use crate::cli::VarArgs;
use crate::view_plan;
use kiln_state::State;
use kiln_views::{Format, Validation};

use super::*;

pub(crate) async fn validate(cx: &Ctx, vars: &VarArgs, format: Format) -> R {
    let dir = cx.dir();
    let l = load(cx, vars)?;
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
    if format != Format::Human {
        // Machines and reports get every diagnostic on stdout, and the exit code says whether
        // the configuration is valid.
        view_plan::print(cx, &Validation { sources: &l.config.sources, diagnostics: &diags }, format);
        return Ok(if diags.has_errors() { ExitStatus::Error } else { ExitStatus::Success });
    }
    if diags.has_errors() {
        return Err(Failure::in_sources(&l.config.sources, diags));
    }
    warn(&l, &diags);
    cx.printer.data("Success! The configuration is valid.");
    Ok(ExitStatus::Success)
}
