//! Filesystem functions: abspath, basename, dirname, pathexpand, file, fileexists, filebase64
//! and fileset. Relative paths resolve against the module directory [`FuncCtx::base_dir`];
//! path manipulation follows Go's `path/filepath` on Unix.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine;
use kiln_value::Value;

use super::encoding::BASE64;
use super::{arg_err, arg_string, err, make_set, quote, FuncCtx, Result, Spec};

pub(super) const FUNCS: &[Spec] = &[
    Spec::with_ctx("abspath", &["path"], abspath),
    Spec::new("basename", &["path"], |a| Ok(Value::String(basename(&arg_string(a, 0)?)))),
    Spec::new("dirname", &["path"], |a| Ok(Value::String(dirname(&arg_string(a, 0)?)))),
    Spec::new("pathexpand", &["path"], |a| {
        expand_home(&arg_string(a, 0)?).map(Value::String).map_err(|m| arg_err(0, m))
    }),
    Spec::with_ctx("file", &["path"], file),
    Spec::with_ctx("fileexists", &["path"], fileexists),
    Spec::with_ctx("filebase64", &["path"], |a, c| Ok(Value::String(BASE64.encode(read_bytes(a, c)?)))),
    Spec::with_ctx("fileset", &["path", "pattern"], fileset),
];

