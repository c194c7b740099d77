//! End-to-end tests of the `kiln` binary. One module per command area; new tests go in the
//! module of the command they exercise, regression tests are named after their issue.

mod support;

mod apply;
mod plan;
mod state;
