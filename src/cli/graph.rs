use std::path::PathBuf;

use super::{CliError, Ctx, exit};
use crate::graph::Graph;

/// Print the dependency graph of a stack file.
///
/// Edges point from a resource to what must wait for it: the OIDC provider
/// before roles, policies and roles before attachments, roles before service
/// accounts, service accounts before deployments.
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// The stack file.
    file: PathBuf,
    /// dot (Graphviz) or mermaid.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    format: GraphFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
}

pub fn run(ctx: &Ctx, args: GraphArgs) -> Result<u8, CliError> {
    let desired = crate::config::load(&args.file)?;
    let graph = Graph::build(&desired, []);
    ctx.print(&match args.format {
        GraphFormat::Dot => graph.to_dot(),
        GraphFormat::Mermaid => graph.to_mermaid(),
    })?;
    super::leak_at_exit((graph, desired));
    Ok(exit::SUCCESS)
}
