//! A quota: `count` requests per `period`, at most `burst` at once.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::ConfigError;

/// `count` requests per `period`, with at most `burst` at once (GCRA's rate and tolerance).
///
/// Parsed from `100/min burst 10`, `10 per 5 min`, `60/s`, `1000/60s:100` (the compact
/// `count/period:burst` form). Without a burst, the burst is `count` (a full period at once).
///
/// ```
/// use std::time::Duration;
/// use protothrive::rate_limit::Quota;
/// let q: Quota = "100/min burst 10".parse().unwrap();
/// assert_eq!((q.count(), q.period(), q.burst()), (100, Duration::from_secs(60), 10));
/// let q: Quota = "10 per 5 min".parse().unwrap();
/// assert_eq!((q.count(), q.period(), q.burst()), (10, Duration::from_secs(300), 10));
/// assert!("10 per fortnight".parse::<Quota>().unwrap_err().message().contains("unit"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    count: u32,
    period: Duration,
    burst: u32,
    interval: u64,
}

impl Quota {
    /// `count` requests per `period`, at most `burst` at once.
    ///
    /// # Errors
    /// A zero count, burst or period, or a period shorter than `count` nanoseconds.
    pub fn new(count: u32, period: Duration, burst: u32) -> Result<Self, ConfigError> {
        if count == 0 {
            return Err(ConfigError::new(
                "a rate-limit quota needs a count of at least 1 (e.g. `60/min`)",
            ));
        }
        if burst == 0 {
            return Err(ConfigError::new(
                "a rate-limit burst must be at least 1 (omit it to allow a full period at once)",
            ));
        }
        let nanos = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        let interval = nanos / u64::from(count);
        if interval == 0 {
            return Err(ConfigError::new(format!(
                "a rate-limit period of {period:?} is too short for {count} requests; use a longer period"
            )));
        }
        Ok(Self {
            count,
            period,
            burst,
            interval,
        })
    }

    /// No limit at all: a [`Limit`](super::Limit) with this quota is never checked and adds no
    /// headers (a limit turned off by configuration). Parsed from `unlimited`, `off` or `none`.
    ///
    /// ```
    /// use protothrive::rate_limit::Quota;
    /// let q: Quota = "off".parse().unwrap();
    /// assert!(q.is_unlimited());
    /// assert_eq!(q, Quota::unlimited());
    /// assert_eq!(q.to_string(), "unlimited");
    /// assert!(!"60/min".parse::<Quota>().unwrap().is_unlimited());
    /// ```
    #[must_use]
    pub fn unlimited() -> Self {
        Self {
            count: u32::MAX,
            period: Duration::from_secs(1),
            burst: u32::MAX,
            interval: 0,
        }
    }

    /// Whether this is [`Quota::unlimited`].
    #[must_use]
    pub fn is_unlimited(&self) -> bool {
        self.interval == 0
    }

    /// `count` per second, burst `count`.
    ///
    /// # Errors
    /// A zero count.
    pub fn per_second(count: u32) -> Result<Self, ConfigError> {
        Self::new(count, Duration::from_secs(1), count)
    }

    /// `count` per minute, burst `count`.
    ///
    /// # Errors
    /// A zero count.
    pub fn per_minute(count: u32) -> Result<Self, ConfigError> {
        Self::new(count, Duration::from_secs(60), count)
    }

    /// The same quota with another burst.
    ///
    /// # Errors
    /// A zero burst.
    pub fn with_burst(self, burst: u32) -> Result<Self, ConfigError> {
        Self::new(self.count, self.period, burst)
    }

    /// Requests per period.
    #[must_use]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The period.
    #[must_use]
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Requests allowed at once.
    #[must_use]
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The emission interval `T = period / count`, in nanoseconds (at least 1; 0 only for
    /// [`Quota::unlimited`]).
    #[must_use]
    pub fn interval_nanos(&self) -> u64 {
        self.interval
    }

    /// The tolerance `burst × T`, in nanoseconds.
    #[must_use]
    pub fn tolerance_nanos(&self) -> u64 {
        self.interval.saturating_mul(u64::from(self.burst))
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unlimited() {
            return f.write_str("unlimited");
        }
        if self.period.subsec_nanos() == 0 {
            write!(
                f,
                "{}/{}s:{}",
                self.count,
                self.period.as_secs(),
                self.burst
            )
        } else {
            write!(
                f,
                "{}/{}ms:{}",
                self.count,
                self.period.as_millis(),
                self.burst
            )
        }
    }
}

fn unit(s: &str) -> Option<u64> {
    Some(match s {
        "ms" => return Some(0),
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return None,
    })
}

/// `5 min`, `5min`, `min`, `60s`, `300` (seconds), `500ms`.
fn parse_period(s: &str) -> Result<Duration, ConfigError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, rest) = s.split_at(split);
    let rest = rest.trim();
    let n: u64 = if num.is_empty() {
        1
    } else {
        num.parse().map_err(|_| bad_period(s))?
    };
    if rest.is_empty() {
        return Ok(Duration::from_secs(n));
    }
    match unit(&rest.to_ascii_lowercase()) {
        Some(0) => Ok(Duration::from_millis(n)),
        Some(secs) => n
            .checked_mul(secs)
            .map(Duration::from_secs)
            .ok_or_else(|| bad_period(s)),
        None => Err(ConfigError::new(format!(
            "rate-limit period `{s}`: unknown unit `{rest}`; use ms, s, min, h or d"
        ))),
    }
}

