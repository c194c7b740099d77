//! `kiln ssh ADDRESS --node N [-- COMMAND]`.

use super::{Ctx, R};
use crate::cli::VarArgs;

pub async fn ssh(_cx: &Ctx, _vars: &VarArgs, _address: &str, _node: usize, _command: &[String]) -> R {
    Err(kiln_diag::Diagnostic::error("E-TODO", "kiln ssh is being written").into())
}
