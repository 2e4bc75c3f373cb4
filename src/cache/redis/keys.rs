//! Where the Redis tier keeps what: an entry, a tag's set of entries and a tag's tombstone, on
//! one server or spread over a Redis Cluster's slots.
//!
//! On one server: `<prefix><key>`, `<prefix>tag:<tag>`, `<prefix>purged:<tag>`.
//!
//! On a cluster an entry and the tag sets and tombstones its write touches must share a hash
//! slot (the tier's scripts touch them together), yet entries must spread over the masters. So
//! every entry belongs to one of `n` shards by a hash of its own key, and each shard keeps its
//! own tag sets and tombstones, all under the hash tag `{<shard>}`:
//! `<prefix>{<shard>}<key>`, `<prefix>{<shard>}tag:<tag>`, `<prefix>{<shard>}purged:<tag>`.
//! A read or a write is one slot; dropping a tag is one script per shard (its entries may be
//! in any). A `{hash tag}` of the prefix's own wins over the shard's: everything lands in one
//! slot (correct, not spread).

use std::sync::Arc;

/// The key layout of a tier (see the module docs).
#[derive(Debug, Clone)]
pub(super) struct Layout {
    prefix: Arc<str>,
    /// The number of shards on a cluster; `None` on one server.
    shards: Option<u16>,
}

/// The shards a tier spreads over on a cluster unless told otherwise: enough to spread over a
/// few masters, few enough that a tag purge (one script per shard, sent concurrently) stays
/// cheap.
pub(super) const DEFAULT_SHARDS: u16 = 16;

impl Layout {
    pub(super) fn new(prefix: impl Into<Arc<str>>, shards: Option<u16>) -> Self {
        Self {
            prefix: prefix.into(),
            shards,
        }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The shard of an entry's key: FNV-1a of the key (stable across instances and builds),
    /// modulo the number of shards; `None` on one server.
    pub(super) fn shard_of(&self, key: &str) -> Option<u16> {
        let n = self.shards?;
        let mut h: u32 = 0x811c_9dc5;
        for b in key.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        Some(u16::try_from(h % u32::from(n.max(1))).unwrap_or(0))
    }

    /// Every shard (one `None` on one server): where a tag's sets and tombstones may be.
    pub(super) fn all_shards(&self) -> Vec<Option<u16>> {
        match self.shards {
            Some(n) => (0..n.max(1)).map(Some).collect(),
            None => vec![None],
        }
    }

    fn base(&self, shard: Option<u16>) -> String {
        match shard {
            Some(s) => format!("{}{{{s}}}", self.prefix),
            None => self.prefix.to_string(),
        }
    }

    /// An entry's key.
    pub(super) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.base(self.shard_of(key)))
    }

    /// A tag's set of entries in `shard`.
    pub(super) fn tag(&self, shard: Option<u16>, tag: &str) -> String {
        format!("{}tag:{tag}", self.base(shard))
    }

    /// A tag's tombstone in `shard`, in a keyspace of its own: under the tags'
    /// (`tag:<tag>:purged`), the tombstone of one tag was the set of another (a tag
    /// `<tag>:purged`), and writing that tag failed with `WRONGTYPE`.
    pub(super) fn tombstone(&self, shard: Option<u16>, tag: &str) -> String {
        format!("{}purged:{tag}", self.base(shard))
    }

    /// The `SCAN MATCH` pattern of the entries whose key starts with `prefix` (and of tag sets
    /// and tombstones, which [`entry`](Self::entry) tells apart).
    pub(super) fn scan_pattern(&self, prefix: &str) -> String {
        match self.shards {
            Some(_) => format!("{}{{*}}{}*", glob_escape(&self.prefix), glob_escape(prefix)),
            None => format!("{}{}*", glob_escape(&self.prefix), glob_escape(prefix)),
        }
    }

    /// The entry key of a stored Redis key, `None` for a tag set, a tombstone or a key not of
    /// this layout.
    pub(super) fn entry<'k>(&self, stored: &'k str) -> Option<&'k str> {
        let rest = stored.strip_prefix(&*self.prefix)?;
        let rest = match self.shards {
            Some(_) => {
                let (shard, rest) = rest.strip_prefix('{')?.split_once('}')?;
                if shard.is_empty() || !shard.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                rest
            }
            None => rest,
        };
        (!rest.starts_with("tag:") && !rest.starts_with("purged:")).then_some(rest)
    }

    /// The scripts of a write: on one server one, with every put; on a cluster one per shard
    /// that holds a put, and (when the write purges tags) one for every other shard too.
    /// Each is the shard and the positions of its puts in `keys`.
    pub(super) fn write_groups<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
        purges: bool,
    ) -> Vec<(Option<u16>, Vec<usize>)> {
        let mut groups: Vec<(Option<u16>, Vec<usize>)> = if purges {
            self.all_shards()
                .into_iter()
                .map(|s| (s, Vec::new()))
                .collect()
        } else {
            Vec::new()
        };
        for (i, key) in keys.into_iter().enumerate() {
            let shard = self.shard_of(key);
            match groups.iter_mut().find(|g| g.0 == shard) {
                Some(g) => g.1.push(i),
                None => groups.push((shard, vec![i])),
            }
        }
        groups
    }
}

