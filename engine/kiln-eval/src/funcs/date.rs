//! Date and time functions: formatdate, timeadd, timecmp and timestamp, on RFC 3339 timestamps
//! with calendar arithmetic done here (proleptic Gregorian, fixed UTC offsets). Also the YAML
//! timestamp forms `yamldecode` turns into RFC 3339 strings.
//!
//! `timestamp` is impure (the time of the run), so it returns an unknown value: Terraform shows
//! it as known after apply.

use std::cmp::Ordering;

use kiln_value::Value;

use super::{arg_err, arg_string, Result, Spec};

pub(super) const FUNCS: &[Spec] = &[
    Spec::new("formatdate", &["format", "time"], formatdate),
    Spec::new("timeadd", &["timestamp", "duration"], timeadd),
    Spec::new("timecmp", &["timestamp_a", "timestamp_b"], timecmp),
    Spec::new("timestamp", &[], |_| Ok(Value::Unknown)),
];

/// An instant with the UTC offset it was written in.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Time {
    /// Seconds since 1970-01-01T00:00:00Z.
    secs: i64,
    nanos: u32,
    /// Seconds east of UTC.
    offset: i32,
}

/// Broken-down local time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday.
    weekday: u32,
}

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const WEEKDAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Time {
    fn civil(&self) -> Civil {
        let local = self.secs + i64::from(self.offset);
        let days = local.div_euclid(86400);
        let sod = local.rem_euclid(86400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil { year, month, day, hour: sod / 3600, minute: sod / 60 % 60, second: sod % 60, weekday: (days + 4).rem_euclid(7) as u32 }
    }

    /// The offset as `Z`, or `+hh:mm` / `-hh:mm` (with `colon`) or `+hhmm`.
    fn zone(&self, colon: bool, z: bool) -> String {
        if z && self.offset == 0 {
            return "Z".into();
        }
        let sign = if self.offset < 0 { '-' } else { '+' };
        let (h, m) = (self.offset.abs() / 3600, self.offset.abs() / 60 % 60);
        if colon {
            format!("{sign}{h:02}:{m:02}")
        } else {
            format!("{sign}{h:02}{m:02}")
        }
    }

    /// RFC 3339 without fractional seconds, as Go's `time.RFC3339` layout prints.
    fn rfc3339(&self) -> String {
        let c = self.civil();
        format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}", c.year, c.month, c.day, c.hour, c.minute, c.second, self.zone(true, true))
    }

    fn from_parts(p: &Parts, offset: i32) -> Time {
        let days = days_from_civil(p.year, p.month, p.day);
        let local = days * 86400 + i64::from(p.hour * 3600 + p.minute * 60 + p.second);
        Time { secs: local - i64::from(offset), nanos: p.nanos, offset }
    }
}

#[derive(Default)]
struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

/// A cursor over timestamp text.
struct Scan<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    /// Between `min` and `max` digits.
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let n = self.rest().bytes().take(max).take_while(u8::is_ascii_digit).count();
        if n < min {
            return None;
        }
        let v = self.rest()[..n].parse().ok()?;
        self.i += n;
        Some(v)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.i += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// Optional `.digits` fraction, as nanoseconds.
    fn fraction(&mut self) -> u32 {
        if !self.rest().starts_with('.') || !self.rest()[1..].starts_with(|c: char| c.is_ascii_digit()) {
            return 0;
        }
        self.i += 1;
        let n = self.rest().bytes().take_while(u8::is_ascii_digit).count();
        let digits = &self.rest()[..n];
        self.i += n;
        let mut nanos: u32 = 0;
        for (k, d) in digits.bytes().take(9).enumerate() {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - k as u32);
        }
        nanos
    }

    /// `Z`, `+hh:mm` or `-hh:mm`.
    fn zone(&mut self, lower_z: bool) -> Option<i32> {
        if self.eat('Z') || lower_z && self.eat('z') {
            return Some(0);
        }
        let sign = if self.eat('+') {
            1
        } else if self.eat('-') {
            -1
        } else {
            return None;
        };
        let h = self.digits(2, 2)?;
        if !self.eat(':') {
            return None;
        }
        let m = self.digits(2, 2)?;
        (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60) as i32)
    }
}

