//! Making a plan for a command: the core's request, address checks, depth and serial limits.

use super::*;

/// `--verbose`: what providers did while planning, on stderr.
pub(crate) struct VerboseHook(pub(crate) Printer);

impl Hook for VerboseHook {
    fn refresh_done(&self, provider: &str, count: usize, elapsed: Duration) {
        self.0.note(format_args!("{provider}: refreshed {count} object(s) in {:.2}s", elapsed.as_secs_f64()));
    }

    fn api_calls(&self, provider: &str, calls: &BTreeMap<String, u64>) {
        let total: u64 = calls.values().sum();
        let each: Vec<String> = calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
        self.0.note(format_args!("{provider}: {total} API call(s): {}", each.join(", ")));
    }
}

pub fn plan_request<'a>(
    l: &'a Loaded,
    state: &'a State,
    reg: &'a ProviderRegistry,
    providers: &'a kiln_core::Providers,
    args: &PlanArgs,
    mode: Mode,
    dir: &Path,
) -> kiln_core::PlanRequest<'a> {
    kiln_core::PlanRequest {
        config: &l.config,
        state,
        registry: reg,
        providers,
        variables: l.vars.clone(),
        mode,
        refresh: args.refresh,
        workspace: l.workspace().unwrap_or_else(|_| kiln_state::DEFAULT_WORKSPACE.to_string()),
        targets: args.target.iter().filter_map(|t| t.parse::<Target>().ok()).collect(),
        excludes: args.exclude.iter().filter_map(|t| t.parse::<Target>().ok()).collect(),
        replace: args.replace.iter().filter_map(|t| t.parse::<Target>().ok()).collect(),
        hook: if args.verbose { &l.verbose } else { &kiln_core::NoopHook },
        cwd: dir.to_path_buf(),
        placement: kiln_core::PlacementOptions { catalog: l.catalog.clone(), replan: args.replan_placement, avoid: args.avoid.clone() },
    }
}

/// The core's request to configure the providers of the configuration and `state`.
pub(crate) fn providers_request<'a>(
    l: &'a Loaded,
    state: &'a State,
    reg: &'a ProviderRegistry,
    providers: &'a kiln_core::Providers,
    dir: &Path,
) -> kiln_core::ProvidersRequest<'a> {
    kiln_core::ProvidersRequest {
        config: &l.config,
        state,
        registry: reg,
        providers,
        variables: l.vars.clone(),
        workspace: l.workspace().unwrap_or_else(|_| kiln_state::DEFAULT_WORKSPACE.to_string()),
        cwd: dir.to_path_buf(),
    }
}

pub(crate) fn check_addresses(args: &PlanArgs) -> Result<(), Failure> {
    for t in args.target.iter().chain(&args.exclude).chain(&args.replace) {
        t.parse::<Target>().map_err(|e| {
            Diagnostic::error("E-ADDR-INVALID", e.to_string())
                .hint("addresses look like record.a, record.a[0], record.a[\"key\"] or module.m")
        })?;
    }
    Ok(())
}

/// The mode plan and apply run in: `--refresh-only` or a normal plan.
pub(crate) fn refresh_only(args: &PlanArgs) -> Mode {
    if args.refresh_only {
        Mode::RefreshOnly
    } else {
        Mode::Normal
    }
}

/// `--refresh-only` changes no object: it cannot go with what changes objects (`--replace`,
/// a destroy plan) nor without the refresh it is made of (`--refresh=false`).
fn check_refresh_only(args: &PlanArgs, mode: Mode) -> Result<(), Failure> {
    if !args.refresh_only {
        return Ok(());
    }
    let clash = if mode == Mode::Destroy {
        Some("--destroy")
    } else if !args.replace.is_empty() {
        Some("--replace")
    } else if !args.refresh {
        Some("--refresh=false")
    } else {
        None
    };
    match clash {
        None => Ok(()),
        Some(flag) => Err(Diagnostic::error("E-CLI-REFRESH-ONLY", format!("--refresh-only cannot be used with {flag}"))
            .hint("a refresh-only plan changes no object: it only records what refresh finds; run the two separately")
            .into()),
    }
}

