//! The catalog as users see it: layers over the shipped rows, then discounts.
//!
//! 1. The shipped rows ([`Catalog::shipped`]).
//! 2. Files `kiln catalog refresh CLOUD` wrote (`.kiln/catalog/CLOUD.csv`): a refreshed file
//!    replaces that cloud's shipped rows in every region it lists, whole (a refresh is a
//!    complete answer for its regions: a row it no longer lists there is gone); the regions a
//!    refresh did not read keep their shipped rows. A file with a row without a region (a
//!    cloud without regions) replaces the cloud's rows everywhere.
//! 3. The user's files (`catalog { path = ... }`), in order: a row with the same cloud,
//!    instance type, region and zone as one before replaces it; any other row is added.
//! 4. Discounts ([`crate::discount`]) on the result.
//!
//! Everything here takes texts and values; reading the files is the caller's (kiln-ops).
//! Every [`Source`] is kept, one per cloud of each file, so output can say where prices came
//! from.

use std::collections::HashMap;
use std::fmt;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::offerings::Offering;

use crate::discount::{self, Discount};
use crate::{csv, Catalog};

/// A catalog file's text and the name errors and sources give it (its path, or
/// `shipped:aws.csv`).
#[derive(Debug, Clone, Copy)]
pub struct Text<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// What goes over the shipped catalog, as values.
#[derive(Debug, Clone, Default)]
pub struct Layers<'a> {
    /// Files `kiln catalog refresh` wrote, each with the cloud it is for (its file name).
    pub refreshed: Vec<(String, Text<'a>)>,
    /// The user's files, in the order given (a later row wins).
    pub user: Vec<Text<'a>>,
    pub discounts: Vec<Discount>,
}

/// Which layer a cloud's rows came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Shipped,
    Refreshed,
    User,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Shipped => "shipped",
            Origin::Refreshed => "refreshed",
            Origin::User => "user",
        })
    }
}

/// Where some of a cloud's rows came from: one per cloud of each file read.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub cloud: String,
    pub origin: Origin,
    /// The file as [`Text::name`] names it.
    pub file: String,
    /// The file's `# source:` note (the shipped files': the extract's).
    pub note: Option<String>,
    /// The file's `# date:`.
    pub date: Option<String>,
    /// How many of this cloud's rows the file gave.
    pub rows: usize,
}

impl fmt::Display for Source {
    /// `aws: refreshed .kiln/catalog/aws.csv (EC2 API ..., 2026-12-07), 250 rows`; the shipped
    /// files without their name (`aws: shipped (skypilot-org/..., 2026-11-25), 244 rows`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.cloud, self.origin)?;
        if self.origin != Origin::Shipped {
            write!(f, " {}", self.file)?;
        }
        let about: Vec<&str> = [self.note.as_deref(), self.date.as_deref()].into_iter().flatten().collect();
        if !about.is_empty() {
            write!(f, " ({})", about.join(", "))?;
        }
        write!(f, ", {} row{}", self.rows, if self.rows == 1 { "" } else { "s" })
    }
}

/// The sources of `file`'s rows: one per cloud, in the order the clouds first appear.
pub(crate) fn sources_of(file: &csv::File, name: &str, origin: Origin) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    for r in &file.rows {
        match out.iter_mut().find(|s| s.cloud == r.cloud) {
            Some(s) => s.rows += 1,
            None => out.push(Source {
                cloud: r.cloud.clone(),
                origin,
                file: name.to_string(),
                note: file.source.clone(),
                date: file.date.clone(),
                rows: 1,
            }),
        }
    }
    out
}

/// What makes two rows the same offering: a later layer's row with it replaces the earlier.
type Key = (String, String, Option<String>, Option<String>);

fn key(o: &Offering) -> Key {
    (o.cloud.clone(), o.instance_type.clone(), o.region.clone(), o.zone.clone())
}

