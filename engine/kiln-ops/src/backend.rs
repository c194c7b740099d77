//! Chooses the state backend from the `kiln { backend "NAME" { } }` block, against the
//! [`Backends`] the binary registers (like providers: `local` always, `s3` and `postgres` behind
//! the root package's cargo features of the same names). The block is evaluated generically:
//! each setting a backend's [`BackendFactory`] declares is an expression evaluated before
//! anything is planned, with the root variables of [`RootVars`] (`var.x`, with its default,
//! `--var`, var files or `KILN_VAR_x`), `path.*` and functions, but not resources, data sources,
//! locals or module outputs: those are errors with the span. A backend this kiln was built
//! without is refused at its block, saying which feature brings it.

use std::path::PathBuf;
use std::sync::Arc;

use kiln_config::{Body, Config};
use kiln_diag::{Diagnostic, Diagnostics, Span};
use kiln_state::{BackendFactory, BackendSpec, Codec, LocalFactory, LocalSpec, Record, Settings, StateBackend};
use kiln_value::Value;

use crate::vars::{EarlyBlock, RootVars};

/// The backend types a kiln knows: each one's factory, and those it was built without.
#[derive(Clone)]
pub struct Backends {
    factories: Vec<Arc<dyn BackendFactory>>,
    /// Backend types of features this build left out, with the feature.
    not_built: Vec<(String, String)>,
}

impl Default for Backends {
    fn default() -> Self {
        Self::new()
    }
}

impl Backends {
    /// `local` alone: state files, the default when there is no `backend` block.
    pub fn new() -> Self {
        Backends { factories: vec![Arc::new(LocalFactory)], not_built: Vec::new() }
    }

    /// Adds (or replaces) the backend type `factory.name()`.
    pub fn register(&mut self, factory: Arc<dyn BackendFactory>) {
        self.factories.retain(|f| f.name() != factory.name());
        self.factories.push(factory);
    }

    /// Backend type `name` exists but this build left it out: its block is refused with a hint
    /// naming the cargo `feature` that brings it.
    pub fn not_built(&mut self, name: &str, feature: &str) {
        self.not_built.push((name.to_string(), feature.to_string()));
    }

    /// The factory of backend type `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn BackendFactory>> {
        self.factories.iter().find(|f| f.name() == name)
    }

    /// The backend types this kiln can use, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.factories.iter().map(|f| f.name()).collect()
    }

    /// Evaluates the backend block of `config` with the root variables `vars`; no block is the
    /// local default, `.kiln/state.json` in the root module's directory.
    pub fn config(&self, config: &Config, vars: &RootVars) -> Result<BackendConfig, Diagnostics> {
        let dir = vars.root_dir();
        let Some(backend) = config.root.module.settings.as_ref().and_then(|s| s.backend.as_ref()) else {
            return Ok(BackendConfig::local(dir.join(kiln_state::LocalBackend::DEFAULT_PATH)));
        };
        let mut diags = Diagnostics::new();
        let Some(factory) = self.get(&backend.kind) else {
            let d = match self.not_built.iter().find(|(n, _)| *n == backend.kind) {
                Some((kind, feature)) => Diagnostic::error("E-BACKEND-TYPE", format!("backend type `{kind}` is not built into this kiln"))
                    .hint(format!("build kiln with the `{feature}` cargo feature (on by default), or use another backend")),
                None => Diagnostic::error("E-BACKEND-TYPE", format!("backend type `{}` is not supported", backend.kind))
                    .hint(format!("use backend {}", one_of(&self.names()))),
            };
            diags.push(d.at(backend.span.clone(), "here"));
            return Err(diags);
        };
        let kind = factory.name();
        let declared: Vec<&str> = factory.settings().iter().map(|s| s.name).collect();
        let settings = strings(&backend.body, &declared, &vars.scope(EarlyBlock::BACKEND), kind, &mut diags);
        for r in factory.settings().iter().filter(|s| s.required) {
            if !settings.contains_key(r.name) && !diags.has_errors() {
                let examples: Vec<String> =
                    factory.settings().iter().filter(|s| s.required).map(|s| format!("{} = {}", s.name, s.example)).collect();
                diags.push(
                    Diagnostic::error("E-BACKEND-SETTING", format!("backend \"{kind}\" needs `{}`", r.name))
                        .at(backend.span.clone(), "this block")
                        .hint(format!("write for example {}", examples.join(" and "))),
                );
            }
        }
        if diags.has_errors() {
            return Err(diags);
        }
        let values: Settings = settings.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect();
        match factory.parse(&values, dir) {
            Ok(spec) => Ok(BackendConfig { kind, spec }),
            Err(errors) => {
                // Each error naming a setting points at its value; the others at the block.
                for d in errors.into_vec() {
                    let at = d.attribute.as_deref().and_then(|a| settings.get(a)).map(|(_, span)| span.clone());
                    diags.push(d.or_at(Some(at.unwrap_or_else(|| backend.span.clone()))));
                }
                Err(diags)
            }
        }
    }

    /// A backend recorded by [`BackendConfig`]'s serialization (`.kiln/backend.json`, written by
    /// this kiln or an earlier one).
    pub fn read_record(&self, json: &[u8]) -> Result<BackendConfig, String> {
        let mut record: Record = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let kind = match record.remove("type") {
            Some(serde_json::Value::String(k)) => k,
            _ => return Err("it names no backend `type`".into()),
        };
        let Some(factory) = self.get(&kind) else {
            return Err(match self.not_built.iter().find(|(n, _)| *n == kind) {
                Some((_, feature)) => format!("it names backend `{kind}`, which this kiln is built without (cargo feature `{feature}`)"),
                None => format!("it names backend `{kind}`, which this kiln does not know"),
            });
        };
        Ok(BackendConfig { kind: factory.name(), spec: factory.read_record(&record)? })
    }
}