/// Parses an RFC 3339 timestamp strictly, with Terraform's messages.
fn parse_rfc3339(s: &str) -> std::result::Result<Time, String> {
    let fail = |m: String| format!("not a valid RFC3339 timestamp: {m}");
    let mut sc = Scan { s, i: 0 };
    let mut p = Parts::default();
    let field = |sc: &mut Scan, n: usize, what: &str| -> std::result::Result<u32, String> {
        sc.digits(n, n).ok_or_else(|| match sc.rest() {
            "" => fail(format!("end of string before {what}")),
            rest => fail(format!("cannot use {} as {what}", super::quote(rest))),
        })
    };
    let sep = |sc: &mut Scan, c: char| -> std::result::Result<(), String> {
        if sc.eat(c) {
            return Ok(());
        }
        Err(match sc.rest() {
            "" => fail(format!("end of string where {} is expected", super::quote(&c.to_string()))),
            rest => fail(format!("found {} where {} is expected", super::quote(rest), super::quote(&c.to_string()))),
        })
    };
    p.year = i64::from(field(&mut sc, 4, "year")?);
    sep(&mut sc, '-')?;
    p.month = field(&mut sc, 2, "month")?;
    sep(&mut sc, '-')?;
    p.day = field(&mut sc, 2, "day of month")?;
    if !sc.eat('T') {
        return Err(fail("missing required time introducer 'T'".into()));
    }
    p.hour = field(&mut sc, 2, "hour")?;
    sep(&mut sc, ':')?;
    p.minute = field(&mut sc, 2, "minute")?;
    sep(&mut sc, ':')?;
    p.second = field(&mut sc, 2, "second")?;
    p.nanos = sc.fraction();
    let offset = match sc.zone(false) {
        Some(o) => o,
        None if sc.rest().is_empty() => return Err(fail("end of string before UTC offset".into())),
        None => return Err(fail(format!("cannot use {} as UTC offset", super::quote(sc.rest())))),
    };
    if !sc.rest().is_empty() {
        return Err(fail(format!("extra text: {}", super::quote(sc.rest()))));
    }
    check_ranges(&p).map_err(fail)?;
    Ok(Time::from_parts(&p, offset))
}

fn check_ranges(p: &Parts) -> std::result::Result<(), String> {
    let out = |what: &str| Err(format!("{what} out of range"));
    if !(1..=12).contains(&p.month) {
        return out("month");
    }
    if p.day < 1 || p.day > days_in_month(p.year, p.month) {
        return out("day");
    }
    if p.hour > 23 {
        return out("hour");
    }
    if p.minute > 59 {
        return out("minute");
    }
    if p.second > 59 {
        return out("second");
    }
    Ok(())
}

fn arg_time(a: &[Value], i: usize) -> Result<Time> {
    parse_rfc3339(&arg_string(a, i)?).map_err(|m| arg_err(i, m))
}

/// The forms go-cty-yaml reads as timestamps (`2001-12-14`, `2001-12-14 21:59:43.10`,
/// `2001-12-14t21:59:43.10-05:00`), as RFC 3339 text.
pub(super) fn yaml_timestamp(s: &str) -> Option<String> {
    let mut sc = Scan { s, i: 0 };
    let mut p = Parts { year: i64::from(sc.digits(4, 4)?), ..Parts::default() };
    if !sc.eat('-') {
        return None;
    }
    p.month = sc.digits(1, 2)?;
    if !sc.eat('-') {
        return None;
    }
    p.day = sc.digits(1, 2)?;
    let mut offset = 0;
    if !sc.rest().is_empty() {
        let space = sc.eat(' ');
        if !space && !sc.eat('T') && !sc.eat('t') {
            return None;
        }
        p.hour = sc.digits(1, 2)?;
        sc.eat(':').then_some(())?;
        p.minute = sc.digits(1, 2)?;
        sc.eat(':').then_some(())?;
        p.second = sc.digits(1, 2)?;
        p.nanos = sc.fraction();
        if !space {
            offset = sc.zone(false)?;
        }
    }
    if !sc.rest().is_empty() || check_ranges(&p).is_err() {
        return None;
    }
    Some(Time::from_parts(&p, offset).rfc3339())
}

