//! Rows about the header and the signature: algorithms, keys, `kid`, `crit`, signature bytes.

use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use protothrive::auth::{Algorithm, Reason};
use serde_json::json;

use crate::keys::{
    ALL_ALGS, Signer, alg_name, b64, compact, good_claims, header, keys, merged, pem, public_der,
    signer, token,
};
use crate::table::{Row, bad, es256_header, es256_header_changes, ok};

pub(crate) fn algorithm_rows(rows: &mut Vec<Row>) {
    for alg in ALL_ALGS {
        rows.push(ok(format!("good {alg:?}"), token(alg)));
    }
    for name in ["none", "None", "NONE", "nOnE"] {
        let h = format!(r#"{{"alg":"{name}","typ":"JWT"}}"#);
        let claims = good_claims().to_string();
        rows.push(bad(
            format!("alg {name}, empty signature"),
            compact(&h, &claims, Signer::Raw(b"")),
            Reason::Malformed,
        ));
        rows.push(bad(
            format!("alg {name}, some signature"),
            compact(&h, &claims, Signer::Raw(b"sig")),
            Reason::UnsupportedAlgorithm,
        ));
        rows.push(bad(
            format!("alg {name}, HMAC-signed"),
            compact(&h, &claims, signer(Algorithm::HS256)),
            Reason::UnsupportedAlgorithm,
        ));
    }
    for name in [
        "hs256", "HS256 ", "ES512", "RS1", "HS", "", "RSA-OAEP", "dir",
    ] {
        rows.push(bad(
            format!("alg {name:?}"),
            es256_header(&format!(r#"{{"alg":"{name}"}}"#)),
            Reason::UnsupportedAlgorithm,
        ));
    }
    rows.push(bad(
        "no alg",
        es256_header(r#"{"typ":"JWT"}"#),
        Reason::UnsupportedAlgorithm,
    ));
    rows.push(bad(
        "alg a number",
        es256_header(r#"{"alg":256}"#),
        Reason::Malformed,
    ));
    rows.push(bad(
        "alg null",
        es256_header(r#"{"alg":null}"#),
        Reason::Malformed,
    ));

    // HS256 "signed" with the RSA public key, in every form an attacker might find it.
    let k = keys();
    let spki = public_der(Algorithm::RS256);
    let pkcs1 = k.rsa.public_key().as_ref().to_vec();
    let pem_text = pem("PUBLIC KEY", &spki);
    for (form, secret) in [
        ("SPKI DER", spki.as_slice()),
        ("PKCS#1 DER", pkcs1.as_slice()),
        ("PEM", pem_text.as_bytes()),
    ] {
        let s = Signer::Hmac(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let claims = good_claims().to_string();
        rows.push(bad(
            format!("HS256 with the RSA public key ({form}) under the RSA kid"),
            compact(r#"{"alg":"HS256","kid":"rs256"}"#, &claims, s),
            Reason::UnknownKey,
        ));
        rows.push(bad(
            format!("HS256 with the RSA public key ({form}), no kid"),
            compact(r#"{"alg":"HS256"}"#, &claims, s),
            Reason::BadSignature,
        ));
    }
    // A key is bound to one algorithm: the RS256 key does not verify PS256 or RS384 signatures,
    // even its own.
    for (claimed, real) in [
        (Algorithm::PS256, Algorithm::PS256),
        (Algorithm::RS384, Algorithm::RS384),
    ] {
        let h = json!({"alg": alg_name(claimed), "kid": "rs256"});
        rows.push(bad(
            format!("{claimed:?} signature under the RS256 key's kid"),
            compact(h.to_string(), good_claims().to_string(), signer(real)),
            Reason::UnknownKey,
        ));
    }
    rows.push(bad(
        "RS256 signature labelled PS256",
        compact(
            header(Algorithm::PS256).to_string(),
            good_claims().to_string(),
            signer(Algorithm::RS256),
        ),
        Reason::BadSignature,
    ));
    rows.push(bad(
        "RS256 signature labelled ES256",
        compact(
            header(Algorithm::ES256).to_string(),
            good_claims().to_string(),
            signer(Algorithm::RS256),
        ),
        Reason::BadSignature,
    ));
}

pub(crate) fn signature_rows(rows: &mut Vec<Row>) {
    let k = keys();
    for (alg, len) in [
        (Algorithm::ES256, 64),
        (Algorithm::ES384, 96),
        (Algorithm::EdDSA, 64),
        (Algorithm::RS256, 256),
        (Algorithm::HS256, 32),
    ] {
        let zeros = vec![0u8; len];
        rows.push(bad(
            format!("{alg:?} all-zero signature"),
            compact(
                header(alg).to_string(),
                good_claims().to_string(),
                Signer::Raw(&zeros),
            ),
            Reason::BadSignature,
        ));
    }
    let pkcs8 = k.p256.to_pkcs8v1().unwrap();
    let asn1 = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .unwrap();
    rows.push(bad(
        "ES256 signature in DER form",
        es256_with(Signer::Ecdsa(&asn1)),
        Reason::BadSignature,
    ));
    rows.push(bad(
        "ES256 by another P-256 key",
        es256_with(Signer::Ecdsa(&k.p256_other)),
        Reason::BadSignature,
    ));
    rows.push(bad(
        "RS256 by another RSA key",
        compact(
            header(Algorithm::RS256).to_string(),
            good_claims().to_string(),
            Signer::Rsa(&k.rsa_other, &signature::RSA_PKCS1_SHA256),
        ),
        Reason::BadSignature,
    ));
    rows.push(bad(
        "HS256 by another secret",
        compact(
            header(Algorithm::HS256).to_string(),
            good_claims().to_string(),
            Signer::Hmac(aws_lc_rs::hmac::HMAC_SHA256, &[7u8; 64]),
        ),
        Reason::BadSignature,
    ));
    let good = token(Algorithm::HS256);
    let (signing_input, sig) = good.rsplit_once('.').unwrap();
    let (_, payload) = signing_input.split_once('.').unwrap();
    let forged_payload = b64(merged(good_claims(), &json!({"sub": "admin"})).to_string());
    rows.push(bad(
        "payload swapped after signing",
        good.replace(payload, &forged_payload),
        Reason::BadSignature,
    ));
    rows.push(bad(
        "signature truncated",
        // 40 of 43 characters: whole base64 groups, so it still decodes.
        format!("{signing_input}.{}", &sig[..40]),
        Reason::BadSignature,
    ));
    rows.push(bad(
        "signature of 2 KB",
        format!("{signing_input}.{}", b64([1u8; 2048])),
        Reason::Malformed,
    ));
    rows.push(bad(
        "signature padded with =",
        format!("{good}="),
        Reason::Malformed,
    ));
    rows.push(bad(
        "signature in standard base64",
        format!(
            "{signing_input}.{}",
            sig.replace('-', "+").replace('_', "/") + "+/"
        ),
        Reason::Malformed,
    ));
    // 32 bytes encode to 43 characters; the last one carries 2 unused bits that must be zero.
    // A canonical last character has a value divisible by 4, so the next character is in the same
    // alphabet block and differs only in an unused bit.
    let noisy = char::from(sig.as_bytes()[sig.len() - 1] + 1);
    rows.push(bad(
        "signature with non-zero trailing bits",
        format!("{signing_input}.{}{noisy}", &sig[..sig.len() - 1]),
        Reason::Malformed,
    ));
}

/// ES256 over the standard header and claims, signed by `s`.
fn es256_with(s: Signer<'_>) -> String {
    compact(
        header(Algorithm::ES256).to_string(),
        good_claims().to_string(),
        s,
    )
}

pub(crate) fn key_header_rows(rows: &mut Vec<Row>) {
    let k = keys();
    let attacker = &k.p256_other;
    let attacker_jwk = crate::keys::ec_jwk(attacker, "P-256", "attacker");
    let claims = good_claims().to_string();
    for (name, h, reason) in [
        (
            "embedded jwk, no kid",
            json!({"alg": "ES256", "jwk": attacker_jwk}),
            Reason::BadSignature,
        ),
        (
            "embedded jwk under its own kid",
            json!({"alg": "ES256", "kid": "attacker", "jwk": attacker_jwk}),
            Reason::UnknownKey,
        ),
        (
            "embedded jwk under the real kid",
            json!({"alg": "ES256", "kid": "es256", "jwk": attacker_jwk}),
            Reason::BadSignature,
        ),
        (
            "jku to an attacker's set",
            json!({"alg": "ES256", "kid": "attacker", "jku": "https://attacker.test/jwks"}),
            Reason::UnknownKey,
        ),
        (
            "x5u to an attacker's certificate",
            json!({"alg": "ES256", "x5u": "https://attacker.test/cert.pem"}),
            Reason::BadSignature,
        ),
        (
            "x5c with an attacker's certificate",
            json!({"alg": "ES256", "x5c": ["MIIBszCCAVmgAwIBAgIUJ"]}),
            Reason::BadSignature,
        ),
    ] {
        rows.push(bad(
            name,
            compact(h.to_string(), &claims, Signer::Ecdsa(attacker)),
            reason,
        ));
    }
    let long = "k".repeat(4000);
    for injected in [
        "../../etc/passwd",
        "' OR 1=1 --",
        "\"; DROP TABLE keys; --",
        "$(reboot)",
        "\0",
        "ES256",
        "",
        long.as_str(),
    ] {
        let name: String = format!("kid {injected:?}").chars().take(40).collect();
        rows.push(bad(
            name,
            es256_header_changes(&json!({"kid": injected})),
            Reason::UnknownKey,
        ));
    }
    rows.push(bad(
        "kid a number",
        es256_header_changes(&json!({"kid": 1})),
        Reason::Malformed,
    ));
    rows.push(bad(
        "kid null",
        es256_header(r#"{"alg":"ES256","kid":null}"#),
        Reason::Malformed,
    ));
    rows.push(ok(
        "no kid: tried with the keys of its algorithm",
        es256_header_changes(&json!({"kid": null})),
    ));
    rows.push(ok(
        "unknown header parameters are ignored",
        es256_header_changes(&json!({"foo": {"bar": 1}, "cty": "x"})),
    ));
    rows.push(bad(
        "crit naming a registered claim",
        es256_header_changes(&json!({"crit": ["exp"], "exp": 1})),
        Reason::CriticalExtension,
    ));
    rows.push(bad(
        "crit b64",
        es256_header_changes(&json!({"crit": ["b64"], "b64": false})),
        Reason::CriticalExtension,
    ));
    rows.push(bad(
        "crit empty",
        es256_header_changes(&json!({"crit": []})),
        Reason::Malformed,
    ));
    rows.push(bad(
        "crit a string",
        es256_header_changes(&json!({"crit": "exp"})),
        Reason::Malformed,
    ));
}
