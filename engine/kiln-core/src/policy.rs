//! Policies (issue 14's plan-review gates): each `policy "NAME" { ... }` block of the root module
//! checked against the finished plan, its changes, their costs and the placement decisions.
//!
//! - `max_hourly_cost`: the plan's total hourly cost after apply. A cost kiln does not know is
//!   never counted as $0: the policy is broken when the known part alone exceeds the budget,
//!   and otherwise warns naming what it could not price.
//! - `allowed_providers`, `allowed_regions`: what exists after apply (created, updated,
//!   replaced and unchanged objects) uses one of them. An object's region is its `region`
//!   attribute, else its placement's, else its provider's `region` setting; an object whose
//!   provider has no regions is in none and passes.
//! - `spot_above_gpus = N`: a cluster or spot pool with more than N GPUs in total (nodes or
//!   instances × GPUs each, the largest alternative counted) runs on spot only.
//! - `protect_nonempty_buckets`: no bucket that holds objects is deleted or replaced; what its
//!   provider cannot tell ([`kiln_provider::Contents::Unknown`]) counts as holding objects.
//! - `rule { condition, message }`: `condition` is evaluated once per change with `change.*`
//!   and `plan.*` (and the root module's `var.*`) and must be true; false is a violation naming
//!   the change, unknown a warning, an error or a value that is not a bool an error at the
//!   condition.
//!
//! [`evaluate_policies`] is pure: it takes the configuration, the plan and what was read for it
//! ([`PolicyInputs`]) and returns one [`PolicyResult`] per policy, in name order, with
//! diagnostics (warnings, and errors in the policies themselves). [`check`] gathers the inputs
//! (one `contents` read per bucket the plan would destroy) at the end of planning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_addrs::Mode as AddrMode;
use kiln_config::{Attr, Config, Policy};
use kiln_diag::{Diagnostic, Diagnostics, Span};
use kiln_eval::{Ref, Scope};
use kiln_plan::{Action, Cost, Mode, Placement, Plan, PlannedChange, PolicyResult, Violation};
use kiln_provider::portable::request::{parse_accelerator, Request};
use kiln_provider::{Contents, ContentsRequest};
use kiln_value::{Decimal, Map, Secrets, Value, REDACTED};

use crate::plan::PlanRequest;

/// The kinds the bucket protection looks at.
const BUCKET_KINDS: [&str; 1] = ["bucket"];

/// What the checks read beside the plan, gathered by [`check`] (tests give their own).
#[derive(Debug, Clone, Default)]
pub struct PolicyInputs {
    /// What each bucket the plan deletes or replaces holds, by address and deposed key
    /// ([`Provider::contents`](kiln_provider::Provider::contents)); a bucket missing here
    /// counts as unknown.
    pub buckets: BTreeMap<(String, Option<String>), Contents>,
    /// The `region` setting of each configured provider whose configuration takes one, by
    /// provider key: `None` when its block leaves it unset (the provider then takes it from its
    /// environment, unknown at plan time). Providers without a region are not listed.
    pub provider_regions: BTreeMap<String, Option<Value>>,
}

/// Runs the configuration's policies over `plan` at the end of planning: reads what the checks
/// need through the command's providers, stores the verdicts in `plan.policies`, and adds the
/// warnings to `diags`. An error in a policy (a condition that cannot be evaluated) makes no
/// plan, as any other configuration error. A refresh-only plan changes nothing and is not
/// checked (the refresh after `apply --wait` records what happened whatever the policies say).
pub(crate) async fn check(req: &PlanRequest<'_>, mut plan: Plan, mut diags: Diagnostics) -> (Option<Plan>, Diagnostics) {
    let policies = &req.config.root.module.policies;
    if policies.is_empty() || plan.mode == Mode::RefreshOnly {
        return (Some(plan), diags);
    }
    let inputs = gather(req, &plan).await;
    let (results, found) = evaluate_policies(req.config, &plan, &inputs);
    diags.extend(found);
    if diags.has_errors() {
        return (None, diags);
    }
    plan.policies = results;
    (Some(plan), diags)
}

