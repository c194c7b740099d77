//! Backends by name, as the `kiln { backend "NAME" { } }` block chooses them: a
//! [`BackendFactory`] per backend type declares the block's settings and parses their evaluated
//! values into a [`BackendSpec`], the storage that `kiln init` records in `.kiln/backend.json`
//! and that every command opens per workspace. The local backend's factory is [`LocalFactory`];
//! the S3 and PostgreSQL crates have their own, and the binary registers the ones it is built
//! with (the engine names no concrete backend).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_diag::Diagnostics;

use crate::{Codec, LocalBackend, StateBackend};

/// One setting of a backend block. Every setting is a string.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    /// The block is refused without it.
    pub required: bool,
    /// A value to show in hints, written as in the configuration (`"prod/kiln.json"`).
    pub example: &'static str,
}

impl Setting {
    pub const fn required(name: &'static str, example: &'static str) -> Setting {
        Setting { name, required: true, example }
    }

    pub const fn optional(name: &'static str, example: &'static str) -> Setting {
        Setting { name, required: false, example }
    }
}

/// The settings a block sets, evaluated: each non-null one, by name. Only declared settings are
/// here, and every required one is.
pub type Settings = BTreeMap<String, String>;

/// A backend's storage as `kiln init` records it in `.kiln/backend.json`, beside `"type"`.
pub type Record = serde_json::Map<String, serde_json::Value>;

/// A backend type: what its block may set, and the storage that settings describe.
pub trait BackendFactory: Send + Sync {
    /// The block's label: `backend "NAME" { }`.
    fn name(&self) -> &'static str;

    /// The settings the block may set.
    fn settings(&self) -> &'static [Setting];

    /// The storage `settings` describe; relative paths are relative to `dir`, the root module's
    /// directory. A problem with one setting is a diagnostic naming it
    /// ([`kiln_diag::Diagnostic::attribute`]), so the engine points at it in the block.
    fn parse(&self, settings: &Settings, dir: &Path) -> Result<Arc<dyn BackendSpec>, Diagnostics>;

    /// The storage recorded by [`BackendSpec::record`], by this kiln or an earlier one.
    fn read_record(&self, record: &Record) -> Result<Arc<dyn BackendSpec>, String>;
}

/// One backend's storage: where the state of every workspace lives.
pub trait BackendSpec: Send + Sync + Debug {
    /// What `kiln init` records (settings included: it may hold credentials).
    fn record(&self) -> Record;

    /// What identifies the storage, without secrets (passwords, secret keys): two specs with the
    /// same identity hold the same states.
    fn identity(&self) -> serde_json::Value;

    /// A client of workspace `workspace`, every document passing through `codec`.
    fn open(&self, workspace: &str, codec: Arc<dyn Codec>) -> Box<dyn StateBackend>;
}

/// `backend "local" { path = "..." }`: state files (see [`LocalBackend`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFactory;

/// The local backend's storage: the default workspace's state file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalSpec {
    pub path: PathBuf,
}

impl LocalFactory {
    pub const NAME: &'static str = "local";
}

impl BackendFactory for LocalFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn settings(&self) -> &'static [Setting] {
        const SETTINGS: &[Setting] = &[Setting::optional("path", "\".kiln/state.json\"")];
        SETTINGS
    }

    fn parse(&self, settings: &Settings, dir: &Path) -> Result<Arc<dyn BackendSpec>, Diagnostics> {
        let path = dir.join(settings.get("path").map_or(LocalBackend::DEFAULT_PATH, String::as_str));
        Ok(Arc::new(LocalSpec { path }))
    }

    fn read_record(&self, record: &Record) -> Result<Arc<dyn BackendSpec>, String> {
        let spec: LocalSpec = serde_json::from_value(serde_json::Value::Object(record.clone())).map_err(|e| e.to_string())?;
        Ok(Arc::new(spec))
    }
}

impl BackendSpec for LocalSpec {
    fn record(&self) -> Record {
        to_record(self)
    }

    fn identity(&self) -> serde_json::Value {
        serde_json::json!({ "path": self.path })
    }

    fn open(&self, workspace: &str, codec: Arc<dyn Codec>) -> Box<dyn StateBackend> {
        Box::new(LocalBackend::new(&self.path).with_workspace(workspace).with_codec(codec))
    }
}

/// `value` as a record: its fields, by name.
pub fn to_record(value: &impl serde::Serialize) -> Record {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => Record::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_relative_to_the_directory_and_the_record_round_trips() {
        let dir = Path::new("/work/project");
        let default = LocalFactory.parse(&Settings::new(), dir).unwrap();
        assert_eq!(default.identity(), serde_json::json!({"path": "/work/project/.kiln/state.json"}));
        let set = LocalFactory.parse(&Settings::from([("path".into(), "st/kiln.json".into())]), dir).unwrap();
        let record = set.record();
        assert_eq!(serde_json::Value::Object(record.clone()), serde_json::json!({"path": "/work/project/st/kiln.json"}));
        assert_eq!(LocalFactory.read_record(&record).unwrap().identity(), set.identity());
        assert!(LocalFactory.read_record(&Record::new()).unwrap_err().contains("path"));
        assert_eq!(
            set.open("dev", Arc::new(crate::Plain)).describe(),
            LocalBackend::new("/work/project/st/kiln.json").with_workspace("dev").describe()
        );
    }
}