fn formatdate(a: &[Value]) -> Result<Value> {
    let spec = arg_string(a, 0)?;
    let t = arg_time(a, 1)?;
    let c = t.civil();
    let mut out = String::new();
    let chars: Vec<char> = spec.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        if ch == '\'' {
            let end = literal_end(&chars, i);
            let tok = &chars[i..end];
            if tok.len() == 1 || tok.last() != Some(&'\'') {
                return Err(arg_err(0, "unterminated literal '"));
            }
            if tok.len() == 2 {
                out.push('\'');
            } else {
                let raw = &tok[1..tok.len() - 1];
                let mut k = 0;
                while k < raw.len() {
                    out.push(raw[k]);
                    k += if raw[k] == '\'' { 2 } else { 1 };
                }
            }
            i = end;
            continue;
        }
        if !ch.is_ascii_alphabetic() {
            out.push(ch);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|c| **c == ch).count();
        let verb: String = chars[i..i + run].iter().collect();
        i += run;
        let bad = |rule: &str| {
            let m = format!("invalid date format verb {}{rule}", super::quote(&verb));
            Err(arg_err(0, m))
        };
        let num = |v: u32| if run == 1 { v.to_string() } else { format!("{v:02}") };
        let piece = match (ch, run) {
            ('Y', 2) => format!("{:02}", c.year.rem_euclid(100)),
            ('Y', 4) => format!("{:04}", c.year),
            ('Y', _) => return bad(": year must either be \"YY\" or \"YYYY\""),
            ('M', 1 | 2) => num(c.month),
            ('M', 3) => MONTHS[c.month as usize - 1][..3].to_string(),
            ('M', 4) => MONTHS[c.month as usize - 1].to_string(),
            ('M', _) => return bad(": month must be \"M\", \"MM\", \"MMM\", or \"MMMM\""),
            ('D', 1 | 2) => num(c.day),
            ('D', _) => return bad(": day of month must either be \"D\" or \"DD\""),
            ('E', 3) => WEEKDAYS[c.weekday as usize][..3].to_string(),
            ('E', 4) => WEEKDAYS[c.weekday as usize].to_string(),
            ('E', _) => return bad(": day of week must either be \"EEE\" or \"EEEE\""),
            ('h', 1 | 2) => num(c.hour),
            ('h', _) => return bad(": 24-hour must either be \"h\" or \"hh\""),
            ('H', 1 | 2) => num(if c.hour % 12 == 0 { 12 } else { c.hour % 12 }),
            ('H', _) => return bad(": 12-hour must either be \"H\" or \"HH\""),
            ('A' | 'a', 2) => {
                let pm = if c.hour >= 12 { "PM" } else { "AM" };
                if ch == 'A' {
                    pm.to_string()
                } else {
                    pm.to_lowercase()
                }
            }
            ('A' | 'a', _) => return bad(": must be \"AA\" or \"aa\""),
            ('m', 1 | 2) => num(c.minute),
            ('m', _) => return bad(": minute must either be \"m\" or \"mm\""),
            ('s', 1 | 2) => num(c.second),
            ('s', _) => return bad(": second must either be \"s\" or \"ss\""),
            ('Z', 1) => t.zone(true, true),
            ('Z', 3) if t.offset == 0 => "UTC".to_string(),
            ('Z', 3 | 4) => t.zone(false, false),
            ('Z', 5) => t.zone(true, false),
            ('Z', _) => return bad(": timezone must be Z, ZZZZ, or ZZZZZ"),
            _ => return bad(""),
        };
        out.push_str(&piece);
    }
    Ok(Value::String(out))
}

