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
    if !desired.stack.explicit {
        // Two files for one cluster without names of their own would both
        // be stack <cluster>, and each would take the other's resources for
        // its own orphans.
        let name = &desired.stack.name;
        // A cluster name may have capitals or `_`, which a stack name may not.
        let keep = if crate::model::names::stack_name(name).is_ok() {
            format!("keeps it by writing name = \"{name}\", or ")
        } else {
            String::new()
        };
        eprintln!(
            "warning: {} has no [stack] name, so it is stack `{name}` (its cluster's name, as before stacks had names of their own); if another stack file manages this cluster too, give each file its own name:\n  [stack]\n  name = \"team-a\"\nA stack already applied under the cluster's name {keep}moves with `irsa apply --rename-from {name}`.",
            args.file.display(),
        );
    }
    super::leak_at_exit(desired);
    Ok(exit::SUCCESS)
}
