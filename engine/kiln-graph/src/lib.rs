//! A dependency graph over any node type, on petgraph: edges point from a dependency to its
//! dependents. It finds cycles (every node in each), orders nodes topologically, and tracks
//! readiness for a concurrent walk (in-degree counting), which apply uses to run as many
//! operations at once as dependencies allow.

use std::collections::HashMap;
use std::hash::Hash;

use petgraph::graph::DiGraph;
pub use petgraph::graph::NodeIndex;
use petgraph::Direction;

#[derive(Debug, Clone)]
pub struct DepGraph<N: Clone + Eq + Hash> {
    graph: DiGraph<N, ()>,
    index: HashMap<N, NodeIndex>,
    /// Edges already present: petgraph's `find_edge` walks a node's edge list, which is slow for
    /// a node with thousands of dependents (a provider).
    edges: std::collections::HashSet<(NodeIndex, NodeIndex)>,
}

impl<N: Clone + Eq + Hash> Default for DepGraph<N> {
    fn default() -> Self {
        DepGraph { graph: DiGraph::new(), index: HashMap::new(), edges: Default::default() }
    }
}

impl<N: Clone + Eq + Hash> DepGraph<N> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, n: N) -> NodeIndex {
        if let Some(i) = self.index.get(&n) {
            return *i;
        }
        let i = self.graph.add_node(n.clone());
        self.index.insert(n, i);
        i
    }

    pub fn contains(&self, n: &N) -> bool {
        self.index.contains_key(n)
    }

    /// Records that `dependent` needs `dependency` first. Both are added if missing.
    pub fn depend(&mut self, dependent: &N, dependency: &N) {
        let a = self.add(dependency.clone());
        let b = self.add(dependent.clone());
        if self.edges.insert((a, b)) {
            self.graph.add_edge(a, b, ());
        }
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    pub fn nodes(&self) -> impl Iterator<Item = &N> {
        self.graph.node_weights()
    }

    /// Direct dependencies of `n`.
    pub fn dependencies(&self, n: &N) -> Vec<&N> {
        self.neighbors(n, Direction::Incoming)
    }

    /// Direct dependents of `n`.
    pub fn dependents(&self, n: &N) -> Vec<&N> {
        self.neighbors(n, Direction::Outgoing)
    }

    fn neighbors(&self, n: &N, dir: Direction) -> Vec<&N> {
        match self.index.get(n) {
            Some(i) => self.graph.neighbors_directed(*i, dir).map(|j| &self.graph[j]).collect(),
            None => Vec::new(),
        }
    }

    /// Every cycle: each is the list of nodes of one strongly connected component with more
    /// than one node (in the order they were added), or a node that depends on itself.
    pub fn cycles(&self) -> Vec<Vec<N>> {
        self.components()
            .into_iter()
            .filter(|scc| scc.len() > 1 || self.edges.contains(&(scc[0], scc[0])))
            .map(|scc| scc.into_iter().map(|i| self.graph[i].clone()).collect())
            .collect()
    }

    /// Strongly connected components by Tarjan's algorithm with an explicit stack: a chain of
    /// 100,000 nodes must not exhaust the thread's stack (petgraph's `tarjan_scc` recurses).
    fn components(&self) -> Vec<Vec<NodeIndex>> {
        let n = self.graph.node_count();
        let mut t =
            Tarjan { index: vec![UNSEEN; n], low: vec![0; n], on_stack: vec![false; n], stack: Vec::new(), next: 0, frames: Vec::new() };
        let mut out = Vec::new();
        for root in self.graph.node_indices() {
            if t.index[root.index()] != UNSEEN {
                continue;
            }
            t.enter(&self.graph, root);
            while let Some((v, succs)) = t.frames.last_mut() {
                let v = *v;
                if let Some(w) = succs.pop() {
                    if t.index[w.index()] == UNSEEN {
                        t.enter(&self.graph, w);
                    } else if t.on_stack[w.index()] {
                        t.low[v.index()] = t.low[v.index()].min(t.index[w.index()]);
                    }
                    continue;
                }
                t.frames.pop();
                if let Some((parent, _)) = t.frames.last() {
                    let p = parent.index();
                    t.low[p] = t.low[p].min(t.low[v.index()]);
                }
                if t.low[v.index()] == t.index[v.index()] {
                    let mut scc = Vec::new();
                    while let Some(w) = t.stack.pop() {
                        t.on_stack[w.index()] = false;
                        scc.push(w);
                        if w == v {
                            break;
                        }
                    }
                    scc.sort();
                    out.push(scc);
                }
            }
        }
        out
    }

    /// Nodes in dependency order (dependencies first); `None` when there is a cycle. Among nodes
    /// that are ready at the same time, insertion order is kept, so output is deterministic.
    pub fn topo_order(&self) -> Option<Vec<N>> {
        let mut walk = self.walk();
        let mut out = Vec::with_capacity(self.len());
        let mut ready = walk.take_ready();
        while let Some(n) = ready.pop() {
            out.push(self.graph[n].clone());
            let mut next = walk.complete(n);
            next.reverse();
            ready.extend(next);
            if ready.is_empty() {
                ready = walk.take_ready();
                ready.reverse();
            }
        }
        (out.len() == self.len()).then_some(out)
    }

    /// Starts a walk: nodes become ready when all their dependencies are complete.
    pub fn walk(&self) -> Walk<'_, N> {
        let pending: Vec<usize> =
            self.graph.node_indices().map(|i| self.graph.neighbors_directed(i, Direction::Incoming).count()).collect();
        let initial: Vec<NodeIndex> = self.graph.node_indices().filter(|i| pending[i.index()] == 0).collect();
        Walk { g: self, pending, initial }
    }

    pub fn node(&self, i: NodeIndex) -> &N {
        &self.graph[i]
    }

    pub fn index_of(&self, n: &N) -> Option<NodeIndex> {
        self.index.get(n).copied()
    }

    /// The graph in Graphviz DOT, with `label` naming each node.
    pub fn to_dot(&self, label: impl Fn(&N) -> String) -> String {
        let mut out = String::from("digraph kiln {\n  rankdir = \"RL\";\n  node [shape = rect, fontname = \"sans-serif\"];\n");
        let label = |n: &N| dot_escape(&label(n));
        let mut names: Vec<(NodeIndex, String)> = self.graph.node_indices().map(|i| (i, label(&self.graph[i]))).collect();
        names.sort_by(|a, b| a.1.cmp(&b.1));
        for (_, n) in &names {
            out.push_str(&format!("  \"{n}\";\n"));
        }
        let mut edges: Vec<(String, String)> = self
            .graph
            .edge_indices()
            .filter_map(|e| self.graph.edge_endpoints(e))
            .map(|(a, b)| (label(&self.graph[b]), label(&self.graph[a])))
            .collect();
        edges.sort();
        for (from, to) in edges {
            out.push_str(&format!("  \"{from}\" -> \"{to}\";\n"));
        }
        out.push_str("}\n");
        out
    }
}

