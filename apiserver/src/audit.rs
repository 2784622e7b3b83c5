//! The audit log (`--audit-log-path`, `--audit-policy-file`): one `audit.k8s.io/v1` Event
//! per request, as JSON lines, at the level the first matching policy rule gives (None,
//! Metadata, Request, RequestResponse): who, what, on which object, the authorization
//! decision, the response code, and the timestamps that give the latency. Lines go to a
//! writer task through a bounded queue that slows requests down rather than drop one.

use std::path::Path;

use bytes::Bytes;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;

use crate::authn::User;
use crate::authz::Attributes;

/// Events queued towards the log file.
pub const AUDIT_QUEUE: usize = 4096;

/// How much of a request is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing.
    None,
    /// Who, what, when, the outcome.
    Metadata,
    /// Also the request's body.
    Request,
    /// Also the response's body.
    RequestResponse,
}

impl Level {
    fn parse(text: &str) -> Result<Level, String> {
        Ok(match text {
            "None" => Level::None,
            "Metadata" => Level::Metadata,
            "Request" => Level::Request,
            "RequestResponse" => Level::RequestResponse,
            other => return Err(format!("unknown audit level {other:?}")),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    level: Level,
    users: Vec<String>,
    groups: Vec<String>,
    verbs: Vec<String>,
    resources: Vec<(String, Vec<String>, Vec<String>)>,
    namespaces: Vec<String>,
    urls: Vec<String>,
}

fn strings(value: &Value, field: &str) -> Vec<String> {
    crate::object::strings(value, &format!("/{field}"))
}

impl Rule {
    fn matches(&self, user: &User, a: &Attributes) -> bool {
        let any = |list: &[String], want: &str| {
            list.is_empty() || list.iter().any(|v| v == want || v == "*")
        };
        if !any(&self.users, &user.name) {
            return false;
        }
        if !self.groups.is_empty() && !user.groups.iter().any(|g| self.groups.contains(g)) {
            return false;
        }
        if !any(&self.verbs, &a.verb) {
            return false;
        }
        if !a.resource_request {
            if !self.resources.is_empty() || !self.namespaces.is_empty() {
                return false;
            }
            return self.urls.is_empty()
                || self.urls.iter().any(|u| {
                    *u == a.path || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p))
                });
        }
        if !self.urls.is_empty() {
            return false;
        }
        if !self.namespaces.is_empty() && !self.namespaces.contains(&a.namespace) {
            return false;
        }
        let combined = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        self.resources.is_empty()
            || self.resources.iter().any(|(group, resources, names)| {
                *group == a.group
                    && (resources.is_empty()
                        || resources.iter().any(|r| {
                            *r == "*"
                                || *r == combined
                                || *r == a.resource
                                || (r.ends_with("/*") && r.trim_end_matches("/*") == a.resource)
                        }))
                    && (names.is_empty() || names.contains(&a.name))
            })
    }
}

/// An audit policy.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
}

impl Policy {
    /// Parses kube's Policy YAML.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let doc: Value =
            serde_yaml::from_str(text).map_err(|e| format!("the audit policy: {e}"))?;
        let mut rules = Vec::new();
        for rule in doc
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let level = Level::parse(rule.get("level").and_then(Value::as_str).unwrap_or(""))?;
            let resources = rule
                .get("resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|r| {
                    (
                        r.get("group")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        strings(r, "resources"),
                        strings(r, "resourceNames"),
                    )
                })
                .collect();
            rules.push(Rule {
                level,
                users: strings(rule, "users"),
                groups: strings(rule, "userGroups"),
                verbs: strings(rule, "verbs"),
                resources,
                namespaces: strings(rule, "namespaces"),
                urls: strings(rule, "nonResourceURLs"),
            });
        }
        Ok(Policy { rules })
    }

    /// The level of a request: the first rule that matches; None when none does.
    pub fn level(&self, user: &User, a: &Attributes) -> Level {
        self.rules
            .iter()
            .find(|r| r.matches(user, a))
            .map_or(Level::None, |r| r.level)
    }
}

/// What a request left for its audit event.
#[derive(Debug, Default)]
pub struct Record {
    /// When it arrived.
    pub received: Option<OffsetDateTime>,
    /// The authenticated user.
    pub user: Option<User>,
    /// The user it ran as, when it impersonated one.
    pub impersonated: Option<User>,
    /// What it asked.
    pub attributes: Option<Attributes>,
    /// The API version of a resource request.
    pub api_version: String,
    /// The authorizer's decision and reason.
    pub decision: Option<(bool, String)>,
    /// Its body, when it had one, and the body's media type.
    pub body: Option<(String, Bytes)>,
}

