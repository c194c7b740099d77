//! Chooses the state backend from the `kiln { backend "..." { } }` block: `local` (default),
//! `s3` or `postgres`. Settings are expressions evaluated before anything is planned, so they may
//! use variables (`var.x`, with its default, `--var`, var files or `KILN_VAR_x`) and functions,
//! but not resources, data sources, locals or module outputs: those are errors with the span.
//! The `s3` and `postgres` backends are cargo features of the same names (on by default): a kiln
//! built without one refuses its block.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_config::{Body, Config};
use kiln_diag::{Diagnostic, Diagnostics, Span};
use kiln_eval::{Ref, Scope};
use kiln_state::{Codec, LocalBackend, StateBackend};
#[cfg(feature = "postgres")]
use kiln_state_postgres::{PgBackend, PgSettings};
#[cfg(feature = "s3")]
use kiln_state_s3::{S3Backend, S3Settings};
use kiln_value::Value;

/// A backend block, evaluated: where the state of every workspace lives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BackendConfig {
    /// State files; `path` is the default workspace's file.
    Local { path: PathBuf },
    /// An S3 bucket (see `kiln_state_s3`).
    #[cfg(feature = "s3")]
    S3 {
        #[serde(flatten)]
        settings: S3Settings,
    },
    /// A PostgreSQL database (see `kiln_state_postgres`).
    #[cfg(feature = "postgres")]
    Postgres {
        #[serde(flatten)]
        settings: PgSettings,
    },
}

impl BackendConfig {
    /// A client of workspace `workspace`, every document passing through `codec`.
    pub fn open(&self, workspace: &str, codec: Arc<dyn Codec>) -> Box<dyn StateBackend> {
        match self {
            BackendConfig::Local { path } => Box::new(LocalBackend::new(path).with_workspace(workspace).with_codec(codec)),
            #[cfg(feature = "s3")]
            BackendConfig::S3 { settings: s } => Box::new(S3Backend::new(s.clone()).with_workspace(workspace).with_codec(codec)),
            #[cfg(feature = "postgres")]
            BackendConfig::Postgres { settings: s } => Box::new(PgBackend::new(s.clone()).with_workspace(workspace).with_codec(codec)),
        }
    }

    /// The backend type: `local`, `s3`, `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Local { .. } => "local",
            #[cfg(feature = "s3")]
            BackendConfig::S3 { .. } => "s3",
            #[cfg(feature = "postgres")]
            BackendConfig::Postgres { .. } => "postgres",
        }
    }

    /// What identifies the storage, without secrets (passwords, secret keys): recorded by
    /// `kiln init` in `.kiln/backend.json` to notice that the backend changed.
    pub fn identity(&self) -> serde_json::Value {
        match self {
            BackendConfig::Local { path } => serde_json::json!({"type": "local", "path": path}),
            #[cfg(feature = "s3")]
            BackendConfig::S3 { settings: s } => serde_json::json!({
                "type": "s3", "bucket": s.bucket, "key": s.key, "region": s.region, "endpoint": s.endpoint,
                "workspace_key_prefix": s.workspace_key_prefix,
            }),
            #[cfg(feature = "postgres")]
            BackendConfig::Postgres { settings: s } => {
                let safe = s.conn_str.parse::<tokio_postgres_config::Config>().ok().map(|c| {
                    let hosts: Vec<String> = c
                        .get_hosts()
                        .iter()
                        .map(|h| match h {
                            tokio_postgres_config::Host::Tcp(h) => h.clone(),
                            #[cfg(unix)]
                            tokio_postgres_config::Host::Unix(p) => p.display().to_string(),
                        })
                        .collect();
                    serde_json::json!({"hosts": hosts, "ports": c.get_ports(), "user": c.get_user(), "dbname": c.get_dbname()})
                });
                serde_json::json!({"type": "postgres", "conn": safe, "schema": s.schema})
            }
        }
    }
}

/// tokio-postgres's config parser, re-exported by the Postgres backend crate's dependency.
#[cfg(feature = "postgres")]
mod tokio_postgres_config {
    pub use kiln_state_postgres::tokio_postgres::config::{Config, Host};
}

