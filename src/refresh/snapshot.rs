//! Observed-state snapshot files (`--observed FILE`): JSON in the format of
//! [`Observed`], documented in `docs/snapshot.md`.

use std::path::Path;

use crate::config::{Problem, Source};
use crate::model::observed::{Observed, SNAPSHOT_FORMAT_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read snapshot {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(Box<Problem>),
}

/// Read and check a snapshot file.
pub fn load(path: &Path) -> Result<Observed, SnapshotError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SnapshotError::Read { path: name.clone(), source })?;
    parse(&name, text)
}

/// Parse snapshot text; `name` is used in messages.
pub fn parse(name: &str, text: String) -> Result<Observed, SnapshotError> {
    let source = Source::new(name, text);
    let invalid = |span: std::ops::Range<usize>, message: String, help: &str| {
        SnapshotError::Invalid(Box::new(Problem {
            code: "irsa::snapshot::invalid",
            message,
            source: source.clone(),
            span,
            label: "here".into(),
            help: Some(help.into()),
        }))
    };
    let parsed = match serde_json::from_str::<Observed>(&source.text) {
        Ok(o) if o.format_version == SNAPSHOT_FORMAT_VERSION => return Ok(o),
        other => other,
    };
    // Then the version, read alone, so that a newer file gets "upgrade
    // irsa", not a confusing complaint about a field this version does not
    // know. Not first: it is a second pass over the whole text, which a
    // snapshot of a large stack (hundreds of MB) should not pay when it is
    // fine.
    #[derive(serde::Deserialize)]
    struct Version {
        format_version: Option<u32>,
    }
    match serde_json::from_str::<Version>(&source.text) {
        Ok(Version { format_version: Some(v) }) if v > SNAPSHOT_FORMAT_VERSION => {
            return Err(invalid(
                0..0,
                format!("snapshot format version {v} is newer than this irsa reads ({SNAPSHOT_FORMAT_VERSION})"),
                "upgrade irsa, or export the snapshot again with this version",
            ));
        }
        Ok(Version { format_version: Some(v) }) if v != SNAPSHOT_FORMAT_VERSION => {
            return Err(invalid(
                0..0,
                format!(
                    "snapshot format version {v} does not exist; this irsa reads version {SNAPSHOT_FORMAT_VERSION}"
                ),
                "set \"format_version\": 1 (the format is described in docs/snapshot.md)",
            ));
        }
        Ok(Version { format_version: None }) => {
            return Err(invalid(
                0..0,
                "the snapshot has no format_version".into(),
                "this does not look like an irsa snapshot; the format is described in docs/snapshot.md",
            ));
        }
        _ => {}
    }
    parsed.map_err(|e| {
        let offset = source.offset_of(e.line(), e.column());
        // serde_json appends " at line L column C"; the position is shown anyway.
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        invalid(offset..offset, format!("invalid snapshot: {message}"), "the format is described in docs/snapshot.md")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_point_at_line_and_column() {
        let text = "{\n  \"format_version\": 1,\n  \"iam\": {\"roles\": 3},\n  \"cluster\": {}\n}".to_owned();
        let SnapshotError::Invalid(p) = parse("s.json", text).unwrap_err() else { panic!("expected a located error") };
        assert_eq!(p.location(), "s.json:3:20"); // the `3`
        assert!(p.message.contains("invalid type"), "{}", p.message);
    }

    #[test]
    fn newer_versions_are_refused_by_name() {
        let SnapshotError::Invalid(p) =
            parse("s.json", r#"{"format_version": 9, "iam": {}, "cluster": {}}"#.into()).unwrap_err()
        else {
            panic!()
        };
        assert!(p.message.contains("newer"), "{}", p.message);
    }

    #[test]
    fn only_version_1_exists() {
        let SnapshotError::Invalid(p) =
            parse("s.json", r#"{"format_version": 0, "iam": {}, "cluster": {}}"#.into()).unwrap_err()
        else {
            panic!()
        };
        assert!(p.message.contains("version 0 does not exist"), "{}", p.message);
    }

    #[test]
    fn quotas_default_field_by_field_and_refuse_unknown_keys() {
        let o = parse(
            "s.json",
            r#"{"format_version": 1, "iam": {"quotas": {"attached_policies_per_role": 20}}, "cluster": {}}"#.into(),
        )
        .unwrap();
        let q = o.iam.quotas.unwrap();
        assert_eq!((q.attached_policies_per_role, q.trust_policy_size), (20, 2048));
        assert!(
            parse("s.json", r#"{"format_version": 1, "iam": {"quotas": {"roles": 1}}, "cluster": {}}"#.into()).is_err()
        );
    }

    #[test]
    fn each_cluster_of_a_stack_of_several_is_read_by_name_and_written_back() {
        let text = r#"{"format_version": 1, "iam": {}, "clusters": {"blue": {"namespaces": ["a"]}, "green": {}}}"#;
        let o = parse("s.json", text.into()).unwrap();
        assert_eq!(o.clusters.keys().collect::<Vec<_>>(), ["blue", "green"]);
        assert_eq!(o.cluster_state(Some("blue")).unwrap().namespaces, ["a"]);
        assert!(o.cluster_state(Some("red")).is_none());
        let again = parse("s.json", serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(again, o);
        // A one-cluster snapshot writes no `clusters` at all, as before.
        let one = parse("s.json", r#"{"format_version": 1, "iam": {}, "cluster": {}}"#.into()).unwrap();
        assert!(!serde_json::to_string(&one).unwrap().contains("clusters"));
    }

    #[test]
    fn a_minimal_snapshot_reads() {
        let o = parse("s.json", r#"{"format_version": 1, "iam": {}, "cluster": {}}"#.into()).unwrap();
        assert!(o.iam.roles.is_empty());
    }
}
