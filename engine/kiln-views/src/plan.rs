//! The plan's views: [`PlanView`] for machines (`plan --json`, `show --json PLANFILE`), the human
//! view (one block per change with attribute-level diffs, multi-line strings diffed line by line
//! with `similar`, drift found by refresh shown apart, output changes, and the `Plan: N to add, N
//! to change, N to destroy.` summary), and a markdown summary for pull-request comments.

use std::collections::BTreeMap;
use std::fmt::Write;

use kiln_addrs::{InstanceAddr, InstanceKey};
use kiln_plan::{Action, Mode, OutputChange, Plan, PlannedChange, Reason};
use kiln_value::Value;
use serde::Serialize;
use serde_json::Value as Json;

use crate::markdown::{cell, code};
use crate::redact::{redact, shown, SENSITIVE};
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

/// The plan as a pull-request comment: a summary line, a table of the changes (address,
/// action, reason), output changes and drift.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let s = plan.summary();
    let changes: Vec<&PlannedChange> = plan.changes.iter().filter(|c| c.action != Action::NoOp).collect();
    if changes.is_empty() && !plan.has_changes() {
        let _ = writeln!(out, "### kiln plan: no changes\n\nYour infrastructure matches the configuration.");
    } else {
        let _ = writeln!(out, "### kiln plan: {} to add, {} to change, {} to destroy", s.add, s.change, s.destroy);
    }
    if !changes.is_empty() {
        let _ = writeln!(out, "\n| Address | Action | Reason |\n| --- | --- | --- |");
        for c in &changes {
            let addr = match &c.deposed {
                Some(k) => format!("{} (deposed {k})", code(&c.address.to_string())),
                None => code(&c.address.to_string()),
            };
            let action = match c.action {
                Action::Replace if c.create_before_destroy => "replace (create before destroy)".to_string(),
                a => serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            };
            let _ = writeln!(out, "| {addr} | {} | {} |", cell(&action), cell(&reason(c)));
        }
    }
    let outs: Vec<_> = plan.outputs.iter().filter(|(_, o)| o.is_change()).collect();
    if !outs.is_empty() {
        let _ = writeln!(out, "\n**Outputs**\n\n| Output | Action | Value |\n| --- | --- | --- |");
        for (name, o) in outs {
            let show = |v: &Value| match shown(v, o.sensitive) {
                t if t == SENSITIVE => t,
                t => code(&t),
            };
            let (act, val) = match (&o.before, &o.after) {
                (None, Some(a)) => ("create", show(a)),
                (Some(_), None) => ("delete", String::new()),
                (Some(b), Some(a)) => ("update", format!("{} → {}", show(b), show(a))),
                (None, None) => continue,
            };
            let _ = writeln!(out, "| {} | {act} | {val} |", code(name));
        }
    }
    if !plan.drift.is_empty() {
        let _ = writeln!(out, "\n**Changed outside of kiln**\n");
        for d in &plan.drift {
            let what = if d.after.is_none() { "has been deleted" } else { "has changed" };
            let _ = writeln!(out, "- {} {what}", code(&d.address.to_string()));
        }
    }
    out
}

