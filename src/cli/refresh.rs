use std::path::PathBuf;

use super::live::{self, AwsArgs, KubeArgs};
use super::{CliError, Ctx, exit};

/// Read what exists in AWS IAM and the cluster for a stack file.
///
/// With --export, writes the observed state as a snapshot file that
/// `irsa plan --observed` reads: a pull request from a fork can then be
/// planned with no credentials at all.
#[derive(Debug, clap::Args)]
pub struct RefreshArgs {
    /// The stack file.
    file: PathBuf,

    /// Write the observed state to this snapshot file (see docs/snapshot.md).
    #[arg(long, value_name = "SNAPSHOT")]
    export: Option<PathBuf>,

    /// Read only what the addresses starting with PREFIX need (repeatable);
    /// IAM-only prefixes do not contact the cluster.
    #[arg(long, value_name = "PREFIX")]
    target: Vec<String>,

    #[command(flatten)]
    aws: AwsArgs,

    #[command(flatten)]
    kube: KubeArgs,
}

pub fn run(ctx: &Ctx, args: RefreshArgs) -> Result<u8, CliError> {
    let desired = crate::config::load(&args.file)?;
    let (observed, refresh) =
        live::runtime()?.block_on(live::observe_shown(ctx, &desired, &args.aws, &args.kube, &args.target))?;
    let (service_accounts, deployments) = observed.cluster_counts();
    ctx.say(&format!(
        "Read {} OIDC provider{}, {} role{} and {} polic{} with {} IAM calls ({}), and {} service account{} and {} deployment{} with {} Kubernetes requests.",
        observed.iam.oidc_providers.len(),
        if observed.iam.oidc_providers.len() == 1 { "" } else { "s" },
        observed.iam.roles.len(),
        if observed.iam.roles.len() == 1 { "" } else { "s" },
        observed.iam.policies.len(),
        if observed.iam.policies.len() == 1 { "y" } else { "ies" },
        refresh.iam_calls,
        refresh.strategy,
        service_accounts,
        if service_accounts == 1 { "" } else { "s" },
        deployments,
        if deployments == 1 { "" } else { "s" },
        refresh.kube_requests,
    ));
    if let Some(path) = &args.export {
        let json = serde_json::to_string_pretty(&observed).expect("the observed model serialises to JSON") + "\n";
        std::fs::write(path, json).map_err(|source| CliError::Write { path: path.display().to_string(), source })?;
        ctx.info(&format!("Wrote the snapshot to {}.", path.display()));
    }
    Ok(exit::SUCCESS)
}
