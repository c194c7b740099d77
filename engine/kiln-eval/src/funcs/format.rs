//! `format` and `formatlist`: Terraform's printf-style verbs (`%v %#v %t %s %q %d %b %o %x %X %e
//! %E %f %g %G %%`), flags (`+ - # 0` and space), width, precision and `[n]` argument indexes.
//!
//! Numbers print the way Go's `big.Float` and `big.Int` do. Terraform holds a number as a 512-bit
//! binary float, so a decimal exactly halfway between two printable results (2.675 at `%.2f`)
//! rounds the way that binary approximation lies; [`Digits`] reproduces it exactly.

use kiln_value::{Decimal, Value};

use super::{arg_err, arg_string, err, json, quote, to_bool, to_num, to_str, FuncError, Result, Spec};

pub(super) const FUNCS: &[Spec] = &[
    Spec::new("format", &["format"], |a| format(&arg_string(a, 0)?, &a[1..]).map(Value::String)).variadic("args"),
    Spec::new("formatlist", &["format"], formatlist).variadic("args"),
];

fn formatlist(a: &[Value]) -> Result<Value> {
    let spec = arg_string(a, 0)?;
    let vals = &a[1..];
    if vals.is_empty() {
        return Ok(Value::List(vec![Value::String(format(&spec, vals)?)]));
    }
    let mut len: Option<(usize, usize)> = None;
    for (i, v) in vals.iter().enumerate() {
        if let Value::List(l) = v {
            match len {
                None => len = Some((l.len(), i)),
                Some((n, j)) if n != l.len() => {
                    let m =
                        format!("argument {} has length {}, which is inconsistent with argument {} of length {n}", i + 1, l.len(), j + 1);
                    return Err(arg_err(i + 1, m));
                }
                _ => {}
            }
        }
    }
    let rows = len.map_or(1, |(n, _)| n);
    (0..rows)
        .map(|k| {
            let row: Vec<Value> = vals.iter().map(|v| if let Value::List(l) = v { l[k].clone() } else { v.clone() }).collect();
            format(&spec, &row).map(Value::String).map_err(|e| err(format!("error on format iteration {k}: {}", e.message)))
        })
        .collect::<Result<Vec<_>>>()
        .map(Value::List)
}

/// One `%` sequence of a format string.
#[derive(Default)]
struct Verb {
    raw: String,
    offset: usize,
    /// One-based index of the argument it formats.
    arg: usize,
    mode: char,
    zero: bool,
    sharp: bool,
    plus: bool,
    minus: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// The largest width or precision a verb may give (Go's `fmt` limit).
pub(super) const MAX_WIDTH: usize = 1_000_000;
/// The longest string `format` builds.
pub(super) const MAX_OUTPUT: usize = 64 << 20;

/// Formats `args` (the values after the format string) by `spec`.
pub(super) fn format(spec: &str, args: &[Value]) -> Result<String> {
    let mut out = String::new();
    let mut chars = spec.char_indices().peekable();
    let (mut next, mut highest) = (1, 0);
    let incomplete = || err(format!("invalid format string starting at offset {}", spec.len()));
    let bad_char = |(at, c): (usize, char)| err(format!("unrecognized format character '{c}' at offset {at}"));
    while let Some((start, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.next_if(|(_, c)| *c == '%').is_some() {
            out.push('%');
            continue;
        }
        let mut v = Verb { offset: start, arg: next, ..Verb::default() };
        while let Some((_, c)) = chars.next_if(|(_, c)| "0#-+ ".contains(*c)) {
            match c {
                '0' => v.zero = true,
                '#' => v.sharp = true,
                '-' => v.minus = true,
                '+' => v.plus = true,
                _ => v.space = true,
            }
        }
        let number = |chars: &mut std::iter::Peekable<std::str::CharIndices>| {
            let mut n: Option<usize> = None;
            while let Some((_, d)) = chars.next_if(|(_, c)| c.is_ascii_digit()) {
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize - '0' as usize));
            }
            n
        };
        if chars.next_if(|(_, c)| *c == '[').is_some() {
            match chars.peek().copied() {
                Some((_, '1'..='9')) => v.arg = number(&mut chars).unwrap_or(1),
                Some(other) => return Err(bad_char(other)),
                None => return Err(incomplete()),
            }
            match chars.next() {
                Some((_, ']')) => {}
                Some(other) => return Err(bad_char(other)),
                None => return Err(incomplete()),
            }
        }
        if matches!(chars.peek(), Some((_, '1'..='9'))) {
            v.width = number(&mut chars);
        }
        if chars.next_if(|(_, c)| *c == '.').is_some() {
            v.prec = Some(number(&mut chars).unwrap_or(0));
        }
        match chars.next() {
            Some((end, c)) if c.is_ascii_alphabetic() => {
                v.mode = c;
                v.raw = spec[start..=end].to_string();
            }
            Some(other) => return Err(bad_char(other)),
            None => return Err(incomplete()),
        }
        for (what, n) in [("width", v.width), ("precision", v.prec)] {
            if n.is_some_and(|n| n > MAX_WIDTH) {
                return Err(err(format!("{what} in {} at offset {} is too large: the limit is {MAX_WIDTH}", quote(&v.raw), v.offset)));
            }
        }
        highest = highest.max(v.arg);
        next = v.arg + 1;
        append(&v, &mut out, args).map_err(err)?;
        if out.len() > MAX_OUTPUT {
            return Err(err(format!("the result is longer than {MAX_OUTPUT} bytes, the limit")));
        }
    }
    if highest < args.len() {
        let message = if highest == 0 {
            "too many arguments; no verbs in format string".to_string()
        } else {
            format!("too many arguments; only {highest} used by format string")
        };
        return Err(FuncError { message, arg: Some(highest + 1) });
    }
    Ok(out)
}

