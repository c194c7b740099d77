//! Terraform's built-in functions. (Placeholder interface; the library is being written.)

use kiln_value::Value;

pub struct FuncCtx {
    pub base_dir: std::path::PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FuncError {
    pub message: String,
    pub arg: Option<usize>,
}

pub fn call(name: &str, _args: Vec<Value>, _ctx: &FuncCtx) -> Result<Value, FuncError> {
    Err(FuncError { message: format!("unknown function `{name}`"), arg: None })
}

pub fn exists(_name: &str) -> bool {
    false
}

pub fn names() -> impl Iterator<Item = &'static str> {
    std::iter::empty()
}
