//! One function per command. Each loads what it needs, calls the engine, renders, and returns
//! the process exit code.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln_addrs::{InstanceAddr, Target};
use kiln_config::Config;
use kiln_core::{Cancel, Hook, ProviderRegistry};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_ops::VarSources;
use kiln_plan::{Action, Mode, Plan};
use kiln_state::{LockInfo, State, StateBackend};
use kiln_value::Value;

use crate::cli::{Cli, Command, PlanArgs, StateCommand, VarArgs};
use crate::{render, view_plan};

pub const OK: i32 = 0;
pub const ERROR: i32 = 1;
pub const CHANGES: i32 = 2;

pub fn registry() -> ProviderRegistry {
    let mut r = ProviderRegistry::new();
    r.register(Arc::new(kiln_provider_builtin::BuiltinFactory));
    r
}

pub async fn run(cli: Cli) -> i32 {
    if let Some(dir) = &cli.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!("Error: cannot change to `{}`: {e}", dir.display());
            return ERROR;
        }
    }
    let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let r = match cli.command {
        Command::Init => init(&dir),
        Command::Validate { vars, json } => validate(&dir, &vars, json).await,
        Command::Plan { args, out, detailed_exitcode, json } => plan_cmd(&dir, &args, out, detailed_exitcode, json).await,
        Command::Apply { args, auto_approve, wait, plan_file } => apply_cmd(&dir, &args, ApplyOpts { auto_approve, wait, plan_file, mode: Mode::Normal }).await,
        Command::Destroy { args, auto_approve } => apply_cmd(&dir, &args, ApplyOpts { auto_approve, wait: false, plan_file: None, mode: Mode::Destroy }).await,
        Command::Logs { vars, address, node, follow } => crate::jobs::logs(&dir, &vars, &address, node, follow).await,
        Command::Jobs { vars } => crate::jobs::list(&dir, &vars).await,
        Command::Show { json, plan_file } => show(&dir, json, plan_file).await,
        Command::Output { json, raw, name } => output(&dir, json, raw, name).await,
        Command::Graph => graph(&dir),
        Command::Fmt { check, diff, recursive, paths } => fmt(&dir, check, diff, recursive, paths),
        Command::State(s) => state_cmd(&dir, s).await,
        Command::Import { vars, address, id } => import(&dir, &vars, &address, &id).await,
        Command::ForceUnlock { lock_id, force: _ } => force_unlock(&dir, &lock_id).await,
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
    let mut cli: Vec<VarSources> = vars.var_files.iter().cloned().map(VarSources::File).collect();
    cli.extend(vars.vars.iter().cloned().map(VarSources::Flag));
    let env: Vec<(String, String)> = std::env::vars().collect();
    let (values, vd) = kiln_ops::load_variables(dir, &cli, &env, &mut config.sources);
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

fn init(dir: &Path) -> R {
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

async fn validate(dir: &Path, vars: &VarArgs, json: bool) -> R {
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

fn diag_json(config: &Config, d: &Diagnostic) -> serde_json::Value {
    let range = d.primary.as_ref().map(|l| {
        let f = config.sources.get(l.span.file);
        let s = f.line_col(l.span.range.start);
        let e = f.line_col(l.span.range.end);
        serde_json::json!({"filename": f.path, "start": {"line": s.line, "column": s.column, "byte": l.span.range.start}, "end": {"line": e.line, "column": e.column, "byte": l.span.range.end}})
    });
    serde_json::json!({"severity": if d.is_error() {"error"} else {"warning"}, "code": d.code, "summary": d.summary, "detail": d.detail, "address": d.address, "hint": d.hint, "range": range})
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
        hook: &kiln_core::NoopHook,
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

async fn plan_cmd(dir: &Path, args: &PlanArgs, out: Option<PathBuf>, detailed: bool, json: bool) -> R {
    let l = load(dir, &args.vars)?;
    let backend = open(&l.config, dir)?;
    let lock = lock(backend.as_ref(), "plan").await?;
    let state = read_state(backend.as_ref()).await;
    let result = match state {
        Ok(state) => make_plan(dir, &l, &state, args, Mode::Normal).await,
        Err(e) => Err(e),
    };
    let _ = backend.unlock(&lock.id).await;
    let plan = result?;
    if json {
        println!("{}", plan_json(&plan));
    } else {
        print!("{}", view_plan::render(&plan));
    }
    if let Some(path) = out {
        let text = plan.to_json().map_err(|e| format!("Error: {e}"))?;
        if plan.variables.values().any(Value::contains_sensitive) {
            eprintln!("Warning: the saved plan holds sensitive variable values in plain text; keep {} private", path.display());
        }
        std::fs::write(&path, text).map_err(|e| format!("Error: cannot write `{}`: {e}", path.display()))?;
        eprintln!("\nSaved the plan to {}. Apply exactly this plan with: kiln apply {}", path.display(), path.display());
    }
    Ok(if detailed && plan.has_changes() { CHANGES } else { OK })
}

/// Plan JSON for machines: sensitive values replaced by `"(sensitive value)"` markers.
fn plan_json(plan: &Plan) -> String {
    fn redact(v: &Value) -> serde_json::Value {
        match v {
            Value::Sensitive(_) => serde_json::json!({"sensitive": true}),
            Value::Unknown => serde_json::json!({"unknown": true}),
            Value::List(l) => serde_json::Value::Array(l.iter().map(redact).collect()),
            Value::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), redact(v))).collect()),
            v => v.to_json(),
        }
    }
    let changes: Vec<serde_json::Value> = plan
        .changes
        .iter()
        .map(|c| {
            let hide = |v: &Option<Value>| {
                v.as_ref().map(|v| match v {
                    Value::Map(m) => serde_json::Value::Object(
                        m.iter().map(|(k, x)| (k.clone(), if c.sensitive.contains(k) { serde_json::json!({"sensitive": true}) } else { redact(x) })).collect(),
                    ),
                    v => redact(v),
                })
            };
            serde_json::json!({"address": c.address.to_string(), "provider": c.provider, "kind": c.kind, "action": c.action, "reason": c.reason, "before": hide(&c.before), "after": hide(&c.after)})
        })
        .collect();
    let s = plan.summary();
    let outputs: serde_json::Map<String, serde_json::Value> = plan
        .outputs
        .iter()
        .map(|(k, o)| {
            let v = |x: &Option<Value>| x.as_ref().map(|x| if o.sensitive { serde_json::json!({"sensitive": true}) } else { redact(x) });
            (k.clone(), serde_json::json!({"before": v(&o.before), "after": v(&o.after), "sensitive": o.sensitive}))
        })
        .collect();
    let drift: Vec<serde_json::Value> = plan.drift.iter().map(|d| serde_json::json!({"address": d.address.to_string(), "deleted": d.after.is_none()})).collect();
    serde_json::json!({
        "format_version": plan.format_version,
        "kiln_version": plan.kiln_version,
        "mode": plan.mode,
        "resource_changes": changes,
        "resource_drift": drift,
        "output_changes": outputs,
        "summary": {"add": s.add, "change": s.change, "destroy": s.destroy},
        "has_changes": plan.has_changes(),
    })
    .to_string()
}