/// Reads what the configured policies need: the contents of the buckets the plan would
/// destroy (only when a policy protects buckets) and the providers' regions (only when a
/// policy limits regions).
async fn gather(req: &PlanRequest<'_>, plan: &Plan) -> PolicyInputs {
    let policies = &req.config.root.module.policies;
    let mut inputs = PolicyInputs::default();
    if policies.values().any(|p| p.protect_nonempty_buckets.as_ref().is_some_and(|a| !literal_false(a))) {
        for c in plan.changes.iter().filter(|c| destroys_bucket(c)) {
            let Some(before) = &c.before else { continue };
            let address = c.address.to_string();
            let contents = match req.providers.get(&c.provider) {
                Some(p) => p.contents(ContentsRequest { address: &address, kind: &c.kind, state: before }).await,
                None => Contents::Unknown { reason: format!("provider `{}` was not configured", c.provider) },
            };
            inputs.buckets.insert((address, c.deposed.clone()), contents);
        }
    }
    if policies.values().any(|p| p.allowed_regions.is_some()) {
        let scope = PolicyScope::new(req.config, plan, None);
        let keys: std::collections::BTreeSet<&str> = plan.changes.iter().map(|c| c.provider.as_str()).collect();
        for key in keys {
            let name = key.split('.').next().unwrap_or(key);
            if !req.registry.schema(name).is_some_and(|s| s.config.attributes.contains_key("region")) {
                continue;
            }
            let block = req.config.root.module.providers.iter().find(|p| p.key() == key);
            let region = block.and_then(|b| b.body.attr("region")).map(|a| kiln_eval::eval(&a.expr, &scope).unwrap_or(Value::Unknown));
            inputs.provider_regions.insert(key.to_string(), region.filter(|v| !v.is_null()));
        }
    }
    inputs
}

fn literal_false(a: &Attr) -> bool {
    matches!(&*a.expr.node, hcl_edit::expr::Expression::Bool(b) if !*b.value())
}

fn destroys_bucket(c: &PlannedChange) -> bool {
    c.address.resource.mode == AddrMode::Managed
        && BUCKET_KINDS.contains(&c.kind.as_str())
        && matches!(c.action, Action::Delete | Action::Replace)
}

/// Every policy of `config` checked against `plan`: one result per policy, in name order, and
/// the diagnostics (warnings; errors in the policies' own expressions).
pub fn evaluate_policies(config: &Config, plan: &Plan, inputs: &PolicyInputs) -> (Vec<PolicyResult>, Diagnostics) {
    let mut diags = Diagnostics::new();
    let mut results = Vec::new();
    for policy in config.root.module.policies.values() {
        let mut c = Checker { config, plan, inputs, policy, violations: Vec::new(), diags: Diagnostics::new() };
        c.run();
        results.push(PolicyResult {
            name: policy.name.clone(),
            location: config.sources.location(policy.span.file, policy.span.range.start),
            violations: c.violations,
        });
        diags.extend(c.diags);
    }
    // The last line of defence: no message quotes a sensitive value of the plan.
    let secrets = secrets(plan);
    if !secrets.is_empty() {
        let m = secrets.matcher();
        for v in results.iter_mut().flat_map(|r| r.violations.iter_mut()) {
            v.message = m.redact(&v.message);
        }
        diags = crate::redact::diags(diags, &secrets);
    }
    (results, diags)
}

/// The E-POLICY errors of a plan's failed policies, one per violation, each at its policy
/// block (found by name in `config`, which a saved plan is checked to match) and naming the
/// change; what `kiln plan` and `kiln apply` print before refusing.
pub fn policy_diagnostics(config: &Config, results: &[PolicyResult]) -> Diagnostics {
    let mut out = Diagnostics::new();
    for r in results {
        let block = config.root.module.policies.get(&r.name);
        for v in &r.violations {
            let mut d = Diagnostic::error("E-POLICY", format!("policy `{}`: {}", r.name, v.message));
            d = match block {
                Some(p) => d.at(p.span.clone(), "policy declared here"),
                None => d.detail(format!("policy declared at {}", r.location)),
            };
            if let Some(a) = &v.address {
                d = d.address(a);
            }
            let hint = block.and_then(|p| p.description.clone()).map(|t| format!("{t}: ")).unwrap_or_default();
            out.push(d.hint(format!("{hint}change the configuration so the plan keeps the policy, or change the policy (a plan that breaks a policy is refused: exit code 3)")));
        }
    }
    out
}

