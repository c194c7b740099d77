//! The `slurm` provider: the scheduler most on-prem GPU clusters run, driven through its
//! command-line tools on this machine or, with a `login` block, over SSH on a login node.
//!
//! - `cluster`: a partition (with an optional reservation, account and QoS). Its attributes
//!   describe the partition from `sinfo` and `scontrol show partition`: nodes and their states,
//!   CPUs, GPUs (GRES). `accelerators = "A100:8"` picks the GRES type jobs ask for; a request the
//!   partition cannot satisfy fails at plan time. Nothing is created in Slurm.
//! - `job`: `sbatch` of a generated batch script that sets the KILN_* environment from the
//!   SLURM_* one and runs `setup` once per node, then `run` in every task, with `srun`. Status
//!   comes from `squeue` (one call for all jobs of a refresh) and, for finished jobs, from `sacct`
//!   (or the job completion log, `sacct -c`, when accounting is off); `kiln logs` reads the job's
//!   output file; destroy is `scancel`. Any change of the job's configuration replaces it.
//!
//! - Placement: each partition's idle nodes, priced by `hourly_price` and `gpu_hour_price`
//!   (see [`offerings`]); a cluster's cost line: its nodes at those prices (see [`price`]).
//!
//! Every operation is one bash script run through a [`runner::Runner`]: one round trip.

// Operations fail with one diagnostic that goes straight into the response.
#![allow(clippy::result_large_err)]

mod access;
mod cluster;
pub mod config;
mod job;
pub mod offerings;
pub mod parse;
pub mod price;
pub mod runner;
mod schema;
use kiln_remote::shell;
mod util;

use std::collections::BTreeMap;
use std::path::Path;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::kinds::{KindFactory, KindProvider, Kinds};
use kiln_provider::offerings::OfferingsResponse;
use kiln_provider::{async_trait, ConfigureRequest, Limits};
use kiln_value::Value;

use crate::config::SlurmConfig;
use crate::runner::{Output, RunError, Runner};

pub const NAME: &str = "slurm";

/// Builds `slurm` provider instances from `provider "slurm" { ... }` (all optional).
pub struct SlurmFactory;

impl KindFactory for SlurmFactory {
    type Provider = SlurmProvider;
}

/// What every kind's operations see: where commands run and where job files go.
pub struct Ctx {
    pub config: SlurmConfig,
    pub runner: Runner,
    /// The configuration's directory on this machine: a job's `workdir` is relative to it.
    pub working_dir: std::path::PathBuf,
}

impl Ctx {
    /// Runs a script; a script that cannot run at all, or exits non-zero, is an error about
    /// `address` saying what failed (`what`) and Slurm's own words.
    pub async fn run(&self, address: &str, op: &str, what: &str, script: &str, args: &[&str]) -> Result<Output, Diagnostic> {
        let out = self.runner.run(op, script, args).await;
        self.checked(address, what, out)
    }

    /// [`Ctx::run`], with `input` streamed on the script's stdin after it ([`Runner::run_with_input`]).
    pub async fn run_with_input(
        &self,
        address: &str,
        op: &str,
        what: &str,
        script: &str,
        args: &[&str],
        input: &[u8],
    ) -> Result<Output, Diagnostic> {
        let out = self.runner.run_with_input(op, script, args, input).await;
        self.checked(address, what, out)
    }

    fn checked(&self, address: &str, what: &str, out: Result<Output, RunError>) -> Result<Output, Diagnostic> {
        let out = out.map_err(|e| self.unreachable(address, &e))?;
        if !out.ok() {
            return Err(util::error(
                "E-SLURM-COMMAND",
                address,
                format!("{address}: {what} failed on {}: {}", self.runner.describe(), out.complaint()),
            )
            .hint(command_hint(&out)));
        }
        Ok(out)
    }

    /// Runs a script whose exit code the caller interprets.
    pub async fn run_raw(&self, address: &str, op: &str, script: &str, args: &[&str]) -> Result<Output, Diagnostic> {
        self.runner.run(op, script, args).await.map_err(|e| self.unreachable(address, &e))
    }

    pub fn unreachable(&self, address: &str, e: &RunError) -> Diagnostic {
        let hint = if self.runner.is_remote() {
            "check the `login` block of provider \"slurm\" (host, user, identity_file, host_key) and that the login node answers ssh"
        } else {
            "kiln runs Slurm's commands with bash on this machine: check that bash is installed"
        };
        util::error("E-SLURM-UNREACHABLE", address, format!("{address}: {e}")).hint(hint)
    }

