//! Whether a catalog row satisfies a request, by the one accelerator name table.
//!
//! A row's accelerator is read from its `accelerator_name` together with its instance type's
//! words, so the variant a cloud spells only in the type name counts: Lambda's
//! `gpu_8x_h100_sxm5` is an `H100-SXM`, `gpu_1x_h100_pcie` an `H100-PCIe`; RunPod's `H100-SXM`
//! is one by name; AWS's `p5` types are SXM parts its catalog rows call `H100`. A family name
//! (`H100`, `A10`) admits every variant of the family (`A10` admits AWS's `A10G`); a named
//! variant admits only itself. Counts are exact per machine (SkyPilot's `H100:8`); `cpus` and
//! `memory` are exact or at least (`"8+"`). Owned hardware's rows (`available` set) are free
//! capacity a node takes part of: fewer GPUs than the row has, and CPUs and memory up to its
//! own (priced as the whole row: never less than it costs). A request with no accelerators admits only
//! machines without any: a CPU-only job never lands on a GPU machine.

use kiln_provider::offerings::Offering;
use kiln_provider::portable::accelerators::{classify, Model};
use kiln_provider::portable::request::Request;
use kiln_value::Decimal;

/// Instance-type prefixes whose catalog rows name only the family of a known variant.
const VARIANTS: [(&str, &str); 3] = [("p5.", "H100-SXM"), ("p5e.", "H200-SXM"), ("p5en.", "H200-SXM")];

/// The table entry of a row's accelerator, variant included where the row tells it.
pub fn model_of(o: &Offering) -> Option<&'static Model> {
    let a = o.accelerator.as_ref()?;
    let memory_mib = a.memory_gib.and_then(|g| (g * Decimal::from(1024)).trunc().to_string().parse::<u64>().ok());
    let device = match VARIANTS.iter().find(|(prefix, _)| o.instance_type.starts_with(prefix)) {
        Some((_, variant)) => variant.to_string(),
        None => format!("{} {}", a.name, o.instance_type),
    };
    classify(&device, memory_mib).or_else(|| classify(&a.name, memory_mib))
}

/// Why a row does not satisfy a request (for the optimizer's "closest offerings" and
/// `kiln offers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The request asks for GPUs the row does not have at all.
    NoAccelerator,
    /// The row has GPUs and the request asks for none.
    HasAccelerator,
    /// Other GPUs than any alternative asks for.
    Accelerator,
    /// The right GPUs, another count per machine (the row's count).
    Count(u64),
    Cpus,
    Memory,
}

/// Which alternative of the request's `accelerators` a row satisfies (its index: 0 is the
/// preferred one; 0 too for a CPU-only request), or why it satisfies none.
pub fn admits(req: &Request, o: &Offering) -> Result<usize, Mismatch> {
    admits_as(req, o, || model_of(o))
}

/// [`admits`] with the row's table entry from `model` (asked only when both the request and
/// the row have accelerators): a caller deciding many requests over the same rows reads each
/// row's entry once ([`model_of`] reads its names word by word).
pub fn admits_as(req: &Request, o: &Offering, model: impl FnOnce() -> Option<&'static Model>) -> Result<usize, Mismatch> {
    // Owned hardware's rows are its free capacity: a node may take part of it.
    let owned = o.available.is_some();
    let alternative = match (&req.accelerators, &o.accelerator) {
        (None, Some(_)) => return Err(Mismatch::HasAccelerator),
        (None, None) => 0,
        (Some(_), None) => return Err(Mismatch::NoAccelerator),
        (Some(alts), Some(have)) => {
            let model = model();
            let same_kind = |a: &kiln_provider::portable::request::Accelerator| match (a.name.model, model) {
                (Some(_), Some(m)) => a.name.admits(m),
                (None, _) => a.matches(&format!("{} {}", have.name, o.instance_type), None),
                (Some(_), None) => false,
            };
            let mut count_off = None;
            let mut found = None;
            for (i, a) in alts.iter().enumerate() {
                if same_kind(a) {
                    if a.count == have.count || (owned && a.count <= have.count) {
                        found = Some(i);
                        break;
                    }
                    count_off = Some(have.count);
                }
            }
            match (found, count_off) {
                (Some(i), _) => i,
                (None, Some(n)) => return Err(Mismatch::Count(n)),
                (None, None) => return Err(Mismatch::Accelerator),
            }
        }
    };
    let f = |d: Decimal| d.mantissa() as f64 / 10f64.powi(d.scale() as i32);
    let fits = |a: &kiln_provider::portable::request::Amount, have: f64| if owned { a.fits_in(have) } else { a.admits(have) };
    if req.cpus.is_some_and(|c| !fits(&c, o.vcpus as f64)) {
        return Err(Mismatch::Cpus);
    }
    if req.memory.is_some_and(|m| !fits(&m, f(o.memory_gib))) {
        return Err(Mismatch::Memory);
    }
    Ok(alternative)
}

#[cfg(test)]
mod tests {
    use kiln_provider::offerings::OfferedAccelerator;
    use kiln_value::Value;

    use super::*;

