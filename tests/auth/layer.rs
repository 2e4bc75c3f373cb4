//! `AuthLayer` and `RequireLayer` as tower services: statuses, challenges and bodies, credential
//! sources, optional authentication.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use protothrive::auth::{
    Algorithm, AuthLayer, Authenticator, CredentialSource, Principal, RequireLayer, RoleHierarchy,
};
use protothrive::clock::ManualClock;
use protothrive::error::RequestId;
use protothrive::response::ResponseBody;
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::keys::{authenticator, builder, token, token_with, verifying};

/// The inner service: answers with the principal's subject (or `anonymous`) and names the
/// credential source in `x-source`.
async fn handler(req: Request<String>) -> Result<Response<Full<Bytes>>, Infallible> {
    let who =
        Principal::of(req.extensions()).map_or("anonymous".to_owned(), |p| p.subject().to_owned());
    let source = format!("{:?}", CredentialSource::of(req.extensions()));
    let mut res = Response::new(Full::new(Bytes::from(who)));
    res.headers_mut()
        .insert("x-source", HeaderValue::from_str(&source).unwrap());
    Ok(res)
}

/// A handler that answers 200 `ok`.
pub(crate) async fn ok(_req: Request<String>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

/// `layer` over the echo handler.
pub(crate) fn echo(
    layer: &AuthLayer,
) -> impl Service<Request<String>, Response = Response<ResponseBody<Full<Bytes>>>, Error = Infallible>
+ Clone
+ use<> {
    layer.layer(service_fn(handler))
}

/// A response, read.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) challenge: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) body: Bytes,
}

pub(crate) async fn send<S, B>(svc: &S, req: Request<String>) -> Answer
where
    S: Service<Request<String>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let res = svc.clone().oneshot(req).await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (challenge, source) = (header("www-authenticate"), header("x-source"));
    let status = res.status();
    if status.is_client_error() {
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        challenge,
        source,
        body,
    }
}

pub(crate) fn bearer(token: &str) -> Request<String> {
    Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap()
}

const INVALID: &str = r#"Bearer realm="api", error="invalid_token""#;

#[tokio::test]
async fn every_refusal_answers_401_with_one_body_and_every_good_token_passes() {
    let clock = ManualClock::default();
    let svc = echo(&AuthLayer::new(authenticator(&clock)));
    let missing = send(&svc, Request::new(String::new())).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.challenge.as_deref(), Some(r#"Bearer realm="api""#));
    let body: Value = serde_json::from_slice(&missing.body).unwrap();
    assert_eq!(body["code"], "AUTH-401");
    assert_eq!(body["status"], 401);

    let (mut refused, mut passed) = (0, 0);
    for row in crate::table::rows() {
        if HeaderValue::from_str(&row.token).is_err() {
            continue; // cannot be sent at all
        }
        let answer = send(&svc, bearer(&row.token)).await;
        match row.expect {
            None => {
                passed += 1;
                assert_eq!(answer.status, StatusCode::OK, "{}", row.name);
                assert_eq!(answer.body, "alice", "{}", row.name);
            }
            Some(reason) => {
                refused += 1;
                let name = &row.name;
                // A token that is not even an RFC 6750 b64token fails at the header; the rest
                // reach the verifier. Either way: the same answer.
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{name} ({reason})");
                assert_eq!(answer.challenge.as_deref(), Some(INVALID), "{name}");
                assert_eq!(answer.body, missing.body, "{name}: the body tells a reason");
            }
        }
    }
    assert!(
        refused > 100 && passed > 20,
        "{refused} refused, {passed} passed"
    );
}

#[tokio::test]
async fn request_ids_are_the_only_thing_that_differs_between_bodies() {
    let svc = echo(&AuthLayer::new(authenticator(&ManualClock::default())));
    let plain = send(&svc, bearer("a.b.c")).await;
    let mut req = bearer("a.b.c");
    req.extensions_mut().insert(RequestId::new("req-1"));
    let with_id = send(&svc, req).await;
    let mut body: Value = serde_json::from_slice(&with_id.body).unwrap();
    assert_eq!(body["request_id"], "req-1");
    body.as_object_mut().unwrap().remove("request_id");
    assert_eq!(body, serde_json::from_slice::<Value>(&plain.body).unwrap());
}

#[tokio::test]
async fn the_authorization_header_is_parsed_strictly() {
    let svc = echo(&AuthLayer::new(authenticator(&ManualClock::default())));
    let good = token(Algorithm::HS256);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let req = Request::builder()
            .header("authorization", format!("{scheme} {good}"))
            .body(String::new())
            .unwrap();
        let a = send(&svc, req).await;
        assert_eq!(a.status, StatusCode::OK, "{scheme}");
        assert_eq!(a.source.as_deref(), Some("Some(AuthorizationHeader)"));
    }
    let bad: Vec<Vec<u8>> = vec![
        format!("Bearer{good}").into(),
        format!("Token {good}").into(),
        format!("Basic {good}").into(),
        format!("ApiKey {good}").into(), // API keys are not enabled here
        format!("Bearer {good} extra").into(),
        format!("Bearer {good},{good}").into(),
        format!("Bearer \"{good}\"").into(),
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        b"Bearer \xff\xfe\xfd".to_vec(),
        [b"Bearer ".as_slice(), good.as_bytes(), b"\xc3\xa9"].concat(),
        b"\xf0\x9f\x94\x91 key".to_vec(),
    ];
    for value in bad {
        let mut req = Request::new(String::new());
        req.headers_mut()
            .insert("authorization", HeaderValue::from_bytes(&value).unwrap());
        let a = send(&svc, req).await;
        let shown = String::from_utf8_lossy(&value);
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{shown}");
        assert_eq!(a.challenge.as_deref(), Some(INVALID), "{shown}");
    }
    // Two Authorization headers, both good: which one counts would be ambiguous.
    let req = Request::builder()
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", format!("Bearer {good}"))
        .body(String::new())
        .unwrap();
    assert_eq!(send(&svc, req).await.status, StatusCode::UNAUTHORIZED);
}

