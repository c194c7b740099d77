//! The portable contract: what `bucket`, `cluster`, `spot_pool` and `job` mean on every provider.
//! Providers build on these pieces instead of keeping their own copies.
//!
//! - [`request`]: the request grammar (`accelerators = "H100:8"`, `cpus = "8+"`, `memory = "64+"`).
//! - [`accelerators`]: the one accelerator name table (aliases, variants, did-you-mean).
//! - [`job`]: the `job` schema and its `checkpoint` block, the job environment every node sees,
//!   and the job status vocabulary.
//! - [`recovery`]: a job's `recovery` block and the failure categories `kiln watch` restarts after.
//! - [`workdir`]: a job's `workdir` (uploaded by remote providers, `.kilnignore`, its digest).
//! - [`secret_env`]: a job's `secret_env` (salted digests in state, values only to the nodes).
//! - [`conformance`]: the portable conformance cases every provider implementing a kind passes.

pub mod accelerators;
pub mod conformance;
pub mod job;
pub mod recovery;
pub mod request;
pub mod secret_env;
pub mod workdir;
