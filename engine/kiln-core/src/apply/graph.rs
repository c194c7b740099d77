//! The apply graph, built from the plan's changes (as Terraform's apply graph builder): the
//! deletes (deleted objects, non-create_before_destroy replacements' old objects, deposed
//! objects the plan lists), ordered dependents first; and the walk of creates and updates: a
//! node per changed resource plus only the nodes they and the root outputs need (variables,
//! locals, outputs, providers, and the unchanged resources whose values come from state), in
//! the configuration's dependency order. Nothing else of the configuration is evaluated.

use std::collections::{BTreeSet, HashMap, HashSet};

use kiln_addrs::{InstanceAddr, Mode as AddrMode, ResourceAddr};
use kiln_graph::DepGraph;
use kiln_plan::{Action, Mode, Plan, Reason};
use kiln_state::{DeposedObject, Mutation, State};
use kiln_value::Value;

use crate::graph::{Graph, Node};

pub(crate) struct ApplyGraph {
    /// Phase 1, before any create: what the plan deletes.
    pub deletes: Vec<DeleteItem>,
    /// Phase 2: creates, updates and the creates of replacements, with what they need.
    pub walk: DepGraph<Node>,
    /// Resources with an instance to create, update or replace.
    pub changed: HashSet<ResourceAddr>,
}

impl ApplyGraph {
    /// The graph of `plan`'s changes over the configuration's `graph`, with the objects to
    /// delete taken from `state` (their recorded dependencies order them).
    pub fn build(plan: &Plan, graph: &Graph, state: &State) -> Self {
        // What refresh found gone: only a release is planned for such an object (nothing to delete).
        let gone: HashSet<&InstanceAddr> = plan.drift.iter().filter(|d| d.after.is_none()).map(|d| &d.address).collect();
        let mut deletes: Vec<DeleteItem> = plan
            .changes
            .iter()
            .filter(|c| c.deposed.is_none())
            .filter(|c| c.action == Action::Delete || (c.action == Action::Replace && !c.create_before_destroy))
            .map(|c| {
                let prior = state.resources.get(&c.address);
                DeleteItem {
                    address: c.address.clone(),
                    // Where the object is: a replacement placement moved to another provider
                    // deletes the old object on the provider state recorded.
                    provider: prior.map_or_else(|| c.provider.clone(), |r| r.provider.clone()),
                    kind: c.kind.clone(),
                    prior: prior
                        .map(|r| r.attributes.clone())
                        .or_else(|| c.before.clone().map(|b| b.unmark_deep().0))
                        .unwrap_or(Value::Null),
                    dependencies: prior.map(|r| r.dependencies.clone()).unwrap_or_else(|| c.dependencies.clone()),
                    // A released object (or one refresh found gone) no longer exists: it is only
                    // forgotten, or recorded as released.
                    exists: prior.is_none_or(|r| r.released.is_none()) && !gone.contains(&c.address),
                    done: match (&c.reason, prior) {
                        (Some(Reason::Released { by }), Some(r)) => match by.parse() {
                            Ok(by) => Mutation::Put { address: c.address.clone(), resource: r.released(&by, chrono::Utc::now()) },
                            Err(_) => Mutation::Remove { address: c.address.clone() },
                        },
                        _ => Mutation::Remove { address: c.address.clone() },
                    },
                    secrets: crate::redact::secrets_named(c.before.as_ref().or(prior.map(|r| &r.attributes)), &c.sensitive),
                }
            })
            .collect();
        let listed = |d: &&DeposedObject| plan.changes.iter().any(|c| c.deposed.as_ref() == Some(&d.key));
        deletes.extend(state.deposed.values().filter(listed).map(deposed_delete));

        let changed: HashSet<ResourceAddr> = if plan.mode == Mode::Destroy {
            HashSet::new()
        } else {
            plan.changes
                .iter()
                .filter(|c| c.deposed.is_none() && matches!(c.action, Action::Create | Action::Update | Action::Replace))
                .map(|c| c.address.resource.clone())
                .collect()
        };
        let mut walk = DepGraph::new();
        // A destroy walks nothing but deletes; a refresh-only apply nothing at all (its outputs
        // are the plan's, evaluated over what refresh found).
        if plan.mode == Mode::Normal {
            let mut seeds: Vec<Node> = changed.iter().cloned().map(Node::Resource).filter(|n| graph.deps.contains(n)).collect();
            seeds.extend(graph.deps.nodes().filter(|n| matches!(n, Node::Output { module, .. } if module.is_empty())).cloned());
            let needed = needed(graph, seeds, &changed);
            // Nodes in the configuration graph's order first, so independent ones start in the
            // same order as there; then the edges among them.
            for n in graph.deps.nodes().filter(|n| needed.contains(*n)) {
                walk.add(n.clone());
            }
            for n in graph.deps.nodes().filter(|n| needed.contains(*n)) {
                for d in graph.deps.dependencies(n).into_iter().filter(|d| needed.contains(*d)) {
                    walk.depend(n, d);
                }
            }
        }
        ApplyGraph { deletes, walk, changed }
    }