fn bad_period(s: &str) -> ConfigError {
    ConfigError::new(format!(
        "rate-limit period `{s}` is not a duration; write e.g. `min`, `5 min` or `60s`"
    ))
}

fn parse_count(s: &str, what: &str, whole: &str) -> Result<u32, ConfigError> {
    s.trim().parse().map_err(|_| {
        ConfigError::new(format!(
            "rate-limit quota `{whole}`: the {what} `{}` is not a whole number",
            s.trim()
        ))
    })
}

impl FromStr for Quota {
    type Err = ConfigError;

    fn from_str(whole: &str) -> Result<Self, ConfigError> {
        let s = whole.trim();
        if ["unlimited", "off", "none"]
            .iter()
            .any(|w| s.eq_ignore_ascii_case(w))
        {
            return Ok(Self::unlimited());
        }
        let (rate, burst) = if let Some((r, b)) = s.split_once("burst") {
            (r, Some(parse_count(b, "burst", whole)?))
        } else if let Some((r, b)) = s.split_once(':') {
            (r, Some(parse_count(b, "burst", whole)?))
        } else {
            (s, None)
        };
        let (count, period) = if let Some((c, p)) = rate.split_once('/') {
            (c, p)
        } else if let Some((c, p)) = rate.split_once(" per ") {
            (c, p)
        } else {
            return Err(ConfigError::new(format!(
                "rate-limit quota `{whole}`: write `count/period` or `count per period` \
                 (e.g. `100/min burst 10`, `10 per 5 min`, `60/s`)"
            )));
        };
        let count = parse_count(count, "count", whole)?;
        let period = parse_period(period)?;
        Self::new(count, period, burst.unwrap_or(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let cases = [
            ("100/min burst 10", 100, 60, 10),
            ("10 per 5 min", 10, 300, 10),
            ("60/s", 60, 1, 60),
            ("1000000/60s:100000", 1_000_000, 60, 100_000),
            ("5 per 15 min burst 5", 5, 900, 5),
            ("  7/h  ", 7, 3600, 7),
            ("3/300", 3, 300, 3),
        ];
        for (s, c, p, b) in cases {
            let q: Quota = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(
                (q.count(), q.period(), q.burst()),
                (c, Duration::from_secs(p), b),
                "{s}"
            );
        }
        let q: Quota = "2/500ms".parse().unwrap();
        assert_eq!(q.interval_nanos(), 250_000_000);
    }

    #[test]
    fn errors_say_how_to_fix() {
        for (s, needle) in [
            ("", "count/period"),
            ("ten/min", "not a whole number"),
            ("0/min", "at least 1"),
            ("5/min burst 0", "burst must be at least 1"),
            ("5/min burst x", "burst `x`"),
            ("5/week", "unknown unit"),
            ("5/x5", "unknown unit"),
            ("5/0s", "too short"),
            ("99999999999/min", "not a whole number"),
        ] {
            let e = s.parse::<Quota>().unwrap_err();
            assert!(e.message().contains(needle), "{s}: {e}");
        }
    }

    #[test]
    fn display_round_trips() {
        let q: Quota = "100/min burst 10".parse().unwrap();
        assert_eq!(q.to_string().parse::<Quota>().unwrap(), q);
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            if let Ok(q) = s.parse::<Quota>() {
                proptest::prop_assert_eq!(q.to_string().parse::<Quota>().unwrap(), q);
            }
        }

        #[test]
        fn parsing_never_panics_near_the_grammar(
            s in "[ 0-9]{0,12}(/| per |/ )[ 0-9]{0,6}(ms|s|sec|min|m|h|hr|d|days|x)?( burst |:)?[0-9]{0,11}"
        ) {
            if let Ok(q) = s.parse::<Quota>() {
                proptest::prop_assert_eq!(q.to_string().parse::<Quota>().unwrap(), q);
            }
        }

        #[test]
        fn valid_quotas_parse_as_written_and_round_trip(
            count in 1u32..1_000_000,
            n in 1u64..10_000,
            unit in proptest::sample::select(&[("ms", 0u64), ("s", 1), ("sec", 1), ("min", 60), ("minutes", 60), ("h", 3600), ("d", 86_400)][..]),
            burst in proptest::option::of(1u32..1_000_000),
            per in proptest::bool::ANY,
            colon in proptest::bool::ANY,
        ) {
            let (name, secs) = unit;
            let period = if secs == 0 { Duration::from_millis(n) } else { Duration::from_secs(n * secs) };
            proptest::prop_assume!(period.as_nanos() >= u128::from(count));
            let rate = if per { format!("{count} per {n} {name}") } else { format!("{count}/{n}{name}") };
            let s = match (burst, colon) {
                (None, _) => rate,
                (Some(b), true) => format!("{rate}:{b}"),
                (Some(b), false) => format!("{rate} burst {b}"),
            };
            let q: Quota = s.parse().map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{s}: {e}")))?;
            proptest::prop_assert_eq!((q.count(), q.period(), q.burst()), (count, period, burst.unwrap_or(count)));
            proptest::prop_assert_eq!(q.to_string().parse::<Quota>().unwrap(), q);
        }
    }
}
