//! kiln's engine core. It takes values and returns values: configuration, prior state, variable
//! values and configured providers in; a plan, or a new state, with diagnostics, out. It does no
//! file IO, never prints, and knows nothing of locks or backends: state changes leave through a
//! [`StateSink`], progress through a [`Hook`].
//!
//! - `graph.rs` builds the dependency graph of variables, locals, outputs, providers and
//!   resources from references and `depends_on`.
//! - `scope.rs` answers the evaluator's lookups from values computed so far.
//! - `instance.rs` expands `count`/`for_each` and evaluates a resource body against its schema.
//! - `plan.rs` walks the graph, refreshes in batches, asks providers to plan, decides actions.
//! - `apply.rs` runs a plan concurrently in dependency order.

mod apply;
mod graph;
mod hooks;
mod instance;
mod plan;
mod providers;
mod redact;
mod scope;

pub use apply::{apply, ApplyOutcome, ApplyRequest, Cancel, StateSink};
pub use graph::{build_graph, Node};
pub use hooks::{Hook, NoopHook, Subject};
pub use plan::{config_digest, configure_provider, configure_providers, plan, validate, PlanRequest, ProvidersRequest, ValidateRequest};
pub use providers::{ProviderRegistry, Providers};
