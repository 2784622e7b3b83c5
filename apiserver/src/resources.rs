//! The resource table: every kind the server serves is one row here, and discovery,
//! OpenAPI, routing, storage keys, tables and field selectors all read it. Adding a kind
//! is adding a row (plus its validation and columns when it has any).

use crate::printers::{self, Column};

/// Namespaces that exist from the start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The verbs every stored resource serves.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A subresource served under `<resource>/<name>/<sub>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// `/status`: writes change only `.status`; the main resource ignores `.status`.
    Status,
    /// `/scale`: an `autoscaling/v1 Scale` view of `.spec.replicas`.
    Scale,
    /// `/token`: a service account's TokenRequest.
    Token,
}

impl Sub {
    /// The path segment.
    pub fn name(self) -> &'static str {
        match self {
            Sub::Status => "status",
            Sub::Scale => "scale",
            Sub::Token => "token",
        }
    }
}

/// One served kind.
#[derive(Debug)]
pub struct Resource {
    /// API group; "" for core (`/api/v1`).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Plural lower-case name: the path segment.
    pub plural: &'static str,
    /// Singular lower-case name.
    pub singular: &'static str,
    /// The kind in objects.
    pub kind: &'static str,
    /// Objects live in a namespace.
    pub namespaced: bool,
    /// `kubectl get <short>`.
    pub short_names: &'static [&'static str],
    /// Categories (`all` makes `kubectl get all` list it).
    pub categories: &'static [&'static str],
    /// Subresources served.
    pub subresources: &'static [Sub],
    /// Key segment under `--etcd-prefix`, as kube-apiserver lays it out.
    pub storage: &'static str,
    /// `metadata.generation` moves on spec changes (kinds with spec/status semantics).
    pub generation: bool,
    /// Field selector labels beyond `metadata.name`/`metadata.namespace`, each with the
    /// object's field it reads (a JSON pointer).
    pub fields: &'static [(&'static str, &'static str)],
    /// `kubectl get` columns after NAME (and before AGE where the kind has one).
    pub columns: &'static [Column],
    /// The kind's JSON schema (OpenAPI, `kubectl explain`, field validation).
    pub schema: SchemaFn,
    /// Kept in the store; a review (an access or identity question) is answered and
    /// forgotten, `create` its only verb.
    pub stored: bool,
}

/// Adds a kind's schema (and those it refers to) to a generator; returns its reference.
pub type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

impl Resource {
    /// The verbs the resource serves.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.stored {
            VERBS
        } else {
            REVIEW_VERBS
        }
    }

    /// `apiVersion` of the kind's objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods`, `deployments.apps`: how kube names the resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Serves `sub`.
    pub fn has(&self, sub: Sub) -> bool {
        self.subresources.contains(&sub)
    }
}

const STATUS: &[Sub] = &[Sub::Status];
const STATUS_SCALE: &[Sub] = &[Sub::Status, Sub::Scale];

macro_rules! row {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $namespaced:expr,
     short: $short:expr, categories: $cat:expr, subs: $subs:expr, storage: $storage:expr,
     generation: $gen:expr, fields: $fields:expr, columns: $columns:expr, type: $ty:ty) => {
        Resource {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $namespaced,
            short_names: $short,
            categories: $cat,
            subresources: $subs,
            storage: $storage,
            generation: $gen,
            fields: $fields,
            columns: $columns,
            schema: |generator| generator.subschema_for::<$ty>(),
            stored: true,
        }
    };
}

/// A review: create-only, answered from the request, never stored.
macro_rules! review {
    ($group:expr, $plural:expr, $singular:expr, $kind:expr, $namespaced:expr, type: $ty:ty) => {
        Resource {
            group: $group,
            version: "v1",
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $namespaced,
            short_names: &[],
            categories: NONE,
            subresources: &[],
            storage: "",
            generation: false,
            fields: &[],
            columns: printers::CREATED_AT,
            schema: |generator| generator.subschema_for::<$ty>(),
            stored: false,
        }
    };
}

/// The verbs of a review.
pub const REVIEW_VERBS: &[&str] = &["create"];

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

