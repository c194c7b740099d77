//! kiln-provider
