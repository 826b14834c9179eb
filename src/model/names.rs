//! Naming rules of IAM and Kubernetes, checked before any call is made.
//!
//! Each check returns `Err(Invalid)` with what is wrong and how to fix it, so
//! the loader can point at the offending value and say both.

/// Why a name is invalid, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub help: String,
}

fn invalid(message: impl Into<String>, help: impl Into<String>) -> Result<(), Invalid> {
    Err(Invalid { message: message.into(), help: help.into() })
}

/// Characters IAM allows in role and policy names.
fn iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// The longest role name IAM accepts.
pub const ROLE_NAME_MAX: usize = 64;
/// The longest managed policy name IAM accepts.
pub const POLICY_NAME_MAX: usize = 128;
/// The longest IAM path.
pub const PATH_MAX: usize = 512;

fn iam_name(what: &str, name: &str, max: usize) -> Result<(), Invalid> {
    if name.is_empty() {
        return invalid(format!("{what} name is empty"), "give it a name");
    }
    let len = name.chars().count();
    if len > max {
        return invalid(
            format!("{what} name `{name}` is {len} characters long; IAM allows at most {max}"),
            format!("shorten it to {max} characters or fewer"),
        );
    }
    if let Some(c) = name.chars().find(|c| !iam_name_char(*c)) {
        return invalid(
            format!("{what} name `{name}` contains `{c}`, which IAM does not allow"),
            "use only letters, digits and + = , . @ _ -",
        );
    }
    Ok(())
}

pub fn role_name(name: &str) -> Result<(), Invalid> {
    iam_name("role", name, ROLE_NAME_MAX)
}

pub fn policy_name(name: &str) -> Result<(), Invalid> {
    iam_name("policy", name, POLICY_NAME_MAX)
}

/// An inline policy name follows the managed policy rules.
pub fn inline_policy_name(name: &str) -> Result<(), Invalid> {
    iam_name("inline policy", name, POLICY_NAME_MAX)
}

/// An IAM path: `/` or `/a/b/`, printable ASCII, at most 512 characters.
pub fn iam_path(path: &str) -> Result<(), Invalid> {
    if !path.starts_with('/') || !path.ends_with('/') {
        return invalid(
            format!("path `{path}` must start and end with `/`"),
            format!("write it as `/{}/`", path.trim_matches('/')).replace("//", "/"),
        );
    }
    if path.len() > PATH_MAX {
        return invalid(format!("path is {} characters long; IAM allows at most {PATH_MAX}", path.len()), "shorten it");
    }
    if path.contains("//") {
        return invalid(format!("path `{path}` has an empty segment (`//`)"), "remove the doubled `/`");
    }
    if let Some(c) = path.chars().find(|c| !('\u{21}'..='\u{7e}').contains(c)) {
        return invalid(format!("path `{path}` contains {c:?}"), "use printable ASCII without spaces");
    }
    Ok(())
}

/// A 12-digit AWS account id.
pub fn account_id(id: &str) -> Result<(), Invalid> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        invalid(
            format!("`{id}` is not an AWS account id"),
            "an account id is a string of exactly 12 digits, such as \"123456789012\" (quote it, or leading zeros are lost)",
        )
    }
}

/// An AWS region name such as `us-east-1` or `us-gov-west-1`.
pub fn region(region: &str) -> Result<(), Invalid> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty();
    if ok {
        Ok(())
    } else {
        invalid(format!("`{region}` is not an AWS region"), "use a region name such as \"us-east-1\"")
    }
}

/// The partition an AWS region belongs to, which every ARN of the stack names.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// 1 to `max` lowercase letters, digits and `-`, starting and ending with a
/// letter or digit: a DNS-1123 label no longer than `max`.
fn lowercase_label(name: &str, max: usize) -> bool {
    let end = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= max
        && name.starts_with(end)
        && name.ends_with(end)
        && name.chars().all(|c| end(c) || c == '-')
}

