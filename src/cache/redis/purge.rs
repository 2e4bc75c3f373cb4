//! How the Redis tier applies a purge, keeps one Redis did not take, replays it and waits for
//! it ([`RedisTier`] says what this guarantees; the queue is `journal.rs`).

use std::time::Duration;

use super::http_tier::implicit_tags;
use super::journal::Work;
use super::tier::{RedisTier, TierError};
use super::wire::encode_purge;
use crate::cache::store::{CacheEntry, Purge};

/// How long the replay waits after a failed attempt before the next.
const RETRY: Duration = Duration::from_millis(100);

impl RedisTier {
    /// How many purges Redis did not take wait to be replayed (also the gauge
    /// `protothrive_cache_purges_unapplied`). While any does, this instance reads nothing from
    /// the tier.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let tier = protothrive::cache::RedisTier::builder("redis://127.0.0.1:6379").build().unwrap();
    /// assert_eq!(tier.unapplied_purges(), 0);
    /// # }
    /// ```
    #[must_use]
    pub fn unapplied_purges(&self) -> usize {
        self.journal.len()
    }

    /// Resolves once every purge made so far is applied to Redis and published — at once when
    /// none waits. For a graceful shutdown (bounded by a timeout of the caller's), and tests.
    pub async fn settled(&self) {
        self.journal.drained().await;
    }

    /// A purge of the data cache ([`Purge::Key`]: that key; [`Purge::KeyPrefix`]: every key
    /// under it), applied and published, or kept and replayed as the HTTP cache's are.
    pub(in crate::cache) async fn purge_data(&self, what: Purge) {
        self.purge(Work::Data(what)).await;
    }

    /// Publishes an invalidation to every subscribed instance (this one included).
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn publish(&self, purge: &Purge) -> Result<(), TierError> {
        let mut conn = self.conn.clone();
        let message = encode_purge(purge);
        let publish = conn.publish(&self.channel, &message);
        if !self.conn.is_cluster() {
            return self.bounded("publish", self.timeout, publish).await;
        }
        // On a cluster, not held back by the outage breaker: one master down opens it, yet the
        // purge can still reach every instance through the others. Bounded by four timeouts (a
        // second attempt, on every master, may follow a failed first one).
        let error = match tokio::time::timeout(self.timeout * 4, publish).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => format!("publish: {e}"),
            Err(_) => "publish: no answer in time".to_owned(),
        };
        metrics::counter!("protothrive_cache_l2_errors_total", "op" => "publish").increment(1);
        Err(TierError(error))
    }

    /// Applies `work` to Redis and publishes it to every instance; on failure keeps it for the
    /// replay and waits up to the tier's patience for the replay to get it through.
    pub(super) async fn purge(&self, work: Work) {
        if self.apply(&work).await.is_ok() {
            return;
        }
        self.keep([work]).await;
    }

    /// Keeps `works` (which Redis did not take) for the replay, and waits up to the tier's
    /// patience for them to be applied.
    pub(super) async fn keep(&self, works: impl IntoIterator<Item = Work>) {
        let mut seq = 0;
        for work in works {
            let (s, start) = self.journal.push(work);
            seq = s;
            tracing::debug!(seq, "cache purge kept for replay");
            if start {
                let tier = self.clone();
                tokio::spawn(async move { tier.replay().await });
            }
        }
        if seq > 0 && !self.patience.is_zero() {
            let _ = tokio::time::timeout(self.patience, self.journal.reached(seq)).await;
        }
    }

    /// Applies the kept purges in order until none is left.
    async fn replay(&self) {
        while let Some((seq, work)) = self.journal.front() {
            if self.apply(&work).await.is_ok() {
                self.journal.applied(seq);
            } else {
                tokio::time::sleep(RETRY).await;
            }
        }
    }

    /// Applies `work` to Redis, then publishes it.
    async fn apply(&self, work: &Work) -> Result<(), TierError> {
        match work {
            Work::Http(p) => {
                self.apply_http(p).await?;
                self.publish(p).await
            }
            Work::Data(p) => {
                match p {
                    Purge::Key(k) => self.delete(k).await?,
                    Purge::KeyPrefix(prefix) | Purge::Prefix(prefix) => {
                        self.delete_prefix(prefix).await.map(|_| ())?;
                    }
                    _ => self.delete_prefix("").await.map(|_| ())?,
                }
                self.publish(p).await
            }
            Work::All => {
                self.delete_prefix("").await?;
                self.publish(&Purge::All).await
            }
        }
    }

    /// Applies an HTTP cache purge to Redis: a key or URI purge drops the URI's implicit tag
    /// (the URI's every entry), a tag its set, a prefix scans; tombstones refuse older writes.
    pub(super) async fn apply_http(&self, what: &Purge) -> Result<(), TierError> {
        match what {
            Purge::Key(k) => {
                let [uri, _] = implicit_tags(k);
                self.delete_tag(&uri).await
            }
            Purge::Uri(u) if u.starts_with('/') => self.delete_tag(&format!("path:{u}")).await,
            Purge::Uri(u) => self.delete_tag(&format!("uri:{u}")).await,
            Purge::Tag(t) => self.delete_tag(t).await,
            Purge::KeyPrefix(p) => self.delete_prefix(p).await,
            Purge::All => self.delete_prefix("").await,
            other => {
                // URI prefixes match on the URI inside the key: scan every entry.
                let probe = CacheEntry::Vary(std::sync::Arc::from(Vec::new()));
                self.delete_where("", |k| other.matches(k, &probe)).await
            }
        }
        .map(|_| ())
    }
}
