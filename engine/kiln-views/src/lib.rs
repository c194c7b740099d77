//! Views of plans, state, outputs and diagnostics for people and machines (issue 12: being written).
