use std::path::PathBuf;

use super::live::{self, AwsArgs, KubeArgs};
use super::{CliError, Ctx, Diag, Severity, exit};
use crate::plan::review::Severity as FindingSeverity;
use crate::plan::saved::SavedPlan;
use crate::plan::{PlanOptions, RefreshInfo};
use crate::refresh::snapshot;
use crate::render::{self, Format};

/// Show what it takes to make AWS IAM and the cluster match a stack file.
///
/// Reads the observed state (live, or from a snapshot with --observed),
/// compares it with the stack file, and prints the changes, dependencies
/// first. Nothing is changed.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The stack file.
    file: PathBuf,

    /// Plan against an observed-state snapshot (a JSON file, see
    /// docs/snapshot.md) instead of reading AWS and the cluster: no credentials needed.
    #[arg(long, value_name = "SNAPSHOT")]
    observed: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Also write the plan to this file, to show or apply later.
    #[arg(long, value_name = "PLAN")]
    out: Option<PathBuf>,

    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,

    /// Exit 1 when the security review has a finding of SEVERITY or above,
    /// after printing (and saving) the plan. Wins over --detailed-exitcode's 2.
    #[arg(long, value_name = "SEVERITY", value_enum)]
    fail_on_findings: Option<FindingSeverity>,

    /// With --format markdown: write the plan as DIR/plan-1.md, plan-2.md…,
    /// each short enough for one pull-request comment, instead of to stdout.
    #[arg(long, value_name = "DIR")]
    split_dir: Option<PathBuf>,

    /// Show whole policy documents of created and deleted resources.
    #[arg(long)]
    diff: bool,

    /// Adopt existing resources that irsa does not own yet, as if each entry said `adopt = true`.
    #[arg(long)]
    adopt: bool,

    /// Plan the removal of everything the stack owns, as `irsa destroy` would.
    #[arg(long)]
    destroy: bool,

    /// Plan only the addresses that start with PREFIX, and what they depend on (repeatable).
    #[arg(long, value_name = "PREFIX")]
    target: Vec<String>,

    /// The stack's name until now: what carries stack OLD's markers is this
    /// stack's, and the plan moves it to this stack's name.
    #[arg(long, value_name = "OLD")]
    rename_from: Option<String>,

    #[command(flatten)]
    aws: AwsArgs,

    #[command(flatten)]
    kube: KubeArgs,
}

pub fn run(ctx: &Ctx, args: PlanArgs) -> Result<u8, CliError> {
    super::check_split_dir(args.split_dir.as_deref(), args.format)?;
    let desired = super::load_stack(&args.file, args.rename_from.as_deref())?;
    tracing::info!(
        policies = desired.policies.len(),
        roles = desired.roles.len(),
        service_accounts = desired.bindings.len(),
        "loaded {}",
        args.file.display()
    );
    let (observed, refresh) = match &args.observed {
        Some(path) => {
            let observed = snapshot::load(path)?;
            let refresh = RefreshInfo {
                strategy: "snapshot".into(),
                iam_calls: 0,
                kube_requests: 0,
                snapshot: Some(path.display().to_string()),
                observed_at: observed.observed_at.map(|t| t.to_string()),
            };
            (observed, refresh)
        }
        None => live::runtime()?.block_on(live::observe_shown(ctx, &desired, &args.aws, &args.kube, &args.target))?,
    };
    tracing::info!(
        roles = observed.iam.roles.len(),
        policies = observed.iam.policies.len(),
        service_accounts = observed.cluster_counts().0,
        deployments = observed.cluster_counts().1,
        "observed state read"
    );
    let options = PlanOptions { adopt: args.adopt, targets: args.target.clone(), refresh, destroy: args.destroy };
    // Not a clone of the whole stack (every policy document) for a plain plan.
    let wanted = if args.destroy {
        std::borrow::Cow::Owned(desired.for_destroy())
    } else {
        std::borrow::Cow::Borrowed(&desired)
    };
    let plan = crate::plan::plan(&wanted, &observed, &options).map_err(|e| CliError::from_plan(&desired, e))?;
    tracing::info!(changes = plan.changes.len(), warnings = plan.warnings.len(), "planned");

    if let Some(out) = &args.out {
        let saved = SavedPlan::new(plan.clone(), &args.file.display().to_string(), &desired, args.adopt, args.destroy);
        let json = serde_json::to_string_pretty(&saved).expect("a plan serialises to JSON") + "\n";
        std::fs::write(out, json).map_err(|source| CliError::Write { path: out.display().to_string(), source })?;
        ctx.info(&format!("Saved the plan to {}: `irsa show {}` renders it.", out.display(), out.display()));
    }
    // The plan shows its warnings; a pipeline's annotations and JSON get them
    // too, at the entry of the stack file they are about.
    if ctx.error_format != super::ErrorFormat::Human && !plan.warnings.is_empty() {
        let source = crate::config::Source::shared(args.file.display().to_string(), desired.source.text.clone());
        let locator = crate::model::desired::Locator::new(&desired);
        for w in &plan.warnings {
            let at = w.address.as_ref().map(|a| format!("{a}: ")).unwrap_or_default();
            let diag = Diag::unlocated(Severity::Warning, "irsa::plan::warning", format!("{at}{}", w.message), None);
            ctx.annotate(match w.address.as_ref().and_then(|a| locator.span_of(a)) {
                Some(span) => diag.at(&source, span),
                None => diag,
            });
        }
    }
    let options = render::Options { full_documents: args.diff, color: ctx.color_stdout && args.format == Format::Text };
    ctx.print_plan(&plan, args.format, options, args.split_dir.as_deref())?;
    if let Some(severity) = args.fail_on_findings {
        let count = plan.findings.iter().filter(|f| f.severity >= severity).count();
        if count > 0 {
            super::leak_at_exit((wanted, plan, observed));
            super::leak_at_exit(desired);
            return Err(CliError::Findings { count, severity: severity.as_str() });
        }
    }
    let code = if args.detailed_exitcode && !plan.changes.is_empty() { exit::CHANGES } else { exit::SUCCESS };
    super::leak_at_exit((wanted, plan, observed));
    super::leak_at_exit(desired);
    Ok(code)
}
