//! The `Age` (RFC 9111 §5.1) and `Cache-Status` (RFC 9211) values the layer puts on responses.

use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::control::MAX_DELTA_SECONDS;

/// `Cache-Status` (RFC 9211).
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The cache's name in `Cache-Status`.
pub const CACHE_NAME: &str = "protothrive";

/// The `Age` value for an age: whole seconds, at most 2^31 (RFC 9111 §1.2.2).
///
/// ```
/// use std::time::Duration;
/// use protothrive::cache::policy::age_value;
/// assert_eq!(age_value(Duration::from_millis(61_900)), "61");
/// ```
#[must_use]
pub fn age_value(age: Duration) -> HeaderValue {
    crate::headers::number(age.as_secs().min(u64::from(MAX_DELTA_SECONDS)))
}

/// Why the request went forward to the origin (RFC 9211 §2.2).
///
/// ```
/// use protothrive::cache::policy::{CacheStatus, Forward};
/// assert_eq!(CacheStatus::forward(Forward::Method).to_string(), "protothrive; fwd=method");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Forward {
    /// The cache was configured not to handle this request (`fwd=bypass`).
    Bypass,
    /// The method is not cacheable (`fwd=method`).
    Method,
    /// Nothing stored for the URI (`fwd=uri-miss`).
    UriMiss,
    /// Something stored for the URI, but not for these `Vary` headers (`fwd=vary-miss`).
    VaryMiss,
    /// The request asked for the origin (`no-cache`, `max-age`, `min-fresh`: `fwd=request`).
    Request,
    /// The stored response was stale (`fwd=stale`).
    Stale,
}

impl Forward {
    fn as_str(self) -> &'static str {
        match self {
            Self::Bypass => "bypass",
            Self::Method => "method",
            Self::UriMiss => "uri-miss",
            Self::VaryMiss => "vary-miss",
            Self::Request => "request",
            Self::Stale => "stale",
        }
    }
}

/// One `Cache-Status` member for this cache (RFC 9211 §2).
///
/// ```
/// use protothrive::cache::policy::{CacheStatus, Forward};
///
/// assert_eq!(CacheStatus::hit(Some(42)).to_string(), "protothrive; hit; ttl=42");
/// let miss = CacheStatus::forward(Forward::UriMiss).stored(true);
/// assert_eq!(miss.to_string(), "protothrive; fwd=uri-miss; stored");
/// let reval = CacheStatus::forward(Forward::Stale).fwd_status(304).stored(true);
/// assert_eq!(reval.to_string(), "protothrive; fwd=stale; fwd-status=304; stored");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct CacheStatus {
    hit: bool,
    fwd: Option<Forward>,
    fwd_status: Option<u16>,
    ttl: Option<i64>,
    stored: bool,
    collapsed: bool,
    detail: Option<&'static str>,
}

impl CacheStatus {
    /// Answered from the cache, with the remaining freshness in seconds (negative when stale).
    pub fn hit(ttl: Option<i64>) -> Self {
        Self {
            hit: true,
            ttl,
            ..Self::default()
        }
    }

    /// Forwarded to the origin, for `why`.
    pub fn forward(why: Forward) -> Self {
        Self {
            fwd: Some(why),
            ..Self::default()
        }
    }

    /// The status the origin answered with (`fwd-status`).
    pub fn fwd_status(mut self, status: u16) -> Self {
        self.fwd_status = Some(status);
        self
    }

    /// Whether the response was stored (`stored`).
    pub fn stored(mut self, stored: bool) -> Self {
        self.stored = stored;
        self
    }

    /// The request waited for another request's origin call (`collapsed`).
    pub fn collapsed(mut self, collapsed: bool) -> Self {
        self.collapsed = collapsed;
        self
    }

