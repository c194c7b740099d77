//! The instance types of a region (DescribeInstanceTypes, read once per provider instance) and
//! how resource requests resolve to them.
//!
//! The rule, deterministic: keep the virtualised (not bare-metal) x86_64 types that satisfy
//! every request (`accelerators` by GPU name and exact count per node; `cpus` and `memory`
//! exactly, or at least with a trailing `+`), that have no GPUs or other accelerators when none
//! were asked for, and that support spot when `spot = true`; order them current generation
//! first, then by vCPUs, then memory, then types without local instance storage first, then
//! name, smallest first (the cheapest-looking), and keep the first five as the candidates a
//! launch tries in order when AWS has no capacity for one. With no request at all, the request
//! is `cpus = "2+"`, `memory = "4+"`.

use aws_sdk_ec2::types::{ArchitectureType, InstanceTypeInfo, UsageClassType};

use crate::error::AwsError;
use crate::request::{Accelerators, Amount};

/// How many instance types a request may fall back through.
pub const MAX_CANDIDATES: usize = 5;

/// What kiln needs to know of one instance type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeInfo {
    pub name: String,
    pub vcpus: u64,
    pub memory_mib: u64,
    /// GPU model names and counts, such as `[("A100", 8)]`.
    pub gpus: Vec<(String, u64)>,
    /// GPUs, FPGAs or inference accelerators of any kind.
    pub accelerated: bool,
    pub current: bool,
    pub bare_metal: bool,
    pub x86_64: bool,
    pub spot: bool,
    /// Local instance-store disks (storage-optimised and `d` variants cost more).
    pub instance_storage: bool,
}

/// A resource request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Needs {
    pub accelerators: Option<Accelerators>,
    pub cpus: Option<Amount>,
    pub memory: Option<Amount>,
    pub spot: bool,
}

impl Needs {
    fn is_empty(&self) -> bool {
        self.accelerators.is_none() && self.cpus.is_none() && self.memory.is_none()
    }

    /// Requests as a user would write them, for messages.
    pub fn describe(&self) -> String {
        let amount = |a: &Amount| format!("{}{}", a.value, if a.at_least { "+" } else { "" });
        let mut parts = Vec::new();
        if let Some(a) = &self.accelerators {
            parts.push(format!("accelerators = \"{}:{}\"", a.name, a.count));
        }
        if let Some(c) = &self.cpus {
            parts.push(format!("cpus = \"{}\"", amount(c)));
        }
        if let Some(m) = &self.memory {
            parts.push(format!("memory = \"{}\"", amount(m)));
        }
        if self.spot {
            parts.push("spot = true".into());
        }
        parts.join(", ")
    }
}

impl TypeInfo {
    pub fn from_sdk(t: &InstanceTypeInfo) -> Option<TypeInfo> {
        let gpus: Vec<(String, u64)> = t
            .gpu_info()
            .map(|g| g.gpus().iter().map(|d| (d.name().unwrap_or_default().to_string(), d.count().unwrap_or(0).max(0) as u64)).collect())
            .unwrap_or_default();
        Some(TypeInfo {
            name: t.instance_type()?.as_str().to_string(),
            vcpus: t.v_cpu_info().and_then(|v| v.default_v_cpus()).unwrap_or(0).max(0) as u64,
            memory_mib: t.memory_info().and_then(|m| m.size_in_mib()).unwrap_or(0).max(0) as u64,
            accelerated: !gpus.is_empty()
                || t.fpga_info().is_some()
                || t.inference_accelerator_info().is_some()
                || t.neuron_info().is_some(),
            gpus,
            current: t.current_generation().unwrap_or(false),
            bare_metal: t.bare_metal().unwrap_or(false),
            x86_64: t.processor_info().is_some_and(|p| p.supported_architectures().contains(&ArchitectureType::X8664)),
            spot: t.supported_usage_classes().contains(&UsageClassType::Spot),
            instance_storage: t.instance_storage_supported().unwrap_or(false),
        })
    }

    fn gpu_count(&self, name: &str) -> u64 {
        self.gpus.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, c)| c).sum()
    }

    fn satisfies(&self, n: &Needs) -> bool {
        let gpus_ok = match &n.accelerators {
            Some(a) => self.gpu_count(&a.name) == a.count,
            None => !self.accelerated,
        };
        let memory_gib = self.memory_mib as f64 / 1024.0;
        gpus_ok
            && n.cpus.is_none_or(|c| c.admits(self.vcpus as f64))
            && n.memory.is_none_or(|m| m.admits(memory_gib))
            && (!n.spot || self.spot)
            && !self.bare_metal
            && self.x86_64
    }
}

