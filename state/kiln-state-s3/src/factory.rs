//! `backend "s3" { }`: the block's settings and the storage they describe.

use std::path::Path;
use std::sync::Arc;

use kiln_diag::Diagnostics;
use kiln_state::{to_record, BackendFactory, BackendSpec, Codec, Record, Setting, Settings, StateBackend};

use crate::{S3Backend, S3Settings};

/// The S3 backend's factory, registered by the binary (its `s3` feature).
#[derive(Debug, Clone, Copy, Default)]
pub struct S3Factory;

impl S3Factory {
    pub const NAME: &'static str = "s3";
}

const SETTINGS: &[Setting] = &[
    Setting::required("bucket", "\"my-team-state\""),
    Setting::required("key", "\"prod/kiln.json\""),
    Setting::optional("region", "\"eu-west-1\""),
    Setting::optional("endpoint", "\"http://localhost:9000\""),
    Setting::optional("access_key", "var.access_key"),
    Setting::optional("secret_key", "var.secret_key"),
    Setting::optional("profile", "\"ops\""),
    Setting::optional("workspace_key_prefix", "\"env:\""),
];

impl BackendFactory for S3Factory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn settings(&self) -> &'static [Setting] {
        SETTINGS
    }

    fn parse(&self, settings: &Settings, _dir: &Path) -> Result<Arc<dyn BackendSpec>, Diagnostics> {
        let get = |k: &str| settings.get(k).cloned();
        Ok(Arc::new(S3Settings {
            bucket: get("bucket").unwrap_or_default(),
            key: get("key").unwrap_or_default(),
            region: get("region"),
            endpoint: get("endpoint"),
            access_key: get("access_key"),
            secret_key: get("secret_key"),
            profile: get("profile"),
            workspace_key_prefix: get("workspace_key_prefix"),
        }))
    }

    fn read_record(&self, record: &Record) -> Result<Arc<dyn BackendSpec>, String> {
        let s: S3Settings = serde_json::from_value(serde_json::Value::Object(record.clone())).map_err(|e| e.to_string())?;
        Ok(Arc::new(s))
    }
}

impl BackendSpec for S3Settings {
    fn record(&self) -> Record {
        to_record(self)
    }

    fn identity(&self) -> serde_json::Value {
        serde_json::json!({
            "bucket": self.bucket, "key": self.key, "region": self.region, "endpoint": self.endpoint,
            "workspace_key_prefix": self.workspace_key_prefix,
        })
    }

    fn open(&self, workspace: &str, codec: Arc<dyn Codec>) -> Box<dyn StateBackend> {
        Box::new(S3Backend::new(self.clone()).with_workspace(workspace).with_codec(codec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_the_identity_has_no_secrets() {
        let settings = Settings::from([
            ("bucket".to_string(), "b".to_string()),
            ("key".to_string(), "k".to_string()),
            ("secret_key".to_string(), "hidden".to_string()),
        ]);
        let spec = S3Factory.parse(&settings, Path::new("/")).unwrap();
        // As the previous kiln recorded it (every field, absent ones null).
        let previous = r#"{"type":"s3","bucket":"b","key":"k","region":null,"endpoint":null,"access_key":null,"secret_key":"hidden","profile":null,"workspace_key_prefix":null}"#;
        let mut record: Record = serde_json::from_str(previous).unwrap();
        record.remove("type");
        assert_eq!(spec.record(), record);
        let back = S3Factory.read_record(&record).unwrap();
        assert_eq!(back.identity(), spec.identity());
        assert!(!spec.identity().to_string().contains("hidden"));
        assert!(S3Factory.read_record(&Record::new()).is_err(), "bucket and key are needed");
        assert!(!format!("{back:?}").contains("hidden"), "{back:?}");
    }
}