    /// The providers the deletes use, each once.
    pub fn delete_providers(&self) -> Vec<&str> {
        let keys: BTreeSet<&str> = self.deletes.iter().map(|d| d.provider.as_str()).collect();
        keys.into_iter().collect()
    }
}

/// One object to delete, and the state change once it is gone.
pub(crate) struct DeleteItem {
    pub address: InstanceAddr,
    pub provider: String,
    pub kind: String,
    pub prior: Value,
    /// What it depended on: it goes before those.
    pub dependencies: Vec<InstanceAddr>,
    /// Whether there is an object to delete (a released one is only removed from state).
    pub exists: bool,
    /// The state change once it is gone: removed, or kept as released.
    pub done: Mutation,
    /// What its provider's errors must not quote.
    pub secrets: kiln_value::Secrets,
}

pub(crate) fn deposed_delete(d: &DeposedObject) -> DeleteItem {
    DeleteItem {
        address: d.address.clone(),
        provider: d.resource.provider.clone(),
        kind: d.resource.kind.clone(),
        prior: d.resource.attributes.clone(),
        dependencies: d.resource.dependencies.clone(),
        exists: true,
        done: Mutation::RemoveDeposed { key: d.key.clone() },
        secrets: crate::redact::secrets_named(Some(&d.resource.attributes), &d.resource.sensitive),
    }
}

/// What `seeds` need, directly or not: everything they depend on, except the provider of a
/// managed resource the plan leaves alone (its value comes from state; only its kind's schema
/// is needed, not its provider).
fn needed(graph: &Graph, seeds: Vec<Node>, changed: &HashSet<ResourceAddr>) -> HashSet<Node> {
    let mut seen: HashSet<Node> = HashSet::new();
    let mut stack = seeds;
    while let Some(n) = stack.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        let unchanged = matches!(&n, Node::Resource(r) if r.mode == AddrMode::Managed && !changed.contains(r));
        stack.extend(graph.deps.dependencies(&n).into_iter().filter(|d| !(unchanged && matches!(d, Node::Provider(_)))).cloned());
    }
    seen
}

/// The order of deletes: an object goes after everything that depends on it.
pub(crate) struct DeleteOrder {
    /// How many deletes must finish before each one starts.
    pub waiting: Vec<usize>,
    /// The deletes each one's end lets go.
    pub unblocks: Vec<Vec<usize>>,
}

