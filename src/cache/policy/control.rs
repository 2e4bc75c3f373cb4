//! `Cache-Control` directives (RFC 9111 §5.2), parsed into the conservative reading.
//!
//! Hand-written rather than `headers::CacheControl`: that type rejects a whole header for one bad
//! directive, knows neither `stale-while-revalidate` nor `stale-if-error` (RFC 5861), and keeps
//! the last of two conflicting `max-age`s, where RFC 9111 §4.2.1 asks for the first or "stale".
//! The grammar (a comma list of `token [ "=" ( token / quoted-string ) ]`) is small.

use std::fmt;

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderName};

use crate::headers::is_tchar;

/// The largest delta-seconds value kept; larger ones read as this (RFC 9111 §1.2.2).
pub const MAX_DELTA_SECONDS: u32 = 1 << 31;

/// The value of a `max-stale` request directive (RFC 9111 §5.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxStale {
    /// `max-stale` without a value: any staleness is acceptable.
    Any,
    /// `max-stale=N`: at most `N` seconds stale.
    Seconds(u32),
}

/// The `Cache-Control` directives of a request or a response.
///
/// Parsing never fails; it reads what the header says in the way that can never make a cache
/// serve something the sender did not allow:
///
/// * names are case-insensitive; arguments may be tokens or quoted strings (`max-age="60"`);
/// * a `max-age`/`s-maxage` whose argument is missing or not a number reads as `0` (stale), and two
///   that disagree read as `0` (RFC 9111 §4.2.1 allows "stale" for duplicates);
/// * a bad or duplicated `stale-while-revalidate`/`stale-if-error`/`max-stale` keeps the smallest
///   window (a bad one: none at all), a bad `min-fresh` is ignored, duplicated ones keep the largest;
/// * the qualified forms `no-cache="Set-Cookie"` and `private="..."` keep their field names
///   (lowercase, sorted, once each) in [`no_cache_fields`](Self::no_cache_fields) and
///   [`private_fields`](Self::private_fields) (RFC 9111 §5.2.2.4, §5.2.2.7); a list that cannot
///   be read (empty, unterminated, a name that is no field name) reads as the unqualified
///   directive, and the unqualified directive makes a list moot;
/// * unknown extension directives are dropped.
///
/// [`Display`](fmt::Display) writes the directives in a fixed order, so parse → format → parse
/// gives back the same value.
///
/// ```
/// use protothrive::cache::policy::CacheControl;
///
/// let cc = CacheControl::parse(r#"Public, MAX-AGE="60", s-maxage=30, stale-while-revalidate=10"#);
/// assert!(cc.public);
/// assert_eq!(cc.max_age, Some(60));
/// assert_eq!(cc.s_maxage, Some(30));
/// assert_eq!(cc.stale_while_revalidate, Some(10));
/// assert_eq!(cc.to_string(), "public, max-age=60, s-maxage=30, stale-while-revalidate=10");
/// assert_eq!(CacheControl::parse("max-age=ten").max_age, Some(0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct CacheControl {
    /// `no-store` (§5.2.1.5, §5.2.2.5).
    pub no_store: bool,
    /// `no-cache` (§5.2.1.4, §5.2.2.4), unqualified: the whole response.
    pub no_cache: bool,
    /// The fields of a qualified `no-cache="..."` (§5.2.2.4): never sent without revalidation,
    /// the rest of the response may be.
    pub no_cache_fields: Vec<HeaderName>,
    /// `private` (§5.2.2.7), unqualified: the whole response.
    pub private: bool,
    /// The fields of a qualified `private="..."` (§5.2.2.7): a shared cache stores the response
    /// without them.
    pub private_fields: Vec<HeaderName>,
    /// `public` (§5.2.2.9).
    pub public: bool,
    /// `must-revalidate` (§5.2.2.2).
    pub must_revalidate: bool,
    /// `proxy-revalidate` (§5.2.2.8).
    pub proxy_revalidate: bool,
    /// `must-understand` (§5.2.2.3).
    pub must_understand: bool,
    /// `no-transform` (§5.2.1.6, §5.2.2.6).
    pub no_transform: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `only-if-cached` (§5.2.1.7).
    pub only_if_cached: bool,
    /// `max-age` in seconds (§5.2.1.1, §5.2.2.1).
    pub max_age: Option<u32>,
    /// `s-maxage` in seconds (§5.2.2.10).
    pub s_maxage: Option<u32>,
    /// `max-stale` (§5.2.1.2).
    pub max_stale: Option<MaxStale>,
    /// `min-fresh` in seconds (§5.2.1.3).
    pub min_fresh: Option<u32>,
    /// `stale-while-revalidate` in seconds (RFC 5861 §3).
    pub stale_while_revalidate: Option<u32>,
    /// `stale-if-error` in seconds (RFC 5861 §4).
    pub stale_if_error: Option<u32>,
}

