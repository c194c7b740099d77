//! The plan's views: [`PlanView`] for machines (`plan --json`, `show --json PLANFILE`), the human
//! view (one block per change with attribute-level diffs, multi-line strings diffed line by line
//! with `similar`, drift found by refresh shown apart, output changes, and the `Plan: N to add, N
//! to change, N to destroy.` summary), and a markdown summary for pull-request comments.

use std::collections::BTreeMap;
use std::fmt::Write;

use kiln_addrs::{InstanceAddr, InstanceKey};
use kiln_plan::{Action, Cost, Mode, OutputChange, Plan, PlannedChange, Reason};
use kiln_value::Value;
use serde::Serialize;
use serde_json::Value as Json;

use crate::redact::{redact, shown};
use crate::FORMAT_VERSION;

/// `plan --json` and `show --json PLANFILE` (schema: `schemas/json/plan-view.schema.json`).
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub format_version: &'static str,
    pub kiln_version: String,
    pub mode: Mode,
    pub resource_changes: Vec<ResourceChange>,
    /// Changes refresh found made outside kiln since the last apply.
    pub resource_drift: Vec<ResourceDrift>,
    pub output_changes: BTreeMap<String, OutputChangeView>,
    pub summary: SummaryView,
    pub has_changes: bool,
    /// Every policy's verdict; absent when the configuration has none. A plan with a failed
    /// policy is refused (`kiln plan` exits 3).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyView>,
    /// The git commit the configuration was at when the plan was made (`-dirty` when files
    /// under it differed); absent outside a git work tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// The hourly cost before and after (USD as decimal strings; unknowns listed by address,
    /// never counted as 0); absent in plans made before kiln priced them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<kiln_plan::PlanCost>,
    /// The placement optimizer's decisions; absent when nothing was placed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<kiln_plan::Placement>,
}

/// One policy's verdict on the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    pub name: String,
    /// `file:line:column` of the policy block.
    pub location: String,
    pub passed: bool,
    pub violations: Vec<ViolationView>,
}

/// One way the plan breaks a policy.
#[derive(Debug, Clone, Serialize)]
pub struct ViolationView {
    /// The change it is about; absent for the plan as a whole (a budget).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub message: String,
}

/// One planned change of a resource instance, shaped as Terraform's `resource_changes` entry.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceChange {
    #[serde(flatten)]
    pub at: Located,
    /// The provider configuration, such as `kiln`, `local` or `aws.west`.
    pub provider: String,
    /// kiln's one-word action (`replace` is one action); `change.actions` is Terraform's list.
    pub action: Action,
    pub reason: Option<Reason>,
    /// For the destroy of a deposed object: its key in state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deposed: Option<String>,
    pub change: Change,
    /// The object's hourly cost before and after; absent where kiln did not price the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<kiln_plan::ChangeCost>,
}

/// Before and after, with unknown and sensitive parts marked beside the values.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Terraform's action list: `["create"]`, `["delete", "create"]` (replace),
    /// `["create", "delete"]` (create_before_destroy replace), `["no-op"]`, ...
    pub actions: Vec<&'static str>,
    pub before: Json,
    pub after: Json,
    pub after_unknown: Json,
    pub before_sensitive: Json,
    pub after_sensitive: Json,
}

/// A change refresh found: the object changed (`update`) or is gone (`delete`).
#[derive(Debug, Clone, Serialize)]
pub struct ResourceDrift {
    #[serde(flatten)]
    pub at: Located,
    pub deleted: bool,
    pub change: Change,
}

