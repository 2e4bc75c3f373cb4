//! Configuration without code: settings from the environment and a TOML file, and the stack they
//! describe.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::{Stack, StackBuilder};
use crate::error::ConfigError;
#[cfg(feature = "rate-limit")]
use crate::rate_limit::QuotaList;

/// Settings by name, from a TOML file and the environment: `{PREFIX}{NAME}` variables (the
/// environment wins), the file named by `{PREFIX}CONFIG` if set. Names are lowercase
/// (`jwt_leeway`, `cors_origins`); in the file, a list may be an array or a comma-separated
/// string. Every parse error names the setting and the bad value.
///
/// ```
/// use protothrive::stack::Settings;
///
/// let s = Settings::from_vars("APP_", [("APP_JWT_LEEWAY", "30"), ("APP_CORS_ORIGINS", "https://a.example, https://b.example"), ("PATH", "/bin")])?;
/// assert_eq!(s.parse::<u64>("jwt_leeway")?, Some(30));
/// assert_eq!(s.list("cors_origins"), ["https://a.example", "https://b.example"]);
/// assert_eq!(s.get("path"), None, "only the prefix's variables");
///
/// let s = Settings::from_vars("APP_", [("APP_JWT_LEEWAY", "soon")])?;
/// let err = s.parse::<u64>("jwt_leeway").unwrap_err();
/// assert!(err.message().contains("APP_JWT_LEEWAY") && err.message().contains("`soon`"));
/// # Ok::<(), protothrive::error::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct Settings {
    prefix: String,
    values: BTreeMap<String, String>,
}

/// Names whose values are never printed.
fn secret(name: &str) -> bool {
    ["secret", "password", "token", "key"]
        .iter()
        .any(|w| name.contains(w))
        || name.ends_with("_url")
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.values {
            if secret(k) {
                m.entry(k, &"<redacted>");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

impl Settings {
    /// The process environment, over the TOML file named by `{prefix}CONFIG` if set.
    ///
    /// # Errors
    /// The file cannot be read or is not TOML.
    pub fn from_env(prefix: &str) -> Result<Self, ConfigError> {
        Self::from_vars(prefix, std::env::vars())
    }

    /// Like [`from_env`](Self::from_env), from the given variables (tests pass their own).
    ///
    /// # Errors
    /// The file named by `{prefix}CONFIG` cannot be read or is not TOML.
    pub fn from_vars<I, K, V>(prefix: &str, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut env = BTreeMap::new();
        for (k, v) in vars {
            if let Some(name) = k.as_ref().strip_prefix(prefix) {
                env.insert(name.to_ascii_lowercase(), v.as_ref().trim().to_owned());
            }
        }
        let mut settings = match env.get("config") {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(format!("{prefix}CONFIG: cannot read `{path}`: {e}"))
                })?;
                Self::from_toml(prefix, &text).map_err(|e| {
                    ConfigError::new(format!("{prefix}CONFIG `{path}`: {}", e.message()))
                })?
            }
            None => Self {
                prefix: prefix.to_owned(),
                values: BTreeMap::new(),
            },
        };
        settings.values.extend(env);
        settings.values.retain(|_, v| !v.is_empty());
        Ok(settings)
    }

    /// Settings from TOML text: top-level keys, strings, numbers, booleans, or arrays of them.
    ///
    /// ```
    /// use protothrive::stack::Settings;
    /// let s = Settings::from_toml("APP_", "jwt_leeway = 30\ncors_origins = [\"https://a.example\"]")?;
    /// assert_eq!(s.get("jwt_leeway"), Some("30"));
    /// assert_eq!(s.list("cors_origins"), ["https://a.example"]);
    /// let err = Settings::from_toml("APP_", "[table]\nx = 1").unwrap_err();
    /// assert_eq!(err.message(), "`table`: nested arrays and tables are not settings");
    /// # Ok::<(), protothrive::error::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// Not TOML, or a value that is a table.
    #[cfg(feature = "config")]
    pub fn from_toml(prefix: &str, text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| ConfigError::new(format!("not TOML: {}", e.message())))?;
        let scalar = |k: &str, v: &toml::Value| -> Result<String, ConfigError> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                toml::Value::Boolean(b) => Ok(b.to_string()),
                toml::Value::Datetime(d) => Ok(d.to_string()),
                toml::Value::Array(_) | toml::Value::Table(_) => Err(ConfigError::new(format!(
                    "`{k}`: nested arrays and tables are not settings"
                ))),
            }
        };
        let mut values = BTreeMap::new();
        for (k, v) in &table {
            let text = match v {
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| scalar(k, i))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                other => scalar(k, other)?,
            };
            values.insert(k.to_ascii_lowercase(), text.trim().to_owned());
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            values,
        })
    }

    /// Without the `config` feature there is no TOML parser: a file is refused.
    ///
    /// # Errors
    /// Always.
    #[cfg(not(feature = "config"))]
    pub fn from_toml(prefix: &str, _text: &str) -> Result<Self, ConfigError> {
        Err(ConfigError::new(format!(
            "{prefix}CONFIG: reading a TOML file needs the `config` feature of protothrive"
        )))
    }

    /// The value of `name`, if set and not empty.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `name` parsed as `T`.
    ///
    /// # Errors
    /// The value does not parse; the message names the variable and the value (a secret's value
    /// is not repeated).
    pub fn parse<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.get(name)
            .map(|v| {
                v.parse().map_err(|e: T::Err| {
                    let shown = if secret(name) { "<redacted>" } else { v };
                    let e = e.to_string();
                    let e = e.strip_prefix("configuration: ").unwrap_or(&e);
                    ConfigError::new(format!("{}: `{shown}`: {e}", self.variable(name)))
                })
            })
            .transpose()
    }

    /// The value of `name` as a comma-separated list (empty items dropped).
    #[must_use]
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The environment variable of `name` (`jwt_leeway` → `APP_JWT_LEEWAY`), for messages.
    #[must_use]
    pub fn variable(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name.to_ascii_uppercase())
    }
}

