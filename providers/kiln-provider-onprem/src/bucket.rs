//! `bucket`: a directory on one host (`host`, default the first one), at `path` (default
//! `HOST_DIR/buckets/NAME`), or on a mount every host sees (`shared = true`: jobs on any host use
//! the same path). Create writes a marker file holding the create's token so an interrupted
//! create can be recognised; the marker does not count as content. Delete refuses to remove a
//! bucket that holds files unless `force_destroy` is true. A bucket whose host does not answer
//! is kept as it was: unreachable is not gone.
//!
//! kiln's own files in a bucket ([`kiln_provider::Provider::store`]: destroyed jobs' logs under
//! `kiln-logs/`) are files under the directory, written private to the login user (umask 077)
//! through a temporary name and a rename, so whoever shares the state and the hosts reads them.

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, StoreOp, StoreRequest, StoreResponse, UpdateRequest,
};
use kiln_value::{Map, Value};

use crate::config::HostConfig;
use crate::ssh::SshError;
use crate::util::{attrs, bool_attr, error, read_error, set, slug, str_attr};
use crate::{Batch, Ctx, Kind, KindSchema, Outcome};

pub(crate) struct Bucket;

/// `$1` path, `$2` token: makes the directory and its marker.
const CREATE: &str = r#"set -e
mkdir -p "$1"
printf '%s' "$2" > "$1/.kiln-bucket"
"#;

/// `$1` path: `yes` when the directory exists, then the marker's token.
const PROBE: &str = r#"if [ -d "$1" ]; then echo yes; cat "$1/.kiln-bucket" 2>/dev/null; else echo no; fi
"#;

/// `$1` path, `$2` force (1/0). Exit 3 listing the entries when not empty and not forced.
const DELETE: &str = r#"p=$1
[ -d "$p" ] || exit 0
if [ "$2" = 1 ]; then rm -rf -- "$p"; exit $?; fi
left=$(cd "$p" && ls -A | grep -vx '.kiln-bucket' || true)
if [ -n "$left" ]; then printf '%s\n' "$left" | head -n 6; exit 3; fi
rm -f -- "$p/.kiln-bucket" && rmdir -- "$p"
"#;

/// `$1` path, `$2` key; the data follows on stdin (`kiln_remote::shell::with_input`): writes
/// the file (0600) through a temporary name.
const PUT: &str = r#"set -e
umask 077
f="$1/$2"
mkdir -p "$(dirname "$f")"
"#;

/// `$1` path, `$2` key, `$3` offset, `$4` length: the file's size on a line, then up to `$4`
/// bytes from `$3`. Exit 3 when there is no such file.
const GET: &str = r#"f="$1/$2"
[ -f "$f" ] || exit 3
wc -c < "$f" | tr -d ' '
[ "$4" -gt 0 ] || exit 0
tail -c +"$(($3 + 1))" "$f" | head -c "$4"
"#;

/// `$1` path, `$2` a directory under it: every file under that directory, relative to `$1`.
const LIST: &str = r#"cd "$1" 2>/dev/null || exit 0
[ -d "./$2" ] || exit 0
find "./$2" -type f | sed 's|^\./||'
"#;

/// `$1` path, then keys: removes each file, then its directory when it is left empty.
const REMOVE: &str = r#"p=$1; shift
for k in "$@"; do rm -f -- "$p/$k"; rmdir -- "$(dirname "$p/$k")" 2>/dev/null || true; done
"#;

/// A key of kiln's files: relative, `/`-separated, without `.` or `..` components.
fn check_key(address: &str, key: &str) -> Result<(), Diagnostic> {
    let bad = key.is_empty() || key.starts_with('/') || key.split('/').any(|c| c == "." || c == "..") || key.contains('\0');
    if bad {
        return Err(error("E-ONPREM-BUCKET-KEY", address, format!("{address}: `{key}` is not a file name inside the bucket")));
    }
    Ok(())
}