/// Evaluates the backend block with the root variables `vars` (values given by the user; a
/// variable without one takes its default). `dir` is the configuration directory (relative
/// local paths are resolved against it).
pub fn backend_config(config: &Config, dir: &Path, vars: &BTreeMap<String, Value>) -> Result<BackendConfig, Diagnostics> {
    let default = dir.join(LocalBackend::DEFAULT_PATH);
    let Some(backend) = config.root.module.settings.as_ref().and_then(|s| s.backend.as_ref()) else {
        return Ok(BackendConfig::Local { path: default });
    };
    let scope = BackendScope { config, dir, vars };
    let mut diags = Diagnostics::new();
    // Backends that are cargo features: a kiln built without one refuses its block.
    for (kind, built) in [("s3", cfg!(feature = "s3")), ("postgres", cfg!(feature = "postgres"))] {
        if backend.kind == kind && !built {
            diags.push(
                Diagnostic::error("E-BACKEND-TYPE", format!("backend type `{kind}` is not built into this kiln"))
                    .at(backend.span.clone(), "here")
                    .hint(format!("build kiln with the `{kind}` cargo feature (on by default), or use another backend")),
            );
            return Err(diags);
        }
    }
    let allowed: &[&str] = match backend.kind.as_str() {
        "local" => &["path"],
        "s3" => &["bucket", "key", "region", "endpoint", "access_key", "secret_key", "profile", "workspace_key_prefix"],
        "postgres" => &["conn_str", "schema"],
        other => {
            diags.push(
                Diagnostic::error("E-BACKEND-TYPE", format!("backend type `{other}` is not supported"))
                    .at(backend.span.clone(), "here")
                    .hint("use backend \"local\", \"s3\" or \"postgres\""),
            );
            return Err(diags);
        }
    };
    let settings = strings(&backend.body, allowed, &scope, &backend.kind, &mut diags);
    let required: &[&str] = match backend.kind.as_str() {
        "s3" => &["bucket", "key"],
        "postgres" => &["conn_str"],
        _ => &[],
    };
    for r in required {
        if !settings.contains_key(*r) && !diags.has_errors() {
            diags.push(
                Diagnostic::error("E-BACKEND-SETTING", format!("backend \"{}\" needs `{r}`", backend.kind))
                    .at(backend.span.clone(), "this block")
                    .hint(match backend.kind.as_str() {
                        "s3" => "write for example bucket = \"my-team-state\" and key = \"prod/kiln.json\"",
                        _ => "write for example conn_str = \"postgres://user:password@db.internal:5432/kiln\"",
                    }),
            );
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    let get = |k: &str| settings.get(k).map(|(v, _)| v.clone());
    let out = match backend.kind.as_str() {
        "local" => BackendConfig::Local { path: get("path").map_or(default, |p| dir.join(p)) },
        #[cfg(feature = "s3")]
        "s3" => BackendConfig::S3 {
            settings: S3Settings {
                bucket: get("bucket").unwrap_or_default(),
                key: get("key").unwrap_or_default(),
                region: get("region"),
                endpoint: get("endpoint"),
                access_key: get("access_key"),
                secret_key: get("secret_key"),
                profile: get("profile"),
                workspace_key_prefix: get("workspace_key_prefix"),
            },
        },
        #[cfg(feature = "postgres")]
        "postgres" => {
            let pg = PgSettings { conn_str: get("conn_str").unwrap_or_default(), schema: get("schema").unwrap_or_else(|| "kiln".into()) };
            if let Err(message) = pg.check() {
                let span = settings
                    .get("schema")
                    .filter(|_| message.starts_with("schema"))
                    .or_else(|| settings.get("conn_str"))
                    .map(|(_, s)| s.clone());
                let d = Diagnostic::error("E-BACKEND-SETTING", message);
                diags.push(match span {
                    Some(s) => d.at(s, "here"),
                    None => d.at(backend.span.clone(), "here"),
                });
                return Err(diags);
            }
            BackendConfig::Postgres { settings: pg }
        }
        other => unreachable!("backend type `{other}` is refused above"),
    };
    Ok(out)
}

/// Evaluates every attribute of `body` to a string. Unknown attributes, nested blocks and
/// non-string values are errors with spans.
fn strings(
    body: &Body,
    allowed: &[&str],
    scope: &BackendScope<'_>,
    kind: &str,
    diags: &mut Diagnostics,
) -> BTreeMap<String, (String, Span)> {
    let mut out = BTreeMap::new();
    for b in &body.blocks {
        diags.push(
            Diagnostic::error("E-BACKEND-SETTING", format!("backend \"{kind}\" has no `{}` block", b.ident))
                .at(b.span.clone(), "here")
                .hint(format!("its settings are attributes: {}", allowed.join(", "))),
        );
    }
    for a in &body.attrs {
        if !allowed.contains(&a.name.as_str()) {
            diags.push(
                Diagnostic::error("E-BACKEND-SETTING", format!("backend \"{kind}\" has no setting `{}`", a.name))
                    .at(a.name_span.clone(), "here")
                    .hint(format!("its settings are: {}", allowed.join(", "))),
            );
            continue;
        }
        let span = a.expr.span().unwrap_or_else(|| a.name_span.clone());
        match kiln_eval::eval(&a.expr, scope) {
            Err(d) => diags.extend(d),
            Ok(v) => match v.unmarked() {
                Value::String(s) => {
                    out.insert(a.name.clone(), (s.to_string(), span));
                }
                Value::Null => {}
                other => diags.push(
                    Diagnostic::error(
                        "E-BACKEND-SETTING",
                        format!("backend setting `{}` must be a string, not {}", a.name, type_name(other)),
                    )
                    .at(span, "here")
                    .hint("write a string, such as \"value\" or \"${var.name}\""),
                ),
            },
        }
    }
    out
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Unknown => "a value known only after apply",
        _ => "this value",
    }
}

/// What a backend block may refer to: variables (given, else their defaults) and `path.*`.
struct BackendScope<'a> {
    config: &'a Config,
    dir: &'a Path,
    vars: &'a BTreeMap<String, Value>,
}