/// An output's planned change.
#[derive(Debug, Clone, Serialize)]
pub struct OutputChangeView {
    pub actions: Vec<&'static str>,
    /// The output is declared sensitive: its values are `null` here.
    pub sensitive: bool,
    pub before: Json,
    pub after: Json,
    pub after_unknown: Json,
    pub before_sensitive: Json,
    pub after_sensitive: Json,
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryView {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

/// Terraform's action list for kiln's action.
pub fn actions(a: Action, create_before_destroy: bool) -> Vec<&'static str> {
    match a {
        Action::NoOp => vec!["no-op"],
        Action::Create => vec!["create"],
        Action::Read => vec!["read"],
        Action::Update => vec!["update"],
        Action::Delete => vec!["delete"],
        Action::Replace if create_before_destroy => vec!["create", "delete"],
        Action::Replace => vec!["delete", "create"],
    }
}

/// The address parts Terraform's entries carry beside `address`.
/// Which object a view entry is about: its address and the parts of it Terraform's JSON gives
/// beside it (flattened into the entry).
#[derive(Debug, Clone, Serialize)]
pub struct Located {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_address: Option<String>,
    /// `managed` or `data`.
    pub mode: kiln_addrs::Mode,
    /// The resource's kind (Terraform's `type`), also as `kind`.
    #[serde(rename = "type")]
    pub type_: String,
    pub kind: String,
    pub name: String,
    /// The `count` index or `for_each` key; absent for a single instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<Json>,
}

impl Located {
    pub fn new(a: &InstanceAddr, kind: &str) -> Located {
        let module_address =
            (!a.resource.module.is_empty()).then(|| a.resource.module.iter().map(|m| format!("module.{m}")).collect::<Vec<_>>().join("."));
        let index = match &a.key {
            InstanceKey::None => None,
            InstanceKey::Int(i) => Some(Json::from(*i)),
            InstanceKey::Str(s) => Some(Json::from(s.clone())),
        };
        Located {
            address: a.to_string(),
            module_address,
            mode: a.resource.mode,
            type_: kind.to_string(),
            kind: kind.to_string(),
            name: a.resource.name.clone(),
            index,
        }
    }
}

fn change(actions: Vec<&'static str>, before: Option<&Value>, after: Option<&Value>, sensitive: &[String]) -> Change {
    let b = redact(before, sensitive);
    let a = redact(after, sensitive);
    Change {
        actions,
        before: b.value,
        after: a.value,
        after_unknown: a.unknown,
        before_sensitive: b.sensitive,
        after_sensitive: a.sensitive,
    }
}

fn output_change(o: &OutputChange) -> OutputChangeView {
    let act = match (&o.before, &o.after) {
        (None, Some(_)) => "create",
        (Some(_), None) => "delete",
        _ if o.is_change() => "update",
        _ => "no-op",
    };
    let side = |v: &Option<Value>| {
        let mut r = redact(v.as_ref(), &[]);
        if o.sensitive && v.is_some() {
            r.value = Json::Null;
            r.sensitive = Json::Bool(true);
        }
        r
    };
    let (b, a) = (side(&o.before), side(&o.after));
    OutputChangeView {
        actions: vec![act],
        sensitive: o.sensitive,
        before: b.value,
        after: a.value,
        after_unknown: a.unknown,
        before_sensitive: b.sensitive,
        after_sensitive: a.sensitive,
    }
}

impl PlanView {
    pub fn new(plan: &Plan) -> PlanView {
        let resource_changes = plan
            .changes
            .iter()
            .map(|c| ResourceChange {
                at: Located::new(&c.address, &c.kind),
                provider: c.provider.clone(),
                action: c.action,
                reason: c.reason.clone(),
                deposed: c.deposed.clone(),
                change: change(actions(c.action, c.create_before_destroy), c.before.as_ref(), c.after.as_ref(), &c.sensitive),
                // Kinds without an hourly charge (a record, a job) carry none.
                cost: c
                    .cost
                    .clone()
                    .filter(|k| [&k.before, &k.after].iter().any(|x| matches!(x, Some(Cost::Hourly { .. } | Cost::Unknown { .. })))),
            })
            .collect();
        let resource_drift = plan
            .drift
            .iter()
            .map(|d| {
                let act = if d.after.is_none() { "delete" } else { "update" };
                ResourceDrift {
                    at: Located::new(&d.address, &d.address.resource.kind),
                    deleted: d.after.is_none(),
                    change: change(vec![act], Some(&d.before), d.after.as_ref(), &d.sensitive),
                }
            })
            .collect();
        let s = plan.summary();
        PlanView {
            format_version: FORMAT_VERSION,
            kiln_version: plan.kiln_version.clone(),
            mode: plan.mode,
            resource_changes,
            resource_drift,
            output_changes: plan.outputs.iter().map(|(k, o)| (k.clone(), output_change(o))).collect(),
            summary: SummaryView { add: s.add, change: s.change, destroy: s.destroy },
            has_changes: plan.has_changes(),
            policies: plan
                .policies
                .iter()
                .map(|p| PolicyView {
                    name: p.name.clone(),
                    location: p.location.clone(),
                    passed: p.passed(),
                    violations: p
                        .violations
                        .iter()
                        .map(|v| ViolationView { address: v.address.clone(), message: v.message.clone() })
                        .collect(),
                })
                .collect(),
            git_commit: plan.git_commit.clone(),
            cost: plan.cost.clone(),
            placements: plan.placements.clone(),
        }
    }
}

impl crate::View for Plan {
    fn json(&self) -> Json {
        serde_json::to_value(PlanView::new(self)).expect("a plan view serializes")
    }