/// `"a", "b" or "c"`.
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

/// A backend block, evaluated: where the state of every workspace lives. Serialized as
/// `kiln init` records it: `{"type": "s3", "bucket": ..., ...}`, read back by
/// [`Backends::read_record`].
#[derive(Clone)]
pub struct BackendConfig {
    kind: &'static str,
    spec: Arc<dyn BackendSpec>,
}

impl BackendConfig {
    /// The local backend with the default workspace's state file `path`.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        BackendConfig { kind: LocalFactory::NAME, spec: Arc::new(LocalSpec { path: path.into() }) }
    }

    /// The state file of the default workspace, for the local backend.
    pub fn local_path(&self) -> Option<PathBuf> {
        if self.kind != LocalFactory::NAME {
            return None;
        }
        self.spec.record().get("path").and_then(|p| p.as_str()).map(PathBuf::from)
    }

    /// A client of workspace `workspace`, every document passing through `codec`.
    pub fn open(&self, workspace: &str, codec: Arc<dyn Codec>) -> Box<dyn StateBackend> {
        self.spec.open(workspace, codec)
    }

    /// The backend type: `local`, `s3`, `postgres`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// What identifies the storage, without secrets (passwords, secret keys): recorded by
    /// `kiln init` in `.kiln/backend.json` to notice that the backend changed.
    pub fn identity(&self) -> serde_json::Value {
        let mut id = serde_json::Map::new();
        id.insert("type".into(), self.kind.into());
        match self.spec.identity() {
            serde_json::Value::Object(m) => id.extend(m),
            other => {
                id.insert("storage".into(), other);
            }
        }
        serde_json::Value::Object(id)
    }

    /// The record: `type` and the settings (credentials included).
    fn record(&self) -> Record {
        let mut r = Record::new();
        r.insert("type".into(), self.kind.into());
        r.extend(self.spec.record());
        r
    }
}

impl PartialEq for BackendConfig {
    fn eq(&self, other: &Self) -> bool {
        self.record() == other.record()
    }
}

impl Eq for BackendConfig {}

/// The identity: never the credentials.
impl std::fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackendConfig({})", self.identity())
    }
}

