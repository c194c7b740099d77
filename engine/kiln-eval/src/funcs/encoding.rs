//! Encoding functions: base64decode, base64encode, base64gzip, csvdecode, jsondecode,
//! jsonencode, textdecodebase64, textencodebase64, urlencode, yamldecode and yamlencode.
//! The JSON and YAML codecs themselves live in `json.rs` and `yaml.rs`.

use std::io::Write;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use kiln_value::{Map, Value};

use super::{arg_err, arg_string, err, json, quote, yaml, Result, Spec};

pub(super) const FUNCS: &[Spec] = &[
    Spec::new("base64decode", &["str"], base64decode),
    Spec::new("base64encode", &["str"], |a| Ok(Value::String(BASE64.encode(arg_string(a, 0)?)))),
    Spec::new("base64gzip", &["str"], base64gzip),
    Spec::new("csvdecode", &["str"], csvdecode),
    Spec::new("jsondecode", &["str"], |a| json::decode(&arg_string(a, 0)?).map_err(|m| arg_err(0, m))),
    Spec::new("jsonencode", &["val"], |a| Ok(Value::String(json::encode(&a[0])))),
    Spec::new("textdecodebase64", &["source", "encoding"], textdecodebase64),
    Spec::new("textencodebase64", &["string", "encoding"], textencodebase64),
    Spec::new("urlencode", &["str"], |a| Ok(Value::String(urlencode(&arg_string(a, 0)?)))),
    Spec::new("yamldecode", &["src"], |a| yaml::decode(&arg_string(a, 0)?).map_err(|m| arg_err(0, m))),
    Spec::new("yamlencode", &["value"], |a| Ok(Value::String(yaml::encode(&a[0])))),
];

/// Go's `base64.StdEncoding`: padded, tolerant of non-zero trailing bits.
pub(super) const BASE64: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true));

/// Decodes like Go, which skips line breaks inside base64 text.
fn decode_base64(s: &str) -> std::result::Result<Vec<u8>, base64::DecodeError> {
    BASE64.decode(s.replace(['\r', '\n'], ""))
}

fn base64decode(a: &[Value]) -> Result<Value> {
    let s = arg_string(a, 0)?;
    let bytes = decode_base64(&s).map_err(|_| err(format!("failed to decode base64 data {}", quote(&s))))?;
    String::from_utf8(bytes).map(Value::String).map_err(|_| err("the result of decoding the provided string is not valid UTF-8"))
}

fn base64gzip(a: &[Value]) -> Result<Value> {
    let s = arg_string(a, 0)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(s.as_bytes())
        .and_then(|_| gz.finish())
        .map(|bytes| Value::String(BASE64.encode(bytes)))
        .map_err(|e| err(format!("failed to compress: {e}")))
}

/// Go's `url.QueryEscape`.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn csvdecode(a: &[Value]) -> Result<Value> {
    let s = arg_string(a, 0)?;
    let mut records = csv_records(&s).map_err(err)?.into_iter();
    let headers = records.next().ok_or_else(|| err("missing header line"))?;
    for (i, h) in headers.iter().enumerate() {
        if headers[..i].contains(h) {
            return Err(err(format!("duplicate column name {}", quote(h))));
        }
    }
    Ok(Value::List(
        records.map(|row| Value::Map(headers.iter().cloned().zip(row.into_iter().map(Value::String)).collect::<Map>())).collect(),
    ))
}

