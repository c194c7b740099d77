//! `kiln logs`.

use std::time::Duration;

use kiln_addrs::InstanceAddr;
use kiln_diag::Diagnostic;
use kiln_provider::LogsRequest;

use super::jobs::providers;
use super::{load, open, read_state, Ctx, ExitStatus, Failure, R};
use crate::cli::VarArgs;

/// `kiln logs ADDRESS`'s options.
pub struct LogsOpts {
    pub node: Option<usize>,
    pub tail: Option<usize>,
    pub since: Option<String>,
    pub follow: bool,
}

pub async fn logs(cx: &Ctx, vars: &VarArgs, address: &str, opts: LogsOpts) -> R {
    let (node, follow) = (opts.node.unwrap_or(0), opts.follow);
    let dir = cx.dir();
    let addr: InstanceAddr = address.parse().map_err(|e: kiln_addrs::AddrError| {
        Diagnostic::error("E-ADDR-INVALID", e.to_string()).hint("a job's address looks like job.train or job.train[0]")
    })?;
    let l = load(cx, vars)?;
    let backend = open(&l)?;
    let state = read_state(backend.as_ref()).await?;
    let r = state.resources.get(&addr).ok_or_else(|| {
        Diagnostic::error("E-STATE-ADDRESS", format!("`{addr}` is not in state"))
            .address(&addr)
            .hint("`kiln jobs` lists the jobs kiln manages")
    })?;
    let p = providers(dir, &l, &state).await?;
    let provider = p.get(&r.provider).ok_or_else(|| {
        Diagnostic::error("E-PROVIDER-UNAVAILABLE", format!("provider `{}` is not available", r.provider))
            .address(&addr)
            .hint("the configuration no longer declares it, or this kiln was built without it")
    })?;
    let name = addr.to_string();
    let mut offset = 0;
    loop {
        let resp = provider.logs(LogsRequest { address: &name, kind: &r.kind, state: &r.attributes, node, offset }).await;
        if resp.diagnostics.has_errors() {
            return Err(Failure::in_sources(&l.config.sources, resp.diagnostics));
        }
        cx.printer.data_bytes(&resp.data);
        offset = resp.next_offset;
        // Providers return a log in chunks: read on while they give more.
        if !resp.data.is_empty() {
            continue;
        }
        if !follow || resp.finished {
            return Ok(ExitStatus::Success);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
