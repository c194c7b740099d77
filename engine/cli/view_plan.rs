//! The views of `kiln-views` for stdout: the human view coloured when stdout is a terminal and
//! NO_COLOR is unset; JSON and markdown as they are. The views themselves (plan diff, state,
//! outputs, validation; JSON structs and schemas) live in `kiln-views`.

use kiln_views::{Format, View};

/// Whether stdout takes colours.
fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout())
}

/// `view` in `format`, for stdout.
pub fn show(view: &dyn View, format: Format) -> String {
    kiln_views::render(view, format, colour())
}

/// The human plan for stdout (`apply` prints it before asking).
pub fn for_stdout(plan: &kiln_plan::Plan) -> String {
    show(plan, Format::Human)
}
