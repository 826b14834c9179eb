use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use super::live::{self, AwsArgs};
use super::{CliError, Ctx, exit};
use crate::apply::iam::IamApplier;
use crate::apply::retry::Patience;
use crate::apply::{Step, apply_iam};
use crate::plan::PlanOptions;
use crate::plan::saved::SavedPlan;
use crate::render::{self, Format};

/// Make AWS IAM match a stack file.
///
/// Reads what exists, shows the plan, asks for `yes` on a terminal (or
/// proceeds with --auto-approve), and carries the plan out in dependency
/// order: removals leaves-first, then creations and updates roots-first.
/// This version applies IAM changes only: limit a stack that also changes
/// the cluster with --target oidc/ --target policy/ --target role/.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The stack file.
    file: PathBuf,

    /// Apply without asking; required when stdin is not a terminal.
    #[arg(long)]
    auto_approve: bool,

    /// Adopt existing resources that irsa does not own yet, as if each entry said `adopt = true`.
    #[arg(long)]
    adopt: bool,

    /// Apply only the addresses that start with PREFIX, and what they depend on (repeatable).
    #[arg(long, value_name = "PREFIX")]
    target: Vec<String>,

    #[command(flatten)]
    aws: AwsArgs,
}

pub fn run(ctx: &Ctx, args: ApplyArgs) -> Result<u8, CliError> {
    if let Ok(text) = std::fs::read_to_string(&args.file)
        && SavedPlan::from_json(&text).is_ok()
    {
        return Err(CliError::Usage {
            message: format!(
                "{} is a saved plan; applying saved plans is not available in this version of irsa",
                args.file.display()
            ),
            help: "apply the stack file instead: irsa apply STACK.toml".into(),
        });
    }
    let desired = crate::config::load(&args.file)?;
    let runtime = live::runtime()?;
    let (observed, refresh, iam) = runtime.block_on(live::observe(&desired, &args.aws, &args.target))?;
    let options = PlanOptions { adopt: args.adopt, targets: args.target.clone(), refresh };
    let plan = crate::plan::plan(&desired, &observed, &options).map_err(|e| CliError::from_plan(&desired, e))?;

    let text_options = render::Options { full_documents: false, color: ctx.color_stdout };
    ctx.print(&render::render(&plan, Format::Text, text_options))?;
    if plan.changes.is_empty() {
        return Ok(exit::SUCCESS);
    }
    let cluster: Vec<String> =
        plan.changes.iter().filter(|c| !c.kind.is_iam()).map(|c| c.address.to_string()).collect();
    if !cluster.is_empty() {
        return Err(CliError::Usage {
            message: format!(
                "the plan changes the cluster ({}), which this version of irsa cannot apply",
                cluster.join(", ")
            ),
            help: "apply the IAM half with --target oidc/ --target policy/ --target role/".into(),
        });
    }
    if !args.auto_approve && !confirm(plan.changes.len())? {
        eprintln!("Apply cancelled; nothing was changed.");
        return Ok(exit::ERROR);
    }

    let before = iam.calls.total();
    let applier = IamApplier { iam: &iam, patience: Patience::default() };
    let outcome = runtime.block_on(apply_iam(&applier, &plan, |step| match step {
        Step::Done { address, what } => eprintln!("  {address}: {what}"),
        Step::Failed { address, error } => eprintln!("  {address}: FAILED: {error}"),
        Step::Skipped { address } => eprintln!("  {address}: skipped"),
    }));
    let done = outcome.steps.iter().filter(|s| matches!(s, Step::Done { .. })).count();
    let skipped = outcome.steps.iter().filter(|s| matches!(s, Step::Skipped { .. })).count();
    let calls = iam.calls.total() - before;
    if let Some(Step::Failed { address, .. }) = outcome.steps.iter().find(|s| matches!(s, Step::Failed { .. })) {
        eprintln!("Apply stopped: {done} done, 1 failed, {skipped} skipped ({calls} IAM calls).");
        return Err(CliError::ApplyFailed { address: address.to_string() });
    }
    eprintln!("Apply complete: {done} step{} done ({calls} IAM calls).", if done == 1 { "" } else { "s" });
    Ok(exit::SUCCESS)
}

/// Ask on the terminal, as Terraform does; refuse when nobody can answer.
fn confirm(count: usize) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage {
            message: "refusing to apply without confirmation: stdin is not a terminal".into(),
            help: "review the plan, then run again with --auto-approve".into(),
        });
    }
    eprint!("\nApply these {count} changes? Only 'yes' will be accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(CliError::Output)?;
    Ok(answer.trim() == "yes")
}