impl Scope for BackendScope<'_> {
    fn resolve(&self, r: &Ref) -> Result<Value, Diagnostic> {
        match r {
            Ref::Var(n) => {
                if let Some(v) = self.vars.get(n) {
                    return Ok(v.clone());
                }
                let Some(var) = self.config.root.module.variables.get(n) else {
                    return Err(Diagnostic::error("E-BACKEND-REF", format!("there is no variable `{n}`"))
                        .hint(format!("declare it with variable \"{n}\" {{ }} or fix the name")));
                };
                match &var.default {
                    Some(d) => kiln_eval::eval(d, &ConstScope(self.dir)).map_err(|ds| {
                        ds.iter()
                            .next()
                            .cloned()
                            .unwrap_or_else(|| Diagnostic::error("E-BACKEND-REF", format!("the default of `var.{n}` cannot be evaluated")))
                    }),
                    None => Err(Diagnostic::error(
                        "E-BACKEND-REF",
                        format!("`var.{n}` has no value, and the backend needs it before anything else"),
                    )
                    .hint(format!("pass --var {n}=..., set KILN_VAR_{n}, put it in kiln.kilnvars, or give the variable a default"))),
                }
            }
            Ref::Path(p) if p == "module" || p == "root" || p == "cwd" => Ok(Value::from(self.dir.display().to_string())),
            other => Err(Diagnostic::error(
                "E-BACKEND-REF",
                format!("the backend cannot use `{other}`: it is chosen before anything is planned"),
            )
            .hint("backend settings may use variables (var.NAME) and functions only; pass what they need with --var or KILN_VAR_NAME")),
        }
    }

    fn base_dir(&self) -> &Path {
        self.dir
    }
}

struct ConstScope<'a>(&'a Path);

impl Scope for ConstScope<'_> {
    fn resolve(&self, r: &Ref) -> Result<Value, Diagnostic> {
        Err(Diagnostic::error("E-BACKEND-REF", format!("`{r}` cannot be used in a variable's default")).hint("defaults are constants"))
    }
    fn base_dir(&self) -> &Path {
        self.0
    }
}

