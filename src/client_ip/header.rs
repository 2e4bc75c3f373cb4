use std::fmt;

/// Which forwarding header the trusted proxies write, and so which one the walk believes.
///
/// Pick the header your proxies *set or append to*. A header that no trusted proxy touches passes
/// through from the client unchanged, and the walk would believe whatever the client wrote in it.
///
/// ```
/// use protothrive::client_ip::ForwardingHeader;
/// assert_eq!(ForwardingHeader::default(), ForwardingHeader::XForwardedFor);
/// assert_eq!(ForwardingHeader::Forwarded.to_string(), "Forwarded");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardingHeader {
    /// `X-Forwarded-For`: comma-separated addresses, the de-facto standard that nginx, HAProxy,
    /// Envoy, AWS ALB and most CDNs append to. The default.
    #[default]
    XForwardedFor,
    /// `Forwarded` ([RFC 7239]): the `for=` parameter of each element.
    ///
    /// [RFC 7239]: https://www.rfc-editor.org/rfc/rfc7239#section-4
    Forwarded,
    /// `Forwarded` when the request carries one, `X-Forwarded-For` otherwise.
    ///
    /// **Security:** use this only when *every* trusted proxy writes `Forwarded` (or strips a
    /// client's). If one of them only appends `X-Forwarded-For`, a client sends its own
    /// `Forwarded: for=198.51.100.7`, the proxy passes it along untouched, and the walk believes
    /// it: the client chooses its address.
    Both,
}

impl fmt::Display for ForwardingHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::XForwardedFor => "X-Forwarded-For",
            Self::Forwarded => "Forwarded",
            Self::Both => "Forwarded, then X-Forwarded-For",
        })
    }
}
