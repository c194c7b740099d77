//! The one accelerator name table: what `accelerators = "NAME:COUNT"` may name, and which devices
//! each name matches, on every provider.
//!
//! Names are the catalog's (SkyPilot's: `H100`, `H100-SXM`, `A100`, `A100-80GB`, `A10G`, ...),
//! case-insensitive, plus a few aliases (`A100-40GB`, `RTX-4090`). A *family* name matches every
//! variant of the family unless a variant is named: `H100` matches `H100-SXM`, `H100-PCIe` and
//! `H100-NVL`; `A10` matches `A10G`. Memory sizes are different parts, not variants: `A100` is the
//! 40 GB part and `A100-80GB` the 80 GB one (likewise `V100` and `V100-32GB`).
//!
//! Devices are named however their source prints them: nvidia-smi ("NVIDIA H100 80GB HBM3",
//! "NVIDIA A100-SXM4-80GB"), rocm-smi ("AMD Instinct MI300X"), Slurm GRES types
//! ("nvidia_h100_80gb_hbm3", "a100"), EC2's DescribeInstanceTypes ("A100" and the GPU memory).
//! [`classify`] reads such a name into a table entry; [`Requested::matches`] decides.
//!
//! A name outside the table is an error when it is close to a table name ("H1000": did you mean
//! "H100"?); otherwise it is taken as a site's own name (a Slurm GRES type such as "kilngpu", a
//! GPU the table lacks) and matches a device whose name has it as consecutive words.

/// One entry of the table: a part as the catalog names it.
#[derive(Debug, PartialEq, Eq)]
pub struct Model {
    /// The catalog's name, such as `H100-SXM`.
    pub name: &'static str,
    /// The family a family name matches (`H100` for `H100-PCIe`); the name itself otherwise.
    pub family: &'static str,
    /// Other ways users write it (upper case), such as `A100-40GB`.
    pub aliases: &'static [&'static str],
    /// Words a device name has when it is this part (every word of one alternative).
    keys: &'static [&'static [&'static str]],
}

macro_rules! model {
    ($name:expr, $family:expr, [$($alias:expr),*], [$([$($key:expr),+]),+]) => {
        Model { name: $name, family: $family, aliases: &[$($alias),*], keys: &[$(&[$($key),+]),+] }
    };
}

/// The table. Order matters for [`classify`]: the more specific entry of a family comes first.
pub static MODELS: &[Model] = &[
    // NVIDIA data center
    model!("H100-NVL", "H100", [], [["H100", "NVL"]]),
    model!("H100-PCIe", "H100", ["H100-PCIE"], [["H100", "PCIE"]]),
    model!("H100-SXM", "H100", ["H100-SXM5"], [["H100", "SXM"], ["H100", "SXM5"], ["H100", "HBM3"]]),
    model!("H100", "H100", ["H100-80GB"], [["H100"]]),
    model!("H200-NVL", "H200", [], [["H200", "NVL"]]),
    model!("H200-SXM", "H200", [], [["H200", "SXM"], ["H200", "HBM3E"]]),
    model!("H200", "H200", [], [["H200"]]),
    model!("GH200", "GH200", [], [["GH200"]]),
    model!("B300", "B300", [], [["B300"]]),
    model!("B200", "B200", [], [["B200"]]),
    model!("GB200", "GB200", [], [["GB200"]]),
    model!("B100", "B100", [], [["B100"]]),
    model!("H800", "H800", [], [["H800"]]),
    model!("A100-80GB", "A100-80GB", ["A100-80G", "A100-SXM4-80GB", "A100-PCIE-80GB"], [["A100", "80GB"], ["A100", "80G"]]),
    model!("A100", "A100", ["A100-40GB", "A100-40G", "A100-SXM4-40GB", "A100-PCIE-40GB"], [["A100"]]),
    model!("A800", "A800", [], [["A800"]]),
    model!("A10G", "A10", [], [["A10G"]]),
    model!("A10", "A10", [], [["A10"]]),
    model!("A2", "A2", [], [["A2"]]),
    model!("A16", "A16", [], [["A16"]]),
    model!("A30", "A30", [], [["A30"]]),
    model!("A40", "A40", [], [["A40"]]),
    model!("L40S", "L40S", [], [["L40S"]]),
    model!("L40", "L40", [], [["L40"]]),
    model!("L4", "L4", [], [["L4"]]),
    model!("T4G", "T4G", [], [["T4G"]]),
    model!("T4", "T4", [], [["T4"]]),
    model!("V100-32GB", "V100-32GB", ["V100-32G"], [["V100", "32GB"], ["V100", "32G"]]),
    model!("V100", "V100", ["V100-16GB"], [["V100"]]),
    model!("P100", "P100", [], [["P100"]]),
    model!("P40", "P40", [], [["P40"]]),
    model!("P4", "P4", [], [["P4"]]),
    model!("K80", "K80", [], [["K80"]]),
    model!("M60", "M60", [], [["M60"]]),
    // NVIDIA workstation and consumer
    model!("RTX6000-Ada", "RTX6000-Ada", ["RTX6000ADA", "RTX-6000-ADA"], [["RTX6000", "ADA"], ["6000", "ADA"]]),
    model!("RTX6000", "RTX6000", ["RTX-6000", "QUADRO-RTX6000"], [["RTX6000"]]),
    model!("A6000", "A6000", ["RTXA6000", "RTX-A6000"], [["A6000"]]),
    model!("A5000", "A5000", ["RTXA5000", "RTX-A5000"], [["A5000"]]),
    model!("A4000", "A4000", ["RTXA4000", "RTX-A4000"], [["A4000"]]),
    model!("RTX5090", "RTX5090", ["RTX-5090"], [["RTX5090"]]),
    model!("RTX4090", "RTX4090", ["RTX-4090"], [["RTX4090"]]),
    model!("RTX4080", "RTX4080", ["RTX-4080"], [["RTX4080"]]),
    model!("RTX4070", "RTX4070", ["RTX-4070"], [["RTX4070"]]),
    model!("RTX3090", "RTX3090", ["RTX-3090"], [["RTX3090"]]),
    model!("RTX3080", "RTX3080", ["RTX-3080"], [["RTX3080"]]),
    model!("RTX3070", "RTX3070", ["RTX-3070"], [["RTX3070"]]),
    model!("RTX3060", "RTX3060", ["RTX-3060"], [["RTX3060"]]),
    // AMD
    model!("MI325X", "MI325X", [], [["MI325X"]]),
    model!("MI300X", "MI300X", [], [["MI300X"]]),
    model!("MI300A", "MI300A", [], [["MI300A"]]),
    model!("MI250X", "MI250X", [], [["MI250X"]]),
    model!("MI250", "MI250", [], [["MI250"]]),
    model!("MI210", "MI210", [], [["MI210"]]),
    model!("MI100", "MI100", [], [["MI100"]]),
    model!("V520", "V520", ["RADEON-PRO-V520"], [["V520"]]),
];

