//! Kubernetes `Status` objects: every refusal, at any stage, is one of these with kube's
//! reason, code and details (k8s.io/apimachinery's `StatusReason`).

use serde_json::{json, Value};

use crate::resources::Resource;

/// One field-level cause of an `Invalid` or `BadRequest` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// kube's cause type: `FieldValueRequired`, `FieldValueInvalid`, `FieldManagerConflict`, ...
    pub reason: &'static str,
    /// The field's path, as kube spells it (`metadata.name`, `spec.containers[0].image`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// A failed request: becomes a `Status` body with `code` as the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// kube's `StatusReason` (`NotFound`, `Conflict`, ...); empty for an unknown one.
    pub reason: &'static str,
    /// The human-readable message, kube's text where kube has one.
    pub message: String,
    /// `details`, for errors about one object.
    pub details: Option<Box<Details>>,
}

/// The object an error is about, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    /// `details.name`.
    pub name: String,
    /// `details.group`.
    pub group: String,
    /// `details.kind`.
    pub kind: String,
    /// `details.causes`.
    pub causes: Vec<Cause>,
}

/// Shorthand for results whose error is a kube Status.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error without details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// `details.causes`.
    pub fn causes(&self) -> &[Cause] {
        self.details.as_ref().map_or(&[], |d| d.causes.as_slice())
    }

    fn about(mut self, resource: &Resource, name: &str) -> Self {
        self.details = Some(Box::new(Details {
            name: name.to_string(),
            group: resource.group.to_string(),
            kind: resource.plural.to_string(),
            causes: Vec::new(),
        }));
        self
    }

    /// 404: `pods "x" not found`.
    pub fn not_found(resource: &Resource, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", resource.qualified()),
        )
        .about(resource, name)
    }

    /// 409: `pods "x" already exists`.
    pub fn already_exists(resource: &Resource, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", resource.qualified()),
        )
        .about(resource, name)
    }

    /// 409: an update or delete against a version that is no longer current.
    pub fn conflict(resource: &Resource, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                resource.qualified()
            ),
        )
        .about(resource, name)
    }

    /// 409 on a stale resourceVersion, kube's exact words.
    pub fn stale(resource: &Resource, name: &str) -> Self {
        Self::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422: `Deployment.apps "x" is invalid: <causes>`.
    pub fn invalid(resource: &Resource, name: &str, causes: Vec<Cause>) -> Self {
        let listed: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let kind = if resource.group.is_empty() {
            resource.kind.to_string()
        } else {
            format!("{}.{}", resource.kind, resource.group)
        };
        let mut error = ApiError::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {}", listed.join(", ")),
        );
        error.details = Some(Box::new(Details {
            name: name.to_string(),
            group: resource.group.to_string(),
            kind: resource.kind.to_string(),
            causes,
        }));
        error
    }

    /// 422 for one field without an object name (reviews).
    pub fn invalid_field(field: &str, message: &str) -> Self {
        let mut error = ApiError::new(422, "Invalid", format!("{field}: {message}"));
        error.details = Some(Box::new(Details {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            causes: vec![Cause {
                reason: "FieldValueRequired",
                field: field.to_string(),
                message: message.to_string(),
            }],
        }));
        error
    }

    /// 400 with kube's reason `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 410 `Expired`: a resourceVersion or continue token older than the history kept.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// 405: a verb the resource does not serve.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    /// 415: a body in a format the server does not decode.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"),
        )
    }

    /// 404 for a path no route serves: kube answers with reason NotFound and this text.
    pub fn no_route() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 500: the store failed in a way the request cannot fix.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }

    /// 504: the store did not answer in time, or a resourceVersion is newer than the store.
    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError::new(504, "Timeout", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            status["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            let mut details = json!({ "name": d.name, "kind": d.kind });
            if !d.group.is_empty() {
                details["group"] = json!(d.group);
            }
            if !d.causes.is_empty() {
                details["causes"] = d
                    .causes
                    .iter()
                    .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
                    .collect();
            }
            status["details"] = details;
        }
        status
    }
}

impl From<ballast_client::Error> for ApiError {
    fn from(error: ballast_client::Error) -> Self {
        match &error {
            ballast_client::Error::Status { code, .. }
                if *code == ballast_client::Code::DeadlineExceeded
                    || *code == ballast_client::Code::Unavailable =>
            {
                ApiError::timeout(format!("the store did not answer: {error}"))
            }
            _ => ApiError::internal(error),
        }
    }
}
