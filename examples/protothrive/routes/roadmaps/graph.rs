//! The roadmap graph rules, as plain functions over a `serde_json::Value`: a JSON object with
//! `nodes` and `edges` arrays, every node an object with a unique, non-empty string `id`, every
//! edge naming existing nodes by `from`/`to` or `source`/`target`, at most [`MAX_GRAPH_BYTES`]
//! serialized.
//!
//! The errors name the exact place (`graph.edges[2].to`) so a client can point at it; v1 sends the
//! graph as a string in `json_graph`, and its paths then start with `json_graph.`.

use std::collections::HashMap;

use protothrive::gateway::FieldError;
use serde_json::Value;

/// The largest serialized graph (the database enforces the same bound).
pub const MAX_GRAPH_BYTES: usize = 51_200;

/// At most this many graph errors are listed; a garbage graph should not yield a megabyte of them.
const MAX_ERRORS: usize = 50;

/// How much of a client's string an error message quotes.
const QUOTE: usize = 64;

fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE) {
        Some((end, _)) => format!("'{}…'", &s[..end]),
        None => format!("'{s}'"),
    }
}

/// Parses v1's `json_graph` string.
pub fn parse_text(field: &str, text: &str) -> Result<Value, FieldError> {
    if text.len() > MAX_GRAPH_BYTES {
        return Err(too_large(field, text.len()));
    }
    serde_json::from_str(text).map_err(|e| {
        FieldError::new(
            field,
            "invalid_json",
            format!("{field} must be a string holding a JSON object ({e})"),
        )
    })
}

fn too_large(field: &str, len: usize) -> FieldError {
    FieldError::new(
        field,
        "too_large",
        format!("the graph is {len} bytes serialized; the limit is {MAX_GRAPH_BYTES}"),
    )
}

/// Checks `graph` and returns its canonical serialization (what is stored), or every problem
/// found (up to a cap), each under `field`.
pub fn canonical(field: &str, graph: &Value) -> Result<String, Vec<FieldError>> {
    let text = graph.to_string();
    if text.len() > MAX_GRAPH_BYTES {
        return Err(vec![too_large(field, text.len())]);
    }
    let errors = check(field, graph);
    if errors.is_empty() {
        Ok(text)
    } else {
        Err(errors)
    }
}

