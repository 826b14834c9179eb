//! Loading a stack file: TOML text → spanned raw values → checked [`Desired`].
//!
//! Every rule of SPEC.md's "Rules the loader enforces" runs here, all problems
//! of a file are collected in one pass, and nothing but reading the stack file
//! and its policy documents happens: no network call.

pub mod diagnostic;
pub mod raw;
pub mod schema;
mod validate;

use std::path::Path;

pub use diagnostic::{Problem, Problems, Source};

use crate::model::desired::Desired;

/// Why a stack file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read stack file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] Problems),
}

/// Load and check the stack file at `path`.
pub fn load(path: &Path) -> Result<Desired, LoadError> {
    let text = std::fs::read(path).map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
    let name = path.display().to_string();
    let text = match String::from_utf8(text) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let source = Source::new(name, lossy);
            let problem = Problem {
                code: "irsa::config::not_utf8",
                message: "the stack file is not valid UTF-8".into(),
                span: valid..valid + 1,
                source,
                label: "this byte is not UTF-8".into(),
                help: Some("save the file as UTF-8".into()),
            };
            return Err(Problems { path: path.to_owned(), problems: vec![problem] }.into());
        }
    };
    parse(path, text).map_err(LoadError::Invalid)
}

/// Check stack-file text as if it were read from `path` (document files are
/// resolved against `path`'s directory).
pub fn parse(path: &Path, text: String) -> Result<Desired, Problems> {
    validate::load_str(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::desired::{PolicyRef, Role};
    use std::collections::BTreeMap;

    const DOC: &str =
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}"#;

    fn with_cluster(body: &str) -> String {
        format!("version = 1\n[cluster]\nname = \"c\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\n{body}")
    }

    fn load_text(text: String) -> Result<Desired, Problems> {
        parse(Path::new("stack.toml"), text)
    }

    /// (line, column, message) of every problem, in order.
    fn problems(text: String) -> Vec<(usize, usize, String)> {
        match load_text(text) {
            Ok(_) => panic!("expected problems"),
            Err(p) => p
                .problems
                .iter()
                .map(|p| {
                    let (l, c) = p.source.line_col(p.span.start);
                    (l, c, p.message.clone())
                })
                .collect(),
        }
    }

    #[test]
    fn defaults_fill_in_what_entries_leave_out() {
        let d = load_text(with_cluster(&format!(
            r#"
[defaults]
role_path = "/irsa/"
permissions_boundary = "arn:aws:iam::123456789012:policy/boundary"
tags = {{ team = "platform", env = "prod" }}
[policies.p]
document = '{DOC}'
tags = {{ env = "dev" }}
[roles.r]
policies = ["p", "arn:aws:iam::aws:policy/ReadOnlyAccess"]
[roles.own-path]
path = "/other/"
[roles.legacy]
arn = "arn:aws:iam::123456789012:role/team/Legacy"
[[service_accounts]]
namespace = "ns"
name = "a"
role = "r"
workloads = ["deployment/web"]
[[service_accounts]]
namespace = "ns"
name = "b"
role = "own-path"
[[service_accounts]]
namespace = "ns"
name = "c"
role = "legacy"
"#
        )))
        .unwrap();
        assert_eq!(d.partition(), "aws");
        assert_eq!(d.policies["p"].tags["env"], "dev", "an entry's tag wins over the default");
        assert_eq!(d.policies["p"].tags["team"], "platform");
        let Role::Owned(r) = &d.roles["r"] else { panic!() };
        assert_eq!(r.path, "/irsa/");
        assert_eq!(r.max_session_duration, 3600);
        assert_eq!(r.permissions_boundary.as_deref(), Some("arn:aws:iam::123456789012:policy/boundary"));
        assert_eq!(
            r.policies,
            [PolicyRef::Stack("p".into()), PolicyRef::Arn("arn:aws:iam::aws:policy/ReadOnlyAccess".into())]
        );
        assert_eq!(d.role_arn(r), "arn:aws:iam::123456789012:role/irsa/r");
        let Role::Owned(o) = &d.roles["own-path"] else { panic!() };
        assert_eq!(o.path, "/other/");
        let Role::Referenced(l) = &d.roles["legacy"] else { panic!() };
        assert_eq!((l.name.as_str(), l.manage_trust), ("Legacy", false));
        assert_eq!(d.bindings[0].deployments, ["web"]);
        assert_eq!(d.bindings[0].subject(), "system:serviceaccount:ns:a");
    }

    #[test]
    fn a_preset_becomes_stack_policies_attached_to_its_role() {
        let d = load_text(with_cluster(
            r#"
[defaults]
tags = { team = "platform" }
[roles.k]
path = "/addons/"
tags = { own = "role" }
policies = ["arn:aws:iam::aws:policy/ReadOnlyAccess", "preset:karpenter"]
[roles.k.presets.karpenter]
cluster_name = "other"
[[service_accounts]]
namespace = "karpenter"
name = "karpenter"
role = "k"
"#,
        ))
        .unwrap();
        let Role::Owned(r) = &d.roles["k"] else { panic!() };
        assert_eq!(
            r.policies,
            [
                PolicyRef::Arn("arn:aws:iam::aws:policy/ReadOnlyAccess".into()),
                PolicyRef::Stack("k-karpenter-node-lifecycle".into()),
                PolicyRef::Stack("k-karpenter-integration".into()),
            ]
        );
        let p = &d.policies["k-karpenter-integration"];
        assert_eq!(p.path, "/addons/", "the role's path");
        assert_eq!(p.tags, BTreeMap::from([("team".to_owned(), "platform".to_owned())]), "[defaults] tags only");
        let origin = p.preset.as_ref().unwrap();
        assert_eq!((origin.preset, origin.version, origin.role.as_str()), ("karpenter", 1, "k"));
        assert_eq!(d.policy_arn(p), "arn:aws:iam::123456789012:policy/addons/k-karpenter-integration");
        // The defaults follow the given cluster name; region and account the [cluster].
        let doc = p.document.to_compact();
        assert!(doc.contains("arn:aws:sqs:us-east-1:123456789012:other"), "{doc}");
        assert!(doc.contains("arn:aws:iam::123456789012:role/KarpenterNodeRole-other"), "{doc}");
        assert!(doc.contains("arn:aws:eks:us-east-1:123456789012:cluster/other"), "{doc}");
        assert!(!doc.contains("${"), "{doc}");
    }

    /// A stack file and the (line, column, message part) of each of its problems.
    type Case<'a> = (&'a str, &'a [(usize, usize, &'a str)]);

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let cases: &[Case<'_>] = &[
            (
                "[cluster]\nname = \"c\"",
                &[
                    (1, 1, "missing the required key `version`"),
                    (1, 2, "missing the required key `region`"),
                    (1, 2, "missing the required key `account_id`"),
                ],
            ),
            ("version = 1\nversion = 1", &[(2, 1, "invalid TOML")]),
            (
                "version = 1\nbogus = true\n[cluster]\nname = \"c\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\nzone = 1",
                &[(2, 1, "unknown key `bogus` in the stack file"), (7, 1, "unknown key `zone` in [cluster]")],
            ),
            (
                "version = 1\n[cluster]\nname = \"c\"\nregion = \"us-east-1\"\naccount_id = 123456789012",
                &[(5, 14, "must be a string, not an integer")],
            ),
        ];
        for (text, expected) in cases {
            let mut got = problems((*text).to_owned());
            got.sort();
            let mut want: Vec<(usize, usize, &str)> = expected.to_vec();
            want.sort();
            assert_eq!(got.len(), want.len(), "{text:?}: {got:#?}");
            for ((l, c, m), (wl, wc, wm)) in got.iter().zip(&want) {
                assert_eq!((l, c), (wl, wc), "{text:?}: {m}");
                assert!(m.contains(wm), "{text:?}: {m:?} lacks {wm:?}");
            }
        }
    }

    #[test]
    fn references_and_ownership_rules() {
        let cases: &[(&str, &str)] = &[
            (
                "[roles.r]\npolicies = [\"mising\"]\n[policies.missing]\ndocument = 'DOC'\n[[service_accounts]]\nnamespace = \"n\"\nname = \"a\"\nrole = \"r\"",
                "uses policy `mising`, which is not defined",
            ),
            (
                "[[service_accounts]]\nnamespace = \"n\"\nname = \"a\"\nrole = \"nobody\"",
                "uses role `nobody`, which is not defined",
            ),
            (
                "[roles.l]\narn = \"arn:aws:iam::123456789012:role/L\"\npolicies = []\n[[service_accounts]]\nnamespace = \"n\"\nname = \"a\"\nrole = \"l\"",
                "cannot take `policies`",
            ),
            (
                "[roles.r]\nmanage_trust = true\n[[service_accounts]]\nnamespace = \"n\"\nname = \"a\"\nrole = \"r\"",
                "`manage_trust` belongs only to roles referenced by `arn`",
            ),
            (
                "[roles.r]\n[[service_accounts]]\nnamespace = \"n\"\nname = \"a\"\nrole = \"r\"\n[[service_accounts]]\nnamespace = \"n\"\nname = \"a\"\nrole = \"r\"",
                "is bound twice (first on line 9)",
            ),
            (
                "[roles.r]\n[[service_accounts]]\nnamespace = \"n\"\nname = \"a\"\nrole = \"r\"\nannotations = { \"eks.amazonaws.com/role-arn\" = \"x\" }",
                "is irsa's to set",
            ),
            (
                "[roles.r]\n[roles.R]\n[[service_accounts]]\nnamespace = \"n\"\nname = \"a\"\nrole = \"r\"\n[[service_accounts]]\nnamespace = \"n\"\nname = \"b\"\nrole = \"R\"",
                "differs only in case",
            ),
        ];
        for (body, expected) in cases {
            let got = problems(with_cluster(&body.replace("DOC", DOC)));
            assert!(got.iter().any(|(_, _, m)| m.contains(expected)), "{body:?}: {got:#?}");
        }
    }

    #[test]
    fn quotas_come_from_the_one_table() {
        let policies: Vec<String> = (0..11).map(|i| format!("\"arn:aws:iam::aws:policy/P{i}\"")).collect();
        let body = format!(
            "[roles.r]\npolicies = [{}]\n[[service_accounts]]\nnamespace = \"n\"\nname = \"a\"\nrole = \"r\"",
            policies.join(", ")
        );
        let got = problems(with_cluster(&body));
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].2.contains("has 11 managed policies; IAM allows 10 per role"), "{got:#?}");
    }

    #[test]
    fn defaults_tags_over_the_quota_are_one_problem_at_the_table() {
        let tags =
            |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i} = \"v\"")).collect::<Vec<_>>().join(", ");
        let body = |defaults: usize, own: usize| {
            format!(
                "[defaults]\ntags = {{ {} }}\n[policies.p]\ndocument = '{DOC}'\n[policies.q]\ndocument = '{DOC}'\n[roles.r]\npolicies = [\"p\", \"q\"]\ntags = {{ {} }}\n[[service_accounts]]\nnamespace = \"n\"\nname = \"a\"\nrole = \"r\"",
                tags("d", defaults),
                tags("o", own)
            )
        };
        assert!(load_text(with_cluster(&body(48, 0))).is_ok(), "48 of the defaults' and irsa's 2 fit");
        let got = problems(with_cluster(&body(49, 0)));
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!((got[0].0, got[0].1), (7, 1));
        assert!(got[0].2.starts_with("[defaults] tags has 49 tags"), "{got:#?}");
        // The role's own tags break the quota by themselves too: that is a
        // second problem, at the role.
        let got = problems(with_cluster(&body(49, 49)));
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[1].2.contains("role `r` would carry 100 tags"), "{got:#?}");
        assert!(got[1].2.contains("49 of them from [defaults] tags"), "{got:#?}");
        // The defaults fit; with the role's own they do not: at the role.
        let got = problems(with_cluster(&body(40, 9)));
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].2.contains("role `r` would carry 51 tags"), "{got:#?}");
    }
}