/// A plan that breaks a policy is refused: every violation as an E-POLICY error at its policy
/// block (file:line:col) naming the change, then a summary line, on stderr; `Some(exit 3)`.
/// `None` when every policy passed. `refusal` says what happens to the plan
/// (`kiln apply refuses this plan`, `nothing was applied`).
pub(crate) fn refuse_policies(l: &Loaded, plan: &Plan, refusal: &str) -> Option<ExitStatus> {
    let failed: Vec<&kiln_plan::PolicyResult> = plan.policies.iter().filter(|p| !p.passed()).collect();
    if failed.is_empty() {
        return None;
    }
    l.printer.diagnostics(&l.config.sources, &kiln_core::policy_diagnostics(&l.config, &plan.policies));
    let violations: usize = failed.iter().map(|p| p.violations.len()).sum();
    let names: Vec<&str> = failed.iter().map(|p| p.name.as_str()).collect();
    l.printer.note(format_args!(
        "Policy check failed: the plan breaks {} of {} {} ({}) with {violations} violation{}; {refusal}.",
        failed.len(),
        plan.policies.len(),
        if plan.policies.len() == 1 { "policy" } else { "policies" },
        names.join(", "),
        if violations == 1 { "" } else { "s" },
    ));
    Some(ExitStatus::PolicyViolated)
}

/// Plans with the command's `providers` (apply and `--wait` reuse them), giving up (so the
/// caller can release the lock) on Ctrl-C.
pub async fn make_plan(
    s: &kiln_ops::operation::Session,
    dir: &Path,
    l: &Loaded,
    state: &State,
    providers: &kiln_core::Providers,
    args: &PlanArgs,
    mode: Mode,
) -> Result<Plan, Failure> {
    match s.unless_interrupted(make_plan_inner(dir, l, state, providers, args, mode)).await {
        Some(r) => r,
        None => Err(Diagnostic::error("E-INTERRUPTED", "Interrupted: planning stopped; nothing was changed")
            .hint("the state lock was released; run the command again when you are ready")
            .into()),
    }
}

pub(crate) async fn make_plan_inner(
    dir: &Path,
    l: &Loaded,
    state: &State,
    providers: &kiln_core::Providers,
    args: &PlanArgs,
    mode: Mode,
) -> Result<Plan, Failure> {
    // A failpoint for the tests that check a crash never leaves the state locked; debug builds
    // (the test suite's) only, so a release binary has no switch that crashes it.
    if l.settings.failpoint.as_deref() == Some("plan") {
        panic!("KILN_TEST_PANIC=plan: a deliberate crash while planning");
    }
    check_addresses(args)?;
    check_refresh_only(args, mode)?;
    let reg = registry();
    let (plan, diags) = kiln_core::plan(plan_request(l, state, &reg, providers, args, mode, dir)).await;
    if diags.has_errors() {
        return Err(Failure::in_sources(&l.config.sources, diags));
    }
    warn(l, &diags);
    let plan = plan.ok_or_else(|| Diagnostic::error("E-PLAN", "no plan could be made").hint("the messages above say why"))?;
    check_depth(&plan)?;
    Ok(plan)
}

/// Refuses a plan holding a value nested deeper than state and plan files are read
/// ([`kiln_value::MAX_DEPTH`]), before anything is created: whatever kiln writes, it must read.
pub(crate) fn check_depth(plan: &Plan) -> Result<(), Diagnostic> {
    let max = kiln_value::MAX_DEPTH;
    let deep = |v: &Option<Value>| v.as_ref().is_some_and(|v| v.deeper_than(max));
    let (what, address) = if let Some(c) = plan.changes.iter().find(|c| deep(&c.after)) {
        (format!("the planned value of `{}`", c.address), Some(c.address.to_string()))
    } else if let Some((name, _)) = plan.outputs.iter().find(|(_, o)| deep(&o.after)) {
        (format!("output `{name}`"), Some(format!("output.{name}")))
    } else if let Some((name, _)) = plan.variables.iter().find(|(_, v)| v.deeper_than(max)) {
        (format!("variable `{name}`"), Some(format!("var.{name}")))
    } else {
        return Ok(());
    };
    let d = Diagnostic::error(
        "E-VALUE-DEPTH",
        format!("{what} nests lists and maps more than {max} levels deep (a resource's attributes object counts as one), deeper than kiln can store in state"),
    )
    .hint("flatten the value (for example, encode deep data with jsonencode into a string); nothing was changed");
    Err(match address {
        Some(a) => d.address(a),
        None => d,
    })
}
