//! Terraform's built-in functions (to be written).