/// A stack's own name (`[stack] name`): it goes into IAM tags, a Kubernetes
/// annotation, the Lease `irsa-<name>` and trust-statement Sids, so it is a
/// DNS-1123 label short enough for all of them.
pub fn stack_name(name: &str) -> Result<(), Invalid> {
    if lowercase_label(name, 63) {
        Ok(())
    } else {
        invalid(
            format!("`{name}` is not a stack name"),
            "use 1 to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit (such as \"team-payments\")",
        )
    }
}

/// An EKS cluster name. A stack file without `[stack] name` is the stack
/// of this name, as stacks made before stacks had names of their own.
pub fn cluster_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        invalid(
            format!("`{name}` is not an EKS cluster name"),
            "use 1 to 100 letters, digits, `-` and `_`, starting with a letter or digit",
        )
    }
}

/// The `<key>` of `[clusters.<key>]`: it goes into addresses
/// (`sa/<key>/<ns>/<name>`) and trust-statement Sids, so it is a short
/// DNS-1123 label.
pub fn cluster_key(name: &str) -> Result<(), Invalid> {
    if lowercase_label(name, 40) {
        Ok(())
    } else {
        invalid(
            format!("`{name}` is not a name for a cluster of the stack"),
            "use 1 to 40 lowercase letters, digits and `-`, starting and ending with a letter or digit (such as \"blue\"); the EKS cluster's own name goes in `name`",
        )
    }
}

/// A DNS-1123 label: Kubernetes namespaces.
pub fn dns_label(what: &str, name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        invalid(
            format!("{what} `{name}` is not a valid DNS-1123 label"),
            "use at most 63 lower-case letters, digits and `-`, starting and ending with a letter or digit",
        )
    }
}

/// A DNS-1123 subdomain: ServiceAccount and Deployment names.
pub fn dns_subdomain(what: &str, name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        invalid(
            format!("{what} `{name}` is not a valid DNS-1123 subdomain"),
            "use lower-case letters, digits, `-` and `.`, at most 253 characters, each part starting and ending with a letter or digit",
        )
    }
}

/// A Kubernetes annotation or label key: an optional DNS subdomain prefix and
/// a name of at most 63 characters.
pub fn annotation_key(key: &str) -> Result<(), Invalid> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        dns_subdomain("annotation prefix", prefix)?;
    }
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        invalid(
            format!("`{key}` is not a valid annotation key"),
            "use [prefix/]name, where name is at most 63 letters, digits, `-`, `_` and `.` starting and ending with a letter or digit",
        )
    }
}

/// The parts of an IAM ARN that irsa cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamArn<'a> {
    pub partition: &'a str,
    /// The 12-digit account, or `aws` for AWS-managed policies.
    pub account: &'a str,
    /// `role`, `policy`, `oidc-provider`, …
    pub resource_type: &'a str,
    /// The path between the type and the name, `/` when there is none.
    pub path: String,
    pub name: &'a str,
}

/// Parse `arn:<partition>:iam::<account>:<type>/<path/><name>`.
pub fn parse_iam_arn(arn: &str) -> Result<IamArn<'_>, Invalid> {
    let bad = |why: &str| Invalid {
        message: format!("`{arn}` is not a well-formed IAM ARN: {why}"),
        help: "an IAM ARN looks like arn:aws:iam::123456789012:role/path/name".into(),
    };
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("it needs six `:`-separated parts"));
    };
    if !["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"].contains(&partition) {
        return Err(bad(&format!("unknown partition `{partition}`")));
    }
    if service != "iam" {
        return Err(bad(&format!("the service is `{service}`, not `iam`")));
    }
    if !region.is_empty() {
        return Err(bad("IAM ARNs have no region (`arn:aws:iam::…`)"));
    }
    if account != "aws" && account_id(account).is_err() {
        return Err(bad(&format!("the account `{account}` is not 12 digits")));
    }
    let Some((resource_type, rest)) = resource.split_once('/') else {
        return Err(bad("the resource needs a type and a name (`role/name`)"));
    };
    let (path, name) = match rest.rsplit_once('/') {
        Some((p, n)) => (format!("/{p}/"), n),
        None => ("/".to_owned(), rest),
    };
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    Ok(IamArn { partition, account, resource_type, path, name })
}

