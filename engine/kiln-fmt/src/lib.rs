//! kiln-fmt
