//! `metav1.Status` failures, with the reasons, codes and messages of a real
//! API server, so that kube returns `kube::Error::Api` as it would there.

use serde_json::{Value, json};

use super::fields::Conflict;
use super::kinds::Kind;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: String, details: Value) -> ApiError {
        ApiError { code, reason, message, details }
    }

    /// Details name the resource (plural) and group, as real NotFound,
    /// AlreadyExists and Conflict errors do.
    fn resource_details(kind: &Kind, name: &str) -> Value {
        let mut details = json!({"name": name, "kind": kind.plural});
        if !kind.group.is_empty() {
            details["group"] = json!(kind.group);
        }
        details
    }

    pub fn not_found(kind: &Kind, name: &str) -> ApiError {
        let message = format!("{} \"{name}\" not found", kind.qualified());
        ApiError::new(404, "NotFound", message, Self::resource_details(kind, name))
    }

    pub fn already_exists(kind: &Kind, name: &str) -> ApiError {
        let message = format!("{} \"{name}\" already exists", kind.qualified());
        ApiError::new(409, "AlreadyExists", message, Self::resource_details(kind, name))
    }

    pub fn conflict(kind: &Kind, name: &str, why: &str) -> ApiError {
        let message = format!("Operation cannot be fulfilled on {} \"{name}\": {why}", kind.qualified());
        ApiError::new(409, "Conflict", message, Self::resource_details(kind, name))
    }

    pub fn modified(kind: &Kind, name: &str) -> ApiError {
        Self::conflict(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422: `<Kind> "<name>" is invalid: <field>: <detail>`, one cause per field.
    pub fn invalid(kind: &Kind, name: &str, field: &str, cause_reason: &str, detail: &str) -> ApiError {
        let message = format!("{} \"{name}\" is invalid: {field}: {detail}", kind.kind);
        let mut details = Self::resource_details(kind, name);
        details["kind"] = json!(kind.kind);
        details["causes"] = json!([{"reason": cause_reason, "message": detail, "field": field}]);
        ApiError::new(422, "Invalid", message, details)
    }

    /// A JSON patch that does not apply (a failed `test`, a missing path):
    /// the API server answers `NewGenericServerResponse(422, …)`, i.e.
    /// reason Invalid, empty details and a fixed message that drops
    /// json-patch's own.
    pub fn unprocessable() -> ApiError {
        ApiError::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request".into(),
            json!({}),
        )
    }

    /// Server-side apply conflicts: one cause per field and owner.
    pub fn apply_conflicts(kind: &Kind, name: &str, conflicts: &[Conflict]) -> ApiError {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|c| {
                let message = format!("conflict with \"{}\" using {}", c.manager, c.api_version);
                json!({"reason": "FieldManagerConflict", "message": message, "field": c.field()})
            })
            .collect();
        let listed: Vec<String> = conflicts
            .iter()
            .map(|c| format!("conflict with \"{}\" using {}: {}", c.manager, c.api_version, c.field()))
            .collect();
        let plural = if conflicts.len() == 1 { "" } else { "s" };
        let message = format!("Apply failed with {} conflict{plural}: {}", conflicts.len(), listed.join("; "));
        let mut details = Self::resource_details(kind, name);
        details["causes"] = json!(causes);
        ApiError::new(409, "Conflict", message, details)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message.into(), json!({}))
    }

    pub fn forbidden(kind: &Kind, name: &str, why: &str) -> ApiError {
        let message = format!("{} \"{name}\" is forbidden: {why}", kind.qualified());
        ApiError::new(403, "Forbidden", message, Self::resource_details(kind, name))
    }

    pub fn method_not_allowed(method: &str) -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
            json!({}),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
            json!({}),
        )
    }

    /// 403: what RBAC answers a list the credentials may not make.
    pub fn forbidden_list(kind: &Kind) -> ApiError {
        let message =
            format!("{} is forbidden: cannot list resource \"{}\" at the cluster scope", kind.qualified(), kind.plural);
        ApiError::new(403, "Forbidden", message, json!({"kind": kind.plural}))
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized".into(), json!({}))
    }

    pub fn path_not_found(path: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("the server could not find the requested resource ({path})"), json!({}))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        })
    }
}
