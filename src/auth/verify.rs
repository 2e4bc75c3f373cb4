//! Signature verification over a set of keys: the key is chosen by `kid` and must be bound to the
//! token's `alg`. Pure and synchronous; the payload is parsed only after the signature verifies.

use super::claims::Payload;
use super::token::{self, Compact, Header};
use super::{Reason, VerifyingKey};

/// The largest signature accepted: RSA-8192 (1024 bytes).
const MAX_SIGNATURE_BYTES: usize = 1024;

/// Whether `key` may verify a token with `header`: same algorithm, and the same `kid` when the key
/// has one. A key without a `kid` is a candidate for any token of its algorithm.
pub(crate) fn is_candidate(key: &VerifyingKey, header: &Header) -> bool {
    key.algorithm() == header.alg
        && match (key.kid(), header.kid.as_deref()) {
            (Some(k), Some(t)) => k == t,
            (Some(_), None) | (None, _) => true,
        }
}

/// Verifies the signature of `compact` against the candidate keys.
pub(crate) fn verify_signature<'k, I>(
    compact: &Compact<'_>,
    header: &Header,
    keys: I,
) -> Result<(), Reason>
where
    I: IntoIterator<Item = &'k VerifyingKey>,
{
    let mut buf = [0u8; MAX_SIGNATURE_BYTES];
    if compact.signature.len() > MAX_SIGNATURE_BYTES * 4 / 3 + 4 {
        return Err(Reason::Malformed);
    }
    let signature = token::decode_segment_into(compact.signature, &mut buf)?;
    let (mut tried, mut alg_known) = (false, false);
    for key in keys {
        alg_known |= key.algorithm() == header.alg;
        if !is_candidate(key, header) {
            continue;
        }
        tried = true;
        if key.verify(compact.signing_input.as_bytes(), signature) {
            return Ok(());
        }
    }
    Err(if tried {
        Reason::BadSignature
    } else if alg_known {
        Reason::UnknownKey
    } else {
        // No key verifies this algorithm at all (HS256 where only RSA keys are configured, ...).
        Reason::UnsupportedAlgorithm
    })
}

/// Parses the payload of a verified token.
pub(crate) fn parse_claims(compact: &Compact<'_>) -> Result<Payload, Reason> {
    Payload::parse(token::decode_segment(compact.payload)?)
}
