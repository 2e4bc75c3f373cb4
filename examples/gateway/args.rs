//! The gateway's configuration: `GATEWAY_*` variables (or the TOML file named by
//! `GATEWAY_CONFIG`), with the command line over them.

use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;
use protothrive::rate_limit::{Quota, QuotaList};
use protothrive::stack::{Settings, StackConfig};

#[derive(Debug, Clone)]
pub struct Args {
    /// The instances of the origin (at least one).
    pub upstreams: Vec<Uri>,
    pub listen: SocketAddr,
    /// The stack's part: trusted proxies, the `ip` limit, the body limit.
    pub stack: StackConfig,
    pub redis: Option<String>,
    pub timeout: Duration,
    pub cache_mb: u64,
    /// The cache's target list (`None`: the library's default, `CDN-Cache-Control`).
    pub cache_targets: Option<Vec<String>>,
    /// Active health checks: the path (`None`: no checks), the interval and the timeout.
    pub health_path: Option<String>,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    /// Passive health: failures in a row that eject an upstream, and for how long at first.
    pub eject_after: u32,
    pub eject_for: Duration,
}

const USAGE: &str = "usage: gateway --upstream URL [--upstream URL]... [--listen ADDR] \
    [--rate QUOTA|off] [--trusted-proxy CIDR]... [--redis URL] [--max-body BYTES] \
    [--timeout SECONDS] [--cache-mb N] [--cache-target NAME]... [--health-path PATH] \
    [--health-interval SECONDS] [--health-timeout SECONDS] [--eject-after N] \
    [--eject-for SECONDS]\n\
    (each also from GATEWAY_UPSTREAM (a comma-separated list), GATEWAY_LISTEN, \
    GATEWAY_RATE_LIMITS=ip=QUOTA, GATEWAY_TRUSTED_PROXIES, GATEWAY_REDIS_URL, \
    GATEWAY_MAX_BODY_BYTES, GATEWAY_TIMEOUT, GATEWAY_CACHE_MB, GATEWAY_CACHE_TARGETS, \
    GATEWAY_HEALTH_PATH, GATEWAY_HEALTH_INTERVAL, GATEWAY_HEALTH_TIMEOUT, GATEWAY_EJECT_AFTER, \
    GATEWAY_EJECT_FOR or the TOML file named by GATEWAY_CONFIG)";

/// Seconds, fractions allowed (`0.5`), above zero.
fn seconds(name: &str, v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{name} {v}: a number of seconds above zero"))
}

fn list(v: &str) -> Vec<String> {
    v.split(',').map(|t| t.trim().to_owned()).collect()
}

