use std::path::PathBuf;

use super::{CliError, Ctx, Diag, Severity, exit};

/// Check a stack file without contacting AWS or the cluster.
///
/// Reports every problem of the file, each with its line and column, and
/// exits 1 if there is any.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The stack file.
    file: PathBuf,
}

pub fn run(ctx: &Ctx, args: ValidateArgs) -> Result<u8, CliError> {
    let desired = crate::config::load(&args.file)?;
    ctx.say(&format!(
        "{} is valid: {} polic{}, {} role{}, {} service account{}{}",
        args.file.display(),
        desired.policies.len(),
        if desired.policies.len() == 1 { "y" } else { "ies" },
        desired.roles.len(),
        if desired.roles.len() == 1 { "" } else { "s" },
        desired.bindings.len(),
        if desired.bindings.len() == 1 { "" } else { "s" },
        if desired.multi_cluster() { format!(" in {} clusters", desired.clusters.len()) } else { String::new() },
    ));
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
        let file = args.file.display();
        let message = format!(
            "{file} has no [stack] name, so it is stack `{name}` (its cluster's name, as before stacks had names of their own)"
        );
        let fix = "if another stack file manages this cluster too, give each file its own name";
        let rename = format!(
            "A stack already applied under the cluster's name {keep}moves with `irsa apply --rename-from {name}`."
        );
        // At the [cluster] header: the stack is named after that table.
        let source = crate::config::Source::shared(file.to_string(), desired.source.text.clone());
        let diag = Diag::unlocated(
            Severity::Warning,
            "irsa::config::no_stack_name",
            message.clone(),
            Some(format!("{fix}: [stack] name = \"team-a\". {rename}")),
        )
        .at(&source, &desired.clusters[0].span);
        ctx.warn(&format!("{message}; {fix}:\n  [stack]\n  name = \"team-a\"\n{rename}"), diag);
    }
    super::leak_at_exit(desired);
    Ok(exit::SUCCESS)
}
