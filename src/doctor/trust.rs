//! A role's trust policy evaluated the way STS evaluates
//! `AssumeRoleWithWebIdentity`, and what a statement admits besides.
//!
//! STS allows the call when some Allow statement applies and no Deny
//! statement does. A statement applies when its principal names the OIDC
//! provider (or is `*`), its action covers `sts:AssumeRoleWithWebIdentity`,
//! and every condition holds against the request context, whose keys are
//! `<issuer>:sub`, `<issuer>:aud` (the token's claims) and nothing irsa
//! needs besides. Condition key names are case-insensitive, values are not
//! (but for the `IgnoreCase` operators). A key missing from the context
//! fails a plain operator, passes a negated one (`StringNotEquals`), an
//! `…IfExists` one and a `ForAllValues:` one, and fails a `ForAnyValue:` one
//! (IAM's documented rules). Operators irsa cannot evaluate leave the
//! statement undecided, and an undecided Deny is reported, never ignored.

use serde_json::Value;

use crate::model::policy_doc::{PolicyDocument, glob};

const ACTION: &str = "sts:assumerolewithwebidentity";

/// What the pod presents to STS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentity<'a> {
    pub provider_arn: &'a str,
    /// The issuer without `https://`: the prefix of the condition keys.
    pub issuer_host_path: &'a str,
    pub sub: &'a str,
    pub aud: &'a [String],
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, by these statements.
    Allowed(Vec<String>),
    /// Denied explicitly by this statement.
    Denied(String),
    /// No Allow statement applies: why each statement that names the
    /// provider does not (empty when none names it).
    NotAllowed(Vec<String>),
    /// A statement irsa cannot evaluate decides it: which and why.
    Undecided(String),
}

/// Whether a statement applies, when irsa can tell; `No` says why.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Applies {
    Yes,
    No(String),
    Unknown(String),
}

impl Applies {
    fn and(self, other: impl FnOnce() -> Applies) -> Applies {
        match self {
            Applies::Yes => other(),
            no_or_unknown => no_or_unknown,
        }
    }
}

/// A statement's name in messages: its Sid, else its place in the document
/// as IAM shows it in canonical (sorted) order.
pub fn label(statement: &Value, index: usize) -> String {
    match statement.get("Sid").and_then(Value::as_str) {
        Some(sid) => format!("statement {sid}"),
        None => format!("statement #{} (no Sid)", index + 1),
    }
}

/// Evaluate `doc` for `identity`, as STS would.
pub fn evaluate(doc: &PolicyDocument, identity: &WebIdentity<'_>) -> Decision {
    let mut allowed = Vec::new();
    let mut why_not = Vec::new();
    let mut undecided = None;
    for (i, statement) in doc.statements().iter().enumerate() {
        let applies = applies(statement, identity);
        let name = label(statement, i);
        match (statement.get("Effect").and_then(Value::as_str), applies) {
            (Some("Deny"), Applies::Yes) => return Decision::Denied(name),
            (Some("Deny"), Applies::Unknown(why)) => {
                undecided.get_or_insert(format!("{name} (Deny): {why}"));
            }
            (Some("Allow"), Applies::Yes) => allowed.push(name),
            (Some("Allow"), Applies::No(why)) if names_provider(statement, identity.provider_arn) => {
                why_not.push(format!("{name}: {why}"));
            }
            (Some("Allow"), Applies::Unknown(why))
                if undecided.is_none() && names_provider(statement, identity.provider_arn) =>
            {
                undecided = Some(format!("{name}: {why}"));
            }
            _ => {}
        }
    }
    // A Deny irsa cannot evaluate may block what an Allow admits.
    match (allowed.is_empty(), undecided) {
        (false, None) => Decision::Allowed(allowed),
        (_, Some(why)) => Decision::Undecided(why),
        (true, None) => Decision::NotAllowed(why_not),
    }
}

fn applies(statement: &Value, identity: &WebIdentity<'_>) -> Applies {
    principal(statement, identity.provider_arn).and(|| action(statement)).and(|| conditions(statement, identity))
}

fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether the statement's principal names the provider (not `*`).
pub fn names_provider(statement: &Value, provider_arn: &str) -> bool {
    statement.pointer("/Principal/Federated").is_some_and(|f| strings(f).contains(&provider_arn))
}