    /// The job files directory, absolute.
    pub async fn root(&self) -> Result<String, RunError> {
        self.absolute(&self.config.root).await
    }

    /// `p` made absolute against the working directory (local) or the login home (SSH).
    pub async fn absolute(&self, p: &str) -> Result<String, RunError> {
        if p.starts_with('/') {
            return Ok(p.to_string());
        }
        let base = self.runner.base_dir().await?;
        let p = p.strip_prefix("~/").unwrap_or(p).trim_start_matches("./");
        Ok(format!("{}/{p}", base.trim_end_matches('/')))
    }
}

/// What to do about a Slurm command that failed, from its words.
fn command_hint(out: &Output) -> String {
    let text = format!("{} {}", out.stderr, out.text());
    if text.contains("command not found") {
        "Slurm's client commands (sbatch, squeue, sinfo, scancel, sacct) must be on the PATH where kiln runs them".to_string()
    } else if text.contains("Could not establish a configuration source") || text.contains("slurm.conf") {
        "no Slurm configuration where kiln runs the commands: set SLURM_CONF or install /etc/slurm/slurm.conf \
         (tests/harness/slurm/start.sh starts a one-node cluster on this machine)"
            .to_string()
    } else if text.contains("Unable to contact slurm controller") || text.contains("Connection refused") {
        "slurmctld does not answer: check that the cluster is up (`sinfo`) and that slurm.conf is found (SLURM_CONF)".to_string()
    } else if text.contains("Invalid partition") {
        "name a partition `sinfo` lists".to_string()
    } else if text.contains("Invalid account") || text.contains("Invalid qos") {
        "check the cluster's `account` and `qos` against `sacctmgr show assoc user=$USER`".to_string()
    } else {
        "run the same command by hand to see more; kiln's scripts are in the job's directory".to_string()
    }
}

/// A configured `slurm` provider.
pub struct SlurmProvider {
    ctx: Ctx,
}

impl SlurmProvider {
    /// From an evaluated provider block; `working_dir` is where relative paths start (locally).
    pub fn configure(config: &Value, working_dir: &Path) -> Result<SlurmProvider, Diagnostics> {
        let config = config::parse(config, working_dir)?;
        let working_dir = std::path::absolute(working_dir).unwrap_or_else(|_| working_dir.to_path_buf());
        let runner = match &config.login {
            None => Runner::local(working_dir.clone()),
            Some(l) => Runner::ssh(l.clone()).map_err(|e| {
                Diagnostics::from(Diagnostic::error(
                    "E-SLURM-CONFIG",
                    format!("cannot write the SSH configuration of provider `slurm`: {e}"),
                ))
            })?,
        };
        Ok(SlurmProvider { ctx: Ctx { config, runner, working_dir } })
    }

    /// Where Slurm's commands run, for messages.
    pub fn target(&self) -> String {
        self.ctx.runner.describe()
    }
}

pub(crate) use kiln_provider::kinds::{Kind, Outcome};
pub(crate) use kiln_schema::KindSchema;

/// The kinds. Reads share nothing beyond one call per kind: all jobs are read with one `squeue`
/// (and at most one `sacct`), all clusters with one `sinfo` + `scontrol show partition`.
static KINDS: Kinds<Ctx, ()> = Kinds { provider: NAME, config: schema::config, kinds: &[&cluster::Cluster, &job::Job], data: &[] };

#[async_trait]
impl KindProvider for SlurmProvider {
    type Ctx = Ctx;
    type Batch = ();
    const KINDS: &'static Kinds<Ctx, ()> = &KINDS;

    async fn configure(req: ConfigureRequest) -> Result<Self, Diagnostics> {
        SlurmProvider::configure(&req.config, &req.working_dir)
    }

    fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    fn limits(&self) -> Limits {
        Limits { concurrency: Some(16) }
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.ctx.runner.calls()
    }

    /// The partitions' idle nodes, priced from the configuration (see [`offerings`]).
    async fn offerings(&self) -> OfferingsResponse {
        offerings::offerings(&self.ctx).await
    }

    /// A cluster's nodes at the configured prices (see [`price`]).
    fn hourly_price(&self, kind: &str, object: &Value) -> Option<Result<kiln_value::Decimal, String>> {
        price::hourly_price(self.ctx.config.price, kind, object)
    }
}