/// Splits CSV text into records the way Go's `encoding/csv` reader does by default: every record
/// must have as many fields as the first, quotes only around whole fields, empty lines skipped.
fn csv_records(s: &str) -> std::result::Result<Vec<Vec<String>>, String> {
    let fail = |line: usize, what: &str| format!("CSV parse error on line {line}: {what}");
    const BARE: &str = "bare \" in non-quoted-field";
    const QUOTE: &str = "extraneous or missing \" in quoted-field";
    let mut lines = s.split_inclusive('\n').map(|l| l.strip_suffix("\r\n").map_or(l.to_string(), |x| format!("{x}\n")));
    let mut line_no = 0;
    let mut records: Vec<Vec<String>> = Vec::new();
    while let Some(first) = lines.next() {
        line_no += 1;
        if first == "\n" {
            continue;
        }
        let start = line_no;
        let mut fields = Vec::new();
        let mut line = first;
        loop {
            if let Some(rest) = line.strip_prefix('"') {
                // Quoted field, possibly spanning lines.
                let mut field = String::new();
                let mut rest = rest.to_string();
                loop {
                    match rest.find('"') {
                        Some(i) => {
                            field.push_str(&rest[..i]);
                            let after = &rest[i + 1..];
                            if let Some(more) = after.strip_prefix('"') {
                                field.push('"');
                                rest = more.to_string();
                            } else if let Some(more) = after.strip_prefix(',') {
                                fields.push(field);
                                line = more.to_string();
                                break;
                            } else if after.is_empty() || after == "\n" {
                                fields.push(field);
                                line = String::new();
                                break;
                            } else {
                                return Err(fail(line_no, QUOTE));
                            }
                        }
                        None if !rest.is_empty() => {
                            field.push_str(&rest);
                            match lines.next() {
                                Some(next) => {
                                    line_no += 1;
                                    rest = next;
                                }
                                None => return Err(fail(line_no, QUOTE)),
                            }
                        }
                        None => return Err(fail(line_no, QUOTE)),
                    }
                }
                if line.is_empty() {
                    break;
                }
            } else {
                let body = line.strip_suffix('\n').unwrap_or(&line);
                let (field, more) = match body.find(',') {
                    Some(i) => (&body[..i], Some(body[i + 1..].to_string())),
                    None => (body, None),
                };
                if field.contains('"') {
                    return Err(fail(line_no, BARE));
                }
                fields.push(field.to_string());
                match more {
                    Some(m) => line = m,
                    None => break,
                }
            }
        }
        if let Some(want) = records.first().map(Vec::len) {
            if fields.len() != want {
                return Err(fail(start, "wrong number of fields"));
            }
        }
        records.push(fields);
    }
    Ok(records)
}

/// A text encoding by its IANA name or alias: its canonical name and kind.
fn encoding(name: &str) -> Option<(&'static str, Charset)> {
    const TABLE: &[(&str, Charset, &[&str])] = &[
        ("UTF-8", Charset::Utf8, &["csutf8"]),
        ("UTF-16", Charset::Utf16 { le: false, bom: true }, &["csutf16"]),
        ("UTF-16BE", Charset::Utf16 { le: false, bom: false }, &["csutf16be"]),
        ("UTF-16LE", Charset::Utf16 { le: true, bom: false }, &["csutf16le"]),
        ("ISO-8859-1", Charset::Latin1, &["iso-ir-100", "iso_8859-1", "latin1", "l1", "ibm819", "cp819", "csisolatin1", "iso_8859-1:1987"]),
    ];
    let lower = name.to_ascii_lowercase();
    TABLE.iter().find(|(n, _, aliases)| n.eq_ignore_ascii_case(name) || aliases.contains(&lower.as_str())).map(|(n, c, _)| (*n, *c))
}

#[derive(Clone, Copy)]
enum Charset {
    Utf8,
    Utf16 { le: bool, bom: bool },
    Latin1,
}

fn named_encoding(a: &[Value]) -> Result<(&'static str, Charset)> {
    let name = arg_string(a, 1)?;
    encoding(&name)
        .ok_or_else(|| arg_err(1, format!("{} is not a supported IANA encoding name or alias in this Terraform version", quote(&name))))
}

fn textencodebase64(a: &[Value]) -> Result<Value> {
    let s = arg_string(a, 0)?;
    let (name, charset) = named_encoding(a)?;
    let bytes: Vec<u8> = match charset {
        Charset::Utf8 => s.into_bytes(),
        Charset::Utf16 { le, bom } => {
            let units = (bom.then_some(0xFEFF)).into_iter().chain(s.encode_utf16());
            units.flat_map(|u| if le { u.to_le_bytes() } else { u.to_be_bytes() }).collect()
        }
        Charset::Latin1 => s
            .chars()
            .map(|c| u8::try_from(c as u32))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| arg_err(0, format!("the given string contains characters that cannot be represented in {name}")))?,
    };
    Ok(Value::String(BASE64.encode(bytes)))
}

