//! The human view of a plan: one block per change with attribute-level diffs (multi-line
//! strings diffed line by line with `similar`), drift found by refresh shown apart, output
//! changes, and the `Plan: N to add, N to change, N to destroy.` summary.

use std::fmt::Write;

use kiln_plan::{Action, Plan, PlannedChange, Reason};
use kiln_value::Value;

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
            _ => "must be replaced".into(),
        },
        Action::Read => "will be read during apply".into(),
        Action::NoOp => "is unchanged".into(),
    }
}

/// The plan for stdout: coloured when stdout is a terminal and NO_COLOR is unset.
pub fn for_stdout(plan: &Plan) -> String {
    let text = render(plan);
    if std::env::var_os("NO_COLOR").is_some() || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return text;
    }
    text.lines().map(paint).collect::<Vec<_>>().join("\n") + "\n"
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

pub fn render(plan: &Plan) -> String {
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
            let show = |v: &Option<Value>| v.as_ref().map(|v| if o.sensitive { "(sensitive value)".to_string() } else { v.to_string() });
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

fn shown(v: &Value, sensitive: bool) -> String {
    if sensitive || v.is_sensitive() {
        "(sensitive value)".into()
    } else {
        v.to_string()
    }
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