async fn store(ctx: &Ctx, req: &StoreRequest<'_>) -> Result<StoreResponse, Diagnostic> {
    let (Some(path), h) = (str_attr(req.state, "path"), host_of(ctx, req.address, req.state)?) else {
        return Err(error("E-ONPREM-BUCKET", req.address, format!("{}: the bucket in state has no path", req.address)));
    };
    let io = |what: String, out: &kiln_remote::Output| {
        error("E-ONPREM-BUCKET-IO", req.address, format!("{}: cannot {what} in {path} on `{}`: {}", req.address, h.name, out.stderr.trim()))
    };
    let run = |op: &'static str, script: String, args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ctx.ssh.run(h, op, &script, &args).await.map_err(|e| host_error(req.address, &e))
    };
    let mut r = StoreResponse::default();
    match req.op {
        StoreOp::Put { key, data } => {
            check_key(req.address, key)?;
            // The data streamed on the script's stdin from the caller's slice: no copy, no
            // encoding, whatever its size.
            let script = format!(
                "{PUT}{} || {{ rm -f \"$f.kiln-tmp\"; echo \"the data came short\" >&2; exit 1; }}\nmv -f \"$f.kiln-tmp\" \"$f\"\n",
                kiln_remote::shell::receive("\"$f.kiln-tmp\"")
            );
            let out =
                ctx.ssh.run_with_input(h, "bucket.put", &script, &[path, key], data).await.map_err(|e| host_error(req.address, &e))?;
            if !out.ok() {
                return Err(io(format!("write {key}"), &out));
            }
        }
        StoreOp::Get { key, offset, len } => {
            check_key(req.address, key)?;
            let out =
                run("bucket.get", GET.to_string(), vec![path.to_string(), key.to_string(), offset.to_string(), len.to_string()]).await?;
            if out.code == Some(3) {
                return Err(error(
                    "E-ONPREM-BUCKET-IO",
                    req.address,
                    format!("{}: {path}/{key} on `{}` does not exist", req.address, h.name),
                ));
            }
            if !out.ok() {
                return Err(io(format!("read {key}"), &out));
            }
            let nl = out.stdout.iter().position(|b| *b == b'\n').unwrap_or(out.stdout.len());
            r.size = String::from_utf8_lossy(&out.stdout[..nl]).trim().parse().unwrap_or_default();
            r.data = out.stdout.get(nl + 1..).unwrap_or_default().to_vec();
        }
        StoreOp::List { prefix } => {
            let dir = prefix.rsplit_once('/').map_or("", |(d, _)| d);
            if !dir.is_empty() {
                check_key(req.address, dir)?;
            }
            let out = run("bucket.list", LIST.to_string(), vec![path.to_string(), dir.to_string()]).await?;
            if !out.ok() {
                return Err(io(format!("list {prefix}"), &out));
            }
            r.keys = out.text().lines().filter(|k| k.starts_with(prefix)).map(str::to_string).collect();
        }
        StoreOp::Delete { keys } => {
            for k in keys {
                check_key(req.address, k)?;
            }
            if !keys.is_empty() {
                let mut args = vec![path.to_string()];
                args.extend(keys.iter().cloned());
                let out = run("bucket.remove", REMOVE.to_string(), args).await?;
                if !out.ok() {
                    return Err(io("delete files".to_string(), &out));
                }
            }
        }
    }
    Ok(r)
}

/// A bucket's settled attributes.
struct Spec {
    host: String,
    name: String,
    path: String,
    shared: bool,
    force_destroy: bool,
}

impl Spec {
    fn state(&self, h: &HostConfig) -> Value {
        let m: Map = [
            ("host".to_string(), Value::from(self.host.as_str())),
            ("name".to_string(), Value::from(self.name.as_str())),
            ("path".to_string(), Value::from(self.path.as_str())),
            ("shared".to_string(), Value::from(self.shared)),
            ("uri".to_string(), Value::from(uri(h, &self.path))),
            ("force_destroy".to_string(), Value::from(self.force_destroy)),
        ]
        .into();
        Value::Map(m)
    }
}

/// `sftp://[user@]address[:port]/path`.
fn uri(h: &HostConfig, path: &str) -> String {
    let user = h.user.as_ref().map_or(String::new(), |u| format!("{u}@"));
    let port = if h.port == 22 { String::new() } else { format!(":{}", h.port) };
    let enc: String = path
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    format!("sftp://{user}{}{port}{enc}", h.address)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(format!("invalid bucket name `{name}`: it must be a single directory name"));
    }
    Ok(())
}

/// The host a bucket lives on: `host`, or the fleet's first.
fn host_of<'a>(ctx: &'a Ctx, address: &str, v: &Value) -> Result<&'a HostConfig, Diagnostic> {
    match str_attr(v, "host") {
        Some(n) => ctx.host(n).ok_or_else(|| {
            error("E-ONPREM-BUCKET-HOST", address, format!("{address}: `{n}` is not a host of this provider"))
                .hint(format!("hosts: {}", ctx.fleet.names().join(", ")))
        }),
        None => {
            ctx.fleet.hosts.first().ok_or_else(|| error("E-ONPREM-BUCKET-HOST", address, format!("{address}: the provider has no hosts")))
        }
    }
}

