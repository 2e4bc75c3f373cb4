//! What the client whose request fetched a response gets that the stored copy goes without.

use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderName, HeaderValue, Response};

use super::CacheControl;

/// The fields of an origin's response that the stored copy goes without but the client whose
/// request fetched it gets: `Set-Cookie`, and those a qualified `no-cache`/`private` lists.
pub(super) fn withheld(origin: &HeaderMap, cc: &CacheControl) -> Vec<(HeaderName, HeaderValue)> {
    if !origin.contains_key(SET_COOKIE)
        && cc.no_cache_fields.is_empty()
        && cc.private_fields.is_empty()
    {
        return Vec::new();
    }
    origin
        .iter()
        .filter(|(n, _)| **n == SET_COOKIE || cc.lists(n))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

/// Gives the withheld fields back to the answer (those it lacks).
pub(super) fn give_back<B>(res: &mut Response<B>, withheld: Vec<(HeaderName, HeaderValue)>) {
    let missing: Vec<_> = withheld
        .into_iter()
        .filter(|(n, _)| !res.headers().contains_key(n))
        .collect();
    for (n, v) in missing {
        res.headers_mut().append(n, v);
    }
}
