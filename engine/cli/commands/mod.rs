//! One function per command. Each loads what it needs, calls the engine, renders, and returns
//! the process exit code.

use crate::cli::{Cli, Command, PlanArgs, VarArgs};
use crate::render;
use kiln_addrs::Target;
use kiln_config::Config;
use kiln_core::{Hook, ProviderRegistry};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_ops::VarSources;
use kiln_plan::{Mode, Plan};
use kiln_state::{LockInfo, State, StateBackend};
use kiln_value::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod apply;
mod fmt;
mod init;
mod inventory;
pub mod jobs;
mod plan;
mod show;
mod state;
pub(crate) mod workspace;

pub use apply::{execute, ApplyOpts};

pub const OK: i32 = 0;

pub const ERROR: i32 = 1;

pub const CHANGES: i32 = 2;

pub fn registry() -> ProviderRegistry {
    let mut r = ProviderRegistry::new();
    r.register(Arc::new(kiln_provider_builtin::BuiltinFactory));
    r.register(Arc::new(kiln_provider_local::LocalFactory));
    #[cfg(feature = "aws")]
    r.register(Arc::new(kiln_provider_aws::AwsFactory));
    #[cfg(feature = "onprem")]
    r.register(Arc::new(kiln_provider_onprem::OnpremFactory));
    #[cfg(feature = "slurm")]
    r.register(Arc::new(kiln_provider_slurm::SlurmFactory));
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
    // A panic (a bug) must not leave the state locked: catch it, release every lock this
    // process holds, and exit as a panic does (101) after the panic's own message.
    match CatchUnwind(Box::pin(dispatch(cli, dir))).await {
        Ok(code) => code,
        Err(_) => {
            let released = release_all_locks().await;
            eprintln!(
                "Error: kiln stopped on an internal error (a bug; the message above says where){}\n  = help: please report it with the command and configuration that caused it",
                if released { "; the state lock it held was released" } else { "" }
            );
            101
        }
    }
}

/// Polls a future inside `catch_unwind`, so that a panic while it runs becomes an `Err`.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(e) => std::task::Poll::Ready(Err(e)),
        }
    }
}

async fn dispatch(cli: Cli, dir: PathBuf) -> i32 {
    let r = match cli.command {
        Command::Init { vars, migrate_state, reconfigure } => init::init(&dir, &vars, migrate_state, reconfigure).await,
        Command::Validate { vars, json } => init::validate(&dir, &vars, json).await,
        Command::Plan { args, out, detailed_exitcode, json } => plan::plan_cmd(&dir, &args, out, detailed_exitcode, json).await,
        Command::Apply { args, auto_approve, wait, plan_file } => {
            apply::apply_cmd(&dir, &args, ApplyOpts { auto_approve, wait, plan_file, mode: Mode::Normal }).await
        }
        Command::Destroy { args, auto_approve } => {
            apply::apply_cmd(&dir, &args, ApplyOpts { auto_approve, wait: false, plan_file: None, mode: Mode::Destroy }).await
        }
        Command::Logs { vars, address, node, follow } => jobs::logs(&dir, &vars, &address, node, follow).await,
        Command::Jobs { vars } => jobs::list(&dir, &vars).await,
        Command::Inventory { vars } => inventory::inventory(&dir, &vars).await,
        Command::Show { json, plan_file } => show::show(&dir, json, plan_file).await,
        Command::Output { json, raw, name } => show::output(&dir, json, raw, name).await,
        Command::Graph => show::graph(&dir),
        Command::Fmt { check, diff, recursive, paths } => fmt::fmt(&dir, check, diff, recursive, paths),
        Command::State(s) => state::state_cmd(&dir, s).await,
        Command::Import { vars, address, id } => state::import(&dir, &vars, &address, &id).await,
        Command::ForceUnlock { lock_id, force } => state::force_unlock(&dir, &lock_id, force).await,
        Command::Workspace(w) => workspace::workspace_cmd(&dir, w).await,
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

pub fn plan_request<'a>(
    l: &'a Loaded,
    state: &'a State,
    reg: &'a ProviderRegistry,
    args: &PlanArgs,
    mode: Mode,
    dir: &Path,
) -> kiln_core::PlanRequest<'a> {
    kiln_core::PlanRequest {
        config: &l.config,
        state,
        registry: reg,
        variables: l.vars.clone(),
        mode,
        refresh: args.refresh,
        offline: false,
        workspace: workspace::current(dir).unwrap_or_else(|_| kiln_state::DEFAULT_WORKSPACE.to_string()),
        targets: args.target.iter().filter_map(|t| t.parse::<Target>().ok()).collect(),
        excludes: args.exclude.iter().filter_map(|t| t.parse::<Target>().ok()).collect(),
        hook: if args.verbose { &VerboseHook } else { &kiln_core::NoopHook },
        cwd: dir.to_path_buf(),
    }
}