/// What the stack reads from [`Settings`], by the names the ProtoThrive API uses:
///
/// | setting | meaning |
/// |---|---|
/// | `trusted_proxies` | CIDRs whose forwarding headers are believed |
/// | `cors_origins` | exact allowed origins (CORS with credentials); none: no CORS layer |
/// | `jwt_secret` | HS256 key of accepted tokens |
/// | `jwt_issuer`, `jwt_audience` | required `iss` and `aud` |
/// | `jwt_leeway` | seconds of clock-skew leeway (default 60) |
/// | `jwks_url` | also accept tokens signed by this JWKS's keys (feature `jwks`) |
/// | `rate_limits` | a `QuotaList`: `ip` by client address, `user` by subject, `api_key` by API key; other names are the application's |
/// | `max_body_bytes` | the body limit (default 1 MiB) |
/// | `realm` | the `WWW-Authenticate` realm |
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct StackConfig {
    /// `trusted_proxies`.
    pub trusted_proxies: Vec<String>,
    /// `cors_origins`.
    pub cors_origins: Vec<String>,
    /// `jwt_secret` (never printed).
    pub jwt_secret: Option<String>,
    /// `jwt_issuer`.
    pub jwt_issuer: Option<String>,
    /// `jwt_audience`.
    pub jwt_audience: Option<String>,
    /// `jwt_leeway`, seconds.
    pub jwt_leeway: Option<u64>,
    /// `jwks_url`.
    pub jwks_url: Option<String>,
    /// `rate_limits`.
    #[cfg(feature = "rate-limit")]
    pub rate_limits: QuotaList,
    /// `max_body_bytes`.
    pub max_body_bytes: Option<usize>,
    /// `realm`.
    pub realm: Option<String>,
}

