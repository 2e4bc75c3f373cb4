//! Configuration from the environment, or a TOML file named by `PROTOTHRIVE_CONFIG` with the same
//! keys (lower-case, without the `PROTOTHRIVE_` prefix), read by the library's `Settings`. The
//! environment wins over the file. The stack's own settings (`StackConfig`) are read there too;
//! what is here is the API's.
//!
//! Read before everything else, from the environment only (the subscriber is set up first):
//! `PROTOTHRIVE_OTLP_ENDPOINT` (an OTLP/HTTP base URL such as `http://127.0.0.1:4318`: request
//! spans are exported there; unset, nothing is) and `PROTOTHRIVE_OTLP_SERVICE_NAME` (default
//! `protothrive-api`); `RUST_LOG` filters the log, not the export.

use std::collections::HashMap;
use std::net::SocketAddr;

use protothrive::rate_limit::{Quota, QuotaList};
use protothrive::stack::{Settings, StackConfig};

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
    /// The database (`PROTOTHRIVE_DATABASE_URL`): `sqlite://FILE` (default
    /// `sqlite://protothrive.db`, created when missing) or `postgres://USER@HOST:PORT/DB` (an
    /// existing database; the schema is applied on first start). See `db/mod.rs`.
    pub database_url: String,
    /// `PROTOTHRIVE_REDIS_URL`: one Redis (`redis://host:6379`), or a Redis Cluster as a
    /// comma-separated list of its nodes (`redis://a:6379,redis://b:6379,redis://c:6379`).
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
    /// Simulated agent: the share of calls that are slow (`PROTOTHRIVE_AGENT_SLOW_RATE`, 0..1)
    /// and how slow (`PROTOTHRIVE_AGENT_SLOW_MS`, default 1000), on top of the latency.
    pub agent_slow_rate: f64,
    pub agent_slow_ms: u64,
    pub resilience: Resilience,
    pub metrics_token: Option<String>,
    pub shutdown_grace_secs: u64,
    /// What the library's `Stack::from_config` reads: trusted proxies, the CORS origins (with the
    /// development defaults) and the limits (with the contract's defaults). The API's own
    /// authenticator replaces the stack's, so no JWT settings go there.
    pub stack: StackConfig,
}

/// The bounds the API puts on its dependencies and on itself (fault and load tests shorten them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resilience {
    /// One call to the agent service (`PROTOTHRIVE_AGENT_TIMEOUT_MS`, default 2000).
    pub agent_timeout_ms: u64,
    /// The agent breaker's first open wait (`PROTOTHRIVE_AGENT_BREAKER_WAIT_MS`, default 10000);
    /// it doubles while probes fail, up to six times this.
    pub agent_breaker_wait_ms: u64,
    /// Requests in flight on every route but health (`PROTOTHRIVE_MAX_IN_FLIGHT`, default 512):
    /// anonymous ones may fill half, signed-in ones 90%, admins all of it.
    pub max_in_flight: u64,
    /// Agent runs in flight (`PROTOTHRIVE_AGENT_MAX_IN_FLIGHT`, default 64), shared the same way.
    pub agent_max_in_flight: u64,
    /// How long a write waits for a database lock held elsewhere before the API answers 503
    /// `DB-503` (`PROTOTHRIVE_DATABASE_BUSY_TIMEOUT_MS`, default 5000); a write queued behind it
    /// waits at most as long again for the writer.
    pub db_busy_timeout_ms: u64,
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

/// The contract's default limits.
const DEFAULT_LIMITS: &str = "ip=60/min burst 10, user=100/min burst 10, api_key=200/min, \
                              login=10 per 5 min, register=5 per 15 min";

/// The names `PROTOTHRIVE_RATE_LIMITS` may set.
const LIMIT_NAMES: [&str; 5] = ["ip", "user", "api_key", "login", "register"];

impl RateLimits {
    /// The defaults, overridden by `overrides` (each name at most once, every name known).
    fn from_list(overrides: &QuotaList) -> Result<Self, ConfigError> {
        if let Some(other) = overrides.unknown(&LIMIT_NAMES) {
            return Err(ConfigError(format!(
                "PROTOTHRIVE_RATE_LIMITS: unknown limit `{other}`; use ip, user, api_key, login or register"
            )));
        }
        let defaults: QuotaList = DEFAULT_LIMITS
            .parse()
            .map_err(|e: protothrive::error::ConfigError| ConfigError(e.to_string()))?;
        let all = defaults.override_with(overrides);
        let q = |name: &str| {
            all.get(name)
                .ok_or_else(|| ConfigError(format!("no default for the `{name}` limit")))
        };
        Ok(Self {
            ip: q("ip")?,
            user: q("user")?,
            api_key: q("api_key")?,
            login: q("login")?,
            register: q("register")?,
        })
    }

