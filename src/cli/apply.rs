use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use super::live::{self, AwsArgs, KubeArgs};
use super::{CliError, Ctx, exit};
use crate::apply::iam::IamApplier;
use crate::apply::kube::KubeApplier;
use crate::apply::retry::Patience;
use crate::apply::{Appliers, Event, Step, apply};
use crate::lock::{self, LockOptions};
use crate::plan::PlanOptions;
use crate::plan::saved::SavedPlan;
use crate::render::{self, Format};

/// Make AWS IAM and the cluster match a stack file.
///
/// Reads what exists, shows the plan, asks for `yes` on a terminal (or
/// proceeds with --auto-approve), takes the stack's lock in the cluster, and
/// carries the plan out in dependency order: removals leaves-first, then
/// creations, updates and restarts roots-first.
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

    /// The namespace of the lock (a coordination.k8s.io Lease named irsa-<stack>).
    #[arg(long, value_name = "NAMESPACE", default_value = "kube-system")]
    lock_namespace: String,

    /// Seconds to wait for another apply of the stack to finish; 0 fails at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    lock_timeout: u64,

    /// How many independent changes may run at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    parallelism: u16,

    /// Seconds to let a new or re-trusted role settle in IAM before the pods
    /// that assume it roll (STS lags IAM by a few seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    iam_settle_seconds: u64,

    #[command(flatten)]
    aws: AwsArgs,

    #[command(flatten)]
    kube: KubeArgs,
}

/// Remove everything a stack owns, and nothing else.
///
/// Plans the deletion of every resource that carries the stack's markers
/// (policies, roles with their attachments and inline policies, the OIDC
/// provider when it is the stack's own, ServiceAccounts irsa made), takes
/// irsa's trust statement out of roles it manages by ARN, gives adopted
/// ServiceAccounts back without irsa's annotations, and applies it like
/// `apply`: in reverse dependency order, after confirmation, under the lock.
/// Deployments are left as they are.
#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    apply: ApplyArgs,
}

pub fn run(ctx: &Ctx, args: ApplyArgs) -> Result<u8, CliError> {
    run_mode(ctx, args, false)
}

pub fn run_destroy(ctx: &Ctx, args: DestroyArgs) -> Result<u8, CliError> {
    run_mode(ctx, args.apply, true)
}

fn run_mode(ctx: &Ctx, args: ApplyArgs, destroy: bool) -> Result<u8, CliError> {
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
    runtime.block_on(async {
        let clients = live::connect(&desired, &args.aws, &args.kube, &args.target).await?;
        // Take the lock before reading, as Terraform does: a second apply
        // that waited must plan against what the first one left.
        let lock = match &clients.kube {
            Some(kube) => {
                let options =
                    LockOptions { namespace: args.lock_namespace.clone(), timeout: Duration::from_secs(args.lock_timeout) };
                let lock = lock::acquire(kube, &desired.cluster.name, &options).await?;
                tracing::info!("holding the lock as {}", lock.holder());
                Some(lock)
            }
            // A run whose targets stay in IAM does not contact the cluster, and so takes no lock.
            None => None,
        };
        let result = plan_and_apply(ctx, &args, &desired, &clients, destroy).await;
        if let Some(lock) = lock {
            if lock.lost() {
                eprintln!("warning: the lock expired during the run and was taken by another apply; plan again to check the result");
            }
            lock.release().await?;
        }
        result
    })
}

async fn plan_and_apply(
    ctx: &Ctx,
    args: &ApplyArgs,
    desired: &crate::model::desired::Desired,
    clients: &live::Clients,
    destroy: bool,
) -> Result<u8, CliError> {
    let (observed, refresh) = live::read(desired, clients).await?;
    let options = PlanOptions { adopt: args.adopt, targets: args.target.clone(), refresh, destroy };
    let wanted = if destroy { desired.for_destroy() } else { desired.clone() };
    let plan = crate::plan::plan(&wanted, &observed, &options).map_err(|e| CliError::from_plan(desired, e))?;

    let text_options = render::Options { full_documents: false, color: ctx.color_stdout };
    ctx.print(&render::render(&plan, Format::Text, text_options))?;
    if plan.changes.is_empty() {
        return Ok(exit::SUCCESS);
    }
    if !args.auto_approve && !confirm(plan.changes.len())? {
        eprintln!("Apply cancelled; nothing was changed.");
        return Ok(exit::ERROR);
    }
    let calls_before = clients.iam.calls.total();
    let appliers = Appliers {
        iam: IamApplier { iam: &clients.iam, patience: Patience::default() },
        kube: clients.kube.as_ref().map(|kube| KubeApplier { kube }),
        settle: Duration::from_secs(args.iam_settle_seconds),
        parallelism: usize::from(args.parallelism),
    };
    let outcome = apply(&appliers, &plan, |event| match event {
        Event::Started { address, .. } => tracing::info!("{address}: started"),
        Event::Finished(Step::Done { address, what }) => eprintln!("  {address}: {what}"),
        Event::Finished(Step::Failed { address, error }) => eprintln!("  {address}: FAILED: {error}"),
        Event::Finished(Step::Skipped { address }) => {
            eprintln!("  {address}: skipped (it depends on a change that failed)")
        }
    })
    .await;
    let done = outcome.steps.iter().filter(|s| matches!(s, Step::Done { .. })).count();
    let skipped = outcome.steps.iter().filter(|s| matches!(s, Step::Skipped { .. })).count();
    let calls = clients.iam.calls.total() - calls_before;
    let failed: Vec<String> = outcome
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Failed { address, .. } => Some(address.to_string()),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        eprintln!(
            "Apply finished with failures: {done} done, {} failed, {skipped} skipped ({calls} IAM calls).",
            failed.len()
        );
        return Err(CliError::ApplyFailed { address: failed.join(", ") });
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
