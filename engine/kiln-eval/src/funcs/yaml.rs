//! YAML text for `yamlencode` and `yamldecode`, matching Terraform's go-cty-yaml.
//!
//! Encoding reproduces the libyaml emitter as Terraform drives it: block style, strings always
//! double-quoted (folded at column 80) except multi-line strings which use literal blocks, empty
//! collections as `{}`/`[]`, sequences inside mappings not indented, `...` after a bare top-level
//! scalar. Decoding follows go-cty-yaml's YAML 1.1 scalar resolution: `yes`/`no`/`on`/`off` are
//! bools, `~` is null, timestamps become RFC 3339 strings, quoted scalars are always strings.

use std::collections::HashMap;

use kiln_value::{format_number, Map, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;

use super::{date, parse_decimal, quote};

const BEST_INDENT: i64 = 2;
const BEST_WIDTH: usize = 80;

/// YAML as Terraform's `yamlencode` writes it.
pub(super) fn encode(v: &Value) -> String {
    let mut e = Emitter { indent: -1, whitespace: true, indention: true, ..Emitter::default() };
    e.node(v, Ctx { root: true, ..Ctx::default() });
    e.write_indent();
    if e.open_ended {
        e.indicator("...", true, false, false);
        e.write_indent();
    }
    e.out
}

#[derive(Clone, Copy, Default)]
struct Ctx {
    root: bool,
    mapping: bool,
    simple_key: bool,
}

#[derive(Default)]
struct Emitter {
    out: String,
    column: usize,
    indent: i64,
    indents: Vec<i64>,
    whitespace: bool,
    indention: bool,
    open_ended: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Double,
    Literal,
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn indicator(&mut self, s: &str, need_whitespace: bool, is_whitespace: bool, is_indention: bool) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        s.chars().for_each(|c| self.put(c));
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
        self.open_ended = false;
    }

    fn node(&mut self, v: &Value, ctx: Ctx) {
        match v {
            Value::Map(m) if m.is_empty() => self.flow_empty("{", "}"),
            Value::List(l) if l.is_empty() => self.flow_empty("[", "]"),
            Value::Map(m) => self.mapping(m),
            Value::List(l) => self.sequence(l, ctx),
            Value::String(s) => {
                let style = if s.contains('\n') { Style::Literal } else { Style::Double };
                self.scalar(s, style, ctx);
            }
            Value::Number(n) => self.scalar(&format_number(*n), Style::Plain, ctx),
            Value::Bool(b) => self.scalar(if *b { "true" } else { "false" }, Style::Plain, ctx),
            Value::Null | Value::Unknown => self.scalar("null", Style::Plain, ctx),
            Value::Sensitive(inner) => self.node(inner, ctx),
        }
    }

    fn flow_empty(&mut self, open: &str, close: &str) {
        self.indicator(open, true, true, false);
        self.indicator(close, false, false, false);
    }

    fn mapping(&mut self, m: &Map) {
        self.increase_indent(false, false);
        for (k, v) in m {
            self.write_indent();
            if is_multiline(k) || k.len() > 128 {
                self.indicator("?", true, false, true);
                self.node(&Value::from(k.as_str()), Ctx { mapping: true, ..Ctx::default() });
                self.write_indent();
                self.indicator(":", true, false, true);
            } else {
                self.scalar(k, Style::Double, Ctx { mapping: true, simple_key: true, ..Ctx::default() });
                self.indicator(":", false, false, false);
            }
            self.node(v, Ctx { mapping: true, ..Ctx::default() });
        }
        self.pop_indent();
    }

    fn sequence(&mut self, l: &[Value], ctx: Ctx) {
        let indentless = ctx.mapping && !self.indention;
        self.increase_indent(false, indentless);
        for item in l {
            self.write_indent();
            self.indicator("-", true, false, true);
            self.node(item, Ctx::default());
        }
        self.pop_indent();
    }

    fn scalar(&mut self, s: &str, style: Style, ctx: Ctx) {
        let style = if style == Style::Literal && (ctx.simple_key || !block_allowed(s)) { Style::Double } else { style };
        self.increase_indent(true, false);
        match style {
            Style::Plain => {
                if !self.whitespace {
                    self.put(' ');
                }
                s.chars().for_each(|c| self.put(c));
                self.whitespace = false;
                self.indention = false;
                if ctx.root {
                    self.open_ended = true;
                }
            }
            Style::Double => self.double_quoted(s, !ctx.simple_key),
            Style::Literal => self.literal(s),
        }
        self.pop_indent();
    }

    fn double_quoted(&mut self, s: &str, allow_breaks: bool) {
        self.indicator("\"", true, false, false);
        let mut spaces = false;
        let chars: Vec<char> = s.chars().collect();
        let mut byte = 0;
        for (i, &c) in chars.iter().enumerate() {
            let at = byte;
            byte += c.len_utf8();
            if !printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                match escape(c) {
                    Some(e) => self.put(e),
                    None => {
                        let (letter, width) = match c as u32 {
                            0..=0xFF => ('x', 2),
                            0x100..=0xFFFF => ('u', 4),
                            _ => ('U', 8),
                        };
                        self.put(letter);
                        format!("{:0width$X}", c as u32).chars().for_each(|h| self.put(h));
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && at != 0 && at != s.len() - 1 {
                    self.write_indent();
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn literal(&mut self, s: &str) {
        self.indicator("|", true, false, false);
        if s.starts_with([' ', '\n']) || s.starts_with(is_break) {
            self.indicator(&BEST_INDENT.to_string(), false, false, false);
        }
        self.open_ended = false;
        let mut rev = s.chars().rev();
        let chomp = match (rev.next(), rev.next()) {
            (None, _) => Some("-"),
            (Some(last), _) if !is_break(last) => Some("-"),
            (Some(_), None) => Some("+"),
            (Some(_), Some(prev)) if is_break(prev) => Some("+"),
            _ => None,
        };
        if let Some(h) = chomp {
            self.indicator(h, false, false, false);
            self.open_ended = h == "+";
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for c in s.chars() {
            if is_break(c) {
                if c == '\n' {
                    self.put_break();
                } else {
                    self.put(c);
                    self.column = 0;
                }
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_multiline(s: &str) -> bool {
    s.contains(is_break)
}

/// libyaml's printable set (characters outside it are escaped).
fn printable(c: char) -> bool {
    matches!(c as u32, 0x0A | 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFFFD) && c != '\u{FEFF}'
}

fn escape(c: char) -> Option<char> {
    Some(match c {
        '\0' => '0',
        '\u{7}' => 'a',
        '\u{8}' => 'b',
        '\t' => 't',
        '\n' => 'n',
        '\u{b}' => 'v',
        '\u{c}' => 'f',
        '\r' => 'r',
        '\u{1b}' => 'e',
        '"' => '"',
        '\\' => '\\',
        '\u{85}' => 'N',
        '\u{a0}' => '_',
        '\u{2028}' => 'L',
        '\u{2029}' => 'P',
        _ => return None,
    })
}

/// Whether libyaml may write the string as a literal block.
fn block_allowed(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let trailing_space = chars.last() == Some(&' ');
    let space_break = chars.windows(2).any(|w| w[0] == ' ' && is_break(w[1]));
    let special = chars.iter().any(|c| !printable(*c));
    !s.is_empty() && !trailing_space && !space_break && !special
}

// ---------------------------------------------------------------------------------------------
// Decoding

const TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// Parses one YAML document into a value.
pub(super) fn decode(src: &str) -> Result<Value, String> {
    let mut d = Decoder { parser: Parser::new_from_str(src), anchors: HashMap::new(), depth: 0, nodes: 0 };
    match d.next()? {
        Event::StreamStart => {}
        _ => return Err("missing stream start token".into()),
    }
    match d.next()? {
        Event::StreamEnd => return Ok(Value::Null),
        Event::DocumentStart => {}
        _ => return Err("missing start of document".into()),
    }
    let first = d.next()?;
    let v = d.node(first)?;
    match d.next()? {
        Event::DocumentEnd => {}
        _ => return Err("unexpected extra content after value".into()),
    }
    match d.next()? {
        Event::StreamEnd => Ok(v),
        Event::DocumentStart => Err("only a single document is allowed".into()),
        _ => Err("unexpected extra content after value".into()),
    }
}

/// The most nodes one document may decode to, counting every copy an alias makes: a few aliases
/// of aliases (a "billion laughs" document) would otherwise expand beyond any memory.
pub(super) const MAX_NODES: usize = 1_000_000;

struct Decoder<'a> {
    parser: Parser<std::str::Chars<'a>>,
    /// Anchor id to its value, the nodes it holds and its depth; `None` while the anchored node
    /// is still being read.
    anchors: HashMap<usize, Option<Anchored>>,
    /// Sequences and mappings open around the current node.
    depth: usize,
    /// Nodes decoded so far, aliases counted as the nodes they copy.
    nodes: usize,
}

struct Anchored {
    value: Value,
    nodes: usize,
    depth: usize,
}

impl Decoder<'_> {
    fn next(&mut self) -> Result<Event, String> {
        self.parser.next_token().map(|(e, _)| e).map_err(|e| {
            let m = e.marker();
            format!("on line {}, column {}: {}", m.line(), m.col() + 1, e.info())
        })
    }

    fn node(&mut self, ev: Event) -> Result<Value, String> {
        let before = self.nodes;
        self.count(1)?;
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = long_tag(tag.as_ref());
                let v = if style == TScalarStyle::Plain || !tag.is_empty() { resolve_scalar(&tag, &text)? } else { Value::String(text) };
                self.anchor(anchor, v, before)
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(Some(a)) => {
                    let (value, nodes, depth) = (a.value.clone(), a.nodes, a.depth);
                    if self.depth + depth > kiln_value::MAX_DEPTH {
                        return Err(super::json::too_deep());
                    }
                    self.count(nodes)?;
                    Ok(value)
                }
                Some(None) => Err("cannot refer to an anchor from inside its own definition".into()),
                None => Err("reference to undefined anchor".into()),
            },
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_ref(), "seq", "sequence")?;
                self.begin(anchor)?;
                let mut items = Vec::new();
                loop {
                    match self.next()? {
                        Event::SequenceEnd => break,
                        ev => items.push(self.node(ev)?),
                    }
                }
                self.depth -= 1;
                self.anchor(anchor, Value::List(items), before)
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_ref(), "map", "mapping")?;
                self.begin(anchor)?;
                let mut m = Map::new();
                loop {
                    let key = match self.next()? {
                        Event::MappingEnd => break,
                        Event::Scalar(text, style, _, tag) => {
                            let tag = long_tag(tag.as_ref());
                            if style == TScalarStyle::Plain || !tag.is_empty() {
                                resolve_scalar(&tag, &text)?
                            } else {
                                Value::String(text)
                            }
                        }
                        _ => return Err("only strings are allowed as mapping keys".into()),
                    };
                    let key = match key {
                        Value::Null => return Err("mapping key cannot be null".into()),
                        k => k.to_template_string().ok_or("only strings are allowed as mapping keys")?,
                    };
                    let ev = self.next()?;
                    let v = self.node(ev)?;
                    m.insert(key, v);
                }
                self.depth -= 1;
                self.anchor(anchor, Value::Map(m), before)
            }
            Event::DocumentStart => Err("only a single document is allowed".into()),
            Event::StreamEnd => Err("expecting value but found end of stream".into()),
            _ => Err("unexpected parser event".into()),
        }
    }

    /// Opens a sequence or mapping.
    fn begin(&mut self, anchor: usize) -> Result<(), String> {
        if self.depth >= kiln_value::MAX_DEPTH {
            return Err(super::json::too_deep());
        }
        self.depth += 1;
        if anchor != 0 {
            self.anchors.insert(anchor, None);
        }
        Ok(())
    }

    fn count(&mut self, nodes: usize) -> Result<(), String> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > MAX_NODES {
            return Err(format!("the document expands to more than {MAX_NODES} values (aliases count as the values they copy)"));
        }
        Ok(())
    }

    /// Records `v`, which began when `before` nodes had been decoded, under its anchor.
    fn anchor(&mut self, anchor: usize, v: Value, before: usize) -> Result<Value, String> {
        if anchor != 0 {
            let a = Anchored { value: v.clone(), nodes: self.nodes - before, depth: super::value_depth(&v) };
            self.anchors.insert(anchor, Some(a));
        }
        Ok(v)
    }
}

/// A tag in its long form (`tag:yaml.org,2002:str`), or empty when there is none.
fn long_tag(tag: Option<&Tag>) -> String {
    match tag {
        None => String::new(),
        Some(t) if t.handle == "!!" => format!("{TAG_PREFIX}{}", t.suffix),
        Some(t) => format!("{}{}", t.handle, t.suffix),
    }
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str, what: &str) -> Result<(), String> {
    let tag = long_tag(tag);
    if tag.is_empty() || tag == format!("{TAG_PREFIX}{expected}") {
        Ok(())
    } else {
        Err(format!("can't interpret {what} as {tag}"))
    }
}

/// go-cty-yaml's resolution of a scalar by its tag and text.
fn resolve_scalar(tag: &str, src: &str) -> Result<Value, String> {
    let short = tag.strip_prefix(TAG_PREFIX).unwrap_or(if tag.is_empty() { "" } else { "?" });
    if !matches!(short, "" | "str" | "bool" | "int" | "float" | "null" | "timestamp" | "binary") {
        return Err(format!("unsupported tag {}", quote(tag)));
    }
    let hint = match src.bytes().next() {
        None => b'N',
        Some(b'+' | b'-') => b'S',
        Some(b'0'..=b'9') => b'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => b'M',
        Some(b'.') => b'.',
        Some(_) => 0,
    };
    let mut short = short;
    if hint != 0 && short != "str" && short != "binary" {
        if let Some(v) = special(src) {
            return v;
        }
        match hint {
            b'.' => {
                if let Some(v) = number(src) {
                    return v;
                }
            }
            b'D' | b'S' => {
                if short.is_empty() || short == "timestamp" {
                    if let Some(ts) = date::yaml_timestamp(src) {
                        return Ok(Value::String(ts));
                    }
                }
                let plain = src.replace('_', "");
                if let Some(v) = number(&plain) {
                    return v;
                }
                if plain.starts_with("0b") || plain.starts_with("-0b") {
                    short = "int";
                }
            }
            _ => {}
        }
    }
    let cannot = || format!("cannot parse {} as {tag}", quote(src));
    match short {
        "str" | "" => Ok(Value::from(src)),
        "binary" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(src)
                .map(|_| Value::from(src))
                .map_err(|_| format!("{}: not valid base64", cannot()))
        }
        "bool" => match special(src) {
            Some(Ok(Value::Bool(b))) => Ok(Value::Bool(b)),
            _ => Err(cannot()),
        },
        "int" | "float" => {
            let plain = src.replace('_', "");
            if let Some(v) = number(&plain) {
                return v;
            }
            go_int(&plain).map(|n| Value::Number(n.into())).ok_or_else(cannot)
        }
        "timestamp" => date::yaml_timestamp(src).map(Value::String).ok_or_else(cannot),
        _ => Ok(Value::Null),
    }
}

/// Booleans, nulls and infinities spelled the YAML 1.1 way.
fn special(src: &str) -> Option<Result<Value, String>> {
    Some(Ok(match src {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Value::Bool(true),
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Value::Bool(false),
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" => {
            return Some(Err("infinity cannot be represented as a number".into()))
        }
        ".nan" | ".NaN" | ".NAN" => return Some(Err("floating point NaN is not supported".into())),
        _ => return None,
    }))
}

