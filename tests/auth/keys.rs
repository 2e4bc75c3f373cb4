//! Test keys, generated once per test binary, and tokens made by hand.
//!
//! Tokens are assembled here rather than by the crate's issuer so that a test can sign *any*
//! header and payload bytes validly: only the trick under test is wrong.

use std::sync::OnceLock;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaEncoding};
use aws_lc_rs::{hmac, rsa};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use protothrive::auth::{
    Algorithm, Authenticator, AuthenticatorBuilder, Reason, SigningKey, TokenKind, VerifyingKey,
};
use protothrive::clock::ManualClock;
use serde_json::{Map, Value, json};

/// The time every test starts at (`ManualClock::default()`).
pub(crate) const NOW: u64 = 1_700_000_000;
pub(crate) const ISSUER: &str = "https://issuer.test";
pub(crate) const AUDIENCE: &str = "api";
pub(crate) const LEEWAY: u64 = 60;

/// 64 bytes: long enough for HS512, so one secret serves the three HMAC algorithms.
pub(crate) const HMAC_SECRET: &[u8; 64] =
    b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A 1024-bit RSA public key (made with `openssl genrsa 1024`): too weak, so every way of loading
/// it must fail. A public key is no secret.
pub(crate) const RSA_1024_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQD0ds5ElMUzu1E8UL9p/Dac4at1
3auTS0HxPVyqMW7SpUCImt8pScdZzxCqszK+nuoptYXzdGJglPowSArF+MD8lL3l
kdgm3vNcXqd12SRvHuojAHB8HRm3KLD4usdbPNg82rPVoYozJqcDb7q80jbbmSvA
juHvgNjiZbhehu456QIDAQAB
-----END PUBLIC KEY-----
";

/// Every algorithm the crate verifies.
pub(crate) const ALL_ALGS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The key pairs of the test binary.
pub(crate) struct Keys {
    pub(crate) rsa: RsaKeyPair,
    /// A second RSA key, for "right algorithm, wrong key" and key rotation.
    pub(crate) rsa_other: RsaKeyPair,
    pub(crate) p256: EcdsaKeyPair,
    pub(crate) p256_other: EcdsaKeyPair,
    pub(crate) p384: EcdsaKeyPair,
    pub(crate) ed: Ed25519KeyPair,
}

/// The keys, generated on first use (RSA generation is the slow part; it happens once).
pub(crate) fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
        rsa_other: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
        p256: p256(),
        p256_other: p256(),
        p384: EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap(),
        ed: Ed25519KeyPair::generate().unwrap(),
    })
}

/// A fresh P-256 key pair (cheap: used where a test needs a key of its own).
pub(crate) fn p256() -> EcdsaKeyPair {
    EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()
}

pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What signs a token.
#[derive(Clone, Copy)]
pub(crate) enum Signer<'a> {
    Hmac(hmac::Algorithm, &'a [u8]),
    Rsa(&'a RsaKeyPair, &'static dyn RsaEncoding),
    Ecdsa(&'a EcdsaKeyPair),
    Ed(&'a Ed25519KeyPair),
    /// These exact signature bytes.
    Raw(&'a [u8]),
}

impl Signer<'_> {
    pub(crate) fn sign(self, message: &[u8]) -> Vec<u8> {
        match self {
            Signer::Hmac(alg, secret) => hmac::sign(&hmac::Key::new(alg, secret), message)
                .as_ref()
                .to_vec(),
            Signer::Rsa(key, encoding) => {
                let mut sig = vec![0; key.public_modulus_len()];
                key.sign(encoding, &SystemRandom::new(), message, &mut sig)
                    .unwrap();
                sig
            }
            Signer::Ecdsa(key) => key
                .sign(&SystemRandom::new(), message)
                .unwrap()
                .as_ref()
                .to_vec(),
            Signer::Ed(key) => key.sign(message).as_ref().to_vec(),
            Signer::Raw(bytes) => bytes.to_vec(),
        }
    }
}

/// The standard test signer of `alg`.
pub(crate) fn signer(alg: Algorithm) -> Signer<'static> {
    let k = keys();
    match alg {
        Algorithm::HS256 => Signer::Hmac(hmac::HMAC_SHA256, HMAC_SECRET),
        Algorithm::HS384 => Signer::Hmac(hmac::HMAC_SHA384, HMAC_SECRET),
        Algorithm::HS512 => Signer::Hmac(hmac::HMAC_SHA512, HMAC_SECRET),
        Algorithm::RS256 => Signer::Rsa(&k.rsa, &signature::RSA_PKCS1_SHA256),
        Algorithm::RS384 => Signer::Rsa(&k.rsa, &signature::RSA_PKCS1_SHA384),
        Algorithm::RS512 => Signer::Rsa(&k.rsa, &signature::RSA_PKCS1_SHA512),
        Algorithm::PS256 => Signer::Rsa(&k.rsa, &signature::RSA_PSS_SHA256),
        Algorithm::PS384 => Signer::Rsa(&k.rsa, &signature::RSA_PSS_SHA384),
        Algorithm::PS512 => Signer::Rsa(&k.rsa, &signature::RSA_PSS_SHA512),
        Algorithm::ES256 => Signer::Ecdsa(&k.p256),
        Algorithm::ES384 => Signer::Ecdsa(&k.p384),
        Algorithm::EdDSA => Signer::Ed(&k.ed),
        other => panic!("no test key for {other:?}"),
    }
}

/// The JOSE name of `alg`.
pub(crate) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        other => panic!("no name for {other:?}"),
    }
}

/// The `kid` the standard key of `alg` is configured under (`rs256`, `eddsa`, ...).
pub(crate) fn kid(alg: Algorithm) -> String {
    alg_name(alg).to_ascii_lowercase()
}

/// Signs the exact `header` and `payload` bytes.
pub(crate) fn compact(
    header: impl AsRef<[u8]>,
    payload: impl AsRef<[u8]>,
    signer: Signer<'_>,
) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = signer.sign(input.as_bytes());
    format!("{input}.{}", b64(sig))
}

/// Claims that pass the standard authenticator's policy at [`NOW`].
pub(crate) fn good_claims() -> Value {
    json!({
        "sub": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": NOW,
        "exp": NOW + 600,
        "jti": "jti-alice-1",
        "scope": "roadmaps:read",
        "roles": ["engineer"],
    })
}

/// `base` with the members of `changes` set, and those set to `null` in `changes` removed.
pub(crate) fn merged(mut base: Value, changes: &Value) -> Value {
    if let (Some(base), Some(changes)) = (base.as_object_mut(), changes.as_object()) {
        for (k, v) in changes {
            if v.is_null() {
                base.remove(k);
            } else {
                base.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

/// The standard header of `alg`: `{"alg", "kid", "typ": "JWT"}`.
pub(crate) fn header(alg: Algorithm) -> Value {
    json!({"alg": alg_name(alg), "kid": kid(alg), "typ": "JWT"})
}

/// A token of `alg` with the standard key, with header and claims changed as given.
pub(crate) fn token_with(alg: Algorithm, header_changes: &Value, claims_changes: &Value) -> String {
    let h = merged(header(alg), header_changes);
    let c = merged(good_claims(), claims_changes);
    compact(h.to_string(), c.to_string(), signer(alg))
}

/// A good token of `alg`.
pub(crate) fn token(alg: Algorithm) -> String {
    token_with(alg, &json!({}), &json!({}))
}

/// The SubjectPublicKeyInfo DER of the standard public key of `alg`.
pub(crate) fn public_der(alg: Algorithm) -> Vec<u8> {
    let k = keys();
    match alg {
        Algorithm::ES256 => spki(k.p256.public_key().as_der()),
        Algorithm::ES384 => spki(k.p384.public_key().as_der()),
        Algorithm::EdDSA => spki(k.ed.public_key().as_der()),
        _ => rsa_spki(&k.rsa),
    }
}

fn spki(der: Result<PublicKeyX509Der<'static>, aws_lc_rs::error::Unspecified>) -> Vec<u8> {
    der.unwrap().as_ref().to_vec()
}

pub(crate) fn rsa_spki(key: &RsaKeyPair) -> Vec<u8> {
    spki(key.public_key().as_der())
}

/// PEM armour around DER.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The DER inside a PEM document.
pub(crate) fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).unwrap()
}

/// The standard verifying key of `alg`, under [`kid`]`(alg)`.
pub(crate) fn verifying(alg: Algorithm) -> VerifyingKey {
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            VerifyingKey::hmac(alg, HMAC_SECRET).unwrap()
        }
        _ => VerifyingKey::from_der(alg, public_der(alg)).unwrap(),
    };
    key.with_kid(kid(alg))
}

