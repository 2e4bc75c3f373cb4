//! Keys from a JWKS URL, against a real key server on loopback whose set changes mid-test.
//!
//! Time is a `ManualClock`; waiting is on the server's request counter, never on a timer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use axum::http::StatusCode;
use protothrive::auth::{
    Algorithm, AuthLayer, Authenticator, HttpJwksFetcher, Jwks, MAX_KEYS, Reason, TokenKind,
};
use protothrive::clock::ManualClock;
use serde_json::{Value, json};

use crate::key_server::KeyServer;
use crate::keys::{
    NOW, Signer, compact, ec_jwk, ed_jwk, good_claims, keys, p256, rsa_jwk, token_with,
};

/// An ES256 key of a test's own, published under `kid`.
pub(crate) struct EcKey {
    pub(crate) pair: EcdsaKeyPair,
    kid: String,
}

impl EcKey {
    pub(crate) fn new(kid: &str) -> Self {
        Self {
            pair: p256(),
            kid: kid.to_owned(),
        }
    }

    pub(crate) fn jwk(&self) -> Value {
        let mut jwk = ec_jwk(&self.pair, "P-256", &self.kid);
        jwk["alg"] = "ES256".into();
        jwk
    }

    pub(crate) fn token(&self) -> String {
        self.token_as(&self.kid)
    }

    /// A token signed by this key but naming `kid`.
    pub(crate) fn token_as(&self, kid: &str) -> String {
        let header = json!({"alg": "ES256", "kid": kid});
        // Valid for a day: tests move the clock by refresh intervals.
        let claims = crate::keys::merged(good_claims(), &json!({"exp": NOW + 86_400}));
        compact(
            header.to_string(),
            claims.to_string(),
            Signer::Ecdsa(&self.pair),
        )
    }
}

pub(crate) fn jwks(server: &KeyServer, clock: &ManualClock, min_refetch: Duration) -> Jwks {
    Jwks::builder(HttpJwksFetcher::new(&server.url()).unwrap())
        .clock(Arc::new(clock.clone()))
        .refresh_interval(Duration::from_secs(300))
        .min_refetch_interval(min_refetch)
        .build()
}

pub(crate) fn auth(jwks: &Jwks, clock: &ManualClock) -> Authenticator {
    crate::keys::builder(clock)
        .jwks(jwks.clone())
        .no_token_cache()
        .build()
        .unwrap()
}

pub(crate) async fn check(auth: &Authenticator, token: &str) -> Result<(), Reason> {
    auth.verify(token, TokenKind::Access)
        .await
        .map(|_| ())
        .map_err(|e| e.reason())
}

fn random_kid() -> String {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    crate::keys::b64(bytes)
}

/// Verifies `tokens` concurrently: all requests are in flight at once, held at the key server
/// when `expected_fetch` is set until every one has started (then released).
async fn flood(
    server: &KeyServer,
    auth: &Authenticator,
    tokens: Vec<String>,
    expected_fetch: Option<usize>,
) -> Vec<Result<(), Reason>> {
    let n = tokens.len();
    let started = Arc::new(AtomicUsize::new(0));
    if expected_fetch.is_some() {
        server.hold();
    }
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let (auth, started) = (auth.clone(), started.clone());
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                // On this single-threaded runtime a task runs without a break from here to the
                // first await that waits: the key-set fetch, or the lock of the fetch in flight.
                check(&auth, &t).await
            })
        })
        .collect();
    if let Some(hits) = expected_fetch {
        server.jwks_hit(hits).await;
        while started.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
        server.release();
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn rotation_accepts_new_kids_after_a_refetch_and_keeps_old_ones_until_replaced() {
    let server = KeyServer::start().await;
    let (a, b, c) = (EcKey::new("a"), EcKey::new("b"), EcKey::new("c"));
    server.set_keys(&[a.jwk()]);
    let clock = ManualClock::default();
    let jwks = jwks(&server, &clock, Duration::from_secs(30));
    let auth = auth(&jwks, &clock);

    // The first token fetches the set.
    assert_eq!(check(&auth, &a.token()).await, Ok(()));
    assert_eq!((jwks.fetch_count(), server.jwks_hits()), (1, 1));

    // b appears; within the minimum interval the set is not refetched, even for a real key.
    server.set_keys(&[a.jwk(), b.jwk()]);
    assert_eq!(check(&auth, &b.token()).await, Err(Reason::UnknownKey));
    assert_eq!(server.jwks_hits(), 1);
    clock.advance(Duration::from_secs(30));
    assert_eq!(check(&auth, &b.token()).await, Ok(()));
    assert_eq!((jwks.fetch_count(), server.jwks_hits()), (2, 2));

    // a is retired at the server: still accepted until the set is refreshed.
    server.set_keys(&[b.jwk(), c.jwk()]);
    assert_eq!(check(&auth, &a.token()).await, Ok(()));
    assert_eq!(server.jwks_hits(), 2);

    // The set grows stale: the next request is served from the current keys and starts a
    // background refresh.
    clock.advance(Duration::from_secs(300));
    assert_eq!(check(&auth, &a.token()).await, Ok(()));
    server.jwks_hit(3).await;
    // The refresh has its answer; the server now fails, so the refresh below (which waits for the
    // background one) keeps what the background refresh installed.
    server.set_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        jwks.refresh().await.map_err(|e| e.to_string()),
        Err("JWKS: answered 503 Service Unavailable".to_owned())
    );
    assert_eq!(server.jwks_hits(), 4);
    let kids: Vec<_> = jwks
        .keys()
        .iter()
        .map(|k| k.kid().unwrap().to_owned())
        .collect();
    assert_eq!(kids, ["b", "c"]);
    assert_eq!(check(&auth, &a.token()).await, Err(Reason::UnknownKey));
    assert_eq!(check(&auth, &c.token()).await, Ok(()));
}

