//! `kiln catalog` (where each cloud's rows come from) and `kiln catalog refresh CLOUD` (a
//! cloud's rows read from its API into `.kiln/catalog/CLOUD.csv`), and the catalog every
//! catalog command reads ([`catalog_for`]): the shipped rows, the refreshed files, and in a
//! directory with configuration its `catalog` block (kiln-ops' `catalog`).

use std::path::{Path, PathBuf};

use kiln_catalog::Catalog;
use kiln_provider::offerings::Offering;
use kiln_state::State;

use super::*;

/// Whether `dir` holds a configuration (any `*.kiln.hcl` file, broken or not).
pub(crate) fn configured(dir: &Path) -> bool {
    let (_, diags) = kiln_config::load(dir);
    !diags.iter().any(|d| d.code == "E-CONFIG-EMPTY")
}

/// The configuration of `dir` when it has one (its errors stop the command), and the catalog
/// the command reads there.
pub(crate) fn catalog_for(cx: &Ctx, vars: &VarArgs) -> Result<(Option<Loaded>, Catalog), Failure> {
    if !configured(cx.dir()) {
        let c = kiln_ops::catalog::read(cx.dir(), &Default::default())?;
        return Ok((None, c));
    }
    let l = load(cx, vars)?;
    let c = kiln_ops::catalog::for_command(&l.config, &l.vars, cx.dir()).map_err(|d| Failure::in_sources(&l.config.sources, d))?;
    Ok((Some(l), c))
}

/// `kiln catalog [sources]`: one line per cloud of each file the catalog was read from, then
/// the discounts.
pub(crate) async fn sources(cx: &Ctx, vars: &VarArgs) -> R {
    let (_, c) = catalog_for(cx, vars)?;
    for s in &c.sources {
        cx.printer.data(s);
    }
    for d in &c.discounts {
        cx.printer.data(format_args!("discount {}", d.describe()));
    }
    Ok(ExitStatus::Success)
}

/// `kiln catalog refresh CLOUD [--output PATH]`.
pub(crate) async fn refresh(cx: &Ctx, vars: &VarArgs, key: &str, output: Option<&Path>) -> R {
    let provider = configure(cx, vars, key).await?;
    let resp = provider.refresh_catalog().await;
    cx.printer
        .diagnostics(&Default::default(), &kiln_diag::Diagnostics::from_iter(resp.diagnostics.iter().filter(|d| !d.is_error()).cloned()));
    if resp.diagnostics.has_errors() {
        return Err(Failure::new(resp.diagnostics));
    }
    let cloud = if resp.cloud.is_empty() { key.split('.').next().unwrap_or(key).to_string() } else { resp.cloud.clone() };
    let mut rows = resp.rows;
    let fractional = leave_out_fractional(&mut rows);
    if !fractional.is_empty() {
        cx.printer.diagnostics(
            &Default::default(),
            &Diagnostic::warning(
                "W-CATALOG-REFRESH",
                format!("{} row(s) left out: types with part of a GPU, which the catalog cannot express", fractional.len()),
            )
            .detail(fractional.join(", "))
            .into(),
        );
    }
    fill_on_demand(&mut rows, Catalog::shipped());
    let unpriced = rows.iter().filter(|r| r.price_hourly.is_none()).count();
    let (read, regions) = (rows.len(), regions_of(&rows));
    let mut source = format!(
        "{}; on-demand prices the API does not give from the shipped catalog ({}, {})",
        resp.source,
        kiln_catalog::SHIPPED_SOURCE,
        kiln_catalog::SHIPPED_DATE
    );
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let path = output.map(Path::to_path_buf).unwrap_or_else(|| kiln_ops::catalog::refreshed_path(cx.dir(), &cloud));
    let shown = path.strip_prefix(cx.dir()).unwrap_or(&path).display().to_string();
    // A refresh reads the provider's region: the other regions an earlier refresh wrote stay.
    match earlier(&path, &shown, &cloud, &regions) {
        Ok(Some((kept, when))) => {
            source += &format!("; other regions from the refresh of {when}");
            rows.extend(kept);
        }
        Ok(None) => {}
        Err(d) => cx.printer.diagnostics(&Default::default(), &d.into()),
    }
    let text = kiln_catalog::csv::write(&rows, &source, &date);
    // What is written must read back: a row the format cannot hold is a bug, not a file that
    // breaks every later command.
    if let Err(d) = kiln_catalog::csv::parse(&shown, &text) {
        return Err(Diagnostic::error("E-INTERNAL", format!("the refreshed rows do not read back ({}); nothing was written", d.summary))
            .hint("please report it with the provider and region")
            .into());
    }
    write(&path, &text)?;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    cx.printer.data(format_args!(
        "Wrote {read} {cloud} row{} in {} region{} to {shown}; {unpriced} without an on-demand price (unknown, never taken as free).",
        plural(read),
        regions.len(),
        plural(regions.len()),
    ));
    Ok(ExitStatus::Success)
}

/// Leaves out the rows whose accelerator count is 0 (types with a fraction of a GPU, such as
/// AWS's g6f): the catalog counts whole GPUs. Their instance types, once each.
fn leave_out_fractional(rows: &mut Vec<Offering>) -> Vec<String> {
    let mut out: Vec<String> =
        rows.iter().filter(|r| r.accelerator.as_ref().is_some_and(|a| a.count == 0)).map(|r| r.instance_type.clone()).collect();
    out.dedup();
    rows.retain(|r| r.accelerator.as_ref().is_none_or(|a| a.count > 0));
    out
}

