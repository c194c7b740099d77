//! `kiln console`: evaluate expressions against the configuration and state.

use super::{Ctx, R};
use crate::cli::VarArgs;

pub async fn console(_cx: &Ctx, _vars: &VarArgs) -> R {
    Err(kiln_diag::Diagnostic::error("E-TODO", "kiln console is being written").into())
}
