//! One function per command. Each loads what it needs, calls the engine, renders, and returns
//! the process exit code.

use crate::cli::{Cli, Command, PlanArgs, VarArgs};
use crate::render;
use kiln_addrs::Target;
use kiln_config::Config;
use kiln_core::{Hook, ProviderRegistry};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_ops::VarSources;
use kiln_plan::{Mode, Plan};
use kiln_state::{State, StateBackend};
use kiln_value::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod apply;
mod backend;
mod fmt;
mod init;
mod inventory;
pub mod jobs;
mod load;
mod locking;
mod plan;
mod planning;
mod registry;
mod show;
mod state;
mod validate;
pub(crate) mod workspace;

pub use backend::*;
pub use load::*;
pub(crate) use locking::*;
pub use planning::*;
pub use registry::*;

pub use apply::{execute, ApplyOpts};

pub use crate::exit::{ExitStatus, Failure, R};

pub async fn run(cli: Cli) -> ExitStatus {
    let lock_timeout = match kiln_provider_builtin::parse_duration(&cli.lock_timeout) {
        Some(d) => d,
        None => {
            eprintln!("Error: invalid --lock-timeout `{}`: write a duration such as 30s or 5m", cli.lock_timeout);
            return ExitStatus::Error;
        }
    };
    // The command's operations: the locks it holds, kept here too for the panic handler.
    let ops = ops_context(lock_timeout);
    let held = ops.locks.clone();
    if let Some(dir) = &cli.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!("Error: cannot change to `{}`: {e}", dir.display());
            return ExitStatus::Error;
        }
    }
    let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    // A panic (a bug) must not leave the state locked: catch it, release every lock this
    // process holds, and exit as a panic does (101) after the panic's own message.
    match CatchUnwind(Box::pin(dispatch(cli, dir, &ops))).await {
        Ok(code) => code,
        Err(_) => {
            let (released, failed) = held.release_all().await;
            for (id, e) in &failed {
                eprintln!("Warning: could not release the state lock `{id}`: {e}");
            }
            let released = !released.is_empty();
            eprintln!(
                "Error: kiln stopped on an internal error (a bug; the message above says where){}\n  = help: please report it with the command and configuration that caused it",
                if released { "; the state lock it held was released" } else { "" }
            );
            ExitStatus::Panic
        }
    }
}

/// Polls a future inside `catch_unwind`, so that a panic while it runs becomes an `Err`.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(e) => std::task::Poll::Ready(Err(e)),
        }
    }
}

async fn dispatch(cli: Cli, dir: PathBuf, ops: &kiln_ops::operation::Context) -> ExitStatus {
    let r = match cli.command {
        Command::Init { vars, migrate_state, reconfigure } => init::init(ops, &dir, &vars, migrate_state, reconfigure).await,
        Command::Validate { vars, format } => validate::validate(&dir, &vars, format.get()).await,
        Command::Plan { args, out, detailed_exitcode, format } => plan::plan_cmd(ops, &dir, &args, out, detailed_exitcode, format.get()).await,
        Command::Apply { args, auto_approve, wait, plan_file } => {
            apply::apply_cmd(ops, &dir, &args, ApplyOpts { auto_approve, wait, plan_file, mode: Mode::Normal }).await
        }
        Command::Destroy { args, auto_approve } => {
            apply::apply_cmd(ops, &dir, &args, ApplyOpts { auto_approve, wait: false, plan_file: None, mode: Mode::Destroy }).await
        }
        Command::Logs { vars, address, node, follow } => jobs::logs(&dir, &vars, &address, node, follow).await,
        Command::Jobs { vars } => jobs::list(&dir, &vars).await,
        Command::Inventory { vars } => inventory::inventory(&dir, &vars).await,
        Command::Show { format, plan_file } => show::show(&dir, format.get(), plan_file).await,
        Command::Output { format, raw, name } => show::output(&dir, format.get(), raw, name).await,
        Command::Graph => show::graph(&dir),
        Command::Fmt { check, diff, recursive, paths } => fmt::fmt(&dir, check, diff, recursive, paths),
        Command::State(s) => state::state_cmd(ops, &dir, s).await,
        Command::Import { vars, address, id } => state::import(ops, &dir, &vars, &address, &id).await,
        Command::ForceUnlock { lock_id, force } => state::force_unlock(&dir, &lock_id, force).await,
        Command::Workspace(w) => workspace::workspace_cmd(ops, &dir, w).await,
        Command::Version => {
            println!("kiln v{}", env!("CARGO_PKG_VERSION"));
            Ok(ExitStatus::Success)
        }
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.render(render::colour()).trim_end());
            ExitStatus::Error
        }
    }
}

/// The `Outputs:` block (`kiln_views::outputs::block`).
fn print_outputs(state: &State) {
    print!("{}", kiln_views::outputs::block(&state.outputs));
}