fn check_addresses(args: &PlanArgs) -> Result<(), String> {
    for t in args.target.iter().chain(&args.exclude) {
        t.parse::<Target>()
            .map_err(|e| format!("Error: {e}\n  = help: addresses look like record.a, record.a[0], record.a[\"key\"] or module.m"))?;
    }
    Ok(())
}

pub async fn read_state(backend: &dyn StateBackend) -> Result<State, String> {
    match backend.read().await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Ok(State::default()),
        Err(e @ kiln_state::StateError::Missing { .. }) => Err(format!("Error: {e}")),
        Err(e @ kiln_state::StateError::NewerFormat { .. }) => {
            Err(format!("Error: {e}\n  = help: the state file was left untouched; use a kiln at least as new as the one that wrote it"))
        }
        Err(e) => {
            Err(format!("Error: {e}\n  = help: the state file was left untouched; restore it from its .backup file or fix it by hand"))
        }
    }
}

/// Plans, giving up (so the caller can release the lock) on Ctrl-C.
pub async fn make_plan(dir: &Path, l: &Loaded, state: &State, args: &PlanArgs, mode: Mode) -> Result<Plan, String> {
    let mut interrupts = Interrupts::new();
    tokio::select! {
        r = make_plan_inner(dir, l, state, args, mode) => r,
        _ = interrupts.recv() => Err("Interrupted: planning stopped; nothing was changed".to_string()),
    }
}

async fn make_plan_inner(dir: &Path, l: &Loaded, state: &State, args: &PlanArgs, mode: Mode) -> Result<Plan, String> {
    // A failpoint for the tests that check a crash never leaves the state locked; debug builds
    // (the test suite's) only, so a release binary has no switch that crashes it.
    if cfg!(debug_assertions) && std::env::var("KILN_TEST_PANIC").is_ok_and(|v| v == "plan") {
        panic!("KILN_TEST_PANIC=plan: a deliberate crash while planning");
    }
    check_addresses(args)?;
    let reg = registry();
    let (plan, diags) = kiln_core::plan(plan_request(l, state, &reg, args, mode, dir)).await;
    if diags.has_errors() {
        return Err(render::diagnostics(&l.config.sources, &diags));
    }
    warn(&l.config, &diags);
    let plan = plan.ok_or_else(|| "Error: no plan could be made".to_string())?;
    check_depth(&plan)?;
    Ok(plan)
}

/// Refuses a plan holding a value nested deeper than state and plan files are read
/// ([`kiln_value::MAX_DEPTH`]), before anything is created: whatever kiln writes, it must read.
pub(crate) fn check_depth(plan: &Plan) -> Result<(), String> {
    let max = kiln_value::MAX_DEPTH;
    let deep = |v: &Option<Value>| v.as_ref().is_some_and(|v| v.deeper_than(max));
    let what = if let Some(c) = plan.changes.iter().find(|c| deep(&c.after)) {
        format!("the planned value of `{}`", c.address)
    } else if let Some((name, _)) = plan.outputs.iter().find(|(_, o)| deep(&o.after)) {
        format!("output `{name}`")
    } else if let Some((name, _)) = plan.variables.iter().find(|(_, v)| v.deeper_than(max)) {
        format!("variable `{name}`")
    } else {
        return Ok(());
    };
    Err(format!(
        "Error: {what} nests lists and maps more than {max} levels deep (a resource's attributes object counts as one), deeper than kiln can store in state\n  = help: flatten the value (for example, encode deep data with jsonencode into a string); nothing was changed"
    ))
}

