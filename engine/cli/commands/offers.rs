//! `kiln offers [ACCELERATORS]`: the offerings that satisfy a request, cheapest first, as
//! `sky show-gpus` and `dstack offer` list them.
//!
//! In a directory without configuration: the whole catalog (shipped, refreshed, no user
//! files). In one with configuration: what its providers offer — each provider it declares or
//! uses, configured as every command configures them, answers `Provider::offerings`: a cloud
//! its catalog rows (in the regions it is configured for), owned hardware its free machines at
//! their configured price, the others nothing. The request is the portable grammar's
//! (`kiln_provider::portable::request`), matched by `kiln_catalog::matching::admits`.

use kiln_catalog::matching::admits;
use kiln_catalog::Catalog;
use kiln_provider::offerings::{Offering, Offerings};
use kiln_provider::portable::request::{Request, RequestError};
use kiln_state::State;
use kiln_views::{Format, OfferView, Offers};

use super::catalog::catalog_for;
use super::*;

/// What `kiln offers` was asked.
pub struct OffersOpts {
    pub accelerators: Option<String>,
    pub spot: bool,
    pub cpus: Option<String>,
    pub memory: Option<String>,
    pub region: Option<String>,
    pub provider: Option<String>,
    pub all: bool,
    pub format: Format,
}

/// The request the flags make; a mistake is a usage error naming the flag.
pub(crate) fn request(o: &OffersOpts) -> Result<Request, Failure> {
    let mut m = kiln_value::Map::new();
    if let Some(a) = &o.accelerators {
        let alternatives: Vec<Value> = a.split(',').map(|s| Value::from(s.trim())).collect();
        let v = if alternatives.len() == 1 { alternatives.into_iter().next().expect("one") } else { Value::List(alternatives) };
        m.insert("accelerators".into(), v);
    }
    for (k, v) in [("cpus", &o.cpus), ("memory", &o.memory)] {
        if let Some(v) = v {
            m.insert(k.into(), Value::from(v.as_str()));
        }
    }
    Request::parse(&Value::Map(m)).map_err(|errs| Failure::new(errs.iter().map(usage).collect::<Diagnostics>()))
}

/// A request mistake as a usage error: the flag, the message, the did-you-mean.
fn usage(e: &RequestError) -> Diagnostic {
    let flag = match e.attribute {
        "accelerators" => "ACCELERATORS",
        "cpus" => "--cpus",
        _ => "--memory",
    };
    let mut d = Diagnostic::error("E-CLI-USAGE", format!("{flag}: {}", e.message));
    if let Some(h) = e.diagnostic("E-CLI-USAGE").hint {
        let h = if e.attribute == "accelerators" {
            h.replace(
                "a list of alternatives such as [\"H100:8\", \"A100-80GB:8\"]",
                "alternatives separated by commas such as H100:8,A100-80GB:8",
            )
        } else {
            h
        };
        d = d.hint(h.replace('"', ""));
    }
    d
}

/// One offering and the provider configuration that offers it.
struct Offered {
    provider: String,
    row: Offering,
}

pub(crate) async fn offers(cx: &Ctx, vars: &VarArgs, o: &OffersOpts) -> R {
    let req = request(o)?;
    let (loaded, catalog) = catalog_for(cx, vars)?;
    let (offered, failed) = match &loaded {
        None => (catalog.rows.iter().map(|r| Offered { provider: r.cloud.clone(), row: r.clone() }).collect(), false),
        Some(l) => configured_offers(cx, l, &catalog).await?,
    };
    if let Some(p) = &o.provider {
        known_provider(p, &offered)?;
    }
    let rows: Vec<OfferView> = offered
        .into_iter()
        .filter(|x| o.provider.as_ref().is_none_or(|p| *p == x.provider || *p == x.row.cloud))
        .filter(|x| o.region.as_ref().is_none_or(|r| x.row.region.as_ref().is_none_or(|have| have == r)))
        .filter(|x| admits(&req, &x.row).is_ok())
        .map(|x| view(x, o.spot))
        .collect();
    let mut clouds: Vec<&str> = rows.iter().map(|r| r.cloud.as_str()).collect();
    clouds.sort_unstable();
    clouds.dedup();
    let mut sources: Vec<String> = catalog.sources.iter().filter(|s| clouds.contains(&s.cloud.as_str())).map(ToString::to_string).collect();
    sources.extend(catalog.discounts.iter().filter(|d| clouds.contains(&d.cloud.as_str())).map(|d| format!("discount {}", d.describe())));
    let view = Offers::new(rows, o.all, sources);
    crate::view_plan::print(cx, &view, o.format);
    Ok(if failed { ExitStatus::Error } else { ExitStatus::Success })
}

