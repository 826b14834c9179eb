//! The command line: clap types, one file per command, and the one place
//! where errors become messages and exit codes.

mod apply;
mod completions;
mod doctor;
mod error;
mod graph;
mod live;
mod plan;
mod refresh;
mod show;
mod validate;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{CliError, exit};

/// irsa: plan and apply EKS pod permissions (IAM Roles for Service Accounts)
/// from one reviewed TOML file.
#[derive(Debug, Parser)]
#[command(name = "irsa", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// When to use colours: auto (a terminal, and NO_COLOR unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto)]
    color: ColorWhen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::ValidateArgs),
    Plan(plan::PlanArgs),
    Apply(apply::ApplyArgs),
    Destroy(apply::DestroyArgs),
    Refresh(refresh::RefreshArgs),
    Show(show::ShowArgs),
    Graph(graph::GraphArgs),
    Doctor(doctor::DoctorArgs),
    Completions(completions::CompletionsArgs),
}

/// Load a stack file; with `--rename-from OLD`, as the stack that was
/// called OLD until now (see [`crate::model::desired::Stack::renamed_from`]).
fn load_stack(file: &std::path::Path, rename_from: Option<&str>) -> Result<crate::model::desired::Desired, CliError> {
    let mut desired = crate::config::load(file)?;
    if let Some(old) = rename_from {
        let valid = crate::model::names::stack_name(old).is_ok() || crate::model::names::cluster_name(old).is_ok();
        if !valid || old == desired.stack.name {
            return Err(CliError::Usage {
                message: format!("--rename-from {old}: not another stack's name"),
                help: format!(
                    "give the name the stack had before (its resources carry irsa:stack = OLD); this file is stack `{}`",
                    desired.stack.name
                ),
            });
        }
        desired.stack.renamed_from = Some(old.to_owned());
    }
    Ok(desired)
}

/// What every command gets besides its arguments.
pub struct Ctx {
    /// Colours on stdout.
    pub color_stdout: bool,
    /// Colours on stderr.
    pub color_stderr: bool,
}

impl Ctx {
    /// Write data to stdout. A closed pipe (`irsa plan | head`) is not an error.
    pub fn print(&self, text: &str) -> Result<(), CliError> {
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Output(e)),
            _ => Ok(()),
        }
    }
}

fn color_on<S: anstream::stream::RawStream>(when: ColorWhen, stream: &S) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never,
    }
}

fn init_logging(verbose: u8, ansi: bool) {
    let default = match verbose {
        0 => "warn",
        1 => "irsa=info",
        _ => "irsa=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

/// Parse the command line, run the command, and map the outcome to an exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx {
        color_stdout: color_on(cli.color, &std::io::stdout()),
        color_stderr: color_on(cli.color, &std::io::stderr()),
    };
    init_logging(cli.verbose, ctx.color_stderr);
    let result = match cli.command {
        Command::Validate(args) => validate::run(&ctx, args),
        Command::Plan(args) => plan::run(&ctx, args),
        Command::Apply(args) => apply::run(&ctx, args),
        Command::Destroy(args) => apply::run_destroy(&ctx, args),
        Command::Refresh(args) => refresh::run(&ctx, args),
        Command::Show(args) => show::run(&ctx, args),
        Command::Graph(args) => graph::run(&ctx, args),
        Command::Doctor(args) => doctor::run(&ctx, args),
        Command::Completions(args) => completions::run(&ctx, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One report per problem: the picture for a person at a
            // terminal, the one-line form for logs and editors.
            let style = error::Style { graphical: std::io::stderr().is_terminal(), color: ctx.color_stderr };
            error::report(&e, style);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Let go of a command's models without freeing them: the process ends
/// right after the command, and freeing a stack's or a snapshot's million
/// small allocations one by one took a tenth of a large plan's time.
pub(crate) fn leak_at_exit<T>(models: T) {
    std::mem::forget(models);
}
