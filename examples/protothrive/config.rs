//! Configuration from the environment, or a TOML file named by `PROTOTHRIVE_CONFIG` with the same
//! keys (lower-case, without the `PROTOTHRIVE_` prefix). The environment wins over the file.

use std::collections::HashMap;
use std::net::SocketAddr;

use protothrive::rate_limit::Quota;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Staging,
    Production,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub env: Environment,
    pub database_url: String,
    pub redis_url: Option<String>,
    /// What the rate limiter does when Redis is down or slow (`PROTOTHRIVE_RATE_LIMIT_ON_REDIS_ERROR`:
    /// `local` (default), `open` or `closed`).
    pub rate_limit_on_redis_error: protothrive::rate_limit::OnStoreError,
    /// `None`: generate one per start (development only).
    pub jwt_secret: Option<String>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub jwks_url: Option<String>,
    pub jwt_leeway: u64,
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<String>,
    pub agent_url: Option<String>,
    pub rate_limits: Option<String>,
    /// The quotas, from the contract's defaults and `PROTOTHRIVE_RATE_LIMITS`.
    pub limits: RateLimits,
    pub demo_password: Option<String>,
    /// Simulated agent: added latency and failure rate (load and fault tests set them).
    pub agent_latency_ms: u64,
    pub agent_failure_rate: f64,
    pub metrics_token: Option<String>,
    pub shutdown_grace_secs: u64,
}

const DEV_ORIGINS: &str =
    "http://localhost:3000,http://localhost:5173,http://127.0.0.1:3000,http://127.0.0.1:5173";

/// A configuration mistake: the process refuses to start and says why.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The API's rate limits: the contract's defaults, each overridable by
/// `PROTOTHRIVE_RATE_LIMITS=name=count/period:burst,...` (names: ip, user, api_key, login,
/// register).
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Per client IP, before authentication.
    pub ip: Quota,
    /// Per user, after authentication.
    pub user: Quota,
    /// Per API key, after authentication.
    pub api_key: Quota,
    /// `POST /api/auth/login`, per client IP.
    pub login: Quota,
    /// `POST /api/auth/register`, per client IP.
    pub register: Quota,
}

impl RateLimits {
    fn parse(text: Option<&str>) -> Result<Self, ConfigError> {
        let q = |s: &str| s.parse::<Quota>().map_err(|e| ConfigError(e.to_string()));
        let mut limits = Self {
            ip: q("60/min burst 10")?,
            user: q("100/min burst 10")?,
            api_key: q("200/min")?,
            login: q("10 per 5 min")?,
            register: q("5 per 15 min")?,
        };
        for item in text
            .unwrap_or("")
            .split(',')
            .filter(|i| !i.trim().is_empty())
        {
            let bad = |why: String| {
                ConfigError(format!(
                    "PROTOTHRIVE_RATE_LIMITS item `{}`: {why} (write name=count/period:burst, e.g. ip=60/60s:10)",
                    item.trim()
                ))
            };
            let (name, quota) = item.split_once('=').ok_or_else(|| bad("no `=`".into()))?;
            let quota: Quota = quota
                .parse()
                .map_err(|e: protothrive::error::ConfigError| bad(e.message().into()))?;
            match name.trim() {
                "ip" => limits.ip = quota,
                "user" => limits.user = quota,
                "api_key" => limits.api_key = quota,
                "login" => limits.login = quota,
                "register" => limits.register = quota,
                other => {
                    return Err(bad(format!(
                        "unknown limit `{other}`; use ip, user, api_key, login or register"
                    )));
                }
            }
        }
        Ok(limits)
    }
}