/// `serial` plus `by`, refused past the largest serial: a serial never wraps or goes down.
pub(crate) fn next_serial(serial: u64, by: u64) -> Result<u64, String> {
    serial.checked_add(by).ok_or_else(|| {
        format!("Error: the state's serial `{serial}` cannot advance further: it is at the largest serial kiln can write ({})\n  = help: nothing was changed; the state file's serial was edited by hand or damaged: put back a copy with a sensible serial", u64::MAX)
    })
}

/// Root variable values for the backend and encryption settings: those `load` evaluated (with
/// `--var` and `--var-file`), else the environment's and the auto-loaded files'.
static BACKEND_VARS: std::sync::OnceLock<BTreeMap<String, Value>> = std::sync::OnceLock::new();

fn backend_vars(dir: &Path) -> BTreeMap<String, Value> {
    BACKEND_VARS.get().cloned().unwrap_or_else(|| {
        let env: Vec<(String, String)> = std::env::vars().collect();
        kiln_ops::load_variables(dir, &[], &env, &mut kiln_diag::Sources::default()).0
    })
}

/// The evaluated backend block.
pub fn backend_config(config: &Config, dir: &Path) -> Result<kiln_ops::BackendConfig, String> {
    kiln_ops::backend_config(config, dir, &backend_vars(dir)).map_err(|d| render::diagnostics(&config.sources, &d))
}

/// The codec every stored state document goes through (the `encryption` block's, else plain).
/// Built once per process: one command has one configuration, and a passphrase's key
/// derivation is deliberately slow, so state, backups and a saved plan share one codec.
pub fn codec(config: &Config, dir: &Path) -> Result<Arc<dyn kiln_state::Codec>, String> {
    static CODEC: std::sync::OnceLock<Arc<dyn kiln_state::Codec>> = std::sync::OnceLock::new();
    if let Some(c) = CODEC.get() {
        return Ok(c.clone());
    }
    let (codec, diags) = kiln_ops::encryption::state_codec(config, &backend_vars(dir));
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

/// How long `lock` keeps retrying a lock held by someone else (`--lock-timeout`).
static LOCK_TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// The lease of state locks: `KILN_LOCK_LEASE` (such as `30s`), else 60 s. The holder renews it
/// every third of that; a lock whose lease ran out is reported stale.
fn lock_lease() -> Duration {
    std::env::var("KILN_LOCK_LEASE")
        .ok()
        .and_then(|v| kiln_provider_builtin::parse_duration(&v))
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(60))
}

