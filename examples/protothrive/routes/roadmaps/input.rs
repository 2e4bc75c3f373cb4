//! The roadmap request body, in two passes.
//!
//! 1. [`RoadmapBody`] through `ValidJson`: types, unknown fields, and every rule that concerns one
//!    field on its own (lengths, enums, tags).
//! 2. [`RoadmapBody::full`] / [`RoadmapBody::partial`]: the rules that depend on the API version
//!    or the method — which graph field this version speaks (`json_graph`, a string, in v1; `graph`,
//!    an object, in v2), the required fields of POST/PUT, an empty PATCH, and the graph rules
//!    (`graph.rs`). All of this pass's problems come back together in one 422.
//!
//! `null` means "not given": PATCH cannot null a field; send `""` to clear the description.

use protothrive::gateway::{ApiVersion, FieldError};
use serde::Deserialize;
use serde_json::Value;
use validator::{Validate, ValidationError};

use super::graph;
use crate::db::roadmaps::{Full, Partial};
use crate::http::AppError;

pub const STATUSES: [&str; 4] = ["draft", "active", "completed", "archived"];
pub const VISIBILITIES: [&str; 3] = ["private", "team", "public"];

fn one_of(value: &str, allowed: &[&str]) -> Result<(), ValidationError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::new("enum")
            .with_message(format!("one of {}", allowed.join(", ")).into()))
    }
}

fn status_value(s: &str) -> Result<(), ValidationError> {
    one_of(s, &STATUSES)
}

fn visibility_value(s: &str) -> Result<(), ValidationError> {
    one_of(s, &VISIBILITIES)
}

fn not_blank(s: &str) -> Result<(), ValidationError> {
    if s.trim().is_empty() {
        Err(ValidationError::new("blank").with_message("must not be only whitespace".into()))
    } else {
        Ok(())
    }
}

fn tag_values(tags: &[String]) -> Result<(), ValidationError> {
    match tags
        .iter()
        .position(|t| t.trim().is_empty() || t.chars().count() > 50)
    {
        None => Ok(()),
        Some(i) => Err(ValidationError::new("length")
            .with_message(format!("tags[{i}] must be 1 to 50 characters").into())),
    }
}

/// A roadmap as a client sends it (POST, PUT, PATCH; both versions).
#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct RoadmapBody {
    #[validate(
        length(min = 1, max = 200, message = "1 to 200 characters"),
        custom(function = "not_blank")
    )]
    title: Option<String>,
    #[validate(length(max = 2000, message = "at most 2000 characters"))]
    description: Option<String>,
    /// v1: the graph as a JSON string.
    json_graph: Option<String>,
    /// v2: the graph as an object.
    graph: Option<Value>,
    #[validate(custom(function = "status_value"))]
    status: Option<String>,
    vibe_mode: Option<bool>,
    #[validate(custom(function = "visibility_value"))]
    visibility: Option<String>,
    #[validate(
        length(max = 20, message = "at most 20 tags"),
        custom(function = "tag_values")
    )]
    tags: Option<Vec<String>>,
}

fn tags_json(tags: Option<&Vec<String>>) -> Option<String> {
    tags.map(|t| Value::from(t.clone()).to_string())
}

impl RoadmapBody {
    /// The graph of this version's field, checked and serialized; problems go to `errors`.
    fn graph(&self, v: ApiVersion, errors: &mut Vec<FieldError>) -> Option<String> {
        let (ours, theirs) = if v.0 >= 2 {
            ("graph", "json_graph")
        } else {
            ("json_graph", "graph")
        };
        let other_given = if v.0 >= 2 {
            self.json_graph.is_some()
        } else {
            self.graph.is_some()
        };
        if other_given {
            errors.push(FieldError::new(
                theirs,
                "unknown_field",
                format!(
                    "{theirs} is not a {} field; send the graph as {ours} ({})",
                    v.name(),
                    if v.0 >= 2 {
                        "a JSON object"
                    } else {
                        "a string holding a JSON object"
                    }
                ),
            ));
        }
        let value = if v.0 >= 2 {
            self.graph.clone()
        } else {
            match self
                .json_graph
                .as_deref()
                .map(|t| graph::parse_text(ours, t))
            {
                None => None,
                Some(Ok(value)) => Some(value),
                Some(Err(e)) => {
                    errors.push(e);
                    return None;
                }
            }
        };
        match graph::canonical(ours, &value?) {
            Ok(text) => Some(text),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        }
    }