#[tokio::test]
async fn an_unknown_kid_flood_fetches_once_per_minimum_interval() {
    let server = KeyServer::start().await;
    let (good, attacker) = (EcKey::new("good"), EcKey::new("attacker"));
    server.set_keys(&[good.jwk()]);
    let clock = ManualClock::default();
    let jwks = jwks(&server, &clock, Duration::from_secs(30));
    let auth = auth(&jwks, &clock);
    jwks.refresh().await.unwrap();
    let flood_tokens = || (0..200).map(|_| attacker.token_as(&random_kid())).collect();

    // Right after a fetch: no fetch at all.
    let results = flood(&server, &auth, flood_tokens(), None).await;
    assert!(results.iter().all(|r| *r == Err(Reason::UnknownKey)));
    assert_eq!((jwks.fetch_count(), server.jwks_hits()), (1, 1));

    // Past the interval: 200 concurrent unknown kids, exactly one fetch.
    clock.advance(Duration::from_secs(30));
    let results = flood(&server, &auth, flood_tokens(), Some(2)).await;
    assert!(results.iter().all(|r| *r == Err(Reason::UnknownKey)));
    assert_eq!((jwks.fetch_count(), server.jwks_hits()), (2, 2));

    clock.advance(Duration::from_secs(29));
    flood(&server, &auth, flood_tokens(), None).await;
    assert_eq!(server.jwks_hits(), 2);

    clock.advance(Duration::from_secs(1));
    flood(&server, &auth, flood_tokens(), Some(3)).await;
    assert_eq!((jwks.fetch_count(), server.jwks_hits()), (3, 3));

    // Good tokens were never affected.
    assert_eq!(check(&auth, &good.token()).await, Ok(()));
}

#[tokio::test]
async fn concurrent_requests_for_a_new_kid_share_one_fetch() {
    let server = KeyServer::start().await;
    let (a, b) = (EcKey::new("a"), EcKey::new("b"));
    server.set_keys(&[a.jwk()]);
    let clock = ManualClock::default();
    // No minimum interval: only single-flight stands between 200 requests and 200 fetches.
    let jwks = jwks(&server, &clock, Duration::ZERO);
    let auth = auth(&jwks, &clock);
    jwks.refresh().await.unwrap();
    server.set_keys(&[a.jwk(), b.jwk()]);
    let results = flood(&server, &auth, vec![b.token(); 200], Some(2)).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!((jwks.fetch_count(), server.jwks_hits()), (2, 2));
}

#[tokio::test]
async fn stale_keys_keep_working_while_the_server_is_down() {
    let mut server = KeyServer::start().await;
    let a = EcKey::new("a");
    server.set_keys(&[a.jwk()]);
    let clock = ManualClock::default();
    let jwks = jwks(&server, &clock, Duration::from_secs(30));
    let auth = auth(&jwks, &clock);
    assert_eq!(jwks.refresh().await, Ok(1));

    server.stop().await;
    for _ in 0..3 {
        clock.advance(Duration::from_secs(301));
        assert_eq!(check(&auth, &a.token()).await, Ok(()));
        let err = jwks.refresh().await.unwrap_err().to_string();
        // The rest is the HTTP client's account of the refused connection.
        assert!(err.starts_with("JWKS: request failed: "), "{err}");
        assert_eq!(jwks.keys().len(), 1);
        assert_eq!(check(&auth, &a.token()).await, Ok(()));
    }
    assert_eq!(
        check(&auth, &EcKey::new("x").token()).await,
        Err(Reason::UnknownKey)
    );
}