fn textdecodebase64(a: &[Value]) -> Result<Value> {
    let s = arg_string(a, 0)?;
    let (name, charset) = named_encoding(a)?;
    let bytes = decode_base64(&s).map_err(|e| {
        let offset = match e {
            base64::DecodeError::InvalidByte(o, _) | base64::DecodeError::InvalidLastSymbol(o, _) => o,
            _ => s.len(),
        };
        arg_err(0, format!("the given value is has an invalid base64 symbol at offset {offset}"))
    })?;
    let text = match charset {
        Charset::Utf8 => String::from_utf8_lossy(&bytes).into_owned(),
        Charset::Utf16 { le, bom } => {
            let mut le = le;
            let mut body = &bytes[..];
            if bom && body.len() >= 2 {
                match (body[0], body[1]) {
                    (0xFE, 0xFF) => body = &body[2..],
                    (0xFF, 0xFE) => {
                        le = true;
                        body = &body[2..];
                    }
                    _ => {}
                }
            }
            let mut units: Vec<u16> = body
                .chunks(2)
                .map(|c| {
                    if c.len() < 2 {
                        0xFFFD
                    } else if le {
                        u16::from_le_bytes([c[0], c[1]])
                    } else {
                        u16::from_be_bytes([c[0], c[1]])
                    }
                })
                .collect();
            if body.len() % 2 == 1 {
                units.push(0xD800);
            }
            String::from_utf16_lossy(&units)
        }
        Charset::Latin1 => bytes.iter().map(|b| *b as char).collect(),
    };
    if text.contains('\u{FFFD}') {
        return Err(arg_err(0, format!("the given string contains symbols that are not defined for {name}")));
    }
    Ok(Value::String(text))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn base64_round_trips() {
        assert_eq!(ok("base64encode", vec![s("Hello World")]), s("SGVsbG8gV29ybGQ="));
        assert_eq!(ok("base64decode", vec![s("SGVsbG8gV29ybGQ=")]), s("Hello World"));
        assert_eq!(ok("base64decode", vec![s("SGVsbG8g\nV29ybGQ=")]), s("Hello World"));
        assert_eq!(fails("base64decode", vec![s("SGVsbG8")]), r#"failed to decode base64 data "SGVsbG8""#);
        assert_eq!(fails("base64decode", vec![s("/w==")]), "the result of decoding the provided string is not valid UTF-8");
    }

    #[test]
    fn gzip_decompresses_back() {
        let Value::String(out) = ok("base64gzip", vec![s("test")]) else { panic!() };
        let bytes = BASE64.decode(out).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text).unwrap();
        assert_eq!(text, "test");
    }

    #[test]
    fn urlencode_like_go() {
        assert_eq!(ok("urlencode", vec![s("Hello World!")]), s("Hello+World%21"));
        assert_eq!(ok("urlencode", vec![s("☃")]), s("%E2%98%83"));
        assert_eq!(ok("urlencode", vec![s("foo:bar@localhost?foo=bar&bar=baz")]), s("foo%3Abar%40localhost%3Ffoo%3Dbar%26bar%3Dbaz"));
        assert_eq!(ok("urlencode", vec![s("a-b_c.d~e")]), s("a-b_c.d~e"));
    }

    #[test]
    fn csv() {
        assert_eq!(js("csvdecode", vec![s("a,b,c\n1,2,3\n4,5,6")]), r#"[{"a":"1","b":"2","c":"3"},{"a":"4","b":"5","c":"6"}]"#);
        assert_eq!(
            js("csvdecode", vec![s("name,note\r\n\"Smith, J\",\"said \"\"hi\"\"\nthen left\"\r\n\r\nx,\n")]),
            r#"[{"name":"Smith, J","note":"said \"hi\"\nthen left"},{"name":"x","note":""}]"#
        );
        assert_eq!(js("csvdecode", vec![s("a,b\n")]), "[]");
        assert_eq!(fails("csvdecode", vec![s("")]), "missing header line");
        assert_eq!(fails("csvdecode", vec![s("a,b\n1,2,3")]), "CSV parse error on line 2: wrong number of fields");
        assert_eq!(fails("csvdecode", vec![s("a\nx\"y")]), "CSV parse error on line 2: bare \" in non-quoted-field");
        assert_eq!(fails("csvdecode", vec![s("a\n\"x\"y")]), "CSV parse error on line 2: extraneous or missing \" in quoted-field");
        assert_eq!(fails("csvdecode", vec![s("a\n\"x")]), "CSV parse error on line 2: extraneous or missing \" in quoted-field");
        assert_eq!(fails("csvdecode", vec![s("a,a\n")]), r#"duplicate column name "a""#);
    }

    #[test]
    fn json_functions() {
        assert_eq!(ok("jsonencode", vec![v(r#"{"hello": "world"}"#)]), s(r#"{"hello":"world"}"#));
        assert_eq!(ok("jsonencode", vec![v("[1, 2.50, null]")]), s("[1,2.5,null]"));
        assert_eq!(ok("jsonencode", vec![s("<b>")]), s(r#""\u003cb\u003e""#));
        assert_eq!(ok("jsondecode", vec![s(r#"{"hello": "world"}"#)]), v(r#"{"hello": "world"}"#));
        assert_eq!(ok("jsondecode", vec![s("true")]), Value::Bool(true));
        assert!(fails("jsondecode", vec![s("{")]).ends_with("unexpected end of JSON input"));
    }

    #[test]
    fn yaml_functions() {
        assert_eq!(ok("yamldecode", vec![s("hello: world")]), v(r#"{"hello": "world"}"#));
        assert_eq!(ok("yamldecode", vec![s("true")]), Value::Bool(true));
        assert_eq!(ok("yamldecode", vec![s("{a: &foo [1, 2, 3], b: *foo}")]), v(r#"{"a":[1,2,3],"b":[1,2,3]}"#));
        assert_eq!(ok("yamlencode", vec![v(r#"{"a":"b", "c":"d"}"#)]), s("\"a\": \"b\"\n\"c\": \"d\"\n"));
        assert_eq!(ok("yamlencode", vec![v(r#"{"foo":[1, 2, 3], "bar": "baz"}"#)]), s("\"bar\": \"baz\"\n\"foo\":\n- 1\n- 2\n- 3\n"));
    }

    #[test]
    fn text_encodings() {
        assert_eq!(ok("textencodebase64", vec![s("Hello World"), s("UTF-16LE")]), s("SABlAGwAbABvACAAVwBvAHIAbABkAA=="));
        assert_eq!(ok("textdecodebase64", vec![s("SABlAGwAbABvACAAVwBvAHIAbABkAA=="), s("UTF-16LE")]), s("Hello World"));
        assert_eq!(ok("textencodebase64", vec![s("é"), s("latin1")]), s("6Q=="));
        assert_eq!(ok("textdecodebase64", vec![s("6Q=="), s("ISO-8859-1")]), s("é"));
        assert_eq!(ok("textencodebase64", vec![s("hi"), s("utf-8")]), s("aGk="));
        assert_eq!(ok("textdecodebase64", vec![s("/v8AaQ=="), s("UTF-16")]), s("i"));
        assert!(fails("textencodebase64", vec![s("x"), s("EBCDIC")])
            .ends_with(r#""EBCDIC" is not a supported IANA encoding name or alias in this Terraform version"#));
        assert!(fails("textencodebase64", vec![s("☃"), s("latin1")])
            .ends_with("the given string contains characters that cannot be represented in ISO-8859-1"));
        assert!(fails("textdecodebase64", vec![s("/w=="), s("UTF-8")]).ends_with("not defined for UTF-8"));
        assert!(fails("textdecodebase64", vec![s("a$=="), s("UTF-8")]).ends_with("invalid base64 symbol at offset 1"));
    }
}
