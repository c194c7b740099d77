//! kiln-provider-builtin