fn principal(statement: &Value, provider_arn: &str) -> Applies {
    if statement.get("NotPrincipal").is_some() {
        return Applies::Unknown("it has a NotPrincipal".into());
    }
    match statement.get("Principal") {
        Some(Value::String(s)) if s == "*" => Applies::Yes,
        Some(Value::Object(p)) => {
            if p.get("Federated").is_some_and(|f| strings(f).iter().any(|f| *f == provider_arn || *f == "*")) {
                Applies::Yes
            } else {
                let federated: Vec<&str> = p.get("Federated").map(strings).unwrap_or_default();
                if federated.is_empty() {
                    Applies::No("its principal is not a federated one".into())
                } else {
                    Applies::No(format!("its principal is {}, not the provider", federated.join(", ")))
                }
            }
        }
        _ => Applies::No("it has no principal".into()),
    }
}

fn action(statement: &Value) -> Applies {
    let covers = |actions: &Value| strings(actions).iter().any(|a| glob(&a.to_ascii_lowercase(), ACTION));
    match (statement.get("Action"), statement.get("NotAction")) {
        (Some(a), _) if covers(a) => Applies::Yes,
        (Some(a), _) => {
            Applies::No(format!("its action is {}, not sts:AssumeRoleWithWebIdentity", strings(a).join(", ")))
        }
        (None, Some(a)) if covers(a) => Applies::No("its NotAction excludes sts:AssumeRoleWithWebIdentity".into()),
        (None, Some(_)) => Applies::Yes,
        (None, None) => Applies::No("it has no action".into()),
    }
}

fn conditions(statement: &Value, identity: &WebIdentity<'_>) -> Applies {
    let Some(block) = statement.get("Condition") else { return Applies::Yes };
    let Value::Object(operators) = block else { return Applies::Unknown("its Condition is not an object".into()) };
    let mut result = Applies::Yes;
    for (operator, keys) in operators {
        let Value::Object(keys) = keys else {
            return Applies::Unknown(format!("condition operator {operator} does not map keys to values"));
        };
        for (key, values) in keys {
            let this = condition(operator, key, values, identity);
            // A failed condition decides; an unknown one only if none fails.
            match (&result, this) {
                (Applies::No(_), _) => {}
                (_, no @ Applies::No(_)) => result = no,
                (Applies::Yes, unknown @ Applies::Unknown(_)) => result = unknown,
                _ => {}
            }
        }
    }
    result
}

/// The context values of `key` for this request: `None` when the key is
/// not in the context at all, `Err` when irsa does not know.
fn context<'a>(key: &str, identity: &'a WebIdentity<'_>) -> Result<Option<Vec<&'a str>>, ()> {
    let key = key.to_ascii_lowercase();
    let issuer = identity.issuer_host_path.to_ascii_lowercase();
    if key == format!("{issuer}:sub") {
        return Ok(Some(vec![identity.sub]));
    }
    if key == format!("{issuer}:aud") {
        return Ok(Some(identity.aud.iter().map(String::as_str).collect()));
    }
    // Another provider's claims are never in this request's context.
    if key.contains("oidc") && [":sub", ":aud", ":amr", ":azp"].iter().any(|k| key.ends_with(k)) {
        return Ok(None);
    }
    Err(())
}

