//! IP network functions: cidrhost, cidrnetmask, cidrsubnet and cidrsubnets, for IPv4 and IPv6,
//! with addresses as 32- or 128-bit integers. Parsing accepts what Terraform's `ipaddr` package
//! accepts (IPv4 octets may have leading zeros, read as decimal).

use std::net::Ipv6Addr;

use kiln_value::{Decimal, Value};
use rust_decimal::prelude::ToPrimitive;

use super::{arg_err, arg_int, arg_number, arg_string, err, Result, Spec, WHOLE_NUMBER};

pub(super) const FUNCS: &[Spec] = &[
    Spec::new("cidrhost", &["prefix", "hostnum"], cidrhost),
    Spec::new("cidrnetmask", &["prefix"], cidrnetmask),
    Spec::new("cidrsubnet", &["prefix", "newbits", "netnum"], cidrsubnet),
    Spec::new("cidrsubnets", &["prefix"], cidrsubnets).variadic("newbits"),
];

/// A network: its first address, address width (32 or 128) and prefix length.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Net {
    addr: u128,
    bits: u32,
    prefix: u32,
}

impl Net {
    fn parse(s: &str) -> std::result::Result<Net, String> {
        let bad = || format!("invalid CIDR address: {s}");
        let (ip, len) = s.split_once('/').ok_or_else(bad)?;
        let (addr, bits) = match parse_ipv4(ip) {
            Some(a) => (u128::from(a), 32),
            None => (u128::from(ip.parse::<Ipv6Addr>().map_err(|_| bad())?), 128),
        };
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
            return Err(bad());
        }
        let prefix: u32 = len.parse().map_err(|_| bad())?;
        if prefix > bits {
            return Err(bad());
        }
        let net = Net { addr, bits, prefix };
        Ok(Net { addr: addr & net.mask(prefix), ..net })
    }

    /// The mask of a `prefix`-bit network in this address width.
    fn mask(&self, prefix: u32) -> u128 {
        let all = if self.bits == 128 { u128::MAX } else { (1u128 << self.bits) - 1 };
        match prefix {
            0 => 0,
            p if p >= self.bits => all,
            p => all & !(all >> p),
        }
    }

    /// The last address in the network.
    fn last(&self) -> u128 {
        self.addr | (self.mask(self.bits) & !self.mask(self.prefix))
    }

    fn contains(&self, addr: u128) -> bool {
        addr & self.mask(self.prefix) == self.addr
    }

    fn with(&self, addr: u128, prefix: u32) -> Net {
        Net { addr: addr & self.mask(prefix), bits: self.bits, prefix }
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", format_addr(self.addr, self.bits), self.prefix)
    }
}

/// Dotted-quad IPv4 with decimal octets (leading zeros allowed).
fn parse_ipv4(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    parts.iter().try_fold(0u32, |acc, p| {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let octet: u32 = p.parse().ok()?;
        (octet <= 255).then_some(acc << 8 | octet)
    })
}

/// Go's `net.IP.String`: IPv4-mapped IPv6 addresses print as IPv4.
fn format_addr(addr: u128, bits: u32) -> String {
    let v6 = Ipv6Addr::from(addr);
    match (bits, v6.to_ipv4_mapped()) {
        (32, _) => std::net::Ipv4Addr::from(addr as u32).to_string(),
        (_, Some(v4)) => v4.to_string(),
        _ => v6.to_string(),
    }
}

fn parse_prefix(a: &[Value]) -> Result<Net> {
    let s = arg_string(a, 0)?;
    Net::parse(&s).map_err(|m| arg_err(0, format!("invalid CIDR expression: {m}")))
}

/// Argument `i` as a whole number that may be wider than 64 bits.
fn arg_big(a: &[Value], i: usize) -> Result<i128> {
    let n: Decimal = arg_number(a, i)?;
    if !n.fract().is_zero() {
        return Err(arg_err(i, WHOLE_NUMBER));
    }
    n.to_i128().ok_or_else(|| arg_err(i, WHOLE_NUMBER))
}