/// `base` with `layers` over it. Every broken file and discount is reported, not only the
/// first; a discount's error names its setting as `discount[I].NAME` (`I`: its index in
/// [`Layers::discounts`]), for the caller to point at its block.
pub fn layer(base: &Catalog, layers: &Layers<'_>) -> Result<Catalog, Diagnostics> {
    let mut errors = Diagnostics::new();
    let mut out = base.clone();
    for (cloud, t) in &layers.refreshed {
        match refreshed(cloud, t) {
            Ok((rows, source)) => {
                let regions: Option<Vec<&str>> = rows.iter().map(|r| r.region.as_deref()).collect();
                let replaced = |r: &Offering| {
                    r.cloud == *cloud && regions.as_ref().is_none_or(|rs| r.region.as_deref().is_some_and(|x| rs.contains(&x)))
                };
                out.rows.retain(|r| !replaced(r));
                // A source whose rows are all replaced goes; one left with some keeps its line.
                out.sources.retain(|s| s.cloud != *cloud || out.rows.iter().any(|r| r.cloud == *cloud));
                out.rows.extend(rows);
                out.sources.push(source);
            }
            Err(e) => errors.push(e),
        }
    }
    let mut index: HashMap<Key, usize> = HashMap::new();
    for (i, r) in out.rows.iter().enumerate() {
        index.entry(key(r)).or_insert(i);
    }
    for t in &layers.user {
        let file = match csv::parse(t.name, t.text) {
            Ok(f) => f,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        out.sources.extend(sources_of(&file, t.name, Origin::User));
        for row in file.rows {
            match index.get(&key(&row)) {
                Some(&i) => out.rows[i] = row,
                None => {
                    index.insert(key(&row), out.rows.len());
                    out.rows.push(row);
                }
            }
        }
    }
    errors.extend(discount::check(&layers.discounts));
    for (i, d) in layers.discounts.iter().enumerate() {
        errors.extend(unknown_target(&out, i, d));
    }
    if errors.has_errors() {
        return Err(errors);
    }
    discount::apply(&mut out.rows, &layers.discounts);
    out.discounts = layers.discounts.clone();
    Ok(out)
}

/// A refreshed file's rows, all of `cloud`, and its source.
fn refreshed(cloud: &str, t: &Text<'_>) -> Result<(Vec<Offering>, Source), Diagnostic> {
    let file = csv::parse(t.name, t.text)?;
    if let Some(n) = file.rows.iter().position(|r| r.cloud != cloud) {
        return Err(Diagnostic::error(
            "E-CATALOG",
            format!("{}:{}:1: a row of cloud `{}` in the refreshed catalog of `{cloud}`", t.name, data_line(t.text, n), file.rows[n].cloud),
        )
        .hint(format!("this file holds `{cloud}`'s rows only: run `kiln catalog refresh {cloud}` again, or move the row to a `catalog` file of your own")));
    }
    let source = Source {
        cloud: cloud.to_string(),
        origin: Origin::Refreshed,
        file: t.name.to_string(),
        note: file.source.clone(),
        date: file.date.clone(),
        rows: file.rows.len(),
    };
    Ok((file.rows, source))
}

/// The 1-based line of the `n`-th data row of a catalog file (after comments, blank lines
/// and the header), as [`csv::parse`] counts them.
fn data_line(text: &str, n: usize) -> usize {
    text.lines().enumerate().filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty()).nth(n + 1).map_or(1, |(i, _)| i + 1)
}