/// Every instance type of the region.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub types: Vec<TypeInfo>,
}

impl Catalog {
    /// Reads every page of DescribeInstanceTypes.
    pub async fn load(ec2: &aws_sdk_ec2::Client) -> Result<Catalog, AwsError> {
        let mut types = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = ec2.describe_instance_types().max_results(100).set_next_token(next).send().await.map_err(AwsError::from_sdk)?;
            types.extend(out.instance_types().iter().filter_map(TypeInfo::from_sdk));
            next = out.next_token().filter(|t| !t.is_empty()).map(str::to_string);
            if next.is_none() {
                return Ok(Catalog { types });
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&TypeInfo> {
        self.types.iter().find(|t| t.name == name)
    }

    /// The GPUs of each instance of a type, whatever their model (0 for an unknown type).
    pub fn gpus(&self, name: &str) -> u64 {
        self.get(name).map_or(0, |t| t.gpus.iter().map(|(_, n)| n).sum())
    }

    /// The candidate types for a request, best first (see the module's rule).
    pub fn candidates(&self, needs: &Needs) -> Vec<String> {
        let defaulted;
        let needs = if needs.is_empty() {
            defaulted = Needs {
                cpus: Some(Amount { value: 2.0, at_least: true }),
                memory: Some(Amount { value: 4.0, at_least: true }),
                ..needs.clone()
            };
            &defaulted
        } else {
            needs
        };
        let mut fits: Vec<&TypeInfo> = self.types.iter().filter(|t| t.satisfies(needs)).collect();
        fits.sort_by(|a, b| {
            (!a.current, a.vcpus, a.memory_mib, a.instance_storage, &a.name).cmp(&(
                !b.current,
                b.vcpus,
                b.memory_mib,
                b.instance_storage,
                &b.name,
            ))
        });
        fits.into_iter().take(MAX_CANDIDATES).map(|t| t.name.clone()).collect()
    }

    /// GPU models the region offers, for a message about a name that matched nothing.
    pub fn gpu_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.types.iter().flat_map(|t| t.gpus.iter().map(|(n, _)| n.clone())).collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{parse_accelerators, parse_amount};

    fn t(name: &str, vcpus: u64, gib: u64, gpus: &[(&str, u64)]) -> TypeInfo {
        TypeInfo {
            name: name.into(),
            vcpus,
            memory_mib: gib * 1024,
            gpus: gpus.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
            accelerated: !gpus.is_empty(),
            current: true,
            bare_metal: false,
            x86_64: true,
            spot: true,
            instance_storage: false,
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            types: vec![
                t("p4de.24xlarge", 96, 1152, &[("A100", 8)]),
                t("p4d.24xlarge", 96, 1152, &[("A100", 8)]),
                t("g5.xlarge", 4, 16, &[("A10G", 1)]),
                t("m5.2xlarge", 8, 32, &[]),
                t("c5.2xlarge", 8, 16, &[]),
                TypeInfo { instance_storage: true, ..t("c5d.2xlarge", 8, 16, &[]) },
                TypeInfo { instance_storage: true, ..t("a5d.2xlarge", 8, 16, &[]) },
                t("c5.large", 2, 4, &[]),
                TypeInfo { current: false, ..t("c4.large", 2, 4, &[]) },
            ],
        }
    }

    #[test]
    fn gpus_resolve_to_the_smallest_type_with_that_exact_count() {
        let needs = Needs { accelerators: Some(parse_accelerators("A100:8").unwrap()), ..Needs::default() };
        assert_eq!(catalog().candidates(&needs), ["p4d.24xlarge", "p4de.24xlarge"]);
        let none = Needs { accelerators: Some(parse_accelerators("A100:4").unwrap()), ..Needs::default() };
        assert!(catalog().candidates(&none).is_empty());
    }

    #[test]
    fn cpu_requests_skip_accelerated_types_and_prefer_current_ones() {
        let needs = Needs { cpus: Some(parse_amount("8+").unwrap()), ..Needs::default() };
        assert_eq!(catalog().candidates(&needs), ["c5.2xlarge", "a5d.2xlarge", "c5d.2xlarge", "m5.2xlarge"]);
        let mem = Needs { cpus: Some(parse_amount("8").unwrap()), memory: Some(parse_amount("32+").unwrap()), ..Needs::default() };
        assert_eq!(catalog().candidates(&mem), ["m5.2xlarge"]);
        assert_eq!(catalog().candidates(&Needs::default())[0], "c5.large");
        let two = Needs { cpus: Some(parse_amount("2").unwrap()), ..Needs::default() };
        assert_eq!(catalog().candidates(&two), ["c5.large", "c4.large"], "previous generation last");
    }
}
