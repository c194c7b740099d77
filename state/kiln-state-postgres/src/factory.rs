//! `backend "postgres" { }`: the block's settings and the storage they describe.

use std::path::Path;
use std::sync::Arc;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_state::{to_record, BackendFactory, BackendSpec, Codec, Record, Setting, Settings, StateBackend};

use crate::{PgBackend, PgSettings};

/// The PostgreSQL backend's factory, registered by the binary (its `postgres` feature).
#[derive(Debug, Clone, Copy, Default)]
pub struct PgFactory;

impl PgFactory {
    pub const NAME: &'static str = "postgres";
}

const SETTINGS: &[Setting] =
    &[Setting::required("conn_str", "\"postgres://user:password@db.internal:5432/kiln\""), Setting::optional("schema", "\"kiln\"")];

impl BackendFactory for PgFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn settings(&self) -> &'static [Setting] {
        SETTINGS
    }

    fn parse(&self, settings: &Settings, _dir: &Path) -> Result<Arc<dyn BackendSpec>, Diagnostics> {
        let mut pg = PgSettings::new(settings.get("conn_str").cloned().unwrap_or_default());
        if let Some(schema) = settings.get("schema") {
            pg.schema = schema.clone();
        }
        if let Err(message) = pg.check() {
            let attribute = if message.starts_with("schema") { "schema" } else { "conn_str" };
            let mut diags = Diagnostics::new();
            diags.push(
                Diagnostic::error("E-BACKEND-SETTING", message)
                    .attribute(attribute)
                    .hint("see the `backend \"postgres\"` settings: conn_str (a libpq URL) and schema (an SQL name)"),
            );
            return Err(diags);
        }
        Ok(Arc::new(pg))
    }

    fn read_record(&self, record: &Record) -> Result<Arc<dyn BackendSpec>, String> {
        let s: PgSettings = serde_json::from_value(serde_json::Value::Object(record.clone())).map_err(|e| e.to_string())?;
        Ok(Arc::new(s))
    }
}

impl BackendSpec for PgSettings {
    fn record(&self) -> Record {
        to_record(self)
    }

    /// Hosts, ports, user and database of the connection string (never its password), and the schema.
    fn identity(&self) -> serde_json::Value {
        let safe = self.conn_str.parse::<tokio_postgres::Config>().ok().map(|c| {
            let hosts: Vec<String> = c
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            serde_json::json!({"hosts": hosts, "ports": c.get_ports(), "user": c.get_user(), "dbname": c.get_dbname()})
        });
        serde_json::json!({"conn": safe, "schema": self.schema})
    }

    fn open(&self, workspace: &str, codec: Arc<dyn Codec>) -> Box<dyn StateBackend> {
        Box::new(PgBackend::new(self.clone()).with_workspace(workspace).with_codec(codec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_the_identity_has_no_secrets() {
        let settings = Settings::from([("conn_str".to_string(), "postgres://kiln:s3cret@db.internal:5433/state".to_string())]);
        let spec = PgFactory.parse(&settings, Path::new("/")).unwrap();
        // As the previous kiln recorded it.
        let previous = r#"{"type":"postgres","conn_str":"postgres://kiln:s3cret@db.internal:5433/state","schema":"kiln"}"#;
        let mut record: Record = serde_json::from_str(previous).unwrap();
        record.remove("type");
        assert_eq!(spec.record(), record);
        let back = PgFactory.read_record(&record).unwrap();
        assert_eq!(back.identity(), spec.identity());
        let id = spec.identity().to_string();
        assert!(!id.contains("s3cret") && id.contains("db.internal") && id.contains("5433"), "{id}");
        assert!(!format!("{back:?}").contains("s3cret"), "{back:?}");
    }

    #[test]
    fn bad_settings_name_the_attribute() {
        let bad_schema =
            Settings::from([("conn_str".to_string(), "postgres://h/db".to_string()), ("schema".to_string(), "a-b".to_string())]);
        let err = PgFactory.parse(&bad_schema, Path::new("/")).unwrap_err();
        let d = err.iter().next().unwrap();
        assert!(d.summary.contains("schema `a-b` is not a valid name") && d.attribute.as_deref() == Some("schema"), "{d:?}");
        let bad_conn = Settings::from([("conn_str".to_string(), "postgres://h:notaport/db".to_string())]);
        let err = PgFactory.parse(&bad_conn, Path::new("/")).unwrap_err();
        assert_eq!(err.iter().next().unwrap().attribute.as_deref(), Some("conn_str"));
    }
}