impl Args {
    /// Parses `args` (without the program name) with no settings from the environment.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        Self::parse_with(&Settings::default(), args)
    }

    /// Parses `args` over the `GATEWAY_*` settings of the process.
    pub fn from_env(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let settings = Settings::from_env("GATEWAY_").map_err(|e| e.message().to_owned())?;
        Self::parse_with(&settings, args)
    }

    /// Parses `args` over `settings`.
    pub fn parse_with(
        settings: &Settings,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Self, String> {
        let lib = |e: protothrive::error::ConfigError| e.message().to_owned();
        let mut stack = StackConfig::from_settings(settings).map_err(lib)?;
        if let Some(other) = stack.rate_limits.unknown(&["ip"]) {
            return Err(format!(
                "{}: the gateway has one limit, `ip`, not `{other}`",
                settings.variable("rate_limits")
            ));
        }
        if stack.rate_limits.get("ip").is_none() {
            stack.rate_limits = QuotaList::new().with("ip", quota("100/s burst 200")?);
        }
        stack.max_body_bytes.get_or_insert(10 << 20);
        let setting_secs = |name: &str, default: u64| match settings.get(name) {
            Some(v) => seconds(&settings.variable(name), v),
            None => Ok(Duration::from_secs(default)),
        };
        let mut upstreams = settings.get("upstream").map(list).unwrap_or_default();
        let mut parsed = Self {
            upstreams: Vec::new(),
            listen: settings
                .parse("listen")
                .map_err(lib)?
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            stack,
            redis: settings.get("redis_url").map(str::to_owned),
            timeout: Duration::from_secs(settings.parse("timeout").map_err(lib)?.unwrap_or(30)),
            cache_mb: settings.parse("cache_mb").map_err(lib)?.unwrap_or(64),
            cache_targets: settings.get("cache_targets").map(list),
            health_path: settings.get("health_path").map(str::to_owned),
            health_interval: setting_secs("health_interval", 5)?,
            health_timeout: setting_secs("health_timeout", 2)?,
            eject_after: settings.parse("eject_after").map_err(lib)?.unwrap_or(5),
            eject_for: setting_secs("eject_for", 30)?,
        };
        let (mut targets_flagged, mut upstreams_flagged) = (false, false);
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
            };
            match flag.as_str() {
                "--upstream" => {
                    // The first flag replaces the variable's list; the next ones add to it.
                    if !std::mem::replace(&mut upstreams_flagged, true) {
                        upstreams.clear();
                    }
                    upstreams.push(value()?);
                }
                "--listen" => {
                    let v = value()?;
                    parsed.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
                }
                "--rate" => {
                    let v = value()?;
                    let q = quota(&v).map_err(|e| format!("--rate {v}: {e}"))?;
                    parsed.stack.rate_limits = QuotaList::new().with("ip", q);
                }
                "--trusted-proxy" => parsed.stack.trusted_proxies.push(value()?),
                "--redis" => parsed.redis = Some(value()?),
                "--max-body" => {
                    let v = value()?;
                    parsed.stack.max_body_bytes =
                        Some(v.parse().map_err(|e| format!("--max-body {v}: {e}"))?);
                }
                "--timeout" => {
                    let v = value()?;
                    let secs: u64 = v.parse().map_err(|e| format!("--timeout {v}: {e}"))?;
                    parsed.timeout = Duration::from_secs(secs);
                }
                "--cache-mb" => {
                    let v = value()?;
                    parsed.cache_mb = v.parse().map_err(|e| format!("--cache-mb {v}: {e}"))?;
                }
                "--cache-target" => {
                    let v = value()?;
                    let list = parsed.cache_targets.get_or_insert_with(Vec::new);
                    if !std::mem::replace(&mut targets_flagged, true) {
                        list.clear();
                    }
                    list.push(v);
                }
                "--health-path" => parsed.health_path = Some(value()?),
                "--health-interval" => parsed.health_interval = seconds(&flag, &value()?)?,
                "--health-timeout" => parsed.health_timeout = seconds(&flag, &value()?)?,
                "--eject-after" => {
                    let v = value()?;
                    parsed.eject_after = v
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--eject-after {v}: a count above zero"))?;
                }
                "--eject-for" => parsed.eject_for = seconds(&flag, &value()?)?,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown option {other}\n{USAGE}")),
            }
        }
        parsed.timeout = parsed.timeout.max(Duration::from_secs(1));
        if upstreams.is_empty() {
            return Err(format!("--upstream is required\n{USAGE}"));
        }
        for v in upstreams {
            let uri: Uri = v.parse().map_err(|e| format!("--upstream {v}: {e}"))?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                return Err(format!("--upstream {v}: use http://host:port"));
            }
            if parsed.upstreams.contains(&uri) {
                return Err(format!("--upstream {v}: given twice"));
            }
            parsed.upstreams.push(uri);
        }
        Ok(parsed)
    }

    /// Whether the per-client limit is on.
    pub fn rate_limited(&self) -> bool {
        self.stack
            .rate_limits
            .get("ip")
            .is_some_and(|q| !q.is_unlimited())
    }
}