/// Every structural problem of `graph` (size aside), capped at [`MAX_ERRORS`].
pub fn check(field: &str, graph: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(obj) = graph.as_object() else {
        errors.push(FieldError::new(
            field,
            "invalid_type",
            format!("{field} must be a JSON object with nodes and edges arrays"),
        ));
        return errors;
    };
    let array = |name: &str, errors: &mut Vec<FieldError>| match obj.get(name) {
        Some(Value::Array(items)) => Some(items),
        Some(_) => {
            errors.push(FieldError::new(
                format!("{field}.{name}"),
                "invalid_type",
                format!("{name} must be an array"),
            ));
            None
        }
        None => {
            errors.push(FieldError::new(
                format!("{field}.{name}"),
                "required",
                format!("{name} is required"),
            ));
            None
        }
    };
    let nodes = array("nodes", &mut errors);
    let edges = array("edges", &mut errors);

    // Node ids → the index of the node that first used it.
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.into_iter().flatten().enumerate() {
        let at = format!("{field}.nodes[{i}]");
        let Some(node) = node.as_object() else {
            errors.push(FieldError::new(
                at,
                "invalid_type",
                "a node must be an object",
            ));
            continue;
        };
        match node.get("id") {
            Some(Value::String(id)) if id.is_empty() => {
                errors.push(FieldError::new(
                    format!("{at}.id"),
                    "length",
                    "a node id must not be empty",
                ));
            }
            Some(Value::String(id)) => {
                if let Some(first) = ids.get(id.as_str()) {
                    errors.push(FieldError::new(
                        format!("{at}.id"),
                        "duplicate",
                        format!("node id {} is already used by nodes[{first}]", quote(id)),
                    ));
                } else {
                    ids.insert(id, i);
                }
            }
            Some(_) => errors.push(FieldError::new(
                format!("{at}.id"),
                "invalid_type",
                "a node id must be a string",
            )),
            None => errors.push(FieldError::new(
                format!("{at}.id"),
                "required",
                "a node needs an id",
            )),
        }
    }

    let nodes_ok = nodes.is_some();
    for (i, edge) in edges.into_iter().flatten().enumerate() {
        let at = format!("{field}.edges[{i}]");
        let Some(edge) = edge.as_object() else {
            errors.push(FieldError::new(
                at,
                "invalid_type",
                "an edge must be an object",
            ));
            continue;
        };
        for (a, b) in [("from", "source"), ("to", "target")] {
            let (key, value) = match (edge.get(a), edge.get(b)) {
                (Some(_), Some(_)) => {
                    errors.push(FieldError::new(
                        &at,
                        "ambiguous",
                        format!("an edge names its end by {a} or {b}, not both"),
                    ));
                    continue;
                }
                (Some(v), None) => (a, v),
                (None, Some(v)) => (b, v),
                (None, None) => {
                    errors.push(FieldError::new(
                        format!("{at}.{a}"),
                        "required",
                        format!("an edge needs {a} (or {b}): a node id"),
                    ));
                    continue;
                }
            };
            match value {
                Value::String(id) if nodes_ok && !ids.contains_key(id.as_str()) => {
                    errors.push(FieldError::new(
                        format!("{at}.{key}"),
                        "unknown_node",
                        format!("{key} references {}, which is not a node id", quote(id)),
                    ));
                }
                Value::String(_) => {}
                _ => errors.push(FieldError::new(
                    format!("{at}.{key}"),
                    "invalid_type",
                    format!("{key} must be a node id (a string)"),
                )),
            }
        }
    }

    if errors.len() > MAX_ERRORS {
        let more = errors.len() - MAX_ERRORS;
        errors.truncate(MAX_ERRORS);
        errors.push(FieldError::new(
            field,
            "too_many_errors",
            format!("{more} more problems in the graph are not listed"),
        ));
    }
    errors
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(errors: &[FieldError]) -> Vec<(&str, &str)> {
        errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect()
    }

    #[test]
    fn accepts_both_edge_spellings() {
        let g = json!({
            "nodes": [{"id": "a"}, {"id": "b", "label": "B"}],
            "edges": [{"from": "a", "to": "b"}, {"source": "b", "target": "a"}, {"from": "a", "target": "b"}],
            "meta": {"layout": "dagre"}
        });
        assert!(check("graph", &g).is_empty());
        assert_eq!(canonical("graph", &g).ok(), Some(g.to_string()));
        assert!(check("graph", &json!({"nodes": [], "edges": []})).is_empty());
    }

    #[test]
    fn names_the_offending_place() {
        let g = json!({
            "nodes": [{"id": "a"}, {"id": "a"}, {"label": "x"}, 7, {"id": 3}, {"id": ""}],
            "edges": [{"from": "a", "to": "zz"}, {"source": "nope", "target": "a"}, {"from": "a"},
                      {"from": "a", "source": "a", "to": "a"}, "e", {"from": 1, "to": "a"}]
        });
        let errors = check("graph", &g);
        assert_eq!(
            fields(&errors),
            vec![
                ("graph.nodes[1].id", "duplicate"),
                ("graph.nodes[2].id", "required"),
                ("graph.nodes[3]", "invalid_type"),
                ("graph.nodes[4].id", "invalid_type"),
                ("graph.nodes[5].id", "length"),
                ("graph.edges[0].to", "unknown_node"),
                ("graph.edges[1].source", "unknown_node"),
                ("graph.edges[2].to", "required"),
                ("graph.edges[3]", "ambiguous"),
                ("graph.edges[4]", "invalid_type"),
                ("graph.edges[5].from", "invalid_type"),
            ]
        );
        assert!(errors[5].message.starts_with("to references 'zz'"));
        assert!(errors[6].message.starts_with("source references 'nope'"));
    }

    #[test]
    fn shape_errors() {
        assert_eq!(
            fields(&check("graph", &json!([1]))),
            vec![("graph", "invalid_type")]
        );
        assert_eq!(
            fields(&check("graph", &json!("x"))),
            vec![("graph", "invalid_type")]
        );
        assert_eq!(
            fields(&check("json_graph", &json!({"nodes": {}}))),
            vec![
                ("json_graph.nodes", "invalid_type"),
                ("json_graph.edges", "required")
            ]
        );
        // Without a nodes array, edges are checked for shape but not for references.
        assert!(
            check(
                "graph",
                &json!({"nodes": 1, "edges": [{"from": "a", "to": "b"}]})
            )
            .len()
                == 1
        );
    }

    #[test]
    fn size_limit_is_on_the_serialized_graph() {
        let pad = "x".repeat(MAX_GRAPH_BYTES);
        let g = json!({"nodes": [{"id": "a", "label": pad}], "edges": []});
        let errors = canonical("graph", &g).unwrap_err();
        assert_eq!(fields(&errors), vec![("graph", "too_large")]);
        let small = json!({"nodes": [{"id": "a", "label": "x".repeat(MAX_GRAPH_BYTES - 100)}], "edges": []});
        assert_eq!(canonical("graph", &small), Ok(small.to_string()));
        assert_eq!(
            parse_text("json_graph", &"x".repeat(MAX_GRAPH_BYTES + 1))
                .unwrap_err()
                .code,
            "too_large"
        );
    }

    #[test]
    fn errors_are_capped_and_quotes_are_short() {
        let nodes: Vec<Value> = (0..200).map(|_| json!({"id": "same"})).collect();
        let errors = check("graph", &json!({"nodes": nodes, "edges": []}));
        assert_eq!(errors.len(), MAX_ERRORS + 1);
        assert_eq!(errors[MAX_ERRORS].code, "too_many_errors");
        let long = "é".repeat(500);
        let errors = check(
            "graph",
            &json!({"nodes": [], "edges": [{"from": long, "to": "b"}]}),
        );
        assert!(errors[0].message.chars().count() < 120);
    }

    #[test]
    fn v1_text() {
        assert_eq!(
            parse_text("json_graph", r#"{"nodes":[],"edges":[]}"#),
            Ok(json!({"nodes": [], "edges": []}))
        );
        let e = parse_text("json_graph", "{nodes").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.code.as_str()),
            ("json_graph", "invalid_json")
        );
        // Deep nesting is an error, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = parse_text("json_graph", &deep[..MAX_GRAPH_BYTES.min(deep.len())]).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.code.as_str()),
            ("json_graph", "invalid_json")
        );
    }
}
