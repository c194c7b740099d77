//! Opening the configured state backend, its codec, saved plans and the current state.

use super::*;

/// The stored state (see [`kiln_ops::operation::read_state`]: unreadable state is left untouched).
pub async fn read_state(backend: &dyn StateBackend) -> Result<State, Failure> {
    Ok(kiln_ops::operation::read_state(backend).await?)
}

/// Root variable values for the backend and encryption settings: those `load` evaluated (with
/// `--var` and `--var-file`), else the environment's and the auto-loaded files'.
pub(crate) static BACKEND_VARS: std::sync::OnceLock<BTreeMap<String, Value>> = std::sync::OnceLock::new();

pub(crate) fn backend_vars(dir: &Path) -> BTreeMap<String, Value> {
    BACKEND_VARS.get().cloned().unwrap_or_else(|| {
        let env: Vec<(String, String)> = std::env::vars().collect();
        kiln_ops::load_variables(dir, &[], &env, &mut kiln_diag::Sources::default()).0
    })
}

/// The root variables the backend and encryption blocks see (one resolver for both); `path.cwd`
/// is `dir`, as the planner's.
pub(crate) fn root_vars(config: &Config, dir: &Path) -> kiln_ops::RootVars {
    kiln_ops::RootVars::new(config, &backend_vars(dir), dir)
}

/// The evaluated backend block, against the backends this build registers.
pub fn backend_config(config: &Config, dir: &Path) -> Result<kiln_ops::BackendConfig, String> {
    backends().config(config, &root_vars(config, dir)).map_err(|d| render::diagnostics(&config.sources, &d))
}

/// The codec every stored state document goes through (the `encryption` block's, else plain).
/// Built once per process: one command has one configuration, and a passphrase's key
/// derivation is deliberately slow, so state, backups and a saved plan share one codec.
pub fn codec(config: &Config, dir: &Path) -> Result<Arc<dyn kiln_state::Codec>, String> {
    static CODEC: std::sync::OnceLock<Arc<dyn kiln_state::Codec>> = std::sync::OnceLock::new();
    if let Some(c) = CODEC.get() {
        return Ok(c.clone());
    }
    let (codec, diags) = kiln_ops::encryption::state_codec(config, &root_vars(config, dir));
    let codec = codec.ok_or_else(|| render::diagnostics(&config.sources, &diags))?;
    Ok(CODEC.get_or_init(|| codec).clone())
}

/// A saved plan, decrypted with the configuration's codec when the `encryption` block is set.
pub fn read_plan(config: &Config, dir: &Path, path: &Path) -> Result<Plan, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("Error: cannot read plan `{}`: {e}", path.display()))?;
    let text = codec(config, dir)?.open(&bytes, &path.display().to_string()).map_err(|e| format!("Error: {e}"))?;
    let text = String::from_utf8(text).map_err(|_| format!("Error: `{}` is not a kiln plan", path.display()))?;
    Plan::from_json(&text).map_err(|e| format!("Error: {e}"))
}

/// The state of the selected workspace (`KILN_WORKSPACE`, else `.kiln/environment`, else
/// `default`) in the configured backend. Refuses a backend that differs from the one `kiln init`
/// recorded, so that state is never silently started afresh somewhere else.
pub fn open(config: &Config, dir: &Path) -> Result<Arc<dyn StateBackend>, String> {
    let ws = workspace::current(dir)?;
    open_workspace(config, dir, &ws)
}

/// Like [`open`], for workspace `ws`.
pub fn open_workspace(config: &Config, dir: &Path, ws: &str) -> Result<Arc<dyn StateBackend>, String> {
    let cfg = backend_config(config, dir)?;
    init::check_initialised(dir, &cfg)?;
    Ok(Arc::from(cfg.open(ws, codec(config, dir)?)))
}

pub(crate) async fn current_state(dir: &Path) -> Result<State, String> {
    let (config, _) = kiln_config::load(dir);
    let config = config.expect("config");
    let backend = open(&config, dir)?;
    Ok(read_state(backend.as_ref()).await?)
}