fn append(v: &Verb, out: &mut String, args: &[Value]) -> std::result::Result<(), String> {
    let at = format!("{} at {}", quote(&v.raw), v.offset);
    let Some(arg) = args.get(v.arg - 1) else {
        return Err(format!("not enough arguments for {at}: need index {} but have {} total", v.arg, args.len()));
    };
    if v.mode != 'v' && arg.is_null() {
        return Err(format!("unsupported value for {at}: null value cannot be formatted"));
    }
    let unsupported = |m: String| format!("unsupported value for {at}: {m}");
    match v.mode {
        'v' => out.push_str(&pad(v, &as_is(v, arg))),
        't' => out.push_str(&to_bool(arg).map_err(unsupported)?.to_string()),
        'b' | 'd' | 'o' | 'x' | 'X' => {
            let n = to_num(arg).map_err(unsupported)?;
            if !n.fract().is_zero() {
                return Err(unsupported("an integer is required".to_string()));
            }
            out.push_str(&integer(v, n));
        }
        'e' | 'E' | 'f' | 'g' | 'G' => out.push_str(&float(v, to_num(arg).map_err(unsupported)?)),
        's' | 'q' => {
            let mut s = to_str(arg).map_err(unsupported)?;
            if let Some(p) = v.prec.filter(|p| *p > 0) {
                s = s.chars().take(p).collect();
            }
            let s = if v.mode == 'q' { json::encode(&Value::String(s)) } else { s };
            out.push_str(&pad(v, &s));
        }
        m => return Err(format!("unsupported format verb '{m}' in {} at offset {}", quote(&v.raw), v.offset)),
    }
    Ok(())
}

/// `%v`: strings as they are, numbers like `%g`, everything else (and `%#v`) as JSON.
fn as_is(v: &Verb, arg: &Value) -> String {
    match arg {
        Value::String(s) if !v.sharp => s.clone(),
        Value::Number(n) if !v.sharp => {
            let mut d = Digits::new(*n);
            format!("{}{}", if d.neg { "-" } else { "" }, d.general(None, 'e'))
        }
        other => json::encode(other),
    }
}

/// Pads to the verb's width in characters, as Terraform does for strings and `%v`.
fn pad(v: &Verb, s: &str) -> String {
    let Some(width) = v.width else { return s.to_string() };
    let len = s.chars().count();
    if len >= width {
        return s.to_string();
    }
    let fill = (if v.zero { "0" } else { " " }).repeat(width - len);
    if v.minus {
        format!("{s}{fill}")
    } else {
        format!("{fill}{s}")
    }
}

fn sign(v: &Verb, negative: bool) -> &'static str {
    match () {
        _ if negative => "-",
        _ if v.plus => "+",
        _ if v.space => " ",
        _ => "",
    }
}