fn condition(operator: &str, key: &str, values: &Value, identity: &WebIdentity<'_>) -> Applies {
    let (set, rest) = if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
        (Some(true), rest)
    } else if let Some(rest) = operator.strip_prefix("ForAllValues:") {
        (Some(false), rest)
    } else {
        (None, operator)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    let patterns = strings(values);
    let Ok(present) = context(key, identity) else {
        return Applies::Unknown(format!("irsa cannot evaluate condition key {key}"));
    };
    if base == "Null" {
        let wants_absent = patterns.first().is_some_and(|p| p.eq_ignore_ascii_case("true"));
        return if present.is_none() == wants_absent {
            Applies::Yes
        } else {
            Applies::No(format!("Null condition on {key} does not hold"))
        };
    }
    let (negated, matches): (bool, fn(&str, &str) -> bool) = match base {
        "StringEquals" => (false, |p, v| p == v),
        "StringNotEquals" => (true, |p, v| p == v),
        "StringEqualsIgnoreCase" => (false, |p, v| p.eq_ignore_ascii_case(v)),
        "StringNotEqualsIgnoreCase" => (true, |p, v| p.eq_ignore_ascii_case(v)),
        "StringLike" => (false, glob),
        "StringNotLike" => (true, glob),
        _ => return Applies::Unknown(format!("irsa cannot evaluate condition operator {operator}")),
    };
    let Some(values) = present.filter(|v| !v.is_empty()) else {
        let holds = match set {
            Some(any) => !any,
            None => if_exists || negated,
        };
        return if holds { Applies::Yes } else { Applies::No(format!("the token has no {key}")) };
    };
    let value_holds = |v: &str| patterns.iter().any(|p| matches(p, v)) != negated;
    let holds = match set {
        Some(false) => values.iter().all(|v| value_holds(v)),
        // A plain operator on a key with several values (an `aud` list)
        // holds when any value does, as ForAnyValue.
        _ => values.iter().any(|v| value_holds(v)),
    };
    if holds {
        Applies::Yes
    } else {
        let shown: Vec<String> = patterns.iter().map(|p| format!("`{p}`")).collect();
        let seen: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        Applies::No(format!("{operator} {key} wants {}, the token has {}", shown.join(" or "), seen.join(", ")))
    }
}

/// What an Allow statement for the provider lets in, whoever asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Breadth {
    /// No positive condition on `sub`: every ServiceAccount of the cluster.
    AnySubject,
    /// A `StringLike` `sub` pattern with wildcards.
    Wildcard(String),
}

/// The Allow statements naming the provider that admit more than named
/// subjects, with their labels; and whether each has an `aud` condition.
pub fn breadth(doc: &PolicyDocument, provider_arn: &str, issuer_host_path: &str) -> Vec<(String, Breadth)> {
    let sub_key = format!("{}:sub", issuer_host_path.to_ascii_lowercase());
    let mut out = Vec::new();
    for (i, statement) in doc.statements().iter().enumerate() {
        if statement.get("Effect").and_then(Value::as_str) != Some("Allow")
            || !names_provider(statement, provider_arn)
            || action(statement) != Applies::Yes
        {
            continue;
        }
        let mut positive = Vec::new();
        for (operator, keys) in statement.get("Condition").and_then(Value::as_object).into_iter().flatten() {
            let base = operator.rsplit(':').next().unwrap_or(operator).trim_end_matches("IfExists");
            let is_positive = matches!(base, "StringEquals" | "StringEqualsIgnoreCase" | "StringLike");
            for (key, values) in keys.as_object().into_iter().flatten() {
                // IfExists and ForAllValues pass when the key is missing,
                // but every token has a sub: they still constrain it.
                if key.to_ascii_lowercase() == sub_key && is_positive {
                    positive.extend(strings(values).into_iter().map(|p| (base == "StringLike", p.to_owned())));
                }
            }
        }
        if positive.is_empty() {
            out.push((label(statement, i), Breadth::AnySubject));
        }
        for (like, pattern) in positive {
            if like && (pattern.contains('*') || pattern.contains('?')) {
                out.push((label(statement, i), Breadth::Wildcard(pattern)));
            }
        }
    }
    out
}

/// Whether the Allow statements naming the provider all constrain `aud`.
pub fn constrains_audience(doc: &PolicyDocument, provider_arn: &str, issuer_host_path: &str) -> bool {
    let aud_key = format!("{}:aud", issuer_host_path.to_ascii_lowercase());
    doc.statements()
        .iter()
        .filter(|s| s.get("Effect").and_then(Value::as_str) == Some("Allow") && names_provider(s, provider_arn))
        .all(|s| {
            s.get("Condition")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .any(|(_, keys)| keys.as_object().into_iter().flatten().any(|(k, _)| k.to_ascii_lowercase() == aud_key))
        })
}

