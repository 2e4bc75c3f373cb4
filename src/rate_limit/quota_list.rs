//! A named list of quotas, as configuration writes them: `ip=60/min burst 10, login=10 per 5 min`.

use std::fmt;
use std::str::FromStr;

use super::Quota;
use crate::error::ConfigError;

/// Quotas by limit name, parsed from `name=quota` items separated by commas (each quota in any
/// form [`Quota`] parses, `off` included). Later items override earlier ones, so a list of
/// defaults can be [`overridden`](Self::override_with) by what the operator wrote.
///
/// ```
/// use protothrive::rate_limit::QuotaList;
///
/// let defaults: QuotaList = "ip=60/min burst 10, login=10 per 5 min".parse()?;
/// let ops: QuotaList = "login=off".parse()?;
/// let limits = defaults.override_with(&ops);
/// assert_eq!(limits.get("ip").unwrap().burst(), 10);
/// assert!(limits.get("login").unwrap().is_unlimited());
///
/// let err = "ip=60/min, user 100/min".parse::<QuotaList>().unwrap_err();
/// assert!(err.message().contains("`user 100/min`"));
/// # Ok::<(), protothrive::error::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaList(Vec<(String, Quota)>);

impl QuotaList {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `quota` (replacing what it was).
    ///
    /// ```
    /// use protothrive::rate_limit::{Quota, QuotaList};
    /// let l = QuotaList::new().with("ip", Quota::per_minute(60).unwrap());
    /// assert_eq!(l.get("ip").unwrap().count(), 60);
    /// ```
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, quota: Quota) -> Self {
        let name = name.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, q)) => *q = quota,
            None => self.0.push((name, quota)),
        }
        self
    }

    /// The quota of `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Quota> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, q)| *q)
    }

    /// This list with every item of `other` set over it.
    #[must_use]
    pub fn override_with(&self, other: &Self) -> Self {
        other
            .iter()
            .fold(self.clone(), |list, (n, q)| list.with(n, q))
    }

    /// The names and quotas, in the order first written.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Quota)> {
        self.0.iter().map(|(n, q)| (n.as_str(), *q))
    }

    /// A name not in `known`, if any (for configuration that accepts only some names).
    ///
    /// ```
    /// use protothrive::rate_limit::QuotaList;
    /// let l: QuotaList = "ip=1/s, ipp=2/s".parse().unwrap();
    /// assert_eq!(l.unknown(&["ip", "user"]), Some("ipp"));
    /// ```
    #[must_use]
    pub fn unknown(&self, known: &[&str]) -> Option<&str> {
        self.0
            .iter()
            .map(|(n, _)| n.as_str())
            .find(|n| !known.contains(n))
    }
}

impl FromStr for QuotaList {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let mut list = Self::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = |why: &str| {
                ConfigError::new(format!(
                    "rate-limit item `{item}`: {why} (write name=quota, e.g. `ip=60/min burst 10`)"
                ))
            };
            let (name, quota) = item.split_once('=').ok_or_else(|| bad("no `=`"))?;
            let name = name.trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(bad("the name must be letters, digits, `_`, `-` or `.`"));
            }
            let quota: Quota = quota.parse().map_err(|e: ConfigError| bad(e.message()))?;
            list = list.with(name, quota);
        }
        Ok(list)
    }
}

impl fmt::Display for QuotaList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (n, q)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}={q}")?;
        }
        Ok(())
    }
}

/// Deserialized from the text form (`"ip=60/min burst 10, login=off"`).
impl<'de> serde::Deserialize<'de> for QuotaList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Deserialized from the text form (`"100/min burst 10"`).
impl<'de> serde::Deserialize<'de> for Quota {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bad_items_name_themselves() {
        for (text, needle) in [
            ("ip", "`ip`: no `=`"),
            ("=60/min", "the name"),
            ("a b=1/s", "the name"),
            ("ip=sixty/min", "`ip=sixty/min`"),
            ("ip=0/min", "at least 1"),
        ] {
            let e = text.parse::<QuotaList>().unwrap_err();
            assert!(e.message().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn later_items_win_and_order_is_kept() {
        let l: QuotaList = "b=1/s, a=2/s, b=3/s".parse().unwrap();
        assert_eq!(l.to_string(), "b=3/1s:3, a=2/1s:2");
    }

    proptest! {
        #[test]
        fn display_parses_back(items in proptest::collection::vec(("[a-z_]{1,8}", 1u32..10_000, 1u64..100_000, 1u32..10_000, any::<bool>()), 0..6)) {
            let mut list = QuotaList::new();
            for (name, count, secs, burst, off) in items {
                let q = if off {
                    Quota::unlimited()
                } else {
                    Quota::new(count, std::time::Duration::from_secs(secs), burst).unwrap()
                };
                list = list.with(name, q);
            }
            let again: QuotaList = list.to_string().parse().unwrap();
            prop_assert_eq!(again, list);
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,64}") {
            let _ = s.parse::<QuotaList>();
        }
    }
}