fn normalize(name: &str) -> String {
    name.trim().to_ascii_uppercase().replace([' ', '_'], "-")
}

/// The entry a user's name (or alias) denotes, case-insensitive.
pub fn lookup(name: &str) -> Option<&'static Model> {
    let n = normalize(name);
    MODELS.iter().find(|m| m.name.eq_ignore_ascii_case(&n) || m.aliases.contains(&n.as_str()))
}

/// The known name closest to `name` (for "did you mean"), when one is close enough.
pub fn closest(name: &str) -> Option<&'static str> {
    let n = normalize(name);
    let mut best: Option<(usize, &'static str)> = None;
    for m in MODELS {
        for cand in std::iter::once(m.name).chain(m.aliases.iter().copied()) {
            let d = kiln_diag::edit_distance(&n, &cand.to_ascii_uppercase());
            if best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, m.name));
            }
        }
    }
    // One edit away for short names ("H1000"), two for longer ones ("A100-80").
    best.filter(|(d, _)| *d <= if n.len() <= 5 { 1 } else { 2 }).map(|(_, s)| s)
}

/// Upper-case words of a device name, with each two adjacent words joined ("RTX 4090" also
/// gives "RTX4090") and "SXMn" also read as "SXM".
fn words(device: &str) -> Vec<String> {
    let base: Vec<String> =
        device.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_ascii_uppercase).collect();
    let mut out = base.clone();
    out.extend(base.windows(2).map(|w| format!("{}{}", w[0], w[1])));
    out.extend(base.iter().filter(|w| w.starts_with("SXM")).map(|_| "SXM".to_string()));
    out
}

/// The table entry a device name denotes, if any. `memory_mib` (when the source reports it
/// apart from the name, as EC2 does) tells the memory parts apart: an "A100" with 80 GB is an
/// `A100-80GB`.
pub fn classify(device: &str, memory_mib: Option<u64>) -> Option<&'static Model> {
    let w = words(device);
    let found = MODELS.iter().find(|m| m.keys.iter().any(|alt| alt.iter().all(|k| w.iter().any(|x| x == k))))?;
    let gib = memory_mib.map(|m| m / 1024).unwrap_or(0);
    let bigger = match found.name {
        "A100" if gib >= 60 => "A100-80GB",
        "V100" if gib >= 24 => "V100-32GB",
        _ => return Some(found),
    };
    MODELS.iter().find(|m| m.name == bigger)
}

/// A name a request gave, resolved against the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    /// What the user wrote ("h100").
    pub written: String,
    /// The table's entry; `None` for a site's own name.
    pub model: Option<&'static Model>,
}