/// A decimal literal as a number; `None` when the text is not one.
fn number(s: &str) -> Option<Result<Value, String>> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let mantissa = body.split(['e', 'E']).next().unwrap_or("");
    if mantissa.is_empty() || !mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    parse_decimal(s).map(|d| Ok(Value::Number(d)))
}

/// Go's `strconv.ParseInt(s, 0, 64)` and the `0b` forms go-cty-yaml adds.
fn go_int(s: &str) -> Option<i128> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        (16, h)
    } else if let Some(b) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
        (2, b)
    } else if let Some(o) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
        (8, o)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    let v = i128::from_str_radix(digits, radix).ok()?;
    (v <= u64::MAX as i128).then_some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::v;
    use super::*;

    #[test]
    fn encodes_documentation_examples() {
        assert_eq!(encode(&v(r#"{"a":"b", "c":"d"}"#)), "\"a\": \"b\"\n\"c\": \"d\"\n");
        assert_eq!(encode(&v(r#"{"foo":[1, 2, 3], "bar": "baz"}"#)), "\"bar\": \"baz\"\n\"foo\":\n- 1\n- 2\n- 3\n");
        assert_eq!(
            encode(&v(r#"{"foo":[1, {"a":"b","c":"d"}, 3], "bar": "baz"}"#)),
            "\"bar\": \"baz\"\n\"foo\":\n- 1\n- \"a\": \"b\"\n  \"c\": \"d\"\n- 3\n"
        );
    }

    #[test]
    fn encodes_scalars_and_empties() {
        assert_eq!(encode(&Value::Bool(true)), "true\n...\n");
        assert_eq!(encode(&v("0")), "0\n...\n");
        assert_eq!(encode(&Value::Null), "null\n...\n");
        assert_eq!(encode(&Value::from("")), "\"\"\n");
        assert_eq!(encode(&Value::from("hello")), "\"hello\"\n");
        assert_eq!(encode(&v("{}")), "{}\n");
        assert_eq!(encode(&v("[]")), "[]\n");
        assert_eq!(encode(&v(r#"["b"]"#)), "- \"b\"\n");
        assert_eq!(encode(&v(r#"{"a": {}, "b": [], "c": null}"#)), "\"a\": {}\n\"b\": []\n\"c\": null\n");
    }

    #[test]
    fn encodes_nesting() {
        let doc = v(r#"{"a": {"b": {"c": [1, [2, 3], {"d": "e"}]}}, "f": [[1], []]}"#);
        let want = "\"a\":\n  \"b\":\n    \"c\":\n    - 1\n    - - 2\n      - 3\n    - \"d\": \"e\"\n\"f\":\n- - 1\n- []\n";
        assert_eq!(encode(&doc), want);
    }

    #[test]
    fn encodes_strings_like_libyaml() {
        assert_eq!(encode(&v(r#"{"k": "a\"b\\c\td"}"#)), "\"k\": \"a\\\"b\\\\c\\td\"\n");
        assert_eq!(encode(&Value::from("é 😀")), "\"é \\U0001F600\"\n");
        // Multi-line strings are literal blocks with a chomping indicator.
        assert_eq!(encode(&v(r#"{"k": "a\nb"}"#)), "\"k\": |-\n  a\n  b\n");
        assert_eq!(encode(&v(r#"{"k": "a\nb\n"}"#)), "\"k\": |\n  a\n  b\n");
        assert_eq!(encode(&v(r#"{"k": "a\n\n"}"#)), "\"k\": |+\n  a\n\n...\n");
        assert_eq!(encode(&v(r#"{"k": " a\nb"}"#)), "\"k\": |2-\n   a\n  b\n");
        assert_eq!(encode(&v(r#"["x\ny"]"#)), "- |-\n  x\n  y\n");
        // ...unless they cannot be: trailing space, tabs, or in a key.
        assert_eq!(encode(&v(r#"{"k": "a \nb"}"#)), "\"k\": \"a \\nb\"\n");
        assert_eq!(encode(&v(r#"{"k": "a\tx\nb"}"#)), "\"k\": \"a\\tx\\nb\"\n");
    }

    #[test]
    fn folds_long_strings_at_80_columns() {
        let long = "word ".repeat(20) + "end";
        let out = encode(&Value::Map([("k".to_string(), Value::from(long.as_str()))].into()));
        let want = format!("\"k\": \"{}\n  {}\"\n", "word ".repeat(16).trim_end(), "word ".repeat(4) + "end");
        assert_eq!(out, want);
        // Keys never fold.
        let key = "k ".repeat(50);
        assert!(encode(&Value::Map([(key.clone(), Value::from(1i64))].into())).starts_with(&format!("{:?}", key)));
    }

    #[test]
    fn decodes_yaml_1_1_scalars() {
        let doc = decode(
            "a: yes\nb: off\nc: ~\nd: 1_000\ne: 0.1\nf: '1'\ng: \"yes\"\nh: 2001-12-14\ni: 0x1F\nj: 0b101\nk: -12e3\nl: hello world\nm:\n",
        )
        .unwrap();
        assert_eq!(
            super::super::json::encode(&doc),
            r#"{"a":true,"b":false,"c":null,"d":1000,"e":0.1,"f":"1","g":"yes","h":"2001-12-14T00:00:00Z","i":"0x1F","j":5,"k":-12000,"l":"hello world","m":null}"#
        );
    }

    #[test]
    fn decodes_structures() {
        let doc =
            decode("list:\n- 1\n- [a, b]\n- {x: 1}\nbase: &b {k: v}\ncopy: *b\n1.50: numeric key\nblock: |\n  line1\n  line2\n").unwrap();
        assert_eq!(
            super::super::json::encode(&doc),
            r#"{"1.5":"numeric key","base":{"k":"v"},"block":"line1\nline2\n","copy":{"k":"v"},"list":[1,["a","b"],{"x":1}]}"#
        );
        assert_eq!(decode("").unwrap(), Value::Null);
        assert_eq!(decode("null").unwrap(), Value::Null);
        assert_eq!(decode("!!str 12").unwrap(), Value::from("12"));
        assert_eq!(decode("!!int \"12\"").unwrap(), Value::from(12i64));
    }

    #[test]
    fn decode_errors() {
        assert_eq!(decode("a: 1\n---\nb: 2\n").unwrap_err(), "only a single document is allowed");
        assert_eq!(decode(".nan").unwrap_err(), "floating point NaN is not supported");
        assert!(decode("!foo x").unwrap_err().contains("unsupported tag \"!foo\""));
        assert!(decode("a: [1, 2").unwrap_err().starts_with("on line "), "{}", decode("a: [1, 2").unwrap_err());
        assert_eq!(decode("!!bool maybe").unwrap_err(), r#"cannot parse "maybe" as tag:yaml.org,2002:bool"#);
    }

    #[test]
    fn nesting_is_limited_to_max_depth() {
        // `- - 1` is a list in a list; the scanner itself stops flow (`[[1]]`) nesting at 255.
        let block = |n: usize| format!("{}1", "- ".repeat(n));
        let flow = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(super::super::value_depth(&decode(&block(kiln_value::MAX_DEPTH)).unwrap()), kiln_value::MAX_DEPTH);
        assert_eq!(decode(&block(kiln_value::MAX_DEPTH + 1)).unwrap_err(), super::super::json::too_deep());
        assert_eq!(decode(&block(40_000)).unwrap_err(), super::super::json::too_deep());
        assert!(decode(&flow(40_000)).is_err());
        // An alias may not carry a value past the limit either.
        let deep = format!("a: &x {}\nb: [[*x]]\n", flow(kiln_value::MAX_DEPTH - 2));
        assert_eq!(decode(&deep).unwrap_err(), super::super::json::too_deep());
    }

    #[test]
    fn alias_expansion_is_bounded() {
        // Each level holds ten copies of the one before: 10^9 strings in the last.
        let mut doc = String::from("l0: &l0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
        for i in 1..=9 {
            let refs = vec![format!("*l{}", i - 1); 10].join(", ");
            doc.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        let e = decode(&doc).unwrap_err();
        assert!(e.contains("expands to more than"), "{e}");
        // Aliases within the limit still work.
        assert_eq!(decode("a: &x [1, 2]\nb: *x\n").unwrap(), v(r#"{"a": [1, 2], "b": [1, 2]}"#));
    }

    #[test]
    fn round_trips() {
        let doc = v(r#"{"name": "x", "nested": {"list": [1, 2.5, "three", true, null, "multi\nline\n"]}, "empty": ""}"#);
        assert_eq!(decode(&encode(&doc)).unwrap(), doc);
    }
}