    fn human(&self) -> String {
        human(self)
    }

    fn markdown(&self) -> String {
        markdown(self)
    }

    fn paint(&self, text: String) -> String {
        text.lines().map(paint).collect::<Vec<_>>().join("\n") + "\n"
    }
}

/// The plan as a pull-request comment (`crate::markdown::plan`): the summary, the commit, the
/// cost, the policies, the changes, the placement decisions, output changes and drift, within
/// GitHub's comment limit.
pub fn markdown(plan: &Plan) -> String {
    crate::markdown::plan::comment(plan)
}

/// Why a change happens, in words; empty when its action says it all.
pub(crate) fn reason(c: &PlannedChange) -> String {
    match &c.reason {
        Some(Reason::NotInConfig) => "no longer in the configuration".into(),
        Some(Reason::KeyGone) => "its count or for_each key is gone".into(),
        Some(Reason::Deposed) => "the old object of a create_before_destroy replacement".into(),
        Some(Reason::AttributesForceNew { attributes }) => format!(
            "{} {} replacement",
            attributes.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", "),
            if attributes.len() == 1 { "forces" } else { "force" }
        ),
        Some(Reason::Tainted) => "tainted".into(),
        Some(Reason::Requested) => "replacement requested".into(),
        Some(Reason::DestroyMode) => "kiln destroy".into(),
        Some(Reason::Gone) => "deleted outside of kiln".into(),
        Some(Reason::PlacementMoved { from }) => format!("placement moves it from `{from}` to `{}`", c.provider),
        Some(Reason::Released { by }) => format!("released when `{by}` finished"),
        Some(Reason::Reacquired { released_by, needed_by }) => reacquired(released_by, needed_by.as_deref()),
        None => String::new(),
    }
}

/// Why a released object is created again.
fn reacquired(released_by: &str, needed_by: Option<&str>) -> String {
    match needed_by {
        Some(job) => format!("released when `{released_by}` finished; `{job}` needs it"),
        None => format!("released when `{released_by}` finished; its configuration changed"),
    }
}

fn symbol(a: Action, cbd: bool) -> &'static str {
    match a {
        Action::Create => "  +",
        Action::Update => "  ~",
        Action::Delete => "  -",
        Action::Replace if cbd => "+/-",
        Action::Replace => "-/+",
        Action::Read => " <=",
        Action::NoOp => "   ",
    }
}

fn verb(c: &PlannedChange) -> String {
    match c.action {
        Action::Create => match &c.reason {
            Some(Reason::Reacquired { released_by, needed_by }) => {
                format!("will be created again ({})", reacquired(released_by, needed_by.as_deref()))
            }
            _ => "will be created".into(),
        },
        Action::Update => "will be updated in place".into(),
        Action::Delete => match &c.reason {
            Some(Reason::NotInConfig) => "will be destroyed (it is no longer in the configuration)".into(),
            Some(Reason::KeyGone) => "will be destroyed (its count or for_each key is gone)".into(),
            Some(Reason::Deposed) => "will be destroyed (the old object of a create_before_destroy replacement)".into(),
            Some(Reason::Released { by }) => {
                format!("will be released (`{by}` finished; on_finish = \"destroy_capacity\"): destroyed, kept in state as released")
            }
            _ => "will be destroyed".into(),
        },
        Action::Replace => match &c.reason {
            Some(Reason::AttributesForceNew { attributes }) => {
                format!(
                    "must be replaced ({} {} replacement)",
                    attributes.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", "),
                    if attributes.len() == 1 { "forces" } else { "force" }
                )
            }
            Some(Reason::Tainted) => "is tainted, so it must be replaced".into(),
            Some(Reason::Requested) => "will be replaced, as requested".into(),
            Some(Reason::PlacementMoved { from }) => format!("will be moved from `{from}` to `{}` by placement", c.provider),
            _ => "must be replaced".into(),
        },
        Action::Read => "will be read during apply".into(),
        Action::NoOp => "is unchanged".into(),
    }
}

/// Colours a line's change marker the way Terraform does: green `+`, yellow `~`, red `-`.
fn paint(line: &str) -> String {
    use owo_colors::OwoColorize;
    let body = line.trim_start();
    let indent = &line[..line.len() - body.len()];
    let (marker, rest) = match body.split_once(' ') {
        Some((m, r)) if ["+", "-", "~", "-/+", "+/-", "<="].contains(&m) => (m, r),
        _ => return line.to_string(),
    };
    let marker = match marker {
        "+" => marker.green().to_string(),
        "-" => marker.red().to_string(),
        "~" => marker.yellow().to_string(),
        _ => marker.magenta().to_string(),
    };
    format!("{indent}{marker} {rest}")
}

