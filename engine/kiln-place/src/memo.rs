//! One decision asks the accelerator table about each machine shape once: a catalog lists one
//! instance type in many regions (Lambda's in 17), and every row of a type reads the same.

use std::collections::HashMap;

use kiln_catalog::matching::{admits, Mismatch};
use kiln_provider::offerings::Offering;
use kiln_provider::portable::request::Request;
use kiln_value::Decimal;

/// What [`admits`] reads of a row: its cloud, type, accelerators, vCPUs and memory.
type Shape<'o> = (&'o str, &'o str, Option<(&'o str, u64, Option<Decimal>)>, u64, Decimal);

/// [`admits`] for one request, remembered per machine shape.
#[derive(Debug, Default)]
pub(crate) struct Matches<'o> {
    seen: HashMap<Shape<'o>, Result<usize, Mismatch>>,
}

impl<'o> Matches<'o> {
    pub fn admits(&mut self, r: &Request, o: &'o Offering) -> Result<usize, Mismatch> {
        let acc = o.accelerator.as_ref().map(|a| (a.name.as_str(), a.count, a.memory_gib));
        let key = (o.cloud.as_str(), o.instance_type.as_str(), acc, o.vcpus, o.memory_gib);
        self.seen.entry(key).or_insert_with(|| admits(r, o)).clone()
    }
}