pub fn open(config: &Config, dir: &Path) -> Result<Arc<dyn StateBackend>, String> {
    kiln_ops::open_backend(config, dir).map(Arc::from).map_err(|e| format!("Error: {e}"))
}

async fn lock(backend: &dyn StateBackend, op: &str) -> Result<LockInfo, String> {
    let info = LockInfo::new(op);
    backend.lock(&info).await.map_err(|e| format!("Error: cannot lock the state: {e}"))?;
    Ok(info)
}

pub struct ApplyOpts {
    pub auto_approve: bool,
    /// Wait for jobs to finish, then refresh state and outputs.
    pub wait: bool,
    pub plan_file: Option<PathBuf>,
    pub mode: Mode,
}

async fn apply_cmd(dir: &Path, args: &PlanArgs, opts: ApplyOpts) -> R {
    let l = load(dir, &args.vars)?;
    let backend = open(&l.config, dir)?;
    let lock = lock(backend.as_ref(), if opts.mode == Mode::Destroy { "destroy" } else { "apply" }).await?;
    let mut r = apply_locked(dir, &l, backend.clone(), args, &opts).await;
    if opts.wait && r == Ok(OK) {
        r = crate::jobs::wait_then_refresh(dir, &l, backend.clone(), args).await;
    }
    if let Err(e) = backend.unlock(&lock.id).await {
        eprintln!("Warning: could not release the state lock: {e}");
    }
    r
}

