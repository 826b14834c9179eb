//! The command line: clap types, one file per command, and the one place
//! where errors become messages and exit codes.

mod apply;
mod completions;
mod diagnostics;
mod doctor;
mod error;
mod graph;
mod import;
mod live;
mod man;
mod plan;
mod progress;
mod refresh;
mod schema;
mod show;
mod validate;

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use diagnostics::{Diag, ErrorFormat, Severity};
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

    /// Only the plan (or the summary) and errors: no progress, no step
    /// lines, no notices such as "saved the plan to".
    #[arg(short, long, global = true)]
    quiet: bool,

    /// When to use colours: auto (a terminal, and NO_COLOR unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto)]
    color: ColorWhen,

    /// How errors and warnings are written on stderr: human (a picture on a
    /// terminal, `file:line:col: message` lines otherwise), github (workflow
    /// commands that annotate the stack file in a pull request), or json (one
    /// document, see docs/errors.md).
    #[arg(long, global = true, value_enum, env = "IRSA_ERROR_FORMAT", default_value_t = ErrorFormat::Human)]
    error_format: ErrorFormat,
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
    Import(import::ImportArgs),
    Completions(completions::CompletionsArgs),
    Man(man::ManArgs),
    Schema(schema::SchemaArgs),
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
    /// How errors and warnings are written.
    pub error_format: ErrorFormat,
    /// `-q`: only the plan or the summary, and errors.
    pub quiet: bool,
    /// Progress bars on stderr: a terminal, no `-q`, no `-v` logging to
    /// interleave with them, and not the JSON error form.
    pub progress: bool,
    /// Warnings held for the JSON document, which is written once, at the end.
    held: RefCell<Vec<Diag>>,
}

