//! The request id and trace id extensions: text shared by every clone.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;

/// The text of an id. Ids of visible ASCII (every generated id and every sane incoming one) are
/// kept as the header value they travel in: echoing one on a response, or writing it into a
/// request header, is a reference-count increment, not a copy. Other text (an application's own
/// id with spaces or non-ASCII) is kept as shared text. A trace id, which rarely travels as a
/// header of its own, is kept in place: no allocation, and a clone is a copy of 32 bytes.
#[derive(Clone)]
enum Text {
    Header(HeaderValue),
    Other(Arc<str>),
    #[cfg_attr(not(feature = "trace"), allow(dead_code))]
    Hex([u8; 32]),
}

impl Text {
    fn new(id: Cow<'static, str>) -> Self {
        if !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Self::Other(Arc::from(id.as_ref()));
        }
        let bytes = match id {
            Cow::Borrowed(s) => Bytes::from_static(s.as_bytes()),
            Cow::Owned(s) => Bytes::from_owner(s),
        };
        HeaderValue::from_maybe_shared(bytes)
            .map_or_else(|_| Self::Other(Arc::from("")), Self::Header)
    }

    /// `bytes` (visible ASCII) in a slice of the thread's shared buffer, which every clone
    /// shares.
    fn owned<const N: usize>(bytes: [u8; N]) -> Self {
        HeaderValue::from_maybe_shared(crate::headers::shared_copy(&bytes))
            .map_or_else(|_| Self::Other(Arc::from("")), Self::Header)
    }

    fn as_str(&self) -> &str {
        match self {
            // Built from visible ASCII only.
            Self::Header(v) => v.to_str().unwrap_or_default(),
            Self::Other(s) => s,
            Self::Hex(hex) => std::str::from_utf8(hex).unwrap_or_default(),
        }
    }

    fn header_value(&self) -> Option<HeaderValue> {
        match self {
            Self::Header(v) => Some(v.clone()),
            Self::Other(_) => None,
            Self::Hex(hex) => HeaderValue::from_bytes(hex).ok(),
        }
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(Text);

        impl $name {
            /// Wraps an id (a `&'static str` is not copied).
            pub fn new(id: impl Into<Cow<'static, str>>) -> Self {
                Self(Text::new(id.into()))
            }

            /// The id as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// The id as a header value (shared, not copied); `None` for an id with characters a
            /// header value cannot carry.
            #[must_use]
            pub fn header_value(&self) -> Option<HeaderValue> {
                self.0.header_value()
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl Eq for $name {}

        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.as_str().hash(state);
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.as_str()).finish()
            }
        }
    };
}

id_type! {
    /// The request id of a request, kept in its context (set by the request-id or trace
    /// layer).
    ///
    /// ```
    /// use protothrive::error::RequestId;
    /// let id = RequestId::new("req-1");
    /// assert_eq!(id.as_str(), "req-1");
    /// assert_eq!(id.header_value().unwrap(), "req-1");
    /// assert_eq!(RequestId::new("a b").header_value(), None);
    /// ```
    RequestId
}

id_type! {
    /// The W3C trace id of a request (32 lowercase hex digits), kept in its context by the trace
    /// layer ([`TraceId::of`]).
    ///
    /// ```
    /// use protothrive::error::TraceId;
    /// let id = TraceId::new("4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert_eq!(id.as_str().len(), 32);
    /// ```
    TraceId
}

impl RequestId {
    /// An incoming id already checked to be visible ASCII: shares the request's bytes.
    pub(crate) fn from_header(value: HeaderValue) -> Self {
        Self(Text::Header(value))
    }

    /// A generated id: a slice of the thread's shared buffer, shared by every clone.
    pub(crate) fn generated(hex: [u8; 32]) -> Self {
        Self(Text::owned(hex))
    }
}

impl TraceId {
    /// The id of `hex` (32 lowercase hex digits), kept in place.
    #[cfg(feature = "trace")]
    pub(crate) fn from_hex(hex: [u8; 32]) -> Self {
        debug_assert!(hex.iter().all(u8::is_ascii_hexdigit));
        Self(Text::Hex(hex))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_and_hash_by_their_text_whatever_they_are_kept_as() {
        use std::collections::HashSet;
        let a = RequestId::new(String::from("abc"));
        let b = RequestId::from_header(HeaderValue::from_static("abc"));
        assert_eq!(a, b);
        let set: HashSet<_> = [a, b].into_iter().collect();
        assert_eq!(set.len(), 1);
        let odd = RequestId::new("ünïcode id");
        assert_eq!(odd.as_str(), "ünïcode id");
        assert_eq!(odd.header_value(), None);
        assert_eq!(format!("{odd:?}"), "RequestId(\"ünïcode id\")");
        let g = RequestId::generated(*b"0123456789abcdef0123456789abcdef");
        assert_eq!(g.as_str(), "0123456789abcdef0123456789abcdef");
        assert_eq!(g.header_value().unwrap(), g.as_str());
    }

    #[cfg(feature = "trace")]
    #[test]
    fn a_trace_id_kept_in_place_reads_and_compares_like_any_other() {
        let hex = *b"4bf92f3577b34da6a3ce929d0e0e4736";
        let kept = TraceId::from_hex(hex);
        assert_eq!(kept.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            kept.header_value().unwrap(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(kept, TraceId::new("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(
            format!("{kept:?}"),
            "TraceId(\"4bf92f3577b34da6a3ce929d0e0e4736\")"
        );
    }
}
