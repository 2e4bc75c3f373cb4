//! Revocation by `jti` (consulted on every request, cached or not), the verified-token cache, and
//! the principal resolver.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use protothrive::auth::{
    Algorithm, AuthError, AuthLayer, BoxFuture, Jwks, JwksError, MAX_LEEWAY, Principal, Reason,
    ResolvePrincipal, Revocation, RevocationList, TokenKind,
};
use protothrive::clock::ManualClock;
use serde_json::json;

use crate::jwks::EcKey;
use crate::keys::{LEEWAY, NOW, builder, jwks_doc, subject, token, token_with, verifying};
use crate::layer::{bearer, echo, send};

/// A revocation hook that counts its calls, revokes what it is told to, and can fail.
#[derive(Debug, Default)]
struct Hook {
    calls: AtomicUsize,
    revoked: Mutex<Vec<String>>,
    down: AtomicBool,
}

/// The hook as the authenticator holds it; the test keeps another handle.
#[derive(Debug, Clone)]
struct Shared<T>(Arc<T>);

impl Revocation for Shared<Hook> {
    fn is_revoked<'a>(
        &'a self,
        token_id: &'a str,
        _principal: &'a Principal,
    ) -> BoxFuture<'a, Result<bool, AuthError>> {
        let this = &self.0;
        this.calls.fetch_add(1, Ordering::SeqCst);
        let answer = if this.down.load(Ordering::SeqCst) {
            Err(AuthError::new(Reason::Unavailable))
        } else {
            Ok(this.revoked.lock().unwrap().iter().any(|j| j == token_id))
        };
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn a_revoked_token_is_refused_even_when_its_verification_is_cached() {
    let clock = ManualClock::default();
    let list = RevocationList::new(Arc::new(clock.clone()));
    let auth = builder(&clock)
        .key(verifying(Algorithm::ES256))
        .revocation_list(list.clone())
        .build()
        .unwrap();
    let svc = echo(&AuthLayer::new(auth.clone()));
    let t = token(Algorithm::ES256);
    let other = token_with(Algorithm::ES256, &json!({}), &json!({"jti": "jti-2"}));
    assert_eq!(send(&svc, bearer(&t)).await.status, StatusCode::OK);
    assert_eq!(send(&svc, bearer(&t)).await.status, StatusCode::OK);
    assert_eq!(auth.cached_tokens(), 1);

    list.revoke("jti-alice-1", NOW + 600);
    let a = send(&svc, bearer(&t)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        auth.verify(&t, TokenKind::Access)
            .await
            .unwrap_err()
            .reason(),
        Reason::Revoked
    );
    assert_eq!(send(&svc, bearer(&other)).await.status, StatusCode::OK);
    // The entry outlives the token and any leeway, then goes.
    clock.advance(Duration::from_secs(600) + MAX_LEEWAY);
    assert!(!list.contains("jti-alice-1"));
}

/// Revoked until its `exp`, as the list's docs say to pass, a token stays refused while the
/// authenticator's leeway would still accept it, on the cached path and the verifying one.
#[tokio::test]
async fn a_token_revoked_until_its_exp_stays_refused_within_the_leeway() {
    let clock = ManualClock::default();
    let list = RevocationList::new(Arc::new(clock.clone()));
    let listed = || {
        builder(&clock)
            .key(verifying(Algorithm::ES256))
            .revocation_list(list.clone())
    };
    let auth = listed().build().unwrap();
    let uncached = listed().no_token_cache().build().unwrap();
    let svc = echo(&AuthLayer::new(auth.clone()));
    let t = token(Algorithm::ES256);
    assert_eq!(send(&svc, bearer(&t)).await.status, StatusCode::OK);
    list.revoke("jti-alice-1", NOW + 600);

    // Past `exp`, inside the leeway: a token nobody revoked is still accepted here...
    clock.advance(Duration::from_secs(600 + LEEWAY - 1));
    let fresh = token_with(Algorithm::ES256, &json!({}), &json!({"jti": "jti-other"}));
    assert_eq!(send(&svc, bearer(&fresh)).await.status, StatusCode::OK);
    // ...so the revoked one must still be refused.
    assert_eq!(
        send(&svc, bearer(&t)).await.status,
        StatusCode::UNAUTHORIZED
    );
    for a in [&auth, &uncached] {
        let err = a.verify(&t, TokenKind::Access).await.unwrap_err();
        assert_eq!(err.reason(), Reason::Revoked);
    }
    // Once no leeway could accept it, the token is refused as expired and the entry may go.
    clock.advance(Duration::from_secs(1));
    let err = uncached.verify(&t, TokenKind::Access).await.unwrap_err();
    assert_eq!(err.reason(), Reason::Expired);
}