/// What a refresh-only plan says after the drift it found (Terraform's words).
const REFRESH_ONLY: &str = "This is a refresh-only plan, so kiln will not take any actions to undo these. If you were expecting \
     these changes then you can apply this plan to record the updated values in the kiln state without changing any remote objects.";

/// The plan for people, as `kiln plan` prints it (without colour).
pub fn human(plan: &Plan) -> String {
    let mut out = String::new();
    if !plan.drift.is_empty() {
        let _ = writeln!(out, "Note: objects have changed outside of kiln\n\nkiln detected the following changes made outside of kiln since the last apply:\n");
        for d in &plan.drift {
            match &d.after {
                None => {
                    let _ = writeln!(out, "  # {} has been deleted", d.address);
                }
                Some(after) => {
                    let _ = writeln!(out, "  # {} has changed", d.address);
                    let _ = write!(
                        out,
                        "{}",
                        attrs_diff(Some(&d.before), Some(after), &Marks { sensitive: &d.sensitive, references: None, force: &[] }, 6)
                    );
                }
            }
            out.push('\n');
        }
        if plan.mode == Mode::RefreshOnly {
            let _ = writeln!(out, "{REFRESH_ONLY}\n");
        }
    }
    let changes: Vec<&PlannedChange> = plan.changes.iter().filter(|c| c.action != Action::NoOp).collect();
    if !changes.is_empty() {
        let _ = writeln!(out, "kiln will perform the following actions:\n");
    }
    for c in &changes {
        match &c.deposed {
            Some(key) => writeln!(out, "  # {} (deposed object {key}) {}", c.address, verb(c)),
            None => writeln!(out, "  # {} {}", c.address, verb(c)),
        }
        .ok();
        let head = format!(
            "{} {} \"{}\" \"{}\"",
            symbol(c.action, c.create_before_destroy),
            if c.address.resource.mode == kiln_addrs::Mode::Data { "data" } else { "resource" },
            c.kind,
            c.address.resource.name
        );
        let _ = writeln!(out, "{head} {{");
        let (before, after) = match c.action {
            Action::Create => (None, c.after.as_ref()),
            Action::Delete => (c.before.as_ref(), None),
            _ => (c.before.as_ref(), c.after.as_ref()),
        };
        let force: &[String] = match (&c.action, &c.reason) {
            (Action::Replace, Some(Reason::AttributesForceNew { attributes })) => attributes,
            _ => &[],
        };
        let marks = Marks { sensitive: &c.sensitive, references: after.map(|_| &c.references), force };
        let _ = write!(out, "{}", attrs_diff(before, after, &marks, 6));
        let _ = writeln!(out, "    }}\n");
    }
    let outs: Vec<_> = plan.outputs.iter().filter(|(_, o)| o.is_change()).collect();
    if !outs.is_empty() {
        let _ = writeln!(out, "Changes to outputs:");
        // Maps and objects one key a line and diffed key by key, as in the changes above.
        let none = Marks { sensitive: &[], references: None, force: &[] };
        for (name, o) in outs {
            match (&o.before, &o.after) {
                (None, Some(a)) => {
                    let _ = write!(out, "  + {name} = ");
                    value(&mut out, "  ", "+", a, o.sensitive, "", &none);
                }
                (Some(_), None) => {
                    let _ = write!(out, "  - {name}");
                }
                (Some(b), Some(a)) => {
                    let _ = write!(out, "  ~ {name} = ");
                    changed(&mut out, "  ", b, a, o.sensitive, "", &none);
                }
                (None, None) => continue,
            }
            out.push('\n');
        }
        out.push('\n');
    }
    released(&mut out, plan);
    let s = plan.summary();
    if plan.mode == Mode::RefreshOnly {
        if !plan.has_changes() {
            let _ = writeln!(out, "No changes. Your infrastructure still matches the configuration.");
        }
    } else if changes.is_empty() && !plan.has_changes() {
        let _ = writeln!(out, "No changes. Your infrastructure matches the configuration.");
    } else {
        let _ = writeln!(out, "Plan: {} to add, {} to change, {} to destroy.", s.add, s.change, s.destroy);
    }
    out.push_str(&crate::cost::placements(plan));
    out.push_str(&crate::cost::costs(plan));
    policies(&mut out, plan);
    out
}

