//! Which provider serves a resource, and the configured provider instances of one run.
//!
//! Resolution ([`Resolution`]), from the kinds each provider declares in its schema: an explicit
//! `provider = NAME[.ALIAS]`; else the one provider declaring the kind as its own (`aws_vpc` →
//! `aws`, `record` → `kiln`, `fleet` → `onprem`); else, for a portable kind ([`PORTABLE_KINDS`]),
//! `local`, the embedded default. A kind no provider declares is an error naming the providers
//! that have similar kinds, never a silent fallback.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use kiln_config::Body;
use kiln_diag::{edit_distance, Diagnostic, Diagnostics, Span};
use kiln_provider::{Provider, ProviderFactory, PORTABLE_KINDS};
use kiln_schema::ProviderSchema;
use kiln_value::Secrets;
use tokio::sync::OnceCell;

/// The provider a block without `provider =` defaults to for the portable kinds.
pub const DEFAULT_PROVIDER: &str = "local";

/// How the provider of a block without `provider =` was chosen (a block with one uses the
/// provider it names, `NAME` or `NAME.ALIAS`, as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The one provider that declares the kind (`aws_vpc` → `aws`).
    Declared(String),
    /// A portable kind without `provider =`: [`DEFAULT_PROVIDER`].
    Default(String),
}

impl Resolution {
    /// The provider's key.
    pub fn key(&self) -> &str {
        match self {
            Resolution::Declared(k) | Resolution::Default(k) => k,
        }
    }
}

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

    /// Providers declaring `kind` as a resource kind (`data`: as a data source), by name.
    pub fn declaring(&self, kind: &str, data: bool) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .schemas
            .iter()
            .filter(|(_, s)| if data { s.data_kinds.contains_key(kind) } else { s.kinds.contains_key(kind) })
            .map(|(n, _)| n.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// The provider of a block of `kind` (`data`: a data block) that has no `provider =`. The
    /// error has no location: the caller puts it at the block.
    // A block that opts into placement will be resolved here by the placement optimizer, from
    // the providers declaring its (portable) kind, before the portable default applies.
    pub fn resolve(&self, kind: &str, data: bool) -> Result<Resolution, Diagnostic> {
        if !data && PORTABLE_KINDS.contains(&kind) {
            return Ok(Resolution::Default(DEFAULT_PROVIDER.to_string()));
        }
        match self.declaring(kind, data).as_slice() {
            [one] => Ok(Resolution::Declared(one.to_string())),
            [] => Err(self.unknown_kind(kind, data)),
            many => Err(Diagnostic::error(
                "E-PROVIDER-AMBIGUOUS",
                format!("kind `{kind}` is served by more than one provider: {}", many.join(", ")),
            )
            .hint(format!("say which with `provider = NAME`, such as `provider = {}`", many[0]))),
        }
    }

    /// "no provider serves kind X", with the kinds of the providers that are close to it.
    fn unknown_kind(&self, kind: &str, data: bool) -> Diagnostic {
        let what = if data { "data source" } else { "kind" };
        let mut similar: Vec<(usize, String)> = Vec::new();
        for (name, schema) in &self.schemas {
            let kinds = if data { &schema.data_kinds } else { &schema.kinds };
            for k in kinds.keys() {
                let d = edit_distance(kind, k);
                // `aws_bucket` is `bucket` with `provider = aws`.
                let prefixed = kind.strip_suffix(k.as_str()).and_then(|p| p.strip_suffix('_')).filter(|p| !p.is_empty());
                if let Some(p) = prefixed.filter(|p| self.factories.contains_key(*p)) {
                    similar.push((0, format!("`{k}` with `provider = {p}`")));
                } else if d <= 2.max(kind.len() / 3) {
                    similar.push((d, format!("`{k}` (provider `{name}`)")));
                }
            }
        }
        similar.sort();
        similar.dedup_by(|a, b| a.1 == b.1);
        let hint = if similar.is_empty() {
            let mut all: Vec<String> = Vec::new();
            for (name, schema) in &self.schemas {
                let kinds = if data { &schema.data_kinds } else { &schema.kinds };
                if !kinds.is_empty() {
                    all.push(format!("{name}: {}", kinds.keys().cloned().collect::<Vec<_>>().join(", ")));
                }
            }
            format!("the {what}s of the providers built into this kiln are {}", all.join("; "))
        } else {
            let names: Vec<String> = similar.into_iter().take(3).map(|(_, s)| s).collect();
            format!("did you mean {}?", names.join(" or "))
        };
        Diagnostic::error("E-KIND-UNKNOWN", format!("no provider built into this kiln has a {what} `{kind}`")).hint(hint)
    }
}

