//! kiln's expression evaluator over hcl-edit's syntax tree: references, operators, templates and
//! heredocs with directives, `for` expressions, splats, `try`/`can`, `templatefile` and the
//! built-in functions, with unknown values and sensitivity marks flowing through. hcl-rs's own
//! `eval` has none of these, nor spans on errors.
//!
//! The evaluator reads names through a [`Scope`] so the engine decides what `var.x` or
//! `record.a` mean at each stage (plan, apply, console) without building a context up front.

mod eval;
pub mod funcs;
mod refs;

pub use eval::{eval, eval_template_file, Evaluator};
pub use refs::{references, whole_reference, Ref};

use std::path::Path;
use std::sync::Arc;

use hcl_edit::expr::Expression;
use hcl_edit::Span as _;
use kiln_diag::{Diagnostic, FileId, Span};
use kiln_value::Value;

/// An expression together with the file it came from, so errors can point at it.
#[derive(Debug, Clone)]
pub struct Expr {
    pub file: FileId,
    pub node: Arc<Expression>,
}

impl Expr {
    /// An expression parsed from `file`. Terraform's parse-time template rules (strip markers
    /// `~`) are applied here, once. `<<-` heredocs keep hcl-edit's dedent, which differs from
    /// Terraform's in corner cases: use [`Expr::with_source`] when the file's text is at hand.
    pub fn new(file: FileId, mut node: Expression) -> Self {
        eval::prepare(&mut node, None);
        Expr { file, node: Arc::new(node) }
    }

    /// Like [`Expr::new`], with the text `node` was parsed from (its spans index into `source`),
    /// so `<<-` heredocs are dedented exactly like Terraform does: by the smallest indentation
    /// of their lines, `%{if}`/`%{for}` bodies included, whitespace-only lines ignored.
    pub fn with_source(file: FileId, mut node: Expression, source: &str) -> Self {
        eval::prepare(&mut node, Some(source));
        Expr { file, node: Arc::new(node) }
    }

    pub fn span(&self) -> Option<Span> {
        self.node.span().map(|r| Span::new(self.file, r))
    }
}

/// How the evaluator looks names up.
pub trait Scope {
    /// The value of a reference, or a diagnostic saying why it cannot be had, with a hint. The
    /// evaluator adds the reference's span: as the primary label when the diagnostic has none,
    /// else as a second label (`referenced here`).
    fn resolve(&self, r: &Ref) -> Result<Value, Diagnostic>;

    /// Directory of the module being evaluated, for `file`, `templatefile` and `path.module`.
    fn base_dir(&self) -> &Path;
}
