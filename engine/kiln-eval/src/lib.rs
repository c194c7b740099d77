//! kiln's expression evaluator over hcl-edit's syntax tree: references, operators, templates,
//! `for` expressions, splats, function calls, with unknown values and sensitivity marks.

pub mod funcs;