    fn row(cloud: &str, ty: &str, acc: Option<(&str, u64)>, vcpus: u64, mem: i64) -> Offering {
        Offering {
            cloud: cloud.into(),
            instance_type: ty.into(),
            accelerator: acc.map(|(n, c)| OfferedAccelerator { name: n.into(), count: c, memory_gib: None }),
            vcpus,
            memory_gib: mem.into(),
            region: None,
            zone: None,
            price_hourly: None,
            spot_price_hourly: None,
            available: None,
        }
    }

    fn req(acc: &str, cpus: Option<&str>, mem: Option<&str>) -> Request {
        let mut m = kiln_value::Map::new();
        if !acc.is_empty() {
            m.insert("accelerators".into(), Value::from(acc));
        }
        if let Some(c) = cpus {
            m.insert("cpus".into(), Value::from(c));
        }
        if let Some(x) = mem {
            m.insert("memory".into(), Value::from(x));
        }
        Request::parse(&Value::Map(m)).unwrap()
    }

    #[test]
    fn families_admit_their_variants_and_variants_only_themselves() {
        let lambda_sxm = row("lambda", "gpu_8x_h100_sxm5", Some(("H100", 8)), 208, 1800);
        let lambda_pcie = row("lambda", "gpu_1x_h100_pcie", Some(("H100", 1)), 26, 200);
        let runpod_sxm = row("runpod", "8x_H100-SXM_SECURE", Some(("H100-SXM", 8)), 160, 1000);
        let aws_p5 = row("aws", "p5.48xlarge", Some(("H100", 8)), 192, 2048);
        let aws_a10g = row("aws", "g5.xlarge", Some(("A10G", 1)), 4, 16);
        for r in [&lambda_sxm, &runpod_sxm, &aws_p5] {
            assert_eq!(admits(&req("H100:8", None, None), r), Ok(0), "{}", r.instance_type);
            assert_eq!(admits(&req("H100-SXM:8", None, None), r), Ok(0), "{}", r.instance_type);
        }
        assert_eq!(admits(&req("H100-PCIe:1", None, None), &lambda_pcie), Ok(0));
        assert_eq!(admits(&req("H100-SXM:1", None, None), &lambda_pcie), Err(Mismatch::Accelerator));
        assert_eq!(admits(&req("H100:1", None, None), &lambda_sxm), Err(Mismatch::Count(8)));
        assert_eq!(admits(&req("A10:1", None, None), &aws_a10g), Ok(0), "A10 is the family of AWS's A10G");
        assert_eq!(admits(&req("A10G:1", None, None), &aws_a10g), Ok(0));
    }

    #[test]
    fn memory_parts_are_different_parts() {
        let a100_80 = row("lambda", "gpu_8x_a100_80gb_sxm4", Some(("A100-80GB", 8)), 240, 1800);
        let a100_40 = row("lambda", "gpu_8x_a100", Some(("A100", 8)), 124, 1800);
        assert_eq!(admits(&req("A100:8", None, None), &a100_80), Err(Mismatch::Accelerator));
        assert_eq!(admits(&req("A100-80GB:8", None, None), &a100_80), Ok(0));
        assert_eq!(admits(&req("A100:8", None, None), &a100_40), Ok(0));
    }

    #[test]
    fn cpu_requests_never_land_on_gpu_machines_and_amounts_hold() {
        let gpu = row("aws", "g5.xlarge", Some(("A10G", 1)), 4, 16);
        let cpu = row("aws", "m7i.xlarge", None, 4, 16);
        assert_eq!(admits(&req("", Some("4+"), None), &gpu), Err(Mismatch::HasAccelerator));
        assert_eq!(admits(&req("", Some("4+"), Some("16")), &cpu), Ok(0));
        assert_eq!(admits(&req("", Some("8+"), None), &cpu), Err(Mismatch::Cpus));
        assert_eq!(admits(&req("", None, Some("32+")), &cpu), Err(Mismatch::Memory));
        assert_eq!(admits(&req("A10G:1", None, None), &cpu), Err(Mismatch::NoAccelerator));
    }

    #[test]
    fn owned_rows_are_capacity_a_node_takes_part_of() {
        let mut host = row("onprem", "gpu-01", Some(("H100", 4)), 32, 256);
        host.available = Some(1);
        assert_eq!(admits(&req("H100:2", Some("8"), Some("64")), &host), Ok(0));
        assert_eq!(admits(&req("H100:8", None, None), &host), Err(Mismatch::Count(4)));
        let cloud = row("aws", "p5.48xlarge", Some(("H100", 8)), 192, 2048);
        assert_eq!(admits(&req("H100:4", None, None), &cloud), Err(Mismatch::Count(8)), "a cloud machine is taken whole");
    }

    #[test]
    fn alternatives_report_which_one_matched() {
        let mut m = kiln_value::Map::new();
        m.insert("accelerators".into(), Value::List(vec![Value::from("H100:8"), Value::from("A100-80GB:8")]));
        let r = Request::parse(&Value::Map(m)).unwrap();
        let a100 = row("aws", "p4de.24xlarge", Some(("A100-80GB", 8)), 96, 1152);
        assert_eq!(admits(&r, &a100), Ok(1));
    }
}