#[tokio::test]
async fn failed_fetches_and_empty_or_oversized_sets_keep_the_current_keys() {
    let server = KeyServer::start().await;
    let a = EcKey::new("a");
    server.set_keys(&[a.jwk()]);
    let clock = ManualClock::default();
    let jwks = jwks(&server, &clock, Duration::from_secs(30));
    let auth = auth(&jwks, &clock);
    jwks.refresh().await.unwrap();
    let big = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    for (name, set, error) in [
        ("500", None, "answered 500 Internal Server Error"),
        (
            "not JSON",
            Some("<html>".to_owned()),
            "not JSON: expected value at line 1 column 1",
        ),
        (
            "no keys array",
            Some(r#"{"keys":{}}"#.to_owned()),
            "the document has no `keys` array",
        ),
        (
            "no usable key",
            Some(crate::keys::jwks_doc(&[json!({"kty": "XYZ"})])),
            "the set has no usable key",
        ),
        (
            "empty set",
            Some(crate::keys::jwks_doc(&[])),
            "the set has no usable key",
        ),
        ("over 1 MiB", Some(big.clone()), "the document is too large"),
    ] {
        match set {
            Some(doc) => server.set_document(doc),
            None => server.set_status(StatusCode::INTERNAL_SERVER_ERROR),
        }
        assert_eq!(
            jwks.refresh().await.map_err(|e| e.to_string()),
            Err(format!("JWKS: {error}")),
            "{name}"
        );
        assert_eq!(jwks.keys().len(), 1, "{name}");
        assert_eq!(check(&auth, &a.token()).await, Ok(()), "{name}");
    }
}

#[tokio::test]
async fn keys_that_cannot_be_used_are_skipped_and_the_rest_of_the_set_works() {
    let server = KeyServer::start().await;
    let k = keys();
    let good = EcKey::new("good");
    let p521 = EcdsaKeyPair::generate(&signature::ECDSA_P521_SHA512_FIXED_SIGNING).unwrap();
    let weak = aws_lc_rs::rsa::PublicKey::from_der(&crate::keys::pem_body(
        crate::keys::RSA_1024_PUBLIC_PEM,
    ))
    .unwrap();
    let rsa = k.rsa.public_key();
    let mut enc = rsa_jwk(rsa, "PS256", "enc");
    enc["use"] = "enc".into();
    let mut p521_jwk = ec_jwk(&p521, "P-521", "p521");
    p521_jwk["alg"] = "ES512".into();
    let mut no_alg = rsa_jwk(rsa, "RS256", "no-alg");
    no_alg.as_object_mut().unwrap().remove("alg");
    let set = [
        enc,
        json!({"kty": "XYZ", "kid": "weird"}),
        json!({"kid": "no-kty"}),
        rsa_jwk(&weak, "RS256", "weak"),
        p521_jwk,
        json!({"kty": "oct", "kid": "hs256", "alg": "HS256", "k": crate::keys::b64(crate::keys::HMAC_SECRET)}),
        rsa_jwk(rsa, "HS256", "confused"),
        rsa_jwk(rsa, "RSA-OAEP", "oaep"),
        json!({"kty": "EC", "crv": "P-256", "kid": "off-curve", "x": "AAAA", "y": "AAAA"}),
        no_alg.clone(),
        good.jwk(),
        rsa_jwk(rsa, "PS256", "good-rsa"),
        ed_jwk(&k.ed, "good-ed"),
    ];
    server.set_keys(&set);
    let clock = ManualClock::default();
    let jwks = jwks(&server, &clock, Duration::from_secs(30));
    let auth = auth(&jwks, &clock);
    assert_eq!(jwks.refresh().await, Ok(3));

    let signed = |alg: Algorithm, kid: &str| token_with(alg, &json!({"kid": kid}), &json!({}));
    assert_eq!(check(&auth, &good.token()).await, Ok(()));
    assert_eq!(
        check(&auth, &signed(Algorithm::PS256, "good-rsa")).await,
        Ok(())
    );
    assert_eq!(
        check(&auth, &signed(Algorithm::EdDSA, "good-ed")).await,
        Ok(())
    );
    // The encryption key is the same RSA key: skipped all the same.
    assert_eq!(
        check(&auth, &signed(Algorithm::PS256, "enc")).await,
        Err(Reason::UnknownKey)
    );
    for (alg, kid) in [
        (Algorithm::RS256, "no-alg"),
        (Algorithm::RS256, "weak"),
        (Algorithm::HS256, "hs256"),
    ] {
        assert_eq!(
            check(&auth, &signed(alg, kid)).await,
            Err(Reason::UnsupportedAlgorithm),
            "{kid}"
        );
    }
    let confused = compact(
        r#"{"alg":"HS256","kid":"confused"}"#,
        good_claims().to_string(),
        Signer::Hmac(
            aws_lc_rs::hmac::HMAC_SHA256,
            &crate::keys::public_der(Algorithm::RS256),
        ),
    );
    assert_eq!(
        check(&auth, &confused).await,
        Err(Reason::UnsupportedAlgorithm)
    );
    let es512 = compact(
        r#"{"alg":"ES512","kid":"p521"}"#,
        good_claims().to_string(),
        Signer::Ecdsa(&p521),
    );
    assert_eq!(
        check(&auth, &es512).await,
        Err(Reason::UnsupportedAlgorithm)
    );

    // An RSA key that names no algorithm is usable once a default is configured.
    server.set_keys(&[no_alg]);
    let with_default = Jwks::builder(HttpJwksFetcher::new(&server.url()).unwrap())
        .default_rsa_algorithm(Algorithm::RS256)
        .build();
    assert_eq!(with_default.refresh().await, Ok(1));
    assert_eq!(with_default.keys()[0].algorithm(), Algorithm::RS256);
}

#[tokio::test]
async fn at_most_max_keys_are_read_from_one_set() {
    let server = KeyServer::start().await;
    let many: Vec<Value> = (0..MAX_KEYS + 10)
        .map(|i| EcKey::new(&format!("k{i}")).jwk())
        .collect();
    server.set_keys(&many);
    let jwks = jwks(&server, &ManualClock::default(), Duration::from_secs(30));
    assert_eq!(jwks.refresh().await, Ok(MAX_KEYS));
}

#[tokio::test]
async fn no_key_set_yet_is_unavailable_not_unauthorized() {
    use tower::ServiceExt;
    let server = KeyServer::start().await;
    server.set_status(StatusCode::SERVICE_UNAVAILABLE);
    let clock = ManualClock::default();
    let jwks = jwks(&server, &clock, Duration::from_secs(30));
    let auth = auth(&jwks, &clock);
    let a = EcKey::new("a");
    assert_eq!(check(&auth, &a.token()).await, Err(Reason::Unavailable));

    let svc = crate::layer::echo(&AuthLayer::new(auth));
    let req = http::Request::builder()
        .header("authorization", format!("Bearer {}", a.token()))
        .body(String::new())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));

    // Once the server is back (and the interval has passed), the same token works.
    server.set_keys(&[a.jwk()]);
    clock.advance(Duration::from_secs(30));
    let auth = self::auth(&jwks, &clock);
    assert_eq!(check(&auth, &a.token()).await, Ok(()));
}