/// How a duplicated or bad numeric directive is read.
#[derive(Clone, Copy)]
enum Conservative {
    /// Bad → 0, disagreeing duplicates → 0 (`max-age`, `s-maxage`).
    Stale,
    /// Bad → absent, duplicates → the smallest (windows that allow serving stale).
    Smallest,
    /// Bad → absent, duplicates → the largest (`min-fresh`).
    Largest,
}

fn merge(slot: &mut Option<u32>, value: Option<u32>, how: Conservative) {
    match (how, value) {
        (Conservative::Stale, None) => *slot = Some(0),
        (Conservative::Stale, Some(v)) => {
            *slot = Some(match *slot {
                Some(old) if old != v => 0,
                _ => v,
            });
        }
        (Conservative::Smallest | Conservative::Largest, None) => {}
        (Conservative::Smallest, Some(v)) => *slot = Some(slot.map_or(v, |o| o.min(v))),
        (Conservative::Largest, Some(v)) => *slot = Some(slot.map_or(v, |o| o.max(v))),
    }
}

/// `delta-seconds` (RFC 9111 §1.2.2): digits only, saturating at 2^31.
fn delta_seconds(arg: Option<&str>) -> Option<u32> {
    let arg = arg?;
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(arg.parse::<u64>().map_or(MAX_DELTA_SECONDS, |v| {
        v.min(u64::from(MAX_DELTA_SECONDS)) as u32
    }))
}

/// A `no-cache` or `private` directive: unqualified, or qualified by a list of field names
/// (`arg`). A list that cannot be read counts as the unqualified directive, which makes any list
/// moot.
fn qualified(whole: &mut bool, fields: &mut Vec<HeaderName>, arg: Option<&str>) {
    if *whole {
        return;
    }
    let names: Option<Vec<HeaderName>> = arg.and_then(|list| {
        let names: Option<Vec<HeaderName>> = list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        names.filter(|n| !n.is_empty())
    });
    match names {
        Some(names) => {
            fields.extend(names);
            fields.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
            fields.dedup();
        }
        None => {
            *whole = true;
            fields.clear();
        }
    }
}