impl Requested {
    /// Resolves a name a user wrote: the table's entry, or a site's own name when no table name
    /// is close to it. `Err` carries the close table name ("did you mean").
    pub fn new(written: &str) -> Result<Requested, &'static str> {
        let written = written.trim().to_string();
        match lookup(&written) {
            Some(m) => Ok(Requested { written, model: Some(m) }),
            None => match closest(&written) {
                Some(near) => Err(near),
                None => Ok(Requested { written, model: None }),
            },
        }
    }

    /// The catalog's name ("H100"), or the site's name as written.
    pub fn name(&self) -> &str {
        self.model.map_or(self.written.as_str(), |m| m.name)
    }

    /// Whether the request names a whole family (`H100`, `A10`), so every variant matches.
    pub fn is_family(&self) -> bool {
        self.model.is_some_and(|model| model.name == model.family && MODELS.iter().any(|m| m.family == model.family && m.name != m.family))
    }

    /// Whether a table entry is what this request asks for.
    pub fn admits(&self, m: &Model) -> bool {
        self.model.is_some_and(|model| m.name == model.name || (m.family == model.family && self.is_family()))
    }

    /// Whether a device named `device` (nvidia-smi, rocm-smi, Slurm GRES type, EC2 GPU name)
    /// with `memory_mib` (when known apart from the name) is what this request asks for.
    pub fn matches(&self, device: &str, memory_mib: Option<u64>) -> bool {
        match self.model {
            Some(_) => classify(device, memory_mib).is_some_and(|m| self.admits(m)),
            None => site_name_matches(&self.written, device),
        }
    }
}

/// A site's own name matches a device whose name has it as consecutive words, ignoring case and
/// punctuation: "kilngpu" matches the GRES type "kilngpu", "GTX1080Ti" "NVIDIA GeForce GTX 1080 Ti".
fn site_name_matches(name: &str, device: &str) -> bool {
    let want: String = name.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_uppercase();
    let w: Vec<String> =
        device.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_ascii_uppercase).collect();
    !want.is_empty()
        && (0..w.len()).any(|i| {
            let mut joined = String::new();
            w[i..].iter().any(|x| {
                joined.push_str(x);
                joined == want
            })
        })
}

