//! Integration tests of the `local` provider, driving it through the provider contract as the
//! engine does (plan, create, read, update, delete, recover, import, logs) in temporary
//! directories. One test binary, one module per kind, plus the quickstart's training script.

mod bucket;
mod cluster;
mod common;
mod job;
mod portable;
mod quickstart;
mod requests;
