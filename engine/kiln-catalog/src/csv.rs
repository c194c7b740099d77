//! The catalog's file format: one CSV per cloud, the columns of the shipped extract
//! (`data/README.md`), `#` lines before the header for the file's source note and date.
//!
//! ```text
//! # source: EC2 API DescribeInstanceTypes and DescribeSpotPriceHistory, us-east-1
//! # date: 2026-12-07
//! cloud,instance_type,accelerator_name,accelerator_count,vcpus,memory_gib,region,availability_zone,price_hourly,spot_price_hourly
//! aws,p5.48xlarge,H100,8,192,2048,us-east-1,use1-az4,98.32,36.12
//! ```
//!
//! Fields hold no commas or quotes (none of the columns needs them), so a line is its fields
//! split at commas. An empty price is unknown, never 0.

use std::str::FromStr;

use kiln_diag::Diagnostic;
use kiln_provider::offerings::{OfferedAccelerator, Offering};
use kiln_value::Decimal;

/// The header every catalog file has, in this order.
pub const COLUMNS: [&str; 10] = [
    "cloud",
    "instance_type",
    "accelerator_name",
    "accelerator_count",
    "vcpus",
    "memory_gib",
    "region",
    "availability_zone",
    "price_hourly",
    "spot_price_hourly",
];

/// A parsed catalog file: its rows and what its `#` lines say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct File {
    pub rows: Vec<Offering>,
    /// `# source: ...`
    pub source: Option<String>,
    /// `# date: ...`
    pub date: Option<String>,
}

/// Parses a catalog file; `name` is how errors name it (a path, or `shipped:aws.csv`). Every
/// error names `name:line:column` and the column, with what to write instead.
pub fn parse(name: &str, text: &str) -> Result<File, Diagnostic> {
    let mut rows = Vec::new();
    let (source, date) = table(name, text, &COLUMNS, "the catalog's", |lineno, line, fields| {
        rows.push(row(name, lineno, line, fields)?);
        Ok(())
    })?;
    Ok(File { rows, source, date })
}

/// Reads a table of kiln's data files (`#` lines, the header `columns`, then comma-separated
/// rows handed to `row` with their line number): its `# source:` and `# date:`. `what` names
/// the table in the header's error ("the catalog's").
pub(crate) fn table(
    name: &str,
    text: &str,
    columns: &[&str],
    what: &str,
    mut row: impl FnMut(usize, &str, &[&str]) -> Result<(), Diagnostic>,
) -> Result<(Option<String>, Option<String>), Diagnostic> {
    let (mut source, mut date) = (None, None);
    let mut header = false;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = line.trim_end_matches('\r');
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim();
            if let Some(s) = comment.strip_prefix("source:") {
                source = Some(s.trim().to_string());
            } else if let Some(d) = comment.strip_prefix("date:") {
                date = Some(d.trim().to_string());
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if !header {
            if fields != columns {
                return Err(error(name, lineno, 1, format!("the header is not {what} columns"))
                    .hint(format!("the first line that is not a `#` comment must be: {}", columns.join(","))));
            }
            header = true;
            continue;
        }
        row(lineno, line, &fields)?;
    }
    if !header {
        return Err(error(name, 1, 1, "the file has no header").hint(format!("start it with: {}", columns.join(","))));
    }
    Ok((source, date))
}

/// An error at `name:line:col`.
pub(crate) fn error(name: &str, line: usize, col: usize, msg: impl std::fmt::Display) -> Diagnostic {
    Diagnostic::error("E-CATALOG", format!("{name}:{line}:{col}: {msg}"))
}

