//! `bucket`: a directory, `ROOT/buckets/NAME` unless `path` is given. Create writes a marker
//! file holding the create's idempotency token so an interrupted create can be recognised;
//! the marker does not count as content. Delete refuses to remove a bucket that holds files
//! unless `force_destroy` is true, and then deletes nothing.

use std::path::{Path, PathBuf};

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, Contents, ContentsRequest, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse,
    ReadItem, ReadResult, RecoverRequest, UpdateRequest,
};
use kiln_value::{Map, Value};

use crate::util::{attrs, bool_attr, error, file_uri, resolve, set, slug, str_attr};
use crate::{Ctx, Kind, KindSchema, LazyProcs, Outcome};

pub(crate) struct Bucket;

/// Marker file inside the bucket: holds the token of the create that made it.
const MARKER: &str = ".kiln-bucket";

struct Spec {
    name: String,
    /// `path` as written, or the default (absolute).
    path: String,
    dir: PathBuf,
    force_destroy: bool,
}

impl Spec {
    /// `None` while `name` or `path` is unknown.
    fn parse(ctx: &Ctx, address: &str, v: &Value) -> Result<Option<Spec>, Diagnostic> {
        let name = match set(v, "name") {
            Some(n) if n.is_unknown() => return Ok(None),
            Some(n) => n.as_str().unwrap_or_default().to_string(),
            None => slug(address, "bucket"),
        };
        check_name(&name)
            .map_err(|m| error("E-LOCAL-BUCKET-NAME", address, m).hint("a bucket name is one directory name, such as \"checkpoints\""))?;
        let path = match set(v, "path") {
            Some(p) if p.is_unknown() => return Ok(None),
            Some(p) => p.as_str().unwrap_or_default().to_string(),
            None => ctx.root.join("buckets").join(&name).display().to_string(),
        };
        let dir = resolve(&ctx.working_dir, &path);
        Ok(Some(Spec { name, path, dir, force_destroy: bool_attr(v, "force_destroy").unwrap_or(false) }))
    }

    fn state(&self) -> Value {
        let m: Map = [
            ("name".to_string(), Value::from(self.name.as_str())),
            ("path".to_string(), Value::from(self.path.as_str())),
            ("uri".to_string(), Value::from(file_uri(&self.dir))),
            ("force_destroy".to_string(), Value::from(self.force_destroy)),
        ]
        .into();
        Value::Map(m)
    }

    /// The spec of a directory that exists, for import.
    fn of_dir(dir: PathBuf) -> Spec {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Spec { name, path: dir.display().to_string(), dir, force_destroy: false }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(format!("invalid bucket name `{name}`: it must be a single directory name"));
    }
    Ok(())
}

/// The entries of a bucket directory other than kiln's marker.
fn contents(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir)?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n != MARKER).collect();
    names.sort();
    Ok(names)
}

/// Whether the create holding `token` made (or adopted) the directory `dir`: its marker holds
/// the token, or the create was stopped after making the directory and before the marker held all
/// of it (no marker, or a part of the token). Create adopts a directory that exists, so one
/// without a marker is what that create would have made its own; a marker holding anything else
/// belongs to another create.
fn made_by(dir: &Path, token: &str) -> bool {
    match std::fs::read_to_string(dir.join(MARKER)) {
        Ok(written) => token.starts_with(&written),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => dir.is_dir(),
        Err(_) => false,
    }
}

fn not_empty(address: &str, spec_dir: &Path, names: &[String]) -> Diagnostic {
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    let more = if names.len() > 5 { format!(", and {} more", names.len() - 5) } else { String::new() };
    error("E-LOCAL-BUCKET-NOT-EMPTY", address, format!("{address} is not empty: {} holds {}{more}; nothing was deleted", spec_dir.display(), shown.join(", ")))
        .hint(format!("to delete it with its contents, set `force_destroy = true` on {address} and run `kiln apply` before destroying; or move the files out first"))
}

fn parse_or_error(ctx: &Ctx, address: &str, v: &Value) -> Result<Spec, Diagnostic> {
    Spec::parse(ctx, address, v)?.ok_or_else(|| error("E-LOCAL-UNKNOWN", address, format!("{address}: `name` or `path` is still unknown")))
}

fn io_error(address: &str, what: &str, dir: &Path, e: std::io::Error) -> Diagnostic {
    crate::util::io_error("E-LOCAL-BUCKET-IO", address, what, dir, e)
}

