//! Trust policies generated from the service accounts bound to a role.
//!
//! A role's trust policy is never hand-written in the stack file: each bound
//! ServiceAccount contributes its exact `system:serviceaccount:<ns>:<name>`
//! subject, which is the part people get wrong by hand.

use serde_json::{Value, json};

use super::desired::markers::STS_AUDIENCE;
use super::desired::{Binding, Desired};
use super::policy_doc::PolicyDocument;

/// The `Sid` that marks irsa's statement in a trust policy it shares with
/// others (an `arn =` role with `manage_trust = true`). Sids allow only
/// letters and digits, so the stack name is reduced to those.
pub fn irsa_sid(stack: &str) -> String {
    let name: String = stack.chars().filter(char::is_ascii_alphanumeric).collect();
    ["Irsa", &name].concat()
}

/// The `Sid` of the stack's statement for one cluster: [`irsa_sid`] in a
/// `[cluster]` file, and `Irsa<stack>In<cluster>` for `[clusters.<cluster>]`
/// (one statement per cluster's provider). A stack of several clusters has a
/// `[stack] name` (lowercase), so the capital `I` of `In` cannot be part of
/// it and [`is_stack_sid`] tells every stack's statements apart.
pub fn cluster_sid(stack: &str, cluster: Option<&str>) -> String {
    let base = irsa_sid(stack);
    match cluster {
        None => base,
        Some(c) => format!("{base}In{}", c.chars().filter(char::is_ascii_alphanumeric).collect::<String>()),
    }
}

/// Whether `sid` marks one of `stack`'s statements, for any cluster it has
/// or had: the statement of a cluster taken out of the file is found by it.
pub fn is_stack_sid(sid: &str, stack: &str) -> bool {
    let base = irsa_sid(stack);
    sid == base
        || sid.strip_prefix(base.as_str()).and_then(|rest| rest.strip_prefix("In")).is_some_and(|cluster| {
            !cluster.is_empty() && cluster.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The statements irsa wants in the trust policy of role `role_key`: one
/// per cluster the role is bound in, in cluster order, each for that
/// cluster's provider and the subjects bound there. `issuer_of` gives each
/// cluster's issuer; a cluster whose issuer is unknown gets no statement.
pub fn role_statements<'i>(
    desired: &Desired,
    role_key: &str,
    account: &str,
    issuer_of: impl Fn(Option<&str>) -> Option<&'i str>,
) -> Vec<Value> {
    let mut by_cluster: Vec<(Option<&str>, Vec<String>)> = Vec::new();
    for b in desired.bindings_of(role_key) {
        let key = b.cluster.as_deref();
        match by_cluster.iter_mut().find(|(k, _)| *k == key) {
            Some((_, subjects)) => subjects.push(Binding::subject(b)),
            None => by_cluster.push((key, vec![b.subject()])),
        }
    }
    let mut out = Vec::with_capacity(by_cluster.len());
    for cluster in &desired.clusters {
        let key = cluster.key.as_deref();
        let (Some((_, subjects)), Some(issuer)) = (by_cluster.iter().find(|(k, _)| *k == key), issuer_of(key)) else {
            continue;
        };
        let provider = desired.oidc_provider_arn(account, issuer);
        let sid = cluster_sid(&desired.stack.name, key);
        out.push(web_identity_statement(&sid, &provider, Desired::issuer_host_path(issuer), subjects));
    }
    out
}

/// irsa's statement: the OIDC provider may assume the role for exactly these
/// subjects, with the STS audience.
pub fn web_identity_statement(sid: &str, provider_arn: &str, issuer_host_path: &str, subjects: &[String]) -> Value {
    let mut subjects = subjects.to_vec();
    subjects.sort();
    subjects.dedup();
    let sub: Value = if subjects.len() == 1 { json!(subjects[0]) } else { json!(subjects) };
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": { "Federated": provider_arn },
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                [issuer_host_path, ":aud"].concat(): STS_AUDIENCE,
                [issuer_host_path, ":sub"].concat(): sub,
            }
        }
    })
}

/// A statement without its `Sid`: irsa's statement as people write it by
/// hand, and as AWS's documentation shows it.
pub fn without_sid(statement: &Value) -> Value {
    let mut s = statement.clone();
    if let Value::Object(map) = &mut s {
        map.remove("Sid");
    }
    s
}

/// Whether two statements mean the same, compared as policy documents are.
pub fn same_statement(a: &Value, b: &Value) -> bool {
    let doc = |s: &Value| PolicyDocument::from_value(json!({ "Version": "2012-10-17", "Statement": [s] }));
    doc(a) == doc(b)
}

