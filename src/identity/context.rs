use http::Extensions;

use super::{ClientIp, CredentialSource, Principal};
use crate::error::{RequestId, TraceId};
#[cfg(feature = "trace")]
use crate::trace::TraceContext;

/// What the crate's layers learn about a request, in one request extension: the client address,
/// the request id, the trace id and trace context, the principal and where its credential came
/// from, the body limit.
///
/// Every [`Extensions::insert`] boxes its value and may grow the map, so the layers write these
/// into one shared value instead of one extension each (the first writer inserts it, the others
/// fill it in place). Read each value through its type's `of` accessor — [`ClientIp::of`],
/// [`RequestId::of`], [`TraceId::of`], [`Principal::of`], [`CredentialSource::of`],
/// `TraceContext::of` — which looks
/// here first and then for a standalone extension of that type, so a value an application or a
/// test inserts by itself (`extensions.insert(RequestId::new("r1"))`) is found just the same.
/// `extensions.get::<RequestId>()` (or `get::<ClientIp>()`) finds only the standalone ones.
///
/// ```
/// use protothrive::error::RequestId;
/// use protothrive::identity::RequestContext;
///
/// let mut ext = http::Extensions::new();
/// assert!(RequestContext::get(&ext).is_none());
/// ext.insert(RequestId::new("r1"));
/// assert_eq!(RequestId::of(&ext).unwrap().as_str(), "r1");
/// ```
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub(crate) client_ip: Option<ClientIp>,
    pub(crate) request_id: Option<RequestId>,
    pub(crate) trace_id: Option<TraceId>,
    #[cfg(feature = "trace")]
    pub(crate) trace: Option<TraceContext>,
    pub(crate) principal: Option<Principal>,
    pub(crate) source: Option<CredentialSource>,
    #[cfg_attr(not(feature = "gateway"), allow(dead_code))]
    pub(crate) body_limit: Option<usize>,
}

impl RequestContext {
    /// The context in `extensions`, when a layer has written one.
    #[must_use]
    pub fn get(extensions: &Extensions) -> Option<&Self> {
        extensions.get::<Self>()
    }

    /// The context in `extensions`, inserted empty when there is none yet (one box for every
    /// value the layers write).
    pub(crate) fn get_mut(extensions: &mut Extensions) -> &mut Self {
        extensions.get_or_insert_default::<Self>()
    }
}

/// `field` of the context in `ext`, else a standalone `T` extension.
fn of<'a, T: Clone + Send + Sync + 'static>(
    ext: &'a Extensions,
    field: impl FnOnce(&'a RequestContext) -> Option<&'a T>,
) -> Option<&'a T> {
    RequestContext::get(ext)
        .and_then(field)
        .or_else(|| ext.get::<T>())
}

impl RequestId {
    /// The request id in `extensions` (set by the request-id or trace layer, or inserted as a
    /// standalone extension).
    ///
    /// ```
    /// use protothrive::error::RequestId;
    /// let mut ext = http::Extensions::new();
    /// ext.insert(RequestId::new("r1"));
    /// assert_eq!(RequestId::of(&ext).map(RequestId::as_str), Some("r1"));
    /// ```
    #[must_use]
    pub fn of(extensions: &Extensions) -> Option<&Self> {
        of(extensions, |c| c.request_id.as_ref())
    }
}

impl TraceId {
    /// The trace id in `extensions` (set by the trace layer, or inserted as a standalone
    /// extension).
    ///
    /// ```
    /// use protothrive::error::TraceId;
    /// let mut ext = http::Extensions::new();
    /// ext.insert(TraceId::new("4bf92f3577b34da6a3ce929d0e0e4736"));
    /// assert_eq!(TraceId::of(&ext).unwrap().as_str().len(), 32);
    /// ```
    #[must_use]
    pub fn of(extensions: &Extensions) -> Option<&Self> {
        of(extensions, |c| c.trace_id.as_ref())
    }
}

#[cfg(feature = "trace")]
impl TraceContext {
    /// The trace context in `extensions` (set by the trace layer, or inserted as a standalone
    /// extension).
    ///
    /// ```
    /// use protothrive::trace::TraceContext;
    /// let mut ext = http::Extensions::new();
    /// ext.insert(TraceContext::root(true));
    /// assert!(TraceContext::of(&ext).unwrap().sampled());
    /// ```
    #[must_use]
    pub fn of(extensions: &Extensions) -> Option<&Self> {
        of(extensions, |c| c.trace.as_ref())
    }
}

impl Principal {
    /// The authenticated caller in `extensions` (set by the auth layer, or inserted as a
    /// standalone extension).
    ///
    /// ```
    /// use protothrive::identity::Principal;
    /// let mut ext = http::Extensions::new();
    /// ext.insert(Principal::builder("user-1").build());
    /// assert_eq!(Principal::of(&ext).unwrap().subject(), "user-1");
    /// ```
    #[must_use]
    pub fn of(extensions: &Extensions) -> Option<&Self> {
        of(extensions, |c| c.principal.as_ref())
    }
}

impl CredentialSource {
    /// Where the principal's credential came from (set by the auth layer, or inserted as a
    /// standalone extension).
    ///
    /// ```
    /// use protothrive::identity::CredentialSource;
    /// let mut ext = http::Extensions::new();
    /// ext.insert(CredentialSource::Cookie);
    /// assert_eq!(CredentialSource::of(&ext), Some(CredentialSource::Cookie));
    /// ```
    #[must_use]
    pub fn of(extensions: &Extensions) -> Option<Self> {
        of(extensions, |c| c.source.as_ref()).copied()
    }
}

impl ClientIp {
    /// The client address in `extensions` (set by the client-IP layer, or inserted as a
    /// standalone extension).
    ///
    /// ```
    /// use protothrive::identity::ClientIp;
    /// let mut ext = http::Extensions::new();
    /// ext.insert(ClientIp("192.0.2.1".parse().unwrap()));
    /// assert_eq!(ClientIp::of(&ext).unwrap().to_string(), "192.0.2.1");
    /// ```
    #[must_use]
    pub fn of(extensions: &Extensions) -> Option<Self> {
        of(extensions, |c| c.client_ip.as_ref()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_in_the_context_is_read_before_a_standalone_one() {
        let mut ext = Extensions::new();
        ext.insert(RequestId::new("standalone"));
        assert_eq!(RequestId::of(&ext).unwrap().as_str(), "standalone");
        RequestContext::get_mut(&mut ext).request_id = Some(RequestId::new("context"));
        assert_eq!(RequestId::of(&ext).unwrap().as_str(), "context");
        // A field the context leaves empty falls back to the standalone extension.
        ext.insert(TraceId::new("t1"));
        assert_eq!(TraceId::of(&ext).unwrap().as_str(), "t1");
        assert!(Principal::of(&ext).is_none());
        RequestContext::get_mut(&mut ext).source = Some(CredentialSource::Cookie);
        assert_eq!(CredentialSource::of(&ext), Some(CredentialSource::Cookie));
        ext.insert(ClientIp("192.0.2.1".parse().unwrap()));
        RequestContext::get_mut(&mut ext).client_ip = Some(ClientIp("192.0.2.2".parse().unwrap()));
        assert_eq!(ClientIp::of(&ext).unwrap().to_string(), "192.0.2.2");
    }
}