async fn apply_locked(dir: &Path, l: &Loaded, backend: Arc<dyn StateBackend>, args: &PlanArgs, opts: &ApplyOpts) -> R {
    let (auto_approve, mode) = (opts.auto_approve, opts.mode);
    let state = read_state(backend.as_ref()).await?;
    let plan = match &opts.plan_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("Error: cannot read plan `{}`: {e}", path.display()))?;
            let saved = Plan::from_json(&text).map_err(|e| format!("Error: {e}"))?;
            let current_lineage = (!state.lineage.is_empty()).then(|| state.lineage.clone());
            let current_serial = (!state.lineage.is_empty()).then_some(state.serial);
            if saved.lineage != current_lineage || saved.serial != current_serial {
                return Err(format!(
                    "Error: saved plan is stale: the state changed since the plan was made (plan made against serial {}, state is at serial {})\n  = help: run `kiln plan --out {}` again and review the new plan",
                    saved.serial.map_or("none".into(), |s| s.to_string()),
                    current_serial.map_or("none".into(), |s| s.to_string()),
                    path.display()
                ));
            }
            if saved.config_digest != kiln_core::config_digest(&l.config) {
                return Err(format!("Error: saved plan is stale: the configuration changed since the plan was made\n  = help: run `kiln plan --out {}` again and review the new plan", path.display()));
            }
            saved
        }
        None => {
            let p = make_plan(dir, l, &state, args, mode).await?;
            print!("{}", view_plan::render(&p));
            p
        }
    };
    if !plan.has_changes() {
        return Ok(OK);
    }
    if opts.plan_file.is_none() && !auto_approve {
        if !std::io::stdin().is_terminal() {
            return Err("Error: no terminal to ask for confirmation\n  = help: pass --auto-approve to apply without confirmation, or save a plan with `kiln plan --out FILE` and apply it".into());
        }
        let what = if mode == Mode::Destroy { "destroy all resources" } else { "perform these actions" };
        eprint!("\nDo you want to {what}?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if answer.trim() != "yes" {
            eprintln!("\nApply cancelled.");
            return Ok(ERROR);
        }
    }
    execute(dir, l, backend, state, &plan, args.parallelism).await
}

