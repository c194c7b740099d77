//! `kiln cost`: the spend rate of what is applied, by resource and provider, and the spend so
//! far, from the prices state recorded at apply (never re-priced from today's catalog).

use kiln_views::cost::SpendLine;

use super::{current_state, Ctx, ExitStatus, R};

pub async fn cost(cx: &Ctx, format: kiln_views::Format) -> R {
    let state = current_state(cx).await?;
    let now = chrono::Utc::now();
    // Objects of a priced kind that state holds no price for were applied before kiln kept
    // prices: listed as unknown (this machine's as free), not left out.
    let lines = state.resources.iter().filter_map(|(a, r)| match &r.billing {
        Some(b) => Some(SpendLine::recorded(a.to_string(), &r.provider, &r.kind, b, b.spent(now))),
        None if kiln_core::PRICED_KINDS.contains(&r.kind.as_str()) => {
            Some(SpendLine::unrecorded(a.to_string(), &r.provider, &r.kind, kiln_core::is_this_machine(&r.provider)))
        }
        None => None,
    });
    let view = kiln_views::cost::Spend::new(lines);
    cx.printer.data_raw(kiln_views::render(&view, format, cx.settings.colour.stdout));
    Ok(ExitStatus::Success)
}
