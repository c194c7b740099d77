//! kiln-plan