/// Applies `plan` to `state` and saves the result; prints the summary and outputs.
pub async fn execute(dir: &Path, l: &Loaded, backend: Arc<dyn StateBackend>, mut state: State, plan: &Plan, parallelism: Option<usize>) -> R {
    let mode = plan.mode;
    if state.lineage.is_empty() {
        state = State::new();
        backend.write(&state).await.map_err(|e| format!("Error: cannot create the state: {e}"))?;
    }
    let (sink, writer) = kiln_ops::JournalSink::start(backend.clone());
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(0u8);
    let signals = tokio::spawn(async move {
        for level in 1..=2u8 {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            if level == 1 {
                eprintln!("\nInterrupt received: no new operations will start; waiting for those in flight. Press Ctrl-C again to abandon them.");
            } else {
                eprintln!("\nSecond interrupt: abandoning operations in flight after saving state.");
            }
            let _ = cancel_tx.send(level);
        }
    });
    let summary = plan.summary();
    let hook = Arc::new(Progress::new(summary.add + summary.change + summary.destroy));
    let reg = registry();
    let outcome = kiln_core::apply(kiln_core::ApplyRequest {
        config: &l.config,
        state: state.clone(),
        registry: &reg,
        plan,
        hook: hook.clone(),
        sink: sink.clone(),
        cancel: Cancel(cancel_rx),
        cwd: dir.to_path_buf(),
        parallelism,
    })
    .await;
    signals.abort();
    hook.finish();
    drop(sink);
    let _ = writer.await;
    let mut new_state = outcome.state;
    // The journal advanced the stored serial once per group commit; the snapshot goes past it.
    let stored = backend.read().await.ok().flatten().map_or(state.serial, |s| s.serial);
    new_state.serial = stored + 1;
    new_state.lineage = state.lineage.clone();
    if let Err(e) = backend.write(&new_state).await {
        return Err(format!("Error: cannot save the final state: {e}\n  = help: every completed operation is in {}.journal; the next kiln command folds it in", backend.describe()));
    }
    let counts = hook.counts();
    if outcome.diagnostics.has_errors() || outcome.interrupted {
        let diags: Diagnostics = outcome.diagnostics;
        eprint!("{}", render::diagnostics(&l.config.sources, &diags));
        if outcome.interrupted {
            eprintln!("Apply interrupted: state was saved with every completed operation.");
        }
        return Ok(ERROR);
    }
    let verb = if mode == Mode::Destroy { "Destroy" } else { "Apply" };
    println!("\n{verb} complete! Resources: {} added, {} changed, {} destroyed.", counts.0, counts.1, counts.2);
    print_outputs(&new_state);
    Ok(OK)
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

/// Apply progress on stderr: a progress bar on a terminal (indicatif), one line per operation
/// otherwise, nothing with KILN_QUIET. Also counts completed operations for the summary line.
struct Progress {
    counts: std::sync::Mutex<(usize, usize, usize)>,
    quiet: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total: usize) -> Self {
        let quiet = std::env::var_os("KILN_QUIET").is_some();
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress { counts: std::sync::Mutex::new((0, 0, 0)), quiet, bar }
    }

    fn counts(&self) -> (usize, usize, usize) {
        *self.counts.lock().expect("counts")
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(b) => b.println(text),
            None if !self.quiet => eprintln!("{text}"),
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Hook for Progress {
    fn apply_start(&self, addr: &InstanceAddr, action: Action) {
        let verb = match action {
            Action::Create => "Creating...",
            Action::Update => "Modifying...",
            Action::Delete => "Destroying...",
            _ => return,
        };
        match &self.bar {
            Some(b) => b.set_message(format!("{addr}: {verb}")),
            None => self.line(format!("{addr}: {verb}")),
        }
    }

    fn apply_done(&self, addr: &InstanceAddr, action: Action, error: Option<&str>, elapsed: Duration) {
        if error.is_none() {
            let mut c = self.counts.lock().expect("counts");
            match action {
                Action::Create => c.0 += 1,
                Action::Update => c.1 += 1,
                Action::Delete => c.2 += 1,
                _ => {}
            }
        }
        if let Some(b) = &self.bar {
            b.inc(1);
        }
        let what = match (action, error) {
            (_, Some(e)) => format!("failed: {e}"),
            (Action::Create, None) => "Creation complete".into(),
            (Action::Update, None) => "Modifications complete".into(),
            (Action::Delete, None) => "Destruction complete".into(),
            _ => return,
        };
        self.line(format!("{addr}: {what} after {:.1}s", elapsed.as_secs_f64()));
    }
}

async fn current_state(dir: &Path) -> Result<State, String> {
    let (config, _) = kiln_config::load(dir);
    let config = config.expect("config");
    let backend = open(&config, dir)?;
    read_state(backend.as_ref()).await
}

async fn show(dir: &Path, json: bool, plan_file: Option<PathBuf>) -> R {
    if let Some(p) = plan_file {
        let text = std::fs::read_to_string(&p).map_err(|e| format!("Error: cannot read `{}`: {e}", p.display()))?;
        let plan = Plan::from_json(&text).map_err(|e| format!("Error: {e}"))?;
        if json {
            println!("{}", plan_json(&plan));
        } else {
            print!("{}", view_plan::render(&plan));
        }
        return Ok(OK);
    }
    let state = current_state(dir).await?;
    if json {
        let resources: Vec<serde_json::Value> = state
            .resources
            .iter()
            .map(|(a, r)| {
                let attrs: serde_json::Map<String, serde_json::Value> = r
                    .attributes
                    .as_map()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), if r.sensitive.contains(k) { serde_json::json!({"sensitive": true}) } else { v.to_json() })).collect())
                    .unwrap_or_default();
                serde_json::json!({"address": a.to_string(), "provider": r.provider, "kind": r.kind, "values": attrs, "sensitive_values": r.sensitive})
            })
            .collect();
        let outputs: serde_json::Map<String, serde_json::Value> = state
            .outputs
            .iter()
            .map(|(k, o)| (k.clone(), serde_json::json!({"sensitive": o.sensitive, "value": if o.sensitive { serde_json::Value::Null } else { o.value.to_json() }})))
            .collect();
        println!("{}", serde_json::json!({"serial": state.serial, "lineage": state.lineage, "resources": resources, "outputs": outputs}));
        return Ok(OK);
    }
    if state.resources.is_empty() {
        println!("The state is empty. No resources are managed yet.");
    }
    for (a, r) in &state.resources {
        println!("# {a}:\nresource \"{}\" \"{}\" {{", r.kind, a.resource.name);
        for (k, v) in r.attributes.as_map().into_iter().flatten() {
            let v = if r.sensitive.contains(k) { "(sensitive value)".into() } else { v.to_string() };
            println!("    {k} = {v}");
        }
        println!("}}\n");
    }
    print_outputs(&state);
    Ok(OK)
}

