//! `kiln schema [KIND] [--provider P]`: the providers' schemas as a reference.

use super::{Ctx, R};

pub fn schema(_cx: &Ctx, _kind: Option<&str>, _provider: Option<&str>, _format: kiln_views::Format) -> R {
    Err(kiln_diag::Diagnostic::error("E-TODO", "kiln schema is being written").into())
}
