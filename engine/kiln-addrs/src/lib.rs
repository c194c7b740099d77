//! kiln-addrs