/// The objects that stay released (no change), each with the job that released it: a plan
/// says so rather than leaving people to wonder why a cluster in state is not running.
fn released(out: &mut String, plan: &Plan) {
    let kept: Vec<&PlannedChange> =
        plan.changes.iter().filter(|c| c.action == Action::NoOp && matches!(c.reason, Some(Reason::Released { .. }))).collect();
    if kept.is_empty() {
        return;
    }
    let _ = writeln!(out, "Released (not running, not billed; created again when a job that needs it is created or replaced):");
    for c in kept {
        let _ = writeln!(out, "  {} ({})", c.address, reason(c));
    }
    out.push('\n');
}

/// The `Policies:` section: each policy passed or failed, with its violations.
fn policies(out: &mut String, plan: &Plan) {
    if plan.policies.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nPolicies:");
    for p in &plan.policies {
        if p.passed() {
            let _ = writeln!(out, "  passed  {} ({})", p.name, p.location);
            continue;
        }
        let n = p.violations.len();
        let _ = writeln!(out, "  FAILED  {} ({}): {n} violation{}", p.name, p.location, if n == 1 { "" } else { "s" });
        for v in &p.violations {
            let _ = writeln!(out, "          * {}", v.message);
        }
    }
}

/// What a change's diff needs beside its two values: the top-level attributes that are
/// sensitive, the attributes the configuration sets to a whole object (shown as the reference),
/// and the attributes that force the replacement (marked `# forces replacement`), the last two by
/// attribute path (`cluster`, `checkpoint.bucket`, `step[1].bucket`).
struct Marks<'a> {
    sensitive: &'a [String],
    references: Option<&'a BTreeMap<String, String>>,
    force: &'a [String],
}

impl Marks<'_> {
    /// Whether paths below the top level are looked up at all (they cost an allocation each).
    fn deep(&self) -> bool {
        self.references.is_some_and(|r| !r.is_empty()) || !self.force.is_empty()
    }

    fn reference(&self, path: &str) -> Option<&str> {
        self.references.and_then(|r| r.get(path)).map(String::as_str)
    }

    fn forces(&self, path: &str) -> &'static str {
        if self.force.iter().any(|f| f == path) {
            " # forces replacement"
        } else {
            ""
        }
    }
}

/// How a value is shown in a diff: `(sensitive value)` or `(known after apply)` as a whole, or
/// its parts.
fn opaque(v: &Value, sensitive: bool) -> bool {
    sensitive || v.is_sensitive() || matches!(v, Value::Unknown)
}

/// The path of `key` under `parent` (empty at the top level), when paths are looked up.
fn child(parent: &str, key: &str, m: &Marks) -> String {
    match (m.deep(), parent.is_empty()) {
        (false, _) => String::new(),
        (true, true) => key.to_string(),
        (true, false) => format!("{parent}.{key}"),
    }
}

/// The path of element `i` of the list at `parent`, when paths are looked up.
fn element(parent: &str, i: usize, m: &Marks) -> String {
    if m.deep() {
        format!("{parent}[{i}]")
    } else {
        String::new()
    }
}

/// How a key is written at its depth: attribute names bare, map keys quoted as Terraform does.
fn key_text(k: &str, top: bool) -> String {
    if top {
        k.to_string()
    } else {
        serde_json::Value::String(k.to_string()).to_string()
    }
}

/// Attribute lines of one change at `indent`: only attributes that are set or change, with `=`
/// aligned over those; multi-line strings as heredocs, diffed line by line when they change;
/// maps and objects key by key and lists of one length element by element, nested, unchanged
/// parts counted; a whole object the configuration references shown as the reference.
fn attrs_diff(before: Option<&Value>, after: Option<&Value>, m: &Marks, indent: usize) -> String {
    let empty = kiln_value::Map::new();
    let b = before.and_then(Value::as_map).unwrap_or(&empty);
    let a = after.and_then(Value::as_map).unwrap_or(&empty);
    let mut out = String::new();
    let pad = " ".repeat(indent);
    let unchanged = map_rows(&mut out, &pad, b, a, before.is_some() && after.is_none(), "", m, true);
    if unchanged > 0 && before.is_some() && after.is_some() {
        let _ = writeln!(out, "{pad}  # ({unchanged} unchanged attribute{} hidden)", if unchanged == 1 { "" } else { "s" });
    }
    out
}