/// The backend of `config` for `workspace`, documents sealed with `codec`.
pub fn open_backend(
    config: &Config,
    dir: &Path,
    workspace: &str,
    codec: Arc<dyn Codec>,
    vars: &BTreeMap<String, Value>,
) -> Result<Box<dyn StateBackend>, Diagnostics> {
    Ok(backend_config(config, dir, vars)?.open(workspace, codec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.kiln.hcl"), text).unwrap();
        let (c, d) = kiln_config::load(dir.path());
        assert!(!d.has_errors(), "{d:?}");
        (dir, c.unwrap())
    }

    fn codes(d: &Diagnostics) -> Vec<&str> {
        d.iter().map(|d| d.code).collect()
    }

    #[test]
    fn no_block_is_the_local_default() {
        let (dir, c) = config("resource \"record\" \"a\" {}\n");
        let got = backend_config(&c, dir.path(), &BTreeMap::new()).unwrap();
        assert_eq!(got, BackendConfig::Local { path: dir.path().join(".kiln/state.json") });
    }

    #[test]
    #[cfg(feature = "s3")]
    fn settings_use_variables_with_defaults_and_given_values() {
        let text = "variable \"env\" {\n  default = \"dev\"\n}\nvariable \"bucket\" {}\nkiln {\n  backend \"s3\" {\n    bucket = var.bucket\n    key    = \"${var.env}/kiln.json\"\n    region = lower(\"EU-WEST-1\")\n  }\n}\n";
        let (dir, c) = config(text);
        let vars = BTreeMap::from([("bucket".to_string(), Value::from("team-state"))]);
        let BackendConfig::S3 { settings } = backend_config(&c, dir.path(), &vars).unwrap() else { panic!("s3") };
        assert_eq!((settings.bucket.as_str(), settings.key.as_str()), ("team-state", "dev/kiln.json"));
        assert_eq!(settings.region.as_deref(), Some("eu-west-1"));
        // Without a value for `bucket` (no default): an error saying how to give one.
        let err = backend_config(&c, dir.path(), &BTreeMap::new()).unwrap_err();
        let d = err.iter().next().unwrap();
        assert!(d.summary.contains("`var.bucket` has no value"), "{d:?}");
        assert!(d.primary.is_some(), "points at the expression");
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn resources_and_unknown_settings_are_errors_with_spans() {
        let (dir, c) = config(
            "kiln {\n  backend \"postgres\" {\n    conn_str = record.a.id\n    table    = \"x\"\n  }\n}\nresource \"record\" \"a\" {}\n",
        );
        let err = backend_config(&c, dir.path(), &BTreeMap::new()).unwrap_err();
        assert_eq!(codes(&err), ["E-BACKEND-REF", "E-BACKEND-SETTING"], "{err:?}");
        assert!(err.iter().all(|d| d.primary.is_some()), "{err:?}");
        let (dir, c) = config("kiln {\n  backend \"postgres\" {}\n}\n");
        let err = backend_config(&c, dir.path(), &BTreeMap::new()).unwrap_err();
        assert!(err.iter().next().unwrap().summary.contains("needs `conn_str`"), "{err:?}");
        let (dir, c) = config("kiln {\n  backend \"postgres\" {\n    conn_str = \"postgres://h/db\"\n    schema = \"a-b\"\n  }\n}\n");
        let err = backend_config(&c, dir.path(), &BTreeMap::new()).unwrap_err();
        assert!(err.iter().next().unwrap().summary.contains("schema `a-b` is not a valid name"), "{err:?}");
        let (dir, c) = config("kiln {\n  backend \"consul\" {}\n}\n");
        assert_eq!(codes(&backend_config(&c, dir.path(), &BTreeMap::new()).unwrap_err()), ["E-BACKEND-TYPE"]);
        let (dir, c) = config("kiln {\n  backend \"local\" {\n    path = 3\n  }\n}\n");
        let err = backend_config(&c, dir.path(), &BTreeMap::new()).unwrap_err();
        assert!(err.iter().next().unwrap().summary.contains("must be a string, not a number"), "{err:?}");
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn the_record_round_trips_and_the_identity_has_no_secrets() {
        let pg = BackendConfig::Postgres { settings: PgSettings::new("postgres://kiln:s3cret@db.internal:5433/state") };
        let text = serde_json::to_string(&pg).unwrap();
        assert_eq!(serde_json::from_str::<BackendConfig>(&text).unwrap(), pg);
        let id = pg.identity().to_string();
        assert!(!id.contains("s3cret") && id.contains("db.internal") && id.contains("5433"), "{id}");
        #[cfg(feature = "s3")]
        {
            let s3 = BackendConfig::S3 {
                settings: S3Settings { bucket: "b".into(), key: "k".into(), secret_key: Some("hidden".into()), ..S3Settings::default() },
            };
            assert_eq!(serde_json::from_str::<BackendConfig>(&serde_json::to_string(&s3).unwrap()).unwrap(), s3);
            assert!(!s3.identity().to_string().contains("hidden"));
        }
    }

    #[test]
    #[cfg(not(feature = "s3"))]
    fn without_the_s3_feature_an_s3_backend_is_refused() {
        let (dir, c) = config("kiln {\n  backend \"s3\" {\n    bucket = \"b\"\n    key = \"k\"\n  }\n}\n");
        let err = backend_config(&c, dir.path(), &BTreeMap::new()).unwrap_err();
        assert_eq!(codes(&err), ["E-BACKEND-TYPE"]);
        let d = err.iter().next().unwrap();
        assert!(
            d.summary.contains("not built into this kiln") && d.hint.as_deref().unwrap_or_default().contains("`s3` cargo feature"),
            "{d:?}"
        );
        assert!(d.primary.is_some(), "points at the block");
    }

    #[test]
    #[cfg(not(feature = "postgres"))]
    fn without_the_postgres_feature_a_postgres_backend_is_refused() {
        let (dir, c) = config("kiln {\n  backend \"postgres\" {\n    conn_str = \"postgres://h/db\"\n  }\n}\n");
        let err = backend_config(&c, dir.path(), &BTreeMap::new()).unwrap_err();
        assert_eq!(codes(&err), ["E-BACKEND-TYPE"]);
        let d = err.iter().next().unwrap();
        assert!(
            d.summary.contains("not built into this kiln") && d.hint.as_deref().unwrap_or_default().contains("`postgres` cargo feature"),
            "{d:?}"
        );
        assert!(d.primary.is_some(), "points at the block");
    }
}