/// Splits one header value into `(name, argument)` pairs; malformed members are skipped up to
/// the next comma outside a quoted string.
fn members(value: &str, mut f: impl FnMut(&str, Option<&str>, bool)) {
    let b = value.as_bytes();
    let mut i = 0;
    let mut unquoted = String::new();
    while i < b.len() {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        let start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        let name = &value[start..i];
        while i < b.len() && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        let mut ok = !name.is_empty();
        let mut arg: Option<(usize, usize)> = None;
        let mut quoted = false;
        if ok && i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && matches!(b[i], b' ' | b'\t') {
                i += 1;
            }
            if i < b.len() && b[i] == b'"' {
                quoted = true;
                unquoted.clear();
                i += 1;
                let mut closed = false;
                while i < b.len() {
                    match b[i] {
                        b'"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        b'\\' if i + 1 < b.len() => {
                            // quoted-pair: the next character, whole (it may be non-ASCII).
                            let ch = value[i + 1..].chars().next().unwrap_or('\u{fffd}');
                            unquoted.push(ch);
                            i += 1 + ch.len_utf8();
                        }
                        c if c.is_ascii() => {
                            unquoted.push(char::from(c));
                            i += 1;
                        }
                        _ => {
                            // A non-ASCII byte: take the whole character.
                            let ch = value[i..].chars().next().unwrap_or('\u{fffd}');
                            unquoted.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                ok &= closed;
            } else {
                let s = i;
                while i < b.len() && is_tchar(b[i]) {
                    i += 1;
                }
                arg = Some((s, i));
            }
        }
        while i < b.len() && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        if i < b.len() && b[i] != b',' {
            ok = false;
        }
        // Skip to the next comma outside quotes.
        let mut in_quotes = false;
        while i < b.len() && (in_quotes || b[i] != b',') {
            match b[i] {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                _ => {}
            }
            i += 1;
        }
        if !name.is_empty() {
            let arg = if quoted {
                Some(unquoted.as_str())
            } else {
                arg.map(|(s, e)| &value[s..e])
            };
            f(name, arg, ok);
        }
    }
}

impl CacheControl {
    /// Parses one `Cache-Control` value.
    #[must_use]
    pub fn parse(value: &str) -> Self {
        let mut cc = Self::default();
        cc.add(value);
        cc
    }

    /// Parses every `Cache-Control` field line of `headers` (lines that are not valid UTF-8 are
    /// read as `no-store, no-cache, max-age=0`: the sender cannot be understood).
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut cc = Self::default();
        for v in headers.get_all(CACHE_CONTROL) {
            match v.to_str() {
                Ok(s) => cc.add(s),
                Err(_) => cc.add("no-store, no-cache, max-age=0"),
            }
        }
        cc
    }

    /// Adds the directives of one more field line.
    fn add(&mut self, value: &str) {
        members(value, |name, arg, well_formed| {
            let arg = if well_formed { arg } else { None };
            self.directive(name, arg, well_formed);
        });
    }

    /// One directive. A malformed member (`no-store;x`, `max-age=6 0`) still counts when it
    /// restricts (`no-store`, `private`, `max-age` as `0`, ...) and is dropped when it permits
    /// (`public`, `immutable`, `must-understand`, ...).
    pub(super) fn directive(&mut self, name: &str, arg: Option<&str>, well_formed: bool) {
        let n = |s: &str| name.eq_ignore_ascii_case(s);
        let secs = delta_seconds(arg);
        let permissive = [
            "public",
            "immutable",
            "must-understand",
            "no-transform",
            "only-if-cached",
        ];
        if !well_formed && permissive.iter().any(|p| n(p)) {
            return;
        }
        if n("no-store") {
            self.no_store = true;
        } else if n("no-cache") {
            qualified(&mut self.no_cache, &mut self.no_cache_fields, arg);
        } else if n("private") {
            qualified(&mut self.private, &mut self.private_fields, arg);
        } else if n("public") {
            self.public = true;
        } else if n("must-revalidate") {
            self.must_revalidate = true;
        } else if n("proxy-revalidate") {
            self.proxy_revalidate = true;
        } else if n("must-understand") {
            self.must_understand = true;
        } else if n("no-transform") {
            self.no_transform = true;
        } else if n("immutable") {
            self.immutable = true;
        } else if n("only-if-cached") {
            self.only_if_cached = true;
        } else if n("max-age") {
            merge(&mut self.max_age, secs, Conservative::Stale);
        } else if n("s-maxage") {
            merge(&mut self.s_maxage, secs, Conservative::Stale);
        } else if n("min-fresh") {
            merge(&mut self.min_fresh, secs, Conservative::Largest);
        } else if n("stale-while-revalidate") {
            merge(
                &mut self.stale_while_revalidate,
                secs.or(Some(0)),
                Conservative::Smallest,
            );
        } else if n("stale-if-error") {
            merge(
                &mut self.stale_if_error,
                secs.or(Some(0)),
                Conservative::Smallest,
            );
        } else if n("max-stale") {
            let new = match (arg, secs) {
                (None, _) if well_formed => MaxStale::Any,
                (_, Some(s)) => MaxStale::Seconds(s),
                _ => MaxStale::Seconds(0),
            };
            self.max_stale = Some(match (self.max_stale, new) {
                (None | Some(MaxStale::Any), n) => n,
                (Some(old), MaxStale::Any) => old,
                (Some(MaxStale::Seconds(a)), MaxStale::Seconds(b)) => MaxStale::Seconds(a.min(b)),
            });
        }
    }

    /// Whether a qualified `no-cache` or `private` lists field `name` (RFC 9111 §5.2.2.4,
    /// §5.2.2.7).
    ///
    /// ```
    /// use protothrive::cache::policy::CacheControl;
    /// let cc = CacheControl::parse(r#"max-age=60, private="Set-Cookie""#);
    /// assert!(cc.lists(&http::header::SET_COOKIE));
    /// assert!(!cc.private);
    /// ```
    #[must_use]
    pub fn lists(&self, name: &HeaderName) -> bool {
        self.no_cache_fields.contains(name) || self.private_fields.contains(name)
    }

    /// No directive at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for CacheControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut item = |f: &mut fmt::Formatter<'_>, name: &str, arg: Option<u32>| {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            f.write_str(name)?;
            match arg {
                Some(a) => write!(f, "={a}"),
                None => Ok(()),
            }
        };
        let flags = [
            (self.no_store, "no-store"),
            (self.no_cache, "no-cache"),
            (self.private, "private"),
            (self.public, "public"),
            (self.must_revalidate, "must-revalidate"),
            (self.proxy_revalidate, "proxy-revalidate"),
            (self.must_understand, "must-understand"),
            (self.no_transform, "no-transform"),
            (self.immutable, "immutable"),
            (self.only_if_cached, "only-if-cached"),
        ];
        for (on, name) in flags {
            if on {
                item(f, name, None)?;
            }
        }
        for (fields, name) in [
            (&self.no_cache_fields, "no-cache"),
            (&self.private_fields, "private"),
        ] {
            if !fields.is_empty() {
                item(f, name, None)?;
                let names: Vec<&str> = fields.iter().map(HeaderName::as_str).collect();
                write!(f, "=\"{}\"", names.join(", "))?;
            }
        }
        let values = [(self.max_age, "max-age"), (self.s_maxage, "s-maxage")];
        for (v, name) in values {
            if let Some(v) = v {
                item(f, name, Some(v))?;
            }
        }
        match self.max_stale {
            Some(MaxStale::Any) => item(f, "max-stale", None)?,
            Some(MaxStale::Seconds(s)) => item(f, "max-stale", Some(s))?,
            None => {}
        }
        let values = [
            (self.min_fresh, "min-fresh"),
            (self.stale_while_revalidate, "stale-while-revalidate"),
            (self.stale_if_error, "stale-if-error"),
        ];
        for (v, name) in values {
            if let Some(v) = v {
                item(f, name, Some(v))?;
            }
        }
        Ok(())
    }
}