fn quota(text: &str) -> Result<Quota, String> {
    text.parse()
        .map_err(|e: protothrive::error::ConfigError| e.message().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        Args::parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn arguments_parse_and_mistakes_are_explained() {
        let a =
            args("--upstream http://127.0.0.1:9000/base --listen 127.0.0.1:0 --rate off").unwrap();
        assert_eq!(a.upstreams, ["http://127.0.0.1:9000/base"]);
        assert!(!a.rate_limited());
        let a = args("--upstream http://x").unwrap();
        assert!(a.rate_limited(), "a per-client limit by default");
        assert_eq!(a.health_path, None, "no active checks by default");
        assert_eq!((a.eject_after, a.eject_for), (5, Duration::from_secs(30)));
        assert!(
            args("--listen 127.0.0.1:1")
                .unwrap_err()
                .contains("--upstream")
        );
        assert!(args("--upstream ftp://x").unwrap_err().contains("http://"));
        assert_eq!(
            args("--upstream http://x --rate lots").unwrap_err(),
            "--rate lots: rate-limit quota `lots`: write `count/period` or `count per period` \
             (e.g. `100/min burst 10`, `10 per 5 min`, `60/s`)"
        );
        assert!(
            args("--upstream http://x --bogus")
                .unwrap_err()
                .contains("unknown option")
        );
    }

    #[test]
    fn upstreams_repeat_and_health_is_configured() {
        let a = args(
            "--upstream http://a:1 --upstream http://b:2/p --health-path /healthz \
             --health-interval 0.5 --health-timeout 1 --eject-after 3 --eject-for 10",
        )
        .unwrap();
        assert_eq!(a.upstreams, ["http://a:1/", "http://b:2/p"]);
        assert_eq!(a.health_path.as_deref(), Some("/healthz"));
        assert_eq!(a.health_interval, Duration::from_millis(500));
        assert_eq!(a.health_timeout, Duration::from_secs(1));
        assert_eq!((a.eject_after, a.eject_for), (3, Duration::from_secs(10)));
        for (bad, error) in [
            (
                "--upstream http://a:1 --upstream http://a:1",
                "--upstream http://a:1: given twice",
            ),
            (
                "--upstream http://a:1 --health-interval 0",
                "--health-interval 0: a number of seconds above zero",
            ),
            (
                "--upstream http://a:1 --health-timeout soon",
                "--health-timeout soon: a number of seconds above zero",
            ),
            (
                "--upstream http://a:1 --eject-after 0",
                "--eject-after 0: a count above zero",
            ),
        ] {
            assert_eq!(args(bad).unwrap_err(), error, "{bad}");
        }
    }

    #[test]
    fn settings_configure_it_and_flags_win() {
        let settings = Settings::from_vars(
            "GATEWAY_",
            [
                (
                    "GATEWAY_UPSTREAM",
                    "http://127.0.0.1:9000, http://127.0.0.1:9001",
                ),
                ("GATEWAY_RATE_LIMITS", "ip=off"),
                ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8"),
                ("GATEWAY_CACHE_MB", "0"),
                ("GATEWAY_HEALTH_PATH", "/up"),
                ("GATEWAY_EJECT_FOR", "2.5"),
            ],
        )
        .unwrap();
        let a = Args::parse_with(
            &settings,
            ["--trusted-proxy".to_owned(), "fd00::/8".to_owned()],
        )
        .unwrap();
        assert_eq!(
            a.upstreams,
            ["http://127.0.0.1:9000/", "http://127.0.0.1:9001/"]
        );
        assert!(!a.rate_limited());
        assert_eq!(a.stack.trusted_proxies, ["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(a.cache_mb, 0);
        assert_eq!(a.health_path.as_deref(), Some("/up"));
        assert_eq!(a.eject_for, Duration::from_millis(2500));
        let flags = ["--upstream", "http://10.0.0.1:1"];
        let a = Args::parse_with(&settings, flags.map(str::to_owned)).unwrap();
        assert_eq!(
            a.upstreams,
            ["http://10.0.0.1:1/"],
            "the flag replaces the list"
        );
        let flags = [
            "--cache-target",
            "Protothrive-Cache-Control",
            "--cache-target",
            "CDN-Cache-Control",
        ];
        let a = Args::parse_with(&settings, flags.map(str::to_owned)).unwrap();
        assert_eq!(
            a.cache_targets.as_deref(),
            Some(
                &[
                    "Protothrive-Cache-Control".to_owned(),
                    "CDN-Cache-Control".to_owned()
                ][..]
            )
        );
        let a = Args::parse_with(&settings, ["--rate".to_owned(), "5/s".to_owned()]).unwrap();
        assert!(a.rate_limited(), "the flag wins over the variable");
        for (k, v) in [
            ("GATEWAY_RATE_LIMITS", "user=1/s"),
            ("GATEWAY_TIMEOUT", "soon"),
            ("GATEWAY_HEALTH_INTERVAL", "-1"),
            ("GATEWAY_EJECT_AFTER", "many"),
        ] {
            let s = Settings::from_vars("GATEWAY_", [("GATEWAY_UPSTREAM", "http://x:1"), (k, v)])
                .unwrap();
            let err = Args::parse_with(&s, []).unwrap_err();
            assert!(err.contains(k), "{k}={v}: {err}");
        }
    }
}