/// The printed forms of every sensitive value the plan holds, for redacting messages.
fn secrets(plan: &Plan) -> Secrets {
    let mut s = Secrets::of_all(plan.variables.values());
    for c in &plan.changes {
        s.extend(&crate::redact::secrets_named(c.before.as_ref(), &c.sensitive));
        s.extend(&crate::redact::secrets_named(c.after.as_ref(), &c.sensitive));
    }
    s.at_least(4)
}

/// The checks of one policy.
struct Checker<'a> {
    config: &'a Config,
    plan: &'a Plan,
    inputs: &'a PolicyInputs,
    policy: &'a Policy,
    violations: Vec<Violation>,
    diags: Diagnostics,
}

impl Checker<'_> {
    fn run(&mut self) {
        if let Some(limit) = self.setting(self.policy.max_hourly_cost.as_ref()).and_then(|v| self.amount(v, false)) {
            self.budget(limit);
        }
        if let Some(allowed) = self.setting(self.policy.allowed_providers.as_ref()).and_then(|v| self.strings(v)) {
            self.providers(&allowed);
        }
        if let Some(allowed) = self.setting(self.policy.allowed_regions.as_ref()).and_then(|v| self.strings(v)) {
            self.regions(&allowed);
        }
        if let Some(n) = self.setting(self.policy.spot_above_gpus.as_ref()).and_then(|v| self.amount(v, true)) {
            self.spot(n);
        }
        if let Some(on) = self.setting(self.policy.protect_nonempty_buckets.as_ref()).and_then(|v| self.boolean(v)) {
            if on {
                self.buckets();
            }
        }
        for rule in &self.policy.rules {
            self.rule(rule);
        }
    }

    fn at(&self, d: Diagnostic) -> Diagnostic {
        d.or_address(format!("policy.{}", self.policy.name))
    }

    fn violation(&mut self, address: Option<String>, message: String) {
        self.violations.push(Violation { address, message });
    }

    /// A setting evaluated with the root module's variables, with its name and span: `None`
    /// when it is not written, null, unknown (a warning) or cannot be evaluated (an error).
    fn setting(&mut self, attr: Option<&Attr>) -> Option<Setting> {
        let attr = attr?;
        let scope = PolicyScope::new(self.config, self.plan, None);
        let name = attr.name.clone();
        let span = attr.expr.span().or(Some(attr.name_span.clone()));
        match kiln_eval::eval(&attr.expr, &scope) {
            Err(d) => {
                self.diags.extend(d.with_address(&format!("policy.{}", self.policy.name)));
                None
            }
            Ok(v) => match v.unmark_deep().0 {
                Value::Null => None,
                v if v.contains_unknown() => {
                    let d = Diagnostic::warning(
                        "W-POLICY-UNKNOWN",
                        format!("policy `{}`: `{name}` is known only after apply, so it was not checked", self.policy.name),
                    )
                    .or_at(span)
                    .hint("set it from values known at plan time (literals, variables)");
                    let d = self.at(d);
                    self.diags.push(d);
                    None
                }
                v => Some(Setting { value: v, name, span }),
            },
        }
    }

    fn wrong(&mut self, s: &Setting, want: &str) {
        let name = &s.name;
        let d = Diagnostic::error(
            "E-POLICY-TYPE",
            format!("policy `{}`: `{name}` must be {want}, got a {}", self.policy.name, s.value.type_name()),
        )
        .or_at(s.span.clone())
        .hint(format!("write {name} as {want}"));
        let d = self.at(d);
        self.diags.push(d);
    }

    fn amount(&mut self, s: Setting, whole: bool) -> Option<Decimal> {
        let want = if whole { "a whole number of at least 0" } else { "a number of at least 0" };
        match s.value.as_number() {
            Some(n) if n >= Decimal::ZERO && (!whole || n.fract().is_zero()) => Some(n),
            _ => {
                self.wrong(&s, want);
                None
            }
        }
    }

    fn strings(&mut self, s: Setting) -> Option<Vec<String>> {
        let items = s.value.as_list().map(|l| l.iter().map(|i| i.as_str().map(str::to_string)).collect::<Option<Vec<_>>>());
        match items {
            Some(Some(list)) => Some(list),
            _ => {
                self.wrong(&s, "a list of strings");
                None
            }
        }
    }

    fn boolean(&mut self, s: Setting) -> Option<bool> {
        match s.value.as_bool() {
            Some(b) => Some(b),
            None => {
                self.wrong(&s, "true or false");
                None
            }
        }
    }

    /// The managed changes whose object exists after apply.
    fn remaining(&self) -> impl Iterator<Item = &PlannedChange> {
        self.plan.changes.iter().filter(|c| c.address.resource.mode == AddrMode::Managed && c.action != Action::Delete && c.after.is_some())
    }

    fn placement(&self, c: &PlannedChange) -> Option<&Placement> {
        self.plan.placements.iter().find(|p| p.address == c.address)
    }

    fn budget(&mut self, limit: Decimal) {
        let (known, unknown) = total_after(self.plan);
        let over = known > limit;
        let unknown_text = match unknown.len() {
            0 => String::new(),
            _ => format!("; the cost of {} is unknown", list(&unknown)),
        };
        if over {
            let mut dearest: Vec<(Decimal, String)> = self
                .remaining()
                .filter_map(|c| Some((after_hourly(c)?, c.address.to_string())))
                .filter(|(d, _)| *d > Decimal::ZERO)
                .collect();
            dearest.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let top: Vec<String> = dearest.iter().take(3).map(|(d, a)| format!("{a} {}", usd(*d))).collect();
            let top = if top.is_empty() { String::new() } else { format!(" (dearest: {})", top.join(", ")) };
            let known_word = if unknown.is_empty() { "" } else { "at least " };
            self.violation(
                None,
                format!(
                    "the plan's hourly cost after apply is {known_word}{}, over max_hourly_cost {}{top}{unknown_text}",
                    usd(known),
                    usd(limit)
                ),
            );
        } else if !unknown.is_empty() {
            let span = self.policy.max_hourly_cost.as_ref().and_then(|a| a.expr.span());
            let d = Diagnostic::warning(
                "W-POLICY-COST-UNKNOWN",
                format!(
                    "policy `{}`: the known hourly cost after apply, {}, is within max_hourly_cost {}, but the cost of {} is unknown",
                    self.policy.name,
                    usd(known),
                    usd(limit),
                    list(&unknown)
                ),
            )
            .or_at(span)
            .hint("kiln never counts an unknown price as $0: the budget holds only if those cost no more than the difference");
            let d = self.at(d);
            self.diags.push(d);
        }
    }

    fn providers(&mut self, allowed: &[String]) {
        let found: Vec<(String, String)> = self
            .remaining()
            .filter(|c| {
                let name = c.provider.split('.').next().unwrap_or(&c.provider);
                !allowed.iter().any(|a| a == &c.provider || a == name)
            })
            .map(|c| (c.address.to_string(), c.provider.clone()))
            .collect();
        for (address, provider) in found {
            let message = format!("`{address}` uses provider `{provider}`, which is not allowed (allowed: {})", allowed.join(", "));
            self.violation(Some(address), message);
        }
    }

    fn regions(&mut self, allowed: &[String]) {
        let mut found = Vec::new();
        let mut unknown = Vec::new();
        for c in self.remaining() {
            match self.region(c) {
                Region::None => {}
                Region::Unknown(why) => unknown.push(format!("{} ({why})", c.address)),
                Region::Known(r) if allowed.contains(&r) => {}
                Region::Known(r) => found.push((c.address.to_string(), r)),
            }
        }
        for (address, region) in found {
            let message = format!("`{address}` is in region `{region}`, which is not allowed (allowed: {})", allowed.join(", "));
            self.violation(Some(address), message);
        }
        if !unknown.is_empty() {
            let span = self.policy.allowed_regions.as_ref().and_then(|a| a.expr.span());
            let d = Diagnostic::warning(
                "W-POLICY-REGION-UNKNOWN",
                format!("policy `{}`: the region of {} is known only after apply, so it was not checked", self.policy.name, list(&unknown)),
            )
            .or_at(span)
            .hint("set `region` on the provider block (or the object) so the plan knows it");
            let d = self.at(d);
            self.diags.push(d);
        }
    }

    /// Where an object runs: its own `region`, its placement's, its provider's setting.
    fn region(&self, c: &PlannedChange) -> Region {
        let own = c.after.as_ref().and_then(|a| a.get("region")).map(|v| v.unmarked().clone());
        if let Some(Value::String(r)) = &own {
            return Region::Known(r.clone());
        }
        if let Some(r) = self.placement(c).and_then(|p| p.chosen.region.clone()) {
            return Region::Known(r);
        }
        match self.inputs.provider_regions.get(&c.provider) {
            Some(Some(v)) => match v.unmarked() {
                Value::String(r) => Region::Known(r.clone()),
                _ => Region::Unknown(format!("provider `{}`'s region is known only after apply", c.provider)),
            },
            Some(None) => Region::Unknown(format!("provider `{}` sets no region; it comes from the environment", c.provider)),
            None if own.as_ref().is_some_and(Value::is_unknown) => Region::Unknown("its region is computed by apply".to_string()),
            None => Region::None,
        }
    }

    fn spot(&mut self, limit: Decimal) {
        let mut found = Vec::new();
        let mut unknown = Vec::new();
        for c in self.remaining().filter(|c| c.kind == "cluster" || c.kind == "spot_pool") {
            let Some(after) = &c.after else { continue };
            let placement = self.placement(c);
            let gpus = match gpus(c.kind.as_str(), after, placement) {
                Some(g) => g,
                None => {
                    unknown.push(format!("{} (its GPU count)", c.address));
                    continue;
                }
            };
            if Decimal::from(gpus) <= limit {
                continue;
            }
            match on_demand(c.kind.as_str(), after, placement) {
                Capacity::Spot => {}
                Capacity::Unknown => unknown.push(format!("{} (whether it uses spot)", c.address)),
                Capacity::OnDemand(why) => found.push((c.address.to_string(), gpus, why)),
            }
        }
        for (address, gpus, why) in found {
            let message = format!("`{address}` has {gpus} GPUs in total, more than spot_above_gpus {limit}, and {why}: it must use spot");
            self.violation(Some(address), message);
        }
        if !unknown.is_empty() {
            let span = self.policy.spot_above_gpus.as_ref().and_then(|a| a.expr.span());
            let d = Diagnostic::warning(
                "W-POLICY-SPOT-UNKNOWN",
                format!(
                    "policy `{}`: {} known only after apply, so spot_above_gpus was not checked there",
                    self.policy.name,
                    list(&unknown)
                ),
            )
            .or_at(span)
            .hint("set `nodes`, `accelerators` and `spot` from values known at plan time");
            let d = self.at(d);
            self.diags.push(d);
        }
    }

    fn buckets(&mut self) {
        let mut found = Vec::new();
        for c in self.plan.changes.iter().filter(|c| destroys_bucket(c)) {
            let verb = if c.action == Action::Replace { "replaced" } else { "deleted" };
            let deposed = c.deposed.as_ref().map(|k| format!(" (deposed object {k})")).unwrap_or_default();
            let key = (c.address.to_string(), c.deposed.clone());
            let why = match self.inputs.buckets.get(&key) {
                Some(Contents::Empty) => continue,
                Some(Contents::Holds { examples }) => {
                    format!("it holds objects ({}{})", examples.join(", "), if examples.len() >= 5 { ", ..." } else { "" })
                }
                Some(Contents::Unknown { reason }) => {
                    format!("kiln cannot tell whether it holds objects ({reason}), so it is treated as holding some")
                }
                None => "kiln did not look into it, so it is treated as holding objects".to_string(),
            };
            found.push((c.address.to_string(), format!("`{}`{deposed} would be {verb}, but {why}", c.address)));
        }
        for (address, message) in found {
            self.violation(Some(address), message);
        }
    }

    fn rule(&mut self, rule: &kiln_config::PolicyRule) {
        let location = self.config.sources.location(rule.span.file, rule.span.range.start);
        let mut unknown = Vec::new();
        let changes: Vec<&PlannedChange> = self.plan.changes.iter().filter(|c| c.address.resource.mode == AddrMode::Managed).collect();
        for c in changes {
            let scope = PolicyScope::new(self.config, self.plan, Some(change_value(c)));
            let outcome = match kiln_eval::eval(&rule.condition, &scope) {
                Err(d) => {
                    self.diags.extend(d.with_address(&c.address.to_string()));
                    return;
                }
                Ok(v) => v.unmark_deep().0,
            };
            match outcome {
                Value::Bool(true) => {}
                Value::Unknown => unknown.push(c.address.to_string()),
                Value::Bool(false) => {
                    let message = match kiln_eval::eval(&rule.message, &scope) {
                        Ok(m) => message_text(m).unwrap_or_else(|| format!("the rule at {location} is false")),
                        Err(d) => {
                            self.diags.extend(d.with_address(&format!("policy.{}", self.policy.name)));
                            format!("the rule at {location} is false")
                        }
                    };
                    self.violation(Some(c.address.to_string()), message);
                }
                other => {
                    let d = Diagnostic::error(
                        "E-POLICY-RULE",
                        format!(
                            "policy `{}`: a rule's condition must be true or false, got a {} for `{}`",
                            self.policy.name,
                            other.type_name(),
                            c.address
                        ),
                    )
                    .or_at(rule.condition.span())
                    .address(&c.address)
                    .hint("write a comparison over change and plan, such as change.action != \"delete\"");
                    self.diags.push(d);
                    return;
                }
            }
        }
        if !unknown.is_empty() {
            let d = Diagnostic::warning(
                "W-POLICY-UNKNOWN",
                format!(
                    "policy `{}`: the rule at {location} is known only after apply for {}, so it was not checked there",
                    self.policy.name,
                    list(&unknown)
                ),
            )
            .or_at(rule.condition.span())
            .hint("a condition over values computed by apply (ids, generated names) cannot be checked at plan time");
            let d = self.at(d);
            self.diags.push(d);
        }
    }
}

