//! The token-issuing helper: what it issues, the authenticator accepts — as the right kind only.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use protothrive::auth::{Reason, TokenIssuer, TokenKind};
use protothrive::clock::ManualClock;
use serde_json::{Value, json};

use crate::keys::{
    ALL_ALGS, AUDIENCE, ISSUER, NOW, alg_name, authenticator, kid, object, signing, subject,
};

fn segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn issuer(alg: protothrive::auth::Algorithm, clock: &ManualClock) -> TokenIssuer {
    TokenIssuer::new(signing(alg), ISSUER, AUDIENCE).clock(Arc::new(clock.clone()))
}

#[tokio::test]
async fn issued_pairs_verify_for_every_algorithm_as_their_own_kind_only() {
    let clock = ManualClock::default();
    let auth = authenticator(&clock);
    for alg in ALL_ALGS {
        let pair = issuer(alg, &clock)
            .issue_pair("user-1", &serde_json::Map::new())
            .unwrap();
        let header = segment(&pair.access.token, 0);
        assert_eq!(header["alg"], alg_name(alg));
        assert_eq!(header["kid"], kid(alg));
        assert_eq!(pair.expires_in, 900);
        assert_eq!(pair.access.expires_at, NOW + 900);
        assert_eq!(pair.refresh.expires_at, NOW + 30 * 24 * 3600);
        assert_ne!(pair.access.jti, pair.refresh.jti);

        let p = auth
            .verify(&pair.access.token, TokenKind::Access)
            .await
            .unwrap();
        assert_eq!(p.subject(), "user-1");
        assert_eq!(p.token_id(), Some(pair.access.jti.as_str()));
        assert_eq!(p.expires_at(), Some(NOW + 900));
        let r = auth
            .verify(&pair.refresh.token, TokenKind::Refresh)
            .await
            .unwrap();
        assert_eq!(r.token_id(), Some(pair.refresh.jti.as_str()));

        for (token, wrong) in [
            (&pair.access.token, TokenKind::Refresh),
            (&pair.refresh.token, TokenKind::Access),
        ] {
            let err = auth.verify(token, wrong).await.unwrap_err();
            assert_eq!(err.reason(), Reason::WrongTokenType, "{alg:?} {wrong:?}");
        }
    }
}

#[tokio::test]
async fn extra_claims_cannot_override_registered_ones() {
    let clock = ManualClock::default();
    let auth = authenticator(&clock);
    let extra = object(json!({
        "sub": "admin", "iss": "https://evil.test", "aud": "other", "exp": u64::MAX,
        "nbf": 0, "iat": 0, "jti": "chosen", "type": "access",
        "roles": ["exec"], "scope": "roadmaps:read roadmaps:write", "tenant": "acme",
    }));
    let iss = issuer(protothrive::auth::Algorithm::ES256, &clock);
    let refresh = iss.issue("user-1", TokenKind::Refresh, &extra).unwrap();
    let claims = segment(&refresh.token, 1);
    assert_eq!(claims["sub"], "user-1");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["exp"], NOW + 30 * 24 * 3600);
    assert_eq!(claims["type"], "refresh");
    assert_ne!(claims["jti"], "chosen");
    // Still a refresh token, whatever `extra` said.
    assert_eq!(
        auth.verify(&refresh.token, TokenKind::Access)
            .await
            .unwrap_err()
            .reason(),
        Reason::WrongTokenType
    );
    let access = iss.issue("user-1", TokenKind::Access, &extra).unwrap();
    let p = auth.verify(&access.token, TokenKind::Access).await.unwrap();
    assert_eq!(p.subject(), "user-1");
    assert_eq!(p.roles(), ["exec"]);
    assert!(p.has_scope("roadmaps:write"));
    assert_eq!(p.tenant(), Some("acme"));
}

#[tokio::test]
async fn issued_tokens_expire_by_the_injected_clock() {
    let clock = ManualClock::default();
    let auth = authenticator(&clock);
    let iss =
        issuer(protothrive::auth::Algorithm::EdDSA, &clock).access_ttl(Duration::from_secs(60));
    let t = iss
        .issue("user-1", TokenKind::Access, &serde_json::Map::new())
        .unwrap();
    assert_eq!(t.expires_at, NOW + 60);
    assert!(format!("{t:?}").contains(&t.jti) && !format!("{t:?}").contains(&t.token));
    assert_eq!(subject(&auth, &t.token).await, Ok("user-1".into()));
    // exp + leeway - 1: still good (and served from the cache).
    clock.advance(Duration::from_secs(60 + 59));
    assert_eq!(subject(&auth, &t.token).await, Ok("user-1".into()));
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        auth.verify(&t.token, TokenKind::Access)
            .await
            .unwrap_err()
            .reason(),
        Reason::Expired
    );
}

#[test]
fn every_issued_token_has_a_fresh_jti() {
    let clock = ManualClock::default();
    let iss = issuer(protothrive::auth::Algorithm::HS256, &clock);
    let jtis: std::collections::HashSet<String> = (0..200)
        .map(|_| {
            iss.issue("u", TokenKind::Access, &serde_json::Map::new())
                .unwrap()
                .jti
        })
        .collect();
    assert_eq!(jtis.len(), 200);
    assert!(jtis.iter().all(|j| j.len() >= 22), "128-bit ids");
}
