//! `auth`: token verification per algorithm next to plain `jsonwebtoken::decode` (what a
//! hand-written layer, or jwt-authorizer, does per request), and the layer's cost over a bare inner
//! service — cold (every signature verified) and with a verified-token cache hit.
//!
//! jwt-authorizer itself is not in the group: its current release pins axum 0.7, jsonwebtoken 9 and
//! reqwest 0.12 (ring and a second HTTP stack in the build); its per-request work is the
//! `jsonwebtoken::decode` row.

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, Throughput, criterion_group};
use http::{Request, Response};
use jsonwebtoken::{DecodingKey, Validation};
use protothrive::auth::{
    Algorithm, AuthLayer, Authenticator, TokenKind, VerifyingKey, verify_token,
};
use protothrive::clock::ManualClock;
use serde_json::{Value, json};
use tower::{Layer, Service, service_fn};

const SECRET: [u8; 64] = [42; 64];
const NOW: u64 = 1_700_000_000;
const ALGS: [Algorithm; 7] = [
    Algorithm::HS256,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

struct Keys {
    rsa: RsaKeyPair,
    p256: EcdsaKeyPair,
    p384: EcdsaKeyPair,
    ed: Ed25519KeyPair,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa"),
        p256: EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).expect("p256"),
        p384: EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).expect("p384"),
        ed: Ed25519KeyPair::generate().expect("ed25519"),
    })
}

fn name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::PS256 => "PS256",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        _ => "EdDSA",
    }
}

fn sign(alg: Algorithm, message: &[u8]) -> Vec<u8> {
    let k = keys();
    let rng = SystemRandom::new();
    let rsa = |enc: &'static dyn signature::RsaEncoding| {
        let mut sig = vec![0; k.rsa.public_modulus_len()];
        k.rsa.sign(enc, &rng, message, &mut sig).expect("rsa sign");
        sig
    };
    match alg {
        Algorithm::HS256 => hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &SECRET), message)
            .as_ref()
            .to_vec(),
        Algorithm::HS512 => hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, &SECRET), message)
            .as_ref()
            .to_vec(),
        Algorithm::RS256 => rsa(&signature::RSA_PKCS1_SHA256),
        Algorithm::PS256 => rsa(&signature::RSA_PSS_SHA256),
        Algorithm::ES256 => k.p256.sign(&rng, message).expect("sign").as_ref().to_vec(),
        Algorithm::ES384 => k.p384.sign(&rng, message).expect("sign").as_ref().to_vec(),
        _ => k.ed.sign(message).as_ref().to_vec(),
    }
}

