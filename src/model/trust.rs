//! Trust policies generated from the service accounts bound to a role.
//!
//! A role's trust policy is never hand-written in the stack file: each bound
//! ServiceAccount contributes its exact `system:serviceaccount:<ns>:<name>`
//! subject, which is the part people get wrong by hand.

use serde_json::{Value, json};

use super::desired::markers::STS_AUDIENCE;
use super::policy_doc::PolicyDocument;

/// The `Sid` that marks irsa's statement in a trust policy it shares with
/// others (an `arn =` role with `manage_trust = true`). Sids allow only
/// letters and digits, so the stack name is reduced to those.
pub fn irsa_sid(stack: &str) -> String {
    let name: String = stack.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("Irsa{name}")
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
                format!("{issuer_host_path}:aud"): STS_AUDIENCE,
                format!("{issuer_host_path}:sub"): sub,
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

/// The whole trust policy of a role irsa owns: irsa's statement alone.
pub fn owned_trust_policy(statement: Value) -> PolicyDocument {
    PolicyDocument::from_value(json!({ "Version": "2012-10-17", "Statement": [statement] }))
}

/// The trust policy of a shared role: `existing` with irsa's statement (found
/// by its Sid) replaced by `statement`, or added; every other statement is kept
/// exactly as it is.
pub fn merged_trust_policy(existing: &PolicyDocument, sid: &str, statement: Value) -> PolicyDocument {
    let mut doc = existing.canonical().clone();
    let mut statements: Vec<Value> =
        existing.statements().iter().filter(|s| s.get("Sid").and_then(Value::as_str) != Some(sid)).cloned().collect();
    statements.push(statement);
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
    fn merging_keeps_foreign_statements_and_replaces_ours() {
        let foreign =
            json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
        let old_ours = web_identity_statement("IrsaX", PROVIDER, ISSUER, &["system:serviceaccount:old:sa".into()]);
        let existing =
            PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [foreign.clone(), old_ours]}));
        let new_ours = web_identity_statement("IrsaX", PROVIDER, ISSUER, &["system:serviceaccount:new:sa".into()]);
        let merged = merged_trust_policy(&existing, "IrsaX", new_ours.clone());
        let expected = PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [foreign, new_ours]}));
        assert_eq!(merged, expected);
        assert_eq!(merged.statements().len(), 2);
    }
}
