//! kiln's engine core. It takes values and returns values: configuration, prior state, variable
//! values and configured providers in; a plan, or a new state, with diagnostics, out. It does no
//! file IO, never prints, and knows nothing of locks or backends: state changes leave through a
//! [`StateSink`], progress through a [`Hook`].
//!
//! - `graph.rs` builds the dependency graph of variables, locals, outputs, providers and
//!   resources from references and `depends_on`.
//! - `scope.rs` answers the evaluator's lookups from values computed so far.
//! - `instance.rs` expands `count`/`for_each` and evaluates a resource body against its schema.
//! - `context.rs` is the evaluation context every walk shares: values, scope, provider blocks
//!   evaluated and configured once per command in the caller's [`Providers`], diagnostics.
//! - The drivers over it: `plan.rs` (refresh, pending creates, instance planning, orphans),
//!   `validate.rs` (providers check configurations, nothing is planned or read),
//!   `walk_state.rs` (providers configured over state values, for logs, jobs, import), and
//!   `apply/` (the apply graph built from the plan's changes, run concurrently in dependency
//!   order).
//! - `console.rs`: `kiln console`'s evaluation of expressions over the configuration and state.
//! - `policy.rs`: the root module's `policy` blocks checked against the finished plan (its
//!   changes, costs and placements), at the end of `plan`.

mod apply;
mod console;
mod context;
mod graph;
mod hooks;
mod instance;
mod placement;
mod plan;
mod policy;
mod providers;
mod redact;
mod references;
mod release;
mod scope;
mod validate;
mod walk_state;

pub use apply::{apply, ApplyOutcome, ApplyRequest, Cancel, StateSink};
pub use console::{Console, ConsoleRequest};
pub use graph::{build_graph, Node};
pub use hooks::{Hook, NoopHook, Subject};
pub use plan::{config_digest, plan, PlacementOptions, PlanRequest};
pub use policy::{evaluate_policies, policy_diagnostics, PolicyInputs};
pub use providers::{ProviderRegistry, Providers};

/// What a restart's `recovery.strategy` leaves ([`PlacementOptions::avoid`]).
pub use kiln_place::Avoid;
/// The kinds priced by the hour (cost lines, placement): `cluster` and `spot_pool`.
pub use placement::KINDS as PRICED_KINDS;

/// Whether provider configuration `key` is this machine's (the embedded default, `local`),
/// which costs nothing by the hour.
pub fn is_this_machine(key: &str) -> bool {
    providers::provider_name(key) == providers::DEFAULT_PROVIDER
}
pub use validate::{validate, ValidateRequest};
pub use walk_state::{configure_provider, configure_providers, ProvidersRequest};
