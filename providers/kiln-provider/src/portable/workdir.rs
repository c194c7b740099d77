//! A job's `workdir`: a directory on the machine running kiln (relative to the configuration
//! directory), the same on every provider.
//!
//! - `local` runs the scripts in that directory itself: nothing is copied, and nothing is
//!   digested (the job writes there; its own output must not plan a replacement).
//! - A remote provider uploads it to a place of its own on every node and runs the scripts
//!   there: `onprem` to `HOST_DIR/jobs/JOB_ID/workdir` on each host (a tar stream over SSH),
//!   Slurm to `KILN_DIR/jobs/JOB_ID/workdir` on the cluster's shared file system (through the
//!   login node over SSH), `aws` through the job's bucket (the agent downloads it to
//!   `/var/lib/kiln/work/JOB_ID`).
//!
//! What is uploaded is every file under the directory except what its `.kilnignore` excludes
//! (gitignore syntax: `#` comments, `!` re-includes, a trailing `/` for directories only, a `/`
//! elsewhere anchors the pattern at the directory, `*`, `?`, `[...]` and `**`), and never the
//! `.kiln/` directory at its top (kiln's state). The upload is at most [`MAX_BYTES`].
//!
//! # What is never uploaded
//!
//! A workdir is often the configuration directory itself (`workdir = path.module`), and its
//! upload lands in a bucket and on every node. So whatever `.kilnignore` says (a `!` does not
//! re-include them), the upload leaves out kiln's own secrets and state: a file or directory
//! named `.kiln` at any depth (state, journal, SSH keys, log archives: a sub-project's too),
//! variable files (`*.kilnvars`, `*.auto.kilnvars`: tokens, passphrases), and kiln's documents
//! recognized by their first bytes ([`is_kiln_document`]): saved plans (`kiln plan --out`), state
//! copies (`kiln state pull > state.json`), both plain and encrypted. Planning warns, naming
//! what was left out this way (a nested `.kiln` and the rest; not the top `.kiln/`).
//!
//! # Modes
//!
//! A file is uploaded with mode 0644 (0755 where it is executable here), less the group and
//! other bits its source lacks: a file readable by its owner only here (0600, 0700) stays so
//! on the nodes, a 0640 file stays 0640, and no bit is ever added (a 0666 file is 0644). The
//! digest keeps only whether a file is executable, as before (a mode change alone replaces no
//! job).
//!
//! Its content digest ([`Workdir::digest`]: SHA-256 over the sorted relative paths, kinds, modes
//! and contents) is the job's computed `workdir_digest`, set when the job is planned: a changed
//! file shows in the plan and replaces the job. At apply, the upload is digested again and
//! refused where it is not the planned digest ([`upload`]): a file edited after `kiln plan --out`
//! is never uploaded unreviewed.
//!
//! # Compatibility
//!
//! Before issue 13, a remote provider's `workdir` named a directory on the nodes. A `workdir`
//! that is not a directory on the machine running kiln keeps that meaning (its digest is null),
//! and a job in a state written before `workdir_digest` existed (or planned with a null digest)
//! keeps the meaning it was planned with until it is replaced for another reason: so existing
//! configurations plan no change.

use std::io::Read;
use std::path::{Path, PathBuf};

use kiln_value::{Map, Value};
use sha2::{Digest, Sha256};

/// The most bytes (file contents) a workdir upload holds.
pub const MAX_BYTES: u64 = 100 << 20;

/// The ignore file at the top of a workdir.
pub const IGNORE_FILE: &str = ".kilnignore";

/// The computed attribute holding the digest.
pub const DIGEST_ATTR: &str = "workdir_digest";

/// The description of [`DIGEST_ATTR`].
pub const DIGEST_DESCRIPTION: &str =
    "SHA-256 of the workdir's files (less what .kilnignore excludes), set at plan; null where the workdir is not uploaded";

/// One entry of a workdir, by path relative to its top (`/`-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub rel: String,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// `mtime` in seconds since the epoch: kept in the upload (tools such as make read it), not
    /// in the digest.
    File {
        size: u64,
        executable: bool,
        mtime: u64,
        /// The mode in the upload (see the module's documentation).
        mode: u32,
    },
    /// A symbolic link, kept as one, to this target.
    Link(String),
}

/// The files of a workdir that would be uploaded, in path order.
#[derive(Debug, Clone)]
pub struct Workdir {
    pub root: PathBuf,
    pub entries: Vec<Entry>,
    /// What was left out for safety whatever `.kilnignore` says (kiln's secrets and state), by
    /// relative path.
    pub withheld: Vec<String>,
}

/// The local directory a job's `workdir` names (relative paths from `working_dir`), when there
/// is one; `None` without a `workdir`, or where it is not a directory here.
pub fn local_dir(working_dir: &Path, job: &Value) -> Option<PathBuf> {
    let w = job.get("workdir").and_then(Value::as_str)?;
    let p = Path::new(w);
    let p = if p.is_absolute() { p.to_path_buf() } else { working_dir.join(p) };
    p.is_dir().then_some(p)
}

