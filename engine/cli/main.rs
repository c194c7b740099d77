//! The `kiln` binary: parses the command line, wires the built-in providers and runs one
//! command. Exit codes follow Terraform: 0 success, 1 error, 2 changes present (with
//! `plan --detailed-exitcode`). Data goes to stdout; progress and diagnostics to stderr.

mod cli;
mod commands;
mod exit;
mod printer;
mod render;
mod settings;
mod view_plan;

/// mimalloc: plans and applies allocate and free many small values; it is markedly faster than
/// the system allocator for that (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = cli::Cli::parse_args();
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_env("KILN_LOG")).with_writer(std::io::stderr).init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = rt.block_on(commands::run(args));
    std::process::exit(code.code());
}
