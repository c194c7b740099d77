//! JSON text for `jsonencode`, `jsondecode` and `%#v`: Terraform's compact encoding (keys sorted,
//! HTML characters escaped like Go's encoder, numbers exact without exponent) and an exact
//! decoder (numbers keep every decimal digit) with Go-style error messages.

use std::fmt::Write;

use kiln_value::{format_number, Map, Value};

use super::{parse_decimal, quote};

/// Compact JSON as Terraform's `jsonencode` writes it. Unknowns encode as null (callers check).
pub(super) fn encode(v: &Value) -> String {
    let mut out = String::new();
    write_value(v, &mut out);
    out
}

fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Null | Value::Unknown => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&format_number(*n)),
        Value::String(s) => write_string(s, out),
        Value::List(l) => {
            out.push('[');
            for (i, v) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(v, out);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_value(v, out);
            }
            out.push('}');
        }
        Value::Sensitive(v) => write_value(v, out),
    }
}

/// A JSON string with Go's escapes: `<`, `>`, `&`, U+2028 and U+2029 as `\u` sequences.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses JSON text into a value, numbers exactly.
pub(super) fn decode(text: &str) -> Result<Value, String> {
    let mut p = Parser { s: text.as_bytes(), i: 0, text, depth: 0 };
    p.space();
    if p.i == p.s.len() {
        return Err("unexpected end of JSON input".into());
    }
    let v = p.value()?;
    p.space();
    if p.i < p.s.len() {
        return Err("extraneous data after JSON object".into());
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
    /// Arrays and objects open around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// "invalid character 'x' {context}", or the end-of-input error.
    fn bad(&self, context: &str) -> String {
        match self.text[self.i.min(self.text.len())..].chars().next() {
            None => "unexpected end of JSON input".into(),
            Some(c) => format!("invalid character {} {context}", quote_char(c)),
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'{' | b'[') => {
                if self.depth >= kiln_value::MAX_DEPTH {
                    return Err(too_deep());
                }
                self.depth += 1;
                let v = if self.peek() == Some(b'{') { self.object() } else { self.array() };
                self.depth -= 1;
                v
            }
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.word("true", Value::Bool(true)),
            Some(b'f') => self.word("false", Value::Bool(false)),
            Some(b'n') => self.word("null", Value::Null),
            _ => Err(self.bad("looking for beginning of value")),
        }
    }

    fn word(&mut self, w: &str, v: Value) -> Result<Value, String> {
        for expected in w.bytes() {
            if self.peek() != Some(expected) {
                return Err(self.bad(&format!("in literal {w} (expecting {})", quote_char(expected as char))));
            }
            self.i += 1;
        }
        Ok(v)
    }

    fn object(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut m = Map::new();
        self.space();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Value::Map(m));
        }
        loop {
            self.space();
            if self.peek() != Some(b'"') {
                return Err(self.bad("looking for beginning of object key string"));
            }
            let key = self.string()?;
            self.space();
            if self.peek() != Some(b':') {
                return Err(self.bad("after object key"));
            }
            self.i += 1;
            self.space();
            let v = self.value()?;
            if m.insert(key.clone(), v).is_some() {
                return Err(format!("duplicate {} property in JSON object", quote(&key)));
            }
            self.space();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Map(m));
                }
                _ => return Err(self.bad("after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut l = Vec::new();
        self.space();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Value::List(l));
        }
        loop {
            self.space();
            l.push(self.value()?);
            self.space();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::List(l));
                }
                _ => return Err(self.bad("after array element")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let from = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i > from
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        if self.peek() == Some(b'0') {
            self.i += 1;
        } else if !digits(self) {
            return Err(self.bad("in numeric literal"));
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !digits(self) {
                return Err(self.bad("after decimal point in numeric literal"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return Err(self.bad("in exponent of numeric literal"));
            }
        }
        let text = &self.text[start..self.i];
        parse_decimal(text).map(Value::Number).ok_or_else(|| format!("number {text} is out of the supported range"))
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.i..];
            let Some(c) = rest.chars().next() else { return Err("unexpected end of JSON input".into()) };
            match c {
                '"' => {
                    self.i += 1;
                    return Ok(out);
                }
                '\\' => {
                    self.i += 1;
                    out.push(self.escape()?);
                }
                c if (c as u32) < 0x20 => return Err(self.bad("in string literal")),
                c => {
                    out.push(c);
                    self.i += c.len_utf8();
                }
            }
        }
    }

    fn escape(&mut self) -> Result<char, String> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.i += 1;
                let hi = self.hex4()?;
                if (0xD800..0xDC00).contains(&hi) && self.text[self.i..].starts_with("\\u") {
                    let save = self.i;
                    self.i += 2;
                    let lo = self.hex4()?;
                    if (0xDC00..0xE000).contains(&lo) {
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
                    }
                    self.i = save;
                }
                return Ok(char::from_u32(hi).unwrap_or('\u{FFFD}'));
            }
            _ => return Err(self.bad("in string escape code")),
        };
        self.i += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut v = 0;
        for _ in 0..4 {
            let d = self.peek().and_then(|b| (b as char).to_digit(16)).ok_or_else(|| self.bad("in \\u hexadecimal character escape"))?;
            v = v * 16 + d;
            self.i += 1;
        }
        Ok(v)
    }
}

