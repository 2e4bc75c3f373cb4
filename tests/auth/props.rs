//! Property tests: whatever arrives as a token or an `Authorization` header, nothing panics and
//! nothing authenticates unless it is a token the keys signed.
//!
//! Failing cases are saved in `tests/auth/proptest-regressions/props.txt` and replayed first on
//! every run.

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use protothrive::auth::{
    Algorithm, AuthLayer, Authenticator, Reason, TokenKind, VerifyingKey, verify_token,
};
use protothrive::clock::ManualClock;
use serde_json::{Map, Value, json};
use tower::{Layer, ServiceExt};

use crate::keys::{
    ALL_ALGS, NOW, authenticator, compact, good_claims, header, signer, token, verifying,
};

/// Runs a future that never waits: with static keys and in-memory hooks, authentication
/// completes on its first poll. A `Pending` here would itself be a bug worth a failure.
fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("authentication waited on something"),
    }
}

fn all_keys() -> &'static [VerifyingKey] {
    static KEYS: OnceLock<Vec<VerifyingKey>> = OnceLock::new();
    KEYS.get_or_init(|| ALL_ALGS.iter().map(|a| verifying(*a)).collect())
}

fn auth() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let clock = ManualClock::default();
        crate::keys::builder(&clock)
            .key(verifying(Algorithm::HS256))
            .key(verifying(Algorithm::ES256))
            .api_keys(protothrive::auth::InMemoryApiKeys::default())
            .cookie("session")
            .query_parameter("access_token")
            .build()
            .unwrap()
    })
}

/// The tokens that mutations start from.
fn good_tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| ALL_ALGS.iter().map(|a| token(*a)).collect())
}

const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A JSON value of any type, shallow.
fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (NOW - 1000..NOW + 1000).prop_map(Value::from),
        "[a-z:]{0,12}".prop_map(Value::from),
        Just(Value::from("alice")),
        Just(Value::from(crate::keys::ISSUER)),
        Just(Value::from(crate::keys::AUDIENCE)),
        prop::collection::vec("[a-z]{0,6}".prop_map(Value::from), 0..3).prop_map(Value::from),
        Just(json!({"nested": true})),
    ]
}

/// Claims with each registered claim absent or of any type.
fn any_claims() -> impl Strategy<Value = Map<String, Value>> {
    let names = [
        "sub", "iss", "aud", "exp", "nbf", "iat", "jti", "type", "roles", "scope", "scp", "tenant",
    ];
    prop::collection::vec(prop::option::of(any_json()), names.len()).prop_map(move |values| {
        names
            .iter()
            .zip(values)
            .filter_map(|(n, v)| v.map(|v| ((*n).to_owned(), v)))
            .collect()
    })
}

