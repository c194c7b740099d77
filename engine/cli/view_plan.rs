//! The views of `kiln-views` on stdout, through the command's printer: the human view coloured
//! when the settings say stdout takes colour; JSON and markdown as they are. The views
//! themselves (plan diff, state, outputs, validation; JSON structs and schemas) live in
//! `kiln-views`.

use kiln_views::{Format, View};

use crate::commands::Ctx;

/// Prints `view` in `format` on stdout.
pub fn print(cx: &Ctx, view: &dyn View, format: Format) {
    cx.printer.data_raw(kiln_views::render(view, format, cx.settings.colour.stdout));
}
