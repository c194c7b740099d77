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
    Spec::new("pathexpand", &["path"], |a| expand_home(&arg_string(a, 0)?).map(Value::String).map_err(|m| arg_err(0, m))),
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
    let path = if Path::new(path).is_absolute() { path.to_string() } else { format!("{}/{path}", ctx.base_dir.display()) };
    clean(&path)
}

/// The bytes of a regular file (following links). Anything else is refused before it is
/// opened: reading a FIFO would wait for a writer forever, and a device may never end.
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "is a directory" } else { "is not a regular file" };
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, what));
    }
    std::fs::read(path)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_to_string(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_regular(path)?).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "is not valid UTF-8"))
}

/// The bytes of the file named by argument 0.
pub(super) fn read_bytes(a: &[Value], ctx: &FuncCtx) -> Result<Vec<u8>> {
    let given = arg_string(a, 0)?;
    let path = resolve(ctx, &expand_home(&given).map_err(|m| arg_err(0, m))?);
    read_regular(Path::new(&path)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidInput {
            arg_err(0, format!("{} {e}; file functions read only regular files", quote(&path)))
        } else if e.kind() == std::io::ErrorKind::NotFound {
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

/// The most directory entries and paths one `fileset` call may look at: a pattern like
/// `fileset("/", "**")` would otherwise walk the whole machine.
pub(super) const FILESET_MAX_VISITS: usize = 100_000;
/// How many directories deep `fileset` descends below its path.
const FILESET_MAX_DEPTH: usize = 256;

fn fileset(a: &[Value], ctx: &FuncCtx) -> Result<Value> {
    let dir = resolve(ctx, &arg_string(a, 0)?);
    let pattern = clean(&format!("{dir}/{}", arg_string(a, 1)?));
    let mut w = Walker { found: BTreeSet::new(), visits: 0, limit: FILESET_MAX_VISITS };
    for p in expand_braces(&pattern) {
        let comps: Vec<&str> = p.split('/').collect();
        let (start, comps) = if p.starts_with('/') { (PathBuf::from("/"), &comps[1..]) } else { (PathBuf::new(), &comps[..]) };
        w.walk(&start, comps, 0).map_err(|e| match e {
            WalkError::Syntax => err(format!("failed to glob pattern ({pattern}): syntax error in pattern")),
            WalkError::TooMany => err(format!(
                "pattern ({pattern}) looks at more than {FILESET_MAX_VISITS} files and directories, the limit; use a narrower path or pattern"
            )),
            WalkError::TooDeep => err(format!(
                "pattern ({pattern}) descends more than {FILESET_MAX_DEPTH} directories deep, the limit; use a narrower path or pattern"
            )),
        })?;
    }
    let matches: Vec<Value> = w.found.iter().map(|m| Value::String(relative(&dir, &m.to_string_lossy()))).collect();
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
                    return bounds.windows(2).flat_map(|w| expand_braces(&format!("{head}{}{tail}", &p[w[0] + 1..w[1]]))).collect();
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

enum WalkError {
    Syntax,
    TooMany,
    TooDeep,
}

impl From<()> for WalkError {
    fn from(_: ()) -> Self {
        WalkError::Syntax
    }
}

/// A bounded walk for `fileset`: every path looked at counts against [`FILESET_MAX_VISITS`].
struct Walker {
    found: BTreeSet<PathBuf>,
    visits: usize,
    limit: usize,
}

impl Walker {
    fn visit(&mut self, n: usize) -> std::result::Result<(), WalkError> {
        self.visits = self.visits.saturating_add(n);
        if self.visits > self.limit {
            return Err(WalkError::TooMany);
        }
        Ok(())
    }

    /// Matches the remaining path components below `dir`, collecting regular files. `**` does
    /// not descend through symbolic links (which may loop), but matches them.
    fn walk(&mut self, dir: &Path, comps: &[&str], depth: usize) -> std::result::Result<(), WalkError> {
        self.visit(1)?;
        if depth > FILESET_MAX_DEPTH {
            return Err(WalkError::TooDeep);
        }
        let Some((first, rest)) = comps.split_first() else {
            if std::fs::metadata(dir).is_ok_and(|m| m.is_file()) {
                self.found.insert(dir.to_path_buf());
            }
            return Ok(());
        };
        let here = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        if *first == "**" {
            self.walk(dir, rest, depth)?;
            if depth > 0 && dir.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                return Ok(());
            }
            // `**` also consumes one more component of any kind (files end the walk there).
            for entry in self.entries(here)? {
                self.walk(&dir.join(&entry), comps, depth + 1)?;
            }
            return Ok(());
        }
        if !has_magic(first) {
            return match dir.join(first) {
                next if next.symlink_metadata().is_ok() || rest.is_empty() => self.walk(&next, rest, depth + 1),
                _ => Ok(()),
            };
        }
        for entry in self.entries(here)? {
            if glob_match(first, &entry)? {
                self.walk(&dir.join(&entry), rest, depth + 1)?;
            }
        }
        Ok(())
    }

    fn entries(&mut self, dir: &Path) -> std::result::Result<Vec<String>, WalkError> {
        let Ok(rd) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
        let mut names = Vec::new();
        for e in rd.filter_map(|e| e.ok()) {
            self.visit(1)?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}

/// Matches one path component against a glob with `*`, `?`, `[class]` and `\` escapes, in
/// time linear in their lengths times the pattern's (a `*` mismatch goes back only to the last
/// `*`, which is enough since `*` matches any run).
fn glob_match(pattern: &str, name: &str) -> std::result::Result<bool, ()> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Where to resume after the last `*`: pattern position and name position.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if let Some(&c) = p.get(pi) {
            if c == '*' {
                star = Some((pi + 1, ni));
                pi += 1;
                continue;
            }
            let (matched, used) = match c {
                '?' => (ni < n.len(), 1),
                '[' => {
                    let (m, used) = class(&p[pi + 1..], n.get(ni).copied())?;
                    (m, 1 + used)
                }
                '\\' => {
                    let e = *p.get(pi + 1).ok_or(())?;
                    (n.get(ni) == Some(&e), 2)
                }
                c => (n.get(ni) == Some(&c), 1),
            };
            if matched {
                pi += used;
                ni += 1;
                continue;
            }
        } else if ni == n.len() {
            return Ok(true);
        }
        match star {
            Some((sp, sn)) if sn < n.len() => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => return Ok(false),
        }
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
        let dir = std::env::temp_dir().join(format!("kiln-file-{}-{:?}", std::process::id(), std::thread::current().id()));
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
        assert!(missing.message.contains(&format!("no file exists at \"{}/nope.txt\"", dir.display())), "{}", missing.message);
        assert!(c("file", vec![s("bin.dat")]).unwrap_err().message.contains(r#"contents of "bin.dat" are not valid UTF-8"#));
        assert_eq!(c("fileexists", vec![s("hello.txt")]).unwrap(), Value::Bool(true));
        assert_eq!(c("fileexists", vec![s("nope.txt")]).unwrap(), Value::Bool(false));
        assert!(c("fileexists", vec![s("sub")]).unwrap_err().message.ends_with("is a directory, not a file"));
        assert_eq!(c("abspath", vec![s("sub/../hello.txt")]).unwrap(), s(&format!("{}/hello.txt", dir.display())));
        assert!(c("file", vec![s("sub")]).unwrap_err().message.contains("is a directory"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_instead_of_waited_on() {
        let (dir, ctx) = fixture();
        let st = std::process::Command::new("mkfifo").arg(dir.join("pipe")).status().unwrap();
        assert!(st.success());
        for f in ["file", "filebase64", "filemd5"] {
            let e = call(f, vec![s("pipe")], &ctx).unwrap_err();
            assert!(e.message.contains("is not a regular file"), "{f}: {}", e.message);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fileset_globs() {
        let (dir, ctx) = fixture();
        let set = |path: &str, pattern: &str| super::super::json::encode(&call("fileset", vec![s(path), s(pattern)], &ctx).unwrap());
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

    #[test]
    fn fileset_walks_are_bounded() {
        let (dir, ctx) = fixture();
        // A symbolic link loop is matched, not followed forever.
        std::os::unix::fs::symlink(&dir, dir.join("sub/loop")).unwrap();
        let set = call("fileset", vec![s("."), s("**/*.md")], &ctx).unwrap();
        assert_eq!(super::super::json::encode(&set), r#"["sub/deep/d.md"]"#);
        // A walk that looks at more than its limit stops with an error (the fixture has a few
        // dozen paths; `fileset` allows FILESET_MAX_VISITS).
        let mut w = Walker { found: BTreeSet::new(), visits: 0, limit: 20 };
        assert!(matches!(w.walk(&dir, &["**"], 0), Err(WalkError::TooMany)));
        let mut w = Walker { found: BTreeSet::new(), visits: 0, limit: FILESET_MAX_VISITS };
        assert!(w.walk(&dir, &["**"], 0).is_ok());
        assert_eq!(w.found.len(), 7, "{:?}", w.found);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn glob_matching_does_not_backtrack_exponentially() {
        let name = "a".repeat(200);
        assert_eq!(glob_match(&"*a".repeat(30), &name), Ok(true));
        assert_eq!(glob_match(&format!("{}b", "*a".repeat(30)), &name), Ok(false));
        assert_eq!(glob_match("a*[bc]?d", "axxcyd"), Ok(true));
        assert_eq!(glob_match("\\*x", "*x"), Ok(true));
        assert_eq!(glob_match("\\*x", "ax"), Ok(false));
    }
}
