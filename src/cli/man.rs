use std::path::PathBuf;

use clap::CommandFactory;

use super::{Cli, CliError, Ctx, exit};

/// Print irsa's manual page (roff), from the same definitions as --help.
///
/// Read it with `irsa man | man -l -`; install every page with
/// `irsa man --out /usr/local/share/man/man1`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The page of this command (e.g. `plan`) rather than irsa's own.
    #[arg(value_name = "COMMAND")]
    command: Option<String>,

    /// Write every page (irsa.1, irsa-plan.1, …) into DIR instead of printing one.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    out: Option<PathBuf>,
}

/// The command tree as the pages show it: built, so that each subcommand
/// knows its full name (`irsa-plan`), and without clap's `help` subcommand.
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// A page, from irsa's version (clap_mangen would name a subcommand's page
/// after the subcommand alone: "plan 0.1.0").
fn man(page: clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(page).source(format!("irsa {}", env!("CARGO_PKG_VERSION"))).manual("irsa manual")
}

pub fn run(ctx: &Ctx, args: ManArgs) -> Result<u8, CliError> {
    let cmd = command();
    if let Some(dir) = &args.out {
        let written = |source| CliError::Write { path: dir.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(written)?;
        for page in std::iter::once(&cmd).chain(cmd.get_subcommands()) {
            man(page.clone()).generate_to(dir).map_err(written)?;
        }
        ctx.say(&format!("Wrote the manual pages to {}.", dir.display()));
        return Ok(exit::SUCCESS);
    }
    let page = match &args.command {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                return Err(CliError::Usage {
                    message: format!("irsa has no command `{name}`"),
                    help: format!("the commands are: {}", names.join(", ")),
                });
            }
        },
    };
    let mut roff = Vec::new();
    man(page).render(&mut roff).map_err(CliError::Output)?;
    ctx.print(&String::from_utf8_lossy(&roff))?;
    Ok(exit::SUCCESS)
}
