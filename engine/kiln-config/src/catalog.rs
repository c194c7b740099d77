//! The `catalog { ... }` block (issue 14): the user's catalog files and negotiated discounts
//! beside the catalog kiln ships. At most one, in the root module; its attributes stay
//! unevaluated expressions (kiln-ops' catalog evaluates them), literals type-checked here.

use hcl_edit::structure::Block;
use kiln_diag::{Diagnostic, Diagnostics};

use crate::load::{suggest, Parser};
use crate::model::*;
use crate::policy::{literal_number, literal_type, Want};

impl Parser<'_> {
    pub(crate) fn catalog(&self, b: &Block, module: &mut Module, diags: &mut Diagnostics) {
        let span = self.header_span(b);
        if let Some(prev) = &module.catalog {
            diags.push(
                Diagnostic::error("E-DUPLICATE", "more than one `catalog` block")
                    .at(span, "second block")
                    .also(prev.span.clone(), "first block")
                    .hint("merge them into one: `path` takes a list of files, and a catalog holds any number of `discount` blocks"),
            );
            return;
        }
        let body = self.body(&b.body, diags);
        let mut catalog = CatalogBlock { path: None, discounts: Vec::new(), span };
        for a in &body.attrs {
            if a.name != "path" {
                diags.push(self.unknown_attr(a, &a.name, "catalog", &["path"]));
                continue;
            }
            match literal_type(&a.expr.node) {
                Some("string" | "null") | None => {}
                Some("list") => self.check_literal(a, Want::Strings, "catalog", diags),
                Some(t) => diags.push(
                    Diagnostic::error(
                        "E-CONFIG-TYPE",
                        format!("`path` in a `catalog` block must be a file or a list of files, found a {t}"),
                    )
                    .or_at(a.expr.span())
                    .hint("write path = \"prices.csv\" or path = [\"a.csv\", \"b.csv\"]"),
                ),
            }
            catalog.path = Some(a.clone());
        }
        for nb in &body.blocks {
            if nb.ident != "discount" {
                diags.push(
                    Diagnostic::error("E-UNKNOWN-BLOCK", format!("unknown block `{}` in a catalog", nb.ident))
                        .at(nb.span.clone(), "here")
                        .hint(suggest(&nb.ident, &["discount"])),
                );
                continue;
            }
            if let Some(d) = self.discount(nb, diags) {
                catalog.discounts.push(d);
            }
        }
        module.catalog = Some(catalog);
    }

    fn discount(&self, nb: &NestedBlock, diags: &mut Diagnostics) -> Option<DiscountBlock> {
        const EXAMPLE: &str =
            "write discount { cloud = \"aws\", percent = 30 }, with instance_type = \"p5.48xlarge\" for one instance type";
        if !nb.labels.is_empty() {
            diags.push(Diagnostic::error("E-BLOCK-LABELS", "a `discount` block takes no labels").at(nb.span.clone(), "here").hint(EXAMPLE));
        }
        for a in &nb.body.attrs {
            match a.name.as_str() {
                "cloud" | "instance_type" => self.check_literal(a, Want::Text, "discount", diags),
                "percent" => {
                    self.check_literal(a, Want::Amount, "discount", diags);
                    if let Some(n) = literal_number(&a.expr.node).filter(|n| *n > 100.0) {
                        diags.push(
                            Diagnostic::error("E-CONFIG-TYPE", format!("`percent` in a `discount` block is at most 100, found {n}"))
                                .or_at(a.expr.span())
                                .hint("write the discount off the catalog price, such as percent = 30"),
                        );
                    }
                }
                other => diags.push(self.unknown_attr(a, other, "discount", &["cloud", "percent", "instance_type"])),
            }
        }
        for b in &nb.body.blocks {
            diags.push(
                Diagnostic::error("E-UNKNOWN-BLOCK", format!("unexpected block `{}` in a discount", b.ident))
                    .at(b.span.clone(), "here")
                    .hint("a discount holds cloud, percent and instance_type"),
            );
        }
        let (cloud, percent) = (nb.body.attr("cloud"), nb.body.attr("percent"));
        let (Some(cloud), Some(percent)) = (cloud, percent) else {
            let missing: Vec<&str> =
                [("cloud", cloud.is_none()), ("percent", percent.is_none())].into_iter().filter(|(_, m)| *m).map(|(n, _)| n).collect();
            diags.push(
                Diagnostic::error(
                    "E-CATALOG-DISCOUNT",
                    format!("a `discount` block needs `cloud` and `percent`: `{}` is missing", missing.join("` and `")),
                )
                .at(nb.span.clone(), "here")
                .hint(EXAMPLE),
            );
            return None;
        };
        Some(DiscountBlock {
            cloud: cloud.clone(),
            percent: percent.clone(),
            instance_type: nb.body.attr("instance_type").cloned(),
            span: nb.span.clone(),
        })
    }
}