fn cidrhost(a: &[Value]) -> Result<Value> {
    let net = parse_prefix(a)?;
    let num = arg_big(a, 1)?;
    let host_bits = net.bits - net.prefix;
    let max: u128 = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
    let fits = if num < 0 { num.unsigned_abs() - 1 <= max } else { num.unsigned_abs() <= max };
    if !fits {
        return Err(err(format!("prefix of {} does not accommodate a host numbered {num}", net.prefix)));
    }
    let offset = if num < 0 { max - (num.unsigned_abs() - 1) } else { num as u128 };
    Ok(Value::String(format_addr(net.addr | offset, net.bits)))
}

fn cidrnetmask(a: &[Value]) -> Result<Value> {
    let net = parse_prefix(a)?;
    if net.bits != 32 {
        return Err(err(format!("IPv6 addresses cannot have a netmask: {}", arg_string(a, 0)?)));
    }
    Ok(Value::String(format_addr(net.mask(net.prefix), 32)))
}

fn cidrsubnet(a: &[Value]) -> Result<Value> {
    let net = parse_prefix(a)?;
    let newbits = arg_int(a, 1)?;
    let num = arg_big(a, 2)?;
    if newbits < 0 {
        return Err(arg_err(1, "must extend prefix by at least zero bits"));
    }
    let prefix = i64::from(net.prefix) + newbits;
    if prefix > i64::from(net.bits) {
        return Err(err(format!("insufficient address space to extend prefix of {} by {newbits}", net.prefix)));
    }
    let max: u128 = if newbits >= 128 { u128::MAX } else { (1u128 << newbits) - 1 };
    if num < 0 || num as u128 > max {
        return Err(err(format!("prefix extension of {newbits} does not accommodate a subnet numbered {num}")));
    }
    let prefix = prefix as u32;
    let shifted = if prefix == net.bits { num as u128 } else { (num as u128) << (net.bits - prefix) };
    Ok(Value::String(net.with(net.addr | shifted, prefix).to_string()))
}

