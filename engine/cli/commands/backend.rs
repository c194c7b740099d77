//! Opening the configured state backend, its codec, saved plans and the current state.

use super::*;

/// The state of `backend` (empty when there is none yet); a state that cannot be read is left
/// untouched and reported (`kiln_ops::operation::read_state`).
pub async fn read_state(backend: &dyn StateBackend) -> Result<State, Failure> {
    Ok(kiln_ops::operation::read_state(backend).await?)
}

/// The root variables the backend and encryption blocks see (one resolver for both); `path.cwd`
/// is the configuration's directory, as the planner's.
pub(crate) fn root_vars(l: &Loaded) -> kiln_ops::RootVars {
    kiln_ops::RootVars::new(&l.config, &l.vars, l.dir())
}

/// The evaluated backend block, against the backends this build registers.
pub fn backend_config(l: &Loaded) -> Result<kiln_ops::BackendConfig, Failure> {
    backends().config(&l.config, &root_vars(l)).map_err(|d| Failure::in_sources(&l.config.sources, d))
}

/// The codec every stored state document goes through (the `encryption` block's, else plain).
/// Built once per command: a passphrase's key derivation is deliberately slow, so state,
/// backups and a saved plan share one codec.
pub fn codec(l: &Loaded) -> Result<Arc<dyn kiln_state::Codec>, Failure> {
    if let Some(c) = l.codec.get() {
        return Ok(c.clone());
    }
    let (codec, diags) = kiln_ops::encryption::state_codec(&l.config, &root_vars(l));
    let codec = codec.ok_or_else(|| Failure::in_sources(&l.config.sources, diags))?;
    Ok(l.codec.get_or_init(|| codec).clone())
}

/// A saved plan, decrypted with the configuration's codec when the `encryption` block is set.
pub fn read_plan(l: &Loaded, path: &Path) -> Result<Plan, Failure> {
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostic::error("E-PLAN-READ", format!("cannot read plan `{}`", path.display()))
            .detail(e.to_string())
            .hint("name a file written by `kiln plan --out FILE`")
    })?;
    let text = codec(l)?.open(&bytes, &path.display().to_string()).map_err(|e| {
        Diagnostic::error("E-PLAN-DECRYPT", format!("cannot open plan `{}`", path.display()))
            .detail(e.to_string())
            .hint("a saved plan opens with the key of the `encryption` block it was written with")
    })?;
    let not_a_plan = |detail: Option<String>| {
        let d = Diagnostic::error("E-PLAN-FORMAT", format!("`{}` is not a kiln plan", path.display()));
        let d = match detail {
            Some(detail) => d.detail(detail),
            None => d,
        };
        d.hint("name a file written by `kiln plan --out FILE`, by this version of kiln or an earlier one")
    };
    let text = String::from_utf8(text).map_err(|_| not_a_plan(None))?;
    Ok(Plan::from_json(&text).map_err(|e| not_a_plan(Some(e.to_string())))?)
}

/// The state of the selected workspace (`KILN_WORKSPACE`, else `.kiln/environment`, else
/// `default`) in the configured backend. Refuses a backend that differs from the one `kiln init`
/// recorded, so that state is never silently started afresh somewhere else.
pub fn open(l: &Loaded) -> Result<Arc<dyn StateBackend>, Failure> {
    open_workspace(l, &l.workspace()?)
}

/// Like [`open`], for workspace `ws`.
pub fn open_workspace(l: &Loaded, ws: &str) -> Result<Arc<dyn StateBackend>, Failure> {
    let cfg = backend_config(l)?;
    init::check_initialised(l.dir(), &cfg)?;
    Ok(Arc::from(cfg.open(ws, codec(l)?)))
}

/// The current state, for commands without `--var`.
pub(crate) async fn current_state(cx: &Ctx) -> Result<State, Failure> {
    let l = load_config(cx);
    let backend = open(&l)?;
    read_state(backend.as_ref()).await
}
