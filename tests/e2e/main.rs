//! End-to-end tests of the `kiln` binary. One module per command area; new tests go in the
//! module of the command they exercise, regression tests are named after their issue. Plan
//! view snapshots: add a fixture under `fixtures/plan-<scenario>/` and a test in `plan_view.rs`.
//! Shared helpers (projects, background runs, insta filters) live in `support.rs`; the AWS API
//! server (moto) that `aws.rs` and the aws example run against, in `moto.rs`.

mod moto;
mod support;

mod apply;
#[cfg(feature = "aws")]
mod aws;
mod backends;
mod ci_examples;
mod console;
mod crash;
// The examples use every provider.
#[cfg(all(feature = "aws", feature = "onprem", feature = "slurm"))]
mod examples;
mod exit_codes;
mod fmt;
mod git_commit;
mod help;
mod interrupt;
mod job_delivery;
mod jobs_wait;
mod language;
mod layers;
mod lifecycle;
mod local;
mod logs;
mod offers;
#[cfg(feature = "onprem")]
mod onprem;
#[cfg(feature = "aws")]
mod placement;
mod plan;
mod plan_view;
mod policy;
mod release;
mod schema;
mod secrets;
mod show;
#[cfg(feature = "slurm")]
mod slurm;
mod state;
mod state_cmds;
mod status;
mod upgrade;
mod variables;
mod watch;