impl fmt::Debug for StackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackConfig")
            .field("trusted_proxies", &self.trusted_proxies)
            .field("cors_origins", &self.cors_origins)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_leeway", &self.jwt_leeway)
            .field("jwks_url", &self.jwks_url.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The limit names the stack applies itself; others in `rate_limits` are the application's.
pub const STACK_LIMITS: [&str; 3] = ["ip", "user", "api_key"];

impl StackConfig {
    /// Reads the stack's settings.
    ///
    /// ```
    /// use protothrive::stack::{Settings, StackConfig};
    /// let s = Settings::from_vars("APP_", [("APP_RATE_LIMITS", "ip=60/min burst 10, login=10 per 5 min")])?;
    /// let c = StackConfig::from_settings(&s)?;
    /// assert_eq!(c.rate_limits.get("login").unwrap().count(), 10);
    ///
    /// let s = Settings::from_vars("APP_", [("APP_RATE_LIMITS", "ip=lots")])?;
    /// let err = StackConfig::from_settings(&s).unwrap_err();
    /// assert!(err.message().starts_with("APP_RATE_LIMITS: `ip=lots`"), "{err}");
    /// # Ok::<(), protothrive::error::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// A value that does not parse, named with its variable.
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            trusted_proxies: s.list("trusted_proxies"),
            cors_origins: s.list("cors_origins"),
            jwt_secret: s.get("jwt_secret").map(str::to_owned),
            jwt_issuer: s.get("jwt_issuer").map(str::to_owned),
            jwt_audience: s.get("jwt_audience").map(str::to_owned),
            jwt_leeway: s.parse("jwt_leeway")?,
            jwks_url: s.get("jwks_url").map(str::to_owned),
            #[cfg(feature = "rate-limit")]
            rate_limits: s.parse("rate_limits")?.unwrap_or_default(),
            max_body_bytes: s.parse("max_body_bytes")?,
            realm: s.get("realm").map(str::to_owned),
        })
    }
}

impl Stack {
    /// A [`StackBuilder`] configured from `config`: client IP with the trusted proxies, request
    /// ids, CORS with credentials for the listed origins, the body limit, HS256 auth (optional:
    /// routes require it) when a secret or JWKS is set, and the `ip`, `user` and `api_key`
    /// limits. The application adds what is its own (versions, route limits, the cache) and
    /// builds it.
    ///
    /// ```
    /// use protothrive::stack::{Settings, Stack, StackConfig};
    /// let s = Settings::from_vars("APP_", [
    ///     ("APP_JWT_SECRET", "a secret of at least thirty-two bytes!"),
    ///     ("APP_JWT_ISSUER", "me"),
    ///     ("APP_JWT_AUDIENCE", "us"),
    ///     ("APP_CORS_ORIGINS", "https://app.example"),
    ///     ("APP_RATE_LIMITS", "ip=60/min burst 10, user=100/min"),
    /// ])?;
    /// let stack = Stack::from_config(&StackConfig::from_settings(&s)?)?.build()?;
    /// assert!(stack.authenticator().is_some());
    /// assert!(stack.cors_allowed_headers().iter().any(|h| h == "authorization"));
    /// # Ok::<(), protothrive::error::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// A bad CIDR, key or quota, or a setting that needs a feature the crate was built without.
    pub fn from_config(config: &StackConfig) -> Result<StackBuilder, ConfigError> {
        #[allow(unused_mut)]
        let mut b = Stack::builder();
        if let Some(realm) = &config.realm {
            b = b.realm(realm.clone());
        }
        #[cfg(feature = "client-ip")]
        {
            b = b.trusted_proxies(config.trusted_proxies.iter());
        }
        #[cfg(not(feature = "client-ip"))]
        if !config.trusted_proxies.is_empty() {
            return Err(missing("trusted_proxies", "client-ip"));
        }
        if !config.cors_origins.is_empty() {
            #[cfg(feature = "cors")]
            {
                b = b.cors(
                    crate::cors::CorsLayer::builder()
                        .allow_origin(crate::cors::AllowOrigin::list(&config.cors_origins))
                        .allow_credentials(true)
                        .allow_methods([
                            http::Method::GET,
                            http::Method::HEAD,
                            http::Method::POST,
                            http::Method::PUT,
                            http::Method::PATCH,
                            http::Method::DELETE,
                        ]),
                );
            }
            #[cfg(not(feature = "cors"))]
            return Err(missing("cors_origins", "cors"));
        }
        if let Some(max) = config.max_body_bytes {
            #[cfg(feature = "gateway")]
            {
                b = b.body_limits(crate::gateway::RequestLimitsLayer::new().max_body_bytes(max));
            }
            #[cfg(not(feature = "gateway"))]
            {
                let _ = max;
                return Err(missing("max_body_bytes", "gateway"));
            }
        }
        if config.jwt_secret.is_some() || config.jwks_url.is_some() {
            #[cfg(feature = "auth")]
            {
                b = b.optional_auth(authenticator(config)?);
            }
            #[cfg(not(feature = "auth"))]
            return Err(missing("jwt_secret", "auth"));
        }
        #[cfg(feature = "rate-limit")]
        {
            use crate::rate_limit::{KeyBy, Limit};
            let l = &config.rate_limits;
            if let Some(q) = l.get("ip") {
                b = b.limit_by_client(Limit::new("ip", q).by(KeyBy::ClientIpV6Net64));
            }
            if let Some(q) = l.get("user") {
                b = b.limit_by_principal(Limit::new("user", q).by(KeyBy::JwtSubject));
            }
            if let Some(q) = l.get("api_key") {
                b = b.limit_by_principal(Limit::new("api_key", q).by(KeyBy::ApiKey));
            }
        }
        Ok(b)
    }
}