async fn output(dir: &Path, json: bool, raw: bool, name: Option<String>) -> R {
    let state = current_state(dir).await?;
    match name {
        Some(n) => {
            let o = state.outputs.get(&n).ok_or_else(|| format!("Error: output `{n}` not found\n  = help: outputs in state: {}", state.outputs.keys().cloned().collect::<Vec<_>>().join(", ")))?;
            if json {
                println!("{}", o.value.to_json());
            } else if raw {
                match &o.value {
                    Value::String(s) => println!("{s}"),
                    v => println!("{}", v.to_json()),
                }
            } else if o.sensitive {
                println!("<sensitive>");
                eprintln!("(the output is sensitive: use `kiln output --raw {n}` to print it)");
            } else {
                println!("{}", o.value);
            }
        }
        None if json => {
            let m: serde_json::Map<String, serde_json::Value> = state
                .outputs
                .iter()
                .map(|(k, o)| (k.clone(), serde_json::json!({"sensitive": o.sensitive, "value": if o.sensitive { serde_json::Value::Null } else { o.value.to_json() }})))
                .collect();
            println!("{}", serde_json::Value::Object(m));
        }
        None => {
            for (k, o) in &state.outputs {
                println!("{k} = {}", if o.sensitive { "<sensitive>".to_string() } else { o.value.to_string() });
            }
        }
    }
    Ok(OK)
}

fn graph(dir: &Path) -> R {
    let (config, diags) = kiln_config::load(dir);
    let config = config.expect("config");
    if diags.has_errors() {
        return Err(render::diagnostics(&config.sources, &diags));
    }
    let (g, diags) = kiln_core::build_graph(&config, &registry());
    if diags.has_errors() {
        return Err(render::diagnostics(&config.sources, &diags));
    }
    print!("{}", g.deps.to_dot(ToString::to_string));
    Ok(OK)
}

fn fmt(dir: &Path, check: bool, diff: bool, recursive: bool, paths: Vec<PathBuf>) -> R {
    let roots = if paths.is_empty() { vec![dir.to_path_buf()] } else { paths };
    let mut files = Vec::new();
    for r in roots {
        collect_hcl(&r, recursive, &mut files);
    }
    let mut changed = false;
    let mut failed = false;
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("Error: cannot read `{}`: {e}", f.display()))?;
        match kiln_fmt::format_source(&text) {
            Ok(out) if out != text => {
                changed = true;
                println!("{}", f.display());
                if diff {
                    print!("{}", similar::TextDiff::from_lines(&text, &out).unified_diff().header(&f.display().to_string(), &f.display().to_string()));
                }
                if !check {
                    std::fs::write(&f, out).map_err(|e| format!("Error: cannot write `{}`: {e}", f.display()))?;
                }
            }
            Ok(_) => {}
            Err(e) => {
                failed = true;
                eprintln!("Error: {}: {e}", f.display());
            }
        }
    }
    Ok(if failed { ERROR } else if check && changed { 3 } else { OK })
}

fn collect_hcl(p: &Path, recursive: bool, out: &mut Vec<PathBuf>) {
    if p.is_file() {
        out.push(p.to_path_buf());
        return;
    }
    let Ok(rd) = std::fs::read_dir(p) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        let name = e.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if e.is_dir() {
            if recursive && !name.starts_with('.') && name != "target" {
                collect_hcl(&e, recursive, out);
            }
        } else if name.ends_with(".kiln.hcl") || name.ends_with(".kilnvars") {
            out.push(e);
        }
    }
}

