//! One function per command. Each loads what it needs, calls the engine, renders, and returns
//! the process exit code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use std::sync::Arc;
use kiln_addrs::Target;
use kiln_config::Config;
use kiln_core::{Hook, ProviderRegistry};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_ops::VarSources;
use kiln_plan::{Mode, Plan};
use kiln_state::{LockInfo, State, StateBackend};
use kiln_value::Value;
use crate::cli::{Cli, Command, PlanArgs, VarArgs};
use crate::render;

mod apply;
mod fmt;
mod init;
pub mod jobs;
mod plan;
mod show;
mod state;

pub use apply::{execute, ApplyOpts};

pub const OK: i32 = 0;

pub const ERROR: i32 = 1;

pub const CHANGES: i32 = 2;

pub fn registry() -> ProviderRegistry {
    let mut r = ProviderRegistry::new();
    r.register(Arc::new(kiln_provider_builtin::BuiltinFactory));
    r.register(Arc::new(kiln_provider_local::LocalFactory));
    r.register(Arc::new(kiln_provider_aws::AwsFactory));
    r.register(Arc::new(kiln_provider_onprem::OnpremFactory));
    r
}

pub async fn run(cli: Cli) -> i32 {
    match kiln_provider_builtin::parse_duration(&cli.lock_timeout) {
        Some(d) => {
            let _ = LOCK_TIMEOUT.set(d);
        }
        None => {
            eprintln!("Error: invalid --lock-timeout `{}`: write a duration such as 30s or 5m", cli.lock_timeout);
            return ERROR;
        }
    }
    if let Some(dir) = &cli.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!("Error: cannot change to `{}`: {e}", dir.display());
            return ERROR;
        }
    }
    let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let r = match cli.command {
        Command::Init => init::init(&dir),
        Command::Validate { vars, json } => init::validate(&dir, &vars, json).await,
        Command::Plan { args, out, detailed_exitcode, json } => plan::plan_cmd(&dir, &args, out, detailed_exitcode, json).await,
        Command::Apply { args, auto_approve, wait, plan_file } => apply::apply_cmd(&dir, &args, ApplyOpts { auto_approve, wait, plan_file, mode: Mode::Normal }).await,
        Command::Destroy { args, auto_approve } => apply::apply_cmd(&dir, &args, ApplyOpts { auto_approve, wait: false, plan_file: None, mode: Mode::Destroy }).await,
        Command::Logs { vars, address, node, follow } => jobs::logs(&dir, &vars, &address, node, follow).await,
        Command::Jobs { vars } => jobs::list(&dir, &vars).await,
        Command::Show { json, plan_file } => show::show(&dir, json, plan_file).await,
        Command::Output { json, raw, name } => show::output(&dir, json, raw, name).await,
        Command::Graph => show::graph(&dir),
        Command::Fmt { check, diff, recursive, paths } => fmt::fmt(&dir, check, diff, recursive, paths),
        Command::State(s) => state::state_cmd(&dir, s).await,
        Command::Import { vars, address, id } => state::import(&dir, &vars, &address, &id).await,
        Command::ForceUnlock { lock_id, force: _ } => state::force_unlock(&dir, &lock_id).await,
        Command::Version => {
            println!("kiln v{}", env!("CARGO_PKG_VERSION"));
            Ok(OK)
        }
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.trim_end());
            ERROR
        }
    }
}

type R = Result<i32, String>;

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
                Diagnostic::error("E-VERSION", format!("this configuration requires kiln {}, and this is kiln {}", s.0, env!("CARGO_PKG_VERSION")))
                    .at(s.1.clone(), "required_version")
                    .hint("install a matching kiln, or change required_version"),
            );
        }
    }
    if diags.has_errors() {
        return Err(render::diagnostics(&config.sources, &diags));
    }
    warn(&config, &diags);
    Ok(Loaded { config, vars: values })
}

fn warn(config: &Config, diags: &Diagnostics) {
    let w: Diagnostics = diags.iter().filter(|d| !d.is_error()).cloned().collect();
    if !w.is_empty() {
        eprint!("{}", render::diagnostics(&config.sources, &w));
    }
}