/// Points a provider's complaint about its configuration at the attribute it names
/// ([`Diagnostic::attribute`]: a path such as `root`, `login.host` or `host[1].proxy_jump`, where
/// `[N]` is the N-th block of that name) inside the `provider` block `body` declared at `block`:
/// the attribute's value; for a setting left out, the innermost block of the path that is
/// written; else the provider block. As Terraform's contextual diagnostics: the provider says
/// which attribute, the engine says where.
pub(crate) fn locate_config(d: Diagnostic, body: &Body, block: &Span) -> Diagnostic {
    let at = d.attribute.as_deref().and_then(|path| attribute_span(body, path)).unwrap_or_else(|| block.clone());
    d.or_at(Some(at))
}

/// Where the attribute `path` (`root`, `login.host`, `host[1].proxy_jump`: `[N]` is the N-th
/// block of that name) is written in `body`: its value; for one left out, the innermost block of
/// the path that is written; `None` when not even the first block is.
pub(crate) fn attribute_span(body: &Body, path: &str) -> Option<Span> {
    let mut body = body;
    let mut at = None;
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.strip_suffix(']').and_then(|n| n.parse::<usize>().ok())),
            None => (segment, None),
        };
        if let Some(a) = body.attr(name).filter(|_| index.is_none()) {
            return Some(a.expr.span().unwrap_or(a.name_span.clone()));
        }
        let mut blocks = body.blocks.iter().filter(|b| b.ident == name);
        let Some(b) = (match index {
            Some(n) => blocks.nth(n),
            None => blocks.next(),
        }) else {
            break;
        };
        at = Some(b.span.clone());
        body = &b.body;
    }
    at
}

/// The configured provider instances of one command, keyed `name` or `name.alias`. The caller
/// creates one per command ([`Providers::new`]) and passes it by reference to every request
/// (plan, apply, validate, configuring for logs/jobs/`--wait`, import); the core configures each
/// key at most once in it, so refresh, plan, apply and polling share one instance (one SSH pool
/// per host, one API throttle). Each instance keeps the secrets of its configuration beside it,
/// to redact what the provider says and what it copies into objects.
#[derive(Default)]
pub struct Providers {
    slots: Mutex<HashMap<String, Arc<OnceCell<Configured>>>>,
}

/// A configured provider and the secrets of the configuration it was given.
#[derive(Clone)]
pub(crate) struct Configured {
    pub instance: Arc<dyn Provider>,
    pub secrets: Secrets,
}

impl Providers {
    pub fn new() -> Self {
        Self::default()
    }

    /// The configured instance of `key`, if it has been configured.
    pub fn get(&self, key: &str) -> Option<Arc<dyn Provider>> {
        self.configured(key).map(|c| c.instance)
    }

    /// The keys configured so far, sorted.
    pub fn keys(&self) -> Vec<String> {
        let slots = self.slots.lock().expect("providers lock");
        let mut keys: Vec<String> = slots.iter().filter(|(_, c)| c.initialized()).map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys
    }

    pub(crate) fn configured(&self, key: &str) -> Option<Configured> {
        let cell = self.slots.lock().expect("providers lock").get(key).cloned()?;
        cell.get().cloned()
    }

    /// The instance of `key`, configured by `configure` unless it already is (a concurrent
    /// caller waits for the first). A failure is not kept: the next caller tries again.
    pub(crate) async fn get_or_configure<F, Fut>(&self, key: &str, configure: F) -> Result<Configured, Diagnostics>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Configured, Diagnostics>>,
    {
        // The std lock is released before any await.
        let cell = self.slots.lock().expect("providers lock").entry(key.to_string()).or_default().clone();
        cell.get_or_try_init(configure).await.cloned()
    }
}

