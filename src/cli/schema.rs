use super::{CliError, Ctx, exit};

/// Print the JSON Schema of the stack file, for editors.
///
/// Save it and point taplo or Even Better TOML at it (docs/editor.md):
/// `irsa schema > irsa.schema.json`, then a first line
/// `#:schema ./irsa.schema.json` in the stack file. The schema checks keys
/// and shapes as you type; `irsa validate` checks everything else.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {}

pub fn run(ctx: &Ctx, _args: SchemaArgs) -> Result<u8, CliError> {
    let schema = crate::config::schema::stack_file_schema();
    let text = serde_json::to_string_pretty(&schema).expect("a schema serialises to JSON") + "\n";
    ctx.print(&text)?;
    Ok(exit::SUCCESS)
}
