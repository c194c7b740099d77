//! Views of plans, state, outputs and diagnostics, for people and for machines: the CLI decides
//! what to show and prints; this crate decides how it looks.
//!
//! - Machine views are typed serde structs, each with `format_version` ([`FORMAT_VERSION`]) and
//!   a JSON Schema in `schemas/json/`: [`PlanView`] (`plan --json`, `show --json PLANFILE`,
//!   `plan-view.schema.json`), [`StateView`] (`show --json`, `state-view.schema.json`),
//!   [`OutputsView`] and [`OutputView`] (`output --json [NAME]`, `output-view.schema.json`),
//!   [`ValidateView`] (`validate --json`, `validate-view.schema.json`), [`JobsView`]
//!   (`jobs --json`, `jobs-view.schema.json`), [`StatusView`] (`status --json`,
//!   `status-view.schema.json`), [`SchemaView`] (`schema --json`, `schema-view.schema.json`)
//!   and [`Offers`] (`offers --json`, `offers-view.schema.json`: an array, the one view without
//!   `format_version`, as `kiln offers --json` is a list of rows).
//!   Field names follow
//!   Terraform's JSON output where it has one (`resource_changes`, `change.actions`,
//!   `values`, `sensitive_values`, `diagnostics[].range`).
//! - Unknown and sensitive values are marked beside the values, never inside them: a view's
//!   value holds `null` there, and a mirror (`after_unknown`, `after_sensitive`,
//!   `sensitive_values`) holds `true` at the same place. [`redact()`] is the one function that
//!   does this for every view; for people, [`SENSITIVE`] (`(sensitive value)`) is the one marker.
//! - [`View`] is one thing shown in every [`Format`]; a new format is a method here and a
//!   [`Format`] variant, and every command that takes `--format` gets it.

pub mod cost;
pub mod jobs;
pub mod markdown;
pub mod offers;
pub mod outputs;
pub mod plan;
pub mod redact;
pub mod schema;
pub mod state;
pub mod status;
pub mod validate;

pub use jobs::{JobView, Jobs, JobsView};
pub use offers::{OfferView, Offers};
pub use outputs::{Output, OutputValue, OutputView, Outputs, OutputsView};
pub use plan::PlanView;
pub use redact::{redact, shown, Redacted, SENSITIVE};
pub use schema::{Reference, SchemaView};
pub use state::StateView;
pub use status::{ClusterView, Status, StatusView};
pub use validate::{DiagnosticView, ValidateView, Validation};

/// The version of every machine view's format: `MAJOR.MINOR`. MINOR grows when fields are
/// added; MAJOR when a field changes meaning or goes away.
pub const FORMAT_VERSION: &str = "1.0";

/// How a view is printed (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// For a terminal: kiln's plan diff, `name = value` lines.
    #[default]
    Human,
    /// One JSON document on one line, the typed view.
    Json,
    /// GitHub-flavoured markdown: tables and lists for a pull-request comment.
    Markdown,
}

impl Format {
    /// The names `--format` accepts.
    pub const NAMES: [&'static str; 3] = ["human", "json", "markdown"];
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "human" => Ok(Format::Human),
            "json" => Ok(Format::Json),
            "markdown" => Ok(Format::Markdown),
            _ => Err(format!("unknown format `{s}`: write one of {}", Format::NAMES.join(", "))),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Human => "human",
            Format::Json => "json",
            Format::Markdown => "markdown",
        })
    }
}

/// Something shown in every [`Format`].
pub trait View {
    /// The machine view (a typed struct of this crate, serialized).
    fn json(&self) -> serde_json::Value;
    /// The text for people, without colour.
    fn human(&self) -> String;
    /// Markdown for a pull-request comment or a report.
    fn markdown(&self) -> String;
    /// Colours `human`'s text for a terminal; by default there are none.
    fn paint(&self, text: String) -> String {
        text
    }
}

/// `view` in `format`, ending with a newline; `colour` paints the human view.
pub fn render(view: &dyn View, format: Format, colour: bool) -> String {
    match format {
        Format::Human if colour => view.paint(view.human()),
        Format::Human => view.human(),
        Format::Json => format!("{}\n", view.json()),
        Format::Markdown => view.markdown(),
    }
}
