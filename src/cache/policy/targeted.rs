//! Targeted cache-control fields (RFC 9213): `CDN-Cache-Control` and fields like it, read as
//! Structured Field dictionaries (RFC 8941). The rules are on [`Directives`], the public face.
//!
//! The Structured Field grammar is the `sfv` crate's (RFC 8941/9651), through its visitor API: no
//! map type, nothing copied but argument text.

use std::convert::Infallible;

use http::{HeaderMap, HeaderName};
use sfv::visitor::{DictionaryVisitor, EntryVisitor, Ignored, InnerListVisitor, ItemVisitor};
use sfv::{BareItemFromInput, KeyRef, Parser, Version};

use super::control::CacheControl;

/// `CDN-Cache-Control` (RFC 9213 §3): the targeted field of CDN caches, on the default list.
pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// What a member's value says, for the directive it names.
enum Value {
    /// Boolean true: the directive without an argument.
    True,
    /// An Integer, Token or String: the argument.
    Arg(String),
    /// Any other value: malformed for every directive this cache knows.
    Odd,
}

impl Value {
    fn of(bare: &BareItemFromInput<'_>) -> Self {
        match bare {
            BareItemFromInput::Boolean(true) => Self::True,
            BareItemFromInput::Integer(i) => Self::Arg(i64::from(*i).to_string()),
            BareItemFromInput::Token(t) => Self::Arg(t.as_str().to_owned()),
            BareItemFromInput::String(s) => Self::Arg(s.as_str().to_owned()),
            _ => Self::Odd,
        }
    }
}

/// The members of a dictionary, in order; a repeated key keeps its first place and its last
/// value.
#[derive(Default)]
struct Members(Vec<(String, Value)>);

/// Where one member's value goes.
struct Slot<'a>(&'a mut Value);

impl<'de> DictionaryVisitor<'de> for &mut Members {
    type Out = ();
    type Error = Infallible;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, Infallible> {
        let at = match self.0.iter().position(|(k, _)| k == key.as_str()) {
            Some(at) => at,
            None => {
                self.0.push((key.as_str().to_owned(), Value::Odd));
                self.0.len() - 1
            }
        };
        Ok(Slot(&mut self.0[at].1))
    }

    fn finish(self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl<'de> EntryVisitor<'de> for Slot<'_> {
    type Error = Infallible;

    fn item(self) -> Result<impl ItemVisitor<'de>, Infallible> {
        Ok(move |bare: BareItemFromInput<'de>| {
            *self.0 = Value::of(&bare);
            Ok::<_, Infallible>(Ignored)
        })
    }

    fn inner_list(self) -> Result<impl InnerListVisitor<'de>, Infallible> {
        *self.0 = Value::Odd;
        Ok(Ignored)
    }
}

impl CacheControl {
    /// Parses the value of a targeted field (RFC 9213 §2.2) as a Structured Field dictionary
    /// (RFC 8941 §3.2): `None` when it is not a valid one, or has no member (the field is then
    /// ignored as a whole). [`Directives`] says how values map to directives.
    ///
    /// ```
    /// use protothrive::cache::policy::CacheControl;
    ///
    /// let cc = CacheControl::parse_targeted(r#"max-age=60, no-cache="set-cookie""#).unwrap();
    /// assert_eq!(cc.max_age, Some(60));
    /// assert_eq!(cc.no_cache_fields, ["set-cookie"]);
    /// // Keys are lowercase in a dictionary: this one is invalid, so ignored whole.
    /// assert_eq!(CacheControl::parse_targeted("Max-Age=60"), None);
    /// assert_eq!(CacheControl::parse_targeted("max-age=1.5").unwrap().max_age, Some(0));
    /// assert_eq!(CacheControl::parse_targeted(""), None);
    /// ```
    #[must_use]
    pub fn parse_targeted(value: impl AsRef<[u8]>) -> Option<Self> {
        let mut members = Members::default();
        Parser::new(value.as_ref())
            .with_version(Version::Rfc8941)
            .parse_dictionary_with_visitor(&mut members)
            .ok()?;
        if members.0.is_empty() {
            return None;
        }
        let mut cc = Self::default();
        for (name, value) in &members.0 {
            match value {
                Value::True => cc.directive(name, None, true),
                Value::Arg(arg) => cc.directive(name, Some(arg), true),
                Value::Odd => cc.directive(name, None, false),
            }
        }
        Some(cc)
    }
}