const UNSEEN: usize = usize::MAX;

/// The state of an iterative Tarjan walk.
struct Tarjan {
    index: Vec<usize>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<NodeIndex>,
    next: usize,
    /// The walk's call stack: each node with the successors still to look at.
    frames: Vec<(NodeIndex, Vec<NodeIndex>)>,
}

impl Tarjan {
    fn enter<N>(&mut self, g: &DiGraph<N, ()>, v: NodeIndex) {
        self.index[v.index()] = self.next;
        self.low[v.index()] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v.index()] = true;
        self.frames.push((v, g.neighbors_directed(v, Direction::Outgoing).collect()));
    }
}

/// Escapes a label for a double-quoted DOT identifier.
fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// In-degree bookkeeping for a walk over a [`DepGraph`].
pub struct Walk<'g, N: Clone + Eq + Hash> {
    g: &'g DepGraph<N>,
    pending: Vec<usize>,
    initial: Vec<NodeIndex>,
}

impl<N: Clone + Eq + Hash> Walk<'_, N> {
    /// Nodes with no dependencies (only once).
    pub fn take_ready(&mut self) -> Vec<NodeIndex> {
        std::mem::take(&mut self.initial)
    }

    /// Marks `n` complete and returns the dependents that became ready.
    pub fn complete(&mut self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut ready = Vec::new();
        for d in self.g.graph.neighbors_directed(n, Direction::Outgoing) {
            let p = &mut self.pending[d.index()];
            *p -= 1;
            if *p == 0 {
                ready.push(d);
            }
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_finds_cycles() {
        let mut g = DepGraph::new();
        g.depend(&"b", &"a");
        g.depend(&"c", &"b");
        g.add("d");
        let order = g.topo_order().unwrap();
        let pos = |x| order.iter().position(|n| *n == x).unwrap();
        assert!(pos("a") < pos("b") && pos("b") < pos("c"));
        assert!(g.cycles().is_empty());
        g.depend(&"a", &"c");
        assert!(g.topo_order().is_none());
        let cycles = g.cycles();
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), 3);
    }

    #[test]
    fn dot_escapes_quotes() {
        let mut g = DepGraph::new();
        g.depend(&"record.a", &"provider[\"kiln\"]");
        let dot = g.to_dot(ToString::to_string);
        assert!(dot.contains(r#""record.a" -> "provider[\"kiln\"]";"#), "{dot}");
    }

    #[test]
    fn long_chains_and_cycles_need_no_deep_stack() {
        let n = 200_000;
        let mut g = DepGraph::new();
        for i in 1..n {
            g.depend(&i, &(i - 1));
        }
        assert!(g.cycles().is_empty());
        assert_eq!(g.topo_order().unwrap().len(), n);
        g.depend(&0, &(n - 1));
        let cycles = g.cycles();
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), n);
    }

    #[test]
    fn separate_cycles_are_reported_separately() {
        let mut g = DepGraph::new();
        g.depend(&"a", &"b");
        g.depend(&"b", &"a");
        g.depend(&"c", &"b");
        g.depend(&"d", &"c");
        g.depend(&"c", &"d");
        let mut cycles = g.cycles();
        cycles.sort();
        assert_eq!(cycles, vec![vec!["b", "a"], vec!["c", "d"]]);
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let mut g = DepGraph::new();
        g.depend(&"a", &"a");
        assert_eq!(g.cycles(), vec![vec!["a"]]);
    }
}