/// A policy setting's known value, its name and where it is written.
struct Setting {
    value: Value,
    name: String,
    span: Option<Span>,
}

enum Region {
    /// The object's provider has no regions.
    None,
    Known(String),
    Unknown(String),
}

enum Capacity {
    Spot,
    /// Why it may run on on-demand capacity.
    OnDemand(String),
    Unknown,
}

/// The GPUs of a cluster (nodes × GPUs per node) or spot pool (capacity × GPUs per instance):
/// the placement's choice when placed, else the largest alternative asked for. `None` while a
/// count is unknown.
fn gpus(kind: &str, after: &Value, placement: Option<&Placement>) -> Option<u64> {
    let count_attr = if kind == "spot_pool" { "capacity" } else { "nodes" };
    let count = match after.get(count_attr).map(Value::unmarked) {
        None | Some(Value::Null) => 1,
        Some(v) => whole(v)?,
    };
    if let Some(p) = placement {
        let per = std::iter::once(&p.chosen)
            .chain(&p.fallbacks)
            .map(|o| o.accelerators.as_deref().and_then(|a| parse_accelerator(a).ok()).map_or(0, |a| a.count))
            .max()
            .unwrap_or(0);
        return Some(p.chosen.nodes.max(count) * per);
    }
    if after.get("accelerators").is_some_and(Value::contains_unknown) {
        return None;
    }
    let per = Request::parse(after).ok()?.accelerators.map_or(0, |alts| alts.iter().map(|a| a.count).max().unwrap_or(0));
    Some(count * per)
}