/// `path` made absolute against the login user's home.
async fn absolute(ctx: &Ctx, h: &HostConfig, path: &str) -> Result<String, SshError> {
    if path.starts_with('/') {
        return Ok(path.to_string());
    }
    Ok(format!("{}/{path}", ctx.ssh.home(h).await?.trim_end_matches('/')))
}

/// Why a bucket's attributes cannot be settled.
enum Problem {
    Invalid(Diagnostic),
    /// The host did not answer (or refused): the default path is not known.
    Host(SshError),
}

impl Problem {
    fn into_diagnostic(self, address: &str) -> Diagnostic {
        match self {
            Problem::Invalid(d) => d,
            Problem::Host(e) => host_error(address, &e),
        }
    }
}

/// Settles every attribute; asks the host for its directory when `path` is not given.
async fn spec<'a>(ctx: &'a Ctx, address: &str, v: &Value) -> Result<(Spec, &'a HostConfig), Problem> {
    let h = host_of(ctx, address, v).map_err(Problem::Invalid)?;
    let name = str_attr(v, "name").map_or_else(|| slug(address, "bucket"), str::to_string);
    check_name(&name).map_err(|m| Problem::Invalid(error("E-ONPREM-BUCKET-NAME", address, m)))?;
    let path = match str_attr(v, "path") {
        Some(p) => absolute(ctx, h, p).await,
        None => ctx.host_dir(h).await.map(|d| format!("{d}/buckets/{name}")),
    }
    .map_err(Problem::Host)?;
    let s = Spec {
        host: h.name.clone(),
        name,
        path,
        shared: bool_attr(v, "shared").unwrap_or(false),
        force_destroy: bool_attr(v, "force_destroy").unwrap_or(false),
    };
    Ok((s, h))
}

fn host_error(address: &str, e: &SshError) -> Diagnostic {
    error("E-ONPREM-BUCKET-HOST", address, format!("{address}: {}", e.message()))
}

async fn create(ctx: &Ctx, req: &CreateRequest<'_>) -> Result<Value, Diagnostic> {
    let (s, h) = spec(ctx, req.address, req.planned).await.map_err(|p| p.into_diagnostic(req.address))?;
    let out = ctx.ssh.run(h, "bucket.create", CREATE, &[&s.path, req.token]).await.map_err(|e| host_error(req.address, &e))?;
    if !out.ok() {
        return Err(error(
            "E-ONPREM-BUCKET-IO",
            req.address,
            format!("{}: cannot create {} on `{}`: {}", req.address, s.path, h.name, out.stderr.trim()),
        ));
    }
    Ok(s.state(h))
}

/// `Some(marker token)` when the directory exists on its host.
async fn probe(ctx: &Ctx, h: &HostConfig, path: &str) -> Result<Option<String>, SshError> {
    let out = ctx.ssh.run(h, "bucket.probe", PROBE, &[path]).await?.text();
    let mut lines = out.lines();
    Ok((lines.next() == Some("yes")).then(|| lines.next().unwrap_or_default().to_string()))
}

async fn delete(ctx: &Ctx, req: &DeleteRequest<'_>) -> Result<(), Diagnostic> {
    let (Some(path), Ok(h)) = (str_attr(req.prior, "path"), host_of(ctx, req.address, req.prior)) else { return Ok(()) };
    let force = if bool_attr(req.prior, "force_destroy") == Some(true) { "1" } else { "0" };
    let out = ctx.ssh.run(h, "bucket.delete", DELETE, &[path, force]).await.map_err(|e| host_error(req.address, &e))?;
    match out.code {
        Some(0) => Ok(()),
        Some(3) => {
            let names: Vec<String> = out.text().lines().take(5).map(str::to_string).collect();
            Err(error(
                "E-ONPREM-BUCKET-NOT-EMPTY",
                req.address,
                format!("{} is not empty: {path} on `{}` holds {}; nothing was deleted", req.address, h.name, names.join(", ")),
            )
            .hint(format!("to delete it with its contents, set `force_destroy = true` on {} and apply before destroying", req.address)))
        }
        _ => Err(error(
            "E-ONPREM-BUCKET-IO",
            req.address,
            format!("{}: cannot delete {path} on `{}`: {}", req.address, h.name, out.stderr.trim()),
        )),
    }
}

async fn read(ctx: &Ctx, item: &ReadItem<'_>) -> ReadResult {
    let (Some(path), Ok(h)) = (str_attr(item.state, "path"), host_of(ctx, item.address, item.state)) else { return ReadResult::gone() };
    match probe(ctx, h, path).await {
        Ok(Some(_)) => ReadResult::found(item.state.clone()),
        Ok(None) => ReadResult::gone(),
        // Unreachable is not gone: keep what state holds.
        Err(_) => ReadResult::found(item.state.clone()),
    }
}