/// A realistic access token (~350 bytes of claims) signed with `alg`.
fn token(alg: Algorithm, subject: &str) -> String {
    let header = json!({"alg": name(alg), "typ": "JWT"});
    let claims = json!({
        "sub": subject, "iss": "protothrive", "aud": "protothrive-api", "iat": NOW, "nbf": NOW,
        "exp": NOW + 900, "jti": format!("jti-{subject}"), "type": "access",
        "scope": "roadmaps:read roadmaps:write snippets:read", "roles": ["engineer"],
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = sign(alg, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn verifying(alg: Algorithm) -> VerifyingKey {
    let k = keys();
    match alg {
        Algorithm::HS256 | Algorithm::HS512 => VerifyingKey::hmac(alg, SECRET),
        Algorithm::RS256 | Algorithm::PS256 => {
            let der: PublicKeyX509Der<'_> = k.rsa.public_key().as_der().expect("der");
            VerifyingKey::from_der(alg, der.as_ref())
        }
        Algorithm::ES256 => VerifyingKey::from_der(alg, k.p256.public_key().as_ref()),
        Algorithm::ES384 => VerifyingKey::from_der(alg, k.p384.public_key().as_ref()),
        _ => VerifyingKey::from_der(alg, k.ed.public_key().as_ref()),
    }
    .expect("verifying key")
}

fn decoding(alg: Algorithm) -> DecodingKey {
    let k = keys();
    match alg {
        Algorithm::HS256 | Algorithm::HS512 => DecodingKey::from_secret(&SECRET),
        Algorithm::RS256 | Algorithm::PS256 => {
            DecodingKey::from_rsa_der(k.rsa.public_key().as_ref())
        }
        Algorithm::ES256 => DecodingKey::from_ec_der(k.p256.public_key().as_ref()),
        Algorithm::ES384 => DecodingKey::from_ec_der(k.p384.public_key().as_ref()),
        _ => DecodingKey::from_ed_der(k.ed.public_key().as_ref()),
    }
}

fn verify_per_algorithm(c: &mut Criterion) {
    let mut group = c.benchmark_group("auth/verify");
    group.throughput(Throughput::Elements(1));
    for alg in ALGS {
        let token = token(alg, "alice");
        let keys = [verifying(alg)];
        assert!(verify_token(&token, &keys, TokenKind::Access, NOW).is_ok());
        group.bench_function(format!("protothrive/{}", name(alg)), |b| {
            b.iter(|| verify_token(black_box(&token), &keys, TokenKind::Access, NOW));
        });
        let key = decoding(alg);
        let mut validation = Validation::new(alg);
        validation.set_issuer(&["protothrive"]);
        validation.set_audience(&["protothrive-api"]);
        validation.validate_exp = false; // the tokens are dated NOW, a fixed past instant
        assert!(jsonwebtoken::decode::<Value>(&token, &key, &validation).is_ok());
        group.bench_function(format!("jsonwebtoken/{}", name(alg)), |b| {
            b.iter(|| jsonwebtoken::decode::<Value>(black_box(&token), &key, &validation));
        });
    }
    group.finish();
}

/// Drives a service's future to completion with a no-op waker: every path here finishes in one
/// poll (static keys, no I/O), so no runtime is measured.
fn call<S: Service<Request<()>>>(svc: &mut S, req: Request<()>) -> S::Response
where
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(res) => res.expect("call"),
        Poll::Pending => panic!("the service did not finish in one poll"),
    }
}

fn authenticator(alg: Algorithm, cache: bool) -> Authenticator {
    let mut builder = Authenticator::builder()
        .key(verifying(alg))
        .issuer("protothrive")
        .audience("protothrive-api")
        .clock(Arc::new(ManualClock::at_unix(NOW + 1)));
    if !cache {
        builder = builder.no_token_cache();
    }
    builder.build().expect("authenticator")
}

fn layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("auth/layer");
    group.throughput(Throughput::Elements(1));
    let inner = service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
    });
    // The baseline builds the same request (with its ~400-byte Authorization header) as the
    // layer rows, so the difference is what the layer adds.
    let mut bare = inner;
    let bearer = format!("Bearer {}", token(Algorithm::HS256, "alice"));
    group.bench_function("bare inner service, same request", |b| {
        b.iter(|| {
            let req = Request::builder()
                .header("authorization", bearer.as_str())
                .body(())
                .expect("req");
            call(&mut bare, req)
        });
    });
    for (alg, cache) in [
        (Algorithm::HS256, true),
        (Algorithm::HS256, false),
        (Algorithm::RS256, false),
        (Algorithm::ES256, false),
        (Algorithm::EdDSA, false),
    ] {
        let mut svc = AuthLayer::new(authenticator(alg, cache)).layer(inner);
        let bearer = format!("Bearer {}", token(alg, "alice"));
        let req = || {
            Request::builder()
                .header("authorization", bearer.as_str())
                .body(())
                .expect("req")
        };
        assert_eq!(call(&mut svc, req()).status(), 200);
        let label = if cache { "cache hit" } else { "cold" };
        group.bench_function(format!("protothrive {} {label}", name(alg)), |b| {
            b.iter(|| call(&mut svc, req()));
        });
    }
    group.finish();
}

criterion_group!(benches, verify_per_algorithm, layer);