fn row(name: &str, lineno: usize, line: &str, fields: &[&str]) -> Result<Offering, Diagnostic> {
    if fields.len() != COLUMNS.len() {
        return Err(error(name, lineno, 1, format!("{} fields where the header has {}", fields.len(), COLUMNS.len()))
            .hint("leave a field empty rather than out: `aws,m7i.large,,,2,8,us-east-1,,0.1008,`"));
    }
    // The 1-based column of field `i`, for the error's position.
    let col = |i: usize| line.split(',').take(i).map(|f| f.len() + 1).sum::<usize>() + 1;
    let text = |i: usize| (!fields[i].is_empty()).then(|| fields[i].to_string());
    let number = |i: usize| -> Result<Option<Decimal>, Diagnostic> {
        if fields[i].is_empty() {
            return Ok(None);
        }
        match Decimal::from_str(fields[i]) {
            Ok(d) if !d.is_sign_negative() => Ok(Some(d)),
            _ => Err(error(name, lineno, col(i), format!("`{}` is not a number of at least 0 ({})", fields[i], COLUMNS[i]))
                .hint("write a plain decimal such as 3.06, or leave the field empty when it is unknown")),
        }
    };
    let whole = |i: usize| -> Result<Option<u64>, Diagnostic> {
        if fields[i].is_empty() {
            return Ok(None);
        }
        fields[i].parse::<u64>().map(Some).map_err(|_| {
            error(name, lineno, col(i), format!("`{}` is not a whole number ({})", fields[i], COLUMNS[i])).hint("write a count such as 8")
        })
    };
    let required = |i: usize, v: Option<String>| {
        v.ok_or_else(|| {
            error(name, lineno, col(i), format!("`{}` is empty", COLUMNS[i])).hint("every row names its cloud and instance type")
        })
    };
    let cloud = required(0, text(0))?;
    let instance_type = required(1, text(1))?;
    let accelerator = match (text(2), whole(3)?) {
        (None, None) => None,
        (Some(name), Some(count)) if count > 0 => Some(OfferedAccelerator { name, count, memory_gib: None }),
        (Some(_), _) => {
            return Err(error(name, lineno, col(3), "an accelerator without a count")
                .hint("give accelerator_count (GPUs per machine), or leave both accelerator columns empty for a CPU-only machine"))
        }
        (None, Some(_)) => {
            return Err(error(name, lineno, col(2), "a count without an accelerator name")
                .hint("name the accelerator (H100, A10G, ...), or leave both accelerator columns empty"))
        }
    };
    let vcpus = whole(4)?.ok_or_else(|| error(name, lineno, col(4), "`vcpus` is empty").hint("give the machine's vCPUs"))?;
    let memory_gib =
        number(5)?.ok_or_else(|| error(name, lineno, col(5), "`memory_gib` is empty").hint("give the machine's memory in GiB"))?;
    Ok(Offering {
        cloud,
        instance_type,
        accelerator,
        vcpus,
        memory_gib,
        region: text(6),
        zone: text(7),
        price_hourly: number(8)?,
        spot_price_hourly: number(9)?,
        available: None,
    })
}

/// Writes rows in the catalog's format, with the source note and date first.
pub fn write(rows: &[Offering], source: &str, date: &str) -> String {
    let mut out = format!("# source: {source}\n# date: {date}\n{}\n", COLUMNS.join(","));
    let opt = |d: &Option<Decimal>| d.map(|d| d.normalize().to_string()).unwrap_or_default();
    for r in rows {
        let (an, ac) = match &r.accelerator {
            Some(a) => (a.name.as_str(), a.count.to_string()),
            None => ("", String::new()),
        };
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.cloud,
            r.instance_type,
            an,
            ac,
            r.vcpus,
            r.memory_gib.normalize(),
            r.region.as_deref().unwrap_or(""),
            r.zone.as_deref().unwrap_or(""),
            opt(&r.price_hourly),
            opt(&r.spot_price_hourly),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "cloud,instance_type,accelerator_name,accelerator_count,vcpus,memory_gib,region,availability_zone,price_hourly,spot_price_hourly\n";

    #[test]
    fn rows_round_trip_through_write() {
        let text = format!("# source: a test\n# date: 2026-12-07\n{HEAD}aws,p5.48xlarge,H100,8,192,2048,us-east-1,use1-az4,98.32,\nrunpod,1x_H100_SECURE,H100,1,16,176,,,2.89,2.89\naws,m7i.large,,,2,8,us-east-1,,0.1008,0.04\n");
        let f = parse("t.csv", &text).unwrap();
        assert_eq!(f.rows.len(), 3);
        assert_eq!(f.source.as_deref(), Some("a test"));
        assert_eq!(f.rows[0].spot_price_hourly, None, "an empty price is unknown, not 0");
        assert_eq!(f.rows[1].region, None);
        assert!(f.rows[2].accelerator.is_none());
        let again = parse("t.csv", &write(&f.rows, "a test", "2026-12-07")).unwrap();
        assert_eq!(again, f);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("my.csv", &format!("{HEAD}aws,p5.48xlarge,H100,8,192,2048,us-east-1,,abc,\n")).unwrap_err();
        assert!(e.summary.starts_with("my.csv:2:44:"), "{}", e.summary);
        assert!(e.summary.contains("price_hourly"), "{}", e.summary);
        let e = parse("my.csv", "instance_type,cloud\n").unwrap_err();
        assert!(e.summary.contains("header"), "{}", e.summary);
        let e = parse("my.csv", &format!("{HEAD}aws,x,H100,,1,1,,,1,\n")).unwrap_err();
        assert!(e.summary.contains("without a count"), "{}", e.summary);
        let e = parse("my.csv", &format!("{HEAD}aws,x,,,1,1\n")).unwrap_err();
        assert!(e.summary.contains("6 fields"), "{}", e.summary);
        let e = parse("my.csv", &format!("{HEAD}aws,x,,,1,1,,,-2,\n")).unwrap_err();
        assert!(e.summary.contains("at least 0"), "{}", e.summary);
    }
}