async fn recover(ctx: &Ctx, req: &RecoverRequest<'_>) -> ReadResult {
    let (s, h) = match spec(ctx, req.address, req.planned).await {
        Ok(x) => x,
        Err(p) => return read_error(p.into_diagnostic(req.address)),
    };
    match probe(ctx, h, &s.path).await {
        // The marker holds the token, or the create was cut off after `mkdir` and before the
        // marker held all of it (create adopts a directory that exists, so it made this one).
        Ok(Some(written)) if req.token.starts_with(&written) => ReadResult::found(s.state(h)),
        Ok(_) => ReadResult::gone(),
        Err(e) => read_error(host_error(req.address, &e)),
    }
}

async fn import(ctx: &Ctx, req: &ImportRequest<'_>) -> ReadResult {
    let Some((host, path)) = req.id.split_once(':').filter(|(_, p)| p.starts_with('/')) else {
        return read_error(
            error("E-ONPREM-IMPORT", req.address, format!("`{}` is not HOST:/ABSOLUTE/PATH", req.id))
                .hint("import a bucket as gpu-01:/data/checkpoints"),
        );
    };
    let Some(h) = ctx.host(host) else {
        return read_error(error("E-ONPREM-IMPORT", req.address, format!("`{host}` is not a host of this provider")));
    };
    match probe(ctx, h, path).await {
        Ok(Some(_)) => {
            let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
            ReadResult::found(Spec { host: host.into(), name, path: path.into(), shared: false, force_destroy: false }.state(h))
        }
        Ok(None) => read_error(error("E-ONPREM-IMPORT", req.address, format!("no directory {path} on `{host}`"))),
        Err(e) => read_error(host_error(req.address, &e)),
    }
}

fn unknown_plan(req: &PlanRequest<'_>) -> Value {
    let mut planned = attrs(req.proposed);
    for k in ["host", "name", "path", "uri"] {
        if set(req.config, k).is_none() {
            planned.insert(k.to_string(), Value::Unknown);
        }
    }
    Value::Map(planned)
}

async fn plan(ctx: &Ctx, req: &PlanRequest<'_>) -> PlanResponse {
    let done = |planned, diagnostics| PlanResponse { planned, requires_replace: Vec::new(), diagnostics };
    if let Some(prior) = req.prior {
        let mut planned = attrs(req.proposed);
        planned.extend(["host", "name", "path", "uri"].iter().filter_map(|k| prior.get(k).map(|v| (k.to_string(), v.clone()))));
        return done(Value::Map(planned), Diagnostics::new());
    }
    if crate::util::any_unknown(req.config, &["host", "name", "path"]) {
        return done(unknown_plan(req), Diagnostics::new());
    }
    match spec(ctx, req.address, req.config).await {
        Ok((s, h)) => {
            let mut planned = attrs(req.proposed);
            planned.extend(attrs(&s.state(h)));
            done(Value::Map(planned), Diagnostics::new())
        }
        Err(Problem::Invalid(d)) => done(req.proposed.clone(), d.into()),
        // The host did not answer: the default path is known after apply.
        Err(Problem::Host(_)) => done(unknown_plan(req), Diagnostics::new()),
    }
}

#[async_trait]
impl Kind<Ctx, Batch> for Bucket {
    fn name(&self) -> &'static str {
        "bucket"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("A directory on a host, or on a mount every host shares", crate::schema::bucket())
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        match str_attr(config, "name").map(check_name) {
            Some(Err(m)) => Diagnostic::error("E-ONPREM-BUCKET-NAME", m).into(),
            _ => Diagnostics::new(),
        }
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        Ok(plan(ctx, req).await)
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(create(ctx, req).await?))
    }

    async fn update(&self, _ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        // Only `shared` and `force_destroy` change in place; both live in state alone.
        Ok(ApplyResponse::ok(req.planned.clone()))
    }

    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        delete(ctx, req).await?;
        Ok(Diagnostics::new())
    }

    /// Every item at once, each in its own task over the shared host connections.
    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], _batch: &Batch) -> Outcome<Vec<ReadResult>> {
        Ok(futures_util::future::join_all(items.iter().map(|item| async move { read(ctx, item).await })).await)
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(recover(ctx, req).await)
    }

    async fn import(&self, ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        Ok(import(ctx, req).await)
    }

    async fn store(&self, ctx: &Ctx, req: &StoreRequest<'_>) -> Outcome<StoreResponse> {
        Ok(store(ctx, req).await?)
    }
}
