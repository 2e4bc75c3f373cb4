use std::sync::Arc;
use std::time::Duration;

use http::header::{AUTHORIZATION, HeaderName, SET_COOKIE};
use http::{HeaderValue, Method};
use tower_layer::Layer;

use super::preflight::Config;
use super::{AllowOrigin, Cors};
use crate::error::ConfigError;

/// The response headers a browser lets a cross-origin page read by default, besides the
/// CORS-safelisted ones: the request id, the rate-limit headers and the versioning headers.
pub const DEFAULT_EXPOSE_HEADERS: [&str; 8] = [
    "x-request-id",
    "ratelimit",
    "ratelimit-policy",
    "retry-after",
    "api-version",
    "deprecation",
    "sunset",
    "link",
];

/// The default `Access-Control-Max-Age`: ten minutes.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(600);

/// Answers CORS preflights and adds CORS headers to responses; see the [module docs](super).
///
/// Built with [`CorsLayer::builder`]; cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
#[must_use]
pub struct CorsLayer {
    pub(crate) config: Arc<Config>,
}

impl CorsLayer {
    /// A builder: no origin allowed until [`allow_origin`](CorsLayerBuilder::allow_origin) is set.
    pub fn builder() -> CorsLayerBuilder {
        CorsLayerBuilder::default()
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cors {
            inner,
            config: self.config.clone(),
        }
    }
}

#[derive(Debug, Clone)]
enum Names {
    Any,
    List(Vec<String>),
}

impl Names {
    /// Adds names not yet listed (compared case-insensitively); `Any` already has them all.
    fn extend<I>(&mut self, names: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        if let Self::List(list) = self {
            for n in names {
                let n = n.as_ref().trim();
                if !list.iter().any(|h| h.eq_ignore_ascii_case(n)) {
                    list.push(n.to_ascii_lowercase());
                }
            }
        }
    }
}

/// Builds a [`CorsLayer`]; every mistake is reported by [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct CorsLayerBuilder {
    origins: Option<AllowOrigin>,
    credentials: bool,
    methods: Option<Vec<String>>,
    headers: Names,
    expose: Names,
    /// `expose` is [`DEFAULT_EXPOSE_HEADERS`] (and what `extend_expose_headers` added), not a
    /// list set by hand.
    expose_default: bool,
    max_age: Option<Duration>,
    private_network: bool,
}

impl Default for CorsLayerBuilder {
    fn default() -> Self {
        Self {
            origins: None,
            credentials: false,
            methods: Some(vec!["GET".into(), "HEAD".into(), "POST".into()]),
            headers: Names::List(Vec::new()),
            expose: Names::List(
                DEFAULT_EXPOSE_HEADERS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
            ),
            expose_default: true,
            max_age: Some(DEFAULT_MAX_AGE),
            private_network: false,
        }
    }
}

impl CorsLayerBuilder {
    /// The origins allowed to read responses (Fetch §3.2.5); an exact origin, a list, a pattern or
    /// a predicate — see [`AllowOrigin`].
    pub fn allow_origin(mut self, origins: impl Into<AllowOrigin>) -> Self {
        self.origins = Some(origins.into());
        self
    }

    /// Sends `Access-Control-Allow-Credentials: true` so pages may send cookies and read the
    /// answers (Fetch §3.2.5). Refused with any wildcard or a mirrored origin.
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    /// The methods a preflight may ask for (`Access-Control-Allow-Methods`); GET, HEAD and POST by
    /// default.
    pub fn allow_methods<I: IntoIterator<Item = Method>>(mut self, methods: I) -> Self {
        self.methods = Some(methods.into_iter().map(|m| m.as_str().to_owned()).collect());
        self
    }

    /// Any method (`Access-Control-Allow-Methods: *`); refused with credentials.
    pub fn allow_any_method(mut self) -> Self {
        self.methods = None;
        self
    }

    /// The request headers a preflight may ask for (`Access-Control-Allow-Headers`), such as
    /// `authorization` and `content-type`; none by default.
    pub fn allow_headers<I>(mut self, headers: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.headers = Names::List(headers.into_iter().map(|h| h.as_ref().to_owned()).collect());
        self
    }

    /// Any request header (`Access-Control-Allow-Headers: *`); refused with credentials.
    pub fn allow_any_header(mut self) -> Self {
        self.headers = Names::Any;
        self
    }

    /// The response headers pages may read (`Access-Control-Expose-Headers`), replacing
    /// [`DEFAULT_EXPOSE_HEADERS`]. `Set-Cookie` and `Authorization` are refused.
    pub fn expose_headers<I>(mut self, headers: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.expose = Names::List(headers.into_iter().map(|h| h.as_ref().to_owned()).collect());
        self.expose_default = false;
        self
    }

    /// Adds `headers` to the allowed request headers (kept once each; nothing changes after
    /// [`allow_any_header`](Self::allow_any_header)). The [`Stack`](crate::stack::Stack) adds those
    /// its layers read this way.
    ///
    /// ```
    /// use protothrive::cors::{AllowOrigin, CorsLayer};
    /// let layer = CorsLayer::builder()
    ///     .allow_origin(AllowOrigin::exact("https://a.example"))
    ///     .allow_headers(["content-type"])
    ///     .extend_allow_headers(["authorization", "Content-Type"])
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn extend_allow_headers<I>(mut self, headers: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.headers.extend(headers);
        self
    }