fn whole(v: &Value) -> Option<u64> {
    let n = v.as_number()?;
    n.fract().is_zero().then(|| n.to_string().parse().ok()).flatten()
}

/// Whether a cluster or pool may run on on-demand capacity.
fn on_demand(kind: &str, after: &Value, placement: Option<&Placement>) -> Capacity {
    if let Some(p) = placement {
        return match std::iter::once(&p.chosen).chain(&p.fallbacks).find(|o| !o.spot) {
            None => Capacity::Spot,
            Some(o) if std::ptr::eq(o, &p.chosen) => Capacity::OnDemand(format!("its placement chose on-demand {}", o.instance_type)),
            Some(o) => Capacity::OnDemand(format!("its placement may fall back to on-demand {}", o.instance_type)),
        };
    }
    let attr = |k: &str| after.get(k).map(|v| v.unmarked().clone()).unwrap_or(Value::Null);
    let spot = attr("spot");
    if spot.is_unknown() {
        return Capacity::Unknown;
    }
    if kind == "spot_pool" {
        if spot == Value::Bool(false) {
            return Capacity::OnDemand("it sets spot = false".to_string());
        }
        let (base, fallback) = (attr("on_demand_base"), attr("on_demand_fallback"));
        if base.is_unknown() || fallback.is_unknown() {
            return Capacity::Unknown;
        }
        if base.as_number().is_some_and(|n| n > Decimal::ZERO) {
            return Capacity::OnDemand(format!("on_demand_base is {}", kiln_value::format_number(base.as_number().unwrap_or_default())));
        }
        if fallback == Value::Bool(true) {
            return Capacity::OnDemand("on_demand_fallback is true".to_string());
        }
        if spot == Value::String("auto".into()) {
            return Capacity::OnDemand("spot = \"auto\" falls back to on-demand".to_string());
        }
        return Capacity::Spot;
    }
    match spot {
        Value::Bool(true) => Capacity::Spot,
        Value::String(s) if s == "auto" => Capacity::OnDemand("spot = \"auto\" falls back to on-demand".to_string()),
        Value::Null => Capacity::OnDemand("it does not set spot = true".to_string()),
        _ => Capacity::OnDemand("it does not set spot = true".to_string()),
    }
}