/// The rule before the name table, kept for states written by an earlier kiln (local and on-prem
/// read a request's meaning this way until it changes): every word of the request is a word of
/// the device name, or two adjacent words joined; so "A100" matched an 80 GB A100.
pub fn matches_by_words(request: &str, device: &str) -> bool {
    let tokens = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_ascii_uppercase).collect()
    };
    let have = tokens(device);
    let joined: Vec<String> = have.windows(2).map(|w| format!("{}{}", w[0], w[1])).collect();
    let want = tokens(request);
    !want.is_empty() && want.iter().all(|w| have.contains(w) || joined.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Requested {
        Requested::new(s).unwrap_or_else(|_| panic!("{s} is in the table"))
    }

    #[test]
    fn every_catalog_name_is_in_the_table() {
        // The accelerator names of /work/shared/catalog/{aws,lambda,runpod}.csv.
        for n in [
            "A100",
            "A100-80GB",
            "A10G",
            "H100",
            "H200",
            "L4",
            "L40S",
            "T4",
            "V100",
            "V100-32GB",
            "A10",
            "A6000",
            "B200",
            "GH200",
            "RTX6000",
            "H100-SXM",
            "H200-SXM",
        ] {
            assert_eq!(req(n).name(), n);
        }
    }

    #[test]
    fn names_are_case_insensitive_with_aliases() {
        assert_eq!(req("h100").name(), "H100");
        assert_eq!(req("h100-pcie").name(), "H100-PCIe");
        assert_eq!(req("a100-40gb").name(), "A100");
        assert_eq!(req("RTX-4090").name(), "RTX4090");
        assert_eq!(Requested::new("H1000"), Err("H100"));
        let site = Requested::new("kilngpu").expect("a site's own name");
        assert_eq!((site.model, site.name()), (None, "kilngpu"));
        assert!(site.matches("kilngpu", None) && !site.matches("a100", None));
        assert!(Requested::new("GTX1080Ti").unwrap().matches("NVIDIA GeForce GTX 1080 Ti", None));
        assert_eq!(closest("H1000"), Some("H100"));
        assert_eq!(closest("a100-80"), Some("A100-80GB"));
        assert_eq!(closest("banana-split-sundae"), None);
        assert_eq!(req("a100-sxm4-40gb").name(), "A100");
        assert_eq!(Requested::new("Tesla T4").unwrap().model, None, "a site's name, matched by its words");
        assert!(Requested::new("Tesla T4").unwrap().matches("Tesla T4", None));
    }

    #[test]
    fn families_match_their_variants_unless_a_variant_is_named() {
        let h100 = req("H100");
        for v in ["H100-SXM", "H100-PCIe", "H100-NVL", "H100"] {
            assert!(h100.admits(lookup(v).unwrap()), "{v}");
        }
        assert!(!req("H100-SXM").admits(lookup("H100-PCIe").unwrap()));
        assert!(req("H100-SXM").admits(lookup("H100-SXM").unwrap()));
        assert!(req("A10").admits(lookup("A10G").unwrap()));
        assert!(!req("A10G").admits(lookup("A10").unwrap()));
        assert!(!req("A100").admits(lookup("A100-80GB").unwrap()), "A100 is the 40 GB part");
        assert!(!req("A100-80GB").admits(lookup("A100").unwrap()));
        assert!(!req("A10").admits(lookup("A100").unwrap()));
        assert!(!req("L40").admits(lookup("L40S").unwrap()));
    }

    #[test]
    fn nvidia_smi_names() {
        assert_eq!(classify("NVIDIA H100 80GB HBM3", None).unwrap().name, "H100-SXM");
        assert_eq!(classify("NVIDIA H100 PCIe", None).unwrap().name, "H100-PCIe");
        assert_eq!(classify("NVIDIA H100 NVL", None).unwrap().name, "H100-NVL");
        assert_eq!(classify("NVIDIA A100-SXM4-80GB", None).unwrap().name, "A100-80GB");
        assert_eq!(classify("NVIDIA A100 80GB PCIe", None).unwrap().name, "A100-80GB");
        assert_eq!(classify("NVIDIA A100-SXM4-40GB", None).unwrap().name, "A100");
        assert_eq!(classify("NVIDIA A10G", None).unwrap().name, "A10G");
        assert_eq!(classify("NVIDIA A10", None).unwrap().name, "A10");
        assert_eq!(classify("Tesla T4", None).unwrap().name, "T4");
        assert_eq!(classify("Tesla V100-SXM2-32GB", None).unwrap().name, "V100-32GB");
        assert_eq!(classify("NVIDIA GeForce RTX 4090", None).unwrap().name, "RTX4090");
        assert_eq!(classify("NVIDIA RTX A6000", None).unwrap().name, "A6000");
        assert_eq!(classify("NVIDIA RTX 6000 Ada Generation", None).unwrap().name, "RTX6000-Ada");
        assert_eq!(classify("Quadro RTX 6000", None).unwrap().name, "RTX6000");
        assert_eq!(classify("NVIDIA L40S", None).unwrap().name, "L40S");
        assert_eq!(classify("NVIDIA GH200 480GB", None).unwrap().name, "GH200");
        assert_eq!(classify("AMD Instinct MI300X", None).unwrap().name, "MI300X");
        assert_eq!(classify("llvmpipe", None), None);
        assert!(req("H100").matches("NVIDIA H100 80GB HBM3", None));
        assert!(req("h100-sxm").matches("NVIDIA H100 80GB HBM3", None));
        assert!(!req("H100-PCIe").matches("NVIDIA H100 80GB HBM3", None));
        assert!(req("A100-80GB").matches("NVIDIA A100-SXM4-80GB", None));
        assert!(!req("A100").matches("NVIDIA A100-SXM4-80GB", None));
        assert!(!req("A10").matches("NVIDIA A100-SXM4-80GB", None));
        assert!(req("A10").matches("NVIDIA A10G", None));
    }

    #[test]
    fn slurm_gres_types_and_ec2_names() {
        assert_eq!(classify("nvidia_h100_80gb_hbm3", None).unwrap().name, "H100-SXM");
        assert_eq!(classify("a100", None).unwrap().name, "A100");
        assert_eq!(classify("a100_80gb", None).unwrap().name, "A100-80GB");
        assert_eq!(classify("a100_80g", None).unwrap().name, "A100-80GB");
        assert_eq!(classify("h100", None).unwrap().name, "H100");
        // EC2 names both A100 parts "A100" and tells them apart by memory.
        assert_eq!(classify("A100", Some(40960)).unwrap().name, "A100");
        assert_eq!(classify("A100", Some(81920)).unwrap().name, "A100-80GB");
        assert_eq!(classify("V100", Some(32768)).unwrap().name, "V100-32GB");
        assert!(req("A10").matches("A10G", Some(24576)));
        assert!(req("H100").matches("H100", Some(81920)));
    }

    #[test]
    fn the_rule_before_the_table() {
        assert!(matches_by_words("A100", "NVIDIA A100-SXM4-80GB"));
        assert!(matches_by_words("h100-80gb", "NVIDIA H100 80GB HBM3"));
        assert!(!matches_by_words("A10", "NVIDIA A100-SXM4-80GB"));
        assert!(!matches_by_words("", "Tesla T4"));
    }
}
