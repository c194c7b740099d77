//! kiln-schema