impl Workdir {
    /// Walks `root`, leaving out what `.kilnignore` excludes and kiln's secrets and state; an error past
    /// [`MAX_BYTES`] or where a file cannot be read.
    pub fn scan(root: &Path) -> Result<Workdir, String> {
        let rules = match std::fs::read_to_string(root.join(IGNORE_FILE)) {
            Ok(text) => Rules::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Rules::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", root.join(IGNORE_FILE).display())),
        };
        let mut w = Workdir { root: root.to_path_buf(), entries: Vec::new(), withheld: Vec::new() };
        let mut total = 0u64;
        walk(root, "", &rules, &mut w, &mut total)?;
        if total > MAX_BYTES {
            return Err(format!(
                "the workdir {} holds more than the {} MiB a job's workdir may upload: exclude files with a {IGNORE_FILE} \
                 (gitignore syntax), or put data in a bucket",
                root.display(),
                MAX_BYTES >> 20
            ));
        }
        w.entries.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(w)
    }

    /// Bytes of file contents.
    pub fn size(&self) -> u64 {
        self.entries.iter().map(|e| if let EntryKind::File { size, .. } = e.kind { size } else { 0 }).sum()
    }

    /// `sha256:HEX` over every entry in path order: its kind, path, mode and content.
    pub fn digest(&self) -> Result<String, String> {
        self.digest_and_tar(false).map(|(d, _)| d)
    }

    /// The digest and, with `tar`, the archive, reading each file once (so the archive is what
    /// was digested).
    fn digest_and_tar(&self, tar: bool) -> Result<(String, Vec<u8>), String> {
        let mut h = Sha256::new();
        let mut out = Vec::new();
        for e in &self.entries {
            match &e.kind {
                EntryKind::Dir => {
                    h.update(b"d\0");
                    h.update(e.rel.as_bytes());
                    h.update(b"\0");
                }
                EntryKind::Link(t) => {
                    h.update(b"l\0");
                    h.update(e.rel.as_bytes());
                    h.update(b"\0");
                    h.update(t.as_bytes());
                    h.update(b"\0");
                }
                EntryKind::File { executable, .. } => {
                    h.update(if *executable { b"x\0" } else { b"f\0" });
                    h.update(e.rel.as_bytes());
                    h.update(b"\0");
                    let data = self.read(e)?;
                    h.update((data.len() as u64).to_le_bytes());
                    h.update(&data);
                    if tar {
                        self.tar_one(&mut out, e, &data);
                    }
                    continue;
                }
            }
            if tar {
                self.tar_one(&mut out, e, &[]);
            }
        }
        if tar {
            out.extend_from_slice(&[0u8; 1024]);
        }
        Ok((format!("sha256:{}", hex(&h.finalize())), out))
    }

    fn read(&self, e: &Entry) -> Result<Vec<u8>, String> {
        let path = self.root.join(&e.rel);
        let mut data = Vec::new();
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        Ok(data)
    }

    /// A tar archive of the entries (GNU long names past 100 bytes), as `tar -x` reads it.
    pub fn tar(&self) -> Result<Vec<u8>, String> {
        self.digest_and_tar(true).map(|(_, t)| t)
    }

    /// One entry of the archive (`data`: a file's content).
    fn tar_one(&self, out: &mut Vec<u8>, e: &Entry, data: &[u8]) {
        match &e.kind {
            EntryKind::Dir => tar_entry(out, &format!("{}/", e.rel), b'5', 0o755, 0, &[], ""),
            EntryKind::Link(t) => tar_entry(out, &e.rel, b'2', 0o777, 0, &[], t),
            EntryKind::File { mtime, mode, .. } => tar_entry(out, &e.rel, b'0', *mode, *mtime, data, ""),
        }
    }
}

/// A file's mode in the upload: 0644, or 0755 where it is executable, less the group and other
/// bits `source` (its mode here) lacks.
fn upload_mode(source: u32) -> u32 {
    let base = if source & 0o111 != 0 { 0o755 } else { 0o644 };
    let mut keep = 0o700;
    if source & 0o040 != 0 {
        keep |= 0o050;
    }
    if source & 0o004 != 0 {
        keep |= 0o005;
    }
    base & keep
}

/// Whether `head` (a file's first bytes) begins one of kiln's JSON documents: a state (as
/// `kiln state pull` prints it) or a saved plan, both starting `{"format_version": N,
/// "kiln_version"`, or an encrypted one (`{"kiln_encrypted":`).
pub fn is_kiln_document(head: &[u8]) -> bool {
    let mut rest = head;
    let mut token = |want: &[u8]| -> bool {
        let n = rest.iter().take_while(|c| c.is_ascii_whitespace()).count();
        rest = &rest[n..];
        if want.is_empty() {
            // Digits.
            let d = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            rest = &rest[d..];
            return d > 0;
        }
        match rest.strip_prefix(want) {
            Some(r) => {
                rest = r;
                true
            }
            None => false,
        }
    };
    if !token(b"{") {
        return false;
    }
    if token(b"\"kiln_encrypted\"") {
        return token(b":");
    }
    token(b"\"format_version\"") && token(b":") && token(b"") && token(b",") && token(b"\"kiln_version\"")
}

