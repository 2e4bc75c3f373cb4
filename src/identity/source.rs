/// Where a request's credential came from, kept next to the
/// [`Principal`](super::Principal) in the request's [`RequestContext`](super::RequestContext)
/// (read it with [`CredentialSource::of`]). A CSRF check applies only to
/// [`CredentialSource::Cookie`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialSource {
    /// The `Authorization` header.
    AuthorizationHeader,
    /// The `X-API-Key` header.
    ApiKeyHeader,
    /// A cookie (a browser sends it by itself: state-changing requests need CSRF protection).
    Cookie,
    /// A query parameter.
    Query,
}