/// The rows of two maps at `pad` (keys in order, `=` aligned), the number of unchanged
/// non-null entries returned. `deleted`: the whole object goes (rows without `-> null`).
#[allow(clippy::too_many_arguments)]
fn map_rows(
    out: &mut String,
    pad: &str,
    b: &kiln_value::Map,
    a: &kiln_value::Map,
    deleted: bool,
    path: &str,
    m: &Marks,
    top: bool,
) -> usize {
    // Both maps are sorted: one merge walk, no lookups of one key in a list.
    let mut rows: Vec<(&String, Option<&Value>, Option<&Value>)> = Vec::new();
    let mut unchanged = 0;
    let (mut bi, mut ai) = (b.iter().peekable(), a.iter().peekable());
    loop {
        let (k, bv, av) = match (bi.peek(), ai.peek()) {
            (None, None) => break,
            (Some((bk, _)), Some((ak, _))) if bk == ak => {
                let ((k, bv), (_, av)) = (bi.next().unwrap(), ai.next().unwrap());
                (k, Some(bv), Some(av))
            }
            (Some((bk, _)), Some((ak, _))) if bk < ak => {
                let (k, bv) = bi.next().unwrap();
                (k, Some(bv), None)
            }
            (Some(_), None) => {
                let (k, bv) = bi.next().unwrap();
                (k, Some(bv), None)
            }
            _ => {
                let (k, av) = ai.next().unwrap();
                (k, None, Some(av))
            }
        };
        match (bv.filter(|v| !v.is_null()), av.filter(|v| !v.is_null())) {
            (None, None) => {}
            (Some(x), Some(y)) if x.known_eq(y) == Some(true) => unchanged += 1,
            (x, y) => rows.push((k, x, y)),
        }
    }
    let names: Vec<String> = rows.iter().map(|(k, _, _)| key_text(k, top)).collect();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    for ((k, x, y), name) in rows.into_iter().zip(names) {
        let sensitive = top && m.sensitive.contains(k);
        entry(out, pad, Some(&format!("{name:width$}")), &child(path, k, m), x, y, deleted, sensitive, m);
    }
    unchanged
}

/// One row: `name = value` (or a bare value for a list element) that is added, removed or
/// changed, at `pad`.
#[allow(clippy::too_many_arguments)]
fn entry(
    out: &mut String,
    pad: &str,
    name: Option<&str>,
    path: &str,
    b: Option<&Value>,
    a: Option<&Value>,
    deleted: bool,
    sensitive: bool,
    m: &Marks,
) {
    let lead = |sign: &str| match name {
        Some(n) => format!("{pad}{sign} {n} = "),
        None => format!("{pad}{sign} "),
    };
    let start = out.len();
    match (b, a) {
        (None, None) => return,
        (None, Some(y)) => {
            out.push_str(&lead("+"));
            value(out, pad, "+", y, sensitive, path, m);
        }
        (Some(x), None) => {
            out.push_str(&lead("-"));
            value(out, pad, "-", x, sensitive, path, m);
            if !deleted {
                out.push_str(" -> null");
            }
        }
        (Some(x), Some(y)) => {
            out.push_str(&lead("~"));
            changed(out, pad, x, y, sensitive, path, m);
        }
    }
    forces_mark(out, start, m.forces(path));
}

/// Ends the row begun at `start`, marking it `# forces replacement` when `forces` says so: on
/// its first line, as Terraform does (`~ tags = { # forces replacement`).
fn forces_mark(out: &mut String, start: usize, forces: &str) {
    if !forces.is_empty() {
        match out[start..].find('\n') {
            Some(i) => out.insert_str(start + i, forces),
            None => out.push_str(forces),
        }
    }
    out.push('\n');
}

/// A value added or removed, after its `= `: maps one key a line (nested, in the row's sign),
/// multi-line strings as heredocs, a referenced object as its reference; no final newline.
fn value(out: &mut String, pad: &str, sign: &str, v: &Value, sensitive: bool, path: &str, m: &Marks) {
    if sign == "+" {
        // The reference is the configuration's text, never a value: shown even where the
        // object holds secrets.
        if let Some(r) = m.reference(path) {
            out.push_str(r);
            return;
        }
    }
    if opaque(v, sensitive) {
        out.push_str(&shown(v, sensitive));
        return;
    }
    match v {
        // Null entries are left out, as null attributes are (a map of nothing else: one line).
        Value::Map(map) if map.values().any(|v| !v.is_null()) => {
            out.push_str("{\n");
            let inner = format!("{pad}    ");
            let shown: Vec<(&String, &Value)> = map.iter().filter(|(_, v)| !v.is_null()).collect();
            let width = shown.iter().map(|(k, _)| key_text(k, false).len()).max().unwrap_or(0);
            for (k, x) in shown {
                let p = child(path, k, m);
                let start = out.len();
                let _ = write!(out, "{inner}{sign} {:width$} = ", key_text(k, false));
                value(out, &inner, sign, x, false, &p, m);
                forces_mark(out, start, m.forces(&p));
            }
            let _ = write!(out, "{pad}  }}");
        }
        Value::String(t) if t.contains('\n') => {
            out.push_str("<<-EOT\n");
            for line in t.lines() {
                let _ = writeln!(out, "{pad}      {line}");
            }
            let _ = write!(out, "{pad}  EOT");
        }
        _ => out.push_str(&v.to_string()),
    }
}