/// Go's `filepath.Clean`: the shortest equivalent path, lexically.
pub(super) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Base`.
fn basename(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Go's `filepath.Dir`.
fn dirname(path: &str) -> String {
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    };
    clean(dir)
}

/// Replaces a leading `~` with the home directory.
fn expand_home(path: &str) -> std::result::Result<String, String> {
    let Some(rest) = path.strip_prefix('~') else { return Ok(path.to_string()) };
    if !rest.is_empty() && !rest.starts_with('/') {
        return Err("cannot expand user-specific home dir".into());
    }
    let home = std::env::var("HOME").map_err(|_| "failed to expand ~: no home directory".to_string())?;
    Ok(clean(&format!("{home}/{rest}")))
}

/// `path` (after `~` expansion) resolved against the module directory, cleaned.
fn resolve(ctx: &FuncCtx, path: &str) -> String {
    let path =
        if Path::new(path).is_absolute() { path.to_string() } else { format!("{}/{path}", ctx.base_dir.display()) };
    clean(&path)
}

/// The bytes of the file named by argument 0.
pub(super) fn read_bytes(a: &[Value], ctx: &FuncCtx) -> Result<Vec<u8>> {
    let given = arg_string(a, 0)?;
    let path = resolve(ctx, &expand_home(&given).map_err(|m| arg_err(0, m))?);
    std::fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            arg_err(0, format!("no file exists at {}; this function works only with files that are distributed as part of the configuration source code, so if this file will be created by a resource in this configuration you must instead obtain this result from an attribute of that resource", quote(&path)))
        } else {
            arg_err(0, format!("failed to read file {}", quote(&path)))
        }
    })
}

fn file(a: &[Value], ctx: &FuncCtx) -> Result<Value> {
    let bytes = read_bytes(a, ctx)?;
    String::from_utf8(bytes).map(Value::String).map_err(|_| {
        let path = arg_string(a, 0).unwrap_or_default();
        err(format!("contents of {} are not valid UTF-8; use the filebase64 function to obtain the Base64 encoded contents or the other file functions (e.g. filemd5, filesha256) to obtain file hashing results instead", quote(&path)))
    })
}

fn fileexists(a: &[Value], ctx: &FuncCtx) -> Result<Value> {
    let given = arg_string(a, 0)?;
    let path = resolve(ctx, &expand_home(&given).map_err(|m| arg_err(0, m))?);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Value::Bool(false)),
        Err(_) => return Err(arg_err(0, format!("failed to stat {}", quote(&path)))),
    };
    if meta.is_file() {
        return Ok(Value::Bool(true));
    }
    let what = if meta.is_dir() { "is a directory, not a file" } else { "is not a regular file" };
    Err(arg_err(0, format!("{} {what}", quote(&path))))
}

fn abspath(a: &[Value], ctx: &FuncCtx) -> Result<Value> {
    let path = arg_string(a, 0)?;
    let base = if ctx.base_dir.is_absolute() {
        ctx.base_dir.clone()
    } else {
        std::env::current_dir().map_err(|e| err(format!("cannot find the current directory: {e}")))?.join(&ctx.base_dir)
    };
    Ok(Value::String(resolve(&FuncCtx { base_dir: base }, &path)))
}

fn fileset(a: &[Value], ctx: &FuncCtx) -> Result<Value> {
    let dir = resolve(ctx, &arg_string(a, 0)?);
    let pattern = clean(&format!("{dir}/{}", arg_string(a, 1)?));
    let mut found = BTreeSet::new();
    for p in expand_braces(&pattern) {
        let comps: Vec<&str> = p.split('/').collect();
        let (start, comps) =
            if p.starts_with('/') { (PathBuf::from("/"), &comps[1..]) } else { (PathBuf::new(), &comps[..]) };
        walk(&start, comps, &mut found)
            .map_err(|_| err(format!("failed to glob pattern ({pattern}): syntax error in pattern")))?;
    }
    let matches: Vec<Value> = found.iter().map(|m| Value::String(relative(&dir, &m.to_string_lossy()))).collect();
    Ok(Value::List(make_set(matches)))
}

/// `target` relative to `base`, both clean paths.
fn relative(base: &str, target: &str) -> String {
    let b: Vec<&str> = base.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let t: Vec<&str> = target.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    let ups = std::iter::repeat_n("..", b.len() - common);
    ups.chain(t[common..].iter().copied()).collect::<Vec<_>>().join("/")
}

/// Expands `{a,b}` alternatives into separate patterns.
fn expand_braces(p: &str) -> Vec<String> {
    let bytes = p.as_bytes();
    let mut depth = 0;
    let mut open = None;
    let mut commas = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'{' => {
                if depth == 0 {
                    open = Some(i);
                    commas.clear();
                }
                depth += 1;
            }
            b',' if depth == 1 => commas.push(i),
            b'}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    let start = open.unwrap_or(0);
                    let mut bounds = vec![start];
                    bounds.extend(&commas);
                    bounds.push(i);
                    let (head, tail) = (&p[..start], &p[i + 1..]);
                    return bounds
                        .windows(2)
                        .flat_map(|w| expand_braces(&format!("{head}{}{tail}", &p[w[0] + 1..w[1]])))
                        .collect();
                }
            }
            _ => {}
        }
        i += 1;
    }
    vec![p.to_string()]
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// Matches the remaining path components below `dir`, collecting regular files.
fn walk(dir: &Path, comps: &[&str], out: &mut BTreeSet<PathBuf>) -> std::result::Result<(), ()> {
    let Some((first, rest)) = comps.split_first() else {
        if std::fs::metadata(dir).is_ok_and(|m| m.is_file()) {
            out.insert(dir.to_path_buf());
        }
        return Ok(());
    };
    let here = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    if *first == "**" {
        walk(dir, rest, out)?;
        // `**` also consumes one more component of any kind (files end the walk there).
        for entry in entries(here) {
            walk(&dir.join(&entry), comps, out)?;
        }
        return Ok(());
    }
    if !has_magic(first) {
        return match dir.join(first) {
            next if next.symlink_metadata().is_ok() || rest.is_empty() => walk(&next, rest, out),
            _ => Ok(()),
        };
    }
    for entry in entries(here) {
        if glob_match(first, &entry)? {
            walk(&dir.join(&entry), rest, out)?;
        }
    }
    Ok(())
}

fn entries(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> =
        rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Matches one path component against a glob with `*`, `?`, `[class]` and `\` escapes.
fn glob_match(pattern: &str, name: &str) -> std::result::Result<bool, ()> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> std::result::Result<bool, ()> {
    match p.first() {
        None => Ok(n.is_empty()),
        Some('*') => {
            for skip in 0..=n.len() {
                if match_from(&p[1..], &n[skip..])? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Some('?') => Ok(!n.is_empty() && match_from(&p[1..], &n[1..])?),
        Some('[') => {
            let (matched, used) = class(&p[1..], n.first().copied())?;
            Ok(matched && match_from(&p[1 + used..], &n[1..])?)
        }
        Some('\\') => {
            let c = *p.get(1).ok_or(())?;
            Ok(n.first() == Some(&c) && match_from(&p[2..], &n[1..])?)
        }
        Some(c) => Ok(n.first() == Some(c) && match_from(&p[1..], &n[1..])?),
    }
}

/// Matches `c` against a bracket class body; returns whether it matched and how many pattern
/// characters the class used (including the closing `]`).
fn class(p: &[char], c: Option<char>) -> std::result::Result<(bool, usize), ()> {
    let mut i = 0;
    let negate = matches!(p.first(), Some('^' | '!'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *p.get(i).ok_or(())?;
        if lo == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        if lo == '\\' {
            i += 1;
            lo = *p.get(i).ok_or(())?;
        }
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|x| *x != ']') {
            hi = p[i + 1];
            i += 2;
            if hi == '\\' {
                hi = *p.get(i).ok_or(())?;
                i += 1;
            }
        }
        if c.is_some_and(|c| lo <= c && c <= hi) {
            matched = true;
        }
    }
    Ok((c.is_some() && matched != negate, i))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{call, FuncCtx};
    use super::*;

    fn fixture() -> (PathBuf, FuncCtx) {
        let dir =
            std::env::temp_dir().join(format!("kiln-file-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (p, body) in [
            ("hello.txt", "Hello World"),
            ("a.tmpl", "A"),
            ("sub/b.txt", "B"),
            ("sub/deep/c.txt", "C"),
            ("sub/deep/d.md", "D"),
            (".hidden.txt", "H"),
        ] {
            let f = dir.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, body).unwrap();
        }
        std::fs::write(dir.join("bin.dat"), [0xff, 0xfe]).unwrap();
        (dir.clone(), FuncCtx { base_dir: dir })
    }

    #[test]
    fn path_manipulation() {
        let cases = [
            ("basename", "foo/bar/baz.txt", "baz.txt"),
            ("basename", "/foo/bar/", "bar"),
            ("basename", "", "."),
            ("basename", "///", "/"),
            ("dirname", "foo/bar/baz.txt", "foo/bar"),
            ("dirname", "/foo", "/"),
            ("dirname", "foo", "."),
            ("dirname", "a//b/../c/", "a/c"),
            ("pathexpand", "/etc/x", "/etc/x"),
        ];
        for (f, input, want) in cases {
            assert_eq!(ok(f, vec![s(input)]), s(want), "{f}({input})");
        }
        let home = std::env::var("HOME").unwrap();
        assert_eq!(ok("pathexpand", vec![s("~/.ssh/id_rsa")]), s(&format!("{home}/.ssh/id_rsa")));
        assert!(fails("pathexpand", vec![s("~bob/x")]).ends_with("cannot expand user-specific home dir"));
        assert_eq!(clean("../a/./b/../../.."), "../..");
        assert_eq!(clean("/../a"), "/a");
    }

    #[test]
    fn reading_files() {
        let (dir, ctx) = fixture();
        let c = |f: &str, args: Vec<Value>| call(f, args, &ctx);
        assert_eq!(c("file", vec![s("hello.txt")]).unwrap(), s("Hello World"));
        assert_eq!(c("file", vec![s(&format!("{}/sub/b.txt", dir.display()))]).unwrap(), s("B"));
        assert_eq!(c("filebase64", vec![s("hello.txt")]).unwrap(), s("SGVsbG8gV29ybGQ="));
        let missing = c("file", vec![s("nope.txt")]).unwrap_err();
        assert_eq!(missing.arg, Some(0));
        assert!(
            missing.message.contains(&format!("no file exists at \"{}/nope.txt\"", dir.display())),
            "{}",
            missing.message
        );
        assert!(c("file", vec![s("bin.dat")])
            .unwrap_err()
            .message
            .contains(r#"contents of "bin.dat" are not valid UTF-8"#));
        assert_eq!(c("fileexists", vec![s("hello.txt")]).unwrap(), Value::Bool(true));
        assert_eq!(c("fileexists", vec![s("nope.txt")]).unwrap(), Value::Bool(false));
        assert!(c("fileexists", vec![s("sub")]).unwrap_err().message.ends_with("is a directory, not a file"));
        assert_eq!(c("abspath", vec![s("sub/../hello.txt")]).unwrap(), s(&format!("{}/hello.txt", dir.display())));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fileset_globs() {
        let (dir, ctx) = fixture();
        let set = |path: &str, pattern: &str| {
            super::super::json::encode(&call("fileset", vec![s(path), s(pattern)], &ctx).unwrap())
        };
        assert_eq!(set(".", "*.txt"), r#"[".hidden.txt","hello.txt"]"#);
        assert_eq!(set(".", "{*.txt,*.tmpl}"), r#"[".hidden.txt","a.tmpl","hello.txt"]"#);
        assert_eq!(set(".", "**/*.txt"), r#"[".hidden.txt","hello.txt","sub/b.txt","sub/deep/c.txt"]"#);
        assert_eq!(set("sub", "**"), r#"["b.txt","deep/c.txt","deep/d.md"]"#);
        assert_eq!(set(".", "sub/deep/?.md"), r#"["sub/deep/d.md"]"#);
        assert_eq!(set(".", "sub/[a-b].txt"), r#"["sub/b.txt"]"#);
        assert_eq!(set(".", "sub/[!b].txt"), "[]");
        assert_eq!(set("sub", "../*.tmpl"), r#"["../a.tmpl"]"#);
        assert_eq!(set(".", "sub"), "[]");
        assert_eq!(set(".", "nothing/*"), "[]");
        assert!(call("fileset", vec![s("."), s("[a")], &ctx).unwrap_err().message.contains("syntax error in pattern"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
