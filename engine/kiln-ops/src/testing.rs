//! Helpers for kiln-ops' unit tests.

use kiln_config::Config;
use kiln_state::{Mutation, ResourceState};

/// A state change that puts an empty `record.NAME`.
pub(crate) fn put(name: &str) -> Mutation {
    let resource = ResourceState {
        provider: "kiln".into(),
        kind: "record".into(),
        attributes: kiln_value::Value::Null,
        sensitive: vec![],
        dependencies: vec![],
        tainted: false,
        create_before_destroy: false,
        billing: None,
        released: None,
    };
    Mutation::Put { address: format!("record.{name}").parse().unwrap(), resource }
}

/// `text` as the only file of a configuration in a fresh directory, loaded without errors.
pub(crate) fn config(text: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.kiln.hcl"), text).unwrap();
    let (c, d) = kiln_config::load(dir.path());
    assert!(!d.has_errors(), "{d:?}");
    (dir, c.unwrap())
}