/// A state lock held by this process, its lease renewed in the background until [`unlock`].
pub(crate) struct StateLock {
    pub id: String,
    renewer: Option<tokio::task::JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

/// Takes the state lock, retrying with a bounded backoff until `--lock-timeout` runs out, and
/// starts renewing its lease.
async fn lock(backend: &Arc<dyn StateBackend>, op: &str) -> Result<StateLock, String> {
    let lease = lock_lease();
    let info = LockInfo::new(op).with_lease(lease);
    let deadline = std::time::Instant::now() + LOCK_TIMEOUT.get().copied().unwrap_or_default();
    let mut wait = Duration::from_millis(100);
    loop {
        match backend.lock(&info).await {
            Ok(()) => break,
            // A stale lock is never released by its holder: waiting for it would only use up
            // --lock-timeout. The error names the lock and the force-unlock command.
            Err(kiln_state::LockError::Held { stale: false, .. }) if std::time::Instant::now() + wait <= deadline => {
                // Jittered, so that many waiters do not poll in step; capped so that one of them
                // takes the lock soon after it is released.
                let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
                let jitter = Duration::from_millis(u64::from((nanos ^ std::process::id()) % 100));
                tokio::time::sleep(wait + jitter).await;
                wait = (wait * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(format!("Error: cannot lock the state: {e}")),
        }
    }
    held_locks().push((backend.clone(), info.id.clone()));
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let b = backend.clone();
    let mut renewed = info.clone();
    let renewer = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(lease / 3) => {}
                _ = &mut stopped => return,
            }
            renewed.renew(lease);
            if let Err(e) = b.renew_lock(&renewed).await {
                if matches!(e, kiln_state::LockError::NotHeld | kiln_state::LockError::Mismatch { .. }) {
                    // Someone broke the lock (`kiln force-unlock`) and may be changing the
                    // state: this run must not start anything more.
                    let why = format!("the state lock `{}` was removed by someone else while this run held it ({e})", renewed.id);
                    held_locks().retain(|(_, id)| *id != renewed.id);
                    let _ = LOCK_LOST.0.send(Some(why));
                    return;
                }
                eprintln!("Warning: could not renew the state lock's lease: {e}");
            }
        }
    });
    Ok(StateLock { id: info.id, renewer: Some(renewer), stop: Some(stop) })
}

/// A watch channel's two ends (the receiver kept so a send always lands).
type Watch<T> = (tokio::sync::watch::Sender<T>, tokio::sync::watch::Receiver<T>);

/// Set (once) when the lease renewal finds the lock gone: apply stops starting operations.
static LOCK_LOST: std::sync::LazyLock<Watch<Option<String>>> = std::sync::LazyLock::new(|| tokio::sync::watch::channel(None));

/// Why this process lost its state lock, once it has.
pub(crate) fn lock_lost() -> tokio::sync::watch::Receiver<Option<String>> {
    LOCK_LOST.1.clone()
}

/// The locks this process holds: released by [`unlock`], or by [`release_all_locks`] when a
/// command panics.
fn held_locks() -> std::sync::MutexGuard<'static, Vec<(Arc<dyn StateBackend>, String)>> {
    static HELD: std::sync::Mutex<Vec<(Arc<dyn StateBackend>, String)>> = std::sync::Mutex::new(Vec::new());
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Releases every lock still held (after a panic); true if there was one.
async fn release_all_locks() -> bool {
    let held: Vec<_> = std::mem::take(&mut *held_locks());
    for (backend, id) in &held {
        if let Err(e) = backend.unlock(id).await {
            eprintln!("Warning: could not release the state lock `{id}`: {e}");
        }
    }
    !held.is_empty()
}

/// Stops renewing the lease (waiting for a renewal in flight), then releases the lock.
pub(crate) async fn unlock(backend: &dyn StateBackend, mut lock: StateLock) {
    if let Some(stop) = lock.stop.take() {
        let _ = stop.send(());
    }
    if let Some(r) = lock.renewer.take() {
        let _ = r.await;
    }
    let was_held = {
        let mut held = held_locks();
        let before = held.len();
        held.retain(|(_, id)| *id != lock.id);
        held.len() != before
    };
    if !was_held {
        return; // lost to someone else: theirs now, not ours to remove
    }
    if let Err(e) = backend.unlock(&lock.id).await {
        eprintln!("Warning: could not release the state lock: {e}");
    }
}

/// Ctrl-C (SIGINT) and SIGTERM: both interrupt a run the same way (state saved, lock released).
pub(crate) struct Interrupts {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    pub fn new() -> Self {
        Interrupts {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// Waits for the next interrupt; `false` if signals cannot be received.
    pub async fn recv(&mut self) -> bool {
        #[cfg(unix)]
        if let Some(term) = &mut self.term {
            return tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                r = term.recv() => r.is_some(),
            };
        }
        tokio::signal::ctrl_c().await.is_ok()
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