/// The error for input nested deeper than kiln's values may be.
pub(super) fn too_deep() -> String {
    format!("nested deeper than {} levels of lists and objects, kiln's limit", kiln_value::MAX_DEPTH)
}

/// A character in single quotes as Go's JSON errors print it.
fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".into(),
        '"' => "'\"'".into(),
        c => {
            let q = quote(&c.to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_terraform() {
        let v = decode(r#"{"b": [1, 2.50, true, null], "a": "x<y>&z\u2028", "c": {"d": 1e3}}"#).unwrap();
        assert_eq!(encode(&v), r#"{"a":"x\u003cy\u003e\u0026z\u2028","b":[1,2.5,true,null],"c":{"d":1000}}"#);
        assert_eq!(encode(&Value::from("tab\there\u{1}\u{8}")), r#""tab\there\u0001\b""#);
    }

    #[test]
    fn decodes_numbers_exactly() {
        assert_eq!(encode(&decode("0.1").unwrap()), "0.1");
        assert_eq!(encode(&decode("123456789012345678901234567").unwrap()), "123456789012345678901234567");
        assert_eq!(encode(&decode("-1.5e-3").unwrap()), "-0.0015");
        assert_eq!(decode(r#""\ud83d\ude00 \u00e9""#).unwrap(), Value::from("😀 é"));
    }

    #[test]
    fn decode_errors() {
        let e = |s: &str| decode(s).unwrap_err();
        assert_eq!(e(""), "unexpected end of JSON input");
        assert_eq!(e("{"), "unexpected end of JSON input");
        assert_eq!(e("x"), "invalid character 'x' looking for beginning of value");
        assert_eq!(e("[1,]"), "invalid character ']' looking for beginning of value");
        assert_eq!(e(r#"{"a" 1}"#), "invalid character '1' after object key");
        assert_eq!(e(r#"{"a":1 "b":2}"#), "invalid character '\"' after object key:value pair");
        assert_eq!(e("[1 2]"), "invalid character '2' after array element");
        assert_eq!(e("01"), "extraneous data after JSON object");
        assert_eq!(e("1 2"), "extraneous data after JSON object");
        assert_eq!(e(r#"{"a":1,"a":2}"#), r#"duplicate "a" property in JSON object"#);
        assert_eq!(e("tru"), "unexpected end of JSON input");
        assert_eq!(e("\"\\x\""), "invalid character 'x' in string escape code");
    }

    #[test]
    fn nesting_is_limited_to_max_depth() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(decode(&nested(kiln_value::MAX_DEPTH)).is_ok());
        assert_eq!(decode(&nested(kiln_value::MAX_DEPTH + 1)).unwrap_err(), too_deep());
        // Far deeper input is refused without exhausting the stack.
        assert_eq!(decode(&nested(40_000)).unwrap_err(), too_deep());
        assert_eq!(decode(&"{\"a\":".repeat(40_000)).unwrap_err(), too_deep());
    }
}
