use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::live::{self, AwsArgs, KubeArgs};
use super::progress::{ApplyBar, ReadBars};
use super::{CliError, Ctx, Diag, Severity, exit};
use crate::apply::workflow::{self, Frontend, Report, RunError, Settings, Source};
use crate::apply::{Event, Outcome, Step, has_step};
use crate::lock::LockOptions;
use crate::plan::Plan;
use crate::plan::saved::SavedPlan;
use crate::refresh::ReadStatus;
use crate::render::{self, Format};

/// Make AWS IAM and the cluster match a stack file, or carry out a saved plan.
///
/// With a stack file: reads what exists, shows the plan, asks for `yes` on a
/// terminal (or proceeds with --auto-approve) and applies it. With a plan
/// saved by `irsa plan --out`: re-reads every resource the plan touches and
/// refuses with exit code 3, naming each one, if any moved or the stack file
/// changed; otherwise applies exactly the reviewed changes. Either way the
/// stack's lock in the cluster is held throughout, and each step is recorded
/// in the journal before and after it runs, so a killed run, rerun, finishes
/// the work without doing any of it twice.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The stack file, or a plan saved with `irsa plan --out`.
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

    /// The stack's name until now: what carries stack OLD's markers is this
    /// stack's, and the apply moves it to this stack's name.
    #[arg(long, value_name = "OLD")]
    rename_from: Option<String>,

    /// How many independent changes may run at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    parallelism: u16,

    /// The namespace of the lock (a coordination.k8s.io Lease named irsa-<stack>).
    #[arg(long, value_name = "NAMESPACE", default_value = "kube-system")]
    lock_namespace: String,

    /// Seconds to wait for another apply of the stack to finish; 0 fails at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    lock_timeout: u64,

    /// Seconds the lock lasts without renewal (renewed every third of it):
    /// how long an apply that crashed blocks the next one.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(i32).range(3..))]
    lock_lease_seconds: i32,

    /// Seconds to let a new or re-trusted role settle in IAM before the pods
    /// that assume it roll (STS lags IAM by a few seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    iam_settle_seconds: u64,

    /// The local store (journal, snapshots, saved plans); default `.irsa/`
    /// beside the stack file.
    #[arg(long, value_name = "DIR", env = "IRSA_STORE")]
    store: Option<PathBuf>,

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
    let text = std::fs::read_to_string(&args.file).ok();
    if let Some(saved) = text.as_deref().and_then(|t| SavedPlan::from_json(t).ok()) {
        let stack = PathBuf::from(&saved.stack_file);
        return run_source(ctx, &args, &stack, Source::Saved(Box::new(saved)));
    }
    let source = Source::Stack { adopt: args.adopt, destroy: false, targets: args.target.clone() };
    run_source(ctx, &args, &args.file, source)
}

pub fn run_destroy(ctx: &Ctx, args: DestroyArgs) -> Result<u8, CliError> {
    let args = args.apply;
    let source = Source::Stack { adopt: args.adopt, destroy: true, targets: args.target.clone() };
    run_source(ctx, &args, &args.file, source)
}

fn run_source(ctx: &Ctx, args: &ApplyArgs, stack: &Path, source: Source) -> Result<u8, CliError> {
    let rename_from = match &source {
        Source::Saved(saved) => saved.rename_from.clone(),
        Source::Stack { .. } => args.rename_from.clone(),
    };
    let desired = super::load_stack(stack, rename_from.as_deref())?;
    workflow::check_inputs(&desired, &source).map_err(|e| CliError::from_workflow(&desired, e))?;
    let settings = Settings {
        store_dir: args.store.clone().unwrap_or_else(|| crate::store::default_dir(stack)),
        lock: LockOptions {
            namespace: args.lock_namespace.clone(),
            timeout: Duration::from_secs(args.lock_timeout),
            lease_seconds: args.lock_lease_seconds,
        },
        settle: Duration::from_secs(args.iam_settle_seconds),
        parallelism: usize::from(args.parallelism),
    };
    let mut frontend =
        Terminal { ctx, auto_approve: args.auto_approve, total: 0, reading: ReadBars::new(ctx), bar: None };
    let report = live::runtime()?.block_on(async {
        let clients = live::connect(&desired, &args.aws, &args.kube, source.targets()).await?;
        workflow::run(&desired, &clients, &source, &settings, &mut frontend).await.map_err(|e| match e {
            RunError::Frontend(e) => e,
            RunError::Workflow(e) => CliError::from_workflow(&desired, e),
        })
    });
    // The bars leave the screen before the summary or the error is written.
    frontend.finish();
    match report? {
        Report::NoChanges => Ok(exit::SUCCESS),
        Report::Cancelled => {
            ctx.say("Apply cancelled; nothing was changed.");
            Ok(exit::ERROR)
        }
        Report::Applied { outcome, iam_calls } => summary(ctx, &outcome, iam_calls),
    }
}

