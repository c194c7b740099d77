//! Loading the configuration and its variables for a command.

use super::*;

/// The configuration and its root variables, loaded once per command, with the settings it was
/// loaded with. The state codec is built from them at most once (a passphrase's key derivation
/// is deliberately slow, so state, backups and a saved plan share one).
pub struct Loaded {
    pub config: Config,
    /// Root variable values: the planner's, and those the backend and encryption blocks see.
    pub vars: BTreeMap<String, Value>,
    pub settings: Arc<Settings>,
    pub printer: Printer,
    /// The planner's hook for `--verbose`.
    pub(crate) verbose: VerboseHook,
    pub(crate) codec: std::sync::OnceLock<Arc<dyn kiln_state::Codec>>,
    /// The catalog placement and cost lines read (`None`: the one kiln ships).
    pub catalog: Option<Arc<kiln_catalog::Catalog>>,
}

impl Loaded {
    /// The configuration's directory.
    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }

    /// The selected workspace (see [`workspace::current`]).
    pub fn workspace(&self) -> Result<String, Failure> {
        workspace::current(&self.settings)
    }
}

/// The configuration and its variables (`--var`, `--var-file`, the environment, auto-loaded
/// files); errors in either stop the command, warnings are printed.
pub fn load(cx: &Ctx, vars: &VarArgs) -> Result<Loaded, Failure> {
    let dir = cx.dir();
    let (config, mut diags) = kiln_config::load(dir);
    let mut config = config.expect("load always returns a config");
    let cli: &[VarSources] = &vars.ordered;
    let (values, vd) = kiln_ops::load_variables(dir, cli, &cx.settings.env, &mut config.sources);
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
    // The catalog placement and cost lines read: the shipped one unless the configuration has
    // a `catalog` block or `kiln catalog refresh` wrote files here.
    let mut catalog = None;
    if !diags.has_errors() && (config.root.module.catalog.is_some() || dir.join(".kiln/catalog").is_dir()) {
        match kiln_ops::catalog::for_command(&config, &values, dir) {
            Ok(c) => catalog = Some(Arc::new(c)),
            Err(d) => diags.extend(d),
        }
    }
    if diags.has_errors() {
        return Err(Failure::in_sources(&config.sources, diags));
    }
    let l = Loaded {
        config,
        vars: values,
        settings: cx.settings.clone(),
        printer: cx.printer,
        verbose: VerboseHook(cx.printer),
        codec: Default::default(),
        catalog,
    };
    warn(&l, &diags);
    Ok(l)
}

/// For commands without `--var` (state, workspace, show, force-unlock): the configuration as it
/// loads (its errors are left to the commands that evaluate it), and the root variables the
/// backend and encryption blocks see from the environment and the auto-loaded files.
pub fn load_config(cx: &Ctx) -> Loaded {
    let (config, _) = kiln_config::load(cx.dir());
    with_config(cx, config.expect("load always returns a config"))
}

/// `config`, with the root variables of [`load_config`].
pub fn with_config(cx: &Ctx, config: Config) -> Loaded {
    let vars = kiln_ops::load_variables(cx.dir(), &[], &cx.settings.env, &mut kiln_diag::Sources::default()).0;
    Loaded {
        config,
        vars,
        settings: cx.settings.clone(),
        printer: cx.printer,
        verbose: VerboseHook(cx.printer),
        codec: Default::default(),
        catalog: None,
    }
}

/// The warnings among `diags`, on stderr.
pub(crate) fn warn(l: &Loaded, diags: &Diagnostics) {
    let w: Diagnostics = diags.iter().filter(|d| !d.is_error()).cloned().collect();
    l.printer.diagnostics(&l.config.sources, &w);
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
