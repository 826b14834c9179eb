//! The JSON plan: [`Plan`] serialised as it is, pretty-printed with a final
//! newline. Its fields are documented in `docs/plan-format.md`.

use crate::plan::Plan;

pub fn render(plan: &Plan) -> String {
    // Serialising plain data with string keys cannot fail.
    let mut out = serde_json::to_string_pretty(plan).expect("a plan serialises to JSON");
    out.push('\n');
    out
}

/// [`render`] written straight to `out`: a plan of 100,000 bindings is
/// hundreds of megabytes of JSON, which need not be held as one string.
pub fn write(plan: &Plan, out: &mut impl std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, plan).map_err(std::io::Error::from)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn written_is_rendered() {
        // The example stack planned from nothing: every kind of change.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let desired = crate::config::load(&root.join("plans/ekshandson.toml")).unwrap();
        let observed = crate::refresh::snapshot::load(&root.join("plans/ekshandson.observed.json")).unwrap();
        let plan = crate::plan::plan(&desired, &observed, &Default::default()).unwrap();
        assert!(!plan.changes.is_empty());
        let mut out = Vec::new();
        super::write(&plan, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), super::render(&plan));
    }
}