/// The regions of `rows`, sorted, once each.
fn regions_of(rows: &[Offering]) -> Vec<String> {
    let mut regions: Vec<String> = rows.iter().filter_map(|r| r.region.clone()).collect();
    regions.sort_unstable();
    regions.dedup();
    regions
}

/// The rows of `cloud` an earlier refresh wrote to `path` in regions other than `regions`, and
/// that refresh's date; `None` when there is no such file or row. A file that does not parse is
/// a warning: the refresh replaces it.
fn earlier(path: &Path, shown: &str, cloud: &str, regions: &[String]) -> Result<Option<(Vec<Offering>, String)>, Diagnostic> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(None) };
    let file = kiln_catalog::csv::parse(shown, &text).map_err(|d| {
        Diagnostic::warning("W-CATALOG-REFRESH", format!("the earlier refresh in `{shown}` does not parse; it is replaced"))
            .detail(d.summary)
    })?;
    let kept: Vec<Offering> =
        file.rows.into_iter().filter(|r| r.cloud == cloud && r.region.as_ref().is_some_and(|x| !regions.contains(x))).collect();
    if kept.is_empty() {
        return Ok(None);
    }
    Ok(Some((kept, file.date.unwrap_or_else(|| "an unknown date".to_string()))))
}

/// The provider `key` configured from its `provider` block, or with the default (empty)
/// configuration where there is none (or no configuration at all).
async fn configure(cx: &Ctx, vars: &VarArgs, key: &str) -> Result<std::sync::Arc<dyn kiln_provider::Provider>, Failure> {
    let reg = registry();
    let name = key.split('.').next().unwrap_or(key);
    if reg.get(name).is_none() {
        let names: Vec<&str> = reg.names().collect();
        return Err(Diagnostic::error("E-CATALOG-REFRESH", format!("no provider `{name}` is built into this kiln"))
            .hint(format!(
                "`kiln catalog refresh` takes a provider that reads its catalog from its API, such as `aws` (this kiln has {})",
                names.join(", ")
            ))
            .into());
    }
    if configured(cx.dir()) {
        let l = load(cx, vars)?;
        let providers = kiln_core::Providers::new();
        let state = State::default();
        let req = providers_request(&l, &state, &reg, &providers, cx.dir());
        return kiln_core::configure_provider(req, key).await.map_err(|d| Failure::in_sources(&l.config.sources, d));
    }
    let factory = reg.get(name).expect("checked above");
    let req = kiln_provider::ConfigureRequest { config: Value::Map(Default::default()), working_dir: cx.dir().to_path_buf() };
    factory.configure(req).await.map_err(Failure::new)
}

/// Fills the on-demand price of every row that has none from the shipped row of the same
/// instance type and region; a row the shipped catalog does not price stays unknown.
pub(crate) fn fill_on_demand(rows: &mut [Offering], shipped: &Catalog) {
    let known: BTreeMap<(&str, &str, Option<&str>), kiln_value::Decimal> = shipped
        .rows
        .iter()
        .filter_map(|r| Some(((r.cloud.as_str(), r.instance_type.as_str(), r.region.as_deref()), r.price_hourly?)))
        .collect();
    for r in rows.iter_mut().filter(|r| r.price_hourly.is_none()) {
        r.price_hourly = known.get(&(r.cloud.as_str(), r.instance_type.as_str(), r.region.as_deref())).copied();
    }
}

/// Writes `text` to `path` whole (a temporary file beside it, then renamed), creating its
/// directory.
fn write(path: &Path, text: &str) -> Result<(), Failure> {
    let fail = |e: std::io::Error| -> Failure {
        Diagnostic::error("E-CATALOG-REFRESH", format!("cannot write `{}`: {e}", path.display()))
            .hint("check that the directory is writable, or give another --output")
            .into()
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut tmp = PathBuf::from(path);
    tmp.set_extension("csv.tmp");
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn on_demand_prices_come_from_the_shipped_row_of_the_same_type_and_region_only() {
        let row = |ty: &str, region: &str, price: Option<&str>| Offering {
            cloud: "aws".into(),
            instance_type: ty.into(),
            accelerator: None,
            vcpus: 1,
            memory_gib: 1.into(),
            region: Some(region.into()),
            zone: Some("use1-az1".into()),
            price_hourly: price.map(|p| kiln_value::Decimal::from_str(p).unwrap()),
            spot_price_hourly: None,
            available: None,
        };
        let mut rows = vec![
            row("p5.48xlarge", "us-east-1", None),
            row("p5.48xlarge", "sa-east-1", None),
            row("made.up", "us-east-1", None),
            row("g5.xlarge", "us-east-1", Some("9")),
        ];
        fill_on_demand(&mut rows, Catalog::shipped());
        let shipped = Catalog::shipped()
            .cloud("aws")
            .find(|r| r.instance_type == "p5.48xlarge" && r.region.as_deref() == Some("us-east-1"))
            .and_then(|r| r.price_hourly);
        assert!(shipped.is_some());
        assert_eq!(rows[0].price_hourly, shipped);
        assert_eq!(rows[1].price_hourly, None, "a region the shipped catalog does not price stays unknown");
        assert_eq!(rows[2].price_hourly, None);
        assert_eq!(rows[3].price_hourly, kiln_value::Decimal::from_str("9").ok(), "the API's price is kept");
    }
}
