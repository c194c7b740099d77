//! Integration tests of the `onprem` provider against real sshd processes (started by
//! `tests/harness/sshd/start.sh`, see `harness.rs`), driving it through the provider contract as
//! the engine does. One test binary; one module per kind.

mod bucket;
mod cluster;
mod common;
mod fleet;
mod harness;
mod job;
mod offerings;
mod portable;
mod requests;
mod reschedule;
