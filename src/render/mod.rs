//! Rendering a [`Plan`] for people and machines.
//!
//! Computing what to show ([`view`]) is separate from drawing it ([`text`],
//! [`markdown`]); both draw from the one JSON model, [`Plan`], which [`json`]
//! writes as it is. A saved plan rendered later looks exactly like the plan did.

pub mod json;
pub mod markdown;
pub mod text;
pub mod view;

use crate::plan::Plan;

/// The output formats of `plan` and `show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

/// How much of the policy documents to show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Show whole documents of created and deleted resources, not only a line count.
    pub full_documents: bool,
    /// Emit ANSI colours (text only); the caller decides from the terminal and `NO_COLOR`.
    pub color: bool,
}

/// Render `plan` in `format`.
pub fn render(plan: &Plan, format: Format, options: Options) -> String {
    match format {
        Format::Text => text::render(plan, options),
        Format::Markdown => markdown::render(plan, options),
        Format::Json => json::render(plan),
    }
}
