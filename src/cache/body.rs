//! The cache's response body: the crate's one replaceable body.

/// The response body of [`Cache`](super::Cache): stored (or buffered) bytes, or the origin's body
/// streamed through when it was not buffered (not storable, or larger than the limit — then the
/// bytes read so far come first). It is [`ResponseBody`](crate::response::ResponseBody), the body every
/// layer that may replace the inner body uses.
///
/// ```
/// use bytes::Bytes;
/// use http_body::Body;
/// use protothrive::cache::CacheBody;
///
/// let body: CacheBody<http_body_util::Empty<Bytes>> = CacheBody::full(Bytes::from("hello"));
/// assert_eq!(body.size_hint().exact(), Some(5));
/// ```
pub type CacheBody<B> = crate::response::ResponseBody<B>;
