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
        let mut b = crate::headers::ValueBuf::new();
        self.write_into(&mut b, name);
        b.value()
            .unwrap_or_else(|| HeaderValue::from_static(CACHE_NAME))
    }

    fn write_into(&self, s: &mut impl fmt::Write, name: &str) {
        let _ = s.write_str(name);
        if self.hit {
            let _ = s.write_str("; hit");
        }
        if let Some(fwd) = self.fwd {
            let _ = write!(s, "; fwd={}", fwd.as_str());
        }
        if let Some(st) = self.fwd_status {
            let _ = write!(s, "; fwd-status={st}");
        }
        if let Some(ttl) = self.ttl {
            let _ = write!(s, "; ttl={ttl}");
        }
        if self.stored {
            let _ = s.write_str("; stored");
        }
        if self.collapsed {
            let _ = s.write_str("; collapsed");
        }
        if let Some(d) = self.detail {
            // RFC 9211 §2.8: a token or a string; ours are tokens.
            let _ = write!(s, "; detail={d}");
        }
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_into(f, CACHE_NAME);
        Ok(())
    }
}
