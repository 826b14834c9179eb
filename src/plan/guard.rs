//! Write guards: the fields of a Kubernetes object a change depends on,
//! named by JSON pointer (RFC 6901), as [`super::Change::guard`] holds them.
//!
//! The planner writes them from what it read; the cluster applier turns each
//! into a JSON Patch `test` operation in front of the write, and the error
//! of a guard that failed names the field the way a reviewer knows it.

/// The Deployment field irsa points at the ServiceAccount.
pub const SERVICE_ACCOUNT_NAME: &str = "/spec/template/spec/serviceAccountName";

/// A pointer to `tokens`, each escaped (`~` as `~0`, `/` as `~1`).
pub fn pointer(tokens: &[&str]) -> String {
    // Written into one string: a plan asks for several pointers per
    // binding, and a `format!` and two `replace` copies per token added up.
    let mut out = String::with_capacity(tokens.iter().map(|t| t.len() + 1).sum::<usize>() + 4);
    for token in tokens {
        out.push('/');
        if !token.contains(['~', '/']) {
            out.push_str(token);
            continue;
        }
        for c in token.chars() {
            match c {
                '~' => out.push_str("~0"),
                '/' => out.push_str("~1"),
                c => out.push(c),
            }
        }
    }
    out
}

/// The reference tokens of a pointer, unescaped.
pub fn tokens(pointer: &str) -> Vec<String> {
    pointer.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~")).collect()
}

/// An annotation of the object itself.
pub fn annotation(key: &str) -> String {
    pointer(&["metadata", "annotations", key])
}

/// A label of the object itself.
pub fn label(key: &str) -> String {
    pointer(&["metadata", "labels", key])
}

/// An annotation of a Deployment's pod template.
pub fn template_annotation(key: &str) -> String {
    pointer(&["spec", "template", "metadata", "annotations", key])
}

/// A pointer as Kubernetes users write a field:
/// `spec.template.spec.serviceAccountName`,
/// `metadata.annotations[eks.amazonaws.com/role-arn]`.
pub fn field_name(pointer: &str) -> String {
    let mut out = String::new();
    for token in tokens(pointer) {
        if token.contains(['.', '/']) {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_escape_keys_and_read_as_field_names() {
        let p = annotation("eks.amazonaws.com/role-arn");
        assert_eq!(p, "/metadata/annotations/eks.amazonaws.com~1role-arn");
        assert_eq!(tokens(&p), ["metadata", "annotations", "eks.amazonaws.com/role-arn"]);
        assert_eq!(field_name(&p), "metadata.annotations[eks.amazonaws.com/role-arn]");
        assert_eq!(field_name(SERVICE_ACCOUNT_NAME), "spec.template.spec.serviceAccountName");
        assert_eq!(tokens(&pointer(&["a~b/c"])), ["a~b/c"]);
        assert_eq!(pointer(&["a~1/", "~0", ""]), "/a~01~1/~00/");
        assert_eq!(pointer(&[]), "");
    }
}
