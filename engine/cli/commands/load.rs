//! Loading the configuration and its variables for a command.

use super::*;

/// Loaded configuration plus variable values; errors already rendered into the `Err`.
pub struct Loaded {
    pub config: Config,
    pub vars: BTreeMap<String, Value>,
}

pub fn load(dir: &Path, vars: &VarArgs) -> Result<Loaded, String> {
    let (config, mut diags) = kiln_config::load(dir);
    let mut config = config.expect("load always returns a config");
    let cli: &[VarSources] = &vars.ordered;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let (values, vd) = kiln_ops::load_variables(dir, cli, &env, &mut config.sources);
    diags.extend(vd);
    if let Some(s) = config.root.module.settings.as_ref().and_then(|s| s.required_version.as_ref()) {
        if !version_ok(&s.0) {
            diags.push(
                Diagnostic::error(
                    "E-VERSION",
                    format!("this configuration requires kiln {}, and this is kiln {}", s.0, env!("CARGO_PKG_VERSION")),
                )
                .at(s.1.clone(), "required_version")
                .hint("install a matching kiln, or change required_version"),
            );
        }
    }
    if diags.has_errors() {
        return Err(render::diagnostics(&config.sources, &diags));
    }
    warn(&config, &diags);
    let _ = BACKEND_VARS.set(values.clone());
    Ok(Loaded { config, vars: values })
}

pub(crate) fn warn(config: &Config, diags: &Diagnostics) {
    let w: Diagnostics = diags.iter().filter(|d| !d.is_error()).cloned().collect();
    if !w.is_empty() {
        eprint!("{}", render::diagnostics(&config.sources, &w));
    }
}

/// `>= 0.1`, `~> 0.1`, `= 0.1.0`, comma-separated.
pub(crate) fn version_ok(req: &str) -> bool {
    let cur: Vec<u64> = env!("CARGO_PKG_VERSION").split('.').filter_map(|p| p.parse().ok()).collect();
    req.split(',').all(|c| {
        let c = c.trim();
        let (op, v) = c.split_at(c.find(|ch: char| ch.is_ascii_digit()).unwrap_or(c.len()));
        let v: Vec<u64> = v.split('.').filter_map(|p| p.parse().ok()).collect();
        let cmp = cur.iter().chain(std::iter::repeat(&0)).take(3).cmp(v.iter().chain(std::iter::repeat(&0)).take(3));
        match op.trim() {
            ">=" => cmp.is_ge(),
            ">" => cmp.is_gt(),
            "<=" => cmp.is_le(),
            "<" => cmp.is_lt(),
            "!=" => cmp.is_ne(),
            "~>" => cmp.is_ge() && cur.first() == v.first() && (v.len() < 3 || cur.get(1) == v.get(1)),
            _ => cmp.is_eq(),
        }
    })
}