async fn state_cmd(dir: &Path, cmd: StateCommand) -> R {
    let (config, _) = kiln_config::load(dir);
    let config = config.expect("config");
    let backend = open(&config, dir)?;
    match cmd {
        StateCommand::List => {
            for a in read_state(backend.as_ref()).await?.resources.keys() {
                println!("{a}");
            }
            Ok(OK)
        }
        StateCommand::Show { address } => {
            let a: InstanceAddr = address.parse().map_err(|e| format!("Error: {e}"))?;
            let state = read_state(backend.as_ref()).await?;
            let r = state.resources.get(&a).ok_or_else(|| format!("Error: `{a}` is not in state\n  = help: `kiln state list` shows what is"))?;
            println!("# {a}:\nresource \"{}\" \"{}\" {{", r.kind, a.resource.name);
            for (k, v) in r.attributes.as_map().into_iter().flatten() {
                println!("    {k} = {}", if r.sensitive.contains(k) { "(sensitive value)".into() } else { v.to_string() });
            }
            println!("}}");
            Ok(OK)
        }
        StateCommand::Rm { addresses } => {
            let lock = lock(backend.as_ref(), "state rm").await?;
            let r = async {
                let mut state = read_state(backend.as_ref()).await?;
                for a in &addresses {
                    let a: InstanceAddr = a.parse().map_err(|e| format!("Error: {e}"))?;
                    if state.resources.remove(&a).is_none() {
                        return Err(format!("Error: `{a}` is not in state"));
                    }
                    println!("Removed {a}");
                }
                state.serial += 1;
                backend.write(&state).await.map_err(|e| format!("Error: {e}"))?;
                Ok(OK)
            }
            .await;
            let _ = backend.unlock(&lock.id).await;
            r
        }
        StateCommand::Mv { from, to } => {
            let lock = lock(backend.as_ref(), "state mv").await?;
            let r = async {
                let mut state = read_state(backend.as_ref()).await?;
                let f: InstanceAddr = from.parse().map_err(|e| format!("Error: {e}"))?;
                let t: InstanceAddr = to.parse().map_err(|e| format!("Error: {e}"))?;
                if state.resources.contains_key(&t) {
                    return Err(format!("Error: `{t}` already exists in state"));
                }
                let r = state.resources.remove(&f).ok_or_else(|| format!("Error: `{f}` is not in state"))?;
                if r.kind != t.resource.kind {
                    return Err(format!("Error: cannot move a `{}` to a `{}` address", r.kind, t.resource.kind));
                }
                state.resources.insert(t.clone(), r);
                state.serial += 1;
                backend.write(&state).await.map_err(|e| format!("Error: {e}"))?;
                println!("Moved {f} to {t}");
                Ok(OK)
            }
            .await;
            let _ = backend.unlock(&lock.id).await;
            r
        }
    }
}

async fn import(dir: &Path, vars: &VarArgs, address: &str, id: &str) -> R {
    let l = load(dir, vars)?;
    let a: InstanceAddr = address.parse().map_err(|e| format!("Error: {e}"))?;
    let backend = open(&l.config, dir)?;
    let lock = lock(backend.as_ref(), "import").await?;
    let r = async {
        let mut state = read_state(backend.as_ref()).await?;
        if state.resources.contains_key(&a) {
            return Err(format!("Error: `{a}` is already managed by kiln\n  = help: `kiln state rm {a}` first to import it again"));
        }
        let reg = registry();
        let pname = reg.default_for(&a.resource.kind);
        let factory = reg.get(&pname).ok_or_else(|| format!("Error: no provider for kind `{}`", a.resource.kind))?;
        let p = factory
            .configure(kiln_provider::ConfigureRequest { config: Value::Map(Default::default()), working_dir: dir.to_path_buf() })
            .await
            .map_err(|d| render::diagnostics(&l.config.sources, &d))?;
        let name = a.to_string();
        let res = p.import(kiln_provider::ImportRequest { address: &name, kind: &a.resource.kind, id }).await;
        if res.diagnostics.has_errors() {
            return Err(render::diagnostics(&l.config.sources, &res.diagnostics));
        }
        let v = res.state.ok_or_else(|| format!("Error: no `{}` with ID `{id}` exists", a.resource.kind))?;
        if state.lineage.is_empty() {
            state = State::new();
        }
        state.resources.insert(a.clone(), kiln_state::ResourceState { provider: pname, kind: a.resource.kind.clone(), attributes: v, sensitive: vec![], dependencies: vec![], tainted: false, create_before_destroy: false });
        state.serial += 1;
        backend.write(&state).await.map_err(|e| format!("Error: {e}"))?;
        println!("Import successful: {a} is now managed by kiln.");
        Ok(OK)
    }
    .await;
    let _ = backend.unlock(&lock.id).await;
    r
}

async fn force_unlock(dir: &Path, id: &str) -> R {
    let (config, _) = kiln_config::load(dir);
    let backend = open(&config.expect("config"), dir)?;
    backend.force_unlock(id).await.map_err(|e| format!("Error: {e}"))?;
    println!("kiln state has been successfully unlocked.");
    Ok(OK)
}
