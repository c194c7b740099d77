//! The catalog a command reads: the rows kiln ships, the files `kiln catalog refresh` wrote
//! under `.kiln/catalog/`, and the configuration's `catalog` block (the user's files and
//! discounts), layered by [`kiln_catalog::layers`].
//!
//! The block is evaluated before anything is planned, as the `backend` block is: root
//! variables, `path.*` and functions ([`RootVars`]). Relative paths are relative to the root
//! module's directory; `.kiln/catalog/` is the command's directory's. This module reads the
//! files (errors name the path) and points every error of the block at its attribute.

use std::path::{Path, PathBuf};

use kiln_catalog::{Catalog, Discount, Layers, Text};
use kiln_config::{Attr, Config};
use kiln_diag::{Diagnostic, Diagnostics, Span};
use kiln_value::Value;

use crate::vars::{EarlyBlock, RootVars};

/// Where `kiln catalog refresh` writes, under the command's directory.
pub const REFRESHED_DIR: &str = ".kiln/catalog";

/// The `catalog` block, for the resolver's messages.
const CATALOG_BLOCK: EarlyBlock = EarlyBlock {
    what: "`catalog` block",
    code: "E-CATALOG-REF",
    why: "the catalog is read before anything is planned",
    hint: "catalog settings may use variables (var.NAME), path.* and functions only",
};

/// The `catalog` block, evaluated. No block: no files, no discounts.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The user's catalog files, in the order given (a later file's row wins).
    pub paths: Vec<UserFile>,
    pub discounts: Vec<Discount>,
    /// Where each discount was written, by index, for errors.
    discount_spans: Vec<DiscountSpans>,
}

/// One file of `path`.
#[derive(Debug, Clone)]
pub struct UserFile {
    /// As written (how errors name it).
    pub written: String,
    /// Resolved against the root module's directory.
    pub path: PathBuf,
    /// The `path` attribute's value.
    pub span: Option<Span>,
}

/// The spans of a `discount` block's settings.
#[derive(Debug, Clone)]
struct DiscountSpans {
    block: Span,
    cloud: Option<Span>,
    percent: Option<Span>,
    instance_type: Option<Span>,
}

impl DiscountSpans {
    /// The span of setting `name`, else the block's.
    fn of(&self, name: &str) -> Span {
        let s = match name {
            "cloud" => &self.cloud,
            "percent" => &self.percent,
            "instance_type" => &self.instance_type,
            _ => &None,
        };
        s.clone().unwrap_or_else(|| self.block.clone())
    }
}

/// The value span of `a` (its name's when the expression has none).
fn span_of(a: &Attr) -> Span {
    a.expr.span().unwrap_or_else(|| a.name_span.clone())
}

/// Evaluates the root module's `catalog` block with `vars`; every mistake is reported.
pub fn settings(config: &Config, vars: &RootVars) -> Result<Settings, Diagnostics> {
    let Some(block) = config.root.module.catalog.as_ref() else { return Ok(Settings::default()) };
    let scope = vars.scope(CATALOG_BLOCK);
    let mut diags = Diagnostics::new();
    let mut out = Settings::default();
    if let Some(a) = &block.path {
        let span = span_of(a);
        let written: Vec<String> = match kiln_eval::eval(&a.expr, &scope).map(|v| v.unmarked().clone()) {
            Err(d) => {
                diags.extend(d);
                vec![]
            }
            Ok(Value::Null) => vec![],
            Ok(Value::String(s)) => vec![s.to_string()],
            Ok(Value::List(items)) if items.iter().all(|i| matches!(i.unmarked(), Value::String(_))) => {
                items.iter().filter_map(|i| i.unmarked().as_str().map(str::to_string)).collect()
            }
            Ok(_) => {
                diags.push(
                    Diagnostic::error("E-CATALOG", "`path` in a `catalog` block must be a file or a list of files")
                        .at(span.clone(), "here")
                        .hint("write path = \"prices.csv\" or path = [\"a.csv\", \"b.csv\"]"),
                );
                vec![]
            }
        };
        for w in written {
            let path = vars.root_dir().join(&w);
            out.paths.push(UserFile { written: w, path, span: Some(span.clone()) });
        }
    }
    for d in &block.discounts {
        let spans = DiscountSpans {
            block: d.span.clone(),
            cloud: Some(span_of(&d.cloud)),
            percent: Some(span_of(&d.percent)),
            instance_type: d.instance_type.as_ref().map(span_of),
        };
        let text = |a: &Attr, diags: &mut Diagnostics| match kiln_eval::eval(&a.expr, &scope) {
            Err(e) => {
                diags.extend(e);
                None
            }
            Ok(v) => match v.unmarked() {
                Value::String(s) if !s.trim().is_empty() => Some(s.to_string()),
                _ => {
                    diags.push(
                        Diagnostic::error("E-CATALOG-DISCOUNT", format!("`{}` in a `discount` block must be a name", a.name))
                            .at(span_of(a), "here")
                            .hint("write cloud = \"aws\", and instance_type = \"p5.48xlarge\" for one instance type"),
                    );
                    None
                }
            },
        };
        let cloud = text(&d.cloud, &mut diags);
        let instance_type = match &d.instance_type {
            Some(a) => text(a, &mut diags).map(Some),
            None => Some(None),
        };
        let percent = match kiln_eval::eval(&d.percent.expr, &scope) {
            Err(e) => {
                diags.extend(e);
                None
            }
            Ok(v) => match v.unmarked().as_number() {
                Some(n) => Some(n),
                None => {
                    diags.push(
                        Diagnostic::error("E-CATALOG-DISCOUNT", "`percent` in a `discount` block must be a number")
                            .at(spans.of("percent"), "here")
                            .hint("write the percent off the list price, such as percent = 30"),
                    );
                    None
                }
            },
        };
        let (Some(cloud), Some(percent), Some(instance_type)) = (cloud, percent, instance_type) else { continue };
        match Discount::new(cloud, percent, instance_type) {
            Ok(x) => {
                out.discounts.push(x);
                out.discount_spans.push(spans);
            }
            Err(e) => {
                let at = spans.of(e.attribute.as_deref().unwrap_or(""));
                diags.push(e.or_at(Some(at)));
            }
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(out)
}

/// Where `kiln catalog refresh CLOUD` writes by default: `DIR/.kiln/catalog/CLOUD.csv`.
pub fn refreshed_path(dir: &Path, cloud: &str) -> PathBuf {
    dir.join(REFRESHED_DIR).join(format!("{cloud}.csv"))
}

/// A file read whole, or an error naming it.
fn read_text(path: &Path, name: &str, span: Option<Span>) -> Result<String, Diagnostic> {
    std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::error("E-CATALOG", format!("cannot read the catalog file `{name}`: {e}"))
            .or_at(span)
            .hint("check the path (relative paths are relative to the configuration's directory)")
    })
}

