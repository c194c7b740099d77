//! kiln-graph
