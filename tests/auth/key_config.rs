//! Keys and authenticator configuration: weak keys and impossible settings are build errors, every
//! key format loads, and a key verifies exactly one algorithm.

use std::time::Duration;

use aws_lc_rs::signature::KeyPair as _;
use protothrive::auth::{
    Algorithm, Authenticator, MIN_RSA_BITS, Reason, SigningKey, TokenKind, VerifyingKey, parse_jwks,
};
use protothrive::clock::ManualClock;
use protothrive::error::ConfigError;
use serde_json::json;

use crate::keys::{
    ALL_ALGS, HMAC_SECRET, NOW, RSA_1024_PUBLIC_PEM, Signer, alg_name, builder, compact,
    good_claims, jwks_doc, keys, pem, pem_body, public_der, rsa_jwk, signer, token, token_with,
    verifying,
};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

const RSA_ALGS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

#[test]
fn hmac_secrets_shorter_than_the_hash_are_build_errors() {
    for (alg, min) in [
        (Algorithm::HS256, 32),
        (Algorithm::HS384, 48),
        (Algorithm::HS512, 64),
    ] {
        for short in [0, 1, 16, 31, min - 1] {
            let err = VerifyingKey::hmac(alg, vec![7u8; short]).unwrap_err();
            assert!(err.message().contains("at least"), "{alg:?}: {err}");
            let err = SigningKey::hmac(alg, vec![7u8; short]).unwrap_err();
            assert_eq!(
                err.message(),
                VerifyingKey::hmac(alg, vec![7u8; short])
                    .unwrap_err()
                    .message()
            );
        }
        assert_eq!(
            VerifyingKey::hmac(alg, vec![7u8; min]).unwrap().algorithm(),
            alg
        );
        assert_eq!(
            SigningKey::hmac(alg, vec![7u8; min]).unwrap().algorithm(),
            alg
        );
    }
}

#[test]
fn rsa_keys_under_2048_bits_are_build_errors() {
    assert_eq!(MIN_RSA_BITS, 2048);
    let spki = pem_body(RSA_1024_PUBLIC_PEM);
    let public = aws_lc_rs::rsa::PublicKey::from_der(&spki).unwrap();
    let pkcs1 = public.as_ref().to_vec();
    let pkcs1_pem = pem("RSA PUBLIC KEY", &pkcs1);
    for alg in RSA_ALGS {
        let err = VerifyingKey::from_pem(alg, RSA_1024_PUBLIC_PEM).unwrap_err();
        assert!(err.message().contains("1024 bits"), "{alg:?}: {err}");
        for (form, result) in [
            ("SPKI DER", VerifyingKey::from_der(alg, &spki)),
            ("PKCS#1 DER", VerifyingKey::from_der(alg, &pkcs1)),
            ("PKCS#1 PEM", VerifyingKey::from_pem(alg, &pkcs1_pem)),
        ] {
            let err = result.unwrap_err();
            assert!(err.message().contains("2048"), "{alg:?} {form}: {err}");
        }
        // From a key set: skipped, so the set has no usable key.
        let doc = jwks_doc(&[rsa_jwk(&public, alg_name(alg), "weak")]);
        assert!(parse_jwks(doc.as_bytes(), None).unwrap().is_empty());
    }
}

#[test]
fn keys_refuse_algorithms_of_other_families() {
    let rsa = public_der(Algorithm::RS256);
    let p256 = public_der(Algorithm::ES256);
    let p384 = public_der(Algorithm::ES384);
    let ed = public_der(Algorithm::EdDSA);
    let refused = |e: ConfigError, why: &str| assert!(e.message().contains(why), "{e}");
    let not_hmac = "is not an HMAC algorithm";
    refused(
        VerifyingKey::hmac(Algorithm::RS256, HMAC_SECRET).unwrap_err(),
        not_hmac,
    );
    refused(
        VerifyingKey::hmac(Algorithm::ES256, HMAC_SECRET).unwrap_err(),
        not_hmac,
    );
    refused(
        SigningKey::hmac(Algorithm::EdDSA, HMAC_SECRET).unwrap_err(),
        not_hmac,
    );
    let not_public = "is not a public-key algorithm";
    for hs in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        // A public key is never an HMAC secret, in any form.
        refused(VerifyingKey::from_der(hs, &rsa).unwrap_err(), not_public);
        refused(
            VerifyingKey::from_pem(hs, pem("PUBLIC KEY", &rsa)).unwrap_err(),
            not_public,
        );
        refused(
            SigningKey::from_pem(hs, pem("PUBLIC KEY", &rsa)).unwrap_err(),
            not_public,
        );
    }
    // A key of another family is refused as one that does not fit, whatever the form.
    let misfit = |e: ConfigError| {
        let m = e.message();
        assert!(
            [
                "does not fit",
                "malformed",
                "cannot verify",
                "invalid",
                "cannot read"
            ]
            .iter()
            .any(|why| m.contains(why)),
            "{m}"
        );
    };
    for (alg, wrong) in [
        (Algorithm::ES256, &rsa),
        (Algorithm::ES256, &p384),
        (Algorithm::ES256, &ed),
        (Algorithm::ES384, &p256),
        (Algorithm::EdDSA, &p256),
        (Algorithm::RS256, &p256),
        (Algorithm::PS256, &ed),
    ] {
        misfit(VerifyingKey::from_der(alg, wrong).unwrap_err());
        misfit(VerifyingKey::from_pem(alg, pem("PUBLIC KEY", wrong)).unwrap_err());
    }
    misfit(VerifyingKey::from_der(Algorithm::RS256, b"not a key").unwrap_err());
    misfit(VerifyingKey::from_pem(Algorithm::ES256, "not a pem").unwrap_err());
}