    /// The remaining freshness (`ttl`).
    pub fn ttl(mut self, ttl: i64) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// A short explanation (`detail`, a token such as `stale-if-error`).
    pub fn detail(mut self, detail: &'static str) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Whether this is a hit.
    #[must_use]
    pub fn is_hit(&self) -> bool {
        self.hit
    }

    /// The header value, this cache named [`CACHE_NAME`].
    #[must_use]
    pub fn header_value(&self) -> HeaderValue {
        self.header_value_named(CACHE_NAME)
    }

    /// The header value, this cache named `name` (an RFC 8941 token, as
    /// [`CacheLayerBuilder::name`](crate::cache::CacheLayerBuilder::name) checks).
    ///
    /// ```
    /// use protothrive::cache::policy::CacheStatus;
    /// assert_eq!(CacheStatus::hit(Some(30)).header_value_named("edge"), "edge; hit; ttl=30");
    /// ```
    #[must_use]
    pub fn header_value_named(&self, name: &str) -> HeaderValue {
        if let Some(ttl) = self.plain_hit() {
            return hit_value(name, ttl);
        }
        let mut b = crate::headers::ValueBuf::new();
        self.write_into(&mut b, name);
        b.value()
            .unwrap_or_else(|| HeaderValue::from_static(CACHE_NAME))
    }

    /// The ttl of a plain fresh-or-stale hit (`hit; ttl=N` and nothing else): the member every
    /// hit of an entry repeats for a whole second.
    fn plain_hit(&self) -> Option<i64> {
        let plain = Self::hit(self.ttl);
        (self.ttl.is_some() && *self == plain)
            .then_some(self.ttl)
            .flatten()
    }

    fn write_into(&self, s: &mut impl Out, name: &str) {
        s.text(name);
        if self.hit {
            s.text("; hit");
        }
        if let Some(fwd) = self.fwd {
            s.text("; fwd=");
            s.text(fwd.as_str());
        }
        if let Some(st) = self.fwd_status {
            s.text("; fwd-status=");
            s.int(i64::from(st));
        }
        if let Some(ttl) = self.ttl {
            s.text("; ttl=");
            s.int(ttl);
        }
        if self.stored {
            s.text("; stored");
        }
        if self.collapsed {
            s.text("; collapsed");
        }
        if let Some(d) = self.detail {
            // RFC 9211 §2.8: a token or a string; ours are tokens.
            s.text("; detail=");
            s.text(d);
        }
    }
}

/// `name; hit; ttl=N`, kept per thread in eight slots by `N`: the hits of an entry answer with
/// the same member for a whole second, and writing it (a buffer, the digits, the value's byte
/// check) costs several times a lookup. A slot is checked against the whole text it must hold
/// (a cache name is a token, so `name; hit; ttl=` cannot start another name's member), and
/// holds a value of its own rather than a slice pinning a shared buffer.
fn hit_value(name: &str, ttl: i64) -> HeaderValue {
    use std::cell::RefCell;
    thread_local! {
        static HITS: RefCell<[Option<(i64, HeaderValue)>; 8]> =
            const { RefCell::new([const { None }; 8]) };
    }
    const HIT: &[u8] = b"; hit; ttl=";
    let holds = |v: &HeaderValue| {
        let b = v.as_bytes();
        b.len() > name.len() + HIT.len()
            && b.starts_with(name.as_bytes())
            && b[name.len()..].starts_with(HIT)
    };
    let write = || {
        let mut b = crate::headers::ValueBuf::new();
        CacheStatus::hit(Some(ttl)).write_into(&mut b, name);
        HeaderValue::from_bytes(b.as_bytes())
            .unwrap_or_else(|_| HeaderValue::from_static(CACHE_NAME))
    };
    let slot = (ttl & 7) as usize;
    HITS.try_with(|hits| {
        let mut hits = hits.borrow_mut();
        if let Some((t, v)) = &hits[slot]
            && *t == ttl
            && holds(v)
        {
            return v.clone();
        }
        let v = write();
        hits[slot] = Some((ttl, v.clone()));
        v
    })
    .unwrap_or_else(|_| write())
}

/// Where a `Cache-Status` member is written: a header value on every response (numbers through
/// `itoa`, not `core::fmt`, which costs more than the rest of the value), or a formatter.
trait Out {
    fn text(&mut self, s: &str);
    fn int(&mut self, n: i64);
}

impl Out for crate::headers::ValueBuf {
    fn text(&mut self, s: &str) {
        self.push(s.as_bytes());
    }

    fn int(&mut self, n: i64) {
        self.push_int(n);
    }
}

impl Out for fmt::Formatter<'_> {
    fn text(&mut self, s: &str) {
        let _ = self.write_str(s);
    }

    fn int(&mut self, n: i64) {
        let _ = write!(self, "{n}");
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_into(f, CACHE_NAME);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// A run of hits under two names and ttls that share slots: each member is the one
        /// written afresh, whatever the thread's slots held before.
        #[test]
        fn remembered_hits_are_the_members_written_afresh(
            hits in proptest::collection::vec((any::<bool>(), -20i64..20), 1..64),
        ) {
            for (edge, ttl) in hits {
                let name = if edge { "edge" } else { CACHE_NAME };
                let value = CacheStatus::hit(Some(ttl)).header_value_named(name);
                prop_assert_eq!(value.to_str().unwrap(), format!("{name}; hit; ttl={ttl}"));
            }
        }

        /// The header value (written with `itoa`) and the `Display` text (written with
        /// `core::fmt`) are the same member, whatever the status holds.
        #[test]
        fn the_header_value_is_the_display_text(
            hit in any::<bool>(),
            fwd in proptest::option::of(0..6usize),
            fwd_status in proptest::option::of(any::<u16>()),
            ttl in proptest::option::of(any::<i64>()),
            stored in any::<bool>(),
            collapsed in any::<bool>(),
            detail in any::<bool>(),
        ) {
            let forwards = [
                Forward::Bypass,
                Forward::Method,
                Forward::UriMiss,
                Forward::VaryMiss,
                Forward::Request,
                Forward::Stale,
            ];
            let mut s = match fwd {
                Some(i) => CacheStatus::forward(forwards[i]),
                None => CacheStatus::default(),
            };
            s.hit = hit;
            s.fwd_status = fwd_status;
            s.ttl = ttl;
            s = s.stored(stored).collapsed(collapsed);
            if detail {
                s = s.detail("stale-if-error");
            }
            let value = s.header_value();
            prop_assert_eq!(value.to_str().unwrap(), s.to_string());
            // Again (a hit's member from the thread's slots), and under another name.
            let again = s.header_value();
            prop_assert_eq!(again.to_str().unwrap(), s.to_string());
            let named = s.header_value_named("edge");
            prop_assert_eq!(
                named.to_str().unwrap(),
                s.to_string().replacen(CACHE_NAME, "edge", 1)
            );
        }
    }
}