/// The whole trust policy of a role irsa owns: irsa's statements alone
/// (one per cluster the role is bound in).
pub fn owned_trust_policy(statements: Vec<Value>) -> PolicyDocument {
    // The statements moved in: `json!` would serialize them into a copy.
    let doc = serde_json::Map::from_iter([
        ("Version".to_owned(), Value::from("2012-10-17")),
        ("Statement".to_owned(), Value::Array(statements)),
    ]);
    PolicyDocument::from_value(Value::Object(doc))
}

/// About how many more ServiceAccounts fit in a trust policy of `size`
/// characters under `quota`, from the length of the subjects it has: each
/// adds its quoted subject and a comma.
pub fn subjects_that_fit(size: usize, quota: usize, subjects: &[String]) -> usize {
    let each = if subjects.is_empty() {
        "\"system:serviceaccount:namespace:service-account\",".len()
    } else {
        subjects.iter().map(|s| s.len() + 3).sum::<usize>().div_ceil(subjects.len())
    };
    quota.saturating_sub(size) / each
}

/// `existing` (its Version and any other top-level key) with `statements`
/// as its statements.
pub fn with_statements(existing: &PolicyDocument, statements: Vec<Value>) -> PolicyDocument {
    let mut doc = existing.canonical().clone();
    if let Value::Object(map) = &mut doc {
        map.insert("Statement".into(), Value::Array(statements));
        map.entry("Version").or_insert_with(|| json!("2012-10-17"));
    } else {
        doc = json!({ "Version": "2012-10-17", "Statement": statements });
    }
    PolicyDocument::from_value(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";
    const ISSUER: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABC";

    #[test]
    fn sid_keeps_only_letters_and_digits() {
        assert_eq!(irsa_sid("eks-hands_on2"), "Irsaekshandson2");
    }

    #[test]
    fn one_subject_is_a_string_many_are_a_sorted_list() {
        let one = web_identity_statement("S", PROVIDER, ISSUER, &["system:serviceaccount:a:b".into()]);
        assert_eq!(one["Condition"]["StringEquals"][format!("{ISSUER}:sub")], json!("system:serviceaccount:a:b"));
        assert_eq!(one["Condition"]["StringEquals"][format!("{ISSUER}:aud")], json!("sts.amazonaws.com"));
        assert_eq!(one["Principal"]["Federated"], json!(PROVIDER));
        let many = web_identity_statement(
            "S",
            PROVIDER,
            ISSUER,
            &["system:serviceaccount:z:b".into(), "system:serviceaccount:a:b".into()],
        );
        assert_eq!(
            many["Condition"]["StringEquals"][format!("{ISSUER}:sub")],
            json!(["system:serviceaccount:a:b", "system:serviceaccount:z:b"])
        );
    }

    #[test]
    fn each_cluster_has_its_own_sid_and_every_one_is_the_stacks() {
        assert_eq!(cluster_sid("team-a", None), "Irsateama");
        assert_eq!(cluster_sid("team-a", Some("blue-1")), "IrsateamaInblue1");
        for sid in ["Irsateama", "IrsateamaInblue1", "IrsateamaIngreen"] {
            assert!(is_stack_sid(sid, "team-a"), "{sid}");
        }
        // Another stack's, or no stack's.
        for sid in ["Irsateamab", "IrsateamabInblue", "IrsateamaIn", "IrsateamaInBlue", "Irsa", "Other"] {
            assert!(!is_stack_sid(sid, "team-a"), "{sid}");
        }
    }

    #[test]
    fn room_for_subjects_is_counted_from_the_subjects_there() {
        let subjects = vec!["system:serviceaccount:ns:a".to_owned(); 2];
        // 29 characters each with quotes and comma.
        assert_eq!(subjects_that_fit(1000, 1058, &subjects), 2);
        assert_eq!(subjects_that_fit(1100, 1058, &subjects), 0);
    }

    #[test]
    fn merging_keeps_foreign_statements_and_replaces_ours() {
        let foreign =
            json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
        let old_ours = web_identity_statement("IrsaX", PROVIDER, ISSUER, &["system:serviceaccount:old:sa".into()]);
        let existing =
            PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [foreign.clone(), old_ours]}));
        let new_ours = web_identity_statement("IrsaX", PROVIDER, ISSUER, &["system:serviceaccount:new:sa".into()]);
        // As the planner merges a shared role's trust: the others' statements kept, ours replaced.
        let mut kept: Vec<Value> = existing
            .statements()
            .iter()
            .filter(|s| !s["Sid"].as_str().is_some_and(|sid| is_stack_sid(sid, "X")))
            .cloned()
            .collect();
        kept.push(new_ours.clone());
        let merged = with_statements(&existing, kept);
        let expected = PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [foreign, new_ours]}));
        assert_eq!(merged, expected);
        assert_eq!(merged.statements().len(), 2);
    }
}
