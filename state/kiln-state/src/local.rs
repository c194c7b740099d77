//! The local backend: state kept in files next to each other (by default under `.kiln/`).
//!
//! - `state.json`: the last snapshot, a [`crate::format`] document, replaced atomically (temp
//!   file in the same directory, write, fsync, rename, fsync the directory).
//! - `state.json.backup`: the snapshot before the last write, written the same way.
//! - `state.json.journal`: mutations recorded since the last snapshot. Its first line is a header
//!   naming the lineage and serial of the snapshot it continues; each later line is one
//!   `append` call (`{"mutations": [...]}`), written with one write and one fsync. A line torn by
//!   a crash (the last one) is ignored on replay and cut off by the next append. A journal whose
//!   header does not match the snapshot is an error saying how to resolve it, never dropped.
//! - `state.json.lock`: the lock, created exclusively (`O_EXCL`) and holding the [`LockInfo`].
//! - `state.json.lock.guard`: an empty file, never removed, whose advisory `flock` every
//!   process holds while it takes, renews or releases the lock, so that checking the lock's ID
//!   and replacing or removing the file are one step for other kiln processes.
//!
//! Every document (snapshot, backup, and each journal line including the header) passes through
//! the backend's [`Codec`] ([`LocalBackend::with_codec`]); a sealed line never contains `\n`, so
//! the line structure above holds for encrypted journals too. The lock file is stored as is.
//!
//! Workspaces: the default workspace uses the configured path; workspace `NAME` uses
//! `workspaces/NAME/<file name>` beside it (`.kiln/workspaces/staging/state.json` for the
//! default path), with the same sibling files.
//!
//! A write first appends a `{"superseded_by": {"lineage", "serial"}}` marker to the journal,
//! then replaces the snapshot, then removes the journal. If kiln dies between the last two steps,
//! the marker (as the journal's last line, naming the snapshot now stored) shows the journal is
//! already folded into the snapshot, so it is ignored and then removed. A marker naming another
//! snapshot is from a write that died before its rename, and the journal is replayed as usual.
//!
//! A state file that does not decode (corrupt, or written by a newer kiln) is never overwritten:
//! `write` fails with the same error `read` gives.
//!
//! File operations run on Tokio's blocking thread pool when called inside a Tokio runtime, and
//! inline otherwise.

// `LockError::Held` carries the holder's `LockInfo` by value, as the error type is specified;
// lock errors are rare, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::format::{self, MutationsIn, MutationsOut, KILN_VERSION};
use crate::{Codec, LockError, LockInfo, Mutation, Plain, State, StateBackend, StateError, StateVersion, DEFAULT_WORKSPACE};

/// Version of the journal's line format, in its header.
const JOURNAL_VERSION: u64 = 1;

/// State in a local JSON file. See the module documentation for the files it uses.
#[derive(Clone)]
pub struct LocalBackend {
    inner: Arc<Inner>,
}

struct Inner {
    /// The default workspace's state file: workspaces live beside it.
    base: PathBuf,
    workspace: String,
    codec: Arc<dyn Codec>,
    path: PathBuf,
    backup: PathBuf,
    journal: PathBuf,
    lock: PathBuf,
    guard: PathBuf,
    /// Orders this instance's own file operations; the state lock orders processes.
    io: Mutex<()>,
    /// How many bytes at the start of the journal this instance decoded (in `read`) or wrote
    /// itself, every complete line of which is a valid entry: `write` need not decode them
    /// again to know it may fold them away (decoding 10,000 entries doubled a large apply).
    verified: Mutex<u64>,
}

impl LocalBackend {
    /// Where state lives unless configured otherwise, relative to the working directory.
    pub const DEFAULT_PATH: &'static str = ".kiln/state.json";

    /// A backend for the state file `path`. Nothing is touched until the first operation; parent
    /// directories are created by the first write or lock.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::build(path.into(), DEFAULT_WORKSPACE.to_string(), Arc::new(Plain))
    }

    fn build(base: PathBuf, workspace: String, codec: Arc<dyn Codec>) -> Self {
        let path = workspace_path(&base, &workspace);
        let sibling = |suffix: &str| {
            let mut s = path.clone().into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        LocalBackend {
            inner: Arc::new(Inner {
                backup: sibling(".backup"),
                journal: sibling(".journal"),
                lock: sibling(".lock"),
                guard: sibling(".lock.guard"),
                path,
                base,
                workspace,
                codec,
                io: Mutex::new(()),
                verified: Mutex::new(0),
            }),
        }
    }

    /// The same storage, protecting every document with `codec`.
    pub fn with_codec(self, codec: Arc<dyn Codec>) -> Self {
        Self::build(self.inner.base.clone(), self.inner.workspace.clone(), codec)
    }

    /// The same storage, addressing workspace `name` (see the module documentation for where
    /// its files are). The name must pass [`crate::check_workspace_name`].
    pub fn with_workspace(self, name: &str) -> Self {
        Self::build(self.inner.base.clone(), name.to_string(), self.inner.codec.clone())
    }

    /// The workspace this value addresses.
    pub fn workspace(&self) -> &str {
        &self.inner.workspace
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The previous snapshot, kept by each write.
    pub fn backup_path(&self) -> &Path {
        &self.inner.backup
    }

    /// The journal of mutations appended since the last snapshot.
    pub fn journal_path(&self) -> &Path {
        &self.inner.journal
    }

    /// The lock file.
    pub fn lock_path(&self) -> &Path {
        &self.inner.lock
    }

    async fn blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Inner) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        if tokio::runtime::Handle::try_current().is_err() {
            return f(&inner);
        }
        match tokio::task::spawn_blocking(move || f(&inner)).await {
            Ok(r) => r,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("state file task did not finish: {e}"),
            },
        }
    }
}

/// Where workspace `name` of the storage whose default state file is `base` keeps its state.
fn workspace_path(base: &Path, name: &str) -> PathBuf {
    if name == DEFAULT_WORKSPACE {
        return base.to_path_buf();
    }
    let file = base.file_name().map_or_else(|| "state.json".into(), |n| n.to_os_string());
    parent_dir(base).join("workspaces").join(name).join(file)
}

impl Default for LocalBackend {
    fn default() -> Self {
        LocalBackend::new(Self::DEFAULT_PATH)
    }
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend").field("path", &self.inner.path).finish()
    }
}

#[async_trait::async_trait]
impl StateBackend for LocalBackend {
    async fn read(&self) -> Result<Option<State>, StateError> {
        self.blocking(|i| Ok(i.load(true)?.and_then(|l| l.state))).await
    }

    async fn write(&self, state: &State) -> Result<(), StateError> {
        let plain = format::encode(state);
        let (lineage, serial) = (state.lineage.clone(), state.serial);
        self.blocking(move |i| {
            let bytes = i.codec.seal(&plain)?;
            i.write(&bytes, &lineage, serial)
        })
        .await
    }

