//! Command-line arguments (clap). Flag names follow Terraform's (`--auto-approve`, `--var`,
//! `--var-file`, `--target`, `--refresh=false`, `--detailed-exitcode`, `--out`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// What `kiln --help` says after the commands: exit codes and environment variables.
const AFTER_HELP: &str = "\
Exit status:
  0  success (with plan --detailed-exitcode: no changes)
  1  an error (a usage error too)
  2  plan --detailed-exitcode: changes present
  3  fmt --check: files need formatting; plan: the plan breaks a policy (over
     --detailed-exitcode's 2), and apply refuses such a plan, applying nothing
  101  an internal error (a bug); the state lock it held is released

Environment:
  KILN_VAR_name     the value of root variable `name` (as --var name=VALUE; flags and files win)
  KILN_WORKSPACE    the workspace to use, over `kiln workspace select`'s choice
  KILN_LOCK_LEASE   how long a state lock's lease lasts (such as 60s); the holder renews it
  KILN_QUIET        set: no progress lines on stderr
  KILN_LOG_RETENTION  how long a destroyed job's logs are kept for `kiln logs`, over each
                    job's log_retention (default 7d; 0 keeps none)
  KILN_WAIT_PROGRESS_INTERVAL  how often apply --wait and run say which jobs are still
                    running, with their last log line (default 30s)
  NO_COLOR          set: no colour (as --no-color)
  KILN_LOG          log filter for debugging (such as debug, or kiln_core=trace), on stderr

Flags may also be written with one dash, as Terraform's are (-var, -auto-approve, -json, -out).";

#[derive(Parser)]
#[command(name = "kiln", version, about = "Infrastructure as code for machine-learning training", after_help = AFTER_HELP)]
pub struct Cli {
    /// Run in this directory instead of the current one.
    #[arg(long, global = true, value_name = "DIR")]
    pub chdir: Option<PathBuf>,
    /// Wait up to this long (such as 30s or 5m) for a state lock held by someone else.
    #[arg(long, global = true, value_name = "DURATION", default_value = "0s")]
    pub lock_timeout: String,
    /// Never colour the output (as the NO_COLOR environment variable does).
    #[arg(long, global = true)]
    pub no_color: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone, Default)]
pub struct VarArgs {
    /// Set a root variable: NAME=VALUE (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Load variable values from a file (repeatable).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    /// `--var` and `--var-file` in the order given (later ones win, as in Terraform).
    #[arg(skip)]
    pub ordered: Vec<kiln_ops::VarSources>,
}

impl VarArgs {
    /// Merges `vars` and `var_files` back into command-line order using clap's indices.
    fn order(&mut self, m: &clap::ArgMatches) {
        let mut all: Vec<(usize, kiln_ops::VarSources)> = Vec::new();
        if let Some(idx) = m.indices_of("vars") {
            all.extend(idx.zip(self.vars.iter().cloned().map(kiln_ops::VarSources::Flag)));
        }
        if let Some(idx) = m.indices_of("var_files") {
            all.extend(idx.zip(self.var_files.iter().cloned().map(kiln_ops::VarSources::File)));
        }
        all.sort_by_key(|(i, _)| *i);
        self.ordered = all.into_iter().map(|(_, v)| v).collect();
    }
}

impl Cli {
    /// Parses the command line. Usage errors exit 1 (2 means "changes present" in kiln);
    /// `--help` and `--version` exit 0.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command();
        let args = terraform_dashes(std::env::args_os().collect(), &long_names(&command));
        let no_color = args.iter().any(|a| a == "--no-color");
        // Usage errors render as every other error (a diagnostic, E-CLI-USAGE); --help,
        // --version and the help a command without its subcommand shows print as clap writes
        // them.
        let usage = |e: clap::Error| -> ! {
            if !e.use_stderr() {
                let _ = e.print();
                std::process::exit(0);
            }
            if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
            } else {
                crate::exit::usage_error(&e, no_color);
            }
            std::process::exit(1);
        };
        let matches = command.try_get_matches_from(args).unwrap_or_else(|e| usage(e));
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| usage(e));
        if let Some((_, mut sub)) = matches.subcommand() {
            // `kiln catalog refresh`: the options are the innermost subcommand's that has them
            // (`kiln jobs events`: those of `jobs`).
            while let Some((_, nested)) = sub.subcommand().filter(|(_, n)| n.try_contains_id("vars").is_ok()) {
                sub = nested;
            }
            if let Some(v) = cli.command.var_args_mut() {
                v.order(sub);
            }
        }
        cli
    }
}