/// `%b %d %o %x %X` like Go's `big.Int` formatter.
fn integer(v: &Verb, n: Decimal) -> String {
    let magnitude = n.trunc().mantissa().unsigned_abs() / 10u128.pow(n.trunc().scale());
    let mut digits = match v.mode {
        'b' => format!("{magnitude:b}"),
        'o' => format!("{magnitude:o}"),
        'x' => format!("{magnitude:x}"),
        'X' => format!("{magnitude:X}"),
        _ => magnitude.to_string(),
    };
    let sign = sign(v, n.is_sign_negative() && magnitude != 0);
    let prefix = match (v.sharp, v.mode) {
        (true, 'b') => "0b",
        (true, 'o') => "0",
        (true, 'x') => "0x",
        (true, 'X') => "0X",
        _ => "",
    };
    let mut zeros = 0;
    if let Some(p) = v.prec {
        if digits.len() < p {
            zeros = p - digits.len();
        } else if digits == "0" && p == 0 {
            return String::new();
        }
    }
    let length = sign.len() + prefix.len() + zeros + digits.len();
    let (mut left, mut right) = (0, 0);
    if let Some(w) = v.width.filter(|w| *w > length) {
        let d = w - length;
        if v.minus {
            right = d;
        } else if v.zero && v.prec.is_none() {
            zeros += d;
        } else {
            left = d;
        }
    }
    digits.insert_str(0, &"0".repeat(zeros));
    format!("{}{sign}{prefix}{digits}{}", " ".repeat(left), " ".repeat(right))
}

/// `%e %E %f %g %G` like Go's `big.Float` formatter.
fn float(v: &Verb, n: Decimal) -> String {
    let mut d = Digits::new(n);
    let body = match v.mode {
        'e' | 'E' => {
            let prec = v.prec.unwrap_or(6);
            d.round(1 + prec as i64);
            d.exponent(prec, v.mode)
        }
        'f' => {
            let prec = v.prec.unwrap_or(6);
            d.round(d.exp + prec as i64);
            d.fixed(prec)
        }
        _ => d.general(v.prec, if v.mode == 'G' { 'E' } else { 'e' }),
    };
    let sign = sign(v, d.neg);
    let fill = v.width.map_or(0, |w| w.saturating_sub(sign.len() + body.len()));
    if v.zero && !v.minus {
        format!("{sign}{}{body}", "0".repeat(fill))
    } else if v.minus {
        format!("{sign}{body}{}", " ".repeat(fill))
    } else {
        format!("{}{sign}{body}", " ".repeat(fill))
    }
}

/// How a decimal exactly halfway between two roundings rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tie {
    /// The number is exact in binary: half to even.
    Even,
    /// Its binary approximation lies above it: away from zero.
    Up,
    /// Its binary approximation lies below it: towards zero.
    Down,
}

/// A number as decimal digits: `0.d1d2d3... × 10^exp`, trailing zeros trimmed (Go's `decimal`).
struct Digits {
    neg: bool,
    mant: Vec<u8>,
    exp: i64,
    tie: Tie,
}

impl Digits {
    fn new(n: Decimal) -> Digits {
        let m = n.mantissa().unsigned_abs();
        if m == 0 {
            return Digits { neg: false, mant: Vec::new(), exp: 0, tie: Tie::Even };
        }
        let s = m.to_string();
        let exp = s.len() as i64 - i64::from(n.scale());
        let mant = s.trim_end_matches('0').as_bytes().to_vec();
        Digits { neg: n.is_sign_negative(), mant, exp, tie: binary_tie(m, n.scale()) }
    }

    /// Keeps `n` significant digits, rounding to nearest.
    fn round(&mut self, n: i64) {
        if n < 0 || n as usize >= self.mant.len() {
            return;
        }
        let n = n as usize;
        let up = match self.mant[n] {
            b'6'..=b'9' => true,
            b'5' if n + 1 < self.mant.len() => true,
            b'5' => match self.tie {
                Tie::Even => n > 0 && (self.mant[n - 1] - b'0') % 2 == 1,
                Tie::Up => true,
                Tie::Down => false,
            },
            _ => false,
        };
        self.mant.truncate(n);
        if up {
            match self.mant.iter().rposition(|d| *d < b'9') {
                Some(i) => {
                    self.mant[i] += 1;
                    self.mant.truncate(i + 1);
                }
                None => {
                    self.mant = vec![b'1'];
                    self.exp += 1;
                }
            }
        }
        while self.mant.last() == Some(&b'0') {
            self.mant.pop();
        }
    }