#[test]
fn every_public_key_form_loads_and_verifies() {
    let k = keys();
    let message = b"header.payload";
    for alg in ALL_ALGS
        .into_iter()
        .filter(|a| !alg_name(*a).starts_with("HS"))
    {
        let sig = signer(alg).sign(message);
        let spki = public_der(alg);
        let mut forms = vec![
            ("SPKI DER", VerifyingKey::from_der(alg, &spki)),
            (
                "SPKI PEM",
                VerifyingKey::from_pem(alg, pem("PUBLIC KEY", &spki)),
            ),
        ];
        match alg {
            Algorithm::ES256 => {
                forms.push(("point", VerifyingKey::from_der(alg, k.p256.public_key())));
            }
            Algorithm::ES384 => {
                forms.push(("point", VerifyingKey::from_der(alg, k.p384.public_key())));
            }
            Algorithm::EdDSA => forms.push(("raw", VerifyingKey::from_der(alg, k.ed.public_key()))),
            _ => {
                let pkcs1 = k.rsa.public_key().as_ref().to_vec();
                forms.push(("PKCS#1 DER", VerifyingKey::from_der(alg, &pkcs1)));
                forms.push((
                    "PKCS#1 PEM",
                    VerifyingKey::from_pem(alg, pem("RSA PUBLIC KEY", &pkcs1)),
                ));
            }
        }
        for (form, key) in forms {
            let key = key.unwrap_or_else(|e| panic!("{alg:?} {form}: {e}"));
            assert_eq!(key.algorithm(), alg);
            assert!(key.verify(message, &sig), "{alg:?} {form}");
            assert!(!key.verify(b"header.payloaD", &sig), "{alg:?} {form}");
        }
    }
}

