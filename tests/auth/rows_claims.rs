//! Rows about the claims and the token's shape: time, issuer, audience, types, duplicates, size.

use protothrive::auth::{Algorithm, Reason};
use serde_json::json;

use crate::keys::{
    AUDIENCE, ISSUER, NOW, compact, good_claims, header, merged, signer, token, token_with,
};
use crate::table::{
    Row, bad, es256_claims, es256_header, es256_header_changes, es256_payload, ok, row,
};

/// A valid HS256 token of exactly `len` bytes (padding a claim and a header parameter), if one
/// exists near the standard token's shape.
pub(crate) fn token_of_length(len: usize) -> String {
    let make = |h: usize, p: usize| {
        let head = merged(header(Algorithm::HS256), &json!({"x": "h".repeat(h)}));
        let claims = merged(good_claims(), &json!({"pad": "p".repeat(p)}));
        compact(
            head.to_string(),
            claims.to_string(),
            signer(Algorithm::HS256),
        )
    };
    // Each padding byte adds 4/3 of a character: start a little short of the estimate.
    let start = (len.saturating_sub(make(0, 0).len()) * 3 / 4).saturating_sub(8);
    for h in 0..4 {
        for p in start.. {
            let t = make(h, p);
            if t.len() == len {
                return t;
            }
            if t.len() > len {
                break;
            }
        }
    }
    panic!("no token of {len} bytes")
}
pub(crate) fn time_rows(rows: &mut Vec<Row>) {
    for (name, changes, expect) in [
        (
            "exp at now - leeway",
            json!({"exp": NOW - 60}),
            Some(Reason::Expired),
        ),
        ("exp long ago", json!({"exp": 1}), Some(Reason::Expired)),
        ("exp at now - leeway + 1", json!({"exp": NOW - 59}), None),
        (
            "exp fractional, floored inside",
            json!({"exp": NOW as f64 - 58.5}),
            None,
        ),
        (
            "exp fractional, floored outside",
            json!({"exp": NOW as f64 - 59.5}),
            Some(Reason::Expired),
        ),
        ("exp negative", json!({"exp": -1}), Some(Reason::Expired)),
        (
            "exp huge",
            json!({"exp": u64::MAX}),
            Some(Reason::InvalidClaim),
        ),
        (
            "exp 1e300",
            json!({"exp": 1e300}),
            Some(Reason::InvalidClaim),
        ),
        (
            "exp past the maximum lifetime",
            json!({"exp": NOW + 90 * 86_400 + 1}),
            Some(Reason::InvalidClaim),
        ),
        (
            "exp at the maximum lifetime",
            json!({"exp": NOW + 90 * 86_400}),
            None,
        ),
        (
            "exp missing",
            json!({"exp": null}),
            Some(Reason::MissingClaim),
        ),
        (
            "exp a string",
            json!({"exp": (NOW + 600).to_string()}),
            Some(Reason::InvalidClaim),
        ),
        (
            "exp a bool",
            json!({"exp": true}),
            Some(Reason::InvalidClaim),
        ),
        (
            "exp an array",
            json!({"exp": [NOW + 600]}),
            Some(Reason::InvalidClaim),
        ),
        ("nbf at now + leeway", json!({"nbf": NOW + 60}), None),
        (
            "nbf at now + leeway + 1",
            json!({"nbf": NOW + 61}),
            Some(Reason::NotYetValid),
        ),
        (
            "nbf a string",
            json!({"nbf": "0"}),
            Some(Reason::InvalidClaim),
        ),
        (
            "iat a string",
            json!({"iat": "yesterday"}),
            Some(Reason::InvalidClaim),
        ),
    ] {
        rows.push(row(name, es256_claims(&changes), expect));
    }
    // A literal null cannot be written through `merged` (null removes): spell it out.
    let with_null = format!(r#"{{"sub":"alice","iss":"{ISSUER}","aud":"{AUDIENCE}","exp":null}}"#);
    rows.push(bad(
        "exp null",
        es256_payload(&with_null),
        Reason::InvalidClaim,
    ));
}

pub(crate) fn claim_rows(rows: &mut Vec<Row>) {
    for (name, changes, expect) in [
        (
            "iss missing",
            json!({"iss": null}),
            Some(Reason::MissingClaim),
        ),
        (
            "iss another",
            json!({"iss": "https://evil.test"}),
            Some(Reason::WrongIssuer),
        ),
        (
            "iss differs in case",
            json!({"iss": ISSUER.to_uppercase()}),
            Some(Reason::WrongIssuer),
        ),
        (
            "iss with a trailing slash",
            json!({"iss": format!("{ISSUER}/")}),
            Some(Reason::WrongIssuer),
        ),
        (
            "iss an array",
            json!({"iss": [ISSUER]}),
            Some(Reason::InvalidClaim),
        ),
        (
            "aud missing",
            json!({"aud": null}),
            Some(Reason::MissingClaim),
        ),
        (
            "aud another",
            json!({"aud": "other"}),
            Some(Reason::WrongAudience),
        ),
        (
            "aud differs in case",
            json!({"aud": "API"}),
            Some(Reason::WrongAudience),
        ),
        (
            "aud array overlapping",
            json!({"aud": ["other", AUDIENCE]}),
            None,
        ),
        (
            "aud array disjoint",
            json!({"aud": ["x", "y"]}),
            Some(Reason::WrongAudience),
        ),
        (
            "aud empty array",
            json!({"aud": []}),
            Some(Reason::WrongAudience),
        ),
        (
            "aud array with a number",
            json!({"aud": [AUDIENCE, 1]}),
            Some(Reason::InvalidClaim),
        ),
        (
            "aud an object",
            json!({"aud": {"api": true}}),
            Some(Reason::InvalidClaim),
        ),
        (
            "sub missing",
            json!({"sub": null}),
            Some(Reason::MissingClaim),
        ),
        (
            "sub a number",
            json!({"sub": 42}),
            Some(Reason::InvalidClaim),
        ),
        (
            "sub an object",
            json!({"sub": {"id": "alice"}}),
            Some(Reason::InvalidClaim),
        ),
        (
            "jti a number",
            json!({"jti": 7}),
            Some(Reason::InvalidClaim),
        ),
        (
            "roles an object",
            json!({"roles": {"admin": true}}),
            Some(Reason::InvalidClaim),
        ),
        (
            "roles with a number",
            json!({"roles": ["a", 1]}),
            Some(Reason::InvalidClaim),
        ),
        (
            "role an array",
            json!({"role": ["admin"]}),
            Some(Reason::InvalidClaim),
        ),
        (
            "scope an array",
            json!({"scope": ["a"]}),
            Some(Reason::InvalidClaim),
        ),
        (
            "scp a number",
            json!({"scp": 5}),
            Some(Reason::InvalidClaim),
        ),
        (
            "tenant a number",
            json!({"tenant": 1}),
            Some(Reason::InvalidClaim),
        ),
        (
            "type refresh",
            json!({"type": "refresh"}),
            Some(Reason::WrongTokenType),
        ),
        (
            "type id",
            json!({"type": "id"}),
            Some(Reason::WrongTokenType),
        ),
        (
            "type a number",
            json!({"type": 1}),
            Some(Reason::InvalidClaim),
        ),
        ("type access", json!({"type": "access"}), None),
    ] {
        rows.push(row(name, es256_claims(&changes), expect));
    }
    for (typ, expect) in [
        ("refresh+jwt", Some(Reason::WrongTokenType)),
        ("application/refresh+jwt", Some(Reason::WrongTokenType)),
        ("dpop+jwt", Some(Reason::WrongTokenType)),
        ("logout+jwt", Some(Reason::WrongTokenType)),
        ("JOSE", Some(Reason::WrongTokenType)),
        ("at+jwt", None),
        ("application/at+jwt", None),
        ("jwt", None),
    ] {
        rows.push(row(
            format!("typ {typ}"),
            es256_header_changes(&json!({"typ": typ})),
            expect,
        ));
    }
    rows.push(bad(
        "typ at+jwt but type refresh",
        token_with(
            Algorithm::ES256,
            &json!({"typ": "at+jwt"}),
            &json!({"type": "refresh"}),
        ),
        Reason::WrongTokenType,
    ));
    rows.push(bad(
        "typ a number",
        es256_header_changes(&json!({"typ": 1})),
        Reason::Malformed,
    ));
}

/// A validly signed ES256 token whose header (or payload) segment sets the unused low bits of its
/// last base64url character: the same bytes spelt a second way, which strict parsing refuses.
fn non_canonical(in_header: bool) -> String {
    // Lengths that are not a multiple of 3 leave unused bits in the last character.
    let fit = |mut v: serde_json::Value| loop {
        let text = v.to_string();
        if !text.len().is_multiple_of(3) {
            return crate::keys::b64(text);
        }
        v["x"] = format!("{}x", v["x"].as_str().unwrap_or("")).into();
    };
    let (mut h, mut p) = (fit(header(Algorithm::ES256)), fit(good_claims()));
    let segment = if in_header { &mut h } else { &mut p };
    // A canonical last character's value is a multiple of 4 (or 16): the next character is in
    // the same alphabet block and differs only in an unused bit.
    let last = segment.pop().unwrap();
    segment.push(char::from(u8::try_from(last).unwrap() + 1));
    let input = format!("{h}.{p}");
    let sig = signer(Algorithm::ES256).sign(input.as_bytes());
    format!("{input}.{}", crate::keys::b64(sig))
}

/// `claims` with one byte of `alice` replaced by 0xFF.
fn not_utf8(claims: &str) -> Vec<u8> {
    let mut bytes = claims.as_bytes().to_vec();
    let at = claims.find("alice").unwrap();
    bytes[at + 1] = 0xff;
    bytes
}

pub(crate) fn structure_rows(rows: &mut Vec<Row>) {
    let claims = good_claims().to_string();
    let dup_sub = claims.replacen('{', r#"{"sub":"admin","#, 1);
    rows.push(bad(
        "duplicate sub",
        es256_payload(&dup_sub),
        Reason::Malformed,
    ));
    let escaped = claims.replacen('{', r#"{"s\u0075b":"admin","#, 1);
    rows.push(bad(
        "duplicate sub, escaped",
        es256_payload(&escaped),
        Reason::Malformed,
    ));
    let nested = claims.replacen('{', r#"{"ext":{"a":1,"a":2},"#, 1);
    rows.push(bad(
        "duplicate nested member",
        es256_payload(&nested),
        Reason::Malformed,
    ));
    rows.push(bad(
        "duplicate alg in the header",
        es256_header(r#"{"alg":"none","alg":"ES256"}"#),
        Reason::Malformed,
    ));
    rows.push(bad(
        "duplicate kid in the header",
        es256_header(r#"{"alg":"ES256","kid":"es256","kid":"x"}"#),
        Reason::Malformed,
    ));
    for (name, payload) in [
        ("payload not JSON", b"hello".to_vec()),
        ("payload an array", b"[1,2]".to_vec()),
        ("payload a string", br#""sub""#.to_vec()),
        (
            "payload with trailing bytes",
            format!("{claims} x").into_bytes(),
        ),
        (
            "payload with a BOM",
            [b"\xef\xbb\xbf".as_slice(), claims.as_bytes()].concat(),
        ),
        ("payload not UTF-8", not_utf8(&claims)),
        ("payload empty object", b"{}".to_vec()),
    ] {
        let expect = if name == "payload empty object" {
            Reason::MissingClaim
        } else {
            Reason::Malformed
        };
        rows.push(bad(name, es256_payload(payload), expect));
    }
    for (name, h) in [
        ("header not JSON", "ES256"),
        ("header an array", r#"["ES256"]"#),
        ("header empty", ""),
    ] {
        rows.push(bad(name, es256_header(h), Reason::Malformed));
    }
    let good = token(Algorithm::HS256);
    for (name, t) in [
        ("empty", String::new()),
        ("one segment", "abc".to_owned()),
        ("two segments", good.rsplit_once('.').unwrap().0.to_owned()),
        ("four segments", format!("{good}.e30")),
        ("JWE-shaped, five segments", format!("{good}.e30.e30")),
        ("leading dot", format!(".{good}")),
        ("trailing dot", format!("{good}.")),
        ("space inside", good.replacen('.', " .", 1)),
        ("newline at the end", format!("{good}\n")),
        ("Bearer prefix inside", format!("Bearer {good}")),
    ] {
        rows.push(bad(name, t, Reason::Malformed));
    }
    for segment in ["header", "payload"] {
        rows.push(bad(
            format!("{segment} with non-zero unused bits, signed"),
            non_canonical(segment == "header"),
            Reason::Malformed,
        ));
    }
    rows.push(ok("exactly 8 KiB", token_of_length(8192)));
    rows.push(bad(
        "one byte over 8 KiB",
        token_of_length(8193),
        Reason::TooLarge,
    ));
    rows.push(bad(
        "9 KB of garbage (not decoded)",
        "!".repeat(9000),
        Reason::TooLarge,
    ));
}
