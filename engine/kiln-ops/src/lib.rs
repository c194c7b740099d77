//! kiln-ops