/// Every served kind.
pub static RESOURCES: &[Resource] = &[
    // core/v1
    row!("", "v1", "namespaces", "namespace", "Namespace", false, short: &["ns"], categories: NONE,
         subs: STATUS, storage: "namespaces", generation: false,
         fields: &[("status.phase", "/status/phase")], columns: printers::NAMESPACE, type: k8s_openapi::api::core::v1::Namespace),
    row!("", "v1", "configmaps", "configmap", "ConfigMap", true, short: &["cm"], categories: NONE,
         subs: &[], storage: "configmaps", generation: false, fields: &[], columns: printers::CONFIGMAP, type: k8s_openapi::api::core::v1::ConfigMap),
    row!("", "v1", "secrets", "secret", "Secret", true, short: &[], categories: NONE,
         subs: &[], storage: "secrets", generation: false, fields: &[("type", "/type")],
         columns: printers::SECRET, type: k8s_openapi::api::core::v1::Secret),
    row!("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, short: &["sa"],
         categories: NONE, subs: &[Sub::Token], storage: "serviceaccounts", generation: false, fields: &[],
         columns: printers::SERVICEACCOUNT, type: k8s_openapi::api::core::v1::ServiceAccount),
    row!("", "v1", "pods", "pod", "Pod", true, short: &["po"], categories: ALL, subs: STATUS,
         storage: "pods", generation: false,
         fields: &[("spec.nodeName", "/spec/nodeName"), ("spec.restartPolicy", "/spec/restartPolicy"),
                   ("spec.schedulerName", "/spec/schedulerName"),
                   ("spec.serviceAccountName", "/spec/serviceAccountName"),
                   ("status.phase", "/status/phase"), ("status.podIP", "/status/podIP"),
                   ("status.nominatedNodeName", "/status/nominatedNodeName")],
         columns: printers::POD, type: k8s_openapi::api::core::v1::Pod),
    row!("", "v1", "services", "service", "Service", true, short: &["svc"], categories: ALL,
         subs: STATUS, storage: "services/specs", generation: false, fields: &[],
         columns: printers::SERVICE, type: k8s_openapi::api::core::v1::Service),
    row!("", "v1", "endpoints", "endpoints", "Endpoints", true, short: &["ep"], categories: NONE,
         subs: &[], storage: "services/endpoints", generation: false, fields: &[],
         columns: printers::ENDPOINTS, type: k8s_openapi::api::core::v1::Endpoints),
    row!("", "v1", "events", "event", "Event", true, short: &["ev"], categories: NONE, subs: &[],
         storage: "events", generation: false,
         fields: &[("involvedObject.kind", "/involvedObject/kind"),
                   ("involvedObject.namespace", "/involvedObject/namespace"),
                   ("involvedObject.name", "/involvedObject/name"),
                   ("involvedObject.uid", "/involvedObject/uid"),
                   ("involvedObject.apiVersion", "/involvedObject/apiVersion"),
                   ("involvedObject.resourceVersion", "/involvedObject/resourceVersion"),
                   ("involvedObject.fieldPath", "/involvedObject/fieldPath"),
                   ("reason", "/reason"), ("reportingComponent", "/reportingComponent"),
                   ("source", "/source/component"), ("type", "/type")],
         columns: printers::EVENT, type: k8s_openapi::api::core::v1::Event),
    row!("", "v1", "nodes", "node", "Node", false, short: &["no"], categories: NONE, subs: STATUS,
         storage: "minions", generation: false,
         fields: &[("spec.unschedulable", "/spec/unschedulable")], columns: printers::NODE, type: k8s_openapi::api::core::v1::Node),
    row!("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true,
         short: &["pvc"], categories: NONE, subs: STATUS, storage: "persistentvolumeclaims",
         generation: false, fields: &[], columns: printers::PVC, type: k8s_openapi::api::core::v1::PersistentVolumeClaim),
    row!("", "v1", "limitranges", "limitrange", "LimitRange", true, short: &["limits"],
         categories: NONE, subs: &[], storage: "limitranges", generation: false, fields: &[],
         columns: printers::CREATED_AT, type: k8s_openapi::api::core::v1::LimitRange),
    row!("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", true, short: &["quota"],
         categories: NONE, subs: STATUS, storage: "resourcequotas", generation: false, fields: &[],
         columns: printers::CREATED_AT, type: k8s_openapi::api::core::v1::ResourceQuota),
    // apps/v1
    row!("apps", "v1", "deployments", "deployment", "Deployment", true, short: &["deploy"],
         categories: ALL, subs: STATUS_SCALE, storage: "deployments", generation: true, fields: &[],
         columns: printers::DEPLOYMENT, type: k8s_openapi::api::apps::v1::Deployment),
    row!("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, short: &["rs"],
         categories: ALL, subs: STATUS_SCALE, storage: "replicasets", generation: true, fields: &[],
         columns: printers::REPLICASET, type: k8s_openapi::api::apps::v1::ReplicaSet),
    row!("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, short: &["sts"],
         categories: ALL, subs: STATUS_SCALE, storage: "statefulsets", generation: true, fields: &[],
         columns: printers::STATEFULSET, type: k8s_openapi::api::apps::v1::StatefulSet),
    row!("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, short: &["ds"],
         categories: ALL, subs: STATUS, storage: "daemonsets", generation: true, fields: &[],
         columns: printers::DAEMONSET, type: k8s_openapi::api::apps::v1::DaemonSet),
    // batch/v1
    row!("batch", "v1", "jobs", "job", "Job", true, short: &[], categories: ALL, subs: STATUS,
         storage: "jobs", generation: true, fields: &[], columns: printers::JOB, type: k8s_openapi::api::batch::v1::Job),
    row!("batch", "v1", "cronjobs", "cronjob", "CronJob", true, short: &["cj"], categories: ALL,
         subs: STATUS, storage: "cronjobs", generation: true, fields: &[], columns: printers::CRONJOB, type: k8s_openapi::api::batch::v1::CronJob),
    // coordination.k8s.io/v1
    row!("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, short: &[], categories: NONE,
         subs: &[], storage: "leases", generation: false, fields: &[], columns: printers::LEASE, type: k8s_openapi::api::coordination::v1::Lease),
    // rbac.authorization.k8s.io/v1
    row!("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, short: &[],
         categories: NONE, subs: &[], storage: "roles", generation: false, fields: &[],
         columns: printers::CREATED_AT, type: k8s_openapi::api::rbac::v1::Role),
    row!("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true,
         short: &[], categories: NONE, subs: &[], storage: "rolebindings", generation: false,
         fields: &[], columns: printers::ROLEBINDING, type: k8s_openapi::api::rbac::v1::RoleBinding),
    row!("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false,
         short: &[], categories: NONE, subs: &[], storage: "clusterroles", generation: false,
         fields: &[], columns: printers::CREATED_AT, type: k8s_openapi::api::rbac::v1::ClusterRole),
    row!("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
         "ClusterRoleBinding", false, short: &[], categories: NONE, subs: &[],
         storage: "clusterrolebindings", generation: false, fields: &[],
         columns: printers::ROLEBINDING, type: k8s_openapi::api::rbac::v1::ClusterRoleBinding),
    // admissionregistration.k8s.io/v1
    row!("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration",
         "MutatingWebhookConfiguration", false, short: &[], categories: NONE, subs: &[],
         storage: "mutatingwebhookconfigurations", generation: true, fields: &[], columns: printers::WEBHOOKS,
         type: k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration),
    row!("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "validatingwebhookconfiguration",
         "ValidatingWebhookConfiguration", false, short: &[], categories: NONE, subs: &[],
         storage: "validatingwebhookconfigurations", generation: true, fields: &[], columns: printers::WEBHOOKS,
         type: k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration),
    row!("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "validatingadmissionpolicy",
         "ValidatingAdmissionPolicy", false, short: &[], categories: NONE, subs: &[Sub::Status],
         storage: "validatingadmissionpolicies", generation: true, fields: &[], columns: printers::CREATED_AT,
         type: k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy),
    row!("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", "validatingadmissionpolicybinding",
         "ValidatingAdmissionPolicyBinding", false, short: &[], categories: NONE, subs: &[],
         storage: "validatingadmissionpolicybindings", generation: true, fields: &[], columns: printers::CREATED_AT,
         type: k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding),
    // events.k8s.io/v1: stored with core/v1 Events, in their form (see convert), as
    // kube-apiserver keeps both Event APIs in one place.
    row!("events.k8s.io", "v1", "events", "event", "Event", true, short: &["ev"], categories: NONE,
         subs: &[], storage: "events", generation: false,
         fields: &[("reason", "/reason"), ("type", "/type"),
                   ("regarding.kind", "/regarding/kind"), ("regarding.name", "/regarding/name"),
                   ("regarding.namespace", "/regarding/namespace")],
         columns: printers::CREATED_AT, type: k8s_openapi::api::events::v1::Event),
    // Reviews: authorization.k8s.io/v1 and authentication.k8s.io/v1.
    review!("authorization.k8s.io", "selfsubjectaccessreviews", "selfsubjectaccessreview",
            "SelfSubjectAccessReview", false, type: k8s_openapi::api::authorization::v1::SelfSubjectAccessReview),
    review!("authorization.k8s.io", "selfsubjectrulesreviews", "selfsubjectrulesreview",
            "SelfSubjectRulesReview", false, type: k8s_openapi::api::authorization::v1::SelfSubjectRulesReview),
    review!("authorization.k8s.io", "subjectaccessreviews", "subjectaccessreview",
            "SubjectAccessReview", false, type: k8s_openapi::api::authorization::v1::SubjectAccessReview),
    review!("authorization.k8s.io", "localsubjectaccessreviews", "localsubjectaccessreview",
            "LocalSubjectAccessReview", true, type: k8s_openapi::api::authorization::v1::LocalSubjectAccessReview),
    review!("authentication.k8s.io", "selfsubjectreviews", "selfsubjectreview",
            "SelfSubjectReview", false, type: k8s_openapi::api::authentication::v1::SelfSubjectReview),
];

/// The groups served, in discovery order, with their one version.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !groups.contains(&(r.group, r.version)) {
            groups.push((r.group, r.version));
        }
    }
    groups
}

/// The resources of one group version.
pub fn of<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// The resource served at `/<group>/<version>/<plural>`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of a kind (for bodies that name their kind and apiVersion).
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_unique_and_reachable() {
        for (i, r) in RESOURCES.iter().enumerate() {
            assert!(std::ptr::eq(find(r.group, r.version, r.plural).unwrap(), r));
            // The two Event APIs share one place, as in kube-apiserver; no other kinds do.
            let shared = r.group == "events.k8s.io" || !r.stored;
            assert!(
                shared || RESOURCES[..i].iter().all(|o| o.storage != r.storage),
                "{} shares its storage prefix",
                r.plural
            );
        }
        assert_eq!(
            find("", "v1", "services").unwrap().storage,
            "services/specs"
        );
        assert_eq!(
            find("apps", "v1", "deployments").unwrap().qualified(),
            "deployments.apps"
        );
    }
}