/// The last lines of a run: how many steps were done, failed and skipped.
fn summary(ctx: &Ctx, outcome: &Outcome, calls: u64) -> Result<u8, CliError> {
    let count = |f: fn(&Step) -> bool| outcome.steps.iter().filter(|s| f(s)).count();
    let done_now = count(|s| matches!(s, Step::Done { .. }));
    let skipped = count(|s| matches!(s, Step::Skipped { .. }));
    let failed: Vec<String> = outcome
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Failed { address, .. } => Some(address.to_string()),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        ctx.say(&format!(
            "Apply finished with failures: {done_now} done, {} failed, {skipped} skipped ({calls} IAM calls).",
            failed.len()
        ));
        return Err(CliError::ApplyFailed { address: failed.join(", ") });
    }
    ctx.say(&format!(
        "Apply complete: {done_now} step{} done ({calls} IAM calls).",
        if done_now == 1 { "" } else { "s" }
    ));
    Ok(exit::SUCCESS)
}

/// The run as a person or a pipeline sees it: the plan on stdout; on
/// stderr each step as a line (above a progress bar on a terminal; none
/// with `-q`), every warning, and the question on the terminal.
struct Terminal<'a> {
    ctx: &'a Ctx,
    auto_approve: bool,
    /// The steps this run carries out, counted when the plan is shown.
    total: usize,
    reading: ReadBars,
    /// Made at the first step, after the question.
    bar: Option<ApplyBar>,
}

impl Terminal<'_> {
    fn line(&mut self, text: &str) {
        if self.ctx.tells() {
            match &self.bar {
                Some(bar) => bar.println(text),
                None => eprintln!("{text}"),
            }
        }
    }

    fn finish(&mut self) {
        self.reading.finish();
        if let Some(bar) = &mut self.bar {
            bar.finish();
        }
    }
}

impl Frontend for Terminal<'_> {
    type Error = CliError;

    fn reading(&mut self, status: &ReadStatus) {
        self.reading.update(status);
    }

    fn show(&mut self, plan: &Plan, done_before: usize) -> Result<(), CliError> {
        self.reading.finish();
        let options = render::Options { full_documents: false, color: self.ctx.color_stdout };
        self.ctx.print(&render::render(plan, Format::Text, options))?;
        let steps: usize =
            plan.changes.iter().map(|c| usize::from(has_step(c, true)) + usize::from(has_step(c, false))).sum();
        self.total = steps.saturating_sub(done_before);
        if done_before > 0 && !plan.changes.is_empty() {
            self.ctx.info(&format!(
                "{done_before} step{} of this plan were done by an earlier run; the rest follows.",
                if done_before == 1 { "" } else { "s" }
            ));
        }
        Ok(())
    }

    fn confirm(&mut self, plan: &Plan) -> Result<bool, CliError> {
        if self.auto_approve { Ok(true) } else { confirm(plan.changes.len()) }
    }

    fn event(&mut self, event: &Event) {
        let (ctx, total) = (self.ctx, self.total);
        self.bar.get_or_insert_with(|| ApplyBar::new(ctx, total)).event(event);
        match event {
            Event::Started { address, .. } => tracing::info!("{address}: started"),
            Event::Finished { step: Step::Done { address, what }, .. } => self.line(&format!("  {address}: {what}")),
            Event::Finished { step: Step::Failed { address, error }, .. } => {
                self.line(&format!("  {address}: FAILED: {error}"));
            }
            Event::Finished { step: Step::Skipped { address }, .. } => {
                self.line(&format!("  {address}: skipped (it depends on a change that failed)"));
            }
        }
    }

    fn warn(&mut self, message: &str) {
        let diag = Diag::unlocated(Severity::Warning, "irsa::apply::warning", message, None);
        match &self.bar {
            Some(bar) => bar.suspend(|| self.ctx.warn(message, diag)),
            None => self.ctx.warn(message, diag),
        }
    }
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
