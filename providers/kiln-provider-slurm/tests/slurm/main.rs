//! The `slurm` provider against a real single-node Slurm cluster (slurmctld + slurmd + munged
//! started by `tests/harness/slurm/start.sh`), and over SSH to a loopback sshd as login node.

mod common;
mod harness;

mod cluster;
mod conformance;
mod job;
mod offerings;
mod portable;
mod requests;
mod ssh;