/// 512 cases each; failures are saved next to this file (not at proptest's default path, which
/// every `props.rs` under `tests/` would share).
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/auth/proptest-regressions/props.txt",
        ))),
        ..ProptestConfig::with_cases(512)
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_authenticate(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(verify_token(&text, all_keys(), TokenKind::Access, NOW).is_err());
        prop_assert!(now(auth().verify(&text, TokenKind::Access)).is_err());
    }

    #[test]
    fn token_shaped_strings_never_authenticate(
        t in "[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{0,300}\\.[A-Za-z0-9_-]{0,400}",
    ) {
        prop_assert!(verify_token(&t, all_keys(), TokenKind::Access, NOW).is_err());
        prop_assert!(now(auth().verify(&t, TokenKind::Refresh)).is_err());
    }

    #[test]
    fn arbitrary_authorization_headers_never_authenticate(
        scheme in prop_oneof![Just("Bearer "), Just("bearer "), Just("ApiKey "), Just("")],
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        also_api_key in any::<bool>(),
    ) {
        let value = [scheme.as_bytes(), &bytes].concat();
        let Ok(value) = HeaderValue::from_bytes(&value) else {
            return Ok(()); // not a header value: hyper would not deliver it
        };
        let mut headers = HeaderMap::new();
        if also_api_key {
            headers.insert("x-api-key", value.clone());
            headers.insert("cookie", value.clone());
        }
        headers.insert("authorization", value);
        let uri = Uri::from_static("/?access_token=x");
        let outcome = now(auth().authenticate(&headers, &uri));
        prop_assert!(!matches!(outcome, Ok(Some(_))), "{headers:?} authenticated");

        let svc = AuthLayer::optional(auth().clone()).layer(tower::service_fn(crate::layer::ok));
        let mut req = Request::new(String::new());
        *req.headers_mut() = headers;
        *req.uri_mut() = uri;
        let status = now(svc.oneshot(req)).unwrap().status();
        let expected = if outcome.is_ok() { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
        prop_assert_eq!(status, expected);
    }

    #[test]
    fn one_changed_character_never_authenticates(
        which in 0..ALL_ALGS.len(),
        at in any::<prop::sample::Index>(),
        replacement in prop_oneof![
            prop::sample::select(B64URL.chars().collect::<Vec<_>>()),
            prop::sample::select(vec!['.', '=', ' ', '+', '/', '\0', 'é']),
        ],
    ) {
        let original = &good_tokens()[which];
        let i = at.index(original.len());
        let mut mutated = original.clone();
        mutated.replace_range(i..=i, replacement.encode_utf8(&mut [0; 4]));
        let result = verify_token(&mutated, all_keys(), TokenKind::Access, NOW);
        if mutated == *original {
            prop_assert_eq!(result.map(|p| p.subject().to_owned()), Ok("alice".to_owned()));
        } else {
            prop_assert!(
                result.is_err(),
                "{:?} still verifies after position {i} became {replacement:?}",
                ALL_ALGS[which]
            );
        }
    }

    #[test]
    fn signed_claims_of_any_shape_pass_only_when_valid(claims in any_claims()) {
        let t = compact(
            header(Algorithm::HS256).to_string(),
            Value::Object(claims.clone()).to_string(),
            signer(Algorithm::HS256),
        );
        let Ok(p) = verify_token(&t, all_keys(), TokenKind::Access, NOW) else {
            return Ok(());
        };
        // The pure core has no leeway and no issuer or audience policy.
        let exp = claims["exp"].as_f64().unwrap();
        prop_assert!(exp.floor() > NOW as f64, "expired exp {exp} accepted");
        prop_assert_eq!(p.subject(), claims["sub"].as_str().unwrap());
        if let Some(nbf) = claims.get("nbf") {
            prop_assert!(nbf.as_f64().unwrap().floor() <= NOW as f64);
        }
        for name in ["iss", "jti", "tenant", "scope"] {
            prop_assert!(claims.get(name).is_none_or(Value::is_string), "{name}");
        }
        if let Some(kind) = claims.get("type") {
            prop_assert_eq!(kind, "access");
        }
        if let Some(aud) = claims.get("aud") {
            prop_assert!(aud.is_string() || aud.as_array().unwrap().iter().all(Value::is_string));
        }
    }

    #[test]
    fn any_alg_name_verifies_only_as_its_own_key(
        alg in prop_oneof![
            "[A-Za-z0-9]{0,8}",
            prop::sample::select(vec!["none", "None", "HS256", "RS256", "ES256", "EdDSA", "PS512"])
                .prop_map(str::to_owned),
        ],
        signed_by in 0..ALL_ALGS.len(),
    ) {
        let h = json!({"alg": alg});
        let t = compact(h.to_string(), good_claims().to_string(), signer(ALL_ALGS[signed_by]));
        let result = verify_token(&t, all_keys(), TokenKind::Access, NOW);
        let own_name = crate::keys::alg_name(ALL_ALGS[signed_by]);
        // HMAC keys share a secret and RSA keys a key pair, but each key verifies one algorithm:
        // only the algorithm the signature was made with verifies.
        prop_assert_eq!(result.is_ok(), alg == own_name, "{} signed, header says {}", own_name, alg);
        if result.is_err() && !crate::keys::ALL_ALGS.iter().any(|a| crate::keys::alg_name(*a) == alg) {
            prop_assert_eq!(result.err(), Some(Reason::UnsupportedAlgorithm));
        }
    }
}

#[test]
fn the_properties_start_from_tokens_that_do_verify() {
    for t in good_tokens() {
        let principal = verify_token(t, all_keys(), TokenKind::Access, NOW).unwrap();
        assert_eq!(principal.subject(), "alice");
    }
    let auth = authenticator(&ManualClock::default());
    let principal = now(auth.verify(&good_tokens()[0], TokenKind::Access)).unwrap();
    assert_eq!(principal.subject(), "alice");
}
