use clap::CommandFactory;

use super::{Cli, CliError, Ctx, exit};

/// Print a shell completion script for irsa.
///
/// Install it where the shell looks, for example:
/// `irsa completions bash > /etc/bash_completion.d/irsa`,
/// `irsa completions zsh > "${fpath[1]}/_irsa"`,
/// `irsa completions fish > ~/.config/fish/completions/irsa.fish`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    shell: clap_complete::Shell,
}

pub fn run(ctx: &Ctx, args: CompletionsArgs) -> Result<u8, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "irsa", &mut script);
    ctx.print(&String::from_utf8_lossy(&script))?;
    Ok(exit::SUCCESS)
}