    /// As a list, for the stack's configuration.
    pub fn to_list(self) -> QuotaList {
        QuotaList::new()
            .with("ip", self.ip)
            .with("user", self.user)
            .with("api_key", self.api_key)
            .with("login", self.login)
            .with("register", self.register)
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
        let lib = |e: protothrive::error::ConfigError| ConfigError(e.message().to_owned());
        let settings = Settings::from_vars("PROTOTHRIVE_", vars).map_err(lib)?;
        let mut stack = StackConfig::from_settings(&settings).map_err(lib)?;
        let get = |k: &str| -> Option<String> {
            let name = k.trim_start_matches("PROTOTHRIVE_").to_ascii_lowercase();
            settings.get(&name).map(str::to_owned)
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
            let name = k.trim_start_matches("PROTOTHRIVE_").to_ascii_lowercase();
            Ok(settings.parse(&name).map_err(lib)?.unwrap_or(default))
        };
        let cors_origins = if settings.get("cors_origins").is_some() {
            stack.cors_origins.clone()
        } else if env == Environment::Development {
            list(DEV_ORIGINS)
        } else {
            Vec::new()
        };
        let rate = |k: &str| {
            get(k).map_or(Ok(0.0), |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|f| (0.0..=1.0).contains(f))
                    .ok_or_else(|| ConfigError(format!("{k}={v}: use 0..1")))
            })
        };
        let positive = |k: &str, default: u64| -> Result<u64, ConfigError> {
            match number(k, default)? {
                0 => Err(ConfigError(format!("{k}=0: use a value above zero"))),
                n => Ok(n),
            }
        };
        let resilience = Resilience {
            agent_timeout_ms: positive("PROTOTHRIVE_AGENT_TIMEOUT_MS", 2000)?,
            agent_breaker_wait_ms: positive("PROTOTHRIVE_AGENT_BREAKER_WAIT_MS", 10_000)?,
            max_in_flight: positive("PROTOTHRIVE_MAX_IN_FLIGHT", 512)?,
            agent_max_in_flight: positive("PROTOTHRIVE_AGENT_MAX_IN_FLIGHT", 64)?,
            db_busy_timeout_ms: positive("PROTOTHRIVE_DATABASE_BUSY_TIMEOUT_MS", 5000)?,
        };
        let limits = RateLimits::from_list(&stack.rate_limits)?;
        stack.cors_origins.clone_from(&cors_origins);
        stack.rate_limits = limits.to_list();
        stack.jwt_secret = None;
        stack.jwks_url = None;
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
            jwt_leeway: stack.jwt_leeway.unwrap_or(60),
            cors_origins,
            trusted_proxies: stack.trusted_proxies.clone(),
            agent_url: get("PROTOTHRIVE_AGENT_URL"),
            limits,
            rate_limits: get("PROTOTHRIVE_RATE_LIMITS"),
            demo_password: get("PROTOTHRIVE_DEMO_PASSWORD"),
            agent_latency_ms: number("PROTOTHRIVE_AGENT_LATENCY_MS", 5)?,
            agent_failure_rate: rate("PROTOTHRIVE_AGENT_FAILURE_RATE")?,
            agent_slow_rate: rate("PROTOTHRIVE_AGENT_SLOW_RATE")?,
            agent_slow_ms: number("PROTOTHRIVE_AGENT_SLOW_MS", 1000)?,
            resilience,
            metrics_token: get("PROTOTHRIVE_METRICS_TOKEN"),
            shutdown_grace_secs: number("PROTOTHRIVE_SHUTDOWN_GRACE_SECS", 10)?,
            stack,
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
        let refused = |v: &HashMap<String, String>| Config::from_vars(v).err().map(|e| e.0);
        assert_eq!(
            refused(&vars(&[("PROTOTHRIVE_ENV", "production")])).as_deref(),
            Some("production needs PROTOTHRIVE_JWT_SECRET (32+ random bytes); refusing a default")
        );
        for weak in [
            "short",
            "change-me-change-me-change-me-change-me",
            "default-secret-default-secret-xx",
        ] {
            let v = vars(&[
                ("PROTOTHRIVE_ENV", "production"),
                ("PROTOTHRIVE_JWT_SECRET", weak),
            ]);
            assert_eq!(
                refused(&v).as_deref(),
                Some("PROTOTHRIVE_JWT_SECRET is too short or a placeholder; use 32+ random bytes"),
                "{weak}"
            );
        }
        let v = vars(&[
            ("PROTOTHRIVE_ENV", "production"),
            ("PROTOTHRIVE_JWT_SECRET", strong),
            ("PROTOTHRIVE_CORS_ORIGINS", "https://*.example.com"),
        ]);
        assert_eq!(
            refused(&v).as_deref(),
            Some("production refuses a wildcard in PROTOTHRIVE_CORS_ORIGINS; list exact origins")
        );
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
        assert_eq!(
            c.resilience,
            Resilience {
                agent_timeout_ms: 2000,
                agent_breaker_wait_ms: 10_000,
                max_in_flight: 512,
                agent_max_in_flight: 64,
                db_busy_timeout_ms: 5000,
            }
        );
        assert_eq!((c.agent_slow_rate, c.agent_slow_ms), (0.0, 1000));
    }

    #[test]
    fn bad_values_say_which_variable() {
        for (k, v) in [
            ("PROTOTHRIVE_ENV", "prod-ish"),
            ("PROTOTHRIVE_ADDR", "not-an-address"),
            ("PROTOTHRIVE_JWT_LEEWAY", "-1"),
            ("PROTOTHRIVE_AGENT_FAILURE_RATE", "2"),
            ("PROTOTHRIVE_AGENT_SLOW_RATE", "-0.1"),
            ("PROTOTHRIVE_AGENT_TIMEOUT_MS", "0"),
            ("PROTOTHRIVE_MAX_IN_FLIGHT", "many"),
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