/// The hourly cost of a change's object after apply: `None` when unknown (never $0), zero for a
/// delete or an object with no charge of its own.
fn after_hourly(c: &PlannedChange) -> Option<Decimal> {
    if c.action == Action::Delete {
        return Some(Decimal::ZERO);
    }
    match c.cost.as_ref()?.after.as_ref()? {
        Cost::Hourly { usd } => Some(*usd),
        Cost::None => Some(Decimal::ZERO),
        Cost::Unknown { .. } => None,
    }
}

/// The plan's hourly cost after apply: the known part and the addresses whose cost is unknown.
/// The cost pass's total when the plan has one; else summed from the changes.
fn total_after(plan: &Plan) -> (Decimal, Vec<String>) {
    if let Some(cost) = &plan.cost {
        return (cost.after.usd, cost.after.unknown.clone());
    }
    let mut known = Decimal::ZERO;
    let mut unknown = Vec::new();
    for c in plan.changes.iter().filter(|c| c.address.resource.mode == AddrMode::Managed && c.action != Action::Delete) {
        match after_hourly(c) {
            Some(d) => known += d,
            None => unknown.push(c.address.to_string()),
        }
    }
    (known, unknown)
}

fn usd(d: Decimal) -> String {
    format!("${:.2}/h", d.round_dp(2))
}

