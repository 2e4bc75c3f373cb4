//! Finding the credential in a request: `Authorization`, `X-API-Key`, and the opt-in cookie and
//! query parameter. Pure over the request head.

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, Uri};

use super::Reason;

/// The `X-API-Key` header.
pub(crate) static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

pub use crate::identity::CredentialSource;

/// A credential found in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credential<'a> {
    Bearer(&'a str, CredentialSource),
    ApiKey(&'a str, CredentialSource),
}

/// Where to look for tokens besides `Authorization: Bearer`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    pub(crate) cookie: Option<String>,
    pub(crate) query: Option<String>,
    pub(crate) api_keys: bool,
    /// An opaque bearer token is looked up as an API key.
    pub(crate) opaque_bearer: bool,
}

fn parse_authorization(value: &str) -> Result<Credential<'_>, Reason> {
    let (scheme, rest) = value.split_once(' ').ok_or(Reason::Malformed)?;
    let credential = rest.trim_start_matches(' ');
    // Every byte looked at, no early exit: the compiler checks a vector of them per step, where
    // `contains` walks a token of a few hundred bytes a word at a time.
    let spaces = credential.bytes().fold(false, |seen, b| seen | (b == b' '));
    if credential.is_empty() || spaces {
        return Err(Reason::Malformed);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        // The token's characters are not checked here: a cache hit is an exact match with a token
        // that verified, and a miss goes through `token::split`, which admits only base64url
        // segments — stricter than RFC 6750's `b64token`, and paid only when needed.
        Ok(Credential::Bearer(
            credential,
            CredentialSource::AuthorizationHeader,
        ))
    } else if scheme.eq_ignore_ascii_case("apikey") {
        Ok(Credential::ApiKey(
            credential,
            CredentialSource::AuthorizationHeader,
        ))
    } else {
        Err(Reason::Malformed)
    }
}

fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, Reason> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Reason::Ambiguous);
    }
    // `from_utf8` checks a word at a time; every later step accepts only ASCII anyway.
    std::str::from_utf8(first.as_bytes())
        .map(Some)
        .map_err(|_| Reason::Malformed)
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Reason> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        let Ok(header) = header.to_str() else {
            continue;
        };
        for pair in header.split(';') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            if k.trim() == name {
                if found.is_some() {
                    return Err(Reason::Ambiguous);
                }
                found = Some(v.trim().trim_matches('"'));
            }
        }
    }
    Ok(found)
}

fn query_value<'u>(uri: &'u Uri, name: &str) -> Result<Option<&'u str>, Reason> {
    let mut found = None;
    for pair in uri.query().unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            if found.is_some() {
                return Err(Reason::Ambiguous);
            }
            found = Some(v);
        }
    }
    Ok(found)
}

