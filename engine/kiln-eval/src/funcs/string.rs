//! String functions: chomp, endswith, indent, join, lower, regex, regexall, replace, split,
//! startswith, strcontains, strrev, substr, title, trim, trimprefix, trimsuffix, trimspace and
//! upper, plus the translation of Go (RE2) regular expressions shared with other families.
//! (`format` and `formatlist` live in `format.rs`.)
//!
//! Lengths and offsets count Unicode characters (Terraform counts grapheme clusters; the two agree
//! except for combining sequences).

use kiln_value::Value;
use regex::Regex;

use super::{arg_err, arg_int, arg_list, arg_string, err, to_str, Result, Spec};

pub(super) const FUNCS: &[Spec] = &[
    Spec::new("chomp", &["str"], |a| unary(a, |s| s.trim_end_matches(['\r', '\n']).to_string())),
    Spec::new("endswith", &["str", "suffix"], |a| test(a, |s, x| s.ends_with(x))),
    Spec::new("indent", &["spaces", "str"], indent),
    Spec::new("join", &["separator"], join).variadic("lists"),
    Spec::new("lower", &["str"], |a| unary(a, str::to_lowercase)),
    Spec::new("regex", &["pattern", "string"], |a| regex(a, false)),
    Spec::new("regexall", &["pattern", "string"], |a| regex(a, true)),
    Spec::new("replace", &["str", "substr", "replace"], replace),
    Spec::new("split", &["separator", "str"], split),
    Spec::new("startswith", &["str", "prefix"], |a| test(a, |s, x| s.starts_with(x))),
    Spec::new("strcontains", &["str", "substr"], |a| test(a, |s, x| s.contains(x))),
    Spec::new("strrev", &["str"], |a| unary(a, |s| s.chars().rev().collect())),
    Spec::new("substr", &["str", "offset", "length"], substr),
    Spec::new("title", &["str"], |a| unary(a, title)),
    Spec::new("trim", &["str", "cutset"], |a| binary(a, |s, cut| s.trim_matches(|c| cut.contains(c)).to_string())),
    Spec::new("trimprefix", &["str", "prefix"], |a| binary(a, |s, p| s.strip_prefix(p).unwrap_or(s).to_string())),
    Spec::new("trimsuffix", &["str", "suffix"], |a| binary(a, |s, p| s.strip_suffix(p).unwrap_or(s).to_string())),
    Spec::new("trimspace", &["str"], |a| unary(a, |s| s.trim().to_string())),
    Spec::new("upper", &["str"], |a| unary(a, str::to_uppercase)),
];

fn unary(a: &[Value], f: impl Fn(&str) -> String) -> Result<Value> {
    Ok(Value::String(f(&arg_string(a, 0)?)))
}

fn binary(a: &[Value], f: impl Fn(&str, &str) -> String) -> Result<Value> {
    Ok(Value::String(f(&arg_string(a, 0)?, &arg_string(a, 1)?)))
}

fn test(a: &[Value], f: impl Fn(&str, &str) -> bool) -> Result<Value> {
    Ok(Value::Bool(f(&arg_string(a, 0)?, &arg_string(a, 1)?)))
}

fn indent(a: &[Value]) -> Result<Value> {
    let spaces = arg_int(a, 0)?;
    let s = arg_string(a, 1)?;
    let spaces = usize::try_from(spaces).map_err(|_| arg_err(0, "the number of spaces must not be negative"))?;
    if spaces > super::format::MAX_WIDTH {
        return Err(arg_err(0, format!("the number of spaces must be at most {}", super::format::MAX_WIDTH)));
    }
    Ok(Value::String(s.replace('\n', &format!("\n{}", " ".repeat(spaces)))))
}

fn join(a: &[Value]) -> Result<Value> {
    let sep = arg_string(a, 0)?;
    if a.len() < 2 {
        return Err(err("at least one list is required"));
    }
    let mut items = Vec::new();
    for i in 1..a.len() {
        for (k, v) in arg_list(a, i)?.iter().enumerate() {
            if v.is_null() {
                let which = if a.len() > 2 { format!("element {k} of list {i}") } else { format!("element {k}") };
                return Err(arg_err(i, format!("{which} is null; cannot concatenate null values")));
            }
            items.push(to_str(v).map_err(|m| arg_err(i, format!("element {k}: {m}")))?);
        }
    }
    Ok(Value::String(items.join(&sep)))
}

