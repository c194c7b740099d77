//! kiln-state