    fn graph_field(v: ApiVersion) -> &'static str {
        if v.0 >= 2 { "graph" } else { "json_graph" }
    }

    /// POST and PUT: title and graph required, the rest defaulted.
    pub fn full(self, v: ApiVersion) -> Result<Full, AppError> {
        let mut errors = Vec::new();
        let graph = self.graph(v, &mut errors);
        if self.title.is_none() {
            errors.push(FieldError::new("title", "required", "title is required"));
        }
        let field = Self::graph_field(v);
        if graph.is_none() && !errors.iter().any(|e| e.field.starts_with(field)) {
            errors.push(FieldError::new(
                field,
                "required",
                format!("{field} is required"),
            ));
        }
        match (self.title, graph) {
            (Some(title), Some(graph)) if errors.is_empty() => Ok(Full {
                title,
                description: self.description,
                graph,
                status: self.status.unwrap_or_else(|| STATUSES[0].to_owned()),
                vibe_mode: self.vibe_mode.unwrap_or(false),
                visibility: self
                    .visibility
                    .unwrap_or_else(|| VISIBILITIES[0].to_owned()),
                tags: tags_json(self.tags.as_ref()).unwrap_or_else(|| "[]".to_owned()),
            }),
            _ => Err(AppError::Validation(errors)),
        }
    }

    /// PATCH: whatever is given, at least one field.
    pub fn partial(self, v: ApiVersion) -> Result<Partial, AppError> {
        let mut errors = Vec::new();
        let graph = self.graph(v, &mut errors);
        if !errors.is_empty() {
            return Err(AppError::Validation(errors));
        }
        let tags = tags_json(self.tags.as_ref());
        let p = Partial {
            title: self.title,
            description: self.description,
            graph,
            status: self.status,
            vibe_mode: self.vibe_mode,
            visibility: self.visibility,
            tags,
        };
        let empty = p.title.is_none()
            && p.description.is_none()
            && p.graph.is_none()
            && p.status.is_none()
            && p.vibe_mode.is_none()
            && p.visibility.is_none()
            && p.tags.is_none();
        if empty {
            return Err(AppError::field(
                "",
                "empty_update",
                "an update must set at least one field (null means not given)",
            ));
        }
        Ok(p)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use protothrive::gateway::parse_json;

    use super::*;

    fn body(json: &str) -> RoadmapBody {
        parse_json(json.as_bytes(), 32).unwrap()
    }

    fn errors(r: Result<impl std::fmt::Debug, AppError>) -> Vec<(String, String)> {
        match r {
            Err(AppError::Validation(e)) => e.into_iter().map(|e| (e.field, e.code)).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    const GRAPH: &str = r#"{"nodes":[{"id":"a"},{"id":"b"}],"edges":[{"from":"a","to":"b"}]}"#;

    #[test]
    fn v1_takes_a_string_v2_an_object() {
        let v1 = body(&format!(
            r#"{{"title":"T","json_graph":{}}}"#,
            Value::from(GRAPH)
        ));
        let full = v1.full(ApiVersion(1)).unwrap();
        assert_eq!(
            (
                full.status.as_str(),
                full.visibility.as_str(),
                full.tags.as_str()
            ),
            ("draft", "private", "[]")
        );
        let v2 = body(&format!(r#"{{"title":"T","graph":{GRAPH},"tags":["a"]}}"#));
        assert_eq!(v2.full(ApiVersion(2)).unwrap().tags, r#"["a"]"#);
        let crossed = body(&format!(r#"{{"title":"T","graph":{GRAPH}}}"#));
        assert_eq!(
            errors(crossed.full(ApiVersion(1))),
            vec![
                ("graph".into(), "unknown_field".into()),
                ("json_graph".into(), "required".into())
            ]
        );
    }

    #[test]
    fn full_needs_title_and_graph() {
        assert_eq!(
            errors(body("{}").full(ApiVersion(2))),
            vec![
                ("title".into(), "required".into()),
                ("graph".into(), "required".into())
            ]
        );
        let bad = body(
            r#"{"title":"T","json_graph":"{\"nodes\":[{\"id\":\"a\"}],\"edges\":[{\"source\":\"a\",\"target\":\"b\"}]}"}"#,
        );
        assert_eq!(
            errors(bad.full(ApiVersion(1))),
            vec![("json_graph.edges[0].target".into(), "unknown_node".into())]
        );
        let not_json = body(r#"{"title":"T","json_graph":"{nodes"}"#);
        assert_eq!(
            errors(not_json.full(ApiVersion(1))),
            vec![("json_graph".into(), "invalid_json".into())]
        );
    }

    #[test]
    fn patch_must_change_something() {
        assert_eq!(
            errors(body("{}").partial(ApiVersion(1))),
            vec![(String::new(), "empty_update".into())]
        );
        assert_eq!(
            errors(body(r#"{"title":null}"#).partial(ApiVersion(2))),
            vec![(String::new(), "empty_update".into())]
        );
        let p = body(r#"{"vibe_mode":true}"#)
            .partial(ApiVersion(2))
            .unwrap();
        assert_eq!(p.vibe_mode, Some(true));
        assert!(p.graph.is_none());
    }

    #[test]
    fn field_rules() {
        let rejected = |json: &str| parse_json::<RoadmapBody>(json.as_bytes(), 32).is_err();
        assert!(rejected(r#"{"title":""}"#));
        assert!(rejected(r#"{"title":"   "}"#));
        assert!(rejected(&format!(r#"{{"title":"{}"}}"#, "x".repeat(201))));
        assert!(rejected(&format!(
            r#"{{"description":"{}"}}"#,
            "x".repeat(2001)
        )));
        assert!(rejected(r#"{"status":"deleted"}"#));
        assert!(rejected(r#"{"visibility":"everyone"}"#));
        assert!(rejected(r#"{"vibe_mode":"yes"}"#));
        assert!(rejected(r#"{"tags":["a",""]}"#));
        assert!(rejected(&format!(r#"{{"tags":["{}"]}}"#, "x".repeat(51))));
        assert!(rejected(&format!(
            r#"{{"tags":{}}}"#,
            Value::from(vec!["t"; 21])
        )));
        assert!(rejected(r#"{"tags":[1]}"#));
        assert!(rejected(r#"{"title":"T","owner":"someone-else"}"#));
        assert!(rejected(r#"{"json_graph":{"nodes":[],"edges":[]}}"#));
        assert!(!rejected(&format!(
            r#"{{"title":"{}","status":"archived","visibility":"team"}}"#,
            "é".repeat(200)
        )));
    }
}