    fn at(&self, i: i64) -> char {
        usize::try_from(i).ok().and_then(|i| self.mant.get(i)).map_or('0', |d| *d as char)
    }

    /// Go's `%e` body with `prec` digits after the point.
    fn exponent(&self, prec: usize, e: char) -> String {
        let mut s = String::from(self.at(0));
        if prec > 0 {
            s.push('.');
            (1..=prec as i64).for_each(|i| s.push(self.at(i)));
        }
        let exp = if self.mant.is_empty() { 0 } else { self.exp - 1 };
        format!("{s}{e}{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }

    /// Go's `%f` body with `prec` digits after the point.
    fn fixed(&self, prec: usize) -> String {
        let mut s = if self.exp > 0 { (0..self.exp).map(|i| self.at(i)).collect() } else { "0".to_string() };
        if prec > 0 {
            s.push('.');
            (0..prec as i64).for_each(|i| s.push(self.at(self.exp + i)));
        }
        s
    }

    /// Go's `%g` body: `None` precision means the shortest exact form.
    fn general(&mut self, prec: Option<usize>, e: char) -> String {
        let shortest = prec.is_none();
        let mut prec = match prec {
            None => self.mant.len() as i64,
            Some(p) => {
                let p = p.max(1) as i64;
                self.round(p);
                p
            }
        };
        let len = self.mant.len() as i64;
        let mut eprec = prec;
        if eprec > len && len >= self.exp {
            eprec = len;
        }
        if shortest {
            eprec = 6;
        }
        let exp = self.exp - 1;
        if exp < -4 || exp >= eprec {
            prec = prec.min(len);
            return self.exponent((prec - 1).max(0) as usize, e);
        }
        if prec > self.exp {
            prec = len;
        }
        self.fixed((prec - self.exp).max(0) as usize)
    }
}

/// Which way Terraform's 512-bit binary approximation of `m / 10^scale` lies from it.
fn binary_tie(m: u128, scale: u32) -> Tie {
    let (mut m, mut t) = (m, scale);
    while t > 0 && m % 5 == 0 {
        m /= 5;
        t -= 1;
    }
    if t == 0 {
        return Tie::Even;
    }
    // x = m / 5^t (times a power of two, which does not change the mantissa). The mantissa is
    // q = round(x * 2^e) with 2^511 <= q < 2^512, and it rounded up when the remainder
    // (m * 2^e) mod 5^t is above half of 5^t.
    let p = 5u128.pow(t);
    let bits = |x: u128| 128 - x.leading_zeros() as i64;
    let k = bits(m) - bits(p);
    let above = if k >= 0 { m >= p << k } else { (m << -k) >= p };
    let log2 = if above { k } else { k - 1 };
    let r = mulmod(m % p, powmod(2, (511 - log2) as u32, p), p);
    if r > p - r {
        Tie::Up
    } else {
        Tie::Down
    }
}

fn mulmod(a: u128, b: u128, p: u128) -> u128 {
    // a, b < p < 2^67: split b so no product exceeds 2^101.
    let hi = (a * (b >> 32)) % p;
    ((hi << 32) % p + a * (b & 0xffff_ffff)) % p
}

fn powmod(mut base: u128, mut e: u32, p: u128) -> u128 {
    let mut acc = 1 % p;
    base %= p;
    while e > 0 {
        if e & 1 == 1 {
            acc = mulmod(acc, base, p);
        }
        base = mulmod(base, base, p);
        e >>= 1;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn f(spec: &str, args: Vec<Value>) -> String {
        let mut all = vec![s(spec)];
        all.extend(args);
        match ok("format", all) {
            Value::String(s) => s,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn widths_and_precisions_are_bounded() {
        let e = fails("format", vec![s("%9999999999d"), n("1")]);
        assert!(e.contains("width in \"%9999999999d\" at offset 0 is too large"), "{e}");
        let e = fails("format", vec![s("%.9999999999f"), n("1")]);
        assert!(e.contains("precision in \"%.9999999999f\" at offset 0 is too large"), "{e}");
        assert_eq!(f("%1000000d", vec![n("1")]).len(), MAX_WIDTH);
        let many = "%1000000d".repeat(70);
        let e = fails("format", std::iter::once(s(&many)).chain(std::iter::repeat_n(n("1"), 70)).collect());
        assert!(e.contains("longer than"), "{e}");
    }

    #[test]
    fn documentation_examples() {
        assert_eq!(f("Hello, %s!", vec![s("Ander")]), "Hello, Ander!");
        assert_eq!(f("There are %d lights", vec![n("4")]), "There are 4 lights");
        assert_eq!(f("%-5s|", vec![s("a")]), "a    |");
        assert_eq!(f("%5s|", vec![s("a")]), "    a|");
        assert_eq!(f("%.2f", vec![n("3.14159")]), "3.14");
        assert_eq!(f("%08.3f", vec![n("3.14159")]), "0003.142");
        assert_eq!(f("%q", vec![s("hi \"x\"")]), r#""hi \"x\"""#);
        assert_eq!(f("%v %v %v", vec![s("a"), n("1.5"), Value::Bool(true)]), "a 1.5 true");
        assert_eq!(f("%#v", vec![s("a")]), r#""a""#);
        assert_eq!(f("%v", vec![v(r#"{"b":[1,"x"],"a":null}"#)]), r#"{"a":null,"b":[1,"x"]}"#);
        assert_eq!(f("%v", vec![Value::Null]), "null");
        assert_eq!(f("%t", vec![s("true")]), "true");
        assert_eq!(f("100%%", vec![]), "100%");
        assert_eq!(f("%[2]s %[1]s %s", vec![s("a"), s("b")]), "b a b");
    }

    #[test]
    fn integer_verbs() {
        assert_eq!(f("%d %b %o %x %X", vec![n("255"), n("5"), n("8"), n("255"), n("255")]), "255 101 10 ff FF");
        assert_eq!(f("%#x %#o %#b", vec![n("255"), n("8"), n("5")]), "0xff 010 0b101");
        assert_eq!(f("%+d % d %d", vec![n("5"), n("5"), n("-5")]), "+5  5 -5");
        assert_eq!(f("%05d|%-5d|%5d", vec![n("-42"), n("42"), n("42")]), "-0042|42   |   42");
        assert_eq!(f("%.3d|%.0d|%8.3d", vec![n("7"), n("0"), n("-7")]), "007||    -007");
        assert_eq!(f("%d", vec![s("12")]), "12");
        assert_eq!(f("%d", vec![n("123456789012345678901234567")]), "123456789012345678901234567");
        assert_eq!(fails("format", vec![s("%d"), n("1.5")]), r#"unsupported value for "%d" at 0: an integer is required"#);
    }

    #[test]
    fn float_verbs() {
        let cases = [
            ("%f", "3", "3.000000"),
            ("%e", "1234.5678", "1.234568e+03"),
            ("%E", "0.000123", "1.230000E-04"),
            ("%.0f", "0.5", "0"),
            ("%.0f", "1.5", "2"),
            ("%.0f", "2.5", "2"),
            ("%.2f", "0.125", "0.12"),
            ("%.2f", "0.375", "0.38"),
            ("%.1f", "0.05", "0.1"),
            ("%.2f", "2.675", "2.67"),
            ("%.2f", "1.005", "1.00"),
            ("%.2f", "-0.001", "-0.00"),
            ("%.2f", "999.999", "1000.00"),
            ("%g", "100000", "100000"),
            ("%g", "1000000", "1e+06"),
            ("%g", "0.0001", "0.0001"),
            ("%g", "0.00001", "1e-05"),
            ("%.3g", "3.14159", "3.14"),
            ("%.3g", "31415.9", "3.14e+04"),
            ("%G", "1e-7", "1E-07"),
            ("%10.3f", "-3.14159", "    -3.142"),
            ("%-10.3f|", "3.14159", "3.142     |"),
            ("%+.1e", "12345", "+1.2e+04"),
            ("%.1f", "0", "0.0"),
            ("%e", "0", "0.000000e+00"),
        ];
        for (spec, num, want) in cases {
            assert_eq!(f(spec, vec![n(num)]), want, "{spec} of {num}");
        }
    }

    #[test]
    fn v_formats_numbers_like_g() {
        assert_eq!(f("%v", vec![n("1000000")]), "1e+06");
        assert_eq!(f("%v", vec![n("123456")]), "123456");
        assert_eq!(f("%v", vec![n("-0.5")]), "-0.5");
        assert_eq!(f("%v", vec![n("0")]), "0");
        assert_eq!(f("%5v|%-5v|%05v", vec![n("1"), s("ab"), n("7")]), "    1|ab   |00007");
    }

    #[test]
    fn strings_count_characters() {
        assert_eq!(f("%-4s|", vec![s("☃")]), "☃   |");
        assert_eq!(f("%.2s|", vec![s("héllo")]), "hé|");
        assert_eq!(f("%s %s", vec![n("1.50"), Value::Bool(false)]), "1.5 false");
        assert_eq!(f("%q", vec![n("5")]), r#""5""#);
    }

    #[test]
    fn format_errors() {
        let e = |spec: &str, args: Vec<Value>| {
            let mut all = vec![s(spec)];
            all.extend(args);
            fails("format", all)
        };
        assert_eq!(e("%s %s", vec![s("a")]), r#"not enough arguments for "%s" at 3: need index 2 but have 1 total"#);
        assert!(e("%s", vec![s("a"), s("b")]).ends_with("too many arguments; only 1 used by format string"));
        assert!(e("hello", vec![s("a")]).ends_with("too many arguments; no verbs in format string"));
        assert_eq!(e("%y", vec![s("a")]), r#"unsupported format verb 'y' in "%y" at offset 0"#);
        assert_eq!(e("abc%", vec![]), "invalid format string starting at offset 4");
        assert_eq!(e("%!", vec![]), "unrecognized format character '!' at offset 1");
        assert_eq!(e("%d", vec![Value::Null]), r#"unsupported value for "%d" at 0: null value cannot be formatted"#);
        assert_eq!(e("%s", vec![v("[1]")]), r#"unsupported value for "%s" at 0: string required"#);
        assert_eq!(e("%d", vec![s("x")]), r#"unsupported value for "%d" at 0: a number is required"#);
    }

    #[test]
    fn formatlist_iterates_lists() {
        assert_eq!(
            js("formatlist", vec![s("Hello, %s!"), v(r#"["Valentina","Ander","Olivia","Sam"]"#)]),
            r#"["Hello, Valentina!","Hello, Ander!","Hello, Olivia!","Hello, Sam!"]"#
        );
        assert_eq!(
            js("formatlist", vec![s("%s, %s!"), s("Salutations"), v(r#"["Valentina","Ander"]"#)]),
            r#"["Salutations, Valentina!","Salutations, Ander!"]"#
        );
        assert_eq!(js("formatlist", vec![s("%s=%d"), v(r#"["a","b"]"#), v("[1,2]")]), r#"["a=1","b=2"]"#);
        assert_eq!(js("formatlist", vec![s("x")]), r#"["x"]"#);
        assert_eq!(js("formatlist", vec![s("%s"), v("[]")]), "[]");
        assert!(fails("formatlist", vec![s("%s%s"), v("[1]"), v("[1,2]")])
            .ends_with("argument 2 has length 2, which is inconsistent with argument 1 of length 1"));
        assert_eq!(
            fails("formatlist", vec![s("%d"), v(r#"[1,"x"]"#)]),
            r#"error on format iteration 1: unsupported value for "%d" at 0: a number is required"#
        );
    }

    #[test]
    fn binary_ties_match_a_512_bit_float() {
        // Exactly representable in binary: half to even.
        assert_eq!(binary_tie(125, 3), Tie::Even);
        assert_eq!(binary_tie(5, 1), Tie::Even);
        // Verified against exact rational arithmetic of the nearest 512-bit float.
        assert_eq!(binary_tie(2675, 3), Tie::Down);
        assert_eq!(binary_tie(1005, 3), Tie::Down);
        assert_eq!(binary_tie(5, 2), Tie::Up);
        assert_eq!(binary_tie(15, 2), Tie::Up);
        assert_eq!(binary_tie(2665, 3), Tie::Up);
        assert_eq!(binary_tie(35, 2), Tie::Down);
        assert_eq!(binary_tie(145, 2), Tie::Up);
        assert_eq!(binary_tie(5, 4), Tie::Down);
        assert_eq!(binary_tie(1, 20), Tie::Up);
        assert_eq!(binary_tie(75, 22), Tie::Down);
        assert_eq!(binary_tie(123455, 1), Tie::Even);
    }
}
