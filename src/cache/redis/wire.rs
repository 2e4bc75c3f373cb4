//! The wire form of a [`Purge`] on the invalidation channel, shared by the tier that publishes
//! purges and the subscription that applies them.

use crate::cache::store::Purge;

/// The wire form of a [`Purge`] on the invalidation channel: a one-letter kind, `:`, the value
/// (`k:` key, `u:` URI, `p:` URI prefix, `r:` raw key prefix, `t:` tag), or `*` for everything.
///
/// ```
/// use protothrive::cache::Purge;
/// use protothrive::cache::redis::{decode_purge, encode_purge};
/// let p = Purge::Tag("roadmap:7".into());
/// assert_eq!(encode_purge(&p), "t:roadmap:7");
/// assert_eq!(decode_purge("t:roadmap:7"), Some(p));
/// assert_eq!(decode_purge("x"), None);
/// ```
#[must_use]
pub fn encode_purge(purge: &Purge) -> String {
    match purge {
        Purge::Key(k) => format!("k:{k}"),
        Purge::Uri(u) => format!("u:{u}"),
        Purge::Prefix(p) => format!("p:{p}"),
        Purge::KeyPrefix(p) => format!("r:{p}"),
        Purge::Tag(t) => format!("t:{t}"),
        Purge::All => "*".to_owned(),
    }
}

/// Reads [`encode_purge`]'s output back; `None` for anything else.
#[must_use]
pub fn decode_purge(s: &str) -> Option<Purge> {
    if s == "*" {
        return Some(Purge::All);
    }
    let (kind, value) = s.split_at_checked(2)?;
    let value = value.to_owned();
    match kind {
        "k:" => Some(Purge::Key(value)),
        "u:" => Some(Purge::Uri(value)),
        "p:" => Some(Purge::Prefix(value)),
        "r:" => Some(Purge::KeyPrefix(value)),
        "t:" => Some(Purge::Tag(value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_round_trip_on_the_wire() {
        for p in [
            Purge::Key("GET http://h/a".into()),
            Purge::Uri("/a?b".into()),
            Purge::Prefix("/api/roadmaps/".into()),
            Purge::KeyPrefix("user:1:".into()),
            Purge::Tag("t".into()),
            Purge::All,
        ] {
            assert_eq!(decode_purge(&encode_purge(&p)), Some(p));
        }
        assert_eq!(decode_purge(""), None);
        assert_eq!(decode_purge("k"), None);
        assert_eq!(decode_purge("z:x"), None);
    }
}
