use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use http::header::{HeaderName, LINK};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use tower_layer::Layer;
use tower_service::Service;

use super::version::{self, ApiVersion, NegotiationError, VersionSource};
use crate::error::{ConfigError, Problem, code};
use crate::response::{self, Checked, ResponseBody, Stamp};

/// The `API-Version` header (request and response).
pub static API_VERSION: HeaderName = HeaderName::from_static("api-version");
static DEPRECATION: HeaderName = HeaderName::from_static("deprecation");
static SUNSET: HeaderName = HeaderName::from_static("sunset");

/// When a version was deprecated, when it goes away, and what replaces it.
///
/// ```
/// use protothrive::gateway::Deprecation;
/// let d = Deprecation::since(1_735_689_600).sunset(1_767_225_600).successor(2);
/// # let _ = d;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Deprecation {
    since: u64,
    sunset: Option<u64>,
    successor: Option<u16>,
}

impl Deprecation {
    /// Deprecated since `unix_seconds` (sent as `Deprecation: @<seconds>`, RFC 9745).
    pub fn since(unix_seconds: u64) -> Self {
        Self {
            since: unix_seconds,
            sunset: None,
            successor: None,
        }
    }

    /// Removed at `unix_seconds` (sent as an HTTP-date `Sunset`, RFC 8594).
    pub fn sunset(mut self, unix_seconds: u64) -> Self {
        self.sunset = Some(unix_seconds);
        self
    }

    /// The version that replaces it (sent as `Link: <...>; rel="successor-version"`, RFC 5829).
    pub fn successor(mut self, version: u16) -> Self {
        self.successor = Some(version);
        self
    }
}

#[derive(Debug)]
struct Entry {
    number: u16,
    name: HeaderValue,
    deprecation: Option<HeaderValue>,
    sunset: Option<HeaderValue>,
    successor: Option<u16>,
}

#[derive(Debug)]
struct Config {
    prefix: String,
    vendor: String,
    entries: Vec<Entry>,
    numbers: Vec<u16>,
    default: u16,
}

/// API version negotiation and deprecation headers; see the [module docs](super).
///
/// The inner service sees the path without its version segment (`/api/v2/roadmaps` →
/// `/api/roadmaps`) and the [`ApiVersion`](super::ApiVersion) in request extensions; every answer carries
/// `API-Version`, deprecated versions add `Deprecation`, `Sunset` and a `Link` to their successor,
/// and answers whose version came from a header add `Vary: API-Version, Accept` so caches keep
/// them apart.
///
/// ```
/// use protothrive::gateway::{Deprecation, VersionLayer};
/// let layer = VersionLayer::builder()
///     .prefix("/api")
///     .vendor("protothrive")
///     .deprecated_version(1, Deprecation::since(1_735_689_600).successor(2))
///     .version(2)
///     .default_version(1)
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), protothrive::error::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct VersionLayer {
    config: Arc<Config>,
}

/// Builds a [`VersionLayer`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct VersionLayerBuilder {
    prefix: Option<String>,
    vendor: Option<String>,
    versions: Vec<(u16, Option<Deprecation>)>,
    default: Option<u16>,
}

impl VersionLayer {
    /// Starts a configuration.
    pub fn builder() -> VersionLayerBuilder {
        VersionLayerBuilder::default()
    }
}

impl VersionLayerBuilder {
    /// The path prefix under which versions apply (default `/api`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The vendor of `application/vnd.{vendor}.v{N}+json` media types.
    pub fn vendor(mut self, vendor: impl Into<String>) -> Self {
        self.vendor = Some(vendor.into());
        self
    }

    /// A supported version.
    pub fn version(mut self, number: u16) -> Self {
        self.versions.push((number, None));
        self
    }

    /// A supported, deprecated version.
    pub fn deprecated_version(mut self, number: u16, deprecation: Deprecation) -> Self {
        self.versions.push((number, Some(deprecation)));
        self
    }

    /// The version of requests that name none (default: the lowest).
    pub fn default_version(mut self, number: u16) -> Self {
        self.default = Some(number);
        self
    }

