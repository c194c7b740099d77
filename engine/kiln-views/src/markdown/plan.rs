//! The plan as a pull-request comment (`kiln plan --format markdown`, `kiln show --format
//! markdown PLANFILE`): the summary line, the commit the plan was made from, the hourly cost
//! before and after (unknown prices counted and named, never $0), every policy's verdict, a
//! table of the changes (action, address, kind, provider, cost), the placement decisions (the
//! chosen offering, the fallbacks apply may launch, the next best and why each lost), output
//! changes and drift. The same data as the human plan (`crate::plan::human`, `crate::cost`).
//!
//! A comment must fit GitHub's limit ([`LIMIT`]): a plan too long for it keeps its summary,
//! commit, cost and policies whole, shows the first rows of the longer sections with a line
//! saying how many were left out, and points to the saved plan for the rest.

use std::collections::BTreeMap;
use std::fmt::Write;

use kiln_plan::cost::{delta, usd};
use kiln_plan::{Action, Cost, Mode, PlacedOffering, Placement, Plan, PlannedChange};
use kiln_value::Value;

use super::{cell, code, fit, Section};
use crate::redact::{shown, SENSITIVE};

/// GitHub's limit on a comment's length, in characters.
pub const LIMIT: usize = 65_536;

/// Room kept below [`LIMIT`] for what a CI job adds around the comment.
const MARGIN: usize = 1_024;

/// What a shortened comment ends with.
const SHORTENED: &str = "\n---\n\n> **This plan is too long for one comment**: the sections above with \"… and N more\" \
     are shortened. The full plan is in the saved plan (the CI job's artifact): `kiln show PLANFILE`.\n";

/// The plan as a pull-request comment, within [`LIMIT`] characters.
pub fn comment(plan: &Plan) -> String {
    comment_within(plan, LIMIT - MARGIN)
}

/// The comment within `budget` bytes (a byte count bounds characters and UTF-16 units alike).
fn comment_within(plan: &Plan, budget: usize) -> String {
    let mut top = summary(plan);
    if let Some(c) = &plan.git_commit {
        let _ = writeln!(top, "\nPlan made from commit {}.", code(c));
    }
    // Kept whole: the cost and the policies (shortened only when they alone exceed the limit).
    let first = [cost(plan), policies(plan)];
    let rest = [changes(plan), placements(plan), outputs(plan), drift(plan)];
    let whole = |s: &[Section]| s.iter().map(|s| s.items.len()).collect::<Vec<_>>();
    let size = |s: &[Section], k: &[usize]| s.iter().zip(k).map(|(s, &k)| s.render(k).len()).sum::<usize>();
    let (mut a, mut b) = (whole(&first), whole(&rest));
    let mut shortened = false;
    if top.len() + size(&first, &a) + size(&rest, &b) > budget {
        shortened = true;
        let budget = budget.saturating_sub(top.len() + SHORTENED.len());
        a = fit(&first, budget);
        b = fit(&rest, budget.saturating_sub(size(&first, &a)));
    }
    let mut out = top;
    for (s, k) in first.iter().zip(&a).chain(rest.iter().zip(&b)) {
        out.push_str(&s.render(*k));
    }
    if shortened {
        out.push_str(SHORTENED);
    }
    out
}