impl serde::Serialize for BackendConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let record = self.spec.record();
        let mut m = s.serialize_map(Some(record.len() + 1))?;
        m.serialize_entry("type", self.kind)?;
        for (k, v) in &record {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Evaluates every attribute of `body` to a string. Unknown attributes, nested blocks and
/// non-string values are errors with spans.
fn strings(
    body: &Body,
    allowed: &[&str],
    scope: &dyn kiln_eval::Scope,
    kind: &str,
    diags: &mut Diagnostics,
) -> std::collections::BTreeMap<String, (String, Span)> {
    let mut out = std::collections::BTreeMap::new();
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use kiln_state::Setting;

    use super::*;
    use crate::testing::config;

    fn codes(d: &Diagnostics) -> Vec<&str> {
        d.iter().map(|d| d.code).collect()
    }

    /// A remote backend as the engine sees one: settings, and a parse that checks one of them.
    struct Bucket;

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct BucketSpec {
        bucket: String,
        key: String,
        region: Option<String>,
        secret: Option<String>,
    }

    impl BackendFactory for Bucket {
        fn name(&self) -> &'static str {
            "bucket"
        }
        fn settings(&self) -> &'static [Setting] {
            const S: &[Setting] = &[
                Setting::required("bucket", "\"my-team-state\""),
                Setting::required("key", "\"prod/kiln.json\""),
                Setting::optional("region", "\"eu-west-1\""),
                Setting::optional("secret", "var.secret"),
            ];
            S
        }
        fn parse(&self, s: &Settings, _dir: &Path) -> Result<Arc<dyn BackendSpec>, Diagnostics> {
            if s["key"].starts_with('/') {
                let mut d = Diagnostics::new();
                d.push(Diagnostic::error("E-BACKEND-SETTING", "key must be relative").attribute("key").hint("drop the leading /"));
                return Err(d);
            }
            Ok(Arc::new(BucketSpec {
                bucket: s["bucket"].clone(),
                key: s["key"].clone(),
                region: s.get("region").cloned(),
                secret: s.get("secret").cloned(),
            }))
        }
        fn read_record(&self, record: &Record) -> Result<Arc<dyn BackendSpec>, String> {
            let spec: BucketSpec = serde_json::from_value(serde_json::Value::Object(record.clone())).map_err(|e| e.to_string())?;
            Ok(Arc::new(spec))
        }
    }

    impl BackendSpec for BucketSpec {
        fn record(&self) -> Record {
            kiln_state::to_record(self)
        }
        fn identity(&self) -> serde_json::Value {
            serde_json::json!({"bucket": self.bucket, "key": self.key})
        }
        fn open(&self, _: &str, _: Arc<dyn Codec>) -> Box<dyn StateBackend> {
            unreachable!("not opened in these tests")
        }
    }

    fn backends() -> Backends {
        let mut b = Backends::new();
        b.register(Arc::new(Bucket));
        b.not_built("s3", "s3");
        b
    }

    fn eval(c: &Config, dir: &Path, vars: &[(&str, &str)]) -> Result<BackendConfig, Diagnostics> {
        let given: BTreeMap<String, Value> = vars.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
        backends().config(c, &RootVars::new(c, &given, dir))
    }

    /// `(code, "LINE:COL")` of each diagnostic.
    fn at(c: &Config, d: &Diagnostics) -> Vec<(&'static str, String)> {
        d.iter()
            .map(|d| {
                let l = d.primary.as_ref().map_or("-".to_string(), |l| c.sources.location(l.span.file, l.span.range.start));
                (d.code, l.rsplit_once("main.kiln.hcl:").map_or(l.clone(), |(_, lc)| lc.to_string()))
            })
            .collect()
    }

    #[test]
    fn no_block_is_the_local_default() {
        let (dir, c) = config("resource \"record\" \"a\" {}\n");
        let got = eval(&c, dir.path(), &[]).unwrap();
        assert_eq!(got, BackendConfig::local(dir.path().join(".kiln/state.json")));
        assert_eq!(got.local_path(), Some(dir.path().join(".kiln/state.json")));
        assert_eq!(got.kind(), "local");
    }

    #[test]
    fn settings_use_variables_with_defaults_and_given_values() {
        let text = "variable \"env\" {\n  default = \"dev\"\n}\nvariable \"bucket\" {}\nkiln {\n  backend \"bucket\" {\n    bucket = var.bucket\n    key    = \"${var.env}/kiln.json\"\n    region = lower(\"EU-WEST-1\")\n  }\n}\n";
        let (dir, c) = config(text);
        let got = eval(&c, dir.path(), &[("bucket", "team-state")]).unwrap();
        assert_eq!(got.kind(), "bucket");
        let record = serde_json::to_value(&got).unwrap();
        assert_eq!(
            record,
            serde_json::json!({"type": "bucket", "bucket": "team-state", "key": "dev/kiln.json", "region": "eu-west-1", "secret": null})
        );
        assert_eq!(got.identity(), serde_json::json!({"type": "bucket", "bucket": "team-state", "key": "dev/kiln.json"}));
        // Without a value for `bucket` (no default): an error saying how to give one.
        let err = eval(&c, dir.path(), &[]).unwrap_err();
        let d = err.iter().next().unwrap();
        assert!(d.summary.contains("`var.bucket` has no value"), "{d:?}");
        assert_eq!(at(&c, &err), [("E-VAR-MISSING", "7:14".to_string())], "points at the expression");
    }

    #[test]
    fn resources_unknown_settings_and_bad_values_are_errors_with_spans() {
        let (dir, c) =
            config("kiln {\n  backend \"bucket\" {\n    bucket = record.a.id\n    table  = \"x\"\n  }\n}\nresource \"record\" \"a\" {}\n");
        let err = eval(&c, dir.path(), &[]).unwrap_err();
        assert_eq!(at(&c, &err), [("E-BACKEND-REF", "3:14".to_string()), ("E-BACKEND-SETTING", "4:5".to_string())]);
        assert!(err.iter().next().unwrap().summary.contains("the backend cannot use `record.a`"), "{err:?}");
        let (dir, c) = config("kiln {\n  backend \"bucket\" {\n    bucket = \"b\"\n  }\n}\n");
        let err = eval(&c, dir.path(), &[]).unwrap_err();
        let d = err.iter().next().unwrap();
        assert!(d.summary.contains("backend \"bucket\" needs `key`"), "{d:?}");
        assert_eq!(d.hint.as_deref(), Some("write for example bucket = \"my-team-state\" and key = \"prod/kiln.json\""));
        // The backend's own check names the setting: the error points at its value.
        let (dir, c) = config("kiln {\n  backend \"bucket\" {\n    bucket = \"b\"\n    key = \"/abs\"\n  }\n}\n");
        let err = eval(&c, dir.path(), &[]).unwrap_err();
        assert_eq!(at(&c, &err), [("E-BACKEND-SETTING", "4:11".to_string())]);
        let (dir, c) = config("kiln {\n  backend \"consul\" {}\n}\n");
        let err = eval(&c, dir.path(), &[]).unwrap_err();
        assert_eq!(codes(&err), ["E-BACKEND-TYPE"]);
        assert_eq!(err.iter().next().unwrap().hint.as_deref(), Some("use backend \"local\" or \"bucket\""));
        let (dir, c) = config("kiln {\n  backend \"local\" {\n    path = 3\n  }\n}\n");
        let err = eval(&c, dir.path(), &[]).unwrap_err();
        assert!(err.iter().next().unwrap().summary.contains("must be a string, not a number"), "{err:?}");
    }

    #[test]
    fn a_backend_this_build_left_out_is_refused_at_the_block() {
        let (dir, c) = config("kiln {\n  backend \"s3\" {\n    bucket = \"b\"\n    key = \"k\"\n  }\n}\n");
        let err = eval(&c, dir.path(), &[]).unwrap_err();
        assert_eq!(at(&c, &err), [("E-BACKEND-TYPE", "2:3".to_string())]);
        let d = err.iter().next().unwrap();
        assert!(
            d.summary.contains("not built into this kiln") && d.hint.as_deref().unwrap_or_default().contains("`s3` cargo feature"),
            "{d:?}"
        );
        let err = backends().read_record(br#"{"type": "s3", "bucket": "b", "key": "k"}"#).unwrap_err();
        assert!(err.contains("cargo feature `s3`"), "{err}");
    }

    #[test]
    fn records_the_previous_kiln_wrote_compare_equal() {
        let (dir, c) = config("kiln {\n  backend \"local\" {\n    path = \"st/kiln.json\"\n  }\n}\n");
        let now = eval(&c, dir.path(), &[]).unwrap();
        // `.kiln/backend.json` as the previous kiln (an enum tagged by `type`) wrote it.
        let previous = format!("{{\n  \"type\": \"local\",\n  \"path\": {:?}\n}}\n", dir.path().join("st/kiln.json").display().to_string());
        let recorded = backends().read_record(previous.as_bytes()).unwrap();
        assert_eq!(recorded, now);
        assert_eq!(recorded.identity(), now.identity());
        assert_eq!(serde_json::to_value(&now).unwrap(), serde_json::from_str::<serde_json::Value>(&previous).unwrap());
        // What this kiln writes it reads.
        let bucket = BackendConfig {
            kind: "bucket",
            spec: Arc::new(BucketSpec { bucket: "b".into(), key: "k".into(), region: None, secret: Some("hidden".into()) }),
        };
        let text = serde_json::to_vec(&bucket).unwrap();
        assert_eq!(backends().read_record(&text).unwrap(), bucket);
        assert!(!format!("{bucket:?}").contains("hidden"), "{bucket:?}");
        assert!(backends().read_record(br#"{"type": "consul"}"#).unwrap_err().contains("does not know"));
        assert!(backends().read_record(br#"{"path": "x"}"#).unwrap_err().contains("type"));
    }
}