/// A role ARN with a 12-digit account and a valid role name.
pub fn role_arn(arn: &str) -> Result<IamArn<'_>, Invalid> {
    let parsed = parse_iam_arn(arn)?;
    if parsed.resource_type != "role" {
        return Err(Invalid {
            message: format!("`{arn}` is a {} ARN, not a role ARN", parsed.resource_type),
            help: "a role ARN looks like arn:aws:iam::123456789012:role/name".into(),
        });
    }
    if parsed.account == "aws" {
        return Err(Invalid {
            message: format!("`{arn}` names no account"),
            help: "a role ARN has a 12-digit account id".into(),
        });
    }
    role_name(parsed.name)?;
    Ok(parsed)
}

/// A managed policy ARN: AWS-managed (`arn:aws:iam::aws:policy/…`) or customer-managed.
pub fn policy_arn(arn: &str) -> Result<IamArn<'_>, Invalid> {
    let parsed = parse_iam_arn(arn)?;
    if parsed.resource_type != "policy" {
        return Err(Invalid {
            message: format!("`{arn}` is a {} ARN, not a policy ARN", parsed.resource_type),
            help: "a policy ARN looks like arn:aws:iam::aws:policy/ReadOnlyAccess or arn:aws:iam::123456789012:policy/name"
                .into(),
        });
    }
    policy_name(parsed.name)?;
    Ok(parsed)
}

/// A tag key or value as IAM accepts it, for user tags (not irsa's own).
pub fn tag(key: &str, value: &str) -> Result<(), Invalid> {
    if key.is_empty() || key.chars().count() > 128 {
        return invalid(format!("tag key `{key}` must be 1 to 128 characters"), "shorten the key");
    }
    if value.chars().count() > 256 {
        return invalid(format!("the value of tag `{key}` is longer than 256 characters"), "shorten the value");
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return invalid(
            format!("tag key `{key}` uses the reserved `aws:` prefix"),
            "AWS reserves `aws:` tags; rename the key",
        );
    }
    if key.starts_with("irsa:") {
        return invalid(
            format!("tag key `{key}` uses the `irsa:` prefix"),
            "irsa sets `irsa:managed-by` and `irsa:stack` itself to mark what it owns; rename the key",
        );
    }
    let tag_char = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    if let Some(c) = key.chars().chain(value.chars()).find(|c| !tag_char(*c)) {
        return invalid(
            format!("tag `{key}` contains `{c}`, which IAM tags do not allow"),
            "use letters, digits, spaces and _ . : / = + - @",
        );
    }
    Ok(())
}

/// An OIDC thumbprint: the hex SHA-1 of a certificate, 40 characters.
pub fn thumbprint(t: &str) -> Result<(), Invalid> {
    if t.len() == 40 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        invalid(
            format!("`{t}` is not a certificate thumbprint"),
            "a thumbprint is the 40 hex digits of a SHA-1 fingerprint",
        )
    }
}