    /// Adds `headers` to the exposed response headers, as
    /// [`extend_allow_headers`](Self::extend_allow_headers) does for requests.
    pub fn extend_expose_headers<I>(mut self, headers: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.expose.extend(headers);
        self
    }

    /// Every response header (`Access-Control-Expose-Headers: *`); refused with credentials.
    pub fn expose_any_header(mut self) -> Self {
        self.expose = Names::Any;
        self.expose_default = false;
        self
    }

    /// The [`Stack`](crate::stack::Stack)'s list of what its layers write: it takes the place of
    /// [`DEFAULT_EXPOSE_HEADERS`] (made for a CORS layer alone, it names headers of layers the
    /// stack may not have), and is added to a list set by hand.
    pub(crate) fn stack_expose_headers(mut self, computed: &[String]) -> Self {
        if let (true, Names::List(list)) = (self.expose_default, &mut self.expose) {
            list.retain(|n| {
                !DEFAULT_EXPOSE_HEADERS
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(n))
            });
        }
        self.extend_expose_headers(computed)
    }

    /// How long a browser may cache a preflight answer (`Access-Control-Max-Age`, whole seconds;
    /// Chromium caps it at two hours). `None` sends no header.
    pub fn max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
        self
    }

    /// Answers Private Network Access preflights (`Access-Control-Request-Private-Network: true`)
    /// with `Access-Control-Allow-Private-Network: true`. Off by default.
    pub fn allow_private_network(mut self, allow: bool) -> Self {
        self.private_network = allow;
        self
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    ///
    /// No origins; a malformed origin or pattern; credentials with `*` origins, methods, headers or
    /// exposed headers, or with a mirrored origin; an invalid method or header name; `Set-Cookie`
    /// or `Authorization` among the exposed headers.
    pub fn build(self) -> Result<CorsLayer, ConfigError> {
        let origins = self.origins.ok_or_else(|| {
            ConfigError::new(
                "CORS: set allow_origin (an exact origin, a list, a pattern or a predicate)",
            )
        })?;
        if let Some(e) = origins.error() {
            return Err(ConfigError::new(format!("CORS: {e}")));
        }
        if self.credentials {
            let star = |n: &Names| match n {
                Names::Any => true,
                Names::List(l) => l.iter().any(|h| h.trim() == "*"),
            };
            let wildcard = if origins.is_unrestricted() {
                Some("an origin wildcard or a mirrored origin")
            } else if self
                .methods
                .as_ref()
                .is_none_or(|m| m.iter().any(|m| m == "*"))
            {
                Some("allow_any_method")
            } else if star(&self.headers) {
                Some("allow_any_header")
            } else if star(&self.expose) {
                Some("expose_any_header")
            } else {
                None
            };
            if let Some(w) = wildcard {
                return Err(ConfigError::new(format!(
                    "CORS: credentials cannot be combined with {w} (browsers refuse `*` with \
                     credentials, and a mirrored origin lets every site read every user's data); \
                     list exact values"
                )));
            }
        }
        let methods = match self.methods {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|m| {
                        Method::from_bytes(m.as_bytes())
                            .map_err(|_| ConfigError::new(format!("CORS: `{m}` is not a method")))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let methods_value = match &methods {
            None => HeaderValue::from_static("*"),
            Some(list) => join(list.iter().map(Method::as_str))?,
        };
        let headers = names(&self.headers)?;
        let headers_value = match &headers {
            None => Some(HeaderValue::from_static("*")),
            Some(list) if list.is_empty() => None,
            Some(list) => Some(join(list.iter().map(HeaderName::as_str))?),
        };
        let expose = names(&self.expose)?;
        let expose_value = match &expose {
            None => Some(HeaderValue::from_static("*")),
            Some(list) if list.is_empty() => None,
            Some(list) => {
                if let Some(bad) = list.iter().find(|h| {
                    **h == SET_COOKIE || **h == AUTHORIZATION || h.as_str() == "set-cookie2"
                }) {
                    return Err(ConfigError::new(format!(
                        "CORS: never expose `{bad}` to other origins; remove it from expose_headers"
                    )));
                }
                Some(join(list.iter().map(HeaderName::as_str))?)
            }
        };
        let max_age = self.max_age.map(|d| HeaderValue::from(d.as_secs()));
        Ok(CorsLayer {
            config: Arc::new(Config {
                origins,
                credentials: self.credentials,
                methods,
                methods_value,
                headers,
                headers_value,
                expose_value,
                max_age,
                private_network: self.private_network,
            }),
        })
    }
}

fn names(names: &Names) -> Result<Option<Vec<HeaderName>>, ConfigError> {
    match names {
        Names::Any => Ok(None),
        // A literal `*` in a list is the wildcard to browsers (without credentials).
        Names::List(list) if list.iter().any(|h| h.trim() == "*") => Ok(None),
        Names::List(list) => list
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.trim().as_bytes())
                    .map_err(|_| ConfigError::new(format!("CORS: `{h}` is not a header name")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
    }
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> Result<HeaderValue, ConfigError> {
    let text = items.collect::<Vec<_>>().join(", ");
    HeaderValue::from_str(&text)
        .map_err(|_| ConfigError::new(format!("CORS: `{text}` is not a header value")))
}