/// A changed value, after its `= `: maps key by key, lists of one length element by element,
/// multi-line strings line by line, a referenced object as its reference and what changed in
/// it; no final newline.
fn changed(out: &mut String, pad: &str, x: &Value, y: &Value, sensitive: bool, path: &str, m: &Marks) {
    if let Some(r) = m.reference(path) {
        // What changed in the object is named by its attributes, unless the object is secret as
        // a whole.
        let secret = sensitive || x.is_sensitive() || y.is_sensitive();
        match (x.unmarked(), y.unmarked()) {
            (_, Value::Unknown) => {
                let _ = write!(out, "{r} (known after apply)");
            }
            (Value::Map(bm), Value::Map(am)) if !secret => {
                let null = Value::Null;
                let mut keys: Vec<&str> = bm
                    .keys()
                    .chain(am.keys())
                    .filter(|k| bm.get(*k).unwrap_or(&null).known_eq(am.get(*k).unwrap_or(&null)) != Some(true))
                    .map(String::as_str)
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                let more = keys.len().saturating_sub(4);
                keys.truncate(4);
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                let _ = write!(out, "{r} (changed: {}{more})", keys.join(", "));
            }
            (Value::Map(_) | Value::List(_) | Value::Unknown, _) => {
                let _ = write!(out, "{r} (changed)");
            }
            _ => {
                let _ = write!(out, "{} -> {r}", shown(x, sensitive));
            }
        }
        return;
    }
    if opaque(x, sensitive) || opaque(y, sensitive) {
        let _ = write!(out, "{} -> {}", shown(x, sensitive), shown(y, sensitive));
        return;
    }
    let inner = format!("{pad}    ");
    match (x, y) {
        (Value::Map(bm), Value::Map(am)) => {
            out.push_str("{\n");
            let unchanged = map_rows(out, &inner, bm, am, false, path, m, false);
            hidden(out, &inner, unchanged);
            let _ = write!(out, "{pad}  }}");
        }
        (Value::List(bl), Value::List(al)) if bl.len() == al.len() => {
            out.push_str("[\n");
            let mut unchanged = 0;
            for (i, (bx, ax)) in bl.iter().zip(al).enumerate() {
                if bx.known_eq(ax) == Some(true) {
                    unchanged += 1;
                } else {
                    entry(out, &inner, None, &element(path, i, m), Some(bx), Some(ax), false, false, m);
                }
            }
            hidden(out, &inner, unchanged);
            let _ = write!(out, "{pad}  ]");
        }
        (Value::String(xs), Value::String(ys)) if xs.contains('\n') || ys.contains('\n') => {
            out.push_str("<<-EOT\n");
            for change in similar::TextDiff::from_lines(xs.as_str(), ys.as_str()).iter_all_changes() {
                let sign = match change.tag() {
                    similar::ChangeTag::Delete => "-",
                    similar::ChangeTag::Insert => "+",
                    similar::ChangeTag::Equal => " ",
                };
                let _ = writeln!(out, "{pad}    {sign} {}", change.value().trim_end_matches('\n'));
            }
            let _ = write!(out, "{pad}  EOT");
        }
        _ => {
            let _ = write!(out, "{x} -> {y}");
        }
    }
}

