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

    /// With --format markdown: write the plan as DIR/plan-1.md, plan-2.md…,
    /// each short enough for one pull-request comment, instead of to stdout.
    #[arg(long, value_name = "DIR")]
    split_dir: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: ShowArgs) -> Result<u8, CliError> {
    super::check_split_dir(args.split_dir.as_deref(), args.format)?;
    let path = args.plan.display().to_string();
    let text =
        std::fs::read_to_string(&args.plan).map_err(|source| CliError::ReadPlan { path: path.clone(), source })?;
    let saved = SavedPlan::from_json(&text).map_err(|reason| CliError::BadPlanFile { path, reason })?;
    let options = render::Options { full_documents: args.diff, color: ctx.color_stdout && args.format == Format::Text };
    ctx.print_plan(&saved.plan, args.format, options, args.split_dir.as_deref())?;
    Ok(exit::SUCCESS)
}