/// A `--provider` that names nothing offered is a mistake, not an empty answer.
fn known_provider(p: &str, offered: &[Offered]) -> Result<(), Failure> {
    if offered.iter().any(|x| x.provider == p || x.row.cloud == p) {
        return Ok(());
    }
    let mut names: Vec<&str> = offered.iter().flat_map(|x| [x.provider.as_str(), x.row.cloud.as_str()]).collect();
    names.sort_unstable();
    names.dedup();
    let near = names.iter().min_by_key(|n| kiln_diag::edit_distance(p, n)).filter(|n| kiln_diag::edit_distance(p, n) <= 2);
    let hint = match near {
        Some(n) => format!("did you mean `{n}`? The providers offering machines here are {}", names.join(", ")),
        None if names.is_empty() => "no provider offers machines here: declare a cloud's `provider` block, or run kiln offers outside a configuration for the whole catalog".to_string(),
        None => format!("the providers offering machines here are {}", names.join(", ")),
    };
    Err(Diagnostic::error("E-CLI-USAGE", format!("--provider: no provider `{p}` offers machines here")).hint(hint).into())
}

/// What the configuration's providers offer: each provider it declares or uses, configured
/// once, asked for its offerings. Whether one of them failed (its errors are printed; the
/// others' rows are still listed).
async fn configured_offers(cx: &Ctx, l: &Loaded, catalog: &Catalog) -> Result<(Vec<Offered>, bool), Failure> {
    let p = kiln_core::Providers::new();
    super::jobs::configure(cx.dir(), l, &State::default(), &p).await?;
    let mut out = Vec::new();
    let mut failed = false;
    for key in p.keys() {
        let Some(provider) = p.get(&key) else { continue };
        let resp = provider.offerings().await;
        failed |= resp.diagnostics.has_errors();
        cx.printer.diagnostics(&l.config.sources, &resp.diagnostics.with_address(&format!("provider {key}")));
        match resp.offerings {
            Offerings::None => {}
            Offerings::Catalog { cloud, regions } => out.extend(
                catalog
                    .cloud(&cloud)
                    .filter(|r| regions.as_ref().is_none_or(|rs| r.region.as_ref().is_none_or(|have| rs.contains(have))))
                    .map(|r| Offered { provider: key.clone(), row: r.clone() }),
            ),
            Offerings::Owned(rows) => out.extend(rows.into_iter().map(|row| Offered { provider: key.clone(), row })),
        }
    }
    Ok((out, failed))
}

/// The view of one offering, priced spot or on-demand.
fn view(x: Offered, spot: bool) -> OfferView {
    let r = x.row;
    OfferView {
        provider: x.provider,
        price_hourly: r.price(spot),
        cloud: r.cloud,
        instance_type: r.instance_type,
        region: r.region,
        zone: r.zone,
        accelerator_name: r.accelerator.as_ref().map(|a| a.name.clone()),
        accelerator_count: r.accelerator.as_ref().map(|a| a.count),
        accelerator_memory_gib: r.accelerator.as_ref().and_then(|a| a.memory_gib),
        vcpus: r.vcpus,
        memory_gib: r.memory_gib,
        spot,
        available: r.available,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(acc: Option<&str>, cpus: Option<&str>, memory: Option<&str>) -> OffersOpts {
        OffersOpts {
            accelerators: acc.map(Into::into),
            spot: false,
            cpus: cpus.map(Into::into),
            memory: memory.map(Into::into),
            region: None,
            provider: None,
            all: false,
            format: Format::Human,
        }
    }

    #[test]
    fn the_flags_make_the_portable_request() {
        let r = request(&opts(Some("H100:8,A100-80GB:8"), Some("8+"), Some("64+"))).unwrap();
        assert_eq!(r.accelerators.as_ref().map(Vec::len), Some(2));
        assert!(r.cpus.is_some_and(|c| c.at_least && c.value == 8.0));
        assert!(request(&opts(None, Some("4+"), None)).unwrap().accelerators.is_none(), "no ACCELERATORS: CPU-only");
    }

    #[test]
    fn mistakes_are_usage_errors_naming_the_flag() {
        let f = request(&opts(Some("H100x8"), Some("many"), None)).unwrap_err();
        let d: Vec<&Diagnostic> = f.diagnostics().iter().collect();
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|d| d.code == "E-CLI-USAGE"));
        assert!(d[0].summary.starts_with("ACCELERATORS:"), "{}", d[0].summary);
        assert_eq!(d[0].hint.as_deref(), Some("did you mean H100:8?"));
        assert!(d[1].summary.starts_with("--cpus:"), "{}", d[1].summary);
    }
}