/// Where a quoted literal starting at `i` ends: `''` alone is an escaped quote; inside a literal
/// a doubled quote does not end it.
fn literal_end(chars: &[char], i: usize) -> usize {
    if chars.get(i + 1) == Some(&'\'') {
        return i + 2;
    }
    let mut j = i + 1;
    while j < chars.len() {
        if chars[j] == '\'' {
            if j + 1 == chars.len() {
                return chars.len();
            }
            if chars[j + 1] != '\'' {
                return j + 1;
            }
            j += 1;
        }
        j += 1;
    }
    chars.len()
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn parse_duration(s: &str) -> std::result::Result<i128, String> {
    let invalid = || format!("time: invalid duration {}", super::quote(s));
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int: i128 = if int_len == 0 { 0 } else { rest[..int_len].parse().map_err(|_| invalid())? };
        rest = &rest[int_len..];
        let mut frac = "";
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            frac = &r[..n];
            rest = &r[n..];
        }
        if int_len == 0 && frac.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration {}", super::quote(s))),
            u => return Err(format!("time: unknown unit {} in duration {}", super::quote(u), super::quote(s))),
        };
        let mut v = int.checked_mul(scale).ok_or_else(invalid)?;
        if !frac.is_empty() {
            let f: f64 = format!("0.{frac}").parse().map_err(|_| invalid())?;
            v += (f * scale as f64) as i128;
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
    }
    Ok(if neg { -total } else { total })
}

fn timeadd(a: &[Value]) -> Result<Value> {
    let t = arg_time(a, 0)?;
    let d = parse_duration(&arg_string(a, 1)?).map_err(|m| arg_err(1, m))?;
    let total = i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos) + d;
    let secs = total.div_euclid(1_000_000_000) as i64;
    let nanos = total.rem_euclid(1_000_000_000) as u32;
    Ok(Value::String(Time { secs, nanos, offset: t.offset }.rfc3339()))
}