#[test]
fn a_key_verifies_exactly_one_algorithm() {
    let message = b"header.payload";
    for bound in ALL_ALGS {
        let key = verifying(bound);
        for signed in ALL_ALGS {
            let sig = signer(signed).sign(message);
            // HMAC keys share one secret, RSA keys one key pair: only the algorithm differs.
            assert_eq!(
                key.verify(message, &sig),
                bound == signed,
                "{bound:?} key, {signed:?} signature"
            );
        }
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused_where_only_rsa_keys_exist() {
    let clock = ManualClock::default();
    let auth = RSA_ALGS
        .iter()
        .fold(builder(&clock), |b, a| b.key(verifying(*a)))
        .build()
        .unwrap();
    let spki = public_der(Algorithm::RS256);
    let pem_text = pem("PUBLIC KEY", &spki);
    for secret in [spki.as_slice(), pem_text.as_bytes()] {
        for header in [r#"{"alg":"HS256"}"#, r#"{"alg":"HS256","kid":"rs256"}"#] {
            let t = compact(
                header,
                good_claims().to_string(),
                Signer::Hmac(aws_lc_rs::hmac::HMAC_SHA256, secret),
            );
            let err = block_on(auth.verify(&t, TokenKind::Access)).unwrap_err();
            assert_eq!(err.reason(), Reason::UnsupportedAlgorithm, "{header}");
        }
    }
    let ok = block_on(auth.verify(&token(Algorithm::RS256), TokenKind::Access)).unwrap();
    assert_eq!(ok.subject(), "alice");
}

#[test]
fn leeway_is_configurable_and_bounded() {
    let clock = ManualClock::default();
    let strict = builder(&clock)
        .leeway(Duration::ZERO)
        .no_token_cache()
        .key(verifying(Algorithm::HS256))
        .build()
        .unwrap();
    let at = |changes| token_with(Algorithm::HS256, &json!({}), &changes);
    let check =
        |changes| block_on(strict.verify(&at(changes), TokenKind::Access)).map_err(|e| e.reason());
    let alice = |p: protothrive::identity::Principal| p.subject().to_owned();
    assert_eq!(check(json!({"exp": NOW})).err(), Some(Reason::Expired));
    assert_eq!(
        check(json!({"exp": NOW + 1})).map(alice),
        Ok("alice".to_owned())
    );
    assert_eq!(
        check(json!({"nbf": NOW})).map(alice),
        Ok("alice".to_owned())
    );
    assert_eq!(
        check(json!({"nbf": NOW + 1})).err(),
        Some(Reason::NotYetValid)
    );

    let lenient = builder(&clock)
        .leeway(Duration::from_secs(300))
        .key(verifying(Algorithm::HS256))
        .build()
        .unwrap();
    let t = at(json!({"exp": NOW - 299, "nbf": NOW + 300}));
    assert_eq!(
        block_on(lenient.verify(&t, TokenKind::Access))
            .unwrap()
            .subject(),
        "alice"
    );
    let t = at(json!({"exp": NOW - 300}));
    assert_eq!(
        block_on(lenient.verify(&t, TokenKind::Access))
            .unwrap_err()
            .reason(),
        Reason::Expired
    );
    let err = builder(&clock)
        .leeway(Duration::from_secs(301))
        .key(verifying(Algorithm::HS256))
        .build()
        .unwrap_err();
    assert!(err.message().contains("leeway"), "{err}");
}

#[test]
fn required_claims_and_token_size_are_configurable() {
    let clock = ManualClock::default();
    let auth = builder(&clock)
        .require_claim("tenant")
        .max_token_bytes(1024)
        .key(verifying(Algorithm::HS256))
        .build()
        .unwrap();
    let verify = |t: String| block_on(auth.verify(&t, TokenKind::Access)).map_err(|e| e.reason());
    assert_eq!(
        verify(token(Algorithm::HS256)).err(),
        Some(Reason::MissingClaim)
    );
    let with_tenant = token_with(Algorithm::HS256, &json!({}), &json!({"tenant": "acme"}));
    assert_eq!(verify(with_tenant).unwrap().tenant(), Some("acme"));
    let long = token_with(
        Algorithm::HS256,
        &json!({}),
        &json!({"tenant": "acme", "pad": "p".repeat(1000)}),
    );
    assert_eq!(verify(long).err(), Some(Reason::TooLarge));
}

#[test]
fn impossible_configurations_are_build_errors() {
    let clock = ManualClock::default();
    let hs = || verifying(Algorithm::HS256);
    let errors = [
        ("no keys", Authenticator::builder().build().err()),
        (
            "two keys, one kid",
            builder(&clock)
                .key(hs())
                .key(
                    VerifyingKey::hmac(Algorithm::HS512, HMAC_SECRET)
                        .unwrap()
                        .with_kid("hs256"),
                )
                .build()
                .err(),
        ),
        (
            "tiny max_token_bytes",
            builder(&clock).key(hs()).max_token_bytes(255).build().err(),
        ),
        (
            "huge max_token_bytes",
            builder(&clock)
                .key(hs())
                .max_token_bytes(65_537)
                .build()
                .err(),
        ),
        (
            "empty cookie name",
            builder(&clock).key(hs()).cookie("").build().err(),
        ),
        (
            "empty query name",
            builder(&clock).key(hs()).query_parameter("").build().err(),
        ),
        (
            "realm with a quote",
            builder(&clock).key(hs()).realm("a\"b").build().err(),
        ),
        (
            "realm with a newline",
            builder(&clock).key(hs()).realm("a\nb").build().err(),
        ),
    ];
    for (name, err) in errors {
        let err = err.unwrap_or_else(|| panic!("{name}: built"));
        assert!(!err.message().is_empty(), "{name}");
    }
    // The bounds themselves are valid settings, and the bound holds.
    let t = token(Algorithm::HS256);
    for bytes in [256, 65_536] {
        let auth = builder(&clock)
            .key(hs())
            .max_token_bytes(bytes)
            .build()
            .unwrap();
        let got = block_on(auth.verify(&t, TokenKind::Access))
            .map(|p| p.subject().to_owned())
            .map_err(|e| e.reason());
        let expected = if t.len() <= bytes {
            Ok("alice".to_owned())
        } else {
            Err(Reason::TooLarge)
        };
        assert_eq!(got, expected, "{bytes}");
    }
}

#[test]
fn debug_output_never_shows_secrets() {
    let secret = b"a-very-secret-hmac-key-of-32-byt";
    let v = format!(
        "{:?}",
        VerifyingKey::hmac(Algorithm::HS256, secret).unwrap()
    );
    let s = format!("{:?}", SigningKey::hmac(Algorithm::HS256, secret).unwrap());
    for out in [v, s] {
        assert!(!out.contains("secret"), "{out}");
        assert!(!out.contains("97, 45"), "{out}"); // "a-" as bytes
    }
    let clock = ManualClock::default();
    let auth = builder(&clock)
        .key(verifying(Algorithm::HS256))
        .build()
        .unwrap();
    let t = token(Algorithm::HS256);
    let p = block_on(auth.verify(&t, TokenKind::Access)).unwrap();
    let debug = format!("{p:?} {auth:?}");
    assert!(
        !debug.contains(&t) && !debug.contains("jti-alice-1"),
        "{debug}"
    );
}
