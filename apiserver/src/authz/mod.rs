//! Authorization: may this user do this. `--authorization-mode` lists the authorizers,
//! asked in order until one decides: AlwaysAllow, AlwaysDeny, RBAC. A request nobody
//! allows is a 403 with kube's text.

pub mod bootstrap;
pub mod escalation;
pub mod rbac;

use std::sync::Arc;

use crate::authn::User;
use crate::status::{ApiError, ApiResult, Details};
use crate::watch::Caches;

/// What is asked (kube's `authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection, impersonate, ...
    pub verb: String,
    /// A resource request (else a path).
    pub resource_request: bool,
    /// The namespace ("" for cluster scope).
    pub namespace: String,
    /// The API group ("" for core).
    pub group: String,
    /// The resource.
    pub resource: String,
    /// The subresource.
    pub subresource: String,
    /// The object's name.
    pub name: String,
    /// The path of a non-resource request.
    pub path: String,
}

impl Attributes {
    /// A non-resource request.
    pub fn path(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Attributes::default()
        }
    }
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Refused, whatever the next authorizers say.
    Deny(String),
    /// Left to the next authorizer.
    NoOpinion,
}

/// One `--authorization-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything is allowed.
    AlwaysAllow,
    /// Everything is refused.
    AlwaysDeny,
    /// Role-based access control over the RBAC objects.
    Rbac,
}

impl Mode {
    /// Parses a comma-separated `--authorization-mode`.
    pub fn parse_list(text: &str) -> Result<Vec<Mode>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(|m| match m {
                "AlwaysAllow" => Ok(Mode::AlwaysAllow),
                "AlwaysDeny" => Ok(Mode::AlwaysDeny),
                "RBAC" => Ok(Mode::Rbac),
                other => Err(format!(
                    "authorization mode {other:?} is not supported (AlwaysAllow, AlwaysDeny, RBAC)"
                )),
            })
            .collect()
    }
}

/// The configured chain.
#[derive(Debug)]
pub struct Authorizer {
    modes: Vec<Mode>,
    rbac: Arc<rbac::Rbac>,
}

impl Authorizer {
    /// The chain of `modes`; RBAC reads the RBAC objects from `caches`.
    pub fn new(modes: Vec<Mode>, caches: Arc<Caches>) -> Authorizer {
        Authorizer {
            modes,
            rbac: Arc::new(rbac::Rbac::new(caches)),
        }
    }

    /// The RBAC evaluator (also for rules reviews and escalation checks).
    pub fn rbac(&self) -> &rbac::Rbac {
        &self.rbac
    }

    /// Whether RBAC is one of the modes.
    pub fn uses_rbac(&self) -> bool {
        self.modes.contains(&Mode::Rbac)
    }

    /// The chain's decision, and its reason.
    pub async fn decide(&self, user: &User, attributes: &Attributes) -> (bool, String) {
        for mode in &self.modes {
            let decision = match mode {
                Mode::AlwaysAllow => Decision::Allow,
                Mode::AlwaysDeny => Decision::Deny("Everything is forbidden.".into()),
                Mode::Rbac => self.rbac.authorize(user, attributes).await,
            };
            match decision {
                Decision::Allow => return (true, allow_reason(*mode)),
                Decision::Deny(reason) => return (false, reason),
                Decision::NoOpinion => {}
            }
        }
        (false, String::new())
    }

    /// Allows the request or answers kube's 403.
    pub async fn authorize(&self, user: &User, attributes: &Attributes) -> ApiResult<()> {
        let (allowed, reason) = self.decide(user, attributes).await;
        if allowed {
            Ok(())
        } else {
            Err(forbidden(user, attributes, &reason))
        }
    }
}

fn allow_reason(mode: Mode) -> String {
    match mode {
        Mode::Rbac => "RBAC: allowed".into(),
        _ => String::new(),
    }
}

/// kube's 403 (k8s.io/apiserver's `responsewriters.forbiddenMessage`).
pub fn forbidden(user: &User, a: &Attributes, reason: &str) -> ApiError {
    let who = format!("User {:?}", user.name);
    let mut message = if !a.resource_request {
        format!("forbidden: {who} cannot {} path {:?}", a.verb, a.path)
    } else {
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let qualified = if a.group.is_empty() {
            a.resource.clone()
        } else {
            format!("{}.{}", a.resource, a.group)
        };
        let subject = if a.name.is_empty() {
            qualified
        } else {
            format!("{qualified} {:?}", a.name)
        };
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", a.namespace)
        };
        format!("{subject} is forbidden: {who} cannot {} resource {resource:?} in API group {:?} {scope}", a.verb, a.group)
    };
    if !reason.is_empty() {
        message.push_str(": ");
        message.push_str(reason);
    }
    let mut error = ApiError::new(403, "Forbidden", message);
    if a.resource_request {
        error.details = Some(Box::new(Details {
            name: a.name.clone(),
            group: a.group.clone(),
            kind: a.resource.clone(),
            causes: Vec::new(),
        }));
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_reads_as_kube_writes_it() {
        let alice = User::authenticated("alice", "", vec![]);
        let a = Attributes {
            verb: "list".into(),
            resource_request: true,
            namespace: "default".into(),
            resource: "configmaps".into(),
            ..Attributes::default()
        };
        assert_eq!(
            forbidden(&alice, &a, "").message,
            "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
        );
        let b = Attributes {
            verb: "get".into(),
            resource_request: true,
            group: "apps".into(),
            resource: "deployments".into(),
            subresource: "scale".into(),
            name: "web".into(),
            ..Attributes::default()
        };
        assert_eq!(
            forbidden(&alice, &b, "").message,
            "deployments.apps \"web\" is forbidden: User \"alice\" cannot get resource \"deployments/scale\" in API group \"apps\" at the cluster scope"
        );
        assert_eq!(
            forbidden(&alice, &Attributes::path("get", "/metrics"), "").message,
            "forbidden: User \"alice\" cannot get path \"/metrics\""
        );
        assert_eq!(
            Mode::parse_list("RBAC,AlwaysAllow").unwrap(),
            [Mode::Rbac, Mode::AlwaysAllow]
        );
        assert!(Mode::parse_list("Node,RBAC").is_err());
    }
}