/// Why a change happens, in words; empty when its action says it all.
fn reason(c: &PlannedChange) -> String {
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
        None => String::new(),
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
        Action::Create => "will be created".into(),
        Action::Update => "will be updated in place".into(),
        Action::Delete => match &c.reason {
            Some(Reason::NotInConfig) => "will be destroyed (it is no longer in the configuration)".into(),
            Some(Reason::KeyGone) => "will be destroyed (its count or for_each key is gone)".into(),
            Some(Reason::Deposed) => "will be destroyed (the old object of a create_before_destroy replacement)".into(),
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
                    let _ = write!(out, "{}", attrs_diff(Some(&d.before), Some(after), &d.sensitive, 6));
                }
            }
            out.push('\n');
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
        let _ = write!(out, "{}", attrs_diff(before, after, &c.sensitive, 6));
        let _ = writeln!(out, "    }}\n");
    }
    let outs: Vec<_> = plan.outputs.iter().filter(|(_, o)| o.is_change()).collect();
    if !outs.is_empty() {
        let _ = writeln!(out, "Changes to outputs:");
        for (name, o) in outs {
            let show = |v: &Option<Value>| v.as_ref().map(|v| shown(v, o.sensitive));
            let line = match (show(&o.before), show(&o.after)) {
                (None, Some(a)) => format!("  + {name} = {a}"),
                (Some(_), None) => format!("  - {name}"),
                (Some(b), Some(a)) => format!("  ~ {name} = {b} -> {a}"),
                (None, None) => continue,
            };
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
    let s = plan.summary();
    if changes.is_empty() && !plan.has_changes() {
        let _ = writeln!(out, "No changes. Your infrastructure matches the configuration.");
    } else {
        let _ = writeln!(out, "Plan: {} to add, {} to change, {} to destroy.", s.add, s.change, s.destroy);
    }
    out
}

/// One attribute row of a change.
enum Row<'a> {
    Add(&'a Value),
    Remove(&'a Value),
    /// Set to null by the change.
    Cleared(&'a Value),
    Change(&'a Value, &'a Value),
}

/// Attribute lines of one change at `indent`: only attributes that are set or change, with `=`
/// aligned over those; multi-line strings as heredocs, diffed line by line when they change.
fn attrs_diff(before: Option<&Value>, after: Option<&Value>, sensitive: &[String], indent: usize) -> String {
    let empty = kiln_value::Map::new();
    let b = before.and_then(Value::as_map).unwrap_or(&empty);
    let a = after.and_then(Value::as_map).unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    let rows: Vec<(&String, Row)> = keys
        .into_iter()
        .filter_map(|k| {
            let (bv, av) = (b.get(k).filter(|v| !v.is_null()), a.get(k).filter(|v| !v.is_null()));
            let row = match (bv, av) {
                (None, None) => return None,
                (None, Some(x)) => Row::Add(x),
                (Some(x), None) if after.is_none() => Row::Remove(x),
                (Some(x), None) => Row::Cleared(x),
                (Some(x), Some(y)) if x.known_eq(y) == Some(true) => return None,
                (Some(x), Some(y)) => Row::Change(x, y),
            };
            Some((k, row))
        })
        .collect();
    let unchanged = if before.is_some() && after.is_some() {
        a.iter().filter(|(k, v)| !v.is_null() && b.get(*k).is_some_and(|x| x.known_eq(v) == Some(true))).count()
    } else {
        0
    };
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for (k, row) in rows {
        let s = sensitive.contains(k);
        match row {
            Row::Add(x) => heredoc_or_line(&mut out, &pad, "+", k, width, x, s),
            Row::Remove(x) => heredoc_or_line(&mut out, &pad, "-", k, width, x, s),
            Row::Cleared(x) => {
                let _ = writeln!(out, "{pad}- {k:width$} = {} -> null", shown(x, s));
            }
            Row::Change(x, y) => match (multiline(x, s), multiline(y, s)) {
                (Some(xs), Some(ys)) if xs.contains('\n') || ys.contains('\n') => {
                    let _ = writeln!(out, "{pad}~ {k:width$} = <<-EOT");
                    for change in similar::TextDiff::from_lines(xs, ys).iter_all_changes() {
                        let sign = match change.tag() {
                            similar::ChangeTag::Delete => "-",
                            similar::ChangeTag::Insert => "+",
                            similar::ChangeTag::Equal => " ",
                        };
                        let _ = writeln!(out, "{pad}    {sign} {}", change.value().trim_end_matches('\n'));
                    }
                    let _ = writeln!(out, "{pad}  EOT");
                }
                _ => {
                    let _ = writeln!(out, "{pad}~ {k:width$} = {} -> {}", shown(x, s), shown(y, s));
                }
            },
        }
    }
    if unchanged > 0 {
        let _ = writeln!(out, "{pad}  # ({unchanged} unchanged attribute{} hidden)", if unchanged == 1 { "" } else { "s" });
    }
    out
}

/// The text of a string value that may be shown (not sensitive).
fn multiline(v: &Value, sensitive: bool) -> Option<&str> {
    if sensitive || v.is_sensitive() {
        return None;
    }
    v.as_str()
}

fn heredoc_or_line(out: &mut String, pad: &str, sign: &str, k: &str, width: usize, v: &Value, s: bool) {
    match multiline(v, s).filter(|t| t.contains('\n')) {
        Some(t) => {
            let _ = writeln!(out, "{pad}{sign} {k:width$} = <<-EOT");
            for line in t.lines() {
                let _ = writeln!(out, "{pad}      {line}");
            }
            let _ = writeln!(out, "{pad}  EOT");
        }
        None => {
            let _ = writeln!(out, "{pad}{sign} {k:width$} = {}", shown(v, s));
        }
    }
}
