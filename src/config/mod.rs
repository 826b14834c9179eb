//! Loading a stack file: TOML text → spanned raw values → checked [`Desired`].
//!
//! Every rule of SPEC.md's "Rules the loader enforces" runs here, all problems
//! of a file are collected in one pass, and nothing but reading the stack file
//! and its policy documents happens: no network call.

pub mod diagnostic;
pub mod raw;
mod validate;

use std::path::Path;

pub use diagnostic::{Problem, Problems, Source};

use crate::model::desired::Desired;

/// Why a stack file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read stack file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] Problems),
}

/// Load and check the stack file at `path`.
pub fn load(path: &Path) -> Result<Desired, LoadError> {
    let text = std::fs::read(path).map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
    let name = path.display().to_string();
    let text = match String::from_utf8(text) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let source = Source::new(name, lossy);
            let problem = Problem {
                code: "irsa::config::not_utf8",
                message: "the stack file is not valid UTF-8".into(),
                span: valid..valid + 1,
                source,
                label: "this byte is not UTF-8".into(),
                help: Some("save the file as UTF-8".into()),
            };
            return Err(Problems { path: path.to_owned(), problems: vec![problem] }.into());
        }
    };
    parse(path, text).map_err(LoadError::Invalid)
}

/// Check stack-file text as if it were read from `path` (document files are
/// resolved against `path`'s directory).
pub fn parse(path: &Path, text: String) -> Result<Desired, Problems> {
    validate::load_str(path, text)
}