/// The directives of targeted field `name` in `headers`: its field lines joined with commas
/// (RFC 8941 §4.2) and parsed with [`CacheControl::parse_targeted`]; `None` when absent, empty or
/// invalid.
fn targeted(headers: &HeaderMap, name: &HeaderName) -> Option<CacheControl> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?;
    let Some(second) = lines.next() else {
        return CacheControl::parse_targeted(first.as_bytes());
    };
    let mut joined = first.as_bytes().to_vec();
    for line in std::iter::once(second).chain(lines) {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(line.as_bytes());
    }
    CacheControl::parse_targeted(joined)
}

/// The directives that govern this cache's storage and freshness of a response (RFC 9213 §2.1):
/// those of the first targeted field on the list with a valid, non-empty value, else those of
/// `Cache-Control` (with `Expires`).
///
/// Targeted fields (`CDN-Cache-Control`, a product's own) govern this cache in place of
/// `Cache-Control`, which goes on governing the caches downstream and browsers. The layer keeps a
/// target list ([`targets`](crate::cache::CacheLayerBuilder::targets); by default `CDN-Cache-Control`
/// alone). The first field on the list with a valid, non-empty value governs a response: its
/// directives replace those of `Cache-Control` **and** `Expires`; `Age` still counts against its
/// `max-age`. A field that is not a valid Structured Field dictionary (RFC 8941 §3.2: lowercase
/// keys, `max-age=60`, `no-cache="set-cookie"`, `no-store`) is ignored as a whole (§2.2), and the
/// next field on the list, or else `Cache-Control` with `Expires`, governs. Fields off the list
/// change nothing; every field is passed on (a CDN further down may read it too).
///
/// Members map to directives as §2.2 says: Boolean true is a directive without an argument; an
/// Integer, Token or String is its argument. A value of another type (a Decimal `max-age`, `?0`,
/// an inner list, a byte sequence) is read the conservative way [`CacheControl`] reads a
/// malformed directive: it counts when it restricts (`no-store=?0` is `no-store`, `max-age=1.5`
/// is `max-age=0`) and is dropped when it permits (`public=?0`). Parameters are ignored; of a
/// repeated key the last value counts (RFC 8941 §4.2.2). The layer parses them when it stores or
/// updates a response, never on a hit: the stored response keeps its directives.
///
/// ```
/// use http::{HeaderMap, HeaderName};
/// use protothrive::cache::policy::{CDN_CACHE_CONTROL, Directives};
///
/// let mut h = HeaderMap::new();
/// h.insert("cache-control", "no-store".parse().unwrap());
/// h.insert("cdn-cache-control", "max-age=600".parse().unwrap());
/// h.insert("protothrive-cache-control", "Max-Age=5".parse().unwrap()); // invalid: ignored
/// let targets = [HeaderName::from_static("protothrive-cache-control"), CDN_CACHE_CONTROL.clone()];
/// let d = Directives::of(&h, &targets);
/// assert_eq!(d.field, Some(CDN_CACHE_CONTROL.clone()));
/// assert_eq!((d.cc.max_age, d.cc.no_store), (Some(600), false));
/// assert!(Directives::of(&h, &[]).cc.no_store);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Directives {
    /// The directives.
    pub cc: CacheControl,
    /// The targeted field they come from; `None` for `Cache-Control`, when `Expires` counts too.
    pub field: Option<HeaderName>,
}

impl Directives {
    /// The directives governing a response with `headers` for a cache with target list
    /// `targets` (most applicable first).
    #[must_use]
    pub fn of(headers: &HeaderMap, targets: &[HeaderName]) -> Self {
        for name in targets {
            if let Some(cc) = targeted(headers, name) {
                return Self {
                    cc,
                    field: Some(name.clone()),
                };
            }
        }
        Self {
            cc: CacheControl::from_headers(headers),
            field: None,
        }
    }