/// The one credential of a request, if any. Two credentials (of any kinds) are ambiguous.
pub(crate) fn credential<'r>(
    headers: &'r HeaderMap,
    uri: &'r Uri,
    sources: &Sources,
) -> Result<Option<Credential<'r>>, Reason> {
    let mut found: Option<Credential<'r>> = None;
    let take = |found: &mut Option<Credential<'r>>, c: Credential<'r>| {
        if found.replace(c).is_some() {
            Err(Reason::Ambiguous)
        } else {
            Ok(())
        }
    };
    if let Some(value) = single(headers, &AUTHORIZATION)? {
        let parsed = parse_authorization(value)?;
        if matches!(parsed, Credential::ApiKey(..)) && !sources.api_keys {
            return Err(Reason::Malformed);
        }
        take(&mut found, parsed)?;
    }
    if sources.api_keys
        && let Some(value) = single(headers, &X_API_KEY)?
    {
        take(
            &mut found,
            Credential::ApiKey(value.trim(), CredentialSource::ApiKeyHeader),
        )?;
    }
    if let Some(name) = &sources.cookie
        && let Some(value) = cookie_value(headers, name)?
    {
        // A cookie alongside an explicit header is normal for browsers: the header wins.
        if found.is_none() {
            take(
                &mut found,
                Credential::Bearer(value, CredentialSource::Cookie),
            )?;
        }
    }
    if let Some(name) = &sources.query
        && let Some(value) = query_value(uri, name)?
    {
        take(
            &mut found,
            Credential::Bearer(value, CredentialSource::Query),
        )?;
    }
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn all_sources() -> Sources {
        Sources {
            cookie: Some("session".into()),
            query: Some("access_token".into()),
            api_keys: true,
            opaque_bearer: false,
        }
    }

    fn get(h: &HeaderMap, uri: &str, s: &Sources) -> Result<Option<Credential<'static>>, Reason> {
        let uri: Uri = uri.parse().unwrap();
        let h: &'static HeaderMap = Box::leak(Box::new(h.clone()));
        let uri: &'static Uri = Box::leak(Box::new(uri));
        credential(h, uri, s)
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer abc.def.ghi",
            "bearer abc.def.ghi",
            "BEARER   abc.def.ghi",
        ] {
            let h = headers(&[("authorization", v.as_bytes())]);
            assert_eq!(
                get(&h, "/", &Sources::default()),
                Ok(Some(Credential::Bearer(
                    "abc.def.ghi",
                    CredentialSource::AuthorizationHeader
                )))
            );
        }
    }

    #[test]
    fn malformed_and_duplicated_authorization_is_refused() {
        let s = Sources::default();
        for v in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer a b",
            b"Basic dXNlcjpwYXNz",
            b"Bearer \xff\xfe",
        ] {
            let h = headers(&[("authorization", v)]);
            assert_eq!(get(&h, "/", &s), Err(Reason::Malformed), "{v:?}");
        }
        let h = headers(&[
            ("authorization", b"Bearer a"),
            ("authorization", b"Bearer b"),
        ]);
        assert_eq!(get(&h, "/", &s), Err(Reason::Ambiguous));
    }

    #[test]
    fn cookie_and_query_are_opt_in() {
        let h = headers(&[("cookie", b"a=1; session=tok.en.x")]);
        assert_eq!(
            get(&h, "/?access_token=q.q.q", &Sources::default()),
            Ok(None)
        );
        assert_eq!(
            get(&h, "/", &all_sources()),
            Ok(Some(Credential::Bearer(
                "tok.en.x",
                CredentialSource::Cookie
            )))
        );
        let none = HeaderMap::new();
        assert_eq!(
            get(&none, "/?x=1&access_token=q.q.q", &all_sources()),
            Ok(Some(Credential::Bearer("q.q.q", CredentialSource::Query)))
        );
        assert_eq!(
            get(&none, "/?access_token=a&access_token=b", &all_sources()),
            Err(Reason::Ambiguous)
        );
    }

    #[test]
    fn two_kinds_of_credentials_are_ambiguous() {
        let h = headers(&[("authorization", b"Bearer a.b.c"), ("x-api-key", b"pt_1")]);
        assert_eq!(get(&h, "/", &all_sources()), Err(Reason::Ambiguous));
        let h = headers(&[("authorization", b"Bearer a.b.c")]);
        assert_eq!(
            get(&h, "/?access_token=x", &all_sources()),
            Err(Reason::Ambiguous)
        );
    }

    #[test]
    fn api_key_schemes() {
        let h = headers(&[("authorization", b"ApiKey pt_123")]);
        assert_eq!(
            get(&h, "/", &all_sources()),
            Ok(Some(Credential::ApiKey(
                "pt_123",
                CredentialSource::AuthorizationHeader
            )))
        );
        assert_eq!(get(&h, "/", &Sources::default()), Err(Reason::Malformed));
        let h = headers(&[("x-api-key", b"pt_456")]);
        assert_eq!(
            get(&h, "/", &all_sources()),
            Ok(Some(Credential::ApiKey(
                "pt_456",
                CredentialSource::ApiKeyHeader
            )))
        );
    }
}