/// `aws.west` → `aws`.
pub(crate) fn provider_name(key: &str) -> &str {
    key.split('.').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use kiln_provider::{async_trait, ConfigureRequest};
    use kiln_schema::{Body, KindSchema};

    use super::*;

    /// A provider that only declares kinds.
    struct Declares(&'static str, &'static [&'static str], &'static [&'static str]);

    #[async_trait]
    impl ProviderFactory for Declares {
        fn name(&self) -> &'static str {
            self.0
        }
        fn schema(&self) -> ProviderSchema {
            let kinds = |ks: &[&str]| ks.iter().map(|k| (k.to_string(), KindSchema::new("k", Body::new()))).collect();
            ProviderSchema { config: Body::new(), kinds: kinds(self.1), data_kinds: kinds(self.2) }
        }
        async fn configure(&self, _req: ConfigureRequest) -> Result<Arc<dyn Provider>, Diagnostics> {
            Err(Diagnostics::new())
        }
    }

    fn registry() -> ProviderRegistry {
        let mut r = ProviderRegistry::new();
        r.register(Arc::new(Declares("kiln", &["record"], &[])));
        r.register(Arc::new(Declares("local", &["bucket", "cluster", "job", "spot_pool"], &["machine"])));
        r.register(Arc::new(Declares("aws", &["bucket", "cluster", "job", "spot_pool", "aws_vpc", "aws_subnet"], &[])));
        r.register(Arc::new(Declares("onprem", &["bucket", "cluster", "fleet", "job"], &["inventory"])));
        // A provider whose name has an underscore: the old "text before the first underscore"
        // rule sent its kinds to `local`.
        r.register(Arc::new(Declares("lambda_cloud", &["lambda_cloud_instance", "bucket"], &[])));
        r
    }

    fn resolved(kind: &str, data: bool) -> Resolution {
        registry().resolve(kind, data).unwrap_or_else(|d| panic!("{kind}: {d:?}"))
    }

    fn refused(kind: &str, data: bool) -> Diagnostic {
        registry().resolve(kind, data).expect_err(kind)
    }

    #[test]
    fn a_kind_one_provider_declares_is_that_providers() {
        assert_eq!(resolved("aws_vpc", false), Resolution::Declared("aws".into()));
        assert_eq!(resolved("record", false), Resolution::Declared("kiln".into()));
        assert_eq!(resolved("fleet", false), Resolution::Declared("onprem".into()));
        assert_eq!(resolved("lambda_cloud_instance", false), Resolution::Declared("lambda_cloud".into()));
    }

    #[test]
    fn data_sources_resolve_from_the_declared_data_kinds() {
        assert_eq!(resolved("machine", true), Resolution::Declared("local".into()));
        assert_eq!(resolved("inventory", true), Resolution::Declared("onprem".into()));
        // `fleet` is a resource kind, not a data source.
        assert_eq!(refused("fleet", true).code, "E-KIND-UNKNOWN");
    }

    #[test]
    fn portable_kinds_default_to_local_whoever_else_declares_them() {
        for k in PORTABLE_KINDS {
            assert_eq!(resolved(k, false), Resolution::Default("local".into()), "{k}");
        }
    }

    #[test]
    fn a_kind_nobody_declares_is_an_error_not_local() {
        let d = refused("foo_bar", false);
        assert_eq!(d.code, "E-KIND-UNKNOWN");
        assert!(d.summary.contains("`foo_bar`"), "{}", d.summary);
        let hint = d.hint.unwrap_or_default();
        assert!(hint.contains("aws: ") && hint.contains("aws_vpc"), "lists what there is: {hint}");
    }

    #[test]
    fn a_misspelt_kind_gets_a_did_you_mean_naming_the_provider() {
        let hint = refused("aws_vcp", false).hint.unwrap_or_default();
        assert!(hint.starts_with("did you mean `aws_vpc` (provider `aws`)"), "{hint}");
        let hint = refused("flet", false).hint.unwrap_or_default();
        assert!(hint.contains("`fleet` (provider `onprem`)"), "{hint}");
        let hint = refused("inventroy", true).hint.unwrap_or_default();
        assert!(hint.contains("`inventory` (provider `onprem`)"), "{hint}");
    }

    #[test]
    fn a_provider_prefixed_portable_kind_points_at_the_provider_argument() {
        let hint = refused("aws_bucket", false).hint.unwrap_or_default();
        assert!(hint.starts_with("did you mean `bucket` with `provider = aws`"), "{hint}");
    }

    #[test]
    fn a_kind_two_providers_declare_as_their_own_must_be_chosen() {
        let mut r = registry();
        r.register(Arc::new(Declares("other", &["fleet"], &[])));
        let d = r.resolve("fleet", false).expect_err("ambiguous");
        assert_eq!(d.code, "E-PROVIDER-AMBIGUOUS");
        assert!(d.summary.contains("onprem, other"), "{}", d.summary);
    }
}