/// A token verified with a key that then leaves the set is refused from then on, cached
/// verification or not (through the layer, which answers from the cache without awaiting); tokens
/// of the keys that stay are still served from the cache.
#[tokio::test]
async fn a_token_of_a_key_that_left_the_set_is_dropped_from_the_cache() {
    let server = KeyServer::start().await;
    let (a, b) = (EcKey::new("a"), EcKey::new("b"));
    server.set_keys(&[a.jwk(), b.jwk()]);
    let clock = ManualClock::default();
    let jwks = jwks(&server, &clock, Duration::from_secs(30));
    let auth = crate::keys::builder(&clock)
        .jwks(jwks.clone())
        .build()
        .unwrap();
    let svc = crate::layer::echo(&AuthLayer::new(auth.clone()));
    let (ta, tb) = (a.token(), b.token());
    for t in [&ta, &tb] {
        assert_eq!(check(&auth, t).await, Ok(()));
    }
    assert_eq!(auth.cached_tokens(), 2);

    server.set_keys(&[b.jwk()]);
    jwks.refresh().await.unwrap();
    assert_eq!(check(&auth, &ta).await, Err(Reason::UnknownKey));
    let answer = crate::layer::send(&svc, crate::layer::bearer(&ta)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(check(&auth, &tb).await, Ok(()));
    let answer = crate::layer::send(&svc, crate::layer::bearer(&tb)).await;
    assert_eq!(answer.status, StatusCode::OK);
}
