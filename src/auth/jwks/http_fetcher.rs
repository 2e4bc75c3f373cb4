use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use super::{FetchJwks, JwksError};
use crate::auth::ConfigError;
use crate::auth::revocation::BoxFuture;

/// The largest key-set or discovery document read, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Fetches a JWKS over HTTPS (plain HTTP only to loopback addresses, for local identity providers
/// and tests), with a timeout and a size cap.
///
/// ```
/// use protothrive::auth::HttpJwksFetcher;
/// let _idp = HttpJwksFetcher::new("https://idp.example.com/.well-known/jwks.json")?;
/// let _local = HttpJwksFetcher::new("http://127.0.0.1:8080/jwks")?;
/// // Keys over plain HTTP from the network could be swapped in transit: refused.
/// let err = HttpJwksFetcher::new("http://idp.example.com/jwks").err().unwrap();
/// assert_eq!(
///     err.message(),
///     "the JWKS URL `http://idp.example.com/jwks` must be https \
///      (plain http is allowed only to loopback)"
/// );
/// # Ok::<(), protothrive::auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct HttpJwksFetcher {
    url: reqwest::Url,
    client: reqwest::Client,
}

impl fmt::Debug for HttpJwksFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpJwksFetcher")
            .field("url", &self.url.as_str())
            .finish()
    }
}

fn check_url(url: &str) -> Result<reqwest::Url, ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ConfigError::new(format!("the JWKS URL `{url}` is invalid: {e}")))?;
    let host = parsed.host_str().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(ConfigError::new(format!(
            "the JWKS URL `{url}` must be https (plain http is allowed only to loopback)"
        ))),
    }
}

fn client() -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(3))
        // A redirect may only go where a configured URL could: to https, or plain http to
        // loopback. Plain http on the network would let anyone on the path swap the keys.
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= 3 {
                attempt.error("too many redirects")
            } else if check_url(attempt.url().as_str()).is_err() {
                attempt.error("redirected to plain http off loopback")
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| ConfigError::new(format!("cannot build the HTTP client: {e}")))
}

async fn get_bounded(client: &reqwest::Client, url: reqwest::Url) -> Result<Bytes, JwksError> {
    let mut res = client
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| JwksError::new(format!("request failed: {e}")))?;
    if !res.status().is_success() {
        return Err(JwksError::new(format!("answered {}", res.status())));
    }
    if res
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(JwksError::new("the document is too large"));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| JwksError::new(format!("reading the body failed: {e}")))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(JwksError::new("the document is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

impl HttpJwksFetcher {
    /// A fetcher for the key set at `url`.
    ///
    /// # Errors
    /// When the URL is invalid, or is plain `http` to anything but loopback.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            url: check_url(url)?,
            client: client()?,
        })
    }

    /// Finds the key set of an OpenID Provider through discovery
    /// (`{issuer}/.well-known/openid-configuration`, OpenID Connect Discovery 1.0 §4). The document's
    /// `issuer` must equal `issuer` exactly (§4.3).
    ///
    /// # Errors
    /// When the document cannot be fetched, names another issuer, or has no usable `jwks_uri`.
    pub async fn discover(issuer: &str) -> Result<Self, JwksError> {
        check_url(issuer).map_err(|e| JwksError::new(e.message().to_owned()))?;
        let client = client().map_err(|e| JwksError::new(e.message().to_owned()))?;
        let well_known = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let url = reqwest::Url::parse(&well_known)
            .map_err(|e| JwksError::new(format!("bad discovery URL: {e}")))?;
        let doc = get_bounded(&client, url).await?;
        let value: Value = serde_json::from_slice(&doc)
            .map_err(|e| JwksError::new(format!("discovery document is not JSON: {e}")))?;
        if value.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(JwksError::new(
                "the discovery document names another issuer",
            ));
        }
        let jwks_uri = value
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| JwksError::new("the discovery document has no jwks_uri"))?;
        Ok(Self {
            url: check_url(jwks_uri).map_err(|e| JwksError::new(e.message().to_owned()))?,
            client,
        })
    }

    /// The key set's URL.
    #[must_use]
    pub fn url(&self) -> &str {
        self.url.as_str()
    }
}

impl FetchJwks for HttpJwksFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<Bytes, JwksError>> {
        Box::pin(get_bounded(&self.client, self.url.clone()))
    }
}