fn timecmp(a: &[Value]) -> Result<Value> {
    let (x, y) = (arg_time(a, 0)?, arg_time(a, 1)?);
    let order = (x.secs, x.nanos).cmp(&(y.secs, y.nanos));
    Ok(Value::from(match order {
        Ordering::Less => -1i64,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn formatdate_documentation_examples() {
        let fd = |f: &str, t: &str| ok("formatdate", vec![s(f), s(t)]);
        assert_eq!(fd("DD MMM YYYY hh:mm ZZZ", "2018-01-02T23:12:01Z"), s("02 Jan 2018 23:12 UTC"));
        assert_eq!(fd("EEEE, DD-MMM-YY hh:mm:ss ZZZ", "2018-01-02T23:12:01Z"), s("Tuesday, 02-Jan-18 23:12:01 UTC"));
        assert_eq!(fd("EEE, DD MMM YYYY hh:mm:ss ZZZ", "2018-01-02T23:12:01-08:00"), s("Tue, 02 Jan 2018 23:12:01 -0800"));
        assert_eq!(fd("MMM DD, YYYY", "2018-01-02T23:12:01Z"), s("Jan 02, 2018"));
        assert_eq!(fd("HH:mmaa", "2018-01-02T23:12:01Z"), s("11:12pm"));
        assert_eq!(fd("h'h'mm", "2018-01-02T23:12:01-08:00"), s("23h12"));
        assert_eq!(fd("H 'o''clock'", "2018-01-02T23:12:01-08:00"), s("11 o'clock"));
        assert_eq!(fd("YYYY-MM-DD'T'hh:mm:ssZ", "2018-01-02T03:04:05+05:30"), s("2018-01-02T03:04:05+05:30"));
        assert_eq!(fd("D/M/YY Z ZZZZ ZZZZZ", "2009-07-05T00:00:00Z"), s("5/7/09 Z +0000 +00:00"));
        assert_eq!(fd("'' h", "2018-01-02T00:12:01Z"), s("' 0"));
        assert_eq!(fd("H AA", "2018-01-02T00:12:01Z"), s("12 AM"));
    }

    #[test]
    fn formatdate_errors() {
        assert!(fails("formatdate", vec![s("YYY"), s("2018-01-02T23:12:01Z")])
            .ends_with(r#"invalid date format verb "YYY": year must either be "YY" or "YYYY""#));
        assert!(fails("formatdate", vec![s("'abc"), s("2018-01-02T23:12:01Z")]).ends_with("unterminated literal '"));
        assert!(fails("formatdate", vec![s("x"), s("2018-01-02T23:12:01Z")]).ends_with(r#"invalid date format verb "x""#));
        let bad = |t: &str| fails("formatdate", vec![s("YYYY"), s(t)]);
        assert!(bad("2018-01-02").ends_with("not a valid RFC3339 timestamp: missing required time introducer 'T'"));
        assert!(bad("2018-01-02T23:12").ends_with(r#"not a valid RFC3339 timestamp: end of string where ":" is expected"#));
        assert!(bad("2018-13-02T23:12:01Z").ends_with("not a valid RFC3339 timestamp: month out of range"));
        assert!(bad("2018-02-30T23:12:01Z").ends_with("not a valid RFC3339 timestamp: day out of range"));
        assert!(bad("2018-01-02T23:12:01").ends_with("not a valid RFC3339 timestamp: end of string before UTC offset"));
        assert!(bad("18-01-02T23:12:01Z").ends_with(r#"not a valid RFC3339 timestamp: cannot use "18-01-02T23:12:01Z" as year"#));
    }

    #[test]
    fn timeadd_examples() {
        let add = |t: &str, d: &str| ok("timeadd", vec![s(t), s(d)]);
        assert_eq!(add("2017-11-22T00:00:00Z", "10m"), s("2017-11-22T00:10:00Z"));
        assert_eq!(add("2017-11-22T00:00:00Z", "-1h30m"), s("2017-11-21T22:30:00Z"));
        assert_eq!(add("2017-11-22T00:00:00+01:00", "24h"), s("2017-11-23T00:00:00+01:00"));
        assert_eq!(add("2024-02-28T12:00:00Z", "36h"), s("2024-03-01T00:00:00Z"));
        assert_eq!(add("2017-11-22T00:00:00.5Z", "1.5s"), s("2017-11-22T00:00:02Z"));
        assert_eq!(add("2017-11-22T00:00:00+00:00", "0"), s("2017-11-22T00:00:00Z"));
        assert!(fails("timeadd", vec![s("2017-11-22T00:00:00Z"), s("1d")]).ends_with(r#"time: unknown unit "d" in duration "1d""#));
        assert!(fails("timeadd", vec![s("2017-11-22T00:00:00Z"), s("10")]).ends_with(r#"time: missing unit in duration "10""#));
        assert!(fails("timeadd", vec![s("2017-11-22T00:00:00Z"), s("x")]).ends_with(r#"time: invalid duration "x""#));
    }

    #[test]
    fn timecmp_and_timestamp() {
        let cmp = |x: &str, y: &str| ok("timecmp", vec![s(x), s(y)]);
        assert_eq!(cmp("2017-11-22T00:00:00Z", "2017-11-22T00:00:00Z"), n("0"));
        assert_eq!(cmp("2017-11-22T00:00:00Z", "2017-11-22T01:00:00Z"), n("-1"));
        assert_eq!(cmp("2017-11-22T01:00:00Z", "2017-11-22T00:00:00Z"), n("1"));
        assert_eq!(cmp("2017-11-22T01:00:00Z", "2017-11-22T00:00:00-01:00"), n("0"));
        assert_eq!(ok("timestamp", vec![]), Value::Unknown);
    }

    #[test]
    fn calendar_round_trip() {
        for days in [-719468, -1, 0, 59, 11016, 19782, 2932896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(yaml_timestamp("2001-12-14").as_deref(), Some("2001-12-14T00:00:00Z"));
        assert_eq!(yaml_timestamp("2001-12-14t21:59:43.10-05:00").as_deref(), Some("2001-12-14T21:59:43-05:00"));
        assert_eq!(yaml_timestamp("2001-12-14 21:59:43.10").as_deref(), Some("2001-12-14T21:59:43Z"));
        assert_eq!(yaml_timestamp("2001-2-3T4:5:6Z").as_deref(), Some("2001-02-03T04:05:06Z"));
        assert_eq!(yaml_timestamp("2001-12-14x"), None);
        assert_eq!(yaml_timestamp("12345"), None);
    }
}
