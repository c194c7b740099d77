//! What the optimizer's tests share: requests as users write them, and the shipped catalog as
//! candidates.

#![allow(dead_code)]

use std::str::FromStr;

use kiln_catalog::Catalog;
use kiln_place::{Candidate, Data, Need, Origin};
use kiln_provider::offerings::Offering;
use kiln_provider::portable::request::Request;
use kiln_value::{Decimal, Map, Value};

/// A request as a block writes it: `accelerators` ("" for none, or "A;B" for alternatives),
/// `cpus`, `memory`.
pub fn request(acc: &str, cpus: Option<&str>, memory: Option<&str>) -> Request {
    let mut m = Map::new();
    match acc.split(';').collect::<Vec<_>>().as_slice() {
        [""] => {}
        [one] => {
            m.insert("accelerators".into(), Value::from(*one));
        }
        alts => {
            m.insert("accelerators".into(), Value::List(alts.iter().map(|a| Value::from(*a)).collect()));
        }
    }
    if let Some(c) = cpus {
        m.insert("cpus".into(), Value::from(c));
    }
    if let Some(x) = memory {
        m.insert("memory".into(), Value::from(x));
    }
    Request::parse(&Value::Map(m)).expect("a valid request")
}

pub fn need(acc: &str) -> Need {
    Need::new(request(acc, None, None))
}

pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Every shipped row, each offered by the provider instance named as its cloud.
pub fn shipped() -> Vec<Candidate<'static>> {
    Catalog::shipped().rows.iter().map(|o| Candidate::new(&o.cloud, o)).collect()
}

/// The shipped rows of some clouds.
pub fn clouds(names: &[&str]) -> Vec<Candidate<'static>> {
    shipped().into_iter().filter(|c| names.contains(&c.offering.cloud.as_str())).collect()
}

/// An owned machine: `free` of them, at `price` per hour.
pub fn owned(name: &str, acc: Option<(&str, u64)>, vcpus: u64, memory: i64, free: u64, price: Option<&str>) -> Offering {
    Offering {
        cloud: "onprem".into(),
        instance_type: name.into(),
        accelerator: acc.map(|(n, c)| kiln_provider::offerings::OfferedAccelerator { name: n.into(), count: c, memory_gib: None }),
        vcpus,
        memory_gib: memory.into(),
        region: None,
        zone: None,
        price_hourly: price.map(d),
        spot_price_hourly: None,
        available: Some(free),
    }
}

/// `gb` GB of data in an AWS bucket in `region`, named `name` in the configuration.
pub fn aws_data(name: &str, region: &str, gb: &str) -> Data {
    Data { name: name.into(), origin: Origin::Cloud { cloud: "aws".into(), region: Some(region.into()) }, size_gb: d(gb) }
}
