//! `kiln import ADDRESS ID`: an existing object brought under kiln's management, inside an
//! [`Operation`](crate::operation): the provider is configured from the configuration's
//! `provider` block (with the root variables, in the command's [`Providers`]), asked for the
//! object, and the object recorded in state with its schema's sensitive marks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_addrs::InstanceAddr;
use kiln_config::Config;
use kiln_core::{ProviderRegistry, Providers, ProvidersRequest};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_schema::KindSchema;
use kiln_state::{ResourceState, State};
use kiln_value::Value;

use crate::operation::Session;

/// What to import, and what the provider is configured from.
pub struct Import<'a> {
    pub config: &'a Config,
    pub registry: &'a ProviderRegistry,
    /// The command's configured providers.
    pub providers: &'a Providers,
    /// Root variable values given by the user (files, flags, environment).
    pub variables: BTreeMap<String, Value>,
    pub workspace: String,
    pub cwd: PathBuf,
    pub address: &'a InstanceAddr,
    /// The object's ID, as its provider names it.
    pub id: &'a str,
}

/// Imports `req.address` in the session's state and commits it; the state as stored.
pub async fn import(session: &Session, req: Import<'_>) -> Result<State, Diagnostics> {
    let a = req.address;
    let kind = a.resource.kind.as_str();
    let state = session.read_state().await?;
    if state.resources.contains_key(a) {
        return Err(Diagnostic::error("E-IMPORT-MANAGED", format!("`{a}` is already managed by kiln"))
            .address(a)
            .hint(format!("`kiln state rm {a}` first to import it again"))
            .into());
    }
    let key = provider_key(req.config, req.registry, a).map_err(|d| Diagnostics::from(d.or_address(a)))?;
    let providers_req = ProvidersRequest {
        config: req.config,
        state: &state,
        registry: req.registry,
        providers: req.providers,
        variables: req.variables,
        workspace: req.workspace,
        cwd: req.cwd,
    };
    let provider = kiln_core::configure_provider(providers_req, &key).await?;
    let name = a.to_string();
    let found = provider.import(kiln_provider::ImportRequest { address: &name, kind, id: req.id }).await;
    if found.diagnostics.has_errors() {
        return Err(found.diagnostics.with_address(&name));
    }
    let Some(attributes) = found.state else {
        return Err(Diagnostic::error("E-IMPORT-NOT-FOUND", format!("no `{kind}` with ID `{}` exists", req.id))
            .address(a)
            .hint(format!("check the ID: the `{key}` provider found no such object"))
            .into());
    };
    let provider_name = key.split('.').next().unwrap_or(&key);
    let sensitive = req
        .registry
        .schema(provider_name)
        .and_then(|s| s.kinds.get(kind))
        .map(|k| sensitive_attributes(&attributes, k))
        .unwrap_or_default();
    let mut state = state;
    state.resources.insert(
        a.clone(),
        ResourceState {
            provider: key,
            kind: kind.to_string(),
            attributes,
            sensitive,
            dependencies: vec![],
            tainted: false,
            create_before_destroy: false,
            billing: None,
            released: None,
        },
    );
    Ok(session.commit(state).await?)
}

/// The provider that manages `a`: the one its resource block names with `provider =` (in the
/// root module), else the one resolution picks for its kind.
fn provider_key(config: &Config, registry: &ProviderRegistry, a: &InstanceAddr) -> Result<String, Diagnostic> {
    let explicit = a
        .resource
        .module
        .is_empty()
        .then(|| config.root.module.resource(kiln_addrs::Mode::Managed, &a.resource.kind, &a.resource.name))
        .flatten()
        .and_then(|r| r.provider.as_ref())
        .map(|p| p.key());
    match explicit {
        Some(k) => Ok(k),
        None => registry.resolve(&a.resource.kind, false).map(|r| r.key().to_string()),
    }
}

/// The top-level attributes of `value` that hold a secret: those its kind's schema marks
/// sensitive, and those whose value carries a sensitive mark. Sorted.
pub fn sensitive_attributes(value: &Value, schema: &KindSchema) -> Vec<String> {
    let Some(m) = value.as_map() else { return Vec::new() };
    m.iter()
        .filter(|(k, v)| v.contains_sensitive() || schema.body.attributes.get(*k).is_some_and(|a| a.sensitive))
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use kiln_schema::{Attribute, Body};
    use kiln_value::Type;

    use super::*;

    #[test]
    fn the_schemas_and_the_values_sensitive_marks_are_recorded() {
        let body = Body::new()
            .attr("token", Attribute::computed(Type::String, "a secret").sensitive())
            .attr("name", Attribute::computed(Type::String, "a name"));
        let schema = KindSchema::new("test", body);
        let v = Value::Map(
            [
                ("name".to_string(), Value::from("n")),
                ("token".to_string(), Value::from("t")),
                ("env".to_string(), Value::Map([("K".to_string(), Value::from("v").sensitive())].into())),
            ]
            .into(),
        );
        assert_eq!(sensitive_attributes(&v, &schema), ["env", "token"]);
        assert!(sensitive_attributes(&Value::Null, &schema).is_empty());
    }
}