/// Every long option name of `command` and its subcommands (`var`, `auto-approve`, ...).
fn long_names(command: &clap::Command) -> std::collections::BTreeSet<String> {
    let mut names: std::collections::BTreeSet<String> = command.get_arguments().filter_map(|a| a.get_long()).map(str::to_string).collect();
    names.extend(["help", "version"].map(str::to_string));
    for sub in command.get_subcommands() {
        names.extend(long_names(sub));
    }
    names
}

/// Terraform's single-dash spelling of long flags (`-var x=1`, `-auto-approve`, `-out=p`) as
/// the GNU form: only exact long names, so short flags (`-v`) keep their meaning; nothing after
/// a `--`.
fn terraform_dashes(args: Vec<std::ffi::OsString>, long: &std::collections::BTreeSet<String>) -> Vec<std::ffi::OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut options = true;
    for (i, a) in args.into_iter().enumerate() {
        let text = a.to_str().unwrap_or_default();
        if text == "--" {
            options = false;
        }
        let name = text.strip_prefix('-').filter(|t| !t.starts_with('-')).map(|t| t.split('=').next().unwrap_or(t));
        match name {
            Some(n) if i > 0 && options && n.len() > 1 && long.contains(n) => out.push(format!("-{text}").into()),
            _ => out.push(a),
        }
    }
    out
}

#[derive(Args, Clone, Default)]
pub struct PlanArgs {
    #[command(flatten)]
    pub vars: VarArgs,
    /// Only plan this resource, instance or module and what it depends on (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
    /// Leave out this resource, instance or module and what depends on it (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub exclude: Vec<String>,
    /// Replace this resource or instance although nothing forces it, such as a job to run
    /// again (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub replace: Vec<String>,
    /// Only read every managed object and update state and outputs to match what exists,
    /// changing no object (as Terraform's -refresh-only).
    #[arg(long, conflicts_with = "replace")]
    pub refresh_only: bool,
    /// Read every managed object before planning (default true).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub refresh: bool,
    /// Place again the clusters and spot pools that opt into placement although their request
    /// did not change (prices moving never moves one by itself); the plan shows each move and
    /// what it saves.
    #[arg(long)]
    pub replan_placement: bool,
    /// Operations in flight at once per provider (overrides the providers' own limits).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Also report on stderr the remote API calls each provider made while planning.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Placed instances to place again away from these offerings or regions (a restart's
    /// `recovery.strategy`, set by `kiln watch`; no flag).
    #[arg(skip)]
    pub avoid: Vec<(kiln_addrs::InstanceAddr, Vec<kiln_core::Avoid>)>,
}

/// `kiln destroy`'s options: plan's without `--replace` and `--refresh-only` (a destroy replaces
/// nothing and always changes objects), and `--target`/`--exclude` walking the other way.
#[derive(Args, Clone, Default)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub vars: VarArgs,
    /// Only destroy this resource, instance or module and what depends on it (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
    /// Keep this resource, instance or module and what it depends on (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub exclude: Vec<String>,
    /// Read every managed object before planning (default true).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub refresh: bool,
    /// Operations in flight at once per provider (overrides the providers' own limits).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Also report on stderr the remote API calls each provider made while planning.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

impl From<DestroyArgs> for PlanArgs {
    fn from(d: DestroyArgs) -> PlanArgs {
        PlanArgs {
            vars: d.vars,
            target: d.target,
            exclude: d.exclude,
            refresh: d.refresh,
            parallelism: d.parallelism,
            verbose: d.verbose,
            ..PlanArgs::default()
        }
    }
}