fn timestamp(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn user_info(user: &User) -> Value {
    let mut info = json!({ "username": user.name, "groups": user.groups });
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    info
}

/// The audit log writer.
#[derive(Debug, Clone)]
pub struct Auditor {
    policy: std::sync::Arc<Policy>,
    lines: mpsc::Sender<Bytes>,
}

impl Auditor {
    /// Opens the log (appending) and starts its writer; `-` is standard output.
    pub async fn start(path: &Path, policy: Policy) -> Result<Auditor, String> {
        let (lines, mut queue) = mpsc::channel::<Bytes>(AUDIT_QUEUE);
        let mut out: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = if path == Path::new("-") {
            Box::new(tokio::io::stdout())
        } else {
            Box::new(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            )
        };
        tokio::spawn(async move {
            while let Some(line) = queue.recv().await {
                if out.write_all(&line).await.is_err() {
                    tracing::error!("the audit log cannot be written");
                }
                if queue.is_empty() {
                    let _ = out.flush().await;
                }
            }
        });
        Ok(Auditor {
            policy: std::sync::Arc::new(policy),
            lines,
        })
    }

    /// The level a request is logged at.
    pub fn level(&self, record: &Record) -> Level {
        match (&record.user, &record.attributes) {
            (Some(user), Some(a)) => self
                .policy
                .level(record.impersonated.as_ref().unwrap_or(user), a),
            (None, Some(a)) => self.policy.level(&User::anonymous(), a),
            _ => Level::None,
        }
    }

    /// Writes the event of a finished request.
    #[allow(clippy::too_many_arguments)]
    pub async fn log(
        &self,
        level: Level,
        record: &Record,
        uri: &str,
        source: Option<std::net::IpAddr>,
        user_agent: Option<&str>,
        status: Value,
        response: Option<&Bytes>,
    ) {
        let Some(a) = &record.attributes else { return };
        let now = OffsetDateTime::now_utc();
        let anonymous = User::anonymous();
        let mut event = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level.name(),
            "auditID": uuid::Uuid::new_v4().to_string(),
            "stage": if a.verb == "watch" { "ResponseStarted" } else { "ResponseComplete" },
            "requestURI": uri,
            "verb": a.verb,
            "user": user_info(record.user.as_ref().unwrap_or(&anonymous)),
            "sourceIPs": source.map(|ip| vec![ip.to_string()]).unwrap_or_default(),
            "responseStatus": status,
            "requestReceivedTimestamp": timestamp(record.received.unwrap_or(now)),
            "stageTimestamp": timestamp(now),
        });
        if let Some(agent) = user_agent {
            event["userAgent"] = json!(agent);
        }
        if let Some(user) = &record.impersonated {
            event["impersonatedUser"] = user_info(user);
        }
        if a.resource_request {
            let mut reference = json!({ "resource": a.resource, "apiVersion": record.api_version });
            for (field, value) in [
                ("namespace", &a.namespace),
                ("name", &a.name),
                ("apiGroup", &a.group),
                ("subresource", &a.subresource),
            ] {
                if !value.is_empty() {
                    reference[field] = json!(value);
                }
            }
            event["objectRef"] = reference;
        }
        if let Some((allowed, reason)) = &record.decision {
            event["annotations"] = json!({
                "authorization.k8s.io/decision": if *allowed { "allow" } else { "forbid" },
                "authorization.k8s.io/reason": reason,
            });
        }
        let as_json = |bytes: &Bytes| serde_json::from_slice::<Value>(bytes).ok();
        if level >= Level::Request {
            // Protobuf and YAML bodies are recorded as the JSON they decode to.
            let request = record.body.as_ref().and_then(|(media, bytes)| {
                crate::transport::codec::decode(media, bytes)
                    .ok()
                    .or_else(|| as_json(bytes))
            });
            if let Some(body) = request {
                event["requestObject"] = body;
            }
        }
        if level >= Level::RequestResponse {
            if let Some(body) = response.and_then(as_json) {
                event["responseObject"] = body;
            }
        }
        let mut line = serde_json::to_vec(&event).expect("JSON serializes");
        line.push(b'\n');
        let _ = self.lines.send(Bytes::from(line)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_rule_decides() {
        let policy = Policy::parse(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n\
             - level: None\n  nonResourceURLs: ['/healthz*']\n\
             - level: RequestResponse\n  resources:\n  - group: ''\n    resources: ['configmaps']\n\
             - level: Metadata\n",
        )
        .unwrap();
        let alice = User::authenticated("alice", "", vec![]);
        let cm = Attributes {
            verb: "create".into(),
            resource_request: true,
            resource: "configmaps".into(),
            ..Attributes::default()
        };
        let secret = Attributes {
            resource: "secrets".into(),
            ..cm.clone()
        };
        assert_eq!(policy.level(&alice, &cm), Level::RequestResponse);
        assert_eq!(policy.level(&alice, &secret), Level::Metadata);
        assert_eq!(
            policy.level(&alice, &Attributes::path("get", "/healthz")),
            Level::None
        );
        assert!(Policy::parse("rules:\n- level: Everything\n").is_err());
    }
}
