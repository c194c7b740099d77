//! `kiln cost`: the spend rate of what is applied, by resource and provider, and the spend so
//! far, from the prices state recorded at apply (never re-priced from today's catalog).

use super::{current_state, Ctx, ExitStatus, R};

pub async fn cost(cx: &Ctx, format: kiln_views::Format) -> R {
    let state = current_state(cx).await?;
    let now = chrono::Utc::now();
    let items = state
        .resources
        .iter()
        .filter_map(|(a, r)| r.billing.as_ref().map(|b| (a.to_string(), r.provider.as_str(), r.kind.as_str(), b, b.spent(now))));
    let view = kiln_views::cost::Spend::new(items);
    cx.printer.data_raw(kiln_views::render(&view, format, cx.settings.colour.stdout));
    Ok(ExitStatus::Success)
}