/// `a`, `a and b`, `a, b, c and 4 more`.
fn list(items: &[String]) -> String {
    let shown: Vec<String> = items.iter().take(5).map(|a| format!("`{a}`")).collect();
    match items.len() {
        0 => String::new(),
        1 => shown[0].clone(),
        n if n <= 5 => format!("{} and {}", shown[..n - 1].join(", "), shown[n - 1]),
        n => format!("{} and {} more", shown.join(", "), n - 5),
    }
}

/// A rule's message as text: a sensitive one is not quoted.
fn message_text(v: Value) -> Option<String> {
    if v.contains_sensitive() {
        return Some(REDACTED.to_string());
    }
    match v {
        Value::String(s) => Some(s),
        Value::Null | Value::Unknown => None,
        other => other.to_template_string(),
    }
}

/// `change` as a rule sees it.
fn change_value(c: &PlannedChange) -> Value {
    let action = match c.action {
        Action::NoOp => "no-op",
        Action::Create => "create",
        Action::Read => "read",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
    };
    let cost = match after_hourly(c) {
        Some(d) => Value::Number(d),
        None => Value::Null,
    };
    let m: Map = [
        ("address".to_string(), Value::from(c.address.to_string())),
        ("action".to_string(), Value::from(action)),
        ("kind".to_string(), Value::from(c.kind.as_str())),
        ("name".to_string(), Value::from(c.address.resource.name.as_str())),
        ("provider".to_string(), Value::from(c.provider.as_str())),
        ("before".to_string(), c.before.clone().map(|v| mark_named(v, &c.sensitive)).unwrap_or(Value::Null)),
        ("after".to_string(), c.after.clone().map(|v| mark_named(v, &c.sensitive)).unwrap_or(Value::Null)),
        ("cost_hourly".to_string(), cost),
    ]
    .into();
    Value::Map(m)
}