/// A discount for a cloud, or a type, the catalog has no rows of: a typo that would
/// otherwise change nothing. The error names `discount[i].cloud` or `.instance_type`.
fn unknown_target(c: &Catalog, i: usize, d: &Discount) -> Option<Diagnostic> {
    if c.cloud(&d.cloud).next().is_none() {
        return Some(
            Diagnostic::error("E-CATALOG-DISCOUNT", format!("a discount for cloud `{}`, which the catalog has no rows of", d.cloud))
                .attribute(format!("discount[{i}].cloud"))
                .hint(format!("the catalog's clouds are {}", c.clouds().join(", "))),
        );
    }
    let t = d.instance_type.as_ref()?;
    if c.cloud(&d.cloud).any(|r| r.instance_type == *t) {
        return None;
    }
    Some(
        Diagnostic::error(
            "E-CATALOG-DISCOUNT",
            format!("a discount for `{}` instance type `{t}`, which the catalog does not list", d.cloud),
        )
        .attribute(format!("discount[{i}].instance_type"))
        .hint(format!(
            "name one of `{}`'s instance types (`kiln offers --provider {} --all` lists them), or add its rows with a `catalog` file",
            d.cloud, d.cloud
        )),
    )
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use kiln_value::Decimal;

    use super::*;

    const HEAD: &str =
        "cloud,instance_type,accelerator_name,accelerator_count,vcpus,memory_gib,region,availability_zone,price_hourly,spot_price_hourly\n";

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn base() -> Catalog {
        let text = format!(
            "{HEAD}aws,p5.48xlarge,H100,8,192,2048,us-east-1,use1-az4,98.32,36.12\naws,g5.xlarge,A10G,1,4,16,us-east-1,use1-az1,1.006,0.4\nlambda,gpu_8x_h100_sxm5,H100,8,208,1800,us-east-1,,23.92,\n"
        );
        let file = csv::parse("shipped:test.csv", &text).unwrap();
        Catalog { sources: sources_of(&file, "shipped:test.csv", Origin::Shipped), rows: file.rows, discounts: vec![] }
    }

    fn find<'a>(c: &'a Catalog, cloud: &str, ty: &str) -> Vec<&'a Offering> {
        c.rows.iter().filter(|r| r.cloud == cloud && r.instance_type == ty).collect()
    }

    #[test]
    fn a_refreshed_file_replaces_its_clouds_rows_in_its_regions_and_leaves_the_others() {
        let refreshed = format!("# source: EC2 API\n# date: 2026-12-07\n{HEAD}aws,m7i.large,,,2,8,us-east-1,use1-az1,,0.03\n");
        let layers =
            Layers { refreshed: vec![("aws".into(), Text { name: ".kiln/catalog/aws.csv", text: &refreshed })], ..Default::default() };
        let mut shipped = base();
        let west = format!("{HEAD}aws,p5.48xlarge,H100,8,192,2048,us-west-2,usw2-az1,55.04,\n");
        shipped.rows.extend(csv::parse("w", &west).unwrap().rows);
        let c = layer(&shipped, &layers).unwrap();
        let p5: Vec<_> = find(&c, "aws", "p5.48xlarge").iter().map(|r| r.region.as_deref()).collect();
        assert_eq!(p5, [Some("us-west-2")], "us-east-1's shipped rows are replaced whole, us-west-2's stay");
        assert_eq!(find(&c, "aws", "m7i.large")[0].price_hourly, None, "an unknown price stays unknown");
        assert_eq!(find(&c, "lambda", "gpu_8x_h100_sxm5").len(), 1);
        let aws: Vec<String> = c.sources.iter().filter(|s| s.cloud == "aws").map(ToString::to_string).collect();
        assert_eq!(aws.last().map(String::as_str), Some("aws: refreshed .kiln/catalog/aws.csv (EC2 API, 2026-12-07), 1 row"));
        assert_eq!(aws.len(), 2, "the shipped source stays for the regions it still gives: {aws:?}");
        assert_eq!(c.sources.iter().filter(|s| s.cloud == "lambda").count(), 1, "lambda keeps its shipped source");

        let everywhere = format!("{HEAD}aws,m7i.large,,,2,8,us-east-1,,0.1,\naws,x.large,,,2,8,,,0.1,\n");
        let layers = Layers { refreshed: vec![("aws".into(), Text { name: "r.csv", text: &everywhere })], ..Default::default() };
        let c = layer(&shipped, &layers).unwrap();
        assert!(find(&c, "aws", "p5.48xlarge").is_empty(), "a row without a region: the cloud's rows are replaced everywhere");
        assert_eq!(c.sources.iter().filter(|s| s.cloud == "aws").count(), 1);
    }

    #[test]
    fn a_user_row_replaces_the_same_offering_and_other_rows_are_added() {
        let user = format!(
            "# source: our agreement\n{HEAD}aws,p5.48xlarge,H100,8,192,2048,us-east-1,use1-az4,60,\naws,p5.48xlarge,H100,8,192,2048,us-west-2,,61,\nvast,rtx4090,RTX4090,1,16,64,,,0.4,\n"
        );
        let layers = Layers { user: vec![Text { name: "prices.csv", text: &user }], ..Default::default() };
        let c = layer(&base(), &layers).unwrap();
        let p5 = find(&c, "aws", "p5.48xlarge");
        assert_eq!(p5.len(), 2, "us-east-1 replaced, us-west-2 added");
        assert_eq!((p5[0].price_hourly, p5[0].spot_price_hourly), (Some(dec("60")), None), "the user's row whole, spot included");
        assert_eq!(find(&c, "vast", "rtx4090").len(), 1, "a cloud the catalog does not ship");
        let user: Vec<String> = c.sources.iter().filter(|s| s.origin == Origin::User).map(ToString::to_string).collect();
        assert_eq!(user, ["aws: user prices.csv (our agreement), 2 rows", "vast: user prices.csv (our agreement), 1 row"]);
    }

    #[test]
    fn a_later_user_file_wins() {
        let a = format!("{HEAD}lambda,gpu_8x_h100_sxm5,H100,8,208,1800,us-east-1,,20,\n");
        let b = format!("{HEAD}lambda,gpu_8x_h100_sxm5,H100,8,208,1800,us-east-1,,19,\n");
        let layers = Layers { user: vec![Text { name: "a.csv", text: &a }, Text { name: "b.csv", text: &b }], ..Default::default() };
        let c = layer(&base(), &layers).unwrap();
        let rows = find(&c, "lambda", "gpu_8x_h100_sxm5");
        assert_eq!((rows.len(), rows[0].price_hourly), (1, Some(dec("19"))));
    }

    #[test]
    fn discounts_apply_after_every_layer() {
        let user = format!("{HEAD}aws,p5.48xlarge,H100,8,192,2048,us-east-1,use1-az4,60,30\n");
        let layers = Layers {
            user: vec![Text { name: "prices.csv", text: &user }],
            discounts: vec![Discount::new("aws", dec("50"), None).unwrap()],
            ..Default::default()
        };
        let c = layer(&base(), &layers).unwrap();
        let p5 = find(&c, "aws", "p5.48xlarge")[0];
        assert_eq!((p5.price_hourly, p5.spot_price_hourly), (Some(dec("30")), Some(dec("15"))));
        assert_eq!(find(&c, "lambda", "gpu_8x_h100_sxm5")[0].price_hourly, Some(dec("23.92")));
        assert_eq!(c.discounts.len(), 1);
    }

    #[test]
    fn every_broken_file_and_discount_is_reported() {
        let broken = format!("{HEAD}aws,x,,,2,8,us-east-1,,1,\naws,y,,,two,8,us-east-1,,1,\n");
        let other_cloud = format!("# date: d\n{HEAD}aws,m7i.large,,,2,8,us-east-1,,0.1,\n\nlambda,x,,,2,8,,,1,\n");
        let layers = Layers {
            refreshed: vec![("aws".into(), Text { name: ".kiln/catalog/aws.csv", text: &other_cloud })],
            user: vec![Text { name: "mine.csv", text: &broken }],
            discounts: vec![
                Discount::new("azure", dec("10"), None).unwrap(),
                Discount::new("aws", dec("10"), Some("p9.huge".into())).unwrap(),
            ],
        };
        let e = layer(&base(), &layers).unwrap_err();
        let summaries: Vec<&str> = e.iter().map(|d| d.summary.as_str()).collect();
        assert_eq!(summaries.len(), 4, "{summaries:#?}");
        assert!(summaries[0].starts_with(".kiln/catalog/aws.csv:5:1: a row of cloud `lambda`"), "{}", summaries[0]);
        assert!(summaries[1].starts_with("mine.csv:3:9:"), "{}", summaries[1]);
        assert!(summaries[2].contains("cloud `azure`"), "{}", summaries[2]);
        assert!(summaries[3].contains("`p9.huge`"), "{}", summaries[3]);
        assert_eq!(e.iter().nth(2).unwrap().attribute.as_deref(), Some("discount[0].cloud"));
        assert_eq!(e.iter().nth(3).unwrap().attribute.as_deref(), Some("discount[1].instance_type"));
    }
}