    /// An empty batch writes nothing and does not count as a serial increment.
    async fn append(&self, mutations: &[Mutation]) -> Result<(), StateError> {
        if mutations.is_empty() {
            return Ok(());
        }
        let line = json_line(&LineOut::Mutations(MutationsOut(mutations)));
        self.blocking(move |i| {
            let line = i.seal_line(&line)?;
            i.append(&line)
        })
        .await
    }

    async fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let info = info.clone();
        self.blocking(move |i| i.lock(&info)).await
    }

    async fn unlock(&self, id: &str) -> Result<(), LockError> {
        let id = id.to_string();
        self.blocking(move |i| i.unlock(&id)).await
    }

    /// For local files the same as `unlock`: whoever knows the lock ID may remove it.
    async fn force_unlock(&self, id: &str) -> Result<(), LockError> {
        let id = id.to_string();
        self.blocking(move |i| i.unlock(&id)).await
    }

    async fn lock_info(&self) -> Result<Option<LockInfo>, LockError> {
        self.blocking(|i| i.read_lock()).await
    }

    /// Rewrites the lock file atomically after checking the ID, under the guard.
    async fn renew_lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let info = info.clone();
        self.blocking(move |i| {
            i.guarded(|| match i.read_lock()? {
                None => Err(LockError::NotHeld),
                Some(h) if h.id != info.id => Err(LockError::Mismatch { expected: info.id.clone(), found: h.id }),
                Some(_) => atomic_write(&i.lock, &lock_bytes(&info)).map_err(lock_io_err(&i.lock)),
            })
        })
        .await
    }

    async fn versions(&self) -> Result<Vec<StateVersion>, StateError> {
        self.blocking(|i| {
            let mut out = Vec::new();
            for (id, path) in [("current", &i.path), ("backup", &i.backup)] {
                let Some(bytes) = read_opt(path)? else { continue };
                let serial = i.open(&bytes, path).and_then(|p| format::peek(&p, &show(path))).ok().map(|(_, s)| s);
                let stored = fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                out.push(StateVersion { id: id.into(), serial, stored, size: bytes.len() as u64, current: id == "current" });
            }
            Ok(out)
        })
        .await
    }

    async fn workspaces(&self) -> Result<Vec<String>, StateError> {
        self.blocking(|i| {
            let mut names = Vec::new();
            if i.base.exists() {
                names.push(DEFAULT_WORKSPACE.to_string());
            }
            let dir = parent_dir(&i.base).join("workspaces");
            let file = i.base.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            match fs::read_dir(&dir) {
                Ok(rd) => {
                    for e in rd.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if crate::check_workspace_name(&name).is_ok() && e.path().join(&file).exists() {
                            names.push(name);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&dir)(e)),
            }
            names.sort();
            names.dedup();
            Ok(names)
        })
        .await
    }

    async fn delete_state(&self) -> Result<(), StateError> {
        self.blocking(|i| {
            let _guard = i.io.lock().unwrap_or_else(|e| e.into_inner());
            // The backup first: a deletion cut short never leaves a backup without its state.
            for p in [&i.backup, &i.journal, &i.path] {
                match fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(p)(e)),
                }
            }
            let dir = parent_dir(&i.path);
            if i.workspace != DEFAULT_WORKSPACE {
                // Only if empty: the lock file may still be there, removed by the caller's unlock.
                let _ = fs::remove_dir(dir);
            }
            if dir.exists() {
                sync_dir(dir).map_err(io_err(dir))?;
            }
            Ok(())
        })
        .await
    }

    fn describe(&self) -> String {
        show(&self.inner.path)
    }
}