/// The standard signing key of `alg` (PKCS#8 PEM for the public-key algorithms).
pub(crate) fn signing(alg: Algorithm) -> SigningKey {
    let k = keys();
    let pkcs8: Vec<u8> = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            return SigningKey::hmac(alg, HMAC_SECRET)
                .unwrap()
                .with_kid(kid(alg));
        }
        Algorithm::ES256 => k.p256.to_pkcs8v1().unwrap().as_ref().to_vec(),
        Algorithm::ES384 => k.p384.to_pkcs8v1().unwrap().as_ref().to_vec(),
        Algorithm::EdDSA => k.ed.to_pkcs8v1().unwrap().as_ref().to_vec(),
        _ => {
            let der: Pkcs8V1Der<'static> = k.rsa.as_der().unwrap();
            der.as_ref().to_vec()
        }
    };
    SigningKey::from_pem(alg, pem("PRIVATE KEY", &pkcs8))
        .unwrap()
        .with_kid(kid(alg))
}

/// The public JWK of an RSA key.
pub(crate) fn rsa_jwk(key: &rsa::PublicKey, alg: &str, kid: &str) -> Value {
    json!({
        "kty": "RSA",
        "use": "sig",
        "alg": alg,
        "kid": kid,
        "n": b64(key.modulus().big_endian_without_leading_zero()),
        "e": b64(key.exponent().big_endian_without_leading_zero()),
    })
}

/// The public JWK of an ECDSA key (P-256, P-384 or P-521).
pub(crate) fn ec_jwk(key: &EcdsaKeyPair, crv: &str, kid: &str) -> Value {
    let point = key.public_key().as_ref();
    // Uncompressed point: 0x04 || x || y.
    let half = (point.len() - 1) / 2;
    json!({
        "kty": "EC",
        "crv": crv,
        "kid": kid,
        "x": b64(&point[1..=half]),
        "y": b64(&point[1 + half..]),
    })
}

/// The public JWK of an Ed25519 key.
pub(crate) fn ed_jwk(key: &Ed25519KeyPair, kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(key.public_key().as_ref())})
}

/// A JWKS document.
pub(crate) fn jwks_doc(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// A builder with the standard policy: issuer, audience, leeway, manual clock, no keys yet.
pub(crate) fn builder(clock: &ManualClock) -> AuthenticatorBuilder {
    Authenticator::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .leeway(std::time::Duration::from_secs(LEEWAY))
        .clock(std::sync::Arc::new(clock.clone()))
}

/// The standard authenticator: one key per algorithm, each under its own `kid`.
pub(crate) fn authenticator(clock: &ManualClock) -> Authenticator {
    ALL_ALGS
        .iter()
        .fold(builder(clock), |b, alg| b.key(verifying(*alg)))
        .build()
        .unwrap()
}

/// A claims object from JSON.
pub(crate) fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// Whom an access token verified by `auth` names, or why it was refused.
pub(crate) async fn subject(auth: &Authenticator, token: &str) -> Result<String, Reason> {
    auth.verify(token, TokenKind::Access)
        .await
        .map(|p| p.subject().to_owned())
        .map_err(|e| e.reason())
}
