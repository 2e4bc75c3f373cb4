/// Where a request's credential came from, as a request extension next to the
/// [`Principal`](super::Principal). A CSRF check applies only to [`CredentialSource::Cookie`].
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
