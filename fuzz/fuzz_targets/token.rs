//! Arbitrary bytes as a token, and as an `Authorization` header, through the whole verification
//! path: never a panic, never an authenticated principal.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use protothrive::auth::{Algorithm, Authenticator, TokenKind, VerifyingKey, verify_token};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    token: &'a str,
    header: &'a [u8],
}

fn keys() -> &'static [VerifyingKey] {
    static KEYS: OnceLock<Vec<VerifyingKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        vec![
            VerifyingKey::hmac(Algorithm::HS256, [7u8; 32]).expect("key").with_kid("h1"),
            VerifyingKey::hmac(Algorithm::HS512, [9u8; 64]).expect("key"),
        ]
    })
}

fn runtime_and_auth() -> &'static (tokio::runtime::Runtime, Authenticator) {
    static RT: OnceLock<(tokio::runtime::Runtime, Authenticator)> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let mut builder = Authenticator::builder().issuer("fuzz").audience("fuzz");
        for key in keys() {
            builder = builder.key(key.clone());
        }
        (rt, builder.cookie("session").build().expect("authenticator"))
    })
}

fuzz_target!(|input: Input<'_>| {
    for kind in [TokenKind::Access, TokenKind::Refresh] {
        assert!(verify_token(input.token, keys(), kind, 1_700_000_000).is_err());
    }
    let Ok(value) = http::HeaderValue::from_bytes(input.header) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value.clone());
    headers.insert(http::header::COOKIE, value);
    let (rt, auth) = runtime_and_auth();
    let uri = http::Uri::from_static("/");
    let outcome = rt.block_on(auth.authenticate(&headers, &uri));
    assert!(!matches!(outcome, Ok(Some(_))), "arbitrary bytes authenticated");
});