/// The refreshed files under `dir/.kiln/catalog/`: (cloud, name, text), by file name.
fn refreshed_files(dir: &Path) -> Result<Vec<(String, String, String)>, Diagnostics> {
    let root = dir.join(REFRESHED_DIR);
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return Err(Diagnostic::error("E-CATALOG", format!("cannot read `{REFRESHED_DIR}`: {e}"))
                .hint("kiln keeps the catalogs `kiln catalog refresh` wrote there; check its permissions")
                .into())
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".csv") && n.len() > 4)
        .collect();
    names.sort();
    let mut out = Vec::new();
    let mut diags = Diagnostics::new();
    for n in names {
        let name = format!("{REFRESHED_DIR}/{n}");
        match read_text(&root.join(&n), &name, None) {
            Ok(text) => out.push((n.trim_end_matches(".csv").to_string(), name, text)),
            Err(d) => diags.push(d),
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(out)
}

/// The layered catalog of a command running in `dir`: the shipped rows, the refreshed files
/// under `dir/.kiln/catalog/`, then `settings`' files and discounts.
pub fn read(dir: &Path, settings: &Settings) -> Result<Catalog, Diagnostics> {
    let mut diags = Diagnostics::new();
    let refreshed = refreshed_files(dir).unwrap_or_else(|d| {
        diags.extend(d);
        vec![]
    });
    let mut user: Vec<(&str, String)> = Vec::new();
    for f in &settings.paths {
        match read_text(&f.path, &f.written, f.span.clone()) {
            Ok(text) => user.push((f.written.as_str(), text)),
            Err(d) => diags.push(d),
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    let layers = Layers {
        refreshed: refreshed.iter().map(|(cloud, name, text)| (cloud.clone(), Text { name, text })).collect(),
        user: user.iter().map(|(name, text)| Text { name, text }).collect(),
        discounts: settings.discounts.clone(),
    };
    kiln_catalog::layers::layer(Catalog::shipped(), &layers).map_err(|ds| ds.into_iter().map(|d| locate(d, settings)).collect())
}

/// Points an error naming `discount[I].NAME` at that setting of the I-th discount block.
fn locate(d: Diagnostic, settings: &Settings) -> Diagnostic {
    let Some(path) = d.attribute.as_deref().and_then(|a| a.strip_prefix("discount[")) else { return d };
    let Some((index, name)) = path.split_once("].") else { return d };
    match index.parse::<usize>().ok().and_then(|i| settings.discount_spans.get(i)) {
        Some(spans) => {
            let at = spans.of(name);
            d.or_at(Some(at))
        }
        None => d,
    }
}

/// The catalog of a command with configuration `config` (root variables `given`), running in
/// `dir`: its `catalog` block evaluated, the files read and layered.
pub fn for_command(config: &Config, given: &std::collections::BTreeMap<String, Value>, dir: &Path) -> Result<Catalog, Diagnostics> {
    let vars = RootVars::new(config, given, dir);
    read(dir, &settings(config, &vars)?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kiln_value::Decimal;

    use super::*;
    use crate::testing::config;

    const HEAD: &str =
        "cloud,instance_type,accelerator_name,accelerator_count,vcpus,memory_gib,region,availability_zone,price_hourly,spot_price_hourly\n";

    fn catalog(c: &Config, dir: &Path) -> Result<Catalog, Diagnostics> {
        for_command(c, &BTreeMap::new(), dir)
    }

    fn price(c: &Catalog, cloud: &str, ty: &str, region: &str) -> Option<Decimal> {
        c.cloud(cloud).find(|r| r.instance_type == ty && r.region.as_deref() == Some(region)).and_then(|r| r.price_hourly)
    }

    #[test]
    fn no_block_is_the_shipped_catalog() {
        let (dir, c) = config("resource \"record\" \"a\" {}\n");
        assert_eq!(&catalog(&c, dir.path()).unwrap(), Catalog::shipped());
    }

    #[test]
    fn user_files_are_relative_to_the_root_module_and_discounts_apply() {
        let (dir, c) = config(
            "variable \"off\" {\n  default = 50\n}\ncatalog {\n  path = [\"prices/a.csv\"]\n  discount {\n    cloud   = \"lambda\"\n    percent = var.off\n  }\n}\n",
        );
        std::fs::create_dir(dir.path().join("prices")).unwrap();
        std::fs::write(
            dir.path().join("prices/a.csv"),
            format!("# source: ours\n{HEAD}aws,p5.48xlarge,H100,8,192,2048,us-east-1,use1-az5,50,\n"),
        )
        .unwrap();
        let cat = catalog(&c, dir.path()).unwrap();
        assert_eq!(price(&cat, "aws", "p5.48xlarge", "us-east-1"), Some(Decimal::from(50)));
        let shipped = price(Catalog::shipped(), "lambda", "gpu_8x_h100_sxm5", "us-east-1").unwrap();
        assert_eq!(price(&cat, "lambda", "gpu_8x_h100_sxm5", "us-east-1"), Some(shipped / Decimal::from(2)));
        assert!(cat.sources.iter().any(|s| s.to_string() == "aws: user prices/a.csv (ours), 1 row"), "{:?}", cat.sources);
    }

    #[test]
    fn refreshed_files_replace_their_clouds_rows_in_the_regions_they_read() {
        let (dir, c) = config("resource \"record\" \"a\" {}\n");
        let path = refreshed_path(dir.path(), "aws");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("# source: EC2 API\n# date: 2026-12-07\n{HEAD}aws,m7i.large,,,2,8,us-east-1,,0.1008,\n")).unwrap();
        let cat = catalog(&c, dir.path()).unwrap();
        let east: Vec<&str> =
            cat.cloud("aws").filter(|r| r.region.as_deref() == Some("us-east-1")).map(|r| r.instance_type.as_str()).collect();
        assert_eq!(east, ["m7i.large"]);
        let west = |c: &Catalog| c.cloud("aws").filter(|r| r.region.as_deref() == Some("us-west-2")).count();
        assert_eq!(west(&cat), west(Catalog::shipped()), "a region the refresh did not read keeps its shipped rows");
        assert_eq!(cat.cloud("lambda").count(), Catalog::shipped().cloud("lambda").count());
        assert!(cat.sources.iter().any(|s| s.file == ".kiln/catalog/aws.csv" && s.date.as_deref() == Some("2026-12-07")));
    }

    #[test]
    fn errors_name_the_file_and_point_at_the_setting() {
        let (dir, c) = config("catalog {\n  path = \"missing.csv\"\n}\n");
        let e = catalog(&c, dir.path()).unwrap_err();
        let d = e.iter().next().unwrap();
        assert!(d.summary.contains("`missing.csv`"), "{}", d.summary);
        assert!(d.primary.is_some(), "points at `path`");

        let (dir, c) = config("catalog {\n  path = \"bad.csv\"\n}\n");
        std::fs::write(dir.path().join("bad.csv"), format!("{HEAD}aws,x,,,2,8,us-east-1,,cheap,\n")).unwrap();
        let e = catalog(&c, dir.path()).unwrap_err();
        assert!(e.iter().next().unwrap().summary.starts_with("bad.csv:2:"), "{:?}", e);

        let (dir, c) = config("catalog {\n  discount {\n    cloud   = \"awz\"\n    percent = 10\n  }\n}\n");
        let e = catalog(&c, dir.path()).unwrap_err();
        let d = e.iter().next().unwrap();
        assert!(d.summary.contains("`awz`") && d.primary.is_some(), "{d:?}");
        assert_eq!(
            c.sources.text(d.primary.as_ref().unwrap().span.file).get(d.primary.as_ref().unwrap().span.range.clone()),
            Some("\"awz\"")
        );
    }

    #[test]
    fn a_percent_out_of_range_points_at_percent() {
        let (dir, c) =
            config("variable \"p\" {\n  default = 100\n}\ncatalog {\n  discount {\n    cloud   = \"aws\"\n    percent = var.p\n  }\n}\n");
        let e = catalog(&c, dir.path()).unwrap_err();
        let d = e.iter().next().unwrap();
        assert_eq!(d.code, "E-CATALOG-DISCOUNT");
        let at = d.primary.as_ref().unwrap();
        assert_eq!(c.sources.text(at.span.file).get(at.span.range.clone()), Some("var.p"));
    }
}
