//! The JSON plan: [`Plan`] serialised as it is, pretty-printed with a final
//! newline. Its fields are documented in `docs/plan-format.md`.

use crate::plan::Plan;

pub fn render(plan: &Plan) -> String {
    // Serialising plain data with string keys cannot fail.
    let mut out = serde_json::to_string_pretty(plan).expect("a plan serialises to JSON");
    out.push('\n');
    out
}