/// `>= 0.1`, `~> 0.1`, `= 0.1.0`, comma-separated.
fn version_ok(req: &str) -> bool {
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

/// `--verbose`: what providers did while planning, on stderr.
struct VerboseHook;

impl Hook for VerboseHook {
    fn refresh_done(&self, provider: &str, count: usize, elapsed: Duration) {
        eprintln!("{provider}: refreshed {count} object(s) in {:.2}s", elapsed.as_secs_f64());
    }

    fn api_calls(&self, provider: &str, calls: &BTreeMap<String, u64>) {
        let total: u64 = calls.values().sum();
        let each: Vec<String> = calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
        eprintln!("{provider}: {total} API call(s): {}", each.join(", "));
    }
}

pub fn plan_request<'a>(l: &'a Loaded, state: &'a State, reg: &'a ProviderRegistry, args: &PlanArgs, mode: Mode, dir: &Path) -> kiln_core::PlanRequest<'a> {
    kiln_core::PlanRequest {
        config: &l.config,
        state,
        registry: reg,
        variables: l.vars.clone(),
        mode,
        refresh: args.refresh,
        targets: args.target.iter().filter_map(|t| t.parse::<Target>().ok()).collect(),
        excludes: args.exclude.iter().filter_map(|t| t.parse::<Target>().ok()).collect(),
        hook: if args.verbose { &VerboseHook } else { &kiln_core::NoopHook },
        cwd: dir.to_path_buf(),
    }
}

fn check_addresses(args: &PlanArgs) -> Result<(), String> {
    for t in args.target.iter().chain(&args.exclude) {
        t.parse::<Target>().map_err(|e| format!("Error: {e}\n  = help: addresses look like record.a, record.a[0], record.a[\"key\"] or module.m"))?;
    }
    Ok(())
}

pub async fn read_state(backend: &dyn StateBackend) -> Result<State, String> {
    match backend.read().await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Ok(State::default()),
        Err(e @ kiln_state::StateError::NewerFormat { .. }) => Err(format!("Error: {e}\n  = help: the state file was left untouched; use a kiln at least as new as the one that wrote it")),
        Err(e) => Err(format!("Error: {e}\n  = help: the state file was left untouched; restore it from its .backup file or fix it by hand")),
    }
}

/// Plans, giving up (so the caller can release the lock) on Ctrl-C.
pub async fn make_plan(dir: &Path, l: &Loaded, state: &State, args: &PlanArgs, mode: Mode) -> Result<Plan, String> {
    tokio::select! {
        r = make_plan_inner(dir, l, state, args, mode) => r,
        _ = tokio::signal::ctrl_c() => Err("Interrupted: planning stopped; nothing was changed".to_string()),
    }
}

async fn make_plan_inner(dir: &Path, l: &Loaded, state: &State, args: &PlanArgs, mode: Mode) -> Result<Plan, String> {
    check_addresses(args)?;
    let reg = registry();
    let (plan, diags) = kiln_core::plan(plan_request(l, state, &reg, args, mode, dir)).await;
    if diags.has_errors() {
        return Err(render::diagnostics(&l.config.sources, &diags));
    }
    warn(&l.config, &diags);
    plan.ok_or_else(|| "Error: no plan could be made".to_string())
}

pub fn open(config: &Config, dir: &Path) -> Result<Arc<dyn StateBackend>, String> {
    kiln_ops::open_backend(config, dir).map(Arc::from).map_err(|e| format!("Error: {e}"))
}

/// How long `lock` keeps retrying a lock held by someone else (`--lock-timeout`).
static LOCK_TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// Takes the state lock, retrying with a bounded backoff until `--lock-timeout` runs out.
async fn lock(backend: &dyn StateBackend, op: &str) -> Result<LockInfo, String> {
    let info = LockInfo::new(op);
    let deadline = std::time::Instant::now() + LOCK_TIMEOUT.get().copied().unwrap_or_default();
    let mut wait = Duration::from_millis(100);
    loop {
        match backend.lock(&info).await {
            Ok(()) => return Ok(info),
            Err(kiln_state::LockError::Held { .. }) if std::time::Instant::now() + wait <= deadline => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(format!("Error: cannot lock the state: {e}")),
        }
    }
}

fn print_outputs(state: &State) {
    if state.outputs.is_empty() {
        return;
    }
    println!("\nOutputs:\n");
    for (k, o) in &state.outputs {
        let v = if o.sensitive { "<sensitive>".to_string() } else { o.value.to_string() };
        println!("{k} = {v}");
    }
}

async fn current_state(dir: &Path) -> Result<State, String> {
    let (config, _) = kiln_config::load(dir);
    let config = config.expect("config");
    let backend = open(&config, dir)?;
    read_state(backend.as_ref()).await
}