/// `--format` (and `--json`, its short form) of the commands that print a view.
#[derive(Args, Clone, Copy, Default)]
pub struct FormatArgs {
    /// Print as `human` (the default), `json` (one JSON document, see schemas/json/) or
    /// `markdown` (tables for a pull-request comment).
    #[arg(long, value_name = "FORMAT", conflicts_with = "json", value_parser = format_parser())]
    pub format: Option<kiln_views::Format>,
    /// Print JSON on stdout: short for `--format json`.
    #[arg(long)]
    pub json: bool,
}

/// `--format`'s values: the names `kiln_views::Format` lists (shown in `--help` and errors).
fn format_parser() -> impl clap::builder::TypedValueParser<Value = kiln_views::Format> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(kiln_views::Format::NAMES).map(|s| s.parse().expect("a listed format"))
}

impl FormatArgs {
    /// The format asked for.
    pub fn get(self) -> kiln_views::Format {
        if self.json {
            kiln_views::Format::Json
        } else {
            self.format.unwrap_or_default()
        }
    }
}

/// `kiln init --template`: the starter configurations.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// A bucket for checkpoints, a 2-node cluster and a training job, on this machine.
    Ml,
    /// One `record` and an output: the smallest configuration.
    Record,
}

// Which options each command offers (issue 13's audit: none that does nothing for it):
// - `--var`/`--var-file` (VarArgs): every command that evaluates the configuration: plan, apply,
//   destroy, run, import, init (the backend block), validate (root variables and their
//   validation rules are checked with the values given), console, and the commands that
//   configure providers from their blocks (logs, jobs, status, ssh, inventory, offers, catalog
//   refresh) or read the `catalog` block (catalog sources). Not on show,
//   output, state, graph, fmt, workspace, force-unlock, schema: they evaluate nothing.
// - destroy takes DestroyArgs, not PlanArgs: `--replace` (a destroy replaces nothing) and
//   `--refresh-only` (a destroy always changes objects) are not offered; its `--target` and
//   `--exclude` walk towards dependents, as their help says.
// - `plan --destroy` refuses `--replace` and `--refresh-only` (same reasons); `apply PLANFILE`
//   refuses what only planning uses (`--target`, `--exclude`, `--replace`, `--refresh-only`,
//   `--refresh`) and, as a diagnostic, `--var`/`--var-file` (E-APPLY-PLAN-VARS).
// - `output --raw` needs NAME (it prints one value; without a name it would be ignored).
// - `--format`/`--json` (FormatArgs): the commands that print a view (validate, plan, show,
//   output, jobs, status, schema, offers).
// - The global `--chdir`, `--lock-timeout` and `--no-color` are offered by every command (clap's
//   global flags); `--lock-timeout` matters only to the commands that lock state.
#[derive(Subcommand)]
pub enum Command {
    /// Create a new project here, or prepare the backend of an existing one.
    Init {
        #[command(flatten)]
        vars: VarArgs,
        /// The backend changed since the last init: copy every workspace's state to the new one
        /// (verified by reading it back) before switching to it.
        #[arg(long, conflicts_with = "reconfigure")]
        migrate_state: bool,
        /// The backend changed since the last init: use the new one as it is, copying nothing.
        #[arg(long)]
        reconfigure: bool,
        /// The starter to write in a directory without configuration: `ml` (a bucket, a 2-node
        /// cluster and a training job on this machine; the default) or `record` (one record and
        /// an output).
        #[arg(long, value_enum, value_name = "TEMPLATE")]
        template: Option<Template>,
    },
    /// Check the configuration without touching state or providers' objects.
    Validate {
        #[command(flatten)]
        vars: VarArgs,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Show what apply would do.
    Plan {
        #[command(flatten)]
        args: PlanArgs,
        /// Save the plan to FILE for `kiln apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 with no changes, 2 with changes, 1 on error (3 when a policy fails, whatever the changes).
        #[arg(long)]
        detailed_exitcode: bool,
        /// Plan to destroy every object kiln manages, as `kiln destroy` would (save it with
        /// --out and apply it with `kiln apply FILE`).
        #[arg(long, conflicts_with_all = ["replace", "refresh_only"])]
        destroy: bool,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Make the changes: plan and apply, or apply a saved plan.
    Apply {
        #[command(flatten)]
        args: PlanArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// After applying, wait until every job has finished, then refresh outputs; the state
        /// lock is released while waiting.
        #[arg(long)]
        wait: bool,
        /// With --wait: stream every job's output, each line prefixed by its node.
        #[arg(long, requires = "wait")]
        logs: bool,
        /// A plan saved by `kiln plan --out` (it was planned with its own targets, replacements
        /// and refresh: those options are refused with it).
        #[arg(conflicts_with_all = ["target", "exclude", "replace", "refresh_only", "refresh"])]
        plan_file: Option<PathBuf>,
    },
    /// Run a job again: plan with --replace ADDRESS --target ADDRESS, confirm, then apply,
    /// wait for it and stream its output (as apply --wait --logs).
    Run {
        #[command(flatten)]
        vars: VarArgs,
        /// The job's address, such as job.train.
        address: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Print a job's logs: every node's, each line prefixed by its node.
    Logs {
        #[command(flatten)]
        vars: VarArgs,
        /// The job's address, such as job.train.
        address: String,
        /// Only this node's output (its rank), without the prefix.
        #[arg(long, value_name = "RANK")]
        node: Option<usize>,
        /// Only the last N lines of each node.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// Only output written since this long ago (such as 10m, 2h) or this RFC 3339 time.
        #[arg(long, value_name = "DURATION|TIME")]
        since: Option<String>,
        /// Keep printing new output until the job finishes (starting at the end with --tail).
        #[arg(long, short = 'f')]
        follow: bool,
        /// The logs of this attempt of the job (its `restarts` when it ran: 0 is the first run),
        /// kept after `kiln watch` or an apply replaced it.
        #[arg(long, value_name = "N")]
        attempt: Option<u64>,
    },
    /// List jobs with their status, start time, duration and restarts.
    Jobs {
        #[command(flatten)]
        vars: VarArgs,
        #[command(flatten)]
        format: FormatArgs,
        #[command(subcommand)]
        command: Option<JobsCommand>,
    },
    /// Keep the jobs that have a `recovery` block going, unattended: restart them after the
    /// failures the block names, from their last checkpoint, recording each event in state
    /// (foreground; Ctrl-C stops it, and the jobs keep running).
    Watch {
        #[command(flatten)]
        vars: VarArgs,
        /// How often the jobs are read, such as 5s or 1m.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::commands::watch::parse_interval)]
        interval: std::time::Duration,
        /// Read the jobs once, do what that calls for, and exit.
        #[arg(long)]
        once: bool,
    },
    /// What is applied costs: each object's price per hour as recorded at apply, what it has
    /// cost so far, and the totals by provider (never re-priced from today's catalog).
    Cost {
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Clusters and jobs: nodes, GPUs, state and uptime.
    Status {
        #[command(flatten)]
        vars: VarArgs,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Open a shell (or run COMMAND) on a node of a cluster or job.
    Ssh {
        #[command(flatten)]
        vars: VarArgs,
        /// The cluster's or job's address, such as cluster.train or job.train.
        address: String,
        /// The node's rank.
        #[arg(long, value_name = "RANK", default_value_t = 0)]
        node: usize,
        /// A command to run instead of a shell (after `--`).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// The attributes of every kind, or of one: a reference generated from the providers'
    /// schemas.
    Schema {
        /// The kind or data source, such as job, aws_vpc or inventory (default: every one).
        kind: Option<String>,
        /// Only this provider's kinds and data sources, such as local or aws (with no KIND: its
        /// provider block too).
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Evaluate expressions against the configuration and state, one per line of input.
    Console {
        #[command(flatten)]
        vars: VarArgs,
    },
    /// The hardware of every fleet's hosts, read now: reachability, CPUs, memory, GPUs (free of
    /// total), OS and which cluster holds them.
    Inventory {
        #[command(flatten)]
        vars: VarArgs,
    },
    /// Destroy everything this configuration manages.
    Destroy {
        #[command(flatten)]
        args: DestroyArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Show the state, or a saved plan.
    Show {
        #[command(flatten)]
        format: FormatArgs,
        /// A plan saved by `kiln plan --out` (default: the state).
        plan_file: Option<PathBuf>,
    },
    /// Print output values.
    Output {
        #[command(flatten)]
        format: FormatArgs,
        /// Print a single output's raw value, sensitive ones included (needs NAME).
        #[arg(long, requires = "name")]
        raw: bool,
        /// The output's name (default: every output).
        name: Option<String>,
    },
    /// Print the dependency graph in Graphviz DOT.
    Graph,
    /// Rewrite configuration files in the canonical layout.
    Fmt {
        /// Exit 3 if any file would change, without writing.
        #[arg(long)]
        check: bool,
        /// Print the changes as a diff.
        #[arg(long)]
        diff: bool,
        /// Also format subdirectories.
        #[arg(long)]
        recursive: bool,
        /// Files or directories (default: the current directory).
        paths: Vec<PathBuf>,
    },
    /// Inspect and edit state.
    #[command(subcommand)]
    State(StateCommand),
    /// Bring an existing object under kiln's management.
    Import {
        #[command(flatten)]
        vars: VarArgs,
        /// The address to give it, such as aws_vpc.main (its block must be in the configuration).
        address: String,
        /// The provider's ID of the object, such as vpc-0abc123.
        id: String,
    },
    /// Manage workspaces: several states (staging, prod, ...) for one configuration.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Remove a lock left by a crashed or killed kiln.
    ForceUnlock {
        /// The lock's ID, as the error that reported the lock showed it.
        lock_id: String,
        /// Break the lock even though its holder may still be running (its process exists on
        /// this host, or its lease has not ended).
        #[arg(long)]
        force: bool,
    },
    /// Offerings that satisfy a request, cheapest first: machine shapes and their prices from
    /// the catalog (in a directory with configuration: what its providers offer, owned hardware
    /// included).
    Offers {
        #[command(flatten)]
        vars: VarArgs,
        /// GPUs per machine: NAME[:COUNT] such as H100:8, or alternatives separated by commas
        /// (H100:8,A100-80GB:8); left out, CPU-only machines.
        #[arg(value_name = "ACCELERATORS")]
        accelerators: Option<String>,
        /// Spot prices (default: on-demand).
        #[arg(long)]
        spot: bool,
        /// vCPUs per machine: exactly N, or at least N with N+ (such as 8+).
        #[arg(long, value_name = "N")]
        cpus: Option<String>,
        /// Memory per machine in GiB: exactly N, or at least N with N+ (such as 64+).
        #[arg(long, value_name = "GIB")]
        memory: Option<String>,
        /// Only this region; offerings without a region (RunPod's, owned hardware) are listed
        /// too, marked `(no region)`.
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        /// Only this provider or cloud, such as aws, lambda or runpod.
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
        /// List every row, not one line per provider and instance type.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// The catalog of offerings: where each cloud's rows and prices come from (the default), or
    /// refresh a cloud's rows from its API.
    Catalog {
        #[command(subcommand)]
        command: Option<CatalogCommand>,
    },
    /// Print kiln's version.
    Version,
}

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Where each cloud's rows come from: shipped with kiln, refreshed into .kiln/catalog/, or
    /// the configuration's `catalog` files; and the discounts applied.
    Sources {
        #[command(flatten)]
        vars: VarArgs,
    },
    /// Rebuild a cloud's rows from its API (configured from its provider block, or the
    /// default), into .kiln/catalog/CLOUD.csv; on-demand prices the API does not give come
    /// from the shipped catalog, else stay unknown.
    Refresh {
        #[command(flatten)]
        vars: VarArgs,
        /// The provider to refresh, such as aws (or aws.ALIAS for another provider block).
        cloud: String,
        /// Write the rows here instead of .kiln/catalog/CLOUD.csv.
        #[arg(long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

impl Command {
    fn var_args_mut(&mut self) -> Option<&mut VarArgs> {
        match self {
            Command::Validate { vars, .. }
            | Command::Init { vars, .. }
            | Command::Import { vars, .. }
            | Command::Logs { vars, .. }
            | Command::Run { vars, .. }
            | Command::Jobs { vars, .. }
            | Command::Watch { vars, .. }
            | Command::Status { vars, .. }
            | Command::Ssh { vars, .. }
            | Command::Console { vars }
            | Command::Inventory { vars }
            | Command::Offers { vars, .. }
            | Command::Catalog { command: Some(CatalogCommand::Sources { vars } | CatalogCommand::Refresh { vars, .. }) } => Some(vars),
            Command::Plan { args, .. } | Command::Apply { args, .. } => Some(&mut args.vars),
            Command::Destroy { args, .. } => Some(&mut args.vars),
            _ => None,
        }
    }
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// A job's recovery events, oldest first: failures detected, restarts, pauses, give-ups.
    Events {
        /// The job's address, such as job.train.
        address: String,
        /// Print JSON on stdout (an array of events).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum StateCommand {
    /// List the resource instances in state.
    List,
    /// Show one instance's attributes.
    Show {
        /// The instance's address, such as job.train or record.a["x"].
        address: String,
    },
    /// Forget instances without destroying them.
    Rm {
        /// The instances' (or resources') addresses.
        addresses: Vec<String>,
    },
    /// Rename an instance in state.
    Mv {
        /// Its address now.
        from: String,
        /// Its new address.
        to: String,
    },
    /// List the stored versions of the state, newest first (backups, bucket versions, history).
    Versions,
    /// Print the state as stored (JSON, decrypted, sensitive values included) on stdout: a file
    /// it is redirected to is made mode 0600, and a terminal is refused when the state holds
    /// sensitive values (redirect or pipe it).
    Pull,
    /// Replace the state with a file (`-` reads stdin): refused when its lineage differs or its
    /// serial is older, unless --force.
    Push {
        /// The state file to write.
        path: PathBuf,
        /// Write it even though its lineage differs or its serial is not newer (as the next
        /// serial of the stored state's lineage).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace (with an empty state) and select it.
    New {
        /// The workspace's name (letters, digits, `-` and `_`).
        name: String,
    },
    /// Select the workspace later commands use (stored in .kiln/environment; KILN_WORKSPACE overrides).
    Select {
        /// The workspace's name.
        name: String,
        /// Create it if it does not exist.
        #[arg(long)]
        or_create: bool,
    },
    /// List workspaces; the selected one is marked with `*`.
    List,
    /// Print the selected workspace's name.
    Show,
    /// Delete a workspace's state. Refused while it manages resources, unless --force.
    Delete {
        /// The workspace's name.
        name: String,
        /// Delete even if its state still lists resources (they are not destroyed, only forgotten).
        #[arg(long)]
        force: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn rewrite(args: &[&str]) -> Vec<String> {
        let args = args.iter().map(std::ffi::OsString::from).collect();
        terraform_dashes(args, &long_names(&Cli::command())).into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn terraform_single_dash_long_flags_are_the_gnu_ones() {
        assert_eq!(
            rewrite(&["kiln", "plan", "-var", "a=1", "-var-file=x.kilnvars", "-out=p", "-detailed-exitcode", "-json", "-no-color"]),
            ["kiln", "plan", "--var", "a=1", "--var-file=x.kilnvars", "--out=p", "--detailed-exitcode", "--json", "--no-color"]
        );
        assert_eq!(
            rewrite(&["kiln", "apply", "-auto-approve", "-lock-timeout", "5s"]),
            ["kiln", "apply", "--auto-approve", "--lock-timeout", "5s"]
        );
        assert_eq!(rewrite(&["kiln", "destroy", "-target", "record.a"]), ["kiln", "destroy", "--target", "record.a"]);
    }

    #[test]
    fn short_flags_unknown_names_values_and_what_follows_a_double_dash_are_left_alone() {
        // `-v` is plan's short --verbose; `-vx` is no long name; `-1` is a value.
        assert_eq!(rewrite(&["kiln", "plan", "-v", "-vx", "--var", "n=-1"]), ["kiln", "plan", "-v", "-vx", "--var", "n=-1"]);
        assert_eq!(rewrite(&["kiln", "plan", "--", "-json"]), ["kiln", "plan", "--", "-json"]);
        // The program's own name is never rewritten.
        assert_eq!(rewrite(&["-json"]), ["-json"]);
    }

    /// Every command, option and argument under `c` that `--help` shows without a description.
    fn undescribed(c: &clap::Command, path: &str, out: &mut Vec<String>) {
        if c.get_about().is_none() && c.get_long_about().is_none() {
            out.push(format!("`{path}` (the command)"));
        }
        for a in c.get_arguments().filter(|a| !a.is_hide_set()) {
            if a.get_help().is_none() && a.get_long_help().is_none() {
                let name = a.get_long().map(|l| format!("--{l}")).unwrap_or_else(|| a.get_id().as_str().to_uppercase());
                out.push(format!("`{path} {name}`"));
            }
        }
        for sub in c.get_subcommands().filter(|s| !s.is_hide_set()) {
            undescribed(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_command_option_and_argument_in_help_has_a_description() {
        let mut found = Vec::new();
        undescribed(&clap::Command::new("x").about("X.").arg(clap::Arg::new("path")), "x", &mut found);
        assert_eq!(found, ["`x PATH`"], "the walk finds an argument without help");
        let mut missing = Vec::new();
        undescribed(&Cli::command(), "kiln", &mut missing);
        assert!(missing.is_empty(), "--help shows these without a description (add a /// doc comment):\n{}", missing.join("\n"));
    }

    #[test]
    fn options_that_do_nothing_for_a_command_are_refused() {
        for flag in ["--replace=record.a", "--refresh-only"] {
            assert!(Cli::try_parse_from(["kiln", "destroy", flag]).is_err(), "destroy accepts {flag}");
            assert!(Cli::try_parse_from(["kiln", "plan", "--destroy", flag]).is_err(), "plan --destroy accepts {flag}");
        }
        for flag in ["--target=record.a", "--exclude=record.a", "--replace=record.a", "--refresh-only", "--refresh=false"] {
            assert!(Cli::try_parse_from(["kiln", "apply", "saved.plan", flag]).is_err(), "apply PLANFILE accepts {flag}");
            assert!(Cli::try_parse_from(["kiln", "apply", flag]).is_ok(), "apply refuses {flag}");
        }
        assert!(Cli::try_parse_from(["kiln", "apply", "saved.plan", "--auto-approve", "--parallelism=2"]).is_ok());
        assert!(Cli::try_parse_from(["kiln", "output", "--raw"]).is_err(), "output --raw prints one output: it needs its name");
        assert!(Cli::try_parse_from(["kiln", "output", "--raw", "token"]).is_ok());
        let cli = Cli::try_parse_from(["kiln", "destroy", "--target", "record.a", "--refresh=false", "--var", "a=1"]).expect("parses");
        let Command::Destroy { args, .. } = cli.command else { panic!("not destroy") };
        let args = PlanArgs::from(args);
        assert_eq!((args.target, args.refresh, args.vars.vars), (vec!["record.a".to_string()], false, vec!["a=1".to_string()]));
        assert!(args.replace.is_empty() && !args.refresh_only);
    }

    #[test]
    fn the_rewritten_flags_parse() {
        let args = rewrite(&["kiln", "plan", "-var", "a=1", "-refresh=false", "-detailed-exitcode", "-no-color"]);
        let cli = Cli::try_parse_from(args).expect("parses");
        assert!(cli.no_color);
        match cli.command {
            Command::Plan { args, detailed_exitcode, .. } => {
                assert_eq!(args.vars.vars, ["a=1"]);
                assert!(!args.refresh);
                assert!(detailed_exitcode);
            }
            _ => panic!("not plan"),
        }
    }
}
