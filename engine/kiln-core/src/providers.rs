//! Which provider serves a resource, and the configured provider instances of one run.
//! Resolution: an explicit `provider = NAME[.ALIAS]`, else the built-in `kiln` provider for kinds
//! it owns (`record`), else a provider whose name prefixes the kind (`aws_vpc` → `aws`), else
//! `local`, the embedded default.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kiln_provider::{Provider, ProviderFactory};
use kiln_schema::ProviderSchema;

/// Provider implementations kiln was built with, by name.
#[derive(Clone, Default)]
pub struct ProviderRegistry {
    factories: BTreeMap<String, Arc<dyn ProviderFactory>>,
    schemas: HashMap<String, Arc<ProviderSchema>>,
}

impl ProviderRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, f: Arc<dyn ProviderFactory>) {
        self.schemas.insert(f.name().to_string(), Arc::new(f.schema()));
        self.factories.insert(f.name().to_string(), f);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn ProviderFactory>> {
        self.factories.get(name)
    }

    pub fn schema(&self, name: &str) -> Option<&Arc<ProviderSchema>> {
        self.schemas.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// The provider name a resource of `kind` uses when it has no `provider` argument.
    pub fn default_for(&self, kind: &str) -> String {
        for (name, schema) in &self.schemas {
            if name == "kiln" && (schema.kinds.contains_key(kind) || schema.data_kinds.contains_key(kind)) {
                return name.clone();
            }
        }
        if let Some((prefix, _)) = kind.split_once('_') {
            if self.factories.contains_key(prefix) {
                return prefix.to_string();
            }
        }
        "local".to_string()
    }
}

/// Configured provider instances for one run, keyed `name` or `name.alias`.
#[derive(Clone, Default)]
pub struct Providers {
    pub instances: HashMap<String, Arc<dyn Provider>>,
}

/// `aws.west` → `aws`.
pub(crate) fn provider_name(key: &str) -> &str {
    key.split('.').next().unwrap_or(key)
}