/// `# (N unchanged elements hidden)` inside a map or list, when N > 0.
fn hidden(out: &mut String, pad: &str, n: usize) {
    if n > 0 {
        let _ = writeln!(out, "{pad}  # ({n} unchanged element{} hidden)", if n == 1 { "" } else { "s" });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn diff(before: Option<&Value>, after: Option<&Value>, refs: &[(&str, &str)], force: &[&str]) -> String {
        let references: BTreeMap<String, String> = refs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let force: Vec<String> = force.iter().map(|f| f.to_string()).collect();
        attrs_diff(before, after, &Marks { sensitive: &[], references: Some(&references), force: &force }, 2)
    }

    #[test]
    fn secrets_and_unknowns_inside_a_map_stay_hidden_key_by_key() {
        let before = map(&[("env", map(&[("A", Value::from("1")), ("TOKEN", Value::from("old").sensitive())]))]);
        let after = map(&[("env", map(&[("A", Value::Unknown), ("TOKEN", Value::from("new").sensitive())]))]);
        assert_eq!(
            diff(Some(&before), Some(&after), &[], &[]),
            concat!(
                "  ~ env = {\n",
                "      ~ \"A\"     = \"1\" -> (known after apply)\n",
                "      ~ \"TOKEN\" = (sensitive value) -> (sensitive value)\n",
                "    }\n",
            )
        );
        let created = diff(None, Some(&after), &[], &[]);
        assert_eq!(created, "  + env = {\n      + \"A\"     = (known after apply)\n      + \"TOKEN\" = (sensitive value)\n    }\n");
    }

    #[test]
    fn a_top_level_sensitive_attribute_is_hidden_whole_but_its_reference_shows() {
        let before = map(&[("env", map(&[("A", Value::from("1"))])), ("cluster", map(&[("n", Value::from(1i64))]))]);
        let after = map(&[("env", map(&[("A", Value::from("2"))])), ("cluster", map(&[("n", Value::from(2i64))]))]);
        let sensitive = ["env".to_string(), "cluster".to_string()];
        let references: BTreeMap<String, String> = [("cluster".to_string(), "cluster.train".to_string())].into();
        let m = Marks { sensitive: &sensitive, references: Some(&references), force: &[] };
        assert_eq!(
            attrs_diff(Some(&before), Some(&after), &m, 2),
            "  ~ cluster = cluster.train (changed)\n  ~ env     = (sensitive value) -> (sensitive value)\n"
        );
    }

    #[test]
    fn references_in_creates_updates_and_unknowns() {
        let cluster = |n: i64| map(&[("nodes", Value::from(n)), ("gpus", Value::from(8i64)), ("id", Value::from("c-1"))]);
        let after = map(&[
            ("cluster", cluster(2)),
            ("checkpoint", map(&[("bucket", map(&[("uri", Value::from("s3://b"))])), ("path", Value::from("p/"))])),
        ]);
        let refs = [("cluster", "cluster.train"), ("checkpoint.bucket", "bucket.ckpt")];
        assert_eq!(
            diff(None, Some(&after), &refs, &[]),
            concat!(
                "  + checkpoint = {\n",
                "      + \"bucket\" = bucket.ckpt\n",
                "      + \"path\"   = \"p/\"\n",
                "    }\n",
                "  + cluster    = cluster.train\n",
            )
        );
        let before = map(&[("cluster", cluster(1))]);
        assert_eq!(
            diff(Some(&before), Some(&map(&[("cluster", cluster(2))])), &refs, &["cluster"]),
            "  ~ cluster = cluster.train (changed: nodes) # forces replacement\n"
        );
        assert_eq!(
            diff(Some(&before), Some(&map(&[("cluster", Value::Unknown)])), &refs, &[]),
            "  ~ cluster = cluster.train (known after apply)\n"
        );
        // A delete has no configuration: the object is shown, one key a line.
        assert_eq!(
            attrs_diff(Some(&before), None, &Marks { sensitive: &[], references: None, force: &[] }, 2),
            "  - cluster = {\n      - \"gpus\"  = 8\n      - \"id\"    = \"c-1\"\n      - \"nodes\" = 1\n    }\n"
        );
    }

    #[test]
    fn nested_keys_and_list_elements_are_diffed_and_a_forcing_key_is_marked() {
        let before = map(&[("spec", map(&[("zone", Value::from("a")), ("args", Value::List(vec![Value::from("x"), Value::from("y")]))]))]);
        let after = map(&[("spec", map(&[("zone", Value::from("b")), ("args", Value::List(vec![Value::from("x"), Value::from("z")]))]))]);
        assert_eq!(
            diff(Some(&before), Some(&after), &[], &["spec.zone"]),
            concat!(
                "  ~ spec = {\n",
                "      ~ \"args\" = [\n",
                "          ~ \"y\" -> \"z\"\n",
                "            # (1 unchanged element hidden)\n",
                "        ]\n",
                "      ~ \"zone\" = \"a\" -> \"b\" # forces replacement\n",
                "    }\n",
            )
        );
        let grown = map(&[("spec", map(&[("zone", Value::from("a")), ("args", Value::List(vec![Value::from("x")]))]))]);
        assert!(diff(Some(&before), Some(&grown), &[], &[]).contains("      ~ \"args\" = [\"x\", \"y\"] -> [\"x\"]\n"));
    }
}