/// The heading: what the plan does in one line.
fn summary(plan: &Plan) -> String {
    let s = plan.summary();
    let changes = plan.changes.iter().any(|c| c.action != Action::NoOp);
    if plan.mode == Mode::RefreshOnly {
        match plan.drift.len() {
            0 => "### kiln plan (refresh-only): no changes\n\nYour infrastructure still matches the configuration.\n".into(),
            n => format!("### kiln plan (refresh-only): {n} object{} changed outside of kiln\n", plural(n)),
        }
    } else if !changes && !plan.has_changes() {
        "### kiln plan: no changes\n\nYour infrastructure matches the configuration.\n".into()
    } else {
        format!("### kiln plan: {} to add, {} to change, {} to destroy\n", s.add, s.change, s.destroy)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Whether a side of a change has an hourly price to show (known or unknown).
fn priced(c: &Option<Cost>) -> bool {
    matches!(c, Some(Cost::Hourly { .. } | Cost::Unknown { .. }))
}

/// Whether any change of the plan is priced: the cost column and section are shown then, as the
/// human plan's `Cost:` lines are.
fn any_priced(plan: &Plan) -> bool {
    plan.changes.iter().any(|c| c.cost.as_ref().is_some_and(|k| priced(&k.before) || priced(&k.after)))
}

/// `**Cost:** $31.92/h → $57.10/h (+$25.18/h)`, the totals read as the human plan's, then every
/// object whose price is unknown with the reason (left out of the totals, never counted as $0).
fn cost(plan: &Plan) -> Section {
    let Some(total) = plan.cost.as_ref().filter(|_| any_priced(plan)) else { return Section::whole(String::new()) };
    let bound = |t: &kiln_plan::Total| if t.unknown.is_empty() { String::new() } else { format!(" + {} unknown", t.unknown.len()) };
    let title = format!(
        "\n**Cost:** {}/h{} → {}/h{} ({}/h)\n",
        usd(total.before.usd),
        bound(&total.before),
        usd(total.after.usd),
        bound(&total.after),
        delta(total.after.usd - total.before.usd)
    );
    let reasons: BTreeMap<String, &str> = plan
        .changes
        .iter()
        .filter_map(|c| {
            let k = c.cost.as_ref()?;
            [&k.after, &k.before].into_iter().find_map(|x| match x {
                Some(Cost::Unknown { reason }) => Some((c.address.to_string(), reason.as_str())),
                _ => None,
            })
        })
        .collect();
    let mut unknown: Vec<&String> = total.before.unknown.iter().chain(&total.after.unknown).collect();
    let mut seen = std::collections::HashSet::new();
    unknown.retain(|a| seen.insert(*a));
    let items = unknown
        .iter()
        .map(|a| match reasons.get(a.as_str()) {
            Some(r) => format!("- {}: {}\n", code(a), one_line(r)),
            None => format!("- {}\n", code(a)),
        })
        .collect();
    Section {
        title,
        head: "\nUnknown prices, left out of the totals:\n\n".into(),
        items,
        more: Box::new(|cut| format!("\n… and more unknown prices after the first {cut}\n")),
    }
}

/// Text on one line (a message inside a list item).
fn one_line(s: &str) -> String {
    s.replace("\r\n", " ").replace('\n', " ")
}

/// Every policy's verdict; a failed one with each violation.
fn policies(plan: &Plan) -> Section {
    if plan.policies.is_empty() {
        return Section::whole(String::new());
    }
    let n = plan.policies.len();
    let failed = plan.policies.iter().filter(|p| !p.passed()).count();
    let title = if failed == 0 {
        format!("\n**Policies:** ✅ {} passed\n\n", if n == 1 { "the policy".to_string() } else { format!("all {n}") })
    } else {
        format!("\n**Policies:** ❌ {failed} of {n} failed: `kiln apply` refuses this plan\n\n")
    };
    // One item a line; `violations[i]`: how many violations the items from `i` on list.
    let mut items = Vec::new();
    let mut is_violation = Vec::new();
    for p in &plan.policies {
        if p.passed() {
            items.push(format!("- ✅ **{}** passed ({})\n", cell(&p.name), code(&p.location)));
            is_violation.push(false);
            continue;
        }
        let v = p.violations.len();
        items.push(format!("- ❌ **{}** failed ({}): {v} violation{}\n", cell(&p.name), code(&p.location), plural(v)));
        is_violation.push(false);
        for v in &p.violations {
            items.push(format!("  - {}\n", one_line(&v.message)));
            is_violation.push(true);
        }
    }
    let mut after = vec![0; items.len() + 1];
    for i in (0..items.len()).rev() {
        after[i] = after[i + 1] + usize::from(is_violation[i]);
    }
    Section {
        title,
        head: String::new(),
        items,
        more: Box::new(move |cut| format!("\n… and {} more violation{}\n", after[cut], plural(after[cut]))),
    }
}

/// The changes as a table: action, address, kind, provider, the hourly cost before → after
/// (when the plan prices anything) and why.
fn changes(plan: &Plan) -> Section {
    let changes: Vec<&PlannedChange> = plan.changes.iter().filter(|c| c.action != Action::NoOp).collect();
    if changes.is_empty() {
        return Section::whole(String::new());
    }
    let costs = any_priced(plan);
    let head = if costs {
        "| Action | Address | Kind | Provider | $/h before → after | Reason |\n| --- | --- | --- | --- | --- | --- |\n"
    } else {
        "| Action | Address | Kind | Provider | Reason |\n| --- | --- | --- | --- | --- |\n"
    };
    let items = changes
        .iter()
        .map(|c| {
            let addr = match &c.deposed {
                Some(k) => format!("{} (deposed {k})", code(&c.address.to_string())),
                None => code(&c.address.to_string()),
            };
            let action = match c.action {
                Action::Replace if c.create_before_destroy => "replace (create before destroy)".to_string(),
                a => serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            };
            let money = if costs { format!(" {} |", cell(&change_cost(c))) } else { String::new() };
            format!(
                "| {} | {addr} | {} | {} |{money} {} |\n",
                cell(&action),
                cell(&c.kind),
                cell(&c.provider),
                cell(&crate::plan::reason(c))
            )
        })
        .collect();
    let n = changes.len();
    Section {
        title: "\n**Changes**\n\n".into(),
        head: head.into(),
        items,
        more: Box::new(move |cut| format!("\n… and {} more change{}\n", n - cut, plural(n - cut))),
    }
}

/// A change's hourly cost cell: `- → $2.10`, `$2.10 → unknown`; empty when neither side costs
/// anything by the hour.
fn change_cost(c: &PlannedChange) -> String {
    let Some(k) = &c.cost else { return String::new() };
    if !priced(&k.before) && !priced(&k.after) {
        return String::new();
    }
    let side = |x: &Option<Cost>| match x {
        Some(Cost::Hourly { usd: u }) => usd(*u),
        Some(Cost::Unknown { .. }) => "unknown".into(),
        Some(Cost::None) | None => "-".into(),
    };
    format!("{} → {}", side(&k.before), side(&k.after))
}

/// The placement decisions, one table per placed instance.
fn placements(plan: &Plan) -> Section {
    if plan.placements.is_empty() {
        return Section::whole(String::new());
    }
    let n = plan.placements.len();
    Section {
        title: "\n**Placement**\n".into(),
        head: String::new(),
        items: plan.placements.iter().map(placement).collect(),
        more: Box::new(move |cut| format!("\n… and {} more placement decision{}\n", n - cut, plural(n - cut))),
    }
}

/// One decision: the request, then the chosen offering, the fallbacks and the alternatives with
/// the reason each lost (the columns of the human plan's table).
fn placement(p: &Placement) -> String {
    let mut out = String::new();
    let how = if p.kept { " (kept: request unchanged)" } else { "" };
    let _ = writeln!(
        out,
        "\n{} ({}): {}{how}\n",
        code(&p.address.to_string()),
        code(&p.request),
        cell(&format!("{} {} at {}/h", p.chosen.provider, instance(&p.chosen), usd(p.chosen.hourly())))
    );
    // Data gravity: the one-off cost of moving the jobs' data to each offering, where a job
    // says where its data is.
    let data = crate::cost::has_egress(p);
    let (egress_head, egress_rule) = if data { (" Egress |", " --- |") } else { ("", "") };
    let _ = writeln!(
        out,
        "| Provider | Region | Instance type | vCPUs | Memory | GPUs | $/h |{egress_head} |\n| --- | --- | --- | --- | --- | --- | --- |{egress_rule} --- |"
    );
    let row = |out: &mut String, o: &PlacedOffering, note: &str| {
        let egress = match (data, o.egress_usd) {
            (false, _) => String::new(),
            (true, Some(e)) => format!(" {} |", usd(e)),
            (true, None) => " unknown |".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} GiB | {} | {} |{egress} {} |",
            cell(&o.provider),
            cell(o.region.as_deref().unwrap_or("-")),
            cell(&instance(o)),
            o.vcpus,
            o.memory_gib.normalize(),
            cell(o.accelerators.as_deref().unwrap_or("-")),
            usd(o.hourly()),
            note
        );
    };
    row(&mut out, &p.chosen, "**chosen**");
    for f in &p.fallbacks {
        row(&mut out, f, "fallback (no capacity for the chosen)");
    }
    for a in &p.alternatives {
        row(&mut out, &a.offering, &cell(&a.reason));
    }
    if let Some(from) = &p.moved_from {
        let saving = from.hourly() - p.chosen.hourly();
        let _ = writeln!(
            out,
            "\nMoves from {} ({}/h): {} per hour",
            cell(&format!("{} {}", from.provider, from.instance_type)),
            usd(from.hourly()),
            if saving.is_sign_negative() { format!("costs {} more", usd(-saving)) } else { format!("saves {}", usd(saving)) }
        );
    }
    if !p.notes.is_empty() {
        out.push('\n');
        for n in &p.notes {
            let _ = writeln!(out, "- note: {}", one_line(n));
        }
    }
    out
}

/// An offering's instance type, `(spot)` marked.
fn instance(o: &PlacedOffering) -> String {
    format!("{}{}", o.instance_type, if o.spot { " (spot)" } else { "" })
}

/// The outputs that change.
fn outputs(plan: &Plan) -> Section {
    let outs: Vec<_> = plan.outputs.iter().filter(|(_, o)| o.is_change()).collect();
    let items: Vec<String> = outs
        .into_iter()
        .filter_map(|(name, o)| {
            let show = |v: &Value| match shown(v, o.sensitive) {
                t if t == SENSITIVE => t,
                t => code(&t),
            };
            let (act, val) = match (&o.before, &o.after) {
                (None, Some(a)) => ("create", show(a)),
                (Some(_), None) => ("delete", String::new()),
                (Some(b), Some(a)) => ("update", format!("{} → {}", show(b), show(a))),
                (None, None) => return None,
            };
            Some(format!("| {} | {act} | {val} |\n", code(name)))
        })
        .collect();
    if items.is_empty() {
        return Section::whole(String::new());
    }
    let n = items.len();
    Section {
        title: "\n**Outputs**\n\n".into(),
        head: "| Output | Action | Value |\n| --- | --- | --- |\n".into(),
        items,
        more: Box::new(move |cut| format!("\n… and {} more output change{}\n", n - cut, plural(n - cut))),
    }
}

/// What refresh found changed outside kiln.
fn drift(plan: &Plan) -> Section {
    if plan.drift.is_empty() {
        return Section::whole(String::new());
    }
    let n = plan.drift.len();
    Section {
        title: "\n**Changed outside of kiln**\n\n".into(),
        head: String::new(),
        items: plan
            .drift
            .iter()
            .map(|d| format!("- {} {}\n", code(&d.address.to_string()), if d.after.is_none() { "has been deleted" } else { "has changed" }))
            .collect(),
        more: Box::new(move |cut| format!("\n… and {} more object{} changed outside of kiln\n", n - cut, plural(n - cut))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comment_within_a_small_budget_keeps_its_summary_and_says_it_is_shortened() {
        let change = |i: usize| PlannedChange {
            address: format!("record.r[{i}]").parse().unwrap(),
            provider: "kiln".into(),
            kind: "record".into(),
            action: Action::Create,
            before: None,
            after: Some(Value::Null),
            reason: None,
            create_before_destroy: false,
            sensitive: vec![],
            dependencies: vec![],
            deposed: None,
            references: Default::default(),
            cost: None,
        };
        let plan = Plan {
            format_version: kiln_plan::FORMAT_VERSION,
            kiln_version: "0.1.0".into(),
            mode: Mode::Normal,
            lineage: None,
            serial: None,
            changes: (0..500).map(change).collect(),
            drift: vec![],
            outputs: BTreeMap::new(),
            variables: BTreeMap::new(),
            config_digest: String::new(),
            targets: vec![],
            excludes: vec![],
            refresh: true,
            pending: vec![],
            cost: None,
            placements: vec![],
            policies: vec![],
            git_commit: None,
        };
        let text = comment_within(&plan, 4_000);
        assert!(text.len() <= 4_000, "{}", text.len());
        assert!(text.starts_with("### kiln plan: 500 to add, 0 to change, 0 to destroy\n"), "{text}");
        assert!(text.contains("more changes\n"), "{text}");
        assert!(text.ends_with("`kiln show PLANFILE`.\n"), "{text}");
        assert!(!comment_within(&plan, 1_000_000).contains("too long"));
    }
}
