//! Integration tests of the `aws` provider against a real AWS API server (moto, started by the
//! harness in `common::moto`), driving it through the provider contract as the engine does and
//! checking results through the AWS API itself. One test binary, one module per kind.

mod bucket;
mod catalog_refresh;
mod cluster;
mod common;
mod job;
mod net;
mod portable;
mod preemption;
mod provider;
mod requests;
mod spot_auto;
mod spot_pool;
