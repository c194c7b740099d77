//! Configuration loading: reads the `*.kiln.hcl` files of a directory (and of the local modules
//! it calls) with hcl-edit, which keeps byte spans, into a typed model of variables, locals,
//! outputs, providers, resources, data sources, module calls, and the root module's policies and
//! catalog. Expressions stay unevaluated ([`Expr`]); kiln-eval evaluates them later. All problems
//! found are reported, not only the first, each with file, span and a hint.

mod catalog;
mod load;
mod model;
mod policy;
mod types;
mod variable;

pub use load::{load, load_module_dir, parse_file, read_config_file, suggest};
pub use model::*;
pub use types::parse_type;
