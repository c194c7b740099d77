//! The instance types of a region (DescribeInstanceTypes, read once per provider instance) and
//! how resource requests resolve to them.
//!
//! The rule, deterministic: keep the virtualised (not bare-metal) x86_64 types that satisfy
//! every request (`accelerators` by the one name table, EC2's GPU name and memory, with the exact
//! count per node; `cpus` and `memory` exactly, or at least with a trailing `+`), that have no
//! GPUs or other accelerators when none were asked for, and that support spot when
//! `spot = true`; order them current generation first, then by vCPUs, then memory, then types
//! without local instance storage first, then name, smallest first (the cheapest-looking); with
//! a list of `accelerators` alternatives, the first alternative's types come first, then the
//! next's. The first five are the candidates a launch tries in order when AWS has no capacity
//! for one. With no request at all, the request is `cpus = "2+"`, `memory = "4+"`.

use aws_sdk_ec2::types::{ArchitectureType, InstanceTypeInfo, UsageClassType};

use kiln_provider::portable::request::{Accelerator, Amount, Request};

use crate::error::AwsError;

/// How many instance types a request may fall back through.
pub const MAX_CANDIDATES: usize = 5;

/// What kiln needs to know of one instance type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeInfo {
    pub name: String,
    pub vcpus: u64,
    pub memory_mib: u64,
    /// GPU model names, counts and memory per GPU (MiB), such as `[("A100", 8, 40960)]`.
    pub gpus: Vec<(String, u64, u64)>,
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
    pub request: Request,
    pub spot: bool,
}

impl Needs {
    fn is_empty(&self) -> bool {
        self.request == Request::default()
    }

    /// Requests as a user would write them, for messages.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.request.describe()];
        if self.spot {
            parts.push("spot = true".into());
        }
        parts.retain(|p| !p.is_empty());
        parts.join(", ")
    }
}