/// Escapes a glob pattern's special characters so `SCAN MATCH` reads them literally.
pub(super) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn one_server_keeps_the_names_it_always_had() {
        let l = Layout::new("p:", None);
        assert_eq!(l.key("GET /a"), "p:GET /a");
        assert_eq!(l.tag(None, "t"), "p:tag:t");
        assert_eq!(l.tombstone(None, "t"), "p:purged:t");
        assert_eq!(l.scan_pattern("u*"), "p:u\\**");
        assert_eq!(l.entry("p:GET /a"), Some("GET /a"));
        assert_eq!(l.entry("p:tag:t"), None);
        assert_eq!(l.write_groups(["a", "b"], true), vec![(None, vec![0, 1])]);
    }

    #[test]
    fn a_cluster_shards_entries_with_their_tags_and_tombstones() {
        let l = Layout::new("p:", Some(16));
        let s = l.shard_of("GET /a");
        let tag = format!("{{{}}}", s.unwrap());
        assert_eq!(l.key("GET /a"), format!("p:{tag}GET /a"));
        assert_eq!(l.tag(s, "t"), format!("p:{tag}tag:t"));
        assert_eq!(l.tombstone(s, "t"), format!("p:{tag}purged:t"));
        assert_eq!(l.entry(&l.key("GET /a")), Some("GET /a"));
        assert_eq!(l.entry(&l.tag(s, "t")), None);
        assert_eq!(l.entry("p:{x}GET /a"), None);
        assert_eq!(l.scan_pattern("GET"), "p:{*}GET*");
        assert_eq!(l.all_shards().len(), 16);
        assert_eq!(
            l.write_groups(["GET /a"], true).len(),
            16,
            "a purge reaches every shard"
        );
        assert_eq!(l.write_groups(["GET /a"], false), vec![(s, vec![0])]);
    }

    proptest! {
        /// Every key lands in a shard, the same one each time, and reads back as itself.
        #[test]
        fn keys_round_trip_through_their_shard(key in ".*", n in 1u16..64) {
            let l = Layout::new("p:", Some(n));
            let s = l.shard_of(&key).unwrap();
            prop_assert!(s < n);
            prop_assert_eq!(l.shard_of(&key), Some(s));
            let stored = l.key(&key);
            let expected = (!key.starts_with("tag:") && !key.starts_with("purged:"))
                .then_some(key.as_str());
            prop_assert_eq!(l.entry(&stored), expected);
        }
    }

    #[test]
    fn keys_spread_over_the_shards() {
        let l = Layout::new("p:", Some(16));
        let mut seen = [0u32; 16];
        for i in 0..1600 {
            seen[usize::from(l.shard_of(&format!("GET /api/items/{i}")).unwrap())] += 1;
        }
        assert!(seen.iter().all(|&n| (50..=150).contains(&n)), "{seen:?}");
    }
}