#[tokio::test]
async fn a_custom_revocation_hook_is_consulted_on_every_request_cached_or_not() {
    let clock = ManualClock::default();
    let hook = Arc::new(Hook::default());
    let auth = builder(&clock)
        .key(verifying(Algorithm::HS256))
        .revocation(Shared(hook.clone()))
        .build()
        .unwrap();
    let svc = echo(&AuthLayer::new(auth.clone()));
    let t = token(Algorithm::HS256);
    for _ in 0..5 {
        assert_eq!(send(&svc, bearer(&t)).await.status, StatusCode::OK);
    }
    assert_eq!(hook.calls.load(Ordering::SeqCst), 5);
    assert_eq!(auth.cached_tokens(), 1, "4 of the 5 were cache hits");

    hook.revoked.lock().unwrap().push("jti-alice-1".to_owned());
    assert_eq!(
        send(&svc, bearer(&t)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(hook.calls.load(Ordering::SeqCst), 6);

    // The hook failing fails closed: 503, never a pass.
    hook.down.store(true, Ordering::SeqCst);
    let fresh = token_with(Algorithm::HS256, &json!({}), &json!({"jti": "jti-3"}));
    let a = send(&svc, bearer(&fresh)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        auth.verify(&fresh, TokenKind::Access)
            .await
            .unwrap_err()
            .reason(),
        Reason::Unavailable
    );

    // A token without a jti cannot be revoked: the hook is not asked.
    hook.down.store(false, Ordering::SeqCst);
    let calls = hook.calls.load(Ordering::SeqCst);
    let no_jti = token_with(Algorithm::HS256, &json!({}), &json!({"jti": null}));
    assert_eq!(send(&svc, bearer(&no_jti)).await.status, StatusCode::OK);
    assert_eq!(hook.calls.load(Ordering::SeqCst), calls);
}

#[tokio::test]
async fn a_cache_hit_skips_signature_verification() {
    // The only way to tell a skipped verification from a passed one is to make verification
    // impossible: the key's material is replaced under the same `kid` after the first request (a
    // key withdrawn outright is noticed, and its cached tokens dropped: see tests/auth/jwks.rs).
    let clock = ManualClock::default();
    let (a, b) = (EcKey::new("a"), EcKey::new("a"));
    let served = Arc::new(Mutex::new(jwks_doc(&[a.jwk()])));
    let doc = served.clone();
    let jwks = Jwks::builder(move || {
        let doc = doc.lock().unwrap().clone();
        async move { Ok::<_, JwksError>(Bytes::from(doc)) }
    })
    .clock(Arc::new(clock.clone()))
    .build();
    let cached = builder(&clock).jwks(jwks.clone()).build().unwrap();
    let uncached = builder(&clock)
        .jwks(jwks.clone())
        .no_token_cache()
        .build()
        .unwrap();
    let t = a.token();
    assert_eq!(subject(&cached, &t).await, Ok("alice".into()));
    assert_eq!(subject(&uncached, &t).await, Ok("alice".into()));

    *served.lock().unwrap() = jwks_doc(&[b.jwk()]);
    assert_eq!(jwks.refresh().await, Ok(1));
    assert_eq!(subject(&cached, &t).await, Ok("alice".into()));
    assert_eq!(
        uncached
            .verify(&t, TokenKind::Access)
            .await
            .unwrap_err()
            .reason(),
        Reason::BadSignature
    );
}

#[tokio::test]
async fn cached_tokens_still_expire_at_exp_plus_leeway() {
    let clock = ManualClock::default();
    let auth = builder(&clock)
        .key(verifying(Algorithm::EdDSA))
        .build()
        .unwrap();
    let t = token(Algorithm::EdDSA); // exp = NOW + 600, leeway 60
    assert_eq!(subject(&auth, &t).await, Ok("alice".into()));
    assert_eq!(auth.cached_tokens(), 1);
    clock.advance(Duration::from_secs(600 + 59));
    assert_eq!(subject(&auth, &t).await, Ok("alice".into()));
    clock.advance(Duration::from_secs(1));
    let svc = echo(&AuthLayer::new(auth.clone()));
    assert_eq!(
        send(&svc, bearer(&t)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        auth.verify(&t, TokenKind::Access)
            .await
            .unwrap_err()
            .reason(),
        Reason::Expired
    );
    assert_eq!(auth.cached_tokens(), 0, "the expired entry was dropped");
}

#[tokio::test]
async fn the_cache_is_bounded_and_holds_access_tokens_only() {
    let clock = ManualClock::default();
    let auth = builder(&clock)
        .key(verifying(Algorithm::HS256))
        .token_cache_bytes(4096)
        .build()
        .unwrap();
    for i in 0..200 {
        let t = token_with(
            Algorithm::HS256,
            &json!({}),
            &json!({"jti": format!("j{i}")}),
        );
        assert_eq!(subject(&auth, &t).await, Ok("alice".into()));
    }
    // Each entry weighs its token plus 256 bytes.
    assert!(
        auth.cached_tokens() <= 4096 / 256,
        "{}",
        auth.cached_tokens()
    );
    assert!(auth.cached_tokens() > 0);

    let fresh = builder(&clock)
        .key(verifying(Algorithm::HS256))
        .build()
        .unwrap();
    let refresh = token_with(Algorithm::HS256, &json!({}), &json!({"type": "refresh"}));
    assert_eq!(
        fresh
            .verify(&refresh, TokenKind::Refresh)
            .await
            .unwrap()
            .subject(),
        "alice"
    );
    let access = fresh
        .verify(&token(Algorithm::HS256), TokenKind::Access)
        .await;
    assert_eq!(access.unwrap().subject(), "alice");
    assert_eq!(fresh.cached_tokens(), 1);
    let bad = token_with(Algorithm::HS256, &json!({}), &json!({"exp": 1}));
    assert_eq!(
        fresh
            .verify(&bad, TokenKind::Access)
            .await
            .unwrap_err()
            .reason(),
        Reason::Expired
    );
    assert_eq!(fresh.cached_tokens(), 1, "refused tokens are never cached");
}

/// A resolver over a "user table": deleted users are refused, roles come from the record.
#[derive(Debug, Default)]
struct Users {
    calls: AtomicUsize,
}

impl ResolvePrincipal for Shared<Users> {
    fn resolve(&self, principal: Principal) -> BoxFuture<'static, Result<Principal, AuthError>> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            match principal.subject() {
                "deleted" => Err(AuthError::new(Reason::Rejected)),
                _ => Ok(principal.with_roles(["exec"])),
            }
        })
    }
}

#[tokio::test]
async fn the_resolver_runs_on_every_request_and_can_refuse() {
    let clock = ManualClock::default();
    let users = Arc::new(Users::default());
    let auth = builder(&clock)
        .key(verifying(Algorithm::HS256))
        .resolver(Shared(users.clone()))
        .build()
        .unwrap();
    let roles = protothrive::auth::RoleHierarchy::new(["engineer", "exec"]).unwrap();
    let rule = protothrive::auth::RequireLayer::role_at_least(&roles, "exec").unwrap();
    let svc = tower::Layer::layer(
        &AuthLayer::new(auth),
        tower::Layer::layer(&rule, tower::service_fn(crate::layer::ok)),
    );
    // The token says engineer; the user record says exec.
    let t = token(Algorithm::HS256);
    for _ in 0..3 {
        assert_eq!(send(&svc, bearer(&t)).await.status, StatusCode::OK);
    }
    assert_eq!(users.calls.load(Ordering::SeqCst), 3);
    let deleted = token_with(Algorithm::HS256, &json!({}), &json!({"sub": "deleted"}));
    assert_eq!(
        send(&svc, bearer(&deleted)).await.status,
        StatusCode::UNAUTHORIZED
    );
}