impl TypeInfo {
    pub fn from_sdk(t: &InstanceTypeInfo) -> Option<TypeInfo> {
        let gpus: Vec<(String, u64, u64)> = t
            .gpu_info()
            .map(|g| {
                g.gpus()
                    .iter()
                    .map(|d| {
                        let memory = d.memory_info().and_then(|m| m.size_in_mib()).unwrap_or(0).max(0) as u64;
                        (d.name().unwrap_or_default().to_string(), d.count().unwrap_or(0).max(0) as u64, memory)
                    })
                    .collect()
            })
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

    fn gpu_count(&self, a: &Accelerator) -> u64 {
        self.gpus.iter().filter(|(n, _, mib)| a.matches(n, Some(*mib))).map(|(_, c, _)| c).sum()
    }

    /// Whether the type satisfies `n` with the alternative `a` (or no GPUs with `None`).
    fn satisfies(&self, n: &Needs, a: Option<&Accelerator>) -> bool {
        let gpus_ok = match a {
            Some(a) => self.gpu_count(a) == a.count,
            None => !self.accelerated,
        };
        let memory_gib = self.memory_mib as f64 / 1024.0;
        gpus_ok
            && n.request.cpus.is_none_or(|c| c.admits(self.vcpus as f64))
            && n.request.memory.is_none_or(|m| m.admits(memory_gib))
            && (!n.spot || self.spot)
            && self.launchable()
    }

    /// Whether a cluster can run on the type at all: virtualised (not bare metal) x86_64.
    pub fn launchable(&self) -> bool {
        !self.bare_metal && self.x86_64
    }

    /// Whether some request resolves to the type: launchable, and either with GPUs or with no
    /// accelerator at all (FPGA and inference-chip types match no request).
    pub fn requestable(&self) -> bool {
        self.launchable() && (!self.gpus.is_empty() || !self.accelerated)
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
        self.get(name).map_or(0, |t| t.gpus.iter().map(|(_, n, _)| n).sum())
    }

    /// The candidate types for a request, best first (see the module's rule).
    pub fn candidates(&self, needs: &Needs) -> Vec<String> {
        let defaulted;
        let needs = if needs.is_empty() {
            defaulted = Needs {
                request: Request {
                    cpus: Some(Amount { value: 2.0, at_least: true }),
                    memory: Some(Amount { value: 4.0, at_least: true }),
                    accelerators: None,
                },
                ..needs.clone()
            };
            &defaulted
        } else {
            needs
        };
        let alternatives: Vec<Option<&Accelerator>> = match &needs.request.accelerators {
            Some(alts) => alts.iter().map(Some).collect(),
            None => vec![None],
        };
        let mut out: Vec<String> = Vec::new();
        for a in alternatives {
            let mut fits: Vec<&TypeInfo> = self.types.iter().filter(|t| t.satisfies(needs, a)).collect();
            fits.sort_by(|a, b| {
                (!a.current, a.vcpus, a.memory_mib, a.instance_storage, &a.name).cmp(&(
                    !b.current,
                    b.vcpus,
                    b.memory_mib,
                    b.instance_storage,
                    &b.name,
                ))
            });
            for t in fits {
                if !out.contains(&t.name) {
                    out.push(t.name.clone());
                }
            }
        }
        out.truncate(MAX_CANDIDATES);
        out
    }

    /// GPU models the region offers, for a message about a name that matched nothing.
    pub fn gpu_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.types.iter().flat_map(|t| t.gpus.iter().map(|(n, _, _)| n.clone())).collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_provider::portable::request::Request;
    use kiln_value::Value;

    fn needs(v: serde_json::Value) -> Needs {
        Needs { request: Request::parse(&Value::from_json(&v)).unwrap(), spot: false }
    }

    fn t(name: &str, vcpus: u64, gib: u64, gpus: &[(&str, u64, u64)]) -> TypeInfo {
        TypeInfo {
            name: name.into(),
            vcpus,
            memory_mib: gib * 1024,
            gpus: gpus.iter().map(|(n, c, m)| (n.to_string(), *c, *m * 1024)).collect(),
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
                t("p4de.24xlarge", 96, 1152, &[("A100", 8, 80)]),
                t("p4d.24xlarge", 96, 1152, &[("A100", 8, 40)]),
                t("p5.48xlarge", 192, 2048, &[("H100", 8, 80)]),
                t("g5.xlarge", 4, 16, &[("A10G", 1, 24)]),
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
        // EC2 names both A100 parts "A100": the memory tells the 40 GB part from the 80 GB one.
        assert_eq!(catalog().candidates(&needs(serde_json::json!({ "accelerators": "A100:8" }))), ["p4d.24xlarge"]);
        assert_eq!(catalog().candidates(&needs(serde_json::json!({ "accelerators": "a100-80gb:8" }))), ["p4de.24xlarge"]);
        assert!(catalog().candidates(&needs(serde_json::json!({ "accelerators": "A100:4" }))).is_empty());
        assert_eq!(catalog().candidates(&needs(serde_json::json!({ "accelerators": "A10:1" }))), ["g5.xlarge"], "A10 matches A10G");
    }

    #[test]
    fn alternatives_give_candidates_in_their_order() {
        let n = needs(serde_json::json!({ "accelerators": ["H100:8", "A100-80GB:8", "A100:8"] }));
        assert_eq!(catalog().candidates(&n), ["p5.48xlarge", "p4de.24xlarge", "p4d.24xlarge"]);
    }

    #[test]
    fn cpu_requests_skip_accelerated_types_and_prefer_current_ones() {
        let cpus = needs(serde_json::json!({ "cpus": "8+" }));
        assert_eq!(catalog().candidates(&cpus), ["c5.2xlarge", "a5d.2xlarge", "c5d.2xlarge", "m5.2xlarge"]);
        let mem = needs(serde_json::json!({ "cpus": "8", "memory": "32+" }));
        assert_eq!(catalog().candidates(&mem), ["m5.2xlarge"]);
        assert_eq!(catalog().candidates(&Needs::default())[0], "c5.large");
        let two = needs(serde_json::json!({ "cpus": "2" }));
        assert_eq!(catalog().candidates(&two), ["c5.large", "c4.large"], "previous generation last");
    }
}
