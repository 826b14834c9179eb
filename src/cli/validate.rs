use std::path::PathBuf;

use super::{CliError, Ctx, exit};

/// Check a stack file without contacting AWS or the cluster.
///
/// Reports every problem of the file, each with its line and column, and
/// exits 1 if there is any.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The stack file.
    file: PathBuf,
}

pub fn run(_ctx: &Ctx, args: ValidateArgs) -> Result<u8, CliError> {
    let desired = crate::config::load(&args.file)?;
    eprintln!(
        "{} is valid: {} polic{}, {} role{}, {} service account{}",
        args.file.display(),
        desired.policies.len(),
        if desired.policies.len() == 1 { "y" } else { "ies" },
        desired.roles.len(),
        if desired.roles.len() == 1 { "" } else { "s" },
        desired.bindings.len(),
        if desired.bindings.len() == 1 { "" } else { "s" },
    );
    Ok(exit::SUCCESS)
}
