//! Finds block labels written as bare identifiers (`resource aws_s3_bucket b {`),
//! which the formatter rewrites as quoted strings like `terraform fmt` does.

use std::collections::HashSet;

use hcl_edit::structure::{BlockLabel, Body};
use hcl_edit::Span;

/// Byte offsets (in the parsed source) where an identifier block label starts.
pub(crate) fn ident_label_offsets(body: &Body) -> HashSet<usize> {
    let mut out = HashSet::new();
    collect(body, &mut out);
    out
}

fn collect(body: &Body, out: &mut HashSet<usize>) {
    for block in body.blocks() {
        for label in &block.labels {
            if let BlockLabel::Ident(ident) = label {
                if let Some(span) = ident.span() {
                    out.insert(span.start);
                }
            }
        }
        collect(&block.body, out);
    }
}
