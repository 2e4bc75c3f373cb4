//! API keys: `Authorization: ApiKey` and `X-API-Key`, through a store that only ever sees hashes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use protothrive::auth::{
    Algorithm, ApiKeyHash, ApiKeyRecord, ApiKeyStore, AuthError, AuthLayer, Authenticator,
    BoxFuture, CredentialSource, InMemoryApiKeys, MAX_API_KEY_BYTES, Principal, Reason,
    RequireLayer, Scheme, generate_api_key,
};
use protothrive::clock::ManualClock;
use tower::Layer;

use crate::keys::{NOW, builder, token, verifying};
use crate::layer::send;

/// A named request (its headers) and the reason it must be refused for.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Reason);

struct Fixture {
    clock: ManualClock,
    store: InMemoryApiKeys,
    auth: Authenticator,
    key: String,
}

fn fixture() -> Fixture {
    let clock = ManualClock::default();
    let store = InMemoryApiKeys::default();
    let (key, hash) = generate_api_key("pt");
    store.insert(
        ApiKeyRecord::new("key-1", "ci-bot", hash)
            .scopes(["snippets:read"])
            .roles(["engineer"])
            .tenant("acme")
            .expires_at(NOW + 3600),
    );
    let auth = builder(&clock)
        .key(verifying(Algorithm::HS256))
        .api_keys(store.clone())
        .build()
        .unwrap();
    Fixture {
        clock,
        store,
        auth,
        key,
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

async fn authenticate(
    auth: &Authenticator,
    pairs: &[(&str, &str)],
) -> Result<Option<(Principal, CredentialSource)>, Reason> {
    auth.authenticate(&headers(pairs), &Uri::from_static("/"))
        .await
        .map_err(|e| e.reason())
}

#[tokio::test]
async fn api_keys_authenticate_from_either_header() {
    let f = fixture();
    let by_scheme = format!("ApiKey {}", f.key);
    let lower = format!("apikey {}", f.key);
    for (pairs, source) in [
        (
            vec![("authorization", by_scheme.as_str())],
            CredentialSource::AuthorizationHeader,
        ),
        (
            vec![("authorization", lower.as_str())],
            CredentialSource::AuthorizationHeader,
        ),
        (
            vec![("x-api-key", f.key.as_str())],
            CredentialSource::ApiKeyHeader,
        ),
    ] {
        let (p, s) = authenticate(&f.auth, &pairs).await.unwrap().unwrap();
        assert_eq!(s, source);
        assert_eq!(p.subject(), "ci-bot");
        assert_eq!(p.scheme(), Scheme::ApiKey);
        assert_eq!(p.token_id(), Some("key-1"));
        assert_eq!(p.tenant(), Some("acme"));
        assert_eq!(p.expires_at(), Some(NOW + 3600));
        assert!(p.has_scope("snippets:read") && p.has_role("engineer"));
    }
    // JWTs still work next to API keys.
    let bearer = format!("Bearer {}", token(Algorithm::HS256));
    let (p, source) = authenticate(&f.auth, &[("authorization", &bearer)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.subject(), source),
        ("alice", CredentialSource::AuthorizationHeader)
    );
}

#[tokio::test]
async fn unknown_revoked_expired_and_malformed_keys_are_refused() {
    let f = fixture();
    let (other, _) = generate_api_key("pt");
    let long = "k".repeat(MAX_API_KEY_BYTES + 1);
    let bearer = format!("Bearer {}", token(Algorithm::HS256));
    let cases: Vec<Case<'_>> = vec![
        (
            "unknown",
            vec![("x-api-key", &other)],
            Reason::UnknownApiKey,
        ),
        (
            "prefix only",
            vec![("x-api-key", "pt_")],
            Reason::UnknownApiKey,
        ),
        ("too long", vec![("x-api-key", &long)], Reason::Malformed),
        (
            "space inside",
            vec![("x-api-key", "pt_a b")],
            Reason::Malformed,
        ),
        ("empty", vec![("x-api-key", "")], Reason::Malformed),
        (
            "two X-API-Key headers",
            vec![("x-api-key", &f.key), ("x-api-key", &f.key)],
            Reason::Ambiguous,
        ),
        (
            "a bearer token and an API key",
            vec![("authorization", &bearer), ("x-api-key", &f.key)],
            Reason::Ambiguous,
        ),
    ];
    for (name, pairs, reason) in cases {
        assert_eq!(
            authenticate(&f.auth, &pairs).await.err(),
            Some(reason),
            "{name}"
        );
    }

    f.clock.advance(Duration::from_secs(3599));
    let (_, source) = authenticate(&f.auth, &[("x-api-key", &f.key)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(source, CredentialSource::ApiKeyHeader);
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(
        authenticate(&f.auth, &[("x-api-key", &f.key)]).await.err(),
        Some(Reason::ApiKeyExpired)
    );
    assert!(f.store.revoke("key-1"));
    assert_eq!(
        authenticate(&f.auth, &[("x-api-key", &f.key)]).await.err(),
        Some(Reason::ApiKeyRevoked)
    );
    assert!(!f.store.revoke("no-such-key"));
}

#[tokio::test]
async fn without_a_store_api_keys_are_not_credentials() {
    let clock = ManualClock::default();
    let auth = builder(&clock)
        .key(verifying(Algorithm::HS256))
        .build()
        .unwrap();
    let (key, _) = generate_api_key("pt");
    // X-API-Key is not looked at; `Authorization: ApiKey` is a scheme this service does not take.
    assert!(matches!(
        authenticate(&auth, &[("x-api-key", &key)]).await,
        Ok(None)
    ));
    assert_eq!(
        authenticate(&auth, &[("authorization", &format!("ApiKey {key}"))])
            .await
            .err(),
        Some(Reason::Malformed)
    );
}

/// A store that records what it is asked, answers with a fixed record, or fails.
#[derive(Debug, Default)]
struct Recorder {
    asked: Mutex<Vec<ApiKeyHash>>,
    answer: Mutex<Option<ApiKeyRecord>>,
    down: Mutex<bool>,
}

#[derive(Debug, Clone)]
struct Shared(Arc<Recorder>);

impl ApiKeyStore for Shared {
    fn find<'a>(
        &'a self,
        hash: &'a ApiKeyHash,
    ) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, AuthError>> {
        self.0.asked.lock().unwrap().push(*hash);
        let answer = if *self.0.down.lock().unwrap() {
            Err(AuthError::new(Reason::Unavailable))
        } else {
            Ok(self.0.answer.lock().unwrap().clone())
        };
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn the_store_sees_only_hashes_and_its_answer_is_checked() {
    let clock = ManualClock::default();
    let recorder = Arc::new(Recorder::default());
    let auth = builder(&clock)
        .key(verifying(Algorithm::HS256))
        .api_keys(Shared(recorder.clone()))
        .build()
        .unwrap();
    let (key, hash) = generate_api_key("pt");
    *recorder.answer.lock().unwrap() = Some(ApiKeyRecord::new("k", "owner", hash));
    let (p, _) = authenticate(&auth, &[("x-api-key", &key)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.subject(), "owner");
    assert_eq!(
        recorder.asked.lock().unwrap().as_slice(),
        [ApiKeyHash::of(&key)]
    );
    assert_eq!(ApiKeyHash::from_hex(&hash.to_hex()), Some(hash));
    assert!(
        !format!("{hash:?}").contains(&hash.to_hex()),
        "Debug shows a prefix only"
    );

    // A store that answers with some other key's record (a buggy query) lets nothing through.
    let (other, _) = generate_api_key("pt");
    assert_eq!(
        authenticate(&auth, &[("x-api-key", &other)]).await.err(),
        Some(Reason::UnknownApiKey)
    );

    // A store that is down fails closed, as 503.
    *recorder.down.lock().unwrap() = true;
    assert_eq!(
        authenticate(&auth, &[("x-api-key", &key)]).await.err(),
        Some(Reason::Unavailable)
    );
    let svc = AuthLayer::new(auth).layer(tower::service_fn(crate::layer::ok));
    let mut req = http::Request::new(String::new());
    req.headers_mut()
        .insert("x-api-key", HeaderValue::from_str(&key).unwrap());
    assert_eq!(
        send(&svc, req).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn api_key_scopes_meet_route_requirements() {
    let f = fixture();
    let (writer, hash) = generate_api_key("pt");
    f.store.insert(
        ApiKeyRecord::new("key-2", "deployer", hash).scopes(["snippets:read", "snippets:write"]),
    );
    let svc = AuthLayer::new(f.auth.clone())
        .layer(RequireLayer::scopes(["snippets:write"]).layer(tower::service_fn(crate::layer::ok)));
    let with_key = |key: &str| {
        let mut req = http::Request::new(String::new());
        req.headers_mut()
            .insert("x-api-key", HeaderValue::from_str(key).unwrap());
        req
    };
    let a = send(&svc, with_key(&f.key)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.challenge.as_deref(),
        Some(r#"Bearer realm="api", error="insufficient_scope", scope="snippets:write""#)
    );
    assert_eq!(send(&svc, with_key(&writer)).await.status, StatusCode::OK);
    let (unknown, _) = generate_api_key("pt");
    assert_eq!(
        send(&svc, with_key(&unknown)).await.status,
        StatusCode::UNAUTHORIZED
    );
}
