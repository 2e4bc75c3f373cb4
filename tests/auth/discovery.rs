//! OIDC discovery against the loopback key server, and the headers that would make a verifier
//! fetch keys named by the token itself (`jku`, `x5u`, `jwk`, `x5c`): never followed.

use std::sync::Arc;
use std::time::Duration;

use protothrive::auth::{HttpJwksFetcher, Jwks, Reason};
use protothrive::clock::ManualClock;
use serde_json::json;

use crate::jwks::{EcKey, auth, check, jwks};
use crate::key_server::KeyServer;
use crate::keys::{NOW, Signer, compact, good_claims, merged};

#[tokio::test]
async fn discovery_finds_the_key_set_of_the_issuer() {
    let server = KeyServer::start().await;
    let a = EcKey::new("a");
    server.set_keys(&[a.jwk()]);
    let fetcher = HttpJwksFetcher::discover(&server.base()).await.unwrap();
    assert_eq!(fetcher.url(), server.url());
    let clock = ManualClock::default();
    let jwks = Jwks::builder(fetcher)
        .clock(Arc::new(clock.clone()))
        .build();
    let auth = auth(&jwks, &clock);
    assert_eq!(check(&auth, &a.token()).await, Ok(()));
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn discovery_refuses_another_issuer_a_missing_or_insecure_jwks_uri() {
    let server = KeyServer::start().await;
    let base = server.base();
    for (issuer, why) in [
        // The document at `{base}/other` names `{base}` as its issuer.
        (format!("{base}/other"), "another issuer"),
        // Issuers compare exactly (OpenID Connect Discovery §4.3): no trailing-slash leniency.
        (format!("{base}/"), "another issuer"),
        (format!("{base}/nojwks"), "no jwks_uri"),
        // jwks_uri over plain HTTP to a host on the network.
        (format!("{base}/insecure"), "https"),
        // No discovery document at all.
        (format!("{base}/missing"), "404"),
    ] {
        let err = HttpJwksFetcher::discover(&issuer).await.unwrap_err();
        assert!(err.to_string().contains(why), "{issuer}: {err}");
    }
    // Plain HTTP to the network is refused before any request is made.
    let err = HttpJwksFetcher::discover("http://idp.example.com")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("must be https"), "{err}");
    for (url, why) in [
        ("http://idp.example.com/jwks", "must be https"),
        ("ftp://127.0.0.1/jwks", "must be https"),
        ("not a url", "is invalid"),
    ] {
        let err = HttpJwksFetcher::new(url).unwrap_err();
        assert!(err.message().contains(why), "{url}: {err}");
    }
    for url in ["https://idp.example.com/jwks", "http://[::1]:8080/jwks"] {
        assert_eq!(HttpJwksFetcher::new(url).unwrap().url(), url);
    }
    assert_eq!(server.jwks_hits(), 0);
}

#[tokio::test]
async fn redirects_are_followed_only_where_a_key_set_url_could_point() {
    let server = KeyServer::start().await;
    server.set_keys(&[EcKey::new("a").jwk()]);
    let base = server.base();
    let moved = Jwks::builder(HttpJwksFetcher::new(&format!("{base}/moved")).unwrap()).build();
    assert_eq!(moved.refresh().await, Ok(1));
    // Plain HTTP off loopback could be rewritten in transit: not followed (and not attempted).
    let insecure =
        Jwks::builder(HttpJwksFetcher::new(&format!("{base}/to-network")).unwrap()).build();
    let err = insecure.refresh().await.unwrap_err();
    assert!(err.to_string().contains("redirect"), "{err}");
}

#[tokio::test]
async fn keys_named_by_the_token_are_never_fetched_or_trusted() {
    let server = KeyServer::start().await;
    let (real, attacker) = (EcKey::new("real"), EcKey::new("attacker"));
    server.set_keys(&[real.jwk()]);
    let clock = ManualClock::default();
    let jwks = jwks(&server, &clock, Duration::from_secs(30));
    let auth = auth(&jwks, &clock);
    jwks.refresh().await.unwrap();

    let base = server.base();
    let claims = merged(good_claims(), &json!({"exp": NOW + 3600})).to_string();
    for (header, expect) in [
        (
            json!({"alg": "ES256", "kid": "attacker", "jku": format!("{base}/evil/jwks")}),
            Reason::UnknownKey,
        ),
        (
            json!({"alg": "ES256", "jku": format!("{base}/evil/jwks")}),
            Reason::BadSignature,
        ),
        (
            json!({"alg": "ES256", "x5u": format!("{base}/evil/cert.pem")}),
            Reason::BadSignature,
        ),
        (
            json!({"alg": "ES256", "kid": "real", "jwk": attacker.jwk()}),
            Reason::BadSignature,
        ),
        (
            json!({"alg": "ES256", "jwk": attacker.jwk()}),
            Reason::BadSignature,
        ),
        (
            json!({"alg": "ES256", "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
            Reason::BadSignature,
        ),
    ] {
        let token = compact(header.to_string(), &claims, Signer::Ecdsa(&attacker.pair));
        assert_eq!(check(&auth, &token).await, Err(expect), "{header}");
    }
    assert_eq!(server.other_hits(), 0, "a URL from a token was fetched");
    // The set itself was not refetched either: the minimum interval had not passed.
    assert_eq!(server.jwks_hits(), 1);
}