impl Config {
    /// Reads the process environment (and the optional TOML file).
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Reads configuration from a map of `PROTOTHRIVE_*` variables (tests build one directly).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut file: HashMap<String, String> = HashMap::new();
        if let Some(path) = vars.get("PROTOTHRIVE_CONFIG") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("cannot read PROTOTHRIVE_CONFIG {path}: {e}")))?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| ConfigError(format!("PROTOTHRIVE_CONFIG {path} is not TOML: {e}")))?;
            for (k, v) in table {
                let value = match v {
                    toml::Value::String(s) => s,
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                file.insert(format!("PROTOTHRIVE_{}", k.to_ascii_uppercase()), value);
            }
        }
        let get = |k: &str| -> Option<String> {
            vars.get(k)
                .or_else(|| file.get(k))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let env = match get("PROTOTHRIVE_ENV").as_deref().unwrap_or("development") {
            "development" | "dev" => Environment::Development,
            "staging" => Environment::Staging,
            "production" | "prod" => Environment::Production,
            other => {
                return Err(ConfigError(format!(
                    "PROTOTHRIVE_ENV={other}: use development, staging or production"
                )));
            }
        };
        let addr_text = get("PROTOTHRIVE_ADDR").unwrap_or_else(|| "127.0.0.1:8787".to_owned());
        let addr_text = if addr_text.starts_with(':') {
            format!("127.0.0.1{addr_text}")
        } else {
            addr_text
        };
        let addr = addr_text
            .parse()
            .map_err(|e| ConfigError(format!("PROTOTHRIVE_ADDR={addr_text}: {e}")))?;
        let number = |k: &str, default: u64| -> Result<u64, ConfigError> {
            get(k).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| ConfigError(format!("{k}={v} is not a whole number")))
            })
        };
        let cors_origins = get("PROTOTHRIVE_CORS_ORIGINS")
            .map(|v| list(&v))
            .unwrap_or_else(|| {
                if env == Environment::Development {
                    list(DEV_ORIGINS)
                } else {
                    Vec::new()
                }
            });
        let failure = get("PROTOTHRIVE_AGENT_FAILURE_RATE").map_or(Ok(0.0), |v| {
            v.parse::<f64>()
                .ok()
                .filter(|f| (0.0..=1.0).contains(f))
                .ok_or_else(|| ConfigError(format!("PROTOTHRIVE_AGENT_FAILURE_RATE={v}: use 0..1")))
        })?;
        let config = Self {
            addr,
            env,
            database_url: get("PROTOTHRIVE_DATABASE_URL")
                .unwrap_or_else(|| "sqlite://protothrive.db".to_owned()),
            redis_url: get("PROTOTHRIVE_REDIS_URL"),
            rate_limit_on_redis_error: get("PROTOTHRIVE_RATE_LIMIT_ON_REDIS_ERROR")
                .map(|v| {
                    v.parse().map_err(|e: protothrive::error::ConfigError| {
                        ConfigError(format!(
                            "PROTOTHRIVE_RATE_LIMIT_ON_REDIS_ERROR: {}",
                            e.message()
                        ))
                    })
                })
                .transpose()?
                .unwrap_or_default(),
            jwt_secret: get("PROTOTHRIVE_JWT_SECRET"),
            jwt_issuer: get("PROTOTHRIVE_JWT_ISSUER").unwrap_or_else(|| "protothrive".to_owned()),
            jwt_audience: get("PROTOTHRIVE_JWT_AUDIENCE")
                .unwrap_or_else(|| "protothrive-api".to_owned()),
            jwks_url: get("PROTOTHRIVE_JWKS_URL"),
            jwt_leeway: number("PROTOTHRIVE_JWT_LEEWAY", 60)?,
            cors_origins,
            trusted_proxies: get("PROTOTHRIVE_TRUSTED_PROXIES")
                .map(|v| list(&v))
                .unwrap_or_default(),
            agent_url: get("PROTOTHRIVE_AGENT_URL"),
            limits: RateLimits::parse(get("PROTOTHRIVE_RATE_LIMITS").as_deref())?,
            rate_limits: get("PROTOTHRIVE_RATE_LIMITS"),
            demo_password: get("PROTOTHRIVE_DEMO_PASSWORD"),
            agent_latency_ms: number("PROTOTHRIVE_AGENT_LATENCY_MS", 5)?,
            agent_failure_rate: failure,
            metrics_token: get("PROTOTHRIVE_METRICS_TOKEN"),
            shutdown_grace_secs: number("PROTOTHRIVE_SHUTDOWN_GRACE_SECS", 10)?,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.env != Environment::Production {
            return Ok(());
        }
        match &self.jwt_secret {
            None => {
                return Err(ConfigError(
                    "production needs PROTOTHRIVE_JWT_SECRET (32+ random bytes); refusing a default".into(),
                ));
            }
            Some(s) if s.len() < 32 || s.contains("change-me") || s.contains("default") => {
                return Err(ConfigError(
                    "PROTOTHRIVE_JWT_SECRET is too short or a placeholder; use 32+ random bytes"
                        .into(),
                ));
            }
            Some(_) => {}
        }
        if self.cors_origins.iter().any(|o| o.contains('*')) {
            return Err(ConfigError(
                "production refuses a wildcard in PROTOTHRIVE_CORS_ORIGINS; list exact origins"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn production_refuses_a_missing_or_placeholder_secret_and_wildcard_origins() {
        let strong = "0123456789abcdef0123456789abcdef-strong";
        assert!(Config::from_vars(&vars(&[("PROTOTHRIVE_ENV", "production")])).is_err());
        for weak in [
            "short",
            "change-me-change-me-change-me-change-me",
            "default-secret-default-secret-xx",
        ] {
            let v = vars(&[
                ("PROTOTHRIVE_ENV", "production"),
                ("PROTOTHRIVE_JWT_SECRET", weak),
            ]);
            assert!(Config::from_vars(&v).is_err(), "{weak}");
        }
        let v = vars(&[
            ("PROTOTHRIVE_ENV", "production"),
            ("PROTOTHRIVE_JWT_SECRET", strong),
            ("PROTOTHRIVE_CORS_ORIGINS", "https://*.example.com"),
        ]);
        assert!(Config::from_vars(&v).is_err());
        let v = vars(&[
            ("PROTOTHRIVE_ENV", "production"),
            ("PROTOTHRIVE_JWT_SECRET", strong),
        ]);
        let c = Config::from_vars(&v).unwrap();
        assert!(c.is_production());
        assert!(
            c.cors_origins.is_empty(),
            "no development origins in production"
        );
    }

    #[test]
    fn development_defaults_match_the_contract() {
        let c = Config::from_vars(&HashMap::new()).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8787");
        assert_eq!(c.database_url, "sqlite://protothrive.db");
        assert_eq!(
            (c.jwt_issuer.as_str(), c.jwt_audience.as_str()),
            ("protothrive", "protothrive-api")
        );
        assert_eq!(c.jwt_leeway, 60);
        assert_eq!(c.cors_origins.len(), 4);
        assert!(c.jwt_secret.is_none());
    }

    #[test]
    fn bad_values_say_which_variable() {
        for (k, v) in [
            ("PROTOTHRIVE_ENV", "prod-ish"),
            ("PROTOTHRIVE_ADDR", "not-an-address"),
            ("PROTOTHRIVE_JWT_LEEWAY", "-1"),
            ("PROTOTHRIVE_AGENT_FAILURE_RATE", "2"),
        ] {
            let err = Config::from_vars(&vars(&[(k, v)])).unwrap_err();
            assert!(err.0.contains(k), "{err}");
        }
        let c = Config::from_vars(&vars(&[("PROTOTHRIVE_ADDR", ":0")])).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:0");
    }

    #[test]
    fn rate_limits_default_and_override() {
        let c = Config::from_vars(&HashMap::new()).unwrap();
        assert_eq!((c.limits.ip.count(), c.limits.ip.burst()), (60, 10));
        assert_eq!(c.limits.register.period().as_secs(), 900);
        let v = vars(&[(
            "PROTOTHRIVE_RATE_LIMITS",
            "ip=1000000/60s:100000,user=1000000/60s:100000,api_key=1000000/60s:100000,\
             login=1000000/300s:100000,register=1000000/900s:100000",
        )]);
        let c = Config::from_vars(&v).unwrap();
        assert_eq!(
            (c.limits.login.count(), c.limits.login.burst()),
            (1_000_000, 100_000)
        );
        for bad in ["ip", "ip=x", "nope=1/60s:1"] {
            let err = Config::from_vars(&vars(&[("PROTOTHRIVE_RATE_LIMITS", bad)])).unwrap_err();
            assert!(err.0.contains("PROTOTHRIVE_RATE_LIMITS"), "{err}");
        }
    }
}