// ---------------------------------------------------------------------------------------------
// Journal lines.

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalHeader {
    kiln_journal: u64,
    kiln_version: String,
    lineage: String,
    serial: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum LineOut<'a> {
    Mutations(MutationsOut<'a>),
    SupersededBy { lineage: &'a str, serial: u64 },
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum LineIn {
    Mutations(MutationsIn),
    SupersededBy { lineage: String, serial: u64 },
}

/// Reads any line just enough to tell a valid one, and a marker, from a torn one.
#[derive(Deserialize)]
struct LineProbe {
    #[serde(default)]
    superseded_by: Option<Marker>,
}

#[derive(Deserialize, PartialEq)]
struct Marker {
    lineage: String,
    serial: u64,
}

fn json_line(v: &impl Serialize) -> Vec<u8> {
    let mut line = serde_json::to_vec(v).expect("journal lines encode: all map keys are strings");
    line.push(b'\n');
    line
}

struct Journal {
    header: JournalHeader,
    /// The mutations of each complete entry line; empty when parsed without decoding.
    entries: Vec<Vec<Mutation>>,
    /// Complete entry lines since the last marker.
    count: u64,
    /// The last complete line, when it is a marker.
    marker: Option<Marker>,
    /// Bytes up to the end of the last complete line: what follows is torn.
    valid_len: u64,
}

/// Turns a stored journal line (without its newline) into its plaintext.
type Opener<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<u8>, StateError>;

/// Parses the journal. With `decode` false, entry lines are checked and counted (what `write`
/// needs) but their mutations are not kept. Every complete line is decoded either way: a write
/// folds the journal away, so it must refuse one holding an entry that `read` would refuse.
///
/// Lines that end within the first `verified` bytes are known to decode: without `decode`
/// they are only probed for a supersession marker.
fn parse_journal(bytes: &[u8], path: &str, decode: bool, verified: u64, open: Opener<'_>) -> Result<Journal, StateError> {
    let mut lines = bytes.split_inclusive(|&b| b == b'\n').enumerate().peekable();
    let (header, mut end) = match lines.next() {
        Some((_, l)) if l.ends_with(b"\n") => {
            let plain = open(&l[..l.len() - 1])?;
            (kiln_value::from_json_slice::<JournalHeader>(&plain).map_err(|e| format::corrupt(path, &e))?, l.len())
        }
        _ => {
            return Err(StateError::Corrupt {
                path: path.to_string(),
                line: 1,
                column: 1,
                message: "the journal has no complete header line".into(),
            })
        }
    };
    if header.kiln_journal > JOURNAL_VERSION {
        return Err(StateError::NewerFormat { path: path.to_string(), found: header.kiln_journal, supported: JOURNAL_VERSION });
    }
    let mut journal = Journal { entries: Vec::new(), count: 0, marker: None, valid_len: 0, header };
    while let Some((i, raw)) = lines.next() {
        let last = lines.peek().is_none();
        if !raw.ends_with(b"\n") {
            break; // torn by a crash mid-write
        }
        let raw_len = raw.len();
        let raw = match open(&raw[..raw.len() - 1]) {
            Ok(plain) => plain,
            Err(_) if last => break, // torn: partly written before a crash
            Err(e) => return Err(e),
        };
        let raw = raw.as_slice();
        let parsed = if !decode && (end + raw_len) as u64 <= verified {
            kiln_value::from_json_slice::<LineProbe>(raw).map(|p| p.superseded_by.map_or(Ok(Vec::new()), Err))
        } else {
            kiln_value::from_json_slice::<LineIn>(raw).map(|l| match l {
                LineIn::Mutations(m) => Ok(m.0),
                LineIn::SupersededBy { lineage, serial } => Err(Marker { lineage, serial }),
            })
        };
        match parsed {
            Ok(Ok(m)) => {
                if decode {
                    journal.entries.push(m);
                }
                journal.count += 1;
                journal.marker = None;
            }
            Ok(Err(marker)) => journal.marker = Some(marker),
            // Garbled by a crash (pages written out of order): not JSON at all. A line that is
            // JSON but not a journal entry kiln can decode holds changes that must not be
            // dropped, so it is an error even when it is the last one.
            Err(e) if last && garbled(&e) => break,
            Err(e) => {
                let mut err = format::corrupt(path, &e);
                if let StateError::Corrupt { line, .. } = &mut err {
                    *line = i + 1; // the error counts lines within this one
                }
                return Err(err);
            }
        }
        end += raw_len;
    }
    journal.valid_len = end as u64;
    Ok(journal)
}

/// Whether a line failed to parse because its bytes are not JSON (torn or garbled by a crash),
/// rather than because it is JSON kiln cannot decode (a real entry it must not drop).
fn garbled(e: &serde_json::Error) -> bool {
    matches!(e.classify(), serde_json::error::Category::Syntax | serde_json::error::Category::Eof)
}

// ---------------------------------------------------------------------------------------------
// Blocking file operations.

#[derive(Clone, Copy, PartialEq)]
enum JournalState {
    Absent,
    /// Already folded into the snapshot by a write that died before removing it.
    Superseded,
    /// Replayed on top of the snapshot; mutations after `valid_len` are torn.
    Active {
        valid_len: u64,
    },
}

struct Loaded {
    /// Snapshot with the journal folded in (only when loaded with `decode`).
    state: Option<State>,
    lineage: String,
    /// Serial with the journal's entries counted.
    serial: u64,
    /// The snapshot file as stored.
    snapshot: Vec<u8>,
    journal: JournalState,
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: show(path), source }
}

fn lock_io_err(path: &Path) -> impl FnOnce(io::Error) -> LockError + '_ {
    move |source| LockError::Io { path: show(path), source }
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match read_regular(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Whether `path` exists; an error if it is there but not a regular file.
fn regular_file_exists(path: &Path) -> Result<bool, StateError> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(true),
        Ok(_) => Err(io_err(path)(not_regular())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn not_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "it is not a regular file (a FIFO, device, socket or directory); kiln keeps state only in regular files",
    )
}

/// Reads a whole file, refusing anything but a regular file. It is opened without blocking, so
/// a FIFO put where a state file belongs is an error instead of a read that never ends.
fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, libc::O_NONBLOCK);
    let mut f = o.open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content: temp
/// file in the same directory, write, fsync, rename, fsync the directory. A new file is readable
/// by its owner only (state holds secrets); a replaced file keeps its permissions.
fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path.file_name().map_or_else(|| "state".into(), |n| n.to_string_lossy());
    // The writer's pid in the name lets a later write remove it if this process dies.
    let tmp = dir.join(format!(".{name}.{}-{}.tmp", std::process::id(), uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = create_private(&tmp)?;
        if let Ok(meta) = fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes temp files of `files` (see [`atomic_write`]) that a killed writer left in `dir`: those
/// whose writer's process is gone, and those of kilns that did not name the writer once they are
/// an hour old. Best effort: a temp file that cannot be removed is left for the next write.
fn remove_stale_temps(dir: &Path, files: &[&Path]) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let names: Vec<String> = files.iter().filter_map(|f| f.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
    let is_hex = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    for e in entries.flatten() {
        let file = e.file_name();
        let file = file.to_string_lossy();
        // `.NAME.PID-HEX.tmp` (or `.NAME.HEX.tmp` from older kilns) for one of `files`.
        let middles = names.iter().filter_map(|n| file.strip_prefix(&format!(".{n}.")).and_then(|r| r.strip_suffix(".tmp")));
        let stale = middles.into_iter().any(|middle| match middle.split_once('-') {
            Some((pid, id)) if is_hex(id) => {
                pid.parse::<u32>().is_ok_and(|pid| pid != std::process::id() && !crate::backend::process_alive(pid))
            }
            None if is_hex(middle) => e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600)),
            _ => false,
        });
        if stale {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn create_private(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// Where the last line of a non-empty file starts (0 when it is the first line). A final
/// newline belongs to the last line.
fn last_line_start(file: &mut File, len: u64) -> io::Result<u64> {
    let mut end = len.saturating_sub(1);
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

fn lock_bytes(info: &LockInfo) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(info).expect("lock info encodes");
    bytes.push(b'\n');
    bytes
}

impl Inner {
    /// The plaintext of a document stored at `path`.
    fn open(&self, stored: &[u8], path: &Path) -> Result<Vec<u8>, StateError> {
        self.codec.open(stored, &show(path))
    }

    /// Seals one journal line (given with its final newline), keeping it one line.
    fn seal_line(&self, line: &[u8]) -> Result<Vec<u8>, StateError> {
        let mut sealed = self.codec.seal(line.strip_suffix(b"\n").unwrap_or(line))?;
        if sealed.contains(&b'\n') {
            return Err(StateError::Crypto {
                path: show(&self.journal),
                message: format!(
                    "the `{}` codec produced a record with a line break, which it must never do: this is a bug in kiln",
                    self.codec.name()
                ),
            });
        }
        sealed.push(b'\n');
        Ok(sealed)
    }

    /// Lineage and serial of the stored snapshot; `NoState` without one.
    fn peek_snapshot(&self) -> Result<(String, u64), StateError> {
        let snapshot = read_opt(&self.path)?.ok_or_else(|| StateError::NoState { path: show(&self.path) })?;
        format::peek(&self.open(&snapshot, &self.path)?, &show(&self.path))
    }

    /// The snapshot with the journal folded in, as `read` returns it; with `decode` false only
    /// its lineage and serial (what `write` checks), without decoding resources or mutations.
    fn load(&self, decode: bool) -> Result<Option<Loaded>, StateError> {
        let snapshot = read_opt(&self.path)?;
        let journal = read_opt(&self.journal)?;
        let Some(snapshot) = snapshot else {
            return match journal {
                None if regular_file_exists(&self.backup)? => Err(StateError::Missing {
                    path: show(&self.path),
                    reason: format!(
                        "its backup `{backup}` does: the state file was deleted or moved. kiln will not start a new state, which would forget every object the old one tracks and overwrite the backup. Put the state back (move it back, or restore the previous version with `cp -p {backup} {path}`, then run `kiln plan` to see what changed since); if you really mean to start from nothing, delete `{backup}` first",
                        backup = show(&self.backup),
                        path = show(&self.path),
                    ),
                }),
                None => Ok(None),
                Some(_) => Err(StateError::JournalMismatch {
                    path: show(&self.journal),
                    reason: format!(
                        "it records changes on top of a state, but `{}` does not exist: put that state back (for example from `{}`) to recover the changes, or delete the journal to discard them",
                        show(&self.path),
                        show(&self.backup)
                    ),
                }),
            };
        };
        let plain = self.open(&snapshot, &self.path)?;
        let mut state = if decode { Some(format::decode(&plain, &show(&self.path))?) } else { None };
        let (lineage, mut serial) = match &state {
            Some(st) => (st.lineage.clone(), st.serial),
            None => format::peek(&plain, &show(&self.path))?,
        };
        drop(plain);
        let journal = match journal {
            None => JournalState::Absent,
            Some(bytes) => {
                let verified = *self.verified.lock().unwrap_or_else(|e| e.into_inner());
                let j = parse_journal(&bytes, &show(&self.journal), decode, verified, &|b| self.open(b, &self.journal))?;
                if decode {
                    *self.verified.lock().unwrap_or_else(|e| e.into_inner()) = j.valid_len;
                }
                if j.marker.as_ref().is_some_and(|m| m.lineage == lineage && m.serial == serial) {
                    JournalState::Superseded
                } else {
                    self.check_header(&j.header, &lineage, serial)?;
                    serial = format::advance_serial(serial, j.count, &show(&self.journal))?;
                    if let Some(st) = &mut state {
                        for m in j.entries.iter().flatten() {
                            st.apply_mutation(m);
                        }
                        st.serial = serial;
                    }
                    JournalState::Active { valid_len: j.valid_len }
                }
            }
        };
        Ok(Some(Loaded { state, lineage, serial, snapshot, journal }))
    }

    fn check_header(&self, h: &JournalHeader, lineage: &str, serial: u64) -> Result<(), StateError> {
        let (state, journal) = (show(&self.path), show(&self.journal));
        let reason = if h.lineage != lineage {
            format!(
                "it continues a state of lineage `{}`, but `{state}` has lineage `{}`: the state file was replaced by another one; put back the state of lineage `{}` at serial `{}` to recover the journaled changes, or delete `{journal}` to discard them",
                h.lineage, lineage, h.lineage, h.serial
            )
        } else if h.serial != serial {
            format!(
                "it continues serial `{}`, but `{state}` is at serial `{}`: the state file was replaced after the journal was started; put back the state at serial `{}` (perhaps `{}`) to recover the journaled changes, or delete `{journal}` to discard them",
                h.serial,
                serial,
                h.serial,
                show(&self.backup)
            )
        } else {
            return Ok(());
        };
        Err(StateError::JournalMismatch { path: journal, reason })
    }

    fn write(&self, bytes: &[u8], lineage: &str, serial: u64) -> Result<(), StateError> {
        let _guard = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let loaded = self.load(false)?;
        if let Some(l) = &loaded {
            if l.lineage != lineage {
                return Err(StateError::Conflict {
                    reason: format!(
                        "`{}` holds lineage `{}` but the state to write has lineage `{lineage}`: they are different histories; check that kiln is pointed at the right state",
                        show(&self.path),
                        l.lineage
                    ),
                });
            }
            if serial <= l.serial {
                return Err(StateError::Conflict {
                    reason: format!(
                        "its serial `{serial}` is not greater than serial `{}` stored in `{}`: the state changed since it was read; read it again and retry",
                        l.serial,
                        show(&self.path)
                    ),
                });
            }
        }
        let dir = parent_dir(&self.path);
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        remove_stale_temps(dir, &[&self.path, &self.backup, &self.journal, &self.lock]);
        let journal = loaded.as_ref().map_or(JournalState::Absent, |l| l.journal);
        match journal {
            JournalState::Absent => {}
            JournalState::Superseded => {
                fs::remove_file(&self.journal).map_err(io_err(&self.journal))?;
                sync_dir(dir).map_err(io_err(dir))?;
            }
            JournalState::Active { valid_len } => {
                let marker = self.seal_line(&json_line(&LineOut::SupersededBy { lineage, serial }))?;
                self.append_at(valid_len, &marker).map_err(io_err(&self.journal))?;
            }
        }
        if let Some(l) = &loaded {
            atomic_write(&self.backup, &l.snapshot).map_err(io_err(&self.backup))?;
        }
        atomic_write(&self.path, bytes).map_err(io_err(&self.path))?;
        if let JournalState::Active { .. } = journal {
            fs::remove_file(&self.journal).map_err(io_err(&self.journal))?;
            sync_dir(dir).map_err(io_err(dir))?;
        }
        *self.verified.lock().unwrap_or_else(|e| e.into_inner()) = 0;
        Ok(())
    }

    /// Writes `line` at offset `at` of the journal (cutting off anything after it) and fsyncs.
    fn append_at(&self, at: u64, line: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).open(&self.journal)?;
        if f.metadata()?.len() != at {
            f.set_len(at)?;
        }
        f.seek(SeekFrom::Start(at))?;
        f.write_all(line)?;
        f.sync_data()
    }

    /// Adds one entry line. An existing journal's header is not re-checked here (that would mean
    /// reading the snapshot on every call): `read` and `write` check it and fail loudly.
    fn append(&self, line: &[u8]) -> Result<(), StateError> {
        let _guard = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let jerr = io_err(&self.journal);
        let mut f = match OpenOptions::new().read(true).write(true).open(&self.journal) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.start_journal(line),
            Err(e) => return Err(jerr(e)),
        };
        // Find where valid content ends: the last line may be torn by a crash.
        let len = f.metadata().map_err(io_err(&self.journal))?.len();
        let start = last_line_start(&mut f, len).map_err(io_err(&self.journal))?;
        let mut last = vec![0u8; (len - start) as usize];
        f.seek(SeekFrom::Start(start)).and_then(|_| f.read_exact(&mut last)).map_err(io_err(&self.journal))?;
        let complete = last.ends_with(b"\n");
        let valid_len = if start == 0 {
            if !complete {
                return Err(StateError::Corrupt {
                    path: show(&self.journal),
                    line: 1,
                    column: 1,
                    message: "the journal has no complete header line".into(),
                });
            }
            len
        } else if !complete {
            start
        } else {
            // A last line that does not open or parse was garbled by a crash (pages written out
            // of order) and is cut off, unless the header does not open either: then this
            // client holds another key, and cutting would lose another client's entry.
            let probe = match self.open(&last[..last.len() - 1], &self.journal) {
                // Only bytes that are not JSON were garbled by a crash; a decodable-looking line
                // is kept (a later read reports it if it is not a valid entry).
                Ok(plain) => match kiln_value::from_json_slice::<LineProbe>(&plain) {
                    Err(e) if garbled(&e) => Err(()),
                    Err(e) => {
                        let mut err = format::corrupt(&show(&self.journal), &e);
                        if let StateError::Corrupt { line, .. } = &mut err {
                            *line = 0;
                        }
                        return Err(err);
                    }
                    Ok(p) => Ok(p),
                },
                Err(e) => {
                    let mut first = Vec::new();
                    f.seek(SeekFrom::Start(0)).map_err(io_err(&self.journal))?;
                    io::BufRead::read_until(&mut io::BufReader::new(&mut f), b'\n', &mut first).map_err(io_err(&self.journal))?;
                    self.open(first.strip_suffix(b"\n").unwrap_or(&first), &self.journal).map_err(|_| e)?;
                    Err(())
                }
            };
            match probe {
                Ok(LineProbe { superseded_by: Some(m) }) => {
                    let (lineage, serial) = self.peek_snapshot()?;
                    if m == (Marker { lineage, serial }) {
                        // A write stored this journal's content and died before removing it.
                        drop(f);
                        fs::remove_file(&self.journal).map_err(io_err(&self.journal))?;
                        return self.start_journal(line);
                    }
                    len
                }
                Ok(_) => len,
                Err(()) => start,
            }
        };
        if valid_len != len {
            f.set_len(valid_len).map_err(io_err(&self.journal))?;
        }
        f.seek(SeekFrom::Start(valid_len)).and_then(|_| f.write_all(line)).and_then(|_| f.sync_data()).map_err(io_err(&self.journal))?;
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if *verified >= valid_len {
            *verified = valid_len + line.len() as u64;
        }
        Ok(())
    }

    /// Creates the journal, whole, with its header and first entry.
    fn start_journal(&self, line: &[u8]) -> Result<(), StateError> {
        let (lineage, serial) = self.peek_snapshot()?;
        let mut bytes = self.seal_line(&json_line(&JournalHeader {
            kiln_journal: JOURNAL_VERSION,
            kiln_version: KILN_VERSION.to_string(),
            lineage,
            serial,
        }))?;
        bytes.extend_from_slice(line);
        atomic_write(&self.journal, &bytes).map_err(io_err(&self.journal))?;
        *self.verified.lock().unwrap_or_else(|e| e.into_inner()) = bytes.len() as u64;
        Ok(())
    }

    /// Runs `f` holding the guard's `flock` (see the module comment), which other processes
    /// wait for: it is held only for a few file operations.
    fn guarded<T>(&self, f: impl FnOnce() -> Result<T, LockError>) -> Result<T, LockError> {
        let dir = parent_dir(&self.lock);
        fs::create_dir_all(dir).map_err(lock_io_err(dir))?;
        let guard = OpenOptions::new().create(true).truncate(false).write(true).open(&self.guard).map_err(lock_io_err(&self.guard))?;
        guard.lock().map_err(lock_io_err(&self.guard))?;
        let r = f();
        drop(guard); // closing releases the flock
        r
    }

    fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        self.guarded(|| self.create_lock(info))
    }

    fn create_lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let bytes = lock_bytes(info);
        let dir = parent_dir(&self.lock);
        // Retried only while a holder releases the lock between our two steps.
        for _ in 0..100 {
            match OpenOptions::new().write(true).create_new(true).open(&self.lock) {
                Ok(mut f) => {
                    if let Err(e) = f.write_all(&bytes).and_then(|_| f.sync_all()) {
                        let _ = fs::remove_file(&self.lock);
                        return Err(lock_io_err(&self.lock)(e));
                    }
                    return sync_dir(dir).map_err(lock_io_err(dir));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if let Some(holder) = self.read_lock()? {
                        return Err(LockError::Held { stale: holder.is_stale(), holder, path: show(&self.path) });
                    }
                }
                Err(e) => return Err(lock_io_err(&self.lock)(e)),
            }
        }
        Err(lock_io_err(&self.lock)(io::Error::other("the lock file keeps appearing and disappearing")))
    }

    fn read_lock(&self) -> Result<Option<LockInfo>, LockError> {
        let mut problem = String::new();
        // A holder creates the file, then fills it: give it a moment before calling it corrupt.
        for _ in 0..50 {
            match read_regular(&self.lock) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(lock_io_err(&self.lock)(e)),
                Ok(b) => match serde_json::from_slice::<LockInfo>(&b) {
                    Ok(info) => return Ok(Some(info)),
                    Err(e) => problem = e.to_string(),
                },
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Err(LockError::Corrupt { path: show(&self.lock), message: problem })
    }

    fn unlock(&self, id: &str) -> Result<(), LockError> {
        self.guarded(|| self.remove_lock(id))
    }

    fn remove_lock(&self, id: &str) -> Result<(), LockError> {
        match self.read_lock()? {
            None => Err(LockError::NotHeld),
            Some(h) if h.id != id => Err(LockError::Mismatch { expected: id.to_string(), found: h.id }),
            Some(_) => match fs::remove_file(&self.lock) {
                Ok(()) => sync_dir(parent_dir(&self.lock)).map_err(lock_io_err(&self.lock)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(LockError::NotHeld),
                Err(e) => Err(lock_io_err(&self.lock)(e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::sample_state;
    use std::future::Future;

    fn setup() -> (tempfile::TempDir, LocalBackend) {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join(".kiln/state.json"));
        (dir, b)
    }

    fn remove(addr: &str) -> Mutation {
        Mutation::Remove { address: addr.parse().unwrap() }
    }

    #[test]
    fn a_renewal_never_overwrites_a_lock_taken_after_a_force_unlock() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let (_d, b) = setup();
        let rt = || tokio::runtime::Builder::new_current_thread().build().unwrap();
        let main = rt();
        for round in 0..100 {
            // A holds the lock and renews it as fast as it can; B breaks it and takes it.
            let a = LockInfo::new("apply");
            main.block_on(b.lock(&a)).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let renewer = {
                let (b, a, stop) = (b.clone(), a.clone(), stop.clone());
                std::thread::spawn(move || {
                    let rt = rt();
                    while !stop.load(SeqCst) {
                        let _ = rt.block_on(b.renew_lock(&a));
                    }
                })
            };
            std::thread::sleep(Duration::from_millis(1));
            let other = LockInfo::new("apply");
            main.block_on(b.force_unlock(&a.id)).unwrap();
            main.block_on(b.lock(&other)).unwrap();
            std::thread::sleep(Duration::from_millis(2));
            stop.store(true, SeqCst);
            renewer.join().unwrap();
            assert_eq!(main.block_on(b.lock_info()).unwrap().unwrap().id, other.id, "round {round}: A's renewal took B's lock");
            main.block_on(b.unlock(&other.id)).unwrap();
        }
    }

    #[tokio::test]
    async fn corrupt_state_is_rejected_and_never_overwritten() {
        let (_d, b) = setup();
        fs::create_dir_all(b.path().parent().unwrap()).unwrap();
        let garbage = b"{\n  \"format_version\": 1,\n  \"lineage\": \"l\",\n  \"serial\": 3,\n  \"resources\": [\n";
        fs::write(b.path(), garbage).unwrap();
        let err = b.read().await.unwrap_err();
        assert!(matches!(err, StateError::Corrupt { line: 6, .. }), "{err:?}");
        let err = b.write(&sample_state("l", 9)).await.unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("will not overwrite"), "{err}");
        assert_eq!(fs::read(b.path()).unwrap(), garbage);
        assert!(!b.backup_path().exists());
    }

    #[tokio::test]
    async fn newer_format_is_rejected_and_never_overwritten() {
        let (_d, b) = setup();
        fs::create_dir_all(b.path().parent().unwrap()).unwrap();
        let newer = br#"{"format_version": 4, "kiln_version": "2.0.0", "lineage": "l", "serial": 3, "new_stuff": []}"#;
        fs::write(b.path(), newer).unwrap();
        assert!(matches!(b.read().await, Err(StateError::NewerFormat { found: 4, supported: 3, .. })));
        let err = b.write(&sample_state("l", 9)).await.unwrap_err();
        assert!(matches!(err, StateError::NewerFormat { .. }), "{err:?}");
        assert!(matches!(b.append(&[remove("record.x")]).await, Err(StateError::NewerFormat { .. })));
        assert_eq!(fs::read(b.path()).unwrap(), newer);
    }

    #[tokio::test]
    async fn torn_journal_line_is_ignored_then_cut_off() {
        let (_d, b) = setup();
        let s = sample_state("l", 1);
        b.write(&s).await.unwrap();
        let addrs: Vec<String> = s.resources.keys().map(|a| a.to_string()).collect();
        b.append(&[remove(&addrs[0])]).await.unwrap();
        let good = fs::read(b.journal_path()).unwrap();
        // A crash in the middle of the second append.
        let mut torn = good.clone();
        torn.extend_from_slice(br#"{"mutations":[{"op":"remove","addr"#);
        fs::write(b.journal_path(), &torn).unwrap();
        let mut expected = s.clone();
        expected.apply_mutation(&remove(&addrs[0]));
        expected.serial = 2;
        assert_eq!(b.read().await.unwrap(), Some(expected.clone()));
        // The next append replaces the torn tail.
        b.append(&[remove(&addrs[1])]).await.unwrap();
        expected.apply_mutation(&remove(&addrs[1]));
        expected.serial = 3;
        assert_eq!(b.read().await.unwrap(), Some(expected.clone()));
        assert_eq!(fs::read(b.journal_path()).unwrap().iter().filter(|&&c| c == b'\n').count(), 3);
        // A complete-looking but garbled last line (pages written out of order) is torn too.
        let mut garbled = fs::read(b.journal_path()).unwrap();
        garbled.extend_from_slice(b"\0\0\0\0}\n");
        fs::write(b.journal_path(), &garbled).unwrap();
        assert_eq!(b.read().await.unwrap(), Some(expected.clone()));
        b.append(&[Mutation::SetOutputs(Default::default())]).await.unwrap();
        expected.outputs.clear();
        expected.serial = 4;
        assert_eq!(b.read().await.unwrap(), Some(expected));
    }

    #[tokio::test]
    async fn a_corrupt_line_inside_the_journal_is_an_error() {
        let (_d, b) = setup();
        b.write(&sample_state("l", 1)).await.unwrap();
        b.append(&[Mutation::SetOutputs(Default::default())]).await.unwrap();
        let mut j = fs::read(b.journal_path()).unwrap();
        j.extend_from_slice(b"not json\n");
        j.extend_from_slice(&json_line(&LineOut::Mutations(MutationsOut(&[Mutation::SetOutputs(Default::default())]))));
        fs::write(b.journal_path(), &j).unwrap();
        match b.read().await {
            Err(StateError::Corrupt { line: 3, path, .. }) => assert!(path.ends_with("state.json.journal")),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(b.write(&sample_state("l", 10)).await.is_err());
        assert_eq!(fs::read(b.journal_path()).unwrap(), j);
    }

    #[tokio::test]
    async fn backup_holds_the_previous_snapshot() {
        let (_d, b) = setup();
        let s1 = sample_state("l", 1);
        b.write(&s1).await.unwrap();
        assert!(!b.backup_path().exists());
        let first = fs::read(b.path()).unwrap();
        let mut s2 = s1.clone();
        s2.serial = 2;
        s2.outputs.clear();
        b.write(&s2).await.unwrap();
        assert_eq!(fs::read(b.backup_path()).unwrap(), first);
        assert_eq!(format::decode(&fs::read(b.backup_path()).unwrap(), "backup").unwrap(), s1);
        assert_eq!(fs::read(b.path()).unwrap(), format::encode(&s2));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(b.path()).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // No temp files left behind.
        let names: Vec<String> =
            fs::read_dir(b.path().parent().unwrap()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[tokio::test]
    async fn write_clears_the_journal() {
        let (_d, b) = setup();
        b.write(&sample_state("l", 1)).await.unwrap();
        b.append(&[Mutation::SetOutputs(Default::default())]).await.unwrap();
        assert!(b.journal_path().exists());
        let mut s = b.read().await.unwrap().unwrap();
        s.serial += 1;
        b.write(&s).await.unwrap();
        assert!(!b.journal_path().exists());
        assert_eq!(b.read().await.unwrap(), Some(s));
    }

    #[tokio::test]
    async fn mismatched_journal_is_an_error_not_dropped() {
        let (_d, b) = setup();
        let s1 = sample_state("l", 1);
        b.write(&s1).await.unwrap();
        b.append(&[Mutation::SetOutputs(Default::default())]).await.unwrap();
        let journal = fs::read(b.journal_path()).unwrap();
        // Someone puts another snapshot in place behind kiln's back.
        fs::write(b.path(), format::encode(&sample_state("l", 7))).unwrap();
        let err = b.read().await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StateError::JournalMismatch { .. }), "{err:?}");
        assert!(msg.contains("serial `1`") && msg.contains("serial `7`") && msg.contains("delete"), "{msg}");
        assert!(b.write(&sample_state("l", 20)).await.is_err());
        assert_eq!(fs::read(b.journal_path()).unwrap(), journal);
        fs::write(b.path(), format::encode(&sample_state("other", 1))).unwrap();
        let msg = b.read().await.unwrap_err().to_string();
        assert!(msg.contains("lineage `other`"), "{msg}");
        // A journal without any state.
        fs::remove_file(b.path()).unwrap();
        assert!(matches!(b.read().await, Err(StateError::JournalMismatch { .. })));
    }

    #[tokio::test]
    async fn interrupted_writes_are_recovered() {
        let (_d, b) = setup();
        let s1 = sample_state("l", 1);
        b.write(&s1).await.unwrap();
        b.append(&[Mutation::SetOutputs(Default::default())]).await.unwrap();
        let mut folded = b.read().await.unwrap().unwrap();
        assert_eq!(folded.serial, 2);

        // Died after the marker, before the rename: the journal still applies.
        let mut j = fs::read(b.journal_path()).unwrap();
        j.extend_from_slice(&json_line(&LineOut::SupersededBy { lineage: "l", serial: 5 }));
        fs::write(b.journal_path(), &j).unwrap();
        assert_eq!(b.read().await.unwrap(), Some(folded.clone()));

        // Died after the rename, before removing the journal: the snapshot has it all.
        folded.serial = 5;
        fs::write(b.path(), format::encode(&folded)).unwrap();
        assert_eq!(b.read().await.unwrap(), Some(folded.clone()));
        // The next append starts a fresh journal on top of the new snapshot.
        let addr = folded.resources.keys().next().unwrap().to_string();
        b.append(&[remove(&addr)]).await.unwrap();
        folded.apply_mutation(&remove(&addr));
        folded.serial = 6;
        assert_eq!(b.read().await.unwrap(), Some(folded.clone()));
        assert!(fs::read_to_string(b.journal_path()).unwrap().starts_with(r#"{"kiln_journal":1"#));

        // The same crash, then a write instead of an append.
        let mut j = fs::read(b.journal_path()).unwrap();
        j.extend_from_slice(&json_line(&LineOut::SupersededBy { lineage: "l", serial: 9 }));
        fs::write(b.journal_path(), &j).unwrap();
        folded.serial = 9;
        fs::write(b.path(), format::encode(&folded)).unwrap();
        folded.serial = 10;
        b.write(&folded).await.unwrap();
        assert!(!b.journal_path().exists());
        assert_eq!(b.read().await.unwrap(), Some(folded));
    }

    #[tokio::test]
    async fn every_stored_document_goes_through_the_codec() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("state.json")).with_codec(Arc::new(crate::conformance::TestCodec(7)));
        let s = sample_state("l", 1);
        b.write(&s).await.unwrap();
        b.append(&[Mutation::SetOutputs(Default::default())]).await.unwrap();
        let mut s2 = b.read().await.unwrap().unwrap();
        s2.serial += 1;
        b.write(&s2).await.unwrap();
        b.append(&[remove("record.a[0]")]).await.unwrap();
        for p in [b.path(), b.backup_path(), b.journal_path()] {
            let stored = fs::read(p).unwrap();
            assert!(!String::from_utf8_lossy(&stored).contains("hunter2"), "{} holds plaintext", p.display());
            for line in stored.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                assert!(line.starts_with(b"kiln-test-codec:07:"), "{}: a line not sealed", p.display());
            }
        }
        let mut expected = s2.clone();
        expected.apply_mutation(&remove("record.a[0]"));
        expected.serial += 1;
        assert_eq!(b.read().await.unwrap(), Some(expected));
        // A torn sealed line is ignored like a torn plain one.
        let mut j = fs::read(b.journal_path()).unwrap();
        j.extend_from_slice(b"kiln-test-codec:07:7b22");
        fs::write(b.journal_path(), &j).unwrap();
        assert_eq!(b.read().await.unwrap().unwrap().serial, s2.serial + 1);
        // Without the codec: an error, never garbage.
        assert!(LocalBackend::new(b.path()).read().await.is_err());
    }

    #[tokio::test]
    async fn workspaces_live_beside_the_default_state() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join(".kiln/state.json");
        let w = LocalBackend::new(&base).with_workspace("prod");
        assert_eq!(w.path(), dir.path().join(".kiln/workspaces/prod/state.json"));
        assert_eq!(w.lock_path(), dir.path().join(".kiln/workspaces/prod/state.json.lock"));
        assert_eq!(LocalBackend::new(&base).with_workspace("default").path(), base);
    }

    #[tokio::test]
    async fn append_needs_a_state() {
        let (_d, b) = setup();
        assert!(matches!(b.append(&[remove("record.a")]).await, Err(StateError::NoState { .. })));
        assert!(!b.journal_path().exists());
    }

    #[tokio::test]
    async fn stale_lock_of_a_dead_process() {
        let (_d, b) = setup();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut dead = LockInfo::new("apply");
        dead.pid = pid;
        b.lock(&dead).await.unwrap();
        match b.lock(&LockInfo::new("plan")).await {
            Err(e @ LockError::Held { stale: true, .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&format!("`kiln force-unlock {}`", dead.id)), "{msg}");
                assert!(msg.contains("no longer running"), "{msg}");
            }
            other => panic!("expected a stale Held, got {other:?}"),
        }
        // The same pid on another host cannot be judged: not stale.
        let mut elsewhere = dead.clone();
        elsewhere.host = format!("not-{}", elsewhere.host);
        assert!(!elsewhere.is_stale());
        assert!(!LockInfo::new("apply").is_stale());
        b.force_unlock(&dead.id).await.unwrap();
    }

    #[test]
    fn holder_liveness_for_force_unlock() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let live = LockInfo::new("apply");
        assert!(live.holder_may_be_alive(), "this process");
        let mut dead = live.clone();
        dead.pid = pid;
        assert!(!dead.holder_may_be_alive());
        // Elsewhere: alive while its lease lasts; unknown (not known alive) without one.
        let mut elsewhere = LockInfo::new("apply").with_lease(Duration::from_secs(600));
        elsewhere.host = format!("not-{}", elsewhere.host);
        assert!(elsewhere.holder_may_be_alive());
        elsewhere.expires = Some("2000-01-01T00:00:00Z".into());
        assert!(!elsewhere.holder_may_be_alive());
        elsewhere.expires = None;
        assert!(!elsewhere.holder_may_be_alive());
    }

    /// A deleted state file next to its backup is refused with how to restore it, never
    /// started afresh (which would forget the objects and overwrite the backup).
    #[tokio::test]
    async fn a_missing_state_beside_its_backup_is_refused() {
        let (_d, b) = setup();
        b.write(&sample_state("l", 1)).await.unwrap();
        b.write(&sample_state("l", 2)).await.unwrap();
        let backup = fs::read(b.backup_path()).unwrap();
        fs::remove_file(b.path()).unwrap();
        let err = b.read().await.unwrap_err();
        assert!(matches!(err, StateError::Missing { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("cp -p {} {}", b.backup_path().display(), b.path().display())), "{msg}");
        // A write of a new state is refused too, and the backup is kept.
        assert!(matches!(b.write(&sample_state("new", 1)).await, Err(StateError::Missing { .. })));
        assert_eq!(fs::read(b.backup_path()).unwrap(), backup);
        assert!(!b.path().exists());
        // Restored as the message says, it reads again.
        fs::copy(b.backup_path(), b.path()).unwrap();
        assert_eq!(b.read().await.unwrap().unwrap().serial, 1);
        // A lock alone (a first apply under way) is normal.
        let (_d2, fresh) = setup();
        fresh.lock(&LockInfo::new("apply")).await.unwrap();
        assert_eq!(fresh.read().await.unwrap(), None);
    }

    /// Only a garbled last line (not JSON) may be a write torn by a crash; a complete line that
    /// is JSON but not a valid entry holds changes and is an error naming the file and line.
    #[tokio::test]
    async fn a_complete_last_line_that_does_not_decode_is_an_error() {
        let (_d, b) = setup();
        b.write(&sample_state("l", 1)).await.unwrap();
        b.append(&[Mutation::SetOutputs(Default::default())]).await.unwrap();
        let good = fs::read(b.journal_path()).unwrap();
        for bad in [
            &br#"{"mutations":[{"op":"explode","address":"record.a"}]}"#[..],
            br#"{"mutations":[{"op":"remove"}]}"#,
            br#"{"something_else":1}"#,
        ] {
            let mut j = good.clone();
            j.extend_from_slice(bad);
            j.push(b'\n');
            fs::write(b.journal_path(), &j).unwrap();
            match b.read().await {
                Err(e @ StateError::Corrupt { line: 3, .. }) => assert!(e.to_string().contains("state.json.journal"), "{e}"),
                other => panic!("{}: expected Corrupt at line 3, got {other:?}", String::from_utf8_lossy(bad)),
            }
            // Nothing cuts it off or folds it away.
            assert!(b.write(&sample_state("l", 10)).await.is_err());
            assert_eq!(fs::read(b.journal_path()).unwrap(), j);
            let _ = b.append(&[remove("record.x")]).await;
            assert!(fs::read(b.journal_path()).unwrap().starts_with(&j), "an append keeps the line");
            assert!(b.read().await.is_err());
        }
    }

    /// A journal entry holding a value as deep as kiln allows is read back (serde_json alone
    /// stops at 128 levels and used to treat the line as torn).
    #[tokio::test]
    async fn a_journal_entry_with_a_deep_value_is_read_back() {
        let (_d, b) = setup();
        let s = sample_state("l", 1);
        b.write(&s).await.unwrap();
        let deep = (1..kiln_value::MAX_DEPTH).fold(kiln_value::Value::List(vec![]), |v, _| kiln_value::Value::List(vec![v]));
        let outputs: std::collections::BTreeMap<String, crate::OutputState> =
            [("o".to_string(), crate::OutputState { value: deep, sensitive: false })].into();
        b.append(&[Mutation::SetOutputs(outputs.clone())]).await.unwrap();
        let back = b.read().await.unwrap().unwrap();
        assert_eq!(back.outputs, outputs);
        assert_eq!(back.serial, 2);
    }

    #[tokio::test]
    async fn a_serial_at_the_largest_value_never_wraps() {
        let (_d, b) = setup();
        b.write(&sample_state("l", u64::MAX)).await.unwrap();
        b.append(&[Mutation::SetOutputs(Default::default())]).await.unwrap();
        let err = b.read().await.unwrap_err();
        assert!(err.to_string().contains(&u64::MAX.to_string()), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_fifo_in_place_of_a_state_file_is_an_error_not_a_hang() {
        for which in ["state", "lock"] {
            let (_d, b) = setup();
            fs::create_dir_all(b.path().parent().unwrap()).unwrap();
            let path = if which == "state" { b.path().to_path_buf() } else { b.lock_path().to_path_buf() };
            let st = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
            assert!(st.success());
            if which == "state" {
                let err = b.read().await.unwrap_err();
                assert!(err.to_string().contains("not a regular file"), "{err}");
                assert!(b.write(&sample_state("l", 1)).await.is_err());
            } else {
                let err = b.lock(&LockInfo::new("apply")).await.unwrap_err();
                assert!(err.to_string().contains("not a regular file"), "{err}");
            }
        }
    }

    /// Temp files a killed writer left are removed by the next write; those of live writers
    /// and unrelated files stay.
    #[tokio::test]
    async fn temp_files_of_dead_writers_are_removed_by_the_next_write() {
        let (_d, b) = setup();
        b.write(&sample_state("l", 1)).await.unwrap();
        let dir = b.path().parent().unwrap().to_path_buf();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let hex = "0123456789abcdef0123456789abcdef";
        let stale: Vec<PathBuf> = ["state.json", "state.json.backup", "state.json.journal", "state.json.lock"]
            .iter()
            .map(|n| dir.join(format!(".{n}.{dead}-{hex}.tmp")))
            .collect();
        let live = dir.join(format!(".state.json.{}-{hex}.tmp", std::process::id()));
        let other = dir.join(format!(".notes.{dead}-{hex}.tmp"));
        for p in stale.iter().chain([&live, &other]) {
            fs::write(p, b"partial").unwrap();
        }
        b.write(&sample_state("l", 2)).await.unwrap();
        for p in &stale {
            assert!(!p.exists(), "{} was left", p.display());
        }
        assert!(live.exists() && other.exists());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn state_backup_and_journal_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, b) = setup();
        b.write(&sample_state("l", 1)).await.unwrap();
        b.write(&sample_state("l", 2)).await.unwrap();
        b.append(&[Mutation::SetOutputs(Default::default())]).await.unwrap();
        for p in [b.path(), b.backup_path(), b.journal_path()] {
            let mode = fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }

    #[tokio::test]
    async fn unreadable_lock_is_reported() {
        let (_d, b) = setup();
        fs::create_dir_all(b.path().parent().unwrap()).unwrap();
        fs::write(b.lock_path(), b"").unwrap();
        assert!(matches!(b.lock_info().await, Err(LockError::Corrupt { .. })));
        assert!(matches!(b.lock(&LockInfo::new("apply")).await, Err(LockError::Corrupt { .. })));
    }

    #[test]
    fn works_without_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("state.json"));
        let s = sample_state("l", 1);
        let run = async {
            b.write(&s).await.unwrap();
            b.read().await.unwrap()
        };
        // A trivial executor: every future here completes without waiting.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut run = std::pin::pin!(run);
        match run.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(got) => assert_eq!(got.as_ref(), Some(&s)),
            std::task::Poll::Pending => panic!("local backend futures should complete at once without a runtime"),
        }
    }
}
