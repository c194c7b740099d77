//! Chooses the state backend from the `kiln { backend "..." { } }` block.

use std::path::Path;

use kiln_config::Config;
use kiln_state::{LocalBackend, StateBackend};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend `{0}` is not supported by this build of kiln; use backend \"local\"")]
    Unsupported(String),
    #[error("backend setting `{0}` must be a literal string")]
    NotLiteral(String),
}

pub fn open_backend(config: &Config, dir: &Path) -> Result<Box<dyn StateBackend>, BackendError> {
    let default = dir.join(".kiln/state.json");
    let Some(backend) = config.root.module.settings.as_ref().and_then(|s| s.backend.as_ref()) else {
        return Ok(Box::new(LocalBackend::new(default)));
    };
    match backend.kind.as_str() {
        "local" => {
            let path = match backend.body.attr("path") {
                Some(a) => match &*a.expr.node {
                    hcl_edit::expr::Expression::String(s) => dir.join(s.value()),
                    _ => return Err(BackendError::NotLiteral("path".into())),
                },
                None => default,
            };
            Ok(Box::new(LocalBackend::new(path)))
        }
        other => Err(BackendError::Unsupported(other.to_string())),
    }
}