impl Ctx {
    /// Write a rendered plan: to stdout, or with `split_dir` (Markdown
    /// only) as `plan-1.md`, `plan-2.md`… in that directory, one comment each.
    pub fn print_plan(
        &self,
        plan: &crate::plan::Plan,
        format: crate::render::Format,
        options: crate::render::Options,
        split_dir: Option<&std::path::Path>,
    ) -> Result<(), CliError> {
        let Some(dir) = split_dir else {
            if format == crate::render::Format::Json {
                return self.write_stdout(|out| crate::render::json::write(plan, out));
            }
            return self.print(&crate::render::render(plan, format, options));
        };
        let parts = crate::render::markdown::parts(plan, options, crate::render::markdown::PART_LIMIT);
        let write_error = |path: &std::path::Path, source| CliError::Write { path: path.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
        for (i, part) in parts.iter().enumerate() {
            let path = dir.join(format!("plan-{}.md", i + 1));
            std::fs::write(&path, part).map_err(|e| write_error(&path, e))?;
        }
        // Parts of a longer plan written there before would pass for this
        // plan's: a workflow posts every plan-N.md it finds.
        let entries = std::fs::read_dir(dir).map_err(|e| write_error(dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let n = name.to_str().and_then(|n| n.strip_prefix("plan-")?.strip_suffix(".md")?.parse::<usize>().ok());
            if n.is_some_and(|n| n > parts.len()) && entry.path().is_file() {
                std::fs::remove_file(entry.path()).map_err(|e| write_error(&entry.path(), e))?;
            }
        }
        let last = dir.join(format!("plan-{}.md", parts.len()));
        match parts.len() {
            1 => eprintln!("Wrote the plan to {}.", last.display()),
            n => eprintln!("Wrote the plan in {n} parts: {} to {}.", dir.join("plan-1.md").display(), last.display()),
        }
        Ok(())
    }

    /// Write data to stdout. A closed pipe (`irsa plan | head`) is not an error.
    pub fn print(&self, text: &str) -> Result<(), CliError> {
        self.write_stdout(|out| out.write_all(text.as_bytes()))
    }

    /// Write to stdout through `write`, buffered; a reader that went away
    /// (`irsa plan | head`) is not an error.
    fn write_stdout(
        &self,
        write: impl FnOnce(&mut std::io::BufWriter<std::io::StdoutLock<'static>>) -> std::io::Result<()>,
    ) -> Result<(), CliError> {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        match write(&mut out).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Output(e)),
            _ => Ok(()),
        }
    }

    /// A warning: `human` is its text in the human form (after `warning: `);
    /// `diag` is the same warning for `--error-format github|json`.
    pub fn warn(&self, human: &str, diag: Diag) {
        match self.error_format {
            ErrorFormat::Human => eprintln!("warning: {human}"),
            ErrorFormat::Github => eprint!("{}", diagnostics::github_line(&diag)),
            ErrorFormat::Json => self.held.borrow_mut().push(diag),
        }
    }

    /// A warning that the human form already shows elsewhere (in the plan
    /// itself): written only as a GitHub annotation or in the JSON document.
    pub fn annotate(&self, diag: Diag) {
        match self.error_format {
            ErrorFormat::Human => {}
            ErrorFormat::Github => eprint!("{}", diagnostics::github_line(&diag)),
            ErrorFormat::Json => self.held.borrow_mut().push(diag),
        }
    }

    /// A line of information on stderr ("is valid", "saved the plan to …"),
    /// left out of the JSON form so that stderr is the document alone.
    pub fn say(&self, text: &str) {
        if self.error_format != ErrorFormat::Json {
            eprintln!("{text}");
        }
    }

    /// A line of information that is not the summary ("saved the plan to
    /// …", each apply step): as [`Ctx::say`], and left out by `-q`.
    pub fn info(&self, text: &str) {
        if self.tells() {
            eprintln!("{text}");
        }
    }

    /// Whether [`Ctx::info`] lines are written at all.
    pub fn tells(&self) -> bool {
        !self.quiet && self.error_format != ErrorFormat::Json
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return command_line_error(&e),
    };
    let ctx = Ctx {
        color_stdout: color_on(cli.color, &std::io::stdout()),
        color_stderr: color_on(cli.color, &std::io::stderr()),
        error_format: cli.error_format,
        quiet: cli.quiet,
        progress: std::io::stderr().is_terminal()
            && !cli.quiet
            && cli.verbose == 0
            && cli.error_format != ErrorFormat::Json
            && std::env::var_os("RUST_LOG").is_none(),
        held: RefCell::new(Vec::new()),
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
        Command::Import(args) => import::run(&ctx, args),
        Command::Completions(args) => completions::run(&ctx, args),
        Command::Man(args) => man::run(&ctx, args),
        Command::Schema(args) => schema::run(&ctx, args),
    };
    let held = ctx.held.take();
    match result {
        Ok(code) => {
            // The JSON form always ends with its one document, empty or not,
            // so that a pipeline can parse stderr whatever happened.
            if ctx.error_format == ErrorFormat::Json {
                eprint!("{}", diagnostics::json_document(&held));
            }
            ExitCode::from(code)
        }
        Err(e) => {
            // One report per problem: the picture for a person at a
            // terminal, the one-line form for logs and editors.
            let style = error::Style { graphical: std::io::stderr().is_terminal(), color: ctx.color_stderr };
            error::report_as(&e, style, ctx.error_format, held);
            ExitCode::from(e.exit_code())
        }
    }
}

/// A command line clap refuses, in the error form the command line asked
/// for (found by hand, since the command line did not parse): a pipeline
/// that reads JSON gets JSON for a misspelt flag too. Help and version, and
/// the human form, are clap's own (exit 2 for a usage error, as before).
fn command_line_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let format = requested_error_format(std::env::args().skip(1));
    if format == ErrorFormat::Human || matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let text = e.render().to_string();
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let message = first.strip_prefix("error: ").unwrap_or(first).trim();
    let help = rest.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n");
    let diag = Diag::unlocated(Severity::Error, "irsa::usage", message, (!help.is_empty()).then_some(help));
    match format {
        ErrorFormat::Github => eprint!("{}", diagnostics::github_line(&diag)),
        _ => eprint!("{}", diagnostics::json_document(&[diag])),
    }
    ExitCode::from(e.exit_code().clamp(0, 255) as u8)
}

/// `--error-format F` or `--error-format=F` among raw arguments, else
/// `IRSA_ERROR_FORMAT`, else human.
fn requested_error_format(args: impl Iterator<Item = String>) -> ErrorFormat {
    use clap::ValueEnum;
    let parse = |v: &str| ErrorFormat::from_str(v, false).ok();
    let mut args = args.peekable();
    let mut found = None;
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if let Some(v) = arg.strip_prefix("--error-format=") {
            found = parse(v).or(found);
        } else if arg == "--error-format" {
            found = args.next().as_deref().and_then(parse).or(found);
        }
    }
    found.or_else(|| std::env::var("IRSA_ERROR_FORMAT").ok().as_deref().and_then(parse)).unwrap_or_default()
}

/// Let go of a command's models without freeing them: the process ends
/// right after the command, and freeing a stack's or a snapshot's million
/// small allocations one by one took a tenth of a large plan's time.
/// `--split-dir` cuts Markdown into comments; other formats are one piece.
fn check_split_dir(split_dir: Option<&std::path::Path>, format: crate::render::Format) -> Result<(), CliError> {
    match split_dir {
        Some(_) if format != crate::render::Format::Markdown => Err(CliError::Usage {
            message: "--split-dir cuts a Markdown plan into comments; it needs --format markdown".into(),
            help: "add --format markdown, or leave out --split-dir".into(),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn leak_at_exit<T>(models: T) {
    std::mem::forget(models);
}
