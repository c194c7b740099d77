//! How the optimizer writes amounts of money in its reasons and errors: the plan's own format
//! (`kiln_plan::cost::usd`), so a reason and the plan's cost lines read alike.

pub use kiln_plan::cost::{delta, usd};