pub(crate) fn delete_order(deletes: &[DeleteItem]) -> DeleteOrder {
    let mut at: HashMap<&InstanceAddr, Vec<usize>> = HashMap::new();
    for (i, d) in deletes.iter().enumerate() {
        at.entry(&d.address).or_default().push(i);
    }
    let mut waiting = vec![0usize; deletes.len()];
    let mut unblocks: Vec<Vec<usize>> = vec![Vec::new(); deletes.len()];
    for (i, d) in deletes.iter().enumerate() {
        for dep in &d.dependencies {
            for &k in at.get(dep).into_iter().flatten() {
                waiting[k] += 1;
                unblocks[i].push(k);
            }
        }
    }
    DeleteOrder { waiting, unblocks }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kiln_plan::PlannedChange;
    use kiln_state::ResourceState;

    use super::*;
    use crate::providers::ProviderRegistry;

    /// `a` is updated and needs `u` (unchanged) through a local; `b` depends on `a` and is
    /// unchanged; `c` is unrelated; the output needs `o`. `r` is replaced, `d` replaced
    /// create_before_destroy, `n` created; `gone` and `gone2` (which `gone` depended on) are
    /// deleted, with a deposed object of `d` from an earlier apply.
    const CONFIG: &str = r#"
variable "v" {
  default = "x"
}
locals {
  l = "${var.v}-${record.u.id}"
}
resource "record" "u" {
  input = "u"
}
resource "record" "a" {
  input = local.l
}
resource "record" "b" {
  input = record.a.id
}
resource "record" "c" {
  input = "c"
}
resource "record" "o" {
  input = "o"
}
resource "record" "r" {
  input = "r"
}
resource "record" "d" {
  input = "d"
  lifecycle {
    create_before_destroy = true
  }
}
resource "record" "n" {
  input = "n"
}
output "out" {
  value = record.o.id
}
"#;

    fn change(addr: &str, action: Action, cbd: bool) -> PlannedChange {
        PlannedChange {
            address: addr.parse().unwrap(),
            provider: "kiln".into(),
            kind: "record".into(),
            action,
            before: None,
            after: None,
            reason: None,
            create_before_destroy: cbd,
            sensitive: Vec::new(),
            dependencies: Vec::new(),
            deposed: None,
            references: Default::default(),
            cost: None,
        }
    }

    fn in_state(deps: &[&str]) -> ResourceState {
        ResourceState {
            provider: "kiln".into(),
            kind: "record".into(),
            attributes: Value::Map(Default::default()),
            sensitive: Vec::new(),
            dependencies: deps.iter().map(|d| d.parse().unwrap()).collect(),
            tainted: false,
            create_before_destroy: false,
            billing: None,
            released: None,
        }
    }

    fn fixture(mode: Mode) -> (Graph, Plan, State) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.kiln.hcl"), CONFIG).unwrap();
        let (config, d) = kiln_config::load(dir.path());
        assert!(!d.has_errors(), "{d:?}");
        let mut registry = ProviderRegistry::new();
        registry.register(Arc::new(kiln_provider_builtin::BuiltinFactory));
        let (graph, d) = crate::graph::build_graph(&config.unwrap(), &registry);
        assert!(!d.has_errors(), "{d:?}");
        let mut state = State::new();
        for a in ["record.u", "record.a", "record.b", "record.c", "record.o", "record.r", "record.d", "record.gone2"] {
            state.resources.insert(a.parse().unwrap(), in_state(&[]));
        }
        state.resources.insert("record.gone".parse().unwrap(), in_state(&["record.gone2"]));
        state
            .deposed
            .insert("k1".into(), DeposedObject { key: "k1".into(), address: "record.d".parse().unwrap(), resource: in_state(&[]) });
        let mut changes = vec![
            change("record.a", Action::Update, false),
            change("record.b", Action::NoOp, false),
            change("record.r", Action::Replace, false),
            change("record.d", Action::Replace, true),
            change("record.n", Action::Create, false),
            change("record.gone", Action::Delete, false),
            change("record.gone2", Action::Delete, false),
        ];
        changes.push(PlannedChange { deposed: Some("k1".into()), ..change("record.d", Action::Delete, false) });
        if mode == Mode::Destroy {
            changes = ["record.u", "record.a", "record.gone"].iter().map(|a| change(a, Action::Delete, false)).collect();
        }
        let plan = Plan {
            format_version: kiln_plan::FORMAT_VERSION,
            kiln_version: "test".into(),
            mode,
            lineage: None,
            serial: None,
            changes,
            drift: Vec::new(),
            outputs: BTreeMap::new(),
            variables: BTreeMap::new(),
            config_digest: String::new(),
            targets: Vec::new(),
            excludes: Vec::new(),
            refresh: true,
            pending: Vec::new(),
            cost: None,
            placements: Vec::new(),
            policies: Vec::new(),
            git_commit: None,
        };
        (graph, plan, state)
    }

    fn resource(a: &str) -> Node {
        Node::Resource(a.parse::<InstanceAddr>().unwrap().resource)
    }

    #[test]
    fn the_walk_holds_the_changed_resources_and_only_what_they_and_the_outputs_need() {
        let (graph, plan, state) = fixture(Mode::Normal);
        let g = ApplyGraph::build(&plan, &graph, &state);
        for n in ["record.a", "record.r", "record.d", "record.n", "record.u", "record.o"] {
            assert!(g.walk.contains(&resource(n)), "{n} is in the walk");
        }
        for n in ["record.b", "record.c"] {
            assert!(!g.walk.contains(&resource(n)), "{n} is neither changed nor needed");
        }
        assert!(g.walk.contains(&Node::Var { module: Vec::new(), name: "v".into() }));
        assert!(g.walk.contains(&Node::Local { module: Vec::new(), name: "l".into() }));
        assert!(g.walk.contains(&Node::Output { module: Vec::new(), name: "out".into() }));
        assert!(g.walk.contains(&Node::Provider("kiln".into())));
        let changed: BTreeSet<String> = g.changed.iter().map(ToString::to_string).collect();
        assert_eq!(changed, BTreeSet::from(["record.a", "record.d", "record.n", "record.r"].map(String::from)));
        // The walk keeps the configuration's order: `a` after `u`, through the local.
        let order = g.walk.topo_order().unwrap();
        let at = |n: &Node| order.iter().position(|x| x == n).unwrap();
        assert!(at(&resource("record.u")) < at(&Node::Local { module: Vec::new(), name: "l".into() }));
        assert!(at(&Node::Local { module: Vec::new(), name: "l".into() }) < at(&resource("record.a")));
    }

    #[test]
    fn deletes_are_the_deleted_the_replaced_without_cbd_and_the_listed_deposed_dependents_first() {
        let (graph, plan, state) = fixture(Mode::Normal);
        let g = ApplyGraph::build(&plan, &graph, &state);
        let names: Vec<String> = g
            .deletes
            .iter()
            .map(|d| match &d.done {
                Mutation::RemoveDeposed { key } => format!("{} ({key})", d.address),
                _ => d.address.to_string(),
            })
            .collect();
        assert_eq!(names, ["record.r", "record.gone", "record.gone2", "record.d (k1)"]);
        assert_eq!(g.delete_providers(), ["kiln"]);
        let order = delete_order(&g.deletes);
        // `gone` depended on `gone2`: `gone2` waits for `gone`.
        assert_eq!(order.waiting, [0, 0, 1, 0]);
        assert_eq!(order.unblocks[1], [2]);
    }

    #[test]
    fn a_destroy_walks_nothing() {
        let (graph, plan, state) = fixture(Mode::Destroy);
        let g = ApplyGraph::build(&plan, &graph, &state);
        assert!(g.walk.is_empty());
        assert!(g.changed.is_empty());
        assert_eq!(g.deletes.len(), 3);
    }
}