/// The first bytes of a file, enough for [`is_kiln_document`].
fn head(path: &Path) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(256).read_to_end(&mut data))
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    Ok(data)
}

fn walk(dir: &Path, prefix: &str, rules: &Rules, w: &mut Workdir, total: &mut u64) -> Result<(), String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let name = entry.file_name().into_string().map_err(|n| format!("{}: a file name that is not UTF-8: {n:?}", dir.display()))?;
        names.push((name, entry.path()));
    }
    names.sort();
    for (name, path) in names {
        if *total > MAX_BYTES {
            return Ok(());
        }
        let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        if rel == ".kiln" {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let ft = meta.file_type();
        if rules.ignored(&rel, ft.is_dir()) {
            continue;
        }
        if name == ".kiln" || (name.ends_with(".kilnvars") && !ft.is_dir()) || (ft.is_file() && is_kiln_document(&head(&path)?)) {
            w.withheld.push(rel);
            continue;
        }
        let out = &mut w.entries;
        if ft.is_symlink() {
            let t = std::fs::read_link(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            out.push(Entry { rel, kind: EntryKind::Link(t.to_string_lossy().into_owned()) });
        } else if ft.is_dir() {
            out.push(Entry { rel: rel.clone(), kind: EntryKind::Dir });
            walk(&path, &rel, rules, w, total)?;
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            *total += meta.len();
            if *total > MAX_BYTES {
                // Walked no further: the error says it is too big.
                return Ok(());
            }
            let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
            let source = meta.permissions().mode();
            out.push(Entry {
                rel,
                kind: EntryKind::File { size: meta.len(), executable: source & 0o111 != 0, mtime, mode: upload_mode(source) },
            });
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One tar header (and a GNU long-name header before it where the name or target is longer than
/// 100 bytes), then `data` padded to 512 bytes.
fn tar_entry(out: &mut Vec<u8>, name: &str, kind: u8, mode: u32, mtime: u64, data: &[u8], link: &str) {
    if name.len() > 100 {
        let mut long = name.as_bytes().to_vec();
        long.push(0);
        tar_header(out, "././@LongLink", b'L', 0o644, 0, long.len() as u64, "");
        tar_data(out, &long);
    }
    if link.len() > 100 {
        let mut long = link.as_bytes().to_vec();
        long.push(0);
        tar_header(out, "././@LongLink", b'K', 0o644, 0, long.len() as u64, "");
        tar_data(out, &long);
    }
    tar_header(out, name, kind, mode, mtime, data.len() as u64, link);
    tar_data(out, data);
}

fn tar_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

fn tar_header(out: &mut Vec<u8>, name: &str, kind: u8, mode: u32, mtime: u64, size: u64, link: &str) {
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, len: usize, s: &[u8]| {
        let n = s.len().min(len);
        h[at..at + n].copy_from_slice(&s[..n]);
    };
    put(&mut h, 0, 100, name.as_bytes());
    put(&mut h, 100, 8, format!("{mode:07o}\0").as_bytes());
    put(&mut h, 108, 8, b"0000000\0");
    put(&mut h, 116, 8, b"0000000\0");
    put(&mut h, 124, 12, format!("{size:011o}\0").as_bytes());
    put(&mut h, 136, 12, format!("{mtime:011o}\0").as_bytes());
    h[156] = kind;
    put(&mut h, 157, 100, link.as_bytes());
    put(&mut h, 257, 8, b"ustar  \0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    put(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
}

// ---------------------------------------------------------------------------------------------
// .kilnignore

/// The patterns of a `.kilnignore`, in order (the last match decides).
#[derive(Debug, Clone, Default)]
pub struct Rules(Vec<Rule>);

#[derive(Debug, Clone)]
struct Rule {
    negate: bool,
    dir_only: bool,
    /// Matched against the whole relative path (else against the last component).
    anchored: bool,
    glob: Vec<u8>,
}

impl Rules {
    pub fn parse(text: &str) -> Rules {
        let mut rules = Vec::new();
        for line in text.lines() {
            let mut l = line.trim_end_matches('\r');
            // Trailing spaces are dropped unless escaped.
            while l.ends_with(' ') && !l.ends_with("\\ ") {
                l = &l[..l.len() - 1];
            }
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (negate, l) = match l.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, l.strip_prefix('\\').filter(|r| r.starts_with('#') || r.starts_with('!')).unwrap_or(l)),
            };
            let (dir_only, l) = match l.strip_suffix('/') {
                Some(rest) => (true, rest),
                None => (false, l),
            };
            let anchored = l.contains('/');
            let l = l.strip_prefix('/').unwrap_or(l);
            if l.is_empty() {
                continue;
            }
            rules.push(Rule { negate, dir_only, anchored, glob: l.as_bytes().to_vec() });
        }
        Rules(rules)
    }

    /// Whether `rel` (a `/`-separated path under the top) is excluded. Its parents are checked
    /// by the walk: an excluded directory is not entered.
    pub fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let mut out = false;
        for r in &self.0 {
            if r.dir_only && !is_dir {
                continue;
            }
            let subject = if r.anchored { rel } else { base };
            if glob(&r.glob, subject.as_bytes()) {
                out = !r.negate;
            }
        }
        out
    }
}

/// gitignore's glob: `*` and `?` within one component, `**` across them, `[...]` classes,
/// `\` escapes.
///
/// Without backtracking: `m[i][j]` says whether the pattern from `i` matches the text from `j`,
/// filled from the ends, each cell in constant time (a class in the pattern's length), so a
/// hostile `.kilnignore` (`*a*a*a*a*b`, `**/**/**/x`) costs at most its length times the path's.
fn glob(p: &[u8], t: &[u8]) -> bool {
    let (pn, tn) = (p.len(), t.len());
    let w = tn + 1;
    let mut m = vec![false; (pn + 1) * w];
    m[pn * w + tn] = true;
    for i in (0..pn).rev() {
        // `**/`: whether some `/` at or after `j` is followed by a match of the rest.
        let mut after_slash = false;
        for j in (0..=tn).rev() {
            let at = |i: usize, j: usize| m[i * w + j];
            let c = t.get(j).copied();
            let v = if p[i..].starts_with(b"**") {
                let r = i + 2;
                if r == pn {
                    true
                } else if p[r] == b'/' {
                    if c == Some(b'/') && at(r + 1, j + 1) {
                        after_slash = true;
                    }
                    at(r + 1, j) || after_slash
                } else {
                    at(r, j) || (c.is_some() && at(i, j + 1))
                }
            } else {
                match p[i] {
                    b'*' => at(i + 1, j) || (c.is_some_and(|c| c != b'/') && at(i, j + 1)),
                    b'?' => c.is_some_and(|c| c != b'/') && at(i + 1, j + 1),
                    b'[' => match (c, class(&p[i + 1..])) {
                        (Some(c), Some((matches, len))) if c != b'/' => matches(c) && at(i + 1 + len, j + 1),
                        (c, None) => c == Some(b'[') && at(i + 1, j + 1),
                        _ => false,
                    },
                    b'\\' if i + 1 < pn => c == Some(p[i + 1]) && at(i + 2, j + 1),
                    pc => c == Some(pc) && at(i + 1, j + 1),
                }
            };
            m[i * w + j] = v;
        }
    }
    m[0]
}

/// A `[...]` class after its `[`: a matcher and the bytes it takes (with the `]`).
#[allow(clippy::type_complexity)]
fn class(p: &[u8]) -> Option<(Box<dyn Fn(u8) -> bool>, usize)> {
    let (negate, start) = if matches!(p.first(), Some(b'!') | Some(b'^')) { (true, 1) } else { (false, 0) };
    let mut i = start;
    let mut ranges: Vec<(u8, u8)> = Vec::new();
    while i < p.len() {
        if p[i] == b']' && i > start {
            let ranges = ranges.clone();
            return Some((Box::new(move |c| ranges.iter().any(|(a, b)| (*a..=*b).contains(&c)) != negate), i + 1));
        }
        let a = p[i];
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            ranges.push((a, p[i + 2]));
            i += 3;
        } else {
            ranges.push((a, a));
            i += 1;
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Planning

/// The planned `workdir_digest` of a remote provider's job: the digest of its local `workdir`
/// (`local`, from [`local_dir`]), or null where it has none. A job with a prior whose digest is
/// null keeps it null: it was planned before the digest existed or with `workdir` meaning a
/// directory on the nodes, and keeps that meaning until it is replaced (a changed `workdir`
/// replaces it anyway). Returns the attribute for `requires_replace` where the digest changed.
pub fn plan_digest(prior: Option<&Value>, local: Option<&Path>, planned: &mut Map) -> Result<Option<String>, String> {
    plan_scan(prior, local, planned).map(|(replace, _)| replace)
}

/// [`plan_digest`], and the workdir scanned (none where its digest is null).
fn plan_scan(prior: Option<&Value>, local: Option<&Path>, planned: &mut Map) -> Result<(Option<String>, Option<Workdir>), String> {
    let before = prior.map(|p| p.get(DIGEST_ATTR).cloned().unwrap_or(Value::Null));
    let (now, scanned) = match (&before, local) {
        (Some(Value::Null), _) | (_, None) => (Value::Null, None),
        (_, Some(dir)) => {
            let w = Workdir::scan(dir)?;
            (Value::from(w.digest()?), Some(w))
        }
    };
    let changed = before.as_ref().is_some_and(|b| *b != now);
    planned.insert(DIGEST_ATTR.into(), now);
    Ok((changed.then(|| DIGEST_ATTR.to_string()), scanned))
}

/// The warning of a workdir whose upload leaves out kiln's secrets or state (see the module's
/// documentation).
pub const WITHHELD_WARNING: &str = "W-JOB-WORKDIR-WITHHELD";

/// [`plan_digest`] for a job's configuration `job`, its `workdir` taken from [`local_dir`]
/// under `working_dir`; unknown until the `workdir` is known. With the attribute that asks for
/// a replacement, a [`WITHHELD_WARNING`] naming what the upload leaves out for safety.
pub fn plan_job_digest(
    working_dir: &Path,
    job: &Value,
    prior: Option<&Value>,
    planned: &mut Map,
) -> Result<(Option<String>, Option<kiln_diag::Diagnostic>), String> {
    if job.get("workdir").is_some_and(Value::contains_unknown) {
        planned.insert(DIGEST_ATTR.into(), Value::Unknown);
        return Ok((None, None));
    }
    let (replace, scanned) = plan_scan(prior, local_dir(working_dir, job).as_deref(), planned)?;
    let warning = scanned.filter(|w| !w.withheld.is_empty()).map(|w| {
        const SHOWN: usize = 10;
        let mut list = w.withheld.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
        if w.withheld.len() > SHOWN {
            list += &format!(" and {} more", w.withheld.len() - SHOWN);
        }
        kiln_diag::Diagnostic::warning(
            WITHHELD_WARNING,
            format!("the upload of the workdir {} leaves out kiln's secrets and state: {list}", w.root.display()),
        )
        .attribute("workdir")
        .hint(
            "variable files (*.kilnvars), .kiln directories, saved plans and state copies are never uploaded; \
             list them in the workdir's .kilnignore to silence this, or make `workdir` a directory holding only the job's files",
        )
    });
    Ok((replace, warning))
}

/// The error of a workdir that cannot be digested or uploaded, for the job at `address`.
pub fn error(code: &'static str, address: &str, e: &str) -> kiln_diag::Diagnostic {
    crate::util::error(code, address, format!("{address}: {e}"))
        .attribute("workdir")
        .hint("list what the job does not need in the workdir's .kilnignore (gitignore syntax), or keep data in a bucket")
}

/// A warning for a relative `workdir` that is not a directory under the configuration directory
/// (`working_dir`): a remote provider then takes it as a directory on its `nodes` (what
/// `workdir` meant before kiln uploaded it), which is most often a mistyped local path.
pub fn not_here_warning(working_dir: &Path, job: &Value, code: &'static str, nodes: &str) -> Option<kiln_diag::Diagnostic> {
    let w = job.get("workdir").and_then(Value::as_str)?;
    if Path::new(w).is_absolute() || local_dir(working_dir, job).is_some() {
        return None;
    }
    Some(
        kiln_diag::Diagnostic::warning(
            code,
            format!("`workdir` \"{w}\" is not a directory under {}, so it is taken as a directory on the {nodes}", working_dir.display()),
        )
        .attribute("workdir")
        .hint(format!("create it here to have kiln upload it to the {nodes}, or give an absolute path to mean one on the {nodes}")),
    )
}

/// The tar archive a job planned with a digest uploads: `None` where its `workdir_digest` is
/// null (nothing is uploaded; a `workdir` then names a directory on the nodes). Refused, with a
/// `code` error about `address`, where the workdir is no longer what was planned: a file edited
/// after the plan (`kiln plan --out`) is never uploaded unreviewed, and the state never records a
/// digest other than the upload's (as Terraform refuses a provider's inconsistent final plan).
pub fn upload(working_dir: &Path, planned: &Value, code: &'static str, address: &str) -> Result<Option<Vec<u8>>, kiln_diag::Diagnostic> {
    let Some(want) = planned.get(DIGEST_ATTR).and_then(Value::as_str) else {
        return Ok(None);
    };
    let dir = local_dir(working_dir, planned).ok_or_else(|| {
        let w = planned.get("workdir").and_then(Value::as_str).unwrap_or_default();
        error(code, address, &format!("the workdir {w} is no longer a directory on this machine"))
    })?;
    let w = Workdir::scan(&dir).map_err(|e| error(code, address, &e))?;
    let (digest, tar) = w.digest_and_tar(true).map_err(|e| error(code, address, &e))?;
    if digest != want {
        return Err(crate::util::error(
            code,
            address,
            format!("{address}: the workdir {} changed since the plan (planned {want}, now {digest})", dir.display()),
        )
        .attribute("workdir")
        .hint("run kiln plan again to review the new files (a saved plan applies only the workdir it digested)"));
    }
    Ok(Some(tar))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, data: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    #[test]
    fn gitignore_patterns() {
        let r = Rules::parse("# comment\n*.pt\n/data/\nbuild/\n!keep.pt\nlogs/**/*.txt\nsrc/*.tmp\n\\#hash\n");
        assert!(r.ignored("model.pt", false));
        assert!(r.ignored("a/b/model.pt", false), "no slash: any level");
        assert!(!r.ignored("keep.pt", false), "re-included");
        assert!(r.ignored("data", true));
        assert!(!r.ignored("data", false), "a trailing / is for directories only");
        assert!(!r.ignored("x/data", true), "a leading / anchors");
        assert!(r.ignored("x/build", true));
        assert!(r.ignored("logs/a/b/c.txt", false) && r.ignored("logs/c.txt", false));
        assert!(r.ignored("src/a.tmp", false) && !r.ignored("src/x/a.tmp", false), "* stays in one component");
        assert!(r.ignored("#hash", false));
        assert!(!r.ignored("train.py", false));
        let c = Rules::parse("file[0-9].txt\n?.log\n[!a]b\n");
        assert!(c.ignored("file3.txt", false) && !c.ignored("filex.txt", false));
        assert!(c.ignored("x.log", false) && !c.ignored("xy.log", false));
        assert!(c.ignored("cb", false) && !c.ignored("ab", false));
    }

    #[test]
    fn the_digest_follows_content_and_ignores_what_is_excluded() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "train.py", "print(1)\n");
        write(root, "data/big.bin", "xxxx");
        write(root, ".kiln/workspaces/default/state.json", "{}");
        write(root, ".kilnignore", "data/\n");
        let w = Workdir::scan(root).unwrap();
        let rels: Vec<&str> = w.entries.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(rels, [".kilnignore", "train.py"], ".kiln/ and the ignored directory left out");
        let d1 = w.digest().unwrap();
        assert!(d1.starts_with("sha256:") && d1.len() == 7 + 64);
        write(root, "data/big.bin", "yyyy");
        write(root, ".kiln/workspaces/default/state.json", "{\"serial\": 2}");
        assert_eq!(Workdir::scan(root).unwrap().digest().unwrap(), d1, "excluded files do not count");
        write(root, "train.py", "print(2)\n");
        assert_ne!(Workdir::scan(root).unwrap().digest().unwrap(), d1);
        write(root, "train.py", "print(1)\n");
        assert_eq!(Workdir::scan(root).unwrap().digest().unwrap(), d1, "the content, not the time");
        write(root, "sub/new.py", "");
        assert_ne!(Workdir::scan(root).unwrap().digest().unwrap(), d1, "a new file counts");
    }

    #[test]
    fn too_big_is_an_error_naming_kilnignore() {
        let tmp = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(tmp.path().join("huge.bin")).unwrap();
        f.set_len(MAX_BYTES + 1).unwrap();
        let e = Workdir::scan(tmp.path()).unwrap_err();
        assert!(e.contains("100 MiB") && e.contains(".kilnignore") && e.contains("bucket"), "{e}");
        std::fs::write(tmp.path().join(IGNORE_FILE), "*.bin\n").unwrap();
        assert_eq!(Workdir::scan(tmp.path()).unwrap().size(), 6);
    }

    #[test]
    fn the_tar_extracts_with_tar() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let long = format!("{}/{}.py", "d".repeat(60), "f".repeat(60));
        write(&src, "run.sh", "echo hi\n");
        write(&src, &long, "long\n");
        write(&src, "empty/.keep", "");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(src.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("run.sh", src.join("link")).unwrap();
        let w = Workdir::scan(&src).unwrap();
        let tar = w.tar().unwrap();
        let dst = tmp.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        let mut child =
            std::process::Command::new("tar").args(["-xf", "-", "-C"]).arg(&dst).stdin(std::process::Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&tar).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read_to_string(dst.join("run.sh")).unwrap(), "echo hi\n");
        assert_eq!(std::fs::read_to_string(dst.join(&long)).unwrap(), "long\n");
        assert!(std::fs::metadata(dst.join("run.sh")).unwrap().permissions().mode() & 0o100 != 0);
        assert_eq!(std::fs::read_link(dst.join("link")).unwrap(), Path::new("run.sh"));
        let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(mtime(&dst.join("run.sh")), mtime(&src.join("run.sh")), "modification times are kept");
        assert_eq!(Workdir::scan(&dst).unwrap().digest().unwrap(), w.digest().unwrap(), "the same content on the other side");
    }

    #[test]
    fn kiln_secrets_and_state_are_never_uploaded() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "train.py", "print(1)\n");
        write(root, "terraform.auto.kilnvars", "token = \"s3cret\"\n");
        write(root, "prod.kilnvars", "passphrase = \"x\"\n");
        write(root, "sub/.kiln/workspaces/default/state.json", "{}");
        write(root, "other/.kiln", "a file named .kiln");
        write(root, "sub/ok.txt", "fine\n");
        write(
            root,
            "state.json",
            "{\n  \"format_version\": 1,\n  \"kiln_version\": \"0.1.0\",\n  \"lineage\": \"l\",\n  \"serial\": 3\n}\n",
        );
        write(root, "tfplan", "{\"format_version\":1,\"kiln_version\":\"0.1.0\",\"mode\":\"normal\"}");
        write(root, "sealed.plan", "{\"kiln_encrypted\":1,\"data\":\"...\"}");
        write(root, "config.json", "{\"format_version\": 2, \"name\": \"not kiln's\"}");
        // A .kilnignore cannot re-include them.
        write(root, IGNORE_FILE, "!*.kilnvars\n!state.json\n");
        let w = Workdir::scan(root).unwrap();
        let rels: Vec<&str> = w.entries.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(rels, [".kilnignore", "config.json", "other", "sub", "sub/ok.txt", "train.py"]);
        assert_eq!(
            w.withheld,
            ["other/.kiln", "prod.kilnvars", "sealed.plan", "state.json", "sub/.kiln", "terraform.auto.kilnvars", "tfplan"]
        );
        // Planning warns, naming them (the top `.kiln/` is expected and not named).
        write(root, ".kiln/workspaces/default/state.json", "{}");
        let job = Value::Map([("workdir".to_string(), Value::from("."))].into_iter().collect());
        let (_, warning) = plan_job_digest(root, &job, None, &mut Map::new()).unwrap();
        let d = warning.unwrap();
        assert_eq!((d.code, d.attribute.as_deref()), (WITHHELD_WARNING, Some("workdir")));
        assert!(d.summary.contains("prod.kilnvars") && d.summary.contains("sub/.kiln") && !d.summary.contains(", .kiln"), "{}", d.summary);
        assert!(!d.summary.contains("s3cret"));
        std::fs::remove_dir_all(root.join("sub")).unwrap();
        std::fs::remove_dir_all(root.join("other")).unwrap();
        for f in ["prod.kilnvars", "sealed.plan", "state.json", "terraform.auto.kilnvars", "tfplan"] {
            std::fs::remove_file(root.join(f)).unwrap();
        }
        assert_eq!(plan_job_digest(root, &job, None, &mut Map::new()).unwrap().1, None, "nothing withheld: no warning");
    }

    #[test]
    fn kiln_documents_are_recognized_by_their_first_bytes() {
        assert!(is_kiln_document(b"{\n  \"format_version\": 1,\n  \"kiln_version\": \"0.1.0\""));
        assert!(is_kiln_document(b"{\"format_version\":12,\"kiln_version\":\"x\""));
        assert!(is_kiln_document(b" { \"kiln_encrypted\" : 1"));
        assert!(!is_kiln_document(b"{\"format_version\": 1, \"name\": 2}"));
        assert!(!is_kiln_document(b"{\"format_version\":"), "cut short");
        assert!(!is_kiln_document(b"print('kiln_version')"));
        assert!(!is_kiln_document(b""));
    }

    #[test]
    fn private_files_stay_private_in_the_tar() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        write(&src, "private.key", "k\n");
        write(&src, "group.txt", "g\n");
        write(&src, "public.txt", "p\n");
        write(&src, "run.sh", "echo\n");
        let set = |rel: &str, mode: u32| std::fs::set_permissions(src.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
        set("private.key", 0o600);
        set("group.txt", 0o640);
        set("public.txt", 0o666);
        set("run.sh", 0o700);
        let tar = Workdir::scan(&src).unwrap().tar().unwrap();
        let dst = tmp.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        let mut child = std::process::Command::new("tar")
            .args(["--no-same-owner", "-p", "-xf", "-", "-C"])
            .arg(&dst)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&tar).unwrap();
        assert!(child.wait().unwrap().success());
        let mode = |rel: &str| std::fs::metadata(dst.join(rel)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("private.key"), 0o600, "owner-only stays owner-only");
        assert_eq!(mode("group.txt"), 0o640);
        assert_eq!(mode("public.txt"), 0o644, "no bits added (group/other write)");
        assert_eq!(mode("run.sh"), 0o700);
    }

    #[test]
    fn the_upload_is_the_planned_workdir() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "src/a.py", "1");
        let job = Value::Map([("workdir".to_string(), Value::from("src"))].into_iter().collect());
        let mut planned = match job.clone() {
            Value::Map(m) => m,
            _ => unreachable!(),
        };
        plan_job_digest(tmp.path(), &job, None, &mut planned).unwrap();
        let planned = Value::Map(planned);
        assert!(upload(tmp.path(), &planned, "E-X", "x.job").unwrap().is_some());
        // Edited after `kiln plan --out`: refused, not uploaded unreviewed.
        write(tmp.path(), "src/a.py", "2");
        let e = upload(tmp.path(), &planned, "E-X", "x.job").unwrap_err();
        assert_eq!((e.code, e.attribute.as_deref()), ("E-X", Some("workdir")));
        assert!(e.summary.contains("changed since the plan"), "{}", e.summary);
        assert!(e.hint.as_deref().unwrap_or_default().contains("kiln plan again"), "{:?}", e.hint);
        // Planned without a digest: nothing is uploaded.
        let mut old = match planned {
            Value::Map(m) => m,
            _ => unreachable!(),
        };
        old.insert(DIGEST_ATTR.into(), Value::Null);
        assert_eq!(upload(tmp.path(), &Value::Map(old), "E-X", "x.job").unwrap(), None);
    }

    /// The backtracking matcher [`glob`] replaced, as the reference for its semantics: `*` and `?` within one component, `**` across them, `[...]` classes,
    /// `\` escapes.
    fn glob_reference(p: &[u8], t: &[u8]) -> bool {
        if p.starts_with(b"**") {
            let rest = &p[2..];
            if rest.is_empty() {
                return true;
            }
            if let Some(after) = rest.strip_prefix(b"/") {
                // `**/x`: x here or after any `/`.
                return glob_reference(after, t) || (0..t.len()).any(|i| t[i] == b'/' && glob_reference(after, &t[i + 1..]));
            }
            return (0..=t.len()).any(|i| glob_reference(rest, &t[i..]));
        }
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len()).take_while(|i| *i == 0 || t[i - 1] != b'/').any(|i| glob_reference(&p[1..], &t[i..])),
            Some(b'?') => t.first().is_some_and(|c| *c != b'/') && glob_reference(&p[1..], &t[1..]),
            Some(b'[') => match (t.first(), class(&p[1..])) {
                (Some(c), Some((matches, len))) if *c != b'/' => matches(*c) && glob_reference(&p[1 + len..], &t[1..]),
                (_, None) => t.first() == Some(&b'[') && glob_reference(&p[1..], &t[1..]),
                _ => false,
            },
            Some(b'\\') if p.len() > 1 => t.first() == Some(&p[1]) && glob_reference(&p[2..], &t[1..]),
            Some(c) => t.first() == Some(c) && glob_reference(&p[1..], &t[1..]),
        }
    }

    #[test]
    fn the_matcher_agrees_with_the_backtracking_one() {
        let pats = [
            "*", "**", "a*", "*a", "a?b", "**/b", "a/**", "a/**/b", "**/**/b", "a**b", "***", "*/*", "[ab]*", "[!a]/b", "[a-", "\\*a",
            "a\\", "*a*b", "?/?", "a/*/b", "**a", "b**", "**/", "x",
        ];
        let texts = ["", "a", "b", "ab", "ba", "a/b", "b/a", "a/a/b", "aab", "a/x/y/b", "[a-", "*a", "a\\", "ab/b", "x/b", "/b", "a/"];
        for p in pats {
            for t in texts {
                assert_eq!(glob(p.as_bytes(), t.as_bytes()), glob_reference(p.as_bytes(), t.as_bytes()), "{p:?} against {t:?}");
            }
        }
    }

    #[test]
    fn hostile_patterns_finish() {
        let long = "a".repeat(200);
        let r = Rules::parse("*a*a*a*a*a*a*a*a*a*a*a*a*b\n");
        assert!(!r.ignored(&long, false));
        assert!(r.ignored(&format!("{long}b"), false));
        let deep = vec!["x"; 200].join("/") + "/y";
        let r = Rules::parse("**/**/**/**/**/**/**/**/**/**/z\na/**/**/**/**/**/**/**/q\n");
        assert!(!r.ignored(&deep, false));
        assert!(r.ignored(&(deep.clone() + "/z"), false));
        assert!(!r.ignored(&format!("a/{deep}"), false));
        let r = Rules::parse("**a**a**a**a**a**a**a**a**a**b\n");
        assert!(!r.ignored(&format!("{long}/{long}"), false));
    }

    #[test]
    fn planning_keeps_an_old_jobs_meaning() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "a.py", "1");
        let mut planned = Map::new();
        // A new job: the digest.
        assert_eq!(plan_digest(None, Some(tmp.path()), &mut planned).unwrap(), None);
        let digest = planned[DIGEST_ATTR].clone();
        assert!(digest.as_str().unwrap().starts_with("sha256:"));
        // A state written before the digest (no attribute) or with a null one: no change.
        for old in [Value::Map(Map::new()), Value::Map([(DIGEST_ATTR.to_string(), Value::Null)].into_iter().collect())] {
            let mut planned = Map::new();
            assert_eq!(plan_digest(Some(&old), Some(tmp.path()), &mut planned).unwrap(), None);
            assert_eq!(planned[DIGEST_ATTR], Value::Null);
        }
        // Unchanged, then changed.
        let prior = Value::Map([(DIGEST_ATTR.to_string(), digest.clone())].into_iter().collect());
        assert_eq!(plan_digest(Some(&prior), Some(tmp.path()), &mut planned).unwrap(), None);
        write(tmp.path(), "a.py", "2");
        assert_eq!(plan_digest(Some(&prior), Some(tmp.path()), &mut planned).unwrap().as_deref(), Some(DIGEST_ATTR));
        // Not a directory here: null.
        assert_eq!(plan_digest(None, None, &mut planned).unwrap(), None);
        assert_eq!(planned[DIGEST_ATTR], Value::Null);
        let job = Value::Map([("workdir".to_string(), Value::from("/no/such/dir/kiln"))].into_iter().collect());
        assert_eq!(local_dir(tmp.path(), &job), None);
        let job = Value::Map([("workdir".to_string(), Value::from("."))].into_iter().collect());
        assert_eq!(local_dir(tmp.path(), &job), Some(tmp.path().join(".")));
        // A relative path that is not here is most often a typo: a warning says what it means.
        let with = |w: &str| Value::Map([("workdir".to_string(), Value::from(w))].into_iter().collect());
        let d = not_here_warning(tmp.path(), &with("srcc"), "W-X-JOB-WORKDIR", "hosts").unwrap();
        assert_eq!((d.code, d.attribute.as_deref()), ("W-X-JOB-WORKDIR", Some("workdir")));
        assert!(d.summary.contains("\"srcc\"") && d.summary.contains("on the hosts"), "{}", d.summary);
        assert!(not_here_warning(tmp.path(), &with("."), "W", "hosts").is_none(), "a directory here");
        assert!(not_here_warning(tmp.path(), &with("/srv/code"), "W", "hosts").is_none(), "an absolute path on the nodes, as before");
        assert!(not_here_warning(tmp.path(), &Value::Map(Map::new()), "W", "hosts").is_none());
    }
}