fn cidrsubnets(a: &[Value]) -> Result<Value> {
    let net = parse_prefix(a)?;
    if a.len() == 1 {
        return Ok(Value::List(Vec::new()));
    }
    let first = arg_int(a, 1)?;
    let width = i64::from(net.bits);
    let first_len = (i64::from(net.prefix) + first).clamp(0, width) as u32;
    // The subnet just before the base network, so the first allocation starts at its address.
    let mut current = net.with(net.addr.wrapping_sub(1) & net.mask(net.bits), first_len);
    let mut out = Vec::new();
    for i in 1..a.len() {
        let newbits = arg_int(a, i)?;
        if newbits < 1 {
            return Err(arg_err(i, "must extend prefix by at least one bit"));
        }
        if newbits > 32 {
            return Err(arg_err(i, "may not extend prefix by more than 32 bits"));
        }
        let length = i64::from(net.prefix) + newbits;
        if length > width {
            let protocol = if net.bits == 32 { "IPv4" } else { "IPv6" };
            let m = format!("would extend prefix to {length} bits, which is too long for an {protocol} address");
            return Err(arg_err(i, m));
        }
        let length = length as u32;
        let aligned = net.with(current.last(), length);
        let next = aligned.last().wrapping_add(1) & net.mask(net.bits);
        if next == 0 || !net.contains(next) {
            let m = format!("not enough remaining address space for a subnet with a prefix of {length} bits after {current}");
            return Err(arg_err(i, m));
        }
        current = net.with(next, length);
        out.push(Value::String(current.to_string()));
    }
    Ok(Value::List(out))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

    #[test]
    fn cidrhost_examples() {
        assert_eq!(ok("cidrhost", vec![s("10.12.112.0/20"), n("16")]), s("10.12.112.16"));
        assert_eq!(ok("cidrhost", vec![s("10.12.112.0/20"), n("268")]), s("10.12.113.12"));
        assert_eq!(ok("cidrhost", vec![s("fd00:fd12:3456:7890:00a2::/72"), n("34")]), s("fd00:fd12:3456:7890::22"));
        assert_eq!(ok("cidrhost", vec![s("10.0.0.0/24"), n("-1")]), s("10.0.0.255"));
        assert_eq!(ok("cidrhost", vec![s("10.0.0.5/24"), n("-256")]), s("10.0.0.0"));
        assert_eq!(ok("cidrhost", vec![s("010.001.0.0/16"), n("1")]), s("10.1.0.1"));
        assert_eq!(fails("cidrhost", vec![s("10.0.0.0/30"), n("4")]), "prefix of 30 does not accommodate a host numbered 4");
        assert_eq!(
            fails("cidrhost", vec![s("10.0.0.0/33"), n("1")]),
            r#"Invalid value for "prefix" parameter: invalid CIDR expression: invalid CIDR address: 10.0.0.0/33"#
        );
    }

    #[test]
    fn cidrnetmask_examples() {
        assert_eq!(ok("cidrnetmask", vec![s("172.16.0.0/12")]), s("255.240.0.0"));
        assert_eq!(ok("cidrnetmask", vec![s("10.0.0.0/0")]), s("0.0.0.0"));
        assert_eq!(ok("cidrnetmask", vec![s("10.0.0.1/32")]), s("255.255.255.255"));
        assert_eq!(fails("cidrnetmask", vec![s("fd00::/64")]), "IPv6 addresses cannot have a netmask: fd00::/64");
    }

    #[test]
    fn cidrsubnet_examples() {
        let sub = |p: &str, b: &str, x: &str| ok("cidrsubnet", vec![s(p), n(b), n(x)]);
        assert_eq!(sub("10.1.2.0/24", "4", "15"), s("10.1.2.240/28"));
        assert_eq!(sub("172.16.0.0/12", "4", "2"), s("172.18.0.0/16"));
        assert_eq!(sub("10.1.2.0/24", "4", "15"), s("10.1.2.240/28"));
        assert_eq!(sub("fd00:fd12:3456:7890::/56", "16", "162"), s("fd00:fd12:3456:7800:a200::/72"));
        assert_eq!(sub("10.0.0.0/8", "0", "0"), s("10.0.0.0/8"));
        assert_eq!(sub("10.0.0.0/24", "8", "255"), s("10.0.0.255/32"));
        assert_eq!(
            fails("cidrsubnet", vec![s("10.0.0.0/24"), n("4"), n("16")]),
            "prefix extension of 4 does not accommodate a subnet numbered 16"
        );
        assert_eq!(fails("cidrsubnet", vec![s("10.0.0.0/30"), n("4"), n("1")]), "insufficient address space to extend prefix of 30 by 4");
    }

    #[test]
    fn cidrsubnets_examples() {
        assert_eq!(
            js("cidrsubnets", vec![s("10.1.0.0/16"), n("4"), n("4"), n("8"), n("4")]),
            r#"["10.1.0.0/20","10.1.16.0/20","10.1.32.0/24","10.1.48.0/20"]"#
        );
        assert_eq!(
            js("cidrsubnets", vec![s("fd00:fd12:3456:7890::/56"), n("16"), n("16"), n("16"), n("32")]),
            r#"["fd00:fd12:3456:7800::/72","fd00:fd12:3456:7800:100::/72","fd00:fd12:3456:7800:200::/72","fd00:fd12:3456:7800:300::/88"]"#
        );
        assert_eq!(js("cidrsubnets", vec![s("10.0.0.0/8")]), "[]");
        assert!(fails("cidrsubnets", vec![s("10.0.0.0/30"), n("1"), n("1"), n("1")])
            .ends_with("not enough remaining address space for a subnet with a prefix of 31 bits after 10.0.0.2/31"));
        assert!(fails("cidrsubnets", vec![s("10.0.0.0/8"), n("0")]).ends_with("must extend prefix by at least one bit"));
        assert!(fails("cidrsubnets", vec![s("10.0.0.0/8"), n("25")])
            .ends_with("would extend prefix to 33 bits, which is too long for an IPv4 address"));
    }
}