fn split(a: &[Value]) -> Result<Value> {
    let sep = arg_string(a, 0)?;
    let s = arg_string(a, 1)?;
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep.as_str()).map(Value::from).collect()
    };
    Ok(Value::List(parts))
}

fn substr(a: &[Value]) -> Result<Value> {
    let s = arg_string(a, 0)?;
    let mut offset = arg_int(a, 1)?;
    let length = arg_int(a, 2)?;
    let chars: Vec<char> = s.chars().collect();
    let total = chars.len() as i64;
    if offset < 0 {
        offset = (offset + total).max(0);
    }
    if offset >= total || length == 0 {
        return Ok(Value::from(""));
    }
    let rest = &chars[offset as usize..];
    let take = if length < 0 { rest.len() } else { (length as usize).min(rest.len()) };
    Ok(Value::String(rest[..take].iter().collect()))
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !c.is_alphanumeric() && c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if separator(prev) {
                let mut up = c.to_uppercase();
                match (up.next(), up.next()) {
                    (Some(u), None) => u,
                    _ => c,
                }
            } else {
                c
            };
            prev = c;
            out
        })
        .collect()
}

/// Compiles a Go (RE2) regular expression. Go's `\d`, `\w`, `\s` and `\b` are ASCII-only, so they
/// are rewritten to their ASCII forms for Rust's Unicode-aware engine.
pub(super) fn go_regex(pattern: &str) -> std::result::Result<Regex, String> {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let ascii = match (e, in_class) {
                    ('d', false) => "[0-9]",
                    ('D', false) => "[^0-9]",
                    ('w', false) => "[0-9A-Za-z_]",
                    ('W', false) => "[^0-9A-Za-z_]",
                    ('s', false) => r"[\t\n\f\r ]",
                    ('S', false) => r"[^\t\n\f\r ]",
                    ('b', false) => r"(?-u:\b)",
                    ('B', false) => r"(?-u:\B)",
                    ('d', true) => "0-9",
                    ('w', true) => "0-9A-Za-z_",
                    ('s', true) => r"\t\n\f\r ",
                    _ => "",
                };
                if ascii.is_empty() {
                    out.push('\\');
                    out.push(e);
                } else {
                    out.push_str(ascii);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A leading `]` (after an optional `^`) is a literal, not the end.
                let rest = chars.as_str();
                let skip = if rest.starts_with("^]") { 2 } else { usize::from(rest.starts_with(']')) };
                for _ in 0..skip {
                    out.extend(chars.next());
                }
            }
            '[' if chars.as_str().starts_with(':') => {
                // POSIX class such as [:alpha:] inside a bracket expression.
                let rest = chars.as_str();
                match rest.find(":]") {
                    Some(end) => {
                        out.push('[');
                        out.push_str(&rest[..end + 2]);
                        for _ in 0..rest[..end + 2].chars().count() {
                            chars.next();
                        }
                    }
                    None => out.push(c),
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    Regex::new(&out).map_err(|e| {
        let text = e.to_string();
        let detail = text.lines().find_map(|l| l.trim().strip_prefix("error: ")).unwrap_or(text.trim());
        format!("error parsing pattern: {detail}")
    })
}

/// What a match of a pattern produces: the whole match, the list of groups, or named groups.
enum Shape {
    Whole,
    Groups,
    Named(Vec<String>),
}

impl Shape {
    fn of(re: &Regex) -> std::result::Result<Shape, String> {
        let names: Vec<Option<&str>> = re.capture_names().skip(1).collect();
        let named = names.iter().filter(|n| n.is_some()).count();
        match (names.len(), named) {
            (0, _) => Ok(Shape::Whole),
            (_, 0) => Ok(Shape::Groups),
            (all, n) if all == n => Ok(Shape::Named(names.into_iter().flatten().map(str::to_string).collect())),
            _ => Err("invalid regular expression: cannot mix both named and unnamed capture groups".to_string()),
        }
    }

    fn value(&self, c: &regex::Captures) -> Value {
        let group = |m: Option<regex::Match>| m.map_or(Value::Null, |m| Value::from(m.as_str()));
        match self {
            Shape::Whole => Value::from(&c[0]),
            Shape::Groups => Value::List(c.iter().skip(1).map(group).collect()),
            Shape::Named(names) => Value::Map(names.iter().map(|n| (n.clone(), group(c.name(n)))).collect()),
        }
    }
}

fn regex(a: &[Value], all: bool) -> Result<Value> {
    let pattern = arg_string(a, 0)?;
    let s = arg_string(a, 1)?;
    let re = go_regex(&pattern).map_err(|m| arg_err(0, m))?;
    let shape = Shape::of(&re).map_err(|m| arg_err(0, m))?;
    if all {
        return Ok(Value::List(re.captures_iter(&s).map(|c| shape.value(&c)).collect()));
    }
    re.captures(&s).map(|c| shape.value(&c)).ok_or_else(|| err("pattern did not match any part of the given string"))
}

fn replace(a: &[Value]) -> Result<Value> {
    let s = arg_string(a, 0)?;
    let sub = arg_string(a, 1)?;
    let rep = arg_string(a, 2)?;
    if sub.len() > 1 && sub.starts_with('/') && sub.ends_with('/') {
        let re = go_regex(&sub[1..sub.len() - 1]).map_err(|m| arg_err(1, m))?;
        return Ok(Value::String(re.replace_all(&s, rep.as_str()).into_owned()));
    }
    Ok(Value::String(s.replace(&sub, &rep)))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use kiln_value::Value;

    #[test]
    fn simple_transforms() {
        let cases = [
            ("chomp", vec![s("hello\n\r\n")], s("hello")),
            ("chomp", vec![s("hello\nworld")], s("hello\nworld")),
            ("lower", vec![s("HELLO")], s("hello")),
            ("upper", vec![s("hello")], s("HELLO")),
            ("title", vec![s("hello world")], s("Hello World")),
            ("title", vec![s("o'neil-smith x_y")], s("O'Neil-Smith X_y")),
            ("strrev", vec![s("hello")], s("olleh")),
            ("strrev", vec![s("a☃b")], s("b☃a")),
            ("trimspace", vec![s("  hello\n\n")], s("hello")),
            ("trim", vec![s("?!hello?!"), s("!?")], s("hello")),
            ("trim", vec![s("foobar"), s("far")], s("oob")),
            ("trimprefix", vec![s("helloworld"), s("hello")], s("world")),
            ("trimprefix", vec![s("helloworld"), s("cat")], s("helloworld")),
            ("trimsuffix", vec![s("helloworld"), s("world")], s("hello")),
            ("indent", vec![n("2"), s("[\n  foo,\n  bar,\n]\n")], s("[\n    foo,\n    bar,\n  ]\n  ")),
        ];
        for (f, args, want) in cases {
            assert_eq!(ok(f, args.clone()), want, "{f}({args:?})");
        }
    }

    #[test]
    fn predicates() {
        assert_eq!(ok("startswith", vec![s("hello world"), s("hello")]), Value::Bool(true));
        assert_eq!(ok("startswith", vec![s("hello world"), s("world")]), Value::Bool(false));
        assert_eq!(ok("endswith", vec![s("hello world"), s("world")]), Value::Bool(true));
        assert_eq!(ok("strcontains", vec![s("hello world"), s("wor")]), Value::Bool(true));
        assert_eq!(ok("strcontains", vec![s("hello world"), s("wod")]), Value::Bool(false));
    }

    #[test]
    fn join_and_split() {
        assert_eq!(ok("join", vec![s(", "), v(r#"["foo","bar","baz"]"#)]), s("foo, bar, baz"));
        assert_eq!(ok("join", vec![s(","), v("[1, 2]"), v("[true]")]), s("1,2,true"));
        assert_eq!(ok("join", vec![s(","), v("[]")]), s(""));
        assert!(fails("join", vec![s(",")]).contains("at least one list is required"));
        assert!(fails("indent", vec![n("9999999999"), s("a\nb")]).contains("at most 1000000"));
        assert!(fails("join", vec![s(","), v(r#"["a", null]"#)]).contains("element 1 is null"));
        assert!(fails("join", vec![s(","), v("[[1]]")]).contains("element 0: string required"));
        assert_eq!(js("split", vec![s(","), s("foo,bar,baz")]), r#"["foo","bar","baz"]"#);
        assert_eq!(js("split", vec![s(","), s("foo")]), r#"["foo"]"#);
        assert_eq!(js("split", vec![s(","), s("")]), r#"[""]"#);
        assert_eq!(js("split", vec![s(""), s("abc")]), r#"["a","b","c"]"#);
    }

    #[test]
    fn substr_counts_characters() {
        let sub = |x: &str, o: &str, l: &str| ok("substr", vec![s(x), n(o), n(l)]);
        assert_eq!(sub("hello world", "1", "4"), s("ello"));
        assert_eq!(sub("🤔🤷", "0", "1"), s("🤔"));
        assert_eq!(sub("hello world", "-5", "-1"), s("world"));
        assert_eq!(sub("hello world", "6", "10"), s("world"));
        assert_eq!(sub("hello", "10", "1"), s(""));
        assert_eq!(sub("hello", "-10", "2"), s("he"));
        assert_eq!(sub("hello", "1", "0"), s(""));
        assert!(fails("substr", vec![s("x"), n("1.5"), n("1")]).contains("whole number"));
    }

    #[test]
    fn regex_shapes() {
        assert_eq!(ok("regex", vec![s("[a-z]+"), s("53453453.345345aaabbbccc23454")]), s("aaabbbccc"));
        assert_eq!(js("regex", vec![s(r"(\d\d\d\d)-(\d\d)-(\d\d)"), s("2019-02-01")]), r#"["2019","02","01"]"#);
        assert_eq!(
            js("regex", vec![s(r"^(?:(?P<scheme>[^:/?#]+):)?(?://(?P<authority>[^/?#]*))?"), s("https://terraform.io/docs/")]),
            r#"{"authority":"terraform.io","scheme":"https"}"#
        );
        assert_eq!(js("regex", vec![s("(a)|(b)"), s("b")]), r#"[null,"b"]"#);
        assert_eq!(fails("regex", vec![s("[a-z]+"), s("123")]), "pattern did not match any part of the given string");
        assert!(fails("regex", vec![s("(?P<a>x)(y)"), s("xy")]).contains("cannot mix both named and unnamed"));
        assert!(fails("regex", vec![s("(a"), s("a")]).contains("error parsing pattern"));
        assert_eq!(js("regexall", vec![s("[a-z]+"), s("1234abcd5678efgh9")]), r#"["abcd","efgh"]"#);
        assert_eq!(js("regexall", vec![s("[a-z]+"), s("123")]), "[]");
        // Go's \d and \w are ASCII only.
        assert_eq!(js("regexall", vec![s(r"\d+"), s("12٣4")]), r#"["12","4"]"#);
        assert_eq!(js("regexall", vec![s(r"[\d.]+"), s("v1.2")]), r#"["1.2"]"#);
        assert_eq!(js("regexall", vec![s("[[:alpha:]]+"), s("ab1c")]), r#"["ab","c"]"#);
    }

    #[test]
    fn replace_plain_and_regex() {
        assert_eq!(ok("replace", vec![s("1 + 2 + 3"), s("+"), s("-")]), s("1 - 2 - 3"));
        assert_eq!(ok("replace", vec![s("hello world"), s("/w.*d/"), s("everyone")]), s("hello everyone"));
        assert_eq!(ok("replace", vec![s("hello world"), s("/(h)(e)/"), s("$2$1")]), s("ehllo world"));
        assert_eq!(ok("replace", vec![s("abc"), s("/(b)/"), s("${1}x")]), s("abxc"));
        assert_eq!(ok("replace", vec![s("a/b"), s("/"), s("_")]), s("a_b"));
        assert!(fails("replace", vec![s("a"), s("/(/"), s("")]).contains("error parsing pattern"));
    }
}
