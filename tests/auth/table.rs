//! The table of good and bad tokens: each row is a token and the exact outcome it must have.
//!
//! Every bad token is signed validly (by the right key, unless the row is about the key) so that
//! only the trick the row names is wrong.

use protothrive::auth::{Algorithm, Reason, TokenKind, verify_token};
use protothrive::clock::ManualClock;
use serde_json::{Value, json};

use crate::keys::{
    ALL_ALGS, NOW, authenticator, compact, good_claims, header, signer, token, token_with,
};

/// One token and what must become of it: `None` accepted, `Some(reason)` refused for `reason`.
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) token: String,
    pub(crate) expect: Option<Reason>,
}

pub(crate) fn row(name: impl Into<String>, token: String, expect: Option<Reason>) -> Row {
    Row {
        name: name.into(),
        token,
        expect,
    }
}

pub(crate) fn ok(name: impl Into<String>, token: String) -> Row {
    row(name, token, None)
}

pub(crate) fn bad(name: impl Into<String>, token: String, reason: Reason) -> Row {
    row(name, token, Some(reason))
}

/// An ES256 token with the standard claims and this exact header JSON.
pub(crate) fn es256_header(header: &str) -> String {
    compact(header, good_claims().to_string(), signer(Algorithm::ES256))
}

/// An ES256 token with the standard header and this exact payload JSON.
pub(crate) fn es256_payload(payload: impl AsRef<[u8]>) -> String {
    compact(
        header(Algorithm::ES256).to_string(),
        payload,
        signer(Algorithm::ES256),
    )
}

pub(crate) fn es256_claims(changes: &Value) -> String {
    token_with(Algorithm::ES256, &json!({}), changes)
}

pub(crate) fn es256_header_changes(changes: &Value) -> String {
    token_with(Algorithm::ES256, changes, &json!({}))
}
/// Every row.
pub(crate) fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    crate::rows_header::algorithm_rows(&mut rows);
    crate::rows_header::signature_rows(&mut rows);
    crate::rows_header::key_header_rows(&mut rows);
    crate::rows_claims::time_rows(&mut rows);
    crate::rows_claims::claim_rows(&mut rows);
    crate::rows_claims::structure_rows(&mut rows);
    rows
}

fn check_rows(auth: &protothrive::auth::Authenticator, rt: &tokio::runtime::Runtime, pass: &str) {
    let mut failures = Vec::new();
    for r in rows() {
        let got = rt
            .block_on(auth.verify(&r.token, TokenKind::Access))
            .map(|p| p.subject().to_owned())
            .map_err(|e| e.reason());
        let as_expected = match (&got, r.expect) {
            (Ok(sub), None) => sub == "alice",
            (Err(reason), Some(want)) => *reason == want,
            _ => false,
        };
        if !as_expected {
            failures.push(format!("{}: expected {:?}, got {got:?}", r.name, r.expect));
        }
    }
    assert!(failures.is_empty(), "{pass}:\n{}", failures.join("\n"));
}

#[test]
fn every_row_has_its_outcome() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let clock = ManualClock::default();
    let uncached = crate::keys::builder(&clock).no_token_cache();
    let uncached = ALL_ALGS
        .iter()
        .fold(uncached, |b, a| b.key(crate::keys::verifying(*a)))
        .build()
        .unwrap();
    check_rows(&uncached, &rt, "without the cache");
    // With the cache, twice: a second look at a token must not change its outcome.
    let cached = authenticator(&clock);
    check_rows(&cached, &rt, "cache cold");
    assert!(cached.cached_tokens() > 0);
    check_rows(&cached, &rt, "cache warm");
}

#[test]
fn the_pure_core_agrees_with_the_authenticator() {
    let keys: Vec<_> = ALL_ALGS
        .iter()
        .map(|a| crate::keys::verifying(*a))
        .collect();
    // `verify_token` has no issuer or audience policy and no leeway.
    for alg in ALL_ALGS {
        let p = verify_token(&token(alg), &keys, TokenKind::Access, NOW).unwrap();
        assert_eq!(p.subject(), "alice");
        assert_eq!(
            verify_token(&token(alg), &keys, TokenKind::Refresh, NOW).err(),
            Some(Reason::WrongTokenType)
        );
        assert_eq!(
            verify_token(&token(alg), &keys, TokenKind::Access, NOW + 600).err(),
            Some(Reason::Expired),
            "{alg:?}: no leeway in the pure core"
        );
        assert_eq!(
            verify_token(&token(alg), &[], TokenKind::Access, NOW).err(),
            Some(Reason::UnsupportedAlgorithm)
        );
    }
    for r in rows() {
        let got = verify_token(&r.token, &keys, TokenKind::Access, NOW);
        let time_bound = r.name.starts_with("exp") || r.name.starts_with("nbf");
        match r.expect {
            // The pure core has no leeway: rows at the leeway's edge differ.
            None if !time_bound => {
                let principal = got.unwrap_or_else(|e| panic!("{}: {e:?}", r.name));
                assert_eq!(principal.subject(), "alice", "{}", r.name);
            }
            // Refused before any policy applies: the same reason.
            Some(
                reason @ (Reason::UnsupportedAlgorithm
                | Reason::UnknownKey
                | Reason::BadSignature
                | Reason::Malformed
                | Reason::TooLarge
                | Reason::CriticalExtension
                | Reason::WrongTokenType
                | Reason::InvalidClaim),
            ) => assert_eq!(got.err(), Some(reason), "{}", r.name),
            _ => {}
        }
    }
}

#[test]
fn refresh_tokens_and_access_tokens_are_not_interchangeable() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let clock = ManualClock::default();
    let auth = authenticator(&clock);
    let refresh_claim = token_with(Algorithm::HS256, &json!({}), &json!({"type": "refresh"}));
    let refresh_typ = token_with(Algorithm::HS256, &json!({"typ": "refresh+jwt"}), &json!({}));
    let access = token(Algorithm::HS256);
    for t in [&refresh_claim, &refresh_typ] {
        let refresh = rt.block_on(auth.verify(t, TokenKind::Refresh)).unwrap();
        assert_eq!(refresh.subject(), "alice");
        assert_eq!(
            rt.block_on(auth.verify(t, TokenKind::Access))
                .unwrap_err()
                .reason(),
            Reason::WrongTokenType
        );
    }
    assert_eq!(
        rt.block_on(auth.verify(&access, TokenKind::Refresh))
            .unwrap_err()
            .reason(),
        Reason::WrongTokenType
    );
    // Once cached as an access token, it is still no refresh token.
    let principal = rt
        .block_on(auth.verify(&access, TokenKind::Access))
        .unwrap();
    assert_eq!(principal.subject(), "alice");
    assert_eq!(
        rt.block_on(auth.verify(&access, TokenKind::Refresh))
            .unwrap_err()
            .reason(),
        Reason::WrongTokenType
    );
}