    /// Whether `Expires` counts: only when `Cache-Control` governs (RFC 9213 §2.1).
    #[must_use]
    pub fn expires_counts(&self) -> bool {
        self.field.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::control::any_cc;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dictionary_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("max-age=60", Some("max-age=60")),
            ("no-store", Some("no-store")),
            ("no-store=?1, max-age=5", Some("no-store, max-age=5")),
            // Restricting directives count whatever their value; permitting ones need true.
            ("no-store=?0", Some("no-store")),
            ("public=?0, max-age=5", Some("max-age=5")),
            ("public=(a b), immutable=:AAA=:", Some("")),
            ("max-age=1.5", Some("max-age=0")),
            ("max-age=-5", Some("max-age=0")),
            ("max-age=\"60\"", Some("max-age=60")),
            ("max-age=60;foo=bar", Some("max-age=60")),
            // A repeated key: the last value counts.
            ("max-age=60, max-age=5", Some("max-age=5")),
            (
                "max-age=5, private, max-age=60",
                Some("private, max-age=60"),
            ),
            (
                "no-cache=\"Set-Cookie, x-a\", private=\"x-b\"",
                Some("no-cache=\"set-cookie, x-a\", private=\"x-b\""),
            ),
            ("no-cache=set-cookie", Some("no-cache=\"set-cookie\"")),
            (
                "s-maxage=10, stale-if-error=30",
                Some("s-maxage=10, stale-if-error=30"),
            ),
            ("must-revalidate, x-ext=\"a\"", Some("must-revalidate")),
            ("x-unknown", Some("")),
            // Not a dictionary: ignored whole.
            ("", None),
            ("   ", None),
            ("Max-Age=60", None),
            ("max-age=60,", None),
            ("max-age=60 no-store", None),
            ("max-age=\"60", None),
            ("max-age=9999999999999999", None),
            ("no-cache=\"a\\b\"", None),
            ("max-age=@1700000000", None),
            ("max-age=%\"x\"", None),
            ("max-age=60, ", None),
        ];
        for (input, want) in cases {
            let got = CacheControl::parse_targeted(input).map(|cc| cc.to_string());
            assert_eq!(got.as_deref(), *want, "{input:?}");
        }
    }

    fn headers(lines: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in lines {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_first_valid_target_governs() {
        let ours = HeaderName::from_static("protothrive-cache-control");
        let targets = [ours.clone(), CDN_CACHE_CONTROL.clone()];
        /// Response fields, the field that governs, its directives.
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a HeaderName>, &'a str);
        let cases: &[Case<'_>] = &[
            (&[("cache-control", "max-age=1")], None, "max-age=1"),
            (
                &[
                    ("cache-control", "max-age=1"),
                    ("cdn-cache-control", "max-age=2"),
                ],
                Some(&CDN_CACHE_CONTROL),
                "max-age=2",
            ),
            (
                &[
                    ("cdn-cache-control", "max-age=2"),
                    ("protothrive-cache-control", "no-store"),
                ],
                Some(&ours),
                "no-store",
            ),
            // Invalid or empty: the next one governs.
            (
                &[
                    ("cache-control", "max-age=1"),
                    ("protothrive-cache-control", "NO-STORE"),
                    ("cdn-cache-control", ""),
                ],
                None,
                "max-age=1",
            ),
            // Lines join into one dictionary; one bad line spoils the whole field.
            (
                &[
                    ("cdn-cache-control", "max-age=2"),
                    ("cdn-cache-control", "must-revalidate"),
                ],
                Some(&CDN_CACHE_CONTROL),
                "must-revalidate, max-age=2",
            ),
            (
                &[
                    ("cache-control", "max-age=1"),
                    ("cdn-cache-control", "max-age=2"),
                    ("cdn-cache-control", "must revalidate"),
                ],
                None,
                "max-age=1",
            ),
        ];
        for (lines, field, want) in cases {
            let d = Directives::of(&headers(lines), &targets);
            assert_eq!(d.field.as_ref(), *field, "{lines:?}");
            assert_eq!(d.cc.to_string(), *want, "{lines:?}");
            assert_eq!(d.expires_counts(), field.is_none());
        }
        let h = headers(&[("cdn-cache-control", "max-age=2")]);
        assert_eq!(
            Directives::of(&h, &[]).field,
            None,
            "off the list: no effect"
        );
    }

    proptest! {
        /// The `Cache-Control` form of any directives is a valid dictionary, read alike by both
        /// parsers.
        #[test]
        fn both_parsers_read_the_formatted_directives_alike(cc in any_cc()) {
            let text = cc.to_string();
            let targeted = CacheControl::parse_targeted(&text);
            if cc.is_empty() {
                prop_assert_eq!(targeted, None);
            } else {
                prop_assert_eq!(targeted, Some(cc.clone()));
            }
            prop_assert_eq!(CacheControl::parse(&text), cc);
        }

        /// Whatever the text, a parse that succeeds reads back the same from its own format.
        #[test]
        fn a_parsed_field_formats_and_parses_back(s in "[ -~]{0,60}") {
            if let Some(cc) = CacheControl::parse_targeted(&s) {
                let again = CacheControl::parse_targeted(cc.to_string());
                prop_assert!(again.is_none_or(|a| a == cc));
                prop_assert_eq!(CacheControl::parse(&cc.to_string()), cc);
            }
        }
    }
}