/// An OIDC issuer URL: `https://host/path`, no query, fragment or trailing `/`.
pub fn issuer_url(url: &str) -> Result<(), Invalid> {
    let Some(rest) = url.strip_prefix("https://") else {
        return invalid(
            format!("issuer `{url}` is not an https:// URL"),
            "IAM OIDC providers need an https:// issuer, such as https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE",
        );
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || rest.contains(['?', '#', ' ']) {
        return invalid(
            format!("issuer `{url}` is not a plain https:// URL"),
            "use the issuer URL exactly as `aws eks describe-cluster` shows it",
        );
    }
    if rest.ends_with('/') {
        return invalid(
            format!("issuer `{url}` ends with `/`"),
            "remove the trailing `/`; IAM names the provider after the URL without it",
        );
    }
    Ok(())
}

/// Levenshtein distance, for "did you mean" hints on dangling references.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The closest candidate to `name`, when it is close enough to be a typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_names() {
        assert!(role_name("backend-messages").is_ok());
        assert!(role_name("a+b=c,d.e@f_g-h").is_ok());
        assert!(role_name(&"r".repeat(64)).is_ok());
        assert!(role_name(&"r".repeat(65)).unwrap_err().message.contains("at most 64"));
        assert!(policy_name(&"p".repeat(128)).is_ok());
        assert!(policy_name(&"p".repeat(129)).is_err());
        assert!(role_name("has space").unwrap_err().message.contains("` `"));
        assert!(role_name("slash/name").is_err());
        assert!(role_name("").is_err());
    }

    #[test]
    fn paths() {
        for ok in ["/", "/irsa/", "/a/b-c/"] {
            assert!(iam_path(ok).is_ok(), "{ok}");
        }
        let err = iam_path("/irsa").unwrap_err();
        assert_eq!(err.help, "write it as `/irsa/`");
        for bad in ["irsa/", "", "/a//b/", "/a b/"] {
            assert!(iam_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kubernetes_names() {
        assert!(dns_label("namespace", "backend").is_ok());
        assert!(dns_label("namespace", "Backend").is_err());
        assert!(dns_label("namespace", "-x").is_err());
        assert!(dns_label("namespace", &"n".repeat(64)).is_err());
        assert!(dns_subdomain("service account", "my.service-account").is_ok());
        assert!(dns_subdomain("service account", "my_sa").is_err());
        assert!(annotation_key("eks.amazonaws.com/sts-regional-endpoints").is_ok());
        assert!(annotation_key("plain").is_ok());
        assert!(annotation_key("Bad Prefix/x").is_err());
        assert!(annotation_key("x/-y").is_err());
    }

    #[test]
    fn arns() {
        let arn = role_arn("arn:aws:iam::123456789012:role/irsa/backend").unwrap();
        assert_eq!((arn.account, arn.path.as_str(), arn.name), ("123456789012", "/irsa/", "backend"));
        assert_eq!(role_arn("arn:aws:iam::123456789012:role/Role").unwrap().path, "/");
        assert!(policy_arn("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess").is_ok());
        assert!(policy_arn("arn:aws:iam::aws:policy/service-role/AmazonEKSClusterPolicy").is_ok());
        assert!(role_arn("arn:aws:iam::12345:role/x").unwrap_err().message.contains("12 digits"));
        assert!(role_arn("arn:aws:iam::123456789012:policy/x").unwrap_err().message.contains("not a role ARN"));
        assert!(policy_arn("arn:aws:s3:::bucket").is_err());
        assert!(role_arn("arn:aws:iam:us-east-1:123456789012:role/x").is_err());
        assert!(role_arn("arn:aws:iam::aws:role/x").is_err());
        assert!(role_arn("role/x").is_err());
    }

    #[test]
    fn cluster_settings() {
        assert!(account_id("123456789012").is_ok());
        assert!(account_id("12345678901").is_err());
        assert!(account_id("12345678901a").is_err());
        assert!(region("us-east-1").is_ok());
        assert!(region("us-gov-west-1").is_ok());
        assert!(region("useast1").is_err());
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("eu-west-1"), "aws");
        assert!(issuer_url("https://oidc.eks.us-east-1.amazonaws.com/id/ABC").is_ok());
        assert!(issuer_url("http://oidc.example.com").is_err());
        assert!(issuer_url("https://oidc.example.com/").is_err());
        assert!(issuer_url("https://").is_err());
        assert!(thumbprint(&"a".repeat(40)).is_ok());
        assert!(thumbprint("abc").is_err());
    }

    #[test]
    fn tags() {
        assert!(tag("team", "platform").is_ok());
        assert!(tag("aws:cloudformation", "x").is_err());
        assert!(tag("AWS:x", "x").is_err());
        assert!(tag("irsa:stack", "x").is_err());
        assert!(tag(&"k".repeat(129), "x").is_err());
        assert!(tag("k", &"v".repeat(257)).is_err());
        assert!(tag("k", "a;b").is_err());
    }

    #[test]
    fn typo_hints() {
        assert_eq!(closest("mesages-read", ["messages-read", "messages-write"]), Some("messages-read"));
        assert_eq!(closest("zzz", ["messages-read"]), None);
    }
}
