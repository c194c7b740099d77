//! One function per command. Each loads what it needs, calls the engine, renders, and returns
//! the process exit code.

use crate::cli::{Cli, Command, PlanArgs, VarArgs};
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
mod catalog;
mod console;
mod cost;
mod fmt;
mod git;
mod init;
mod inventory;
pub mod jobs;
mod load;
mod locking;
mod logs;
mod offers;
mod plan;
mod planning;
mod registry;
mod release;
mod run;
mod schema;
mod show;
mod ssh;
mod state;
mod status;
mod validate;
mod wait;
pub(crate) mod watch;
pub(crate) mod workspace;

pub use backend::*;
pub use load::*;
pub(crate) use locking::*;
pub use planning::*;
pub use registry::*;

pub use apply::ApplyOpts;

pub use crate::exit::{ExitStatus, Failure, R};

pub use crate::printer::Printer;
pub use crate::settings::Settings;

/// What one command runs with: its settings (resolved once, before it starts), the printer
/// that owns stdout and stderr, and the operation context (the state locks it holds, how it
/// locks, where operations' notices go).
pub struct Ctx {
    pub settings: Arc<Settings>,
    pub printer: Printer,
    pub ops: kiln_ops::operation::Context,
}

impl Ctx {
    pub fn new(settings: Settings) -> Ctx {
        let printer = Printer::new(&settings);
        let ops =
            kiln_ops::operation::Context::new(settings.lock, Arc::new(move |n: &kiln_ops::operation::Notice| printer.note(notice_text(n))));
        Ctx { settings: Arc::new(settings), printer, ops }
    }

    /// The configuration's directory.
    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }
}