/// `v` with the attributes the plan records as sensitive marked, so rules keep them secret.
fn mark_named(v: Value, names: &[String]) -> Value {
    match v {
        Value::Map(mut m) => {
            for n in names {
                if let Some(x) = m.remove(n) {
                    m.insert(n.clone(), x.sensitive());
                }
            }
            Value::Map(m)
        }
        v => v,
    }
}

/// `plan` as a rule sees it: the total hourly cost before and after (unknown when part of it
/// is), and the mode.
fn plan_value(plan: &Plan) -> Value {
    let total = |t: Option<&kiln_plan::Total>, fallback: (Decimal, Vec<String>)| {
        let (usd, unknown) = t.map_or(fallback, |t| (t.usd, t.unknown.clone()));
        if unknown.is_empty() {
            Value::Number(usd)
        } else {
            Value::Unknown
        }
    };
    let after = total(plan.cost.as_ref().map(|c| &c.after), total_after(plan));
    let before = match &plan.cost {
        Some(c) => total(Some(&c.before), (Decimal::ZERO, Vec::new())),
        None => Value::Unknown,
    };
    let mode = match plan.mode {
        Mode::Normal => "normal",
        Mode::Destroy => "destroy",
        Mode::RefreshOnly => "refresh-only",
    };
    let m: Map =
        [("cost_hourly".to_string(), after), ("cost_hourly_before".to_string(), before), ("mode".to_string(), Value::from(mode))].into();
    Value::Map(m)
}

/// What a policy's expressions see: the root module's variables (as the plan recorded them),
/// `plan`, and in a rule's condition and message `change`; `path.*` as in the root module.
struct PolicyScope<'a> {
    variables: &'a BTreeMap<String, Value>,
    plan: Value,
    change: Option<Value>,
    dir: &'a Path,
    cwd: PathBuf,
}

impl<'a> PolicyScope<'a> {
    fn new(config: &'a Config, plan: &'a Plan, change: Option<Value>) -> Self {
        PolicyScope {
            variables: &plan.variables,
            plan: plan_value(plan),
            change,
            dir: &config.root.module.dir,
            cwd: std::env::current_dir().unwrap_or_default(),
        }
    }
}

impl Scope for PolicyScope<'_> {
    fn resolve(&self, r: &Ref) -> Result<Value, Diagnostic> {
        let field = |v: &Value, root: &str, name: &str| {
            v.get(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = v.as_map().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
                Diagnostic::error("E-POLICY-REF", format!("`{root}` has no attribute `{name}`"))
                    .hint(format!("{root} has: {}", known.join(", ")))
            })
        };
        match r {
            Ref::Var(n) => self.variables.get(n).cloned().ok_or_else(|| {
                Diagnostic::error("E-POLICY-REF", format!("variable `{n}` is not declared in the root module"))
                    .hint("declare it with `variable \"NAME\" {}`")
            }),
            Ref::Resource { kind, name } if kind == "plan" => field(&self.plan, "plan", name),
            Ref::Resource { kind, name } if kind == "change" => match &self.change {
                Some(c) => field(c, "change", name),
                None => Err(Diagnostic::error("E-POLICY-REF", "`change` is only available in a rule's condition and message")
                    .hint("a policy's settings see var.NAME and plan; use a `rule` block to check each change")),
            },
            Ref::Path(p) => match p.as_str() {
                "module" | "root" => Ok(Value::from(self.dir.display().to_string())),
                "cwd" => Ok(Value::from(self.cwd.display().to_string())),
                other => {
                    Err(Diagnostic::error("E-REF-PATH", format!("unknown `path.{other}`")).hint("use path.module, path.root or path.cwd"))
                }
            },
            other => Err(Diagnostic::error("E-POLICY-REF", format!("`{other}` is not available in a policy"))
                .hint("a policy sees change.* (in a rule), plan.cost_hourly, plan.cost_hourly_before, plan.mode and var.NAME")),
        }
    }

    fn base_dir(&self) -> &Path {
        self.dir
    }
}