#[allow(dead_code)]
fn missing(setting: &str, feature: &str) -> ConfigError {
    ConfigError::new(format!(
        "`{setting}` is set, but protothrive was built without the `{feature}` feature"
    ))
}

#[cfg(feature = "auth")]
fn authenticator(config: &StackConfig) -> Result<crate::auth::AuthenticatorBuilder, ConfigError> {
    use crate::auth::{Algorithm, Authenticator, VerifyingKey};
    let mut a = Authenticator::builder();
    if let Some(secret) = &config.jwt_secret {
        a = a.key(VerifyingKey::hmac(Algorithm::HS256, secret.as_bytes())?);
    }
    if let Some(iss) = &config.jwt_issuer {
        a = a.issuer(iss.clone());
    }
    if let Some(aud) = &config.jwt_audience {
        a = a.audience(aud.clone());
    }
    a = a.leeway(std::time::Duration::from_secs(
        config.jwt_leeway.unwrap_or(60),
    ));
    if let Some(url) = &config.jwks_url {
        #[cfg(feature = "jwks")]
        {
            let fetcher = crate::auth::HttpJwksFetcher::new(url)?;
            a = a.jwks(
                crate::auth::Jwks::builder(fetcher)
                    .default_rsa_algorithm(Algorithm::RS256)
                    .build(),
            );
        }
        #[cfg(not(feature = "jwks"))]
        {
            let _ = url;
            return Err(missing("jwks_url", "jwks"));
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_over_the_file_and_secrets_are_never_printed() {
        let dir = std::env::temp_dir().join(format!("pt-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("app.toml");
        std::fs::write(
            &file,
            "jwt_leeway = 10\njwt_secret = \"file-secret\"\ntrusted_proxies = [\"10.0.0.0/8\", \"fd00::/8\"]\n",
        )
        .unwrap();
        let s = Settings::from_vars(
            "APP_",
            [
                ("APP_CONFIG", file.to_str().unwrap()),
                ("APP_JWT_LEEWAY", "20"),
            ],
        )
        .unwrap();
        assert_eq!(s.parse::<u64>("jwt_leeway").unwrap(), Some(20));
        assert_eq!(s.list("trusted_proxies"), ["10.0.0.0/8", "fd00::/8"]);
        let shown = format!("{s:?}");
        assert!(!shown.contains("file-secret"), "{shown}");
        let c = StackConfig::from_settings(&s).unwrap();
        assert!(!format!("{c:?}").contains("file-secret"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            ("APP_JWT_LEEWAY", "-1", "APP_JWT_LEEWAY: `-1`"),
            ("APP_MAX_BODY_BYTES", "1MB", "APP_MAX_BODY_BYTES: `1MB`"),
            (
                "APP_RATE_LIMITS",
                "ip=1/fortnight",
                "APP_RATE_LIMITS: `ip=1/fortnight`",
            ),
        ];
        for (k, v, needle) in cases {
            let s = Settings::from_vars("APP_", [(k, v)]).unwrap();
            let err = StackConfig::from_settings(&s).unwrap_err();
            assert!(err.message().starts_with(needle), "{k}={v}: {err}");
        }
        let s = Settings::from_vars("APP_", [("APP_TRUSTED_PROXIES", "10.0.0.0/33")]).unwrap();
        let err = Stack::from_config(&StackConfig::from_settings(&s).unwrap())
            .and_then(StackBuilder::build)
            .unwrap_err();
        assert!(err.message().contains("10.0.0.0/33"), "{err}");
        let err =
            Settings::from_vars("APP_", [("APP_CONFIG", "/nonexistent/app.toml")]).unwrap_err();
        assert!(err.message().contains("/nonexistent/app.toml"), "{err}");
    }
}
