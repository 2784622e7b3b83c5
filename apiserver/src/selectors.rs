//! Label and field selectors (`labelSelector=`, `fieldSelector=`), parsed once per request
//! and matched against objects in lists and watches.

use serde_json::Value;

use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Exists,
    NotExists,
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Greater(i64),
    Less(i64),
}

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<(String, Op)>);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn set(values: &str) -> ApiResult<Vec<String>> {
    let inner = values
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to parse requirement: found '{values}', expected: '('"
            ))
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parses kube's selector syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`,
    /// `a`, `!a`, `a>1`, `a<1`, comma-separated.
    pub fn parse(text: &str) -> ApiResult<Self> {
        let mut requirements = Vec::new();
        if text.trim().is_empty() {
            return Ok(LabelSelector(requirements));
        }
        for part in split_top(text) {
            let part = part.trim();
            let bad = || ApiError::bad_request(format!("unable to parse requirement: {part:?}"));
            let (key, op) = if let Some(key) = part.strip_prefix('!') {
                (key.trim(), Op::NotExists)
            } else if let Some((key, v)) = part.split_once("!=") {
                (key.trim(), Op::NotEquals(v.trim().into()))
            } else if let Some((key, v)) = part.split_once("==") {
                (key.trim(), Op::Equals(v.trim().into()))
            } else if let Some((key, v)) = part.split_once('=') {
                (key.trim(), Op::Equals(v.trim().into()))
            } else if let Some((key, v)) = part.split_once(" notin ") {
                (key.trim(), Op::NotIn(set(v)?))
            } else if let Some((key, v)) = part.split_once(" in ") {
                (key.trim(), Op::In(set(v)?))
            } else if let Some((key, v)) = part.split_once('>') {
                (
                    key.trim(),
                    Op::Greater(v.trim().parse().map_err(|_| bad())?),
                )
            } else if let Some((key, v)) = part.split_once('<') {
                (key.trim(), Op::Less(v.trim().parse().map_err(|_| bad())?))
            } else {
                (part, Op::Exists)
            };
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(bad());
            }
            requirements.push((key.to_string(), op));
        }
        Ok(LabelSelector(requirements))
    }

    /// Selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`); None when an
    /// expression's operator is unknown. An empty selector selects everything.
    pub fn from_object(selector: &Value) -> Option<Self> {
        let mut requirements = Vec::new();
        for (key, value) in selector
            .get("matchLabels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            requirements.push((key.clone(), Op::Equals(value.as_str()?.to_string())));
        }
        for expression in selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = expression.get("key")?.as_str()?.to_string();
            let values: Vec<String> = expression
                .get("values")
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let op = match expression.get("operator")?.as_str()? {
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::NotExists,
                _ => return None,
            };
            requirements.push((key, op));
        }
        Some(LabelSelector(requirements))
    }

    /// True when the object's labels satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.0.iter().all(|(key, op)| match (op, label(key)) {
            (Op::Exists, v) => v.is_some(),
            (Op::NotExists, v) => v.is_none(),
            (Op::Equals(want), v) => v == Some(want.as_str()),
            (Op::NotEquals(want), v) => v != Some(want.as_str()),
            (Op::In(set), v) => v.is_some_and(|v| set.iter().any(|s| s == v)),
            (Op::NotIn(set), v) => !v.is_some_and(|v| set.iter().any(|s| s == v)),
            (Op::Greater(n), v) => v
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            (Op::Less(n), v) => v
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }
}

/// A parsed field selector over the fields a kind supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(&'static str, bool, String)>);

impl FieldSelector {
    /// Parses `a=b,c!=d` for `resource`; an unsupported field is kube's 400.
    pub fn parse(text: &str, resource: &Resource) -> ApiResult<Self> {
        let mut terms = Vec::new();
        if text.trim().is_empty() {
            return Ok(FieldSelector(terms));
        }
        for part in text.split(',') {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            let pointer = match field {
                "metadata.name" => "/metadata/name",
                "metadata.namespace" => "/metadata/namespace",
                _ => resource
                    .fields
                    .iter()
                    .find(|(label, _)| *label == field)
                    .map(|(_, pointer)| *pointer)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("field label not supported: {field}"))
                    })?,
            };
            terms.push((pointer, equal, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    /// Selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name this selector pins (`metadata.name=x`), which lets a list read one key.
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(p, equal, _)| *p == "/metadata/name" && *equal)
            .map(|(_, _, v)| v.as_str())
    }

    /// True when every term holds; a missing field reads as "".
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(pointer, equal, want)| {
            let have = match object.pointer(pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (have == *want) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels}, "spec": {}})
    }

    #[test]
    fn label_selectors_follow_kube_operators() {
        let o = pod(json!({"app": "web", "tier": "front", "n": "7"}));
        let yes = [
            "",
            "app=web",
            "app==web",
            "app!=db",
            "app in (web, db)",
            "tier notin (back)",
            "app",
            "!missing",
            "app=web,tier=front",
            "n>5",
            "n<8",
            "missing!=x",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(&o), "{s}");
        }
        let no = [
            "app=db",
            "app!=web",
            "app in (db)",
            "tier notin (front,back)",
            "missing",
            "!app",
            "n>7",
            "app=web,tier=back",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(&o), "{s}");
        }
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn field_selectors_know_each_kinds_fields() {
        let pods = crate::resources::find("", "v1", "pods").unwrap();
        let o =
            json!({"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running"}});
        assert!(
            FieldSelector::parse("metadata.name=p,status.phase=Running", pods)
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("spec.nodeName=", pods)
            .unwrap()
            .matches(&o));
        assert!(!FieldSelector::parse("metadata.namespace!=ns", pods)
            .unwrap()
            .matches(&o));
        let error = FieldSelector::parse("spec.bogus=x", pods).unwrap_err();
        assert_eq!(error.message, "field label not supported: spec.bogus");
        assert_eq!(
            FieldSelector::parse("metadata.name=p", pods)
                .unwrap()
                .name(),
            Some("p")
        );
    }
}