/// In words, what a `sub` pattern admits.
pub fn describe_pattern(pattern: &str) -> String {
    let wild = |s: &str| s.contains('*') || s.contains('?');
    if pattern.chars().all(|c| c == '*') {
        return "any subject: every ServiceAccount of every namespace".into();
    }
    match pattern.strip_prefix("system:serviceaccount:").and_then(|rest| rest.split_once(':')) {
        Some((ns, "*")) if !wild(ns) => format!("every ServiceAccount of namespace {ns}"),
        Some((ns, name)) if !wild(ns) => format!("every ServiceAccount of namespace {ns} named like `{name}`"),
        Some((ns, name)) if !wild(name) => format!("ServiceAccounts named {name} in every namespace like `{ns}`"),
        _ => format!("every subject like `{pattern}`"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";
    const ISSUER: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABC";
    const SUB: &str = "system:serviceaccount:backend:app";

    fn allow(condition: Value) -> Value {
        json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER},
            "Action": "sts:AssumeRoleWithWebIdentity", "Condition": condition})
    }

    fn doc(statements: Vec<Value>) -> PolicyDocument {
        PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": statements}))
    }

    fn decide(statements: Vec<Value>, sub: &str, aud: &[&str]) -> Decision {
        let aud: Vec<String> = aud.iter().map(|a| (*a).to_owned()).collect();
        evaluate(&doc(statements), &WebIdentity { provider_arn: PROVIDER, issuer_host_path: ISSUER, sub, aud: &aud })
    }

    fn allowed(d: &Decision) -> bool {
        matches!(d, Decision::Allowed(_))
    }

    #[test]
    fn conditions_evaluate_as_sts_does() {
        let sub = format!("{ISSUER}:sub");
        let aud = format!("{ISSUER}:aud");
        let upper_sub = format!("{}:SUB", ISSUER.to_uppercase());
        // (case, condition, admits system:serviceaccount:backend:app with aud sts.amazonaws.com)
        let table: Vec<(&str, Value, bool)> = vec![
            ("exact sub and aud", json!({"StringEquals": {&sub: SUB, &aud: "sts.amazonaws.com"}}), true),
            ("another namespace", json!({"StringEquals": {&sub: "system:serviceaccount:other:app"}}), false),
            ("one of a list", json!({"StringEquals": {&sub: ["system:serviceaccount:x:y", SUB]}}), true),
            ("key names ignore case", json!({"StringEquals": {&upper_sub: SUB}}), true),
            ("values do not", json!({"StringEquals": {&sub: SUB.to_uppercase()}}), false),
            ("IgnoreCase values do", json!({"StringEqualsIgnoreCase": {&sub: SUB.to_uppercase()}}), true),
            ("StringLike namespace wildcard", json!({"StringLike": {&sub: "system:serviceaccount:backend:*"}}), true),
            ("StringLike elsewhere", json!({"StringLike": {&sub: "system:serviceaccount:front*:*"}}), false),
            ("StringEquals does not glob", json!({"StringEquals": {&sub: "system:serviceaccount:backend:*"}}), false),
            ("wrong audience", json!({"StringEquals": {&aud: "sts.example.com"}}), false),
            ("StringNotEquals another", json!({"StringNotEquals": {&sub: "system:serviceaccount:x:y"}}), true),
            ("StringNotEquals this", json!({"StringNotEquals": {&sub: SUB}}), false),
            ("ForAnyValue on aud", json!({"ForAnyValue:StringEquals": {&aud: ["a", "sts.amazonaws.com"]}}), true),
            ("ForAllValues on aud", json!({"ForAllValues:StringLike": {&aud: "sts.*"}}), true),
            (
                "ForAllValues on a missing key passes",
                json!({"ForAllValues:StringEquals": {"oidc.other/id/X:sub": "x"}}),
                true,
            ),
            (
                "ForAnyValue on a missing key fails",
                json!({"ForAnyValue:StringEquals": {"oidc.other/id/X:sub": "x"}}),
                false,
            ),
            ("a missing key fails StringEquals", json!({"StringEquals": {"oidc.other/id/X:sub": SUB}}), false),
            ("but passes IfExists", json!({"StringEqualsIfExists": {"oidc.other/id/X:sub": SUB}}), true),
            ("Null true on a present key", json!({"Null": {&sub: "true"}}), false),
            ("Null false on a present key", json!({"Null": {&sub: "false"}}), true),
            ("no condition at all", json!({}), true),
        ];
        for (case, condition, admits) in table {
            let d = decide(vec![allow(condition)], SUB, &["sts.amazonaws.com"]);
            assert_eq!(allowed(&d), admits, "{case}: {d:?}");
        }
    }

    #[test]
    fn principals_actions_and_denies() {
        let ok = json!({"StringEquals": {format!("{ISSUER}:sub"): SUB}});
        let mut other_provider = allow(ok.clone());
        other_provider["Principal"]["Federated"] = json!("arn:aws:iam::123456789012:oidc-provider/other");
        assert!(!allowed(&decide(vec![other_provider], SUB, &[])));
        let mut wrong_action = allow(ok.clone());
        wrong_action["Action"] = json!("sts:AssumeRole");
        let d = decide(vec![wrong_action], SUB, &[]);
        assert!(
            matches!(&d, Decision::NotAllowed(why) if why[0].contains("not sts:AssumeRoleWithWebIdentity")),
            "{d:?}"
        );
        let mut star_action = allow(ok.clone());
        star_action["Action"] = json!("sts:*");
        assert!(allowed(&decide(vec![star_action], SUB, &[])));
        let mut deny = allow(json!({"StringEquals": {format!("{ISSUER}:sub"): SUB}}));
        deny["Effect"] = json!("Deny");
        deny["Sid"] = json!("NoBackend");
        assert_eq!(decide(vec![allow(ok.clone()), deny], SUB, &[]), Decision::Denied("statement NoBackend".into()));
        let unknown = allow(json!({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}));
        assert!(matches!(decide(vec![unknown], SUB, &[]), Decision::Undecided(_)));
    }

    #[test]
    fn why_not_names_the_condition() {
        let d = decide(
            vec![allow(json!({"StringEquals": {format!("{ISSUER}:sub"): "system:serviceaccount:other:app"}}))],
            SUB,
            &["sts.amazonaws.com"],
        );
        let Decision::NotAllowed(why) = d else { panic!("{d:?}") };
        assert!(
            why[0]
                .contains("wants `system:serviceaccount:other:app`, the token has `system:serviceaccount:backend:app`"),
            "{why:?}"
        );
    }

    #[test]
    fn breadth_finds_missing_and_wildcard_subjects() {
        let sub = format!("{ISSUER}:sub");
        let aud = format!("{ISSUER}:aud");
        let d = doc(vec![allow(json!({"StringEquals": {&aud: "sts.amazonaws.com"}}))]);
        assert_eq!(breadth(&d, PROVIDER, ISSUER), vec![("statement #1 (no Sid)".to_owned(), Breadth::AnySubject)]);
        let d = doc(vec![allow(json!({"StringLike": {&sub: "system:serviceaccount:backend:*"}}))]);
        assert_eq!(
            breadth(&d, PROVIDER, ISSUER),
            vec![("statement #1 (no Sid)".to_owned(), Breadth::Wildcard("system:serviceaccount:backend:*".into()))]
        );
        assert!(!constrains_audience(&d, PROVIDER, ISSUER));
        let d = doc(vec![allow(json!({"StringEquals": {&sub: SUB, &aud: "sts.amazonaws.com"}}))]);
        assert!(breadth(&d, PROVIDER, ISSUER).is_empty());
        assert!(constrains_audience(&d, PROVIDER, ISSUER));
        // A negative condition does not narrow who gets in.
        let d = doc(vec![allow(json!({"StringNotEquals": {&sub: SUB}}))]);
        assert_eq!(breadth(&d, PROVIDER, ISSUER).len(), 1);
    }

    #[test]
    fn patterns_in_words() {
        assert_eq!(describe_pattern("*"), "any subject: every ServiceAccount of every namespace");
        assert_eq!(describe_pattern("system:serviceaccount:backend:*"), "every ServiceAccount of namespace backend");
        assert_eq!(
            describe_pattern("system:serviceaccount:*:app"),
            "ServiceAccounts named app in every namespace like `*`"
        );
        assert_eq!(describe_pattern("system:*"), "every subject like `system:*`");
    }
}
