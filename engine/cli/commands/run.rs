//! `kiln run ADDRESS`: plan with --replace ADDRESS --target ADDRESS, confirm, apply, then wait
//! and stream the job's output (apply --wait --logs).

use super::{Ctx, R};
use crate::cli::VarArgs;

pub async fn run(_cx: &Ctx, _vars: &VarArgs, _address: &str, _auto_approve: bool) -> R {
    Err(kiln_diag::Diagnostic::error("E-TODO", "kiln run is being written").into())
}