fn with_header(name: &str, value: &str, uri: &str) -> Request<String> {
    Request::builder()
        .uri(uri)
        .header(name, value)
        .body(String::new())
        .unwrap()
}

#[tokio::test]
async fn cookie_and_query_sources_are_off_unless_enabled() {
    let clock = ManualClock::default();
    let good = token(Algorithm::HS256);
    let cookie = format!("theme=dark; session={good}");
    let query = format!("/?x=1&access_token={good}");

    let default = echo(&AuthLayer::new(authenticator(&clock)));
    for req in [
        with_header("cookie", &cookie, "/"),
        with_header("x-other", "1", &query),
    ] {
        let a = send(&default, req).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.challenge.as_deref(), Some(r#"Bearer realm="api""#));
    }

    let auth = builder(&clock)
        .key(verifying(Algorithm::HS256))
        .cookie("session")
        .query_parameter("access_token")
        .build()
        .unwrap();
    let svc = echo(&AuthLayer::new(auth));
    let a = send(&svc, with_header("cookie", &cookie, "/")).await;
    assert_eq!(
        (a.status, a.source.as_deref()),
        (StatusCode::OK, Some("Some(Cookie)"))
    );
    let a = send(&svc, with_header("x-other", "1", &query)).await;
    assert_eq!(
        (a.status, a.source.as_deref()),
        (StatusCode::OK, Some("Some(Query)"))
    );
    // A stale cookie next to an explicit header: the header wins.
    let mut req = bearer(&good);
    req.headers_mut().insert(
        "cookie",
        HeaderValue::from_static("session=stale.cookie.value"),
    );
    let a = send(&svc, req).await;
    assert_eq!(a.source.as_deref(), Some("Some(AuthorizationHeader)"));
    // A header and a query parameter: ambiguous.
    let mut req = bearer(&good);
    *req.uri_mut() = query.parse().unwrap();
    assert_eq!(send(&svc, req).await.status, StatusCode::UNAUTHORIZED);
    // A bad cookie is refused like a bad header.
    let a = send(&svc, with_header("cookie", "session=x.y.z", "/")).await;
    assert_eq!(a.challenge.as_deref(), Some(INVALID));
}

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through_but_not_bad_credentials() {
    let clock = ManualClock::default();
    let svc = echo(&AuthLayer::optional(authenticator(&clock)));
    let a = send(&svc, Request::new(String::new())).await;
    assert_eq!(
        (a.status, a.body.as_ref()),
        (StatusCode::OK, b"anonymous".as_ref())
    );
    let a = send(&svc, bearer(&token(Algorithm::ES384))).await;
    assert_eq!(
        (a.status, a.body.as_ref()),
        (StatusCode::OK, b"alice".as_ref())
    );
    let expired = token_with(Algorithm::ES384, &json!({}), &json!({"exp": 1}));
    let a = send(&svc, bearer(&expired)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.challenge.as_deref(), Some(INVALID));
}

#[tokio::test]
async fn the_realm_is_configurable() {
    let auth = builder(&ManualClock::default())
        .key(verifying(Algorithm::HS256))
        .realm("snippets")
        .build()
        .unwrap();
    let svc = echo(&AuthLayer::new(auth));
    let a = send(&svc, bearer("x.y.z")).await;
    assert_eq!(
        a.challenge.as_deref(),
        Some(r#"Bearer realm="snippets", error="invalid_token""#)
    );
}

/// `RequireLayer` inside `AuthLayer`, over the echo handler.
async fn require(rule: RequireLayer, auth: Authenticator, req: Request<String>) -> Answer {
    let svc = AuthLayer::new(auth).layer(rule.layer(service_fn(handler)));
    send(&svc, req).await
}

#[tokio::test]
async fn missing_scopes_are_403_insufficient_scope_naming_them() {
    let auth = authenticator(&ManualClock::default());
    let with_scope =
        |scope: &str| token_with(Algorithm::HS256, &json!({}), &json!({"scope": scope}));
    let rule = || RequireLayer::scopes(["roadmaps:read", "roadmaps:write"]);

    let a = require(rule(), auth.clone(), bearer(&with_scope("roadmaps:read"))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.challenge.as_deref(),
        Some(r#"Bearer realm="api", error="insufficient_scope", scope="roadmaps:write""#)
    );
    let body: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(body["code"], "AUTH-403");
    assert!(body["detail"].as_str().unwrap().contains("roadmaps:write"));

    let a = require(rule(), auth.clone(), bearer(&with_scope("other"))).await;
    assert!(
        a.challenge
            .unwrap()
            .ends_with(r#"scope="roadmaps:read roadmaps:write""#)
    );
    let both = with_scope("roadmaps:write roadmaps:read admin");
    assert_eq!(
        require(rule(), auth.clone(), bearer(&both)).await.status,
        StatusCode::OK
    );
    // `scp` arrays count as scopes too.
    let scp = token_with(
        Algorithm::HS256,
        &json!({}),
        &json!({"scope": null, "scp": ["roadmaps:read", "roadmaps:write"]}),
    );
    assert_eq!(
        require(rule(), auth, bearer(&scp)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn role_hierarchy_and_role_lists_are_enforced() {
    let auth = authenticator(&ManualClock::default());
    let roles = RoleHierarchy::new(["vibe_coder", "engineer", "exec", "super_admin"]).unwrap();
    let with_roles =
        |roles: Value| token_with(Algorithm::HS256, &json!({}), &json!({"roles": roles}));
    for (held, expect) in [
        (json!(["exec"]), StatusCode::OK),
        (json!(["super_admin"]), StatusCode::OK),
        (json!(["vibe_coder", "exec"]), StatusCode::OK),
        (json!("exec"), StatusCode::OK),
        (json!(["engineer"]), StatusCode::FORBIDDEN),
        (json!(["root"]), StatusCode::FORBIDDEN),
        (json!(["EXEC"]), StatusCode::FORBIDDEN),
        (json!([]), StatusCode::FORBIDDEN),
    ] {
        let rule = RequireLayer::role_at_least(&roles, "exec").unwrap();
        let a = require(rule, auth.clone(), bearer(&with_roles(held.clone()))).await;
        assert_eq!(a.status, expect, "{held}");
        if expect == StatusCode::FORBIDDEN {
            let challenge = a.challenge.unwrap();
            assert!(
                challenge.contains(r#"error="insufficient_scope""#),
                "{challenge}"
            );
        }
    }
    let rule = || RequireLayer::any_role(["engineer", "exec"]).and_scopes(["roadmaps:read"]);
    let ok = with_roles(json!(["engineer"]));
    assert_eq!(
        require(rule(), auth.clone(), bearer(&ok)).await.status,
        StatusCode::OK
    );
    let no_role = with_roles(json!(["vibe_coder"]));
    assert_eq!(
        require(rule(), auth.clone(), bearer(&no_role)).await.status,
        StatusCode::FORBIDDEN
    );
    // Without a principal (no AuthLayer in front), RequireLayer answers 401, not 403.
    let svc = RequireLayer::scopes(["x"]).layer(service_fn(handler));
    let a = send(&svc, Request::new(String::new())).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let err = RequireLayer::role_at_least(&roles, "ceo").unwrap_err();
    assert!(err.message().contains("ceo"), "{err}");
}