    /// Checks and builds the layer.
    ///
    /// # Errors
    /// No versions; a version listed twice; a default or successor that is not listed; a prefix
    /// that does not start with `/` or ends with one.
    pub fn build(self) -> Result<VersionLayer, ConfigError> {
        let prefix = self.prefix.unwrap_or_else(|| "/api".to_owned());
        if !prefix.starts_with('/') || (prefix.len() > 1 && prefix.ends_with('/')) {
            return Err(ConfigError::new(format!(
                "the version prefix `{prefix}` must start with `/` and not end with one"
            )));
        }
        let numbers: Vec<u16> = self.versions.iter().map(|(n, _)| *n).collect();
        if numbers.is_empty() {
            return Err(ConfigError::new(
                "add at least one version with .version(n)",
            ));
        }
        for (i, n) in numbers.iter().enumerate() {
            if numbers[..i].contains(n) {
                return Err(ConfigError::new(format!("version {n} is listed twice")));
            }
        }
        let default = self
            .default
            .unwrap_or_else(|| numbers.iter().copied().min().unwrap_or(1));
        if !numbers.contains(&default) {
            return Err(ConfigError::new(format!(
                "the default version {default} is not one of the supported versions"
            )));
        }
        let mut entries = Vec::new();
        for (number, dep) in self.versions {
            if let Some(s) = dep.and_then(|d| d.successor)
                && !numbers.contains(&s)
            {
                return Err(ConfigError::new(format!(
                    "the successor of version {number}, {s}, is not a supported version"
                )));
            }
            let name = HeaderValue::from_str(&ApiVersion(number).to_string())
                .map_err(|_| ConfigError::new("invalid version name"))?;
            entries.push(Entry {
                number,
                name,
                deprecation: dep.map(|d| header_value(&format!("@{}", d.since))),
                sunset: dep.and_then(|d| d.sunset).map(|s| {
                    header_value(&httpdate::fmt_http_date(
                        UNIX_EPOCH + Duration::from_secs(s),
                    ))
                }),
                successor: dep.and_then(|d| d.successor),
            });
        }
        Ok(VersionLayer {
            config: Arc::new(Config {
                prefix,
                vendor: self
                    .vendor
                    .unwrap_or_else(|| "api".to_owned())
                    .to_ascii_lowercase(),
                entries,
                numbers,
                default,
            }),
        })
    }
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

impl<S> Layer<S> for VersionLayer {
    type Service = Versioning<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Versioning {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`VersionLayer`].
#[derive(Debug, Clone)]
pub struct Versioning<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Versioning<S> {
    crate::macros::inner_service_accessors!();
}

/// What version negotiation adds to the response (`API-Version`, deprecation headers, `Vary`).
#[derive(Debug)]
pub struct VersionStamp {
    config: Arc<Config>,
    index: usize,
    vary: bool,
    link: Option<HeaderValue>,
}

fn rewrite(uri: &Uri, path: &str) -> Option<Uri> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).ok()?);
    Uri::from_parts(parts).ok()
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Versioning<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let decision = check(&self.config, &mut req);
        ResponseFuture::checked(decision, || self.inner.call(req))
    }
}

impl VersionLayer {
    /// This layer's decision on `req`, for a service that runs several layers' checks.
    pub(crate) fn check<B>(&self, req: &mut Request<B>) -> Checked<VersionStamp> {
        check(&self.config, req)
    }
}

/// The negotiated version put on the request, or the 404 of an unsupported one.
fn check<B>(config: &Arc<Config>, req: &mut Request<B>) -> Checked<VersionStamp> {
    let c = config;
    let header = req
        .headers()
        .get(&API_VERSION)
        .and_then(|v| v.to_str().ok());
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let path = req.uri().path();
    let outcome = version::negotiate(
        &c.prefix, path, header, accept, &c.vendor, &c.numbers, c.default,
    );
    let negotiated = match outcome {
        None => return Checked::Pass(None),
        Some(Err(NegotiationError::Unsupported(named))) => {
            let supported: Vec<String> = c
                .numbers
                .iter()
                .map(|&n| ApiVersion(n).to_string())
                .collect();
            let problem = Problem::new(StatusCode::NOT_FOUND, code::ROUTE_NOT_FOUND)
                .with_detail(format!(
                    "API version `{}` is not supported; use one of: {}.",
                    named.chars().take(16).collect::<String>(),
                    supported.join(", ")
                ))
                .with_member("supported_versions", supported);
            return Checked::Answer(problem.render_for(req.extensions()));
        }
        Some(Ok(n)) => n,
    };
    let index = c
        .entries
        .iter()
        .position(|e| e.number == negotiated.version.0)
        .unwrap_or(0);
    let entry = &c.entries[index];
    let link = entry.successor.map(|s| {
        let tail = &negotiated.unversioned_path[c.prefix.len()..];
        header_value(&format!(
            "<{}/v{s}{tail}>; rel=\"successor-version\"",
            c.prefix
        ))
    });
    let vary = negotiated.source != VersionSource::Path;
    let new_uri = match &negotiated.unversioned_path {
        std::borrow::Cow::Owned(p) => rewrite(req.uri(), p),
        std::borrow::Cow::Borrowed(_) => None,
    };
    let (version, source) = (negotiated.version, negotiated.source);
    if let Some(uri) = new_uri {
        *req.uri_mut() = uri;
    }
    req.extensions_mut().insert(version);
    req.extensions_mut().insert(source);
    // The negotiated version as a request header too: a cache inside this layer keys on it
    // with `Vary: API-Version`, whichever way the client chose (the path is unversioned now).
    req.headers_mut()
        .insert(API_VERSION.clone(), entry.name.clone());
    let stamp = VersionStamp {
        config: config.clone(),
        index,
        vary,
        link,
    };
    Checked::Pass(Some(stamp))
}

impl Stamp for VersionStamp {
    fn stamp(self, _status: StatusCode, h: &mut HeaderMap) {
        let entry = &self.config.entries[self.index];
        h.insert(API_VERSION.clone(), entry.name.clone());
        if let Some(v) = &entry.deprecation {
            h.insert(DEPRECATION.clone(), v.clone());
        }
        if let Some(v) = &entry.sunset {
            h.insert(SUNSET.clone(), v.clone());
        }
        if let Some(link) = self.link {
            h.append(LINK, link);
        }
        if self.vary {
            crate::headers::append_vary(h, &["API-Version", "Accept"]);
        }
    }
}

/// Response future of [`Versioning`].
pub type ResponseFuture<F, B, E> = response::ResponseFuture<F, B, E, VersionStamp>;
