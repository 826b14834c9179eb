use std::path::PathBuf;

use super::{CliError, Ctx, exit};
use crate::plan::saved::SavedPlan;
use crate::render::{self, Format};

/// Render a plan saved with `irsa plan --out`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The saved plan.
    plan: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Show whole policy documents of created and deleted resources.
    #[arg(long)]
    diff: bool,
}

pub fn run(ctx: &Ctx, args: ShowArgs) -> Result<u8, CliError> {
    let path = args.plan.display().to_string();
    let text =
        std::fs::read_to_string(&args.plan).map_err(|source| CliError::ReadPlan { path: path.clone(), source })?;
    let saved = SavedPlan::from_json(&text).map_err(|reason| CliError::BadPlanFile { path, reason })?;
    let options = render::Options { full_documents: args.diff, color: ctx.color_stdout && args.format == Format::Text };
    ctx.print(&render::render(&saved.plan, args.format, options))?;
    Ok(exit::SUCCESS)
}
