//! The Redis tier of the cache ([`RedisTier`] says what it guarantees and costs), the wire form of
//! invalidations ([`encode_purge`]) and their broadcast between instances
//! ([`RedisTier::subscribe`], [`Subscription`]).
//!
//! ```
//! use protothrive::cache::Purge;
//! use protothrive::cache::redis::{decode_purge, encode_purge};
//! let p = Purge::Prefix("/api/roadmaps/".into());
//! assert_eq!(decode_purge(&encode_purge(&p)), Some(p));
//! ```

mod broadcast;
mod http_tier;
mod journal;
mod keys;
mod purge;
mod scripts;
pub(in crate::cache) mod tier;
mod wire;

pub use broadcast::Subscription;
pub use tier::{RedisTier, RedisTierBuilder, TierError};
pub use wire::{decode_purge, encode_purge};
