//! kiln-config