#[async_trait]
impl Kind<Ctx, LazyProcs> for Bucket {
    fn name(&self) -> &'static str {
        "bucket"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("A directory on this machine that holds data and checkpoints", crate::schema::bucket())
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        match str_attr(config, "name").map(check_name) {
            Some(Err(m)) => Diagnostic::error("E-LOCAL-BUCKET-NAME", m).into(),
            _ => Diagnostics::new(),
        }
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        let mut planned = attrs(req.proposed);
        let mut diagnostics = Diagnostics::new();
        match Spec::parse(ctx, req.address, req.config) {
            Ok(Some(spec)) => planned.extend(attrs(&spec.state())),
            Ok(None) => {
                for k in ["name", "path", "uri"] {
                    if set(req.config, k).is_none() {
                        planned.insert(k.to_string(), Value::Unknown);
                    }
                }
            }
            Err(d) => diagnostics.push(d),
        }
        Ok(PlanResponse { planned: Value::Map(planned), requires_replace: Vec::new(), diagnostics })
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        let spec = parse_or_error(ctx, req.address, req.planned)?;
        std::fs::create_dir_all(&spec.dir)
            .and_then(|()| std::fs::write(spec.dir.join(MARKER), req.token))
            .map_err(|e| io_error(req.address, "create", &spec.dir, e))?;
        Ok(ApplyResponse::ok(spec.state()))
    }

    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        let spec = parse_or_error(ctx, req.address, req.planned)?;
        if !spec.dir.is_dir() {
            return Err(io_error(req.address, "find", &spec.dir, std::io::ErrorKind::NotFound.into()).into());
        }
        Ok(ApplyResponse::ok(spec.state()))
    }

    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        let Some(path) = str_attr(req.prior, "path") else { return Ok(Diagnostics::new()) };
        let dir = resolve(&ctx.working_dir, path);
        let names = match contents(&dir) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Diagnostics::new()),
            Err(e) => return Err(io_error(req.address, "list", &dir, e).into()),
        };
        let removed = if bool_attr(req.prior, "force_destroy") == Some(true) {
            std::fs::remove_dir_all(&dir)
        } else if !names.is_empty() {
            return Err(not_empty(req.address, &dir, &names).into());
        } else {
            let _ = std::fs::remove_file(dir.join(MARKER));
            std::fs::remove_dir(&dir)
        };
        removed.map_err(|e| io_error(req.address, "delete", &dir, e))?;
        Ok(Diagnostics::new())
    }

    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], _procs: &LazyProcs) -> Outcome<Vec<ReadResult>> {
        Ok(items
            .iter()
            .map(|item| match str_attr(item.state, "path") {
                Some(p) if resolve(&ctx.working_dir, p).is_dir() => ReadResult::found(item.state.clone()),
                _ => ReadResult::gone(),
            })
            .collect())
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(match Spec::parse(ctx, req.address, req.planned)? {
            Some(spec) if made_by(&spec.dir, req.token) => ReadResult::found(spec.state()),
            _ => ReadResult::gone(),
        })
    }

    /// The directory's entries, kiln's marker aside: a handful named, or none (a directory
    /// that is gone holds nothing).
    async fn contents(&self, ctx: &Ctx, req: &ContentsRequest<'_>) -> Contents {
        let Some(path) = str_attr(req.state, "path") else {
            return Contents::Unknown { reason: format!("{}: the bucket in state has no path", req.address) };
        };
        let dir = resolve(&ctx.working_dir, path);
        let first = std::fs::read_dir(&dir).map(|rd| {
            rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n != MARKER).take(5).collect::<Vec<_>>()
        });
        match first {
            Ok(names) if names.is_empty() => Contents::Empty,
            Ok(mut names) => {
                names.sort();
                Contents::Holds { examples: names }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents::Empty,
            Err(e) => Contents::Unknown { reason: format!("cannot list {}: {e}", dir.display()) },
        }
    }

    async fn import(&self, ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        let dir = if req.id.contains('/') { resolve(&ctx.working_dir, req.id) } else { ctx.root.join("buckets").join(req.id) };
        if !dir.is_dir() {
            return Err(error("E-LOCAL-IMPORT", req.address, format!("no bucket directory at {}", dir.display()))
                .hint("import a bucket by its name under ROOT/buckets, or by a path containing `/`")
                .into());
        }
        Ok(ReadResult::found(Spec::of_dir(dir).state()))
    }
}