/// The environment as the settings see it (variables that are not UTF-8 are left out).
fn environment() -> Vec<(String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

pub async fn run(cli: Cli) -> ExitStatus {
    if let Some(dir) = &cli.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            let d = Diagnostic::error("E-CLI-CHDIR", format!("cannot change to `{}`", dir.display()))
                .detail(e.to_string())
                .hint("--chdir names the directory of the configuration: check that it exists");
            Printer::default().failure(&d.into());
            return ExitStatus::Error;
        }
    }
    let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let flags = crate::settings::Flags { lock_timeout: cli.lock_timeout.clone(), no_color: cli.no_color };
    let cx = match Settings::resolve(&flags, environment(), dir, crate::settings::Terminals::detect()) {
        Ok(s) => Ctx::new(s),
        Err(f) => {
            Printer::default().failure(&f);
            return ExitStatus::Error;
        }
    };
    // A panic (a bug) must not leave the state locked: catch it, release every lock this
    // process holds, and exit as a panic does (101) after the panic's own message.
    // An interrupt nothing listens for (between operations, at a prompt) ends the process with
    // its state locks released, where the signal would have killed it holding them (a task of
    // its own: a prompt blocks this one).
    let (unheeded, locks, printer) = (kiln_ops::interrupt::unheeded(), cx.ops.locks.clone(), cx.printer);
    tokio::spawn(async move {
        let signal = unheeded.await;
        let (released, _) = locks.release_all().await;
        let lock = if released.is_empty() { "" } else { "; the state lock it held was released" };
        printer.note(format_args!("\nInterrupted ({signal}): kiln stopped{lock}."));
        std::process::exit(ExitStatus::Error.code());
    });
    let r = CatchUnwind(Box::pin(dispatch(cli, &cx))).await;
    match r {
        Ok(code) => code,
        Err(_) => {
            let (released, failed) = cx.ops.locks.release_all().await;
            for (id, e) in &failed {
                cx.printer.warning(format_args!("could not release the state lock `{id}`: {e}"));
            }
            let d = Diagnostic::error(
                "E-INTERNAL",
                format!(
                    "kiln stopped on an internal error (a bug; the message above says where){}",
                    if released.is_empty() { "" } else { "; the state lock it held was released" }
                ),
            )
            .hint("please report it with the command and configuration that caused it");
            cx.printer.failure(&d.into());
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

async fn dispatch(cli: Cli, cx: &Ctx) -> ExitStatus {
    let r = match cli.command {
        Command::Init { vars, migrate_state, reconfigure, template } => init::init(cx, &vars, migrate_state, reconfigure, template).await,
        Command::Validate { vars, format } => validate::validate(cx, &vars, format.get()).await,
        Command::Plan { args, out, detailed_exitcode, destroy, format } => {
            let mode = if destroy { Mode::Destroy } else { refresh_only(&args) };
            plan::plan_cmd(cx, &args, mode, out, detailed_exitcode, format.get()).await
        }
        Command::Apply { args, auto_approve, wait, logs, plan_file } => {
            let mode = refresh_only(&args);
            apply::apply_cmd(cx, &args, ApplyOpts { auto_approve, wait, logs, plan_file, mode }).await
        }
        Command::Destroy { args, auto_approve } => {
            apply::apply_cmd(cx, &args.into(), ApplyOpts { auto_approve, wait: false, logs: false, plan_file: None, mode: Mode::Destroy })
                .await
        }
        Command::Run { vars, address, auto_approve } => run::run(cx, &vars, &address, auto_approve).await,
        Command::Logs { vars, address, node, tail, since, follow, attempt } => {
            logs::logs(cx, &vars, &address, logs::LogsOpts { node, tail, since, follow, attempt }).await
        }
        Command::Jobs { vars, command: Some(crate::cli::JobsCommand::Events { address, json }), .. } => {
            watch::events(cx, &vars, &address, json).await
        }
        Command::Jobs { vars, format, command: None } => status::list(cx, &vars, format.get()).await,
        Command::Watch { vars, interval, once } => watch::watch(cx, &vars, watch::WatchOpts { interval, once }).await,
        Command::Status { vars, format } => status::status_cmd(cx, &vars, format.get()).await,
        Command::Cost { format } => cost::cost(cx, format.get()).await,
        Command::Ssh { vars, address, node, command } => ssh::ssh(cx, &vars, &address, node, &command).await,
        Command::Schema { kind, provider, format } => schema::schema(cx, kind.as_deref(), provider.as_deref(), format.get()),
        Command::Console { vars } => console::console(cx, &vars).await,
        Command::Inventory { vars } => inventory::inventory(cx, &vars).await,
        Command::Show { format, plan_file } => show::show(cx, format.get(), plan_file).await,
        Command::Output { format, raw, name } => show::output(cx, format.get(), raw, name).await,
        Command::Graph => show::graph(cx),
        Command::Fmt { check, diff, recursive, paths } => fmt::fmt(cx, check, diff, recursive, paths),
        Command::State(s) => state::state_cmd(cx, s).await,
        Command::Import { vars, address, id } => state::import(cx, &vars, &address, &id).await,
        Command::ForceUnlock { lock_id, force } => state::force_unlock(cx, &lock_id, force).await,
        Command::Workspace(w) => workspace::workspace_cmd(cx, w).await,
        Command::Offers { vars, accelerators, spot, cpus, memory, region, provider, all, format } => {
            let o = offers::OffersOpts { accelerators, spot, cpus, memory, region, provider, all, format: format.get() };
            offers::offers(cx, &vars, &o).await
        }
        Command::Catalog { command } => match command {
            None => catalog::sources(cx, &VarArgs::default()).await,
            Some(crate::cli::CatalogCommand::Sources { vars }) => catalog::sources(cx, &vars).await,
            Some(crate::cli::CatalogCommand::Refresh { vars, cloud, output }) => {
                catalog::refresh(cx, &vars, &cloud, output.as_deref()).await
            }
        },
        Command::Version => {
            cx.printer.data(format_args!("kiln v{}", env!("CARGO_PKG_VERSION")));
            Ok(ExitStatus::Success)
        }
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            cx.printer.failure(&e);
            ExitStatus::Error
        }
    }
}

/// The `Outputs:` block (`kiln_views::outputs::block`), on stdout.
fn print_outputs(l: &Loaded, state: &State) {
    l.printer.data_raw(kiln_views::outputs::block(&state.outputs));
}
