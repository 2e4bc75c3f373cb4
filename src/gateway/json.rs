//! JSON request bodies: parse, then validate, and answer every mistake with one 422 problem that
//! lists per-field `errors`.
//!
//! Parsing uses `serde_json` through `serde_path_to_error` (so a wrong type names its field, e.g.
//! `graph.nodes[3].id`); rules are `validator`'s. Before either, a linear scan refuses bodies nested
//! deeper than a limit, so a 10,000-deep array costs one pass, not a stack.

use http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::error::{Problem, code};

/// The default nesting limit of request bodies.
pub const DEFAULT_MAX_DEPTH: usize = 32;

/// One field-level error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The path of the field (`title`, `graph.nodes[3].id`; empty for the whole body).
    pub field: String,
    /// A stable code (`required`, `invalid_type`, `length`, `range`, `invalid_json`, ...).
    pub code: String,
    /// A human-readable message.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The 422 problem for a list of field errors.
///
/// ```
/// use protothrive::gateway::{validation_problem, FieldError};
/// let p = validation_problem(vec![FieldError::new("title", "required", "title is required")]);
/// assert_eq!(p.status(), 422);
/// assert_eq!(p.to_json()["errors"][0]["field"], "title");
/// ```
#[must_use]
pub fn validation_problem(mut errors: Vec<FieldError>) -> Problem {
    errors.sort_by(|a, b| a.field.cmp(&b.field).then_with(|| a.code.cmp(&b.code)));
    let list: Vec<Value> = errors
        .iter()
        .map(|e| json!({"field": e.field, "code": e.code, "message": e.message}))
        .collect();
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code::VALIDATION_FAILED)
        .with_detail("The request is invalid; see `errors`.")
        .with_member("errors", list)
}

/// Whether `bytes` nest arrays and objects deeper than `max` (strings are skipped correctly).
#[must_use]
pub fn nesting_exceeds(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn path_error(err: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let mut path = err.path().to_string();
    if path == "." {
        path.clear();
    }
    let inner = err.inner();
    let message = inner.to_string();
    let between = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let join = |parent: &str, name: &str| {
        // For unknown fields the path already ends at the field itself.
        if parent.is_empty() || parent == name || parent.ends_with(&format!(".{name}")) {
            if parent.is_empty() {
                name.to_owned()
            } else {
                parent.to_owned()
            }
        } else {
            format!("{parent}.{name}")
        }
    };
    if let Some(name) = between("missing field `") {
        return FieldError::new(
            join(&path, &name),
            "required",
            format!("{name} is required"),
        );
    }
    if let Some(name) = between("unknown field `") {
        return FieldError::new(
            join(&path, &name),
            "unknown_field",
            format!("{name} is not a known field"),
        );
    }
    match inner.classify() {
        serde_json::error::Category::Data => {
            // Drop serde's position suffix: it describes the parser, not the field.
            let text = message.split(" at line ").next().unwrap_or(&message);
            FieldError::new(path, "invalid_type", text)
        }
        _ => FieldError::new("", "invalid_json", "The body is not valid JSON."),
    }
}

fn flatten(prefix: &str, errors: &ValidationErrors, out: &mut Vec<FieldError>) {
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    let message = e.message.as_ref().map_or_else(
                        || format!("{path} is invalid ({})", e.code),
                        ToString::to_string,
                    );
                    out.push(FieldError::new(path.clone(), e.code.to_string(), message));
                }
            }
            ValidationErrorsKind::Struct(inner) => flatten(&path, inner, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    flatten(&format!("{path}[{i}]"), inner, out);
                }
            }
        }
    }
}

/// Parses and validates a JSON body; every failure is a 422 problem with field errors.
///
/// ```
/// use protothrive::gateway::parse_json;
/// #[derive(Debug, serde::Deserialize)]
/// struct Login { email: String }
/// impl validator::Validate for Login {
///     fn validate(&self) -> Result<(), validator::ValidationErrors> { Ok(()) }
/// }
///
/// assert_eq!(parse_json::<Login>(br#"{"email":"a@b.c"}"#, 32).unwrap().email, "a@b.c");
/// let p = parse_json::<Login>(br#"{"email":7}"#, 32).unwrap_err();
/// assert_eq!(p.to_json()["errors"][0]["field"], "email");
/// let p = parse_json::<Login>(br#"{}"#, 32).unwrap_err();
/// assert_eq!(p.to_json()["errors"][0]["code"], "required");
/// ```
///
/// # Errors
/// A 422 [`Problem`] listing what is wrong.
pub fn parse_json<T: DeserializeOwned + Validate>(
    bytes: &[u8],
    max_depth: usize,
) -> Result<T, Problem> {
    if nesting_exceeds(bytes, max_depth) {
        return Err(validation_problem(vec![FieldError::new(
            "",
            "too_deep",
            format!("The body nests deeper than {max_depth} levels."),
        )]));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(de)
        .map_err(|e| validation_problem(vec![path_error(&e)]))?;
    // Trailing bytes after the value are an error too.
    if serde_json::Deserializer::from_slice(bytes)
        .into_iter::<serde::de::IgnoredAny>()
        .nth(1)
        .is_some()
    {
        return Err(validation_problem(vec![FieldError::new(
            "",
            "invalid_json",
            "The body has data after the JSON value.",
        )]));
    }
    value.validate().map_err(|errors| {
        let mut out = Vec::new();
        flatten("", &errors, &mut out);
        validation_problem(out)
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    impl Validate for Outer {
        fn validate(&self) -> Result<(), ValidationErrors> {
            Ok(())
        }
    }

    fn first_error(body: &str) -> (String, String) {
        let p = parse_json::<Outer>(body.as_bytes(), 8).unwrap_err();
        let e = &p.to_json()["errors"][0];
        (
            e["field"].as_str().unwrap().to_owned(),
            e["code"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn field_paths_name_the_field_once() {
        assert_eq!(
            first_error(r#"{"bogus":1}"#),
            ("bogus".into(), "unknown_field".into())
        );
        assert_eq!(
            first_error(r#"{"inner":{"name":"x","extra":1}}"#),
            ("inner.extra".into(), "unknown_field".into())
        );
        assert_eq!(
            first_error(r#"{"inner":{}}"#),
            ("inner.name".into(), "required".into())
        );
        assert_eq!(
            first_error(r#"{"inner":{"name":5}}"#),
            ("inner.name".into(), "invalid_type".into())
        );
        assert_eq!(
            first_error(r#"{"inner":"#),
            (String::new(), "invalid_json".into())
        );
        assert_eq!(
            first_error(r#"{"inner":{"name":"x"}} x"#),
            (String::new(), "invalid_json".into())
        );
    }

    #[test]
    fn depth_scan_ignores_brackets_in_strings() {
        assert!(!nesting_exceeds(br#"{"a":"[[[[[[[["}"#, 2));
        assert!(!nesting_exceeds(br#"{"a":"\"[[[["}"#, 2));
        assert!(nesting_exceeds(b"[[[", 2));
        assert!(!nesting_exceeds(b"[[]]", 2));
        let deep = "[".repeat(10_000);
        assert!(nesting_exceeds(deep.as_bytes(), 32));
    }
}
